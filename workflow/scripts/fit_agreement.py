"""Snakemake adapter: fit the bivariate agreement model (alliance.agreement); save the fit.

The NetCDF file holds the posterior, the log-likelihood and log prior, prior draws, posterior
predictive draws of both ratings, and the agreement quantities from the posterior (group
``estimands``) and from the prior (``prior_estimands``).
"""

from alliance.runtime import start_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = start_job(smk)

import pandas as pd

from alliance.agreement import (
    QUANTITY_PARAMETERS,
    agreement_data,
    agreement_estimands,
    build_agreement_model,
)
from alliance.design import RATERS
from alliance.sampling import fit_with_safety_net, sample_pymc_prior, save_fit
from alliance.seeds import job_seeds

seed = job_seeds(smk.params.seed, smk.rule, smk.wildcards)
months = list(smk.params.instrument["months"])
pairs = agreement_data(pd.read_csv(smk.input.alliance), smk.params.instrument)
model = build_agreement_model(pairs, smk.params.priors)
log.info(
    "fitting the bivariate agreement model: %d assessments, %d with both ratings",
    len(pairs),
    int(pairs[list(RATERS)].notna().all(axis=1).sum()),
)
idata = fit_with_safety_net(
    model,
    lambda fit: agreement_estimands(fit["posterior"].to_dataset(), months),
    # The prior check shows the agreement quantities the priors imply: only their parameters
    # are drawn.
    sample_pymc_prior(
        model, smk.params.prior_draws, seed("prior"), var_names=list(QUANTITY_PARAMETERS)
    ),
    smk.params.sampling,
    smk.params.convergence,
    seed,
    "agreement_bivariate",
    log,
    cores=smk.threads,
    predicted=[f"{rater}_rating" for rater in RATERS],
)
labels = {"aim": "b", "model": "bivariate", "label": "agreement_bivariate"}
save_fit(idata, smk.output.fit, labels)
log.info("saved %s", smk.output.fit)
