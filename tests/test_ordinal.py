"""The item-level ordinal growth model: its data, its density and its WAI-scale estimands."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

from alliance.design import ARMS, time_code
from alliance.ordinal import (
    assessment_totals,
    build_ordinal_growth_model,
    item_data,
    ordinal_marginal_means,
)

INSTRUMENT = {
    "months": [3, 6, 12],
    "n_items": 3,
    "response_min": 1,
    "response_max": 4,
}
PRIORS = {
    "level_difference": {"sigma": 1.5},
    "change": {"sigma": 1.5},
    "patient_level_sd": {"sd": 1.5},
    "patient_change_sd": {"sd": 1.0},
    "therapist_sd": {"sd": 0.5},
    "assessment_sd": {"sd": 1.0},
    "cutpoints": {"centre": -1.0, "spacing": 1.0, "sigma": 2.0, "gap_log_sd": 0.5},
}


def small_items(seed: int = 0) -> pd.DataFrame:
    """Answers of six patients (two therapists, both arms) to three items at three months."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(6):
        for month in INSTRUMENT["months"]:
            for item in range(1, 4):
                if (p, month, item) == (5, 12, 2):
                    continue  # one unanswered item
                rows.append(
                    {
                        "patient_id": f"P{p}",
                        "therapist_id": f"T{p % 2}",
                        "centre": "c",
                        "arm": ARMS[p % 2],
                        "month": month,
                        "rater": "patient",
                        "item": item,
                        "answer": int(rng.integers(1, 5)),
                    }
                )
    return pd.DataFrame(rows)


def test_the_density_is_a_cumulative_probit_with_each_items_own_cutpoints():
    """At an arbitrary point, the model's log-likelihood of each answer equals
    log(Phi(c[j, y] - eta) - Phi(c[j, y - 1] - eta)) computed by hand, with item j's cutpoints
    (a mix-up of items or of the answer coding would change it)."""
    data = item_data(small_items(), "patient", INSTRUMENT)
    model = build_ordinal_growth_model(data, PRIORS, INSTRUMENT)
    rng = np.random.default_rng(3)
    cut = np.sort(rng.normal(0, 1.5, (3, 3)), axis=1)
    point = {
        "digital_level": 0.4,
        "change": np.array([0.7, -0.2]),
        "patient_level_sd": 0.8,
        "patient_change_sd": 0.5,
        "therapist_sd": 0.3,
        "assessment_sd": 0.6,
        "patient_level_z": rng.normal(size=6),
        "patient_change_z": rng.normal(size=6),
        "therapist_z": rng.normal(size=2),
        "assessment_z": rng.normal(size=18),
        "cutpoint_first": cut[:, 0],
        "cutpoint_gaps": np.diff(cut, axis=1),
    }
    transformed = model.initial_point()
    for variable in model.free_RVs:
        value = model.rvs_to_values[variable]
        transform = model.rvs_to_transforms[variable]
        raw = np.asarray(point[variable.name], dtype=float)
        transformed[value.name] = transform.forward(raw).eval() if transform is not None else raw
    logp = model.compile_fn(model.logp(vars=model.observed_RVs, sum=False))(transformed)[0]

    patient = data["patient_id"].str[1:].astype(int).to_numpy()
    therapist = patient % 2
    month = np.searchsorted(INSTRUMENT["months"], data["month"].to_numpy())
    treated = (data["arm"] == "digital").to_numpy()
    time = data["time"].to_numpy()
    eta = (
        0.4 * treated
        + np.where(treated, 0.7, -0.2) * time
        + 0.8 * point["patient_level_z"][patient]
        + 0.5 * point["patient_change_z"][patient] * time
        + 0.3 * point["therapist_z"][therapist]
        + 0.6 * point["assessment_z"][patient * 3 + month]
    )
    bounds = np.column_stack([np.full(3, -np.inf), cut, np.full(3, np.inf)])
    item = data["item"].to_numpy() - 1
    answer = data["answer"].to_numpy()
    expected = np.log(
        stats.norm.cdf(bounds[item, answer] - eta) - stats.norm.cdf(bounds[item, answer - 1] - eta)
    )
    assert np.allclose(logp, expected, atol=1e-8)
    assert len(data) == 6 * 3 * 3 - 1
    # The model's answers are categories 0 .. K - 1.
    assert set(model["answer"].get_value()) == {0, 1, 2, 3}


