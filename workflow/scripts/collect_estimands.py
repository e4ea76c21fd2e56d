"""Snakemake adapter: gather each aim's estimand rows into results/tables/estimands.csv."""

import pandas as pd

from alliance.posterior_summary import collect_estimands
from alliance.runtime import job_logger

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = job_logger(smk.log[0], "estimands")
tables = [pd.read_csv(path, dtype=str, keep_default_na=False) for path in smk.input]
table = collect_estimands(tables)
table.to_csv(smk.output.estimands, index=False)
log.info("%d estimand rows written", len(table))
