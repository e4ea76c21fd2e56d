"""Figures shared by the aims: predictive checks, posterior trajectories, forest plots.

Each function returns a matplotlib figure; the Snakemake scripts save it.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from alliance.design import ARMS, RATERS, REFERENCE_ARM, TREATMENT_ARM  # noqa: E402

#: One colour per arm, for every figure (the descriptive trajectories included).
ARM_COLOURS = {TREATMENT_ARM: "#1b7f79", REFERENCE_ARM: "#c2661b"}


def _density(ax, values, colour, **style):
    from scipy.stats import gaussian_kde  # (imported here: most jobs drawing figures never need it)

    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    if values.size < 3 or np.ptp(values) == 0:
        return
    grid = np.linspace(1, 7.6, 200)
    ax.plot(grid, gaussian_kde(values)(grid), color=colour, **style)


def ppc_density_figure(
    observed: np.ndarray,
    replicated: np.ndarray,
    groups: pd.DataFrame,
    title: str,
    n_lines: int = 40,
    seed: int = 0,
    ceiling: float | None = 7,
    xlabel: str = "WAI total",
):
    """Observed density (black) over replicated densities, one panel per arm x month; the
    scale's ``ceiling`` marked (None: not on the scale)."""
    arms = list(dict.fromkeys(groups["arm"]))
    months = sorted(groups["month"].unique())
    fig, axes = plt.subplots(
        len(arms),
        len(months),
        figsize=(3.2 * len(months), 2.6 * len(arms)),
        sharex=True,
        squeeze=False,
    )
    pick = np.random.default_rng(seed).choice(replicated.shape[0], n_lines, replace=False)
    for i, arm in enumerate(arms):
        for j, month in enumerate(months):
            ax = axes[i, j]
            cell = ((groups["arm"] == arm) & (groups["month"] == month)).to_numpy()
            for draw in pick:
                _density(
                    ax,
                    replicated[draw, cell],
                    ARM_COLOURS.get(arm, "grey"),
                    alpha=0.15,
                    linewidth=0.8,
                )
            _density(ax, observed[cell], "black", linewidth=2)
            if ceiling is not None:
                ax.axvline(ceiling, color="grey", linestyle=":", linewidth=1)
            ax.set_title(f"{arm}, month {month} (n={cell.sum()})", fontsize=9)
            ax.set_yticks([])
    for ax in axes[-1]:
        ax.set_xlabel(xlabel)
    fig.suptitle(
        title + "\nblack: observed; coloured: posterior predictive replicates", fontsize=10
    )
    fig.tight_layout()
    plt.close(fig)
    return fig


def ceiling_check_figure(table: pd.DataFrame, title: str):
    """Replicated share of totals at the ceiling (interval) against the observed share (dot)."""
    return statistic_check_figure(table, "Share of WAI totals at the ceiling (7)", title)


