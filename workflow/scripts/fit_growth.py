"""Snakemake adapter: fit one growth model for one rater; save draws, checks and estimands.

The NetCDF file holds the posterior, the log-likelihood, prior and posterior predictive draws,
the observed data and the estimand draws from the posterior (group ``estimands``) and from the
prior (``prior_estimands``), so later rules need no refit.
"""

from alliance.runtime import isolate_caches, job_logger

smk = snakemake  # noqa: F821 (injected by Snakemake)
rater, name = smk.wildcards.rater, smk.wildcards.model
job = f"fit_growth_{rater}_{name}"
isolate_caches(".", job)
log = job_logger(smk.log[0], job)

import pandas as pd
import xarray as xr

from alliance.diagnostics import fit_checks
from alliance.growth import (
    attach_groups,
    build_growth_model,
    growth_contrasts,
    growth_data,
    marginal_means,
)
from alliance.sampling import (
    fit_bambi,
    model_sampling,
    prior_as_posterior,
    sample_bambi_prior,
    sample_until_converged,
    save_fit,
)
from alliance.seeds import derive_seed
from alliance.sensitivity import add_log_prior

config = smk.config
spec = config["growth"]["models"][name]
data = growth_data(pd.read_csv(smk.input.alliance), rater, config["instrument"])
model = build_growth_model(data, spec, config["growth"]["priors"])
log.info("fitting %s for the %s rating (%d assessments): %s", name, rater, len(data), model)

prior = sample_bambi_prior(
    model, config["predictive"]["prior_draws"], derive_seed(config["seed"], job, "prior")
)


def contrasts_of(fit):
    return growth_contrasts(marginal_means(model, fit, spec, config["instrument"]))


def sample(sampling, attempt):
    extension = (attempt,) if attempt else ()
    return fit_bambi(
        model,
        sampling,
        derive_seed(config["seed"], job, "fit", *extension),
        cores=smk.threads,
        log=log,
        predictive_seed=derive_seed(config["seed"], job, "ppc", *extension),
    )


idata = sample_until_converged(
    sample,
    lambda fit: fit_checks(fit, xr.Dataset(contrasts_of(fit)), job, config["diagnostics"]),
    model_sampling(config, "growth"),
    log,
)
add_log_prior(idata, model.backend.model)
contrasts = contrasts_of(idata)
idata["prior"] = prior["prior"]
idata["prior_predictive"] = prior["prior_predictive"]
idata["estimands"] = xr.Dataset(contrasts)
# The estimands the priors alone imply (prior-to-posterior contraction, prior check).
idata["prior_estimands"] = xr.Dataset(contrasts_of(prior_as_posterior(prior)))
attach_groups(idata, data)
idata.attrs.update({"model": name, "rater": rater, "formula": spec["formula"]})
save_fit(idata, smk.output.fit)
log.info("saved %s", smk.output.fit)
