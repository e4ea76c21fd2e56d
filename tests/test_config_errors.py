"""Configuration and environment errors: one message naming the key (or file) and what is allowed,
at start-up, before any job, and no traceback."""

from __future__ import annotations

import copy
from importlib.util import find_spec

import pytest
import yaml
from conftest import make_workspace, run_snakemake

from alliance import config_checks
from alliance.input_data import FILES
from alliance.settings import SCHEMA_FILE, load_config

SCHEMA = config_checks.load_schema(SCHEMA_FILE)


def raw_config() -> dict:
    """config/config.yaml as a user edits it (no defaults filled in)."""
    return yaml.safe_load((SCHEMA_FILE.parents[2] / "config" / "config.yaml").read_text())


def with_value(config: dict, path: str, value) -> dict:
    changed = copy.deepcopy(config)
    *parents, key = path.split(".")
    target = changed
    for parent in parents:
        target = target.setdefault(parent, {})
    target[key] = value
    return changed


# -- schema errors -----------------------------------------------------------------------------


def test_the_project_config_has_no_problems():
    assert config_checks.schema_problems(raw_config(), SCHEMA) == []
    assert config_checks.startup_problems(load_config()) == []


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("sampling.draws", -5, "sampling.draws is -5; allowed: an integer, at least 10."),
        ("sampling.draws", 0, "sampling.draws is 0; allowed: an integer, at least 10."),
        ("sampling.chains", 1.5, "sampling.chains is 1.5; allowed: an integer, at least 1."),
        (
            "sampling.sampler",
            "stan",
            "sampling.sampler is 'stan'; allowed: one of nutpie, pymc, numpyro.",
        ),
        (
            "sampling.target_accept",
            1,
            "sampling.target_accept is 1; allowed: a number, greater than 0, less than 1.",
        ),
        ("seed", "abc", "seed is 'abc'; allowed: an integer, at least 0."),
        (
            "instrument.months",
            [3],
            "instrument.months is [3]; allowed: a list, with at least 2 items, without repeats.",
        ),
    ],
)
def test_a_value_outside_the_schema_names_the_key_and_what_is_allowed(path, value, message):
    assert config_checks.schema_problems(with_value(raw_config(), path, value), SCHEMA) == [message]


def test_values_nested_in_command_line_config_are_read_as_the_schema_types():
    """Snakemake reads values nested in --config 'summary={"ci_prob": 0.9}' as text."""
    config = with_value(raw_config(), "summary.ci_prob", "0.9")
    config = with_value(config, "sampling.draws", "300")
    config = with_value(config, "diagnostics.strict", "true")
    config = with_value(config, "instrument.months", ["3", "6", "12"])
    config = with_value(config, "synthetic_twin.centres", ["1", "2", "3"])
    config_checks.read_nested_command_line_values(config, SCHEMA)
    assert config["summary"]["ci_prob"] == 0.9
    assert config["sampling"]["draws"] == 300
    assert config["diagnostics"]["strict"] is True
    assert config["instrument"]["months"] == [3, 6, 12]
    assert config["synthetic_twin"]["centres"] == ["1", "2", "3"]  # text where text is wanted
    assert config_checks.schema_problems(config, SCHEMA) == []


def test_a_nested_value_that_is_no_number_still_names_the_key():
    config = with_value(raw_config(), "sampling.draws", "many")
    config_checks.read_nested_command_line_values(config, SCHEMA)
    (problem,) = config_checks.schema_problems(config, SCHEMA)
    assert problem == "sampling.draws is 'many'; allowed: an integer, at least 10."


def test_an_unknown_key_lists_the_known_ones():
    (problem,) = config_checks.schema_problems(
        with_value(raw_config(), "sampling.drawz", 100), SCHEMA
    )
    known = ", ".join(SCHEMA["properties"]["sampling"]["properties"])
    assert problem == f"sampling.drawz is not a known key; allowed under sampling: {known}."
    assert "chains, draws, tune" in known


