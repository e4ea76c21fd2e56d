"""Verdicts on the published findings follow from posterior probabilities, never typed in."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from alliance.findings import (
    FINDINGS,
    FINDINGS_COLUMNS,
    Finding,
    findings_csv,
    findings_table,
    supported_robustly,
    verdict,
)
from alliance.posterior_summary import summarise_draws


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
    table["prob_in_rope_half"], table["prob_in_rope_double"] = 0.01, 0.2
    table["prob_above_rope"], table["prob_below_rope"] = 0.0, 0.9
    table["mcse_prob_positive"], table["mcse_prob_in_rope"] = 0.001, 0.004
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


def posterior(mean: float, sd: float, rope: float = 0.2, draws: int = 5000, seed: int = 0):
    """The detail row of a normal posterior, 4 chains of independent draws."""
    rng = np.random.default_rng(seed)
    values = xr.DataArray(rng.normal(mean, sd, (4, draws)), dims=("chain", "draw"))
    return summarise_draws(values, 0.95, rope)


@pytest.mark.parametrize(
    ("kind", "mean", "sd", "expected"),
    [
        # A difference with no direction needs 97.5% on one side: P(> 0) = 0.96 is not enough
        # (the old max(P(>0), P(<0)) >= 0.95 rule was a two-sided 90% criterion).
        ("nonzero", 0.35, 0.2, "weakened"),
        ("nonzero", 0.5, 0.2, "supported"),  # P(> 0) = 0.994
        ("nonzero", 0.0, 0.05, "contradicted"),  # inside the ROPE with 99.99%
        # A direction is decided one-sided in the claimed direction.
        ("negative", -0.3, 0.15, "supported"),  # P(< 0) = 0.977
        ("negative", 0.3, 0.15, "contradicted"),
        ("positive", 0.1, 0.15, "weakened"),
        # No effect: contradicted only when the mass outside the ROPE reaches d; a posterior at
        # 0.21 +- 0.1 is certainly positive but mostly near the ROPE's edge (outside: 54%).
        ("null", 0.21, 0.1, "weakened"),
        ("null", 0.6, 0.1, "contradicted"),
        ("null", 0.0, 0.08, "supported"),  # inside: 98.8%
    ],
)
def test_verdicts_on_hand_built_posteriors(kind, mean, sd, expected):
    assert verdict(posterior(mean, sd), kind, 0.95)[0] == expected


def single_finding(monkeypatch, kind: str, estimand: str = "arm_difference"):
    finding = Finding("F1", "a claim", kind, estimand, ({},))
    monkeypatch.setattr("alliance.findings.FINDINGS", (finding,))


def detail_of(row: pd.DataFrame, estimand: str = "arm_difference") -> pd.DataFrame:
    return row.assign(estimand=estimand)


def test_practical_relevance_robustness_and_the_contract_table(monkeypatch):
    single_finding(monkeypatch, "null")
    # Inside the ROPE of 0.2 with 98.8%, but only 79% inside half of it: supported, not robust.
    (entry,) = findings_table(detail_of(posterior(0.0, 0.08)), 0.95)
    assert entry["verdict"] == "supported" and not entry["robust"]
    assert entry["flips"] == {"half the ROPE": "weakened"}
    table = findings_csv([entry])
    assert list(table.columns) == FINDINGS_COLUMNS
    assert table.iloc[0].to_dict() == {
        "finding": "F1",
        "claim": "null",
        "decisive_probability": pytest.approx(0.9876, abs=0.003),
        "mcse": pytest.approx(np.sqrt(0.9876 * 0.0124 / 20000), rel=0.15),
        "verdict": "supported",
        "robust": "false",
    }

    single_finding(monkeypatch, "negative")
    (entry,) = findings_table(detail_of(posterior(-0.5, 0.1)), 0.95)
    assert entry["verdict"] == "supported" and entry["robust"]
    assert entry["relevance"] == pytest.approx(0.9987, abs=0.002)  # P(< -0.2) = P(Z < 3)
    assert findings_csv([entry]).iloc[0]["claim"] == "direction"


def test_a_verdict_within_two_mcse_of_its_threshold_is_borderline(monkeypatch):
    single_finding(monkeypatch, "negative")
    # P(< 0) = 0.950 from 1000 draws: MCSE about 0.007.
    (entry,) = findings_table(detail_of(posterior(-0.329, 0.2, draws=250, seed=2)), 0.95)
    assert abs(entry["support"] - 0.95) < 2 * entry["mcse"]
    assert entry["borderline"]
    (clear,) = findings_table(detail_of(posterior(-0.6, 0.2, draws=250)), 0.95)
    assert not clear["borderline"]


def test_a_null_claim_with_an_interval_wider_than_the_rope_says_why_it_is_not_supported(
    monkeypatch,
):
    single_finding(monkeypatch, "null", "rater_correlation")
    row = detail_of(posterior(0.05, 0.25, rope=0.1), "rater_correlation")
    (entry,) = findings_table(row, 0.95)
    assert entry["verdict"] == "weakened"
    assert "cannot establish that there is no effect" in entry["explanation"]
    (narrow,) = findings_table(detail_of(posterior(0.0, 0.02, rope=0.1), "rater_correlation"), 0.95)
    assert "cannot establish" not in narrow["explanation"]


def growth_twin(arm_difference_at_3: float, change_difference: float, n: int = 400, seed: int = 0):
    """Patient-rated totals of a trial with known contrasts (digital minus PTAU), the growth
    model's structure: patient intercepts and slopes, therapists, residual noise."""
    rng = np.random.default_rng(seed)
    months = np.array([3, 6, 12])
    time = (months - 3) / 9
    digital = np.arange(n) < n // 2
    therapist = np.where(digital, 0, 8) + rng.integers(0, 8, n)
    intercept = (
        5.6
        + digital * arm_difference_at_3
        + rng.normal(0, 0.4, n)
        + rng.normal(0, 0.1, 16)[therapist]
    )
    slope = 0.2 + digital * change_difference + rng.normal(0, 0.2, n)
    rows = pd.DataFrame(
        {
            "patient_id": np.repeat([f"p{i}" for i in range(n)], 3),
            "therapist_id": np.repeat([f"t{t}" for t in therapist], 3),
            "arm": pd.Categorical(np.repeat(np.where(digital, "digital", "ptau"), 3)),
            "month": np.tile(months, n),
            "time": np.tile(time, n),
        }
    )
    mean = np.repeat(intercept, 3) + np.repeat(slope, 3) * rows["time"].to_numpy()
    rows["wai_total"] = mean + rng.normal(0, 0.4, 3 * n)
    rows["ceiling"] = "none"
    return rows


