"""One function per model family that builds and fits the model from the analysis tables: the fit
jobs of the workflow (``workflow/scripts/fit_*.py``) fit every model through these. The validation
study (:mod:`alliance.validation`) refits the same models compiled once (:mod:`alliance.refit`):
the agreement and association models from the same builders, the growth models in their PyMC form
with the Bambi model's log density, which the workflow's growth fits sample too (one compilation
for both raters).

Each returns the fitted tree (:func:`alliance.sampling.fit_with_safety_net`) and the labels its
NetCDF file carries (``aim``, ``model``, ``rater``, ``label``; see
:func:`alliance.sampling.save_fit`). ``settings`` is what a fit job's params hold: ``priors``,
``instrument``, ``sampling``, ``convergence`` and ``prior_draws``; ``seed(*step)`` is the job's
seed function (:func:`alliance.seeds.job_seeds`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pandas as pd

from alliance.design import RATERS
from alliance.sampling import fit_with_safety_net, sample_bambi_prior, sample_pymc_prior

Seed = Callable[..., int]


def fit_settings(config: Mapping, section: str) -> dict:
    """What a fit of the models of config section ``section`` reads (a fit job's params,
    workflow/rules/common.smk): its priors, the instrument, its MCMC size
    (:func:`alliance.sampling.model_sampling`), the convergence checks of its safety net and the
    number of prior draws."""
    from alliance.diagnostics import convergence_settings
    from alliance.sampling import model_sampling

    return {
        "priors": config[section]["priors"],
        "instrument": config["instrument"],
        "sampling": model_sampling(config, section),
        "convergence": convergence_settings(config["diagnostics"]),
        "prior_draws": config["predictive"]["prior_draws"],
    }


def _fit(model, estimands_of, prior, settings: Mapping, seed: Seed, label: str, log, **options):
    return fit_with_safety_net(
        model,
        estimands_of,
        prior,
        settings["sampling"],
        settings["convergence"],
        seed,
        label,
        log,
        **options,
    )


def fit_growth_models(
    alliance: pd.DataFrame,
    name: str,
    spec: Mapping,
    settings: Mapping,
    seeds: Mapping[str, Seed],
    log=None,
) -> dict:
    """Aim (a): growth model ``name`` (config ``growth.models``) of each rater's WAI totals, the
    model compiled once for both raters; ``seeds``: each rater's seed function. Returns
    rater -> (tree, labels).

    Each rater's model is built with Bambi (its formula, priors, prior draws and predictions),
    and sampled in its PyMC form (:func:`alliance.refit.compile_growth_model`: a Gaussian model
    with the patient effects integrated out and drawn afterwards, the censored one in full; the
    same posterior, tests) with the data as inputs, so that one compilation serves both raters
    and every attempt of the safety net. Its group effects are indexed by the trial's randomised
    patients and therapists, the same for both raters: a patient without a rating by one rater
    has effects drawn from their prior in that rater's fit, which leaves the other parameters'
    posterior unchanged. With a sampler other than nutpie (``sampling.sampler``) each rater's
    Bambi model is fitted by Bambi, compiled for each fit.
    """
    from alliance.growth import attach_groups, growth_data, growth_estimands
    from alliance.refit import (
        ceiling_capacity,
        compile_growth_model,
        growth_structure,
        trial_levels,
    )

    instrument = settings["instrument"]
    levels = trial_levels(alliance)
    # A censored model compiled once for both raters holds either rater's totals at the ceiling.
    capacity = ceiling_capacity(alliance, instrument["response_max"])
    by_nutpie = settings["sampling"]["sampler"] == "nutpie"
    compiled = None
    fits = {}
    for rater in RATERS:
        data = growth_data(alliance, rater, instrument)
        structure = growth_structure(
            data,
            spec,
            settings["priors"],
            **levels,
            upper=instrument["response_max"],
            ceiling_capacity=capacity,
        )
        if compiled is None and by_nutpie:
            compiled = compile_growth_model(structure, data, log)
        if log is not None:
            log.info(
                "fitting %s for the %s rating (%d assessments): %s",
                name,
                rater,
                len(data),
                structure.reference,
            )
        label = f"growth_{rater}_{name}"
        seed = seeds[rater]
        idata = _fit(
            structure.reference,
            lambda fit, structure=structure: growth_estimands(
                structure.reference, fit, spec, instrument
            ),
            sample_bambi_prior(structure.reference, settings["prior_draws"], seed("prior")),
            settings,
            seed,
            label,
            log,
            compiled=compiled,
            inputs=structure.inputs(data) if by_nutpie else None,
        )
        attach_groups(idata, data)
        labels = {"aim": "a", "model": name, "rater": rater, "label": label}
        fits[rater] = (idata, {**labels, "formula": spec["formula"]})
    return fits


def ordinal_fit_settings(config: Mapping) -> dict:
    """What a fit of the ordinal model reads: a growth fit's settings with the ordinal model's
    priors and MCMC size (``growth.ordinal``: its own draws multiplier and thinning, not the
    totals models')."""
    from alliance.sampling import model_sampling

    return {
        **fit_settings(config, "growth"),
        "priors": config["growth"]["ordinal"]["priors"],
        "sampling": model_sampling(config, "growth.ordinal"),
    }


def fit_ordinal_growth_model(
    items: pd.DataFrame,
    rater: str,
    settings: Mapping,
    seed: Seed,
    log=None,
    cores: int = 1,
    predictive_draws: int = 400,
):
    """Aim (a) at the item level: the ordinal growth model (:mod:`alliance.ordinal`) of one
    rater's item answers (analysis table ``wai_items``). ``settings["priors"]``: the config's
    ``growth.ordinal.priors``. Its pointwise log-likelihood is not kept (it is not compared with
    the totals models by LOO: its data are the items), only its sum per patient, for the prior
    sensitivity check; its answers are replicated from
    ``predictive_draws`` posterior draws, for the predictive checks of answers and totals."""
    from alliance.ordinal import (
        GROUP_EFFECTS,
        ORDINAL_MODEL,
        build_ordinal_growth_model,
        item_data,
        ordinal_estimands,
        patient_log_likelihood,
    )

    instrument = settings["instrument"]
    data = item_data(items, rater, instrument)
    model = build_ordinal_growth_model(data, settings["priors"], instrument)
    if log is not None:
        log.info(
            "fitting the ordinal item model for the %s rating: %d answers of %d patients",
            rater,
            len(data),
            data["patient_id"].nunique(),
        )
    label = f"growth_{rater}_{ORDINAL_MODEL}"
    population = ["digital_level", "change", "cutpoints", *(sd for sd, _, _ in GROUP_EFFECTS)]
    idata = _fit(
        model,
        lambda fit: ordinal_estimands(fit, instrument),
        sample_pymc_prior(
            model, settings["prior_draws"], seed("prior"), var_names=[*population, "answer_obs"]
        ),
        settings,
        seed,
        label,
        log,
        cores=cores,
        predicted=["answer_obs"],
        log_likelihood=False,
        predictive_draws=predictive_draws,
    )
    idata["log_likelihood"] = patient_log_likelihood(model, idata["posterior"].to_dataset())
    labels = {"aim": "a", "model": ORDINAL_MODEL, "rater": rater, "label": label}
    return idata, labels


def fit_agreement_model(
    alliance: pd.DataFrame, settings: Mapping, seed: Seed, log=None, cores: int = 1
):
    """Aim (b): the bivariate (patient x therapist) growth model of agreement."""
    from alliance.agreement import (
        QUANTITY_PARAMETERS,
        MarginalAgreementModel,
        agreement_data,
        agreement_estimands,
        build_agreement_model,
    )

    months = list(settings["instrument"]["months"])
    pairs = agreement_data(alliance, settings["instrument"])
    # Sampled by nutpie with the patient effects integrated out (the same posterior, tests);
    # with another sampler, in full.
    compiled = None
    if settings["sampling"]["sampler"] == "nutpie":
        compiled = MarginalAgreementModel(pairs, settings["priors"], log=log)
        model = compiled.model
    else:
        model = build_agreement_model(pairs, settings["priors"])
    if log is not None:
        log.info(
            "fitting the bivariate agreement model: %d assessments, %d with both ratings",
            len(pairs),
            int(pairs[list(RATERS)].notna().all(axis=1).sum()),
        )
    idata = _fit(
        model,
        lambda fit: agreement_estimands(fit["posterior"].to_dataset(), months),
        # The prior check shows the agreement quantities the priors imply: only their parameters
        # are drawn.
        sample_pymc_prior(
            model, settings["prior_draws"], seed("prior"), var_names=list(QUANTITY_PARAMETERS)
        ),
        settings,
        seed,
        "agreement_bivariate",
        log,
        cores=cores,
        predicted=[f"{rater}_rating" for rater in RATERS],
        compiled=compiled,
    )
    return idata, {"aim": "b", "model": "bivariate", "label": "agreement_bivariate"}


def fit_truth_and_bias_model(
    alliance: pd.DataFrame, settings: Mapping, seed: Seed, log=None, cores: int = 1
):
    """Aim (b): the truth-and-bias model of the therapist's rating."""
    from alliance.agreement import (
        agreement_data,
        build_truth_and_bias_model,
        truth_and_bias_data,
        truth_and_bias_estimands,
    )
    from alliance.growth import attach_groups

    data = truth_and_bias_data(agreement_data(alliance, settings["instrument"]))
    model = build_truth_and_bias_model(data, settings["priors"])
    if log is not None:
        log.info("fitting the truth-and-bias model on %d complete pairs: %s", len(data), model)
    idata = _fit(
        model,
        truth_and_bias_estimands,
        sample_bambi_prior(model, settings["prior_draws"], seed("prior")),
        settings,
        seed,
        "agreement_truth_and_bias",
        log,
        cores=cores,
    )
    attach_groups(idata, data)
    return idata, {"aim": "b", "model": "truth_and_bias", "label": "agreement_truth_and_bias"}


def fit_association_model(
    alliance: pd.DataFrame,
    covariates: pd.DataFrame,
    rater: str,
    variant: str,
    settings: Mapping,
    seed: Seed,
    log=None,
    cores: int = 1,
):
    """Aim (c): one association model of one rater in the digital arm; ``variant`` is ``pooled``
    (the contract's association rows) or ``within_between`` (the within/between-patient
    decomposition of the same predictors)."""
    from alliance.associations import (
        association_data,
        association_estimands,
        build_association_model,
        missing_summary,
        prior_variables,
    )

    data, scale = association_data(alliance, covariates, rater)
    if log is not None:
        log.info(
            "%s rating, digital arm, %s model: %d assessments; missing predictors:\n%s",
            rater,
            variant,
            len(data),
            missing_summary(data, rater).to_string(index=False),
        )
    model = build_association_model(
        data,
        scale,
        rater,
        settings["priors"],
        list(settings["instrument"]["months"]),
        decomposition=variant == "within_between",
    )
    label = f"association_{rater}_{variant}"
    idata = _fit(
        model,
        lambda fit: association_estimands(fit["posterior"].to_dataset()),
        # Only the outcome (for the prior predictive check; the predictors it rests on are drawn
        # from their prior too) and the coefficients (prior-to-posterior contraction) are drawn.
        sample_pymc_prior(
            model, settings["prior_draws"], seed("prior"), var_names=prior_variables(model)
        ),
        settings,
        seed,
        label,
        log,
        cores=cores,
        predicted=["wai"],
    )
    return idata, {"aim": "c", "model": variant, "rater": rater, "label": label}