def test_a_missing_key_is_named():
    config = raw_config()
    del config["growth"]["models"]
    (problem,) = config_checks.schema_problems(config, SCHEMA)
    assert problem.startswith("growth.models is missing; growth needs the keys models,")


def test_several_problems_are_listed_one_per_line():
    config = with_value(with_value(raw_config(), "sampling.draws", -5), "seed", -1)
    problems = config_checks.schema_problems(config, SCHEMA)
    assert problems == [
        "sampling.draws is -5; allowed: an integer, at least 10.",
        "seed is -1; allowed: an integer, at least 0.",
    ]
    assert config_checks.exit_message(problems) == (
        "Configuration errors:\n  - " + "\n  - ".join(problems)
    )
    assert config_checks.exit_message(problems[:1]) == f"Configuration error: {problems[0]}"


# -- names and paths that must exist -----------------------------------------------------------


def test_reported_model_must_be_one_of_the_models():
    growth = load_config()["growth"]
    assert config_checks.reported_model_problem(growth) is None
    problem = config_checks.reported_model_problem({**growth, "reported_model": "quadratic"})
    assert problem == (
        "growth.reported_model is 'quadratic'; allowed: one of the models under growth.models: "
        + ", ".join(growth["models"])
        + "."
    )


def test_a_residual_sd_per_arm_is_refused_for_the_censored_likelihood():
    growth = load_config()["growth"]
    assert config_checks.residual_sd_problem(growth) is None
    censored = {**growth["models"]["linear_censored"], "residual_sd_by": "arm"}
    problem = config_checks.residual_sd_problem(
        {**growth, "models": {**growth["models"], "linear_censored": censored}}
    )
    assert problem == (
        "growth.models.linear_censored.residual_sd_by is set for a censored_gaussian model;"
        " allowed: only with likelihood gaussian."
    )


def test_a_reported_alternative_must_share_the_reported_models_likelihood():
    """ELPDs compare densities of one kind: a censored alternative to a Gaussian model is
    refused."""
    growth = load_config()["growth"]
    problem = config_checks.reported_model_problem(
        {**growth, "reported_alternatives": ["linear_censored"]}
    )
    assert problem == (
        "growth.reported_alternatives holds 'linear_censored'; allowed: other models under"
        " growth.models with the reported model's likelihood (gaussian): monthly, linear_arm_sd."
    )


def test_cross_validation_must_cover_the_models_it_chooses_between():
    growth = load_config()["growth"]
    only = {**growth, "cross_validation": {"folds": 10, "models": ["linear", "monthly"]}}
    assert config_checks.reported_model_problem(only) == (
        "growth.cross_validation.models leaves out 'linear_arm_sd'; the reported model and its"
        " alternatives are chosen between by cross-validation."
    )
    unknown = {**growth, "cross_validation": {"models": ["linear", "linear_arm_sd", "cubic"]}}
    assert config_checks.reported_model_problem(unknown).startswith(
        "growth.cross_validation.models holds 'cubic'; allowed: models under growth.models"
    )
    chosen = {**growth, "cross_validation": {"models": ["linear", "linear_arm_sd"]}}
    assert config_checks.reported_model_problem(chosen) is None


def test_a_sampler_that_is_not_installed_is_named_with_the_installed_ones():
    def installed(name):
        return None if name == "numpyro" else object()

    assert config_checks.sampler_problem("nutpie", installed) is None
    assert config_checks.sampler_problem("numpyro", installed) == (
        "sampling.sampler is 'numpyro', but the package numpyro is not installed in this "
        "environment; allowed: nutpie, pymc (installed here)."
    )


