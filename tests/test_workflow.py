"""End-to-end: the whole DAG on the twin at reduced size, real-data input, bad input."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import job_server_processes, make_workspace, run_snakemake

from alliance.settings import deep_update, load_config

pytestmark = pytest.mark.slow


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {
        str(path.relative_to(folder)): (path.stat().st_mtime_ns, path.read_bytes())
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_default_run_writes_the_data_outputs(completed_run):
    alliance = pd.read_csv(completed_run / "data/processed/alliance.csv")
    flow = pd.read_csv(completed_run / "results/tables/patient_flow.csv")
    assert alliance["patient_id"].nunique() == 184
    assert len(alliance) == 184 * 3 * 2  # every patient x month x rater
    assessed = alliance[alliance.assessed].groupby(["arm", "rater", "month"]).size()
    assert flow.set_index(["arm", "rater", "month"])["assessed"].equals(assessed.rename("assessed"))
    assert (completed_run / "results/figures/trajectories.png").stat().st_size > 10_000
    assert (completed_run / "data/synthetic/true_parameters.json").is_file()


def test_every_check_job_reuses_the_r_hat_and_ess_its_fit_computed(completed_run):
    """The fits save the R-hat and ESS their safety net judged them by, and every check job
    finds its fit's draws unchanged and reuses them instead of computing them again."""
    logs = sorted((completed_run / "logs/check").rglob("*.log"))
    assert len(logs) >= 10
    for log in logs:
        text = log.read_text()
        assert "R-hat and ESS: as the fit computed them" in text, log
        assert "R-hat and ESS: computed here" not in text, log


def test_every_job_runs_in_the_job_server_which_stops_with_the_run(completed_run):
    """With the default config every Python job is forked from the job server (the stack
    imported once, alliance.job_server), and no server outlives the run."""
    logs = sorted((completed_run / "logs").rglob("*.log"))
    assert len(logs) >= 40
    for log in logs:
        last = log.read_text().strip().splitlines()[-1]
        assert "done:" in last and "(forked from job server" in last, log
    assert "imported the stack" in (completed_run / ".cache/job_server.log").read_text()
    assert job_server_processes(completed_run) == []


