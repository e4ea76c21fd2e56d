"""Benchmark: seconds per validation replicate, compiled once and refitted, against fitting the
same five reported models the way a workflow fit job does (each built and compiled afresh).

Run from the repository root:

    .venv/bin/python workflow/benchmarks/validation_replicate.py [--replicates 3]

The compile cache is a fresh folder under ``.cache/`` (a cold start). Prints, and writes to
``workflow/benchmarks/validation_replicate.csv``: the one-off compilation of the refitted models,
each refitted replicate's seconds (simulation, fits, summaries and checks), and one replicate's
five fits made by ``alliance.model_fits`` at the same MCMC size (compiled per fit, with the
workflow's post-processing: predictive draws, log-likelihood and prior draws).
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from alliance.runtime import isolate_caches
from alliance.settings import PROJECT_DIR, load_config

CACHE_NAME = "benchmark_validation_replicate"
cache = PROJECT_DIR / ".cache" / CACHE_NAME
shutil.rmtree(cache, ignore_errors=True)  # a cold start
isolate_caches(PROJECT_DIR, CACHE_NAME)

import pandas as pd  # noqa: E402

from alliance.diagnostics import convergence_settings  # noqa: E402
from alliance.seeds import job_seeds  # noqa: E402
from alliance.validation import (  # noqa: E402
    ReportedModels,
    convergence_rows,
    reported_rows,
    scenario_config,
    simulate_tables,
)


def compiled_per_fit(settings, tables, seed) -> float:
    """Seconds to fit the five reported models as the workflow's fit jobs do."""
    from alliance.design import RATERS
    from alliance.model_fits import (
        fit_agreement_model,
        fit_association_model,
        fit_growth_models,
        fit_settings,
    )

    name = settings["growth"]["reported_model"]
    spec = settings["growth"]["models"][name]
    alliance, covariates = tables["alliance"], tables["digital_covariates"]
    start = time.perf_counter()
    seeds = dict.fromkeys(RATERS, seed)
    fit_growth_models(alliance, name, spec, fit_settings(settings, "growth"), seeds)
    for rater in RATERS:
        fit_association_model(
            alliance, covariates, rater, "pooled", fit_settings(settings, "association"), seed
        )
    fit_agreement_model(alliance, fit_settings(settings, "agreement"), seed)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=3)
    parser.add_argument("--scenario", default="as_published")
    args = parser.parse_args()

    config = load_config()
    settings = scenario_config(config, args.scenario)
    rows = []
    models = ReportedModels(settings, job_seeds(config["seed"], "benchmark", {}))
    for replicate in range(1, args.replicates + 1):
        seed = job_seeds(config["seed"], "benchmark", {"replicate": str(replicate)})
        tables = simulate_tables(settings, seed("twin"))
        start = time.perf_counter()
        compiled_before = models.compile_seconds
        fits = models.fit(tables, seed)
        seconds = time.perf_counter() - start
        reported_rows(fits, settings["summary"])
        convergence_rows(fits, convergence_settings(settings["diagnostics"]))
        total = time.perf_counter() - start
        compiled = models.compile_seconds - compiled_before
        rows.append(
            {
                "way": "compiled once, refitted",
                "replicate": replicate,
                "compile_seconds": round(compiled, 1),
                "fit_seconds": round(seconds - compiled, 1),
                "replicate_seconds": round(total - compiled, 1),
            }
        )
        print(rows[-1], flush=True)
    seed = job_seeds(config["seed"], "benchmark", {"replicate": "per-fit"})
    tables = simulate_tables(settings, seed("twin"))
    seconds = compiled_per_fit(settings, tables, seed)
    rows.append(
        {
            "way": "compiled per fit (the workflow's fit jobs)",
            "replicate": 1,
            "compile_seconds": None,
            "fit_seconds": round(seconds, 1),
            "replicate_seconds": round(seconds, 1),
        }
    )
    print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    table.to_csv(Path(__file__).with_suffix(".csv"), index=False)
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
