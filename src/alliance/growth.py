"""Aim (a): hierarchical growth models of alliance by arm and rater (Bambi).

A model is a formula, a likelihood and priors, all from the config. Estimands are computed from
posterior draws as labelled arrays: marginal means by arm x month (population average: group
effects integrated out), arm differences per month, and the difference between arms in the change
from the first to the last month.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr
from scipy import special

from alliance.design import ARMS, RATERS, REFERENCE_ARM, TREATMENT_ARM, time_code
from alliance.posterior_summary import predictive_check_row

CEILING_COLUMN = "ceiling"


def growth_data(alliance: pd.DataFrame, rater: str, instrument: Mapping) -> pd.DataFrame:
    """Every scored assessment of one rater, with the model's time codings.

    ``time`` is 0 at the first month and 1 at the last (so arm:time is the change difference);
    ``ceiling`` marks totals at the top of the scale (right-censored for a censored likelihood).
    No patient is dropped because another of their assessments is missing.
    """
    months = list(instrument["months"])
    data = alliance[(alliance["rater"] == rater) & alliance["assessed"]].copy()
    data["time"] = time_code(data["month"], months)
    data["month"] = data["month"].astype(int)
    data["arm"] = pd.Categorical(data["arm"], categories=list(ARMS))
    data[CEILING_COLUMN] = np.where(
        data["wai_total"] >= instrument["response_max"], "right", "none"
    )
    columns = ["patient_id", "therapist_id", "centre", "arm", "month", "time", "wai_total"]
    return data[[*columns, CEILING_COLUMN]].reset_index(drop=True)


def model_formula(spec: Mapping) -> str:
    """The Bambi formula: the config's formula, with the censoring wrapper when needed."""
    formula = spec["formula"]
    if spec["likelihood"] == "censored_gaussian":
        response, rhs = formula.split("~", 1)
        return f"censored({response.strip()}, {CEILING_COLUMN}) ~{rhs}"
    return formula


def bambi_priors(priors: Mapping, spec: Mapping | None = None) -> dict:
    """Bambi priors from the config: Intercept, common effects, residual SD, group SDs.

    A model with ``residual_sd_by`` gets the ``log_sigma`` prior on each group's log residual SD.
    """
    import bambi as bmb

    def prior(entry: Mapping):
        parameters = {k: v for k, v in entry.items() if k not in ("distribution", "why")}
        return bmb.Prior(entry["distribution"], **parameters)

    by = (spec or {}).get("residual_sd_by")
    result = {
        "Intercept": prior(priors["intercept"]),
        "common": prior(priors["common"]),
        "sigma": {by: prior(priors["log_sigma"])} if by else prior(priors["sigma"]),
    }
    for term, scale in priors["group_sd"].items():
        result[term] = bmb.Prior("Normal", mu=0, sigma=bmb.Prior("HalfNormal", sigma=scale["sd"]))
    return result


def build_growth_model(data: pd.DataFrame, spec: Mapping, priors: Mapping):
    """The Bambi model for one rater and one model specification.

    Every group-level term of the formula must have its SD prior in ``priors["group_sd"]``, so that
    the priors reported are the priors used.
    """
    import bambi as bmb

    if spec.get("residual_sd_by") and spec["likelihood"] != "gaussian":
        raise ValueError("residual_sd_by is implemented for the gaussian likelihood only")
    formula = model_formula(spec)
    if spec.get("residual_sd_by"):
        formula = bmb.Formula(formula, f"sigma ~ 0 + {spec['residual_sd_by']}")
    model = bmb.Model(
        formula,
        data,
        family="gaussian",
        priors=bambi_priors(priors, spec),
        categorical=["arm"],
        # Uncentred predictors: the intercept prior is then the prior of the digital arm's mean
        # at month 3, as configured (centred, it would be the prior of the mean at the average
        # arm and time), and the posterior holds the sampled values, which
        # alliance.sampling.fit_bambi needs.
        center_predictors=False,
    )
    unpriored = set(group_terms(model)) - set(priors["group_sd"])
    if unpriored:
        raise ValueError(
            f"group-level terms without a configured prior (growth.priors.group_sd): "
            f"{', '.join(sorted(unpriored))}"
        )
    model.build()
    return model


def group_terms(model) -> dict:
    """The model's group-level terms by name (e.g. '1|patient_id')."""
    return dict(model.parameters[model.family.likelihood.parent].group_specific_terms)


