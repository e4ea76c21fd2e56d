"""Draws made after sampling: the log-likelihood and posterior predictive over all draws at once."""

import numpy as np
import pymc as pm
import pytest
import xarray as xr
from scipy import stats

from alliance.sampling import pointwise_log_likelihood, posterior_predictive, sample_pymc_prior

Y = np.array([0.5, -1.0, 2.0])
GROUP = np.array([0, 1, 1])


def conditional_model():
    """Two observed variables, the second conditional on the first (as in the agreement model),
    a transformed parameter (sigma) and a parameter with dims."""
    with pm.Model(coords={"group": ["a", "b"]}) as model:
        mu = pm.Normal("mu", 0, 1, dims="group")
        sigma = pm.HalfNormal("sigma", 1)
        first = pm.Normal("first", mu[GROUP], sigma, observed=Y)
        pm.Normal("second", 2 * first, 0.5, observed=np.array([1.0, -2.0, 4.5]))
    return model


def posterior_draws(chains=2, draws=5, seed=1):
    rng = np.random.default_rng(seed)
    return xr.Dataset(
        {
            "mu": (("chain", "draw", "group"), rng.normal(0, 1, (chains, draws, 2))),
            "sigma": (("chain", "draw"), rng.uniform(0.5, 2, (chains, draws))),
        },
        coords={"chain": range(chains), "draw": range(draws), "group": ["a", "b"]},
    )


def test_log_likelihood_equals_pymc_and_scipy():
    model = conditional_model()
    posterior = posterior_draws()
    ours = pointwise_log_likelihood(model, posterior)
    with model:
        reference = pm.compute_log_likelihood(
            xr.DataTree.from_dict({"posterior": posterior}), progressbar=False
        )["log_likelihood"].to_dataset()
    for name in ("first", "second"):
        assert ours[name].dims == reference[name].dims
        np.testing.assert_allclose(ours[name].values, reference[name].values, rtol=1e-12)
    expected = stats.norm.logpdf(
        Y, posterior["mu"].values[..., GROUP], posterior["sigma"].values[..., None]
    )
    np.testing.assert_allclose(ours["first"].values, expected, rtol=1e-12)


def test_posterior_predictive_draws_jointly_from_each_draw_and_is_reproducible():
    model = conditional_model()
    posterior = posterior_draws(chains=1, draws=20000, seed=2)
    # One parameter value for every draw, so the replicates' moments are known exactly.
    posterior["mu"][:] = [1.0, -1.0]
    posterior["sigma"][:] = 0.5
    replicated = posterior_predictive(model, posterior, seed=3, var_names=["first", "second"])
    first, second = replicated["first"].values[0], replicated["second"].values[0]
    assert replicated["first"].dims == ("chain", "draw", "first_dim_0")
    np.testing.assert_allclose(first.mean(axis=0), [1.0, -1.0, -1.0], atol=0.02)
    np.testing.assert_allclose(first.std(axis=0), 0.5, atol=0.01)
    # second = 2 * first + N(0, 0.5): drawn given the replicated first, not the observed one.
    np.testing.assert_allclose(second.mean(axis=0), [2.0, -2.0, -2.0], atol=0.04)
    np.testing.assert_allclose(second.std(axis=0), np.sqrt(4 * 0.25 + 0.25), atol=0.02)
    for column in range(3):
        r = np.corrcoef(first[:, column], second[:, column])[0, 1]
        assert r == pytest.approx(2 * 0.5 / np.sqrt(1.25), abs=0.02)
    again = posterior_predictive(model, posterior, seed=3, var_names=["first", "second"])
    np.testing.assert_array_equal(again["second"].values, replicated["second"].values)
    other = posterior_predictive(model, posterior, seed=4, var_names=["first", "second"])
    assert not np.array_equal(other["second"].values, replicated["second"].values)


