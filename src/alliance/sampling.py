"""MCMC for every model: one place that maps the config's sampler choice to the samplers.

Also the draws made after sampling (prior and posterior predictive, log-likelihood). These are
evaluated over all draws at once in PyTensor's Python mode (``NO_COMPILE``; random draws without
graph rewrites, :func:`no_rewrites`): compiling them into numba, the default backend, takes longer
than computing them with NumPy, and PyMC's own functions loop over the draws one at a time.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from importlib.util import find_spec
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import xarray as xr

SAMPLERS = ("nutpie", "pymc", "numpyro")

#: PyTensor mode of functions that run once or a few hundred times: no compilation (Python
#: implementations of the operations on NumPy arrays, no graph rewrites beyond the basic ones).
NO_COMPILE = "FAST_COMPILE"


def no_rewrites():
    """PyTensor mode of functions of random draws run once (prior and posterior predictive
    draws): as :data:`NO_COMPILE`, without even its rewrites, which cost more than they save
    here (the posterior predictive draws of an association model: 2.6 s instead of 3.6, the same
    draws)."""
    from pytensor.compile.mode import Mode

    return Mode(linker="py", optimizer=None)


def check_sampler(name: str) -> str:
    """The sampler's name, or an error that says what is missing."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    if find_spec(name) is None:  # each sampler is the package of the same name
        raise RuntimeError(f"sampler {name!r} needs the package {name!r}, which is not installed")
    return name


def announce_sampling(log, sampling: Mapping, cores: int, compiled: bool = False) -> float:
    """Tell the user what is about to be sampled (``compiled``: by a model compiled before);
    returns the start time."""
    if log is not None:
        thin = int(sampling.get("thin", 1))
        log.info(
            "%s %d chains x (%d warm-up + %d draws%s) with %s, %d at a time",
            "sampling" if compiled else "compiling, then sampling",
            sampling["chains"],
            sampling["tune"],
            sampling["draws"] * thin,
            f", every {thin}th kept" if thin > 1 else "",
            sampling["sampler"],
            max(1, min(sampling["chains"], cores)),
        )
    return time.perf_counter()


def announce_sampled(log, idata, start: float, what: str = "compiled and sampled") -> None:
    """Tell the user how long compiling and sampling (``what``) took and how many transitions
    diverged (workflow/benchmarks/full_run.py reads these lines)."""
    if log is not None:
        stats = idata["sample_stats"]
        divergences = int(stats["diverging"].sum()) if "diverging" in stats else 0
        log.info(
            "%s in %.1f s; %d divergent transitions",
            what,
            time.perf_counter() - start,
            divergences,
        )


def fit_bambi(model, sampling: Mapping, seed: int, cores: int = 2, log=None, predictive_seed=None):
    """Sample a Bambi model; the result carries the pointwise log-likelihood (for LOO) and, with
    ``predictive_seed``, posterior predictive draws of the response.

    ``cores``: chains sampled in parallel (a Snakemake job passes its ``threads``); ``log``: a
    logger told when sampling starts and ends. The model must be built with
    ``center_predictors=False``: Bambi reports a centred model's intercept shifted back, not as
    sampled, and the log-likelihood and replicates are computed from the sampled values.
    """
    if model.center_predictors:
        raise ValueError("build Bambi models with center_predictors=False to fit them here")
    sampler = check_sampler(sampling["sampler"])
    start = announce_sampling(log, sampling, cores)
    thin = int(sampling.get("thin", 1))
    idata = model.fit(
        draws=sampling["draws"] * thin,
        tune=sampling["tune"],
        chains=sampling["chains"],
        cores=max(1, min(sampling["chains"], cores)),
        inference_method=sampler,
        random_seed=seed,
        target_accept=sampling["target_accept"],
        # The offsets of the non-centred group effects are needed for the log-likelihood.
        omit_offsets=False,
        # The workflow's own convergence checks (alliance.diagnostics) judge every fit.
        compute_convergence_checks=False,
    )
    announce_sampled(log, idata, start)
    return add_bambi_draws(model, thinned(idata, thin), predictive_seed)


