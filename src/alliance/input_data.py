"""Reading and validating the three input files of the data contract.

Every violation in the input is collected, with its file, spreadsheet line, column, offending
value and what was expected; :func:`read_trial_data` raises :class:`InputDataError` holding all of
them, or returns typed tables that the cleaning step can trust.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from alliance.design import ARMS, RATERS, TREATMENT_ARM
from alliance.scoring import SUS_ITEMS, item_columns

FILES = ("patients.csv", "wai.csv", "digital.csv")
AGE_RANGE = (18, 90)
COUNT_COLUMNS = ("n_messages", "n_calls", "n_visits")
VAS_COLUMNS = ("vas_app", "vas_platform")


@dataclass(frozen=True)
class Violation:
    """One breach of the data contract, located as a spreadsheet shows it."""

    file: str
    line: int
    column: str
    value: str
    expected: str

    def __str__(self) -> str:
        return (
            f"{self.file}, line {self.line}, column {self.column}: "
            f"value {self.value!r}; expected {self.expected}"
        )


class InputDataError(Exception):
    """The input breaks the data contract; ``violations`` lists every breach found."""

    def __init__(self, folder: Path | str, violations: Sequence[Violation]):
        self.folder = str(folder)
        self.violations = list(violations)
        super().__init__(self.report())

    def report(self) -> str:
        """A message for the console: every violation, grouped by file."""
        n = len(self.violations)
        lines = [
            f"The input data in {self.folder} do not meet the data contract "
            f"({n} problem{'s' if n != 1 else ''}); no model was fitted.",
        ]
        for name in sorted({v.file for v in self.violations}, key=_file_order):
            found = [v for v in self.violations if v.file == name]
            lines.append(f"{name}: {len(found)} problem{'s' if len(found) != 1 else ''}")
            lines.extend(f"  {violation}" for violation in found)
        return "\n".join(lines)


def _file_order(name: str) -> tuple[int, str]:
    return (FILES.index(name) if name in FILES else len(FILES), name)


@dataclass
class RawTable:
    """A CSV file as text cells, with the spreadsheet line of every record."""

    name: str
    header: list[str]
    rows: list[dict[str, str]]
    lines: list[int]
    decimal_comma: bool
    problems: list[Violation] = field(default_factory=list)
    malformed_keys: set[str] = field(default_factory=set)


def detect_delimiter(header_line: str) -> str:
    """Semicolon when the header has more semicolons than commas, else comma."""
    return ";" if header_line.count(";") > header_line.count(",") else ","


def read_raw_table(path: Path) -> RawTable:
    """Read a CSV file (UTF-8, optional BOM, comma or semicolon) into text cells."""
    name = path.name
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        problem = Violation(name, 1, "(file)", f"byte {error.start}", "UTF-8 text")
        return RawTable(name, [], [], [], False, [problem])
    first_line = text.split("\n", 1)[0]
    delimiter = detect_delimiter(first_line)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    table = RawTable(name, [], [], [], decimal_comma=delimiter == ";")
    for record in reader:
        line = reader.line_num
        if not table.header:
            table.header = [cell.strip() for cell in record]
            continue
        if not record or all(not cell.strip() for cell in record):
            continue
        if len(record) != len(table.header):
            table.problems.append(
                Violation(
                    name,
                    line,
                    "(whole row)",
                    delimiter.join(record),
                    f"{len(table.header)} fields separated by '{delimiter}', found {len(record)}",
                )
            )
            table.malformed_keys.add(record[0].strip())
            continue
        table.rows.append(dict(zip(table.header, (cell.strip() for cell in record), strict=True)))
        table.lines.append(line)
    return table


class CellReader:
    """Turns text cells into values, knowing the missing-value codes and decimal commas."""

    def __init__(self, missing_codes: Iterable[float], decimal_comma: bool):
        self.missing_codes = {float(code) for code in missing_codes}
        self.decimal_comma = decimal_comma

    def number(self, text: str) -> float | None:
        """The number in ``text``, ``nan`` when it is a missing value, None when not a number."""
        if text in ("", "NA"):
            return math.nan
        candidate = text.replace(",", ".") if self.decimal_comma else text
        try:
            value = float(candidate)
        except ValueError:
            return None
        if not math.isfinite(value):
            return None
        return math.nan if value in self.missing_codes else value

    def is_missing(self, text: str) -> bool:
        value = self.number(text)
        return value is not None and math.isnan(value)


Check = Callable[[str], tuple[object, str | None]]


class TableValidator:
    """Collects violations while turning one raw table into typed columns."""

    def __init__(self, table: RawTable, cells: CellReader):
        self.table = table
        self.cells = cells
        self.violations: list[Violation] = list(table.problems)

    def flag(self, line: int, column: str, value: str, expected: str) -> None:
        self.violations.append(Violation(self.table.name, line, column, value, expected))

    def require_columns(self, columns: Sequence[str]) -> bool:
        absent = [column for column in columns if column not in self.table.header]
        for column in absent:
            self.flag(1, column, "(no such column)", f"a header column named '{column}'")
        return not absent

    def column(self, name: str, parse: Check) -> list[object]:
        """Parse every cell of a column; flag the ones ``parse`` rejects (value None)."""
        values = []
        for row, line in zip(self.table.rows, self.table.lines, strict=True):
            value, expected = parse(row[name])
            if expected is not None:
                self.flag(line, name, row[name], expected)
            values.append(value)
        return values

    # Parsers: each returns (value, None) or (None, what was expected).
    def text(self, cell: str) -> tuple[object, str | None]:
        if cell == "" or self.cells.is_missing(cell):
            return None, "non-empty text"
        return cell, None

    def optional_number(self, low: float, high: float, integer: bool) -> Check:
        kind = "an integer" if integer else "a number"
        upper = "or more" if math.isinf(high) else f"to {_show(high)}"
        expected = f"{kind} from {_show(low)} {upper}, or missing"

        def parse(cell: str) -> tuple[object, str | None]:
            value = self.cells.number(cell)
            if value is None:
                return None, expected
            if math.isnan(value):
                return math.nan, None
            if (integer and not value.is_integer()) or not low <= value <= high:
                return None, expected
            return value, None

        return parse

    def choice(self, allowed: Sequence[object], mapping: Mapping[str, object]) -> Check:
        expected = "one of " + ", ".join(str(option) for option in allowed)

        def parse(cell: str) -> tuple[object, str | None]:
            value = mapping.get(cell.strip().lower())
            return (value, None) if value is not None else (None, expected)

        return parse

    def duplicates(self, keys: Sequence[str], values: Mapping[str, list[object]]) -> None:
        """Flag every record whose key repeats an earlier record's."""
        seen: dict[tuple, int] = {}
        for index, line in enumerate(self.table.lines):
            key = tuple(values[column][index] for column in keys)
            if any(part is None for part in key):
                continue
            if key in seen:
                shown = ", ".join(str(part) for part in key)
                self.flag(
                    line,
                    "+".join(keys),
                    shown,
                    f"at most one row per ({', '.join(keys)}); line {seen[key]} has it already",
                )
            else:
                seen[key] = line


