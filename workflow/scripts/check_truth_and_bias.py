"""Snakemake adapter: the checks of the truth-and-bias fit (alliance.model_checks): convergence,
prior sensitivity and the prior and posterior predictive figures of the therapist's (centred)
ratings."""

from alliance.runtime import start_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = start_job(smk)

from alliance.diagnostics import stop_if_strict
from alliance.figures import ppc_density_figure, prior_predictive_figure, save_figure
from alliance.growth import observed_and_groups
from alliance.model_checks import model_checks
from alliance.sampling import load_fit, stacked_draws

idata = load_fit(smk.input.fit)
diagnostics, sensitivity = model_checks(idata, idata.attrs["label"], smk.params.checks, log)
diagnostics.to_csv(smk.output.diagnostics, index=False)
sensitivity.to_csv(smk.output.sensitivity, index=False)

title = "Therapist's rating, centred on the patients' mean of the arm and month"
observed, groups = observed_and_groups(idata)
replicated = stacked_draws(idata["posterior_predictive"][list(idata["posterior_predictive"])[0]])
save_figure(ppc_density_figure(observed, replicated, groups, title), smk.output.ppc)
prior_scores = stacked_draws(idata["prior_predictive"][list(idata["prior_predictive"])[0]])
save_figure(
    prior_predictive_figure(prior_scores, observed, f"Prior predictive check: {title}", None),
    smk.output.prior_check,
)
stop_if_strict(diagnostics, smk.params.checks["strict"], log)
