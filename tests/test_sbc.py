"""Simulation-based calibration: ranks, the uniformity test and one growth-model simulation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from alliance.sbc import SBC_COLUMNS, ranks, sbc_table, scalar_parameters, uniformity_p


def test_uniform_ranks_pass_and_piled_up_ranks_fail():
    kept = 99
    rng = np.random.default_rng(1)
    assert uniformity_p(np.tile(np.arange(kept + 1), 2), kept) == pytest.approx(1.0)
    assert uniformity_p(rng.integers(0, kept + 1, 400), kept) > 0.001
    # A posterior too narrow for its prior: the truth falls in the tails.
    tails = np.concatenate([rng.integers(0, 5, 100), rng.integers(95, 100, 100)])
    assert uniformity_p(tails, kept) < 1e-10
    # Ten ranks in 20 bins would expect half a rank per bin: 2 bins of 5 expected each.
    assert uniformity_p(np.zeros(10, dtype=int), kept) < 0.01
    assert uniformity_p(np.zeros(4, dtype=int), kept) == 1.0  # too few for any test


def test_a_rank_counts_the_kept_draws_below_the_truth():
    posterior = {"a": np.arange(1000.0), "b": np.arange(1000.0)}
    result = ranks(posterior, {"a": 500.5, "b": -1.0}, kept=99)
    kept_draws = np.linspace(0, 999, 99).round()
    assert result == {"a": int(np.sum(kept_draws < 500.5)), "b": 0}


def test_only_population_level_parameters_are_ranked():
    dims = ("chain", "draw")
    draws = xr.Dataset(
        {
            "Intercept": (dims, np.zeros((2, 3))),
            "arm": ((*dims, "arm_dim"), np.zeros((2, 3, 1))),
            "1|patient_id": ((*dims, "patient"), np.zeros((2, 3, 5))),
            "1|patient_id_sigma": (dims, np.ones((2, 3))),
            "mu": ((*dims, "obs"), np.zeros((2, 3, 7))),
            "sigma": (dims, np.ones((2, 3))),
        }
    )
    values = scalar_parameters(draws)
    assert sorted(values) == ["1|patient_id_sigma", "Intercept", "arm", "sigma"]
    assert all(v.shape == (6,) for v in values.values())


def test_the_sbc_table_has_one_row_per_model_and_parameter():
    rows = pd.DataFrame(
        {
            "model": ["m"] * 20 + ["n"] * 10,
            "simulation": list(range(20)) + list(range(10)),
            "parameter": ["a", "b"] * 10 + ["a"] * 10,
            "rank": np.arange(30) % 10,
        }
    )
    table = sbc_table(rows, kept=9)
    assert list(table.columns) == SBC_COLUMNS
    assert table[["model", "parameter", "n_simulations"]].values.tolist() == [
        ["m", "a", 10],
        ["m", "b", 10],
        ["n", "a", 10],
    ]


@pytest.mark.slow
def test_one_growth_simulation_ranks_every_population_parameter(config, twin):
    from alliance.analysis_tables import alliance_table
    from alliance.growth import growth_data
    from alliance.input_data import TrialData
    from alliance.sbc import growth_sbc_simulation
    from alliance.seeds import job_seeds

    trial = TrialData(twin.patients, twin.wai, twin.digital)
    alliance = alliance_table(trial, config["instrument"])
    data = growth_data(alliance, "patient", config["instrument"])
    settings = {
        "priors": config["growth"]["priors"],
        "sampling": {**config["sampling"], "chains": 2, "draws": 200, "tune": 200},
        "sbc": {"kept_draws": 99},
    }
    result = growth_sbc_simulation(
        data, config["growth"]["models"]["linear"], settings, job_seeds(1, "sbc", {})
    )
    assert set(result) == {
        "Intercept",
        "arm",
        "time",
        "arm:time",
        "sigma",
        "1|patient_id_sigma",
        "time|patient_id_sigma",
        "1|therapist_id_sigma",
    }
    assert all(0 <= rank <= 99 for rank in result.values())
    with pytest.raises(ValueError, match="Gaussian"):
        growth_sbc_simulation(data, config["growth"]["models"]["linear_censored"], settings, None)
