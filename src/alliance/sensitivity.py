"""Prior sensitivity of the reported quantities by power-scaling (Kallioinen et al. 2024).

The prior (or the likelihood) is raised to a power alpha near 1 and the posterior reweighted by
Pareto-smoothed importance sampling, with no refit; a quantity whose posterior moves (cumulative
Jensen-Shannon distance per log2(alpha) at or above the threshold, 0.05 by convention) when the
prior is scaled is prior-sensitive. Sensitive to the prior and to the likelihood signals a
potential prior-data conflict; to the prior only, a strong prior or a weak likelihood. A quantity
whose posterior barely contracted from its prior (:func:`alliance.posterior_summary.contraction`)
is diagnosed "not identified by these data" instead: the data say little about it, which is not a
conflict with the prior.

Only the configured priors are scaled: the standard-normal offsets of non-centred group effects
(``*_offset``, ``*_z``) are part of the hierarchical likelihood, and imputed predictor values
(``*_unobserved``: PyMC's free variables for masked observations) are missing data, not priors.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from alliance.sampling import NO_COMPILE

#: Free variables that are not configured priors (see the module docstring).
NOT_PRIORS_SUFFIXES = ("_offset", "_z", "_unobserved")

SENSITIVITY_COLUMNS = ["model", "quantity", "prior", "likelihood", "diagnosis"]


def configured_prior_names(model) -> list[str]:
    """The free variables of a PyMC model whose priors the config sets."""
    return [rv.name for rv in model.free_RVs if not rv.name.endswith(NOT_PRIORS_SUFFIXES)]


def add_log_prior(idata, model) -> None:
    """Store the log density of each configured prior at every draw (group ``log_prior``).

    Each configured prior has constant parameters, so its density needs only its own draws (Bambi
    drops the offsets from its posterior, which ``pm.compute_log_prior`` would need).
    """
    import pymc as pm
    import pytensor
    import pytensor.tensor as pt
    import xarray as xr

    posterior = idata["posterior"]
    names = configured_prior_names(model)
    inputs, outputs = [], []
    for name in names:
        draws = posterior[name]
        value = pt.tensor(name="draws", dtype=model[name].dtype, shape=(None,) * draws.ndim)
        inputs.append(value)
        outputs.append(pm.logp(model[name], value))
    function = pytensor.function(inputs, outputs, mode=NO_COMPILE)
    densities = function(*[posterior[name].values for name in names])
    idata["log_prior"] = xr.Dataset(
        {
            name: (posterior[name].dims, density)
            for name, density in zip(names, densities, strict=True)
        },
        coords=posterior.coords,
    )


def prior_sensitivity(idata, quantities, model_name: str, threshold: float) -> pd.DataFrame:
    """Power-scaling sensitivity of each reported quantity (every element) of one model.

    ``idata`` holds the groups ``log_prior`` and ``log_likelihood``; ``quantities`` is a dataset
    of draws (chain, draw, ...) of the reported quantities.
    """
    import xarray as xr
    from arviz_stats import psense_summary

    tree = xr.DataTree.from_dict(
        {
            "posterior": quantities,
            "log_prior": idata["log_prior"].to_dataset(),
            "log_likelihood": idata["log_likelihood"].to_dataset(),
        }
    )
    table = psense_summary(tree, threshold=threshold, round_to=6)
    table = table.rename_axis("quantity").reset_index()
    table["diagnosis"] = table["diagnosis"].replace({"✓": "not sensitive"})
    table.insert(0, "model", model_name)
    return table[SENSITIVITY_COLUMNS]


NOT_IDENTIFIED = "not identified by these data"


def quantity_name(row: Mapping) -> str:
    """The name the sensitivity table gives the quantity of one estimand row (``name[arm,
    month]``, ``name[term]`` or ``name``)."""

    def text(value) -> str:  # months as written in the draws' coordinates: 3, not 3.0
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)

    coordinates = [text(row[c]) for c in ("arm", "month", "term")]
    coordinates = [c for c in coordinates if c not in ("", "nan")]
    return row["estimand"] + (f"[{', '.join(coordinates)}]" if coordinates else "")


def mark_unidentified(
    sensitivity: pd.DataFrame, detail: pd.DataFrame, min_contraction: float
) -> pd.DataFrame:
    """The sensitivity table with the diagnosis of each quantity that the data do not identify
    (:func:`alliance.posterior_summary.not_identified`: contraction below ``min_contraction``
    and a posterior still centred near the prior) replaced by :data:`NOT_IDENTIFIED`."""
    from alliance.posterior_summary import not_identified_rows

    flagged = not_identified_rows(detail, min_contraction)
    weak = {quantity_name(row) for row in detail[flagged].to_dict("records")}
    table = sensitivity.copy()
    table.loc[table["quantity"].isin(weak), "diagnosis"] = NOT_IDENTIFIED
    return table
