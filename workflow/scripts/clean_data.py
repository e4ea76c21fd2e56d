"""Snakemake adapter: validate the input files, score them and write the analysis tables.

A breach of the data contract stops the run here, with every violation on the console; so do
data too thin for a model (alliance.data_support), with every problem and the rules it blocks.
"""

import json
import sys
from pathlib import Path

from alliance.analysis_tables import build_analysis_tables
from alliance.data_support import support_problems, support_report
from alliance.input_data import InputDataError, read_trial_data
from alliance.provenance import file_sha256
from alliance.runtime import start_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = start_job(smk)
folder = Path(smk.input.patients).parent
try:
    data = read_trial_data(folder, {"input": smk.params.input, "instrument": smk.params.instrument})
except InputDataError as error:
    log.error("%s", error.report())
    sys.exit(1)

tables = build_analysis_tables(data, smk.params.instrument)
problems = support_problems(tables["alliance"], tables["digital_covariates"], smk.params.instrument)
if problems:
    log.error("%s", support_report(problems))
    sys.exit(1)
for name, table in tables.items():
    table.to_csv(smk.output[name], index=False, lineterminator="\n")
summary = {
    "input_dir": str(folder),
    "synthetic_twin": smk.params.synthetic,
    "sha256": {Path(path).name: file_sha256(path) for path in smk.input},
    "n_patients": int(len(data.patients)),
    "n_wai_rows": int(len(data.wai)),
    "n_digital_rows": int(len(data.digital)),
}
with open(smk.output.input_summary, "w", encoding="utf-8") as handle:
    json.dump(summary, handle, indent=2)
    handle.write("\n")
log.info("input valid: %d patients from %s", summary["n_patients"], folder)
