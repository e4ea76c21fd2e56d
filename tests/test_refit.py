"""Compile once, fit many (alliance.refit): a model whose data are inputs is the same model on
whatever data are swapped in, and the growth models' PyMC form is the Bambi model."""

import numpy as np
import pytest

from alliance.agreement import agreement_data, agreement_inputs, build_agreement_model
from alliance.associations import association_data, association_inputs, build_association_model
from alliance.growth import growth_data
from alliance.refit import codes, growth_refit_model, growth_structure
from alliance.validation import scenario_config, simulate_tables

MONTHS = [3, 6, 12]


@pytest.fixture(scope="module")
def trials(config):
    """Two simulated trials of the same patients and therapists, with different missing cells."""
    settings = scenario_config(config, "dropout_at_random")
    first, second = (simulate_tables(settings, seed) for seed in (1, 2))
    alliance = first["alliance"]
    levels = {
        "patients": sorted(alliance["patient_id"].unique()),
        "therapists": sorted(alliance["therapist_id"].unique()),
    }
    return first, second, levels


def logp_at(model, point):
    return float(model.compile_logp(mode="FAST_COMPILE")(point))


def random_point(model, seed=1):
    rng = np.random.default_rng(seed)
    return {
        name: value + rng.normal(0, 0.3, np.shape(value))
        for name, value in model.initial_point().items()
    }


def swapped(model, inputs):
    """``model`` with its data inputs replaced (as nutpie's ``with_data`` replaces them)."""
    import pymc as pm

    with model:
        pm.set_data(inputs)
    return model


@pytest.mark.parametrize("name", ["linear", "linear_arm_sd", "linear_censored", "monthly"])
def test_the_growth_models_pymc_form_has_the_bambi_models_log_density(config, trials, name):
    first, _, _ = trials
    spec = config["growth"]["models"][name]
    data = growth_data(first["alliance"], "patient", config["instrument"])
    reference = growth_structure(data, spec, config["growth"]["priors"], [], [], 7.0)
    # Indexed by the patients and therapists Bambi indexes (in its order), the parameters agree.
    structure = growth_structure(
        data,
        spec,
        config["growth"]["priors"],
        reference.coords_of("patient_id__factor_dim"),
        reference.coords_of("therapist_id__factor_dim"),
        config["instrument"]["response_max"],
    )
    bambi = structure.reference.backend.model
    refit = growth_refit_model(structure, data)
    point = random_point(bambi)
    assert sorted(point) == sorted(refit.initial_point())
    assert logp_at(refit, point) == pytest.approx(logp_at(bambi, point), rel=1e-10)
    # Its censored likelihood censors the totals at the ceiling, as Bambi's does.
    if name == "linear_censored":
        assert (data["wai_total"] >= 7).any()


@pytest.mark.parametrize("rater", ["patient", "therapist"])
def test_a_growth_model_refitted_on_another_trial_is_that_trials_model(config, trials, rater):
    first, second, levels = trials
    spec, priors = config["growth"]["models"]["linear"], config["growth"]["priors"]
    data = [growth_data(t["alliance"], rater, config["instrument"]) for t in (first, second)]
    assert len(data[0]) != len(data[1])  # the number of observations differs
    structure = growth_structure(data[0], spec, priors, **levels, upper=7.0)
    built_on_second = growth_refit_model(structure, data[1])
    refitted = swapped(growth_refit_model(structure, data[0]), structure.inputs(data[1]))
    point = random_point(built_on_second)
    assert logp_at(refitted, point) == pytest.approx(logp_at(built_on_second, point), rel=1e-12)
    assert logp_at(growth_refit_model(structure, data[0]), point) != pytest.approx(
        logp_at(built_on_second, point)
    )