def prediction_grid(instrument: Mapping) -> pd.DataFrame:
    """One row per arm x month, with every column a growth formula may use."""
    months = list(instrument["months"])
    grid = pd.DataFrame(
        [(arm, month) for arm in ARMS for month in months], columns=["arm", "month"]
    )
    grid["time"] = time_code(grid["month"], months)
    grid["arm"] = pd.Categorical(grid["arm"], categories=list(ARMS))
    grid[CEILING_COLUMN] = "none"
    return grid


def _group_sd_terms(posterior: xr.Dataset) -> list[str]:
    return [name for name in posterior.data_vars if name.endswith("_sigma") and "|" in name]


def marginal_means(model, idata, spec: Mapping, instrument: Mapping) -> xr.DataArray:
    """Posterior of the expected WAI total by arm x month, dims (chain, draw, arm, month).

    For a Gaussian likelihood this is the fixed-effect prediction. For the censored likelihood it
    is the expected observed (ceiling-capped) score E[min(Y, max)], integrating the group effects
    and the residual out in closed form.
    """
    grid = prediction_grid(instrument)
    predicted = model.predict(
        idata, data=grid, kind="response_params", include_group_specific=False, inplace=False
    )
    mu = predicted["posterior"]["mu"]
    obs_dim = [d for d in mu.dims if d not in ("chain", "draw")][0]
    values = mu.transpose("chain", "draw", obs_dim).to_numpy()
    arms = list(ARMS)
    months = list(instrument["months"])
    values = values.reshape(values.shape[0], values.shape[1], len(arms), len(months))
    result = xr.DataArray(
        values,
        dims=("chain", "draw", "arm", "month"),
        coords={"arm": arms, "month": months},
        name="marginal_mean",
    )
    if spec["likelihood"] == "censored_gaussian":
        posterior = idata["posterior"]
        time = xr.DataArray(time_code(months, months), dims="month", coords={"month": months})
        variance = posterior["sigma"] ** 2
        for name in _group_sd_terms(posterior):
            weight = time**2 if name.startswith("time|") else 1.0
            variance = variance + weight * posterior[name] ** 2
        result = expected_capped(result, np.sqrt(variance), instrument["response_max"])
        result.name = "marginal_mean"
    return result


def expected_capped(mean, sd, upper: float):
    """E[min(Y, upper)] for Y ~ Normal(mean, sd); works on arrays and labelled arrays."""
    z = (mean - upper) / sd
    # The standard normal CDF and density (scipy.special: scipy.stats costs 0.4 s to import).
    density = np.exp(-(z**2) / 2) / np.sqrt(2 * np.pi)
    excess = (mean - upper) * xr.apply_ufunc(special.ndtr, z) + sd * density
    return mean - excess


def growth_contrasts(means: xr.DataArray) -> dict[str, xr.DataArray]:
    """Arm differences per month and the change difference, from marginal-mean draws."""
    first, last = means["month"].values[0], means["month"].values[-1]
    difference = means.sel(arm=TREATMENT_ARM) - means.sel(arm=REFERENCE_ARM)
    change = difference.sel(month=last) - difference.sel(month=first)
    return {
        "marginal_mean": means,
        "arm_difference": difference.rename("arm_difference"),
        "change_difference": change.drop_vars("month", errors="ignore").rename("change_difference"),
    }


def ceiling_statistic(values: np.ndarray, upper: float) -> np.ndarray:
    """Share of scores at (or, for a Gaussian replicate, above) the scale's ceiling."""
    return np.mean(np.asarray(values) >= upper, axis=-1)


def replicate_scores(idata, spec: Mapping, upper: float) -> np.ndarray:
    """Posterior predictive draws as (draws, observations), capped for a censored model."""
    group = idata["posterior_predictive"]
    name = list(group.data_vars)[0]
    draws = group[name].stack(sample=("chain", "draw")).transpose("sample", ...).to_numpy()
    if spec["likelihood"] == "censored_gaussian":
        draws = np.minimum(draws, upper)
    return draws


