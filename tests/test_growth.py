"""Aim (a): data preparation, the frequentist cross-check, and parameter recovery by the models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alliance.analysis_tables import build_analysis_tables
from alliance.growth import (
    build_growth_model,
    contrasts_side_by_side,
    frequentist_check,
    group_terms,
    growth_contrasts,
    growth_data,
    marginal_means,
    model_formula,
)
from alliance.input_data import read_trial_data
from alliance.posterior_summary import summarise_draws
from alliance.sampling import add_bambi_draws, fit_bambi
from alliance.settings import load_config
from alliance.twin import generate_twin, write_input_files

REDUCED = {"chains": 2, "draws": 500, "tune": 500}


def twin_alliance(config, seed, tmp_path):
    twin = generate_twin(config, seed=seed)
    write_input_files(twin, tmp_path)
    tables = build_analysis_tables(read_trial_data(tmp_path, config), config["instrument"])
    return twin, tables["alliance"]


def test_growth_data_keeps_patients_with_missing_months(config, twin_files):
    alliance = build_analysis_tables(read_trial_data(twin_files, config), config["instrument"])[
        "alliance"
    ]
    data = growth_data(alliance, "patient", config["instrument"])
    assessed = alliance[(alliance.rater == "patient") & alliance.assessed]
    assert len(data) == len(assessed)  # every scored assessment, none dropped
    partial = data.groupby("patient_id").size()
    assert (partial < 3).any()  # patients with a missing month are in
    assert data["time"].min() == 0 and data["time"].max() == 1
    assert set(data.loc[data.wai_total >= 7, "ceiling"]) <= {"right"}


def test_censored_formula_wraps_the_response():
    spec = {"formula": "wai_total ~ arm * time", "likelihood": "censored_gaussian"}
    assert model_formula(spec) == "censored(wai_total, ceiling) ~ arm * time"
    assert model_formula({**spec, "likelihood": "gaussian"}) == spec["formula"]


def test_frequentist_check_recovers_a_known_design():
    rng = np.random.default_rng(4)
    n = 300
    patients = pd.DataFrame({"patient_id": [f"p{i}" for i in range(n)]})
    patients["arm"] = np.where(np.arange(n) < n // 2, "digital", "ptau")
    rows = patients.loc[patients.index.repeat(3)].reset_index(drop=True)
    rows["month"] = np.tile([3, 6, 12], n)
    rows["time"] = (rows["month"] - 3) / 9
    level = np.repeat(rng.normal(0, 0.5, n), 3)
    digital = (rows["arm"] == "digital").to_numpy()
    rows["wai_total"] = 6 - 0.4 * digital - 0.3 * digital * rows["time"] + level
    rows["wai_total"] += rng.normal(0, 0.3, len(rows))
    table = frequentist_check(rows, {"months": [3, 6, 12]}).set_index(["estimand", "month"])
    assert table.loc[("arm_difference", 3), "estimate"] == pytest.approx(-0.4, abs=0.15)
    assert table.loc[("change_difference", ""), "estimate"] == pytest.approx(-0.3, abs=0.12)


def true_value(truth, estimand, rater, month=""):
    for row in truth["estimands"]:
        if (row["estimand"], row["rater"], str(row["month"])) == (estimand, rater, str(month)):
            return row["value"]
    raise KeyError((estimand, rater, month))


def fit_contrasts(config, alliance, rater):
    spec = config["growth"]["models"][config["growth"]["reported_model"]]
    data = growth_data(alliance, rater, config["instrument"])
    model = build_growth_model(data, spec, config["growth"]["priors"])
    idata = fit_bambi(model, config["sampling"], seed=11)
    contrasts = growth_contrasts(marginal_means(model, idata, spec, config["instrument"]))
    tables = [
        summarise_draws(contrasts[name], 0.95, 0.2, {"estimand": name})
        for name in ("arm_difference", "change_difference")
    ]
    return pd.concat(tables, ignore_index=True)


@pytest.mark.slow
@pytest.mark.parametrize("rater", ["patient", "therapist"])
def test_reported_model_recovers_the_twin(rater, tmp_path):
    config = load_config({"sampling": REDUCED, "synthetic_twin": {"truth_population": 20000}})
    twin, alliance = twin_alliance(config, seed=3, tmp_path=tmp_path)
    table = fit_contrasts(config, alliance, rater)
    for row in table.itertuples():
        truth = true_value(twin.truth, row.estimand, rater, row.month)
        assert row.ci_low < truth < row.ci_high, (row.estimand, row.month, truth, row)
    if rater == "therapist":  # F3: the diverging therapist trajectories are detected
        change = table[table.estimand == "change_difference"].iloc[0]
        assert change["prob_positive"] < 0.05


@pytest.mark.slow
@pytest.mark.parametrize("rater", ["patient", "therapist"])
def test_no_arm_effect_gives_intervals_around_zero(rater, tmp_path):
    same = {"ptau": 5.6, "digital": 5.6}
    flat = {"ptau": 0.1, "digital": 0.1}
    config = load_config(
        {
            "sampling": REDUCED,
            "synthetic_twin": {
                "truth_population": 4000,
                "intercept": {"patient": same, "therapist": same},
                "change": {"patient": flat, "therapist": flat},
                "effects": {
                    "patient": {"sus": 0.0, "vas_app": 0.0},
                    "therapist": {"vas_platform": 0.0},
                },
            },
        }
    )
    _, alliance = twin_alliance(config, seed=3, tmp_path=tmp_path)
    table = fit_contrasts(config, alliance, rater)
    assert ((table["ci_low"] < 0) & (table["ci_high"] > 0)).all(), table


def test_configured_priors_are_the_priors_used(config, twin_files):
    alliance = build_analysis_tables(read_trial_data(twin_files, config), config["instrument"])[
        "alliance"
    ]
    data = growth_data(alliance, "therapist", config["instrument"])
    priors = config["growth"]["priors"]
    for spec in config["growth"]["models"].values():
        model = build_growth_model(data, spec, priors)
        terms = group_terms(model)
        assert set(terms) == set(priors["group_sd"])
        for name, term in terms.items():
            assert term.prior.args["sigma"].args["sigma"] == priors["group_sd"][name]["sd"]
    unknown = {**spec, "formula": spec["formula"] + " + (1 | centre)"}
    with pytest.raises(ValueError, match="1\\|centre"):
        build_growth_model(data, unknown, priors)


@pytest.mark.parametrize("name", ["linear", "linear_censored"])
def test_log_likelihood_and_replicates_of_a_bambi_fit(name, config, twin_files):
    """From draws with known values (prior draws standing in for a posterior): the log-likelihood
    is the normal density of each total around Bambi's own mu (the survival function at the
    ceiling for a censored total), and replicates are Normal(mu, sigma) per draw."""
    import pymc as pm
    import xarray as xr
    from scipy import stats

    alliance = build_analysis_tables(read_trial_data(twin_files, config), config["instrument"])[
        "alliance"
    ]
    data = growth_data(alliance, "patient", config["instrument"])
    spec = config["growth"]["models"][name]
    model = build_growth_model(data, spec, config["growth"]["priors"])
    draws = model.prior_predictive(draws=200, random_seed=2, omit_offsets=False)
    posterior = draws["prior"].to_dataset()
    idata = add_bambi_draws(
        model,
        xr.DataTree.from_dict(
            {"posterior": posterior, "observed_data": draws["observed_data"].to_dataset()}
        ),
        predictive_seed=3,
    )
    assert not [n for n in idata["posterior"].data_vars if n.endswith("_offset")]
    mu = model.predict(idata, kind="response_params", inplace=False)["posterior"]["mu"].values
    sigma = idata["posterior"]["sigma"].values[..., None]
    y = data["wai_total"].to_numpy()
    expected = stats.norm.logpdf(y, mu, sigma)
    if name == "linear_censored":
        at_ceiling = (data["ceiling"] == "right").to_numpy()
        assert at_ceiling.sum() >= 10  # the censored branch is exercised
        expected[..., at_ceiling] = stats.norm.logsf(y[at_ceiling], mu[..., at_ceiling], sigma)
    (log_lik,) = idata["log_likelihood"].data_vars.values()
    # (Bambi computes mu along another path: equal to about 1e-7, relative.)
    np.testing.assert_allclose(log_lik.values, expected, rtol=1e-6, atol=1e-12)
    with model.backend.model:
        reference = pm.compute_log_likelihood(
            xr.DataTree.from_dict({"posterior": posterior}), progressbar=False
        )["log_likelihood"]
    np.testing.assert_allclose(
        log_lik.values, reference[log_lik.name].values, rtol=1e-9, atol=1e-12
    )

    (replicated,) = idata["posterior_predictive"].data_vars.values()
    assert replicated.name == list(idata["observed_data"].data_vars)[0]
    standardized = ((replicated.values - mu) / sigma).ravel()
    if name == "linear":  # about 77,000 standard-normal values: mean and SD within 0.02
        assert abs(standardized.mean()) < 0.02 and abs(standardized.std() - 1) < 0.02
    capped = np.minimum(replicated.values, config["instrument"]["response_max"])
    assert (capped <= 7).all() and (capped == 7).mean() > 0.05


def test_a_centred_bambi_model_is_refused(config, twin_files):
    """Bambi reports a centred model's intercept shifted back, which the model graph cannot use."""
    import bambi as bmb

    alliance = build_analysis_tables(read_trial_data(twin_files, config), config["instrument"])[
        "alliance"
    ]
    data = growth_data(alliance, "patient", config["instrument"])
    model = bmb.Model("wai_total ~ time", data)
    with pytest.raises(ValueError, match="center_predictors=False"):
        fit_bambi(model, config["sampling"], seed=1)