def test_raw_data_dir_must_hold_the_three_input_files(tmp_path):
    assert config_checks.INPUT_FILES == FILES
    allowed = "allowed: a folder with patients.csv, wai.csv and digital.csv"
    assert config_checks.raw_data_dir_problem("") is None
    assert config_checks.raw_data_dir_problem(None) is None

    missing = config_checks.raw_data_dir_problem(str(tmp_path / "nowhere"))
    assert missing.startswith(f"raw_data_dir is '{tmp_path / 'nowhere'}', a folder that does not")
    assert allowed in missing and "or empty to analyse the synthetic twin" in missing

    (tmp_path / "wai.csv").write_text("patient_id\n")
    partial = config_checks.raw_data_dir_problem(str(tmp_path))
    assert f"'{tmp_path}', a folder without patients.csv and digital.csv; {allowed}" in partial
    assert "a file, not a folder" in config_checks.raw_data_dir_problem(str(tmp_path / "wai.csv"))

    for name in FILES:
        (tmp_path / name).write_text("x\n")
    assert config_checks.raw_data_dir_problem(str(tmp_path)) is None
    # A relative folder is read from Snakemake's working directory.
    assert config_checks.raw_data_dir_problem(tmp_path.name, base=tmp_path.parent) is None
    relative = config_checks.raw_data_dir_problem("data/raw", base=tmp_path)
    assert f"raw_data_dir is 'data/raw' (relative to {tmp_path})" in relative