def test_raw_data_dir_gives_the_same_analysis_tables(completed_run, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in ("patients.csv", "wai.csv", "digital.csv"):
        shutil.copy(completed_run / "data/synthetic" / name, raw / name)
    workspace = make_workspace(tmp_path / "real")
    targets = ["data/processed/alliance.csv", "data/processed/digital_covariates.csv"]
    result = run_snakemake(workspace, "--config", f"raw_data_dir={raw}", "--", *targets)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (workspace / "data/synthetic").exists()  # no twin generated
    for target in targets:
        pd.testing.assert_frame_equal(
            pd.read_csv(completed_run / target), pd.read_csv(workspace / target)
        )


def test_bad_input_stops_the_run_and_keeps_earlier_results(completed_run, tmp_path):
    # In a copy with its Snakemake records: the failed cleaning job loses its outputs (Snakemake
    # removes a failed job's outputs), which must not make the shared run out of date.
    workspace = tmp_path / "workflow"
    shutil.copytree(completed_run, workspace)
    raw = tmp_path / "bad"
    shutil.copytree(completed_run / "data/synthetic", raw)
    lines = (raw / "wai.csv").read_text().split("\n")
    header = lines[0].split(",")
    cells = lines[4].split(",")
    cells[header.index("item_03")] = "9"
    lines[4] = ",".join(cells)
    (raw / "wai.csv").write_text("\n".join(lines))
    patients = (raw / "patients.csv").read_text().split("\n")
    patients[2] = patients[2].replace("digital", "placebo").replace("ptau", "placebo")
    (raw / "patients.csv").write_text("\n".join(patients))

    before = snapshot(workspace / "results")
    result = run_snakemake(workspace, "--config", f"raw_data_dir={raw}")
    console = result.stdout + result.stderr
    assert result.returncode != 0
    assert "wai.csv, line 5, column item_03: value '9'; expected an integer from 1 to 7" in console
    assert "patients.csv, line 3, column arm: value 'placebo'; expected one of digital, ptau" in (
        console
    )
    assert "Traceback" not in console
    assert snapshot(workspace / "results") == before


def test_forcerun_cleaning_reruns_it_and_its_dependents(completed_run):
    result = run_snakemake(completed_run, "-n", "--forcerun", "clean_data")
    assert result.returncode == 0, result.stderr
    stats = result.stdout.split("Job stats:")[1].split("\n\n")[0]
    jobs = {line.split()[0] for line in stats.splitlines()[3:] if line.strip()}
    assert {"clean_data", "descriptives", "all"} <= jobs
    assert "synthetic_twin" not in jobs


def test_strict_diagnostics_fail_the_run(completed_run, tmp_path):
    workspace = tmp_path / "strict"
    shutil.copytree(completed_run, workspace, ignore=shutil.ignore_patterns(".snakemake"))
    target = "results/growth/patient_linear/diagnostics.csv"
    # A tiny MCMC size (too few draws to pass) over the test config; the twin is unchanged.
    tiny = {"sampling": {"chains": 2, "draws": 20, "tune": 20, "max_draws": 20}}
    twin = {"synthetic_twin": {"truth_population": 4000}}
    strict_file, lenient_file = tmp_path / "strict.yaml", tmp_path / "lenient.yaml"
    strict_file.write_text(yaml.safe_dump({**tiny, **twin, "diagnostics": {"strict": True}}))
    lenient_file.write_text(yaml.safe_dump({**tiny, **twin}))
    strict = ["--configfile", str(strict_file), "--forcerun", "fit_growth", "--", target]
    result = run_snakemake(workspace, *strict)
    console = result.stdout + result.stderr
    assert result.returncode != 0
    assert "convergence checks FAILED" in console
    assert "diagnostics.strict is true" in console
    # Not strict: the same failures are flagged in the table, and the run goes on.
    result = run_snakemake(workspace, "--configfile", str(lenient_file), "--", target)
    assert result.returncode == 0, result.stderr[-2000:]
    table = pd.read_csv(workspace / target)
    assert (~table["passed"]).any()


def test_the_longest_fits_start_first(tmp_path):
    """The agreement fit first, then the patient-rating association fits and the growth models'
    jobs (each fits both raters, compiled once; the censored one, the longest, first), then the
    truth-and-bias model, then the therapist-rating association fits."""
    result = run_snakemake(make_workspace(tmp_path), "-n", "--forceall")
    assert result.returncode == 0, result.stderr
    priority = {}
    for block in re.split(r"^\[.*\]$", result.stdout, flags=re.MULTILINE):  # one per job
        lines = [line.strip() for line in block.splitlines()]
        rule = next((line.split()[-1].rstrip(":") for line in lines if "rule " in line), None)
        if rule is None or not rule.startswith("fit_"):
            continue
        wildcards = next(
            (line.split(": ", 1)[1] for line in lines if line.startswith("wildcards")), ""
        )
        value = next(int(line.split(": ")[1]) for line in lines if line.startswith("priority"))
        priority[(rule, wildcards)] = value
    growth_models = len(load_config()["growth"]["models"])
    # association (2 per rater), agreement, growth (one job per model), truth-and-bias
    assert len(priority) == 4 + 1 + growth_models + 1
    assert max(priority, key=priority.get) == ("fit_agreement", "")
    growth = {w: value for (rule, w), value in priority.items() if rule == "fit_growth"}
    assert max(growth, key=growth.get) == "model=linear_censored"
    patient = [value for (_, wildcards), value in priority.items() if "rater=patient" in wildcards]
    therapist = [value for (_, w), value in priority.items() if "rater=therapist" in w]
    assert min(patient + list(growth.values())) > priority[("fit_truth_and_bias", "")]
    assert priority[("fit_truth_and_bias", "")] > max(therapist)


FIT_RULES = ("fit_growth", "fit_agreement", "fit_association", "fit_truth_and_bias")
CHECK_RULES = {"check_growth", "check_agreement", "check_association", "check_truth_and_bias"}
FITS = set(FIT_RULES)
CI_CONFIG = Path(__file__).parent / "fixtures" / "ci_config.yaml"


def rules_to_rerun(workspace: Path, *arguments: str) -> set[str]:
    """The rules whose jobs a dry run with ``arguments`` would run (empty: nothing to do)."""
    result = run_snakemake(workspace, "-n", *arguments)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    stats = re.search(r"Job stats:\n.*?\n-+\s+-+\n(.*?)\ntotal", result.stdout, re.DOTALL)
    if stats is None:
        assert "Nothing to be done" in result.stdout + result.stderr
        return set()
    return {line.split()[0] for line in stats.group(1).splitlines()} - {"all"}


# Each config edit, the rules it must rerun and the rules it must leave alone.
CONFIG_EDITS = {
    "interval mass": (
        {"summary": {"ci_prob": 0.9}},
        {"summarise_model", "check_growth", "check_agreement", "summarise_growth", "render_report"},
        FITS | {"clean_data", "check_association", "check_truth_and_bias"},
    ),
    "ROPE": (
        {"summary": {"rope_correlation": 0.2}},
        {"summarise_model", "summarise_agreement", "estimands", "findings", "render_report"},
        FITS | CHECK_RULES,
    ),
    "decision probability": (
        {"summary": {"decision_prob": 0.9}},
        {"findings", "tipping_points", "render_report"},
        FITS | CHECK_RULES | {"summarise_model", "estimands"},
    ),
    "the tipping-point grid": (
        {"missing_data": {"delta": {"step": 0.25, "lowest": -1.0}}},
        {"tipping_points", "render_report"},
        FITS | CHECK_RULES | {"summarise_model", "estimands", "findings"},
    ),
    "identification threshold": (
        {"diagnostics": {"min_contraction": 0.3}},
        CHECK_RULES | {"estimands", "render_report"},
        FITS | {"summarise_model"},
    ),
    "convergence threshold": (
        {"diagnostics": {"max_rhat": 1.05}},
        FITS | CHECK_RULES | {"summarise_model", "render_report"},
        {"synthetic_twin", "clean_data", "descriptives"},
    ),
    "a growth prior": (
        {"growth": {"priors": {"sigma": {"sigma": 0.8}}}},
        {"fit_growth", "check_growth", "summarise_model", "render_report"},
        FITS - {"fit_growth"} | {"clean_data", "check_agreement", "check_association"},
    ),
    "the cross-validation folds": (
        {"growth": {"cross_validation": {"folds": 2}}},
        {"cross_validate_growth", "summarise_growth", "render_report"},
        FITS | CHECK_RULES | {"summarise_model"},
    ),
    "the truth-and-bias priors": (
        {"truth_and_bias": {"priors": {"bias": {"sigma": 0.8}}}},
        {"fit_truth_and_bias", "check_truth_and_bias", "summarise_agreement"},
        FITS - {"fit_truth_and_bias"} | {"check_agreement"},
    ),
    "the sampling size": (
        {"sampling": {"draws": 150, "max_draws": 150}},
        FITS | CHECK_RULES,
        {"synthetic_twin", "clean_data", "descriptives"},
    ),
    "the twin": (
        {"synthetic_twin": {"age_mean": 55}},
        {"synthetic_twin", "clean_data", "descriptives"} | FITS | CHECK_RULES,
        set(),
    ),
}


@pytest.fixture(scope="module")
def rerun_workspace(completed_run, tmp_path_factory) -> Path:
    """A copy of the completed run with its Snakemake records (which tell what changed)."""
    workspace = tmp_path_factory.mktemp("edits") / "workflow"
    shutil.copytree(completed_run, workspace)
    assert rules_to_rerun(workspace) == set()  # no earlier test left the completed run stale
    return workspace


@pytest.mark.parametrize("edit", list(CONFIG_EDITS))
def test_a_config_edit_reruns_exactly_the_jobs_it_affects(rerun_workspace, edit, tmp_path):
    change, must, must_not = CONFIG_EDITS[edit]
    edited = tmp_path / "edited.yaml"
    edited.write_text(yaml.safe_dump(deep_update(yaml.safe_load(CI_CONFIG.read_text()), change)))
    rules = rules_to_rerun(rerun_workspace, "--configfile", str(edited))
    assert must <= rules, must - rules
    assert not rules & must_not, rules & must_not


def test_a_nested_key_changed_on_the_command_line_reruns_and_takes_effect(rerun_workspace):
    """`--config 'summary={ci_prob: 0.9}'` changes one nested key (the others keep their
    values), reruns what an edited config file would, and the new interval mass is used."""
    edited = CONFIG_EDITS["interval mass"][1]
    for value in ('{"ci_prob": 0.9}', "{ci_prob: 0.9}"):
        rules = rules_to_rerun(rerun_workspace, "--config", f"summary={value}")
        assert edited <= rules and not rules & FITS, rules
    target = "results/tables/estimands_aim_b.csv"
    before = pd.read_csv(rerun_workspace / target)
    result = run_snakemake(rerun_workspace, "--config", "summary={ci_prob: 0.9}", "--", target)
    assert result.returncode == 0, result.stderr[-3000:]
    after = pd.read_csv(rerun_workspace / target)
    assert (before["ci_prob"] == 0.95).all() and (after["ci_prob"] == 0.9).all()
    assert (after["ci_high"] - after["ci_low"] < before["ci_high"] - before["ci_low"]).all()
    assert (after["mean"] == before["mean"]).all()


def test_same_seed_gives_the_same_estimands(completed_run, tmp_path):
    """Refitting the models with the same seed agrees with the first run within Monte Carlo
    error (its compile cache started empty, so numba may have drawn differently); refitting one
    model again with the now warm cache gives byte-identical estimand rows."""
    workspace = tmp_path / "again"
    shutil.copytree(completed_run, workspace, ignore=shutil.ignore_patterns(".snakemake"))
    # Every fit but the association models' (the slowest; they are seeded by the same code).
    refits = [rule for rule in FIT_RULES if rule != "fit_association"]
    result = run_snakemake(workspace, "--forcerun", *refits)
    assert result.returncode == 0, result.stderr[-3000:]
    one_model = "results/growth/patient_linear/estimands.csv"
    first_refit = (workspace / one_model).read_bytes()
    fits = {
        name: workspace / f"models/growth/{name}.nc"
        for name in ("patient_linear", "therapist_linear", "patient_linear_arm_sd")
    }
    written = {name: path.stat().st_mtime_ns for name, path in fits.items()}
    result = run_snakemake(workspace, "--forcerun", "fit_growth", "--", one_model)
    assert result.returncode == 0, result.stderr[-3000:]
    # One job fits a growth model for both raters (compiled once): both refitted, no other model.
    assert fits["patient_linear"].stat().st_mtime_ns > written["patient_linear"]
    assert fits["therapist_linear"].stat().st_mtime_ns > written["therapist_linear"]
    assert fits["patient_linear_arm_sd"].stat().st_mtime_ns == written["patient_linear_arm_sd"]
    assert (workspace / one_model).read_bytes() == first_refit

    key = ["aim", "estimand", "rater", "arm", "month", "term"]
    first = pd.read_csv(completed_run / "results/tables/estimands_detail.csv", dtype=str)
    again = pd.read_csv(workspace / "results/tables/estimands_detail.csv", dtype=str)
    merged = first.merge(again, on=key, suffixes=("_first", "_again"), validate="one_to_one")
    assert len(merged) == len(first) == len(again)
    value = {s: merged[f"mean{s}"].astype(float) for s in ("_first", "_again")}
    mcse = {s: merged[f"mcse_mean{s}"].astype(float) for s in ("_first", "_again")}
    # Two independent Monte Carlo estimates of one posterior mean: their difference has SD
    # sqrt(mcse1^2 + mcse2^2); 5 such SDs bound every one of the ~35 rows.
    tolerance = 5 * (mcse["_first"] ** 2 + mcse["_again"] ** 2) ** 0.5
    assert ((value["_first"] - value["_again"]).abs() <= tolerance).all()
