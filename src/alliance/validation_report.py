"""The validation study's HTML report: how often the reanalysis covers the truth and reaches the
right verdict, scenario by scenario (tables from :mod:`alliance.validation`)."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from alliance.findings import FINDINGS

#: The largest share of replicates in which a false claim may be called supported.
MAX_FALSE_SUPPORT = 0.05
#: The smallest acceptable coverage of the intervals where dropout is at random.
MIN_COVERAGE = 0.90


def pooled_coverage(coverage: pd.DataFrame) -> pd.DataFrame:
    """Coverage per scenario and aim, pooled over its estimand rows and replicates. The MCSE
    treats the intervals as independent; intervals of one replicate are not, so it is a lower
    bound."""
    table = coverage.assign(covered=coverage["coverage"] * coverage["n_replicates"])
    pooled = table.groupby(["scenario", "aim"], sort=False).agg(
        intervals=("n_replicates", "sum"),
        covered=("covered", "sum"),
        rows=("estimand", "size"),
        worst_row=("coverage", "min"),
        mean_abs_bias=("bias", lambda bias: float(np.mean(np.abs(bias)))),
    )
    pooled["coverage"] = pooled["covered"] / pooled["intervals"]
    pooled["coverage_mcse"] = np.sqrt(
        pooled["coverage"] * (1 - pooled["coverage"]) / pooled["intervals"]
    )
    return pooled.drop(columns="covered").reset_index()


def false_claims(verdicts: pd.DataFrame) -> pd.DataFrame:
    """The (scenario, finding) pairs where the published claim is false, with how often the
    analysis still called it supported."""
    false = verdicts[verdicts["claim_true"].astype(str) == "false"]
    return false.assign(acceptable=false["share_supported"] <= MAX_FALSE_SUPPORT)


def sbc_failures(sbc: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """The parameters whose ranks fail the uniformity test after a Bonferroni correction for
    the number of tests."""
    return sbc[sbc["uniformity_p"] < alpha / max(1, len(sbc))]


def acceptance(
    pooled: pd.DataFrame,
    verdicts: pd.DataFrame,
    scenarios: Mapping[str, Mapping],
    sbc: pd.DataFrame | None = None,
) -> list[dict]:
    """The study's acceptance checks, each with its result and the numbers behind it."""
    at_random = [name for name, s in scenarios.items() if s["mechanism"] != "mnar"]
    not_at_random = [name for name, s in scenarios.items() if s["mechanism"] == "mnar"]
    checks = []
    random_rows = pooled[pooled["scenario"].isin(at_random)]
    for aim, rows in random_rows.groupby("aim"):
        intervals = rows["intervals"].sum()
        value = float((rows["coverage"] * rows["intervals"]).sum() / intervals)
        checks.append(
            {
                "check": f"coverage of aim ({aim}) intervals, dropout at random",
                "result": value,
                "target": f"at least {MIN_COVERAGE:.0%}",
                "passed": value >= MIN_COVERAGE,
                "evidence": f"{int(intervals)} intervals in {len(rows)} scenarios",
            }
        )
    false = false_claims(verdicts)
    if len(false):
        worst = false.loc[false["share_supported"].idxmax()]
        checks.append(
            {
                "check": "false claims called supported",
                "result": float(worst["share_supported"]),
                "target": f"at most {MAX_FALSE_SUPPORT:.0%} for every false claim",
                "passed": bool(false["acceptable"].all()),
                "evidence": f"worst: {worst['finding']} in {worst['scenario']}",
            }
        )
    if sbc is not None and len(sbc):
        failing = sbc_failures(sbc)
        checks.append(
            {
                "check": "SBC: parameters with uniform ranks (Bonferroni-corrected 5% test)",
                "result": 1 - len(failing) / len(sbc),
                "target": "every parameter",
                "passed": failing.empty,
                "evidence": (
                    f"{len(sbc)} parameters, {int(sbc['n_simulations'].min())} simulations each"
                    + (f"; failing: {', '.join(failing['parameter'])}" if len(failing) else "")
                ),
            }
        )
    for name in not_at_random:
        rows = pooled[(pooled["scenario"] == name) & (pooled["aim"] == "a")]
        if len(rows):
            row = rows.iloc[0]
            checks.append(
                {
                    "check": f"negative control {name}: aim (a) coverage falls",
                    "result": float(row["coverage"]),
                    "target": "below the at-random scenarios (a plain failure is expected)",
                    "passed": None,
                    "evidence": f"mean |bias| {row['mean_abs_bias']:.3f} WAI points",
                }
            )
    return checks


def render_validation_report(
    template: str | Path,
    coverage: pd.DataFrame,
    verdicts: pd.DataFrame,
    convergence: pd.DataFrame,
    checks: list[dict],
    sbc: tuple[pd.DataFrame, pd.DataFrame, int],
    scenarios: Mapping[str, Mapping],
    sampling: Mapping,
    summary: Mapping,
) -> str:
    """The validation report's HTML (``template``: report/templates/validation.html.j2;
    ``checks``: :func:`acceptance`; ``sbc``: the SBC ranks, :func:`alliance.sbc.sbc_table` and
    the number of kept draws)."""
    from alliance.figures import coverage_figure, save_figure, sbc_ecdf_figure
    from alliance.report import image_uri, render

    pooled = pooled_coverage(coverage)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "coverage.png"
        save_figure(coverage_figure(pooled, summary["ci_prob"]), path)
        figure = image_uri(path)
        ranks, sbc_summary, kept = sbc
        save_figure(sbc_ecdf_figure(ranks, kept), path)
        sbc_figure = image_uri(path)
    fits = convergence.groupby("model").agg(
        fits=("n_failed", "size"), failing=("n_failed", lambda n: int((n > 0).sum()))
    )
    template = Path(template)
    context = {
        "scenarios": scenarios,
        "claims": {f.key: f.claim for f in FINDINGS},
        "sampling": sampling,
        "ci_prob": summary["ci_prob"],
        "decision_prob": summary["decision_prob"],
        "replicates": int(coverage["n_replicates"].max()),
        "acceptance": checks,
        "pooled": pooled,
        "verdicts": verdicts,
        "coverage": coverage,
        "convergence": fits.reset_index(),
        "coverage_figure": figure,
        "sbc": sbc_summary,
        "sbc_failures": sbc_failures(sbc_summary),
        "sbc_figure": sbc_figure,
        "kept_draws": kept,
    }
    return render(context, template.parent, template.name)
