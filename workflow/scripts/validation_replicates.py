"""Snakemake adapter: one batch of the validation study (alliance.validation.run_batch): some
replicates of every scenario, the models compiled once for all of them; their estimand rows
beside the truth, their verdicts and the convergence of their fits."""

from alliance.runtime import start_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = start_job(smk)

from pathlib import Path

import pandas as pd

from alliance.validation import run_batch

truths = {
    Path(path).stem: pd.read_csv(path, dtype={"month": str}, keep_default_na=False)
    for path in smk.input.truths
}
models = {scenario: tuple(names) for scenario, names in smk.params.models.items()}
tables = run_batch(smk.params.settings, truths, smk.params.replicates, smk.params.seed, log, models)
for name, table in tables.items():
    table.to_csv(smk.output[name], index=False)
