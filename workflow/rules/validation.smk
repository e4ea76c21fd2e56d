# The simulation study (target `validation`, not part of the default run): per scenario its true
# estimands, per batch some replicates of every scenario (each a simulated trial analysed as the workflow analyses the data, and the
# coverage and verdict tables of the data contract (alliance.validation).


rule validation_truth:
    output:
        truth="results/validation/truth/{scenario}.csv",
    log:
        "logs/validation/truth/{scenario}.log",
    benchmark:
        "logs/benchmarks/validation/truth/{scenario}.tsv"
    # The truths and then the batches of replicates (the longest jobs) start before the SBC.
    priority: 2
    conda:
        CONDA_ENV
    params:
        twin=lambda wildcards: scenario_settings(wildcards)["synthetic_twin"],
        instrument=config["instrument"],
        seed=SEED,
    script:
        "../scripts/validation_truth.py"


rule validation_replicates:
    input:
        truths=expand(
            rules.validation_truth.output.truth, scenario=VALIDATION_SCENARIOS
        ),
    output:
        estimands="results/validation/replicates/{batch}/estimands.csv",
        verdicts="results/validation/replicates/{batch}/verdicts.csv",
        convergence="results/validation/replicates/{batch}/convergence.csv",
    log:
        "logs/validation/replicates/{batch}.log",
    benchmark:
        "logs/benchmarks/validation/replicates/{batch}.tsv"
    priority: 1
    conda:
        CONDA_ENV
    threads: 1
    params:
        settings=all_scenario_settings(),
        models=scenario_models(),
        replicates=batch_replicates,
        seed=SEED,
    script:
        "../scripts/validation_replicates.py"


rule validation_sbc:
    output:
        ranks="results/validation/sbc/{model}/{chunk}.csv",
    log:
        "logs/validation/sbc/{model}/{chunk}.log",
    benchmark:
        "logs/benchmarks/validation/sbc/{model}/{chunk}.tsv"
    wildcard_constraints:
        model="|".join(SBC_MODELS),
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
            rules.validation_replicates.output.estimands, batch=VALIDATION_BATCHES
        ),
        verdicts=expand(
            rules.validation_replicates.output.verdicts, batch=VALIDATION_BATCHES
        ),
        convergence=expand(
            rules.validation_replicates.output.convergence, batch=VALIDATION_BATCHES
        ),
        sbc_ranks=expand(
            rules.validation_sbc.output.ranks, model=SBC_RUN, chunk=SBC_CHUNKS
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
                "models": list(validation_scenario_models(VALIDATION, name)),
            }
            for name in VALIDATION_SCENARIOS
        },
        summary={**SUMMARY, "decision_prob": config["summary"]["decision_prob"]},
        sampling=VALIDATION["sampling"],
        kept_draws=SBC["kept_draws"],
    script:
        "../scripts/summarise_validation.py"
