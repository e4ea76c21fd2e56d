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
from alliance.model_checks import model_checks
from alliance.sampling import load_fit, stacked_draws

spec, upper, ci_prob = smk.params.spec, smk.params.response_max, smk.params.ci_prob
idata = load_fit(smk.input.fit)
diagnostics, sensitivity = model_checks(idata, idata.attrs["label"], smk.params.checks, log)
diagnostics.to_csv(smk.output.diagnostics, index=False)
sensitivity.to_csv(smk.output.sensitivity, index=False)

labels = {"rater": smk.wildcards.rater, "model": smk.wildcards.model}
ceiling = ceiling_check(idata, spec, upper, ci_prob).assign(**labels)
ceiling.to_csv(smk.output.ceiling, index=False)
sd_check(idata, spec, upper, ci_prob).assign(**labels).to_csv(smk.output.sd_check, index=False)

title = f"{smk.wildcards.rater.capitalize()} rating, model '{smk.wildcards.model}'"
observed, groups = observed_and_groups(idata)
replicated = replicate_scores(idata, spec, upper)
save_figure(ppc_density_figure(observed, replicated, groups, title), smk.output.ppc)
save_figure(
    ceiling_check_figure(ceiling, f"Ceiling check: {title}"),
    smk.output.ceiling_figure,
)
prior_scores = stacked_draws(idata["prior_predictive"][list(idata["prior_predictive"])[0]])
save_figure(
    prior_predictive_figure(prior_scores, observed, f"Prior predictive check: {title}"),
    smk.output.prior_check,
)
stop_if_strict(diagnostics, smk.params.checks["strict"], log)
