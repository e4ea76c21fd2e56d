# The simulation study (target `validation`, not part of the default run): per scenario its true
# estimands, per replicate a simulated trial analysed as the workflow analyses the data, and the
# coverage and verdict tables of the data contract (alliance.validation).


rule validation_truth:
    output:
        truth="results/validation/truth/{scenario}.csv",
    log:
        "logs/validation/truth/{scenario}.log",
    benchmark:
        "logs/benchmarks/validation/truth/{scenario}.tsv"
    conda:
        CONDA_ENV
    params:
        twin=lambda wildcards: scenario_settings(wildcards)["synthetic_twin"],
        instrument=config["instrument"],
        seed=SEED,
    script:
        "../scripts/validation_truth.py"


rule validation_replicate:
    input:
        truth=rules.validation_truth.output.truth,
    output:
        estimands="results/validation/replicates/{scenario}/{replicate}/estimands.csv",
        verdicts="results/validation/replicates/{scenario}/{replicate}/verdicts.csv",
        convergence="results/validation/replicates/{scenario}/{replicate}/convergence.csv",
    log:
        "logs/validation/replicates/{scenario}/{replicate}.log",
    benchmark:
        "logs/benchmarks/validation/replicates/{scenario}/{replicate}.tsv"
    conda:
        CONDA_ENV
    threads: 1
    params:
        settings=scenario_settings,
        seed=SEED,
    script:
        "../scripts/validation_replicate.py"


rule validation_sbc:
    output:
        ranks="results/validation/sbc/{rater}/{chunk}.csv",
    log:
        "logs/validation/sbc/{rater}/{chunk}.log",
    benchmark:
        "logs/benchmarks/validation/sbc/{rater}/{chunk}.tsv"
    wildcard_constraints:
        rater="|".join(RATERS),
    conda:
        CONDA_ENV
    threads: 1
    params:
        settings=validation_settings(),
        simulations=sbc_simulations,
        seed=SEED,
    script:
        "../scripts/validation_sbc.py"


rule summarise_validation:
    input:
        truths=expand(
            rules.validation_truth.output.truth, scenario=VALIDATION_SCENARIOS
        ),
        estimands=expand(
            rules.validation_replicate.output.estimands,
            scenario=VALIDATION_SCENARIOS,
            replicate=VALIDATION_REPLICATES,
        ),
        verdicts=expand(
            rules.validation_replicate.output.verdicts,
            scenario=VALIDATION_SCENARIOS,
            replicate=VALIDATION_REPLICATES,
        ),
        convergence=expand(
            rules.validation_replicate.output.convergence,
            scenario=VALIDATION_SCENARIOS,
            replicate=VALIDATION_REPLICATES,
        ),
        sbc_ranks=expand(
            rules.validation_sbc.output.ranks, rater=RATERS, chunk=SBC_CHUNKS
        ),
        template="report/templates/validation.html.j2",
    output:
        coverage="results/validation/coverage.csv",
        verdicts="results/validation/verdicts.csv",
        acceptance=VALIDATION_ACCEPTANCE,
        sbc="results/validation/sbc.csv",
        report="results/validation/report.html",
    log:
        "logs/validation/summarise_validation.log",
    benchmark:
        "logs/benchmarks/validation/summarise_validation.tsv"
    conda:
        CONDA_ENV
    params:
        scenarios={
            name: {
                "description": VALIDATION["scenarios"][name]["description"],
                "mechanism": validation_scenario_config(config, name)[
                    "synthetic_twin"
                ]["dropout_mechanism"],
            }
            for name in VALIDATION_SCENARIOS
        },
        summary={**SUMMARY, "decision_prob": config["summary"]["decision_prob"]},
        sampling=VALIDATION["sampling"],
        kept_draws=SBC["kept_draws"],
    script:
        "../scripts/summarise_validation.py"
