"""Aim (b): a bivariate growth model of patient- and therapist-rated alliance (PyMC).

For patient i in arm a at time t (0 at month 3, 1 at month 12) and rater r:

    y[i,t,r] = level[a,r] + change[a,r] * t + u[i,r] + w[i,r] * t + v[therapist(i),r] + e[i,t,r]

The patient levels u of the two raters are bivariate normal with arm-specific SDs and correlation
(``level_corr``), so are the patient changes w (``change_corr``); the residuals e of the two
ratings of one assessment have an arm-specific correlation (``residual_corr``); therapist effects v
are independent by rater. Level-change correlations are not modelled (with three assessments they
are barely identified and slowed the sampler without informing agreement).

Each correlation has an LKJ(eta) prior, written as ``(corr + 1) / 2 ~ Beta(eta, eta)`` (variables
``*_01``; see :mod:`alliance.correlation_priors`), which compiles and samples several times faster
than ``pm.LKJCholeskyCov``.

The likelihood of an assessment rated by both is factorised as the patient's rating times the
therapist's rating given the patient's (the bivariate normal density); an assessment rated by one
rater only contributes that rating's marginal normal density. The therapist's conditional mean
refers to the patient-rating variable itself, so posterior predictive draws replicate the pair
jointly. Agreement quantities are computed from the draws per arm.

The workflow samples it with the patient effects integrated out in closed form
(:class:`MarginalAgreementModel`; the derivation is above :data:`PATIENT_EFFECTS`) and draws them
afterwards from their exact conditional posterior: the same joint posterior, with the full
model's variables (tests).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
import xarray as xr

from alliance.correlation_priors import lkj_correlation
from alliance.design import ARMS, RATERS, time_code
from alliance.posterior_summary import predictive_check_row
from alliance.refit import CompiledModel


def agreement_data(alliance: pd.DataFrame, instrument: Mapping) -> pd.DataFrame:
    """One row per patient x month with at least one rating; columns ``patient``, ``therapist``.

    Patients are ordered by arm (the treatment arm first, as in ``design.ARMS``).
    """
    months = list(instrument["months"])
    scored = alliance[alliance["assessed"]]
    pairs = scored.pivot_table(
        index=["patient_id", "arm", "therapist_id", "month"],
        columns="rater",
        values="wai_total",
    ).reset_index()
    for rater in RATERS:
        if rater not in pairs:
            pairs[rater] = np.nan
    pairs["time"] = time_code(pairs["month"], months)
    pairs["arm"] = pd.Categorical(pairs["arm"], categories=list(ARMS))
    pairs = pairs.sort_values(["arm", "patient_id", "month"]).reset_index(drop=True)
    pairs.columns.name = None
    return pairs[["patient_id", "arm", "therapist_id", "month", "time", *RATERS]]


class RatingRows(NamedTuple):
    """Which rows of ``pairs`` each observed rating vector of the model holds.

    ``patient``: rows with a patient rating (the order of ``patient_rating``); ``therapist``: rows
    with a therapist rating (the order of ``therapist_rating``); ``paired``: per therapist rating,
    whether the patient also rated; ``partner``: per therapist rating, the position of the
    patient's rating in ``patient_rating`` (0 where unpaired, unused there).
    """

    patient: np.ndarray
    therapist: np.ndarray
    paired: np.ndarray
    partner: np.ndarray


def rating_rows(pairs: pd.DataFrame) -> RatingRows:
    """The layout of the observed ratings in the model built from ``pairs``."""
    rated = pairs[list(RATERS)].notna().to_numpy()
    patient_rows = np.flatnonzero(rated[:, 0])
    therapist_rows = np.flatnonzero(rated[:, 1])
    position = np.zeros(len(pairs), dtype=int)
    position[patient_rows] = np.arange(len(patient_rows))
    paired = rated[therapist_rows, 0]
    partner = np.where(paired, position[therapist_rows], 0)
    return RatingRows(patient_rows, therapist_rows, paired, partner)


def agreement_inputs(pairs: pd.DataFrame, patients: Sequence, therapists: Sequence) -> dict:
    """The agreement model's data inputs from ``pairs`` (:func:`agreement_data`), its patient and
    therapist effects indexed by ``patients`` and ``therapists``: each patient's arm, and per
    observed rating of each rater its patient, therapist, arm, time and value; per therapist
    rating, whether the patient also rated and the position of the patient's rating."""
    from alliance.refit import codes

    rows = rating_rows(pairs)
    arm_of = pairs.drop_duplicates("patient_id").set_index("patient_id")["arm"]
    patient_arm = arm_of.reindex(list(patients)).cat.codes.to_numpy()
    # A patient without a rating in these data still has effects (drawn from their prior); the
    # arm of such a patient does not matter, so any valid arm code stands in.
    inputs = {"patient_arm": np.where(patient_arm < 0, 0, patient_arm).astype("int64")}
    arm_index = pairs["arm"].cat.codes.to_numpy().astype("int64")
    for r, rater in enumerate(RATERS):
        chosen = rows.patient if r == 0 else rows.therapist
        inputs[f"{rater}_rating_patient"] = codes(pairs["patient_id"].iloc[chosen], patients)
        inputs[f"{rater}_rating_therapist"] = codes(pairs["therapist_id"].iloc[chosen], therapists)
        inputs[f"{rater}_rating_arm"] = arm_index[chosen]
        inputs[f"{rater}_rating_time"] = pairs["time"].to_numpy(dtype="float64")[chosen]
        inputs[f"{rater}_rating_observed"] = pairs[rater].to_numpy(dtype="float64")[chosen]
    inputs["therapist_rating_paired"] = rows.paired.astype("float64")
    inputs["therapist_rating_partner"] = rows.partner.astype("int64")
    return inputs


