"""Aim (b): the bivariate agreement model recovers the twin's agreement and tells strong apart."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from alliance.agreement import (
    QUANTITY_PARAMETERS,
    MarginalAgreementModel,
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
from alliance.sampling import posterior_predictive
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
    # As the workflow fits it: sampled with the patient effects integrated out, drawn afterwards.
    compiled = MarginalAgreementModel(pairs, config["agreement"]["priors"])
    idata = compiled.fit({}, config["sampling"], seed=21)
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
        **agreement_point(rng, n_therapists),
        "patient_level_z": rng.normal(0, 1, (n_patients, 2)),
        "patient_change_z": rng.normal(0, 1, (n_patients, 2)),
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


# --- The marginal model: the patient effects integrated out ------------------------------------


def three_visit_pairs(seed: int = 5, n_patients: int = 24) -> pd.DataFrame:
    """Pairs of a small trial at months 3, 6 and 12, with pairs, single ratings of either rater
    and missing assessments, therapists shared across arms."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_patients):
        arm = ARMS[0] if i < n_patients // 2 else ARMS[1]
        for month, time in zip((3, 6, 12), (0.0, 1 / 3, 1.0), strict=True):
            rated = rng.choice(["both", "both", "patient", "therapist", "none"])
            if rated == "none" and i % 6:  # every sixth patient is rated at every visit
                continue
            patient = rng.normal(6, 0.7) if rated in ("both", "patient") else np.nan
            therapist = rng.normal(5.5, 0.7) if rated in ("both", "therapist") else np.nan
            if rated == "none":
                patient, therapist = rng.normal(6, 0.7), rng.normal(5.5, 0.7)
            rows.append((f"p{i:02d}", arm, f"t{i % 5}", month, time, patient, therapist))
    columns = ["patient_id", "arm", "therapist_id", "month", "time", "patient", "therapist"]
    pairs = pd.DataFrame(rows, columns=columns)
    pairs["arm"] = pd.Categorical(pairs["arm"], list(ARMS))
    return pairs


def agreement_point(rng, n_therapists: int) -> dict:
    """A value of every parameter of the agreement model but the patient effects."""
    return {
        "level": rng.normal(5.5, 0.3, (2, 2)),
        "change": rng.normal(0, 0.2, (2, 2)),
        "patient_level_sd": rng.uniform(0.3, 0.8, (2, 2)),
        "patient_change_sd": rng.uniform(0.1, 0.4, (2, 2)),
        "level_corr_01": rng.uniform(0.1, 0.9, 2),
        "change_corr_01": rng.uniform(0.1, 0.9, 2),
        "therapist_sd": rng.uniform(0.1, 0.3, 2),
        "therapist_z": rng.normal(0, 1, (n_therapists, 2)),
        "residual_sd": rng.uniform(0.3, 0.6, (2, 2)),
        "residual_corr_01": rng.uniform(0.1, 0.9, 2),
    }


def point_as_draws(value, draws: int) -> xr.Dataset:
    """``value`` (:func:`agreement_point`) as ``draws`` identical posterior draws, with the
    correlations as the model's deterministics."""
    dims = {
        "level": ("arm", "rater"),
        "change": ("arm", "rater"),
        "patient_level_sd": ("arm", "rater"),
        "patient_change_sd": ("arm", "rater"),
        "therapist_sd": ("rater",),
        "therapist_z": ("therapist", "rater"),
        "residual_sd": ("arm", "rater"),
    }
    variables = {
        name: (
            ("chain", "draw", *dims[name]),
            np.broadcast_to(value[name], (1, draws, *np.shape(value[name]))),
        )
        for name in dims
    }
    for kind in ("level", "change", "residual"):
        corr = 2 * value[f"{kind}_corr_01"] - 1
        variables[f"{kind}_corr"] = (("chain", "draw", "arm"), np.broadcast_to(corr, (1, draws, 2)))
    return xr.Dataset(variables, coords={"chain": [0], "draw": np.arange(draws)})


