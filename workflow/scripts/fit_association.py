"""Snakemake adapter: fit one aim (c) association model (alliance.associations) for one rater;
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

from alliance.associations import (
    association_data,
    association_estimands,
    build_association_model,
    missing_summary,
    prior_variables,
)
from alliance.sampling import fit_with_safety_net, sample_pymc_prior, save_fit
from alliance.seeds import job_seeds

rater, variant = smk.wildcards.rater, smk.wildcards.variant

seed = job_seeds(smk.params.seed, smk.rule, smk.wildcards)

data, scale = association_data(
    pd.read_csv(smk.input.alliance), pd.read_csv(smk.input.covariates), rater
)
log.info(
    "%s rating, digital arm, %s model: %d assessments; missing predictors:\n%s",
    rater,
    variant,
    len(data),
    missing_summary(data, rater).to_string(index=False),
)
model = build_association_model(
    data,
    scale,
    rater,
    smk.params.priors,
    list(smk.params.instrument["months"]),
    decomposition=variant == "within_between",
)
idata = fit_with_safety_net(
    model,
    lambda fit: association_estimands(fit["posterior"].to_dataset()),
    # Only the outcome (for the prior predictive check; the predictors it rests on are drawn from
    # their prior too) and the coefficients (prior-to-posterior contraction) are drawn.
    sample_pymc_prior(
        model, smk.params.prior_draws, seed("prior"), var_names=prior_variables(model)
    ),
    smk.params.sampling,
    smk.params.convergence,
    seed,
    f"association_{rater}_{variant}",
    log,
    cores=smk.threads,
    predicted=["wai"],
)
labels = {"aim": "c", "model": variant, "rater": rater, "label": f"association_{rater}_{variant}"}
save_fit(idata, smk.output.fit, labels)
log.info("saved %s", smk.output.fit)
