"""The nutpie compile whose callbacks a warm cache loads (alliance.nutpie_compile): the same log
density, gradient, stored values and draws as nutpie's own compile, data swapped in without
compiling again, errors reported as failed evaluations, and a second process compiling nothing."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pymc as pm
import pytest
from pytensor.raise_op import Assert

from alliance.nutpie_compile import compile_pymc_model

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

DOUBLE = ctypes.POINTER(ctypes.c_double)


def model_with_inputs(n_groups=4):
    """Data inputs of every kind the workflow's models have: an integer index, observations, a
    matrix, a scalar; free variables with and without a transform, vectors and a matrix."""
    rng = np.random.default_rng(3)
    n = 30
    with pm.Model() as model:
        group = pm.Data("group", rng.integers(0, n_groups, n))
        covariates = pm.Data("covariates", rng.normal(size=(n, 2)))
        scale = pm.Data("scale", 2.0)
        y = pm.Data("y", rng.normal(size=n))
        sd = pm.HalfNormal("sd", 1.0)
        effect = pm.Normal("effect", 0, 1, shape=n_groups)
        slopes = pm.Normal("slopes", 0, 1, shape=(2, 1))
        mu = effect[group] * sd + (covariates @ slopes)[:, 0]
        pm.Deterministic("mean_effect", effect.mean())
        pm.Normal("outcome", mu, scale * pm.HalfNormal("noise", 1.0), observed=y)
    return model


def logp_callback(compiled, x):
    """(return code, log density, gradient) of the compiled C callback at ``x``."""
    gradient = np.zeros(compiled.n_dim)
    logp = np.zeros(1)
    code = compiled.compiled_logp_func.ctypes(
        compiled.n_dim,
        x.ctypes.data_as(DOUBLE),
        gradient.ctypes.data_as(DOUBLE),
        logp.ctypes.data_as(DOUBLE),
        compiled.user_data.ctypes.data_as(ctypes.c_void_p),
    )
    return code, logp[0], gradient


def expand_callback(compiled, x):
    values = np.zeros(compiled.n_expanded)
    code = compiled.compiled_expand_func.ctypes(
        compiled.n_dim,
        compiled.n_expanded,
        x.ctypes.data_as(DOUBLE),
        values.ctypes.data_as(DOUBLE),
        compiled.user_data.ctypes.data_as(ctypes.c_void_p),
    )
    return code, values


def pymc_logp_and_gradient(model, compiled, x):
    """PyMC's own log density and gradient of ``model`` at the flat point ``x`` (unpacked by the
    compiled model's layout)."""
    names, slices, shapes = compiled.shape_info
    point = {
        name: x[part].reshape(shape)
        for name, part, shape in zip(names, slices, shapes, strict=False)
        if part.stop <= compiled.n_dim
    }
    logp = model.compile_logp()(point)
    gradient = model.compile_dlogp()(point)
    return logp, gradient


def test_the_callbacks_give_the_models_log_density_gradient_and_stored_values():
    """At random points, the log-density callback returns 0, PyMC's log density and its
    gradient (rel. 1e-12), and the expand callback the values nutpie's own compile stores; after
    ``with_data`` (more observations, other values) likewise for the new data."""
    import nutpie

    model = model_with_inputs()
    compiled = compile_pymc_model(model)
    reference = nutpie.compile_pymc_model(model)
    # The cacheable callbacks, not nutpie's own compile (the fallback for uncacheable functions).
    assert "functions" in compiled.user_data.dtype.names
    assert compiled.n_dim == reference.n_dim == 1 + 4 + 2 + 1
    rng = np.random.default_rng(8)
    new_data = {
        "group": rng.integers(0, 4, 45),
        "covariates": rng.normal(size=(45, 2)),
        "scale": np.asarray(0.5),
        "y": rng.normal(3, 1, 45),
    }
    for data in ({}, new_data):
        ours, theirs = compiled.with_data(**data), reference.with_data(**data)
        with model:
            pm.set_data({**data} if data else {})
        for _ in range(3):
            x = rng.normal(size=compiled.n_dim)
            code, logp, gradient = logp_callback(ours, x)
            expected_logp, expected_gradient = pymc_logp_and_gradient(model, ours, x)
            assert code == 0
            assert logp == pytest.approx(expected_logp, rel=1e-12)
            np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-12, atol=1e-12)
            assert logp_callback(theirs, x)[1] == pytest.approx(logp, rel=1e-12)
            code, values = expand_callback(ours, x)
            assert code == 0
            np.testing.assert_allclose(values, expand_callback(theirs, x)[1], rtol=1e-12)
    # The data changed the density (the comparison above saw the new data, not the old).
    x = rng.normal(size=compiled.n_dim)
    assert logp_callback(compiled, x)[1] != logp_callback(compiled.with_data(**new_data), x)[1]


