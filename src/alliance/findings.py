"""The seven published findings beside the reanalysis, with a verdict derived from the posterior.

Three kinds of claim, with the decision probability d (config ``summary.decision_prob``):

- a direction ("lower", "associated with"): supported when, for every quantity of the claim, the
  posterior probability of the claimed direction is at least d (one-sided); contradicted when
  some quantity has probability at least d of the other direction;
- a difference with no direction stated ("did differ"): supported when every quantity is on one
  side of zero with probability at least 1 - (1 - d) / 2 (the same two-sided error as a
  directional claim at d); contradicted when some quantity is inside the region of practical
  equivalence (ROPE) with probability at least d;
- no effect ("did not differ", "no agreement"): supported when every quantity is inside the ROPE
  with probability at least d (an interval that merely contains zero is not evidence of
  absence); contradicted when some quantity is outside the ROPE with probability at least d.

Otherwise the claim is weakened: compatible with the data but not established by them. Beside
each verdict: the probability of exceeding the ROPE in the claimed direction (practical
relevance), the Monte Carlo standard error of the decisive probability (a verdict within two
MCSE of its threshold is borderline), and whether the verdict survives half and double the ROPE
and decision probabilities 0.90 and 0.975 (robust).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from alliance.design import ARMS, RATERS
from alliance.posterior_summary import percent


@dataclass(frozen=True)
class Finding:
    key: str
    claim: str
    kind: str  # negative, positive, nonzero, null
    estimand: str
    selectors: tuple[dict, ...]


#: The assessments at which the paper reported F1 (months after inclusion, as the detail table's
#: labels). This is the published claim, so it is fixed here rather than read from the config's
#: ``instrument.months``; :func:`select_rows` fails loudly if the reanalysis lacks one of them.
PUBLISHED_MONTHS = ("3", "6", "12")
FINDINGS = (
    Finding(
        "F1",
        "Patients and therapists built high alliance in the digital arm, though significantly "
        "lower than in PTAU.",
        "negative",
        "arm_difference",
        tuple({"rater": r, "month": m} for r in RATERS for m in PUBLISHED_MONTHS),
    ),
    Finding(
        "F2",
        "The development of patients' alliance over time did not differ between arms.",
        "null",
        "change_difference",
        ({"rater": "patient"},),
    ),
    Finding(
        "F3",
        "The development of therapists' alliance did differ between arms.",
        "nonzero",
        "change_difference",
        ({"rater": "therapist"},),
    ),
    Finding(
        "F4",
        "No agreement between patients' and therapists' ratings.",
        "null",
        "rater_correlation",
        tuple({"arm": arm} for arm in ARMS),
    ),
    Finding(
        "F5",
        "Patients' alliance was associated with usability (SUS) and satisfaction with the app.",
        "positive",
        "association",
        ({"rater": "patient", "term": "sus"}, {"rater": "patient", "term": "vas_app"}),
    ),
    Finding(
        "F6",
        "Therapists' alliance was associated with satisfaction with the monitoring platform.",
        "positive",
        "association",
        ({"rater": "therapist", "term": "vas_platform"},),
    ),
    Finding(
        "F7",
        "Neither the type nor the amount of communication affected patients' alliance.",
        "null",
        "association",
        (
            {"rater": "patient", "term": "comm_amount"},
            {"rater": "patient", "term": "comm_async_share"},
        ),
    ),
)
#: F4 is also judged on the absolute-agreement ICC, next to the correlation.
EXTRA_ROWS = {"F4": ("icc_agreement", tuple({"arm": arm} for arm in ARMS))}


def select_rows(detail: pd.DataFrame, estimand: str, selectors) -> pd.DataFrame:
    """The detail rows of ``estimand`` matching each selector, in the selectors' order."""
    rows = []
    table = detail.astype({"month": str, "rater": str, "arm": str, "term": str})
    for selector in selectors:
        match = table["estimand"] == estimand
        for column, value in selector.items():
            match &= table[column] == value
        found = table[match]
        if len(found) != 1:
            raise KeyError(f"expected one row for {estimand} {selector}, found {len(found)}")
        rows.append(found.iloc[0])
    return pd.DataFrame(rows)


