"""Aim (c): association models recover the twin's coefficients, with or without missing data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from alliance.analysis_tables import build_analysis_tables
from alliance.associations import (
    association_data,
    build_association_model,
    missing_summary,
)
from alliance.design import ASSOCIATION_TERMS, log_amount
from alliance.findings import supported_robustly, verdict
from alliance.input_data import read_trial_data
from alliance.posterior_summary import summarise_draws
from alliance.sampling import sample_pymc
from alliance.settings import load_config
from alliance.twin import generate_twin, write_input_files

# Reduced MCMC size, but enough draws for the Bonferroni-adjusted intervals checked below: their
# ends are the outer 0.2-0.3% quantiles, which 4000 draws estimate from about ten draws beyond
# each end (800 draws left two or three, and the ends were Monte Carlo noise).
REDUCED = {"chains": 4, "draws": 1000, "tune": 400}
POSITIVE = {"patient": {"sus", "vas_app"}, "therapist": {"vas_platform"}}


def tables_for(config, seed, folder):
    twin = generate_twin(config, seed=seed)
    write_input_files(twin, folder)
    return twin, build_analysis_tables(read_trial_data(folder, config), config["instrument"])


def test_no_assessment_is_dropped_for_a_missing_predictor(config, twin_files):
    tables = build_analysis_tables(read_trial_data(twin_files, config), config["instrument"])
    alliance = tables["alliance"]
    data, scale = association_data(alliance, tables["digital_covariates"], "patient")
    scored = alliance[
        (alliance.rater == "patient") & alliance.assessed & (alliance.arm == "digital")
    ]
    assert len(data) == len(scored)
    summary = missing_summary(data, "patient").set_index("term")
    assert summary.loc["sus", "n_missing"] == data["sus"].isna().sum() > 0
    assert scale.loc["sus", "sd"] == pytest.approx(data["sus"].std())
    # comm_amount enters on the log(1 + amount) scale
    merged = data.merge(tables["digital_covariates"], on=["patient_id", "month"])
    np.testing.assert_allclose(
        merged["comm_amount_x"].dropna(), np.log1p(merged["comm_amount_y"].dropna())
    )


@pytest.mark.parametrize("rater", ["patient", "therapist"])
def test_complete_predictors_need_no_imputation(config, rater, tmp_path):
    """A data set with every predictor present (common in real data) builds a model without
    imputed values whose log density is finite (it used to fail with an empty imputation)."""
    complete = load_config(
        {
            "synthetic_twin": {
                "truth_population": 1000,
                "missing_item": 0.0,
                "missing_covariate": 0.0,
                "missing_rater": {"patient": 0.0, "therapist": 0.0},
            }
        }
    )
    _, tables = tables_for(complete, 5, tmp_path)
    data, scale = association_data(tables["alliance"], tables["digital_covariates"], rater)
    terms = list(ASSOCIATION_TERMS[rater])
    # Only undefined asynchronous shares (no communication) are empty, and they are not missing.
    assert (missing_summary(data, rater)["n_missing"] == 0).all()
    for decomposition in (False, True):
        model = build_association_model(
            data,
            scale,
            rater,
            config["association"]["priors"],
            list(config["instrument"]["months"]),
            decomposition=decomposition,
        )
        assert not [v for v in model.named_vars if v.endswith("_imputed_z")], terms
        logp = model.compile_logp(mode="FAST_COMPILE")(model.initial_point())
        assert np.isfinite(logp)


def small_association_data(n_patients: int = 4, seed: int = 0) -> pd.DataFrame:
    """Three assessments per patient with every predictor present and some communication."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_patients):
        age = rng.normal(50, 10)
        for month in (3, 6, 12):
            rows.append(
                {
                    "patient_id": f"p{i}",
                    "therapist_id": f"t{i % 2}",
                    "month": month,
                    "wai_total": rng.normal(5.5, 0.7),
                    "age": age,
                    "sus": rng.normal(70, 15),
                    "vas_app": rng.normal(7, 2),
                    "comm_amount": rng.normal(2, 0.5),
                    "comm_async_share": rng.uniform(0.2, 0.8),
                    "no_communication": False,
                }
            )
    return pd.DataFrame(rows)


