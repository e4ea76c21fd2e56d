"""Draws made after sampling: the log-likelihood and posterior predictive over all draws at once."""

import warnings

import numpy as np
import pymc as pm
import pytensor
import pytest
import xarray as xr
from scipy import stats

from alliance.sampling import (
    forward_draws,
    pointwise_log_likelihood,
    posterior_predictive,
    sample_pymc_prior,
)

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


def batching_model():
    """Each way a random variable's draws can be batched: parameters that are constants (a vector
    with no size given), a constant first parameter and a random second one, a size from dims or
    from data, a multivariate variable with a random mean, an observed variable drawn given
    another, and deterministics of random variables and of data alone."""
    with pm.Model(coords={"group": ["a", "b", "c"]}) as model:
        rows = pm.Data("rows", np.array([0, 2, 2, 1]))
        spread = pm.Normal("spread", 0, np.array([1.0, 2.0, 3.0]), dims="group")
        scale = pm.HalfNormal("scale", 1.0)
        level = pm.Normal("level", 0, scale, dims="group")
        share = pm.Beta("share", 2.0, 5.0, shape=2)
        pair = pm.MvNormal("pair", mu=level[:2], cov=np.array([[1.0, 0.6], [0.6, 1.0]]))
        first = pm.Normal("first", level[rows], 0.5, observed=np.zeros(4))
        pm.Normal("second", 2 * first, 0.5, observed=np.zeros(4))
        pm.Deterministic("total", level.sum() + pair.sum())
        pm.Deterministic("row_count", rows.shape[0] + 0.0)
    return model, spread, share


def test_prior_draws_are_batched_and_follow_the_prior_and_its_dependencies():
    model, _, _ = batching_model()
    draws = 20000
    tree = sample_pymc_prior(model, draws=draws, seed=11)
    prior, predictive = tree["prior"].to_dataset(), tree["prior_predictive"].to_dataset()
    assert set(prior.data_vars) == {
        *("spread", "scale", "level", "share", "pair", "total", "row_count")
    }
    assert set(predictive.data_vars) == {"first", "second"}
    assert prior["level"].dims == ("chain", "draw", "group") and prior.sizes["draw"] == draws
    assert prior["pair"].shape == (1, draws, 2) and predictive["second"].shape == (1, draws, 4)
    np.testing.assert_array_equal(prior["row_count"].values, 4.0)

    def flat(name, group=prior):
        return group[name].values.reshape(draws, -1)

    np.testing.assert_allclose(flat("spread").std(axis=0), [1.0, 2.0, 3.0], rtol=0.03)
    # level ~ N(0, scale), scale ~ HalfNormal(1): variance E[scale^2] = 1, a heavier tail than
    # a normal's (kurtosis 3 * E[scale^4] / E[scale^2]^2 = 9), and independent across groups
    # given nothing but through the shared scale (the |levels| correlate).
    level = flat("level")
    np.testing.assert_allclose(level.var(axis=0), 1.0, rtol=0.06)
    assert np.mean(level[:, 0] ** 4) / np.mean(level[:, 0] ** 2) ** 2 == pytest.approx(9, rel=0.3)
    assert np.corrcoef(np.abs(level[:, 0]), np.abs(level[:, 1]))[0, 1] > 0.1
    np.testing.assert_allclose(flat("share").mean(axis=0), 2 / 7, atol=0.01)
    # pair ~ MvNormal(level[:2], C): each draw's pair around its own level.
    residual = flat("pair") - level[:, :2]
    np.testing.assert_allclose(np.cov(residual.T), [[1.0, 0.6], [0.6, 1.0]], atol=0.04)
    total = level.sum(axis=1) + flat("pair").sum(axis=1)
    np.testing.assert_allclose(flat("total")[:, 0], total)
    # first ~ N(level[rows], 0.5), second ~ N(2 first, 0.5): drawn from each draw's values.
    first, second = flat("first", predictive), flat("second", predictive)
    np.testing.assert_allclose((first - level[:, [0, 2, 2, 1]]).std(axis=0), 0.5, rtol=0.03)
    np.testing.assert_allclose((second - 2 * first).std(axis=0), 0.5, rtol=0.03)
    # Draws are independent of each other.
    assert abs(np.corrcoef(level[1:, 0], level[:-1, 0])[0, 1]) < 0.03
    again = sample_pymc_prior(model, draws=draws, seed=11)["prior"]
    np.testing.assert_array_equal(again["pair"].values, prior["pair"].values)
    other = sample_pymc_prior(model, draws=draws, seed=12)["prior"]
    assert not np.array_equal(other["pair"].values, prior["pair"].values)


