"""The checks every fitted model gets, whatever its family (the check stage of each model).

A fit (``models/<family>/<name>.nc``) holds the draws of the quantities it reports (group
``estimands``) and the same quantities implied by the priors alone (``prior_estimands``). From
them and the posterior, every model's check job writes the same two tables: convergence
(every parameter, every reported quantity and the sampler, each judged against the
``diagnostics`` thresholds; the R-hat and ESS are those the fit's safety net computed, saved
with the fit, when the saved draws are the ones it computed them from) and prior sensitivity
(power-scaling, with the quantities the data do not identify marked). Family-specific predictive
checks and figures come on top.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import xarray as xr

from alliance.diagnostics import announce, fit_checks, saved_draw_diagnostics
from alliance.posterior_summary import as_terms, contraction
from alliance.sensitivity import mark_unidentified, prior_sensitivity


def identification_table(estimands: xr.Dataset, prior_estimands: xr.Dataset) -> pd.DataFrame:
    """Per reported quantity (every element): its labels (``estimand``, ``arm``, ``month``,
    ``term``), posterior mean and SD, prior mean and SD and the posterior contraction, as
    :func:`alliance.sensitivity.mark_unidentified` reads them."""
    rows = []
    for name in estimands.data_vars:
        draws, prior = as_terms(estimands[name]), as_terms(prior_estimands[name])
        stats = xr.Dataset(
            {
                "mean": draws.mean(["chain", "draw"]),
                "sd": draws.std(["chain", "draw"]),
                "prior_mean": prior.mean([d for d in ("chain", "draw") if d in prior.dims]),
                "prior_sd": prior.std([d for d in ("chain", "draw") if d in prior.dims]),
            }
        )
        table = (
            stats.to_dataframe().reset_index()
            if stats.sizes
            else pd.DataFrame({k: [float(v)] for k, v in stats.items()})
        )
        table.insert(0, "estimand", name)
        for column in ("arm", "month", "term"):
            if column not in table:
                table[column] = ""
        rows.append(table)
    table = pd.concat(rows, ignore_index=True)
    table["contraction"] = contraction(table["sd"], table["prior_sd"])
    return table


def model_checks(idata, model_name: str, checks: Mapping, log) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The convergence table and the prior-sensitivity table of one fitted model.

    ``checks``: the ``diagnostics`` settings (thresholds, ``sensitivity_threshold``,
    ``min_contraction``). A quantity whose posterior contracted less than ``min_contraction`` and
    stayed near the prior's centre is diagnosed :data:`~alliance.sensitivity.NOT_IDENTIFIED`.
    The failed convergence checks are logged.
    """
    estimands = idata["estimands"].to_dataset()
    # The R-hat and ESS the fit's safety net computed, if of these very draws; else computed here.
    saved = saved_draw_diagnostics(idata, estimands, model_name)
    log.info(
        "R-hat and ESS: %s",
        "as the fit computed them (the same draws)" if saved is not None else "computed here",
    )
    diagnostics = fit_checks(idata, estimands, model_name, checks, saved)
    announce(diagnostics, log)
    sensitivity = prior_sensitivity(idata, estimands, model_name, checks["sensitivity_threshold"])
    identified = identification_table(estimands, idata["prior_estimands"].to_dataset())
    return diagnostics, mark_unidentified(sensitivity, identified, checks["min_contraction"])


def check_model(fit_path, diagnostics_path, sensitivity_path, checks: Mapping, log):
    """The common part of every check job: load the fit, write its convergence and
    prior-sensitivity tables (:func:`model_checks`); return the fit and the convergence table
    (for :func:`alliance.diagnostics.stop_if_strict` once the job's other outputs are written)."""
    from alliance.sampling import load_fit

    idata = load_fit(fit_path)
    diagnostics, sensitivity = model_checks(idata, idata.attrs["label"], checks, log)
    diagnostics.to_csv(diagnostics_path, index=False)
    sensitivity.to_csv(sensitivity_path, index=False)
    return idata, diagnostics
