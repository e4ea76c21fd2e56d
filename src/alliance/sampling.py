"""MCMC for every model: one place that maps the config's sampler choice to the samplers."""

from __future__ import annotations

import time
from collections.abc import Mapping
from importlib.util import find_spec

SAMPLERS = ("nutpie", "pymc", "numpyro")


def check_sampler(name: str) -> str:
    """The sampler's name, or an error that says what is missing."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    if find_spec(name) is None:  # each sampler is the package of the same name
        raise RuntimeError(f"sampler {name!r} needs the package {name!r}, which is not installed")
    return name


def announce_sampling(log, sampling: Mapping, cores: int) -> float:
    """Tell the user what is about to be sampled; returns the start time."""
    if log is not None:
        log.info(
            "compiling, then sampling %d chains x (%d warm-up + %d draws) with %s, %d at a time",
            sampling["chains"],
            sampling["tune"],
            sampling["draws"],
            sampling["sampler"],
            max(1, min(sampling["chains"], cores)),
        )
    return time.perf_counter()


def announce_sampled(log, idata, start: float) -> None:
    """Tell the user how long compiling and sampling took and how many transitions diverged."""
    if log is not None:
        stats = idata["sample_stats"]
        divergences = int(stats["diverging"].sum()) if "diverging" in stats else 0
        log.info(
            "compiled and sampled in %.0f s; %d divergent transitions",
            time.perf_counter() - start,
            divergences,
        )


def fit_bambi(model, sampling: Mapping, seed: int, cores: int = 2, log=None):
    """Sample a Bambi model; the result carries the pointwise log-likelihood (for LOO).

    ``cores``: chains sampled in parallel (a Snakemake job passes its ``threads``); ``log``: a
    logger told when sampling starts and ends.
    """
    sampler = check_sampler(sampling["sampler"])
    start = announce_sampling(log, sampling, cores)
    idata = model.fit(
        draws=sampling["draws"],
        tune=sampling["tune"],
        chains=sampling["chains"],
        cores=max(1, min(sampling["chains"], cores)),
        inference_method=sampler,
        random_seed=seed,
        target_accept=sampling["target_accept"],
        idata_kwargs={"log_likelihood": True},
        # The workflow's own convergence checks (alliance.diagnostics) judge every fit.
        compute_convergence_checks=False,
    )
    announce_sampled(log, idata, start)
    return idata


def sample_pymc(
    model, sampling: Mapping, seed: int, log_likelihood: bool = False, cores: int = 2, log=None
):
    """Sample a PyMC model with the configured sampler (optionally with the log-likelihood).

    ``cores``: chains sampled in parallel (a Snakemake job passes its ``threads``); ``log``: a
    logger told when sampling starts and ends.
    """
    import pymc as pm

    sampler = check_sampler(sampling["sampler"])
    start = announce_sampling(log, sampling, cores)
    with model:
        idata = pm.sample(
            draws=sampling["draws"],
            tune=sampling["tune"],
            chains=sampling["chains"],
            cores=max(1, min(sampling["chains"], cores)),
            nuts_sampler=sampler,
            random_seed=seed,
            target_accept=sampling["target_accept"],
            idata_kwargs={"log_likelihood": log_likelihood},
            # The workflow's own convergence checks (alliance.diagnostics) judge every fit.
            compute_convergence_checks=False,
        )
    announce_sampled(log, idata, start)
    return idata


def save_fit(idata, path) -> None:
    """Write a fit to NetCDF (h5netcdf), leaving out text-valued sampler statistics."""
    stats = idata["sample_stats"].to_dataset()
    text = [name for name, values in stats.data_vars.items() if values.dtype == object]
    if text:
        idata["sample_stats"] = stats.drop_vars(text)
    idata.to_netcdf(path, engine="h5netcdf")


def load_fit(path):
    """Read a fit written by :func:`save_fit` into memory."""
    import xarray as xr

    return xr.open_datatree(path, engine="h5netcdf").load()


def sample_pymc_prior(model, draws: int, seed: int, var_names=None):
    """Prior and prior predictive draws of a PyMC model (of ``var_names`` only, if given)."""
    import pymc as pm

    with model:
        return pm.sample_prior_predictive(draws=draws, random_seed=seed, var_names=var_names)


def sample_pymc_posterior_predictive(model, idata, seed: int, var_names=None):
    """Posterior predictive draws of a PyMC model's observed variables."""
    import pymc as pm

    with model:
        return pm.sample_posterior_predictive(
            idata, var_names=var_names, random_seed=seed, progressbar=False
        )
