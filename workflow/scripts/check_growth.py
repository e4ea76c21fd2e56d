"""Snakemake adapter: diagnostics, estimand summaries and predictive checks of one growth fit."""

from alliance.runtime import isolate_caches, job_logger

smk = snakemake  # noqa: F821 (injected by Snakemake)
rater, name = smk.wildcards.rater, smk.wildcards.model
job = f"check_growth_{rater}_{name}"
isolate_caches(".", job)
log = job_logger(smk.log[0], job)

import sys

import pandas as pd

from alliance.diagnostics import announce, convergence_table
from alliance.figures import ceiling_check_figure, ppc_density_figure, prior_predictive_figure
from alliance.growth import ceiling_check, observed_and_groups, replicate_scores, sd_check
from alliance.posterior_summary import summarise_draws
from alliance.sampling import load_fit
from alliance.sensitivity import mark_unidentified, prior_sensitivity

config = smk.config
spec = config["growth"]["models"][name]
upper = config["instrument"]["response_max"]
idata = load_fit(smk.input.fit)

detail = pd.concat(
    [
        summarise_draws(
            idata["estimands"][estimand],
            config["summary"]["ci_prob"],
            config["summary"]["rope_wai"],
            labels={"aim": "a", "estimand": estimand, "rater": rater},
            prior=idata["prior_estimands"][estimand],
        )
        for estimand in ("marginal_mean", "arm_difference", "change_difference")
    ],
    ignore_index=True,
)
detail.insert(0, "model", name)
detail.to_csv(smk.output.estimands, index=False)

sensitivity = prior_sensitivity(
    idata,
    idata["estimands"].to_dataset()[["arm_difference", "change_difference"]],
    f"growth_{rater}_{name}",
    config["diagnostics"]["sensitivity_threshold"],
)
mark_unidentified(sensitivity, detail, config["diagnostics"]["min_contraction"]).to_csv(
    smk.output.sensitivity, index=False
)

diagnostics = convergence_table(idata, detail, f"growth_{rater}_{name}", config["diagnostics"])
diagnostics.to_csv(smk.output.diagnostics, index=False)
failed = announce(diagnostics, log)

title = f"{rater.capitalize()} rating, model '{name}'"
ceiling = ceiling_check(idata, spec, upper, config["summary"]["ci_prob"])
ceiling.insert(0, "model", name)
ceiling.insert(0, "rater", rater)
ceiling.to_csv(smk.output.ceiling, index=False)
spread = sd_check(idata, spec, upper, config["summary"]["ci_prob"])
spread.insert(0, "model", name)
spread.insert(0, "rater", rater)
spread.to_csv(smk.output.sd_check, index=False)
observed, groups = observed_and_groups(idata)
ppc_density_figure(observed, replicate_scores(idata, spec, upper), groups, title).savefig(
    smk.output.ppc, dpi=110, bbox_inches="tight"
)
ceiling_check_figure(ceiling, f"Ceiling check: {title}").savefig(
    smk.output.ceiling_figure, dpi=110, bbox_inches="tight"
)
prior_scores = idata["prior_predictive"][list(idata["prior_predictive"].data_vars)[0]].to_numpy()
prior_predictive_figure(prior_scores, observed, f"Prior predictive check: {title}").savefig(
    smk.output.prior_check, dpi=110, bbox_inches="tight"
)
if failed and config["diagnostics"]["strict"]:
    log.error("diagnostics.strict is true: stopping because convergence checks failed")
    sys.exit(1)
