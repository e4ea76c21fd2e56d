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
    """R-hat and bulk and tail ESS of every element of every variable of a dataset of draws."""
    import arviz as az

    if hasattr(draws, "to_dataset"):
        draws = draws.to_dataset()
    # One variable at a time: ArviZ stacks all of a call's dimensions together, and a model with
    # many differently shaped variables exceeds NumPy's 32-dimension limit.
    table = pd.concat(
        [az.summary(draws[[name]], kind="diagnostics", round_to="none") for name in draws.data_vars]
    )
    table = table.rename_axis("quantity").reset_index()
    table["model"] = model_name
    table["kind"] = kind
    return table[["model", "quantity", "kind", "r_hat", "ess_bulk", "ess_tail"]]


def max_rhat(posterior) -> float:
    """The largest rank-normalised split R-hat (bulk or tail; Vehtari et al. 2021, as
    ``arviz.rhat``) over every element of every variable of ``posterior`` (dims ``chain``,
    ``draw``, ...), computed for all elements at once (ArviZ loops over them)."""
    from scipy import stats

    chains, draws = posterior.sizes["chain"], posterior.sizes["draw"]
    columns = [
        values.transpose("chain", "draw", ...).to_numpy().reshape(chains, draws, -1)
        for values in posterior.data_vars.values()
    ]
    values = np.concatenate(columns, axis=2).astype(float)  # chain x draw x element
    half = draws // 2
    split = np.concatenate([values[:, :half], values[:, draws - half :]], axis=0)

    def z_scale(array):
        flat = array.reshape(-1, array.shape[2])
        ranks = stats.rankdata(flat, method="average", axis=0)
        return stats.norm.ppf((ranks - 3 / 8) / (len(flat) - 2 * 3 / 8 + 1)).reshape(array.shape)

    def rhat(array):
        n = array.shape[1]
        between = n * np.var(array.mean(axis=1), axis=0, ddof=1)
        within = np.mean(np.var(array, axis=1, ddof=1), axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.sqrt((between / within + n - 1) / n)

    folded = np.abs(split - np.median(split.reshape(-1, split.shape[2]), axis=0))
    return float(np.nanmax(np.maximum(rhat(z_scale(split)), rhat(z_scale(folded)))))


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


def fit_checks(idata, quantities, model_name: str, thresholds: Mapping) -> pd.DataFrame:
    """The convergence checks of a fresh fit, as its check job will judge them: every parameter,
    every reported quantity (``quantities``: a dataset of draws, or None) and the sampler."""
    parts = [judge(parameter_diagnostics(idata, model_name), thresholds)]
    if quantities is not None:
        parts.append(judge(variable_diagnostics(quantities, model_name, "estimand"), thresholds))
    parts.append(judge(sampler_diagnostics(idata, model_name), thresholds))
    return pd.concat(parts, ignore_index=True)


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
