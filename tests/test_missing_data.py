"""The missing ratings described, the dropout model, and aim (a) given both raters (issue 15)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from alliance.missing_data import (
    DROPOUT_TERMS,
    contrasts_given_both_raters,
    dropout_data,
    dropout_sentence,
    dropout_summary,
    fit_dropout_model,
    missing_patterns,
    pattern_of,
    trajectories_by_dropout,
)
from alliance.settings import load_config
from alliance.validation import simulate_tables

MONTHS = [3, 6, 12]
PRIORS = {"intercept": 2.5, "coefficient": 1.0}


def test_each_patient_has_one_pattern():
    assert pattern_of(np.array([True, True, True])) == "complete"
    assert pattern_of(np.array([True, True, False])) == "monotone dropout"
    assert pattern_of(np.array([True, False, False])) == "monotone dropout"
    assert pattern_of(np.array([False, True, True])) == "intermittent"
    assert pattern_of(np.array([True, False, True])) == "intermittent"
    assert pattern_of(np.array([False, False, False])) == "never rated"


def small_alliance() -> pd.DataFrame:
    flags = {
        "d1": ("digital", [True, True, True], [5.0, 5.5, 6.0]),
        "d2": ("digital", [True, False, False], [4.0, 0, 0]),
        "d3": ("digital", [True, True, False], [4.5, 4.0, 0]),
        "p1": ("ptau", [True, True, True], [6.0, 6.0, 6.5]),
        "p2": ("ptau", [False, True, True], [0, 5.0, 5.5]),
    }
    rows = []
    for patient, (arm, assessed, scores) in flags.items():
        for month, flag, score in zip(MONTHS, assessed, scores, strict=True):
            for rater in ("patient", "therapist"):
                rows.append(
                    {
                        "patient_id": patient,
                        "arm": arm,
                        "month": month,
                        "rater": rater,
                        "assessed": flag,
                        "wai_total": score if flag else np.nan,
                    }
                )
    return pd.DataFrame(rows)


def test_patterns_and_trajectories_count_each_patient_once():
    alliance = small_alliance()
    patterns = missing_patterns(alliance, MONTHS).set_index(["rater", "arm", "pattern"])
    digital = patterns.loc[("patient", "digital")]
    assert digital["n_patients"].to_dict() == {
        "complete": 1,
        "monotone dropout": 2,
        "intermittent": 0,
        "never rated": 0,
    }
    assert digital["share"].sum() == pytest.approx(1.0)
    trajectories = trajectories_by_dropout(alliance, MONTHS)
    patient = trajectories[trajectories.rater == "patient"].set_index(["arm", "group", "month"])
    assert patient.loc[("digital", "last rated at month 3", 3), "mean"] == 4.0
    assert patient.loc[("digital", "last rated at month 6", 6), "mean"] == 4.0
    assert patient.loc[("digital", "complete", 12), "mean"] == 6.0
    assert patient.loc[("ptau", "complete", 12), "mean"] == 6.5
    assert patient.loc[("ptau", "intermittent", 6), "n"] == 1


def test_dropout_rows_need_an_observed_previous_rating():
    data = dropout_data(small_alliance(), MONTHS)
    patient = data[data.rater == "patient"].set_index(["patient_id", "month"])
    # d2 is missing at 6 (eligible: rated at 3) but not eligible at 12 (not rated at 6).
    assert bool(patient.loc[("d2", 6), "missing"]) and ("d2", 12) not in patient.index
    assert ("p2", 6) not in patient.index and not bool(patient.loc[("p2", 12), "missing"])
    assert data.groupby("rater")["previous_rating_sd"].mean().abs().max() < 1e-12


def test_the_sampler_recovers_a_known_logistic_regression():
    rng = np.random.default_rng(4)
    n = 800
    truth = np.array([-1.0, -0.5, 0.8, 0.0, 0.3])
    data = pd.DataFrame(
        {
            "intercept": 1.0,
            "previous_rating_sd": rng.normal(size=n),
            "digital_arm": rng.integers(0, 2, n).astype(float),
            "therapist_rater": rng.integers(0, 2, n).astype(float),
            "last_month": rng.integers(0, 2, n).astype(float),
        }
    )
    eta = data[list(DROPOUT_TERMS)].to_numpy() @ truth
    data["missing"] = rng.uniform(size=n) < 1 / (1 + np.exp(-eta))
    posterior = fit_dropout_model(data, PRIORS, seed=1)
    summary = dropout_summary(posterior, 0.95).set_index("term")
    assert (summary["r_hat"] < 1.01).all() and (summary["ess_bulk"] > 1000).all()
    import arviz as az  # the diagnostics are ArviZ's numbers

    np.testing.assert_allclose(summary["r_hat"], az.rhat(posterior)["beta"], rtol=1e-10)
    np.testing.assert_allclose(
        summary["ess_bulk"], az.ess(posterior, method="bulk")["beta"], rtol=1e-10
    )
    draws = posterior["beta"].stack(sample=("chain", "draw"))
    low, high = draws.quantile(0.005, "sample").values, draws.quantile(0.995, "sample").values
    assert ((low < truth) & (truth < high)).all(), (low, high)
    # The posterior mean is the maximum-likelihood estimate at this size (weak priors).
    import statsmodels.api as sm

    mle = sm.Logit(data["missing"].astype(float), data[list(DROPOUT_TERMS)]).fit(disp=0)
    np.testing.assert_allclose(summary["log_odds_mean"], mle.params, atol=4 * mle.bse.max() / 10)


def twin_dropout(mechanism: str, strength: float, seed: int) -> pd.DataFrame:
    config = load_config(
        {
            "synthetic_twin": {
                "truth_population": 2000,
                "dropout_mechanism": mechanism,
                "dropout_strength": strength,
            }
        }
    )
    alliance = simulate_tables(config, seed)["alliance"]
    posterior = fit_dropout_model(dropout_data(alliance, MONTHS), PRIORS, seed=seed)
    return dropout_summary(posterior, 0.95).set_index("term")


@pytest.mark.slow
def test_the_dropout_model_finds_dropout_at_random_and_not_dropout_completely_at_random():
    at_random = twin_dropout("mar", 1.0, seed=2).loc["previous_rating_sd"]
    assert at_random["prob_positive"] < 0.05  # lower previous ratings precede missing ones
    sentence = dropout_sentence(twin_dropout("mar", 1.0, 2).reset_index())
    assert "not missing completely at random" in sentence
    completely = twin_dropout("mcar", 0.0, seed=2).loc["previous_rating_sd"]
    assert completely["odds_ratio_ci_low"] < 1 < completely["odds_ratio_ci_high"]


def test_aim_a_given_both_raters_is_the_bivariate_models_linear_means():
    rng = np.random.default_rng(0)
    shape = (2, 50, 2, 2)
    level = xr.DataArray(
        5.5 + rng.normal(0, 0.1, shape),
        dims=("chain", "draw", "arm", "rater"),
        coords={"arm": ["digital", "ptau"], "rater": ["patient", "therapist"]},
    )
    change = xr.DataArray(rng.normal(0, 0.1, shape), dims=level.dims, coords=level.coords)
    growth = pd.DataFrame(
        {
            "estimand": ["arm_difference", "change_difference", "marginal_mean"],
            "rater": ["patient", "patient", "patient"],
            "month": ["3", "", "3"],
            "mean": [-0.5, 0.1, 5.0],
            "ci_low": [-0.8, -0.1, 4.8],
            "ci_high": [-0.2, 0.3, 5.2],
        }
    )
    table = contrasts_given_both_raters(
        xr.Dataset({"level": level, "change": change}), growth, MONTHS, 0.95
    )
    bivariate = table[table.model == "bivariate (both raters)"].set_index(
        ["estimand", "rater", "month"]
    )
    difference = level.sel(arm="digital") - level.sel(arm="ptau")
    change_difference = change.sel(arm="digital") - change.sel(arm="ptau")
    expected_12 = (difference + change_difference).sel(rater="therapist").mean().item()
    assert bivariate.loc[("arm_difference", "therapist", "12"), "mean"] == pytest.approx(
        expected_12
    )
    assert bivariate.loc[("change_difference", "patient", ""), "mean"] == pytest.approx(
        change_difference.sel(rater="patient").mean().item()
    )
    assert len(bivariate) == 2 * (3 + 1)
    assert (table["model"] == "reported growth model (one rater)").sum() == 2  # no marginal means
    months = table[(table.estimand == "arm_difference") & (table.rater == "patient")]["month"]
    assert list(dict.fromkeys(months)) == ["3", "6", "12"]


@pytest.mark.slow
def test_the_workflow_describes_the_missing_ratings_in_the_report(completed_run):
    results = completed_run / "results"
    patterns = pd.read_csv(results / "tables/missing_patterns.csv")
    patients = pd.read_csv(completed_run / "data/synthetic/patients.csv")
    arm_sizes = patients["arm"].value_counts()
    for (_, arm), group in patterns.groupby(["rater", "arm"]):
        assert group["n_patients"].sum() == arm_sizes[arm]
    dropout = pd.read_csv(results / "tables/dropout_model.csv")
    assert list(dropout["term"]) == list(DROPOUT_TERMS)
    assert (dropout["r_hat"] < 1.01).all() and (dropout["ess_bulk"] > 1000).all()
    both = pd.read_csv(results / "tables/aim_a_given_both_raters.csv", keep_default_na=False)
    assert len(both) == 2 * 2 * (3 + 1)  # two models x two raters x (three months + change)
    html = (results / "report.html").read_text()
    for element in ("missing-patterns", "dropout-sentence", "given-both-raters"):
        assert f'id="{element}"' in html
    assert "previous rating multiplies the odds" in html