def _show(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


def _month_choice(validator: TableValidator, months: Sequence[int]) -> Check:
    expected = "an assessment month: " + ", ".join(str(m) for m in months)

    def parse(cell: str) -> tuple[object, str | None]:
        value = validator.cells.number(cell)
        if value is None or math.isnan(value) or value not in months:
            return None, expected
        return int(value), None

    return parse


@dataclass
class TrialData:
    """The three input tables, typed and checked against the contract."""

    patients: pd.DataFrame
    wai: pd.DataFrame
    digital: pd.DataFrame


def read_trial_data(folder: Path | str, config: Mapping) -> TrialData:
    """Read and validate ``patients.csv``, ``wai.csv`` and ``digital.csv`` from ``folder``.

    Raises :class:`InputDataError` with every violation of every file when the input breaks the
    data contract.
    """
    folder = Path(folder)
    absent = [name for name in FILES if not (folder / name).is_file()]
    if absent:
        raise InputDataError(
            folder,
            [Violation(name, 0, "(file)", str(folder / name), "this file") for name in absent],
        )
    missing_codes = config["input"]["missing_codes"]
    instrument = config["instrument"]
    aliases = {**{arm: arm for arm in ARMS}, **config["input"].get("arm_aliases", {})}

    def validator_for(name: str) -> TableValidator:
        table = read_raw_table(folder / name)
        return TableValidator(table, CellReader(missing_codes, table.decimal_comma))

    patients_check = validator_for("patients.csv")
    patients = _patients(patients_check, aliases)
    # Without a readable patients.csv, patient ids cannot be checked against it. Patients whose
    # own row is broken (already reported) are not reported again in the other files.
    arm_of = None if patients is None else dict(zip(patients.patient_id, patients.arm, strict=True))
    if arm_of is not None:
        arm_of.update(dict.fromkeys(patients_check.table.malformed_keys - set(arm_of), None))

    wai_check = validator_for("wai.csv")
    wai = _wai(wai_check, instrument, arm_of)

    digital_check = validator_for("digital.csv")
    digital = _digital(digital_check, instrument["months"], arm_of)

    violations = patients_check.violations + wai_check.violations + digital_check.violations
    if violations:
        raise InputDataError(folder, violations)
    return TrialData(patients=patients, wai=wai, digital=digital)


def _patients(check: TableValidator, aliases: Mapping[str, str]) -> pd.DataFrame | None:
    columns = ["patient_id", "centre", "arm", "therapist_id", "age"]
    if not check.require_columns(columns):
        return None
    values = {
        "patient_id": check.column("patient_id", check.text),
        "centre": check.column("centre", check.text),
        "arm": check.column("arm", check.choice(ARMS, {k.lower(): v for k, v in aliases.items()})),
        "therapist_id": check.column("therapist_id", check.text),
        "age": check.column("age", check.optional_number(*AGE_RANGE, integer=False)),
    }
    check.duplicates(["patient_id"], values)
    frame = pd.DataFrame(values)
    frame["age"] = pd.to_numeric(frame["age"], errors="coerce")
    return frame


def _wai(check: TableValidator, instrument: Mapping, arm_of: Mapping | None) -> pd.DataFrame:
    items = item_columns(instrument["n_items"])
    if not check.require_columns(["patient_id", "month", "rater", *items]):
        return pd.DataFrame()
    known = _known_patient(check, arm_of, arm=None)
    values = {
        "patient_id": check.column("patient_id", known),
        "month": check.column("month", _month_choice(check, instrument["months"])),
        "rater": check.column("rater", check.choice(RATERS, {r: r for r in RATERS})),
    }
    answer = check.optional_number(instrument["response_min"], instrument["response_max"], True)
    for column in items:
        values[column] = check.column(column, answer)
    check.duplicates(["patient_id", "month", "rater"], values)
    frame = pd.DataFrame(values)
    frame[items] = frame[items].apply(pd.to_numeric, errors="coerce")
    return frame


def _digital(check: TableValidator, months: Sequence[int], arm_of: Mapping | None):
    columns = ["patient_id", "month", *SUS_ITEMS, *VAS_COLUMNS, *COUNT_COLUMNS]
    if not check.require_columns(columns):
        return pd.DataFrame()
    values = {
        "patient_id": check.column("patient_id", _known_patient(check, arm_of, arm=TREATMENT_ARM)),
        "month": check.column("month", _month_choice(check, months)),
    }
    for column in SUS_ITEMS:
        values[column] = check.column(column, check.optional_number(1, 5, integer=True))
    for column in VAS_COLUMNS:
        values[column] = check.column(column, check.optional_number(0, 10, integer=False))
    for column in COUNT_COLUMNS:
        values[column] = check.column(column, check.optional_number(0, math.inf, integer=True))
    check.duplicates(["patient_id", "month"], values)
    frame = pd.DataFrame(values)
    numeric = [*SUS_ITEMS, *VAS_COLUMNS, *COUNT_COLUMNS]
    frame[numeric] = frame[numeric].apply(pd.to_numeric, errors="coerce").astype(np.float64)
    return frame


def _known_patient(check: TableValidator, arm_of: Mapping | None, arm: str | None) -> Check:
    if arm is None:
        expected = "a patient_id listed in patients.csv"
    else:
        expected = f"a patient_id listed in patients.csv with arm '{arm}'"

    def parse(cell: str) -> tuple[object, str | None]:
        if arm_of is None:
            return check.text(cell)
        if cell in arm_of and pd.isna(arm_of[cell]):  # its patients.csv row is already reported
            return cell, None
        if cell not in arm_of or (arm is not None and arm_of[cell] != arm):
            return None, expected
        return cell, None

    return parse