#: The kind of each claim as the data contract's ``findings.csv`` names it.
CLAIM_TYPES = {
    "negative": "direction",
    "positive": "direction",
    "nonzero": "difference",
    "null": "null",
}
#: The decision probabilities a robust verdict must survive (with half and double the ROPE).
ROBUSTNESS_DECISION_PROBS = (0.90, 0.975)
FINDINGS_COLUMNS = ["finding", "claim", "decisive_probability", "mcse", "verdict", "robust"]


def support_threshold(kind: str, decision_prob: float) -> float:
    """The probability a claim must reach: two-sided claims split the error over both sides."""
    return 1 - (1 - decision_prob) / 2 if kind == "nonzero" else decision_prob


def in_rope(row, rope_factor: float) -> float:
    """P(inside the ROPE) at ``rope_factor`` times its half-width (1, 0.5 or 2)."""
    column = {1.0: "prob_in_rope", 0.5: "prob_in_rope_half", 2.0: "prob_in_rope_double"}
    return float(row[column[rope_factor]])


def claim_probability(row, kind: str, rope_factor: float = 1.0) -> float:
    """Posterior probability of what the claim says about one quantity."""
    positive = float(row["prob_positive"])
    if kind == "negative":
        return 1 - positive
    if kind == "positive":
        return positive
    if kind == "nonzero":
        return max(positive, 1 - positive)
    return in_rope(row, rope_factor)  # null


def opposite_probability(row, kind: str, rope_factor: float = 1.0) -> float:
    """Posterior probability of the opposite of the claim for one quantity."""
    positive = float(row["prob_positive"])
    if kind == "negative":
        return positive
    if kind == "positive":
        return 1 - positive
    if kind == "nonzero":
        return in_rope(row, rope_factor)
    return 1 - in_rope(row, rope_factor)  # null: outside the ROPE


def probability_mcse(row, kind: str) -> float:
    """Monte Carlo standard error of the claim's (and its opposite's) probability."""
    return float(row["mcse_prob_in_rope" if kind == "null" else "mcse_prob_positive"])


def relevance(row, kind: str) -> float | None:
    """P(beyond the ROPE in the claimed direction); None for a claim of no effect."""
    above, below = float(row["prob_above_rope"]), float(row["prob_below_rope"])
    return {"negative": below, "positive": above, "nonzero": max(above, below)}.get(kind)


def verdict(
    rows: pd.DataFrame, kind: str, decision_prob: float, rope_factor: float = 1.0
) -> tuple[str, float]:
    """(verdict, smallest posterior probability of the claim across its quantities)."""
    support = min(claim_probability(row, kind, rope_factor) for _, row in rows.iterrows())
    against = max(opposite_probability(row, kind, rope_factor) for _, row in rows.iterrows())
    if against >= decision_prob:
        return "contradicted", support
    if support >= support_threshold(kind, decision_prob):
        return "supported", support
    return "weakened", support


def robustness(rows: pd.DataFrame, kind: str, decision_prob: float) -> dict[str, str]:
    """The verdict under each alternative ROPE and decision probability."""
    settings = {
        "half the ROPE": (decision_prob, 0.5),
        "double the ROPE": (decision_prob, 2.0),
        **{f"decision probability {d:g}": (d, 1.0) for d in ROBUSTNESS_DECISION_PROBS},
    }
    return {label: verdict(rows, kind, d, factor)[0] for label, (d, factor) in settings.items()}


def supported_robustly(rows: pd.DataFrame, kind: str, decision_prob: float) -> bool:
    """Supported, and still supported at half and double the ROPE and at decision probabilities
    0.90 and 0.975."""
    alternatives = robustness(rows, kind, decision_prob).values()
    return verdict(rows, kind, decision_prob)[0] == "supported" and all(
        v == "supported" for v in alternatives
    )


