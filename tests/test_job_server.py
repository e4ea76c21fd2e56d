"""Jobs handed to the job server run as their own process would: same streams, directory,
environment, arguments and exit status; signals reach them; a job whose process dies is stopped;
without a server the job runs in its own process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from alliance import job_server

# A script as Snakemake generates it: its preamble sets __real_file__, then the job starts
# (alliance.runtime.start_job hands it to the server the same way).
JOB = textwrap.dedent(
    """\
    __real_file__ = __file__
    import json, os, stat, sys, time
    from alliance.job_server import run_job_in_server
    run_job_in_server()
    facts = {{
        "pid": os.getpid(),
        "parent": os.getppid(),
        "group": os.getpgid(0),
        "cwd": os.getcwd(),
        "argv": sys.argv[1:],
        "marker": os.environ.get("JOB_MARKER"),
        "socket": os.environ.get("{socket}"),
        "pandas_preloaded": "pandas" in sys.modules,
        "stdin_is_a_socket": stat.S_ISSOCK(os.fstat(0).st_mode),
    }}
    with open(sys.argv[1], "w") as handle:
        json.dump(facts, handle)
    print("to stdout", flush=True)
    print("to stderr", file=sys.stderr, flush=True)
    {body}
    """
)


def write_job(folder: Path, body: str = "sys.exit(3)") -> Path:
    path = folder / "job.py"
    path.write_text(JOB.format(socket=job_server.SOCKET_VARIABLE, body=body))
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    project = tmp_path_factory.mktemp("project")
    process = job_server.start(project)
    # Only the jobs below use the server (not the other tests' runs).
    address = os.environ.pop(job_server.SOCKET_VARIABLE)
    assert address == process.address
    assert os.environ.pop(job_server.PREFIX_VARIABLE) == sys.prefix
    yield process, address
    job_server.stop(process)
    assert process.returncode == 0
    assert not Path(address).exists()


def run_job(
    script: Path,
    address: str | None,
    facts: Path,
    cwd: Path,
    prefix: str = sys.prefix,
    close_stdin: bool = False,
):
    """Start ``script`` as Snakemake would start a job, in an environment pointing at the
    server at ``address`` (whose Python environment is ``prefix``), without any stdin if
    ``close_stdin``."""
    env = dict(os.environ)
    if address:
        env[job_server.SOCKET_VARIABLE] = address
        env[job_server.PREFIX_VARIABLE] = prefix
    env["JOB_MARKER"] = "from the job's environment"
    command = [sys.executable, str(script), str(facts), "second argument"]
    if close_stdin:
        command = ["sh", "-c", 'exec "$0" "$@" <&-', *command]
    return subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_facts(path: Path, timeout: float = 30) -> dict:
    import json

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().endswith("}"):
            return json.loads(path.read_text())
        time.sleep(0.05)
    pytest.fail("the job did not start")


def test_a_job_runs_in_a_child_of_the_server_as_its_own_process_would(server, tmp_path):
    process, address = server
    job = run_job(write_job(tmp_path), address, tmp_path / "facts.json", tmp_path)
    stdout, stderr = job.communicate(timeout=60)
    facts = read_facts(tmp_path / "facts.json")
    assert job.returncode == 3
    assert stdout == "to stdout\n"
    assert stderr == "to stderr\n"
    assert facts["parent"] == process.pid and facts["pid"] != job.pid
    assert facts["group"] == facts["pid"]  # a process group of its own
    assert facts["cwd"] == str(tmp_path)
    assert facts["argv"] == [str(tmp_path / "facts.json"), "second argument"]
    assert facts["marker"] == "from the job's environment"
    assert facts["socket"] is None  # the child runs the job itself
    assert facts["pandas_preloaded"]


def test_a_job_started_without_stdin_runs_in_the_server(server, tmp_path):
    """A closed standard stream is passed as /dev/null."""
    process, address = server
    job = run_job(write_job(tmp_path), address, tmp_path / "facts.json", tmp_path, close_stdin=True)
    stdout, _ = job.communicate(timeout=60)
    facts = read_facts(tmp_path / "facts.json")
    assert job.returncode == 3 and stdout == "to stdout\n"
    assert facts["parent"] == process.pid
    assert not facts["stdin_is_a_socket"]  # not the connection to the server


def test_a_failing_job_reports_its_traceback_and_fails(server, tmp_path):
    _, address = server
    script = write_job(tmp_path, "raise ValueError('no such predictor')")
    job = run_job(script, address, tmp_path / "facts.json", tmp_path)
    _, stderr = job.communicate(timeout=60)
    assert job.returncode == 1
    assert "ValueError: no such predictor" in stderr


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_jobs_process_reaches_the_job(server, tmp_path, number):
    _, address = server
    script = write_job(tmp_path, "time.sleep(120)")
    job = run_job(script, address, tmp_path / "facts.json", tmp_path)
    child = read_facts(tmp_path / "facts.json")["pid"]
    job.send_signal(number)
    _, stderr = job.communicate(timeout=30)
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == "zombie"
    if number == signal.SIGINT:
        assert job.returncode == 128 + signal.SIGINT and "KeyboardInterrupt" in stderr
    else:
        assert job.returncode == -signal.SIGTERM  # killed by it, as the job was


def test_the_job_stops_when_its_process_is_killed(server, tmp_path):
    _, address = server
    script = write_job(tmp_path, "time.sleep(120)")
    job = run_job(script, address, tmp_path / "facts.json", tmp_path)
    child = psutil.Process(read_facts(tmp_path / "facts.json")["pid"])
    job.kill()
    job.wait()
    gone, _ = psutil.wait_procs([child], timeout=job_server.TERMINATION_GRACE + 5)
    assert gone


def test_without_a_server_the_job_runs_in_its_own_process(tmp_path):
    missing = str(tmp_path / "no-server")
    job = run_job(write_job(tmp_path), missing, tmp_path / "facts.json", tmp_path)
    _, stderr = job.communicate(timeout=60)
    facts = read_facts(tmp_path / "facts.json")
    assert job.returncode == 3
    assert facts["pid"] == job.pid
    assert "not reachable" in stderr and "runs in its own process" in stderr


def test_a_job_in_another_python_environment_runs_in_its_own_process(server, tmp_path):
    """A rule run in, say, a conda environment of its own is not forked from this stack."""
    _, address = server
    script = write_job(tmp_path)
    job = run_job(script, address, tmp_path / "facts.json", tmp_path, prefix="/elsewhere")
    job.communicate(timeout=60)
    assert job.returncode == 3
    assert read_facts(tmp_path / "facts.json")["pid"] == job.pid


def test_the_server_stops_when_the_process_that_started_it_has_gone(tmp_path):
    starter = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, sys; from alliance import job_server; "
            "p = job_server.start(sys.argv[1]); print(p.pid, flush=True); os._exit(0)",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    server = int(starter.stdout.split()[-1])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not psutil.pid_exists(server) or psutil.Process(server).status() == "zombie":
            break
        time.sleep(0.1)
    else:
        os.kill(server, signal.SIGKILL)
        pytest.fail("the job server outlived the Snakemake process that started it")


@pytest.mark.parametrize(
    ("enabled", "local", "python_jobs", "started"),
    [
        (True, True, job_server.MIN_PYTHON_JOBS, True),
        (True, True, job_server.MIN_PYTHON_JOBS - 1, False),  # a report rerun: no gain
        (False, True, 40, False),  # runtime.job_server: false
        (True, False, 40, False),  # cluster jobs
    ],
)
def test_a_workflow_run_starts_a_server_only_where_it_pays(
    tmp_path, monkeypatch, enabled, local, python_jobs, started
):
    for variable in (job_server.SOCKET_VARIABLE, job_server.PREFIX_VARIABLE):
        monkeypatch.delenv(variable, raising=False)
    job_server.start_for_workflow(enabled, local, python_jobs, tmp_path)
    try:
        assert (job_server.SOCKET_VARIABLE in os.environ) == started
        assert len(job_server._started) == int(started)
        servers = list(job_server._started)
    finally:
        job_server.stop_for_workflow()
    assert job_server.SOCKET_VARIABLE not in os.environ
    assert job_server.PREFIX_VARIABLE not in os.environ
    assert all(server.returncode == 0 for server in servers)