def prior_predictive_figure(
    prior_scores: np.ndarray,
    observed: np.ndarray,
    title: str,
    scale: tuple | None = (1, 7),
    xlabel: str = "WAI total",
):
    """Distribution of prior predictive WAI totals, with the scale's range marked (``scale``;
    None for a quantity that is not on the scale, such as a centred rating)."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    values = np.asarray(prior_scores, float).ravel()
    low, high = np.quantile(values, [0.005, 0.995])
    ax.hist(
        np.clip(values, low, high), bins=80, density=True, color="#9bb7d4", label="prior predictive"
    )
    ax.hist(
        observed,
        bins=30,
        density=True,
        histtype="step",
        color="black",
        linewidth=1.5,
        label="observed",
    )
    if scale is not None:
        low, high = scale
        ax.axvspan(low, high, color="grey", alpha=0.12, label=f"scale range {low}-{high}")
        share = np.mean((values >= low) & (values <= high))
        title = f"{title}\n{share:.0%} of prior predictive scores fall on the {low}-{high} scale"
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_yticks([])
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    plt.close(fig)
    return fig


def trajectory_band_figure(summary: pd.DataFrame, observed: pd.DataFrame, months: list[int]):
    """Posterior marginal means with intervals by arm, one panel per rater; observed means."""
    raters = list(dict.fromkeys(summary["rater"]))
    fig, axes = plt.subplots(
        1, len(raters), figsize=(4.6 * len(raters), 3.6), sharey=True, squeeze=False
    )
    mass = f"{float(summary['ci_prob'].iloc[0]):.0%}"
    for ax, rater in zip(axes[0], raters, strict=True):
        for arm, colour in ARM_COLOURS.items():
            rows = summary[(summary.rater == rater) & (summary.arm == arm)].sort_values("month")
            ax.fill_between(
                rows["month"].astype(float),
                rows["ci_low"],
                rows["ci_high"],
                color=colour,
                alpha=0.25,
            )
            ax.plot(
                rows["month"].astype(float),
                rows["mean"],
                color=colour,
                linewidth=2.5,
                label=f"{arm} (posterior mean, {mass} interval)",
            )
            seen = observed[(observed.rater == rater) & (observed.arm == arm)]
            ax.plot(
                seen["month"],
                seen["mean"],
                "o",
                color=colour,
                markerfacecolor="white",
                label=f"{arm} observed mean",
            )
        ax.set_xticks(months)
        ax.set_title(f"Rated by the {rater}")
        ax.set_xlabel("Months after inclusion")
    axes[0, 0].set_ylabel("WAI total (1-7)")
    axes[0, 0].legend(fontsize=7, frameon=False, loc="lower left")
    fig.tight_layout()
    plt.close(fig)
    return fig


def forest_figure(table: pd.DataFrame, label_column: str, title: str, rope: float | None = None):
    """Posterior means with intervals, one row per line of ``table``; zero and ROPE marked."""
    fig, ax = plt.subplots(figsize=(6.5, 0.42 * len(table) + 1.3))
    y = np.arange(len(table))[::-1]
    if rope:
        ax.axvspan(-rope, rope, color="grey", alpha=0.15, label=f"ROPE ±{rope}")
    ax.axvline(0, color="black", linewidth=0.8)
    ax.hlines(y, table["ci_low"], table["ci_high"], color="#1b7f79", linewidth=2.5)
    ax.plot(table["mean"], y, "o", color="#1b7f79")
    ax.set_yticks(y, table[label_column])
    ax.set_title(title, fontsize=10)
    if rope:
        ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    plt.close(fig)
    return fig


def prior_posterior_figure(detail: pd.DataFrame, min_contraction: float):
    """Every reported quantity's prior interval (grey) beside its posterior interval (teal), one
    panel per aim (each on its own scale); quantities the data do not identify (contraction below
    ``min_contraction``) are drawn in red and marked."""
    from alliance.posterior_summary import not_identified

    rows = detail.dropna(subset=["prior_ci_low", "prior_ci_high"]).copy()
    aims = list(dict.fromkeys(rows["aim"]))
    if not aims:  # no quantity with prior draws
        fig, ax = plt.subplots(figsize=(7.5, 1.0))
        ax.axis("off")
        ax.text(0.5, 0.5, "No reported quantity has prior draws.", ha="center", va="center")
        plt.close(fig)
        return fig
    heights = [max(len(rows[rows["aim"] == aim]), 1) for aim in aims]
    fig, axes = plt.subplots(
        len(aims),
        1,
        figsize=(7.5, 0.28 * sum(heights) + 1.2 * len(aims)),
        gridspec_kw={"height_ratios": heights},
        squeeze=False,
    )
    for ax, aim in zip(axes[:, 0], aims, strict=True):
        part = rows[rows["aim"] == aim]
        y = np.arange(len(part))[::-1]
        weak = np.array(
            [not_identified(value, min_contraction) for value in part["contraction"]], dtype=bool
        )
        ax.hlines(y, part["prior_ci_low"], part["prior_ci_high"], color="#c8ccd0", linewidth=6)
        colours = np.where(weak, "#c0392b", "#1b7f79")
        ax.hlines(y, part["ci_low"], part["ci_high"], color=colours, linewidth=2.2)
        ax.scatter(part["mean"], y, color=colours, s=12, zorder=3)
        labels = [
            " ".join(str(row[c]) for c in ("estimand", "rater", "arm", "month", "term") if row[c])
            + (" (not identified)" if flag else "")
            for row, flag in zip(part.to_dict("records"), weak, strict=True)
        ]
        ax.set_yticks(y, labels, fontsize=7)
        ax.axvline(0, color="black", linewidth=0.6)
        mass = f"{float(part['ci_prob'].iloc[0]):.0%}"
        ax.set_title(
            f"Aim ({aim}): {mass} prior interval (grey) and posterior interval", fontsize=9
        )
    fig.tight_layout()
    plt.close(fig)
    return fig


def bland_altman_figure(pairs: pd.DataFrame, summary: pd.DataFrame):
    """Patient minus therapist against their mean, per arm, with posterior bias and limits (the
    bands: their credible intervals, of the mass in ``summary``'s ``ci_prob``)."""
    arms = list(ARMS)
    fig, axes = plt.subplots(1, len(arms), figsize=(10, 3.8), sharey=True)
    complete = pairs.dropna(subset=list(RATERS))
    for ax, arm in zip(axes, arms, strict=True):
        rows = complete[complete["arm"] == arm]
        ax.scatter(
            (rows["patient"] + rows["therapist"]) / 2,
            rows["patient"] - rows["therapist"],
            s=10,
            alpha=0.5,
            color=ARM_COLOURS[arm],
        )
        for estimand, style in (("rater_bias", "-"), ("loa_low", "--"), ("loa_high", "--")):
            row = summary[(summary.estimand == estimand) & (summary.arm == arm)].iloc[0]
            ax.axhline(row["mean"], color="black", linestyle=style, linewidth=1.2)
            ax.axhspan(row["ci_low"], row["ci_high"], color="grey", alpha=0.2)
        ax.axhline(0, color="grey", linewidth=0.6)
        ax.set_title(
            f"{arm}: bias (solid) and 95% limits of agreement (dashed),\n"
            f"bands: {summary['ci_prob'].iloc[0]:.0%} credible intervals",
            fontsize=9,
        )
        ax.set_xlabel("Mean of patient and therapist WAI")
    axes[0].set_ylabel("Patient minus therapist WAI")
    fig.tight_layout()
    plt.close(fig)
    return fig


def rater_scatter_figure(pairs: pd.DataFrame, months: list[int]):
    """Patient against therapist rating per arm (rows) and month (columns)."""
    arms = list(ARMS)
    fig, axes = plt.subplots(
        len(arms), len(months), figsize=(3 * len(months), 2.9 * len(arms)), sharex=True, sharey=True
    )
    complete = pairs.dropna(subset=list(RATERS))
    for i, arm in enumerate(arms):
        for j, month in enumerate(months):
            ax = axes[i, j]
            rows = complete[(complete.arm == arm) & (complete.month == month)]
            ax.scatter(rows["patient"], rows["therapist"], s=10, alpha=0.6, color=ARM_COLOURS[arm])
            ax.plot([1, 7], [1, 7], color="grey", linewidth=0.6)
            r = np.corrcoef(rows["patient"], rows["therapist"])[0, 1] if len(rows) > 2 else np.nan
            ax.set_title(f"{arm}, month {month}: r = {r:.2f}", fontsize=9)
    for ax in axes[-1]:
        ax.set_xlabel("Patient WAI")
    for ax in axes[:, 0]:
        ax.set_ylabel("Therapist WAI")
    fig.tight_layout()
    plt.close(fig)
    return fig


def correlation_posterior_figure(estimands, prior_estimands=None):
    """Posterior (and prior) of the level and change correlations across raters, per arm."""
    names = ["rater_correlation", "change_correlation"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=False)
    bins = np.linspace(-1, 1, 61)
    for ax, name in zip(axes, names, strict=True):
        for arm, colour in ARM_COLOURS.items():
            values = estimands[name].sel(arm=arm).values.ravel()
            ax.hist(values, bins=bins, density=True, alpha=0.5, color=colour, label=arm)
        if prior_estimands is not None:
            prior = prior_estimands[name].sel(arm=TREATMENT_ARM).values.ravel()
            ax.hist(prior, bins=bins, density=True, histtype="step", color="black", label="prior")
        ax.axvline(0, color="grey", linewidth=0.8)
        ax.set_title(name.replace("_", " ") + " (patient-level, patient vs therapist)", fontsize=9)
        ax.set_yticks([])
        ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    plt.close(fig)
    return fig


def statistic_check_figure(table: pd.DataFrame, statistic: str, title: str):
    """Observed statistic (dot) against its posterior predictive interval, one row per group."""
    fig, ax = plt.subplots(figsize=(6, 0.45 * len(table) + 1.2))
    y = np.arange(len(table))
    ax.hlines(
        y,
        table["replicated_low"],
        table["replicated_high"],
        color="#1b7f79",
        linewidth=3,
        label=f"replicated ({float(table['ci_prob'].iloc[0]):.0%} interval)",
    )
    ax.plot(table["observed"], y, "ko", label="observed")
    ax.set_yticks(y, [f"{row.arm}, month {row.month}" for row in table.itertuples()])
    ax.set_xlabel(statistic)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    plt.close(fig)
    return fig


def prior_quantities_figure(prior_estimands, names: list[str], title: str):
    """Histograms of what the priors imply for the named quantities (digital arm)."""
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3))
    for ax, name in zip(np.atleast_1d(axes), names, strict=True):
        values = prior_estimands[name].sel(arm=TREATMENT_ARM).values.ravel()
        low, high = np.quantile(values, [0.01, 0.99])
        ax.hist(np.clip(values, low, high), bins=50, color="#9bb7d4")
        ax.set_title(name.replace("_", " "), fontsize=9)
        ax.set_yticks([])
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    plt.close(fig)
    return fig