def borderline(rows: pd.DataFrame, kind: str, decision_prob: float) -> bool:
    """Whether a probability the verdict turns on lies within two MCSE of its threshold."""
    for _, row in rows.iterrows():
        mcse = probability_mcse(row, kind)
        near_support = abs(claim_probability(row, kind) - support_threshold(kind, decision_prob))
        near_against = abs(opposite_probability(row, kind) - decision_prob)
        if min(near_support, near_against) < 2 * mcse:
            return True
    return False


def finding_rows(detail: pd.DataFrame, finding: Finding) -> pd.DataFrame:
    """The detail rows a finding is judged on (KeyError when one is not in ``detail``)."""
    rows = select_rows(detail, finding.estimand, finding.selectors)
    if finding.key in EXTRA_ROWS:
        estimand, selectors = EXTRA_ROWS[finding.key]
        rows = pd.concat([rows, select_rows(detail, estimand, selectors)])
    return rows


def findings_table(
    detail: pd.DataFrame, decision_prob: float, findings: tuple[Finding, ...] | None = None
) -> list[dict]:
    """One entry per published finding (``findings``; None: all of them): claim, estimate rows,
    verdict and what qualifies it."""
    entries = []
    for finding in FINDINGS if findings is None else findings:
        rows = finding_rows(detail, finding)
        judged, support = verdict(rows, finding.kind, decision_prob)
        decisive = min(
            (claim_probability(row, finding.kind), probability_mcse(row, finding.kind))
            for _, row in rows.iterrows()
        )
        alternatives = robustness(rows, finding.kind, decision_prob)
        flips = {label: v for label, v in alternatives.items() if v != judged}
        relevant = [relevance(row, finding.kind) for _, row in rows.iterrows()]
        entries.append(
            {
                "key": finding.key,
                "claim": finding.claim,
                "kind": finding.kind,
                "claim_type": CLAIM_TYPES[finding.kind],
                "rows": rows.to_dict("records"),
                "verdict": judged,
                "support": support,
                "threshold": support_threshold(finding.kind, decision_prob),
                "mcse": decisive[1],
                "borderline": borderline(rows, finding.kind, decision_prob),
                "robust": not flips,
                "flips": flips,
                "relevance": None if None in relevant else min(relevant),
                "explanation": explain(finding.kind, support, rows, decision_prob, judged),
            }
        )
    return entries


def findings_csv(entries: list[dict]) -> pd.DataFrame:
    """``results/tables/findings.csv`` as the data contract defines it."""
    return pd.DataFrame(
        [
            {
                "finding": e["key"],
                "claim": e["claim_type"],
                "decisive_probability": e["support"],
                "mcse": e["mcse"],
                "verdict": e["verdict"],
                "robust": "true" if e["robust"] else "false",
            }
            for e in entries
        ],
        columns=FINDINGS_COLUMNS,
    )


def explain(
    kind: str, support: float, rows: pd.DataFrame, decision_prob: float, judged: str
) -> str:
    """What the probability refers to, and why a claim of no effect cannot be established."""
    rope = float(rows["rope"].iloc[0])
    what = {
        "negative": "below zero",
        "positive": "above zero",
        "nonzero": "on one side of zero",
        "null": f"inside the ROPE of ±{rope:g}",
    }[kind]
    scope = " (lowest across the quantities)" if len(rows) > 1 else ""
    threshold = support_threshold(kind, decision_prob)
    sentence = (
        f"Posterior probability of being {what}{scope}: {percent(support)}; "
        f"decision threshold {threshold:.1%}" + (" (two-sided)." if kind == "nonzero" else ".")
    )
    if kind == "null" and judged != "supported":
        widths = (rows["ci_high"].astype(float) - rows["ci_low"].astype(float)).max()
        if widths > 2 * rope:
            sentence += (
                f" The credible interval ({widths:.2f} wide) is wider than the whole ROPE "
                f"({2 * rope:g}): at this sample size the data cannot establish that there is "
                "no effect, whatever the truth."
            )
    return sentence