def add_bambi_draws(model, idata, predictive_seed=None):
    """The log-likelihood and (with ``predictive_seed``) the response's posterior predictive draws
    of a Bambi fit whose posterior holds the offsets; the offsets are dropped afterwards."""
    backend = model.backend.model
    posterior = idata["posterior"].to_dataset()
    idata["log_likelihood"] = pointwise_log_likelihood(backend, posterior)
    if predictive_seed is not None:
        (response,) = backend.observed_RVs
        (observed_name,) = idata["observed_data"].data_vars
        replicated = posterior_predictive(backend, posterior, predictive_seed, [response.name])
        idata["posterior_predictive"] = replicated.rename({response.name: observed_name})
    # The offsets are the standard-normal draws behind the group effects, which Bambi reports.
    offsets = [name for name in posterior.data_vars if name.endswith("_offset")]
    idata["posterior"] = posterior.drop_vars(offsets)
    return idata


def sample_pymc(
    model,
    sampling: Mapping,
    seed: int,
    log_likelihood: bool = False,
    cores: int = 2,
    log=None,
    compiled=None,
):
    """Sample a PyMC model with the configured sampler (optionally with the log-likelihood).

    ``cores``: chains sampled in parallel (a Snakemake job passes its ``threads``); ``log``: a
    logger told when sampling starts and ends. ``compiled``: the model compiled by nutpie before
    (:class:`alliance.refit.CompiledModel`, for the nutpie sampler): sampled without compiling
    again, one chain after another, into the tree ``pm.sample`` gives.
    """
    import pymc as pm

    sampler = check_sampler(sampling["sampler"])
    thin = int(sampling.get("thin", 1))
    if compiled is not None:
        if sampler != "nutpie":
            raise ValueError("a model compiled by nutpie is sampled with nutpie")
        from pymc.backends.arviz import patch_nutpie_idata

        start = announce_sampling(log, sampling, 1, compiled=True)
        idata = compiled.fit({}, sampling, seed)  # thinned
        # The observed and constant data, as pm.sample adds them to nutpie's tree.
        patch_nutpie_idata(idata, model, sampling_time=time.perf_counter() - start)
        announce_sampled(log, idata, start, "sampled (compiled once before)")
        if log_likelihood:
            posterior = idata["posterior"].to_dataset()
            idata["log_likelihood"] = pointwise_log_likelihood(model, posterior)
        return idata
    start = announce_sampling(log, sampling, cores)
    with model:
        idata = pm.sample(
            draws=sampling["draws"] * thin,
            tune=sampling["tune"],
            chains=sampling["chains"],
            cores=max(1, min(sampling["chains"], cores)),
            nuts_sampler=sampler,
            random_seed=seed,
            target_accept=sampling["target_accept"],
            # The workflow's own convergence checks (alliance.diagnostics) judge every fit.
            compute_convergence_checks=False,
        )
    announce_sampled(log, idata, start)
    idata = thinned(idata, thin)
    if log_likelihood:
        idata["log_likelihood"] = pointwise_log_likelihood(model, idata["posterior"].to_dataset())
    return idata


def sample_compiled(compiled, inputs: Mapping, sampling: Mapping, seed: int, log=None):
    """Sample a compiled growth model (:func:`alliance.refit.compile_growth_model`) on ``inputs``:
    the posterior as a Bambi fit gives it, the group effects (offset x SD, Bambi's names) in
    place of their offsets, which are kept in the tree's attribute ``offsets`` for
    :func:`add_compiled_draws`."""
    if check_sampler(sampling["sampler"]) != "nutpie":
        raise ValueError("a model compiled by nutpie is sampled with nutpie")
    start = announce_sampling(log, {**sampling, "thin": compiled.thin(sampling)}, 1, compiled=True)
    idata = compiled.fit(inputs, sampling, seed)
    announce_sampled(log, idata, start, "sampled (compiled once before)")
    posterior = idata["posterior"].to_dataset()
    offsets = [name for name in posterior.data_vars if name.endswith("_offset")]
    effects = {
        name.removesuffix("_offset"): posterior[name]
        * posterior[f"{name.removesuffix('_offset')}_sigma"]
        for name in offsets
    }
    idata["posterior"] = posterior.drop_vars(offsets).assign(effects)
    idata.attrs["offsets"] = posterior[offsets]
    return idata