def standard_scale(data: pd.DataFrame, rater: str) -> pd.DataFrame:
    terms = list(ASSOCIATION_TERMS[rater])
    return pd.DataFrame({"mean": data[terms].mean(), "sd": data[terms].std()}).rename_axis("term")


MISSING_PATTERNS = {
    "none": [],
    "age only": [("age", 0)],
    "one time-varying": [("sus", 4)],
    "share only": [("comm_async_share", 7)],
    "all kinds": [("age", 3), ("sus", 1), ("vas_app", 1), ("comm_amount", 8)],
}


def with_missing(data: pd.DataFrame, pattern: str) -> pd.DataFrame:
    """``data`` with the cells of a :data:`MISSING_PATTERNS` pattern missing (age: all of the
    patient's rows) and one assessment without communication (its share undefined, not missing)."""
    for term, row in MISSING_PATTERNS[pattern]:
        patient = data.loc[row, "patient_id"]
        rows = data.index[data.patient_id == patient] if term == "age" else [row]
        data.loc[rows, term] = np.nan
    data.loc[10, ["comm_amount", "comm_async_share", "no_communication"]] = [0.0, np.nan, True]
    return data


@pytest.mark.parametrize("pattern", list(MISSING_PATTERNS))
def test_every_combination_of_present_and_missing_predictors_builds(config, pattern):
    """Each missing cell is one imputed value; undefined shares (no communication) are not."""
    data = with_missing(small_association_data(), pattern)
    scale = standard_scale(data, "patient")
    model = build_association_model(
        data, scale, "patient", config["association"]["priors"], [3, 6, 12]
    )
    imputed = {
        name.removesuffix("_imputed_z"): model[name].size.eval()
        for name in model.named_vars
        if name.endswith("_imputed_z")
    }
    expected = {term: 1 for term, _ in MISSING_PATTERNS[pattern]}
    assert imputed == expected
    assert "no_communication" in model.named_vars
    assert np.isfinite(model.compile_logp(mode="FAST_COMPILE")(model.initial_point()))
    summary = missing_summary(data, "patient").set_index("term")
    assert summary.loc["comm_async_share", "n_undefined"] == 1
    assert summary.loc["comm_async_share", "n_missing"] == len(
        [t for t, _ in MISSING_PATTERNS[pattern] if t == "comm_async_share"]
    )


