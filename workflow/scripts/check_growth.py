"""Snakemake adapter: the checks of one growth fit (alliance.model_checks, alliance.growth):
convergence, prior sensitivity, the ceiling and spread checks and the predictive-check figures."""

from alliance.runtime import start_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = start_job(smk)

from alliance.diagnostics import stop_if_strict
from alliance.figures import (
    ceiling_check_figure,
    ppc_density_figure,
    prior_predictive_figure,
    save_figure,
)
from alliance.growth import ceiling_check, observed_and_groups, replicate_scores, sd_check
from alliance.model_checks import check_model
from alliance.sampling import stacked_draws

spec, scale, ci_prob = smk.params.spec, tuple(smk.params.scale), smk.params.ci_prob
upper = scale[1]
idata, diagnostics = check_model(
    smk.input.fit, smk.output.diagnostics, smk.output.sensitivity, smk.params.checks, log
)
for check, path in ((ceiling_check, smk.output.ceiling), (sd_check, smk.output.sd_check)):
    table = check(idata, spec, upper, ci_prob)
    table.insert(0, "model", smk.wildcards.model)
    table.insert(0, "rater", smk.wildcards.rater)
    table.to_csv(path, index=False)
    if check is ceiling_check:
        ceiling = table

title = f"{smk.wildcards.rater.capitalize()} rating, model '{smk.wildcards.model}'"
observed, groups = observed_and_groups(idata)
replicated = replicate_scores(idata, spec, upper)
save_figure(ppc_density_figure(observed, replicated, groups, title, ceiling=upper), smk.output.ppc)
save_figure(ceiling_check_figure(ceiling, f"Ceiling check: {title}"), smk.output.ceiling_figure)
prior_scores = stacked_draws(idata["prior_predictive"][list(idata["prior_predictive"])[0]])
save_figure(
    prior_predictive_figure(prior_scores, observed, f"Prior predictive check: {title}", scale),
    smk.output.prior_check,
)
stop_if_strict(diagnostics, smk.params.checks["strict"], log)
