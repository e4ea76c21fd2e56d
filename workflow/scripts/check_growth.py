"""Snakemake adapter: the checks of one growth model's fits, one per rater (alliance.model_checks,
alliance.growth): convergence, prior sensitivity, the ceiling and spread checks and the
predictive-check figures. Outputs are named ``<output>_<rater>``."""

from alliance.runtime import start_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = start_job(smk)

import pandas as pd

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
model = smk.wildcards.model
convergence = []
for rater in smk.params.raters:
    output = {name.removesuffix(f"_{rater}"): path for name, path in smk.output.items()}
    log.info("%s rating", rater)
    idata, diagnostics = check_model(
        smk.input[f"fit_{rater}"],
        output["diagnostics"],
        output["sensitivity"],
        smk.params.checks,
        log,
    )
    convergence.append(diagnostics)
    tables = {
        name: check(idata, spec, upper, ci_prob)
        for name, check in (("ceiling", ceiling_check), ("sd_check", sd_check))
    }
    for name, table in tables.items():
        table.insert(0, "model", model)
        table.insert(0, "rater", rater)
        table.to_csv(output[name], index=False)

    title = f"{rater.capitalize()} rating, model '{model}'"
    observed, groups = observed_and_groups(idata)
    replicated = replicate_scores(idata, spec, upper)
    save_figure(
        ppc_density_figure(observed, replicated, groups, title, ceiling=upper), output["ppc"]
    )
    save_figure(
        ceiling_check_figure(tables["ceiling"], f"Ceiling check: {title}"),
        output["ceiling_figure"],
    )
    prior_scores = stacked_draws(idata["prior_predictive"][list(idata["prior_predictive"])[0]])
    save_figure(
        prior_predictive_figure(prior_scores, observed, f"Prior predictive check: {title}", scale),
        output["prior_check"],
    )
stop_if_strict(pd.concat(convergence, ignore_index=True), smk.params.checks["strict"], log)