@pytest.mark.slow
def test_arm_specific_residual_sd_is_recovered_and_the_sd_check_tells_the_models_apart(config):
    """Residual SD 0.7 in the digital arm and 0.25 in PTAU: the model with a residual SD per arm
    recovers both, its spread check passes in every arm x month, and the one-SD model's spread
    check flags the arms (replicated SDs too small in the digital arm, too large in PTAU), and LOO
    chooses the model with a residual SD per arm."""
    from alliance.growth import attach_groups, choose_reported_model, loo_comparison, sd_check

    rng = np.random.default_rng(12)
    n = 240
    rows = pd.DataFrame({"patient_id": np.repeat([f"p{i}" for i in range(n)], 3)})
    rows["arm"] = pd.Categorical(
        np.repeat(np.where(np.arange(n) < n // 2, "digital", "ptau"), 3), ["digital", "ptau"]
    )
    rows["therapist_id"] = np.repeat([f"t{i % 8}" for i in range(n)], 3)
    rows["month"] = np.tile([3, 6, 12], n)
    rows["time"] = np.tile([0.0, 1 / 3, 1.0], n)
    digital = (rows["arm"] == "digital").to_numpy()
    residual = np.where(digital, 0.7, 0.25)
    rows["wai_total"] = (
        5.5 + np.repeat(rng.normal(0, 0.3, n), 3) + rng.normal(0, 1, 3 * n) * residual
    )
    rows["ceiling"] = "none"
    sampling = load_config({"sampling": REDUCED})["sampling"]
    checks, fits = {}, {}
    for name in ("linear", "linear_arm_sd"):
        spec = config["growth"]["models"][name]
        model = build_growth_model(rows, spec, config["growth"]["priors"])
        idata = fits[name] = fit_bambi(model, sampling, seed=4, predictive_seed=5)
        attach_groups(idata, rows)
        checks[name] = sd_check(idata, spec, 7.0).set_index(["arm", "month"])
        if name == "linear_arm_sd":
            sd = np.exp(idata["posterior"]["sigma_arm"]).mean(("chain", "draw"))
            np.testing.assert_allclose(sd.values, [0.7, 0.25], atol=0.05)
    by_arm, single = checks["linear_arm_sd"], checks["linear"]
    assert by_arm["posterior_p"].between(0.025, 0.975).all(), by_arm
    assert (single.loc["digital", "posterior_p"] < 0.025).all(), single
    assert (single.loc["ptau", "posterior_p"] > 0.975).all(), single
    comparison = loo_comparison(fits, config["growth"]["models"], baseline="linear")
    assert choose_reported_model(comparison, "linear", ["linear_arm_sd"], 2.0)[0] == "linear_arm_sd"


@pytest.mark.parametrize(
    ("gain", "se", "expected"),
    [(12.0, 4.0, "linear_arm_sd"), (7.9, 4.0, "linear"), (-3.0, 2.0, "linear")],
)
def test_an_alternative_is_reported_only_when_it_predicts_better_by_more_than_two_se(
    gain, se, expected
):
    from alliance.growth import choose_reported_model

    comparison = pd.DataFrame(
        {
            "model": ["linear", "monthly", "linear_arm_sd"],
            "elpd_vs_baseline": [0.0, 30.0, gain],  # monthly is not an alternative
            "se_vs_baseline": [0.0, 1.0, se],
        }
    )
    model, reason = choose_reported_model(
        comparison, "linear", ["linear_arm_sd"], 2.0, basis="Leave-patient-out"
    )
    assert model == expected
    assert reason.startswith(
        f"Leave-patient-out ELPD of linear_arm_sd minus linear: {gain:.1f} (SE {se:.1f})"
    )
    assert reason.endswith(f"{expected} reported")


def test_prior_estimands_are_the_contrasts_the_priors_imply(config, twin_files):
    """The prior draws of the linear model's estimands: the digital mean at month 3 is the
    intercept (SD 1), the month-3 arm difference and the change difference one coefficient each
    (SD 1), the month-12 arm difference two (SD sqrt 2)."""
    from alliance.sampling import prior_as_posterior, sample_bambi_prior

    alliance = build_analysis_tables(read_trial_data(twin_files, config), config["instrument"])[
        "alliance"
    ]
    data = growth_data(alliance, "patient", config["instrument"])
    spec = config["growth"]["models"]["linear"]
    model = build_growth_model(data, spec, config["growth"]["priors"])
    prior = sample_bambi_prior(model, 4000, seed=3)
    contrasts = growth_contrasts(
        marginal_means(model, prior_as_posterior(prior), spec, config["instrument"])
    )
    sd = {name: values.std(("chain", "draw")) for name, values in contrasts.items()}
    assert float(sd["marginal_mean"].sel(arm="digital", month=3)) == pytest.approx(1.0, rel=0.05)
    assert float(sd["arm_difference"].sel(month=3)) == pytest.approx(1.0, rel=0.05)
    assert float(sd["arm_difference"].sel(month=12)) == pytest.approx(2**0.5, rel=0.05)
    assert float(sd["change_difference"]) == pytest.approx(1.0, rel=0.05)


def test_loo_comparison_pairs_each_model_with_the_baseline(monkeypatch):
    """The paired ELPD difference is the sum of pointwise differences and its SE sqrt(n var(d))
    (Vehtari, Gelman and Gabry 2017), not the unpaired sqrt(se_a^2 + se_b^2)."""
    import types

    import arviz

    from alliance.growth import choose_reported_model, loo_comparison

    rng = np.random.default_rng(0)
    pointwise = {"linear": rng.normal(-1.0, 0.5, 300)}
    pointwise["linear_arm_sd"] = pointwise["linear"] + rng.normal(0.03, 0.05, 300)

    def fake_loo(name, **_):
        values = pointwise[name]
        return types.SimpleNamespace(
            elpd=values.sum(), se=np.sqrt(values.size * values.var()), p=3.0,
            pareto_k=np.zeros(values.size), good_k=0.7, elpd_i=values,
        )  # fmt: skip

    monkeypatch.setattr(arviz, "loo", fake_loo)
    monkeypatch.setattr(arviz, "compare", lambda loos: pd.DataFrame())
    specs = {name: {"likelihood": "gaussian"} for name in pointwise}
    table = loo_comparison({n: n for n in pointwise}, specs, baseline="linear").set_index("model")
    difference = pointwise["linear_arm_sd"] - pointwise["linear"]
    assert table.loc["linear_arm_sd", "elpd_vs_baseline"] == pytest.approx(difference.sum())
    assert table.loc["linear_arm_sd", "se_vs_baseline"] == pytest.approx(
        np.sqrt(300 * difference.var())
    )
    assert table.loc["linear", "elpd_vs_baseline"] == 0.0
    # Paired, the gain (about 9) is many SEs (about 0.9); unpaired it would be well under one.
    model, _ = choose_reported_model(table.reset_index(), "linear", ["linear_arm_sd"], 2.0)
    assert model == "linear_arm_sd"


def test_the_choice_says_when_loo_is_only_indicative():
    from alliance.growth import choose_reported_model

    comparison = pd.DataFrame(
        {
            "model": ["linear", "linear_arm_sd"],
            "elpd_vs_baseline": [0.0, 12.0],
            "se_vs_baseline": [0.0, 4.0],
            "n_high_pareto_k": [3, 5],
        }
    )
    model, reason = choose_reported_model(comparison, "linear", ["linear_arm_sd"], 2.0)
    assert model == "linear_arm_sd"
    assert reason == (
        "PSIS-LOO ELPD of linear_arm_sd minus linear: 12.0 (SE 4.0; up to 5 observations with high"
        " Pareto k, so indicative), more than 2 SE: linear_arm_sd reported"
    )


def test_contrast_rows_are_labelled_by_rater_estimand_and_month():
    from alliance.growth import contrast_labels

    rows = pd.DataFrame(
        {
            "rater": ["patient", "therapist"],
            "estimand": ["arm_difference", "change_difference"],
            "month": ["6", ""],
        }
    )
    assert list(contrast_labels(rows, [3, 6, 12])) == [
        "patient: arm difference, month 6",
        "therapist: change difference (3 to 12)",
    ]


def test_every_models_contrasts_side_by_side():
    rows = []
    for model, shift in (("linear", 0.0), ("ordinal_items", 0.1)):
        rows += [
            {
                "model": model,
                "estimand": "marginal_mean",
                "rater": "patient",
                "month": "3",
                "mean": 6.0,
                "ci_low": 5.9,
                "ci_high": 6.1,
            },
            {
                "model": model,
                "estimand": "arm_difference",
                "rater": "patient",
                "month": "3",
                "mean": -0.3 + shift,
                "ci_low": -0.5 + shift,
                "ci_high": -0.1 + shift,
            },
            {
                "model": model,
                "estimand": "change_difference",
                "rater": "patient",
                "month": "",
                "mean": 0.02,
                "ci_low": -0.2,
                "ci_high": 0.25,
            },
        ]
    for model in ("linear", "ordinal_items"):  # a later month sorts after month 3 as a number
        rows.append(
            {
                "model": model,
                "estimand": "arm_difference",
                "rater": "patient",
                "month": "12",
                "mean": -0.2,
                "ci_low": -0.4,
                "ci_high": 0.0,
            }
        )
    wide = contrasts_side_by_side(pd.DataFrame(rows), ["linear", "monthly", "ordinal_items"])
    assert list(wide.columns) == ["rater", "estimand", "month", "linear", "ordinal_items"]
    assert list(wide["estimand"]) == ["arm_difference"] * 2 + ["change_difference"]  # no means
    assert list(wide["month"]) == ["3", "12", ""]
    assert wide.loc[0, "linear"] == "-0.30 [-0.50, -0.10]"
    assert wide.loc[0, "ordinal_items"] == "-0.20 [-0.40, 0.00]"
    assert wide.loc[2, "ordinal_items"] == "0.02 [-0.20, 0.25]"


def test_the_report_says_which_model_is_reported_and_why_from_the_comparisons():
    """The statement counts the reported model's checks of the totals whose observed value falls
    outside the replicates' interval (an observed share of 0 that every replicate ties is not a
    miss), and, when the ordinal model was fitted, its own on the same checks and how far its
    contrasts are from the reported model's; it points the reader to the item-level model only
    when that model reproduces the totals clearly better (by two checks or more) or changes a
    contrast's verdict."""
    from alliance.growth import model_choice_statement

    choice = pd.DataFrame(
        {"rater": ["patient"], "model": ["linear"], "reason": ["Leave-patient-out ELPD ..."]}
    )
    totals = pd.DataFrame(
        {"rater": "patient", "model": ["linear"] * 3 + ["monthly"],
         "observed": [0.0, 0.30, np.nan, 0.5], "observed_sd": [np.nan, np.nan, 0.9, np.nan],
         "replicated_low": [0.0, 0.02, 0.5, 0.0], "replicated_high": [0.0, 0.2, 1.0, 0.1],
         "posterior_p": [1.0, 0.001, 0.4, 0.0]}
    )  # fmt: skip
    contrasts = pd.DataFrame(
        {"rater": "patient", "model": ["linear", "linear", "ordinal_items", "ordinal_items"],
         "estimand": ["arm_difference", "change_difference"] * 2, "month": ["12", ""] * 2,
         "mean": [0.30, 0.20, 0.10, 0.25], "ci_low": [0.1, -0.1, -0.1, -0.05],
         "ci_high": [0.5, 0.5, 0.3, 0.55]}
    )  # fmt: skip
    (without,) = model_choice_statement(choice, totals, pd.DataFrame(), contrasts, 0.95)
    assert "95% interval in 1 of 3 arm-by-month checks" in without
    assert "ordinal model was not fitted" in without

    ordinal = pd.DataFrame(
        {"rater": "patient", "statistic": ["totals_at_top", "totals_sd", "answers_at_top"],
         "observed": [0.1, 0.8, 0.9], "replicated_low": [0.0, 0.5, 0.1],
         "replicated_high": [0.2, 1.0, 0.3]}
    )  # fmt: skip
    (better,) = model_choice_statement(choice, totals, ordinal, contrasts, 0.95)
    # Only the checks of the totals count (not the answers at 7); the month-12 arm difference
    # excludes 0 under linear and not under the ordinal model.
    assert "ordinal model it falls outside in 0 of 2 of the same checks" in better
    assert "by at most 0.20 WAI points, and 1 of 2 change whether" in better
    assert "read its contrasts beside linear's" in better

    agreeing = contrasts.assign(ci_low=[-0.1, -0.1, -0.1, -0.05])
    worse = ordinal.assign(observed=[0.5, 0.2, 0.2])
    (same,) = model_choice_statement(choice, totals, worse, agreeing, 0.95)
    assert "outside in 2 of 2" in same and "0 of 2 change whether" in same
    assert "so the simpler model of the totals, linear, is reported" in same
    # One miss against none is chance; three against none is not.
    (chance,) = model_choice_statement(choice, totals, ordinal, agreeing, 0.95)
    assert "so the simpler model of the totals, linear, is reported" in chance
    misfit = totals.assign(
        observed=[0.5, 0.3, np.nan, 0.5], observed_sd=[np.nan, np.nan, 2.0, np.nan]
    )
    (clear,) = model_choice_statement(choice, misfit, ordinal, agreeing, 0.95)
    assert "in 3 of 3 arm-by-month checks" in clear and "read its contrasts beside" in clear
