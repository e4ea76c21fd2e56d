"""Snakemake adapter: aim (b) across its two models: the contract rows and detail table of the
bivariate model, the truth-and-bias table, and the aim's figures (alliance.agreement)."""

from alliance.runtime import start_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = start_job(smk)

import pandas as pd

from alliance.agreement import CONTRACT_ESTIMANDS, agreement_data, truth_and_bias_labels
from alliance.figures import bland_altman_figure, forest_figure, rater_scatter_figure, save_figure
from alliance.posterior_summary import contract_table

pairs = agreement_data(pd.read_csv(smk.input.alliance), smk.params.instrument)
detail = pd.read_csv(smk.input.bivariate)
detail.to_csv(smk.output.detail, index=False)
contract_table(detail[detail["estimand"].isin(CONTRACT_ESTIMANDS)]).to_csv(
    smk.output.estimands, index=False
)
truth_and_bias = pd.read_csv(smk.input.truth_and_bias)
truth_and_bias.to_csv(smk.output.truth_and_bias, index=False)

save_figure(bland_altman_figure(pairs, detail), smk.output.bland_altman)
save_figure(rater_scatter_figure(pairs, list(smk.params.instrument["months"])), smk.output.scatter)
title = (
    "Therapist's view: directional bias (therapist minus patient, WAI points) and tracking "
    f"(slope on patient's rating), posterior mean and {smk.params.ci_prob:.0%} interval"
)
save_figure(
    forest_figure(
        truth_and_bias.assign(label=truth_and_bias_labels(truth_and_bias)), "label", title
    ),
    smk.output.truth_and_bias_figure,
)
log.info("aim (b) summaries written")
