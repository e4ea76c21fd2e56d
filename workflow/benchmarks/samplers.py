"""Benchmark: each available sampler on the reported growth model; minimum bulk ESS per second.

Run from the repository root after the data stage (needs data/processed/alliance.csv):

    .venv/bin/python workflow/benchmarks/samplers.py [--rater patient] [--repeats 1]

Each sampler is first run once at a tiny size to compile (not timed), then timed at the config's
sampling size. Prints one row per sampler: seconds, divergences, minimum bulk ESS over all
parameters, and minimum bulk ESS per second.
"""

from __future__ import annotations

import argparse
import time
from importlib.util import find_spec

from alliance.runtime import isolate_caches
from alliance.settings import PROJECT_DIR, load_config

isolate_caches(PROJECT_DIR, "benchmark_samplers")

import arviz as az  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from alliance.growth import build_growth_model, growth_data  # noqa: E402
from alliance.sampling import fit_bambi  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rater", default="patient", choices=["patient", "therapist"])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    config = load_config()
    spec = config["growth"]["models"][config["growth"]["reported_model"]]
    alliance = pd.read_csv(PROJECT_DIR / "data" / "processed" / "alliance.csv")
    data = growth_data(alliance, args.rater, config["instrument"])
    rows = []
    for sampler in ("nutpie", "pymc", "numpyro"):
        if find_spec(sampler) is None:
            print(f"{sampler}: not installed, skipped")
            continue
        sampling = {**config["sampling"], "sampler": sampler}
        warm = {**sampling, "draws": 20, "tune": 20, "chains": 1}
        fit_bambi(build_growth_model(data, spec, config["growth"]["priors"]), warm, seed=1)
        for repeat in range(args.repeats):
            model = build_growth_model(data, spec, config["growth"]["priors"])
            start = time.perf_counter()
            idata = fit_bambi(model, sampling, seed=100 + repeat)
            seconds = time.perf_counter() - start
            ess = az.ess(idata, method="bulk")
            min_ess = float(min(np.min(ess[name].values) for name in ess.data_vars))
            rows.append(
                {
                    "sampler": sampler,
                    "repeat": repeat,
                    "seconds": round(seconds, 1),
                    "divergences": int(idata["sample_stats"]["diverging"].sum()),
                    "min_bulk_ess": round(min_ess),
                    "min_bulk_ess_per_s": round(min_ess / seconds, 1),
                }
            )
    print(
        f"\nReported growth model '{config['growth']['reported_model']}', {args.rater} rating, "
        f"{sampling['chains']} chains x {sampling['draws']} draws (+{sampling['tune']} tune):"
    )
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
