"""Snakemake adapter: aim (c) estimand rows for both raters and the forest plot."""

import pandas as pd

from alliance.figures import forest_figure
from alliance.posterior_summary import contract_table
from alliance.runtime import isolate_caches, job_logger

smk = snakemake  # noqa: F821 (injected by Snakemake)
isolate_caches(".", "summarise_associations")
log = job_logger(smk.log[0], "summarise_associations")

detail = pd.concat([pd.read_csv(path) for path in smk.input.estimands], ignore_index=True)
detail.to_csv(smk.output.detail, index=False)
contract_table(detail).to_csv(smk.output.estimands, index=False)
detail["label"] = detail["rater"] + ": " + detail["term"]
forest_figure(
    detail,
    "label",
    "Digital arm: change in WAI per 1 SD of each predictor (posterior mean, 95% interval)",
    rope=smk.config["summary"]["rope_wai"],
).savefig(smk.output.forest, dpi=130, bbox_inches="tight")
log.info("aim (c) summaries written")