def test_sampling_gives_the_draws_of_nutpies_own_compile():
    """Same model, seed and settings: the same draws as nutpie's compile, to the last digit."""
    import nutpie

    model = model_with_inputs()
    trees = [
        nutpie.sample(
            compiled,
            draws=200,
            tune=200,
            chains=2,
            cores=1,
            seed=11,
            progress_bar=False,
        )
        for compiled in (compile_pymc_model(model), nutpie.compile_pymc_model(model))
    ]
    ours, theirs = (tree["posterior"].to_dataset() for tree in trees)
    assert set(ours.data_vars) == set(theirs.data_vars) >= {"sd", "effect", "mean_effect"}
    for name in theirs.data_vars:
        np.testing.assert_array_equal(ours[name].values, theirs[name].values)


def test_an_error_in_the_model_is_a_failed_evaluation():
    """A model whose graph raises (a failed assertion on its data) makes the callbacks return
    nutpie's failure codes, not crash; valid data evaluate."""
    with pm.Model() as model:
        flag = pm.Data("flag", 1.0)
        mu = pm.Normal("mu", 0, 1)
        checked = Assert("flag must be positive")(mu, flag > 0)
        pm.Potential("term", -(checked**2))
    compiled = compile_pymc_model(model)
    x = np.array([0.3])
    assert logp_callback(compiled, x)[0] == 0
    broken = compiled.with_data(flag=-1.0)
    assert logp_callback(broken, x)[0] == 1


def test_a_second_process_loads_the_callbacks_from_the_cache(tmp_path):
    """Two processes with the same (initially empty) caches compile the same model: the first
    compiles both callbacks, the second loads both from the cache."""
    script = textwrap.dedent(
        f"""
        from alliance.runtime import isolate_caches
        isolate_caches({str(tmp_path)!r}, "job")
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_nutpie_compile import model_with_inputs
        from alliance.nutpie_compile import compile_pymc_model
        compiled = compile_pymc_model(model_with_inputs(n_groups=3))
        print(compiled.compiled_logp_func.cache_hits, compiled.compiled_expand_func.cache_hits)
        """
    )
    cache_variables = {"PYTENSOR_FLAGS", "NUMBA_CACHE_DIR", "MPLCONFIGDIR", "TMPDIR"}
    env = {name: value for name, value in os.environ.items() if name not in cache_variables}
    hits = [
        subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env
        ).stdout.split()
        for _ in range(2)
    ]
    assert hits == [["0", "0"], ["1", "1"]]


def test_a_function_without_its_cacheable_form_falls_back_to_nutpies_compile(monkeypatch):
    """Where PyTensor compiled no cacheable function (here simulated), nutpie's own compile
    serves, with the same log density."""
    import alliance.nutpie_compile

    def uncacheable(dispatcher, inputs):
        raise alliance.nutpie_compile.UncachedFunction(dispatcher)

    model = model_with_inputs(n_groups=2)
    cached = compile_pymc_model(model)
    monkeypatch.setattr(alliance.nutpie_compile, "_native_function", uncacheable)
    fallback = compile_pymc_model(model)
    assert "functions" not in fallback.user_data.dtype.names
    x = np.random.default_rng(2).normal(size=fallback.n_dim)
    assert logp_callback(fallback, x)[1] == pytest.approx(logp_callback(cached, x)[1], rel=1e-12)
