# Configuration checks and helpers shared by every stage.

import sys
from pathlib import Path

from snakemake.utils import validate

from alliance import config_checks, interruptions

# A configuration or environment problem stops the run here, before any job, with one message
# per problem naming the key and what is allowed (sys.exit: no traceback on the console).
CONFIG_SCHEMA = "../schemas/config.schema.yaml"
_problems = config_checks.schema_problems(
    config, config_checks.load_schema(workflow.source_path(CONFIG_SCHEMA))
)
if _problems:
    sys.exit(config_checks.exit_message(_problems))
validate(config, schema=CONFIG_SCHEMA)  # fills the schema's defaults
_problems = config_checks.startup_problems(config)
if _problems:
    sys.exit(config_checks.exit_message(_problems))

# A closed terminal stops the run like Ctrl-C (jobs cancelled, directory unlocked), so the same
# command resumes it; profiles/default/config.yaml reruns any output left incomplete.
interruptions.stop_on_hangup_like_ctrl_c()


# The one software environment of every rule (same pins as requirements.txt). Jobs run in the
# active environment (.venv); conda users may create it with `conda env create -f environment.yml`.
CONDA_ENV = "../../environment.yml"


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


RATERS = ["patient", "therapist"]
# The convergence checks every fit must pass before it is saved (the safety net samples again
# otherwise), so changing one of them reruns the fits.
CONVERGENCE_THRESHOLDS = {
    key: config["diagnostics"][key]
    for key in ("max_rhat", "min_ess", "max_divergences", "min_ebfmi")
}
GROWTH_MODELS = list(config["growth"]["models"])


def fit_priority(fit, rater=None, model=None):
    """Start order of the model fits (Snakemake priority; higher starts first).

    A fit compiles its model into numba kernels kept in a cache that every job shares, so the same
    model fitted later for the other rater reuses most of them. The patient-rating fits start
    first, longest first (agreement, association, censored growth, the other growth models), then
    the truth-and-bias model, then the therapist-rating fits: two fits of one structure never
    compile the same kernels side by side.
    """
    if fit == "agreement":
        return 100
    if fit == "truth_and_bias":
        return 50
    first = rater == RATERS[0]
    if fit == "association":
        return 90 if first else 40
    censored_first = sorted(
        GROWTH_MODELS,
        key=lambda name: config["growth"]["models"][name]["likelihood"]
        != "censored_gaussian",
    )
    return (80 if first else 30) - censored_first.index(model)


def growth_model_spec(wildcards):
    """The config's specification of the growth model named by the wildcard."""
    return config["growth"]["models"][wildcards.model]


def report_inputs(wildcards):
    """Every table and figure the report shows; figures are named fig_<name>."""
    growth = config["growth"]["reported_model"]
    return {
        "estimands": rules.estimands.output.estimands,
        "estimands_detail": rules.estimands.output.detail,
        "input_summary": rules.clean_data.output.input_summary,
        "flow": rules.descriptives.output.flow,
        "alliance_summary": rules.descriptives.output.alliance_summary,
        "growth_comparison": rules.summarise_growth.output.comparison,
        "growth_frequentist": rules.summarise_growth.output.frequentist,
        "growth_choice": rules.summarise_growth.output.choice,
        "ceiling_checks": expand(
            rules.check_growth.output.ceiling, rater=RATERS, model=GROWTH_MODELS
        ),
        "sd_checks": expand(
            rules.check_growth.output.sd_check, rater=RATERS, model=GROWTH_MODELS
        ),
        "agreement_frequentist": rules.check_agreement.output.frequentist,
        "agreement_ppc": rules.check_agreement.output.ppc_table,
        "truth_and_bias": rules.truth_and_bias.output.table,
        "missing_predictors": expand(
            rules.fit_association.output.missing, rater=RATERS
        ),
        "collinearity": expand(rules.fit_association.output.collinearity, rater=RATERS),
        "association_within_between": expand(
            rules.fit_association.output.within_between, rater=RATERS
        ),
        "prior_sensitivity": [
            *expand(
                rules.check_growth.output.sensitivity,
                rater=RATERS,
                model=[growth, *config["growth"]["reported_alternatives"]],
            ),
            rules.check_agreement.output.sensitivity,
            *expand(rules.fit_association.output.sensitivity, rater=RATERS),
        ],
        "diagnostics": [
            *expand(
                rules.check_growth.output.diagnostics, rater=RATERS, model=GROWTH_MODELS
            ),
            rules.check_agreement.output.diagnostics,
            rules.truth_and_bias.output.diagnostics,
            *expand(rules.fit_association.output.diagnostics, rater=RATERS),
        ],
        "fig_trajectories": rules.descriptives.output.trajectories,
        "fig_prior_posterior": rules.estimands.output.prior_posterior,
        "fig_growth_prior_patient": rules.summarise_growth.output.prior_check_patient,
        "fig_growth_prior_therapist": rules.summarise_growth.output.prior_check_therapist,
        "fig_growth_ppc_patient": rules.summarise_growth.output.ppc_patient,
        "fig_growth_ppc_therapist": rules.summarise_growth.output.ppc_therapist,
        "fig_growth_trajectories": rules.summarise_growth.output.trajectories,
        "fig_growth_contrasts": rules.summarise_growth.output.forest,
        "fig_agreement_prior": rules.check_agreement.output.prior_check,
        "fig_rater_correlations": rules.check_agreement.output.correlations,
        "fig_bland_altman": rules.check_agreement.output.bland_altman,
        "fig_rater_scatter": rules.check_agreement.output.scatter,
        "fig_agreement_ppc": rules.check_agreement.output.ppc,
        "fig_truth_and_bias": rules.truth_and_bias.output.figure,
        "fig_association_prior_patient": "results/association/patient_prior_check.png",
        "fig_association_forest": rules.summarise_associations.output.forest,
        "fig_association_ppc_patient": "results/association/patient_ppc.png",
        "fig_association_ppc_therapist": "results/association/therapist_ppc.png",
    }
