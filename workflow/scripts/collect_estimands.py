"""Snakemake adapter: gather each aim's estimand rows into results/tables/estimands.csv (and
the detail table), and draw every reported quantity's prior interval beside its posterior."""

from alliance.runtime import start_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = start_job(smk)

import pandas as pd

from alliance.figures import prior_posterior_figure
from alliance.posterior_summary import DETAIL_COLUMNS, collect_estimands


def read(paths):
    return [pd.read_csv(path, dtype=str, keep_default_na=False) for path in paths]


table = collect_estimands(read([smk.input.aim_a, smk.input.aim_b, smk.input.aim_c]))
table.to_csv(smk.output.estimands, index=False)
detail = collect_estimands(
    read([smk.input.detail_a, smk.input.detail_b, smk.input.detail_c]), DETAIL_COLUMNS
)
detail.to_csv(smk.output.detail, index=False)
log.info("%d estimand rows written", len(table))

labels = ["aim", "estimand", "rater", "arm", "month", "term"]
numbers = detail.drop(columns=labels).replace("", float("nan")).apply(pd.to_numeric)
prior_posterior_figure(detail[labels].join(numbers), smk.params.min_contraction).savefig(
    smk.output.prior_posterior, dpi=120, bbox_inches="tight"
)
