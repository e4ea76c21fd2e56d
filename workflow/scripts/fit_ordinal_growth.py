"""Snakemake adapter: fit the item-level ordinal growth model of one rater
(alliance.model_fits.fit_ordinal_growth_model); save the fit."""

from alliance.runtime import start_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = start_job(smk)

import pandas as pd

from alliance.model_fits import fit_ordinal_growth_model
from alliance.sampling import save_fit
from alliance.seeds import job_seeds

idata, labels = fit_ordinal_growth_model(
    pd.read_csv(smk.input.wai_items),
    smk.wildcards.rater,
    smk.params,
    job_seeds(smk.params.seed, smk.rule, smk.wildcards),
    log,
    cores=smk.threads,
)
save_fit(idata, smk.output.fit, labels)
log.info("saved %s", smk.output.fit)
