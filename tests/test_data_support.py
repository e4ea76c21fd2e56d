"""Data too thin for a model stop the run with every problem and the rules it blocks."""

from __future__ import annotations

from alliance.analysis_tables import build_analysis_tables
from alliance.data_support import support_problems, support_report
from alliance.input_data import read_trial_data


def tables_of(folder, config):
    return build_analysis_tables(read_trial_data(folder, config), config["instrument"])


def test_the_twin_supports_every_model(config, twin_files):
    tables = tables_of(twin_files, config)
    assert (
        support_problems(tables["alliance"], tables["digital_covariates"], config["instrument"])
        == []
    )


def test_no_month_12_rating_in_one_arm_names_the_cell_and_the_rules(config, twin_files):
    tables = tables_of(twin_files, config)
    alliance = tables["alliance"].copy()
    gone = (alliance.arm == "ptau") & (alliance.month == 12) & (alliance.rater == "patient")
    alliance.loc[gone, ["wai_total", "assessed"]] = [None, False]
    problems = support_problems(alliance, tables["digital_covariates"], config["instrument"])
    assert any(
        p.startswith(
            "fit_growth (patient rating), fit_agreement: 0 patient ratings at month 12 "
            "in the ptau arm"
        )
        for p in problems
    )
    # No patient rating at month 12 in PTAU also leaves no pairs there.
    assert any(
        p.startswith("truth_and_bias, check_agreement: 0 assessments at month 12 in the ptau")
        for p in problems
    )
    assert len(problems) == 2
    assert "no model was fitted" in support_report(problems)


def test_a_predictor_that_never_varies_names_the_association_model(config, twin_files):
    tables = tables_of(twin_files, config)
    covariates = tables["digital_covariates"].copy()
    covariates["vas_platform"] = 7.0
    problems = support_problems(tables["alliance"], covariates, config["instrument"])
    assert problems == [
        "fit_association (therapist rating): the predictor vas_platform takes a single value at "
        "the digital arm's scored therapist ratings, so its association cannot be estimated."
    ]
