"""Missing not at random: delta-adjusted tipping points of the aim (a) findings F1 to F3.

Every growth model assumes that missing assessments are missing at random (MAR): given what was
observed, a missing rating is predicted by the model. The sensitivity analysis (the Bayesian
version of rbmi's delta adjustment) asks how far the missing ratings of each arm would have to lie
below that prediction for a published claim's verdict to change.

**Estimand.** The mean WAI score (item scale) of every randomised patient of an arm at a month,
observed or not, had the missing ratings of arm ``a`` been their MAR prediction shifted by
``delta_a`` item points. Under MAR (both deltas 0) this is the reported model's marginal mean.

**From the saved draws, without refitting.** The estimand is defined on the model's population
scale: for every posterior draw, the shifted marginal mean is

    mean_a,m(delta) = mean_a,m + delta_a * weight_a,m,

where ``weight_a,m`` is the share of the arm's randomised patients whose rating is missing at
that month (taken as known from the data). This is what the shift does to an arm mean: each
missing rating enters it with weight 1/N_a at its prediction, and the shift adds delta_a to each
of them. The arm differences and the difference in change follow as in the reported analysis
(:func:`alliance.growth.growth_contrasts`), and the verdicts as in the main report
(:func:`alliance.findings.verdict`). The model's marginal mean is a population mean (group
effects integrated out), not the trial's own average of observed and predicted ratings; a test
(tests/test_tipping_points.py) checks the definition against a trial whose missing ratings were
generated lower than at random, with the scale's limits. The scale's limits are not applied to
the shift: for downward shifts (the default grid) they hardly bind, but upward shifts near the
ceiling (and any shift of a censored model's expected capped score) overstate the move.

A finding with a two-sided claim (F3: "did differ") can be supported again beyond its tipping
point, in the other direction; a claim of no difference (F2) is most probable near one delta and
less on either side. The sentences name the first change from missing at random only.

Two variants of the shift: ``constant`` (every missing rating ``delta_a`` below its prediction)
and ``growing`` (``delta_a`` times the number of scheduled assessments since the patient's last
observed one: a patient who stopped rating after month 3 is ``delta_a`` below at month 6 and
``2 delta_a`` below at month 12), so the weight is the mean of that count over the arm's patients.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from alliance.design import ARMS, REFERENCE_ARM, TREATMENT_ARM
from alliance.findings import FINDINGS, claim_probability, support_threshold, verdict
from alliance.posterior_summary import month_labels, rope_for

#: The findings about aim (a): the arm differences (F1) and the differences in change (F2, F3).
TIPPING_FINDINGS = tuple(f for f in FINDINGS if f.key in ("F1", "F2", "F3"))
#: The ways the missing ratings may depart from their prediction (see the module's docstring).
VARIANTS = ("constant", "growing")
#: Columns of results/tables/tipping_points.csv (the data contract).
TIPPING_COLUMNS = [
    "finding",
    "estimand",
    "rater",
    "month",
    "delta_digital",
    "delta_ptau",
    "mean",
    "ci_low",
    "ci_high",
    "decisive_probability",
    "verdict",
]
DELTA_DIMS = {arm: f"delta_{arm}" for arm in ARMS}


def delta_grid(settings: Mapping) -> np.ndarray:
    """The shifts of each arm's missing ratings, in item points: ``lowest`` to ``highest`` by
    ``step`` (config ``missing_data.delta``), rounded to the step's decimals; 0 must be one of
    them, and there must be more than one."""
    lowest, highest, step = (float(settings[k]) for k in ("lowest", "highest", "step"))
    count = int(round((highest - lowest) / step)) + 1
    decimals = _decimals(step)
    grid = np.round(lowest + step * np.arange(count), decimals)
    if count < 2 or not np.isclose(grid[-1], highest) or not np.any(grid == 0):
        raise ValueError(
            f"the delta grid {lowest:g} to {highest:g} by {step:g} must reach its end, hold 0 "
            "and more than one value"
        )
    return grid


def _decimals(step: float) -> int:
    """Decimals that show every multiple of ``step`` exactly (0.125 -> 3)."""
    text = f"{step:.10f}".rstrip("0")
    return len(text.split(".")[1]) if "." in text else 0


def visits_since_last_observed(assessed: pd.DataFrame) -> pd.DataFrame:
    """For a table of ``assessed`` flags (patients x months, in month order): at each missing
    month, the number of scheduled assessments since the patient's last observed one (1 at the
    first missed month, 2 at the next, ...); 0 where the rating was observed."""
    counts = np.zeros(assessed.shape, dtype=int)
    flags = assessed.to_numpy(dtype=bool)
    for column in range(flags.shape[1]):
        previous = counts[:, column - 1] if column else np.zeros(len(flags), dtype=int)
        counts[:, column] = np.where(flags[:, column], 0, previous + 1)
    return pd.DataFrame(counts, index=assessed.index, columns=assessed.columns)


def missing_weights(alliance: pd.DataFrame, rater: str, months: Sequence[int], variant: str):
    """Weight of each arm's shift in its mean at each month (dims arm, month): the share of the
    arm's randomised patients whose ``rater`` rating is missing (``constant``) or the mean number
    of assessments since their last observed one (``growing``; 0 for an observed rating).

    ``alliance`` is the analysis table (data/processed/alliance.csv): one row per randomised
    patient, month and rater, with ``assessed``.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    from alliance.missing_data import assessed_table

    assessed = assessed_table(alliance, rater, months)
    if variant == "constant":
        shifted = (~assessed).astype(float)
    else:
        shifted = visits_since_last_observed(assessed).astype(float)
    weights = shifted.groupby(level="arm").mean().reindex(list(ARMS))
    if weights.isna().any().any():
        raise ValueError(f"an arm has no {rater} rows in the analysis table")
    return xr.DataArray(
        weights.to_numpy(),
        dims=("arm", "month"),
        coords={"arm": list(ARMS), "month": list(months)},
    )


