"""The safety net of every fit: a fit that fails a convergence check is sampled again with more
draws, up to the configured cap, and the checks it is judged by are those its check job runs."""

import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from alliance.diagnostics import fit_checks
from alliance.sampling import extension_draws, sample_until_converged

THRESHOLDS = {"max_rhat": 1.01, "min_ess": 400, "max_divergences": 0, "min_ebfmi": 0.3}


def iid_fit(chains: int, draws: int, seed: int) -> xr.DataTree:
    """A fit whose draws are independent: bulk ESS is about chains x draws."""
    rng = np.random.default_rng(seed)
    shape = (chains, draws)
    posterior = xr.Dataset(
        {"mu": (("chain", "draw"), rng.normal(size=shape))},
        coords={"chain": range(chains), "draw": range(draws)},
    )
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros(shape, dtype=bool))})
    return xr.DataTree.from_dict({"posterior": posterior, "sample_stats": stats})


def test_extension_schedule_doubles_the_draws_up_to_the_cap():
    assert extension_draws({"draws": 2000, "max_draws": 8000}) == [2000, 4000, 8000]
    assert extension_draws({"draws": 2000, "max_draws": 7999}) == [2000, 4000]
    assert extension_draws({"draws": 2000, "max_draws": 2000}) == [2000]
    assert extension_draws({"draws": 2000, "max_draws": 100}) == [2000]
    assert extension_draws({"draws": 2000}) == [2000]


def test_a_fit_that_fails_is_sampled_again_until_it_passes():
    calls = []

    def sample(sampling, attempt):
        calls.append((sampling["draws"], attempt))
        return iid_fit(sampling["chains"], sampling["draws"], seed=attempt)

    def checks(fit):
        return fit_checks(fit, None, "toy", {**THRESHOLDS, "min_ess": 1000})

    # Independent draws, so ESS is about 2 x draws: 100, 200, 400 and 800 are well below the
    # 1000 required, 1600 well above.
    sampling = {"chains": 2, "draws": 50, "max_draws": 1000}
    fit = sample_until_converged(sample, checks, sampling)
    assert calls == [(50, 0), (100, 1), (200, 2), (400, 3), (800, 4)]
    assert fit["posterior"].sizes["draw"] == 800
    assert fit.attrs["draws_per_chain"] == 800
    assert fit.attrs["extensions"] == 4
    assert checks(fit)["passed"].all()
    # What was needed is part of the fit's diagnostics table (sampler rows, never failing).
    table = checks(fit).set_index("quantity")
    assert table.loc["draws_per_chain", "value"] == 800
    assert table.loc["extensions", "value"] == 4


def test_a_fit_that_passes_is_not_sampled_again():
    calls = []

    def sample(sampling, attempt):
        calls.append(attempt)
        return iid_fit(4, sampling["draws"], seed=1)

    fit = sample_until_converged(
        sample,
        lambda fit: fit_checks(fit, None, "toy", THRESHOLDS),
        {"chains": 4, "draws": 500, "max_draws": 8000},
    )
    assert calls == [0]
    assert fit.attrs["extensions"] == 0


def test_at_the_cap_the_failing_fit_is_returned_with_its_failures():
    def sample(sampling, attempt):
        return iid_fit(2, sampling["draws"], seed=attempt)

    def checks(fit):
        return fit_checks(fit, None, "toy", {**THRESHOLDS, "min_ess": 10_000})

    fit = sample_until_converged(sample, checks, {"draws": 100, "max_draws": 450})
    assert fit.attrs["draws_per_chain"] == 400
    assert fit.attrs["extensions"] == 2
    assert not checks(fit)["passed"].all()


def test_fit_checks_judge_parameters_and_reported_quantities():
    fit = iid_fit(4, 500, seed=3)
    stuck = np.repeat(np.arange(4.0)[:, None], 500, axis=1)  # every chain somewhere else
    quantities = xr.Dataset(
        {
            "good": (("chain", "draw"), fit["posterior"]["mu"].values * 2),
            "stuck": (
                ("chain", "draw"),
                stuck + np.random.default_rng(0).normal(0, 0.01, stuck.shape),
            ),
        }
    )
    table = fit_checks(fit, quantities, "toy", THRESHOLDS)
    passed = table.set_index("quantity")["passed"]
    assert passed["mu"] and passed["good"] and not passed["stuck"]
    assert set(table["kind"]) == {"parameter", "estimand", "sampler"}
    assert isinstance(table, pd.DataFrame)