def test_prior_draws_follow_the_prior():
    prior = sample_pymc_prior(conditional_model(), draws=4000, seed=5)["prior"]
    assert float(prior["sigma"].mean()) == pytest.approx(np.sqrt(2 / np.pi), abs=0.03)
    assert float(prior["mu"].std()) == pytest.approx(1.0, abs=0.04)


def test_a_pymc_model_is_compiled_once_for_every_attempt_of_the_safety_net(config, monkeypatch):
    """nutpie compiles a PyMC model once per fit: the safety net's second attempt (here forced by
    an unreachable ESS threshold) samples the same compiled model with twice the draws. The tree
    is what ``pm.sample`` gives (observed data included), thinned, with the log-likelihood, and
    its posterior is the conjugate normal posterior."""
    import alliance.refit
    from alliance.diagnostics import convergence_settings
    from alliance.sampling import fit_with_safety_net
    from alliance.seeds import job_seeds

    created = []

    class Counting(alliance.refit.CompiledModel):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            created.append(self)

    monkeypatch.setattr(alliance.refit, "CompiledModel", Counting)
    y = np.random.default_rng(5).normal(1.5, 1.0, 50)
    with pm.Model() as model:
        mu = pm.Normal("mu", 0, 10)
        pm.Normal("y", mu, 1.0, observed=y)
    sampling = {
        **config["sampling"],
        **{"chains": 2, "draws": 200, "tune": 200, "thin": 2, "max_draws": 400},
    }
    convergence = {**convergence_settings(config["diagnostics"]), "min_ess": 10**9}
    tree = fit_with_safety_net(
        model,
        lambda fit: xr.Dataset({"mu": fit["posterior"]["mu"]}),
        sample_pymc_prior(model, 50, seed=1),
        sampling,
        convergence,
        job_seeds(1, "test", {}),
        "toy",
        log=None,
    )
    assert len(created) == 1 and created[0].fits == 2
    assert tree.attrs["extensions"] == 1 and tree.attrs["draws_per_chain"] == 400
    assert tree["posterior"]["mu"].shape == (2, 400)  # 800 sampled per chain, every 2nd kept
    assert tree["sample_stats"]["diverging"].shape == (2, 800)
    np.testing.assert_array_equal(tree["observed_data"]["y"].values, y)
    assert tree["log_likelihood"]["y"].shape == (2, 400, 50)
    precision = len(y) + 1 / 100
    posterior_mean, posterior_sd = y.sum() / precision, precision**-0.5
    assert float(tree["posterior"]["mu"].mean()) == pytest.approx(posterior_mean, abs=0.05)
    assert float(tree["posterior"]["mu"].std()) == pytest.approx(posterior_sd, rel=0.15)


def test_loading_some_groups_of_a_fit_gives_them_as_saved(tmp_path):
    """``load_fit(path, groups)`` reads each group on its own: the same datasets (values, labels,
    attributes) and file attributes as reading the whole tree, and only those groups."""
    from alliance.sampling import load_fit, save_fit

    posterior = posterior_draws()
    estimands = xr.Dataset(
        {"difference": posterior["mu"].sel(group="a") - posterior["mu"].sel(group="b")}
    ).expand_dims(month=[3, 12])
    estimands["difference"].attrs["unit"] = "WAI points"
    fit = xr.DataTree.from_dict(
        {
            "posterior": posterior,
            "estimands": estimands,
            "prior_estimands": estimands * 2,
            "sample_stats": xr.Dataset({"diverging": (("chain", "draw"), np.zeros((2, 5), bool))}),
        }
    )
    path = tmp_path / "fit.nc"
    save_fit(fit, path, {"label": "toy", "rater": "patient", "model": None})
    whole = load_fit(path)
    some = load_fit(path, groups=["estimands", "posterior"])
    assert set(some.children) == {"estimands", "posterior"}
    for group in ("estimands", "posterior"):
        assert some[group].to_dataset().identical(whole[group].to_dataset())
    assert some["estimands"].to_dataset().identical(estimands)
    assert dict(some.attrs) == dict(whole.attrs) == {"label": "toy", "rater": "patient"}
