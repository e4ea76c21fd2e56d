"""Snakemake adapter: the checks of one ordinal growth fit (alliance.model_checks,
alliance.ordinal): convergence, prior sensitivity, and the predictive checks of item answers
at the top of the scale and of the totals."""

from alliance.runtime import start_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = start_job(smk)

from alliance.diagnostics import stop_if_strict
from alliance.figures import ppc_density_figure, save_figure
from alliance.model_checks import check_model
from alliance.ordinal import assessments_of, ordinal_checks

instrument = smk.params.instrument
idata, diagnostics = check_model(
    smk.input.fit, smk.output.diagnostics, smk.output.sensitivity, smk.params.checks, log
)
table = ordinal_checks(idata, instrument, smk.params.ci_prob)
table.insert(0, "rater", smk.wildcards.rater)
table.to_csv(smk.output.checks, index=False)
parts = assessments_of(idata, instrument)
title = f"{smk.wildcards.rater.capitalize()} rating, item-level ordinal model: totals"
save_figure(
    ppc_density_figure(
        parts["observed_totals"],
        parts["replicated_totals"],
        parts["groups"],
        title,
        ceiling=instrument["response_max"],
    ),
    smk.output.ppc,
)
stop_if_strict(diagnostics, smk.params.checks["strict"], log)
