"""Snakemake adapter: the checks of the truth-and-bias fit (alliance.model_checks): convergence,
prior sensitivity and the prior and posterior predictive figures of the therapist's (centred)
ratings."""

from alliance.runtime import start_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = start_job(smk)

from alliance.diagnostics import stop_if_strict
from alliance.figures import ppc_density_figure, prior_predictive_figure, save_figure
from alliance.growth import observed_and_groups
from alliance.model_checks import check_model
from alliance.sampling import stacked_draws

idata, diagnostics = check_model(
    smk.input.fit, smk.output.diagnostics, smk.output.sensitivity, smk.params.checks, log
)

title = "Therapist's rating, centred on the patients' mean of the arm and month"
observed, groups = observed_and_groups(idata)
replicated = stacked_draws(idata["posterior_predictive"][list(idata["posterior_predictive"])[0]])
xlabel = "therapist's rating minus the patients' mean of the arm and month"
save_figure(
    ppc_density_figure(observed, replicated, groups, title, ceiling=None, xlabel=xlabel),
    smk.output.ppc,
)
prior_scores = stacked_draws(idata["prior_predictive"][list(idata["prior_predictive"])[0]])
save_figure(
    prior_predictive_figure(
        prior_scores, observed, f"Prior predictive check: {title}", None, xlabel
    ),
    smk.output.prior_check,
)
stop_if_strict(diagnostics, smk.params.checks["strict"], log)
