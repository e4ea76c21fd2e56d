"""Snakemake adapter: fit the truth-and-bias model of the therapist's rating (alliance.agreement);
save the fit.

The NetCDF file holds the posterior, the log-likelihood and log prior, prior and posterior
predictive draws, the observed (centred) ratings with each one's arm and month, and the
directional bias and tracking per arm and month from the posterior (group ``estimands``) and from
the prior (``prior_estimands``).
"""

from alliance.runtime import start_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = start_job(smk)

import pandas as pd

from alliance.agreement import (
    agreement_data,
    build_truth_and_bias_model,
    truth_and_bias_data,
    truth_and_bias_estimands,
)
from alliance.growth import attach_groups
from alliance.sampling import fit_with_safety_net, sample_bambi_prior, save_fit
from alliance.seeds import job_seeds

seed = job_seeds(smk.params.seed, smk.rule, smk.wildcards)
data = truth_and_bias_data(agreement_data(pd.read_csv(smk.input.alliance), smk.params.instrument))
model = build_truth_and_bias_model(data, smk.params.priors)
log.info("fitting the truth-and-bias model on %d complete pairs: %s", len(data), model)
idata = fit_with_safety_net(
    model,
    truth_and_bias_estimands,
    sample_bambi_prior(model, smk.params.prior_draws, seed("prior")),
    smk.params.sampling,
    smk.params.convergence,
    seed,
    "agreement_truth_and_bias",
    log,
    cores=smk.threads,
)
attach_groups(idata, data)
labels = {"aim": "b", "model": "truth_and_bias", "label": "agreement_truth_and_bias"}
save_fit(idata, smk.output.fit, labels)
log.info("saved %s", smk.output.fit)
