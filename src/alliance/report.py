"""The reanalysis report: one self-contained HTML file rendered from the workflow's outputs.

Every number comes from a table the workflow wrote; figures are embedded as data URIs, and no
patient identifier is passed to the template.
"""

from __future__ import annotations

import base64
import importlib.metadata
import platform
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import yaml

from alliance.design import ARMS, RATERS
from alliance.findings import findings_table
from alliance.growth import contrasts_side_by_side, model_choice_statement
from alliance.missing_data import dropout_sentence
from alliance.ordinal import ORDINAL_MODEL
from alliance.posterior_summary import not_identified_rows, percent
from alliance.sampling import model_sampling
from alliance.sensitivity import NOT_IDENTIFIED
from alliance.settings import plain

PACKAGES = (
    "pymc",
    "bambi",
    "arviz",
    "nutpie",
    "pytensor",
    "numpy",
    "pandas",
    "xarray",
    "snakemake",
    "statsmodels",
    "pingouin",
    "seaborn",
    "matplotlib",
)


def image_uri(path: str | Path) -> str:
    """A PNG file as a data URI, so the report needs no other file."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"data:image/png;base64,{data}"


def software_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def git_commit(directory: str | Path = ".") -> str:
    """The checked-out commit (with '+changes' when the tree differs), or 'unknown'."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=directory,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return commit + (" +uncommitted changes" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def diagnostics_overview(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Per model: checks run and failed, worst R-hat and ESS, divergences, lowest E-BFMI."""
    rows = []
    for table in tables:
        for model, group in table.groupby("model", sort=False):
            converged = group[group["kind"] != "sampler"]
            sampler = group[group["kind"] == "sampler"].set_index("quantity")["value"]
            rows.append(
                {
                    "model": model,
                    "checks": len(group),
                    "failed": int((~group["passed"].astype(bool)).sum()),
                    "max_r_hat": float(converged["r_hat"].max()),
                    "min_ess_bulk": float(converged["ess_bulk"].min()),
                    "min_ess_tail": float(converged["ess_tail"].min()),
                    "divergences": int(sampler.get("divergences", 0)),
                    "min_ebfmi": float(sampler.get("min_ebfmi", float("nan"))),
                    # The safety net (alliance.sampling.sample_until_converged): draws per
                    # chain of the reported fit, and how many times it was sampled again.
                    "draws_per_chain": int(sampler.get("draws_per_chain", 0)) or None,
                    "extensions": int(sampler.get("extensions", 0)),
                }
            )
    return pd.DataFrame(rows)


def row_lookup(detail: pd.DataFrame, **key) -> Mapping:
    table = detail.astype({"month": str, "rater": str, "arm": str, "term": str})
    match = pd.Series(True, index=table.index)
    for column, value in key.items():
        match &= table[column] == str(value)
    found = table[match]
    if len(found) != 1:
        raise KeyError(key)
    return found.iloc[0]


