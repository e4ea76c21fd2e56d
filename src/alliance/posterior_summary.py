"""Posterior summaries of estimand draws: intervals, probabilities, Monte Carlo diagnostics.

Rows follow the data contract's ``estimands.csv``; the detail table adds the probability inside
the region of practical equivalence (ROPE) and the convergence diagnostics of each estimand.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr

CONTRACT_COLUMNS = [
    "aim",
    "estimand",
    "rater",
    "arm",
    "month",
    "term",
    "mean",
    "ci_low",
    "ci_high",
    "ci_prob",
    "prob_positive",
]
#: The ROPE is also judged at these multiples of its half-width (verdict robustness).
ROPE_FACTORS = {"half": 0.5, "double": 2.0}
DETAIL_COLUMNS = [
    *CONTRACT_COLUMNS,
    "sd",
    "prior_mean",
    "prior_sd",
    "prior_ci_low",
    "prior_ci_high",
    "contraction",
    "prob_in_rope",
    "rope",
    "prob_above_rope",
    "prob_below_rope",
    *(f"prob_in_rope_{name}" for name in ROPE_FACTORS),
    "mcse_prob_positive",
    "mcse_prob_in_rope",
    "ess_bulk",
    "ess_tail",
    "r_hat",
    "mcse_mean",
]
LABEL_DIMS = ("rater", "arm", "month", "term")


def summarise_draws(
    draws: xr.DataArray,
    ci_prob: float,
    rope: float,
    labels: dict | None = None,
    prior: xr.DataArray | None = None,
) -> pd.DataFrame:
    """One row per coordinate of ``draws`` (dims chain, draw, and labels such as arm, month).

    ``prior``: draws of the same quantity implied by the priors alone (same labels); they give
    ``prior_sd``, the prior's interval (``prior_ci_low``, ``prior_ci_high``) and the posterior
    ``contraction`` (see :func:`contraction`), empty without.

    The interval is equal-tailed with mass ``ci_prob``; ``prob_positive`` is P(quantity > 0),
    ``prob_in_rope`` is P(|quantity| < rope) (``prob_in_rope_half`` and ``_double`` at half and
    double the ROPE), ``prob_above_rope`` and ``prob_below_rope`` are P(quantity > rope) and
    P(quantity < -rope). ``mcse_prob_positive`` and ``mcse_prob_in_rope`` are the Monte Carlo
    standard errors of those two probabilities (of the mean of their indicator draws, with the
    chains' autocorrelation).
    """
    draws = draws.transpose("chain", "draw", ...)
    diagnostics = _monte_carlo_diagnostics(draws, rope)
    tail = (1 - ci_prob) / 2
    flat = draws.stack(sample=("chain", "draw"))
    stats = {
        "mean": flat.mean("sample"),
        "sd": flat.std("sample"),
        "ci_low": flat.quantile(tail, dim="sample").drop_vars("quantile"),
        "ci_high": flat.quantile(1 - tail, dim="sample").drop_vars("quantile"),
        "prob_positive": (flat > 0).mean("sample"),
        "prob_in_rope": (abs(flat) < rope).mean("sample"),
        "prob_above_rope": (flat > rope).mean("sample"),
        "prob_below_rope": (flat < -rope).mean("sample"),
        **{
            f"prob_in_rope_{name}": (abs(flat) < factor * rope).mean("sample")
            for name, factor in ROPE_FACTORS.items()
        },
        **diagnostics,
    }
    if prior is not None:
        prior = prior.stack(sample=[d for d in ("chain", "draw") if d in prior.dims])
        stats["prior_mean"] = prior.mean("sample")
        stats["prior_sd"] = prior.std("sample")
        stats["prior_ci_low"] = prior.quantile(tail, dim="sample").drop_vars("quantile")
        stats["prior_ci_high"] = prior.quantile(1 - tail, dim="sample").drop_vars("quantile")
        stats["contraction"] = contraction(stats["sd"], stats["prior_sd"])
    summary = xr.Dataset(stats)
    if summary.sizes:
        table = summary.to_dataframe().reset_index()
    else:  # a scalar quantity
        table = pd.DataFrame({name: [float(value)] for name, value in summary.items()})
    table = table.drop(columns=[c for c in table.columns if c in ("chain", "draw", "sample")])
    table["ci_prob"] = ci_prob
    table["rope"] = rope
    for column, value in (labels or {}).items():
        table[column] = value
    for column in ("aim", "estimand", *LABEL_DIMS):
        if column not in table:
            table[column] = ""
    for column in ("prior_mean", "prior_sd", "prior_ci_low", "prior_ci_high", "contraction"):
        if column not in table:
            table[column] = float("nan")
    return table[DETAIL_COLUMNS]


def _monte_carlo_diagnostics(draws: xr.DataArray, rope: float) -> dict[str, xr.DataArray]:
    """Bulk and tail ESS, R-hat and the MCSE of the mean of every element of ``draws`` (chain,
    draw, ...), and the MCSE of ``prob_positive`` and ``prob_in_rope`` (of the mean of their
    indicator draws; 0 when every draw is on one side): ArviZ's numbers
    (:mod:`alliance.diagnostics`), all elements at once and without importing ArviZ."""
    from alliance.diagnostics import convergence_statistics, mcse_mean

    template = draws.isel(chain=0, draw=0, drop=True)
    values = draws.to_numpy().reshape(*draws.shape[:2], -1)

    def shaped(column: np.ndarray) -> xr.DataArray:
        return template.copy(data=column.reshape(template.shape))

    statistics = convergence_statistics(values)
    indicators = {
        "mcse_prob_positive": values > 0,
        "mcse_prob_in_rope": np.abs(values) < rope,
    }
    return {
        **{name: shaped(statistics[name]) for name in ("ess_bulk", "ess_tail", "r_hat")},
        "mcse_mean": shaped(mcse_mean(values)),
        **{
            name: shaped(np.nan_to_num(mcse_mean(indicator.astype(float)), nan=0.0))
            for name, indicator in indicators.items()
        },
    }


#: Reported quantities on the correlation scale; every other one is in WAI points (ROPE).
CORRELATION_ESTIMANDS = ("rater_correlation", "change_correlation", "icc_agreement", "tracking")


def rope_for(estimand: str, summary: Mapping) -> float:
    """The ROPE half-width of a reported quantity: ``summary.rope_correlation`` for correlations
    and ICCs (and the truth-and-bias tracking slope), ``summary.rope_wai`` for WAI points."""
    return summary["rope_correlation" if estimand in CORRELATION_ESTIMANDS else "rope_wai"]


def as_terms(draws: xr.DataArray) -> xr.DataArray:
    """Draws whose predictor dimension has its own name (``between_term``, ``varying_term``)
    relabelled over ``term``, the estimand rows' column."""
    return draws.rename({dim: "term" for dim in draws.dims if str(dim).endswith("_term")})


def summarise_fit(idata, summary: Mapping) -> pd.DataFrame:
    """The estimand rows of one fit: every quantity of its ``estimands`` group summarised with
    its prior (``prior_estimands``), labelled with the fit's ``aim``, ``rater`` (if one) and
    ``model`` attributes (set by alliance.sampling.save_fit). ``summary``: ``ci_prob`` and the
    ROPEs."""
    attrs = idata.attrs
    labels = {"aim": attrs["aim"], **({"rater": attrs["rater"]} if attrs.get("rater") else {})}
    estimands = idata["estimands"].to_dataset()
    prior = idata["prior_estimands"].to_dataset()
    detail = pd.concat(
        [
            summarise_draws(
                as_terms(estimands[name]),
                summary["ci_prob"],
                rope_for(name, summary),
                labels={**labels, "estimand": name},
                prior=as_terms(prior[name]),
            )
            for name in estimands.data_vars
        ],
        ignore_index=True,
    )
    detail.insert(0, "model", attrs["model"])
    return detail


def contraction(posterior_sd, prior_sd):
    """Posterior contraction, 1 - posterior variance / prior variance (Schad, Betancourt and
    Vasishth 2021): near 1, the data determined the quantity; near 0, the posterior is still the
    prior (the data barely inform it); below 0, the posterior is wider than the prior."""
    return 1 - (posterior_sd / prior_sd) ** 2


#: A posterior whose mean lies this many prior SDs or more from the prior's mean has been moved by
#: the data, even if it did not contract: a possible prior-data conflict, not a lack of data.
MAX_PRIOR_SHIFT = 1.0


def not_identified(contraction_value, min_contraction: float, prior_shift: float = 0.0) -> bool:
    """A quantity whose posterior contracted less than ``min_contraction`` and stayed near the
    prior's centre (``prior_shift`` = |posterior mean - prior mean| / prior SD below
    :data:`MAX_PRIOR_SHIFT`) is not identified by these data: its interval is mostly the prior's."""
    return bool(
        pd.notna(contraction_value)
        and contraction_value < min_contraction
        and not prior_shift >= MAX_PRIOR_SHIFT
    )


def not_identified_rows(table: pd.DataFrame, min_contraction: float) -> pd.Series:
    """:func:`not_identified` for each row of a summary table (False where it has no prior)."""
    if "contraction" not in table:
        return pd.Series(False, index=table.index)
    shift = (table["mean"] - table["prior_mean"]).abs() / table["prior_sd"]
    return pd.Series(
        [
            not_identified(c, min_contraction, z)
            for c, z in zip(table["contraction"], shift, strict=True)
        ],
        index=table.index,
        dtype=bool,
    )


def predictive_check_row(
    arm, month, observed: float, replicated, ci_prob: float, observed_name: str = "observed"
) -> dict:
    """One arm x month row of a posterior predictive check of a test statistic: its observed value
    against the replicated values' mean, equal-tailed interval and P(replicated >= observed)."""
    import numpy as np

    tail = (1 - ci_prob) / 2
    return {
        "arm": arm,
        "month": int(month),
        observed_name: observed,
        "replicated_mean": float(np.mean(replicated)),
        "replicated_low": float(np.quantile(replicated, tail)),
        "replicated_high": float(np.quantile(replicated, 1 - tail)),
        "posterior_p": float(np.mean(replicated >= observed)),
        "ci_prob": ci_prob,
    }


def contract_table(detail: pd.DataFrame) -> pd.DataFrame:
    """The columns of ``results/tables/estimands.csv``, in the contract's order."""
    return detail[CONTRACT_COLUMNS].copy()


def collect_estimands(tables: list[pd.DataFrame], columns=CONTRACT_COLUMNS) -> pd.DataFrame:
    """The aims' estimand rows in one table, ``columns`` in order, sorted by aim."""
    table = pd.concat([t[list(columns)] for t in tables], ignore_index=True)
    return table.sort_values("aim", kind="stable").reset_index(drop=True)


def month_labels(months: pd.Series) -> pd.Series:
    """Months as text without decimals ("3"), empty where the estimand has no month."""
    return months.astype("Int64").astype("string").fillna("").astype(str)


def percent(probability: float) -> str:
    """A probability as a percentage, never rounded up to a certain 100% or down to 0%."""
    if probability > 0.999:
        return "above 99.9%"
    if probability < 0.001:
        return "below 0.1%"
    return f"{probability:.1%}"
