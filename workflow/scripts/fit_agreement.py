"""Snakemake adapter: fit the bivariate agreement model; save draws and agreement quantities.

The NetCDF file holds the posterior, prior draws, posterior predictive draws of the complete
pairs, and the agreement quantities from the posterior (group ``estimands``) and from the prior
(group ``prior_estimands``).
"""

from alliance.runtime import isolate_caches, job_logger

smk = snakemake  # noqa: F821 (injected by Snakemake)
isolate_caches(".", "fit_agreement")
log = job_logger(smk.log[0], "fit_agreement")

import pandas as pd
import xarray as xr

from alliance.agreement import (
    QUANTITY_PARAMETERS,
    agreement_data,
    agreement_quantities,
    build_agreement_model,
)
from alliance.diagnostics import fit_checks
from alliance.sampling import (
    model_sampling,
    posterior_predictive,
    sample_pymc,
    sample_pymc_prior,
    sample_until_converged,
    save_fit,
)
from alliance.seeds import derive_seed
from alliance.sensitivity import add_log_prior

config = smk.config
months = list(config["instrument"]["months"])
pairs = agreement_data(pd.read_csv(smk.input.alliance), config["instrument"])
model = build_agreement_model(pairs, config["agreement"]["priors"])
log.info(
    "fitting the bivariate agreement model: %d assessments, %d with both ratings",
    len(pairs),
    int(pairs[["patient", "therapist"]].notna().all(axis=1).sum()),
)
seed = config["seed"]
# The prior check shows the agreement quantities the priors imply: only their parameters are drawn.
prior = sample_pymc_prior(
    model,
    config["predictive"]["prior_draws"],
    derive_seed(seed, "agreement", "prior"),
    var_names=list(QUANTITY_PARAMETERS),
)


def sample(sampling, attempt):
    extension = (attempt,) if attempt else ()
    return sample_pymc(
        model,
        sampling,
        derive_seed(seed, "agreement", "fit", *extension),
        log_likelihood=True,
        cores=smk.threads,
        log=log,
    )


def checks(fit):
    quantities = xr.Dataset(agreement_quantities(fit["posterior"].to_dataset(), months))
    return fit_checks(fit, quantities, "agreement", config["diagnostics"])


idata = sample_until_converged(sample, checks, model_sampling(config, "agreement"), log)
add_log_prior(idata, model)
idata["posterior_predictive"] = posterior_predictive(
    model,
    idata["posterior"].to_dataset(),
    derive_seed(seed, "agreement", "ppc"),
    var_names=["patient_rating", "therapist_rating"],
)
idata["prior"] = prior["prior"]
idata["estimands"] = xr.Dataset(agreement_quantities(idata["posterior"].to_dataset(), months))
prior_draws = prior["prior"].to_dataset()
idata["prior_estimands"] = xr.Dataset(agreement_quantities(prior_draws, months))
save_fit(idata, smk.output.fit)
log.info("saved %s", smk.output.fit)