def frequentist_check(data: pd.DataFrame, instrument: Mapping) -> pd.DataFrame:
    """A linear mixed model of the same design (statsmodels REML), for comparison.

    Random intercept and time slope per patient; the therapist variance is not included (the
    statsmodels MixedLM has one grouping factor), which is stated beside the table.
    """
    import statsmodels.formula.api as smf

    frame = data.copy()
    frame["digital"] = (frame["arm"] == TREATMENT_ARM).astype(float)
    model = smf.mixedlm(
        "wai_total ~ digital * time", frame, groups=frame["patient_id"], re_formula="~time"
    )
    fit = model.fit(reml=True, method="lbfgs")
    months = list(instrument["months"])
    times = time_code(months, months)
    rows = []
    cov = fit.cov_params()
    for month, t in zip(months, times, strict=True):
        weights = pd.Series(0.0, index=fit.params.index)
        weights["digital"] = 1.0
        weights["digital:time"] = t
        estimate = float(weights @ fit.params)
        se = float(np.sqrt(weights @ cov.loc[weights.index, weights.index] @ weights))
        rows.append(("arm_difference", month, estimate, se))
    rows.append(
        (
            "change_difference",
            "",
            float(fit.params["digital:time"]),
            float(np.sqrt(cov.loc["digital:time", "digital:time"])),
        )
    )
    table = pd.DataFrame(rows, columns=["estimand", "month", "estimate", "se"])
    table["ci_low"] = table["estimate"] - 1.96 * table["se"]
    table["ci_high"] = table["estimate"] + 1.96 * table["se"]
    table["p_value"] = 2 * special.ndtr(-np.abs(table["estimate"] / table["se"]))
    return table


def ceiling_check(idata, spec: Mapping, upper: float, ci_prob: float = 0.95) -> pd.DataFrame:
    """Observed vs replicated share of totals at the ceiling, by arm x month."""
    observed, groups = observed_and_groups(idata)
    replicated = replicate_scores(idata, spec, upper)
    rows = []
    for (arm, month), index in groups.groupby(["arm", "month"]).groups.items():
        cell = np.asarray(list(index))
        value = float(ceiling_statistic(observed[cell], upper))
        shares = ceiling_statistic(replicated[:, cell], upper)
        rows.append(predictive_check_row(arm, month, value, shares, ci_prob))
    return pd.DataFrame(rows)


def sd_check(idata, spec: Mapping, upper: float, ci_prob: float = 0.95) -> pd.DataFrame:
    """Observed vs replicated SD of the totals, by arm x month (a posterior predictive check of
    the residual SD's structure: one SD for both arms, or one per arm)."""
    observed, groups = observed_and_groups(idata)
    replicated = replicate_scores(idata, spec, upper)
    rows = []
    for (arm, month), index in groups.groupby(["arm", "month"]).groups.items():
        cell = np.asarray(list(index))
        if cell.size < 2:  # no SD to compare (one assessment in this arm and month)
            continue
        value = float(np.std(observed[cell], ddof=1))
        sds = replicated[:, cell].std(axis=1, ddof=1)
        rows.append(predictive_check_row(arm, month, value, sds, ci_prob, "observed_sd"))
    return pd.DataFrame(rows)


def attach_groups(idata, data: pd.DataFrame) -> None:
    """Store each observation's arm and month beside the observed totals (for the checks)."""
    idata["observed_data"] = (
        idata["observed_data"]
        .to_dataset()
        .assign(
            month=("__obs__", data["month"].to_numpy()),
            arm=("__obs__", data["arm"].astype(str).to_numpy()),
        )
    )


def observed_and_groups(idata) -> tuple[np.ndarray, pd.DataFrame]:
    """Observed totals and their arm and month, in the model's observation order."""
    group = idata["observed_data"]
    response = [n for n in group.data_vars if n not in ("month", "arm")][0]
    frame = pd.DataFrame({"arm": group["arm"].to_numpy(), "month": group["month"].to_numpy()})
    return group[response].to_numpy(), frame


