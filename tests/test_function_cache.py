"""The cache of rewritten graphs (alliance.function_cache): keyed by a graph's structure and
constants, not its data; a hit compiles nothing and computes with the caller's data; the cache
holds no data; random and unnamed inputs are not cached; the nutpie compile of a model loaded
from it samples the same draws."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from pymc import pytensorf

from alliance import function_cache
from alliance.function_cache import compile_cached, function_key

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(autouse=True)
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(function_cache, "cache_dir", lambda: tmp_path / "graphs")
    function_cache.counts.clear()
    return tmp_path / "graphs"


def normal_density(values, sigma=1.0, dtype="float64", name="y"):
    """The log density of data ``values`` under N(mean, sigma), from an input ``mean``."""
    data = pytensor.shared(np.asarray(values, dtype=dtype), name=name, shape=(None,))
    mean = pt.dscalar("mean")
    density = pm.logp(pm.Normal.dist(mean, sigma), data).sum()
    return [mean], [density]


def expected_density(values, mean, sigma=1.0):
    values = np.asarray(values, dtype=float)
    return float(np.sum(-0.5 * ((values - mean) / sigma) ** 2 - np.log(sigma * np.sqrt(2 * np.pi))))


def test_the_key_is_the_structure_and_constants_not_the_data():
    """The same graph built twice with other data (other length) has one key; another constant
    (a prior's scale), another data type or name, mode, option or model bounds check gives
    another."""
    key = function_key(*normal_density([1.0, 2.0]), mode="FAST_COMPILE")
    assert key is not None
    assert function_key(*normal_density([5.0, 6.0, 7.0]), mode="FAST_COMPILE") == key
    with pm.Model(check_bounds=False):
        unchecked = function_key(*normal_density([1.0, 2.0]), mode="FAST_COMPILE")
    others = [
        function_key(*normal_density([1.0, 2.0], sigma=2.0), mode="FAST_COMPILE"),
        function_key(*normal_density([1.0, 2.0], dtype="float32"), mode="FAST_COMPILE"),
        function_key(*normal_density([1.0, 2.0], name="z"), mode="FAST_COMPILE"),
        function_key(*normal_density([1.0, 2.0]), mode="FAST_RUN"),
        function_key(*normal_density([1.0, 2.0]), mode="FAST_COMPILE", on_unused_input="ignore"),
        unchecked,
    ]
    assert None not in others and len({key, *others}) == len(others) + 1


def test_the_key_holds_every_inputs_name_and_type():
    """Inputs named the other way round (keyword calls) or an unused input of another type make
    another key."""
    a, b = pt.dscalar("a"), pt.dscalar("b")
    key = function_key([a, b], [a - b], mode="FAST_COMPILE")
    swapped_a, swapped_b = pt.dscalar("b"), pt.dscalar("a")
    assert function_key([swapped_a, swapped_b], [swapped_a - swapped_b], mode="FAST_COMPILE") != key
    unused = pt.dvector("b")
    assert function_key(
        [a, unused], [a * 1.0], mode="FAST_COMPILE", on_unused_input="ignore"
    ) != function_key([a, b], [a * 1.0], mode="FAST_COMPILE", on_unused_input="ignore")


def test_a_second_compile_loads_the_function_and_computes_with_the_callers_data(
    empty_cache, monkeypatch
):
    first = compile_cached(*normal_density([1.0, 2.0]), mode="FAST_COMPILE")
    assert len(list(empty_cache.glob("*.pkl"))) == 1
    assert float(first(0.5)[0]) == pytest.approx(expected_density([1.0, 2.0], 0.5), rel=1e-12)

    def no_compile(*args, **kwargs):
        raise AssertionError("compiled although the graph is in the cache")

    monkeypatch.setattr(pytensorf, "compile", no_compile)
    values = [4.0, -1.0, 3.5]
    second = compile_cached(*normal_density(values), mode="FAST_COMPILE")
    assert float(second(0.5)[0]) == pytest.approx(expected_density(values, 0.5), rel=1e-12)
    # The first function keeps its own data.
    assert float(first(0.5)[0]) == pytest.approx(expected_density([1.0, 2.0], 0.5), rel=1e-12)
    assert dict(function_cache.counts) == {"compiled": 1, "loaded": 1}


def test_the_cache_holds_no_data_and_a_loaded_function_follows_the_callers_data(empty_cache):
    """The entry on disk holds none of the data's bytes; a loaded function reads the caller's own
    shared variable, so a later change of the data reaches it, as with a fresh compile."""
    values = np.array([1.234567e-7, 9.876543e5, 3.141592e-3])
    compile_cached(*normal_density(values), mode="FAST_COMPILE")
    (entry,) = empty_cache.glob("*.pkl")
    assert values.tobytes() not in entry.read_bytes()
    inputs, outputs = normal_density([0.0])
    loaded = compile_cached(inputs, outputs, mode="FAST_COMPILE")
    assert function_cache.counts["loaded"] == 1
    (data,) = loaded.get_shared()
    data.set_value(values)
    assert float(loaded(0.5)[0]) == pytest.approx(expected_density(values, 0.5), rel=1e-12)


@pytest.mark.filterwarnings("ignore:Setting default_update is deprecated:DeprecationWarning")
def test_data_with_a_default_update_is_compiled_as_usual(empty_cache):
    """A data input with an update at every call is not cached (the update is not in the key)."""
    counter = pytensor.shared(np.array(0.0), name="counter")
    counter.default_update = counter + 1
    step = pt.dscalar("step")
    assert function_key([step], [counter * step], mode="FAST_COMPILE") is None
    function = compile_cached([step], [counter * step], mode="FAST_COMPILE")
    assert [float(function(1.0)[0]) for _ in range(3)] == [0.0, 1.0, 2.0]
    assert function_cache.counts == {"not_cached": 1}


def test_random_draws_and_unnamed_data_are_compiled_as_usual(empty_cache):
    """A graph that draws random numbers (its generator is reseeded per function) or reads an
    unnamed data input is not cached: compiled, nothing stored."""
    mean = pt.dscalar("mean")
    draws = pm.Normal.dist(mean, 1.0, size=3)
    unnamed = pytensor.shared(np.ones(3))
    for inputs, outputs, shape in (([mean], [draws], (3,)), ([mean], [(unnamed * mean).sum()], ())):
        assert function_key(inputs, outputs, mode="FAST_COMPILE") is None
        function = compile_cached(inputs, outputs, mode="FAST_COMPILE", random_seed=1)
        assert np.shape(function(1.0)[0]) == shape
    assert not empty_cache.exists() or not list(empty_cache.glob("*.pkl"))
    assert function_cache.counts["not_cached"] == 2


def test_a_batched_python_function_is_stored_and_loaded(empty_cache, monkeypatch):
    """A function with a batched operation (Blockwise, whose Python form prepares a closure per
    node that does not pickle) is stored without it and computes the same after loading."""
    matrices = pt.tensor3("matrices")
    scale = pytensor.shared(np.array(2.0), name="scale")
    outputs = [pt.linalg.det(matrices * scale)]
    batch = np.random.default_rng(1).normal(size=(5, 3, 3))
    expected = np.linalg.det(batch * 2.0)
    np.testing.assert_allclose(
        compile_cached([matrices], outputs, mode="FAST_COMPILE")(batch)[0], expected, rtol=1e-12
    )
    assert len(list(empty_cache.glob("*.pkl"))) == 1
    monkeypatch.setattr(pytensorf, "compile", None)  # a compile would fail
    loaded = compile_cached([matrices], outputs, mode="FAST_COMPILE")
    np.testing.assert_allclose(loaded(batch)[0], expected, rtol=1e-12)


def test_a_model_compiled_for_nutpie_from_the_cache_samples_the_same_draws(monkeypatch):
    """The second nutpie compile of a model (another build, other data of the same shapes) loads
    both functions from the cache, compiles neither, shares the data inputs between them (the
    stored values read data too), takes new data, and samples the same draws to the last digit as
    a compile that rewrote the graphs."""
    import nutpie

    from alliance.nutpie_compile import compile_pymc_model

    def model(seed):
        rng = np.random.default_rng(seed)
        with pm.Model() as built:
            y = pm.Data("y", rng.normal(size=20))
            x = pm.Data("x", rng.normal(size=20))
            sd = pm.HalfNormal("sd", 1.0)
            effect = pm.Normal("effect", 0, 1, shape=2)
            pm.Deterministic("fitted", effect[0] + effect[1] * x)
            pm.Normal("outcome", effect[0] + effect[1] * x, sd, observed=y)
        return built

    def draws(compiled):
        tree = nutpie.sample(
            compiled, draws=100, tune=100, chains=2, cores=1, seed=5, progress_bar=False
        )
        return tree["posterior"].to_dataset()

    other = model(3)
    new_data = {name: other[name].get_value() for name in ("x", "y")}
    rewritten = compile_pymc_model(model(1))
    assert function_cache.counts["compiled"] == 2
    reference = draws(rewritten.with_data(**new_data))
    monkeypatch.setattr(pytensorf, "compile", None)  # a compile would fail
    loaded = compile_pymc_model(model(2))
    assert function_cache.counts["loaded"] == 2
    assert sorted(variable.name for variable in loaded.shared_var_keys) == ["x", "y"]
    ours = draws(loaded.with_data(**new_data))
    for name in ("sd", "effect", "fitted"):
        np.testing.assert_array_equal(ours[name].values, reference[name].values)
