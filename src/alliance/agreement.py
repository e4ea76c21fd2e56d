"""Aim (b): a bivariate growth model of patient- and therapist-rated alliance (PyMC).

For patient i in arm a at time t (0 at month 3, 1 at month 12) and rater r:

    y[i,t,r] = level[a,r] + change[a,r] * t + u[i,r,0] + u[i,r,1] * t + v[therapist(i),r] + e[i,t,r]

The patient effects u (level and change for both raters) have arm-specific covariances with LKJ
priors, one for the two raters' levels and one for their changes; the residuals e of the two
ratings of one assessment have an arm-specific correlation; therapist effects v are independent
by rater. An assessment rated by one rater only contributes that rating through its marginal
normal density.
Agreement quantities are computed from the draws per arm.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr

from alliance.twin import time_code

ARMS = ("digital", "ptau")
RATERS = ("patient", "therapist")
EFFECTS = ("patient_level", "patient_change", "therapist_level", "therapist_change")


def agreement_data(alliance: pd.DataFrame, instrument: Mapping) -> pd.DataFrame:
    """One row per patient x month with at least one rating; columns ``patient``, ``therapist``.

    Patients are ordered by arm (digital first), which the model relies on.
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


def build_agreement_model(pairs: pd.DataFrame, priors: Mapping):
    """The PyMC model; ``pairs`` from :func:`agreement_data`."""
    import pymc as pm
    import pytensor.tensor as pt

    patients = pd.Index(pd.unique(pairs["patient_id"]))
    therapists = pd.Index(sorted(pd.unique(pairs["therapist_id"])))
    patient_arm = pairs.drop_duplicates("patient_id").set_index("patient_id")["arm"]
    patient_arm = patient_arm.reindex(patients).cat.codes.to_numpy()
    if np.any(np.diff(patient_arm) < 0):
        raise ValueError("patients must be ordered by arm (use agreement_data)")
    p_index = patients.get_indexer(pairs["patient_id"])
    t_index = therapists.get_indexer(pairs["therapist_id"])
    arm_index = pairs["arm"].cat.codes.to_numpy()
    time = pairs["time"].to_numpy()
    coords = {
        "arm": list(ARMS),
        "rater": list(RATERS),
        "effect": list(EFFECTS),
        "effect_bis": list(EFFECTS),
        "rater_bis": list(RATERS),
        "patient": list(patients),
        "therapist": list(therapists),
    }
    with pm.Model(coords=coords) as model:
        level = pm.Normal(
            "level", mu=priors["level"]["mu"], sigma=priors["level"]["sigma"], dims=("arm", "rater")
        )
        change = pm.Normal("change", mu=0, sigma=priors["change"]["sigma"], dims=("arm", "rater"))

        # Per arm, the patients' levels of both raters share one LKJ-prior covariance and their
        # changes another (level-change correlations are not modelled: with three assessments
        # they are barely identified and slowed the sampler without informing agreement).
        blocks, corr_rows, sd_rows = [], [], []
        for a, arm in enumerate(ARMS):
            n_arm = int(np.sum(patient_arm == a))
            parts = {}
            for kind, scale in (("level", "patient_level_sd"), ("change", "patient_change_sd")):
                chol, corr, sds = pm.LKJCholeskyCov(
                    f"patient_{kind}_chol_{arm}",
                    n=2,
                    eta=priors["lkj_eta"]["eta"],
                    sd_dist=pm.HalfNormal.dist(sigma=priors[scale]["sd"], shape=2),
                    compute_corr=True,
                )
                z = pm.Normal(f"patient_{kind}_z_{arm}", 0, 1, shape=(n_arm, 2))
                parts[kind] = (z @ chol.T, corr[0, 1], sds)
            lev, chg = parts["level"], parts["change"]
            # Columns in EFFECTS order: patient level, patient change, therapist level, change.
            blocks.append(pt.stack([lev[0][:, 0], chg[0][:, 0], lev[0][:, 1], chg[0][:, 1]], 1))
            corr = pt.eye(4)
            corr = pt.set_subtensor(corr[0, 2], lev[1])
            corr = pt.set_subtensor(corr[2, 0], lev[1])
            corr = pt.set_subtensor(corr[1, 3], chg[1])
            corr = pt.set_subtensor(corr[3, 1], chg[1])
            corr_rows.append(corr)
            sd_rows.append(pt.stack([lev[2][0], chg[2][0], lev[2][1], chg[2][1]]))
        pm.Deterministic("patient_corr", pt.stack(corr_rows), dims=("arm", "effect", "effect_bis"))
        pm.Deterministic("patient_sd", pt.stack(sd_rows), dims=("arm", "effect"))
        u = pt.concatenate(blocks, axis=0)

        therapist_sd = pm.HalfNormal(
            "therapist_sd", sigma=priors["therapist_sd"]["sd"], dims="rater"
        )
        therapist_z = pm.Normal("therapist_z", 0, 1, dims=("therapist", "rater"))
        v = therapist_z * therapist_sd

        res_chols, res_corr, res_sd = [], [], []
        for arm in ARMS:
            chol, corr, sds = pm.LKJCholeskyCov(
                f"residual_chol_{arm}",
                n=2,
                eta=priors["lkj_eta"]["eta"],
                sd_dist=pm.HalfNormal.dist(sigma=priors["residual_sd"]["sd"], shape=2),
                compute_corr=True,
            )
            res_chols.append(chol)
            res_corr.append(corr[0, 1])
            res_sd.append(sds)
        pm.Deterministic("residual_corr", pt.stack(res_corr), dims="arm")
        pm.Deterministic("residual_sd", pt.stack(res_sd), dims=("arm", "rater"))

        mu = pt.stack(
            [
                level[arm_index, r]
                + change[arm_index, r] * time
                + u[p_index, 2 * r]
                + u[p_index, 2 * r + 1] * time
                + v[t_index, r]
                for r in range(2)
            ],
            axis=1,
        )
        observed = pairs[list(RATERS)].to_numpy()
        both = ~np.isnan(observed).any(axis=1)
        for a, arm in enumerate(ARMS):
            rows = np.flatnonzero(both & (arm_index == a))
            pm.MvNormal(f"pair_{arm}", mu=mu[rows], chol=res_chols[a], observed=observed[rows])
            for r, rater in enumerate(RATERS):
                single = np.flatnonzero(~both & (arm_index == a) & ~np.isnan(observed[:, r]))
                if single.size:
                    pm.Normal(
                        f"single_{rater}_{arm}",
                        mu=mu[single, r],
                        sigma=res_sd[a][r],
                        observed=observed[single, r],
                    )
    return model


