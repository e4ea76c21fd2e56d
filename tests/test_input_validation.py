"""Each class of bad input is reported with file, spreadsheet line, column, value, expectation."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from alliance.analysis_tables import build_analysis_tables
from alliance.input_data import InputDataError, Violation, read_trial_data


def edit_cell(folder: Path, name: str, line: int, column: str, value: str) -> None:
    """Set one cell of a comma-separated input file (line as a spreadsheet numbers it)."""
    path = folder / name
    lines = path.read_text(encoding="utf-8").split("\n")
    header = lines[0].split(",")
    cells = lines[line - 1].split(",")
    cells[header.index(column)] = value
    lines[line - 1] = ",".join(cells)
    path.write_text("\n".join(lines), encoding="utf-8")


def violations(folder: Path, config) -> list[Violation]:
    with pytest.raises(InputDataError) as caught:
        read_trial_data(folder, config)
    return caught.value.violations


def only(found: list[Violation]) -> Violation:
    assert len(found) == 1, found
    return found[0]


def test_the_twin_is_valid_input(twin_files, config):
    data = read_trial_data(twin_files, config)
    assert len(data.patients) == config["synthetic_twin"]["n_patients"]


@pytest.mark.parametrize(
    ("name", "line", "column", "value", "expected"),
    [
        ("wai.csv", 5, "item_03", "9", "an integer from 1 to 7, or missing"),
        ("wai.csv", 7, "item_12", "4.5", "an integer from 1 to 7, or missing"),
        ("wai.csv", 4, "month", "9", "an assessment month: 3, 6, 12"),
        ("wai.csv", 6, "rater", "nurse", "one of patient, therapist"),
        ("wai.csv", 8, "patient_id", "P999", "a patient_id listed in patients.csv"),
        ("patients.csv", 3, "arm", "placebo", "one of digital, ptau"),
        ("patients.csv", 9, "age", "12", "a number from 18 to 90, or missing"),
        ("patients.csv", 10, "age", "forty", "a number from 18 to 90, or missing"),
        ("patients.csv", 4, "centre", "", "non-empty text"),
        ("patients.csv", 5, "therapist_id", "", "non-empty text"),
        ("digital.csv", 3, "sus_04", "6", "an integer from 1 to 5, or missing"),
        ("digital.csv", 6, "vas_app", "11", "a number from 0 to 10, or missing"),
        ("digital.csv", 7, "n_calls", "-2", "an integer from 0 or more, or missing"),
    ],
)
def test_bad_cell_is_located_and_explained(
    input_folder, config, name, line, column, value, expected
):
    edit_cell(input_folder, name, line, column, value)
    found = only(violations(input_folder, config))
    assert (found.file, found.line, found.column, found.value) == (name, line, column, value)
    assert found.expected == expected
    message = str(found)
    assert all(part in message for part in (name, f"line {line}", column, repr(value), expected))


def test_every_violation_of_a_file_is_reported_together(input_folder, config):
    edit_cell(input_folder, "wai.csv", 2, "item_01", "0")
    edit_cell(input_folder, "wai.csv", 3, "item_02", "8")
    edit_cell(input_folder, "patients.csv", 2, "age", "101")
    found = violations(input_folder, config)
    assert {(v.file, v.line, v.column) for v in found} == {
        ("wai.csv", 2, "item_01"),
        ("wai.csv", 3, "item_02"),
        ("patients.csv", 2, "age"),
    }
    report = InputDataError(input_folder, found).report()
    assert "3 problems" in report and "Traceback" not in report


def test_duplicate_keys(input_folder, config):
    patients = (input_folder / "patients.csv").read_text().split("\n")
    first_id = patients[1].split(",")[0]
    edit_cell(input_folder, "patients.csv", 6, "patient_id", first_id)
    wai = (input_folder / "wai.csv").read_text().rstrip("\n").split("\n")
    (input_folder / "wai.csv").write_text("\n".join([*wai, wai[1]]) + "\n")
    found = violations(input_folder, config)
    duplicate_patient = [v for v in found if v.file == "patients.csv"]
    assert only(duplicate_patient).line == 6
    assert "line 2 has it already" in duplicate_patient[0].expected
    duplicate_wai = [v for v in found if v.file == "wai.csv" and "+" in v.column]
    assert only(duplicate_wai).line == len(wai) + 1
    assert duplicate_wai[0].column == "patient_id+month+rater"


def test_digital_row_of_a_ptau_patient(input_folder, config, twin):
    ptau_id = twin.patients.loc[twin.patients.arm == "ptau", "patient_id"].iloc[0]
    edit_cell(input_folder, "digital.csv", 2, "patient_id", ptau_id)
    found = only(violations(input_folder, config))
    assert found.expected == "a patient_id listed in patients.csv with arm 'digital'"


def test_missing_column_and_missing_file(input_folder, config):
    table = pd.read_csv(input_folder / "patients.csv", dtype=str, keep_default_na=False)
    table.drop(columns="centre").to_csv(input_folder / "patients.csv", index=False)
    found = only(violations(input_folder, config))
    assert (found.file, found.line, found.column) == ("patients.csv", 1, "centre")
    (input_folder / "digital.csv").unlink()
    found = only(violations(input_folder, config))
    assert (found.file, found.column) == ("digital.csv", "(file)")


def test_row_with_wrong_number_of_fields(input_folder, config):
    path = input_folder / "patients.csv"
    lines = path.read_text().split("\n")
    lines[2] = lines[2] + ",extra"
    path.write_text("\n".join(lines))
    found = only(violations(input_folder, config))
    assert (found.file, found.line, found.column) == ("patients.csv", 3, "(whole row)")


def spanish_export(folder: Path) -> None:
    """Rewrite the folder as a Spanish spreadsheet would: BOM, ';' and decimal commas."""
    for name in ("patients.csv", "wai.csv", "digital.csv"):
        table = pd.read_csv(folder / name, dtype=str, keep_default_na=False)
        text = table.to_csv(sep=";", index=False).replace(".", ",")
        (folder / name).write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))


def test_semicolons_decimal_commas_and_bom_give_the_same_tables(input_folder, twin_files, config):
    spanish_export(input_folder)
    assert ";" in (input_folder / "digital.csv").read_text(encoding="utf-8-sig").split("\n")[0]
    original = build_analysis_tables(read_trial_data(twin_files, config), config["instrument"])
    exported = build_analysis_tables(read_trial_data(input_folder, config), config["instrument"])
    for name in ("alliance", "digital_covariates"):
        pd.testing.assert_frame_equal(original[name], exported[name])


def test_missing_codes_and_na_are_missing(input_folder, config):
    edit_cell(input_folder, "wai.csv", 2, "item_01", "-99")
    edit_cell(input_folder, "wai.csv", 2, "item_02", "NA")
    edit_cell(input_folder, "patients.csv", 2, "age", "-999")
    data = read_trial_data(input_folder, config)
    assert math.isnan(data.wai.loc[0, "item_01"]) and math.isnan(data.wai.loc[0, "item_02"])
    assert math.isnan(data.patients.loc[0, "age"])


def test_arm_case_spaces_and_aliases(input_folder, config, twin):
    first, second = twin.patients.index[twin.patients.arm == "ptau"][:2]
    edit_cell(input_folder, "patients.csv", first + 2, "arm", " PTAU ")
    edit_cell(input_folder, "patients.csv", second + 2, "arm", "Control")
    aliased = {**config, "input": {**config["input"], "arm_aliases": {"control": "ptau"}}}
    data = read_trial_data(input_folder, aliased)
    assert data.patients.loc[[first, second], "arm"].tolist() == ["ptau", "ptau"]
    with pytest.raises(InputDataError):  # without the alias, "Control" is not an arm
        read_trial_data(input_folder, config)
