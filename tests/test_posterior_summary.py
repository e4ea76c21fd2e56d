"""Posterior summaries and convergence judgements, on draws with known answers."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from alliance.diagnostics import judge
from alliance.growth import expected_capped, growth_contrasts
from alliance.posterior_summary import CONTRACT_COLUMNS, month_labels, summarise_draws


def normal_draws(mean, sd, shape=(4, 5000), seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(mean, sd, shape)


def test_summary_of_normal_draws():
    draws = xr.DataArray(
        np.stack([normal_draws(0.3, 0.1, seed=1), normal_draws(-0.05, 0.1, seed=2)], axis=-1),
        dims=("chain", "draw", "month"),
        coords={"month": [3, 12]},
    )
    table = summarise_draws(draws, ci_prob=0.9, rope=0.1, labels={"aim": "a", "rater": "patient"})
    first, second = table.iloc[0], table.iloc[1]
    assert first["month"] == 3 and first["rater"] == "patient"
    assert first["mean"] == pytest.approx(0.3, abs=0.01)
    assert first["ci_low"] == pytest.approx(0.3 - 1.645 * 0.1, abs=0.01)
    assert first["ci_high"] == pytest.approx(0.3 + 1.645 * 0.1, abs=0.01)
    assert first["prob_positive"] == pytest.approx(0.99865, abs=0.002)  # P(Z > -3)
    assert first["prob_in_rope"] == pytest.approx(0.0228, abs=0.005)  # P(Z < -2)
    assert second["prob_in_rope"] == pytest.approx(0.6247, abs=0.01)  # P(-1.5 < Z < 0.5)
    assert set(CONTRACT_COLUMNS) <= set(table.columns)
    assert (table["r_hat"] < 1.01).all() and (table["ess_bulk"] > 10000).all()


def test_rope_tail_probabilities_and_their_monte_carlo_errors():
    """P beyond the ROPE on each side, inside half and double the ROPE, and the MCSE of a
    probability: sqrt(p (1 - p) / n) for independent draws."""
    draws = xr.DataArray(normal_draws(0.1, 0.1, shape=(4, 25000), seed=4), dims=("chain", "draw"))
    row = summarise_draws(draws, 0.95, rope=0.2).iloc[0]
    assert row["prob_above_rope"] == pytest.approx(0.1587, abs=0.005)  # P(Z > 1)
    assert row["prob_below_rope"] == pytest.approx(0.0013, abs=0.001)  # P(Z < -3)
    assert row["prob_in_rope_half"] == pytest.approx(0.4772, abs=0.005)  # P(-2 < Z < 0)
    assert row["prob_in_rope_double"] == pytest.approx(0.99865, abs=0.002)  # P(-5 < Z < 3)
    p = row["prob_positive"]
    assert row["mcse_prob_positive"] == pytest.approx(np.sqrt(p * (1 - p) / 1e5), rel=0.1)
    p = row["prob_in_rope"]
    assert row["mcse_prob_in_rope"] == pytest.approx(np.sqrt(p * (1 - p) / 1e5), rel=0.1)
    certain = summarise_draws(draws + 10, 0.95, rope=0.2).iloc[0]
    assert certain["mcse_prob_positive"] == 0 and certain["mcse_prob_in_rope"] == 0


def test_monte_carlo_diagnostics_equal_arviz():
    """ESS (bulk, tail), R-hat and the MCSE of the mean and of both probabilities, computed for
    all elements at once, are ArviZ's numbers element by element: autocorrelated chains, a chain
    stuck elsewhere, a constant element (every draw on one side of 0 and outside the ROPE)."""
    import arviz as az

    rng = np.random.default_rng(11)
    chains, n = 4, 600
    autocorrelated = np.zeros((chains, n))
    for t in range(1, n):
        autocorrelated[:, t] = 0.8 * autocorrelated[:, t - 1] + rng.normal(0, 0.1, chains)
    stuck = rng.normal(0.05, 0.1, (chains, n))
    stuck[0] += 0.3
    columns = [autocorrelated, stuck, np.full((chains, n), 2.0), rng.normal(0, 0.1, (chains, n))]
    draws = xr.DataArray(
        np.stack(columns, axis=-1), dims=("chain", "draw", "term"), coords={"term": list("abcd")}
    )
    rope = 0.1
    table = summarise_draws(draws, 0.95, rope).set_index("term")
    for term in draws["term"].values:
        one = xr.Dataset({"q": draws.sel(term=term)})
        positive = xr.Dataset({"q": (one["q"] > 0).astype(float)})
        in_rope = xr.Dataset({"q": (abs(one["q"]) < rope).astype(float)})
        expected = {
            "ess_bulk": az.ess(one, method="bulk")["q"],
            "ess_tail": az.ess(one, method="tail")["q"],
            "r_hat": az.rhat(one)["q"],
            "mcse_mean": az.mcse(one)["q"],
            "mcse_prob_positive": az.mcse(positive)["q"],
            "mcse_prob_in_rope": az.mcse(in_rope)["q"],
        }
        for column, value in expected.items():
            value = float(value)
            if column.startswith("mcse_prob") and np.isnan(value):
                value = 0.0  # a constant indicator: no Monte Carlo error
            if np.isnan(value):
                assert np.isnan(table.loc[term, column]), (term, column)
            else:
                assert table.loc[term, column] == pytest.approx(value, rel=1e-9, abs=1e-12), (
                    term,
                    column,
                )
    assert table.loc["b", "r_hat"] > 1.1  # the stuck chain is seen
    assert table.loc["c", "mcse_prob_positive"] == 0 and table.loc["c", "mcse_prob_in_rope"] == 0


def test_scalar_quantity_and_stuck_chains_are_flagged():
    stuck = normal_draws(0, 1, seed=3)
    stuck[0] += 5  # one chain elsewhere: R-hat far above 1
    table = summarise_draws(xr.DataArray(stuck, dims=("chain", "draw")), 0.95, 0.1)
    assert len(table) == 1 and table.loc[0, "r_hat"] > 1.5
    judged = judge(table[["r_hat", "ess_bulk", "ess_tail"]], {"max_rhat": 1.01, "min_ess": 400})
    assert not judged["passed"].iloc[0]


def test_sampler_checks_are_judged():
    table = pd.DataFrame({"quantity": ["divergences", "min_ebfmi"], "value": [3, 0.5]})
    thresholds = {"max_divergences": 0, "min_ebfmi": 0.3}
    assert judge(table, thresholds)["passed"].tolist() == [False, True]


def test_contrasts_from_marginal_means():
    means = xr.DataArray(
        np.broadcast_to(np.array([[5.0, 5.2, 5.6], [6.0, 6.1, 6.2]]), (2, 3, 2, 3)),
        dims=("chain", "draw", "arm", "month"),
        coords={"arm": ["digital", "ptau"], "month": [3, 6, 12]},
    )
    contrasts = growth_contrasts(means)
    np.testing.assert_allclose(contrasts["arm_difference"][0, 0].values, [-1.0, -0.9, -0.6])
    assert float(contrasts["change_difference"][0, 0]) == pytest.approx(0.4)


def test_expected_capped_matches_simulation():
    rng = np.random.default_rng(0)
    for mean, sd in ((6.5, 0.8), (5.0, 0.5), (7.5, 1.0)):
        simulated = np.minimum(rng.normal(mean, sd, 400_000), 7).mean()
        assert expected_capped(np.float64(mean), np.float64(sd), 7) == pytest.approx(
            simulated, abs=0.005
        )
    # Labelled draws, element by element the closed form E[min(Y, u)] = mean - E[(Y - u)+].
    from scipy import stats

    means = xr.DataArray(np.linspace(4.0, 8.0, 9), dims="draw")
    sds = xr.DataArray(np.linspace(0.2, 1.5, 9), dims="draw")
    z = (means - 7) / sds
    closed_form = means - ((means - 7) * stats.norm.cdf(z) + sds * stats.norm.pdf(z))
    capped = expected_capped(means, sds, 7)
    assert isinstance(capped, xr.DataArray)
    np.testing.assert_allclose(capped.values, closed_form.values, rtol=1e-13)


def test_month_labels():
    assert month_labels(pd.Series([3.0, np.nan, 12.0])).tolist() == ["3", "", "12"]


def test_contraction_compares_the_posterior_spread_with_the_priors():
    """Posterior SD 0.5 against prior SD 1: contraction 1 - 0.25 = 0.75, and the prior interval is
    the prior's; a posterior as wide as its prior (SD 0.95 of 1) is not identified."""
    from alliance.posterior_summary import contraction, not_identified

    prior = xr.DataArray(normal_draws(0.0, 1.0, shape=(1, 20000), seed=3), dims=("chain", "draw"))
    informed = summarise_draws(
        xr.DataArray(normal_draws(0.3, 0.5, seed=4), dims=("chain", "draw")), 0.95, 0.2,
        prior=prior,
    ).iloc[0]  # fmt: skip
    assert informed["prior_sd"] == pytest.approx(1.0, abs=0.02)
    assert informed["prior_ci_low"] == pytest.approx(-1.96, abs=0.05)
    assert informed["prior_ci_high"] == pytest.approx(1.96, abs=0.05)
    assert informed["contraction"] == pytest.approx(0.75, abs=0.02)
    assert not not_identified(informed["contraction"], 0.2)

    assert contraction(0.43, 0.45) == pytest.approx(1 - (0.43 / 0.45) ** 2)
    assert not_identified(contraction(0.43, 0.45), 0.2)  # the agreement model's change correlation
    assert not not_identified(float("nan"), 0.2)  # no prior draws: no claim either way
    without = summarise_draws(xr.DataArray(normal_draws(0, 1), dims=("chain", "draw")), 0.95, 0.2)
    assert without[["prior_sd", "contraction"]].isna().all().all()


def test_predictive_check_row_compares_the_observed_statistic_with_its_replicates():
    from alliance.posterior_summary import predictive_check_row

    replicated = np.arange(1, 101) / 100  # 0.01 ... 1.00
    row = predictive_check_row("digital", 12.0, 0.905, replicated, 0.9, "observed_sd")
    assert row["month"] == 12 and row["observed_sd"] == 0.905
    assert row["replicated_mean"] == pytest.approx(0.505)
    assert row["replicated_low"] == pytest.approx(np.quantile(replicated, 0.05))
    assert row["replicated_high"] == pytest.approx(np.quantile(replicated, 0.95))
    assert row["posterior_p"] == pytest.approx(0.10)  # 0.91 ... 1.00: 10 of 100
