"""Snakemake adapter: the verdicts on the published findings, results/tables/findings.csv."""

import pandas as pd

from alliance.findings import findings_csv, findings_table
from alliance.runtime import start_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = start_job(smk)

detail = pd.read_csv(smk.input.detail, dtype={"month": str}, keep_default_na=False)
table = findings_csv(findings_table(detail, smk.params.decision_prob))
table.to_csv(smk.output.findings, index=False)
log.info("verdicts:\n%s", table.to_string(index=False))
