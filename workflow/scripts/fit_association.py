"""Snakemake adapter: aim (c) association models for one rater; fit, checks, tables, figures.

Fits the pooled model (the contract's ``association`` rows) and the within/between-patient
decomposition of the same predictors (alliance.associations).
"""

from alliance.runtime import isolate_caches, job_logger

smk = snakemake  # noqa: F821 (injected by Snakemake)
rater = smk.wildcards.rater
job = f"association_{rater}"
isolate_caches(".", job)
log = job_logger(smk.log[0], job)

import sys

import numpy as np
import pandas as pd
import xarray as xr

from alliance.associations import (
    association_data,
    build_association_model,
    coefficient_correlation,
    missing_summary,
    within_between_table,
)
from alliance.diagnostics import announce, convergence_table, fit_checks
from alliance.figures import ppc_density_figure, prior_predictive_figure
from alliance.posterior_summary import summarise_draws
from alliance.sampling import (
    posterior_predictive,
    sample_pymc,
    sample_pymc_prior,
    sample_until_converged,
    save_fit,
)
from alliance.seeds import derive_seed
from alliance.sensitivity import add_log_prior, mark_unidentified, prior_sensitivity

config = smk.config
months = list(config["instrument"]["months"])
data, scale = association_data(
    pd.read_csv(smk.input.alliance), pd.read_csv(smk.input.covariates), rater
)
missing = missing_summary(data, rater)
missing.to_csv(smk.output.missing, index=False)
log.info(
    "%s rating, digital arm: %d assessments; missing predictors:\n%s",
    rater,
    len(data),
    missing.to_string(index=False),
)
model = build_association_model(data, scale, rater, config["association"]["priors"], months)
within_between_model = build_association_model(
    data, scale, rater, config["association"]["priors"], months, decomposition=True
)
seed = config["seed"]
# Only the outcome (for the prior predictive check; the predictors it rests on are drawn from
# their prior too) and the coefficients (prior-to-posterior contraction) are returned.
prior = sample_pymc_prior(
    model,
    config["predictive"]["prior_draws"],
    derive_seed(seed, job, "prior"),
    var_names=["wai", "beta"],
)
within_between_prior = sample_pymc_prior(
    within_between_model,
    config["predictive"]["prior_draws"],
    derive_seed(seed, job, "within_between", "prior"),
    var_names=["beta_between", "beta_within"],
)


def fit(pymc_model, label):
    """Sample one of the job's models (through the safety net) and add its log prior."""

    def sample(sampling, attempt):
        extension = (attempt,) if attempt else ()
        return sample_pymc(
            pymc_model,
            sampling,
            derive_seed(seed, label, "fit", *extension),
            log_likelihood=True,
            cores=smk.threads,
            log=log,
        )

    def checks(candidate):
        return fit_checks(candidate, None, label, config["diagnostics"])

    fitted = sample_until_converged(sample, checks, config["sampling"], log)
    add_log_prior(fitted, pymc_model)
    return fitted


idata = fit(model, job)
idata["posterior_predictive"] = posterior_predictive(
    model, idata["posterior"].to_dataset(), derive_seed(seed, job, "ppc"), var_names=["wai"]
)
idata["prior_predictive"] = prior["prior_predictive"]
save_fit(idata, smk.output.fit)
within_between_job = f"{job}_within_between"
within_between = fit(within_between_model, within_between_job)
save_fit(within_between, smk.output.fit_within_between)

summary = config["summary"]
detail = summarise_draws(
    idata["posterior"]["beta"],
    summary["ci_prob"],
    summary["rope_wai"],
    labels={"aim": "c", "estimand": "association", "rater": rater},
    prior=prior["prior"]["beta"],
)
detail["predictor_mean"] = scale.loc[detail["term"], "mean"].to_numpy()
detail["predictor_sd"] = scale.loc[detail["term"], "sd"].to_numpy()
detail.to_csv(smk.output.estimands, index=False)
decomposition = within_between_table(
    idata["posterior"],
    within_between["posterior"],
    rater,
    summary["ci_prob"],
    summary["rope_wai"],
    priors=[prior["prior"], within_between_prior["prior"]],
)
decomposition.to_csv(smk.output.within_between, index=False)

# Each coefficient named as its estimand rows (association[age], association_within[sus], ...).
coefficients = (
    (idata, job, "beta", "association", "term"),
    (within_between, within_between_job, "beta_between", "association_between", "between_term"),
    (within_between, within_between_job, "beta_within", "association_within", "varying_term"),
)
sensitivity = pd.concat(
    [
        prior_sensitivity(
            fitted,
            xr.Dataset({estimand: fitted["posterior"][name].rename({dim: "term"})})
            if dim != "term"
            else xr.Dataset({estimand: fitted["posterior"][name]}),
            label,
            config["diagnostics"]["sensitivity_threshold"],
        )
        for fitted, label, name, estimand, dim in coefficients
    ],
    ignore_index=True,
)
mark_unidentified(sensitivity, decomposition, config["diagnostics"]["min_contraction"]).to_csv(
    smk.output.sensitivity, index=False
)

diagnostics = pd.concat(
    [
        convergence_table(idata, detail, job, config["diagnostics"]),
        convergence_table(
            within_between,
            decomposition[decomposition["model"] == "within_between"],
            within_between_job,
            config["diagnostics"],
        ),
    ],
    ignore_index=True,
)
diagnostics.to_csv(smk.output.diagnostics, index=False)
failed = announce(diagnostics, log)

# Collinearity: observed predictor correlations and posterior correlations of coefficients.
terms = list(scale.index)
rows = []
for i, first in enumerate(terms):
    for second in terms[i + 1 :]:
        both = data[[first, second]].dropna()
        rows.append(
            {
                "rater": rater,
                "first": first,
                "second": second,
                "observed_correlation": float(np.corrcoef(both[first], both[second])[0, 1]),
                "coefficient_correlation": coefficient_correlation(
                    idata["posterior"], first, second
                ),
            }
        )
pd.DataFrame(rows).to_csv(smk.output.collinearity, index=False)

observed = data["wai_total"].to_numpy()
replicated = (
    idata["posterior_predictive"]["wai"].stack(sample=("chain", "draw")).transpose("sample", ...)
).to_numpy()
groups = pd.DataFrame({"arm": "digital", "month": data["month"].to_numpy()})
title = f"Digital arm, {rater} rating: association model"
ppc_density_figure(observed, replicated, groups, title).savefig(
    smk.output.ppc, dpi=110, bbox_inches="tight"
)
prior_predictive_figure(
    prior["prior_predictive"]["wai"].to_numpy(), observed, f"Prior predictive check: {title}"
).savefig(smk.output.prior_check, dpi=110, bbox_inches="tight")
if failed and config["diagnostics"]["strict"]:
    log.error("diagnostics.strict is true: stopping because convergence checks failed")
    sys.exit(1)