def test_thinning_keeps_every_kth_draw_and_judges_the_sampler_on_all_transitions():
    from alliance.sampling import thinned

    chains, draws = 2, 300
    fit = iid_fit(chains, draws, seed=4)
    diverging = np.zeros((chains, draws), dtype=bool)
    diverging[0, 1] = diverging[1, 4] = True  # not at a kept draw (every 3rd: 2, 5, 8, ...)
    rng = np.random.default_rng(5)
    energy = np.zeros((chains, draws))
    for t in range(1, draws):  # strongly autocorrelated energy: E-BFMI about 0.2
        energy[:, t] = 0.9 * energy[:, t - 1] + rng.normal(size=chains)
    fit["sample_stats"] = xr.Dataset(
        {"diverging": (("chain", "draw"), diverging), "energy": (("chain", "draw"), energy)},
        coords={"chain": range(chains), "draw": range(draws)},
    )
    mu = fit["posterior"]["mu"].values.copy()
    kept = thinned(fit, 3)
    np.testing.assert_array_equal(kept["posterior"]["mu"].values, mu[:, 2::3])
    table = fit_checks(kept, None, "toy", THRESHOLDS).set_index("quantity")
    assert table.loc["divergences", "value"] == 2
    assert not table.loc["divergences", "passed"]
    assert table.loc["min_ebfmi", "value"] < 0.3
    assert not table.loc["min_ebfmi", "passed"]


def test_max_rhat_is_arviz_rank_normalised_rhat_of_the_worst_element():
    """The vectorised R-hat of the cross-validation's fold refits equals ArviZ's, element by
    element (the worst one reported): well-mixed chains near 1, one chain shifted far above it,
    an odd number of draws (the middle draw is dropped from the split, as ArviZ does)."""
    import arviz as az

    from alliance.diagnostics import max_rhat

    rng = np.random.default_rng(3)
    chains, draws = 4, 301
    mixed = rng.normal(size=(chains, draws, 5))
    shifted = rng.normal(size=(chains, draws))
    shifted[2] += 1.0
    skewed = rng.exponential(size=(chains, draws, 2, 3))
    posterior = xr.Dataset(
        {
            "mixed": (("chain", "draw", "a"), mixed),
            "shifted": (("chain", "draw"), shifted),
            "skewed": (("chain", "draw", "b", "c"), skewed),
        },
        coords={"chain": range(chains), "draw": range(draws)},
    )
    reference = az.rhat(posterior)
    for name in posterior.data_vars:
        assert max_rhat(posterior[[name]]) == pytest.approx(float(reference[name].max()), rel=1e-10)
    assert max_rhat(posterior) == pytest.approx(float(reference["shifted"]), rel=1e-10)
    assert max_rhat(posterior) > 1.05 and max_rhat(posterior[["mixed"]]) < 1.02


