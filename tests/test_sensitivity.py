"""Power-scaling prior sensitivity: flags a prior that dominates, not one the data overrule."""

import numpy as np
import pymc as pm
import xarray as xr
from scipy import stats

from alliance.sensitivity import add_log_prior, configured_prior_names, prior_sensitivity


def conjugate_fit(prior_sd: float, data_mean: float, n: int = 10, draws: int = 4000):
    """Exact posterior draws of a normal mean (known SD 1) with their log prior and likelihood."""
    rng = np.random.default_rng(1)
    y = data_mean + rng.normal(0, 1, n)
    precision = 1 / prior_sd**2 + n
    mean, sd = y.sum() / precision, precision**-0.5
    mu = rng.normal(mean, sd, size=(4, draws))
    dims = ("chain", "draw")
    log_lik = stats.norm.logpdf(y[None, None, :], mu[..., None], 1)
    fit = xr.DataTree.from_dict(
        {
            "log_prior": xr.Dataset({"mu": (dims, stats.norm.logpdf(mu, 0, prior_sd))}),
            "log_likelihood": xr.Dataset({"y": ((*dims, "obs"), log_lik)}),
        }
    )
    return fit, xr.Dataset({"mu": (dims, mu)})


def test_strong_prior_against_the_data_is_flagged_and_a_weak_prior_is_not():
    strong, draws = conjugate_fit(prior_sd=0.1, data_mean=3.0)
    table = prior_sensitivity(strong, draws, "conjugate", threshold=0.05).set_index("quantity")
    assert table.loc["mu", "prior"] >= 0.05 and table.loc["mu", "likelihood"] >= 0.05
    assert table.loc["mu", "diagnosis"] == "potential prior-data conflict"

    weak, draws = conjugate_fit(prior_sd=10.0, data_mean=3.0)
    table = prior_sensitivity(weak, draws, "conjugate", threshold=0.05)
    assert list(table.columns) == ["model", "quantity", "prior", "likelihood", "diagnosis"]
    row = table.set_index("quantity").loc["mu"]
    assert row["prior"] < 0.05 <= row["likelihood"]
    assert row["diagnosis"] == "not sensitive"


def test_log_prior_holds_the_configured_priors_only():
    with pm.Model(coords={"patient": ["a", "b", "c"]}) as model:
        effect = pm.Normal("effect", 0, 2)
        group_sd = pm.HalfNormal("group_sd", 0.5)
        offset = pm.Normal("group_offset", 0, 1, dims="patient")
        pm.Normal("y", effect + group_sd * offset, 1, observed=[0.1, 0.2, 0.3])
    assert configured_prior_names(model) == ["effect", "group_sd"]
    values = {"effect": np.array([[0.5, -1.0]]), "group_sd": np.array([[0.2, 0.7]])}
    posterior = xr.Dataset(
        {name: (("chain", "draw"), value) for name, value in values.items()}
        | {"group_offset": (("chain", "draw", "patient"), np.zeros((1, 2, 3)))},
        coords={"patient": ["a", "b", "c"]},
    )
    idata = xr.DataTree.from_dict({"posterior": posterior})
    add_log_prior(idata, model)
    assert set(idata["log_prior"].data_vars) == {"effect", "group_sd"}
    np.testing.assert_allclose(
        idata["log_prior"]["effect"].values, stats.norm.logpdf(values["effect"], 0, 2)
    )
    np.testing.assert_allclose(
        idata["log_prior"]["group_sd"].values, stats.halfnorm.logpdf(values["group_sd"], 0, 0.5)
    )


def test_a_quantity_the_data_do_not_identify_is_not_called_a_prior_data_conflict():
    """The sensitivity rows of quantities whose posterior barely contracted and stayed near the
    prior's centre are relabelled; a posterior moved two prior SDs away without contracting keeps
    its conflict diagnosis. Names follow the sensitivity table's (``name[arm, month]``,
    ``name[term]``, ``name``), months written as 12 even when read as 12.0."""
    import pandas as pd

    from alliance.sensitivity import NOT_IDENTIFIED, mark_unidentified

    conflict = "potential prior-data conflict"
    sensitivity = pd.DataFrame(
        {
            "model": "m",
            "quantity": [
                "change_correlation[digital]",
                "arm_difference[12]",
                "association[sus]",
                "marginal_mean[ptau, 12]",
                "rater_bias[ptau]",
            ],
            "prior": 0.2,
            "likelihood": 0.2,
            "diagnosis": conflict,
        }
    )
    detail = pd.DataFrame(
        {
            "estimand": [
                "change_correlation",
                "arm_difference",
                "association",
                "marginal_mean",
                "rater_bias",
            ],
            "arm": ["digital", "", "", "ptau", "ptau"],
            "month": ["", "12", "", 12.0, ""],
            "term": ["", "", "sus", "", ""],
            "mean": [0.1, 0.3, 0.05, 5.0, 1.0],
            "prior_mean": [0.0, 0.0, 0.0, 5.2, 0.0],
            "prior_sd": [0.45, 1.0, 0.25, 1.0, 0.5],
            "contraction": [0.09, 0.6, 0.1, 0.05, 0.1],
        }
    )
    marked = mark_unidentified(sensitivity, detail, 0.2)
    assert list(marked["diagnosis"]) == [
        NOT_IDENTIFIED,
        conflict,  # informed (contraction 0.6)
        NOT_IDENTIFIED,
        NOT_IDENTIFIED,  # month 12.0 matched as [ptau, 12]
        conflict,  # moved two prior SDs without contracting
    ]
