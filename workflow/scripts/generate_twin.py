"""Snakemake adapter: write the synthetic twin's input files and true parameters."""

import json

from alliance.runtime import start_job
from alliance.twin import generate_twin, write_input_files

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = start_job(smk)
twin = generate_twin(dict(smk.params.items()))
write_input_files(twin, smk.output.patients.rsplit("/", 1)[0])
with open(smk.output.truth, "w", encoding="utf-8") as handle:
    json.dump(twin.truth, handle, indent=2)
    handle.write("\n")
log.info(
    "synthetic twin (seed %s): %d patients, %d WAI rows, %d digital rows",
    smk.params.seed,
    len(twin.patients),
    len(twin.wai),
    len(twin.digital),
)
