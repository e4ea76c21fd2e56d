"""Aim (b): the bivariate agreement model recovers the twin's agreement and tells strong apart."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from alliance.agreement import (
    QUANTITY_PARAMETERS,
    agreement_data,
    agreement_quantities,
    build_agreement_model,
    frequentist_agreement,
    rating_rows,
)
from alliance.analysis_tables import build_analysis_tables
from alliance.design import ARMS
from alliance.input_data import read_trial_data
from alliance.posterior_summary import summarise_draws
from alliance.sampling import posterior_predictive, sample_pymc
from alliance.settings import load_config
from alliance.twin import concordance, generate_twin, write_input_files

# Reduced MCMC size, but enough draws for the Bonferroni-adjusted intervals checked below: their
# ends are the outer 0.2-0.3% quantiles, which 4000 draws estimate from about ten draws beyond
# each end (800 draws left two or three, and the ends were Monte Carlo noise).
REDUCED = {"chains": 4, "draws": 1000, "tune": 400}


def test_pairs_keep_single_ratings(config, twin_files):
    alliance = build_analysis_tables(read_trial_data(twin_files, config), config["instrument"])[
        "alliance"
    ]
    pairs = agreement_data(alliance, config["instrument"])
    assert (
        len(pairs)
        == alliance[alliance.assessed][["patient_id", "month"]].drop_duplicates().shape[0]
    )
    one_rater = pairs[["patient", "therapist"]].isna().any(axis=1)
    assert one_rater.any() and not pairs[["patient", "therapist"]].isna().all(axis=1).any()
    assert list(pairs["arm"].cat.codes) == sorted(pairs["arm"].cat.codes)  # ordered by arm


def test_quantities_from_known_covariances():
    """With no change, therapist or residual terms, ICC and bias follow from the covariance."""
    tiny = 1e-9

    def arr(values, dims):
        return xr.DataArray(np.asarray(values)[None, None], dims=("chain", "draw", *dims))

    posterior = xr.Dataset(
        {
            "level_corr": arr([0.5, 0.5], ("arm",)),
            "change_corr": arr([0.9, 0.9], ("arm",)),
            "patient_level_sd": arr(np.ones((2, 2)), ("arm", "rater")),
            "patient_change_sd": arr(np.full((2, 2), tiny), ("arm", "rater")),
            "residual_sd": arr(np.full((2, 2), tiny), ("arm", "rater")),
            "residual_corr": arr(np.zeros(2), ("arm",)),
            "therapist_sd": arr(np.full(2, tiny), ("rater",)),
            "level": arr([[6.0, 5.0], [6.0, 6.0]], ("arm", "rater")),
            "change": arr(np.zeros((2, 2)), ("arm", "rater")),
        }
    ).assign_coords(arm=["digital", "ptau"], rater=["patient", "therapist"])
    # These parameters are all the quantities need (the prior check draws only them).
    assert set(posterior.data_vars) == set(QUANTITY_PARAMETERS)
    q = agreement_quantities(posterior, [3, 6, 12])
    assert q["rater_correlation"].sel(arm="digital").item() == pytest.approx(0.5)
    assert q["rater_bias"].sel(arm="digital").item() == pytest.approx(1.0)
    # ICC(A,1) = 2 * 0.5 / (1 + 1 + bias^2): 1/3 with a bias of 1, 1/2 without.
    assert q["icc_agreement"].sel(arm="digital").item() == pytest.approx(1 / 3)
    assert q["icc_agreement"].sel(arm="ptau").item() == pytest.approx(0.5)
    # Limits of agreement: bias +- 1.96 * sqrt(1 + 1 - 2 * 0.5).
    assert q["loa_high"].sel(arm="ptau").item() == pytest.approx(1.96)


def test_frequentist_icc_matches_concordance_on_large_samples():
    rng = np.random.default_rng(1)
    n = 2000
    true = rng.normal(5, 0.7, n)
    pairs = pd.DataFrame(
        {
            "patient_id": [f"p{i}" for i in range(n)],
            "arm": "digital",
            "month": 3,
            "patient": true + rng.normal(0.3, 0.5, n),
            "therapist": true + rng.normal(0, 0.5, n),
        }
    )
    table = frequentist_agreement(pairs)
    assert table.loc[0, "icc_a1"] == pytest.approx(
        concordance(pairs["patient"], pairs["therapist"]), abs=0.03
    )


def fit_agreement_on(config, seed, tmp_path):
    twin = generate_twin(config, seed=seed)
    write_input_files(twin, tmp_path)
    alliance = build_analysis_tables(read_trial_data(tmp_path, config), config["instrument"])[
        "alliance"
    ]
    pairs = agreement_data(alliance, config["instrument"])
    model = build_agreement_model(pairs, config["agreement"]["priors"])
    idata = sample_pymc(model, config["sampling"], seed=21)
    quantities = agreement_quantities(idata["posterior"].to_dataset(), [3, 6, 12])
    # Twelve intervals are checked per test (3 quantities x 2 arms x 2 twins): Bonferroni-adjusted
    # intervals keep the family-wise miss rate at 5%, whatever state the compile cache is in.
    tables = [
        summarise_draws(quantities[name], 1 - 0.05 / 12, 0.1, {"estimand": name})
        for name in ("rater_correlation", "rater_bias", "icc_agreement")
    ]
    return twin.truth, pd.concat(tables, ignore_index=True)


def truth_of(truth, estimand, arm):
    return next(
        r["value"] for r in truth["estimands"] if (r["estimand"], r["arm"]) == (estimand, arm)
    )


@pytest.mark.slow
def test_recovers_no_agreement_and_strong_agreement(tmp_path):
    results = {}
    for label, rho in (("twin", None), ("strong", 0.6)):
        overrides = {"sampling": REDUCED, "synthetic_twin": {"truth_population": 20000}}
        if rho is not None:
            overrides["synthetic_twin"]["rater_level_correlation"] = rho
        config = load_config(overrides)
        truth, table = fit_agreement_on(config, seed=3, tmp_path=tmp_path / label)
        for row in table.itertuples():
            value = truth_of(truth, row.estimand, row.arm)
            assert row.ci_low < value < row.ci_high, (label, row.estimand, row.arm, value, row)
        results[label] = table.set_index(["estimand", "arm"])
    # The two are told apart: in each arm the strong twin's correlation interval lies above the
    # weak twin's posterior mean, and the weak twin's interval covers zero.
    for arm in ("digital", "ptau"):
        strong = results["strong"].loc[("rater_correlation", arm)]
        weak = results["twin"].loc[("rater_correlation", arm)]
        assert strong["ci_low"] > weak["mean"]
        assert weak["ci_low"] < 0 < weak["ci_high"]
        assert strong["prob_positive"] > 0.99


#: Truth-and-bias test data: patients' mean rating, the therapist's directional bias (therapist
#: minus patient) per arm x month, and the tracking slope per arm. The arms' patient means differ,
#: as they do in the trial: centring on one grand mean biased the PTAU month-12 cell by
#: (1 - 0.1) x (6.4 - 5.98), about 0.38 points.
TB_PATIENT_MEAN = {"digital": (5.4, 5.7, 5.9), "ptau": (6.2, 6.3, 6.4)}
TB_BIAS = {"digital": (-0.6, -0.45, -0.3), "ptau": (-0.1, -0.2, -0.4)}
TB_TRACKING = {"digital": 0.5, "ptau": 0.1}
TB_THERAPIST_SD = 0.25


def truth_and_bias_pairs(n: int = 400, therapists_per_arm: int = 12, seed: int = 8):
    """Complete rating pairs from the truth-and-bias model with therapist and patient effects."""
    rng = np.random.default_rng(seed)
    months = (3, 6, 12)
    arm = np.where(np.arange(n) < n // 2, "digital", "ptau")
    therapist = np.array(
        [f"{a}_t{i % therapists_per_arm}" for i, a in enumerate(arm)], dtype=object
    )
    therapist_effect = {t: rng.normal(0, TB_THERAPIST_SD) for t in np.unique(therapist)}
    patient_level = rng.normal(0, 0.6, n)
    patient_view = rng.normal(0, 0.15, n)  # the therapist's stable view of this patient
    rows = []
    for i in range(n):
        for m, month in enumerate(months):
            mean = TB_PATIENT_MEAN[arm[i]][m]
            patient = mean + patient_level[i] + rng.normal(0, 0.3)
            judged = (
                mean
                + TB_BIAS[arm[i]][m]
                + TB_TRACKING[arm[i]] * (patient - mean)
                + therapist_effect[therapist[i]]
                + patient_view[i]
                + rng.normal(0, 0.3)
            )
            rows.append((f"p{i}", arm[i], therapist[i], month, patient, judged))
    columns = ["patient_id", "arm", "therapist_id", "month", "patient", "therapist"]
    return pd.DataFrame(rows, columns=columns)


def test_truth_and_bias_data_centres_each_arm_and_month_on_its_patients_mean():
    from alliance.agreement import truth_and_bias_data

    pairs = truth_and_bias_pairs(n=60, therapists_per_arm=3)
    pairs.loc[0, "therapist"] = np.nan  # an unpaired assessment is left out
    data = truth_and_bias_data(pairs)
    assert len(data) == len(pairs) - 1
    for (arm, month), cell in data.groupby(["arm", "month"]):
        raw = pairs[(pairs.arm == arm) & (pairs.month == month)].dropna()
        assert cell["patient_c"].mean() == pytest.approx(0, abs=1e-12)
        # The cell's mean centred therapist rating is its observed directional bias.
        observed_bias = (raw["therapist"] - raw["patient"]).mean()
        assert cell["therapist_c"].mean() == pytest.approx(observed_bias, abs=1e-12)


@pytest.mark.slow
def test_truth_and_bias_model_recovers_cell_biases_tracking_and_therapist_effects():
    from alliance.agreement import (
        build_truth_and_bias_model,
        truth_and_bias_data,
        truth_and_bias_estimands,
    )
    from alliance.sampling import fit_bambi

    config = load_config({"sampling": REDUCED})
    data = truth_and_bias_data(truth_and_bias_pairs())
    model = build_truth_and_bias_model(data, config["truth_and_bias"]["priors"])
    idata = fit_bambi(model, config["sampling"], seed=5)
    draws = truth_and_bias_estimands(idata)
    bias = summarise_draws(draws["directional_bias"], 0.95, 0.1).set_index(["arm", "month"])
    for arm, values in TB_BIAS.items():
        for month, value in zip((3, 6, 12), values, strict=True):
            row = bias.loc[(arm, month)]
            # Each cell within three posterior SDs (about 0.1: twelve therapists per arm) of
            # its truth; the PTAU month-12 cell, which the grand-mean centring put near -0.02,
            # is told apart from zero.
            assert abs(row["mean"] - value) < 3 * row["sd"], (arm, month, row["mean"])
            assert row["sd"] < 0.12
    assert bias.loc[("ptau", 12), "ci_high"] < 0
    tracking = summarise_draws(draws["tracking"].mean("month"), 0.95, 0.1).set_index("arm")
    for arm, value in TB_TRACKING.items():
        assert tracking.loc[arm, "mean"] == pytest.approx(value, abs=0.08), arm
    therapist_sd = idata["posterior"]["1|therapist_id_sigma"]
    low, high = np.quantile(therapist_sd, [0.025, 0.975])
    assert low < TB_THERAPIST_SD < high and low > 0.05


def test_posterior_predictive_replicates_both_ratings_jointly():
    """Replicated pairs carry the residual correlation (the therapist's rating is drawn given the
    replicated patient rating, not the observed one); single ratings are replicated as well."""
    n = 400
    pairs = pd.DataFrame(
        {
            "patient_id": [f"p{i:03d}" for i in range(n)],
            "arm": pd.Categorical(["digital"] * (n // 2) + ["ptau"] * (n // 2), list(ARMS)),
            "therapist_id": "t1",
            "month": 3,
            "time": 0.0,
            "patient": 6.0,
            "therapist": 5.0,
        }
    )
    pairs.loc[:9, "patient"] = np.nan  # ten therapist-only assessments
    config = load_config()
    model = build_agreement_model(pairs, config["agreement"]["priors"])
    rows = rating_rows(pairs)
    assert rows.paired.sum() == n - 10 and len(rows.patient) == n - 10
    fixed = {
        "level": np.array([[6.0, 5.0], [6.0, 5.0]]),
        "change": np.zeros((2, 2)),
        "patient_level_sd": np.full((2, 2), 1e-6),
        "patient_change_sd": np.full((2, 2), 1e-6),
        "level_corr_01": np.full(2, 0.5),
        "change_corr_01": np.full(2, 0.5),
        "patient_level_z": np.zeros((n, 2)),
        "patient_change_z": np.zeros((n, 2)),
        "therapist_sd": np.full(2, 1e-6),
        "therapist_z": np.zeros((1, 2)),
        "residual_sd": np.full((2, 2), 0.5),
        "residual_corr_01": np.array([0.9, 0.5]),  # correlations 0.8 and 0
    }
    posterior = xr.Dataset(
        {
            name: (("chain", "draw", *model.named_vars_to_dims[name]), np.asarray(v)[None, None])
            for name, v in fixed.items()
        },
        coords={name: list(values) for name, values in model.coords.items()},
    )
    replicated = posterior_predictive(
        model, posterior, seed=3, var_names=["patient_rating", "therapist_rating"]
    )
    patient = replicated["patient_rating"].values[0, 0][rows.partner[rows.paired]]
    therapist = replicated["therapist_rating"].values[0, 0][rows.paired]
    arm = pairs["arm"].to_numpy()[rows.therapist[rows.paired]]
    for name, corr in (("digital", 0.8), ("ptau", 0.0)):
        r = np.corrcoef(patient[arm == name], therapist[arm == name])[0, 1]
        assert r == pytest.approx(corr, abs=0.15), name  # SE of r with ~195 pairs is <= 0.07
    single = replicated["therapist_rating"].values[0, 0][~rows.paired]
    assert single.std() == pytest.approx(0.5, abs=0.2) and single.mean() == pytest.approx(
        5, abs=0.3
    )


@pytest.mark.parametrize("section", ["agreement", "growth"])
def test_a_model_familys_draws_are_a_multiple_of_the_global_draws(section):
    from alliance.sampling import model_sampling

    setting = {"draws_multiplier": 1.5} if section == "agreement" else {"thin": 3}
    config = load_config({"sampling": {"draws": 150}, section: setting})
    sampling = model_sampling(config, section)
    expected = {"agreement": (225, 1), "growth": (150, 3)}[section]
    assert (sampling["draws"], sampling["thin"]) == expected
    assert config["sampling"]["draws"] == 150
    assert {k: v for k, v in sampling.items() if k not in ("draws", "thin")} == {
        k: v for k, v in config["sampling"].items() if k != "draws"
    }
    # No setting: as configured.
    assert model_sampling(config, "association")["draws"] == 150
    assert model_sampling(config, "association")["thin"] == 1


def test_likelihood_is_the_bivariate_normal_density_of_each_assessment():
    """At an arbitrary parameter value the model's log-likelihood equals, assessment by
    assessment, the bivariate normal density of a rated pair (the marginal normal for a single
    rating), with means built from the arm, patient and therapist terms as the docstring says."""
    from pymc.model.transform.conditioning import remove_value_transforms
    from scipy import stats

    rng = np.random.default_rng(5)
    n = 40
    pairs = pd.DataFrame(
        {
            "patient_id": np.repeat([f"p{i:02d}" for i in range(n // 2)], 2),
            "arm": pd.Categorical(np.repeat(["digital", "ptau"], n // 2), list(ARMS)),
            "therapist_id": np.tile(["t1", "t2", "t3", "t4"], n // 4),
            "time": np.tile([0.0, 1.0], n // 2),
            "patient": rng.normal(6, 0.7, n),
            "therapist": rng.normal(5.5, 0.7, n),
        }
    )
    pairs["month"] = np.where(pairs["time"] == 0, 3, 12)
    pairs.loc[[3, 17], "patient"] = np.nan
    pairs.loc[[8, 30, 31], "therapist"] = np.nan
    model = remove_value_transforms(
        build_agreement_model(pairs, load_config()["agreement"]["priors"])
    )
    n_patients, n_therapists = n // 2, 4
    value = {
        "level": rng.normal(5.5, 0.3, (2, 2)),
        "change": rng.normal(0, 0.2, (2, 2)),
        "patient_level_sd": rng.uniform(0.3, 0.8, (2, 2)),
        "patient_change_sd": rng.uniform(0.1, 0.4, (2, 2)),
        "level_corr_01": rng.uniform(0.2, 0.8, 2),
        "change_corr_01": rng.uniform(0.2, 0.8, 2),
        "patient_level_z": rng.normal(0, 1, (n_patients, 2)),
        "patient_change_z": rng.normal(0, 1, (n_patients, 2)),
        "therapist_sd": rng.uniform(0.1, 0.3, 2),
        "therapist_z": rng.normal(0, 1, (n_therapists, 2)),
        "residual_sd": rng.uniform(0.3, 0.6, (2, 2)),
        "residual_corr_01": rng.uniform(0.1, 0.9, 2),
    }
    log_lik = model.compile_logp(vars=model.observed_RVs)(value)

    def effects(kind):  # patient effects of both raters, correlated within the patient
        sd, rho = value[f"patient_{kind}_sd"], 2 * value[f"{kind}_corr_01"] - 1
        z = value[f"patient_{kind}_z"]
        arm = pairs.drop_duplicates("patient_id")["arm"].cat.codes.to_numpy()
        first = sd[arm, 0] * z[:, 0]
        second = sd[arm, 1] * (rho[arm] * z[:, 0] + np.sqrt(1 - rho[arm] ** 2) * z[:, 1])
        return np.column_stack([first, second])

    u, w = effects("level"), effects("change")
    v = value["therapist_z"] * value["therapist_sd"]
    arm = pairs["arm"].cat.codes.to_numpy()
    patient = np.repeat(np.arange(n_patients), 2)
    therapist = pairs["therapist_id"].str[1].astype(int).to_numpy() - 1
    t = pairs["time"].to_numpy()
    mean = (
        value["level"][arm]
        + value["change"][arm] * t[:, None]
        + u[patient]
        + w[patient] * t[:, None]
    )
    mean = mean + v[therapist]
    expected = 0.0
    for row in range(n):
        sd = value["residual_sd"][arm[row]]
        rho = 2 * value["residual_corr_01"][arm[row]] - 1
        y = pairs.loc[row, ["patient", "therapist"]].to_numpy(dtype=float)
        rated = ~np.isnan(y)
        if rated.all():
            cov = np.array([[sd[0] ** 2, rho * sd[0] * sd[1]], [rho * sd[0] * sd[1], sd[1] ** 2]])
            expected += stats.multivariate_normal(mean[row], cov).logpdf(y)
        else:
            expected += stats.norm(mean[row][rated], sd[rated]).logpdf(y[rated]).sum()
    assert log_lik == pytest.approx(expected, rel=1e-10)
