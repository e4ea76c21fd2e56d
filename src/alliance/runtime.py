"""Process set-up for workflow jobs: caches and temporary files inside the project.

Import and call :func:`isolate_caches` before anything imports pytensor, numba or matplotlib.
Each job gets its own PyTensor C compile directory (``.cache/pytensor/<job>``), so parallel
Snakemake jobs never wait on each other's compile lock (jobs forked from the job server share
its directory, ``.cache/pytensor/job_server``: :mod:`alliance.job_server`). PyTensor's numba
cache lives in the base compile directory (``.cache/pytensor/numba``) and is shared: its entries
are keyed by content and written atomically, and sharing lets later fits reuse the kernels
compiled by earlier ones.
"""

from __future__ import annotations

import atexit
import os
import re
from pathlib import Path

from alliance.job_server import SERVER_PID_VARIABLE, SOCKET_VARIABLE, run_job_in_server


def job_name(rule: str, wildcards=None) -> str:
    """The name of one Snakemake job: its rule and wildcard values in the order of the rule's
    output path (``fit_growth_patient_linear``), for its cache directory and console prefix."""
    values = [str(value) for value in dict(wildcards or {}).values()]
    return "_".join([rule, *values])


def start_job(smk, project_dir: str | Path = "."):
    """Set up a Snakemake script's job (its caches and its logger); return the logger.

    Call it before anything imports pytensor, numba or matplotlib. Where a job server runs
    (:mod:`alliance.job_server`), the job is handed to it here: this process then waits for the
    server's child that runs the script and exits with its status, and this function returns in
    that child.
    """
    if os.environ.get(SOCKET_VARIABLE):
        run_job_in_server()
    name = job_name(smk.rule, smk.wildcards)
    isolate_caches(project_dir, name)
    return job_logger(smk.log[0], name)


def isolate_caches(project_dir: str | Path, job_name: str) -> Path:
    """Point PyTensor, numba, matplotlib and temporary files at ``.cache/`` in the project.

    Returns the job's cache directory. Existing explicit settings of the user are respected.
    """
    safe_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", job_name) or "job"
    cache_root = Path(project_dir).resolve() / ".cache"
    base_dir = cache_root / "pytensor"
    job_dir = base_dir / safe_name
    paths = {
        "MPLCONFIGDIR": cache_root / "matplotlib",
        "NUMBA_CACHE_DIR": cache_root / "numba",
        "TMPDIR": cache_root / "tmp",
    }
    for variable, path in paths.items():
        path.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault(variable, str(path))
    job_dir.mkdir(parents=True, exist_ok=True)
    flags = os.environ.get("PYTENSOR_FLAGS", "")
    extra = []
    if "base_compiledir" not in flags:
        extra.append(f"base_compiledir={base_dir}")
    if not re.search(r"(^|,)compiledir=", flags):
        extra.append(f"compiledir={job_dir}")
    os.environ["PYTENSOR_FLAGS"] = ",".join(part for part in (flags, *extra) if part)
    os.environ.setdefault("MPLBACKEND", "Agg")
    return job_dir


def job_logger(log_path: str | Path, job_name: str):
    """A logger that writes to the job's log file and, prefixed with the job, to the console."""
    import logging
    import sys

    logger = logging.getLogger(f"alliance.{job_name}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    to_file = logging.FileHandler(log_path, mode="w", encoding="utf-8")
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    to_console = logging.StreamHandler(sys.stderr)
    to_console.setFormatter(logging.Formatter(f"[{job_name}] %(message)s"))
    logger.addHandler(to_file)
    logger.addHandler(to_console)
    atexit.register(log_resources, logger)
    return logger


def cpu_seconds() -> float:
    """CPU time (user + system, all threads and waited-for child processes) of this process."""
    import resource

    return sum(
        usage.ru_utime + usage.ru_stime
        for usage in (
            resource.getrusage(resource.RUSAGE_SELF),
            resource.getrusage(resource.RUSAGE_CHILDREN),
        )
    )


def peak_memory_mb() -> float:
    """The largest resident memory of this process, in MB: Linux's ``VmHWM`` (a process forked
    from the job server counts the server's pages it shares), else ``ru_maxrss``, which Linux
    carries over from the parent through fork and exec (a job started by a large process would
    report that process's size)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def log_resources(logger) -> None:
    """Log the CPU time and peak memory the job used (Snakemake's benchmark files sample them
    only every 30 s, and measure the waiting process of a job run by the job server)."""
    where = (
        f" (forked from job server {os.environ[SERVER_PID_VARIABLE]}, after its imports)"
        if SERVER_PID_VARIABLE in os.environ
        else ""
    )
    logger.info(
        "done: %.1f s of CPU time, %.0f MB peak memory%s", cpu_seconds(), peak_memory_mb(), where
    )
