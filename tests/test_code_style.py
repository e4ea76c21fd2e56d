"""Lint and format checks the project holds itself to (ruff, snakefmt, snakemake --lint)."""

import subprocess
import sys
from pathlib import Path

from alliance.settings import PROJECT_DIR

BIN = Path(sys.executable).parent


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=PROJECT_DIR, capture_output=True, text=True, check=False)


def test_ruff_lint_and_format():
    lint = run(str(BIN / "ruff"), "check", ".")
    assert lint.returncode == 0, lint.stdout
    fmt = run(str(BIN / "ruff"), "format", "--check", ".")
    assert fmt.returncode == 0, fmt.stdout


def test_snakefmt():
    result = run(str(BIN / "snakefmt"), "--check", "Snakefile", "workflow")
    assert result.returncode == 0, result.stderr


def test_snakemake_lint_is_clean():
    result = run(str(BIN / "snakemake"), "--lint")
    assert result.returncode == 0
    assert "Lints for" not in result.stdout + result.stderr, result.stdout
