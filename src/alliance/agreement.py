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

    patients = list(pd.unique(pairs["patient_id"])) if patients is None else list(patients)
    therapists = (
        sorted(pd.unique(pairs["therapist_id"])) if therapists is None else list(therapists)
    )
    inputs = agreement_inputs(pairs, patients, therapists)
    eta = priors["lkj_eta"]["eta"]
    coords = {
        "arm": list(ARMS),
        "rater": list(RATERS),
        "patient": [str(p) for p in patients],
        "therapist": [str(t) for t in therapists],
    }
    with pm.Model(coords=coords) as model:
        data = {name: pm.Data(name, values) for name, values in inputs.items()}
        patient_arm = data["patient_arm"]
        level = pm.Normal(
            "level", mu=priors["level"]["mu"], sigma=priors["level"]["sigma"], dims=("arm", "rater")
        )
        change = pm.Normal("change", mu=0, sigma=priors["change"]["sigma"], dims=("arm", "rater"))

        def patient_effects(kind: str, sd_prior: float):
            """Both raters' patient effects (non-centred): columns patient, therapist."""
            sd = pm.HalfNormal(f"patient_{kind}_sd", sigma=sd_prior, dims=("arm", "rater"))
            corr = lkj_correlation(f"{kind}_corr", eta, "arm")
            z = pm.Normal(f"patient_{kind}_z", 0, 1, dims=("patient", "rater"))
            rho = corr[patient_arm]
            first = sd[:, 0][patient_arm] * z[:, 0]
            second = sd[:, 1][patient_arm] * (rho * z[:, 0] + pt.sqrt(1 - rho**2) * z[:, 1])
            return first, second

        levels = patient_effects("level", priors["patient_level_sd"]["sd"])
        changes = patient_effects("change", priors["patient_change_sd"]["sd"])

        therapist_sd = pm.HalfNormal(
            "therapist_sd", sigma=priors["therapist_sd"]["sd"], dims="rater"
        )
        therapist_z = pm.Normal("therapist_z", 0, 1, dims=("therapist", "rater"))
        v = therapist_z * therapist_sd
        residual_sd = pm.HalfNormal(
            "residual_sd", sigma=priors["residual_sd"]["sd"], dims=("arm", "rater")
        )
        residual_corr = lkj_correlation("residual_corr", eta, "arm")

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
