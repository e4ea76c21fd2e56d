"""Compiled PyTensor functions reused across jobs: a cache of rewritten graphs.

Compiling a PyTensor function first rewrites its graph (canonical forms, stabilisation, fusion,
in-place operations), then links it. With a warm numba cache, linking only loads machine code,
and the rewriting is most of what is left: in a warm run of the workflow, 3.6 s of CPU for the
log density and gradient of the patient-rated within/between association model, 2.4 s for its
pointwise log-likelihood over all draws, in every job that builds the model, although the graph
is the same every time.

:func:`compile_cached` keys a function by its graph before rewriting: every operation (its
pickled form), how the operations connect, the values of constants, the types and names of the
data inputs (shared variables; not their values), the compile options, PyTensor's settings other
than its directories, and the versions of Python, NumPy, PyTensor, PyMC, numba and nutpie. On the
first compile of a key the compiled function is pickled into the cache (PyTensor pickles the
rewritten graph; its data inputs are emptied first, so the cache holds no data). A later compile of
the same key unpickles it, which links the rewritten graph without rewriting it again (PyTensor's
``reoptimize_unpickled_function`` is off by default), and gives its data inputs the caller's
values (matched by name). A function is compiled as usual, and not cached, when its graph draws
random numbers (its generators are unnamed shared variables, reseeded per call), holds a data
input without a name or two with the same name, or is compiled with options other than those
below.

:func:`caching_pymc_compile` routes ``pymc.pytensorf.compile`` (which nutpie's compile calls)
through the cache while it is active. The cache lives in ``graphs/`` in PyTensor's base compile
directory (``.cache/pytensor/graphs`` in a workflow job); deleting it only costs the rewrites
again. Entries are written atomically, so parallel jobs may share it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import sys
from collections import Counter
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

#: Part of every key: raise it when the key or the stored form changes.
FORMAT_VERSION = 1
#: Compile options a cached function may be compiled with (others: compiled as usual).
CACHEABLE_OPTIONS = frozenset({"givens", "on_unused_input", "random_seed"})
#: Packages whose versions are part of every key.
PACKAGES = ("numpy", "pytensor", "pymc", "numba", "nutpie")
#: Functions of this process by how they were made: ``loaded`` from the cache, ``compiled``
#: (and stored), ``not_cached`` (compiled as usual: see the module docstring).
counts: Counter = Counter()


class _NotCached(Exception):
    """The graph has a part the key cannot describe."""


def cache_dir() -> Path:
    """Where the cache's entries live: ``graphs/`` in PyTensor's base compile directory."""
    import pytensor

    return Path(pytensor.config.base_compiledir) / "graphs"


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "absent"


def _settings() -> list[tuple[str, str]]:
    """PyTensor's settings that can change a compiled function (all but directories, paths and
    what is printed or profiled)."""
    import pytensor

    skipped = ("dir", "destination", "profil", "verbose", "print", "traceback")
    return sorted(
        (name, str(getattr(pytensor.config, name)))
        for name in pytensor.config._config_var_dict
        if not any(part in name for part in skipped)
    )


def _data_inputs(outputs) -> dict | None:
    """The shared variables the ``outputs`` depend on, by name; None if one is a random generator
    or has no name, or two have the same name (such a graph is not cached)."""
    from pytensor.compile.sharedvalue import SharedVariable
    from pytensor.graph.traversal import graph_inputs
    from pytensor.tensor.random.type import RandomType

    shared = {}
    for variable in graph_inputs(outputs):
        if not isinstance(variable, SharedVariable):
            continue
        if isinstance(variable.type, RandomType) or not variable.name:
            return None
        if shared.get(variable.name, variable) is not variable:
            return None
        shared[variable.name] = variable
    return shared


def function_key(inputs: Sequence, outputs: Sequence, mode=None, **options) -> str | None:
    """The cache key of compiling ``outputs`` from ``inputs`` (graph variables) with ``mode`` and
    ``options`` (those of :data:`CACHEABLE_OPTIONS`); None for a function that is not cached
    (see the module docstring)."""
    return _key_and_data(inputs, outputs, mode, options)[0]


def _key_and_data(inputs, outputs, mode, options) -> tuple[str | None, dict | None]:
    """:func:`function_key` and the graph's data inputs by name."""
    from pytensor.compile.sharedvalue import SharedVariable
    from pytensor.graph.basic import Constant
    from pytensor.graph.replace import clone_replace
    from pytensor.graph.traversal import io_toposort
    from pytensor.link.numba.cache import hash_from_pickle_dump
    from pytensor.link.numba.dispatch.basic import cache_key_for_constant

    if not set(options) <= CACHEABLE_OPTIONS or not isinstance(mode, str | None):
        return None, None
    options = dict(options)
    outputs = list(outputs)
    givens = options.pop("givens", None)
    if givens:
        outputs = clone_replace(outputs, replace=dict(givens))
    data = _data_inputs(outputs)
    if data is None:
        return None, None
    inputs = list(inputs)
    where = {variable: ("input", i, str(variable.type)) for i, variable in enumerate(inputs)}

    def position(variable):
        if variable not in where:
            if isinstance(variable, Constant):
                where[variable] = (
                    "constant",
                    str(variable.type),
                    cache_key_for_constant(variable.data),
                )
            elif isinstance(variable, SharedVariable):
                where[variable] = ("data", variable.name, str(variable.type))
            else:  # a variable missing from the inputs: left to the compile to report
                raise _NotCached
        return where[variable]

    nodes = []
    try:
        for index, node in enumerate(io_toposort(inputs, outputs)):
            nodes.append(
                (
                    hash_from_pickle_dump(node.op),
                    tuple(position(variable) for variable in node.inputs),
                    tuple(str(output.type) for output in node.outputs),
                )
            )
            for output_index, output in enumerate(node.outputs):
                where[output] = ("node", index, output_index)
        ends = [position(output) for output in outputs]
    except _NotCached:
        return None, None
    description = (
        FORMAT_VERSION,
        sys.version,
        [(name, _package_version(name)) for name in PACKAGES],
        _settings(),
        mode,
        sorted((name, repr(value)) for name, value in options.items()),
        nodes,
        ends,
    )
    return hashlib.sha256(repr(description).encode()).hexdigest(), data


