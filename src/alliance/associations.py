"""Aim (c): what goes with alliance in the digital arm (PyMC, with covariate imputation).

For each rater, the WAI total of digital-arm patient i at month t is

    wai[i,t] = intercept + month_effect[t] + sum_k beta[k] * x[k,i,t] * defined[k,i,t]
               + no_communication * [amount is 0] + u[i] + v[therapist(i)] + e[i,t]

with x the predictors measured at the same assessment, standardized over the assessments
(comm_amount on the log(1 + amount) scale), so each beta is the change in WAI points per 1 SD of
its predictor, pooled over within- and between-patient variation (the ``association`` estimand of
the data contract). Patient intercepts u and therapist intercepts v are non-centred: the
therapist effect absorbs a therapist's response style, which the therapist's own platform
satisfaction shares with his or her alliance ratings.

The predictors have a two-level joint model, which imputes a missing value from the patient's
values at the other months, the month means, the other predictors and the alliance it goes with:

    (age[i], b[i,1..K]) ~ MVN(0, Sigma_between)       patient level: age and the patients' means
    x[.,i,t] = m[t] + b[i] + w[i,t],  w ~ MVN(0, Sigma_within)   assessment level

with LKJ priors on both correlations. Each multivariate normal is written as a chain of
univariate normals (its Cholesky factorisation), so that every cell, observed or missing, has
exactly one density: the joint model's. A missing cell is a free parameter of that univariate
normal (PyMC's imputation of a masked observation), with no prior of its own.

``comm_async_share`` (the share of asynchronous messages) is undefined, not missing, when no
communication took place: it is the last predictor of the chain, so leaving those cells out
gives the other predictors' exact marginal density; in the outcome the share's term is switched
off there and a ``no_communication`` coefficient takes its place. A missing amount is imputed
as a positive amount with a defined (imputed) share.

With ``decomposition=True`` the outcome uses the same predictor model but separates each
time-varying predictor into its latent patient mean b (``beta_between``) and the assessment's
deviation from it and from the month mean, w (``beta_within``); age has a between-patient
coefficient only (latent-mean centring: Luedtke et al. 2008).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr

from alliance.correlation_priors import lkj_cholesky_corr
from alliance.design import (
    ASSOCIATION_TERMS,
    CONDITIONAL_TERMS,
    PATIENT_LEVEL_TERMS,
    TERM_COLUMNS,
    TREATMENT_ARM,
)


def association_data(
    alliance: pd.DataFrame, covariates: pd.DataFrame, rater: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every scored digital-arm assessment of ``rater`` with its raw predictors (may be missing).

    ``no_communication`` marks assessments whose observed communication amount is 0 (their
    asynchronous share is undefined). Returns the data and a table of each predictor's mean and
    SD used for standardizing.
    """
    scored = alliance[
        (alliance["rater"] == rater) & alliance["assessed"] & (alliance["arm"] == TREATMENT_ARM)
    ][["patient_id", "therapist_id", "month", "wai_total", "age"]]
    columns = {term: TERM_COLUMNS.get(term, term) for term in ASSOCIATION_TERMS[rater]}
    merged = scored.merge(
        covariates[["patient_id", "month", *[c for c in columns.values() if c != "age"]]],
        on=["patient_id", "month"],
        how="left",
    )
    data = merged[["patient_id", "therapist_id", "month", "wai_total"]].copy()
    for term, column in columns.items():
        data[term] = merged[column].astype(float)
    data["no_communication"] = (merged["comm_amount_log"] == 0).to_numpy()
    for term in CONDITIONAL_TERMS:
        if term in data:
            data.loc[data["no_communication"], term] = np.nan
    scale = pd.DataFrame(
        {"mean": data[list(columns)].mean(), "sd": data[list(columns)].std()}
    ).rename_axis("term")
    return data.reset_index(drop=True), scale


def undefined_cells(data: pd.DataFrame, term: str) -> np.ndarray:
    """Rows where ``term`` does not exist (rather than is missing)."""
    if term in CONDITIONAL_TERMS:
        return data["no_communication"].to_numpy(dtype=bool)
    return np.zeros(len(data), dtype=bool)


def missing_summary(data: pd.DataFrame, rater: str) -> pd.DataFrame:
    """How many assessments lack each predictor (imputed), how many have it undefined, and how
    many a complete-case analysis drops."""
    terms = list(ASSOCIATION_TERMS[rater])
    rows = []
    missing_any = np.zeros(len(data), dtype=bool)
    for term in terms:
        undefined = undefined_cells(data, term)
        missing = data[term].isna().to_numpy() & ~undefined
        missing_any |= missing
        rows.append(
            {
                "rater": rater,
                "term": term,
                "n_assessments": len(data),
                "n_missing": int(missing.sum()),
                "n_undefined": int(undefined.sum()),
            }
        )
    rows.append(
        {
            "rater": rater,
            "term": "any (complete-case analysis would drop)",
            "n_assessments": len(data),
            "n_missing": int(missing_any.sum()),
            "n_undefined": 0,
        }
    )
    return pd.DataFrame(rows)


