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


@pytest.fixture(scope="module")
def design_tables(config):
    from alliance.validation import scenario_config, simulate_tables

    return simulate_tables(scenario_config(config, None), 3)


@pytest.mark.slow
def test_one_growth_simulation_ranks_every_population_parameter(config, design_tables):
    from alliance.refit import CompiledModel
    from alliance.sbc import sbc_simulation
    from alliance.seeds import job_seeds
    from alliance.validation import sbc_design

    settings = {
        "sampling": {**config["sampling"], "chains": 2, "draws": 200, "tune": 200},
        "sbc": {"kept_draws": 99},
    }
    label, model, inputs = sbc_design("growth_patient", design_tables, config)
    assert label == "growth_patient_linear"
    compiled = CompiledModel(model)
    results = [
        sbc_simulation(compiled, inputs, settings, job_seeds(1, "sbc", {"s": s})) for s in "12"
    ]
    # One compilation, two simulations with their own truths.
    assert compiled.fits == 2
    for result in results:
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
    assert results[0] != results[1]
    censored = {**config["growth"], "reported_model": "linear_censored"}
    with pytest.raises(ValueError, match="Gaussian"):
        sbc_design("growth_patient", design_tables, {**config, "growth": censored})


class RecordingModel:
    """Stands in for a compiled model: records the inputs it is fitted on and returns prior
    draws as the posterior (the ranks' machinery, without sampling)."""

    def __init__(self, model):
        self.model = model
        self.inputs = []

    def fit(self, inputs, sampling, seed):
        import xarray as xr

        from alliance.sampling import sample_pymc_prior

        self.inputs.append(inputs)
        prior = sample_pymc_prior(self.model, 40, seed)
        return xr.DataTree.from_dict({"posterior": prior["prior"].to_dataset()})


@pytest.mark.parametrize("model_name", ["agreement", "association_patient"])
def test_a_simulation_replaces_every_observed_variable_and_keeps_the_design(
    config, design_tables, model_name
):
    """The outcome and, for the association model, every observed predictor cell are drawn from
    the prior; the design (who is observed, where, with which missing cells) is kept."""
    from alliance.sbc import sbc_simulation
    from alliance.seeds import job_seeds
    from alliance.validation import sbc_design

    label, model, inputs = sbc_design(model_name, design_tables, config)
    recording = RecordingModel(model)
    settings = {"sampling": {}, "sbc": {"kept_draws": 39}}
    ranks = sbc_simulation(recording, inputs, settings, job_seeds(1, "sbc", {}))
    (simulated,) = recording.inputs
    observed = {model.rvs_to_values[rv].name for rv in model.observed_RVs}
    assert observed == {n for n in inputs if n.endswith(("_observed", "_observed_values"))}
    if model_name == "association_patient":
        assert {"wai_observed", "sus_observed_values", "age_observed_values"} <= observed
    for name, values in inputs.items():
        assert simulated[name].shape == values.shape, name
        if name in observed:
            assert not np.allclose(simulated[name], values), name
        else:
            assert np.array_equal(simulated[name], values), name
    # Ranks of population-level parameters only: no per-patient or imputed variables, and no
    # constants (the reference month's effect, a correlation matrix's diagonal).
    assert ranks and all(0 <= r <= 39 for r in ranks.values())
    assert not [p for p in ranks if p.split("[")[0].endswith(("_z", "_offset"))]
    assert "month_effect[0]" not in ranks