@pytest.mark.parametrize("decomposition", [False, True], ids=["pooled", "within_between"])
def test_prior_draws_in_one_call_match_pymcs_draw_by_draw(config, decomposition):
    """The prior check's draws (alliance.sampling.sample_pymc_prior: every draw at once) have the
    distribution of PyMC's own prior predictive draws (one call per draw), for a model with
    imputed cells of each kind and an undefined share: the same variables, dims and coordinates,
    and means and SDs of every element within Monte Carlo error."""
    import pymc as pm

    from alliance.associations import prior_variables
    from alliance.sampling import sample_pymc_prior

    data = with_missing(small_association_data(n_patients=6, seed=2), "all kinds")
    model = build_association_model(
        data,
        standard_scale(data, "patient"),
        "patient",
        config["association"]["priors"],
        [3, 6, 12],
        decomposition=decomposition,
    )
    draws = 1000
    ours = sample_pymc_prior(model, draws, seed=3)
    with model:
        reference = pm.sample_prior_predictive(draws, random_seed=4)
    for group in ("prior", "prior_predictive"):
        mine, theirs = ours[group].to_dataset(), reference[group].to_dataset()
        assert set(mine.data_vars) == set(theirs.data_vars)
        for name in theirs.data_vars:
            assert mine[name].dims == theirs[name].dims, name
            for dim in theirs[name].dims[2:]:
                assert list(mine[dim].values) == list(theirs[dim].values)
            x, y = (d[name].values.reshape(draws, -1) for d in (mine, theirs))
            error = np.sqrt((x.var(axis=0) + y.var(axis=0)) / draws)
            assert np.all(np.abs(x.mean(axis=0) - y.mean(axis=0)) < 5 * error + 1e-12), name
            # Constant elements (the reference month's effect, 0) are constant in both; the log
            # ratio of the others' SDs has the standard error sqrt((kurtosis - 1) / (2 draws)).
            varies = y.std(axis=0) > 0
            np.testing.assert_array_equal(x.std(axis=0) > 0, varies)
            both = np.concatenate([x, y])[:, varies]
            both = (both - both.mean(axis=0)) / both.std(axis=0)
            log_ratio_se = np.sqrt((np.mean(both**4, axis=0) - 1) / (2 * draws))
            log_ratio = np.log(x.std(axis=0)[varies] / y.std(axis=0)[varies])
            assert np.all(np.abs(log_ratio) < 5 * log_ratio_se), name

    # Each draw's outcome goes with that draw's parameters: the correlation of the outcome's mean
    # with the intercept, and of its SD with the residual SD, as in PyMC's draws (the standard
    # error of a difference of two such correlations is below 0.045 at 1000 draws).
    def correlations(tree):
        wai = tree["prior_predictive"]["wai"].values[0]
        intercept, sigma = (tree["prior"][name].values[0] for name in ("intercept", "sigma"))
        return [
            np.corrcoef(wai.mean(axis=1), intercept)[0, 1],
            np.corrcoef(wai.std(axis=1), sigma)[0, 1],
        ]

    assert correlations(ours) == pytest.approx(correlations(reference), abs=0.15)
    assert min(correlations(reference)) > 0.3
    # One draw (as simulation-based calibration draws its truths), and the prior check's
    # variables (only the outcome and the coefficients).
    one = sample_pymc_prior(model, 1, seed=6)
    for group in ("prior", "prior_predictive"):
        for name, values in reference[group].items():
            assert one[group][name].shape == (1, 1, *values.shape[2:]), name
    chosen = sample_pymc_prior(model, 100, seed=5, var_names=prior_variables(model))
    assert set(chosen["prior_predictive"].data_vars) == {"wai"}


def cholesky_from_cpc(cpc: np.ndarray, size: int) -> np.ndarray:
    """The correlation Cholesky factor of alliance.correlation_priors.lkj_cholesky_corr."""
    chol = np.zeros((size, size))
    chol[0, 0] = 1.0
    position = 0
    for row in range(1, size):
        remaining = 1.0
        for column in range(row):
            chol[row, column] = cpc[position] * np.sqrt(remaining)
            remaining -= chol[row, column] ** 2
            position += 1
        chol[row, row] = np.sqrt(remaining)
    return chol


