"""Snakemake adapter: aim (a) results across models and raters.

Chooses the reported model per rater (LOO against the configured alternatives), writes its
estimand rows (contract format), the LOO comparison, the frequentist cross-check and the aim's
figures.
"""

from alliance.runtime import isolate_caches, job_logger

smk = snakemake  # noqa: F821 (injected by Snakemake)
isolate_caches(".", "summarise_growth")
log = job_logger(smk.log[0], "summarise_growth")

import shutil
from pathlib import Path

import pandas as pd

from alliance.figures import forest_figure, trajectory_band_figure
from alliance.growth import (
    choose_reported_model,
    frequentist_check,
    growth_data,
    loo_comparison,
)
from alliance.posterior_summary import contract_table, month_labels
from alliance.sampling import load_fit

config = smk.config
growth = config["growth"]
reported = growth["reported_model"]
alliance = pd.read_csv(smk.input.alliance)

comparison, choice = [], []
for rater in ("patient", "therapist"):
    fits = {
        Path(path).stem.split("_", 1)[1]: load_fit(path, groups=["posterior", "log_likelihood"])
        for path in smk.input.fits
        if Path(path).stem.startswith(rater + "_")
    }
    table = loo_comparison(fits, growth["models"], baseline=reported)
    model, reason = choose_reported_model(
        table, reported, growth["reported_alternatives"], growth["selection_min_se"]
    )
    table.insert(0, "rater", rater)
    table["reported"] = table["model"] == model
    comparison.append(table)
    choice.append({"rater": rater, "model": model, "reason": reason})
    log.info("LOO for the %s rating:\n%s\n%s", rater, table.to_string(), reason)
pd.concat(comparison).to_csv(smk.output.comparison, index=False)
choice = pd.DataFrame(choice)
choice.to_csv(smk.output.choice, index=False)
for row in choice.itertuples():
    for figure, inputs in (("ppc", smk.input.ppc), ("prior_check", smk.input.prior_checks)):
        (source,) = [p for p in inputs if Path(p).name == f"{row.rater}_{row.model}_{figure}.png"]
        shutil.copyfile(source, smk.output[f"{figure}_{row.rater}"])

details = pd.concat([pd.read_csv(path) for path in smk.input.estimands], ignore_index=True)
details["month"] = month_labels(details["month"])
details.to_csv(smk.output.all_models, index=False)
chosen = details.merge(choice[["rater", "model"]], on=["rater", "model"]).drop(columns="model")
chosen.to_csv(smk.output.detail, index=False)
contract_table(chosen).to_csv(smk.output.estimands, index=False)

frequentist = []
for rater in ("patient", "therapist"):
    table = frequentist_check(
        growth_data(alliance, rater, config["instrument"]), config["instrument"]
    )
    table.insert(0, "rater", rater)
    frequentist.append(table)
frequentist = pd.concat(frequentist, ignore_index=True)
bayes = chosen[chosen["estimand"].isin(["arm_difference", "change_difference"])]
frequentist["month"] = month_labels(pd.to_numeric(frequentist["month"]))
frequentist = frequentist.merge(
    bayes[["estimand", "rater", "month", "mean", "ci_low", "ci_high"]].rename(
        columns={"mean": "bayes_mean", "ci_low": "bayes_ci_low", "ci_high": "bayes_ci_high"}
    ),
    on=["estimand", "rater", "month"],
    how="left",
)
frequentist.to_csv(smk.output.frequentist, index=False)

observed = (
    alliance[alliance["assessed"]]
    .groupby(["rater", "arm", "month"])["wai_total"]
    .mean()
    .rename("mean")
    .reset_index()
)
means = chosen[chosen["estimand"] == "marginal_mean"].assign(month=lambda d: d["month"].astype(int))
trajectory_band_figure(means, observed, list(config["instrument"]["months"])).savefig(
    smk.output.trajectories, dpi=130, bbox_inches="tight"
)
contrasts = chosen[chosen["estimand"] != "marginal_mean"].copy()
contrasts["label"] = (
    contrasts["rater"]
    + ": "
    + contrasts["estimand"].str.replace("_", " ")
    + contrasts["month"].map(lambda m: f", month {m}" if m else " (3 to 12)")
)
forest_figure(
    contrasts,
    "label",
    "Digital minus PTAU (WAI points), posterior mean and 95% interval",
    rope=config["summary"]["rope_wai"],
).savefig(smk.output.forest, dpi=130, bbox_inches="tight")
log.info("aim (a) summaries written; reported models:\n%s", choice.to_string())
