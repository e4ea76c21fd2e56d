"""Benchmark: the cost of the growth and agreement models against the number of patients.

Run from the repository root (``workflow/benchmarks/full_run.py --scaling`` runs it for the table
of the README):

    .venv/bin/python workflow/benchmarks/scaling.py [--patients 184 1840 18400] [--chains 2]
        [--draws 300] [--tune 300]

For each size a twin of the trial with that many patients (the default twin's other values, the
config's seed) is simulated and cleaned as the workflow does; the patient-rated ``linear`` growth
model as the workflow samples it (``alliance.refit.compile_growth_model``: the patient effects
integrated out, then drawn from their conditional posterior, which the sampling seconds include),
its full PyMC form with the patient effects sampled (``growth_linear_full``), the bivariate
agreement model as the workflow samples it (``agreement``:
``alliance.agreement.MarginalAgreementModel``, its patient effects integrated out and drawn
afterwards) and in full (``agreement_full``) are built with their data as inputs,
compiled by nutpie and sampled one chain after another. Each (model, size) runs in its own
process with an empty compile cache, so every compile is cold.

Reported per model and size: compile seconds, sampling seconds (without the marginal growth
models' drawing of the patient effects, ``effects_s``), gradient evaluations (leapfrog
steps, warm-up included) and sampling seconds per 1,000 of them. Linear cost means the last
column grows in proportion to the number of observations; the number of steps per draw depends
on the posterior's geometry, not directly on the data size. (``agreement``'s build seconds are
the full model's, which its fit uses for the draws after sampling; building the marginal model it
samples is counted in its compile seconds.) Written to
``workflow/benchmarks/scaling.csv``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]
RESULT_FILE = PROJECT_DIR / "workflow" / "benchmarks" / "scaling.csv"
MODELS = ("growth_linear", "growth_linear_full", "agreement", "agreement_full")


def measure_one(model_name: str, patients: int, sampling: dict) -> dict:
    """Compile and sample one model on a twin of ``patients`` patients (in this process, whose
    caches :func:`alliance.runtime.isolate_caches` must already have pointed at an empty folder)."""
    from alliance.agreement import (
        MarginalAgreementModel,
        agreement_data,
        build_agreement_model,
        conditional_patient_effects,
        marginal_agreement_inputs,
    )
    from alliance.growth import growth_data
    from alliance.refit import (
        CompiledModel,
        compile_growth_model,
        growth_refit_model,
        growth_structure,
        trial_levels,
    )
    from alliance.settings import load_config
    from alliance.validation import simulate_tables

    config = load_config({"synthetic_twin": {"n_patients": patients}})
    instrument = config["instrument"]
    start = time.perf_counter()
    tables = simulate_tables(config, config["seed"])
    simulate_seconds = time.perf_counter() - start
    alliance = tables["alliance"]
    levels = trial_levels(alliance)
    start = time.perf_counter()
    inputs = {}
    if model_name.startswith("growth_linear"):
        data = growth_data(alliance, "patient", instrument)
        spec = config["growth"]["models"]["linear"]
        structure = growth_structure(
            data, spec, config["growth"]["priors"], **levels, upper=instrument["response_max"]
        )
        inputs = structure.inputs(data)
        observations = len(data)
    else:
        pairs = agreement_data(alliance, instrument)
        indexed = (pairs, config["agreement"]["priors"], levels["patients"], levels["therapists"])
        model = build_agreement_model(*indexed)
        observations = int(pairs[["patient", "therapist"]].notna().sum().sum())
    build_seconds = time.perf_counter() - start
    if model_name == "growth_linear":
        compiled = compile_growth_model(structure, data)
    elif model_name == "growth_linear_full":
        compiled = CompiledModel(growth_refit_model(structure, data))
    elif model_name == "agreement":
        compiled = MarginalAgreementModel(*indexed)
    else:
        compiled = CompiledModel(model)
    start = time.perf_counter()
    tree = compiled.fit(
        inputs, {**sampling, "target_accept": config["sampling"]["target_accept"]}, 1
    )
    sampling_seconds = time.perf_counter() - start
    # The marginal models' fits include drawing the patient effects after sampling: timed again
    # on their own, and left out of the time per gradient evaluation.
    import numpy as np

    effects_seconds = 0.0
    posterior = tree["posterior"].to_dataset()
    start = time.perf_counter()
    if hasattr(compiled, "patient_offsets"):
        compiled.patient_offsets(inputs, posterior, np.random.default_rng(1))
        effects_seconds = time.perf_counter() - start
    elif isinstance(compiled, MarginalAgreementModel):
        conditional_patient_effects(
            posterior,
            marginal_agreement_inputs(compiled.inputs),
            compiled.model.coords,
            np.random.default_rng(1),
        )
        effects_seconds = time.perf_counter() - start
    stats = tree["sample_stats"]
    # nutpie keeps the warm-up's statistics out of the tree (save_warmup=False): the steps of the
    # kept draws are counted, the warm-up's are estimated at the same rate per iteration.
    kept_steps = float(stats["n_steps"].sum())
    iterations = sampling["chains"] * (sampling["tune"] + sampling["draws"])
    gradients = kept_steps * iterations / (sampling["chains"] * sampling["draws"])
    return {
        "model": model_name,
        "patients": patients,
        "observations": observations,
        "parameters": compiled.compiled.n_dim,
        "simulate_s": round(simulate_seconds, 1),
        "build_s": round(build_seconds, 1),
        "compile_s": round(compiled.compile_seconds, 1),
        "sampling_s": round(sampling_seconds - effects_seconds, 1),
        "effects_s": round(effects_seconds, 1),
        "gradient_evaluations": round(gradients),
        "ms_per_gradient": round(1000 * (sampling_seconds - effects_seconds) / gradients, 3),
        "divergences": int(stats["diverging"].sum()),
    }


def measure_in_fresh_process(model_name: str, patients: int, sampling: dict) -> dict:
    """:func:`measure_one` in a new Python process with an empty compile cache."""
    import os

    cache = PROJECT_DIR / ".cache" / "benchmarks" / f"scaling_{model_name}_{patients}"
    shutil.rmtree(cache, ignore_errors=True)
    env = {
        **os.environ,
        "PYTENSOR_FLAGS": f"base_compiledir={cache},compiledir={cache / 'job'}",
        "NUMBA_CACHE_DIR": str(cache / "numba"),
    }
    command = [
        sys.executable,
        __file__,
        "--one",
        json.dumps({"model": model_name, "patients": patients, "sampling": sampling}),
    ]
    result = subprocess.run(
        command, cwd=PROJECT_DIR, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"{model_name} at {patients} patients failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def scaling_table(patients: list[int], sampling: dict, models=MODELS):
    import pandas as pd

    rows = []
    for model_name in models:
        for size in patients:
            rows.append(measure_in_fresh_process(model_name, size, sampling))
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    reference = table.groupby("model")["ms_per_gradient"].transform("first")
    table["ms_per_gradient_relative"] = (table["ms_per_gradient"] / reference).round(1)
    table["sampling"] = (
        f"{sampling['chains']} chains x ({sampling['tune']} tune + {sampling['draws']} draws), "
        "one core"
    )
    table["measured"] = datetime.now(UTC).strftime("%Y-%m-%d")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, nargs="+", default=[184, 1840, 18400])
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--draws", type=int, default=300)
    parser.add_argument("--tune", type=int, default=300)
    parser.add_argument(
        "--models",
        nargs="+",
        choices=MODELS,
        default=list(MODELS),
        help="measure these only; the other models' rows of the existing table are kept",
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one measurement, as JSON
    args = parser.parse_args()
    if args.one:
        job = json.loads(args.one)
        sys.path.insert(0, str(PROJECT_DIR / "src"))
        from alliance.runtime import isolate_caches

        isolate_caches(PROJECT_DIR, "benchmark_scaling")  # PYTENSOR_FLAGS set by the parent
        print(json.dumps(measure_one(job["model"], job["patients"], job["sampling"]), default=int))
        return
    sampling = {"chains": args.chains, "draws": args.draws, "tune": args.tune}
    table = scaling_table(args.patients, sampling, args.models)
    if set(args.models) != set(MODELS) and RESULT_FILE.exists():
        import pandas as pd

        kept = pd.read_csv(RESULT_FILE)
        table = pd.concat([kept[~kept["model"].isin(args.models)], table], ignore_index=True)
    print(table.to_markdown(index=False))
    table.to_csv(RESULT_FILE, index=False)
    print(f"written to {RESULT_FILE.relative_to(PROJECT_DIR)}")


if __name__ == "__main__":
    main()