def agreement_quantities(posterior: xr.Dataset, months: list[int]) -> dict[str, xr.DataArray]:
    """Per-arm agreement quantities from posterior (or prior) draws.

    ``rater_correlation``: correlation of the patient-level levels across raters;
    ``change_correlation``: of the patient-level changes; ``rater_bias``: patient minus therapist
    mean, averaged over months with equal weight; ``icc_agreement``: absolute-agreement ICC of a
    single rating (2 cov / (var_p + var_t + bias^2)), averaged over months; ``loa_low`` and
    ``loa_high``: Bland-Altman 95% limits of agreement of single ratings, averaged over months.
    """
    corr = posterior["patient_corr"]
    sd = posterior["patient_sd"]
    cov = corr * sd * sd.rename(effect="effect_bis")
    time = xr.DataArray(time_code(months, months), dims="month", coords={"month": months})

    def part(name):
        return cov.sel(effect=name[0], effect_bis=name[1])

    def rater_var(prefix):
        return (
            part((f"{prefix}_level", f"{prefix}_level"))
            + 2 * time * part((f"{prefix}_level", f"{prefix}_change"))
            + time**2 * part((f"{prefix}_change", f"{prefix}_change"))
        ).drop_vars(["effect", "effect_bis"], errors="ignore")

    cross = (
        part(("patient_level", "therapist_level"))
        + time * part(("patient_level", "therapist_change"))
        + time * part(("patient_change", "therapist_level"))
        + time**2 * part(("patient_change", "therapist_change"))
    ).drop_vars(["effect", "effect_bis"], errors="ignore")
    res_sd = posterior["residual_sd"]
    ther_sd = posterior["therapist_sd"]
    var_p = rater_var("patient") + res_sd.sel(rater="patient") ** 2
    var_p = var_p + ther_sd.sel(rater="patient") ** 2
    var_t = rater_var("therapist") + res_sd.sel(rater="therapist") ** 2
    var_t = var_t + ther_sd.sel(rater="therapist") ** 2
    covariance = cross + posterior["residual_corr"] * res_sd.sel(rater="patient") * res_sd.sel(
        rater="therapist"
    )
    means = posterior["level"] + posterior["change"] * time
    bias = means.sel(rater="patient") - means.sel(rater="therapist")
    icc = 2 * covariance / (var_p + var_t + bias**2)
    diff_sd = np.sqrt(var_p + var_t - 2 * covariance)
    drop = ["rater", "effect", "effect_bis"]
    result = {
        "rater_correlation": corr.sel(effect="patient_level", effect_bis="therapist_level"),
        "change_correlation": corr.sel(effect="patient_change", effect_bis="therapist_change"),
        "rater_bias": bias.mean("month"),
        "icc_agreement": icc.mean("month"),
        "loa_low": (bias - 1.96 * diff_sd).mean("month"),
        "loa_high": (bias + 1.96 * diff_sd).mean("month"),
        "residual_correlation": posterior["residual_corr"],
    }
    return {
        name: value.drop_vars(drop, errors="ignore").rename(name) for name, value in result.items()
    }


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
    complete = pairs.dropna(subset=list(RATERS))
    rows = []
    tail = (1 - ci_prob) / 2
    for arm in ARMS:
        block = complete[complete["arm"] == arm].reset_index(drop=True)
        replicated = idata["posterior_predictive"][f"pair_{arm}"]
        draws = replicated.stack(sample=("chain", "draw")).transpose("sample", ...).to_numpy()
        draws = draws[:: max(1, len(draws) // max_draws)]
        for month in sorted(block["month"].unique()):
            cell = (block["month"] == month).to_numpy()
            x, y = draws[:, cell, 0], draws[:, cell, 1]
            xc, yc = x - x.mean(axis=1, keepdims=True), y - y.mean(axis=1, keepdims=True)
            r = (xc * yc).sum(axis=1) / np.sqrt((xc**2).sum(axis=1) * (yc**2).sum(axis=1))
            observed = float(
                np.corrcoef(block.loc[cell, "patient"], block.loc[cell, "therapist"])[0, 1]
            )
            rows.append(
                {
                    "arm": arm,
                    "month": int(month),
                    "observed": observed,
                    "replicated_mean": float(r.mean()),
                    "replicated_low": float(np.quantile(r, tail)),
                    "replicated_high": float(np.quantile(r, 1 - tail)),
                    "posterior_p": float(np.mean(r >= observed)),
                }
            )
    return pd.DataFrame(rows)


TRUTH_AND_BIAS_FORMULA = (
    "therapist_c ~ 0 + arm:C(month) + arm:C(month):patient_c + (1 | patient_id)"
)


def truth_and_bias_data(pairs: pd.DataFrame) -> pd.DataFrame:
    """Complete pairs with both ratings centred on the patients' grand mean (the "truth").

    In the truth-and-bias model (West and Kenny 2011) the therapist's rating is the judgement and
    the patient's rating the truth: the intercept is the therapist's directional bias (mean
    therapist minus mean patient rating) and the slope on the centred patient rating is the
    tracking of the patient's view.
    """
    complete = pairs.dropna(subset=list(RATERS)).copy()
    centre = complete["patient"].mean()
    complete["patient_c"] = complete["patient"] - centre
    complete["therapist_c"] = complete["therapist"] - centre
    complete["arm"] = complete["arm"].astype(str)
    return complete


def build_truth_and_bias_model(data: pd.DataFrame, priors: Mapping):
    """Bambi model of the therapist's rating on the patient's, by arm and month."""
    import bambi as bmb

    model = bmb.Model(
        TRUTH_AND_BIAS_FORMULA,
        data,
        priors={
            "common": bmb.Prior("Normal", mu=0, sigma=priors["change"]["sigma"]),
            "sigma": bmb.Prior("HalfNormal", sigma=priors["residual_sd"]["sd"]),
            "1|patient_id": bmb.Prior(
                "Normal",
                mu=0,
                sigma=bmb.Prior("HalfNormal", sigma=priors["patient_level_sd"]["sd"]),
            ),
        },
        categorical=["arm"],
    )
    model.build()
    return model


def truth_and_bias_draws(idata) -> dict[str, xr.DataArray]:
    """Directional bias and tracking per arm x month, as labelled draws."""
    posterior = idata["posterior"]
    bias_name = next(
        n for n in posterior.data_vars if n.startswith("arm:C(month)") and ":patient_c" not in n
    )
    slope_name = next(n for n in posterior.data_vars if n.endswith(":patient_c"))

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

    return {
        "directional_bias": relabel(posterior[bias_name], "directional_bias"),
        "tracking": relabel(posterior[slope_name], "tracking"),
    }