def loo_comparison(
    fits: Mapping[str, object], specs: Mapping[str, Mapping], baseline: str | None = None
) -> pd.DataFrame:
    """PSIS-LOO of each model and, among models with the same likelihood, their comparison.

    A censored likelihood puts probability mass on totals at the ceiling, so its ELPD is not on
    the same footing as a Gaussian density's; it is listed but compared only with its own kind.
    With ``baseline`` (a model name), each model of the baseline's likelihood also gets its ELPD
    minus the baseline's (``elpd_vs_baseline``, positive: predicts better) and the SE of that
    paired difference (``se_vs_baseline``).
    """
    import arviz as az

    rows, loos = [], {}
    for name, idata in fits.items():
        loo = loos[name] = az.loo(idata, pointwise=True)
        k = np.asarray(loo.pareto_k)
        rows.append(
            {
                "model": name,
                "likelihood": specs[name]["likelihood"],
                "elpd_loo": float(loo.elpd),
                "se": float(loo.se),
                "p_loo": float(loo.p),
                "n_high_pareto_k": int(np.sum(k > loo.good_k)),
                "pareto_k_threshold": float(loo.good_k),
                "n_observations": int(k.size),
            }
        )
    table = pd.DataFrame(rows)
    table["elpd_diff"] = np.nan
    table["dse"] = np.nan
    table["stacking_weight"] = np.nan
    for _, group in table.groupby("likelihood"):
        if len(group) < 2:
            continue
        compared = az.compare({name: loos[name] for name in group["model"]})
        for name, row in compared.iterrows():
            at = table.index[table["model"] == name][0]
            table.loc[at, ["elpd_diff", "dse", "stacking_weight"]] = (
                row["elpd_diff"],
                row["dse"],
                row["weight"],
            )
    table["elpd_vs_baseline"] = np.nan
    table["se_vs_baseline"] = np.nan
    if baseline is not None:
        reference = np.asarray(loos[baseline].elpd_i).ravel()
        for at, row in table.iterrows():
            if row["likelihood"] != specs[baseline]["likelihood"]:
                continue
            difference = np.asarray(loos[row["model"]].elpd_i).ravel() - reference
            table.loc[at, "elpd_vs_baseline"] = float(difference.sum())
            table.loc[at, "se_vs_baseline"] = float(np.sqrt(difference.size * difference.var()))
    return table


def choose_reported_model(
    comparison: pd.DataFrame,
    baseline: str,
    alternatives: Sequence[str],
    min_se: float,
    basis: str = "PSIS-LOO",
) -> tuple[str, str]:
    """The model to report for one rater, and why.

    ``comparison``: one row per model with ``elpd_vs_baseline`` and ``se_vs_baseline``
    (:func:`alliance.cross_validation.kfold_comparison`, or :func:`loo_comparison` with
    ``baseline``); ``basis`` names where the ELPDs come from. The alternative with the highest
    ELPD replaces the baseline when it predicts better by more than ``min_se`` standard errors of
    the paired difference; otherwise the simpler baseline is kept.
    """
    rows = comparison.set_index("model")
    candidates = rows.loc[[a for a in alternatives if a in rows.index]]
    if candidates.empty:
        return baseline, f"{baseline}: no alternative configured"
    best = candidates["elpd_vs_baseline"].idxmax()
    gain, se = candidates.loc[best, ["elpd_vs_baseline", "se_vs_baseline"]]
    high_k = (
        int(rows.loc[[baseline, best], "n_high_pareto_k"].max()) if "n_high_pareto_k" in rows else 0
    )
    note = f"; up to {high_k} observations with high Pareto k, so indicative" if high_k else ""
    verdict = f"{basis} ELPD of {best} minus {baseline}: {gain:.1f} (SE {se:.1f}{note})"
    if gain > min_se * se:
        return best, f"{verdict}, more than {min_se:g} SE: {best} reported"
    return baseline, f"{verdict}, not more than {min_se:g} SE: {baseline} reported"


def growth_estimands(model, idata, spec: Mapping, instrument: Mapping) -> xr.Dataset:
    """The reported quantities of one growth fit (or of prior draws): marginal means by arm and
    month, the arm differences by month and the difference in change (:func:`growth_contrasts`)."""
    return xr.Dataset(growth_contrasts(marginal_means(model, idata, spec, instrument)))


def cross_validated_models(growth: Mapping) -> list[str]:
    """The growth models cross-validated (config section ``growth``): those listed under
    ``cross_validation.models``, or, when none are, those the model choice needs (the reported
    model and its alternatives)."""
    listed = list(growth["cross_validation"]["models"])
    needed = [growth["reported_model"], *growth["reported_alternatives"]]
    return listed or list(dict.fromkeys(needed))