def shifted_means(means: xr.DataArray, weights: xr.DataArray, grid: np.ndarray) -> xr.DataArray:
    """Marginal-mean draws (chain, draw, arm, month) shifted by every pair of deltas: dims
    (chain, draw, arm, month, delta_digital, delta_ptau)."""
    shift = xr.zeros_like(weights) + 0.0
    for arm, dim in DELTA_DIMS.items():
        delta = xr.DataArray(grid, dims=dim, coords={dim: grid})
        arm_shift = (weights.sel(arm=arm) * delta).expand_dims(arm=[arm])
        shift = shift + arm_shift.reindex(arm=list(ARMS), fill_value=0.0)
    return means + shift


def shifted_estimands(means: xr.DataArray, weights: xr.DataArray, grid: np.ndarray) -> dict:
    """The aim (a) quantities (:func:`alliance.growth.growth_contrasts`) over the delta grid."""
    from alliance.growth import growth_contrasts

    return growth_contrasts(shifted_means(means, weights, grid))


def quantity_summary(draws: xr.DataArray, ci_prob: float, rope: float) -> pd.DataFrame:
    """Per coordinate of ``draws`` (beyond chain and draw): the posterior mean, the equal-tailed
    ``ci_prob`` interval and the probabilities a verdict reads (``prob_positive``,
    ``prob_in_rope``), one row each, the coordinates as columns."""
    flat = draws.stack(sample=("chain", "draw"))
    tail = (1 - ci_prob) / 2
    stats = xr.Dataset(
        {
            "mean": flat.mean("sample"),
            "ci_low": flat.quantile(tail, dim="sample").drop_vars("quantile"),
            "ci_high": flat.quantile(1 - tail, dim="sample").drop_vars("quantile"),
            "prob_positive": (flat > 0).mean("sample"),
            "prob_in_rope": (abs(flat) < rope).mean("sample"),
        }
    )
    if not stats.sizes:  # one quantity
        return pd.DataFrame({name: [float(value)] for name, value in stats.items()})
    return stats.to_dataframe().reset_index()


