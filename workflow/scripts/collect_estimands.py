"""Snakemake adapter: gather each aim's estimand rows into results/tables/estimands.csv."""

import pandas as pd

from alliance.posterior_summary import DETAIL_COLUMNS, collect_estimands
from alliance.runtime import job_logger

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = job_logger(smk.log[0], "estimands")


def read(paths):
    return [pd.read_csv(path, dtype=str, keep_default_na=False) for path in paths]


table = collect_estimands(read([smk.input.aim_a, smk.input.aim_b, smk.input.aim_c]))
table.to_csv(smk.output.estimands, index=False)
detail = collect_estimands(
    read([smk.input.detail_a, smk.input.detail_b, smk.input.detail_c]), DETAIL_COLUMNS
)
detail.to_csv(smk.output.detail, index=False)
log.info("%d estimand rows written", len(table))
