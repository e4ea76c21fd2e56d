"""The SLURM profile for real: a one-node cluster on this machine (workflow/bin/start-slurm-cluster)
runs a small validation study through `--profile profiles/slurm`, every job submitted with sbatch.
Skipped, with the reason, when the machine cannot host the cluster (not root, no packages)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import make_workspace

from alliance.settings import PROJECT_DIR

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def slurm_cluster():
    start = subprocess.run(
        ["bash", str(PROJECT_DIR / "workflow/bin/start-slurm-cluster")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if start.returncode == 2:
        pytest.skip(f"this machine cannot host a SLURM cluster: {start.stderr.strip()}")
    assert start.returncode == 0, start.stderr
    yield
    if "already running" not in start.stderr:
        # Started here: stop it and remove its slurm.conf, or every later Snakemake start on this
        # machine waits ~9 s for the stopped controller (the SLURM plugin runs scontrol on load).
        stop = subprocess.run(
            ["bash", str(PROJECT_DIR / "workflow/bin/stop-slurm-cluster")],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert stop.returncode == 0, stop.stderr


def test_a_small_validation_runs_through_the_slurm_profile(slurm_cluster, tmp_path):
    workspace = make_workspace(tmp_path / "workflow")
    small = tmp_path / "small.yaml"
    small.write_text(
        yaml.safe_dump(
            {
                "synthetic_twin": {"truth_population": 4000},
                "validation": {
                    "run": ["as_published"],
                    "replicates": 1,
                    "replicates_per_job": 1,
                    "sampling": {"chains": 2, "draws": 100, "tune": 150},
                    "prior_draws": 50,
                    "sbc": {
                        "models": ["growth_patient", "growth_therapist"],
                        "simulations": 1,
                        "simulations_per_job": 1,
                        "kept_draws": 9,
                    },
                },
            }
        )
    )
    environment = dict(os.environ)
    # The jobs run Snakemake and the analysis from this environment.
    environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment['PATH']}"
    flags = re.sub(r"(^|,)compiledir=[^,]*", "", environment.get("PYTENSOR_FLAGS", ""))
    environment["PYTENSOR_FLAGS"] = flags.strip(",")
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "snakemake"),
            "--profile",
            "profiles/slurm",
            "--configfile",
            str(small),
            "--",
            "validation",
        ],
        cwd=workspace,
        env=environment,
        capture_output=True,
        text=True,
        timeout=2400,
        check=False,
    )
    console = result.stdout + result.stderr
    assert result.returncode == 0, console[-5000:]
    submitted = re.findall(r"Job \d+ has been submitted with SLURM jobid (\d+)", console)
    jobs = re.findall(r"^rule (\w+):$", console, flags=re.MULTILINE)
    # Every job but the target rule (a local rule that only gathers its inputs) went to sbatch.
    assert sorted(jobs) == [
        "summarise_validation",
        "validation_replicates",
        "validation_sbc",
        "validation_sbc",
        "validation_truth",
    ]
    assert len(submitted) == len(jobs) and len(set(submitted)) == len(jobs)
    verdicts = pd.read_csv(workspace / "results/validation/verdicts.csv")
    assert set(verdicts["scenario"]) == {"as_published"} and len(verdicts) == 7
    assert (workspace / "results/validation/report.html").stat().st_size > 10_000