def tipping_rows(
    estimands_by_rater: Mapping[str, Mapping[str, xr.DataArray]],
    summary: Mapping,
) -> pd.DataFrame:
    """The rows of results/tables/tipping_points.csv for one variant.

    ``estimands_by_rater``: per rater, the shifted quantities of :func:`shifted_estimands`.
    ``summary``: ``ci_prob``, the ROPEs and ``decision_prob``. Each row is one quantity of a
    finding at one grid point: its posterior mean and interval, its ``decisive_probability`` (the
    probability of what the finding claims about it) and the finding's ``verdict`` at that grid
    point (judged on all its quantities by :func:`alliance.findings.verdict`, as the main
    report judges them).
    """
    detail = []
    for rater, estimands in estimands_by_rater.items():
        for name in ("arm_difference", "change_difference"):
            table = quantity_summary(estimands[name], summary["ci_prob"], rope_for(name, summary))
            detail.append(table.assign(estimand=name, rater=rater))
    detail = pd.concat(detail, ignore_index=True)
    detail["month"] = month_labels(pd.to_numeric(detail["month"], errors="coerce"))
    detail[["arm", "term"]] = ""
    grid_columns = list(DELTA_DIMS.values())
    tables = []
    for finding in TIPPING_FINDINGS:
        quantities = pd.concat(
            [_matching(detail, finding.estimand, selector) for selector in finding.selectors],
            ignore_index=True,
        )
        if (
            len(quantities)
            != len(finding.selectors) * detail[grid_columns].drop_duplicates().shape[0]
        ):
            raise KeyError(f"{finding.key}: not every quantity at every grid point")
        quantities["decisive_probability"] = [
            claim_probability(row, finding.kind) for _, row in quantities.iterrows()
        ]
        verdicts = {
            key: verdict(point, finding.kind, summary["decision_prob"])[0]
            for key, point in quantities.groupby(grid_columns, sort=False)
        }
        quantities["verdict"] = [
            verdicts[key] for key in zip(*(quantities[c] for c in grid_columns), strict=True)
        ]
        tables.append(quantities.assign(finding=finding.key))
    return pd.concat(tables, ignore_index=True)[TIPPING_COLUMNS]


def _matching(detail: pd.DataFrame, estimand: str, selector: Mapping) -> pd.DataFrame:
    """The rows of ``estimand`` matching ``selector`` (as :func:`alliance.findings.select_rows`
    selects them, at every grid point at once)."""
    match = detail["estimand"] == estimand
    for column, value in selector.items():
        match &= detail[column].astype(str) == str(value)
    return detail[match]


def finding_surface(table: pd.DataFrame, finding: str) -> pd.DataFrame:
    """The finding's decisive probability (lowest across its quantities, as its verdict uses)
    and verdict at each grid point: columns delta_digital, delta_ptau, probability, verdict."""
    rows = table[table["finding"] == finding]
    return (
        rows.groupby(["delta_digital", "delta_ptau"])
        .agg(probability=("decisive_probability", "min"), verdict=("verdict", "first"))
        .reset_index()
    )


def first_change(surface: pd.DataFrame, along: str, verdict_at_zero: str, downward: bool = True):
    """Walking from 0 along ``along`` (the other arm's delta at 0), down the grid (or up, with
    ``downward`` False): the first delta at which the verdict differs from ``verdict_at_zero``
    and that verdict, or None."""
    other = "delta_ptau" if along == "delta_digital" else "delta_digital"
    line = surface[np.isclose(surface[other], 0.0)]
    line = line[line[along] <= 0] if downward else line[line[along] >= 0]
    for row in line.sort_values(along, ascending=not downward).itertuples():
        if row.verdict != verdict_at_zero:
            return float(getattr(row, along)), row.verdict
    return None


ARM_NAMES = {TREATMENT_ARM: "the digital arm", REFERENCE_ARM: "PTAU"}


