"""Benchmark: the whole default reanalysis, cold and warm, with 4 and 2 cores; each model's
compile, sampling and other seconds; and (``--scaling``) the models' cost against the number of
patients.

Run from the repository root:

    .venv/bin/python workflow/benchmarks/full_run.py [--cores 4 2] [--scaling] [--keep]

For each number of cores, the project's tracked files (as they are in the working tree) are
copied into a fresh workspace under ``.cache/benchmarks/``, with no ``.cache``, data, models,
results or logs, and ``snakemake --cores N`` runs there with the default config: the **cold** run
(empty compile cache). Then every output, log and Snakemake record is deleted, the compile cache
kept, and the same command runs again: the **warm** run. Then a template-only edit is timed (a
Jinja comment appended to the report template, the workflow rerun: Snakemake reruns a job for an
input whose content changed, not for a touched one). Wall-clock and CPU seconds of each whole run
come from this script (written to ``workflow/benchmarks/full_run.csv``).

The per-model table (``workflow/benchmarks/model_phases.csv``) comes from the cold run with the
first number of cores: per fit or cross-validation job, its wall-clock seconds (Snakemake's
``benchmark:`` file), and from its log the seconds spent compiling (the models compiled once,
``alliance.refit.CompiledModel``), sampling, and compiling and sampling together where one call
does both (fits through ``pm.sample`` or Bambi), and its CPU seconds. "Other" is the rest of the
job's wall clock: starting Python and importing, reading and building, the draws computed after
sampling (log-likelihood, predictive draws, prior draws, estimands) and saving. Jobs run side by
side on the machine's cores, so wall-clock seconds of one job include waiting for a core.

``--scaling`` also runs ``workflow/benchmarks/scaling.py`` (growth and agreement models on twins
of 184, 1,840 and 18,400 patients; ``scaling.csv``).
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
PHASES_FILE = PROJECT_DIR / "workflow" / "benchmarks" / "model_phases.csv"
TEMPLATE = Path("report") / "templates" / "report.html.j2"
#: What a run writes besides the compile cache (deleted before the warm run).
OUTPUTS = ("data", "models", "results", "logs", ".snakemake")


def tracked_files(project: Path) -> list[str]:
    listing = subprocess.run(
        ["git", "ls-files", "-z"], cwd=project, capture_output=True, text=True, check=True
    )
    return [name for name in listing.stdout.split("\0") if name]


def fresh_workspace(project: Path, root: Path, label: str) -> Path:
    """A copy of the tracked files: no compile cache, no data, models, results or logs."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    workspace = root / f"full_run_{label}_{stamp}"
    for name in tracked_files(project):
        source, target = project / name, workspace / name
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return workspace


def delete_outputs(workspace: Path) -> None:
    """Everything a run wrote but the compile cache (``.cache``): the untracked files of the
    output folders (they hold tracked READMEs), the logs and Snakemake's records."""
    tracked = set(tracked_files(PROJECT_DIR))
    for name in OUTPUTS:
        path = workspace / name
        if name in ("logs", ".snakemake"):
            shutil.rmtree(path, ignore_errors=True)
            continue
        for file in path.rglob("*") if path.exists() else []:
            if file.is_file() and str(file.relative_to(workspace)) not in tracked:
                file.unlink()