def test_forward_draws_line_up_a_parameter_that_varies_by_draw_with_the_draws_shape():
    """PyMC expands every parameter to its variable's dimensions; a plain PyTensor variable's
    scalar parameter that varies by draw is lined up with the draw axis of a vector of draws."""
    import pytensor.tensor as pt

    centre = pt.random.normal(0.0, 10.0)
    values = pt.random.normal(centre, 0.01, size=(3,))
    centres, draws = forward_draws([centre, values], 500, seed=1)
    assert centres.shape == (500,) and draws.shape == (500, 3)
    np.testing.assert_allclose(draws, np.repeat(centres[:, None], 3, axis=1), atol=0.06)


def test_a_size_read_from_another_variables_shape_keeps_its_value_for_every_draw():
    with pm.Model() as model:
        cells = pm.Data("cells", np.zeros(4))
        first = pm.Normal("first", 0, 1, shape=cells.shape)
        pm.Normal("second", first.sum(), 1, shape=first.shape)
    with warnings.catch_warnings():
        # (PyMC warns of a generator two draws share: the variable would not be reseeded.)
        warnings.simplefilter("error")
        first, second = forward_draws([model["first"], model["second"]], 5000, seed=3)
        other_first, _ = forward_draws([model["first"], model["second"]], 5000, seed=4)
    assert first.shape == second.shape == (5000, 4)
    assert not np.array_equal(first, other_first)  # the seed sets every variable's draws
    residual = second - first.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(residual.std(axis=0), 1.0, rtol=0.04)
    np.testing.assert_allclose(second.std(axis=0), np.sqrt(5.0), rtol=0.04)


def test_a_generator_passed_on_from_another_draw_draws_afresh_every_draw():
    import pytensor.tensor as pt

    rng = pytensor.shared(np.random.default_rng(1))
    next_rng, first = pt.random.normal(0.0, 1.0, rng=rng).owner.outputs
    second = pt.random.normal(0.0, 1.0, rng=next_rng)
    first_draws, total = forward_draws([first, first + second], 4000, seed=2)
    np.testing.assert_allclose((total - first_draws).std(), 1.0, rtol=0.05)


def test_what_cannot_be_batched_is_drawn_by_pymc():
    """A scalar index drawn from a categorical variable (PyTensor does not vectorise reading one
    element at a random position) falls back to PyMC's draws, one call per draw."""
    with pm.Model() as model:
        which = pm.Categorical("which", p=np.array([0.2, 0.8]))
        levels = pm.Normal("levels", np.array([-10.0, 10.0]), 1.0)
        pm.Deterministic("chosen", levels[which])
    with pytest.raises(NotImplementedError):
        forward_draws([model["chosen"]], 10, seed=1)
    prior = sample_pymc_prior(model, draws=2000, seed=2)["prior"]
    chosen, which = prior["chosen"].values[0], prior["which"].values[0]
    assert np.mean(which == 1) == pytest.approx(0.8, abs=0.03)
    np.testing.assert_allclose(chosen, prior["levels"].values[0][np.arange(2000), which])


def test_prior_draws_of_chosen_variables_and_of_what_cannot_be_batched():
    """var_names picks the variables (their ancestors are drawn all the same); a model whose
    random operation cannot be batched (a censored variable with constant parameters, a PyMC
    SymbolicRandomVariable) gets PyMC's own draws, one call per draw."""
    model, _, _ = batching_model()
    tree = sample_pymc_prior(model, draws=50, seed=1, var_names=["total", "second"])
    assert set(tree["prior"].data_vars) == {"total"}
    assert set(tree["prior_predictive"].data_vars) == {"second"}
    with pytest.raises(ValueError, match="scale_log__"):  # a transformed value, as PyMC says
        sample_pymc_prior(model, draws=5, seed=1, var_names=["scale_log__"])
    # A censored variable (a SymbolicRandomVariable of a random input) is batched through its
    # input; a custom distribution with constant parameters takes its generator directly.
    with pm.Model() as model:
        pm.Censored("bounded", pm.Normal.dist(0.0, 1.0), lower=-0.5, upper=0.5, shape=3)
        pm.CustomDist("square", 1.0, dist=lambda mu, size: pm.Normal.dist(mu, 1, size=size) ** 2)
    bounded = forward_draws([model["bounded"]], 4000, seed=2)[0]
    assert bounded.shape == (4000, 3) and bounded.min() == -0.5 and bounded.max() == 0.5
    assert np.mean(bounded == 0.5) == pytest.approx(stats.norm.sf(0.5), abs=0.015)
    with pytest.raises(NotImplementedError):
        forward_draws([model["square"]], 10, seed=1)
    square = sample_pymc_prior(model, draws=4000, seed=2)["prior"]["square"].values
    assert square.shape == (1, 4000) and square.mean() == pytest.approx(2.0, abs=0.1)


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