def add_compiled_draws(compiled, inputs: Mapping, idata, predictive_seed: int):
    """The draws a Bambi fit of the same data adds (:func:`add_bambi_draws`) to the last fit of
    :func:`sample_compiled`: the pointwise log-likelihood, posterior predictive draws and the
    observed totals, on Bambi's observation dimension ``__obs__`` (computed once, after the
    safety net's last attempt). The model's data are set to ``inputs``."""
    import pymc as pm
    import xarray as xr

    with compiled.model:
        pm.set_data(compiled.used(inputs))
    model = compiled.model
    # The free variables as sampled: the offsets, not the effects computed from them.
    posterior = idata["posterior"].to_dataset().assign(idata.attrs.pop("offsets"))
    (response,) = model.observed_RVs
    on_obs = {f"{response.name}_dim_0": "__obs__"}
    idata["log_likelihood"] = pointwise_log_likelihood(model, posterior).rename(on_obs)
    replicated = posterior_predictive(model, posterior, predictive_seed, [response.name])
    idata["posterior_predictive"] = replicated.rename(on_obs)
    observed = model.rvs_to_values[response].get_value()
    idata["observed_data"] = xr.Dataset({response.name: ("__obs__", observed)})
    return idata


def thinned(idata, thin: int):
    """``idata`` with every ``thin``-th posterior draw kept.

    The sampler statistics keep every draw: divergences are counted, and E-BFMI computed from
    consecutive energies, over all the transitions the sampler made (thinned, a divergence could
    go unseen and the energies of draws ``thin`` apart would flatter E-BFMI).
    """
    if thin == 1:
        return idata
    posterior = idata["posterior"].to_dataset()
    kept = posterior.isel(draw=slice(thin - 1, None, thin))
    idata["posterior"] = kept.assign_coords(draw=range(kept.sizes["draw"]))
    return idata


def model_sampling(config: Mapping, section: str) -> dict:
    """The MCMC settings of one model family: ``sampling`` with the draws per chain multiplied by
    ``config[section]["draws_multiplier"]`` and ``thin`` (each 1 when the section has none;
    ``section`` may be a dotted path, e.g. ``growth.ordinal``).

    ``draws`` is the number of draws kept per chain; ``draws * thin`` are sampled, every
    ``thin``-th kept (for slowly mixing parameters the kept draws hold nearly all the effective
    sample size of the longer run, at the storage and post-processing cost of the kept ones).
    """
    sampling = dict(config["sampling"])
    section_config = config
    for key in section.split("."):  # a nested section: "growth.ordinal"
        section_config = section_config.get(key, {})
    sampling["draws"] = round(sampling["draws"] * section_config.get("draws_multiplier", 1))
    sampling["thin"] = int(section_config.get("thin", 1))
    return sampling


def extension_draws(sampling: Mapping) -> list[int]:
    """Draws kept per chain of each attempt the safety net may make: the configured draws, then
    twice as many each time, while at most ``sampling["max_draws"]`` (absent: no extension).
    A thinned model samples ``thin`` times the draws it keeps."""
    draws = [int(sampling["draws"])]
    cap = int(sampling.get("max_draws") or 0)
    while draws[-1] * 2 <= cap:
        draws.append(draws[-1] * 2)
    return draws


def sample_until_converged(sample, checks, sampling: Mapping, log=None):
    """The safety net of every fit: sample; while a convergence check fails, sample afresh with
    twice the draws per chain, up to ``sampling["max_draws"]``.

    ``sample(sampling, attempt)`` returns a fit made with the given settings (attempt 0, 1, ...:
    derive the seed from it); ``checks(fit)`` returns the judged convergence table
    (:func:`alliance.diagnostics.fit_checks`). The fit returned is the last one; its attributes
    ``draws_per_chain`` and ``extensions`` (attempts beyond the first) record what was needed, and
    the check jobs and the report show them. A fit that still fails at the cap is returned as it is
    (its failures are reported, or stop the run with ``diagnostics.strict``).
    """
    schedule = extension_draws(sampling)
    for attempt, draws in enumerate(schedule):
        fit = sample({**sampling, "draws": draws}, attempt)
        table = checks(fit)
        failed = table[~table["passed"].astype(bool)]
        fit.attrs["draws_per_chain"] = draws
        fit.attrs["extensions"] = attempt
        if failed.empty or attempt == len(schedule) - 1:
            break
        if log is not None:
            log.warning(
                "%d convergence checks failed at %d draws per chain (worst: %s); "
                "sampling again with %d draws per chain (sampling.max_draws: %d)",
                len(failed),
                draws,
                ", ".join(failed["quantity"].astype(str).head(3)),
                schedule[attempt + 1],
                int(sampling["max_draws"]),
            )
    return fit