@pytest.mark.slow
@pytest.mark.parametrize(
    ("arm_difference_at_3", "change_difference", "true_claims"),
    [
        (-0.5, 0.0, {"F1", "F2"}),  # digital lower throughout, parallel development
        (0.0, 0.6, {"F3"}),  # equal at month 3, digital rising faster
    ],
)
def test_growth_claims_are_supported_where_true_and_never_where_false(
    config, arm_difference_at_3, change_difference, true_claims
):
    """On twins with known contrasts, fitted with the reported growth model: F1 (digital lower at
    every month), F2 (no difference in change) and F3 (a difference in change) are supported
    where they are true and not supported where they are false."""
    from alliance.growth import build_growth_model, growth_contrasts, marginal_means
    from alliance.sampling import fit_bambi
    from alliance.settings import load_config

    data = growth_twin(arm_difference_at_3, change_difference)
    spec = config["growth"]["models"]["linear"]
    model = build_growth_model(data, spec, config["growth"]["priors"])
    sampling = load_config({"sampling": {"chains": 2, "draws": 1000, "tune": 1000}})["sampling"]
    idata = fit_bambi(model, sampling, seed=8)
    contrasts = growth_contrasts(marginal_means(model, idata, spec, config["instrument"]))
    summary = config["summary"]
    detail = pd.concat(
        [
            summarise_draws(
                contrasts[name],
                summary["ci_prob"],
                summary["rope_wai"],
                labels={"estimand": name, "rater": "patient"},
            )  # fmt: skip
            for name in ("arm_difference", "change_difference")
        ]
    ).astype({"month": str})
    claims = {
        "F1": ("negative", detail[detail["estimand"] == "arm_difference"]),
        "F2": ("null", detail[detail["estimand"] == "change_difference"]),
        "F3": ("nonzero", detail[detail["estimand"] == "change_difference"]),
    }
    decision_prob = summary["decision_prob"]
    for key, (kind, rows) in claims.items():
        if key in true_claims:
            assert verdict(rows, kind, decision_prob)[0] == "supported", key
        else:  # a rule at d says "supported" for 1 - d of exact nulls: then not robustly
            assert not supported_robustly(rows, kind, decision_prob), key


def test_a_support_that_does_not_survive_the_robustness_settings_is_not_robust():
    from alliance.findings import supported_robustly

    def directional(prob_positive):
        return rows(prob_positive=[prob_positive], prob_in_rope=[0.5], mean=[0.1])

    assert supported_robustly(directional(0.99), "positive", 0.95)
    assert not supported_robustly(directional(0.96), "positive", 0.95)  # not at 0.975
    assert not supported_robustly(directional(0.90), "positive", 0.95)  # not supported at all