def compile_cached(inputs, outputs, mode=None, **options):
    """``pymc.pytensorf.compile(inputs, outputs, mode=mode, **options)``, loaded from the cache
    when a function of the same key was compiled before (see the module docstring)."""
    from pymc import pytensorf

    compile_function = getattr(pytensorf.compile, "uncached", pytensorf.compile)
    key, data = _key_and_data(inputs, outputs, mode, options)
    if key is None:
        counts["not_cached"] += 1
        return compile_function(inputs, outputs, mode=mode, **options)
    entry = cache_dir() / f"{key}.pkl"
    function = _load(entry, data)
    if function is not None:
        counts["loaded"] += 1
        return function
    function = compile_function(inputs, outputs, mode=mode, **options)
    _store(entry, function)
    counts["compiled"] += 1
    return function


def _load(entry: Path, data: dict):
    """The function stored in ``entry`` with the values of ``data`` (name -> shared variable) as
    its data inputs; None if there is no such entry or it does not fit."""
    if not entry.exists():
        return None
    try:
        with open(entry, "rb") as stored:
            function = pickle.load(stored)
    except Exception:  # an unreadable entry (another version's, damaged): compiled again
        return None
    shared = function.get_shared()  # (the rewrites may have left out some of the graph's data)
    if not {variable.name for variable in shared} <= set(data):
        return None
    for variable in shared:
        variable.set_value(data[variable.name].get_value(borrow=True), borrow=True)
    return function


def _store(entry: Path, function) -> None:
    """Pickle ``function`` into ``entry`` with its data inputs emptied and the per-node functions
    that the Python linker prepares (Blockwise's ``tag.gufunc``, a closure) left out; all are
    restored afterwards, and the next load prepares them again. A function that still cannot be
    pickled is not stored."""
    import numpy as np

    shared = function.get_shared()
    values = [variable.get_value(borrow=True) for variable in shared]
    prepared = {
        node: node.tag.gufunc
        for node in function.maker.fgraph.apply_nodes
        if hasattr(node.tag, "gufunc")
    }
    entry.parent.mkdir(parents=True, exist_ok=True)
    partial = entry.with_name(f"{entry.name}.{os.getpid()}.tmp")
    try:
        for variable, value in zip(shared, values, strict=True):
            empty = np.zeros((0,) * np.ndim(value), dtype=np.asarray(value).dtype)
            variable.set_value(empty, borrow=True)
        for node in prepared:
            del node.tag.gufunc
        with open(partial, "wb") as stored:
            pickle.dump(function, stored, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(partial, entry)
    except (pickle.PicklingError, AttributeError, TypeError):
        pass  # not stored: the next job compiles it again
    finally:
        for variable, value in zip(shared, values, strict=True):
            variable.set_value(value, borrow=True)
        for node, gufunc in prepared.items():
            node.tag.gufunc = gufunc
        partial.unlink(missing_ok=True)


@contextlib.contextmanager
def caching_pymc_compile():
    """Within the block, ``pymc.pytensorf.compile`` is :func:`compile_cached` (nutpie's compile
    of a PyMC model calls it)."""
    from pymc import pytensorf

    original = pytensorf.compile
    if getattr(original, "uncached", None) is not None:  # already active
        yield
        return

    def cached(inputs, outputs, *args, **options):
        if args:  # random_seed and mode given by position: as PyMC would
            return original(inputs, outputs, *args, **options)
        return compile_cached(inputs, outputs, **options)

    cached.uncached = original
    pytensorf.compile = cached
    try:
        yield
    finally:
        pytensorf.compile = original
