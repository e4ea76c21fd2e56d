"""Any valid data set runs: the whole workflow end to end, at reduced MCMC size, on twins made to
be awkward (issue 11), and data too thin for a model stop with one clear message.

Each scenario is a set of the twin's settings (config ``synthetic_twin``). Related edge cases share
a run to keep the suite's time down; every case of the issue is in one of them.
"""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
import yaml
from conftest import findings_of, make_workspace, run_snakemake

pytestmark = pytest.mark.slow

NONE_MISSING = {"digital": {3: 0.0, 6: 0.0, 12: 0.0}, "ptau": {3: 0.0, 6: 0.0, 12: 0.0}}
NO_FORMS_MISSING = {"patient": 0.0, "therapist": 0.0}
SCENARIOS = {
    # No missing value anywhere (so no dropout): every assessment, form, answer and covariate
    # present (counts nearly Poisson, so no assessment without communication leaves an undefined
    # share); one centre with one therapist per arm.
    "complete_one_therapist_per_arm": {
        "missing_assessment": NONE_MISSING,
        "missing_rater": NO_FORMS_MISSING,
        "missing_item": 0.0,
        "missing_covariate": 0.0,
        "count_dispersion": 1000.0,
        "centres": ["hospital_a"],
        "centre_shares": [1.0],
        "therapists_per_centre_arm": 1,
    },
    # Heavy dropout, monotone only: once missing, missing at every later month, half gone by
    # month 12 (the default twin's dropout is intermittent), in a trial of 500 patients.
    "heavy_monotone_dropout_large": {
        "n_patients": 500,
        "dropout_pattern": "monotone",
        "missing_assessment": {
            "digital": {3: 0.15, 6: 0.35, 12: 0.55},
            "ptau": {3: 0.1, 6: 0.3, 12: 0.45},
        },
        "missing_rater": NO_FORMS_MISSING,
    },
    # 40 patients, some assessed once, some answering 7 to every item, some digital-arm patients
    # with no communication at all.
    "small_and_odd": {
        "n_patients": 40,
        "share_single_assessment": 0.2,
        "share_all_top": 0.1,
        "share_no_communication": 0.2,
    },
}
#: A scenario run with another seed than the default run's: its report must show other numbers
#: (nothing in the report is hard-coded).
OTHER_SEED = {"heavy_monotone_dropout_large": 777}
# These runs test that every step works on awkward data, not convergence (the default run's
# convergence is benchmarked over seeds): a smaller MCMC still, no thinning, no extra draws.
# (This config file replaces the CI config rather than merging over it, so it repeats the CI
# config's two chains and small cross-validation.)
SMALL_MCMC = {
    "sampling": {"chains": 2, "draws": 100, "tune": 200, "max_draws": 100},
    "growth": {
        "thin": 1,
        "cross_validation": {
            "folds": 3,
            "chains": 1,
            "draws": 100,
            "tune": 200,
            "models": ["linear", "linear_arm_sd"],
        },
    },  # fmt: skip
    "agreement": {"draws_multiplier": 1},
}
CONTRACT_ROWS = 2 * (6 + 3 + 1) + 2 * 3 + (5 + 4)  # aims a, b, c


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_any_valid_data_set_runs_end_to_end(scenario, completed_run, tmp_path):
    workspace = make_workspace(tmp_path / "workflow")
    settings = tmp_path / f"{scenario}.yaml"
    seed = {"seed": OTHER_SEED[scenario]} if scenario in OTHER_SEED else {}
    settings.write_text(
        yaml.safe_dump({"synthetic_twin": SCENARIOS[scenario], **SMALL_MCMC, **seed})
    )
    result = run_snakemake(workspace, "--configfile", str(settings))
    console = result.stdout + result.stderr
    assert result.returncode == 0, console[-6000:]
    assert "Traceback" not in console
    estimands = pd.read_csv(workspace / "results/tables/estimands.csv")
    assert len(estimands) == CONTRACT_ROWS
    assert estimands[["mean", "ci_low", "ci_high"]].notna().all().all()
    assert (estimands["ci_low"] <= estimands["ci_high"]).all()
    report = (workspace / "results/report.html").read_text()
    assert len(report) > 100_000
    if scenario in OTHER_SEED:  # the default run's report shows other numbers
        default_report = (completed_run / "results/report.html").read_text()
        numbers = [
            [estimate["data-mean"] for estimate in findings_of(html).estimates]
            for html in (default_report, report)
        ]
        assert len(numbers[0]) == len(numbers[1]) > 0
        assert numbers[0] != numbers[1]
    if scenario.startswith("complete"):  # the association models ran without imputation
        missing = pd.read_csv(workspace / "results/tables/association_missing_predictors.csv")
        assert set(missing["rater"]) == {"patient", "therapist"}
        assert (missing["n_missing"] == 0).all()


def test_data_too_thin_for_a_model_stop_with_one_clear_message(twin_files, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(twin_files, raw)
    patients = pd.read_csv(raw / "patients.csv")
    wai = pd.read_csv(raw / "wai.csv")
    ptau = set(patients.loc[patients.arm == "ptau", "patient_id"])
    wai = wai[~(wai.patient_id.isin(ptau) & (wai.month == 12))]
    wai.to_csv(raw / "wai.csv", index=False)
    workspace = make_workspace(tmp_path / "workflow")
    result = run_snakemake(workspace, "--config", f"raw_data_dir={raw}")
    console = result.stdout + result.stderr
    assert result.returncode != 0
    assert "cannot support every model, so no model was fitted" in console
    assert (
        "fit_growth (patient rating), fit_agreement: 0 patient ratings at month 12 in the ptau"
        in (console)
    )
    assert (
        "fit_growth (therapist rating), fit_agreement: 0 therapist ratings at month 12" in console
    )
    assert "Traceback" not in console
    assert not list((workspace / "models").rglob("*.nc"))
