"""The simulation study: how often the reanalysis covers the truth and reaches the right verdict.

Each *scenario* is the synthetic twin with some of its assumed values changed (config
``validation.scenarios``): as published, each published claim made false, and dropout completely
at random, at random and not at random. A *replicate* simulates one trial of the scenario, cleans
it as the workflow does, fits the reported models at the validation's MCMC size (compiled once
per job and refitted on each replicate: :class:`ReportedModels`), and keeps each estimand row
beside the scenario's true value and the verdict on each published finding. The aggregates are
the data contract's ``results/validation/coverage.csv`` and ``verdicts.csv``.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from alliance.findings import FINDINGS, Finding, findings_table, select_rows
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


#: The reported models (the contract's estimand rows): each rater's growth model (aim a), the
#: agreement model (aim b) and each rater's pooled association model (aim c). The simulation
#: study refits those of each scenario (:func:`scenario_models`); the SBC calibrates each (one
#: SBC job runs simulations of one).
SBC_MODELS = REPORTED_MODELS = (
    "growth_patient",
    "growth_therapist",
    "agreement",
    "association_patient",
    "association_therapist",
)


#: The reported models whose rows each published finding is judged on.
FINDING_MODELS = {
    "F1": ("growth_patient", "growth_therapist"),
    "F2": ("growth_patient",),
    "F3": ("growth_therapist",),
    "F4": ("agreement",),
    "F5": ("association_patient",),
    "F6": ("association_therapist",),
    "F7": ("association_patient",),
}


def judged_findings(models: tuple[str, ...]) -> tuple[Finding, ...]:
    """The findings a replicate that fits ``models`` judges: those whose every model is
    fitted (:data:`FINDING_MODELS`)."""
    return tuple(f for f in FINDINGS if set(FINDING_MODELS[f.key]) <= set(models))


def unjudged_false_claims(
    claims: Mapping[str, Mapping[str, bool]], verdicts: pd.DataFrame
) -> list[str]:
    """Each (scenario, finding) whose claim is false in the scenario's truth but which no
    replicate judged (its models not fitted there): the study cannot say how often it is called
    supported."""
    judged = set(zip(verdicts["scenario"], verdicts["finding"], strict=True))
    return [
        f"{finding} in {scenario}"
        for scenario, holds in claims.items()
        for finding, true in holds.items()
        if not true and (scenario, finding) not in judged
    ]


def scenario_names(validation: Mapping) -> list[str]:
    """The scenarios to run: ``validation.run``, or every configured scenario when it is empty."""
    names = list(validation.get("run") or validation["scenarios"])
    unknown = sorted(set(names) - set(validation["scenarios"]))
    if unknown:
        raise ValueError(f"validation.run names unknown scenarios: {', '.join(unknown)}")
    return names


def scenario_models(validation: Mapping, scenario: str) -> tuple[str, ...]:
    """The reported models a replicate of ``scenario`` fits (its ``models``; all of
    :data:`REPORTED_MODELS` when it names none), in that order."""
    named = validation["scenarios"][scenario].get("models") or REPORTED_MODELS
    unknown = sorted(set(named) - set(REPORTED_MODELS))
    if unknown:
        raise ValueError(f"scenario {scenario} names unknown models: {', '.join(unknown)}")
    return tuple(name for name in REPORTED_MODELS if name in named)


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


@dataclass
class RefitModel:
    """One reported model in the form that is compiled once and refitted (:mod:`alliance.refit`):
    its PyMC model with data inputs, how to get the inputs from a trial's tables, its reported
    quantities from a tree's posterior, and draws from its prior (for the quantities the priors
    alone imply). ``compile_key``: models with the same key share one compiled function (both
    raters' growth models)."""

    labels: dict
    compile_key: str
    model: object
    inputs_of: Callable[[Mapping[str, pd.DataFrame]], dict]
    estimands_of: Callable
    prior_of: Callable[[int, int], object]

    @property
    def label(self) -> str:
        return self.labels["label"]


def refit_model(
    name: str,
    tables: Mapping[str, pd.DataFrame],
    settings: Mapping,
    levels: Mapping | None = None,
    full_capacity: bool = False,
) -> RefitModel:
    """Reported model ``name`` (:data:`REPORTED_MODELS`) built on one trial's ``tables``.

    ``levels`` (``patients``, ``therapists``) index the group effects (default: the trial's
    randomised patients and therapists for the growth models, those with ratings for the
    others); ``full_capacity``: an association model with an imputation slot per possible cell,
    so that any trial of the same patients can be swapped in."""
    from alliance.agreement import (
        QUANTITY_PARAMETERS,
        agreement_data,
        agreement_estimands,
        agreement_inputs,
        build_agreement_model,
    )
    from alliance.associations import (
        COEFFICIENTS,
        association_data,
        association_estimands,
        association_inputs,
        build_association_model,
    )
    from alliance.growth import growth_data, growth_estimands
    from alliance.refit import growth_refit_model, growth_structure, trial_levels
    from alliance.sampling import sample_bambi_prior, sample_pymc_prior

    instrument = settings["instrument"]
    months = list(instrument["months"])
    alliance = tables["alliance"]
    if name.startswith("growth_"):
        rater = name.removeprefix("growth_")
        model_name = settings["growth"]["reported_model"]
        spec = settings["growth"]["models"][model_name]
        data = growth_data(alliance, rater, instrument)
        structure = growth_structure(
            data,
            spec,
            settings["growth"]["priors"],
            **(levels or trial_levels(alliance)),
            upper=instrument["response_max"],
        )
        label = f"growth_{rater}_{model_name}"
        return RefitModel(
            {"aim": "a", "model": model_name, "rater": rater, "label": label},
            "growth",
            growth_refit_model(structure, data),
            lambda t: structure.inputs(growth_data(t["alliance"], rater, instrument)),
            lambda tree: growth_estimands(structure.reference, tree, spec, instrument),
            lambda n, seed: sample_bambi_prior(structure.reference, n, seed),
        )
    if name == "agreement":
        pairs = agreement_data(alliance, instrument)
        ordered = (levels["patients"], levels["therapists"]) if levels else (None, None)
        model = build_agreement_model(pairs, settings["agreement"]["priors"], *ordered)
        indexed = (list(model.coords["patient"]), list(model.coords["therapist"]))
        return RefitModel(
            {"aim": "b", "model": "bivariate", "label": "agreement_bivariate"},
            "agreement",
            model,
            lambda t: agreement_inputs(agreement_data(t["alliance"], instrument), *indexed),
            lambda tree: agreement_estimands(tree["posterior"].to_dataset(), months),
            lambda n, seed: sample_pymc_prior(model, n, seed, var_names=list(QUANTITY_PARAMETERS)),
        )
    if name.startswith("association_"):
        rater = name.removeprefix("association_")
        data, scale = association_data(alliance, tables["digital_covariates"], rater)
        indexing = {**(levels or {}), "full_capacity": full_capacity}
        model = build_association_model(
            data, scale, rater, settings["association"]["priors"], months, **indexing
        )
        coefficients = [c for c in COEFFICIENTS if c in model.named_vars]

        def inputs_of(t):
            trial = association_data(t["alliance"], t["digital_covariates"], rater)
            return association_inputs(*trial, rater, months, **indexing)[0]

        label = f"association_{rater}_pooled"
        return RefitModel(
            {"aim": "c", "model": "pooled", "rater": rater, "label": label},
            name,
            model,
            inputs_of,
            lambda tree: association_estimands(tree["posterior"].to_dataset()),
            lambda n, seed: sample_pymc_prior(model, n, seed, var_names=coefficients),
        )
    raise ValueError(f"unknown model {name!r}; choose one of {', '.join(REPORTED_MODELS)}")


class ReportedModels:
    """The reported models (:data:`REPORTED_MODELS`), built on the first replicate's trial,
    compiled once per process and refitted on each replicate's tables (:mod:`alliance.refit`);
    both raters' growth models share one compiled function. The LOO choice among growth models
    is not repeated: ``growth.reported_model`` is fitted.

    Every replicate of a study has the same randomised patients and therapists (checked). The
    reported quantities the priors alone imply (for the estimand rows' prior columns) do not
    depend on the data and are drawn once per model. ``settings``: a scenario's config
    (:func:`scenario_config`; every scenario shares the models and their priors).
    """

    def __init__(self, settings: Mapping, seed, log=None):
        self.settings = settings
        self.seed = seed
        self.log = log
        self.models = {}
        self.compiled = {}
        self.prior_estimands = {}
        self.levels = None

    @property
    def compile_seconds(self) -> float:
        return sum(model.compile_seconds for model in self.compiled.values())

    def fit(
        self, tables: Mapping[str, pd.DataFrame], seed, names: tuple[str, ...] = REPORTED_MODELS
    ) -> list:
        """Fit the reported models ``names`` to one replicate's tables; (tree, labels) per fit,
        as :func:`reported_rows` and :func:`convergence_rows` read them. ``seed(*step)``: the
        replicate's seed function (a model's seed depends on its name only, not on the other
        models fitted)."""
        from alliance.refit import CompiledModel, trial_levels
        from alliance.sampling import prior_as_posterior

        levels = trial_levels(tables["alliance"])
        if self.levels is None:
            self.levels = levels
        elif levels != self.levels:
            raise ValueError("a replicate's patients or therapists differ from the first one's")
        fits = []
        for name in names:
            if name not in self.models:
                built = refit_model(name, tables, self.settings, levels, full_capacity=True)
                self.models[name] = built
                if built.compile_key not in self.compiled:
                    self.compiled[built.compile_key] = CompiledModel(built.model, self.log)
                draws = self.settings["predictive"]["prior_draws"]
                prior = built.prior_of(draws, self.seed(name, "prior"))
                self.prior_estimands[name] = built.estimands_of(prior_as_posterior(prior))
            built = self.models[name]
            compiled = self.compiled[built.compile_key]
            step = (*name.split("_"), "fit")  # e.g. ("growth", "patient", "fit")
            tree = compiled.fit(built.inputs_of(tables), self.settings["sampling"], seed(*step))
            tree["estimands"] = built.estimands_of(tree)
            tree["prior_estimands"] = self.prior_estimands[name]
            fits.append((tree, built.labels))
        return fits


def sbc_design(model: str, tables: Mapping[str, pd.DataFrame], settings: Mapping):
    """The SBC of one of :data:`SBC_MODELS` on the design of one simulated trial (``tables``):
    its label in ``sbc.csv``, its PyMC model (data as inputs) and the design's data inputs."""
    if model.startswith("growth_"):
        spec = settings["growth"]["models"][settings["growth"]["reported_model"]]
        if spec.get("likelihood", "gaussian") != "gaussian" or spec.get("residual_sd_by"):
            raise ValueError("SBC covers the Gaussian growth models with one residual SD")
    built = refit_model(model, tables, settings)
    return built.label, built.model, built.inputs_of(tables)


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
    """Per fit: the number of convergence checks (alliance.diagnostics.fit_checks: every
    population-level parameter, every reported quantity and the sampler), how many failed and
    the first failures.

    Unlike a workflow fit, a replicate's per-patient and per-therapist effects and imputed values
    (the standard-normal variables, ``*_offset`` and ``*_z``) are not judged: at the validation's
    MCMC size, thousands of them (the refitted models carry one imputation slot per possible
    cell) fail R-hat 1.01 by chance alone, and their diagnostics took longer than the fits."""
    import xarray as xr

    from alliance.diagnostics import failures, fit_checks
    from alliance.sensitivity import NOT_PRIORS_SUFFIXES

    rows = []
    for idata, labels in fits:
        posterior = idata["posterior"].to_dataset()
        latent = [name for name in posterior.data_vars if name.endswith(NOT_PRIORS_SUFFIXES)]
        judged = xr.DataTree.from_dict(
            {
                "posterior": posterior.drop_vars(latent),
                "sample_stats": idata["sample_stats"].to_dataset(),
            }
        )
        estimands = idata["estimands"].to_dataset()
        table = fit_checks(judged, estimands, labels["label"], convergence)
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


def run_replicate(
    settings: Mapping,
    truth: pd.DataFrame,
    seed,
    models: ReportedModels,
    names: tuple[str, ...] = REPORTED_MODELS,
):
    """One replicate of a scenario (``settings``: :func:`scenario_config`): simulate the trial,
    fit the reported models ``names`` (``models``: compiled once, refitted here), and return its
    estimand rows beside the truth, its verdicts on the findings those models judge
    (:func:`replicate_tables`) and the convergence of its fits (:func:`convergence_rows`)."""
    from alliance.diagnostics import convergence_settings

    tables = simulate_tables(settings, seed("twin"))
    fits = models.fit(tables, seed, names)
    detail = reported_rows(fits, settings["summary"])
    estimands, verdicts = replicate_tables(
        detail, truth, settings["summary"]["decision_prob"], judged_findings(names)
    )
    convergence = convergence_rows(fits, convergence_settings(settings["diagnostics"]))
    return estimands, verdicts, convergence


def run_batch(
    settings_by_scenario: Mapping[str, Mapping],
    truths: Mapping[str, pd.DataFrame],
    replicates: list[int],
    master_seed: int,
    log=None,
    models_by_scenario: Mapping[str, tuple[str, ...]] | None = None,
) -> dict[str, pd.DataFrame]:
    """One job of the study: replicates ``replicates`` of every scenario, each fitting its
    ``models_by_scenario`` (:func:`scenario_models`; default all reported models), every model
    compiled once for all of them (:class:`ReportedModels`). A replicate's seeds depend on its
    scenario and number only (:func:`alliance.seeds.job_seeds` of rule ``validation_replicate``),
    so it is the same replicate whichever job runs it. Returns the stacked ``estimands``,
    ``verdicts`` and ``convergence`` tables, each row with its ``scenario`` and ``replicate``."""
    import time

    from alliance.seeds import job_seeds

    first = next(iter(settings_by_scenario.values()))
    models = ReportedModels(
        first, job_seeds(master_seed, "validation_models", {"replicates": str(replicates)}), log
    )
    tables = {"estimands": [], "verdicts": [], "convergence": []}
    for replicate in replicates:
        for scenario, settings in settings_by_scenario.items():
            start = time.perf_counter()
            label = {"scenario": scenario, "replicate": f"{replicate:03d}"}
            seed = job_seeds(master_seed, "validation_replicate", label)
            names = (models_by_scenario or {}).get(scenario, REPORTED_MODELS)
            results = run_replicate(settings, truths[scenario], seed, models, names)
            for name, table in zip(tables, results, strict=True):
                tables[name].append(table.assign(**label))
            if log is not None:
                log.info(
                    "replicate %s of %s: %.1f s; verdicts %s",
                    label["replicate"],
                    scenario,
                    time.perf_counter() - start,
                    dict(zip(results[1]["finding"], results[1]["verdict"], strict=True)),
                )
    if log is not None:
        log.info("compiling the models took %.1f s of the job", models.compile_seconds)
    return {name: pd.concat(frames, ignore_index=True) for name, frames in tables.items()}


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
    detail: pd.DataFrame,
    truth: pd.DataFrame,
    decision_prob: float,
    findings: tuple[Finding, ...] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One replicate's estimand rows beside their true values (contract columns, ``truth``,
    ``covered``), and its verdict on each of ``findings`` (:func:`judged_findings` of the models
    fitted; None: every finding). A finding's row missing from ``detail`` is an error."""
    rows = detail.astype({"month": str}).merge(truth, on=KEY, how="left", validate="one_to_one")
    missing = rows[rows["truth"].isna()]
    if not missing.empty:
        raise ValueError(f"no true value for {missing[KEY].to_dict('records')}")
    rows["covered"] = (rows["ci_low"] <= rows["truth"]) & (rows["truth"] <= rows["ci_high"])
    verdicts = pd.DataFrame(
        [
            {"finding": e["key"], "verdict": e["verdict"]}
            for e in findings_table(detail, decision_prob, findings)
        ],
        columns=["finding", "verdict"],
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
    """The batches' tables (each row with its ``scenario`` and ``replicate``) in one."""
    frames = [
        pd.read_csv(path, dtype={"month": str, "replicate": str}, keep_default_na=False)
        for path in paths
    ]
    return pd.concat(frames, ignore_index=True)
