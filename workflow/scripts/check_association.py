"""Snakemake adapter: the checks of one association fit (alliance.model_checks,
alliance.associations): convergence, prior sensitivity, collinearity of the coefficients and
the prior and posterior predictive figures."""

from alliance.runtime import start_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = start_job(smk)

import pandas as pd

from alliance.associations import association_data, collinearity_table
from alliance.design import TREATMENT_ARM
from alliance.diagnostics import stop_if_strict
from alliance.figures import ppc_density_figure, prior_predictive_figure, save_figure
from alliance.model_checks import check_model
from alliance.sampling import stacked_draws

rater, variant = smk.wildcards.rater, smk.wildcards.variant
data, _ = association_data(
    pd.read_csv(smk.input.alliance), pd.read_csv(smk.input.covariates), rater
)
idata, diagnostics = check_model(
    smk.input.fit, smk.output.diagnostics, smk.output.sensitivity, smk.params.checks, log
)
collinearity_table(data, idata["estimands"].to_dataset(), rater).to_csv(
    smk.output.collinearity, index=False
)

observed = data["wai_total"].to_numpy()
groups = pd.DataFrame({"arm": TREATMENT_ARM, "month": data["month"].to_numpy()})
title = f"Digital arm, {rater} rating: association model ({variant.replace('_', '/')})"
scale = tuple(smk.params.scale)
replicated = stacked_draws(idata["posterior_predictive"]["wai"])
save_figure(
    ppc_density_figure(observed, replicated, groups, title, ceiling=scale[1]), smk.output.ppc
)
save_figure(
    prior_predictive_figure(
        stacked_draws(idata["prior_predictive"]["wai"]),
        observed,
        f"Prior predictive check: {title}",
        scale,
    ),
    smk.output.prior_check,
)
stop_if_strict(diagnostics, smk.params.checks["strict"], log)