def _observed(values: np.ndarray):
    """Observed values for a PyMC likelihood: masked where missing (PyMC imputes those)."""
    return np.ma.masked_invalid(values) if np.isnan(values).any() else values


def build_association_model(
    data: pd.DataFrame,
    scale: pd.DataFrame,
    rater: str,
    priors: Mapping,
    months: list[int],
    decomposition: bool = False,
):
    """The PyMC model for one rater (see the module docstring)."""
    import warnings

    from pymc.exceptions import ImputationWarning

    with warnings.catch_warnings():
        # Imputing masked predictor cells is the design, not a surprise.
        warnings.simplefilter("ignore", ImputationWarning)
        return _association_model(data, scale, rater, priors, months, decomposition)


def _association_model(data, scale, rater, priors, months, decomposition):
    import pymc as pm
    import pytensor.tensor as pt

    terms = list(ASSOCIATION_TERMS[rater])
    fixed = [t for t in terms if t in PATIENT_LEVEL_TERMS]
    varying = [t for t in terms if t not in PATIENT_LEVEL_TERMS]
    conditional = [t for t in varying if t in CONDITIONAL_TERMS]
    # Undefined cells are left out of the chain: only the last link may have them.
    assert conditional in ([], varying[-len(conditional) :]) and len(conditional) <= 1
    z = ((data[terms] - scale.loc[terms, "mean"]) / scale.loc[terms, "sd"]).to_numpy()
    n_rows = len(data)
    patients = pd.Index(pd.unique(data["patient_id"]))
    therapists = pd.Index(sorted(pd.unique(data["therapist_id"])))
    p_index = patients.get_indexer(data["patient_id"])
    t_index = therapists.get_indexer(data["therapist_id"])
    month_index = pd.Index(months).get_indexer(data["month"])
    first_row = pd.Series(np.arange(n_rows)).groupby(p_index).first().to_numpy()
    undefined = {t: undefined_cells(data, t) for t in terms}
    no_communication = data["no_communication"].to_numpy(dtype=float)
    eta = priors["lkj_eta"]["eta"]
    coords = {
        "term": terms,
        "between_term": [*fixed, *varying],
        "varying_term": varying,
        "month": months,
        "patient": list(patients),
        "therapist": list(therapists),
    }
    with pm.Model(coords=coords) as model:
        # Patient level: age and the patients' latent means, as a chain of conditionals.
        between_sd = pm.HalfNormal("between_sd", sigma=1.0, dims="between_term")
        between_chol = between_sd[:, None] * lkj_cholesky_corr(
            "between_corr", eta, len(fixed) + len(varying)
        )
        eps = []
        patient_values = {}
        for k, term in enumerate(fixed):
            mean = sum((between_chol[k, j] * eps[j] for j in range(k)), pt.zeros(len(patients)))
            value = pm.Normal(
                f"{term}_z",
                mu=mean,
                sigma=between_chol[k, k],
                observed=_observed(z[first_row, terms.index(term)]),
            )
            patient_values[term] = value
            eps.append((value - mean) / between_chol[k, k])
        latent = pm.Normal("between_z", 0, 1, dims=("patient", "varying_term"))
        eps.extend(latent[:, j] for j in range(len(varying)))
        b = pt.stack(
            [
                sum(between_chol[len(fixed) + k, j] * eps[j] for j in range(len(fixed) + k + 1))
                for k in range(len(varying))
            ],
            axis=1,
        )
        # Assessment level: the month means plus the patient's mean, then the chain again.
        month_mean = pm.Normal("predictor_month_mean", 0, 1, dims=("month", "varying_term"))
        within_sd = pm.HalfNormal("within_sd", sigma=1.0, dims="varying_term")
        within_chol = within_sd[:, None] * lkj_cholesky_corr("within_corr", eta, len(varying))
        centre = month_mean[month_index] + b[p_index]
        within_eps = []
        columns = {}
        for k, term in enumerate(varying):
            mean = centre[:, k] + sum(
                (within_chol[k, j] * within_eps[j] for j in range(k)), pt.zeros(n_rows)
            )
            rows = np.flatnonzero(~undefined[term])
            value = pm.Normal(
                f"{term}_z",
                mu=mean[rows],
                sigma=within_chol[k, k],
                observed=_observed(z[rows, terms.index(term)]),
            )
            full = pt.set_subtensor(pt.zeros(n_rows)[rows], value)
            columns[term] = full
            within_eps.append((full - mean) / within_chol[k, k])
        for term in fixed:
            columns[term] = patient_values[term][p_index]
        defined = {t: (~undefined[t]).astype(float) for t in terms}

        # The outcome.
        intercept = pm.Normal(
            "intercept", mu=priors["intercept"]["mu"], sigma=priors["intercept"]["sigma"]
        )
        month_raw = pm.Normal("month_raw", 0, priors["month"]["sigma"], shape=len(months) - 1)
        month_effect = pm.Deterministic(
            "month_effect", pt.concatenate([pt.zeros(1), month_raw]), dims="month"
        )
        beta_sigma = priors["beta"]["sigma"]
        if decomposition:
            beta_between = pm.Normal("beta_between", 0, beta_sigma, dims="between_term")
            beta_within = pm.Normal("beta_within", 0, beta_sigma, dims="varying_term")
            between_part = [columns[t] * beta_between[k] for k, t in enumerate(fixed)]
            predictors = sum(between_part) + sum(
                defined[t]
                * (
                    beta_between[len(fixed) + k] * b[p_index, k]
                    + beta_within[k] * (columns[t] - centre[:, k])
                )
                for k, t in enumerate(varying)
            )
        else:
            beta = pm.Normal("beta", 0, beta_sigma, dims="term")
            predictors = sum(defined[t] * columns[t] * beta[k] for k, t in enumerate(terms))
        if conditional and no_communication.any():
            predictors += no_communication * pm.Normal("no_communication", 0, beta_sigma)
        patient_sd = pm.HalfNormal("patient_sd", sigma=priors["patient_sd"]["sd"])
        patient_z = pm.Normal("patient_z", 0, 1, dims="patient")
        therapist_sd = pm.HalfNormal("therapist_sd", sigma=priors["therapist_sd"]["sd"])
        therapist_z = pm.Normal("therapist_z", 0, 1, dims="therapist")
        sigma = pm.HalfNormal("sigma", sigma=priors["sigma"]["sd"])
        mu = (
            intercept
            + month_effect[month_index]
            + predictors
            + patient_z[p_index] * patient_sd
            + therapist_z[t_index] * therapist_sd
        )
        pm.Normal("wai", mu=mu, sigma=sigma, observed=data["wai_total"].to_numpy())
    return model


