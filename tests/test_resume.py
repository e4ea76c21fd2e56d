"""Interrupted runs resume: after Ctrl-C, SIGINT or SIGTERM to Snakemake, or a killed job, the same
plain command refits nothing that finished and redoes what was left incomplete.

Each case runs two growth fit jobs one after the other at a tiny MCMC size (``--cores 1``) in a copy
of the workflow, interrupts the run once the first fit is done and the second is running, and
runs the same command again.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml
from conftest import job_server_processes, make_workspace

from alliance.settings import PROJECT_DIR, SCHEMA_FILE

# Two growth models' jobs (each fits both raters), `linear` first (alliance's fit_priority).
FIRST, SECOND = "models/growth/patient_linear.nc", "models/growth/patient_monthly.nc"
SECOND_LOG = "logs/fit/growth/monthly.log"  # written when the second fit's job starts


def tiny_config(folder: Path) -> Path:
    """Two chains of 20 draws after 20 warm-up iterations: seconds per fit, no extensions."""
    sampling = {"chains": 2, "draws": 20, "tune": 20}
    schema = yaml.safe_load(SCHEMA_FILE.read_text())
    if "max_draws" in schema["properties"]["sampling"]["properties"]:
        sampling["max_draws"] = sampling["draws"]  # no safety-net extension at this size
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump({"sampling": sampling, "predictive": {"prior_draws": 20}}))
    return path


def command(tiny: Path, *targets: str) -> list[str]:
    """The plain command a user types (the test config and the tiny config added)."""
    ci = PROJECT_DIR / "tests" / "fixtures" / "ci_config.yaml"
    snakemake = str(Path(sys.executable).parent / "snakemake")
    return [snakemake, "--cores", "1", "--configfile", str(ci), str(tiny), "--", *targets]


def environment() -> dict[str, str]:
    """As conftest.run_snakemake: each job its own compile directory, the numba cache shared."""
    env = dict(os.environ)
    flags = re.sub(r"(^|,)compiledir=[^,]*", "", env.get("PYTENSOR_FLAGS", ""))
    env["PYTENSOR_FLAGS"] = flags.strip(",")
    return env


def run(workspace: Path, arguments: list[str], timeout: int = 300):
    return subprocess.run(
        arguments,
        cwd=workspace,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> tuple[Path, Path]:
    """A workspace with the workflow profile and the analysis tables made; the tiny config."""
    folder = tmp_path_factory.mktemp("resume")
    workspace = make_workspace(folder / "workflow")
    tiny = tiny_config(folder)
    result = run(workspace, command(tiny, "data/processed/alliance.csv"))
    assert result.returncode == 0, result.stderr[-3000:]
    return workspace, tiny


def fit_jobs(process: subprocess.Popen) -> list[psutil.Process]:
    """The running fit_growth job processes started by this Snakemake process."""
    jobs = []
    for child in psutil.Process(process.pid).children(recursive=True):
        try:
            if any("fit_growth" in part for part in child.cmdline()):
                jobs.append(child)
        except psutil.Error:
            pass
    return jobs


def wait_until_second_fit_runs(process, workspace: Path, log: Path, timeout=240):
    """Wait until the first fit is finished and the second fit's job is running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the run ended before it was interrupted:\n{log.read_text()[-3000:]}")
        jobs = fit_jobs(process)
        if (workspace / FIRST).exists() and (workspace / SECOND_LOG).exists() and jobs:
            time.sleep(1)  # into the second fit (imports, compiling)
            return jobs
        time.sleep(0.2)
    pytest.fail(f"the second fit did not start in {timeout} s:\n{log.read_text()[-3000:]}")


def processes_in_group(group: int) -> list[int]:
    pids = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == group:
                pids.append(process.pid)
        except (OSError, psutil.Error):
            pass
    return pids


def snapshot(path: Path) -> tuple[int, bytes]:
    return path.stat().st_mtime_ns, path.read_bytes()


def ctrl_c(process, jobs):
    """A terminal's Ctrl-C: SIGINT to the foreground process group (Snakemake and its job)."""
    os.killpg(process.pid, signal.SIGINT)


def sigint_to_snakemake(process, jobs):
    """`kill -INT <snakemake>`: Snakemake stops, but its running job finishes and writes its
    output, which Snakemake leaves marked incomplete (a rerun without the workflow profile
    stops and asks for --rerun-incomplete)."""
    os.kill(process.pid, signal.SIGINT)


def sigterm(process, jobs):
    """`kill <snakemake>`: Snakemake lets the running job finish, then stops."""
    os.kill(process.pid, signal.SIGTERM)


def killed_job(process, jobs):
    """The job's own process killed (for example by the out-of-memory killer)."""
    for job in jobs:
        job.kill()


@pytest.mark.slow
@pytest.mark.parametrize("interrupt", [ctrl_c, sigint_to_snakemake, sigterm, killed_job])
def test_an_interrupted_run_resumes_with_the_same_command(prepared, interrupt, tmp_path):
    source, tiny = prepared
    workspace = tmp_path / "workflow"
    shutil.copytree(source, workspace, symlinks=True)
    arguments = command(tiny, FIRST, SECOND)
    log = tmp_path / "interrupted.log"
    with open(log, "w") as console:
        # A session of its own, as a terminal gives: the job shares Snakemake's process group.
        process = subprocess.Popen(
            arguments,
            cwd=workspace,
            env=environment(),
            stdout=console,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            jobs = wait_until_second_fit_runs(process, workspace, log)
            finished = snapshot(workspace / FIRST)
            interrupt(process, jobs)
            process.wait(timeout=120)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    time.sleep(1)
    assert processes_in_group(process.pid) == [], "a job outlived the interrupted run"
    assert job_server_processes(workspace) == [], "the job server or a job outlived the run"

    result = run(workspace, arguments)
    console = result.stdout + result.stderr
    assert result.returncode == 0, console[-3000:]
    for refusal in ("IncompleteFilesException", "LockException", "--rerun-incomplete"):
        assert refusal not in console
    assert snapshot(workspace / FIRST) == finished  # the finished fit was not refitted
    assert f"output: {FIRST}" not in console
    assert (workspace / SECOND).stat().st_size > 10_000
    assert run(workspace, [*arguments[:1], "-n", *arguments[1:]]).stdout.count("rule ") == 0


def test_a_hangup_stops_like_ctrl_c_unless_ignored():
    """A closed terminal or dropped SSH connection sends SIGHUP, which would kill Snakemake on the
    spot and leave the directory locked; the workflow turns it into what Ctrl-C raises (tested
    above). Under nohup (SIGHUP ignored) it stays ignored."""
    probe = (
        "import os, signal, sys, time\n"
        "from alliance.interruptions import stop_on_hangup_like_ctrl_c\n"
        "print(stop_on_hangup_like_ctrl_c(), flush=True)\n"
        "try:\n"
        "    os.kill(os.getpid(), signal.SIGHUP)\n"
        "    time.sleep(2)\n"
        "    print('still running')\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted')\n"
    )

    def hangup_ignored():
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    def hangup_default():  # whatever the test run's own disposition (nohup ignores SIGHUP)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)

    default = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, preexec_fn=hangup_default
    )
    assert default.stdout.splitlines() == ["True", "interrupted"], default.stderr
    nohup = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, preexec_fn=hangup_ignored
    )
    assert nohup.stdout.splitlines() == ["False", "still running"], nohup.stderr
