"""Snakemake adapter: aim (c) across raters and models: the contract rows (the pooled
associations), the within/between table, the missing-predictor table and the forest plot."""

from alliance.runtime import start_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = start_job(smk)

import pandas as pd

from alliance.associations import association_data, missing_summary, with_predictor_scale
from alliance.design import RATERS
from alliance.figures import forest_figure, save_figure
from alliance.posterior_summary import contract_table

alliance, covariates = pd.read_csv(smk.input.alliance), pd.read_csv(smk.input.covariates)
data = {rater: association_data(alliance, covariates, rater) for rater in RATERS}
pd.concat(
    [missing_summary(table, rater) for rater, (table, _) in data.items()], ignore_index=True
).to_csv(smk.output.missing, index=False)

# Each coefficient beside the mean and SD of its predictor (the "1 SD" it is per).
rows = with_predictor_scale(
    pd.concat([pd.read_csv(path) for path in smk.input.estimands], ignore_index=True),
    {rater: scale for rater, (_, scale) in data.items()},
)
rows.to_csv(smk.output.within_between, index=False)
detail = rows[(rows["model"] == "pooled") & (rows["estimand"] == "association")]
detail.to_csv(smk.output.detail, index=False)
contract_table(detail).to_csv(smk.output.estimands, index=False)

title = (
    "Digital arm: change in WAI per 1 SD of each predictor "
    f"(posterior mean, {smk.params.ci_prob:.0%} interval)"
)
save_figure(
    forest_figure(
        detail.assign(label=detail["rater"] + ": " + detail["term"]),
        "label",
        title,
        rope=smk.params.rope_wai,
    ),
    smk.output.forest,
)
log.info("aim (c) summaries written")
