"""Snakemake adapter: one validation scenario's true estimands, from a large complete simulation
of its twin (alliance.twin.true_estimands, alliance.validation.truth_table)."""

from alliance.runtime import start_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = start_job(smk)

from alliance.seeds import rng_for
from alliance.twin import true_estimands
from alliance.validation import truth_table

rows = true_estimands(
    smk.params.twin,
    smk.params.instrument,
    rng_for(smk.params.seed, "validation", smk.wildcards.scenario, "truth"),
)
truth_table(rows).to_csv(smk.output.truth, index=False)
log.info("%d true estimands of scenario %s", len(rows), smk.wildcards.scenario)
