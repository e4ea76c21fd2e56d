"""Aim (a) at the item level: an ordinal growth model of every WAI item answer (PyMC).

The totals models see a total of 6.9 where a patient answered 7 to eleven items: the ceiling is
at the item level, where 21-38% of patients' answers are at the top of the scale. This model
describes each scored item answer (reverse keys applied) through a cumulative probit link:

    answer of item j at an assessment <= k   with probability   Phi(c[j, k] - eta)

with *item-specific* cutpoints c[j, 1] < ... < c[j, K-1] (Bambi's ordinal families have one
threshold vector for all items) and a latent alliance per assessment

    eta = level[arm] + change[arm] * time + patient level + patient change * time
          + therapist effect + assessment effect

on the probit scale (the item-level noise has SD 1). ``time`` is 0 at the first month and 1 at
the last, as in the totals models. The reference arm's level is 0: with free cutpoints per item,
one level is not identified.

Estimands are on the WAI scale, as the totals models': the expected mean item score of a
randomly chosen patient of an arm at a month, every group effect integrated out. With a probit
link and normal effects that integral is closed-form: for the latent mean m of an arm and month
and the total SD s of the effects at that time,

    E[answer of item j] = min + sum_k Phi((m - c[j, k]) / sqrt(1 + s^2)),

averaged over the items. Arm differences and the change difference follow as in
:func:`alliance.growth.growth_contrasts`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr
from scipy import special

from alliance.design import ARMS, REFERENCE_ARM, time_code

#: The model's name among the growth models (file names, tables).
ORDINAL_MODEL = "ordinal_items"

#: Group-effect SDs and their standard-normal offsets: (SD parameter, offset, index input).
GROUP_EFFECTS = (
    ("patient_level_sd", "patient_level_z", "patient"),
    ("patient_change_sd", "patient_change_z", "patient"),
    ("therapist_sd", "therapist_z", "therapist"),
    ("assessment_sd", "assessment_z", "assessment"),
)


def item_data(items: pd.DataFrame, rater: str, instrument: Mapping) -> pd.DataFrame:
    """One rater's answered items (``wai_items`` analysis table), with the time coding.

    Every answered item counts, also at an assessment with too many missing answers for a
    total: the model needs no pro-rating."""
    months = list(instrument["months"])
    data = items[items["rater"] == rater].copy()
    data["month"] = data["month"].astype(int)
    data["time"] = time_code(data["month"], months)
    return data.reset_index(drop=True)


def ordinal_levels(data: pd.DataFrame, patients=None, therapists=None) -> dict[str, list]:
    """The levels of the group effects: the trial's patients and therapists (default: those in
    ``data``)."""
    return {
        "patient": list(patients) if patients is not None else sorted(data["patient_id"].unique()),
        "therapist": (
            list(therapists) if therapists is not None else sorted(data["therapist_id"].unique())
        ),
    }


def ordinal_inputs(
    data: pd.DataFrame, instrument: Mapping, levels: Mapping[str, Sequence]
) -> dict[str, np.ndarray]:
    """The model's data inputs from :func:`item_data`: the answer as a category (0 for the
    lowest answer), the item, the assessment (patient x month), patient, therapist, arm and
    time of every answer."""
    months = list(instrument["months"])
    patient = pd.Categorical(data["patient_id"], categories=levels["patient"])
    therapist = pd.Categorical(data["therapist_id"], categories=levels["therapist"])
    if (patient.codes < 0).any() or (therapist.codes < 0).any():
        raise ValueError("an answer's patient or therapist is not among the model's levels")
    month_index = np.searchsorted(months, data["month"].to_numpy())
    return {
        "answer": (data["answer"].to_numpy() - instrument["response_min"]).astype("int64"),
        "item_index": (data["item"].to_numpy() - 1).astype("int64"),
        "patient_index": patient.codes.astype("int64"),
        "therapist_index": therapist.codes.astype("int64"),
        "assessment_index": (patient.codes * len(months) + month_index).astype("int64"),
        "treated": (data["arm"].to_numpy() != REFERENCE_ARM).astype(float),
        "time": data["time"].to_numpy(dtype=float),
    }


def cutpoint_prior_means(instrument: Mapping, priors: Mapping) -> np.ndarray:
    """Where each item's K - 1 cutpoints are centred a priori: ``cutpoints.spacing`` apart
    around ``cutpoints.centre`` (the reference arm's first-month mean is 0). The lowest has this
    prior mean; the gaps above it are log-normal around ``spacing``."""
    n_cuts = instrument["response_max"] - instrument["response_min"]
    spacing = priors["cutpoints"]["spacing"]
    return priors["cutpoints"]["centre"] + spacing * (np.arange(n_cuts) - (n_cuts - 1) / 2)


def build_ordinal_growth_model(
    data: pd.DataFrame,
    priors: Mapping,
    instrument: Mapping,
    patients: Sequence | None = None,
    therapists: Sequence | None = None,
):
    """The PyMC model of one rater's item answers (:func:`item_data`); its data are inputs
    (``pm.Data``) so that one compiled model can be refitted on other answers of the same trial.

    Group effects are non-centred. A patient without an answer has effects from the prior."""
    import pymc as pm
    import pytensor.tensor as pt

    levels = ordinal_levels(data, patients, therapists)
    months = list(instrument["months"])
    n_items = instrument["n_items"]
    inputs = ordinal_inputs(data, instrument, levels)
    coords = {
        "arm": list(ARMS),
        "item": list(range(1, n_items + 1)),
        "cut": list(range(instrument["response_min"], instrument["response_max"])),
        "gap": list(range(instrument["response_min"] + 1, instrument["response_max"])),
        "patient": levels["patient"],
        "therapist": levels["therapist"],
        "assessment": [f"{p}@{m}" for p in levels["patient"] for m in months],
    }
    mu_cut = np.tile(cutpoint_prior_means(instrument, priors), (n_items, 1))
    with pm.Model(coords=coords) as model:
        data_vars = {name: pm.Data(name, value) for name, value in inputs.items()}
        digital_level = pm.Normal("digital_level", 0.0, priors["level_difference"]["sigma"])
        change = pm.Normal("change", 0.0, priors["change"]["sigma"], dims="arm")
        effects = {}
        for sd_name, z_name, index in GROUP_EFFECTS:
            sd = pm.HalfNormal(sd_name, priors[sd_name]["sd"])
            z = pm.Normal(z_name, 0.0, 1.0, dims=index)
            effects[z_name] = sd * z
        # Each item's cutpoints: the lowest, then positive gaps (ordered by construction, so
        # that draws from the prior are ordered too).
        cut_prior = priors["cutpoints"]
        first = pm.Normal("cutpoint_first", mu=mu_cut[:, 0], sigma=cut_prior["sigma"], dims="item")
        gaps = pm.LogNormal(
            "cutpoint_gaps",
            mu=np.log(cut_prior["spacing"]),
            sigma=cut_prior["gap_log_sd"],
            dims=("item", "gap"),
        )
        cutpoints = pm.Deterministic(
            "cutpoints",
            pt.concatenate([first[:, None], first[:, None] + pt.cumsum(gaps, axis=1)], axis=1),
            dims=("item", "cut"),
        )
        treated, time = data_vars["treated"], data_vars["time"]
        arm_index = 1 - pt.cast(treated, "int64")  # ARMS order: treatment arm first
        eta = (
            digital_level * treated
            + change[arm_index] * time
            + effects["patient_level_z"][data_vars["patient_index"]]
            + effects["patient_change_z"][data_vars["patient_index"]] * time
            + effects["therapist_z"][data_vars["therapist_index"]]
            + effects["assessment_z"][data_vars["assessment_index"]]
        )
        pm.CustomDist(
            "answer_obs",
            eta,
            cutpoints[data_vars["item_index"]],
            logp=ordered_probit_logp,
            random=ordered_probit_random,
            signature="(),(c)->()",
            observed=data_vars["answer"],
            shape=data_vars["answer"].shape,
            dtype="int64",
        )
    return model


#: Stands in for an infinite outer cutpoint: far beyond any latent value, and finite, so that a
#: masked-out edge multiplies its zero weight to zero (an infinity would make NaN).
OUTER_EDGE = 1e3


def interval_log_prob(lower, upper):
    """log(Phi(upper) - Phi(lower)) for lower < upper, accurate in both tails and far into
    them: an interval in the upper half is mirrored into the lower one, and the difference is
    taken in log space (log Phi(high) + log(1 - exp(log Phi(low) - log Phi(high))))."""
    import pytensor.tensor as pt
    from pymc.distributions.dist_math import normal_lcdf

    mirror = pt.gt(lower + upper, 0)
    low = pt.switch(mirror, -upper, lower)
    high = pt.switch(mirror, -lower, upper)
    log_high = normal_lcdf(0.0, 1.0, high)
    return log_high + pt.log1mexp(normal_lcdf(0.0, 1.0, low) - log_high)


def ordered_probit_logp(value, eta, cutpoints):
    """log P(answer = value) = log(Phi(c[value] - eta) - Phi(c[value - 1] - eta)), with
    ``cutpoints`` the answer's own item's (last axis), c[-1] = -inf and c[K - 1] = +inf.

    Only the answer's two edges are evaluated (PyMC's OrderedProbit computes all K category
    probabilities of every answer, and normalises them)."""
    import pytensor.tensor as pt

    n_categories = cutpoints.shape[-1] + 1
    edge = pt.ones_like(cutpoints[..., :1]) * OUTER_EDGE
    lower_edges = pt.concatenate([-edge, cutpoints], axis=-1)
    upper_edges = pt.concatenate([cutpoints, edge], axis=-1)
    chosen = pt.eq(value[..., None], pt.arange(n_categories))
    lower = pt.sum(pt.switch(chosen, lower_edges, 0.0), axis=-1)
    upper = pt.sum(pt.switch(chosen, upper_edges, 0.0), axis=-1)
    return interval_log_prob(lower - eta, upper - eta)


def ordered_probit_random(eta, cutpoints, rng=None, size=None):
    """Answers (categories 0 ... K - 1) drawn from the cumulative probit: the number of
    cutpoints the latent value eta + N(0, 1) exceeds."""
    eta = np.asarray(eta)
    cutpoints = np.asarray(cutpoints)
    size = size if size is not None else np.broadcast_shapes(eta.shape, cutpoints.shape[:-1])
    latent = eta + rng.normal(size=size)
    return (latent[..., None] > cutpoints).sum(axis=-1).astype("int64")


def effect_variance(posterior: xr.Dataset, time: xr.DataArray) -> xr.DataArray:
    """The variance of the latent alliance around its arm mean at ``time``: every group effect
    (the patient's change scaled by time) and the item-level noise (1 on the probit scale)."""
    return (
        1.0
        + posterior["patient_level_sd"] ** 2
        + posterior["patient_change_sd"] ** 2 * time**2
        + posterior["therapist_sd"] ** 2
        + posterior["assessment_sd"] ** 2
    )


def ordinal_marginal_means(posterior: xr.Dataset, instrument: Mapping) -> xr.DataArray:
    """Posterior of the expected mean item score by arm x month, dims (chain, draw, arm,
    month): each item's expected answer given the arm's latent mean, the group effects and the
    item noise integrated out in closed form, averaged over the items."""
    months = list(instrument["months"])
    time = xr.DataArray(time_code(months, months), dims="month", coords={"month": months})
    treated = xr.DataArray([float(arm != REFERENCE_ARM) for arm in ARMS], dims="arm")
    treated = treated.assign_coords(arm=list(ARMS))
    latent = posterior["digital_level"] * treated + posterior["change"] * time
    scale = np.sqrt(effect_variance(posterior, time))
    z = (latent - posterior["cutpoints"]) / scale
    expected = instrument["response_min"] + xr.apply_ufunc(special.ndtr, z).sum("cut")
    means = expected.mean("item").transpose("chain", "draw", "arm", "month")
    return means.rename("marginal_mean")


def ordinal_estimands(tree, instrument: Mapping) -> xr.Dataset:
    """Marginal means, arm differences and the change difference (as the totals models')."""
    from alliance.growth import growth_contrasts

    posterior = tree["posterior"]
    posterior = posterior.to_dataset() if hasattr(posterior, "to_dataset") else posterior
    return xr.Dataset(growth_contrasts(ordinal_marginal_means(posterior, instrument)))


def assessment_totals(answers: np.ndarray, assessment: np.ndarray, instrument: Mapping):
    """The mean scored answer of each assessment (on the WAI scale) from answers coded
    0 ... K - 1; last axis of ``answers``: the answers, in the order of ``assessment``.
    Returns (assessments, totals with the assessments on the last axis)."""
    codes, index = np.unique(assessment, return_inverse=True)
    answers = np.asarray(answers, dtype=float) + instrument["response_min"]
    sums = np.zeros((*answers.shape[:-1], len(codes)))
    np.add.at(sums.T, index, np.moveaxis(answers, -1, 0))
    counts = np.bincount(index, minlength=len(codes))
    return codes, sums / counts


def assessments_of(tree, instrument: Mapping):
    """Per assessment of a fit: its observed total (mean scored answer), its arm and month
    (``groups``), and its replicated totals (draws x assessments) from the posterior predictive
    answers; plus the observed and replicated answers themselves (codes 0 ... K - 1)."""
    months = list(instrument["months"])
    constant = tree["constant_data"]
    assessment = constant["assessment_index"].to_numpy()
    observed = tree["observed_data"]["answer_obs"].to_numpy()
    replicated = tree["posterior_predictive"]["answer_obs"]
    replicated = replicated.stack(sample=("chain", "draw")).transpose("sample", ...).to_numpy()
    codes, observed_totals = assessment_totals(observed, assessment, instrument)
    _, replicated_totals = assessment_totals(replicated, assessment, instrument)
    first = pd.Series(np.arange(len(assessment))).groupby(assessment).first()
    treated = constant["treated"].to_numpy()[first.loc[codes].to_numpy()]
    groups = pd.DataFrame(
        {
            "arm": np.where(treated > 0.5, ARMS[0], REFERENCE_ARM),
            "month": np.asarray(months)[codes % len(months)],
        }
    )
    return {
        "observed_totals": observed_totals,
        "replicated_totals": replicated_totals,
        "groups": groups,
        "observed_answers": observed,
        "replicated_answers": replicated,
        "answer_groups": groups.iloc[np.searchsorted(codes, assessment)].reset_index(drop=True),
    }


def ordinal_checks(tree, instrument: Mapping, ci_prob: float = 0.95) -> pd.DataFrame:
    """Posterior predictive checks of the ordinal model, by arm x month: the share of item
    answers at the top of the scale (where the ceiling lives), the share of totals at the top
    and the SD of the totals (the statistics the totals models are checked on), observed
    against replicated."""
    from alliance.posterior_summary import predictive_check_row

    parts = assessments_of(tree, instrument)
    top = instrument["response_max"] - instrument["response_min"]
    upper = instrument["response_max"]
    rows = []
    for (arm, month), index in parts["answer_groups"].groupby(["arm", "month"]).groups.items():
        cell = np.asarray(list(index))
        value = float(np.mean(parts["observed_answers"][cell] == top))
        shares = np.mean(parts["replicated_answers"][:, cell] == top, axis=1)
        rows.append(
            {
                "statistic": "answers_at_top",
                **predictive_check_row(arm, month, value, shares, ci_prob),
            }
        )
    for (arm, month), index in parts["groups"].groupby(["arm", "month"]).groups.items():
        cell = np.asarray(list(index))
        observed, replicated = parts["observed_totals"][cell], parts["replicated_totals"][:, cell]
        value = float(np.mean(observed >= upper))
        shares = np.mean(replicated >= upper, axis=1)
        rows.append(
            {
                "statistic": "totals_at_top",
                **predictive_check_row(arm, month, value, shares, ci_prob),
            }
        )
        if cell.size > 1:
            value = float(np.std(observed, ddof=1))
            sds = replicated.std(axis=1, ddof=1)
            rows.append(
                {"statistic": "totals_sd", **predictive_check_row(arm, month, value, sds, ci_prob)}
            )
    return pd.DataFrame(rows)


def patient_log_likelihood(model, posterior: xr.Dataset) -> xr.Dataset:
    """The log-likelihood of each patient's answers per draw (dims chain, draw, patient): what
    the likelihood's power-scaling (prior sensitivity) needs, without one value per answer and
    draw on disk. (Not for PSIS-LOO: the model is not compared with the totals models by it.)"""
    from alliance.sampling import pointwise_log_likelihood

    pointwise = pointwise_log_likelihood(model, posterior)["answer_obs"]
    values = pointwise.transpose("chain", "draw", ...).to_numpy()
    patient = np.asarray(model["patient_index"].get_value())
    n_patients = len(model.coords["patient"])
    sums = np.zeros((*values.shape[:2], n_patients))
    np.add.at(np.moveaxis(sums, -1, 0), patient, np.moveaxis(values, -1, 0))
    return xr.Dataset(
        {"answer_obs": (("chain", "draw", "patient"), sums)},
        coords={
            **{d: posterior[d].to_numpy() for d in ("chain", "draw")},
            "patient": list(model.coords["patient"]),
        },
    )