def test_a_malformed_yaml_file_is_located(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("sampling:\n  draws: 20\n\ttune: 20\n")
    assert config_checks.yaml_file_problem(path) == (
        f"{path} is not valid YAML (line 3, column 1: found character '\\t' that cannot start "
        "any token); allowed: YAML with keys at the top level, indented with spaces (not tabs)."
    )
    path.write_text("seed: [1, 2\n")
    assert "while parsing a flow sequence from line 1, column 7" in (
        config_checks.yaml_file_problem(path)
    )
    path.write_text("- a list\n- not keys\n")
    assert config_checks.yaml_file_problem(path).startswith(
        f"{path} holds a list, not keys with values; allowed:"
    )
    path.write_text("seed: 1\n")
    assert config_checks.yaml_file_problem(path) is None
    assert config_checks.yaml_file_problem(tmp_path / "absent.yaml") is None  # Snakemake says so


# -- the workflow: one message on the console, before any job, no traceback ---------------------

MODELS = ", ".join(load_config()["growth"]["models"])
TO_THE_MODELS = f"allowed: one of the models under growth.models: {MODELS}."
MALFORMED = "sampling:\n  draws: 20\n   tune: [1, 2\n"


def snakemake_case(case: str, workspace, tmp_path) -> tuple[list[str], list[str]]:
    """Arguments after run_snakemake's --configfile, and what the console must show."""
    extra = tmp_path / "extra.yaml"
    if case == "reported_model via --config":
        return ["--config", 'growth={"reported_model": "quadratic"}'], [
            "Configuration error: growth.reported_model is 'quadratic'; " + TO_THE_MODELS
        ]
    if case == "reported_model via --configfile":
        extra.write_text("growth:\n  reported_model: quadratic\n")
        return [str(extra)], ["growth.reported_model is 'quadratic'; " + TO_THE_MODELS]
    if case == "sampler not installed":
        return ["--config", 'sampling={"sampler": "numpyro"}'], [
            "Configuration error: sampling.sampler is 'numpyro', but the package numpyro is not "
            "installed in this environment; allowed: nutpie, pymc (installed here)."
        ]
    allowed = (
        "allowed: a folder with patients.csv, wai.csv and digital.csv (see config/README.md), "
        "or empty to analyse the synthetic twin."
    )
    if case == "raw_data_dir does not exist":
        folder = tmp_path / "no such folder"
        return ["--config", f"raw_data_dir={folder}"], [
            f"Configuration error: raw_data_dir is '{folder}', a folder that does not exist; "
            + allowed
        ]
    if case == "raw_data_dir lacks a file":
        folder = tmp_path / "raw"
        folder.mkdir()
        (folder / "patients.csv").write_text("patient_id\n")
        (folder / "digital.csv").write_text("patient_id\n")
        return ["--config", f"raw_data_dir={folder}"], [
            f"raw_data_dir is '{folder}', a folder without wai.csv; " + allowed
        ]
    if case == "negative draws via --configfile":
        extra.write_text("sampling:\n  draws: -5\n")
        return [str(extra)], [
            "Configuration error: sampling.draws is -5; allowed: an integer, at least 10."
        ]
    if case == "negative draws via --config":
        # The nested value arrives as text ('-5') and is read as the integer it spells.
        return ["--config", 'sampling={"draws": -5}'], [
            "Configuration error: sampling.draws is -5; allowed: an integer, at least 10."
        ]
    if case == "zero draws via --configfile":
        extra.write_text("sampling:\n  draws: 0\n")
        return [str(extra)], ["sampling.draws is 0; allowed: an integer, at least 10."]
    if case == "malformed config/config.yaml":
        (workspace / "config" / "config.yaml").write_text(MALFORMED)
        return [], [
            "Configuration error: config/config.yaml is not valid YAML (line 3, column 8: "
            "mapping values are not allowed here); allowed: YAML with keys at the top level, "
            "indented with spaces (not tabs)."
        ]
    if case == "malformed --configfile":
        # Snakemake reads --configfile files before the Snakefile, so the workflow cannot
        # name the file: this is Snakemake's own message (no traceback, but no file either).
        extra.write_text(MALFORMED)
        return [str(extra)], ["Config file is not valid JSON or YAML."]
    raise ValueError(case)


CASES = [
    "reported_model via --config",
    "reported_model via --configfile",
    "sampler not installed",
    "raw_data_dir does not exist",
    "raw_data_dir lacks a file",
    "negative draws via --configfile",
    "negative draws via --config",
    "zero draws via --configfile",
    "malformed config/config.yaml",
    "malformed --configfile",
]


# Every case as a dry run; a few as a real run too (the checks come first there as well).
REAL_RUNS = ("reported_model via --config", "sampler not installed", "malformed config/config.yaml")


@pytest.mark.parametrize(
    ("case", "dry_run"),
    [pytest.param(case, True, id=f"{case}, dry run") for case in CASES]
    + [pytest.param(case, False, id=f"{case}, real run") for case in REAL_RUNS],
)
def test_the_console_shows_one_message_and_no_traceback(case, dry_run, tmp_path):
    if case == "sampler not installed" and find_spec("numpyro") is not None:
        pytest.skip("numpyro is installed here")
    workspace = make_workspace(tmp_path / "workspace")
    arguments, expected = snakemake_case(case, workspace, tmp_path)
    result = run_snakemake(workspace, *arguments, *(["-n"] if dry_run else []), timeout=300)
    console = result.stdout + result.stderr
    assert result.returncode != 0, console
    for text in expected:
        assert text in console, console
    assert console.count("Configuration error") <= 1
    assert "Traceback" not in console
    assert 'File "' not in console  # Snakemake's short form of a traceback
    # Stopped before building the DAG: no job ran and no output was made.
    assert "Building DAG" not in console
    assert not (workspace / "data").exists()
    assert not (workspace / "logs").exists()


def test_a_valid_config_still_runs(tmp_path):
    result = run_snakemake(make_workspace(tmp_path), "-n", timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Configuration error" not in result.stdout + result.stderr


def test_a_config_file_in_another_key_order_changes_no_params():
    """Keys merged from a --configfile come back in the project config's order (Snakemake
    compares params key order included), nested keys too; keys the project lacks keep theirs."""
    from alliance.config_checks import in_reference_order

    reference = {"sampling": {"chains": 4, "draws": 1000, "tune": 500}, "seed": 1}
    merged = {"seed": 2, "sampling": {"tune": 300, "new": 1, "draws": 200, "chains": 2}}
    ordered = in_reference_order(merged, reference)
    assert ordered == merged
    assert list(ordered) == ["sampling", "seed"]
    assert list(ordered["sampling"]) == ["chains", "draws", "tune", "new"]
