"""Snakemake adapter: the checks of one association fit (alliance.model_checks,
alliance.associations): convergence, prior sensitivity, collinearity of the coefficients and
the prior and posterior predictive figures."""

from alliance.runtime import start_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = start_job(smk)

import pandas as pd

from alliance.associations import association_data, collinearity_table
from alliance.diagnostics import stop_if_strict
from alliance.figures import ppc_density_figure, prior_predictive_figure, save_figure
from alliance.model_checks import model_checks
from alliance.sampling import load_fit, stacked_draws

rater, variant = smk.wildcards.rater, smk.wildcards.variant
data, _ = association_data(
    pd.read_csv(smk.input.alliance), pd.read_csv(smk.input.covariates), rater
)
idata = load_fit(smk.input.fit)
diagnostics, sensitivity = model_checks(idata, idata.attrs["label"], smk.params.checks, log)
diagnostics.to_csv(smk.output.diagnostics, index=False)
sensitivity.to_csv(smk.output.sensitivity, index=False)
collinearity_table(data, idata["estimands"].to_dataset(), rater).to_csv(
    smk.output.collinearity, index=False
)

observed = data["wai_total"].to_numpy()
groups = pd.DataFrame({"arm": "digital", "month": data["month"].to_numpy()})
title = f"Digital arm, {rater} rating: association model ({variant.replace('_', '/')})"
save_figure(
    ppc_density_figure(
        observed, stacked_draws(idata["posterior_predictive"]["wai"]), groups, title
    ),
    smk.output.ppc,
)
save_figure(
    prior_predictive_figure(
        stacked_draws(idata["prior_predictive"]["wai"]),
        observed,
        f"Prior predictive check: {title}",
    ),
    smk.output.prior_check,
)
stop_if_strict(diagnostics, smk.params.checks["strict"], log)