def _agreement_coords(pairs: pd.DataFrame, patients, therapists):
    """The model's patients and therapists (default: those in ``pairs``) and its coords."""
    patients = list(pd.unique(pairs["patient_id"])) if patients is None else list(patients)
    therapists = (
        sorted(pd.unique(pairs["therapist_id"])) if therapists is None else list(therapists)
    )
    coords = {
        "arm": list(ARMS),
        "rater": list(RATERS),
        "patient": [str(p) for p in patients],
        "therapist": [str(t) for t in therapists],
    }
    return patients, therapists, coords


def _population_parameters(priors: Mapping) -> dict:
    """The agreement model's parameters other than the patient effects (inside a model
    context): the arms' mean levels and changes, the patient effects' SDs and correlations, the
    therapist effects (``therapist_effect``: z x SD) and the residual SDs and correlations."""
    import pymc as pm

    eta = priors["lkj_eta"]["eta"]
    params = {
        "level": pm.Normal(
            "level", mu=priors["level"]["mu"], sigma=priors["level"]["sigma"], dims=("arm", "rater")
        ),
        "change": pm.Normal("change", mu=0, sigma=priors["change"]["sigma"], dims=("arm", "rater")),
    }
    for kind in ("level", "change"):
        params[f"patient_{kind}_sd"] = pm.HalfNormal(
            f"patient_{kind}_sd", sigma=priors[f"patient_{kind}_sd"]["sd"], dims=("arm", "rater")
        )
        params[f"{kind}_corr"] = lkj_correlation(f"{kind}_corr", eta, "arm")
    therapist_sd = pm.HalfNormal("therapist_sd", sigma=priors["therapist_sd"]["sd"], dims="rater")
    therapist_z = pm.Normal("therapist_z", 0, 1, dims=("therapist", "rater"))
    params["therapist_effect"] = therapist_z * therapist_sd
    params["residual_sd"] = pm.HalfNormal(
        "residual_sd", sigma=priors["residual_sd"]["sd"], dims=("arm", "rater")
    )
    params["residual_corr"] = lkj_correlation("residual_corr", eta, "arm")
    return params


def build_agreement_model(
    pairs: pd.DataFrame,
    priors: Mapping,
    patients: Sequence | None = None,
    therapists: Sequence | None = None,
):
    """The PyMC model; ``pairs`` from :func:`agreement_data`. Its data are ``pm.Data`` inputs
    (:func:`agreement_inputs`), so a compiled model can be refitted to other data
    (:mod:`alliance.refit`); the patient and therapist effects are indexed by ``patients`` and
    ``therapists`` (default: those in ``pairs``)."""
    import pymc as pm
    import pytensor.tensor as pt

    patients, therapists, coords = _agreement_coords(pairs, patients, therapists)
    inputs = agreement_inputs(pairs, patients, therapists)
    with pm.Model(coords=coords) as model:
        data = {name: pm.Data(name, values) for name, values in inputs.items()}
        patient_arm = data["patient_arm"]
        params = _population_parameters(priors)
        level, change = params["level"], params["change"]

        def patient_effects(kind: str):
            """Both raters' patient effects (non-centred): columns patient, therapist."""
            sd, rho = params[f"patient_{kind}_sd"], params[f"{kind}_corr"][patient_arm]
            z = pm.Normal(f"patient_{kind}_z", 0, 1, dims=("patient", "rater"))
            first = sd[:, 0][patient_arm] * z[:, 0]
            second = sd[:, 1][patient_arm] * (rho * z[:, 0] + pt.sqrt(1 - rho**2) * z[:, 1])
            return first, second

        levels = patient_effects("level")
        changes = patient_effects("change")
        v = params["therapist_effect"]
        residual_sd, residual_corr = params["residual_sd"], params["residual_corr"]

        # Each patient's own intercept and slope per rater (the arm's mean plus the patient's
        # effect), then one gather per observed rating. Indexing is one-dimensional throughout
        # (a column, then rows): two-dimensional integer indexing compiles and differentiates far
        # more slowly in the numba backend, and every gather adds a scatter to the gradient.
        def rater_mean(r: int):
            rater = RATERS[r]
            intercept = level[:, r][patient_arm] + levels[r]
            slope = change[:, r][patient_arm] + changes[r]
            patient = data[f"{rater}_rating_patient"]
            return (
                intercept[patient]
                + slope[patient] * data[f"{rater}_rating_time"]
                + v[:, r][data[f"{rater}_rating_therapist"]]
            )

        mu_patient = rater_mean(0)
        patient_sd = residual_sd[:, 0][data["patient_rating_arm"]]
        patient_rating = pm.Normal(
            "patient_rating",
            mu=mu_patient,
            sigma=patient_sd,
            observed=data["patient_rating_observed"],
        )
        # The therapist's rating given the patient's residual in the same assessment.
        arm_t = data["therapist_rating_arm"]
        rho = residual_corr[arm_t] * data["therapist_rating_paired"]
        therapist_residual_sd = residual_sd[:, 1][arm_t]
        standardised = (patient_rating - mu_patient) / patient_sd
        pm.Normal(
            "therapist_rating",
            mu=rater_mean(1)
            + rho * therapist_residual_sd * standardised[data["therapist_rating_partner"]],
            sigma=therapist_residual_sd * pt.sqrt(1 - rho**2),
            observed=data["therapist_rating_observed"],
        )
    return model


