"""Snakemake adapter: aim (a) across models and raters (alliance.growth).

Chooses the reported model per rater (leave-patient-out cross-validation against the configured
alternatives), writes its estimand rows (contract format), the model comparison (PSIS-LOO beside
it), the frequentist cross-check and the aim's figures.
"""

from alliance.runtime import start_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = start_job(smk)

import shutil

import pandas as pd

from alliance.design import RATERS
from alliance.figures import forest_figure, save_figure, trajectory_band_figure
from alliance.growth import (
    choose_reported_models,
    contrast_labels,
    frequentist_beside_bayes,
    observed_means,
)
from alliance.posterior_summary import contract_table, month_labels
from alliance.sampling import load_fit

params = smk.params
alliance = pd.read_csv(smk.input.alliance)
fits = [load_fit(path, groups=["posterior", "log_likelihood"]) for path in smk.input.fits]
kfolds = {
    (rater, model): pd.read_csv(path)
    for (rater, model), path in zip(params.kfold_keys, smk.input.kfold, strict=True)
}
comparison, choice = choose_reported_models(
    fits,
    kfolds,
    params.models,
    params.reported_model,
    params.reported_alternatives,
    params.selection_min_se,
)
comparison.to_csv(smk.output.comparison, index=False)
choice.to_csv(smk.output.choice, index=False)
log.info("model comparison:\n%s\nreported models:\n%s", comparison, choice.to_string())
for row in choice.itertuples():
    for figure in ("ppc", "prior_check"):
        source = params.model_result.format(name=f"{row.rater}_{row.model}", file=f"{figure}.png")
        shutil.copyfile(source, smk.output[f"{figure}_{row.rater}"])

details = pd.concat([pd.read_csv(path) for path in smk.input.estimands], ignore_index=True)
details["month"] = month_labels(details["month"])
details.to_csv(smk.output.all_models, index=False)
chosen = details.merge(choice[["rater", "model"]], on=["rater", "model"]).drop(columns="model")
chosen.to_csv(smk.output.detail, index=False)
contract_table(chosen).to_csv(smk.output.estimands, index=False)
frequentist_beside_bayes(alliance, chosen, params.instrument).to_csv(
    smk.output.frequentist, index=False
)

interval = f"posterior mean and {params.ci_prob:.0%} interval"
means = chosen[chosen["estimand"] == "marginal_mean"].assign(month=lambda d: d["month"].astype(int))
save_figure(
    trajectory_band_figure(means, observed_means(alliance), list(params.instrument["months"])),
    smk.output.trajectories,
)
contrasts = chosen[chosen["estimand"] != "marginal_mean"]
save_figure(
    forest_figure(
        contrasts.assign(label=contrast_labels(contrasts, params.instrument["months"])),
        "label",
        f"Digital minus PTAU (WAI points), {interval}",
        rope=params.rope_wai,
    ),
    smk.output.forest,
)
log.info("aim (a) summaries written for %s", ", ".join(RATERS))