def test_a_missing_predictor_has_exactly_the_joint_models_conditional_normal(config):
    """At fixed parameters, the log density as a function of one missing cell is the conditional
    normal of the within-patient multivariate normal given the assessment's other predictors,
    centred on the month mean plus the patient's latent mean: one density, not a second prior
    on top (which would add 1 to its precision), and not a fixed zero mean. The cell is imputed
    non-centred, as the chain's mean plus its SD times a standard-normal slot, so the density is
    read in the slot and mapped back to the cell."""
    from pymc.model.transform.conditioning import remove_value_transforms

    data = small_association_data()
    missing_row, term = 4, "vas_app"  # patient p1, month 6
    data.loc[missing_row, term] = np.nan
    scale = standard_scale(data, "patient")
    model = remove_value_transforms(
        build_association_model(data, scale, "patient", config["association"]["priors"], [3, 6, 12])
    )
    varying = ["sus", "vas_app", "comm_amount", "comm_async_share"]
    rng = np.random.default_rng(1)
    within_cpc = np.array([0.5, -0.3, 0.2, 0.4, -0.1, 0.3])
    within_sd = np.array([0.8, 0.6, 0.9, 0.7])
    month_mean = rng.normal(0, 0.5, (3, 4))
    between_sd = np.array([1.0, 0.5, 0.7, 0.4, 0.6])
    between_z = rng.normal(0, 1, (4, 4))
    point = {
        "between_sd": between_sd,
        "between_corr_cpc_01": np.full(10, 0.5),  # independent: b = between_sd * between_z
        "between_z": between_z,
        "predictor_month_mean": month_mean,
        "within_sd": within_sd,
        "within_corr_cpc_01": (within_cpc + 1) / 2,
        "intercept": 5.5,
        "month_raw": np.zeros(2),
        "beta": np.zeros(5),  # the outcome carries no information about the cell
        "patient_sd": 0.5,
        "patient_z": np.zeros(4),
        "therapist_sd": 0.2,
        "therapist_z": np.zeros(2),
        "sigma": 0.5,
    }
    logp = model.compile_logp()

    def at(slot: float) -> float:
        return float(logp({**point, "vas_app_imputed_z": np.array([slot])}))

    # The log density in the cell is quadratic: its vertex and curvature give the conditional.
    grid = np.array([-1.0, 0.0, 1.0])
    values = np.array([at(v) for v in grid])
    curvature = values[0] - 2 * values[1] + values[2]
    slot_variance = -1 / curvature
    slot_mean = (values[2] - values[0]) / 2 * slot_variance

    chol = within_sd[:, None] * cholesky_from_cpc(within_cpc, 4)
    covariance = chol @ chol.T
    z = ((data[varying] - scale.loc[varying, "mean"]) / scale.loc[varying, "sd"]).to_numpy()
    centre = month_mean[1] + between_sd[1:] * between_z[1]  # month 6, patient p1
    k = varying.index(term)
    # The cell is the chain's mean given the earlier predictors plus its SD times the slot.
    chain_mean = centre[k] + chol[k, 0] * (z[missing_row, 0] - centre[0]) / chol[0, 0]
    mean = chain_mean + chol[k, k] * slot_mean
    variance = chol[k, k] ** 2 * slot_variance
    others = [j for j in range(4) if j != k]
    gain = covariance[k, others] @ np.linalg.inv(covariance[np.ix_(others, others)])
    exact_mean = centre[k] + gain @ (z[missing_row, others] - centre[others])
    exact_variance = covariance[k, k] - gain @ covariance[others, k]
    assert mean == pytest.approx(exact_mean, rel=1e-6)
    assert variance == pytest.approx(exact_variance, rel=1e-6)