def test_the_marginal_mean_integrates_the_effects_out_as_simulation_does():
    """The closed-form expected mean item score equals the mean of answers simulated from the
    model's own generating process (latent mean, normal effects, item noise, cutpoints)."""
    rng = np.random.default_rng(11)
    instrument = {**INSTRUMENT, "n_items": 3}
    cut = np.array([[-2.0, -0.8, 0.6], [-1.5, -0.2, 1.4], [-2.5, -1.0, 0.1]])
    values = {
        "digital_level": -0.5,
        "change": [0.8, 0.1],
        "patient_level_sd": 0.9,
        "patient_change_sd": 0.6,
        "therapist_sd": 0.3,
        "assessment_sd": 0.5,
    }
    posterior = xr.Dataset(
        {
            name: xr.DataArray(
                np.reshape(value, (1, 1, *np.shape(value))),
                dims=("chain", "draw", *(("arm",) if np.ndim(value) else ())),
            )
            for name, value in values.items()
        }
    ).assign_coords(arm=list(ARMS))
    posterior["cutpoints"] = xr.DataArray(cut[None, None], dims=("chain", "draw", "item", "cut"))
    means = ordinal_marginal_means(posterior, instrument)

    n = 400_000
    for a, arm in enumerate(ARMS):
        for month in INSTRUMENT["months"]:
            t = time_code([month], INSTRUMENT["months"])[0]
            latent = (
                values["digital_level"] * (arm == "digital")
                + values["change"][a] * t
                + rng.normal(0, values["patient_level_sd"], n)
                + rng.normal(0, values["patient_change_sd"], n) * t
                + rng.normal(0, values["therapist_sd"], n)
                + rng.normal(0, values["assessment_sd"], n)
            )
            noisy = latent[:, None] + rng.normal(size=(n, 3))
            answers = 1 + (noisy[:, :, None] > cut[None]).sum(axis=2)
            simulated = answers.mean()
            closed = float(means.isel(chain=0, draw=0).sel(arm=arm, month=month))
            assert closed == pytest.approx(simulated, abs=0.005), (arm, month)


def test_assessment_totals_average_each_assessments_answers():
    answers = np.array([[0, 3, 3, 1], [3, 3, 3, 3]])  # two draws, four answers (codes 0..3)
    codes, totals = assessment_totals(answers, np.array([5, 5, 9, 9]), INSTRUMENT)
    assert list(codes) == [5, 9]
    assert np.allclose(totals, [[2.5, 3.0], [4.0, 4.0]])


def test_switching_the_ordinal_model_on_adds_its_fits_and_checks_to_the_run(tmp_path):
    """Off by default (it samples too slowly for the default run); switched on, each rater's
    ordinal fit, its checks and its estimand rows join the run, and the all-models table
    waits for them."""
    from conftest import make_workspace, run_snakemake

    workspace = make_workspace(tmp_path / "workflow")
    default = run_snakemake(workspace, "-n")
    assert default.returncode == 0 and "fit_ordinal_growth" not in default.stdout
    switched = run_snakemake(workspace, "-n", "--config", "growth={ordinal: {enabled: true}}")
    assert switched.returncode == 0, switched.stderr[-2000:]
    for rater in ("patient", "therapist"):
        for output in (
            f"models/growth/{rater}_ordinal_items.nc",
            f"results/growth/{rater}_ordinal_items/ordinal_checks.csv",
            f"results/growth/{rater}_ordinal_items/estimands.csv",
        ):
            assert output in switched.stdout, output


def test_prior_draws_have_ordered_cutpoints_and_answers_in_range():
    """The cutpoints are ordered by construction, so draws from the prior (the prior check and
    the estimands' prior columns) are draws from the model's own prior."""
    import pymc as pm

    data = item_data(small_items(), "patient", INSTRUMENT)
    model = build_ordinal_growth_model(data, PRIORS, INSTRUMENT)
    with model:
        prior = pm.sample_prior_predictive(draws=200, random_seed=1)
    cut = prior["prior"]["cutpoints"].to_numpy()
    assert cut.shape[-2:] == (3, 3) and (np.diff(cut, axis=-1) > 0).all()
    answers = prior["prior_predictive"]["answer_obs"].to_numpy()
    assert answers.min() >= 0 and answers.max() <= 3 and len(np.unique(answers)) == 4


def test_the_log_probability_of_an_answer_stays_finite_far_in_the_tails():
    """An answer far from the latent mean (a warm-up state) has a finite log-probability and
    gradient, equal to scipy's (to the precision of PyMC's normal log-CDF) where that is
    finite."""
    import pytensor
    import pytensor.tensor as pt

    from alliance.ordinal import ordered_probit_logp

    value = pt.lvector("value")
    eta = pt.dvector("eta")
    cut = pt.dmatrix("cut")
    logp = ordered_probit_logp(value, eta, cut)
    gradient = pt.grad(logp.sum(), eta)
    compute = pytensor.function([value, eta, cut], [logp, gradient])
    cuts = np.tile([-1.0, 0.0, 1.0], (4, 1))
    answers = np.array([0, 3, 1, 3])
    etas = np.array([60.0, -60.0, 0.3, 2.0])
    values, gradients = compute(answers, etas, cuts)
    assert np.isfinite(values).all() and np.isfinite(gradients).all()
    assert values[0] < -1000 and values[1] < -1000  # far out, but finite
    expected = np.log(stats.norm.cdf(0.0 - 0.3) - stats.norm.cdf(-1.0 - 0.3))
    assert values[2] == pytest.approx(expected, rel=1e-7)
    assert values[3] == pytest.approx(stats.norm.logsf(1.0 - 2.0), rel=1e-7)


