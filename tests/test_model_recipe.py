"""The pieces every model's fit, check and summary job share (the recipe in common.smk)."""

import logging

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

from alliance.diagnostics import stop_if_strict
from alliance.model_checks import model_checks
from alliance.posterior_summary import rope_for, summarise_fit
from alliance.runtime import job_name
from alliance.seeds import derive_seed, job_seed, job_seeds
from alliance.sensitivity import NOT_IDENTIFIED

SUMMARY = {"ci_prob": 0.9, "rope_wai": 0.2, "rope_correlation": 0.1}
CHECKS = {
    "max_rhat": 1.01,
    "min_ess": 400,
    "max_divergences": 0,
    "min_ebfmi": 0.3,
    "sensitivity_threshold": 0.05,
    "min_contraction": 0.2,
    "strict": False,
}


def test_each_job_and_step_has_its_own_seed_from_rule_and_wildcards():
    seed = job_seed(7, "fit_growth", {"rater": "patient", "model": "linear"}, "fit")
    # Wildcards in any order give the same seed; it is the master seed's stream of that job.
    assert seed == job_seed(7, "fit_growth", {"model": "linear", "rater": "patient"}, "fit")
    assert seed == derive_seed(7, "fit_growth", "model=linear", "rater=patient", "fit")
    others = {
        job_seed(7, "fit_growth", {"rater": "therapist", "model": "linear"}, "fit"),
        job_seed(7, "fit_growth", {"rater": "patient", "model": "linear"}, "ppc"),
        job_seed(7, "fit_association", {"rater": "patient", "model": "linear"}, "fit"),
        job_seed(8, "fit_growth", {"rater": "patient", "model": "linear"}, "fit"),
    }
    assert seed not in others and len(others) == 4
    seeds = job_seeds(7, "fit_growth", {"rater": "patient", "model": "linear"})
    assert seeds("fit") == seed and seeds("fit", 1) != seed


def test_a_job_is_named_by_its_rule_and_wildcards():
    assert job_name("fit_growth", {"rater": "patient", "model": "linear"}) == (
        "fit_growth_patient_linear"
    )
    assert job_name("clean_data", {}) == "clean_data"


def test_strict_mode_stops_only_when_a_check_failed():
    log = logging.getLogger("test")
    failed = pd.DataFrame({"quantity": ["a", "b"], "passed": [True, False]})
    passed = failed.assign(passed=True)
    stop_if_strict(failed, False, log)
    stop_if_strict(passed, True, log)
    with pytest.raises(SystemExit) as stop:
        stop_if_strict(failed, True, log)
    assert stop.value.code == 1


def test_correlations_get_the_correlation_rope_and_wai_quantities_the_wai_rope():
    assert rope_for("icc_agreement", SUMMARY) == 0.1
    assert rope_for("tracking", SUMMARY) == 0.1
    assert rope_for("rater_bias", SUMMARY) == 0.2
    assert rope_for("association_within", SUMMARY) == 0.2


def draws(values: np.ndarray, **coords) -> xr.DataArray:
    dims = ["chain", "draw", *coords]
    return xr.DataArray(values, dims=dims, coords=coords)


def fitted(rng, n_obs=50, chains=4, n_draws=1000):
    """A fit of y ~ N(mu, 1), mu ~ N(0, 1), by exact posterior draws, with a second parameter nu
    ~ N(0, 1) the data say nothing about; both reported (``mu`` over arms, ``nu``)."""
    y = rng.normal(1.0, 1.0, n_obs)
    post_sd = 1 / np.sqrt(1 + n_obs)
    post_mean = y.sum() / (1 + n_obs)
    mu = rng.normal(post_mean, post_sd, (chains, n_draws))
    nu = rng.normal(0, 1, (chains, n_draws))
    posterior = xr.Dataset({"mu": draws(mu), "nu": draws(nu)})
    estimands = xr.Dataset(
        {
            "mu_by_arm": draws(np.stack([mu, mu + 0.5], -1), arm=["digital", "ptau"]),
            "nu": draws(nu),
        }
    )
    prior_mu, prior_nu = rng.normal(0, 1, (1, 2000)), rng.normal(0, 1, (1, 2000))
    prior_estimands = xr.Dataset(
        {
            "mu_by_arm": draws(np.stack([prior_mu, prior_mu + 0.5], -1), arm=["digital", "ptau"]),
            "nu": draws(prior_nu),
        }
    )
    log_likelihood = xr.Dataset(
        {"y": draws(stats.norm.logpdf(y[None, None, :], mu[..., None], 1), obs=np.arange(n_obs))}
    )
    log_prior = xr.Dataset({"mu": draws(stats.norm.logpdf(mu)), "nu": draws(stats.norm.logpdf(nu))})
    sample_stats = xr.Dataset(
        {
            "diverging": draws(np.zeros((chains, n_draws), bool)),
            "energy": draws(rng.normal(0, 1, (chains, n_draws))),
        }
    )
    tree = xr.DataTree.from_dict(
        {
            "posterior": posterior,
            "sample_stats": sample_stats,
            "log_likelihood": log_likelihood,
            "log_prior": log_prior,
            "estimands": estimands,
            "prior_estimands": prior_estimands,
        }
    )
    tree.attrs.update({"aim": "a", "model": "toy", "rater": "patient"})
    return tree, post_mean, post_sd


def test_every_model_is_checked_and_summarised_from_its_estimand_draws():
    idata, post_mean, post_sd = fitted(np.random.default_rng(3))
    diagnostics, sensitivity = model_checks(idata, "toy_model", CHECKS, logging.getLogger("t"))
    # Parameters, each reported element and the sampler are judged; exact draws pass.
    assert set(diagnostics["kind"]) == {"parameter", "estimand", "sampler"}
    assert diagnostics["passed"].all()
    assert (diagnostics["model"] == "toy_model").all()
    # The quantity the data do not inform is marked; the one they do is not.
    diagnosis = sensitivity.set_index("quantity")["diagnosis"]
    assert diagnosis["nu"] == NOT_IDENTIFIED
    assert diagnosis["mu_by_arm[digital]"] != NOT_IDENTIFIED

    detail = summarise_fit(idata, SUMMARY)
    assert list(detail["estimand"]) == ["mu_by_arm", "mu_by_arm", "nu"]
    assert (detail["model"] == "toy").all() and (detail["rater"] == "patient").all()
    assert (detail["aim"] == "a").all() and (detail["ci_prob"] == 0.9).all()
    row = detail.set_index(["estimand", "arm"]).loc[("mu_by_arm", "ptau")]
    assert row["mean"] == pytest.approx(post_mean + 0.5, abs=4 * post_sd / np.sqrt(1000))
    low, high = stats.norm.ppf([0.05, 0.95], post_mean + 0.5, post_sd)
    assert row["ci_low"] == pytest.approx(low, abs=0.02)
    assert row["ci_high"] == pytest.approx(high, abs=0.02)
    assert row["contraction"] == pytest.approx(1 - post_sd**2, abs=0.1)
    assert detail.set_index("estimand").loc["nu", "contraction"] == pytest.approx(0, abs=0.1)
