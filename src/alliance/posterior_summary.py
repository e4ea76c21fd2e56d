"""Posterior summaries of estimand draws: intervals, probabilities, Monte Carlo diagnostics.

Rows follow the data contract's ``estimands.csv``; the detail table adds the probability inside
the region of practical equivalence (ROPE) and the convergence diagnostics of each estimand.
"""

from __future__ import annotations

import pandas as pd
import xarray as xr

CONTRACT_COLUMNS = [
    "aim",
    "estimand",
    "rater",
    "arm",
    "month",
    "term",
    "mean",
    "ci_low",
    "ci_high",
    "ci_prob",
    "prob_positive",
]
DETAIL_COLUMNS = [
    *CONTRACT_COLUMNS,
    "sd",
    "prob_in_rope",
    "rope",
    "ess_bulk",
    "ess_tail",
    "r_hat",
    "mcse_mean",
]
LABEL_DIMS = ("rater", "arm", "month", "term")


def summarise_draws(
    draws: xr.DataArray, ci_prob: float, rope: float, labels: dict | None = None
) -> pd.DataFrame:
    """One row per coordinate of ``draws`` (dims chain, draw, and labels such as arm, month).

    The interval is equal-tailed with mass ``ci_prob``; ``prob_positive`` is P(quantity > 0),
    ``prob_in_rope`` is P(|quantity| < rope).
    """
    import arviz as az

    draws = draws.transpose("chain", "draw", ...)
    dataset = xr.Dataset({"q": draws})
    diagnostics = {
        "ess_bulk": az.ess(dataset, method="bulk")["q"],
        "ess_tail": az.ess(dataset, method="tail")["q"],
        "r_hat": az.rhat(dataset)["q"],
        "mcse_mean": az.mcse(dataset)["q"],
    }
    tail = (1 - ci_prob) / 2
    flat = draws.stack(sample=("chain", "draw"))
    stats = {
        "mean": flat.mean("sample"),
        "sd": flat.std("sample"),
        "ci_low": flat.quantile(tail, dim="sample").drop_vars("quantile"),
        "ci_high": flat.quantile(1 - tail, dim="sample").drop_vars("quantile"),
        "prob_positive": (flat > 0).mean("sample"),
        "prob_in_rope": (abs(flat) < rope).mean("sample"),
        **diagnostics,
    }
    summary = xr.Dataset(stats)
    if summary.sizes:
        table = summary.to_dataframe().reset_index()
    else:  # a scalar quantity
        table = pd.DataFrame({name: [float(value)] for name, value in summary.items()})
    table = table.drop(columns=[c for c in table.columns if c in ("chain", "draw", "sample")])
    table["ci_prob"] = ci_prob
    table["rope"] = rope
    for column, value in (labels or {}).items():
        table[column] = value
    for column in ("aim", "estimand", *LABEL_DIMS):
        if column not in table:
            table[column] = ""
    return table[DETAIL_COLUMNS]


def contract_table(detail: pd.DataFrame) -> pd.DataFrame:
    """The columns of ``results/tables/estimands.csv``, in the contract's order."""
    return detail[CONTRACT_COLUMNS].copy()


def collect_estimands(tables: list[pd.DataFrame], columns=CONTRACT_COLUMNS) -> pd.DataFrame:
    """The aims' estimand rows in one table, ``columns`` in order, sorted by aim."""
    table = pd.concat([t[list(columns)] for t in tables], ignore_index=True)
    return table.sort_values("aim", kind="stable").reset_index(drop=True)


def month_labels(months: pd.Series) -> pd.Series:
    """Months as text without decimals ("3"), empty where the estimand has no month."""
    return months.astype("Int64").astype("string").fillna("").astype(str)


def percent(probability: float) -> str:
    """A probability as a percentage, never rounded up to a certain 100% or down to 0%."""
    if probability > 0.999:
        return "above 99.9%"
    if probability < 0.001:
        return "below 0.1%"
    return f"{probability:.1%}"
