"""Snakemake adapter: leave-patient-out K-fold cross-validation of one growth model for one rater
(alliance.cross_validation); writes each patient's fold and log predictive density."""

from alliance.runtime import start_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = start_job(smk)

import pandas as pd

from alliance.cross_validation import kfold_growth, patient_folds
from alliance.growth import growth_data
from alliance.seeds import derive_seed, job_seeds

settings = smk.params.cross_validation
instrument = smk.params.instrument
data = growth_data(pd.read_csv(smk.input.alliance), smk.wildcards.rater, instrument)
# The same folds for every model of a rater (the seed does not depend on the model), so that
# the models' predictive densities pair patient by patient.
folds = patient_folds(
    data, settings["folds"], derive_seed(smk.params.seed, "folds", smk.wildcards.rater)
)
table = kfold_growth(
    data,
    smk.params.spec,
    smk.params.priors,
    float(instrument["response_max"]),
    folds,
    {**settings, "target_accept": smk.params.target_accept},
    job_seeds(smk.params.seed, smk.rule, smk.wildcards),
    log,
)
table.to_csv(smk.output.kfold, index=False)
log.info(
    "ELPD (%d folds): %.1f over %d patients", settings["folds"], table["elpd"].sum(), len(table)
)
