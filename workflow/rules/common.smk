# Configuration checks, the output layout and the config values each job reads (its params).

import sys
from pathlib import Path
from types import SimpleNamespace

import yaml

from snakemake.utils import validate

from alliance import config_checks, interruptions, job_server
from alliance.design import RATERS
from alliance.diagnostics import convergence_settings
from alliance.growth import cross_validated_models
from alliance.model_fits import fit_settings, ordinal_fit_settings
from alliance.validation import scenario_config as validation_scenario_config
from alliance.validation import scenario_models as validation_scenario_models
from alliance.validation import scenario_names as validation_scenario_names
from alliance.validation import SBC_MODELS

# A configuration or environment problem stops the run here, before any job, with one message
# per problem naming the key and what is allowed (sys.exit: no traceback on the console).
CONFIG_SCHEMA = "../schemas/config.schema.yaml"
_schema = config_checks.load_schema(workflow.source_path(CONFIG_SCHEMA))
# `--config 'summary={ci_prob: 0.9}'` reaches the config as text ('0.9'): read it as the number
# (or integer, or true/false) the schema wants there.
config_checks.read_nested_command_line_values(config, _schema)
_problems = config_checks.schema_problems(config, _schema)
if _problems:
    sys.exit(config_checks.exit_message(_problems))
validate(config, schema=CONFIG_SCHEMA)  # fills the schema's defaults
# Keys in the project config's order, whatever order a --configfile lists them in (params are
# compared key order included; alliance.config_checks.in_reference_order).
_ordered = config_checks.in_reference_order(
    dict(config),
    yaml.safe_load(Path(workflow.basedir, "config", "config.yaml").read_text()),
)
config.clear()
config.update(_ordered)
_problems = config_checks.startup_problems(config, schema=_schema)
if _problems:
    sys.exit(config_checks.exit_message(_problems))

# A closed terminal stops the run like Ctrl-C (jobs cancelled, directory unlocked), so the same
# command resumes it; profiles/default/config.yaml reruns any output left incomplete.
interruptions.stop_on_hangup_like_ctrl_c()


# Local runs: each job hands itself to one job server that has imported the analysis stack
# (alliance.job_server, runtime.job_server in the config); the handlers start and stop it.
onstart:
    job_server.start_for_workflow(
        config["runtime"]["job_server"],
        workflow.local_exec and workflow.is_main_process,
        python_jobs=sum(job.is_script for job in workflow.dag.needrun_jobs()),
    )


onsuccess:
    job_server.stop_for_workflow()


onerror:
    job_server.stop_for_workflow()


# The one software environment of every rule (same pins as requirements.txt). Jobs run in the
# active environment (.venv); conda users may create it with `conda env create -f environment.yml`.
CONDA_ENV = "../../environment.yml"


# ---------------------------------------------------------------------------------------------
# The output layout. Every model has a family (growth, agreement, association) and a name within
# it, and passes through the same three jobs:
#   fit_<family>      models/<family>/<name>.nc         the draws, and nothing else
#   check_<family>    results/<family>/<name>/*          convergence, prior sensitivity,
#                                                        predictive checks and their figures
# (a growth model is fitted and checked for both raters in one job each: names <rater>_<model>)
#   summarise_model   results/<family>/<name>/estimands.csv   the estimand rows
# What combines models (an aim's tables and figures, the contract's estimands.csv, the findings)
# goes to results/tables/ and results/figures/; the data's descriptives too.
# ---------------------------------------------------------------------------------------------
def fit_file(family, name):
    """The fitted model (NetCDF) of one model."""
    return f"models/{family}/{name}.nc"


def model_result(family, name, file):
    """One output of a model's check or summary job."""
    return f"results/{family}/{name}/{file}"


def model_log(stage, family, name):
    """The log and the benchmark file of one job of one model."""
    return (
        f"logs/{stage}/{family}/{name}.log",
        f"logs/benchmarks/{stage}/{family}/{name}.tsv",
    )


