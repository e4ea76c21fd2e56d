"""Verdicts on the published findings follow from posterior probabilities, never typed in."""

import pandas as pd
import pytest

from alliance.findings import FINDINGS, findings_table, verdict


def rows(**columns):
    return pd.DataFrame(columns)


@pytest.mark.parametrize(
    ("kind", "prob_positive", "prob_in_rope", "mean", "expected"),
    [
        ("negative", [0.01, 0.02], [0.1, 0.1], [-0.5, -0.4], "supported"),
        ("negative", [0.01, 0.30], [0.1, 0.1], [-0.5, -0.1], "weakened"),
        ("negative", [0.01, 0.97], [0.1, 0.1], [-0.5, 0.4], "contradicted"),
        ("positive", [0.99], [0.2], [0.3], "supported"),
        ("nonzero", [0.02], [0.1], [-0.4], "supported"),
        ("nonzero", [0.40], [0.97], [0.01], "contradicted"),
        ("null", [0.50], [0.97], [0.01], "supported"),
        ("null", [0.60], [0.50], [0.05], "weakened"),  # interval covers 0: not evidence of none
        ("null", [0.999], [0.01], [0.5], "contradicted"),
    ],
)
def test_verdict_rules(kind, prob_positive, prob_in_rope, mean, expected):
    table = rows(
        prob_positive=prob_positive, prob_in_rope=prob_in_rope, mean=mean, rope=[0.2] * len(mean)
    )
    assert verdict(table, kind, 0.95)[0] == expected


def test_findings_table_reads_the_estimand_rows():
    detail = []
    for finding in FINDINGS:
        for selector in finding.selectors:
            detail.append(
                {
                    "estimand": finding.estimand,
                    "rater": "",
                    "arm": "",
                    "month": "",
                    "term": "",
                    **selector,
                }
            )
    for arm in ("digital", "ptau"):
        detail.append(
            {"estimand": "icc_agreement", "rater": "", "arm": arm, "month": "", "term": ""}
        )
    table = pd.DataFrame(detail)
    table["mean"], table["ci_low"], table["ci_high"] = -0.5, -0.8, -0.2
    table["prob_positive"], table["prob_in_rope"], table["rope"] = 0.001, 0.02, 0.2
    entries = findings_table(table, 0.95)
    assert [e["key"] for e in entries] == [f"F{i}" for i in range(1, 8)]
    verdicts = {e["key"]: e["verdict"] for e in entries}
    # Everything clearly negative: F1 and F3 hold, F5 and F6 are contradicted, nulls too.
    assert verdicts == {
        "F1": "supported",
        "F2": "contradicted",
        "F3": "supported",
        "F4": "contradicted",
        "F5": "contradicted",
        "F6": "contradicted",
        "F7": "contradicted",
    }
    assert len(entries[0]["rows"]) == 6 and len(entries[3]["rows"]) == 4
