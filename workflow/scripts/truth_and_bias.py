"""Snakemake adapter: the truth-and-bias model of the therapist's view (aim b).

Fits the Bambi model of the therapist's rating on the patient's (both centred on the patients'
mean of each arm and month) by arm and month, saves the fit, and writes the directional bias and
tracking summaries, their diagnostics and a forest figure.
"""

from alliance.runtime import isolate_caches, job_logger

smk = snakemake  # noqa: F821 (injected by Snakemake)
isolate_caches(".", "truth_and_bias")
log = job_logger(smk.log[0], "truth_and_bias")

import sys

import pandas as pd
import xarray as xr

from alliance.agreement import (
    agreement_data,
    build_truth_and_bias_model,
    truth_and_bias_data,
    truth_and_bias_draws,
)
from alliance.diagnostics import announce, convergence_table, fit_checks
from alliance.figures import forest_figure
from alliance.posterior_summary import summarise_draws
from alliance.sampling import (
    fit_bambi,
    prior_as_posterior,
    sample_bambi_prior,
    sample_until_converged,
    save_fit,
)
from alliance.seeds import derive_seed

config = smk.config
pairs = agreement_data(pd.read_csv(smk.input.alliance), config["instrument"])
data = truth_and_bias_data(pairs)
model = build_truth_and_bias_model(data, config["agreement"]["priors"])
log.info("fitting the truth-and-bias model on %d complete pairs: %s", len(data), model)


def sample(sampling, attempt):
    extension = (attempt,) if attempt else ()
    return fit_bambi(
        model,
        sampling,
        derive_seed(config["seed"], "truth_and_bias", *extension),
        cores=smk.threads,
        log=log,
    )


def checks(fit):
    quantities = xr.Dataset(truth_and_bias_draws(fit))
    return fit_checks(fit, quantities, "truth_and_bias", config["diagnostics"])


idata = sample_until_converged(sample, checks, config["sampling"], log)
save_fit(idata, smk.output.fit)

draws = truth_and_bias_draws(idata)
# The same quantities from the priors alone (prior-to-posterior contraction).
prior = sample_bambi_prior(
    model,
    config["predictive"]["prior_draws"],
    derive_seed(config["seed"], "truth_and_bias", "prior"),
)
prior_draws = truth_and_bias_draws(prior_as_posterior(prior))
summary = config["summary"]
detail = pd.concat(
    [
        summarise_draws(
            draws["directional_bias"],
            summary["ci_prob"],
            summary["rope_wai"],
            labels={"aim": "b", "estimand": "directional_bias"},
            prior=prior_draws["directional_bias"],
        ),
        summarise_draws(
            draws["tracking"],
            summary["ci_prob"],
            summary["rope_correlation"],
            labels={"aim": "b", "estimand": "tracking"},
            prior=prior_draws["tracking"],
        ),
    ],
    ignore_index=True,
)
detail.to_csv(smk.output.table, index=False)
diagnostics = convergence_table(idata, detail, "truth_and_bias", config["diagnostics"])
diagnostics.to_csv(smk.output.diagnostics, index=False)
failed = announce(diagnostics, log)
detail["label"] = (
    detail["estimand"].str.replace("_", " ")
    + ": "
    + detail["arm"]
    + ", month "
    + detail["month"].astype(str)
)
forest_figure(
    detail,
    "label",
    "Therapist's view: directional bias (therapist minus patient, WAI points) and tracking "
    "(slope on patient's rating)",
).savefig(smk.output.figure, dpi=120, bbox_inches="tight")
if failed and config["diagnostics"]["strict"]:
    log.error("diagnostics.strict is true: stopping because convergence checks failed")
    sys.exit(1)
