"""Simulation-based calibration (Talts et al. 2018) of the growth models: draw the parameters from
the priors, simulate the WAI totals of the trial's design from them, fit the model to the
simulated totals, and record the rank of each true value among posterior draws. If the model is
fitted correctly (priors, likelihood and sampler agree), every rank is uniform on 0..L.

The design (patients, arms, months, who is missing) is one simulated trial of the twin, kept
fixed across simulations.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import stats

SBC_COLUMNS = ["model", "parameter", "n_simulations", "uniformity_p"]
#: Candidate numbers of equal-width bins of the ranks for the uniformity test (the largest that
#: leaves at least 5 expected ranks per bin is used).
RANK_BINS = (20, 10, 5, 4, 2)


def scalar_parameters(draws) -> dict[str, np.ndarray]:
    """The population-level parameters of a Bambi growth model (common effects, residual SD and
    group-effect SDs; not the patients' and therapists' own effects), one array of draws each,
    flattened over chains and draws and labelled ``name[level]`` for vector-valued ones."""
    values = {}
    for name, array in draws.data_vars.items():
        if "|" in name and not name.endswith("_sigma"):
            continue  # a group's own effects
        if name == "mu" or name.endswith("_offset"):
            continue
        data = array.stack(sample=("chain", "draw")).transpose("sample", ...).to_numpy()
        data = data.reshape(data.shape[0], -1)
        for column in range(data.shape[1]):
            label = name if data.shape[1] == 1 else f"{name}[{column}]"
            values[label] = data[:, column]
    return values


def ranks(posterior: Mapping[str, np.ndarray], truth: Mapping[str, float], kept: int) -> dict:
    """The rank of each true value among ``kept`` posterior draws evenly spaced over all draws
    (thinning reduces their autocorrelation): an integer from 0 to ``kept``."""
    result = {}
    for name, value in truth.items():
        draws = np.asarray(posterior[name])
        chosen = draws[np.linspace(0, len(draws) - 1, kept).round().astype(int)]
        result[name] = int(np.sum(chosen < value))
    return result


def uniformity_p(rank_values: np.ndarray, kept: int) -> float:
    """Chi-square test p-value of uniform ranks on 0..``kept``, in equal-width bins (the largest
    number of :data:`RANK_BINS` that divides the kept + 1 rank values and leaves at least 5
    expected ranks per bin; 1.0 when there are too few ranks for any)."""
    n = len(rank_values)
    usable = [b for b in RANK_BINS if (kept + 1) % b == 0 and n / b >= 5]
    if not usable:
        return 1.0
    bins = usable[0]
    counts = np.bincount(np.asarray(rank_values) * bins // (kept + 1), minlength=bins)
    return float(stats.chisquare(counts).pvalue)


def growth_sbc_simulation(data: pd.DataFrame, spec: Mapping, settings: Mapping, seed) -> dict:
    """One SBC simulation of a growth model on the design of ``data``
    (:func:`alliance.growth.growth_data`): the ranks of its population-level parameters.
    ``settings``: ``priors``, ``sampling`` and ``sbc`` (``kept_draws``); ``seed(*step)``."""
    from alliance.growth import build_growth_model
    from alliance.sampling import fit_bambi, sample_bambi_prior

    if spec.get("likelihood", "gaussian") != "gaussian" or spec.get("residual_sd_by"):
        raise ValueError("SBC covers the Gaussian growth models with one residual SD")
    model = build_growth_model(data, spec, settings["priors"])
    prior = sample_bambi_prior(model, 1, seed("prior"))
    truth = {name: float(v[0]) for name, v in scalar_parameters(prior["prior"]).items()}
    simulated = data.assign(wai_total=prior["prior_predictive"]["wai_total"].to_numpy().ravel())
    refit = build_growth_model(simulated, spec, settings["priors"])
    idata = fit_bambi(refit, settings["sampling"], seed("fit"), cores=1)
    posterior = scalar_parameters(idata["posterior"].to_dataset())
    return ranks(posterior, truth, settings["sbc"]["kept_draws"])


def sbc_table(rank_rows: pd.DataFrame, kept: int) -> pd.DataFrame:
    """``sbc.csv`` (data contract): per model and parameter, the number of simulations and the
    uniformity test's p-value (``rank_rows``: model, simulation, parameter, rank)."""
    rows = [
        {
            "model": model,
            "parameter": parameter,
            "n_simulations": len(group),
            "uniformity_p": uniformity_p(group["rank"].to_numpy(dtype=int), kept),
        }
        for (model, parameter), group in rank_rows.groupby(["model", "parameter"], sort=False)
    ]
    return pd.DataFrame(rows, columns=SBC_COLUMNS)
