"""Snakemake adapter: the checks of the bivariate agreement fit (alliance.model_checks,
alliance.agreement): convergence, prior sensitivity, the predictive check of the patient-therapist
correlations, the frequentist cross-check and the figures of the quantities and their priors."""

from alliance.runtime import start_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = start_job(smk)

import pandas as pd

from alliance.agreement import agreement_data, correlation_check, frequentist_agreement
from alliance.diagnostics import stop_if_strict
from alliance.figures import (
    correlation_posterior_figure,
    prior_quantities_figure,
    save_figure,
    statistic_check_figure,
)
from alliance.model_checks import check_model

ci_prob = smk.params.ci_prob
pairs = agreement_data(pd.read_csv(smk.input.alliance), smk.params.instrument)
idata, diagnostics = check_model(
    smk.input.fit, smk.output.diagnostics, smk.output.sensitivity, smk.params.checks, log
)

check = correlation_check(idata, pairs, ci_prob)
check.to_csv(smk.output.ppc_table, index=False)
title = "Posterior predictive check of the joint distribution"
save_figure(statistic_check_figure(check, "Patient-therapist Pearson r", title), smk.output.ppc)
frequentist_agreement(pairs).to_csv(smk.output.frequentist, index=False)

estimands, prior = idata["estimands"].to_dataset(), idata["prior_estimands"].to_dataset()
save_figure(correlation_posterior_figure(estimands, prior), smk.output.correlations)
save_figure(
    prior_quantities_figure(
        prior,
        ["rater_correlation", "rater_bias", "icc_agreement", "loa_high"],
        "Prior predictive check: agreement quantities the priors imply (digital arm)",
    ),
    smk.output.prior_check,
)
stop_if_strict(diagnostics, smk.params.checks["strict"], log)
