"""Snakemake adapter: one replicate of one validation scenario (alliance.validation.run_replicate):
its estimand rows beside the truth, its verdicts and the convergence of its fits."""

from alliance.runtime import start_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = start_job(smk)

import pandas as pd

from alliance.seeds import job_seeds
from alliance.validation import run_replicate

estimands, verdicts, convergence = run_replicate(
    smk.params.settings,
    pd.read_csv(smk.input.truth, dtype={"month": str}, keep_default_na=False),
    job_seeds(smk.params.seed, smk.rule, smk.wildcards),
    log,
)
estimands.to_csv(smk.output.estimands, index=False)
verdicts.to_csv(smk.output.verdicts, index=False)
convergence.to_csv(smk.output.convergence, index=False)
log.info("verdicts:\n%s", verdicts.to_string(index=False))