# --- The same model with the patient effects integrated out ------------------------------------
#
# Patient i's effects b_i = (level and change of the patient's rating, level and change of the
# therapist's rating) are normal with covariance D (arm-specific: the two raters' levels
# correlated, their changes correlated, levels and changes independent); the residuals R_i are
# independent across assessments, the two ratings of one assessment correlated. With Z_i the
# effects' design (1 and time, per rater), P_i = D^-1 + Z_i' R_i^-1 Z_i (4 x 4) and
# g_i = Z_i' R_i^-1 r_i (r_i: the ratings minus the arm means and the therapist effects), the
# matrix determinant lemma and Woodbury's identity give the density of the ratings with b_i
# integrated out,
#
#     log N(r_i; 0, Z_i D Z_i' + R_i) = -1/2 [n_i log 2 pi + log|R_i| + log|D| + log|P_i|
#                                             + r_i' R_i^-1 r_i - g_i' P_i^-1 g_i],
#
# and b_i given everything else is normal with mean P_i^-1 g_i and covariance P_i^-1. The sums
# over each patient's ratings are segment sums and P_i's L D L' factorisation is written entry
# by entry, so the same code (elementwise operations only) builds the PyTensor graph the sampler
# differentiates (vectors over ratings and patients) and computes, in NumPy, the conditional draws
# after sampling (the same arrays with a trailing axis of posterior draws).

#: The order of a patient's effects in P_i and g_i: (kind, rater) of each.
PATIENT_EFFECTS = (("level", 0), ("change", 0), ("level", 1), ("change", 1))


def paired_patient_ratings(inputs: Mapping) -> np.ndarray:
    """Per patient rating (of :func:`agreement_inputs`), 1.0 where the therapist also rated."""
    paired = np.zeros(len(inputs["patient_rating_observed"]))
    is_paired = np.asarray(inputs["therapist_rating_paired"]) > 0
    paired[np.asarray(inputs["therapist_rating_partner"])[is_paired]] = 1.0
    return paired


def marginal_agreement_inputs(inputs: Mapping) -> dict:
    """The marginal model's inputs: :func:`agreement_inputs`', per patient rating whether the
    therapist also rated (``patient_rating_paired``), and the arm codes as 0/1 values
    (``*_second_arm``, see :func:`_by_arm`). Data without a patient rating are refused (the
    model relates each therapist rating to the patient's)."""
    if not len(inputs["patient_rating_observed"]):
        raise ValueError("the agreement model needs patient ratings; these data have none")
    second_arm = {
        name.replace("_arm", "_second_arm"): np.asarray(inputs[name], dtype="float64")
        for name in ("patient_arm", "patient_rating_arm", "therapist_rating_arm")
    }
    return {**inputs, "patient_rating_paired": paired_patient_ratings(inputs), **second_arm}


def _by_arm(values, second_arm):
    """``values`` (one per arm, first axis) of each row whose ``second_arm`` is 0 or 1: the
    same as indexing by the arm code, written elementwise (its gradient is a sum, not a scatter:
    measured, the marginal model's gradient evaluation about 15% faster)."""
    if len(ARMS) != 2:  # pragma: no cover - the trial has two arms
        raise ValueError("written for two arms")
    return values[0] + (values[1] - values[0]) * second_arm


def _ldl(p: list) -> tuple[list, list]:
    """L D L' factorisation of symmetric positive-definite matrices given entrywise (``p[i][j]``,
    j <= i; each entry a batch of values): the unit lower factor's entries below the diagonal
    (``lower[i][j]``, j < i) and the pivots D. Entrywise, no square roots."""
    lower, pivots = [[None] * len(p) for _ in p], []
    for i in range(len(p)):
        for j in range(i):
            rest = p[i][j] - sum(lower[i][k] * lower[j][k] * pivots[k] for k in range(j))
            lower[i][j] = rest / pivots[j]
        pivots.append(p[i][i] - sum(lower[i][k] ** 2 * pivots[k] for k in range(i)))
    return lower, pivots


def _solve_unit_lower(lower: list, values: list) -> list:
    """L^-1 values (L unit lower triangular) by forward substitution, entrywise."""
    solved = []
    for i, value in enumerate(values):
        solved.append(value - sum(lower[i][k] * solved[k] for k in range(i)))
    return solved


