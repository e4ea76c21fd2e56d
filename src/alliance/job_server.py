"""Run the workflow's Python jobs in processes forked from one server that has imported the stack.

Every Snakemake ``script:`` job is a new Python process, and most of a small job's time is
importing pandas, xarray, SciPy, PyTensor, PyMC, numba, nutpie, ArviZ, matplotlib and seaborn
(1 to 3 s of CPU per job; about 70 of a warm default run's 400 CPU-seconds). With
``runtime.job_server`` on and local execution, the Snakefile's ``onstart`` handler starts a
server (:func:`start`) that imports them once and listens on a Unix socket in a private
directory; Snakemake still starts one process per job (its rules, logs, reruns and scheduling are
unchanged), but that process, in :func:`alliance.runtime.start_job`, hands its job to the server
(:func:`run_job_in_server`): its generated script file, working directory, environment and
standard streams. The server forks a child that runs the script as the job's own process would,
in a process group of its own; the job's process waits, forwards the signals it receives (Ctrl-C,
SIGTERM, SIGHUP) to the child and exits with the child's status. If the job's process dies, the
server terminates the child. Where no server answers, the job runs in its own process as before.

Every child shares the server's imported modules, hence one PyTensor compile directory
(``.cache/pytensor/job_server``; PyTensor fixes it at import) instead of one per job: the models
are compiled by numba into the shared numba cache either way, and the C compile lock guards the
few C modules. The server stops when Snakemake's ``onsuccess`` or ``onerror`` handler calls
:func:`stop`, or by itself when the Snakemake process that started it has gone.

Snakemake's ``benchmark:`` files measure the job's waiting process, not the child: the CPU time
of each job is in its log (``done: ... s of CPU time``, :mod:`alliance.runtime`).
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

#: The environment variable through which jobs find the server's socket.
SOCKET_VARIABLE = "ALLIANCE_JOB_SERVER"
#: The Python environment (``sys.prefix``) of the server, which jobs compare with their own.
PREFIX_VARIABLE = "ALLIANCE_JOB_SERVER_PREFIX"
#: Set in a job run by the server: the server's process ID.
SERVER_PID_VARIABLE = "ALLIANCE_JOB_SERVER_PID"
#: What the server imports before it accepts jobs (each job then skips these imports).
PRELOADED_MODULES = (
    "numpy",
    "pandas",
    "scipy.stats",
    "scipy.special",
    "xarray",
    "h5netcdf",
    "yaml",
    "jinja2",
    "matplotlib.pyplot",
    "seaborn",
    "arviz",
    "numba",
    "pytensor",
    "pymc",
    "nutpie",
    "alliance.diagnostics",
    "alliance.figures",
    "alliance.model_fits",
    "alliance.nutpie_compile",
    "alliance.posterior_summary",
    "alliance.sampling",
    "snakemake.script",
)
#: The fewest Python jobs of a run worth a server: its own imports (about 2 s) delay the first
#: job, which a run of one or two jobs (a report rerun) does not win back.
MIN_PYTHON_JOBS = 4
#: Seconds a child may take to stop after SIGTERM (its job's process died) before SIGKILL.
TERMINATION_GRACE = 5.0
_HEADER = struct.Struct("!Q")
_FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


# --------------------------------------------------------------------------- the job's side


def run_job_in_server() -> None:
    """Hand this job (a Snakemake script's process) to the job server, if one is running, and
    exit with its status; return (and let the job run here) if there is no server, this process
    is itself a server's child, or the server does not answer."""
    address = os.environ.get(SOCKET_VARIABLE)
    script = _script_file()
    # Only a job in the server's own Python environment (not, say, a conda environment's).
    if not address or script is None or os.environ.get(PREFIX_VARIABLE) != sys.prefix:
        return
    _open_standard_streams()  # before the socket, which would take a free number 0
    try:
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.connect(address)
    except OSError as error:
        _say(f"job server at {address} not reachable ({error})")
        return
    request = json.dumps(
        {"script": script, "argv": sys.argv, "cwd": os.getcwd(), "env": dict(os.environ)}
    ).encode()
    sys.stdout.flush()
    sys.stderr.flush()
    socket.send_fds(connection, [_HEADER.pack(len(request))], [0, 1, 2])
    connection.sendall(request)
    status, pending = _wait_for_child(connection)
    if status is not None:
        _exit_as(status)
    # The server went away before it started the job: a signal received meanwhile ends the
    # job as it would have; otherwise the job runs here.
    for number in _FORWARDED_SIGNALS:
        signal.signal(number, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if pending:
        os.kill(os.getpid(), pending[0])
    _say("the job server stopped before it started the job")


def _open_standard_streams() -> None:
    """Point a closed standard stream of this process at /dev/null (a job started without one,
    say without stdin, passes the server something it can hand to the child)."""
    for number in (0, 1, 2):
        try:
            os.fstat(number)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != number:
                os.dup2(null, number)
                os.close(null)


def _say(problem: str) -> None:
    print(f"{problem}; the job runs in its own process", file=sys.stderr, flush=True)


def _script_file() -> str | None:
    """The script file Snakemake generated for this job (its preamble sets ``__real_file__`` in
    ``__main__``), or None in any other process."""
    path = getattr(sys.modules.get("__main__"), "__real_file__", None)
    return str(Path(path).resolve()) if path else None


def available() -> bool:
    """Whether this system has what the server uses (Linux: file descriptors passed over Unix
    sockets, process file descriptors)."""
    return sys.platform == "linux" and hasattr(os, "pidfd_open") and hasattr(socket, "send_fds")


def _wait_for_child(connection: socket.socket) -> tuple[int | None, list[int]]:
    """Forward signals to the child until the server reports its wait status; return it (None
    if the server closed the connection first) and the signals received before the child was
    there to receive them."""
    child = {"pid": None}
    pending = []

    def forward(number, _frame):
        if child["pid"] is None:
            pending.append(number)
        else:
            _signal_group(child["pid"], number)

    for number in _FORWARDED_SIGNALS:
        signal.signal(number, forward)
    for line in connection.makefile("r", encoding="utf-8"):
        kind, value = line.split()
        if kind == "pid":
            child["pid"] = int(value)
            for number in pending:
                _signal_group(child["pid"], number)
        elif kind == "status":
            return int(value), pending
    if child["pid"] is not None:
        raise SystemExit("the job server stopped while it ran the job")
    return None, pending


def _signal_group(pid: int, number: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, number)


def _exit_as(status: int) -> None:
    """Exit as the child did: with its exit code, or killed by the same signal."""
    code = os.waitstatus_to_exitcode(status)
    sys.stdout.flush()
    sys.stderr.flush()
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        code = 128 - code
    os._exit(code)


# --------------------------------------------------------------------------- the server's side


#: The server this (Snakemake) process started, if any.
_started: list[subprocess.Popen] = []


def start_for_workflow(
    enabled: bool, local: bool, python_jobs: int, project_dir: str | Path = "."
) -> None:
    """The Snakefile's ``onstart``: start a server for this run's jobs if ``runtime.job_server``
    is on (``enabled``), the jobs run on this machine (``local``), at least
    :data:`MIN_PYTHON_JOBS` Python jobs are to run and the system has what the server needs; if
    it does not start, say so and let each job run in its own process."""
    if not (enabled and local and python_jobs >= MIN_PYTHON_JOBS and available()):
        return
    try:
        _started.append(start(project_dir))
    except RuntimeError as error:
        print(f"{error}; every job runs in its own process", file=sys.stderr)


def stop_for_workflow() -> None:
    """The Snakefile's ``onsuccess`` and ``onerror``: stop the server :func:`start_for_workflow`
    started."""
    while _started:
        stop(_started.pop())


def start(project_dir: str | Path, parent_pid: int | None = None, timeout: float = 120.0):
    """Start a job server for the jobs of the Snakemake process ``parent_pid`` (default: this
    process) and point this process's environment (which its jobs inherit) at it; return its
    :class:`subprocess.Popen`, with the socket's path as ``address``. The server's output goes
    to ``.cache/job_server.log``."""
    project_dir = Path(project_dir).resolve()
    cache = project_dir / ".cache"
    cache.mkdir(parents=True, exist_ok=True)
    folder = _private_folder(cache)
    address = str(folder / "socket")
    log = open(cache / "job_server.log", "w", encoding="utf-8")  # noqa: SIM115 (kept by the server)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "alliance.job_server",
            address,
            str(project_dir),
            str(parent_pid or os.getpid()),
        ],
        cwd=project_dir,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        # Not in the terminal's process group: a Ctrl-C reaches the jobs through their own
        # processes, and the server is stopped by Snakemake's handlers.
        start_new_session=True,
    )
    log.close()
    process.address = address
    deadline = time.monotonic() + timeout
    while not _answers(address):
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            raise RuntimeError(f"the job server did not start (see {cache / 'job_server.log'})")
        time.sleep(0.05)
    os.environ[SOCKET_VARIABLE] = address
    os.environ[PREFIX_VARIABLE] = sys.prefix
    return process