def dense_patient_model(pairs, value, therapists, patient_id):
    """Patient ``patient_id``'s ratings as the module docstring defines them, in dense matrices:
    the ratings y, their mean without the patient effects, the effects' design Z (columns:
    patient-rated level and change, therapist-rated level and change), the effects' covariance D
    and the residual covariance R (the two ratings of one month correlated)."""
    rows = pairs[pairs["patient_id"] == patient_id]
    arm = ARMS.index(rows["arm"].iloc[0])
    v = value["therapist_z"] * value["therapist_sd"]
    sd, rho = value["residual_sd"][arm], 2 * value["residual_corr_01"][arm] - 1
    ratings = [
        (r, row.time, row.month, getattr(row, rater), therapists.index(row.therapist_id))
        for row in rows.itertuples()
        for r, rater in enumerate(("patient", "therapist"))
        if not np.isnan(getattr(row, rater))
    ]
    y = np.array([rating[3] for rating in ratings])
    mean = np.array(
        [
            value["level"][arm, r] + value["change"][arm, r] * t + v[th, r]
            for r, t, _, _, th in ratings
        ]
    )
    z = np.zeros((len(ratings), 4))
    for k, (r, t, *_) in enumerate(ratings):
        z[k, 2 * r : 2 * r + 2] = (1.0, t)
    d = np.zeros((4, 4))
    for column, kind in enumerate(("level", "change")):
        s, c = value[f"patient_{kind}_sd"][arm], 2 * value[f"{kind}_corr_01"][arm] - 1
        block = np.array([[s[0] ** 2, c * s[0] * s[1]], [c * s[0] * s[1], s[1] ** 2]])
        d[np.ix_([column, column + 2], [column, column + 2])] = block
    residual = np.array(
        [
            [
                (sd[r] ** 2 if r == q else rho * sd[0] * sd[1]) if m == n else 0.0
                for q, _, n, _, _ in ratings
            ]
            for r, _, m, _, _ in ratings
        ]
    )
    return y, mean, z, d, residual


def dense_conditional(pairs, value, therapists, patient_id):
    """Mean and covariance of a patient's four effects given the ratings and ``value``:
    precision D^-1 + Z' R^-1 Z, mean (D^-1 + Z' R^-1 Z)^-1 Z' R^-1 (y - mean), dense."""
    y, fixed, design, d, residual = dense_patient_model(pairs, value, therapists, patient_id)
    weight = np.linalg.inv(residual)
    covariance = np.linalg.inv(np.linalg.inv(d) + design.T @ weight @ design)
    return covariance @ design.T @ weight @ (y - fixed), covariance


def effects_from_z(z, value, position, arm) -> np.ndarray:
    """The patient's four effects (draw x effect, in dense_patient_model's column order: patient
    level, patient change, therapist level, therapist change) from the drawn z's of the
    patient at ``position``, built as build_agreement_model builds them."""
    effects = {}
    for kind in ("level", "change"):
        sd, rho = value[f"patient_{kind}_sd"][arm], 2 * value[f"{kind}_corr_01"][arm] - 1
        z0, z1 = (z[f"patient_{kind}_z"].to_numpy()[0, :, position, r] for r in (0, 1))
        effects[kind] = (sd[0] * z0, sd[1] * (rho * z0 + np.sqrt(1 - rho**2) * z1))
    return np.column_stack(
        [effects["level"][0], effects["change"][0], effects["level"][1], effects["change"][1]]
    )


def test_the_marginal_agreement_model_is_the_full_model_with_the_patient_effects_integrated_out():
    """At a random point the marginal model's log density equals the full model's priors on
    every parameter but the patient effects plus, patient by patient, SciPy's multivariate normal
    density of the patient's ratings with covariance Z D Z' + R (dense; the ratings of one month
    correlated); a randomised patient without a rating adds nothing."""
    from pymc.model.transform.conditioning import remove_value_transforms
    from scipy import stats

    from alliance.agreement import (
        agreement_inputs,
        build_marginal_agreement_model,
        integrated_patient_log_density,
        marginal_agreement_inputs,
    )

    pairs = three_visit_pairs()
    priors = load_config()["agreement"]["priors"]
    patients = [*sorted(pairs["patient_id"].unique()), "p_unrated"]
    therapists = sorted(pairs["therapist_id"].unique())
    value = agreement_point(np.random.default_rng(7), len(therapists))
    marginal = remove_value_transforms(
        build_marginal_agreement_model(pairs, priors, patients, therapists)
    )
    full = remove_value_transforms(build_agreement_model(pairs, priors, patients, therapists))
    effects = {f"patient_{kind}_z": np.zeros((len(patients), 2)) for kind in ("level", "change")}
    priors_part = full.compile_logp(vars=[full[name] for name in value])({**value, **effects})
    ratings_part = 0.0
    for patient in patients[:-1]:
        y, mean, z, d, residual = dense_patient_model(pairs, value, therapists, patient)
        ratings_part += stats.multivariate_normal(mean, z @ d @ z.T + residual).logpdf(y)
    assert marginal.compile_logp()(value) == pytest.approx(priors_part + ratings_part, rel=1e-10)
    # The NumPy form (per patient, at a draw) is the same density.
    posterior = point_as_draws(value, draws=1)
    per_patient = integrated_patient_log_density(
        posterior,
        marginal_agreement_inputs(agreement_inputs(pairs, patients, therapists)),
        len(patients),
    )
    assert per_patient[-1, 0] == pytest.approx(0.0, abs=1e-12)  # the patient without a rating
    assert per_patient.sum() == pytest.approx(ratings_part, rel=1e-10)