def _solve_unit_upper(lower: list, values: list) -> list:
    """L'^-1 values by back substitution, entrywise."""
    n = len(values)
    solved = [None] * n
    for i in reversed(range(n)):
        solved[i] = values[i] - sum(lower[k][i] * solved[k] for k in range(i + 1, n))
    return solved


def _integrated_terms(params: Mapping, data: Mapping, per_patient, xp) -> dict:
    """Per patient (a batch each): P_i's lower triangle ``precision``, ``g`` (in the order of
    :data:`PATIENT_EFFECTS`), and the rest of the integrated log density, ``log_det_d``
    (log|D|), ``log_det_r`` (log|R_i| + n_i log 2 pi) and ``quadratic_r`` (r_i' R_i^-1 r_i).

    ``params``: the population parameters (:func:`_population_parameters`' names); ``data``: the
    marginal model's inputs (:func:`marginal_agreement_inputs`); ``per_patient(columns,
    patient)``: the sums per patient of each of ``columns`` (values per rating); ``xp``:
    ``pytensor.tensor`` or ``numpy``. Whatever depends on the arm alone (residual precisions,
    logarithms, D^-1) is computed per arm and then spread over the ratings or patients
    (:func:`_by_arm`)."""
    residual, time, patient, arm = {}, {}, {}, {}
    for r, rater in enumerate(RATERS):
        arm[rater] = data[f"{rater}_rating_second_arm"]
        time[rater] = data[f"{rater}_rating_time"]
        patient[rater] = data[f"{rater}_rating_patient"]
        mean = (
            _by_arm(params["level"][:, r], arm[rater])
            + _by_arm(params["change"][:, r], arm[rater]) * time[rater]
            + params["therapist_effect"][:, r][data[f"{rater}_rating_therapist"]]
        )
        residual[rater] = data[f"{rater}_rating_observed"] - mean
    # The residual precision (R^-1) of each rating: 1 / variance for a single rating, the inverse
    # of the 2 x 2 covariance for a pair (its cross entry on the therapist's rating); per arm,
    # then per rating by whether it is paired.
    var_p, var_t = xp.square(params["residual_sd"][:, 0]), xp.square(params["residual_sd"][:, 1])
    rho = params["residual_corr"]
    one_minus = 1 - xp.square(rho)

    def per_rating(single, paired, rater):  # values of single and paired ratings, per arm
        is_paired = data[f"{rater}_rating_paired"]
        return _by_arm(single, arm[rater]) + _by_arm(paired - single, arm[rater]) * is_paired

    w_pp = per_rating(1 / var_p, 1 / (var_p * one_minus), "patient")
    w_tt = per_rating(1 / var_t, 1 / (var_t * one_minus), "therapist")
    w_pt = per_rating(0 * rho, -rho / (xp.sqrt(var_p * var_t) * one_minus), "therapist")
    # log(2 pi variance) of each rating, the determinant of a pair's covariance on the second.
    log_var_p = _by_arm(xp.log(2 * np.pi * var_p), arm["patient"])
    log_var_t = per_rating(
        xp.log(2 * np.pi * var_t), xp.log(2 * np.pi * var_t * one_minus), "therapist"
    )
    # The patient's residual in the same assessment (any value where unpaired: w_pt is 0 there).
    r_p, r_t = residual["patient"], residual["therapist"]
    r_partner = r_p[data["therapist_rating_partner"]]
    t_p, t_t = time["patient"], time["therapist"]
    # (R^-1 r) of each rating; the patient's share from a pair sits on the therapist's rating.
    own_p, cross_p = w_pp * r_p, w_pt * r_t
    whole_t = w_tt * r_t + w_pt * r_partner
    # Sums per patient of the patient's and of the therapist's ratings.
    (pp_0, pp_1, pp_2, own_0, own_1, log_det_p, quadratic_p) = per_patient(
        [w_pp, w_pp * t_p, w_pp * t_p * t_p, own_p, own_p * t_p, log_var_p, own_p * r_p],
        patient["patient"],
    )
    (pt_0, pt_1, pt_2, tt_0, tt_1, tt_2, cross_0, cross_1, whole_0, whole_1, log_det_t, quad_t) = (
        per_patient(
            [
                w_pt,
                w_pt * t_t,
                w_pt * t_t * t_t,
                w_tt,
                w_tt * t_t,
                w_tt * t_t * t_t,
                cross_p,
                cross_p * t_t,
                whole_t,
                whole_t * t_t,
                log_var_t,
                (w_tt * r_t + 2 * w_pt * r_partner) * r_t,
            ],
            patient["therapist"],
        )
    )
    # D^-1 per arm (the inverse of each 2 x 2 block of both raters' effects), then per patient.
    second_arm = data["patient_second_arm"]
    inverse, log_det_d = {}, 0
    for kind in ("level", "change"):
        sd, rho = params[f"patient_{kind}_sd"], params[f"{kind}_corr"]
        var_0, var_1, one_minus = xp.square(sd[:, 0]), xp.square(sd[:, 1]), 1 - xp.square(rho)
        inverse[kind] = [
            _by_arm(entry, second_arm)
            for entry in (
                1 / (var_0 * one_minus),
                -rho / (sd[:, 0] * sd[:, 1] * one_minus),
                1 / (var_1 * one_minus),
            )
        ]
        log_det_d = log_det_d + _by_arm(xp.log(var_0 * var_1 * one_minus), second_arm)
    level, change = inverse["level"], inverse["change"]
    precision = [
        [level[0] + pp_0],
        [pp_1, change[0] + pp_2],
        [level[1] + pt_0, pt_1, level[2] + tt_0],
        [pt_1, change[1] + pt_2, tt_1, change[2] + tt_2],
    ]
    return {
        "precision": precision,
        "g": [own_0 + cross_0, own_1 + cross_1, whole_0, whole_1],
        "log_det_d": log_det_d,
        "log_det_r": log_det_p + log_det_t,
        "quadratic_r": quadratic_p + quad_t,
    }