def save_figure(fig, path, dpi: int = 120) -> None:
    """Write a figure as PNG, trimmed to its content."""
    fig.savefig(path, dpi=dpi, bbox_inches="tight")


def coverage_figure(summary: pd.DataFrame, nominal: float):
    """Coverage of the credible intervals per scenario (rows) and aim (markers), with two Monte
    Carlo standard errors, against the nominal mass (``summary``: scenario, aim, coverage,
    coverage_mcse)."""
    scenarios = list(dict.fromkeys(summary["scenario"]))
    aims = sorted(summary["aim"].unique())
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(scenarios) + 1.2))
    for offset, aim in zip(np.linspace(-0.2, 0.2, len(aims)), aims, strict=True):
        rows = summary[summary["aim"] == aim].set_index("scenario").reindex(scenarios)
        y = np.arange(len(scenarios)) + offset
        ax.errorbar(
            rows["coverage"], y, xerr=2 * rows["coverage_mcse"], fmt="o", label=f"aim ({aim})"
        )
    ax.axvline(nominal, color="black", linestyle="--", linewidth=1)
    ax.set_yticks(range(len(scenarios)), scenarios)
    ax.invert_yaxis()
    ax.set_xlabel(f"share of {nominal:.0%} intervals covering the truth (± 2 MCSE)")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return fig