def test_the_agreement_models_patient_effects_are_drawn_from_their_conditional_posterior():
    """Given a draw of the other parameters, a patient's four effects are normal with precision
    D^-1 + Z' R^-1 Z and mean (D^-1 + Z' R^-1 Z)^-1 Z' R^-1 (y - mean) (dense algebra here): the
    effects built from 20,000 conditional draws of z at one point, as the full model builds
    them, have that mean and covariance, for a patient rated by both at every visit, one with
    some single ratings, and one without a rating (the prior)."""
    from alliance.agreement import agreement_inputs as inputs_of
    from alliance.agreement import conditional_patient_effects, marginal_agreement_inputs

    pairs = three_visit_pairs()
    patients = [*sorted(pairs["patient_id"].unique()), "p_unrated"]
    therapists = sorted(pairs["therapist_id"].unique())
    value = agreement_point(np.random.default_rng(8), len(therapists))
    draws = 20_000
    posterior = point_as_draws(value, draws)
    coords = {"patient": patients, "rater": ["patient", "therapist"]}
    z = conditional_patient_effects(
        posterior,
        marginal_agreement_inputs(inputs_of(pairs, patients, therapists)),
        coords,
        np.random.default_rng(9),
    )
    counts = pairs.groupby("patient_id")[["patient", "therapist"]].count().sum(axis=1)
    chosen = [counts.idxmax(), counts[counts < counts.max()].index[0], "p_unrated"]
    for patient in chosen:
        position = patients.index(patient)
        if patient == "p_unrated":  # the prior, of the stand-in arm (the first)
            arm = 0
            _, _, _, d, _ = dense_patient_model(pairs, value, therapists, patients[0])
            covariance, mean = d, np.zeros(4)
        else:
            arm = ARMS.index(pairs.loc[pairs["patient_id"] == patient, "arm"].iloc[0])
            mean, covariance = dense_conditional(pairs, value, therapists, patient)
        sample = effects_from_z(z, value, position, arm)
        standard_error = np.sqrt(np.diag(covariance) / draws)
        assert np.all(np.abs(sample.mean(axis=0) - mean) < 4 * standard_error), patient
        np.testing.assert_allclose(
            np.cov(sample.T), covariance, atol=0.03 * np.abs(covariance).max()
        )


class UnitNoise:
    """A random generator whose standard normal draws are the unit vectors: draw k of a
    patient's noise is e_k (k < 4), draw 4 is zero."""

    def standard_normal(self, shape):
        noise = np.zeros(shape)
        for k in range(shape[0]):
            noise[k, :, k] = 1.0
        return noise


def test_the_agreement_models_conditional_draws_have_the_exact_mean_and_covariance():
    """With the noise replaced by the unit vectors (and zero), the conditional draws are
    deterministic: the draw without noise is the conditional mean, and the deviations of the
    four others are the columns of a square root of the conditional covariance (dense algebra,
    rel. 1e-9), for every rated patient."""
    from alliance.agreement import agreement_inputs as inputs_of
    from alliance.agreement import conditional_patient_effects, marginal_agreement_inputs

    pairs = three_visit_pairs(seed=11)
    patients = sorted(pairs["patient_id"].unique())
    therapists = sorted(pairs["therapist_id"].unique())
    value = agreement_point(np.random.default_rng(12), len(therapists))
    z = conditional_patient_effects(
        point_as_draws(value, 5),
        marginal_agreement_inputs(inputs_of(pairs, patients, therapists)),
        {"patient": patients, "rater": ["patient", "therapist"]},
        UnitNoise(),
    )
    for position, patient in enumerate(patients):
        arm = ARMS.index(pairs.loc[pairs["patient_id"] == patient, "arm"].iloc[0])
        mean, covariance = dense_conditional(pairs, value, therapists, patient)
        draws = effects_from_z(z, value, position, arm)
        np.testing.assert_allclose(draws[4], mean, rtol=1e-9, atol=1e-12)
        root = (draws[:4] - draws[4]).T  # column k: the deviation of draw k
        np.testing.assert_allclose(root @ root.T, covariance, rtol=1e-9, atol=1e-12)
