"""Snakemake adapter: simulations of the simulation-based calibration of one reported model
(alliance.sbc), on the design of one simulated trial of the twin; the model is compiled once and
refitted on every simulation."""

from alliance.runtime import start_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = start_job(smk)

import pandas as pd

from alliance.refit import CompiledModel
from alliance.sbc import sbc_simulation
from alliance.seeds import derive_seed, job_seeds
from alliance.validation import sbc_design, simulate_tables

settings, model_name = smk.params.settings, smk.wildcards.model
# One design for every simulation of the study: the same trial in every job.
tables = simulate_tables(settings, derive_seed(smk.params.seed, "validation", "sbc", "design"))
label, model, inputs = sbc_design(model_name, tables, settings)
compiled = CompiledModel(model, log)
rows = []
for simulation in smk.params.simulations:
    seed = job_seeds(
        smk.params.seed, "validation_sbc", {"model": model_name, "simulation": simulation}
    )
    ranks = sbc_simulation(compiled, inputs, settings, seed)
    rows += [
        {"model": label, "simulation": simulation, "parameter": p, "rank": r}
        for p, r in ranks.items()
    ]
    log.info("simulation %d: %d ranks", simulation, len(ranks))
pd.DataFrame(rows).to_csv(smk.output.ranks, index=False)