def test_the_agreement_model_refitted_on_another_trial_is_that_trials_model(config, trials):
    first, second, levels = trials
    pairs = [agreement_data(t["alliance"], config["instrument"]) for t in (first, second)]
    priors = config["agreement"]["priors"]
    ordered = [levels["patients"], levels["therapists"]]
    built_on_second = build_agreement_model(pairs[1], priors, *ordered)
    refitted = swapped(
        build_agreement_model(pairs[0], priors, *ordered), agreement_inputs(pairs[1], *ordered)
    )
    point = random_point(built_on_second)
    assert logp_at(refitted, point) == pytest.approx(logp_at(built_on_second, point), rel=1e-12)


@pytest.mark.parametrize("rater", ["patient", "therapist"])
def test_the_association_model_refitted_on_another_trial_is_that_trials_model(
    config, trials, rater
):
    first, second, levels = trials
    tables = [association_data(t["alliance"], t["digital_covariates"], rater) for t in trials[:2]]
    priors = config["association"]["priors"]

    def build(data, scale):
        return build_association_model(
            data, scale, rater, priors, MONTHS, **levels, full_capacity=True
        )

    built_on_second = build(*tables[1])
    inputs, capacity = association_inputs(*tables[1], rater, MONTHS, **levels, full_capacity=True)
    # The slots are one per possible cell, whatever the trial: the compiled shapes hold.
    assert (
        capacity == association_inputs(*tables[0], rater, MONTHS, **levels, full_capacity=True)[1]
    )
    assert sum(len(inputs[f"{t}_missing_cells"]) for t in capacity) > 0
    refitted = swapped(build(*tables[0]), inputs)
    point = random_point(built_on_second)
    assert logp_at(refitted, point) == pytest.approx(logp_at(built_on_second, point), rel=1e-12)


def test_codes_refuse_a_level_the_compiled_model_does_not_have():
    assert codes(np.array(["b", "a"]), ["a", "b"]).tolist() == [1, 0]
    with pytest.raises(ValueError, match="outside the compiled model's levels: c"):
        codes(np.array(["a", "c"]), ["a", "b"])


