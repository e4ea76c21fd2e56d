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


def test_every_rule_has_a_log_and_a_benchmark_and_its_captions_exist():
    """Snakemake's --report needs every caption file; every job leaves a log and a benchmark."""
    import re

    rules_dir = PROJECT_DIR / "workflow" / "rules"
    for path in rules_dir.glob("*.smk"):
        text = path.read_text()
        for caption in re.findall(r'caption="([^"]+)"', text):
            assert (rules_dir / caption).resolve().is_file(), (path.name, caption)
        for rule in re.split(r"^rule ", text, flags=re.MULTILINE)[1:]:
            name = rule.split(":", 1)[0]
            assert "\n    log:" in rule and "\n    benchmark:" in rule, (path.name, name)
