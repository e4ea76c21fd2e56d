"""Convergence diagnostics of a fitted model, judged against the config's thresholds."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

#: The convergence checks every fit must pass before it is saved (config ``diagnostics``).
CONVERGENCE_KEYS = ("max_rhat", "min_ess", "max_divergences", "min_ebfmi")


def convergence_settings(diagnostics: Mapping) -> dict:
    """The convergence thresholds of the config's ``diagnostics`` section."""
    return {key: diagnostics[key] for key in CONVERGENCE_KEYS}


def variable_diagnostics(draws, model_name: str, kind: str) -> pd.DataFrame:
    """R-hat and bulk and tail ESS of every element of every variable of a dataset of draws:
    the numbers and row labels of ``arviz.summary(kind="diagnostics")``, computed for all
    elements of a variable at once (:func:`convergence_statistics`; ArviZ loops over them)."""
    import xarray as xr
    from arviz_base import dataset_to_dataframe

    if hasattr(draws, "to_dataset"):
        draws = draws.to_dataset()
    parts = []
    # One variable at a time: labelling stacks all of a call's dimensions together, and a model
    # with many differently shaped variables exceeds NumPy's 32-dimension limit.
    for name, values in draws.data_vars.items():
        template = values.isel(chain=0, draw=0, drop=True)
        flat = values.transpose("chain", "draw", *template.dims).to_numpy()
        statistics = convergence_statistics(flat.reshape(*flat.shape[:2], -1))
        summary = xr.concat(
            [
                template.copy(data=statistics[column].reshape(template.shape))
                for column in DIAGNOSTIC_COLUMNS
            ],
            dim="summary",
        ).assign_coords(summary=list(DIAGNOSTIC_COLUMNS))
        parts.append(dataset_to_dataframe(xr.Dataset({name: summary}), sample_dims=["summary"]).T)
    table = pd.concat(parts).rename_axis("quantity").reset_index()
    table["model"] = model_name
    table["kind"] = kind
    return table[["model", "quantity", "kind", *DIAGNOSTIC_COLUMNS]]


#: The convergence statistics of every element (:func:`convergence_statistics`).
DIAGNOSTIC_COLUMNS = ("r_hat", "ess_bulk", "ess_tail")


def convergence_statistics(values: np.ndarray) -> dict[str, np.ndarray]:
    """Rank-normalised split R-hat, bulk ESS and tail ESS (Vehtari et al. 2021) of every column
    of ``values`` (chain x draw x element), computed for all elements at once, as ArviZ computes
    them one by one (``arviz.rhat``; ``arviz.ess`` with methods ``bulk`` and ``tail``, the tail's
    quantiles those of ArviZ's default ``stats.ci_prob``). An element with a missing value, fewer
    than 4 draws (or, for R-hat, one chain) gets NaN, as in ArviZ."""
    from arviz_base import rcParams

    values = np.asarray(values, dtype=float)
    chains, _, elements = values.shape
    valid, kept = _valid_elements(values)
    statistics = {name: np.full(elements, np.nan) for name in DIAGNOSTIC_COLUMNS}
    if not valid.any():
        return statistics
    split = _split_chains(kept)
    z_split = _z_scale(split)
    statistics["ess_bulk"][valid] = _ess(z_split)
    prob = float(rcParams["stats.ci_prob"])
    tails = []
    for level in sorted((prob, 1 - prob)):
        quantile = np.quantile(kept.reshape(len(kept), -1), level, axis=1)
        tails.append(_ess(_split_chains((kept <= quantile[:, None, None]).astype(float))))
    statistics["ess_tail"][valid] = np.minimum(*tails)
    if chains >= 2:
        statistics["r_hat"][valid] = _rank_rhat(split, z_split)
    return statistics


def mcse_mean(values: np.ndarray) -> np.ndarray:
    """Monte Carlo standard error of the mean of every column of ``values`` (chain x draw x
    element): the draws' SD over the square root of their ESS for the mean (split chains, not
    rank-normalised), as ``arviz.mcse`` computes it (method ``mean``); NaN for an element with a
    missing value or fewer than 4 draws, 0 for a constant one."""
    values = np.asarray(values, dtype=float)
    valid, kept = _valid_elements(values)
    result = np.full(values.shape[2], np.nan)
    if not valid.any():
        return result
    sd = np.std(kept.reshape(len(kept), -1), axis=1, ddof=1)
    result[valid] = sd / np.sqrt(_ess(_split_chains(kept)))
    return result