def sbc_ecdf_figure(rank_rows: pd.DataFrame, kept: int, ci_prob: float = 0.95):
    """SBC: one panel per model, with each parameter's ECDF of the fractional ranks minus the
    uniform CDF and the simultaneous ``ci_prob`` band of one parameter (arviz_stats' PIT-ECDF
    bands; Säilynoja et al. 2022). A line leaving the band is drawn in red and labelled: a
    calibration failure, or, among many parameters, a chance excursion (the uniformity tests
    are corrected for their number). ``rank_rows``: model, parameter, rank."""
    from arviz_stats.ecdf_utils import ecdf_pit

    models = list(dict.fromkeys(rank_rows["model"]))
    columns = min(3, len(models))
    rows = -(-len(models) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3 * rows), squeeze=False)
    rng = np.random.default_rng(214)
    for ax, model in zip(axes.flat, models, strict=False):
        groups = list(rank_rows[rank_rows["model"] == model].groupby("parameter", sort=False))
        ax.set_title(f"{model} ({len(groups)} parameters)", fontsize=8)
        band_drawn = False
        for parameter, group in groups:
            ranks = group["rank"].to_numpy(dtype=float)
            if ranks.size < 2:  # no ECDF (nor band) from a single rank
                continue
            fractional = (ranks + rng.uniform(size=ranks.size)) / (kept + 1)
            x, ecdf, low, high = ecdf_pit(fractional, ci_prob, 1000, rng=rng)
            if not band_drawn:
                ax.fill_between(x, low - x, high - x, color="#cbd2d9", step="post")
                band_drawn = True
            outside = bool(np.any((ecdf < low) | (ecdf > high)))
            ax.step(
                x,
                ecdf - x,
                where="post",
                color="#b3261e" if outside else "#1b7f79",
                linewidth=1.2 if outside else 0.5,
                alpha=1.0 if outside else 0.5,
            )
            if outside:
                worst = int(np.argmax(np.abs(ecdf - x)))
                ax.annotate(parameter, (x[worst], ecdf[worst] - x[worst]), fontsize=6)
        if not band_drawn:
            ax.text(0.5, 0.5, "one simulation", ha="center", fontsize=7, transform=ax.transAxes)
        ax.axhline(0, color="black", linewidth=0.5)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(models) :]:
        ax.set_visible(False)
    fig.supxlabel("fractional rank", fontsize=8)
    fig.supylabel("ECDF minus uniform", fontsize=8)
    fig.tight_layout()
    return fig