@pytest.mark.parametrize(("chains", "draws"), [(4, 301), (2, 50), (1, 100), (4, 5), (3, 1000)])
def test_diagnostics_table_equals_arviz_summary(chains, draws):
    """The vectorised R-hat, bulk ESS and tail ESS of every element equal ``arviz.summary``'s, with
    its row labels: autocorrelated and anticorrelated chains (Geyer's truncation at work), a shifted
    chain, a constant, ties, a missing draw, one chain (no R-hat), too few draws (NaN),
    an odd number of draws and labelled dimensions."""
    import arviz as az

    from alliance.diagnostics import variable_diagnostics

    rng = np.random.default_rng(chains * draws)
    autocorrelated = np.zeros((chains, draws, 6))
    noise = rng.normal(size=autocorrelated.shape)
    for i in range(1, draws):
        autocorrelated[:, i] = 0.9 * autocorrelated[:, i - 1] + noise[:, i]
    missing = rng.normal(size=(chains, draws, 2))
    missing[0, 0, 1] = np.nan
    shifted = rng.normal(size=(chains, draws))
    shifted[0] += 2
    alternating = np.resize([1.0, -1.0], (chains, draws)) + 0.01 * rng.normal(size=(chains, draws))
    draws_of = xr.Dataset(
        {
            "autocorrelated": (("chain", "draw", "k"), autocorrelated),
            "constant": (("chain", "draw"), np.ones((chains, draws))),
            "missing": (("chain", "draw", "j"), missing),
            "ties": (("chain", "draw"), rng.integers(0, 3, size=(chains, draws)).astype(float)),
            "shifted": (("chain", "draw"), shifted),
            "alternating": (("chain", "draw"), alternating),
            "skewed": (
                ("chain", "draw", "arm", "month"),
                rng.exponential(size=(chains, draws, 2, 3)),
            ),
        },
        coords={
            "chain": range(chains),
            "draw": range(draws),
            "k": list("abcdef"),
            "arm": ["digital", "ptau"],
            "month": [3, 6, 12],
        },
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        reference = pd.concat(
            [az.summary(draws_of[[n]], kind="diagnostics", round_to="none") for n in draws_of]
        )
    table = variable_diagnostics(draws_of, "toy", "parameter")
    assert list(table["quantity"]) == list(reference.index)
    assert "skewed[digital, 12]" in set(table["quantity"])
    for column in ("r_hat", "ess_bulk", "ess_tail"):
        np.testing.assert_allclose(
            table[column].to_numpy(float), reference[column].to_numpy(float), rtol=1e-10
        )
    finite = table.dropna(subset=["ess_bulk"])
    assert len(finite) == (0 if draws < 4 else len(table) - 1)  # the missing draw's element
    assert table["r_hat"].isna().all() == (chains == 1 or draws < 4)


def test_the_check_reuses_the_fits_statistics_only_for_the_same_draws(tmp_path):
    """The R-hat and ESS a fit's safety net computed, saved with the fit, are what its check job
    would compute from the saved draws (exactly, after the round trip through NetCDF), and are
    not used when a draw of the posterior or of a reported quantity, or a label, differs."""
    from alliance.diagnostics import (
        STATISTICS_GROUP,
        draw_diagnostics,
        draws_fingerprint,
        saved_draw_diagnostics,
        statistics_group,
    )
    from alliance.sampling import load_fit, save_fit

    rng = np.random.default_rng(11)
    chains, draws = 4, 300
    level = np.cumsum(rng.normal(size=(chains, draws, 2)), axis=1) * 0.1 + rng.normal(
        size=(chains, draws, 2)
    )
    fit = iid_fit(chains, draws, seed=3)
    fit["posterior"] = (
        fit["posterior"]
        .to_dataset()
        .assign(level=(("chain", "draw", "arm"), level))
        .assign_coords(arm=["digital", "ptau"])
    )
    posterior = fit["posterior"].to_dataset()
    estimands = xr.Dataset(
        {
            "arm_difference": posterior["level"].sel(arm="digital")
            - posterior["level"].sel(arm="ptau")
        }
    ).expand_dims(month=[3])
    table = draw_diagnostics(fit, estimands, "toy")
    fit["estimands"] = estimands
    fit[STATISTICS_GROUP] = statistics_group(table, draws_fingerprint(posterior, estimands))
    path = tmp_path / "fit.nc"
    save_fit(fit, path, {"label": "toy"})

    loaded = load_fit(path)
    saved_estimands = loaded["estimands"].to_dataset()
    reused = saved_draw_diagnostics(loaded, saved_estimands, "toy")
    computed = draw_diagnostics(loaded, saved_estimands, "toy")
    pd.testing.assert_frame_equal(reused, computed)
    assert list(reused["kind"].unique()) == ["parameter", "estimand"]
    pd.testing.assert_frame_equal(
        fit_checks(loaded, saved_estimands, "toy", THRESHOLDS, reused),
        fit_checks(loaded, saved_estimands, "toy", THRESHOLDS),
    )

    changed_draw = loaded.copy()
    values = changed_draw["posterior"]["level"].values.copy()
    values[1, 7, 0] += 1e-9
    changed_draw["posterior"] = (
        changed_draw["posterior"].to_dataset().assign(level=(("chain", "draw", "arm"), values))
    )
    assert saved_draw_diagnostics(changed_draw, saved_estimands, "toy") is None
    changed_quantity = saved_estimands.copy(deep=True)
    changed_quantity["arm_difference"][0, 0, 0] += 1e-9
    assert saved_draw_diagnostics(loaded, changed_quantity, "toy") is None
    relabelled = loaded.copy()
    relabelled["posterior"] = relabelled["posterior"].to_dataset().assign_coords(arm=["a", "b"])
    assert saved_draw_diagnostics(relabelled, saved_estimands, "toy") is None
    unsaved = xr.DataTree.from_dict(
        {"posterior": loaded["posterior"].to_dataset(), "estimands": saved_estimands}
    )
    assert saved_draw_diagnostics(unsaved, saved_estimands, "toy") is None