# The models of each family (names may hold wildcards).
GROWTH_MODELS = list(config["growth"]["models"])
GROWTH_NAMES = expand("{rater}_{model}", rater=RATERS, model=GROWTH_MODELS)
#: The growth models cross-validated (growth.cross_validation.models; by default those the model
#: choice needs).
CROSS_VALIDATED_MODELS = cross_validated_models(config["growth"])
#: The item-level ordinal growth model of each rater (growth.ordinal), when enabled: its
#: estimand rows join the totals models' in the all-models table.
ORDINAL_MODEL = "ordinal_items"
ORDINAL_NAMES = (
    expand("{rater}_{model}", rater=RATERS, model=ORDINAL_MODEL)
    if config["growth"]["ordinal"]["enabled"]
    else []
)
AGREEMENT_NAMES = ["bivariate", "truth_and_bias"]
ASSOCIATION_VARIANTS = ["pooled", "within_between"]
ASSOCIATION_NAMES = expand(
    "{rater}_{variant}", rater=RATERS, variant=ASSOCIATION_VARIANTS
)


# ---------------------------------------------------------------------------------------------
# Config values, each passed to the jobs that read it through their params (scripts read nothing
# else), so that editing one reruns exactly the jobs it affects.
# ---------------------------------------------------------------------------------------------
SEED = config["seed"]
# The convergence checks every fit must pass before it is saved (the safety net samples again
# otherwise), so changing one of them reruns the fits.
CONVERGENCE = convergence_settings(config["diagnostics"])
# What every check job reads: the convergence thresholds, the prior-sensitivity and
# identification thresholds, and whether a failed check stops the run.
CHECKS = {
    **CONVERGENCE,
    **{
        key: config["diagnostics"][key]
        for key in ("sensitivity_threshold", "min_contraction", "strict")
    },
}
# What the estimand summaries read: the interval mass and the ROPEs.
SUMMARY = {
    key: config["summary"][key] for key in ("ci_prob", "rope_wai", "rope_correlation")
}
# The response scale (lowest and highest answer), marked in the predictive-check figures.
RESPONSE_SCALE = [config["instrument"][key] for key in ("response_min", "response_max")]


def fit_params(section):
    """The params every fit job reads: alliance.model_fits.fit_settings of its family's config
    section (priors, instrument, MCMC size, convergence checks, prior draws) and the seed.
    """
    return dict(**fit_settings(config, section), seed=SEED)


def ordinal_fit_params():
    """A growth fit's params with the ordinal model's priors and MCMC size (growth.ordinal)."""
    return dict(**ordinal_fit_settings(config), seed=SEED)


def uses_synthetic_twin():
    """True when no raw data folder is configured: the twin is generated and analysed."""
    return not (config.get("raw_data_dir") or "").strip()


def input_data_dir():
    """Folder of patients.csv, wai.csv and digital.csv: the raw data or the twin's."""
    if uses_synthetic_twin():
        return "data/synthetic"
    return str(Path(config["raw_data_dir"]).expanduser())


def input_data_files(wildcards):
    """The three input files of the data contract, in the configured folder."""
    folder = input_data_dir()
    return {name: f"{folder}/{name}.csv" for name in ("patients", "wai", "digital")}


def fit_priority(fit, rater=None, model=None):
    """Start order of the model fits (Snakemake priority; higher starts first): the longest
    first. The agreement fit, the patient-rating association fits, the growth models' jobs (each
    fits both raters with one compilation; the censored one first), the truth-and-bias model,
    then the therapist-rating association fits (which reuse some of the numba kernels, kept in a
    cache every job shares, that the patient-rating ones compiled).
    """
    if fit == "agreement":
        return 100
    if fit == "truth_and_bias":
        return 50
    if fit == "ordinal":
        return 95 if rater == RATERS[0] else 45
    first = rater == RATERS[0]
    if fit == "association":
        return 90 if first else 40
    censored_first = sorted(
        GROWTH_MODELS,
        key=lambda name: config["growth"]["models"][name]["likelihood"]
        != "censored_gaussian",
    )
    return 80 - censored_first.index(model)


