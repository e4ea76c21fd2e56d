"""Snakemake adapter: leave-patient-out K-fold cross-validation of one growth model for each rater
(alliance.cross_validation), the model compiled once for both; writes each patient's fold and log
predictive density, one file per rater."""

from alliance.runtime import start_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = start_job(smk)

import pandas as pd

from alliance.cross_validation import compiled_growth_model, kfold_growth, patient_folds
from alliance.design import RATERS
from alliance.growth import growth_data
from alliance.refit import ceiling_capacity, trial_levels
from alliance.seeds import derive_seed, job_seeds

settings = smk.params.cross_validation
instrument = smk.params.instrument
upper = float(instrument["response_max"])
alliance = pd.read_csv(smk.input.alliance)
compiled = None
for rater in RATERS:
    data = growth_data(alliance, rater, instrument)
    if compiled is None:  # indexed by the trial's patients and therapists: serves both raters
        compiled = compiled_growth_model(
            data,
            smk.params.spec,
            smk.params.priors,
            upper,
            **trial_levels(alliance),
            log=log,
            ceiling_capacity=ceiling_capacity(alliance, upper),
        )
    # The same folds for every model of a rater (the seed does not depend on the model), so that
    # the models' predictive densities pair patient by patient.
    folds = patient_folds(data, settings["folds"], derive_seed(smk.params.seed, "folds", rater))
    table = kfold_growth(
        data,
        compiled,
        folds,
        {**settings, "target_accept": smk.params.target_accept},
        # Each rater's seeds as when each rater had its own job.
        job_seeds(smk.params.seed, smk.rule, {"rater": rater, "model": smk.wildcards.model}),
        log,
    )
    table.to_csv(smk.output[f"kfold_{rater}"], index=False)
    log.info(
        "%s rating: ELPD (%d folds) %.1f over %d patients",
        rater,
        settings["folds"],
        table["elpd"].sum(),
        len(table),
    )
