"""The seven published findings beside the reanalysis, with a verdict derived from the posterior.

A claim of a direction ("lower", "associated with") is judged by the posterior probability of that
direction; a claim of no effect ("did not differ", "no agreement") by the posterior probability
inside the region of practical equivalence (ROPE), since an interval that merely contains zero is
not evidence of absence. With the decision probability d (config ``summary.decision_prob``):

- supported: every quantity of the claim has probability >= d of what the claim says;
- contradicted: some quantity has probability >= d of the opposite (the other direction; for a
  claim of no effect, a direction with the estimate outside the ROPE; for a claim of a difference,
  being inside the ROPE);
- weakened: neither, the data are compatible with the claim but do not establish it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from alliance.posterior_summary import percent


@dataclass(frozen=True)
class Finding:
    key: str
    claim: str
    kind: str  # negative, positive, nonzero, null
    estimand: str
    selectors: tuple[dict, ...]


MONTHS = ("3", "6", "12")
FINDINGS = (
    Finding(
        "F1",
        "Patients and therapists built high alliance in the digital arm, though significantly "
        "lower than in PTAU.",
        "negative",
        "arm_difference",
        tuple({"rater": r, "month": m} for r in ("patient", "therapist") for m in MONTHS),
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
        ({"arm": "digital"}, {"arm": "ptau"}),
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
EXTRA_ROWS = {"F4": ("icc_agreement", ({"arm": "digital"}, {"arm": "ptau"}))}


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


def claim_probability(row, kind: str) -> float:
    """Posterior probability of what the claim says about one quantity."""
    if kind == "negative":
        return 1 - float(row["prob_positive"])
    if kind == "positive":
        return float(row["prob_positive"])
    if kind == "nonzero":
        return max(float(row["prob_positive"]), 1 - float(row["prob_positive"]))
    return float(row["prob_in_rope"])  # null


def opposite_probability(row, kind: str) -> float:
    """Posterior probability of the opposite of the claim for one quantity."""
    direction = max(float(row["prob_positive"]), 1 - float(row["prob_positive"]))
    if kind == "negative":
        return float(row["prob_positive"])
    if kind == "positive":
        return 1 - float(row["prob_positive"])
    if kind == "nonzero":
        return float(row["prob_in_rope"])
    outside = abs(float(row["mean"])) > float(row["rope"])
    return direction if outside else 0.0  # null


def verdict(rows: pd.DataFrame, kind: str, decision_prob: float) -> tuple[str, float]:
    """(verdict, smallest posterior probability of the claim across its quantities)."""
    support = min(claim_probability(row, kind) for _, row in rows.iterrows())
    against = max(opposite_probability(row, kind) for _, row in rows.iterrows())
    if against >= decision_prob:
        return "contradicted", support
    if support >= decision_prob:
        return "supported", support
    return "weakened", support


def findings_table(detail: pd.DataFrame, decision_prob: float) -> list[dict]:
    """One entry per published finding: claim, estimate rows, verdict and its probability."""
    entries = []
    for finding in FINDINGS:
        rows = select_rows(detail, finding.estimand, finding.selectors)
        if finding.key in EXTRA_ROWS:
            estimand, selectors = EXTRA_ROWS[finding.key]
            rows = pd.concat([rows, select_rows(detail, estimand, selectors)])
        judged, support = verdict(rows, finding.kind, decision_prob)
        entries.append(
            {
                "key": finding.key,
                "claim": finding.claim,
                "kind": finding.kind,
                "rows": rows.to_dict("records"),
                "verdict": judged,
                "support": support,
                "explanation": explain(finding.kind, support, rows, decision_prob),
            }
        )
    return entries


def explain(kind: str, support: float, rows: pd.DataFrame, decision_prob: float) -> str:
    """One sentence saying what the probability refers to."""
    rope = float(rows["rope"].iloc[0])
    what = {
        "negative": "below zero",
        "positive": "above zero",
        "nonzero": "on one side of zero",
        "null": f"inside the ROPE of ±{rope:g}",
    }[kind]
    scope = " (lowest across the quantities)" if len(rows) > 1 else ""
    return (
        f"Posterior probability of being {what}{scope}: {percent(support)}; "
        f"decision threshold {decision_prob:.0%}."
    )