def growth_model_spec(wildcards):
    """The config's specification of the growth model named by the wildcard."""
    return config["growth"]["models"][wildcards.model]


#: Written by the validation target; the report shows it when it exists (and renders again when
#: a validation run rewrites it).
VALIDATION_ACCEPTANCE = "results/validation/acceptance.csv"


def report_inputs(wildcards):
    """Every table and figure the report shows; figures are named fig_<name>."""
    validation = (
        {"validation_acceptance": VALIDATION_ACCEPTANCE}
        if Path(VALIDATION_ACCEPTANCE).exists()
        else {}
    )
    growth = config["growth"]["reported_model"]
    reported_growth = [growth, *config["growth"]["reported_alternatives"]]

    def results(family, names, file):
        return [model_result(family, name, file) for name in names]

    return {
        **validation,
        "estimands": rules.estimands.output.estimands,
        "estimands_detail": rules.estimands.output.detail,
        "input_summary": rules.clean_data.output.input_summary,
        "flow": rules.descriptives.output.flow,
        "alliance_summary": rules.descriptives.output.alliance_summary,
        "growth_comparison": rules.summarise_growth.output.comparison,
        "growth_frequentist": rules.summarise_growth.output.frequentist,
        "growth_choice": rules.summarise_growth.output.choice,
        "ceiling_checks": results("growth", GROWTH_NAMES, "ceiling_check.csv"),
        "sd_checks": results("growth", GROWTH_NAMES, "sd_check.csv"),
        "agreement_frequentist": rules.check_agreement.output.frequentist,
        "agreement_ppc": rules.check_agreement.output.ppc_table,
        "truth_and_bias": rules.summarise_agreement.output.truth_and_bias,
        "missing_predictors": rules.summarise_associations.output.missing,
        "collinearity": results(
            "association", expand("{rater}_pooled", rater=RATERS), "collinearity.csv"
        ),
        "association_within_between": rules.summarise_associations.output.within_between,
        "tipping_sentences": rules.tipping_points.output.sentences,
        "tipping_weights": rules.tipping_points.output.weights,
        "tipping_points": rules.tipping_points.output.constant,
        "missing_patterns": rules.describe_missing_data.output.patterns,
        "dropout_model": rules.describe_missing_data.output.dropout,
        "given_both_raters": rules.describe_missing_data.output.both_raters,
        "prior_sensitivity": [
            *results(
                "growth",
                expand("{rater}_{model}", rater=RATERS, model=reported_growth),
                "prior_sensitivity.csv",
            ),
            *results("agreement", AGREEMENT_NAMES, "prior_sensitivity.csv"),
            *results("association", ASSOCIATION_NAMES, "prior_sensitivity.csv"),
        ],
        "growth_all_models": rules.summarise_growth.output.all_models,
        "ordinal_checks": results("growth", ORDINAL_NAMES, "ordinal_checks.csv"),
        "diagnostics": [
            *results("growth", GROWTH_NAMES + ORDINAL_NAMES, "diagnostics.csv"),
            *results("agreement", AGREEMENT_NAMES, "diagnostics.csv"),
            *results("association", ASSOCIATION_NAMES, "diagnostics.csv"),
        ],
        "fig_trajectories": rules.descriptives.output.trajectories,
        "fig_prior_posterior": rules.estimands.output.prior_posterior,
        "fig_growth_prior_patient": rules.summarise_growth.output.prior_check_patient,
        "fig_growth_prior_therapist": rules.summarise_growth.output.prior_check_therapist,
        "fig_growth_ppc_patient": rules.summarise_growth.output.ppc_patient,
        "fig_growth_ppc_therapist": rules.summarise_growth.output.ppc_therapist,
        "fig_growth_trajectories": rules.summarise_growth.output.trajectories,
        "fig_growth_contrasts": rules.summarise_growth.output.forest,
        "fig_tipping_points": rules.tipping_points.output.figure,
        "fig_trajectories_by_dropout": rules.describe_missing_data.output.figure,
        "fig_agreement_prior": rules.check_agreement.output.prior_check,
        "fig_rater_correlations": rules.check_agreement.output.correlations,
        "fig_bland_altman": rules.summarise_agreement.output.bland_altman,
        "fig_rater_scatter": rules.summarise_agreement.output.scatter,
        "fig_agreement_ppc": rules.check_agreement.output.ppc,
        "fig_truth_and_bias": rules.summarise_agreement.output.truth_and_bias_figure,
        "fig_truth_and_bias_ppc": rules.check_truth_and_bias.output.ppc,
        "fig_association_prior_patient": model_result(
            "association", "patient_pooled", "prior_check.png"
        ),
        "fig_association_forest": rules.summarise_associations.output.forest,
        "fig_association_ppc_patient": model_result(
            "association", "patient_pooled", "ppc.png"
        ),
        "fig_association_ppc_therapist": model_result(
            "association", "therapist_pooled", "ppc.png"
        ),
    }