def clinical_summary(detail: pd.DataFrame, months: list[int]) -> list[str]:
    """Plain-language sentences for clinicians, each built from estimand rows."""
    last = months[-1]

    def mass(row) -> str:
        """The interval's probability mass as the table states it (summary.ci_prob)."""
        return f"{100 * float(row['ci_prob']):g}%"

    def interval(row, scale=1.0):
        low, high = sorted((row["ci_low"] * scale, row["ci_high"] * scale))
        return f"{row['mean'] * scale:.2f} points ({mass(row)} interval {low:.2f} to {high:.2f})"

    sentences = []
    for rater in RATERS:
        row = row_lookup(detail, estimand="arm_difference", rater=rater, month=last)
        direction = "lower" if row["mean"] < 0 else "higher"
        sentences.append(
            f"As rated by the {rater}, alliance at month {last} was {direction} in the digital "
            f"arm than in usual care by {interval(row, -1 if row['mean'] < 0 else 1)} on the 1-7 "
            f"scale; probability that it was lower: {percent(1 - row['prob_positive'])}."
        )
    for rater in RATERS:
        row = row_lookup(detail, estimand="change_difference", rater=rater)
        sentences.append(
            f"From month {months[0]} to {last}, the change in the {rater}s' ratings differed "
            f"between arms by {row['mean']:+.2f} points, digital minus usual care "
            f"({mass(row)} interval {row['ci_low']:+.2f} to {row['ci_high']:+.2f})."
        )
    for arm in ARMS:
        row = row_lookup(detail, estimand="rater_correlation", arm=arm)
        bias = row_lookup(detail, estimand="rater_bias", arm=arm)
        sentences.append(
            f"In the {arm} arm, patients and their therapists barely agreed on whose alliance was "
            f"higher: correlation {row['mean']:.2f} ({mass(row)} interval {row['ci_low']:.2f} to "
            f"{row['ci_high']:.2f}); patients rated alliance {bias['mean']:.2f} points higher "
            f"than therapists on average."
            if abs(row["mean"]) < 0.3
            else f"In the {arm} arm, the patient-level correlation of patients' and therapists' "
            f"ratings was {row['mean']:.2f} ({mass(row)} interval {row['ci_low']:.2f} to "
            f"{row['ci_high']:.2f}); patients rated {bias['mean']:.2f} points higher on average."
        )
    for rater, term, label in (
        ("patient", "sus", "the app's usability (SUS)"),
        ("patient", "vas_app", "satisfaction with the app"),
        ("therapist", "vas_platform", "satisfaction with the platform"),
    ):
        row = row_lookup(detail, estimand="association", rater=rater, term=term)
        sentences.append(
            f"In the digital arm, one SD more of {label} went with {row['mean']:+.2f} WAI points "
            f"in the {rater}'s rating ({mass(row)} interval {row['ci_low']:+.2f} to "
            f"{row['ci_high']:+.2f}; probability above zero {percent(row['prob_positive'])})."
        )
    return sentences


def within_between_view(table: pd.DataFrame) -> pd.DataFrame:
    """Aim (c) per rater and term: the pooled, between- and within-patient coefficients side by
    side, each as "mean [interval]"."""
    pooled_no_communication = (table["estimand"] == "no_communication") & (
        table["model"] == "pooled"
    )
    table = table[(table["estimand"] != "no_communication") | pooled_no_communication].copy()
    relabel = (table["estimand"] == "no_communication").to_numpy()
    table.loc[relabel, "estimand"] = "association"
    table.loc[relabel, "term"] = "no communication"
    cell = table.apply(
        lambda row: f"{row['mean']:+.2f} [{row['ci_low']:+.2f}, {row['ci_high']:+.2f}]", axis=1
    )
    wide = (
        table.assign(cell=cell)
        .pivot_table(index=["rater", "term"], columns="estimand", values="cell", aggfunc="first")
        .reindex(columns=["association", "association_between", "association_within"])
        .rename(
            columns={
                "association": "pooled (contract)",
                "association_between": "between patients",
                "association_within": "within patient",
            }
        )
    )
    order = {term: i for i, term in enumerate(pd.unique(table["term"]))}
    wide = wide.reset_index().fillna("")
    return wide.sort_values(
        ["rater", "term"], key=lambda c: c.map(order) if c.name == "term" else c
    ).reset_index(drop=True)


#: The sign of each difference the report shows, written beside its name.
SIGN_CONVENTIONS = {
    "arm_difference": "digital minus usual care",
    "change_difference": "digital minus usual care",
    "rater_bias": "patient minus therapist",
    "directional_bias": "therapist minus patient",
}


def reported_sensitivity(sensitivity: pd.DataFrame, growth_choice: pd.DataFrame) -> pd.DataFrame:
    """The sensitivity rows of the models the report reports: of the growth models, only the one
    chosen for each rater (``growth_<rater>_<model>``)."""
    chosen = {f"growth_{row.rater}_{row.model}" for row in growth_choice.itertuples()}
    growth = sensitivity["model"].str.startswith("growth_")
    return sensitivity[~growth | sensitivity["model"].isin(chosen)].reset_index(drop=True)