def _integrated_log_density(terms: Mapping, xp):
    """Each patient's log density with the patient effects integrated out (a batch)."""
    lower, pivots = _ldl(terms["precision"])
    whitened = _solve_unit_lower(lower, terms["g"])
    return -0.5 * (
        terms["log_det_r"]
        + terms["log_det_d"]
        + sum(xp.log(pivot) for pivot in pivots)
        + terms["quadratic_r"]
        - sum(xp.square(value) / pivot for value, pivot in zip(whitened, pivots, strict=True))
    )


#: The marginal model's potential: the ratings' log density with the patient effects integrated
#: out.
INTEGRATED_RATINGS = "ratings_integrated"


def build_marginal_agreement_model(
    pairs: pd.DataFrame,
    priors: Mapping,
    patients: Sequence | None = None,
    therapists: Sequence | None = None,
):
    """:func:`build_agreement_model` with the patient effects integrated out: the same priors
    on the other parameters and, in place of the patient effects and the two likelihood terms,
    the ratings' marginal density (a ``pm.Potential``). Its data are
    :func:`marginal_agreement_inputs` (the full model's and what is derived from them)."""
    import pymc as pm
    import pytensor.tensor as pt

    patients, therapists, coords = _agreement_coords(pairs, patients, therapists)
    inputs = marginal_agreement_inputs(agreement_inputs(pairs, patients, therapists))
    n_patients = len(patients)

    def per_patient(columns, patient):
        # One scatter per column: a two-dimensional scatter of the stacked columns differentiates
        # more slowly in the numba backend.
        return [pt.inc_subtensor(pt.zeros(n_patients)[patient], values) for values in columns]

    with pm.Model(coords=coords) as model:
        data = {name: pm.Data(name, values) for name, values in inputs.items()}
        params = _population_parameters(priors)
        terms = _integrated_terms(params, data, per_patient, pt)
        pm.Potential(INTEGRATED_RATINGS, pt.sum(_integrated_log_density(terms, pt)))
    return model


def _draws_last(posterior: xr.Dataset, name: str) -> np.ndarray:
    """A posterior variable's values with the draws (chain by chain) on the last axis."""
    values = posterior[name].transpose("chain", "draw", ...).to_numpy()
    return np.moveaxis(values.reshape(-1, *values.shape[2:]), 0, -1)


def _numpy_terms(posterior: xr.Dataset, inputs: Mapping, n_patients: int) -> dict:
    """:func:`_integrated_terms` at every draw of ``posterior`` (NumPy; batches patient x
    draw)."""
    from scipy import sparse

    # The population parameters: the agreement quantities' (the therapist SD enters through the
    # therapist effects).
    params = {
        name: _draws_last(posterior, name) for name in QUANTITY_PARAMETERS if name != "therapist_sd"
    }
    params["therapist_effect"] = (
        _draws_last(posterior, "therapist_z") * _draws_last(posterior, "therapist_sd")[None]
    )
    data = {
        name: np.asarray(values)[:, None] if np.asarray(values).dtype.kind == "f" else values
        for name, values in inputs.items()
    }
    n_draws = posterior.sizes["chain"] * posterior.sizes["draw"]

    def per_patient(columns, patient):
        indicator = sparse.csr_matrix(
            (np.ones(len(patient)), (patient, np.arange(len(patient)))),
            shape=(n_patients, len(patient)),
        )
        shape = (len(patient), n_draws)
        return [np.asarray(indicator @ np.broadcast_to(values, shape)) for values in columns]

    return _integrated_terms(params, data, per_patient, np)


def integrated_patient_log_density(posterior: xr.Dataset, inputs: Mapping, n_patients: int):
    """log p(ratings of patient i | draw) with the patient's effects integrated out, at every
    draw of ``posterior`` (patient x draw, draws chain by chain; 0 for a patient without a
    rating). ``inputs``: :func:`marginal_agreement_inputs`."""
    return _integrated_log_density(_numpy_terms(posterior, inputs, n_patients), np)