def _private_folder(cache: Path) -> Path:
    """A new directory only this user can enter, for the socket: inside the project's cache
    when its path is short enough for a Unix socket address (107 bytes), else the system's."""
    base = cache / "tmp"
    base.mkdir(parents=True, exist_ok=True)
    if len(str(base)) > 60:
        base = Path(tempfile.gettempdir())
    return Path(tempfile.mkdtemp(prefix="job-server-", dir=base))


def _answers(address: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(address)
        except OSError:
            return False
        probe.sendall(_HEADER.pack(0))  # an empty request: the server just closes it
        return True


def stop(process: subprocess.Popen | None, timeout: float = 30.0) -> None:
    """Stop a server started by :func:`start` (SIGTERM: its running jobs are terminated), wait
    for it and remove its socket; this process's jobs run in their own processes again."""
    address = getattr(process, "address", None)
    if address and os.environ.get(SOCKET_VARIABLE) == address:
        del os.environ[SOCKET_VARIABLE]
        os.environ.pop(PREFIX_VARIABLE, None)
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if address:
        Path(address).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            Path(address).parent.rmdir()


@dataclass
class _Job:
    connection: socket.socket
    pid: int
    pidfd: int
    kill_at: float | None = field(default=None)


def serve(address: str, project_dir: str | Path, parent_pid: int) -> None:
    """The server: import the stack, then fork a child per job until SIGTERM or until the
    process ``parent_pid`` has gone (its running jobs are then terminated)."""
    from alliance.runtime import isolate_caches

    os.chdir(project_dir)
    # The same caches as a job of its own (the compile directory shared by every child).
    isolate_caches(project_dir, "job_server")
    # Linear algebra libraries read their thread counts at import: one, as Snakemake sets them
    # for a job of one thread (every rule of this workflow has one).
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")
    # No allocator thread of Arrow's jemalloc (it only returns freed memory to the system): the
    # server forks safely only while it has a single thread.
    os.environ.setdefault("JE_ARROW_MALLOC_CONF", "background_thread:false")
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # Listening before the imports: a job that starts meanwhile waits in the queue (it would
    # spend that time importing anyway); if the imports fail, the queued jobs run themselves.
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address)
    os.chmod(address, 0o600)
    listener.listen(64)
    started = time.perf_counter()
    for module in PRELOADED_MODULES:
        __import__(module)
    threads = len(os.listdir("/proc/self/task"))
    print(
        f"imported the stack in {time.perf_counter() - started:.1f} s; {threads} thread(s)",
        flush=True,
    )

    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "listener")
    jobs: dict[int, _Job] = {}
    while not stopping and _alive(parent_pid):
        for key, _ in selector.select(timeout=1.0):
            if key.data == "listener":
                job = _accept(listener, selector, jobs)
                if job is not None:
                    jobs[job.pid] = job
            elif key.data[0] == "exited":
                _finish(jobs.pop(key.data[1]), selector)
            elif key.data[0] == "connection" and key.data[1] in jobs:
                # The job's process closed its end (it died): terminate the child.
                job = jobs[key.data[1]]
                selector.unregister(job.connection)
                _terminate(job)
        now = time.monotonic()
        for job in jobs.values():
            if job.kill_at is not None and now > job.kill_at:
                _signal_group(job.pid, signal.SIGKILL)
    for job in list(jobs.values()):
        _terminate(job)
    deadline = time.monotonic() + TERMINATION_GRACE
    while jobs:
        for key, _ in selector.select(timeout=0.2):
            if isinstance(key.data, tuple) and key.data[0] == "exited":
                _finish(jobs.pop(key.data[1]), selector)
        if time.monotonic() > deadline:
            for job in jobs.values():
                _signal_group(job.pid, signal.SIGKILL)
    listener.close()
    Path(address).unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    """Whether the Snakemake process is still there (and still this server's parent)."""
    return os.getppid() == pid


