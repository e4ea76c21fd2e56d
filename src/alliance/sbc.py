"""Simulation-based calibration (Talts et al. 2018) of the reported models (growth, agreement,
association): draw the parameters from the priors, simulate every observed variable of the
trial's design from them (the WAI totals; for the association model also the observed
predictors, with their missing cells), fit the model to the simulated data, and record the rank
of each true value among posterior draws. If the model is fitted correctly (priors, likelihood,
imputation and sampler agree), every rank is uniform on 0..L.

The design (patients, arms, months, who is missing) is one simulated trial of the twin, kept
fixed across simulations. Each model is compiled once and refitted on every simulation
(:mod:`alliance.refit`).
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
    """The population-level parameters in ``draws`` (not the standard-normal variables behind
    per-patient and per-therapist effects and imputed values, ``*_offset`` and ``*_z``, nor the
    group effects Bambi derives from them), one array of draws each, flattened over chains and
    draws and labelled ``name[i]`` for the elements of vector-valued ones."""
    from alliance.sensitivity import NOT_PRIORS_SUFFIXES

    values = {}
    for name, array in draws.data_vars.items():
        if "|" in name and not name.endswith("_sigma"):
            continue  # a group's own effects
        if name == "mu" or name.endswith(NOT_PRIORS_SUFFIXES):
            continue
        data = array.stack(sample=("chain", "draw")).transpose("sample", ...).to_numpy()
        data = data.reshape(data.shape[0], -1)
        for column in range(data.shape[1]):
            label = name if data.shape[1] == 1 else f"{name}[{column}]"
            values[label] = data[:, column]
    return values


def ranks(posterior: Mapping[str, np.ndarray], truth: Mapping[str, float], kept: int) -> dict:
    """The rank of each true value among ``kept`` posterior draws evenly spaced over all draws
    (thinning reduces their autocorrelation): an integer from 0 to ``kept``; constants are left
    out."""
    result = {}
    for name, value in truth.items():
        draws = np.asarray(posterior[name])
        if np.ptp(draws) == 0:
            continue  # a constant (e.g. a reference level fixed at 0): nothing to calibrate
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


def sbc_simulation(compiled, inputs: Mapping, settings: Mapping, seed) -> dict:
    """One SBC simulation of a model compiled once (:class:`alliance.refit.CompiledModel`) on the
    design of ``inputs`` (its data inputs): the ranks of its population-level parameters.

    The parameters and every observed variable are drawn from the prior (jointly, as the model
    generates them: an outcome from the predictors drawn with it), the drawn values replace the
    observed data, and the model is refitted. ``settings``: ``sampling`` and ``sbc``
    (``kept_draws``); ``seed(*step)``."""
    from alliance.sampling import sample_pymc_prior

    model = compiled.model
    prior = sample_pymc_prior(model, 1, seed("prior"))
    truth = {name: float(v[0]) for name, v in scalar_parameters(prior["prior"]).items()}
    simulated = dict(inputs)
    for variable in model.observed_RVs:
        data_name = model.rvs_to_values[variable].name
        if data_name not in simulated:
            raise ValueError(f"observed variable {variable.name} is not a data input")
        draws = prior["prior_predictive"][variable.name].to_numpy().ravel()
        simulated[data_name] = draws
    tree = compiled.fit(simulated, settings["sampling"], seed("fit"))
    posterior = scalar_parameters(tree["posterior"].to_dataset())
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