def conditional_patient_effects(
    posterior: xr.Dataset, inputs: Mapping, coords: Mapping, rng
) -> dict[str, xr.DataArray]:
    """The full model's patient effects (``patient_level_z``, ``patient_change_z``) at each draw
    of ``posterior``, drawn from their posterior given that draw: with P_i = L_i D_i L_i' (L_i
    unit lower triangular, D_i diagonal), b_i = L_i'^-1 (D_i^-1 L_i^-1 g_i + D_i^-1/2 e) (e
    standard normal: mean P_i^-1 g_i, covariance P_i^-1), then standardised as
    :func:`build_agreement_model` builds them from z. A patient without a rating keeps the
    prior. ``inputs``: :func:`marginal_agreement_inputs`; ``coords``: the model's (its
    patients). Computed chain by chain (the arrays are rating x draw)."""
    n_patients = len(coords["patient"])
    arm = np.asarray(inputs["patient_arm"])
    draws = posterior.sizes["draw"]
    chains = []
    for chain in range(posterior.sizes["chain"]):
        one = posterior.isel(chain=[chain])
        terms = _numpy_terms(one, inputs, n_patients)
        lower, pivots = _ldl(terms["precision"])
        whitened = _solve_unit_lower(lower, terms["g"])
        noise = rng.standard_normal((len(whitened), n_patients, draws))
        scaled = [
            (w / pivot + e / np.sqrt(pivot))
            for w, e, pivot in zip(whitened, noise, pivots, strict=True)
        ]
        effects = dict(zip(PATIENT_EFFECTS, _solve_unit_upper(lower, scaled), strict=True))
        standardised = {}
        for kind in ("level", "change"):
            sd = _draws_last(one, f"patient_{kind}_sd")
            rho = _draws_last(one, f"{kind}_corr")[arm]
            first = effects[(kind, 0)] / sd[:, 0][arm]
            second = (effects[(kind, 1)] / sd[:, 1][arm] - rho * first) / np.sqrt(1 - rho**2)
            standardised[kind] = np.stack([first, second], axis=-1).transpose(1, 0, 2)
        chains.append(standardised)
    dims = ("chain", "draw", "patient", "rater")
    names = {
        "chain": posterior["chain"].to_numpy(),
        "draw": posterior["draw"].to_numpy(),
        "patient": list(coords["patient"]),
        "rater": list(coords["rater"]),
    }
    return {
        f"patient_{kind}_z": xr.DataArray(
            np.stack([chain[kind] for chain in chains]), dims=dims, coords=names
        )
        for kind in ("level", "change")
    }


class MarginalAgreementModel(CompiledModel):
    """The agreement model compiled once (nutpie) and sampled with its patient effects
    integrated out (:func:`build_marginal_agreement_model`): the sampler explores the
    population parameters and therapist effects, not the patient effects (four per patient),
    whose SDs mix slowly when they are sampled (three assessments barely separate the SD of the
    change from the residual SD). After sampling, each draw's patient effects are drawn from
    their exact conditional posterior (:func:`conditional_patient_effects`), so the draws are of
    the full model's joint posterior, with its variables. ``model`` is the full model
    (:func:`build_agreement_model`), for the log-likelihood, replicates and priors; the one
    sampled is compiled in ``compiled``."""

    def __init__(
        self,
        pairs: pd.DataFrame,
        priors: Mapping,
        patients: Sequence | None = None,
        therapists: Sequence | None = None,
        log=None,
    ):
        patients, therapists, _ = _agreement_coords(pairs, patients, therapists)
        marginal = build_marginal_agreement_model(pairs, priors, patients, therapists)
        super().__init__(marginal, log)
        self.model = build_agreement_model(pairs, priors, patients, therapists)
        self.inputs = agreement_inputs(pairs, patients, therapists)

    def fit(self, inputs: Mapping[str, np.ndarray], sampling: Mapping, seed: int):
        """The full model's posterior on ``inputs`` (:func:`agreement_inputs`; none: the data
        the model was built with): the marginal model sampled as :meth:`CompiledModel.fit` does,
        and the patient effects drawn at every draw (seeded by ``seed``)."""
        import pymc as pm

        if inputs:  # the full model (log-likelihood, replicates) holds the same data
            with self.model:
                pm.set_data({name: inputs[name] for name in self.inputs})
        data = marginal_agreement_inputs({**self.inputs, **inputs})
        tree = super().fit(data, sampling, seed)
        posterior = tree["posterior"].to_dataset()
        effects = conditional_patient_effects(
            posterior, data, self.model.coords, np.random.default_rng([int(seed), 1])
        )
        tree["posterior"] = posterior.assign(effects)
        return tree


#: The parameters :func:`agreement_quantities` reads (all a prior check needs to draw).
QUANTITY_PARAMETERS = (
    "level",
    "change",
    "patient_level_sd",
    "patient_change_sd",
    "level_corr",
    "change_corr",
    "therapist_sd",
    "residual_sd",
    "residual_corr",
)