def tipping_sentence(
    table: pd.DataFrame, finding: str, variant: str = "constant", no_missing: Sequence[str] = ()
) -> str:
    """One plain sentence on how far the missing ratings would have to depart from missing at
    random for the finding's verdict to change: each arm's shift alone (the other arm's missing
    ratings at random), in each direction the grid covers. ``no_missing``: arms without a
    missing rating for the finding's rater(s), which no shift can move."""
    surface = finding_surface(table, finding)
    zero = np.isclose(surface["delta_digital"], 0) & np.isclose(surface["delta_ptau"], 0)
    at_random = str(surface.loc[zero, "verdict"].iloc[0])
    per_visit = " for each assessment since their last rating" if variant == "growing" else ""
    changes, holds = [], []
    for arm in ARMS:
        if arm in no_missing:
            holds.append(f"{ARM_NAMES[arm]} having no missing ratings")
            continue
        deltas = surface[DELTA_DIMS[arm]]
        for downward, side, end in ((True, "below", deltas.min()), (False, "above", deltas.max())):
            if np.isclose(end, 0):
                continue  # the grid does not go this way
            change = first_change(surface, DELTA_DIMS[arm], at_random, downward)
            if change is None:
                holds.append(
                    f"{ARM_NAMES[arm]}'s missing ratings up to {_points(end)} "
                    f"{side} their prediction{per_visit}"
                )
            else:
                delta, becomes = change
                changes.append(
                    f"becomes {becomes} if {ARM_NAMES[arm]}'s missing ratings were "
                    f"{_points(delta)} {side} their prediction{per_visit}"
                )
    sentence = f"{finding} ({at_random} under missing at random) "
    if changes:
        sentence += "; ".join(changes)
        if holds:
            sentence += f", and stays {at_random} with " + " or ".join(holds)
    else:
        sentence += f"stays {at_random} with " + " or ".join(holds)
    return sentence + " (the other arm's missing ratings at random)."


def _points(delta: float) -> str:
    """A shift's size in words: "0.25 points", "1 point"."""
    size = abs(float(delta))
    return f"{size:g} point{'' if size == 1 else 's'}"


def support_thresholds(decision_prob: float) -> dict[str, float]:
    """The probability each finding's decisive probability must reach to be supported (the
    heatmaps' tipping contour)."""
    return {f.key: support_threshold(f.kind, decision_prob) for f in TIPPING_FINDINGS}


def weights_table(alliance: pd.DataFrame, raters: Sequence[str], months: Sequence[int]):
    """The weight of each arm's shift per rater and month (:func:`missing_weights`), both
    variants: columns rater, arm, month, share_missing (constant) and mean_assessments_missed
    (growing)."""
    rows = []
    for rater in raters:
        frames = {
            variant: missing_weights(alliance, rater, months, variant).to_series()
            for variant in VARIANTS
        }
        table = pd.DataFrame(
            {"share_missing": frames["constant"], "mean_assessments_missed": frames["growing"]}
        )
        rows.append(table.reset_index().assign(rater=rater))
    columns = ["rater", "arm", "month", "share_missing", "mean_assessments_missed"]
    return pd.concat(rows, ignore_index=True)[columns]


def tipping_analysis(
    fits: Mapping,
    alliance: pd.DataFrame,
    months: Sequence[int],
    delta: Mapping,
    summary: Mapping,
) -> dict:
    """The whole analysis from each rater's reported growth fit (``fits``: rater -> fit with its
    ``estimands`` group). Returns ``tables`` (per variant, the rows of :func:`tipping_rows`),
    ``sentences`` (columns finding, variant, sentence), ``weights`` (:func:`weights_table`) and
    ``thresholds`` (each finding's support threshold)."""
    grid = delta_grid(delta)
    weights = {rater: missing_weights(alliance, rater, months, "constant") for rater in fits}

    def arms_without_missing(finding) -> list[str]:
        raters = {selector["rater"] for selector in finding.selectors}
        return [
            arm
            for arm in ARMS
            if all(float(weights[rater].sel(arm=arm).sum()) == 0 for rater in raters)
        ]

    tables = {
        variant: tipping_rows(
            {
                rater: shifted_estimands(
                    fit["estimands"]["marginal_mean"],
                    missing_weights(alliance, rater, months, variant),
                    grid,
                )
                for rater, fit in fits.items()
            },
            summary,
        )
        for variant in VARIANTS
    }
    sentences = pd.DataFrame(
        [
            {
                "finding": f.key,
                "variant": variant,
                "sentence": tipping_sentence(table, f.key, variant, arms_without_missing(f)),
            }
            for variant, table in tables.items()
            for f in TIPPING_FINDINGS
        ]
    )
    return {
        "tables": tables,
        "sentences": sentences,
        "weights": weights_table(alliance, list(fits), months),
        "thresholds": support_thresholds(summary["decision_prob"]),
    }