def fit_with_safety_net(
    model,
    estimands_of,
    prior,
    sampling: Mapping,
    convergence: Mapping,
    seed,
    label: str,
    log,
    cores: int = 1,
    predicted=(),
    log_likelihood: bool = True,
    predictive_draws: int | None = None,
    compiled=None,
    inputs=None,
):
    """Fit a model the way every fit job does, into the tree its NetCDF file holds.

    Samples through the safety net (:func:`sample_until_converged`), judged on every parameter,
    every reported quantity and the sampler; adds the log prior (prior sensitivity), posterior
    predictive draws, the prior draws (``prior``: of :func:`sample_bambi_prior` or
    :func:`sample_pymc_prior`), the reported quantities from the posterior (group
    ``estimands``) and from the prior alone (``prior_estimands``), and the R-hat and ESS the last
    attempt was judged by (group :data:`alliance.diagnostics.STATISTICS_GROUP`, with the
    fingerprint of the draws they were computed from, for the check job to reuse).

    ``model``: a built Bambi model (its response is replicated) or a PyMC model (``predicted``:
    the observed variables to replicate, from every posterior draw or from ``predictive_draws``
    of them, evenly spaced; ``log_likelihood``: whether to keep the pointwise log-likelihood,
    for model comparison). ``estimands_of(tree)``: the dataset of reported
    quantities computed from a tree's ``posterior`` group. ``seed(*step)``: the job's seed of a
    step (:func:`alliance.seeds.job_seeds`). ``label``: the model's name in the convergence table.
    ``compiled``: for a Bambi model, its PyMC form compiled once
    (:class:`alliance.refit.CompiledModel`), sampled on ``inputs`` (its data) by
    :func:`sample_compiled`; ``model`` (the Bambi model of the same data) then gives the priors.
    For a PyMC model, a compiled form whose ``fit`` gives draws of ``model``'s posterior on the
    data ``model`` holds (e.g. :class:`alliance.agreement.MarginalAgreementModel`); by default a
    PyMC model sampled by nutpie is compiled as it is.
    """
    from alliance.diagnostics import (
        STATISTICS_GROUP,
        draw_diagnostics,
        draws_fingerprint,
        fit_checks,
        statistics_group,
    )
    from alliance.refit import CompiledModel
    from alliance.sensitivity import add_log_prior

    is_bambi = hasattr(model, "backend")
    judged = {}  # the last attempt's reported quantities, computed once
    # A PyMC model sampled by nutpie is compiled once, for every attempt of the safety net.
    compiled_pymc = None
    if not is_bambi:
        compiled_pymc, compiled = compiled, None
        if compiled_pymc is None and sampling["sampler"] == "nutpie":
            compiled_pymc = CompiledModel(model, log)

    def sample(settings, attempt):
        extension = (attempt,) if attempt else ()
        if compiled is not None:
            return sample_compiled(compiled, inputs, settings, seed("fit", *extension), log)
        if is_bambi:
            return fit_bambi(
                model,
                settings,
                seed("fit", *extension),
                cores=cores,
                log=log,
                predictive_seed=seed("ppc", *extension),
            )
        return sample_pymc(
            model,
            settings,
            seed("fit", *extension),
            log_likelihood=log_likelihood,
            cores=cores,
            log=log,
            compiled=compiled_pymc,
        )

    def checks(fit):
        judged["estimands"] = estimands_of(fit)
        judged["statistics"] = draw_diagnostics(fit, judged["estimands"], label)
        judged["fingerprint"] = draws_fingerprint(
            fit["posterior"].to_dataset(), judged["estimands"]
        )
        return fit_checks(fit, judged["estimands"], label, convergence, judged["statistics"])

    idata = sample_until_converged(sample, checks, sampling, log)
    if compiled is not None:
        extension = (idata.attrs["extensions"],) if idata.attrs["extensions"] else ()
        add_compiled_draws(compiled, inputs, idata, seed("ppc", *extension))
    add_log_prior(idata, model.backend.model if is_bambi else model)
    if predicted and not is_bambi and compiled is None:
        posterior = idata["posterior"].to_dataset()
        if predictive_draws:
            step = max(1, posterior.sizes["chain"] * posterior.sizes["draw"] // predictive_draws)
            posterior = posterior.isel(draw=slice(None, None, step))
        idata["posterior_predictive"] = posterior_predictive(
            model, posterior, seed("ppc"), var_names=list(predicted)
        )
    for group in ("prior", "prior_predictive"):
        if group in prior:
            idata[group] = prior[group]
    idata["estimands"] = judged["estimands"]
    idata["prior_estimands"] = estimands_of(prior_as_posterior(prior))
    # The statistics the last attempt was judged by, for the check job to reuse if its draws
    # are the same (alliance.diagnostics.saved_draw_diagnostics).
    idata[STATISTICS_GROUP] = statistics_group(judged["statistics"], judged["fingerprint"])
    return idata


def stacked_draws(draws):
    """Draws of one variable as an array (chain x draw, ...): one row per draw."""
    return draws.stack(sample=("chain", "draw")).transpose("sample", ...).to_numpy()


def save_fit(idata, path, labels: Mapping | None = None) -> None:
    """Write a fit to NetCDF (h5netcdf), leaving out text-valued sampler statistics.

    ``labels`` become attributes of the file: ``aim``, ``model`` and, for a model of one rater,
    ``rater`` label its estimand rows (alliance.posterior_summary.summarise_fit).
    """
    idata.attrs.update({key: value for key, value in (labels or {}).items() if value is not None})
    stats = idata["sample_stats"].to_dataset()
    text = [name for name, values in stats.data_vars.items() if values.dtype == object]
    if text:
        idata["sample_stats"] = stats.drop_vars(text)
    idata.to_netcdf(path, engine="h5netcdf")


def load_fit(path, groups=None):
    """Read a fit written by :func:`save_fit` into memory (only ``groups``, if given: each read
    on its own, without parsing the other groups, which costs more than reading a small group)."""
    import xarray as xr

    if groups is None:
        return xr.open_datatree(path, engine="h5netcdf").load()
    with xr.open_dataset(path, engine="h5netcdf") as root:
        attrs = dict(root.attrs)
    datasets = {}
    for group in groups:
        with xr.open_dataset(path, engine="h5netcdf", group=group) as dataset:
            datasets[group] = dataset.load()
    tree = xr.DataTree.from_dict(datasets)
    tree.attrs.update(attrs)
    return tree


def sample_pymc_prior(model, draws: int, seed: int, var_names=None):
    """Prior and prior predictive draws of a PyMC model (of ``var_names`` only, if given).

    The tree ``pm.sample_prior_predictive`` returns (groups ``prior`` and ``prior_predictive``,
    the same variables, dims and coordinates), its draws computed in one call over all draws
    (:func:`forward_draws`) instead of one call per draw: for an association model about 1 s
    (2.6 s for the first in a process) instead of 5 on this project's machine. Other draws than
    PyMC's for the same seed, from the same distribution (tests).
    """
    import pymc as pm
    from pymc.util import get_default_varnames

    wanted = (
        {variable.name for variable in model.basic_RVs + model.deterministics}
        if var_names is None
        else set(var_names)
    )
    names = sorted(get_default_varnames(wanted, include_transformed=False))
    if set(names) != wanted:
        raise ValueError(f"transformed values cannot be drawn: {sorted(wanted - set(names))}")
    try:
        values = forward_draws([model[name] for name in names], draws, seed)
    except NotImplementedError:  # a random operation it cannot batch: PyMC's loop over draws
        with model:
            return pm.sample_prior_predictive(
                draws=draws,
                random_seed=seed,
                var_names=names,
                compile_kwargs={"mode": NO_COMPILE},
            )
    with model:
        return pm.to_inference_data(prior=dict(zip(names, values, strict=True)), model=model)


def forward_draws(outputs, draws: int, seed: int) -> list:
    """``draws`` independent forward draws of ``outputs`` (variables of a PyMC model's graph),
    every random variable they depend on drawn afresh, in one call: arrays with a leading draw axis.

    The graph is batched node by node: each random variable is drawn ``draws`` times at once
    (the draw axis in front of its size, or of its parameters where they vary by draw), every
    other operation is vectorised by PyTensor (``vectorize_graph``'s rules). The
    function runs once in Python mode without graph rewrites, which would cost more than the
    computation. Its generators are seeded from ``seed`` as PyMC seeds them.
    """
    import numpy as np
    from pymc.pytensorf import compile as compile_pymc
    from pytensor.graph.replace import _vectorize_node
    from pytensor.graph.traversal import toposort
    from pytensor.tensor.random.op import RandomVariable
    from pytensor.tensor.random.type import RandomType

    batched = {}  # each variable that varies by draw -> its batched form
    try:
        for node in toposort(outputs):
            inputs = [batched.get(variable, variable) for variable in node.inputs]
            if isinstance(node.op, RandomVariable):
                new_outputs = _batched_random_variable(node, inputs, draws, batched)
            elif any(variable in batched for variable in node.inputs):
                vectorised = _vectorize_node(node.op, node, *inputs)
                new_outputs = getattr(vectorised, "outputs", vectorised)
            elif any(isinstance(variable.type, RandomType) for variable in node.inputs):
                # Another kind of random operation (a PyMC SymbolicRandomVariable) with
                # parameters that do not vary by draw: its size is not a parameter here.
                raise NotImplementedError(f"cannot draw {node.op} {draws} times at once")
            else:  # depends on no random variable: the same for every draw
                continue
            batched.update(zip(node.outputs, new_outputs, strict=True))
    except (NotImplementedError, TypeError, ValueError) as error:  # an operation not batched
        raise NotImplementedError(f"cannot batch the graph: {error}") from error
    function = compile_pymc(
        [],
        [batched.get(output, output) for output in outputs],
        random_seed=seed,
        mode=no_rewrites(),
    )
    values = []
    for output, value in zip(outputs, function(), strict=True):
        if output not in batched:  # depends on no random variable (data): the same every draw
            value = np.repeat(value[None], draws, axis=0)
        if value.ndim != output.ndim + 1 or len(value) != draws:  # not batched: a bug
            raise AssertionError(f"{output} drawn with shape {value.shape}, not ({draws}, ...)")
        values.append(value)
    return values


def _batched_random_variable(node, inputs, draws: int, batched: dict) -> list:
    """The outputs of random variable ``node`` drawn ``draws`` times at once (for
    :func:`forward_draws`; ``inputs``: its inputs, batched where they vary by draw)."""
    import pytensor.tensor as pt
    from pytensor.graph.replace import graph_replace
    from pytensor.graph.traversal import ancestors
    from pytensor.tensor.type_other import NoneTypeT

    # Its parameters have as many dimensions as its value (make_node pads them), so one that
    # varies by draw has the draw axis in front: it lines up with the draw axis of the size.
    rng, _, *params = inputs
    batch_ndim = node.outputs[1].ndim - node.op.ndim_supp
    # The size as the model has it, the same for every draw (vectorised, a size read from another
    # variable's shape would read the draw axis), with that variable's first draw in place of
    # the variable (else the function would also draw the variable itself from the generator its
    # batched draws use, which then is not reseeded).
    size = node.inputs[1]
    read = {
        variable: batched[variable][0]
        for variable in ancestors([size])
        if variable in batched and _is_drawn(variable)
    }
    if read:
        size = graph_replace(size, read, strict=False)
    if not isinstance(size.type, NoneTypeT):
        size = pt.concatenate([[draws], size])
    elif not any(variable in batched for variable in node.inputs[2:]):
        # No parameter varies by draw: the draw axis in front of the batch shape they give.
        shape = node.op._infer_shape(size, node.inputs[2:])[:batch_ndim]
        size = pt.stack([draws, *shape]) if shape else pt.as_tensor([draws])
    # (else: the parameters that vary by draw give the draws' shape.)
    return node.op.make_node(rng, size, *params).outputs


def _is_drawn(variable) -> bool:
    """Whether ``variable`` is an output of a random operation (one with a generator input)."""
    from pytensor.tensor.random.type import RandomType

    owner = variable.owner
    return owner is not None and any(isinstance(i.type, RandomType) for i in owner.inputs)


def sample_bambi_prior(model, draws: int, seed: int):
    """Prior and prior predictive draws of a Bambi model."""
    import pytensor

    with pytensor.config.change_flags(mode=NO_COMPILE):
        return model.prior_predictive(draws=draws, random_seed=seed)


def prior_as_posterior(prior):
    """Prior draws in a tree's ``posterior`` group, for functions that read posterior draws
    (the estimands the priors alone imply)."""
    import xarray as xr

    return xr.DataTree.from_dict({"posterior": prior["prior"].to_dataset()})


def _draw_dims(model, name: str, ndim: int) -> tuple[str, ...]:
    """The dimension names PyMC gives the draws of a model variable."""
    dims = model.named_vars_to_dims.get(name) or (None,) * ndim
    return tuple(dim or f"{name}_dim_{axis}" for axis, dim in enumerate(dims))


def _as_draws(model, posterior, arrays: dict) -> xr.Dataset:
    """Arrays with one leading sample axis (chain x draw) as a dataset like PyMC's groups."""
    import xarray as xr

    shape = (posterior.sizes["chain"], posterior.sizes["draw"])
    variables = {
        name: (
            ("chain", "draw", *_draw_dims(model, name, values.ndim - 1)),
            values.reshape(shape + values.shape[1:]),
        )
        for name, values in arrays.items()
    }
    coords = {"chain": posterior["chain"].values, "draw": posterior["draw"].values}
    model_coords = {name: list(values) for name, values in model.coords.items()}
    dataset = xr.Dataset(variables, coords=coords)
    return dataset.assign_coords(
        {dim: model_coords[dim] for dim in dataset.dims if dim in model_coords}
    )


def _evaluate_over_draws(
    outputs, inputs, posterior, seed: int | None = None, fixed: dict | None = None
) -> list:
    """``outputs`` at every draw of ``posterior`` at once, one leading sample axis (chain x draw).

    ``inputs``: graph variables, each replaced by the draws of the posterior variable of its name;
    ``fixed``: graph variables replaced by the same value at every draw (observed data).
    Random variables left in the graph are drawn once per draw, seeded by ``seed`` (compiled
    without rewrites: :func:`no_rewrites`).
    """
    import numpy as np
    import pytensor.tensor as pt
    from pytensor.graph.replace import vectorize_graph

    from alliance.function_cache import compile_cached

    batched = {
        # (Unnamed: pt.tensor would misread Bambi names such as "1|patient_id_sigma" as dtypes.)
        variable: pt.TensorType(variable.dtype, shape=(None, *variable.type.shape))()
        for variable in inputs
    }
    # Cached where its graph has no random draws (the log-likelihood; alliance.function_cache).
    function = compile_cached(
        list(batched.values()),
        vectorize_graph(outputs, replace={**(fixed or {}), **batched}),
        random_seed=seed,
        mode=NO_COMPILE if seed is None else no_rewrites(),
        on_unused_input="ignore",
    )
    stacked = posterior.stack(sample=("chain", "draw")).transpose("sample", ...)
    results = function(
        *[stacked[variable.name].values.astype(variable.dtype) for variable in inputs]
    )
    # An output that depends on no input (e.g. a density given only data) is the same every draw.
    samples = stacked.sizes["sample"]
    return [
        result if result.ndim > output.ndim else np.broadcast_to(result, (samples, *result.shape))
        for output, result in zip(outputs, results, strict=True)
    ]


def pointwise_log_likelihood(model, posterior) -> xr.Dataset:
    """Log density of every observation at every posterior draw (for LOO and power-scaling).

    The same numbers as ``pm.compute_log_likelihood``, computed over all draws at once.
    ``posterior`` holds every free variable (constrained values), dims ``chain`` and ``draw``.
    """
    from pymc.model.transform.conditioning import remove_value_transforms

    plain = remove_value_transforms(model)
    # The value variables carry the names of their (untransformed) random variables.
    values = [plain.rvs_to_values[rv] for rv in plain.free_RVs]
    observed = list(plain.observed_RVs)
    densities = _evaluate_over_draws(plain.logp(vars=observed, sum=False), values, posterior)
    return _as_draws(
        model,
        posterior,
        {rv.name: density for rv, density in zip(observed, densities, strict=True)},
    )


def posterior_predictive(model, posterior, seed: int, var_names) -> xr.Dataset:
    """Posterior predictive draws of observed variables ``var_names``, one per posterior draw.

    Every variable is drawn from one joint graph, so an observed variable that depends on another
    of ``var_names`` (a conditional likelihood) is drawn given the other's replicate, as
    ``pm.sample_posterior_predictive`` does; observed variables not in ``var_names`` are held at
    their data.
    """
    # Other observed variables the outputs depend on (observed predictors of a model that
    # imputes the missing ones) stay at their data, as in pm.sample_posterior_predictive.
    data = {rv: model.rvs_to_values[rv] for rv in model.observed_RVs if rv.name not in var_names}
    draws = _evaluate_over_draws(
        [model[name] for name in var_names], list(model.free_RVs), posterior, seed, data
    )
    return _as_draws(model, posterior, dict(zip(var_names, draws, strict=True)))
