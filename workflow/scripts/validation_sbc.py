"""Snakemake adapter: simulations of the simulation-based calibration of one rater's reported
growth model (alliance.sbc), on the design of one simulated trial of the twin."""

from alliance.runtime import start_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = start_job(smk)

import pandas as pd

from alliance.growth import growth_data
from alliance.sbc import growth_sbc_simulation
from alliance.seeds import derive_seed, job_seeds
from alliance.validation import simulate_tables

settings, rater = smk.params.settings, smk.wildcards.rater
name = settings["growth"]["reported_model"]
spec = settings["growth"]["models"][name]
# One design for every simulation of the study: the same trial in every job.
tables = simulate_tables(settings, derive_seed(smk.params.seed, "validation", "sbc", "design"))
data = growth_data(tables["alliance"], rater, settings["instrument"])
fit_settings = {
    "priors": settings["growth"]["priors"],
    "sampling": settings["sampling"],
    "sbc": settings["sbc"],
}
rows = []
for simulation in smk.params.simulations:
    seed = job_seeds(smk.params.seed, "validation_sbc", {"rater": rater, "simulation": simulation})
    ranks = growth_sbc_simulation(data, spec, fit_settings, seed)
    rows += [
        {"model": f"growth_{rater}_{name}", "simulation": simulation, "parameter": p, "rank": r}
        for p, r in ranks.items()
    ]
    log.info("simulation %d: ranks %s", simulation, ranks)
pd.DataFrame(rows).to_csv(smk.output.ranks, index=False)
