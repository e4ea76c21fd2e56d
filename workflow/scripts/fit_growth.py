"""Snakemake adapter: fit one growth model for both raters (alliance.model_fits), compiled once;
save each rater's fit.

Each NetCDF file holds the posterior, the log-likelihood and log prior, prior and posterior
predictive draws, the observed data with each observation's arm and month, and the estimand
draws from the posterior (group ``estimands``) and from the prior (``prior_estimands``).
"""

from alliance.runtime import start_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = start_job(smk)

import pandas as pd

from alliance.model_fits import fit_growth_models
from alliance.sampling import save_fit
from alliance.seeds import job_seeds

model = smk.wildcards.model
fits = fit_growth_models(
    pd.read_csv(smk.input.alliance),
    model,
    smk.params.spec,
    smk.params,
    # Each rater's seeds as when each rater had its own job.
    {
        rater: job_seeds(smk.params.seed, smk.rule, {"rater": rater, "model": model})
        for rater in smk.params.raters
    },
    log,
)
for rater, (idata, labels) in fits.items():
    save_fit(idata, smk.output[f"fit_{rater}"], labels)
    log.info("saved %s", smk.output[f"fit_{rater}"])
