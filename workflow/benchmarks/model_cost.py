"""Benchmark: what each growth model of one rating costs, the item-level ordinal model beside the
models of the totals: compile seconds (cold cache), sampling seconds, gradient evaluations per
draw, and the smallest bulk ESS of its population parameters per second of sampling.

Run from the repository root:

    .venv/bin/python workflow/benchmarks/model_cost.py [--rater patient] [--chains 2]
        [--draws 500] [--tune 500]

The data are the default synthetic twin (generated in memory from the config's seed). Each model
is built with its data as inputs (the totals models in their PyMC form,
``alliance.refit.growth_refit_model``; the ordinal model as the workflow fits it), compiled by
nutpie into a fresh cache folder under ``.cache/`` (a cold start), and sampled once, one chain
after another, at the size given (default smaller than the workflow's: the ordinal model is
slow). Prints, and writes to ``workflow/benchmarks/model_cost.csv``.
"""

from __future__ import annotations

import argparse
import shutil
import time
from datetime import UTC, datetime

from alliance.runtime import isolate_caches
from alliance.settings import PROJECT_DIR, load_config

CACHE_NAME = "benchmark_model_cost"
shutil.rmtree(PROJECT_DIR / ".cache" / CACHE_NAME, ignore_errors=True)  # a cold start
isolate_caches(PROJECT_DIR, CACHE_NAME)

import arviz as az  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from alliance.growth import growth_data  # noqa: E402
from alliance.ordinal import ORDINAL_MODEL, build_ordinal_growth_model, item_data  # noqa: E402
from alliance.refit import CompiledModel, growth_refit_model, growth_structure  # noqa: E402
from alliance.validation import simulate_tables  # noqa: E402

RESULT_FILE = PROJECT_DIR / "workflow" / "benchmarks" / "model_cost.csv"

#: The population-level parameters whose ESS is reported (not the per-patient offsets).
ORDINAL_POPULATION = [
    "digital_level",
    "change",
    "patient_level_sd",
    "patient_change_sd",
    "therapist_sd",
    "assessment_sd",
]


def population_names(posterior, model_name: str) -> list[str]:
    if model_name == ORDINAL_MODEL:
        return ORDINAL_POPULATION
    return [name for name in posterior.data_vars if not name.endswith("_offset")]


def measure(name: str, model, observations: int, sampling: dict) -> dict:
    compiled = CompiledModel(model)
    start = time.perf_counter()
    tree = compiled.fit({}, sampling, seed=1)
    seconds = time.perf_counter() - start
    posterior = tree["posterior"].to_dataset()
    ess = az.ess(posterior[population_names(posterior, name)], method="bulk")
    min_ess = float(min(np.min(ess[variable].to_numpy()) for variable in ess.data_vars))
    stats = tree["sample_stats"]
    return {
        "model": name,
        "observations": observations,
        "parameters": compiled.compiled.n_dim,
        "compile_s": round(compiled.compile_seconds, 1),
        "sampling_s": round(seconds, 1),
        "gradients_per_draw": round(float(stats["n_steps"].mean()), 1),
        "divergences": int(stats["diverging"].sum()),
        "min_population_bulk_ess": round(min_ess),
        "min_population_ess_per_s": round(min_ess / seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rater", default="patient", choices=["patient", "therapist"])
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--tune", type=int, default=500)
    args = parser.parse_args()

    config = load_config()
    tables = simulate_tables(config, config["seed"])
    sampling = {
        "chains": args.chains,
        "draws": args.draws,
        "tune": args.tune,
        "target_accept": config["sampling"]["target_accept"],
    }
    growth = config["growth"]
    totals = growth_data(tables["alliance"], args.rater, config["instrument"])
    patients = sorted(totals["patient_id"].unique())
    therapists = sorted(totals["therapist_id"].unique())
    upper = float(config["instrument"]["response_max"])
    rows = []
    for name, spec in growth["models"].items():
        structure = growth_structure(totals, spec, growth["priors"], patients, therapists, upper)
        model = growth_refit_model(structure, totals)
        rows.append(measure(name, model, len(totals), sampling))
        print(rows[-1], flush=True)
    items = item_data(tables["wai_items"], args.rater, config["instrument"])
    model = build_ordinal_growth_model(items, growth["ordinal"]["priors"], config["instrument"])
    rows.append(measure(ORDINAL_MODEL, model, len(items), sampling))
    table = pd.DataFrame(rows)
    table.insert(0, "rater", args.rater)
    table["sampling"] = f"{args.chains} chains x ({args.tune} tune + {args.draws} draws), one core"
    table["measured"] = datetime.now(UTC).strftime("%Y-%m-%d")
    print(table.to_string(index=False))
    table.to_csv(RESULT_FILE, index=False)
    print(f"written to {RESULT_FILE.relative_to(PROJECT_DIR)}")


if __name__ == "__main__":
    main()