def choose_reported_models(
    fits: Sequence,
    kfolds: Mapping[tuple[str, str], pd.DataFrame],
    specs: Mapping[str, Mapping],
    baseline: str,
    alternatives: Sequence[str],
    min_se: float,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per rater, the comparison of its growth models and the model reported (and why).

    The choice rests on leave-patient-out cross-validation (``kfolds``: (rater, model) ->
    :func:`alliance.cross_validation.kfold_growth` table); PSIS-LOO of the ``fits`` (each
    labelled by its ``rater`` and ``model`` attributes) is listed beside it (``loo_`` columns;
    a model not cross-validated has those only).
    Returns the comparison (one row per rater and model, ``reported`` marking the choice) and the
    choice (``rater``, ``model``, ``reason``).
    """
    from alliance.cross_validation import kfold_comparison

    comparison, choice = [], []
    for rater in RATERS:
        own = {fit.attrs["model"]: fit for fit in fits if fit.attrs["rater"] == rater}
        validated = {name: kfolds[(rater, name)] for name in own if (rater, name) in kfolds}
        table = kfold_comparison(validated, specs, baseline)
        model, reason = choose_reported_model(
            table, baseline, alternatives, min_se, basis="Leave-patient-out"
        )
        loo = loo_comparison(own, specs)[
            ["model", "elpd_loo", "se", "n_high_pareto_k", "pareto_k_threshold"]
        ].rename(columns={"se": "loo_se", "n_high_pareto_k": "loo_n_high_pareto_k"})
        table = table.merge(loo, on="model", how="outer")
        table = table.set_index("model").loc[list(own)].reset_index()  # the config's order
        table["likelihood"] = [specs[name]["likelihood"] for name in table["model"]]
        table.insert(0, "rater", rater)
        table["reported"] = table["model"] == model
        comparison.append(table)
        choice.append({"rater": rater, "model": model, "reason": reason})
    return pd.concat(comparison, ignore_index=True), pd.DataFrame(choice)


def frequentist_beside_bayes(
    alliance: pd.DataFrame, reported: pd.DataFrame, instrument: Mapping
) -> pd.DataFrame:
    """The frequentist cross-check (:func:`frequentist_check`) of each rater beside the reported
    model's posterior mean and interval of the same contrast (``bayes_*`` columns)."""
    from alliance.posterior_summary import month_labels

    tables = []
    for rater in RATERS:
        table = frequentist_check(growth_data(alliance, rater, instrument), instrument)
        table.insert(0, "rater", rater)
        tables.append(table)
    frequentist = pd.concat(tables, ignore_index=True)
    frequentist["month"] = month_labels(pd.to_numeric(frequentist["month"]))
    bayes = reported[reported["estimand"].isin(["arm_difference", "change_difference"])]
    bayes = bayes[["estimand", "rater", "month", "mean", "ci_low", "ci_high"]].rename(
        columns={"mean": "bayes_mean", "ci_low": "bayes_ci_low", "ci_high": "bayes_ci_high"}
    )
    return frequentist.merge(
        bayes.astype({"month": str}), on=["estimand", "rater", "month"], how="left"
    )


def observed_means(alliance: pd.DataFrame) -> pd.DataFrame:
    """Observed mean WAI total by rater, arm and month (assessed rows)."""
    return (
        alliance[alliance["assessed"]]
        .groupby(["rater", "arm", "month"])["wai_total"]
        .mean()
        .rename("mean")
        .reset_index()
    )


def contrast_labels(contrasts: pd.DataFrame, months: Sequence[int]) -> pd.Series:
    """Row labels of the growth contrasts: ``patient: arm difference, month 3`` or, for a row
    without a month (the change), ``patient: change difference (3 to 12)``."""

    def where(month) -> str:
        if str(month) in ("", "nan"):
            return f" ({min(months)} to {max(months)})"
        return f", month {month}"

    return (
        contrasts["rater"]
        + ": "
        + contrasts["estimand"].str.replace("_", " ")
        + contrasts["month"].map(where)
    )


def contrasts_side_by_side(all_models: pd.DataFrame, models: Sequence[str]) -> pd.DataFrame:
    """Every growth model's contrasts beside each other: one row per rater and contrast (arm
    difference per month, change difference), one column per model (``models``, in that order;
    those without rows left out) holding "mean [low, high]"."""
    table = all_models[all_models["estimand"] != "marginal_mean"].copy()
    table["month"] = table["month"].fillna("").astype(str)
    table["cell"] = [
        f"{mean:.2f} [{low:.2f}, {high:.2f}]"
        for mean, low, high in zip(table["mean"], table["ci_low"], table["ci_high"], strict=True)
    ]
    wide = table.pivot_table(
        index=["rater", "estimand", "month"], columns="model", values="cell", aggfunc="first"
    )
    present = [model for model in models if model in wide.columns]
    wide = wide[present].reset_index()
    wide.columns.name = None
    order = pd.to_numeric(wide["month"], errors="coerce")  # months as numbers; none last
    wide = wide.assign(_order=order).sort_values(
        ["rater", "estimand", "_order"], kind="stable", na_position="last", ignore_index=True
    )
    return wide.drop(columns="_order")


def missed_cells(checks: pd.DataFrame) -> int:
    """How many rows of a predictive check miss: the observed statistic outside the replicates'
    interval (``replicated_low`` to ``replicated_high``). Not by the posterior p = P(replicated
    >= observed): the statistics are shares of a few dozen totals, and an observed share of 0
    that every replicate ties gives p = 1 without any misfit."""
    columns = [name for name in ("observed", "observed_sd") if name in checks]
    observed = checks[columns].bfill(axis=1).iloc[:, 0]  # the SD check's is ``observed_sd``
    outside = (observed < checks["replicated_low"]) | (observed > checks["replicated_high"])
    return int(outside.sum())


def model_choice_statement(
    choice: pd.DataFrame,
    totals_checks: pd.DataFrame,
    ordinal_checks: pd.DataFrame,
    all_models: pd.DataFrame,
    ci_prob: float,
) -> list[str]:
    """Per rater, which growth model is reported and why, in words, from the comparisons.

    ``choice``: the cross-validated choice (:func:`choose_reported_models`); ``totals_checks``:
    the ceiling and SD checks of the totals models (``rater``, ``model``, ``posterior_p``);
    ``ordinal_checks``: the ordinal model's (:func:`alliance.ordinal.ordinal_checks` with
    ``rater``; empty when it is switched off); ``all_models``: every model's estimand rows. The
    ordinal model predicts the totals too, so it is compared with the reported model on the
    same checks of the totals (share at 7, SD by arm and month) and on the contrasts."""
    from alliance.ordinal import ORDINAL_MODEL

    sentences = []
    for row in choice.itertuples():
        own = totals_checks[(totals_checks["rater"] == row.rater)]
        reported_checks = own[own["model"] == row.model]
        missed = missed_cells(reported_checks)
        text = (
            f"{row.rater.capitalize()} rating: {row.model} is reported ({row.reason}). The "
            f"observed share of totals at 7 or SD falls outside its replicates' "
            f"{ci_prob:.0%} interval in {missed} of {len(reported_checks)} arm-by-month checks."
        )
        items = (
            ordinal_checks[
                (ordinal_checks["rater"] == row.rater)
                & ordinal_checks["statistic"].isin(["totals_at_top", "totals_sd"])
            ]
            if not ordinal_checks.empty
            else ordinal_checks
        )
        if items.empty:
            sentences.append(
                f"{text} The item-level ordinal model was not fitted "
                "(growth.ordinal.enabled), so the ceiling at the item level is not checked."
            )
            continue
        ordinal_missed = missed_cells(items)
        contrasts = all_models[
            (all_models["rater"] == row.rater) & (all_models["estimand"] != "marginal_mean")
        ]
        key = ["estimand", "month"]
        paired = contrasts[contrasts["model"] == row.model].merge(
            contrasts[contrasts["model"] == ORDINAL_MODEL], on=key, suffixes=("", "_ordinal")
        )
        if paired.empty:
            sentences.append(f"{text} The item-level ordinal model's contrasts are missing.")
            continue
        largest = float((paired["mean"] - paired["mean_ordinal"]).abs().max())

        def excludes_zero(low, high):
            return (low > 0) | (high < 0)

        changed = int(
            (
                excludes_zero(paired["ci_low"], paired["ci_high"])
                != excludes_zero(paired["ci_low_ordinal"], paired["ci_high_ordinal"])
            ).sum()
        )
        text += (
            f" For the item-level ordinal model it falls outside in {ordinal_missed} of "
            f"{len(items)} of the same checks; its contrasts differ from {row.model}'s by at most "
            f"{largest:.2f} WAI points, and {changed} of {len(paired)} change whether their "
            f"{ci_prob:.0%} interval excludes 0."
        )
        # Rates, not counts (the ordinal model has no SD check where a cell has one total), and
        # by at least two checks: at 95% one miss in a dozen checks is chance.
        expected_at_its_rate = ordinal_missed / len(items) * len(reported_checks)
        better_fit = missed - expected_at_its_rate >= 2
        if better_fit or changed:
            text += (
                f" The item-level model reproduces the totals better or changes a contrast's "
                f"verdict: read its contrasts beside {row.model}'s (side by side below) before "
                "the reported ones."
            )
        else:
            text += (
                f" Modelling the ceiling at the item level does not change the conclusions, so "
                f"the simpler model of the totals, {row.model}, is reported."
            )
        sentences.append(text)
    return sentences
