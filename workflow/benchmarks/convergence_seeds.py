"""Benchmark: does the default run converge for every seed, from an empty compile cache?

Run from the repository root:

    .venv/bin/python workflow/benchmarks/convergence_seeds.py [--seeds 1 2 3 4 5] [--cores 4]

For each seed, the project's tracked files are copied into a fresh workspace under
``.cache/benchmarks/`` (no compile cache, data, models, results or logs) and
``snakemake --cores N --config seed=S`` runs the whole default reanalysis there. Per seed and
model: the convergence checks run and failed (every parameter and reported quantity, divergences,
E-BFMI, with the thresholds of the config), the draws per chain of the reported fit, how many times
the safety net sampled it again, and the fit job's wall-clock seconds. Written to
``workflow/benchmarks/convergence_seeds.csv`` and printed as a table.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from full_run import PROJECT_DIR, fresh_workspace, run_snakemake  # noqa: E402

RESULT_FILE = PROJECT_DIR / "workflow" / "benchmarks" / "convergence_seeds.csv"
DEFAULT_SEEDS = (20250123, 1, 2, 3, 4)


def fit_seconds(workspace: Path) -> dict[str, float]:
    """Wall-clock seconds of each fit job (``logs/benchmarks/fit/<family>/<name>.tsv``), keyed by
    the model name its diagnostics table uses (``<family>_<name>``)."""
    root = workspace / "logs" / "benchmarks" / "fit"
    return {
        f"{path.parent.name}_{path.stem}": float(pd.read_csv(path, sep="\t").iloc[-1]["s"])
        for path in root.rglob("*.tsv")
    }


def seed_rows(workspace: Path, seed: int, run_seconds: float) -> list[dict]:
    """One row per model of one run."""
    seconds = fit_seconds(workspace)
    rows = []
    for path in sorted((workspace / "results").rglob("*diagnostics.csv")):
        table = pd.read_csv(path)
        for model, group in table.groupby("model", sort=False):
            sampler = group[group["kind"] == "sampler"].set_index("quantity")["value"]
            rows.append(
                {
                    "seed": seed,
                    "model": model,
                    "checks": len(group),
                    "failed": int((~group["passed"].astype(bool)).sum()),
                    "passed": bool(group["passed"].astype(bool).all()),
                    "draws_per_chain": int(sampler.get("draws_per_chain", 0)),
                    "extensions": int(sampler.get("extensions", 0)),
                    "fit_seconds": round(seconds.get(model, float("nan")), 1),
                    "run_seconds": round(run_seconds, 1),
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS))
    parser.add_argument("--cores", type=int, default=4, help="snakemake --cores (default 4)")
    parser.add_argument("--keep", action="store_true", help="keep the workspaces afterwards")
    args = parser.parse_args()

    rows = []
    for seed in args.seeds:
        workspace = fresh_workspace(PROJECT_DIR, PROJECT_DIR / ".cache" / "benchmarks")
        print(f"seed {seed}: workspace {workspace}", flush=True)
        try:
            seconds, _ = run_snakemake(workspace, args.cores, "--config", f"seed={seed}")
        except subprocess.CalledProcessError:  # the fits' tables still say how they converged
            print(f"seed {seed}: the run failed; see {workspace}/logs", flush=True)
            seconds, args.keep = float("nan"), True
        rows.extend(seed_rows(workspace, seed, seconds))
        pd.DataFrame(rows).to_csv(RESULT_FILE, index=False)  # written as it goes
        if not args.keep:
            shutil.rmtree(workspace)
    table = pd.DataFrame(rows)
    print(table.to_markdown(index=False))
    summary = table.groupby("seed").agg(
        models=("model", "size"),
        all_passed=("passed", "all"),
        extended=("extensions", lambda e: int((e > 0).sum())),
        run_seconds=("run_seconds", "first"),
    )
    print(summary.to_markdown())
    print(f"written to {RESULT_FILE.relative_to(PROJECT_DIR)}")


if __name__ == "__main__":
    main()
