# Configuration checks and helpers shared by every stage.

from pathlib import Path

from snakemake.utils import validate

validate(config, schema="../schemas/config.schema.yaml")


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
GROWTH_MODELS = list(config["growth"]["models"])
if config["growth"]["reported_model"] not in GROWTH_MODELS:
    raise ValueError(
        f"growth.reported_model '{config['growth']['reported_model']}' is not one of "
        f"growth.models: {', '.join(GROWTH_MODELS)}"
    )


def growth_model_spec(wildcards):
    """The config's specification of the growth model named by the wildcard."""
    return config["growth"]["models"][wildcards.model]
