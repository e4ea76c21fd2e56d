"""Snakemake adapter: the missing ratings described, a dropout model, and aim (a) given both
raters (alliance.missing_data)."""

from alliance.runtime import start_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = start_job(smk)

import pandas as pd

from alliance.figures import dropout_trajectories_figure, save_figure
from alliance.missing_data import (
    contrasts_given_both_raters,
    dropout_data,
    dropout_sentence,
    dropout_summary,
    fit_dropout_model,
    missing_patterns,
    trajectories_by_dropout,
)
from alliance.sampling import load_fit
from alliance.seeds import job_seed

params = smk.params
months = list(params.months)
alliance = pd.read_csv(smk.input.alliance)
missing_patterns(alliance, months).to_csv(smk.output.patterns, index=False)
trajectories = trajectories_by_dropout(alliance, months)
trajectories.to_csv(smk.output.trajectories, index=False)
save_figure(dropout_trajectories_figure(trajectories, months), smk.output.figure)

seed = job_seed(params.seed, smk.rule, smk.wildcards)
posterior = fit_dropout_model(dropout_data(alliance, months), params.dropout_priors, seed)
dropout = dropout_summary(posterior, params.ci_prob)
dropout.to_csv(smk.output.dropout, index=False)
log.info("dropout model:\n%s\n%s", dropout.to_string(index=False), dropout_sentence(dropout))

agreement = load_fit(smk.input.agreement, groups=["posterior"])["posterior"].to_dataset()
growth = pd.read_csv(smk.input.growth, dtype={"month": str}, keep_default_na=False)
contrasts_given_both_raters(agreement, growth, months, params.ci_prob).to_csv(
    smk.output.both_raters, index=False
)