def unidentified_quantities(tables: list[pd.DataFrame], min_contraction: float) -> pd.DataFrame:
    """The rows of every table of reported quantities (estimands, truth-and-bias cells,
    within/between coefficients) that the data do not identify."""
    labels = ["aim", "estimand", "rater", "arm", "month", "term"]
    numbers = ["mean", "sd", "prior_mean", "prior_sd", "contraction"]
    rows = []
    for table in tables:
        part = table[labels + numbers].astype({c: str for c in labels})
        part[numbers] = part[numbers].replace("", float("nan")).apply(pd.to_numeric)
        rows.append(part[not_identified_rows(part, min_contraction)])
    return pd.concat(rows, ignore_index=True)


def tipping_at_random(table: pd.DataFrame) -> pd.DataFrame:
    """The tipping-point table's rows at both deltas 0 (the analysis under missing at random)."""
    at_random = (table["delta_digital"] == 0) & (table["delta_ptau"] == 0)
    return table[at_random].drop(columns=["delta_digital", "delta_ptau"]).reset_index(drop=True)


def build_context(inputs: Mapping, config: Mapping, project_dir: str | Path = ".") -> dict:
    """Everything the template shows, read from the workflow's outputs."""
    detail = pd.read_csv(inputs["estimands_detail"], dtype={"month": str}, keep_default_na=False)
    labels = {"aim", "estimand", "rater", "arm", "month", "term"}
    for column in [c for c in detail.columns if c not in labels]:
        detail[column] = pd.to_numeric(detail[column].replace("", float("nan")))
    min_contraction = config["diagnostics"]["min_contraction"]
    detail["not_identified"] = not_identified_rows(detail, min_contraction)
    growth_choice = pd.read_csv(inputs["growth_choice"])
    truth_and_bias = pd.read_csv(inputs["truth_and_bias"], keep_default_na=False)
    within_between = pd.read_csv(inputs["association_within_between"], keep_default_na=False)
    diagnostics = diagnostics_overview([pd.read_csv(path) for path in inputs["diagnostics"]])
    sensitivity = reported_sensitivity(
        pd.concat([pd.read_csv(path) for path in inputs["prior_sensitivity"]]), growth_choice
    )
    sensitivity = sensitivity.sort_values(
        "diagnosis", key=lambda d: d == "not sensitive", kind="stable"
    ).reset_index(drop=True)
    input_summary = yaml.safe_load(Path(inputs["input_summary"]).read_text())
    months = list(config["instrument"]["months"])
    figures = {name: image_uri(path) for name, path in inputs["figures"].items()}

    def table(path, **kwargs):
        return pd.read_csv(path, **kwargs)

    ceiling = pd.concat([table(p) for p in inputs["ceiling_checks"]])
    sd_check = pd.concat([table(p) for p in inputs["sd_checks"]])
    ordinal_checks = (
        pd.concat([table(p) for p in inputs["ordinal_checks"]], ignore_index=True)
        if inputs["ordinal_checks"]
        else pd.DataFrame()
    )
    all_growth_models = table(
        inputs["growth_all_models"], dtype={"month": str}, keep_default_na=False
    )
    return {
        "synthetic": bool(input_summary["synthetic_twin"]),
        "input_summary": input_summary,
        "summary_sentences": clinical_summary(detail, months),
        "findings": findings_table(detail, config["summary"]["decision_prob"]),
        "decision_prob": config["summary"]["decision_prob"],
        "diagnostics": diagnostics,
        "failed_models": diagnostics[diagnostics["failed"] > 0]["model"].tolist(),
        "extended_fits": diagnostics[diagnostics["extensions"] > 0],
        "prior_sensitivity": sensitivity,
        "prior_sensitive": sensitivity[
            ~sensitivity["diagnosis"].isin(["not sensitive", NOT_IDENTIFIED])
        ],
        "not_identified": unidentified_quantities(
            [detail, truth_and_bias, within_between[within_between["model"] != "pooled"]],
            min_contraction,
        ),
        "min_contraction": min_contraction,
        "flow": table(inputs["flow"]),
        "alliance_summary": table(inputs["alliance_summary"]),
        "growth_models": config["growth"]["models"],
        "reported_model": config["growth"]["reported_model"],
        "growth_selection_min_se": config["growth"]["selection_min_se"],
        "growth_priors": config["growth"]["priors"],
        "agreement_priors": config["agreement"]["priors"],
        "truth_and_bias_priors": config["truth_and_bias"]["priors"],
        "association_priors": config["association"]["priors"],
        "growth_comparison": table(inputs["growth_comparison"]),
        "growth_choice": growth_choice,
        "growth_frequentist": table(inputs["growth_frequentist"], keep_default_na=False),
        "ceiling": ceiling,
        "ordinal": config["growth"]["ordinal"],
        "ordinal_checks": ordinal_checks,
        "growth_side_by_side": contrasts_side_by_side(
            all_growth_models, [*config["growth"]["models"], ORDINAL_MODEL]
        ),
        "model_choice": model_choice_statement(
            growth_choice,
            pd.concat([ceiling, sd_check], ignore_index=True),
            ordinal_checks,
            all_growth_models,
            config["summary"]["ci_prob"],
        ),
        "growth_cross_validation": config["growth"]["cross_validation"],
        "sd_check": sd_check,
        "agreement_frequentist": table(inputs["agreement_frequentist"]),
        "agreement_ppc": table(inputs["agreement_ppc"]),
        "truth_and_bias": truth_and_bias,
        "missing_predictors": table(inputs["missing_predictors"]),
        "collinearity": pd.concat([table(p) for p in inputs["collinearity"]]),
        "association_within_between": within_between_view(within_between),
        "tipping_sentences": table(inputs["tipping_sentences"]),
        "tipping_weights": table(inputs["tipping_weights"]),
        "tipping_at_random": tipping_at_random(
            table(inputs["tipping_points"], dtype={"month": str}, keep_default_na=False)
        ),
        "delta_grid": config["missing_data"]["delta"],
        "missing_patterns": table(inputs["missing_patterns"]),
        "dropout_model": table(inputs["dropout_model"]),
        "dropout_sentence": dropout_sentence(
            table(inputs["dropout_model"]), config["summary"]["decision_prob"]
        ),
        "given_both_raters": table(
            inputs["given_both_raters"], dtype={"month": str}, keep_default_na=False
        ),
        "months": months,
        "detail": detail,
        "validation": (
            table(inputs["validation_acceptance"]) if "validation_acceptance" in inputs else None
        ),
        "sign_conventions": SIGN_CONVENTIONS,
        "figures": figures,
        "ci_prob": config["summary"]["ci_prob"],
        "rope_wai": config["summary"]["rope_wai"],
        "rope_correlation": config["summary"]["rope_correlation"],
        "versions": software_versions(),
        "seed": config["seed"],
        "config_yaml": yaml.safe_dump(plain(config), sort_keys=False, width=100),
        "commit": git_commit(project_dir),
        "sampling": config["sampling"],
        "agreement_draws": model_sampling(config, "agreement")["draws"],
        "growth_thin": model_sampling(config, "growth")["thin"],
        "thresholds": config["diagnostics"],
    }


def render(context: Mapping, template_dir: str | Path, template: str = "report.html.j2") -> str:
    """A report's HTML from ``template`` (the reanalysis report by default) in
    ``template_dir``."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir)),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
    )
    environment.filters["num"] = lambda value, digits=2: (
        "" if value is None or value == "" or pd.isna(value) else f"{float(value):.{digits}f}"
    )
    environment.filters["pct"] = lambda value: f"{float(value):.0%}"
    environment.filters["pct1"] = lambda value: f"{float(value):.1%}"
    return environment.get_template(template).render(**context)
