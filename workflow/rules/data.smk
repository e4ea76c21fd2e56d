# Stage 1: the data. Synthetic twin (when no raw data are configured), validation and cleaning,
# descriptives.


rule synthetic_twin:
    output:
        patients="data/synthetic/patients.csv",
        wai="data/synthetic/wai.csv",
        digital="data/synthetic/digital.csv",
        truth="data/synthetic/true_parameters.json",
    log:
        "logs/synthetic_twin.log",
    benchmark:
        "logs/benchmarks/synthetic_twin.tsv"
    conda:
        CONDA_ENV
    params:
        synthetic_twin=config["synthetic_twin"],
        instrument=config["instrument"],
        seed=config["seed"],
    script:
        "../scripts/generate_twin.py"


rule clean_data:
    input:
        unpack(input_data_files),
    output:
        alliance="data/processed/alliance.csv",
        wai_items="data/processed/wai_items.csv",
        digital_covariates="data/processed/digital_covariates.csv",
        data_dictionary="data/processed/data_dictionary.csv",
        input_summary="data/processed/input_summary.json",
    log:
        "logs/clean_data.log",
    benchmark:
        "logs/benchmarks/clean_data.tsv"
    conda:
        CONDA_ENV
    params:
        instrument=config["instrument"],
        input=config["input"],
        synthetic=uses_synthetic_twin(),
    script:
        "../scripts/clean_data.py"


rule descriptives:
    input:
        alliance=rules.clean_data.output.alliance,
    output:
        flow=report(
            "results/tables/patient_flow.csv",
            caption="../../report/captions/patient_flow.rst",
            category="1. Data",
        ),
        alliance_summary=report(
            "results/tables/alliance_descriptives.csv",
            caption="../../report/captions/alliance_descriptives.rst",
            category="1. Data",
        ),
        trajectories=report(
            "results/figures/trajectories.png",
            caption="../../report/captions/trajectories.rst",
            category="1. Data",
        ),
    log:
        "logs/descriptives.log",
    benchmark:
        "logs/benchmarks/descriptives.tsv"
    conda:
        CONDA_ENV
    params:
        instrument=config["instrument"],
    script:
        "../scripts/descriptives.py"