@pytest.mark.parametrize("name", ["linear", "linear_censored"])
def test_both_raters_growth_fits_share_one_compiled_model_and_keep_the_bambi_fits_layout(
    config, trials, monkeypatch, name
):
    """The fit job of a growth model compiles it once for both raters and every attempt of the
    safety net (here two per rater, forced by an unreachable ESS threshold); each rater's tree
    has what a Bambi fit gives the check jobs: group effects (offset x SD, indexed by every
    randomised patient), no offsets, and the log-likelihood, replicates and observed totals of
    that rater's assessments, on ``__obs__``. The log-likelihood is the Gaussian density of each
    total at each draw's mean (fixed part plus the patient's and therapist's effects); for the
    censored model, a total at the ceiling has the probability of being at or above it, and no
    replicate exceeds it. (``linear`` is sampled with its patient effects integrated out and
    drawn after sampling, ``linear_censored`` with them sampled.)"""
    import nutpie
    from scipy import stats

    import alliance.nutpie_compile
    from alliance.model_fits import fit_growth_models, fit_settings
    from alliance.seeds import job_seeds

    calls = {"compile_pymc_model": 0, "sample": 0}
    for module, function in [(alliance.nutpie_compile, "compile_pymc_model"), (nutpie, "sample")]:
        original = getattr(module, function)

        def counted(*args, _original=original, _name=function, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(module, function, counted)
    first, _, levels = trials
    settings = fit_settings(config, "growth")
    small = {"chains": 2, "draws": 100, "tune": 200, "thin": 1, "max_draws": 200}
    settings = {**settings, "sampling": {**settings["sampling"], **small}, "prior_draws": 50}
    settings["convergence"] = {**settings["convergence"], "min_ess": 10**9}
    spec = config["growth"]["models"][name]
    seeds = {
        rater: job_seeds(1, "fit_growth", {"rater": rater}) for rater in ("patient", "therapist")
    }
    fits = fit_growth_models(first["alliance"], name, spec, settings, seeds)

    assert calls == {"compile_pymc_model": 1, "sample": 4}
    totals_at_ceiling = 0
    for rater, (tree, labels) in fits.items():
        assert labels["rater"] == rater and labels["label"] == f"growth_{rater}_{name}"
        assert tree.attrs["extensions"] == 1 and tree["posterior"].sizes["draw"] == 200
        data = growth_data(first["alliance"], rater, config["instrument"])
        posterior = tree["posterior"].to_dataset()
        assert not [name for name in posterior.data_vars if name.endswith("_offset")]
        effects = posterior["1|patient_id"]
        assert list(effects["patient_id__factor_dim"].values) == [
            str(patient) for patient in levels["patients"]
        ]
        observed = tree["observed_data"]["wai_total"].to_numpy()
        np.testing.assert_array_equal(observed, data["wai_total"].to_numpy())
        assert tree["log_likelihood"]["wai_total"].dims == ("chain", "draw", "__obs__")
        assert tree["posterior_predictive"]["wai_total"].sizes["__obs__"] == len(data)
        draw = posterior.isel(chain=1, draw=7)
        patient = codes(data["patient_id"], levels["patients"])
        therapist = codes(data["therapist_id"], levels["therapists"])
        ptau = (data["arm"].astype(str) == "ptau").to_numpy(dtype=float)  # digital: reference
        time = data["time"].to_numpy()
        mean = (
            float(draw["Intercept"])
            + float(draw["arm"].squeeze()) * ptau
            + float(draw["time"]) * time
            + float(draw["arm:time"].squeeze()) * ptau * time
            + draw["1|patient_id"].to_numpy()[patient]
            + draw["time|patient_id"].to_numpy()[patient] * time
            + draw["1|therapist_id"].to_numpy()[therapist]
        )
        sigma = float(draw["sigma"])
        expected = stats.norm.logpdf(observed, mean, sigma)
        if name == "linear_censored":
            at_ceiling = observed >= 7.0
            totals_at_ceiling += int(at_ceiling.sum())
            expected[at_ceiling] = stats.norm.logsf(7.0, mean[at_ceiling], sigma)
            assert float(tree["posterior_predictive"]["wai_total"].max()) <= 7.0
        stored = tree["log_likelihood"]["wai_total"].isel(chain=1, draw=7).to_numpy()
        # (PyMC and SciPy compute the normal log-survival differently: agree to 1e-8 relative.)
        np.testing.assert_allclose(stored, expected, rtol=1e-6)
    assert name != "linear_censored" or totals_at_ceiling > 0
    assert not np.array_equal(
        fits["patient"][0]["observed_data"]["wai_total"].to_numpy()[:20],
        fits["therapist"][0]["observed_data"]["wai_total"].to_numpy()[:20],
    )


INTERCEPTS_ONLY = "wai_total ~ arm * time + (1 | patient_id) + (1 | therapist_id)"


@pytest.mark.parametrize("name", ["linear", "linear_arm_sd", "monthly", "intercepts_only"])
def test_the_marginal_growth_model_is_the_full_model_with_the_patient_effects_integrated_out(
    config, trials, name
):
    """The marginal form's log density at a point equals the full form's priors of the other
    parameters plus, per patient, the multivariate normal density of their totals with
    covariance Z D Z' + diag(sigma^2) (computed densely with SciPy); patients without a total
    add nothing."""
    import xarray as xr
    from scipy import stats

    from alliance.refit import (
        _growth_model,
        integrates_patient_effects,
        marginal_patient_log_density,
    )

    first, _, levels = trials
    models = config["growth"]["models"]
    spec = models.get(name, {**models["linear"], "formula": INTERCEPTS_ONLY})
    data = growth_data(first["alliance"], "therapist", config["instrument"])
    structure = growth_structure(
        data, spec, config["growth"]["priors"], **levels, upper=config["instrument"]["response_max"]
    )
    assert integrates_patient_effects(structure)
    patient_terms = [t for t in ("1|patient_id", "time|patient_id") if t in structure.group_terms]
    full = growth_refit_model(structure, data)
    marginal, _ = _growth_model(structure, data, True)
    point = random_point(full, seed=4)
    offsets = [f"{term}_offset" for term in patient_terms]
    marginal_point = {k: v for k, v in point.items() if k not in offsets}
    assert sorted(marginal_point) == sorted(marginal.initial_point())
    # The residuals and SDs at the point, from the full model with the patient effects at 0.
    at_zero = {**point, **{name: np.zeros(len(levels["patients"])) for name in offsets}}
    mean_of = full.compile_fn(
        full.replace_rvs_by_values(list(full["wai_total"].owner.inputs[-2:])),
        point_fn=True,
        mode="FAST_COMPILE",
    )
    mean, sigma = mean_of(at_zero)
    sigma = np.broadcast_to(sigma, mean.shape)
    sd = {term: float(np.exp(point[f"{term}_sigma_log__"])) for term in patient_terms}
    observed = data["wai_total"].to_numpy()
    patient = codes(data["patient_id"], levels["patients"])
    per_patient = np.zeros(len(levels["patients"]))
    for code in np.unique(patient):
        rows = patient == code
        z = np.column_stack([np.ones(rows.sum()), data["time"].to_numpy()[rows]])
        z = z[:, : len(patient_terms)]
        covariance = z @ np.diag([sd[t] ** 2 for t in patient_terms]) @ z.T + np.diag(
            sigma[rows] ** 2
        )
        per_patient[code] = stats.multivariate_normal.logpdf(observed[rows], mean[rows], covariance)
    expected = per_patient.sum()
    # The same per patient in NumPy (the cross-validation's held-out density), patients without
    # a total 0.
    draw = xr.Dataset(
        {f"{term}_sigma": (("chain", "draw"), [[value]]) for term, value in sd.items()},
        coords={"chain": [0], "draw": [0]},
    )
    numpy_density = marginal_patient_log_density(
        structure,
        structure.inputs(data),
        draw,
        (observed - mean)[None],
        (1 / sigma**2)[None],
    )
    np.testing.assert_allclose(numpy_density[0], per_patient, rtol=1e-10, atol=1e-12)
    others = [rv for rv in full.free_RVs if rv.name not in offsets]
    prior = float(
        full.compile_fn(full.logp(vars=others), point_fn=True, mode="FAST_COMPILE")(marginal_point)
    )
    assert logp_at(marginal, marginal_point) == pytest.approx(prior + expected, rel=1e-9)
    assert len(np.unique(patient)) < len(levels["patients"])  # some patients have no total


def test_the_censored_marginal_model_integrates_its_latent_totals_to_the_censored_likelihood(
    config, trials
):
    """The censored model's marginal form: with each latent total above the ceiling integrated
    out (numerically, patient by patient), its density at a point is the full model's other
    priors plus, per patient, the multivariate normal density of their totals below the ceiling
    times the probability that the total at the ceiling is at or above it given them (the
    censored likelihood with the patient effects integrated out, in closed form with SciPy); a
    latent slot that the data do not use has a standard normal density."""
    from scipy import integrate, stats

    from alliance.refit import LATENT_CEILING, _growth_model

    first, _, levels = trials
    upper = config["instrument"]["response_max"]
    data = growth_data(first["alliance"], "patient", config["instrument"])
    # At most one total at the ceiling per patient (one-dimensional integrals here).
    at_ceiling = data["wai_total"] >= upper
    repeated = data[at_ceiling].duplicated("patient_id").reindex(data.index, fill_value=False)
    data = data[~repeated].reset_index(drop=True)
    n_ceiling = int((data["wai_total"] >= upper).sum())
    assert 3 <= n_ceiling == data.loc[data["wai_total"] >= upper, "patient_id"].nunique()
    spec = config["growth"]["models"]["linear_censored"]
    structure = growth_structure(
        data,
        spec,
        config["growth"]["priors"],
        **levels,
        upper=upper,
        ceiling_capacity=n_ceiling + 2,
    )
    marginal, _ = _growth_model(structure, data, True)
    full = growth_refit_model(structure, data)
    point = random_point(marginal, seed=6)
    logp = marginal.compile_logp(mode="FAST_COMPILE")
    # Each total's mean (fixed part and therapist effect) and residual SD at the point, from the
    # Gaussian full model of the same formula (same parameters), patient effects at 0.
    gaussian = growth_refit_model(
        growth_structure(
            data,
            config["growth"]["models"]["linear"],
            config["growth"]["priors"],
            **levels,
            upper=upper,
        ),
        data,
    )
    mean_of = gaussian.compile_fn(
        gaussian.replace_rvs_by_values(list(gaussian["wai_total"].owner.inputs[-2:])),
        point_fn=True,
        mode="FAST_COMPILE",
    )
    offsets = [f"{term}_offset" for term in ("1|patient_id", "time|patient_id")]
    mean, sigma = mean_of(
        {
            **{k: v for k, v in point.items() if k != LATENT_CEILING},
            **{name: np.zeros(len(levels["patients"])) for name in offsets},
        }
    )
    sigma = np.broadcast_to(sigma, mean.shape)
    rows = np.flatnonzero(data["wai_total"].to_numpy() >= upper)
    latent = point[LATENT_CEILING]
    observed = data["wai_total"].to_numpy().copy()
    observed[rows] = upper + np.exp(latent[: len(rows)])
    terms = ["1|patient_id", "time|patient_id"]
    sd = {term: float(np.exp(point[f"{term}_sigma_log__"])) for term in terms}
    patient = codes(data["patient_id"], levels["patients"])
    expected = 0.0
    integrated = float(logp(point))
    for code in np.unique(patient):
        own = np.flatnonzero(patient == code)
        z = np.column_stack([np.ones(len(own)), data["time"].to_numpy()[own]])
        covariance = z @ np.diag([sd[t] ** 2 for t in terms]) @ z.T + np.diag(sigma[own] ** 2)
        censored = [k for k, row in enumerate(own) if row in rows]
        if not censored:
            expected += stats.multivariate_normal.logpdf(observed[own], mean[own], covariance)
            continue
        (c,) = censored
        rest = [k for k in range(len(own)) if k != c]
        below = mean[own][rest], covariance[np.ix_(rest, rest)]
        gain = covariance[c, rest] @ np.linalg.inv(below[1])
        conditional_mean = mean[own][c] + gain @ (
            data["wai_total"].to_numpy()[own][rest] - below[0]
        )
        conditional_sd = np.sqrt(covariance[c, c] - gain @ covariance[rest, c])
        expected += (
            stats.multivariate_normal.logpdf(
                data["wai_total"].to_numpy()[own][rest], below[0], below[1]
            )
            if rest
            else 0.0
        ) + stats.norm.logsf(upper, conditional_mean, conditional_sd)
        # The latent slot of this total, integrated over; the other values held at the point.
        slot = int(np.flatnonzero(rows == own[c])[0])

        def relative(value, slot=slot):
            varied = {**point, LATENT_CEILING: latent.copy()}
            varied[LATENT_CEILING][slot] = value
            return float(logp(varied)) - float(logp(point))

        mass, _ = integrate.quad(lambda v: np.exp(relative(v)), -30, 10, limit=200)
        integrated += np.log(mass)
    unused = latent[len(rows) :]
    assert len(unused) == 2
    others = [rv for rv in full.free_RVs if not rv.name.endswith("patient_id_offset")]
    prior = float(
        full.compile_fn(full.logp(vars=others), point_fn=True, mode="FAST_COMPILE")(
            {k: v for k, v in point.items() if k != LATENT_CEILING}
        )
    )
    unused_density = stats.norm.logpdf(unused).sum()
    assert integrated == pytest.approx(prior + expected + unused_density, rel=1e-7)


def test_a_censored_model_holds_the_trials_ceiling_totals_and_refuses_more(config, trials):
    """The capacity of a censored model compiled for both raters is the larger rater's number of
    totals at the ceiling; data with more (also a model that holds none) are refused."""
    from alliance.refit import ceiling_capacity, ceiling_inputs

    first, _, levels = trials
    alliance, upper = first["alliance"], config["instrument"]["response_max"]
    assessed = alliance[alliance["assessed"]]
    per_rater = (assessed["wai_total"] >= upper).groupby(assessed["rater"]).sum()
    assert ceiling_capacity(alliance, upper) == per_rater.max() > per_rater.min()
    data = growth_data(alliance, per_rater.idxmax(), config["instrument"])
    spec, priors = config["growth"]["models"]["linear_censored"], config["growth"]["priors"]
    for capacity in (int(per_rater.max()), int(per_rater.max()) + 3):
        structure = growth_structure(
            data, spec, priors, **levels, upper=upper, ceiling_capacity=capacity
        )
        inputs = ceiling_inputs(structure, structure.inputs(data))
        assert (
            inputs["ceiling_rows"].tolist() == np.flatnonzero(data["wai_total"] >= upper).tolist()
        )
        assert inputs["ceiling_slot_used"].tolist() == [1.0] * int(per_rater.max()) + [0.0] * (
            capacity - int(per_rater.max())
        )
    for capacity in (0, int(per_rater.max()) - 1):
        structure = growth_structure(
            data, spec, priors, **levels, upper=upper, ceiling_capacity=capacity
        )
        with pytest.raises(ValueError, match="totals at the ceiling"):
            ceiling_inputs(structure, structure.inputs(data))


def test_patient_effects_are_drawn_from_their_conditional_posterior(config, trials):
    """Given a draw of the other parameters, a patient's intercept and slope are normal with
    precision D^-1 + Z' W Z and mean (D^-1 + Z' W Z)^-1 Z' W r (dense linear algebra here): the
    mean and covariance of 20,000 conditional draws at one point match, for patients with three
    totals, one total, and none (the prior)."""
    import xarray as xr

    from alliance.refit import conditional_patient_offsets

    first, _, levels = trials
    spec = config["growth"]["models"]["linear_arm_sd"]
    data = growth_data(first["alliance"], "patient", config["instrument"])
    structure = growth_structure(data, spec, config["growth"]["priors"], **levels, upper=7.0)
    inputs = structure.inputs(data)
    rng = np.random.default_rng(5)
    n = len(data)
    residual = rng.normal(0, 0.8, n)
    precision = 1 / rng.uniform(0.3, 0.6, n) ** 2  # as by arm: one variance per observation
    sd = {"1|patient_id": 0.6, "time|patient_id": 0.3}
    draws = 20_000
    posterior = xr.Dataset(
        {
            f"{term}_sigma": (("chain", "draw"), np.full((1, draws), value))
            for term, value in sd.items()
        },
        coords={"chain": [0], "draw": np.arange(draws)},
    )
    offsets = conditional_patient_offsets(
        structure,
        inputs,
        posterior,
        np.tile(residual, (draws, 1)),
        np.tile(precision, (draws, 1)),
        np.random.default_rng(6),
    )
    effects = np.stack(
        [offsets[f"{term}_offset"].to_numpy()[0] * value for term, value in sd.items()], axis=-1
    )  # draw x patient x term
    code = inputs["patient_id_code"]
    counts = np.bincount(code, minlength=len(levels["patients"]))
    chosen = [int(np.flatnonzero(counts == k)[0]) for k in (3, 1, 0)]
    for patient in chosen:
        rows = code == patient
        z = np.column_stack([np.ones(rows.sum()), inputs["time_value"][rows]])
        w = np.diag(precision[rows])
        covariance = np.linalg.inv(np.diag([v**-2 for v in sd.values()]) + z.T @ w @ z)
        mean = covariance @ z.T @ w @ residual[rows]
        sample = effects[:, patient]
        standard_error = np.sqrt(np.diag(covariance) / draws)
        assert np.all(np.abs(sample.mean(axis=0) - mean) < 4 * standard_error)
        np.testing.assert_allclose(np.cov(sample.T), covariance, atol=0.03 * covariance.max())