def agreement_quantities(posterior: xr.Dataset, months: list[int]) -> dict[str, xr.DataArray]:
    """Per-arm agreement quantities from posterior (or prior) draws.

    ``rater_correlation``: correlation of the patient-level levels across raters;
    ``change_correlation``: of the patient-level changes; ``rater_bias``: patient minus therapist
    mean, averaged over months with equal weight; ``icc_agreement``: absolute-agreement ICC of a
    single rating (2 cov / (var_p + var_t + bias^2)), averaged over months; ``loa_low`` and
    ``loa_high``: Bland-Altman 95% limits of agreement of single ratings, averaged over months.
    """
    time = xr.DataArray(time_code(months, months), dims="month", coords={"month": months})
    level_sd, change_sd = posterior["patient_level_sd"], posterior["patient_change_sd"]
    res_sd, ther_sd = posterior["residual_sd"], posterior["therapist_sd"]

    def rater_variance(rater: str) -> xr.DataArray:
        return (
            level_sd.sel(rater=rater) ** 2
            + time**2 * change_sd.sel(rater=rater) ** 2
            + ther_sd.sel(rater=rater) ** 2
            + res_sd.sel(rater=rater) ** 2
        )

    def cross(sd: xr.DataArray, corr: xr.DataArray) -> xr.DataArray:
        return corr * sd.sel(rater="patient") * sd.sel(rater="therapist")

    covariance = (
        cross(level_sd, posterior["level_corr"])
        + time**2 * cross(change_sd, posterior["change_corr"])
        + cross(res_sd, posterior["residual_corr"])
    )
    var_p, var_t = rater_variance("patient"), rater_variance("therapist")
    means = posterior["level"] + posterior["change"] * time
    bias = means.sel(rater="patient") - means.sel(rater="therapist")
    icc = 2 * covariance / (var_p + var_t + bias**2)
    diff_sd = np.sqrt(var_p + var_t - 2 * covariance)
    result = {
        "rater_correlation": posterior["level_corr"],
        "change_correlation": posterior["change_corr"],
        "rater_bias": bias.mean("month"),
        "icc_agreement": icc.mean("month"),
        "loa_low": (bias - 1.96 * diff_sd).mean("month"),
        "loa_high": (bias + 1.96 * diff_sd).mean("month"),
        "residual_correlation": posterior["residual_corr"],
    }
    return {
        name: value.drop_vars("rater", errors="ignore").rename(name)
        for name, value in result.items()
    }


#: The agreement quantities of the data contract's aim (b) rows.
CONTRACT_ESTIMANDS = ("rater_correlation", "rater_bias", "icc_agreement")


def agreement_estimands(posterior: xr.Dataset, months: list[int]) -> xr.Dataset:
    """The reported agreement quantities (:func:`agreement_quantities` without the residual
    correlation, a nuisance parameter)."""
    quantities = agreement_quantities(posterior, months)
    del quantities["residual_correlation"]
    return xr.Dataset(quantities)


def observed_correlations(pairs: pd.DataFrame) -> pd.DataFrame:
    """Pearson correlation of patient and therapist ratings per arm x month, complete pairs."""
    rows = []
    for (arm, month), group in pairs.dropna(subset=list(RATERS)).groupby(
        ["arm", "month"], observed=True
    ):
        rows.append(
            {
                "arm": arm,
                "month": int(month),
                "n_pairs": len(group),
                "pearson_r": float(np.corrcoef(group["patient"], group["therapist"])[0, 1]),
            }
        )
    return pd.DataFrame(rows)


def frequentist_agreement(pairs: pd.DataFrame) -> pd.DataFrame:
    """Pearson r and the absolute-agreement single-rating ICC(A,1) (pingouin) per arm x month."""
    import pingouin as pg

    table = observed_correlations(pairs)
    iccs, lows, highs = [], [], []
    for row in table.itertuples():
        group = pairs[(pairs.arm == row.arm) & (pairs.month == row.month)].dropna(
            subset=list(RATERS)
        )
        long = group.melt(
            id_vars="patient_id", value_vars=list(RATERS), var_name="rater", value_name="wai"
        )
        icc = pg.intraclass_corr(long, targets="patient_id", raters="rater", ratings="wai")
        icc2 = icc.set_index("Type").loc["ICC(A,1)"]
        interval = icc2["CI95"] if "CI95" in icc2 else icc2["CI95%"]
        iccs.append(float(icc2["ICC"]))
        lows.append(float(interval[0]))
        highs.append(float(interval[1]))
    table["icc_a1"] = iccs
    table["icc_ci_low"] = lows
    table["icc_ci_high"] = highs
    return table


