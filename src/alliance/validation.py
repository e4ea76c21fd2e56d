"""The simulation study: how often the reanalysis covers the truth and reaches the right verdict.

Each *scenario* is the synthetic twin with some of its assumed values changed (config
``validation.scenarios``): as published, each published claim made false, and dropout completely
at random, at random and not at random. A *replicate* simulates one trial of the scenario, cleans
it as the workflow does, fits the reported models at the validation's MCMC size
(:mod:`alliance.model_fits`), and keeps each estimand row beside the scenario's true value and the
verdict on each published finding. The aggregates are the data contract's
``results/validation/coverage.csv`` and ``verdicts.csv``.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from alliance.design import RATERS
from alliance.findings import FINDINGS, findings_table, select_rows
from alliance.posterior_summary import (
    CONTRACT_COLUMNS,
    DETAIL_COLUMNS,
    month_labels,
    rope_for,
    summarise_fit,
)
from alliance.settings import deep_update

KEY = ["aim", "estimand", "rater", "arm", "month", "term"]
COVERAGE_COLUMNS = [
    "scenario",
    *KEY,
    "n_replicates",
    "truth",
    "coverage",
    "coverage_mcse",
    "bias",
    "rmse",
]
VERDICT_COLUMNS = [
    "scenario",
    "finding",
    "claim_true",
    "n_replicates",
    "share_supported",
    "share_weakened",
    "share_contradicted",
]
VERDICTS = ("supported", "weakened", "contradicted")


def scenario_names(validation: Mapping) -> list[str]:
    """The scenarios to run: ``validation.run``, or every configured scenario when it is empty."""
    names = list(validation.get("run") or validation["scenarios"])
    unknown = sorted(set(names) - set(validation["scenarios"]))
    if unknown:
        raise ValueError(f"validation.run names unknown scenarios: {', '.join(unknown)}")
    return names


def scenario_config(config: Mapping, scenario: str | None) -> dict:
    """The config of one scenario: the twin's values overridden by the scenario's ``twin`` (none
    for ``scenario`` None: the twin as configured), and every model fitted at the validation's
    MCMC size (``validation.sampling`` over ``sampling``; no safety-net refits) with
    ``validation.prior_draws`` prior draws."""
    validation = config["validation"]
    settings = copy.deepcopy(dict(config))
    overrides = (validation["scenarios"][scenario].get("twin") or {}) if scenario else {}
    settings["synthetic_twin"] = deep_update(settings["synthetic_twin"], overrides)
    sampling = {**settings["sampling"], **validation["sampling"]}
    sampling["max_draws"] = sampling["draws"]
    settings["sampling"] = sampling
    settings["predictive"] = {**settings["predictive"], "prior_draws": validation["prior_draws"]}
    return settings


def simulate_tables(config: Mapping, seed: int) -> dict[str, pd.DataFrame]:
    """One simulated trial of ``config``'s twin, read back and cleaned exactly as the workflow
    reads and cleans input files (the contract's checks included): the analysis tables."""
    from alliance.analysis_tables import build_analysis_tables
    from alliance.input_data import read_trial_data
    from alliance.twin import simulate_observed, write_input_files

    with tempfile.TemporaryDirectory(prefix="replicate-") as folder:
        write_input_files(simulate_observed(config, seed), folder)
        data = read_trial_data(Path(folder), config)
    return build_analysis_tables(data, config["instrument"])


def fit_reported_models(tables: Mapping[str, pd.DataFrame], config: Mapping, seed, log=None):
    """Fit the models whose rows the contract's estimand table reports: the configured
    ``growth.reported_model`` per rater (aim a; the LOO choice among alternatives is not
    repeated), the bivariate agreement model (aim b) and the pooled association model per rater
    (aim c). Returns (tree, labels) per fit. ``seed(*step)``: the replicate's seed function."""
    from alliance.model_fits import (
        fit_agreement_model,
        fit_association_model,
        fit_growth_model,
        fit_settings,
    )

    alliance, covariates = tables["alliance"], tables["digital_covariates"]
    name = config["growth"]["reported_model"]
    spec = config["growth"]["models"][name]
    fits = []
    for rater in RATERS:
        fits.append(
            fit_growth_model(
                alliance,
                rater,
                name,
                spec,
                fit_settings(config, "growth"),
                lambda *step, r=rater: seed("growth", r, *step),
                log,
            )
        )
    fits.append(
        fit_agreement_model(
            alliance, fit_settings(config, "agreement"), lambda *s: seed("agreement", *s), log
        )
    )
    for rater in RATERS:
        fits.append(
            fit_association_model(
                alliance,
                covariates,
                rater,
                "pooled",
                fit_settings(config, "association"),
                lambda *step, r=rater: seed("association", r, *step),
                log,
            )
        )
    return fits


def reported_rows(fits, summary: Mapping) -> pd.DataFrame:
    """The detail rows of the fits that the contract's estimand table holds (as the workflow's
    aim summaries select them), with the config's ``summary`` settings."""
    from alliance.agreement import CONTRACT_ESTIMANDS

    rows = []
    for idata, labels in fits:
        idata.attrs.update(labels)
        detail = summarise_fit(idata, summary).drop(columns="model")
        if labels["aim"] == "b":
            detail = detail[detail["estimand"].isin(CONTRACT_ESTIMANDS)]
        if labels["aim"] == "c":
            detail = detail[detail["estimand"] == "association"]
        rows.append(detail)
    detail = pd.concat(rows, ignore_index=True)
    detail["month"] = month_labels(pd.to_numeric(detail["month"], errors="coerce"))
    labels = {column: "" for column in ("rater", "arm", "term")}
    return detail.reindex(columns=DETAIL_COLUMNS).fillna(labels)


def convergence_rows(fits, convergence: Mapping) -> pd.DataFrame:
    """Per fit: the number of convergence checks (every parameter, every reported quantity and
    the sampler; alliance.diagnostics.fit_checks), how many failed and the first failures."""
    from alliance.diagnostics import failures, fit_checks

    rows = []
    for idata, labels in fits:
        table = fit_checks(idata, idata["estimands"].to_dataset(), labels["label"], convergence)
        failed = failures(table)
        rows.append(
            {
                "model": labels["label"],
                "n_checks": len(table),
                "n_failed": len(failed),
                "failed": "; ".join(failed["quantity"].astype(str).head(5)),
            }
        )
    return pd.DataFrame(rows)


def run_replicate(settings: Mapping, truth: pd.DataFrame, seed, log=None):
    """One replicate of a scenario (``settings``: :func:`scenario_config`): simulate the trial,
    fit the reported models, and return its estimand rows beside the truth, its verdicts
    (:func:`replicate_tables`) and the convergence of its fits (:func:`convergence_rows`)."""
    from alliance.diagnostics import convergence_settings

    tables = simulate_tables(settings, seed("twin"))
    fits = fit_reported_models(tables, settings, seed, log)
    detail = reported_rows(fits, settings["summary"])
    estimands, verdicts = replicate_tables(detail, truth, settings["summary"]["decision_prob"])
    convergence = convergence_rows(fits, convergence_settings(settings["diagnostics"]))
    return estimands, verdicts, convergence


def truth_table(truth_rows: list[dict]) -> pd.DataFrame:
    """The twin's true estimands (:func:`alliance.twin.true_estimands`) keyed like the estimand
    rows (months as text, empty labels as empty strings)."""
    table = pd.DataFrame(truth_rows)
    table["month"] = month_labels(pd.to_numeric(table["month"], errors="coerce"))
    for column in ("rater", "arm", "term"):
        table[column] = table[column].fillna("").astype(str)
    return table.rename(columns={"value": "truth"})[[*KEY, "truth"]]


def claims_true(truth: pd.DataFrame, summary: Mapping) -> dict[str, bool]:
    """Whether each published finding holds in a scenario's truth, judged on its quantities:
    a direction holds when every true value is on the claimed side of zero by at least half the
    region of practical equivalence (ROPE), a difference when every one is that far from zero
    (smaller true effects count as none), and no effect when every one is inside the ROPE, as
    the verdicts judge the posterior."""
    table = truth.assign(month=truth["month"].astype(str))
    holds = {}
    for finding in FINDINGS:
        rows = select_rows(table, finding.estimand, finding.selectors)
        values = rows["truth"].to_numpy(dtype=float)
        rope = rope_for(finding.estimand, summary)
        holds[finding.key] = bool(
            {
                "negative": np.all(values <= -rope / 2),
                "positive": np.all(values >= rope / 2),
                "nonzero": np.all(np.abs(values) >= rope / 2),
                "null": np.all(np.abs(values) < rope),
            }[finding.kind]
        )
    return holds


def replicate_tables(
    detail: pd.DataFrame, truth: pd.DataFrame, decision_prob: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One replicate's estimand rows beside their true values (contract columns, ``truth``,
    ``covered``), and its verdict on each finding."""
    rows = detail.astype({"month": str}).merge(truth, on=KEY, how="left", validate="one_to_one")
    missing = rows[rows["truth"].isna()]
    if not missing.empty:
        raise ValueError(f"no true value for {missing[KEY].to_dict('records')}")
    rows["covered"] = (rows["ci_low"] <= rows["truth"]) & (rows["truth"] <= rows["ci_high"])
    verdicts = pd.DataFrame(
        [
            {"finding": e["key"], "verdict": e["verdict"]}
            for e in findings_table(detail, decision_prob)
        ]
    )
    return rows[[*CONTRACT_COLUMNS, "truth", "covered"]], verdicts


def coverage_table(estimands: pd.DataFrame) -> pd.DataFrame:
    """``coverage.csv``: per scenario and estimand row, over replicates, the share of intervals
    that cover the truth with its Monte Carlo standard error sqrt(c (1 - c) / n), and the bias
    and root mean squared error of the posterior mean."""
    table = estimands.fillna({c: "" for c in ("rater", "arm", "month", "term")}).astype(
        {"month": str}
    )
    error = table["mean"] - table["truth"]
    grouped = table.assign(error=error, squared=error**2, covered=table["covered"].astype(float))
    summary = grouped.groupby(["scenario", *KEY], sort=False).agg(
        n_replicates=("covered", "size"),
        truth=("truth", "first"),
        coverage=("covered", "mean"),
        bias=("error", "mean"),
        rmse=("squared", "mean"),
    )
    summary["rmse"] = np.sqrt(summary["rmse"])
    n = summary["n_replicates"]
    summary["coverage_mcse"] = np.sqrt(summary["coverage"] * (1 - summary["coverage"]) / n)
    return summary.reset_index()[COVERAGE_COLUMNS]


def verdict_table(verdicts: pd.DataFrame, claims: Mapping[str, Mapping[str, bool]]) -> pd.DataFrame:
    """``verdicts.csv``: per scenario and finding, whether the claim is true in the scenario and
    the share of replicates with each verdict."""
    rows = []
    for (scenario, finding), group in verdicts.groupby(["scenario", "finding"], sort=False):
        shares = group["verdict"].value_counts(normalize=True)
        rows.append(
            {
                "scenario": scenario,
                "finding": finding,
                "claim_true": "true" if claims[scenario][finding] else "false",
                "n_replicates": len(group),
                **{f"share_{v}": float(shares.get(v, 0.0)) for v in VERDICTS},
            }
        )
    return pd.DataFrame(rows, columns=VERDICT_COLUMNS)


def stacked_replicates(paths) -> pd.DataFrame:
    """The replicates' tables (``replicates/<scenario>/<replicate>/<table>.csv``) in one, each
    row with its scenario and replicate, named by the path."""
    frames = []
    for path in map(Path, paths):
        table = pd.read_csv(path, dtype={"month": str}, keep_default_na=False)
        frames.append(table.assign(scenario=path.parent.parent.name, replicate=path.parent.name))
    return pd.concat(frames, ignore_index=True)
