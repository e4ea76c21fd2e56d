# Bayesian reanalysis of therapeutic alliance in the ICOnnecta't trial.
# Run with `snakemake --cores 4`; see README.md. Rules are grouped by stage in workflow/rules/.

import sys

from snakemake.utils import min_version

from alliance import config_checks

min_version("9.0")

# A malformed config file stops the run with one message naming the file, line and problem
# (Snakemake's own message names neither). Other config checks are in workflow/rules/common.smk.
if config_problem := config_checks.yaml_file_problem("config/config.yaml"):
    sys.exit(config_checks.exit_message([config_problem]))


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/growth.smk"
include: "workflow/rules/agreement.smk"
include: "workflow/rules/association.smk"
include: "workflow/rules/missing_data.smk"
include: "workflow/rules/estimands.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/validation.smk"


# Targets that only gather their inputs run where Snakemake runs, never as cluster jobs.
localrules:
    all,
    validation,


rule all:
    default_target: True
    input:
        rules.render_report.output,
        rules.descriptives.output,
        rules.summarise_growth.output,
        expand(rules.check_growth.output, model=GROWTH_MODELS),
        rules.check_agreement.output,
        rules.check_truth_and_bias.output,
        rules.summarise_agreement.output,
        expand(
            rules.check_association.output, rater=RATERS, variant=ASSOCIATION_VARIANTS
        ),
        rules.summarise_associations.output,
        rules.estimands.output,
        rules.findings.output,
        rules.tipping_points.output,
        rules.describe_missing_data.output,


# The simulation study, not part of the default run: `snakemake --cores 4 validation`.
rule validation:
    input:
        rules.summarise_validation.output,
