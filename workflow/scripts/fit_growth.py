"""Snakemake adapter: fit one growth model for one rater (alliance.growth); save the fit.

The NetCDF file holds the posterior, the log-likelihood and log prior, prior and posterior
predictive draws, the observed data with each observation's arm and month, and the estimand
draws from the posterior (group ``estimands``) and from the prior (``prior_estimands``).
"""

from alliance.runtime import start_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = start_job(smk)

import pandas as pd

from alliance.growth import attach_groups, build_growth_model, growth_data, growth_estimands
from alliance.sampling import fit_with_safety_net, sample_bambi_prior, save_fit
from alliance.seeds import job_seeds

rater, name = smk.wildcards.rater, smk.wildcards.model
spec, instrument = smk.params.spec, smk.params.instrument
seed = job_seeds(smk.params.seed, smk.rule, smk.wildcards)
data = growth_data(pd.read_csv(smk.input.alliance), rater, instrument)
model = build_growth_model(data, spec, smk.params.priors)
log.info("fitting %s for the %s rating (%d assessments): %s", name, rater, len(data), model)
label = f"growth_{rater}_{name}"
idata = fit_with_safety_net(
    model,
    lambda fit: growth_estimands(model, fit, spec, instrument),
    sample_bambi_prior(model, smk.params.prior_draws, seed("prior")),
    smk.params.sampling,
    smk.params.convergence,
    seed,
    label,
    log,
    cores=smk.threads,
)
attach_groups(idata, data)
labels = {"aim": "a", "model": name, "rater": rater, "label": label, "formula": spec["formula"]}
save_fit(idata, smk.output.fit, labels)
log.info("saved %s", smk.output.fit)
