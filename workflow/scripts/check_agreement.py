"""Snakemake adapter: aim (b) estimands, diagnostics, predictive checks, figures, cross-check."""

from alliance.runtime import isolate_caches, job_logger

smk = snakemake  # noqa: F821 (injected by Snakemake)
isolate_caches(".", "check_agreement")
log = job_logger(smk.log[0], "check_agreement")

import sys

import pandas as pd

from alliance.agreement import agreement_data, correlation_check, frequentist_agreement
from alliance.diagnostics import announce, convergence_table
from alliance.figures import (
    bland_altman_figure,
    correlation_posterior_figure,
    prior_quantities_figure,
    rater_scatter_figure,
    statistic_check_figure,
)
from alliance.posterior_summary import contract_table, summarise_draws
from alliance.sampling import load_fit
from alliance.sensitivity import mark_unidentified, prior_sensitivity

config = smk.config
summary = config["summary"]
months = list(config["instrument"]["months"])
pairs = agreement_data(pd.read_csv(smk.input.alliance), config["instrument"])
idata = load_fit(smk.input.fit)
estimands = idata["estimands"].to_dataset()
prior_estimands = idata["prior_estimands"].to_dataset()

correlation_like = {"rater_correlation", "change_correlation", "icc_agreement"}
detail = pd.concat(
    [
        summarise_draws(
            estimands[name],
            summary["ci_prob"],
            summary["rope_correlation"] if name in correlation_like else summary["rope_wai"],
            labels={"aim": "b", "estimand": name},
            prior=prior_estimands[name],
        )
        for name in estimands.data_vars
        if name != "residual_correlation"
    ],
    ignore_index=True,
)
detail.to_csv(smk.output.detail, index=False)
contract = detail[detail["estimand"].isin(["rater_correlation", "rater_bias", "icc_agreement"])]
contract_table(contract).to_csv(smk.output.estimands, index=False)

sensitivity = prior_sensitivity(
    idata,
    estimands[["rater_correlation", "rater_bias", "icc_agreement", "change_correlation"]],
    "agreement",
    config["diagnostics"]["sensitivity_threshold"],
)
mark_unidentified(sensitivity, detail, config["diagnostics"]["min_contraction"]).to_csv(
    smk.output.sensitivity, index=False
)

diagnostics = convergence_table(idata, detail, "agreement", config["diagnostics"])
diagnostics.to_csv(smk.output.diagnostics, index=False)
failed = announce(diagnostics, log)

check = correlation_check(idata, pairs, summary["ci_prob"])
check.to_csv(smk.output.ppc_table, index=False)
statistic_check_figure(
    check, "Patient-therapist Pearson r", "Posterior predictive check of the joint distribution"
).savefig(smk.output.ppc, dpi=110, bbox_inches="tight")

frequentist = frequentist_agreement(pairs)
frequentist.to_csv(smk.output.frequentist, index=False)

bland_altman_figure(pairs, detail).savefig(smk.output.bland_altman, dpi=120, bbox_inches="tight")
rater_scatter_figure(pairs, months).savefig(smk.output.scatter, dpi=110, bbox_inches="tight")
correlation_posterior_figure(estimands, idata["prior_estimands"].to_dataset()).savefig(
    smk.output.correlations, dpi=120, bbox_inches="tight"
)
prior_quantities_figure(
    idata["prior_estimands"].to_dataset(),
    ["rater_correlation", "rater_bias", "icc_agreement", "loa_high"],
    "Prior predictive check: agreement quantities the priors imply (digital arm)",
).savefig(smk.output.prior_check, dpi=110, bbox_inches="tight")
if failed and config["diagnostics"]["strict"]:
    log.error("diagnostics.strict is true: stopping because convergence checks failed")
    sys.exit(1)