def tipping_point_figure(tables: dict[str, pd.DataFrame], thresholds: dict[str, float]):
    """Heatmaps of each aim (a) finding's decisive probability over the two arms' deltas (x: the
    digital arm's, y: PTAU's), one row per variant of the shift (``tables``: variant -> rows of
    results/tables/tipping_points.csv), with the tipping contour where the probability crosses
    the finding's support threshold (``thresholds``) and the missing-at-random point marked."""
    from alliance.tipping_points import finding_surface

    findings = list(thresholds)
    fig, axes = plt.subplots(
        len(tables), len(findings), figsize=(3.6 * len(findings), 3.2 * len(tables)), squeeze=False
    )
    for row_axes, (variant, table) in zip(axes, tables.items(), strict=True):
        for ax, finding in zip(row_axes, findings, strict=True):
            surface = finding_surface(table, finding).pivot(
                index="delta_ptau", columns="delta_digital", values="probability"
            )
            x, y = surface.columns.to_numpy(), surface.index.to_numpy()
            image = ax.pcolormesh(x, y, surface.to_numpy(), vmin=0, vmax=1, cmap="viridis")
            values = surface.to_numpy()
            threshold = thresholds[finding]
            if values.min() < threshold < values.max():
                ax.contour(x, y, values, levels=[threshold], colors="white", linewidths=2)
            ax.plot([0], [0], marker="o", color="red", markersize=6)
            ax.set_title(f"{finding} ({variant} shift)", fontsize=9)
            ax.set_xlabel("shift of the digital arm's missing ratings")
            ax.set_ylabel("shift of PTAU's missing ratings")
            fig.colorbar(image, ax=ax, label="decisive probability")
    fig.suptitle(
        "Decisive probability of each finding; white line: its support threshold; "
        "red dot: missing at random",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def dropout_trajectories_figure(trajectories: pd.DataFrame, months: list[int]):
    """Mean observed WAI score by month per dropout group (complete, last rated at month m,
    intermittent), one panel per rater (rows) and arm (columns), with ± 2 SE (``trajectories``:
    rater, arm, group, month, n, mean, se; alliance.missing_data.trajectories_by_dropout)."""
    fig, axes = plt.subplots(
        len(RATERS), len(ARMS), figsize=(5 * len(ARMS), 3.2 * len(RATERS)), sharey=True
    )
    for row_axes, rater in zip(np.atleast_2d(axes), RATERS, strict=True):
        for ax, arm in zip(row_axes, ARMS, strict=True):
            rows = trajectories[(trajectories["rater"] == rater) & (trajectories["arm"] == arm)]
            for group, line in rows.groupby("group", sort=True):
                line = line.sort_values("month")
                ax.errorbar(
                    line["month"],
                    line["mean"],
                    yerr=2 * line["se"].fillna(0),
                    marker="o",
                    capsize=3,
                    label=f"{group} (n={int(line['n'].max())})",
                )
            ax.set_xticks(months)
            ax.set_xlabel("month")
            ax.set_title(f"{rater} rating, {arm} arm", fontsize=10)
            ax.legend(fontsize=7)
        row_axes[0].set_ylabel("mean observed WAI (± 2 SE)")
    fig.tight_layout()
    return fig