def _accept(listener, selector, jobs) -> _Job | None:
    connection, _ = listener.accept()
    try:
        user = struct.unpack(
            "3i", connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        )[1]
        if user != os.getuid():
            raise ConnectionError("a job of another user")
        connection.settimeout(30)
        header, fds, _, _ = socket.recv_fds(connection, _HEADER.size, 3)
        if len(header) < _HEADER.size or _HEADER.unpack(header)[0] == 0:
            for fd in fds:
                os.close(fd)
            connection.close()
            return None  # a probe
        size = _HEADER.unpack(header)[0]
        request = b""
        while len(request) < size:
            chunk = connection.recv(size - len(request))
            if not chunk:
                raise ConnectionError("the job's request was cut short")
            request += chunk
        connection.settimeout(None)
    except (OSError, ConnectionError, struct.error) as error:
        print(f"refused a job: {error}", flush=True)
        connection.close()
        return None
    request = json.loads(request)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        selector.close()
        listener.close()
        for job in jobs.values():
            job.connection.close()
            os.close(job.pidfd)
        connection.close()
        _run_child(request, fds)
    for fd in fds:
        os.close(fd)
    # As the child does (whichever runs first): signals to its group reach it from now on.
    with contextlib.suppress(OSError):
        os.setpgid(pid, pid)
    job = _Job(connection, pid, os.pidfd_open(pid))
    try:
        connection.sendall(f"pid {pid}\n".encode())
    except OSError:
        _terminate(job)  # the job's process has gone already
    selector.register(job.pidfd, selectors.EVENT_READ, ("exited", pid))
    selector.register(connection, selectors.EVENT_READ, ("connection", pid))
    return job


