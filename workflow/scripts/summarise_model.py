"""Snakemake adapter: the estimand rows of one fitted model (any family), with the configured
interval mass and ROPEs (alliance.posterior_summary.summarise_fit)."""

from alliance.runtime import start_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = start_job(smk)

from alliance.posterior_summary import summarise_fit
from alliance.sampling import load_fit

idata = load_fit(smk.input.fit, groups=["estimands", "prior_estimands"])
detail = summarise_fit(idata, smk.params.summary)
detail.to_csv(smk.output.estimands, index=False)
log.info("%d estimand rows of %s", len(detail), smk.input.fit)