# The validation study (workflow/rules/validation.smk): its scenarios and replicates.
VALIDATION = config["validation"]
VALIDATION_SCENARIOS = validation_scenario_names(VALIDATION)
# Jobs of `replicates_per_job` replicates of every scenario each (the models compiled once per job).
VALIDATION_BATCHES = [
    f"{index:03d}"
    for index in range(
        1, -(-VALIDATION["replicates"] // VALIDATION["replicates_per_job"]) + 1
    )
]


def batch_replicates(wildcards):
    """The replicate numbers (1-based) of one batch of the validation study."""
    first = (int(wildcards.batch) - 1) * VALIDATION["replicates_per_job"] + 1
    last = min(first + VALIDATION["replicates_per_job"] - 1, VALIDATION["replicates"])
    return list(range(first, last + 1))


# Simulation-based calibration: jobs of `simulations_per_job` simulations each, per rater.
SBC = VALIDATION["sbc"]
SBC_RUN = list(SBC.get("models") or SBC_MODELS)
SBC_CHUNKS = [
    f"{index:03d}"
    for index in range(1, -(-SBC["simulations"] // SBC["simulations_per_job"]) + 1)
]


def sbc_simulations(wildcards):
    """The simulation numbers (1-based) of one SBC job."""
    first = (int(wildcards.chunk) - 1) * SBC["simulations_per_job"] + 1
    last = min(first + SBC["simulations_per_job"] - 1, SBC["simulations"])
    return list(range(first, last + 1))


def validation_settings():
    """What the SBC jobs read: the config (the twin as configured) at the validation's MCMC size
    with its SBC settings, without the scenarios."""
    settings = validation_scenario_config(config, None)
    keys = (
        "synthetic_twin",
        "instrument",
        "input",
        "growth",
        "agreement",
        "association",
        "sampling",
    )
    return {**{key: settings[key] for key in keys}, "sbc": SBC}


def all_scenario_settings():
    """What a batch of the study reads: each scenario's settings (scenario_settings)."""
    return {
        name: scenario_settings(SimpleNamespace(scenario=name))
        for name in VALIDATION_SCENARIOS
    }


def scenario_models():
    """The reported models a replicate of each scenario fits (alliance.validation)."""
    return {
        name: list(validation_scenario_models(VALIDATION, name))
        for name in VALIDATION_SCENARIOS
    }


def scenario_settings(wildcards):
    """What one scenario's jobs read: the config with the scenario's twin and the validation's
    MCMC size (alliance.validation.scenario_config), without the validation section itself.
    """
    settings = validation_scenario_config(config, wildcards.scenario)
    return {key: value for key, value in settings.items() if key != "validation"}