def _run_child(request: dict, fds: list[int]) -> None:
    """In the forked child: become the job's process (its streams, directory, environment and
    arguments, a process group of its own, default signal handling), run the script, exit."""
    import atexit
    import runpy
    import traceback

    os.setpgid(0, 0)
    # Named as its job in process listings (``ps -o comm``): the script's name.
    with contextlib.suppress(OSError), open("/proc/self/comm", "w") as comm:
        comm.write(Path(request["script"]).stem.split(".")[-1][:15])
    for number in _FORWARDED_SIGNALS:
        signal.signal(number, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ.pop(SOCKET_VARIABLE, None)
    os.environ[SERVER_PID_VARIABLE] = str(os.getppid())
    tempfile.tempdir = None
    sys.argv = list(request["argv"])
    try:
        runpy.run_path(request["script"], run_name="__main__")
        code = 0
    except SystemExit as exit_request:
        code = _exit_code(exit_request.code)
    except KeyboardInterrupt:
        traceback.print_exc()
        code = 128 + signal.SIGINT
    except BaseException:
        traceback.print_exc()
        code = 1
    try:
        atexit._run_exitfuncs()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _exit_code(code) -> int:
    """The exit code of ``sys.exit(code)``, as Python gives it (a message: printed, 1)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _finish(job: _Job, selector) -> None:
    """The child exited: tell the job's process its wait status."""
    _, status = os.waitpid(job.pid, 0)
    selector.unregister(job.pidfd)
    os.close(job.pidfd)
    with contextlib.suppress(KeyError):
        selector.unregister(job.connection)
    with contextlib.suppress(OSError):
        job.connection.sendall(f"status {status}\n".encode())
    job.connection.close()


def _terminate(job: _Job) -> None:
    if job.kill_at is None:
        _signal_group(job.pid, signal.SIGTERM)
        job.kill_at = time.monotonic() + TERMINATION_GRACE


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2], int(sys.argv[3]))