def correlation_check(idata, pairs: pd.DataFrame, ci_prob: float = 0.95, max_draws: int = 1000):
    """Observed patient-therapist correlation per arm x month against posterior replicates."""
    rows = rating_rows(pairs)
    predictive = idata["posterior_predictive"]

    def draws(name: str) -> np.ndarray:
        stacked = predictive[name].stack(sample=("chain", "draw")).transpose("sample", ...)
        values = stacked.to_numpy()
        return values[:: max(1, len(values) // max_draws)]

    # Replicated pairs, aligned to the therapist ratings that have a patient partner.
    patient_draws = draws("patient_rating")[:, rows.partner[rows.paired]]
    therapist_draws = draws("therapist_rating")[:, rows.paired]
    paired_rows = pairs.iloc[rows.therapist[rows.paired]].reset_index(drop=True)
    table = []
    for (arm, month), cell in paired_rows.groupby(["arm", "month"], observed=True):
        x, y = patient_draws[:, cell.index], therapist_draws[:, cell.index]
        xc, yc = x - x.mean(axis=1, keepdims=True), y - y.mean(axis=1, keepdims=True)
        r = (xc * yc).sum(axis=1) / np.sqrt((xc**2).sum(axis=1) * (yc**2).sum(axis=1))
        observed = float(np.corrcoef(cell["patient"], cell["therapist"])[0, 1])
        table.append(predictive_check_row(arm, month, observed, r, ci_prob))
    return pd.DataFrame(table)


#: The directional bias per arm x month (intercepts) and the tracking slopes.
BIAS_TERM, TRACKING_TERM = "arm:C(month)", "arm:C(month):patient_c"
TRUTH_AND_BIAS_FORMULA = (
    f"therapist_c ~ 0 + {BIAS_TERM} + {TRACKING_TERM} + (1 | patient_id) + (1 | therapist_id)"
)


def truth_and_bias_data(pairs: pd.DataFrame) -> pd.DataFrame:
    """Complete pairs with both ratings centred on the patients' mean of their arm and month.

    In the truth-and-bias model (West and Kenny 2011) the therapist's rating is the judgement and
    the patient's rating the truth. Centring both on the patients' mean of the same arm x month
    cell (``cell_patient_mean``) makes each cell's intercept the therapist's directional bias in
    that cell (mean therapist minus mean patient rating: the opposite sign of the agreement
    model's ``rater_bias``), whatever the tracking slope; centring on one grand mean would add
    ``(1 - slope) x (cell mean - grand mean)`` to it. The slope on the centred patient rating is
    the tracking of the patient's view.
    """
    complete = pairs.dropna(subset=list(RATERS)).copy()
    complete["arm"] = complete["arm"].astype(str)
    cell_mean = complete.groupby(["arm", "month"])["patient"].transform("mean")
    complete["cell_patient_mean"] = cell_mean
    complete["patient_c"] = complete["patient"] - cell_mean
    complete["therapist_c"] = complete["therapist"] - cell_mean
    return complete


def build_truth_and_bias_model(data: pd.DataFrame, priors: Mapping):
    """Bambi model of the therapist's rating on the patient's, by arm and month.

    ``priors``: the config's ``truth_and_bias.priors`` (bias and tracking coefficients, patient,
    therapist and residual SDs).

    Patient intercepts absorb what a patient's assessments share; therapist intercepts a
    therapist's response style across his or her patients, so the bias is that of a typical
    therapist and its interval reflects how many therapists there are.
    """
    import bambi as bmb

    def group_prior(sd: float):
        return bmb.Prior("Normal", mu=0, sigma=bmb.Prior("HalfNormal", sigma=sd))

    model = bmb.Model(
        TRUTH_AND_BIAS_FORMULA,
        data,
        priors={
            BIAS_TERM: bmb.Prior("Normal", mu=0, sigma=priors["bias"]["sigma"]),
            TRACKING_TERM: bmb.Prior("Normal", mu=0, sigma=priors["tracking"]["sigma"]),
            "sigma": bmb.Prior("HalfNormal", sigma=priors["residual_sd"]["sd"]),
            "1|patient_id": group_prior(priors["patient_sd"]["sd"]),
            "1|therapist_id": group_prior(priors["therapist_sd"]["sd"]),
        },
        categorical=["arm"],
        # No intercept to centre; stated because alliance.sampling.fit_bambi requires it.
        center_predictors=False,
    )
    model.build()
    return model


def truth_and_bias_estimands(idata) -> xr.Dataset:
    """Directional bias and tracking per arm x month, as labelled draws (of a fit, or of prior
    draws given as a posterior)."""
    posterior = idata["posterior"]
    bias_name, slope_name = BIAS_TERM, TRACKING_TERM

    def relabel(values: xr.DataArray, name: str) -> xr.DataArray:
        dim = [d for d in values.dims if d not in ("chain", "draw")][0]
        labels = [str(label) for label in values[dim].values]
        arms = [label.split(",")[0].strip() for label in labels]
        months = [int(label.split(",")[1].strip()) for label in labels]
        index = pd.MultiIndex.from_arrays([arms, months], names=["arm", "month"])
        stacked = values.rename({dim: "cell"}).assign_coords(
            xr.Coordinates.from_pandas_multiindex(index, "cell")
        )
        return stacked.unstack("cell").rename(name)

    return xr.Dataset(
        {
            "directional_bias": relabel(posterior[bias_name], "directional_bias"),
            "tracking": relabel(posterior[slope_name], "tracking"),
        }
    )


def truth_and_bias_labels(table: pd.DataFrame) -> pd.Series:
    """Row labels of the truth-and-bias estimand rows: ``directional bias: digital, month 3``."""
    return (
        table["estimand"].str.replace("_", " ")
        + ": "
        + table["arm"]
        + ", month "
        + table["month"].astype(str)
    )


def agreement_growth_contrasts(posterior: xr.Dataset, months: list[int]) -> dict:
    """Aim (a)'s quantities under the bivariate model (missing at random given both raters: a
    therapist's rating informs a missing patient rating through the correlated patient effects
    and residuals, and vice versa): per rater, the arm x month means ``level + change * time``
    and :func:`alliance.growth.growth_contrasts` of them."""
    from alliance.growth import growth_contrasts

    time = xr.DataArray(time_code(months, months), dims="month", coords={"month": months})
    means = posterior["level"] + posterior["change"] * time
    return {
        rater: growth_contrasts(means.sel(rater=rater).drop_vars("rater"))
        for rater in means["rater"].values
    }
