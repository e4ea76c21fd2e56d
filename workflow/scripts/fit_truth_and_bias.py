"""Snakemake adapter: fit the truth-and-bias model of the therapist's rating
(alliance.model_fits); save the fit.

The NetCDF file holds the posterior, the log-likelihood and log prior, prior and posterior
predictive draws, the observed (centred) ratings with each one's arm and month, and the
directional bias and tracking per arm and month from the posterior (group ``estimands``) and from
the prior (``prior_estimands``).
"""

from alliance.runtime import start_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = start_job(smk)

import pandas as pd

from alliance.model_fits import fit_truth_and_bias_model
from alliance.sampling import save_fit
from alliance.seeds import job_seeds

idata, labels = fit_truth_and_bias_model(
    pd.read_csv(smk.input.alliance),
    smk.params,
    job_seeds(smk.params.seed, smk.rule, smk.wildcards),
    log,
    cores=smk.threads,
)
save_fit(idata, smk.output.fit, labels)
log.info("saved %s", smk.output.fit)
