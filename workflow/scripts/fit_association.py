"""Snakemake adapter: fit one aim (c) association model for one rater (alliance.model_fits);
save the fit.

``variant`` is ``pooled`` (the contract's association rows) or ``within_between`` (the
within/between-patient decomposition of the same predictors). The NetCDF file holds the
posterior, the log-likelihood and log prior, prior and posterior predictive draws of the WAI
totals, and the coefficients from the posterior (group ``estimands``) and from the prior
(``prior_estimands``).
"""

from alliance.runtime import start_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = start_job(smk)

import pandas as pd

from alliance.model_fits import fit_association_model
from alliance.sampling import save_fit
from alliance.seeds import job_seeds

idata, labels = fit_association_model(
    pd.read_csv(smk.input.alliance),
    pd.read_csv(smk.input.covariates),
    smk.wildcards.rater,
    smk.wildcards.variant,
    smk.params,
    job_seeds(smk.params.seed, smk.rule, smk.wildcards),
    log,
    cores=smk.threads,
)
save_fit(idata, smk.output.fit, labels)
log.info("saved %s", smk.output.fit)
