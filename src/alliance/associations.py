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


def association_inputs(
    data: pd.DataFrame,
    scale: pd.DataFrame,
    rater: str,
    months: list[int],
    patients=None,
    therapists=None,
    full_capacity: bool = False,
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """The association model's data inputs from ``data`` (:func:`association_data`), and the
    number of imputation slots of each predictor (the model's structure).

    Per predictor: the positions and standardized values of its observed cells and the positions
    of its missing cells with each one's slot (a standard-normal latent value that imputes it).
    Age is a patient-level predictor (one cell per patient with an assessment); the others have
    one cell per assessment where they are defined. The effects are indexed by ``patients`` and
    ``therapists`` (default: those in ``data``).

    Slots: one per missing cell (``full_capacity`` False: the model of these data), or one per
    possible cell, patient x month (True: a model that any trial of the same patients can be
    swapped into, :mod:`alliance.refit`; unused slots keep their prior and change nothing else).
    """
    from alliance.refit import codes

    terms = list(ASSOCIATION_TERMS[rater])
    patients = list(pd.unique(data["patient_id"])) if patients is None else list(patients)
    therapists = sorted(pd.unique(data["therapist_id"])) if therapists is None else list(therapists)
    z = ((data[terms] - scale.loc[terms, "mean"]) / scale.loc[terms, "sd"]).to_numpy()
    p_index = codes(data["patient_id"], patients)
    month_index = codes(data["month"], months)
    inputs = {
        "patient_code": p_index,
        "therapist_code": codes(data["therapist_id"], therapists),
        "month_code": month_index,
        "wai_observed": data["wai_total"].to_numpy(dtype="float64"),
        "no_communication_flag": data["no_communication"].to_numpy(dtype="float64"),
    }
    capacity = {}
    first_row = pd.Series(np.arange(len(data))).groupby(p_index).first()
    for k, term in enumerate(terms):
        if term in PATIENT_LEVEL_TERMS:
            # One cell per patient: the value at the patient's first assessment, at the position
            # of the patient; patients without an assessment have no cell.
            cells = first_row.index.to_numpy()
            values = z[first_row.to_numpy(), k]
            possible = len(patients)
            full_slot = cells
        else:
            defined = ~undefined_cells(data, term)
            cells = np.flatnonzero(defined)
            values = z[cells, k]
            possible = len(patients) * len(months)
            full_slot = p_index[cells] * len(months) + month_index[cells]
        missing = np.isnan(values)
        inputs[f"{term}_observed_cells"] = cells[~missing].astype("int64")
        inputs[f"{term}_observed_values"] = values[~missing].astype("float64")
        inputs[f"{term}_missing_cells"] = cells[missing].astype("int64")
        slots = full_slot[missing] if full_capacity else np.arange(int(missing.sum()))
        inputs[f"{term}_missing_slots"] = slots.astype("int64")
        capacity[term] = possible if full_capacity else int(missing.sum())
    return inputs, capacity


def build_association_model(
    data: pd.DataFrame,
    scale: pd.DataFrame,
    rater: str,
    priors: Mapping,
    months: list[int],
    decomposition: bool = False,
    patients=None,
    therapists=None,
    full_capacity: bool = False,
):
    """The PyMC model for one rater (see the module docstring). Its data are ``pm.Data`` inputs
    (:func:`association_inputs`; ``patients``, ``therapists`` and ``full_capacity`` are passed
    on), so a model built with ``full_capacity`` can be compiled once and refitted to other
    trials of the same patients (:mod:`alliance.refit`)."""
    inputs, capacity = association_inputs(
        data, scale, rater, months, patients, therapists, full_capacity
    )
    patients = list(pd.unique(data["patient_id"])) if patients is None else list(patients)
    therapists = sorted(pd.unique(data["therapist_id"])) if therapists is None else list(therapists)
    # The no-communication coefficient exists when some assessment had no communication (always
    # in a model built for refitting, whose data may have such assessments).
    no_communication = full_capacity or bool(data["no_communication"].any())
    return _association_model(
        inputs,
        capacity,
        rater,
        priors,
        months,
        patients,
        therapists,
        decomposition,
        no_communication,
    )


def _association_model(
    inputs, capacity, rater, priors, months, patients, therapists, decomposition, no_communication
):
    import pymc as pm
    import pytensor.tensor as pt

    terms = list(ASSOCIATION_TERMS[rater])
    fixed = [t for t in terms if t in PATIENT_LEVEL_TERMS]
    varying = [t for t in terms if t not in PATIENT_LEVEL_TERMS]
    conditional = [t for t in varying if t in CONDITIONAL_TERMS]
    # Undefined cells are left out of the chain: only the last link may have them.
    assert conditional in ([], varying[-len(conditional) :]) and len(conditional) <= 1
    eta = priors["lkj_eta"]["eta"]
    coords = {
        "term": terms,
        "between_term": [*fixed, *varying],
        "varying_term": varying,
        "month": months,
        "patient": [str(p) for p in patients],
        "therapist": [str(t) for t in therapists],
    }
    with pm.Model(coords=coords) as model:
        d = {name: pm.Data(name, values) for name, values in inputs.items()}
        p_index, month_index = d["patient_code"], d["month_code"]
        n_rows = p_index.shape[0]

        def predictor(term: str, mean, sd, n_cells):
            """A predictor's cells: observed ones with the density N(mean, sd), missing ones
            imputed as mean + sd * (a standard-normal slot), i.e. from the same normal
            (non-centred); zero where the predictor is undefined."""
            observed_cells = d[f"{term}_observed_cells"]
            observed = pm.Normal(
                f"{term}_z",
                mu=mean[observed_cells],
                sigma=sd,
                observed=d[f"{term}_observed_values"],
            )
            cells = pt.set_subtensor(pt.zeros(n_cells)[observed_cells], observed)
            if capacity[term]:
                slot = pm.Normal(f"{term}_imputed_z", 0, 1, shape=capacity[term])
                missing_cells = d[f"{term}_missing_cells"]
                imputed = mean[missing_cells] + sd * slot[d[f"{term}_missing_slots"]]
                cells = pt.set_subtensor(cells[missing_cells], imputed)
            return cells

        # Patient level: age and the patients' latent means, as a chain of conditionals.
        between_sd = pm.HalfNormal("between_sd", sigma=1.0, dims="between_term")
        between_chol = between_sd[:, None] * lkj_cholesky_corr(
            "between_corr", eta, len(fixed) + len(varying)
        )
        eps = []
        patient_values = {}
        for k, term in enumerate(fixed):
            mean = sum((between_chol[k, j] * eps[j] for j in range(k)), pt.zeros(len(patients)))
            value = predictor(term, mean, between_chol[k, k], len(patients))
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
            full = predictor(term, mean, within_chol[k, k], n_rows)
            columns[term] = full
            within_eps.append((full - mean) / within_chol[k, k])
        for term in fixed:
            columns[term] = patient_values[term][p_index]
        defined = {
            t: 1 - d["no_communication_flag"] if t in CONDITIONAL_TERMS else 1.0 for t in terms
        }

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
        if conditional and no_communication:
            predictors += d["no_communication_flag"] * pm.Normal("no_communication", 0, beta_sigma)
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
            + therapist_z[d["therapist_code"]] * therapist_sd
        )
        pm.Normal("wai", mu=mu, sigma=sigma, observed=d["wai_observed"])
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
