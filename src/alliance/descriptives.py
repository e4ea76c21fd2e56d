"""Descriptive statistics of the analysis tables: flow of patients, means, the ceiling."""

from __future__ import annotations

import pandas as pd

CELL = ["arm", "rater", "month"]


def patient_flow(alliance: pd.DataFrame) -> pd.DataFrame:
    """Patients randomised per arm and assessed per arm x rater x month, with the share."""
    randomised = alliance.groupby("arm")["patient_id"].nunique().rename("randomised")
    assessed = (
        alliance[alliance["assessed"]].groupby(CELL)["patient_id"].nunique().rename("assessed")
    )
    flow = assessed.reset_index().merge(randomised.reset_index(), on="arm")
    flow["share_assessed"] = flow["assessed"] / flow["randomised"]
    return flow[[*CELL, "randomised", "assessed", "share_assessed"]]


def alliance_summary(alliance: pd.DataFrame, response_max: int) -> pd.DataFrame:
    """Mean and SD of the WAI total by arm x rater x month, and the ceiling.

    ``share_items_at_ceiling`` is the share of answered (scored) items at the top answer;
    ``share_totals_at_ceiling`` the share of totals at the top of the scale.
    """
    assessed = alliance[alliance["assessed"]]
    grouped = assessed.groupby(CELL)
    summary = grouped["wai_total"].agg(n="count", mean="mean", sd="std").reset_index()
    ceiling = grouped.agg(
        items_at_ceiling=("n_items_at_ceiling", "sum"),
        items_answered=("n_items_answered", "sum"),
    ).reset_index()
    summary["share_items_at_ceiling"] = (
        ceiling["items_at_ceiling"] / ceiling["items_answered"]
    ).to_numpy()
    summary["share_totals_at_ceiling"] = (
        grouped["wai_total"].apply(lambda s: (s >= response_max).mean()).to_numpy()
    )
    return summary


def trajectory_figure(alliance: pd.DataFrame, months: list[int]):
    """Individual WAI trajectories (thin) with the arm means (bold), one panel per rater."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from alliance.figures import ARM_COLOURS

    assessed = alliance[alliance["assessed"]]
    grid = sns.relplot(
        data=assessed,
        x="month",
        y="wai_total",
        hue="arm",
        units="patient_id",
        estimator=None,
        col="rater",
        kind="line",
        alpha=0.12,
        linewidth=0.7,
        palette=ARM_COLOURS,
        height=3.6,
        aspect=1.15,
        legend=False,
    )
    means = assessed.groupby(["rater", "arm", "month"])["wai_total"].mean().reset_index()
    for rater, axis in grid.axes_dict.items():
        for arm, colour in ARM_COLOURS.items():
            line = means[(means.rater == rater) & (means.arm == arm)]
            axis.plot(
                line["month"],
                line["wai_total"],
                color=colour,
                linewidth=3,
                marker="o",
                label=f"{arm} mean",
            )
        axis.set_xticks(months)
        axis.set_title(f"Rated by the {rater}")
    grid.set_axis_labels("Months after inclusion", "WAI total (1-7)")
    grid.axes.flat[0].legend(loc="lower left", frameon=False)
    grid.figure.suptitle("Individual alliance trajectories with arm means", y=1.02)
    plt.close(grid.figure)
    return grid.figure
