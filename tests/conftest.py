"""Shared fixtures: the project's config and small, valid input folders built from the twin."""

from __future__ import annotations

import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from alliance.runtime import isolate_caches
from alliance.settings import PROJECT_DIR, load_config

# Before any test module imports pytensor: its caches (and numba's, matplotlib's, temporary
# files) go to the project's .cache/, not the home directory.
isolate_caches(PROJECT_DIR, "tests")

from alliance.twin import generate_twin, write_input_files  # noqa: E402


@pytest.fixture(scope="session")
def config() -> dict:
    """The project's validated config, with a smaller truth population for speed."""
    return load_config({"synthetic_twin": {"truth_population": 4000}})


@pytest.fixture(scope="session")
def twin(config):
    return generate_twin(config)


@pytest.fixture(scope="session")
def twin_files(twin, tmp_path_factory) -> Path:
    """A folder with the default twin's three input files (read only: copy before editing)."""
    folder = tmp_path_factory.mktemp("twin")
    write_input_files(twin, folder)
    return folder


@pytest.fixture
def input_folder(twin_files, tmp_path) -> Path:
    """A writable copy of the twin's input files."""
    folder = tmp_path / "input"
    shutil.copytree(twin_files, folder)
    return folder


@pytest.fixture(scope="session")
def project_dir() -> Path:
    return PROJECT_DIR


WORKFLOW_FILES = (
    "Snakefile",
    "environment.yml",
    "workflow",
    "config",
    "report",
    "models",
    "profiles",
)


def make_workspace(folder: Path) -> Path:
    """A copy of the workflow (not its results) in ``folder``, to run Snakemake in."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        source = PROJECT_DIR / name
        if source.is_dir():
            shutil.copytree(source, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, folder / name)
    return folder


def job_server_processes(workspace: Path) -> list[int]:
    """The running job server of a run in ``workspace`` and the jobs it forked
    (alliance.job_server: in sessions of their own, outside Snakemake's process group)."""
    import psutil

    pids = []
    for process in psutil.process_iter(["cmdline", "status"]):
        command = " ".join(process.info["cmdline"] or [])
        running = process.info["status"] != psutil.STATUS_ZOMBIE
        if running and "alliance.job_server" in command and str(workspace) in command:
            pids.append(process.pid)
    return pids


def run_snakemake(workspace: Path, *arguments: str, timeout: int = 3000):
    """Run Snakemake of the current environment in ``workspace`` with the reduced test config."""
    import subprocess
    import sys

    command = [
        str(Path(sys.executable).parent / "snakemake"),
        "--cores",
        "2",
        "--configfile",
        str(PROJECT_DIR / "tests" / "fixtures" / "ci_config.yaml"),
        *arguments,
    ]
    # Each job sets its own C compile directory inside the workspace; the numba kernel cache
    # (base_compiledir) stays the project's, shared, so test runs reuse compiled kernels.
    env = dict(os.environ)
    flags = re.sub(r"(^|,)compiledir=[^,]*", "", env.get("PYTENSOR_FLAGS", ""))
    env["PYTENSOR_FLAGS"] = flags.strip(",")
    return subprocess.run(
        command,
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def completed_run(tmp_path_factory) -> Path:
    """A workspace where the whole default DAG ran on the twin at reduced MCMC size."""
    workspace = make_workspace(tmp_path_factory.mktemp("run") / "workflow")
    result = run_snakemake(workspace)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return workspace


class EstimateParser(HTMLParser):
    """Collects the data attributes of every estimate inside the findings table."""

    def __init__(self):
        super().__init__()
        self.in_findings = False
        self.estimates: list[dict] = []
        self.findings_rows = 0

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "table" and attributes.get("id") == "findings-table":
            self.in_findings = True
        elif self.in_findings and tag == "tr" and "finding" in attributes.get("class", ""):
            self.findings_rows += 1
        elif self.in_findings and tag == "span" and attributes.get("class") == "estimate":
            self.estimates.append(attributes)

    def handle_endtag(self, tag):
        if tag == "table":
            self.in_findings = False


def findings_of(html: str) -> EstimateParser:
    parser = EstimateParser()
    parser.feed(html)
    return parser
