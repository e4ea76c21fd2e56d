"""Benchmark: the whole default reanalysis from an empty compile cache, and each rule's share.

Run from the repository root:

    .venv/bin/python workflow/benchmarks/full_run.py [--cores 4] [--keep]

The project's tracked files (as they are in the working tree) are copied into a fresh workspace
under ``.cache/benchmarks/``, with no ``.cache``, data, models, results or logs, and
``snakemake --cores N`` runs there with the default config. Then a template-only edit is timed: the
report template is touched and the workflow rerun. Wall-clock and CPU times of the whole run come
from this script; each job's wall clock and peak memory from the ``benchmark:`` files Snakemake
writes (``logs/benchmarks/``), its CPU time from the last line of its log (Snakemake samples CPU
time only every 30 s). The table is printed and written to ``workflow/benchmarks/full_run.csv``.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

PROJECT_DIR = Path(__file__).resolve().parents[2]
RESULT_FILE = PROJECT_DIR / "workflow" / "benchmarks" / "full_run.csv"
TEMPLATE = Path("report") / "templates" / "report.html.j2"


def tracked_files(project: Path) -> list[str]:
    listing = subprocess.run(
        ["git", "ls-files", "-z"], cwd=project, capture_output=True, text=True, check=True
    )
    return [name for name in listing.stdout.split("\0") if name]


def fresh_workspace(project: Path, root: Path) -> Path:
    """A copy of the tracked files: no compile cache, no data, models, results or logs."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    workspace = root / f"full_run_{stamp}"
    for name in tracked_files(project):
        source, target = project / name, workspace / name
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return workspace


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_snakemake(workspace: Path, cores: int, *arguments: str) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one ``snakemake --cores N`` in ``workspace`` (its own code)."""
    env = {**os.environ, "PYTHONPATH": str(workspace / "src")}
    command = [sys.executable, "-m", "snakemake", "--cores", str(cores), *arguments]
    cpu_before, start = children_cpu_seconds(), time.perf_counter()
    subprocess.run(command, cwd=workspace, env=env, check=True)
    return time.perf_counter() - start, children_cpu_seconds() - cpu_before


CPU_LINE = re.compile(r"done: ([0-9.]+) s of CPU time")


def logged_cpu_seconds(log: Path) -> float:
    """The CPU time a job's log reports at its end (alliance.runtime.log_resources), or NaN."""
    found = CPU_LINE.findall(log.read_text()) if log.exists() else []
    return float(found[-1]) if found else float("nan")


def job_times(workspace: Path) -> pd.DataFrame:
    """One row per benchmarked job: wall-clock and CPU seconds, peak memory (MB)."""
    rows = []
    root = workspace / "logs" / "benchmarks"
    for path in sorted(root.rglob("*.tsv")):
        measured = pd.read_csv(path, sep="\t").iloc[-1]
        relative = path.relative_to(root).with_suffix("")
        rule = relative.parts[0]
        job = "/".join(relative.parts[1:]) or ""
        log = workspace / "logs" / relative.with_suffix(".log")
        rows.append(
            {
                "measure": f"{rule} {job}".strip(),
                "wall_seconds": round(float(measured["s"]), 1),
                "cpu_seconds": round(logged_cpu_seconds(log), 1),
                "max_rss_mb": round(float(measured["max_rss"]), 0),
            }
        )
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=4, help="snakemake --cores (default 4)")
    parser.add_argument("--keep", action="store_true", help="keep the workspace afterwards")
    args = parser.parse_args()

    workspace = fresh_workspace(PROJECT_DIR, PROJECT_DIR / ".cache" / "benchmarks")
    print(f"workspace: {workspace}", flush=True)
    total, total_cpu = run_snakemake(workspace, args.cores)
    (workspace / TEMPLATE).touch()
    template_rerun, template_cpu = run_snakemake(workspace, args.cores)
    table = pd.concat(
        [
            pd.DataFrame(
                [
                    {
                        "measure": "whole run",
                        "wall_seconds": round(total, 1),
                        "cpu_seconds": round(total_cpu, 1),
                    },
                    {
                        "measure": "rerun after touching the report template",
                        "wall_seconds": round(template_rerun, 1),
                        "cpu_seconds": round(template_cpu, 1),
                    },
                ]
            ),
            job_times(workspace),
        ],
        ignore_index=True,
    )
    table.insert(0, "cores", args.cores)
    table.insert(1, "cpus", os.cpu_count())
    table.to_csv(RESULT_FILE, index=False)
    print(table.to_markdown(index=False))
    print(f"written to {RESULT_FILE.relative_to(PROJECT_DIR)}")
    if not args.keep:
        shutil.rmtree(workspace)


if __name__ == "__main__":
    main()
