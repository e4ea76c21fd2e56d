"""Model choice for aim (a): leave-patient-out K-fold cross-validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import logsumexp


def patients_of(n_digital: int, n_ptau: int) -> pd.DataFrame:
    """Two assessments per patient; ids in no particular order."""
    ids = [f"P{i:03d}" for i in range(n_digital + n_ptau)][::-1]
    arms = ["digital"] * n_digital + ["ptau"] * n_ptau
    one = pd.DataFrame({"patient_id": ids, "arm": arms})
    return pd.concat([one, one], ignore_index=True)


def test_folds_deal_each_arm_round_the_folds():
    from alliance.cross_validation import patient_folds

    data = patients_of(23, 21)
    folds = patient_folds(data, 5, seed=3)
    assert sorted(folds.index) == sorted(data["patient_id"].unique())
    sizes = folds.value_counts()
    assert sorted(sizes.index) == [0, 1, 2, 3, 4] and sizes.max() - sizes.min() <= 1
    arm_of = data.drop_duplicates("patient_id").set_index("patient_id")["arm"]
    for _, arm_folds in folds.groupby(arm_of.loc[folds.index].to_numpy()):
        per_arm = arm_folds.value_counts()
        assert len(per_arm) == 5 and per_arm.max() - per_arm.min() <= 1
    assert folds.equals(patient_folds(data, 5, seed=3))
    assert not folds.equals(patient_folds(data, 5, seed=4))


def test_folds_need_two_folds_and_enough_patients():
    from alliance.cross_validation import patient_folds

    with pytest.raises(ValueError, match="at least 2 folds"):
        patient_folds(patients_of(5, 5), 1, seed=0)
    with pytest.raises(ValueError, match="cannot fill"):
        patient_folds(patients_of(2, 1), 4, seed=0)


def test_a_patients_log_predictive_is_the_log_mean_over_draws_of_the_joint_density():
    from alliance.cross_validation import patient_log_predictive

    rng = np.random.default_rng(1)
    pointwise = rng.normal(-1.0, 0.7, (400, 7))
    codes = np.array([2, 0, 2, 1, 0, 2, 1])
    result = patient_log_predictive(pointwise, codes)
    for code in range(3):
        joint = pointwise[:, codes == code].sum(axis=1)
        assert result[code] == pytest.approx(logsumexp(joint) - np.log(400))
    # Jensen: the log of the mean density exceeds the mean log density.
    assert result[0] > pointwise[:, codes == 0].sum(axis=1).mean()


def test_comparison_pairs_patients_and_leaves_other_likelihoods_unpaired():
    from alliance.cross_validation import kfold_comparison

    rng = np.random.default_rng(2)
    ids = [f"P{i}" for i in range(50)]
    base = rng.normal(-2.0, 0.8, 50)
    better = base + rng.normal(0.2, 0.1, 50)

    def table(values, order=slice(None)):
        frame = pd.DataFrame({"patient_id": ids, "fold": np.arange(50) % 5, "elpd": values})
        return frame.iloc[order]

    specs = {
        "linear": {"likelihood": "gaussian"},
        "linear_arm_sd": {"likelihood": "gaussian"},
        "linear_censored": {"likelihood": "censored_gaussian"},
    }
    rows = kfold_comparison(
        {
            "linear": table(base),
            "linear_arm_sd": table(better, slice(None, None, -1)),  # other row order
            "linear_censored": table(base + 5),
        },
        specs,
        "linear",
    ).set_index("model")
    difference = better - base
    assert rows.loc["linear_arm_sd", "elpd_vs_baseline"] == pytest.approx(difference.sum())
    assert rows.loc["linear_arm_sd", "se_vs_baseline"] == pytest.approx(
        np.sqrt(50 * difference.var())
    )
    assert rows.loc["linear", "elpd_kfold"] == pytest.approx(base.sum())
    assert rows.loc["linear", "se_kfold"] == pytest.approx(np.sqrt(50 * base.var()))
    assert rows.loc["linear", "n_folds"] == 5
    assert np.isnan(rows.loc["linear_censored", "elpd_vs_baseline"])


def growth_table(n_patients: int, residual_sd: dict, seed: int) -> pd.DataFrame:
    """One rater's growth data (as alliance.growth.growth_data gives): 6 therapists, patient
    levels and changes, a residual SD per arm, three months, no total near the ceiling."""
    from alliance.design import ARMS

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_patients):
        arm = ARMS[i % 2]
        therapist = f"T{i % 6}"
        level, change = 5.0 + rng.normal(0, 0.5), 0.2 + rng.normal(0, 0.2)
        for month, time in ((3, 0.0), (6, 1 / 3), (12, 1.0)):
            total = level + change * time + rng.normal(0, residual_sd[arm])
            rows.append(
                {
                    "patient_id": f"P{i:03d}", "therapist_id": therapist, "centre": "C1",
                    "arm": arm, "month": month, "time": time, "wai_total": total,
                    "ceiling": "none",
                }
            )  # fmt: skip
    data = pd.DataFrame(rows)
    data["arm"] = pd.Categorical(data["arm"], categories=list(ARMS))
    return data


@pytest.mark.slow
def test_cross_validation_prefers_a_residual_sd_per_arm_where_the_arms_differ():
    """Data whose residual SD differs between arms (0.15 against 0.6): predicting left-out
    patients, the model with an SD per arm wins by well over two SEs; every patient is predicted
    once, from a fold fit without divergences."""
    from alliance.cross_validation import (
        compiled_growth_model,
        kfold_comparison,
        kfold_growth,
        patient_folds,
    )
    from alliance.seeds import job_seeds
    from alliance.settings import load_config

    config = load_config()
    data = growth_table(100, {"digital": 0.6, "ptau": 0.15}, seed=5)
    folds = patient_folds(data, 4, seed=1)
    sampling = {"chains": 1, "draws": 300, "tune": 400, "target_accept": 0.95}
    models = config["growth"]["models"]
    tables = {
        name: kfold_growth(
            data,
            compiled_growth_model(
                data, models[name], config["growth"]["priors"], 7.0,
                sorted(data["patient_id"].unique()), sorted(data["therapist_id"].unique()),
            ),
            folds, sampling, job_seeds(1, "cv", {"model": name}),
        )
        for name in ("linear", "linear_arm_sd")
    }  # fmt: skip
    for table in tables.values():
        assert sorted(table["patient_id"]) == sorted(data["patient_id"].unique())
        assert (table["fold_divergences"] == 0).all()
        assert (table["n_assessments"] == 3).all()
    rows = kfold_comparison(tables, models, "linear").set_index("model")
    gain, se = rows.loc["linear_arm_sd", ["elpd_vs_baseline", "se_vs_baseline"]]
    assert gain > 2 * se > 0


def test_new_patient_effects_replace_only_the_left_out_patients_offsets():
    """Each copy of the posterior keeps every parameter but the left-out patients' offsets on the
    patient factor, which are fresh standard-normal draws (new ones in every copy)."""
    import xarray as xr

    from alliance.cross_validation import with_new_patient_effects

    rng = np.random.default_rng(0)
    dims = ("chain", "draw", "patient_id__factor_dim")
    coords = {"chain": [0, 1], "draw": range(50), "patient_id__factor_dim": ["P1", "P2", "P3"]}
    posterior = xr.Dataset(
        {
            "1|patient_id_offset": (dims, np.full((2, 50, 3), 9.0)),
            "1|patient_id_sigma": (("chain", "draw"), rng.random((2, 50))),
            "1|therapist_id_offset": (("chain", "draw", "t"), np.full((2, 50, 2), 9.0)),
        },
        coords=coords,
    )
    copies = with_new_patient_effects(posterior, ["P2"], np.random.default_rng(1), 4)
    assert copies.sizes["draw"] == 200 and len(set(copies["draw"].to_numpy())) == 200
    offsets = copies["1|patient_id_offset"]
    assert (offsets.sel(patient_id__factor_dim=["P1", "P3"]) == 9.0).all()
    fresh = offsets.sel(patient_id__factor_dim="P2").to_numpy().ravel()
    assert abs(fresh.mean()) < 0.15 and 0.85 < fresh.std() < 1.15
    assert len(np.unique(fresh)) == fresh.size  # new draws in every copy
    assert (copies["1|therapist_id_offset"] == 9.0).all()
    sigma = copies["1|patient_id_sigma"].to_numpy()
    assert np.array_equal(sigma[:, :50], sigma[:, 50:100])


def test_models_cross_validated_on_other_folds_are_not_compared():
    from alliance.cross_validation import kfold_comparison

    ids = [f"P{i}" for i in range(10)]
    base = pd.DataFrame({"patient_id": ids, "fold": np.arange(10) % 2, "elpd": -1.0})
    other = base.assign(fold=(np.arange(10) + 1) % 2)
    specs = {"linear": {"likelihood": "gaussian"}, "monthly": {"likelihood": "gaussian"}}
    with pytest.raises(ValueError, match="other folds"):
        kfold_comparison({"linear": base, "monthly": other}, specs, "linear")
    with pytest.raises(ValueError, match="baseline 'linear' was not cross-validated"):
        kfold_comparison({"monthly": base}, specs, "linear")


def test_by_default_only_the_models_the_choice_needs_are_cross_validated(config):
    """An empty ``growth.cross_validation.models`` cross-validates the reported model and its
    alternatives (each once, in that order); a list is taken as it is."""
    from alliance.growth import cross_validated_models

    growth = {
        **config["growth"],
        "reported_model": "linear",
        "reported_alternatives": ["linear_arm_sd", "linear_arm_sd"],
        "cross_validation": {**config["growth"]["cross_validation"], "models": []},
    }
    assert cross_validated_models(growth) == ["linear", "linear_arm_sd"]
    assert cross_validated_models({**growth, "reported_alternatives": []}) == ["linear"]
    listed = {**growth["cross_validation"], "models": ["monthly", "linear", "linear_arm_sd"]}
    assert cross_validated_models({**growth, "cross_validation": listed}) == [
        "monthly",
        "linear",
        "linear_arm_sd",
    ]