@pytest.mark.parametrize("rater", ["patient", "therapist"])
@pytest.mark.parametrize("decomposition", [False, True], ids=["pooled", "within_between"])
def test_complete_data_density_is_the_documented_joint_model(config, rater, decomposition):
    """With every predictor observed, the density of the data (the observed predictors and the
    outcome) at correlated parameters is, computed here from covariance matrices with SciPy:
    age ~ N(0, Sigma_between[0, 0]); each assessment's time-varying predictors ~ MVN(month mean +
    the patient's latent mean b, Sigma_within), where b given age is the conditional normal of
    MVN(0, Sigma_between) (non-centred: b = E[b | age] + chol(Var[b | age]) @ between_z); the
    share's marginal left out where there was no communication; and the outcome N(mu, sigma) with
    the module docstring's mean. Checks the model's chain of univariate conditionals against that
    whole density (computed another way), not against itself."""
    from pymc.model.transform.conditioning import remove_value_transforms
    from scipy import stats

    data = small_association_data(n_patients=5, seed=3)
    data["vas_platform"] = np.random.default_rng(4).normal(6, 2, len(data))
    # Two assessments without communication: the share is undefined there (not missing).
    data.loc[[4, 11], ["comm_amount", "comm_async_share", "no_communication"]] = [0.0, np.nan, True]
    data["comm_amount"] = log_amount(data["comm_amount"])
    scale = standard_scale(data, rater)
    months = [3, 6, 12]
    model = remove_value_transforms(
        build_association_model(
            data, scale, rater, config["association"]["priors"], months, decomposition
        )
    )
    terms = list(ASSOCIATION_TERMS[rater])
    varying = terms[1:]
    n_b, n_w = len(terms), len(varying)
    rng = np.random.default_rng(7)
    between_cpc = rng.uniform(-0.6, 0.6, n_b * (n_b - 1) // 2)
    within_cpc = rng.uniform(-0.6, 0.6, n_w * (n_w - 1) // 2)
    between_sd = rng.uniform(0.5, 1.2, n_b)
    within_sd = rng.uniform(0.5, 1.2, n_w)
    patients = list(pd.unique(data["patient_id"]))
    therapists = sorted(pd.unique(data["therapist_id"]))
    point = {
        "between_sd": between_sd,
        "between_corr_cpc_01": (between_cpc + 1) / 2,
        "between_z": rng.normal(0, 1, (len(patients), n_w)),
        "predictor_month_mean": rng.normal(0, 0.5, (3, n_w)),
        "within_sd": within_sd,
        "within_corr_cpc_01": (within_cpc + 1) / 2,
        "intercept": 5.5,
        "month_raw": rng.normal(0, 0.3, 2),
        "no_communication": -0.4,
        "patient_sd": 0.5,
        "patient_z": rng.normal(0, 1, len(patients)),
        "therapist_sd": 0.3,
        "therapist_z": rng.normal(0, 1, len(therapists)),
        "sigma": 0.6,
    }
    if decomposition:
        point["beta_between"] = rng.normal(0, 0.4, n_b)
        point["beta_within"] = rng.normal(0, 0.4, n_w)
    else:
        point["beta"] = rng.normal(0, 0.4, n_b)
    ours = float(model.compile_logp(vars=model.observed_RVs)(point))

    chol_b = between_sd[:, None] * cholesky_from_cpc(between_cpc, n_b)
    chol_w = within_sd[:, None] * cholesky_from_cpc(within_cpc, n_w)
    sigma_b, sigma_w = chol_b @ chol_b.T, chol_w @ chol_w.T
    z = ((data[terms] - scale.loc[terms, "mean"]) / scale.loc[terms, "sd"]).to_numpy()
    patient = data["patient_id"].map({p: i for i, p in enumerate(patients)}).to_numpy()
    month = data["month"].map({m: i for i, m in enumerate(months)}).to_numpy()
    age = z[data.groupby("patient_id", sort=False).head(1).index, 0]
    expected = stats.norm(0, np.sqrt(sigma_b[0, 0])).logpdf(age).sum()
    # b given age: the conditional normal of MVN(0, Sigma_between).
    b_mean = np.outer(age, sigma_b[1:, 0] / sigma_b[0, 0])
    b_cov = sigma_b[1:, 1:] - np.outer(sigma_b[1:, 0], sigma_b[0, 1:]) / sigma_b[0, 0]
    b = b_mean + point["between_z"] @ np.linalg.cholesky(b_cov).T
    centre = point["predictor_month_mean"][month] + b[patient]
    x = z[:, 1:]
    defined = ~data["no_communication"].to_numpy()
    for row in range(len(data)):
        keep = slice(None) if defined[row] else slice(0, n_w - 1)
        expected += stats.multivariate_normal(centre[row, keep], sigma_w[keep, keep]).logpdf(
            x[row, keep]
        )
    # The share's (last predictor's) terms are switched off where it is undefined.
    on = np.ones((len(data), n_w))
    on[~defined, -1] = 0.0
    x_on = np.nan_to_num(x) * on
    if decomposition:
        predictors = (
            z[:, 0] * point["beta_between"][0]
            + (on * b[patient]) @ point["beta_between"][1:]
            + (on * (x_on - centre)) @ point["beta_within"]
        )
    else:
        predictors = np.column_stack([z[:, 0], x_on]) @ point["beta"]
    mu = (
        point["intercept"]
        + np.concatenate([[0.0], point["month_raw"]])[month]
        + predictors
        + point["no_communication"] * ~defined
        + point["patient_sd"] * point["patient_z"][patient]
        + point["therapist_sd"]
        * point["therapist_z"][data["therapist_id"].map({t: i for i, t in enumerate(therapists)})]
    )
    expected += stats.norm(mu, point["sigma"]).logpdf(data["wai_total"]).sum()
    assert ours == pytest.approx(expected, rel=1e-10)


def fit_terms(config, tables, rater):
    data, scale = association_data(tables["alliance"], tables["digital_covariates"], rater)
    model = build_association_model(
        data, scale, rater, config["association"]["priors"], list(config["instrument"]["months"])
    )
    idata = sample_pymc(model, config["sampling"], seed=17)
    # All nine coefficients of both raters are checked on one twin: Bonferroni-adjusted intervals
    # keep the family-wise miss rate at 5% (nine 95% intervals on one seed miss by chance often;
    # in the seed-3 twin, age happens to correlate 0.23 with the therapists' ratings).
    family = 1 - 0.05 / sum(len(terms) for terms in ASSOCIATION_TERMS.values())
    table = summarise_draws(idata["posterior"]["beta"], family, 0.1).set_index("term")
    return data, table


def true_association(truth, rater, term):
    return next(
        r["value"]
        for r in truth["estimands"]
        if (r["estimand"], r["rater"], r["term"]) == ("association", rater, term)
    )


@pytest.mark.slow
@pytest.mark.parametrize("rater", ["patient", "therapist"])
def test_recovers_the_twin_and_tells_effects_from_nulls(rater, tmp_path):
    config = load_config({"sampling": REDUCED, "synthetic_twin": {"truth_population": 20000}})
    twin, tables = tables_for(config, seed=3, folder=tmp_path / "twin")
    _, table = fit_terms(config, tables, rater)
    for term in ASSOCIATION_TERMS[rater]:
        truth = true_association(twin.truth, rater, term)
        row = table.loc[term]
        assert row["ci_low"] < truth < row["ci_high"], (term, truth, row)
        if term in POSITIVE[rater]:
            assert row["prob_positive"] > 0.975, term
        else:
            assert row["ci_low"] < 0 < row["ci_high"], term
        # The published claims' verdicts (F5, F6: "associated with"; F7: no effect): a positive
        # association is supported where it is true; where it is false (a null term) it is never
        # supported robustly (a one-sided rule at 0.95 says "supported" for 5% of exact nulls,
        # and then the robustness check flags it); "no effect" is never supported for a real one.
        rows = table.loc[[term]]
        positive_claim = verdict(rows, "positive", 0.95)[0]
        if term in POSITIVE[rater]:
            assert positive_claim == "supported", term
            assert verdict(rows, "null", 0.95)[0] != "supported", term
        else:
            assert not supported_robustly(rows, "positive", 0.95), term

    # More missing predictors: the same conclusions, and no assessment dropped (the patient's
    # model, which has every kind of term the therapist's has, and more).
    if rater != "patient":
        return
    gappy = load_config(
        {
            "sampling": REDUCED,
            "synthetic_twin": {
                "truth_population": 4000,
                "missing_item": 0.06,
                "missing_covariate": 0.2,
            },
        }
    )
    _, gappy_tables = tables_for(gappy, seed=3, folder=tmp_path / "gappy")
    data, gappy_table = fit_terms(gappy, gappy_tables, rater)
    share_missing = data[list(ASSOCIATION_TERMS[rater])].isna().any(axis=1).mean()
    assert share_missing > 0.25  # a complete-case analysis would lose over a quarter
    alliance = gappy_tables["alliance"]
    assert (
        len(data)
        == ((alliance.rater == rater) & alliance.assessed & (alliance.arm == "digital")).sum()
    )
    for term in ASSOCIATION_TERMS[rater]:
        row = gappy_table.loc[term]
        if term in POSITIVE[rater]:
            assert row["prob_positive"] > 0.975, term
        else:
            assert row["ci_low"] < 0 < row["ci_high"], term


def confounded_therapist_data(seed: int = 4, n_therapists: int = 12, per_therapist: int = 15):
    """Therapist-rated alliance and platform satisfaction sharing the therapist's response style.

    The style (SD 0.3 WAI points) raises a therapist's satisfaction ratings too (3 VAS points
    per WAI point), so across therapists satisfaction and alliance go together though, within a
    therapist, one SD of satisfaction goes with only 0.1 WAI points.
    """
    rng = np.random.default_rng(seed)
    style = rng.normal(0, CONFOUNDED_STYLE_SD, n_therapists)
    rows = []
    for t in range(n_therapists):
        for j in range(per_therapist):
            patient, age = f"t{t}p{j}", rng.normal(50, 10)
            level, vas_level = rng.normal(0, 0.4), rng.normal(0, 1)
            for month in (3, 6, 12):
                amount = rng.poisson(6) + 1
                rows.append(
                    {
                        "patient_id": patient,
                        "therapist_id": f"t{t}",
                        "month": month,
                        "age": age,
                        "vas_platform": 6 + 3 * style[t] + vas_level + rng.normal(0, 1),
                        "comm_amount": log_amount(amount),
                        "comm_async_share": rng.binomial(amount, 0.5) / amount,
                        "no_communication": False,
                        "latent": 5.5 + style[t] + level + rng.normal(0, 0.3),
                    }
                )
    data = pd.DataFrame(rows)
    vas = data["vas_platform"]
    data["wai_total"] = data.pop("latent") + CONFOUNDED_BETA * (vas - vas.mean()) / vas.std()
    return data


CONFOUNDED_STYLE_SD = 0.3
CONFOUNDED_BETA = 0.1


@pytest.mark.slow
def test_therapist_effects_absorb_a_shared_response_style():
    """With therapist effects, the satisfaction coefficient is the within-therapist one (0.1)
    and the therapists' SD is recovered; without them the shared style would be credited to
    satisfaction (0.17, interval 0.13 to 0.22, with the therapist SD prior shrunk to 0.001)."""
    config = load_config({"sampling": REDUCED})
    data = confounded_therapist_data()
    model = build_association_model(
        data,
        standard_scale(data, "therapist"),
        "therapist",
        config["association"]["priors"],
        [3, 6, 12],
    )
    idata = sample_pymc(model, config["sampling"], seed=11)
    beta = summarise_draws(idata["posterior"]["beta"], 0.95, 0.1).set_index("term")
    row = beta.loc["vas_platform"]
    assert row["ci_low"] < CONFOUNDED_BETA < row["ci_high"], row
    assert row["ci_high"] < 0.25
    low, high = np.quantile(idata["posterior"]["therapist_sd"], [0.025, 0.975])
    assert low < CONFOUNDED_STYLE_SD < high and low > 0.1


def test_posterior_predictive_holds_observed_predictors_at_their_data(config):
    """Replicated alliance uses the observed predictors (and the draws of imputed ones), not
    replicates of the predictors."""
    import xarray as xr

    from alliance.sampling import posterior_predictive

    data = small_association_data()
    data.loc[4, "sus"] = np.nan
    scale = standard_scale(data, "patient")
    model = build_association_model(
        data, scale, "patient", config["association"]["priors"], [3, 6, 12]
    )
    fixed = {
        "between_sd": np.ones(5),
        "between_corr_cpc_01": np.full(10, 0.5),
        "between_z": np.zeros((4, 4)),
        "predictor_month_mean": np.zeros((3, 4)),
        "within_sd": np.ones(4),
        "within_corr_cpc_01": np.full(6, 0.5),
        "sus_imputed_z": np.array([2.0]),  # the mean (0) plus the SD (1) times 2
        "intercept": 5.0,
        "month_raw": np.zeros(2),
        "beta": np.array([0.0, 1.0, 0.0, 0.0, 0.0]),  # sus only
        "patient_sd": 1e-9,
        "patient_z": np.zeros(4),
        "therapist_sd": 1e-9,
        "therapist_z": np.zeros(2),
        "sigma": 1e-9,
    }
    posterior = xr.Dataset(
        {
            name: (
                ("chain", "draw", *[f"{name}_{i}" for i in range(np.ndim(v))]),
                np.array(v)[None, None].repeat(3, 1),
            )
            for name, v in fixed.items()
        }
    )
    replicated = posterior_predictive(model, posterior, seed=1, var_names=["wai"])["wai"]
    sus = ((data["sus"] - scale.loc["sus", "mean"]) / scale.loc["sus", "sd"]).fillna(2.0)
    np.testing.assert_allclose(replicated.values[0, 0], 5.0 + sus.to_numpy(), atol=1e-6)
    np.testing.assert_allclose(replicated.values[0, 2], replicated.values[0, 0], atol=1e-6)


def test_coefficients_are_reported_as_their_estimands_and_their_collinearity_measured():
    from alliance.associations import association_estimands, collinearity_table

    rng = np.random.default_rng(11)
    chains, n_draws = 2, 500
    shared = rng.normal(0, 1, (chains, n_draws))
    beta = np.stack([shared, -shared + 0.1 * rng.normal(size=shared.shape)], -1)
    posterior = xr.Dataset(
        {
            "beta_between": (("chain", "draw", "between_term"), beta),
            "beta_within": (("chain", "draw", "varying_term"), beta[..., 1:]),
            "no_communication": (("chain", "draw"), shared),
            "sigma": (("chain", "draw"), shared),
        },
        coords={"between_term": ["age", "sus"], "varying_term": ["sus"]},
    )
    estimands = association_estimands(posterior)
    assert set(estimands.data_vars) == {
        "association_between",
        "association_within",
        "no_communication",
    }
    data = pd.DataFrame({"age": rng.normal(size=200)})
    data["sus"] = 0.6 * data["age"] + 0.8 * rng.normal(size=200)
    data.loc[:9, "sus"] = np.nan  # pairs with a missing value are left out
    table = collinearity_table(data, estimands, "patient")
    (row,) = table.to_dict("records")
    assert (row["rater"], row["first"], row["second"]) == ("patient", "age", "sus")
    expected = np.corrcoef(data["age"][10:], data["sus"][10:])[0, 1]
    assert row["observed_correlation"] == pytest.approx(expected)
    assert row["coefficient_correlation"] < -0.99


def test_each_coefficient_row_carries_its_predictors_mean_and_sd():
    from alliance.associations import with_predictor_scale

    rows = pd.DataFrame(
        {
            "rater": ["patient", "patient", "therapist"],
            "estimand": ["association", "no_communication", "association_within"],
            "term": ["sus", "", "sus"],
        }
    )
    scales = {
        "patient": pd.DataFrame(
            {"mean": [70.0], "sd": [15.0]}, index=pd.Index(["sus"], name="term")
        ),
        "therapist": pd.DataFrame(
            {"mean": [60.0], "sd": [10.0]}, index=pd.Index(["sus"], name="term")
        ),
    }
    table = with_predictor_scale(rows, scales)
    assert list(table["predictor_mean"].iloc[[0, 2]]) == [70.0, 60.0]
    assert list(table["predictor_sd"].iloc[[0, 2]]) == [15.0, 10.0]
    assert table["predictor_sd"].iloc[1] != table["predictor_sd"].iloc[1]  # no term: empty