def convergence_checks(workspace: Path) -> tuple[int, int]:
    """Failed and all convergence checks of a run (every model's ``diagnostics.csv``)."""
    tables = [pd.read_csv(path) for path in (workspace / "results").glob("*/*/diagnostics.csv")]
    checks = pd.concat(tables, ignore_index=True)
    return int((~checks["passed"].astype(bool)).sum()), len(checks)


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_snakemake(workspace: Path, cores: int, *arguments: str) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one ``snakemake --cores N`` in ``workspace`` (its own code)."""
    env = {**os.environ, "PYTHONPATH": str(workspace / "src")}
    command = [sys.executable, "-m", "snakemake", "--cores", str(cores), *arguments]
    cpu_before, start = children_cpu_seconds(), time.perf_counter()
    subprocess.run(command, cwd=workspace, env=env, check=True, capture_output=True)
    return time.perf_counter() - start, children_cpu_seconds() - cpu_before


CPU_LINE = re.compile(r"done: ([0-9.]+) s of CPU time")
MEMORY_LINE = re.compile(r"s of CPU time, ([0-9.]+) MB peak memory")
COMPILED = re.compile(r"compiled a model of \d+ parameters once in ([0-9.]+) s")
COMPILED_AND_SAMPLED = re.compile(r"compiled and sampled in ([0-9.]+) s")
SAMPLED = re.compile(r"(?<!and )sampled(?: \(compiled once before\))? in ([0-9.]+) s")


def log_seconds(text: str, pattern: re.Pattern) -> float:
    return round(sum(float(value) for value in pattern.findall(text)), 1)


def last_logged(text: str, pattern: re.Pattern) -> float:
    """The last value ``pattern`` finds in a job's log (its CPU time and peak memory, which
    alliance.runtime.log_resources writes at the end), or NaN."""
    found = pattern.findall(text)
    return float(found[-1]) if found else float("nan")


def job_rows(workspace: Path) -> list[dict]:
    """One row per benchmarked job: its wall clock (benchmark file), the seconds its log gives
    for compiling and sampling, the rest, and its CPU seconds and peak memory."""
    rows = []
    root = workspace / "logs" / "benchmarks"
    for path in sorted(root.rglob("*.tsv")):
        measured = pd.read_csv(path, sep="\t").iloc[-1]
        relative = path.relative_to(root).with_suffix("")
        log = workspace / "logs" / relative.with_suffix(".log")
        text = log.read_text() if log.exists() else ""
        wall = float(measured["s"])
        phases = {
            "compile_s": log_seconds(text, COMPILED),
            "sampling_s": log_seconds(text, SAMPLED),
            "compile_and_sampling_s": log_seconds(text, COMPILED_AND_SAMPLED),
        }
        rows.append(
            {
                "stage": relative.parts[0],
                "job": "/".join(relative.parts[1:]) or relative.parts[0],
                "wall_s": round(wall, 1),
                **phases,
                "other_s": round(wall - sum(phases.values()), 1),
                "cpu_s": round(last_logged(text, CPU_LINE), 1),
                # The job's own peak (its log): a benchmark file measures the process that
                # waits for a job run by the job server.
                "max_rss_mb": round(last_logged(text, MEMORY_LINE), 0),
            }
        )
    return rows


def model_phases(workspace: Path) -> pd.DataFrame:
    """The fit and cross-validation jobs of a run (see the module docstring)."""
    rows = [row for row in job_rows(workspace) if row["stage"] in ("fit", "cross_validate")]
    return pd.DataFrame(rows)


def time_runs(cores: int, keep: bool) -> tuple[list[dict], Path]:
    workspace = fresh_workspace(PROJECT_DIR, PROJECT_DIR / ".cache" / "benchmarks", f"{cores}")
    print(f"--cores {cores}: workspace {workspace}", flush=True)
    rows = []
    cold = run_snakemake(workspace, cores)
    phases = model_phases(workspace)
    failed, checks = convergence_checks(workspace)
    rows.append(("cold: empty compile cache", *cold, failed, checks))
    print(f"  cold {cold[0]:.0f} s, {failed} failed checks", flush=True)
    delete_outputs(workspace)
    warm = run_snakemake(workspace, cores)
    failed, checks = convergence_checks(workspace)
    rows.append(("warm: compile cache kept, outputs deleted", *warm, failed, checks))
    print(f"  warm {warm[0]:.0f} s, {failed} failed checks", flush=True)
    template = workspace / TEMPLATE
    template.write_text(template.read_text() + "{# benchmark: a template-only edit #}\n")
    rerun = run_snakemake(workspace, cores)
    rows.append(("rerun after editing the report template", *rerun, None, None))
    table = [
        {
            "cores": cores,
            "cpus": os.cpu_count(),
            "run": run,
            "wall_seconds": round(wall, 1),
            "cpu_seconds": round(cpu, 1),
            "failed_checks": failed,
            "checks": total,
        }
        for run, wall, cpu, failed, total in rows
    ]
    if not keep:
        shutil.rmtree(workspace)
    return table, phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, nargs="+", default=[4, 2], help="default: 4 2")
    parser.add_argument("--scaling", action="store_true", help="also run scaling.py")
    parser.add_argument("--keep", action="store_true", help="keep the workspaces afterwards")
    args = parser.parse_args()

    runs, phases = [], None
    for cores in args.cores:
        table, measured = time_runs(cores, args.keep)
        runs.extend(table)
        if phases is None:
            phases = measured.assign(cores=cores)
    measured_on = datetime.now(UTC).strftime("%Y-%m-%d")
    runs = pd.DataFrame(runs).assign(measured=measured_on)
    runs.to_csv(RESULT_FILE, index=False)
    phases.assign(measured=measured_on).to_csv(PHASES_FILE, index=False)
    print(runs.to_markdown(index=False))
    print(phases.to_markdown(index=False))
    print(f"written to {RESULT_FILE.relative_to(PROJECT_DIR)}, {PHASES_FILE.name}")
    if args.scaling:
        subprocess.run(
            [sys.executable, str(Path(__file__).with_name("scaling.py"))],
            cwd=PROJECT_DIR,
            check=True,
        )


if __name__ == "__main__":
    main()