#: A twin with a strong ceiling: patients' mean item scores near 6.3 to 6.6 (60% of answers at 7),
#: the digital arm rising, PTAU flat; monotone dropout at random given the previous rating and
#: steep in it (a low rating makes the next one much more likely to be missing), 70% missing
#: by month 12. The missing ratings are low ones, whose prediction needs the ceiling right.
STRONG_CEILING = {
    "n_patients": 184,
    "intercept": {"patient": {"ptau": 6.8, "digital": 6.4}},
    "change": {"patient": {"ptau": 0.0, "digital": 0.6}},
    "truth_population": 20000,
    "dropout_pattern": "monotone",
    "dropout_mechanism": "mar",
    "dropout_strength": 4.0,
    "missing_assessment": {
        "digital": {3: 0.25, 6: 0.4, 12: 0.7},
        "ptau": {3: 0.25, 6: 0.4, 12: 0.7},
    },
}


def contrast_intervals(draws: xr.Dataset, truth: pd.DataFrame) -> pd.DataFrame:
    """Posterior mean and 95% interval of each contrast of ``truth`` (arm differences by month
    and the change difference), beside its true value."""
    rows = []
    for row in truth.itertuples():
        values = draws[row.estimand]
        if row.estimand == "arm_difference":
            values = values.sel(month=int(row.month))
        values = values.stack(sample=("chain", "draw")).to_numpy()
        low, high = np.quantile(values, [0.025, 0.975])
        rows.append(
            {"estimand": row.estimand, "month": row.month, "truth": row.value,
             "mean": values.mean(), "low": low, "high": high}
        )  # fmt: skip
    table = pd.DataFrame(rows)
    table["covered"] = (table["low"] <= table["truth"]) & (table["truth"] <= table["high"])
    table["bias"] = table["mean"] - table["truth"]
    return table


@pytest.mark.slow
def test_with_a_strong_ceiling_the_ordinal_model_covers_where_the_gaussian_is_biased():
    """Issue 16's acceptance test, on the patient rating of a twin generated item by item with a
    strong ceiling: every contrast's 95% interval of the ordinal model covers the truth, while the
    Gaussian model of the totals (the reported `linear`) misses at least one and is further from
    the truth on average. The twin's items are latent scores plus item noise, rounded and
    clipped at 7 (not the model's probit), and it has straight-liners at the top."""
    from alliance.growth import growth_data, growth_estimands
    from alliance.ordinal import ordinal_estimands
    from alliance.refit import CompiledModel, growth_refit_model, growth_structure
    from alliance.seeds import rng_for
    from alliance.settings import deep_update, load_config
    from alliance.twin import true_estimands
    from alliance.validation import simulate_tables

    config = load_config()
    config["synthetic_twin"] = deep_update(config["synthetic_twin"], STRONG_CEILING)
    instrument = config["instrument"]
    truth = pd.DataFrame(true_estimands(config["synthetic_twin"], instrument, rng_for(1, "t")))
    truth = truth[
        (truth["aim"] == "a")
        & (truth["rater"] == "patient")
        & (truth["estimand"] != "marginal_mean")
    ]
    tables = simulate_tables(config, 2)
    items = item_data(tables["wai_items"], "patient", instrument)
    assert (items["answer"] == 7).mean() > 0.5  # the ceiling is strong
    sampling = {"chains": 2, "draws": 300, "tune": 400, "target_accept": 0.9}
    ordinal = CompiledModel(
        build_ordinal_growth_model(items, config["growth"]["ordinal"]["priors"], instrument)
    )
    ordinal_fit = ordinal.fit({}, sampling, seed=1)
    assert int(ordinal_fit["sample_stats"]["diverging"].sum()) == 0
    ordinal_table = contrast_intervals(ordinal_estimands(ordinal_fit, instrument), truth)

    totals = growth_data(tables["alliance"], "patient", instrument)
    spec = config["growth"]["models"]["linear"]
    structure = growth_structure(
        totals, spec, config["growth"]["priors"],
        sorted(totals["patient_id"].unique()), sorted(totals["therapist_id"].unique()), 7.0,
    )  # fmt: skip
    gaussian = CompiledModel(growth_refit_model(structure, totals))
    gaussian_fit = gaussian.fit({}, {**sampling, "draws": 500, "tune": 500}, seed=1)
    gaussian_draws = growth_estimands(structure.reference, gaussian_fit, spec, instrument)
    gaussian_table = contrast_intervals(gaussian_draws, truth)

    assert len(ordinal_table) == 4
    assert ordinal_table["covered"].all(), ordinal_table
    assert not gaussian_table["covered"].all(), gaussian_table
    assert ordinal_table["bias"].abs().mean() < gaussian_table["bias"].abs().mean()
