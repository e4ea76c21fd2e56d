"""Aim (c): what goes with alliance in the digital arm (PyMC, with covariate imputation).

For each rater, the WAI total of digital-arm patient i at month t is

    wai[i,t] = intercept + month_effect[t] + sum_k beta[k] * z[k,i,t] + u[i] + e[i,t]

with z the predictors measured at the same assessment, standardized (comm_amount on the
log(1 + amount) scale), so each beta is the change in WAI points per 1 SD of its predictor. The
predictors are modelled jointly as multivariate normal (LKJ prior on their correlation), so a
missing SUS or satisfaction value is imputed from the others and from the alliance it goes with,
and no assessment is dropped.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from alliance.correlation_priors import lkj_cholesky_corr, mvn_logp_from_cholesky

TERMS = {
    "patient": ("age", "sus", "vas_app", "comm_amount", "comm_async_share"),
    "therapist": ("age", "vas_platform", "comm_amount", "comm_async_share"),
}
#: The analysis-table column behind each term (comm_amount enters on the log scale).
TERM_COLUMNS = {"comm_amount": "comm_amount_log"}


def association_data(
    alliance: pd.DataFrame, covariates: pd.DataFrame, rater: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every scored digital-arm assessment of ``rater`` with its raw predictors (may be missing).

    Returns the data and a table of each predictor's mean and SD used for standardizing.
    """
    scored = alliance[
        (alliance["rater"] == rater) & alliance["assessed"] & (alliance["arm"] == "digital")
    ][["patient_id", "month", "wai_total", "age"]]
    columns = {term: TERM_COLUMNS.get(term, term) for term in TERMS[rater]}
    merged = scored.merge(
        covariates[["patient_id", "month", *[c for c in columns.values() if c != "age"]]],
        on=["patient_id", "month"],
        how="left",
    )
    data = merged[["patient_id", "month", "wai_total"]].copy()
    for term, column in columns.items():
        data[term] = merged[column].astype(float)
    scale = pd.DataFrame(
        {"mean": data[list(columns)].mean(), "sd": data[list(columns)].std()}
    ).rename_axis("term")
    return data.reset_index(drop=True), scale


def missing_summary(data: pd.DataFrame, rater: str) -> pd.DataFrame:
    """How many assessments lack each predictor, and how many a complete-case analysis drops."""
    terms = list(TERMS[rater])
    rows = [
        {
            "rater": rater,
            "term": term,
            "n_assessments": len(data),
            "n_missing": int(data[term].isna().sum()),
        }
        for term in terms
    ]
    rows.append(
        {
            "rater": rater,
            "term": "any (complete-case analysis would drop)",
            "n_assessments": len(data),
            "n_missing": int(data[terms].isna().any(axis=1).sum()),
        }
    )
    return pd.DataFrame(rows)


def build_association_model(
    data: pd.DataFrame, scale: pd.DataFrame, rater: str, priors: Mapping, months: list[int]
):
    """The PyMC model for one rater; missing predictor values are free parameters."""
    import pymc as pm
    import pytensor.tensor as pt

    terms = list(TERMS[rater])
    z = ((data[terms] - scale.loc[terms, "mean"]) / scale.loc[terms, "sd"]).to_numpy()
    missing = np.isnan(z)
    patients = pd.Index(pd.unique(data["patient_id"]))
    p_index = patients.get_indexer(data["patient_id"])
    month_index = pd.Index(months).get_indexer(data["month"])
    coords = {"term": terms, "term_bis": terms, "month": months, "patient": list(patients)}
    with pm.Model(coords=coords) as model:
        filled = pt.as_tensor(np.nan_to_num(z))
        if missing.any():  # complete predictors (common in real data) need no imputation
            imputed = pm.Normal("imputed", 0, 1, shape=int(missing.sum()))
            # Imputed values fill the missing cells (through the flat index: one-dimensional
            # integer indexing compiles far faster in the numba backend than two-dimensional).
            flat = pt.set_subtensor(filled.ravel()[np.flatnonzero(missing)], imputed)
            filled = flat.reshape(z.shape)
        corr_chol = lkj_cholesky_corr("predictor_corr", priors["lkj_eta"]["eta"], len(terms))
        predictor_sd = pm.HalfNormal("predictor_sd", sigma=1.0, dims="term")
        chol = predictor_sd[:, None] * corr_chol
        pm.Deterministic("predictor_corr", corr_chol @ corr_chol.T, dims=("term", "term_bis"))
        pm.Potential("predictor_model", mvn_logp_from_cholesky(filled, chol, len(terms)))
        intercept = pm.Normal(
            "intercept", mu=priors["intercept"]["mu"], sigma=priors["intercept"]["sigma"]
        )
        month_raw = pm.Normal("month_raw", 0, priors["month"]["sigma"], shape=len(months) - 1)
        month_effect = pm.Deterministic(
            "month_effect", pt.concatenate([pt.zeros(1), month_raw]), dims="month"
        )
        beta = pm.Normal("beta", 0, priors["beta"]["sigma"], dims="term")
        patient_sd = pm.HalfNormal("patient_sd", sigma=priors["patient_sd"]["sd"])
        patient_z = pm.Normal("patient_z", 0, 1, dims="patient")
        sigma = pm.HalfNormal("sigma", sigma=priors["sigma"]["sd"])
        mu = intercept + month_effect[month_index] + filled @ beta + patient_z[p_index] * patient_sd
        pm.Normal("wai", mu=mu, sigma=sigma, observed=data["wai_total"].to_numpy())
    return model


def coefficient_correlation(posterior, first: str, second: str) -> float:
    """Posterior correlation of two coefficients (how far they trade off against each other)."""
    a = posterior["beta"].sel(term=first).values.ravel()
    b = posterior["beta"].sel(term=second).values.ravel()
    return float(np.corrcoef(a, b)[0, 1])
