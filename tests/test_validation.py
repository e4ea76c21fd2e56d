"""The simulation study: scenarios, truths, claims, coverage and verdict tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alliance.findings import FINDINGS
from alliance.seeds import rng_for
from alliance.settings import load_config
from alliance.twin import true_estimands
from alliance.validation import (
    COVERAGE_COLUMNS,
    FINDING_MODELS,
    REPORTED_MODELS,
    VERDICT_COLUMNS,
    claims_true,
    coverage_table,
    judged_findings,
    replicate_tables,
    scenario_config,
    scenario_models,
    scenario_names,
    truth_table,
    unjudged_false_claims,
    verdict_table,
)

#: The published claim each configured scenario makes false (none: all hold).
FALSE_CLAIM = {
    "as_published": None,
    "no_arm_difference": "F1",
    "patient_change_differs": "F2",
    "therapist_change_equal": "F3",
    "raters_agree": "F4",
    "no_usability_association": "F5",
    "no_platform_association": "F6",
    "communication_amount_matters": "F7",
    "dropout_completely_at_random": None,
    "dropout_at_random": None,
    "dropout_not_at_random": None,
}


@pytest.mark.slow
def test_each_scenario_makes_exactly_its_claim_false():
    """At the truth population of the run (the test config's smaller one leaves Monte Carlo
    noise of about 0.04 WAI points in the true differences)."""
    config = load_config()
    assert scenario_names(config["validation"]) == list(FALSE_CLAIM)
    for name, false_claim in FALSE_CLAIM.items():
        settings = scenario_config(config, name)
        rows = true_estimands(
            settings["synthetic_twin"], settings["instrument"], rng_for(1, name, "truth")
        )
        truth = truth_table(rows)
        holds = claims_true(truth, config["summary"])
        assert set(holds) == {f.key for f in FINDINGS}
        assert {key for key, value in holds.items() if not value} == (
            {false_claim} if false_claim else set()
        ), name
        # The scenario fits the models that judge its false claim; the others fit all five.
        models = scenario_models(config["validation"], name)
        fitted = pd.concat([truth[rows_of_model(truth, model)] for model in models])
        judged = judged_findings(models)
        # The rows of the fitted models hold every judged finding's rows.
        _, verdicts = replicate_tables(
            fitted.rename(columns={"truth": "mean"}).assign(**PLACEHOLDER_SUMMARY),
            truth,
            0.95,
            judged,
        )
        if false_claim:
            assert false_claim in set(verdicts["finding"]), name
        else:
            assert models == REPORTED_MODELS and len(judged) == len(FINDINGS), name


#: Posterior summary columns of hand-made estimand rows (intervals around the mean).
PLACEHOLDER_SUMMARY = {
    "ci_low": lambda d: d["mean"] - 0.1,
    "ci_high": lambda d: d["mean"] + 0.05,
    "ci_prob": 0.95,
    "prob_positive": lambda d: (d["mean"] > 0).astype(float),
    "prob_in_rope": 0.5,
    "prob_in_rope_half": 0.3,
    "prob_in_rope_double": 0.7,
    "prob_above_rope": 0.2,
    "prob_below_rope": 0.2,
    "rope": 0.2,
    "mcse_prob_positive": 0.001,
    "mcse_prob_in_rope": 0.001,
}

#: The aim and rater of each reported model's estimand rows.
MODEL_ROWS = {
    "growth_patient": ("a", "patient"),
    "growth_therapist": ("a", "therapist"),
    "agreement": ("b", None),
    "association_patient": ("c", "patient"),
    "association_therapist": ("c", "therapist"),
}


def rows_of_model(truth: pd.DataFrame, model: str) -> pd.Series:
    aim, rater = MODEL_ROWS[model]
    return (truth["aim"] == aim) & ((truth["rater"] == rater) if rater else True)


def test_a_scenario_changes_the_twin_and_the_mcmc_size_only(config):
    settings = scenario_config(config, "no_arm_difference")
    assert settings["synthetic_twin"]["intercept"]["patient"] == {"ptau": 6.1, "digital": 6.1}
    assert settings["synthetic_twin"]["age_mean"] == config["synthetic_twin"]["age_mean"]
    assert config["synthetic_twin"]["intercept"]["patient"]["digital"] == 5.8  # not changed
    sampling = settings["sampling"]
    assert (sampling["chains"], sampling["draws"], sampling["tune"]) == (2, 500, 500)
    assert sampling["max_draws"] == sampling["draws"]  # no safety-net refits
    assert settings["predictive"]["prior_draws"] == config["validation"]["prior_draws"]
    assert settings["growth"] == config["growth"] and settings["summary"] == config["summary"]
    mnar = scenario_config(config, "dropout_not_at_random")["synthetic_twin"]
    assert (mnar["dropout_mechanism"], mnar["dropout_pattern"]) == ("mnar", "monotone")
    with pytest.raises(ValueError, match="unknown scenarios: nope"):
        scenario_names({**config["validation"], "run": ["nope"]})


def _replicates(truth: float, means: list[float], half_width: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "scenario": "s",
            "aim": "a",
            "estimand": "change_difference",
            "rater": "patient",
            "arm": "",
            "month": "",
            "term": "",
            "mean": means,
            "ci_low": np.array(means) - half_width,
            "ci_high": np.array(means) + half_width,
            "truth": truth,
            "covered": [abs(m - truth) <= half_width for m in means],
        }
    )


def test_coverage_bias_and_rmse_are_computed_over_replicates():
    table = coverage_table(_replicates(0.5, [0.4, 0.8, 0.5, 1.0], half_width=0.25))
    assert list(table.columns) == COVERAGE_COLUMNS
    (row,) = table.to_dict("records")
    assert row["n_replicates"] == 4 and row["truth"] == 0.5
    assert row["coverage"] == 0.5  # 0.4 and 0.5 cover; 0.8 and 1.0 do not
    assert row["coverage_mcse"] == pytest.approx(np.sqrt(0.25 / 4))
    assert row["bias"] == pytest.approx(np.mean([-0.1, 0.3, 0.0, 0.5]))
    assert row["rmse"] == pytest.approx(np.sqrt(np.mean([0.01, 0.09, 0.0, 0.25])))


def test_verdict_shares_count_each_verdict_per_scenario_and_finding():
    verdicts = pd.DataFrame(
        {
            "scenario": ["s"] * 4 + ["t"] * 2,
            "finding": ["F1"] * 4 + ["F1"] * 2,
            "verdict": ["supported", "supported", "weakened", "contradicted"]
            + ["weakened", "weakened"],
        }
    )
    table = verdict_table(verdicts, {"s": {"F1": True}, "t": {"F1": False}})
    assert list(table.columns) == VERDICT_COLUMNS
    s, t = table.to_dict("records")
    assert (s["claim_true"], s["n_replicates"]) == ("true", 4)
    assert (s["share_supported"], s["share_weakened"], s["share_contradicted"]) == (0.5, 0.25, 0.25)
    assert (t["claim_true"], t["share_weakened"], t["share_supported"]) == ("false", 1.0, 0.0)


def test_a_replicate_keeps_each_row_beside_its_truth_and_judges_every_finding(config):
    """Rows of a replicate are matched to the truth by their labels; a row without a true value
    is an error, not a silent gap."""
    truth = truth_table(
        true_estimands(config["synthetic_twin"], config["instrument"], rng_for(2, "truth"))
    )
    detail = truth.rename(columns={"truth": "mean"}).assign(**PLACEHOLDER_SUMMARY)
    detail.loc[0, ["ci_low", "ci_high"]] = [detail.loc[0, "mean"] + 0.01, detail.loc[0, "mean"] + 1]
    rows, verdicts = replicate_tables(detail, truth, decision_prob=0.95)
    assert len(rows) == len(truth) and rows["covered"].sum() == len(truth) - 1
    assert not rows.loc[0, "covered"]
    assert list(verdicts["finding"]) == [f.key for f in FINDINGS]
    assert set(verdicts["verdict"]) <= {"supported", "weakened", "contradicted"}
    with pytest.raises(ValueError, match="no true value"):
        replicate_tables(detail.assign(term=detail["term"] + "x"), truth, 0.95)
    # A scenario that fits only the growth models judges the findings of aim (a) alone; a
    # finding of a fitted model whose row is missing is an error, not a silent gap.
    growth = detail[detail["aim"] == "a"]
    judged = judged_findings(("growth_patient", "growth_therapist"))
    _, verdicts = replicate_tables(growth, truth, 0.95, judged)
    assert list(verdicts["finding"]) == ["F1", "F2", "F3"]
    with pytest.raises(KeyError, match="change_difference"):
        replicate_tables(growth[growth["estimand"] != "change_difference"], truth, 0.95, judged)


def test_every_finding_has_its_models_and_an_unjudged_false_claim_is_named():
    assert set(FINDING_MODELS) == {f.key for f in FINDINGS}
    assert all(set(models) <= set(REPORTED_MODELS) for models in FINDING_MODELS.values())
    assert [f.key for f in judged_findings(("agreement", "growth_patient"))] == ["F2", "F4"]
    claims = {"as_published": {"F1": True, "F4": True}, "raters_agree": {"F1": True, "F4": False}}
    verdicts = pd.DataFrame({"scenario": ["as_published", "as_published"], "finding": ["F1", "F4"]})
    assert unjudged_false_claims(claims, verdicts) == ["F4 in raters_agree"]
    verdicts.loc[2] = ["raters_agree", "F4"]
    assert unjudged_false_claims(claims, verdicts) == []


def test_a_scenario_fits_the_models_it_names_and_all_when_it_names_none():
    validation = {
        "scenarios": {
            "as_published": {"description": "x"},
            "raters_agree": {"description": "x", "models": ["agreement", "growth_patient"]},
            "typo": {"description": "x", "models": ["agreemnet"]},
        }
    }
    assert scenario_models(validation, "as_published") == REPORTED_MODELS
    # In the reported models' order, whatever the config's order.
    assert scenario_models(validation, "raters_agree") == ("growth_patient", "agreement")
    with pytest.raises(ValueError, match="agreemnet"):
        scenario_models(validation, "typo")


@pytest.mark.slow
def test_the_validation_target_writes_the_contract_tables_and_its_report(tmp_path):
    """A small study through Snakemake: three scenarios (one that fits the agreement model
    alone), one replicate each, at a tiny MCMC size. The default target does not include it."""
    import yaml
    from conftest import make_workspace, run_snakemake

    workspace = make_workspace(tmp_path / "workflow")
    dry = run_snakemake(workspace, "-n")
    assert dry.returncode == 0 and "validation_replicates" not in dry.stdout, dry.stderr[-2000:]
    small = tmp_path / "small.yaml"
    small.write_text(
        yaml.safe_dump(
            {
                "sampling": {"chains": 2, "draws": 200, "tune": 300, "max_draws": 200},
                "validation": {
                    "run": ["as_published", "raters_agree", "dropout_not_at_random"],
                    "replicates": 1,
                    "replicates_per_job": 1,
                    "sampling": {"chains": 2, "draws": 100, "tune": 150},
                    "prior_draws": 50,
                    "sbc": {"simulations": 2, "simulations_per_job": 2, "kept_draws": 9},
                },
            }
        )
    )
    result = run_snakemake(workspace, "--configfile", str(small), "--", "validation")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    coverage = pd.read_csv(workspace / "results/validation/coverage.csv", keep_default_na=False)
    assert list(coverage.columns) == COVERAGE_COLUMNS
    assert set(coverage["scenario"]) == {"as_published", "raters_agree", "dropout_not_at_random"}
    assert set(coverage.loc[coverage["scenario"] == "raters_agree", "aim"]) == {"b"}
    assert (coverage["n_replicates"] == 1).all()
    assert coverage["coverage"].isin([0.0, 1.0]).all()
    verdicts = pd.read_csv(workspace / "results/validation/verdicts.csv")
    assert list(verdicts.columns) == VERDICT_COLUMNS
    assert len(verdicts) == 2 * len(FINDINGS) + 1
    # raters_agree fits the agreement model only and judges F4, false there; every other claim
    # holds in the other two scenarios.
    agree = verdicts[verdicts["scenario"] == "raters_agree"]
    assert list(agree["finding"]) == ["F4"] and not agree["claim_true"].item()
    assert verdicts.loc[verdicts["scenario"] != "raters_agree", "claim_true"].all()
    shares = verdicts[["share_supported", "share_weakened", "share_contradicted"]].sum(axis=1)
    assert np.allclose(shares, 1.0)
    sbc = pd.read_csv(workspace / "results/validation/sbc.csv")
    assert list(sbc.columns) == ["model", "parameter", "n_simulations", "uniformity_p"]
    assert set(sbc["model"]) == {
        "growth_patient_linear",
        "growth_therapist_linear",
        "agreement_bivariate",
        "association_patient_pooled",
        "association_therapist_pooled",
    }
    assert (sbc["n_simulations"] == 2).all() and sbc["uniformity_p"].between(0, 1).all()
    acceptance = pd.read_csv(workspace / "results/validation/acceptance.csv")
    assert list(acceptance.columns) == ["check", "result", "target", "passed", "evidence"]
    assert {"coverage of aim (a) intervals, dropout at random"} <= set(acceptance["check"])
    html = (workspace / "results/validation/report.html").read_text()
    assert "Acceptance checks" in html and "negative control dropout_not_at_random" in html
    assert "data:image/png;base64," in html


def test_batch_tables_are_stacked_with_their_scenarios_and_replicates(tmp_path):
    from alliance.validation import stacked_replicates

    paths = []
    for batch, rows in (("001", [("s", "001", "supported")]), ("002", [("t", "002", "weakened")])):
        folder = tmp_path / "replicates" / batch
        folder.mkdir(parents=True)
        table = pd.DataFrame(rows, columns=["scenario", "replicate", "verdict"])
        table.assign(finding="F1").to_csv(folder / "verdicts.csv", index=False)
        paths.append(folder / "verdicts.csv")
    table = stacked_replicates(paths)
    assert table[["scenario", "replicate", "verdict"]].values.tolist() == [
        ["s", "001", "supported"],
        ["t", "002", "weakened"],
    ]