#: The coefficients of each model and the estimands they are reported as.
COEFFICIENTS = {
    "beta": "association",
    "beta_between": "association_between",
    "beta_within": "association_within",
    "no_communication": "no_communication",
}


def association_estimands(draws: xr.Dataset) -> xr.Dataset:
    """The reported coefficients of an association model (posterior or prior draws), named as
    their estimand rows: ``association`` (pooled model, per 1 SD of the
    predictor, the contract's estimand), ``association_between`` (per 1 SD of the patient's
    latent mean), ``association_within`` (per 1 SD of an assessment's deviation from the
    patient's mean and the month mean) and, where some assessments had no communication,
    ``no_communication`` (their difference from an assessment with an average amount and share).
    The between and within coefficients keep their own term dimensions (``between_term``,
    ``varying_term``: age has no within coefficient); their rows label both ``term``.
    """
    return xr.Dataset(
        {estimand: draws[name] for name, estimand in COEFFICIENTS.items() if name in draws}
    )


def prior_variables(model) -> list[str]:
    """What a prior check draws of an association model: the outcome and the coefficients."""
    return ["wai", *(name for name in COEFFICIENTS if name in model.named_vars)]


def collinearity_table(data: pd.DataFrame, estimands: xr.Dataset, rater: str) -> pd.DataFrame:
    """Per pair of predictors: their observed correlation (assessments where both are observed)
    and the posterior correlation of their coefficients (how far the coefficients trade off).

    The coefficients are the model's first estimand with terms: the pooled ``association`` or,
    for the within/between model, ``association_between`` (which covers every predictor).
    """
    from alliance.posterior_summary import as_terms

    coefficients = next(
        as_terms(estimands[n]) for n in estimands.data_vars if "term" in as_terms(estimands[n]).dims
    )
    terms = [str(t) for t in coefficients["term"].values]
    flat = coefficients.stack(sample=("chain", "draw"))
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
                    "coefficient_correlation": float(
                        np.corrcoef(flat.sel(term=first).values, flat.sel(term=second).values)[0, 1]
                    ),
                }
            )
    return pd.DataFrame(rows)


def with_predictor_scale(rows: pd.DataFrame, scales: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Estimand rows with ``predictor_mean`` and ``predictor_sd``: the mean and SD (on the
    analysis scale) of each row's predictor for its rater, so that a coefficient per 1 SD can be
    read in the predictor's units (empty for rows without a term)."""
    scale = pd.concat(
        {rater: table for rater, table in scales.items()}, names=["rater"]
    ).reset_index()
    scale = scale.rename(columns={"mean": "predictor_mean", "sd": "predictor_sd"})
    return rows.merge(scale, on=["rater", "term"], how="left")