def max_rhat(posterior) -> float:
    """The largest rank-normalised split R-hat (:func:`convergence_statistics`) over every element
    of every variable of ``posterior`` (dims ``chain``, ``draw``, ...)."""
    columns = [
        values.transpose(..., "chain", "draw")
        .to_numpy()
        .reshape(-1, posterior.sizes["chain"], posterior.sizes["draw"])
        for values in posterior.data_vars.values()
    ]
    split = _split_chains(np.concatenate(columns).astype(float))  # element x chain x draw
    return float(np.nanmax(_rank_rhat(split)))


def _valid_elements(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which elements of ``values`` (chain x draw x element) have diagnostics (no missing value,
    at least 4 draws), and those elements' draws as element x chain x draw."""
    valid = ~np.isnan(values).any(axis=(0, 1)) & (values.shape[1] >= 4)
    return valid, np.ascontiguousarray(np.moveaxis(values[:, :, valid], 2, 0))


def _split_chains(values: np.ndarray) -> np.ndarray:
    """Each chain's first and last half as two chains (element x chain x draw; the middle draw
    of an odd count left out)."""
    half = values.shape[2] // 2
    return np.concatenate([values[:, :, :half], values[:, :, values.shape[2] - half :]], axis=1)


def _folded(values: np.ndarray) -> np.ndarray:
    """Absolute deviations from each element's median."""
    flat = values.reshape(len(values), -1)
    return np.abs(values - np.median(flat, axis=1)[:, None, None])


def _z_scale(values: np.ndarray) -> np.ndarray:
    """Each element's draws (element x chain x draw) replaced by the normal scores of their ranks
    among all its draws, ties given their average rank (``scipy.stats.rankdata``)."""
    from scipy import special

    flat = values.reshape(len(values), -1)
    count = flat.shape[1]
    order = np.argsort(flat, axis=1)
    ordered = np.take_along_axis(flat, order, axis=1)
    position = np.broadcast_to(np.arange(count), flat.shape)
    starts = np.ones(flat.shape, dtype=bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    ends = np.ones(flat.shape, dtype=bool)
    ends[:, :-1] = starts[:, 1:]
    first = np.maximum.accumulate(np.where(starts, position, 0), axis=1)
    last = np.minimum.accumulate(np.where(ends, position, count - 1)[:, ::-1], axis=1)[:, ::-1]
    ranks = np.empty(flat.shape)
    np.put_along_axis(ranks, order, (first + last) / 2 + 1, axis=1)
    return special.ndtri((ranks - 3 / 8) / (count - 2 * 3 / 8 + 1)).reshape(values.shape)


def _rank_rhat(split: np.ndarray, z_split: np.ndarray | None = None) -> np.ndarray:
    """Rank-normalised R-hat of each element of split chains (element x chain x draw): the larger
    of the bulk (z-scaled draws, ``z_split`` if already computed) and the tail (z-scaled absolute
    deviations from the median) R-hat."""
    bulk = _rhat(_z_scale(split) if z_split is None else z_split)
    return np.maximum(bulk, _rhat(_z_scale(_folded(split))))


def _rhat(values: np.ndarray) -> np.ndarray:
    n = values.shape[2]
    between = n * np.var(values.mean(axis=2), axis=1, ddof=1)
    within = np.mean(np.var(values, axis=2, ddof=1), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt((between / within + n - 1) / n)


def _ess(values: np.ndarray) -> np.ndarray:
    """Effective sample size of each element of ``values`` (element x chain x draw) from the
    chains' autocorrelations, truncated by Geyer's initial positive and monotone sequences
    (ArviZ's algorithm, step for step, for all elements at once)."""
    from scipy.fftpack import next_fast_len

    elements, chains, n = values.shape
    constant = np.ptp(values.reshape(elements, -1), axis=1) < np.finfo(float).resolution
    centred = values - values.mean(axis=2, keepdims=True)
    size = next_fast_len(2 * n)
    transformed = np.fft.rfft(centred, n=size, axis=2)
    acov = np.fft.irfft(transformed * np.conjugate(transformed), n=size, axis=2)[:, :, :n] / n
    mean_acov = acov.mean(axis=1).T  # lag x element
    mean_var = mean_acov[0] * n / (n - 1.0)
    var_plus = mean_var * (n - 1.0) / n
    if chains > 1:
        var_plus = var_plus + np.var(values.mean(axis=2), axis=1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = 1.0 - (mean_var - mean_acov) / var_plus  # lag x element
    kept = np.zeros_like(rho)
    kept[0] = 1.0
    kept[1] = rho[1]
    even, odd = np.ones(elements), rho[1].copy()
    # Geyer's initial positive sequence: pairs of lags while the previous pair's sum is positive.
    active = np.ones(elements, dtype=bool)
    last = np.ones(elements, dtype=int)  # ArviZ's loop counter t at the end, per element
    t = 1
    while True:
        active &= (t < n - 3) & (even + odd > 0)
        if not active.any():
            break
        even = np.where(active, rho[t + 1], even)
        odd = np.where(active, rho[t + 2], odd)
        store = active & (even + odd >= 0)
        kept[t + 1] = np.where(store, even, kept[t + 1])
        kept[t + 2] = np.where(store, odd, kept[t + 2])
        last = np.where(active, t + 2, last)
        t += 2
    max_t = last - 2
    columns = np.arange(elements)
    improve = even > 0
    kept[max_t[improve] + 1, columns[improve]] = even[improve]
    # Geyer's initial monotone sequence.
    for t in range(1, int(max_t.max(initial=0)) - 1, 2):
        due = (t <= max_t - 2) & (kept[t + 1] + kept[t + 2] > kept[t - 1] + kept[t])
        mean = (kept[t - 1] + kept[t]) / 2.0
        kept[t + 1] = np.where(due, mean, kept[t + 1])
        kept[t + 2] = np.where(due, mean, kept[t + 2])
    lags = np.arange(n)[:, None]
    tau = (
        -1.0
        + 2.0 * np.where(lags <= max_t, kept, 0.0).sum(axis=0)
        + np.where(lags == max_t + 1, kept, 0.0).sum(axis=0)
    )
    total = chains * n
    tau = np.maximum(tau, 1 / np.log10(total))
    ess = total / tau
    ess[np.isnan(kept).any(axis=0)] = np.nan
    ess[constant] = total
    return ess


def parameter_diagnostics(idata, model_name: str) -> pd.DataFrame:
    """R-hat and bulk and tail ESS of every parameter (every element) in the posterior."""
    return variable_diagnostics(idata["posterior"], model_name, "parameter")


def sampler_diagnostics(idata, model_name: str) -> pd.DataFrame:
    """Divergent transitions (total) and the lowest E-BFMI across chains."""
    import arviz as az

    stats = idata["sample_stats"]
    divergences = int(np.asarray(stats["diverging"]).sum()) if "diverging" in stats else 0
    bfmi = float(np.min(np.asarray(az.bfmi(idata)["energy"]))) if "energy" in stats else np.nan
    values = {"divergences": divergences, "min_ebfmi": bfmi}
    # How the safety net sampled the fit (alliance.sampling.sample_until_converged): recorded,
    # never judged.
    for quantity in ("draws_per_chain", "extensions"):
        if quantity in idata.attrs:
            values[quantity] = int(idata.attrs[quantity])
    return pd.DataFrame(
        {
            "model": model_name,
            "quantity": list(values),
            "kind": "sampler",
            "value": list(values.values()),
        }
    )


def judge(table: pd.DataFrame, thresholds: Mapping) -> pd.DataFrame:
    """Add ``passed``: R-hat at most max_rhat and both ESS at least min_ess; sampler checks."""
    judged = table.copy()
    passed = pd.Series(True, index=judged.index)
    if "r_hat" in judged:
        converged = (judged["r_hat"] <= thresholds["max_rhat"]) & (
            judged[["ess_bulk", "ess_tail"]].min(axis=1) >= thresholds["min_ess"]
        )
        passed = passed & (converged | judged["r_hat"].isna())
    if "value" in judged:
        is_div = judged["quantity"] == "divergences"
        is_bfmi = judged["quantity"] == "min_ebfmi"
        passed = passed & ~(is_div & (judged["value"] > thresholds["max_divergences"]))
        passed = passed & ~(is_bfmi & (judged["value"] < thresholds["min_ebfmi"]))
    judged["passed"] = passed
    return judged


def draw_diagnostics(idata, quantities, model_name: str) -> pd.DataFrame:
    """R-hat and bulk and tail ESS (not yet judged) of every parameter and every reported quantity
    (``quantities``: a dataset of draws, or None): the part of a fit's checks that costs time."""
    parts = [parameter_diagnostics(idata, model_name)]
    if quantities is not None:
        parts.append(variable_diagnostics(quantities, model_name, "estimand"))
    return pd.concat(parts, ignore_index=True)


def fit_checks(
    idata, quantities, model_name: str, thresholds: Mapping, draws_table=None
) -> pd.DataFrame:
    """The convergence checks of a fit: every parameter, every reported quantity (``quantities``:
    a dataset of draws, or None) and the sampler, judged against ``thresholds``.
    ``draws_table``: the draws' statistics (:func:`draw_diagnostics`) if already computed."""
    if draws_table is None:
        draws_table = draw_diagnostics(idata, quantities, model_name)
    parts = [
        judge(draws_table, thresholds),
        judge(sampler_diagnostics(idata, model_name), thresholds),
    ]
    return pd.concat(parts, ignore_index=True)


#: The group of a saved fit that holds the statistics its safety net judged it by.
STATISTICS_GROUP = "draw_diagnostics"


def draws_fingerprint(*datasets) -> str:
    """A SHA-256 of the draws (and their labels) of every variable of ``datasets``: equal only
    for the same draws, so that statistics computed from them can be reused safely."""
    import hashlib

    digest = hashlib.sha256()
    for dataset in datasets:
        for name in sorted(dataset.data_vars):
            values = dataset[name]
            digest.update(repr((name, values.dims, values.shape, str(values.dtype))).encode())
            for dim in values.dims:
                if dim in dataset.coords:
                    digest.update(repr(dataset[dim].values.tolist()).encode())
            digest.update(np.ascontiguousarray(values.values).tobytes())
    return digest.hexdigest()


def statistics_group(table: pd.DataFrame, fingerprint: str):
    """:func:`draw_diagnostics`' table as a dataset to save with the fit, with the fingerprint
    (:func:`draws_fingerprint`) of the posterior and reported quantities it was computed from."""
    import xarray as xr

    labels = {
        column: ("row", table[column].astype(str).to_numpy()) for column in ("quantity", "kind")
    }
    numbers = {
        column: ("row", table[column].to_numpy(dtype=float)) for column in DIAGNOSTIC_COLUMNS
    }
    return xr.Dataset({**labels, **numbers}, attrs={"fingerprint": fingerprint})


def saved_draw_diagnostics(idata, quantities, model_name: str) -> pd.DataFrame | None:
    """The statistics a fit saved (:func:`statistics_group`) if they were computed from exactly
    the draws ``idata`` now holds (its posterior and ``quantities``), else None."""
    if STATISTICS_GROUP not in idata.children:
        return None
    saved = idata[STATISTICS_GROUP].to_dataset()
    drawn = [idata["posterior"].to_dataset(), *([] if quantities is None else [quantities])]
    if saved.attrs.get("fingerprint") != draws_fingerprint(*drawn):
        return None
    table = pd.DataFrame({name: saved[name].to_numpy() for name in saved.data_vars})
    table[["quantity", "kind"]] = table[["quantity", "kind"]].astype(str)
    table["model"] = model_name
    return table[["model", "quantity", "kind", *DIAGNOSTIC_COLUMNS]]


def failures(table: pd.DataFrame) -> pd.DataFrame:
    """The rows that failed their check."""
    return table[~table["passed"]]


def announce(table: pd.DataFrame, log) -> int:
    """Log the failed checks (a warning with the first 20) or that all passed; return the count."""
    failed = failures(table)
    if len(failed):
        log.warning("%d convergence checks FAILED:\n%s", len(failed), failed.head(20).to_string())
    else:
        log.info("all %d convergence checks passed", len(table))
    return len(failed)


def stop_if_strict(table: pd.DataFrame, strict: bool, log) -> None:
    """End the job with an error when a check of ``table`` failed and ``diagnostics.strict`` is
    true (call it after the job's outputs are written, so the failed checks can be read)."""
    if strict and len(failures(table)):
        log.error("diagnostics.strict is true: stopping because convergence checks failed")
        raise SystemExit(1)
