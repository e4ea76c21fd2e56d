"""Compiled PyTensor functions reused across jobs: a cache of rewritten graphs.

Compiling a PyTensor function first rewrites its graph (canonical forms, stabilisation, fusion,
in-place operations), then links it. With a warm numba cache, linking only loads machine code,
and the rewriting is most of what is left: in a warm run of the workflow, 3.6 s of CPU for the
log density and gradient of the patient-rated within/between association model, 2.4 s for its
pointwise log-likelihood over all draws, in every job that builds the model, although the graph
is the same every time.

:func:`compile_cached` keys a function by its graph before rewriting: every operation (its
pickled form), how the operations connect, the values of constants, the names and types of the
inputs (used or not) and of the data inputs (shared variables; not their values), the compile
options, PyMC's ``check_bounds`` of the model in context, PyTensor's settings other than its
directories, and the versions of Python, NumPy, PyTensor, PyMC, numba and nutpie. On the first
compile of a key the compiled function is pickled into the cache (PyTensor pickles the rewritten
graph); its data inputs (the shared variables, their containers and values) are written as
references by name, so the cache holds no data. A later compile of the same key unpickles it, which
links the rewritten graph without rewriting it again (PyTensor's ``reoptimize_unpickled_function``
is off by default), with the caller's own shared variables in place of the references: the
function reads the caller's data, follows later changes of it, and two functions of one model
share its data inputs as freshly compiled ones do (nutpie's ``with_data`` needs that). A function
is compiled as usual, and not cached, when its graph draws random numbers (its generators are
unnamed shared variables, reseeded per call), holds a data input without a name, with a default
update, or two with the same name, container or value, when its inputs or outputs are not
lists of variables, or when it is compiled with options other than :data:`CACHEABLE_OPTIONS`.

:func:`caching_pymc_compile` routes ``pymc.pytensorf.compile`` (which nutpie's compile calls)
through the cache while it is active. The cache lives in ``graphs/`` in PyTensor's base compile
directory (``.cache/pytensor/graphs`` in a workflow job); deleting it only costs the rewrites
again. Entries are written atomically (a temporary file renamed), so parallel jobs may share it;
they are unpickled, so the directory must not be writable by others (it is inside the project).
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
    """The shared variables the ``outputs`` depend on, by name; None if one is a random generator,
    has no name or a default update, or two have the same name, container or value (such a graph
    is not cached)."""
    from pytensor.compile.sharedvalue import SharedVariable
    from pytensor.graph.traversal import graph_inputs
    from pytensor.tensor.random.type import RandomType

    shared = {}
    for variable in graph_inputs(outputs):
        if not isinstance(variable, SharedVariable):
            continue
        if isinstance(variable.type, RandomType) or not variable.name:
            return None
        if getattr(variable, "default_update", None) is not None:
            return None
        if shared.get(variable.name, variable) is not variable:
            return None
        shared[variable.name] = variable
    for kind in ("container", "storage", "value"):
        parts = [_part(variable, kind) for variable in shared.values()]
        if len({id(part) for part in parts}) != len(parts):
            return None
    return shared


def _part(variable, kind: str):
    """A data input's container, the one-element list in it that holds its value (the functions
    that read it hold containers of their own around that same list), or its current value."""
    if kind == "container":
        return variable.container
    if kind == "storage":
        return variable.container.storage
    return variable.get_value(borrow=True)


def _check_bounds() -> bool:
    """PyMC's ``check_bounds`` of the model in context (its compile chooses rewrites by it)."""
    from pymc.model import modelcontext

    try:
        return bool(modelcontext(None).check_bounds)
    except TypeError:  # no model in context
        return True


def function_key(inputs: Sequence, outputs: Sequence, mode=None, **options) -> str | None:
    """The cache key of compiling ``outputs`` from ``inputs`` (graph variables) with ``mode`` and
    ``options`` (those of :data:`CACHEABLE_OPTIONS`); None for a function that is not cached
    (see the module docstring)."""
    return _key_and_data(inputs, outputs, mode, options)[0]


def _key_and_data(inputs, outputs, mode, options) -> tuple[str | None, dict | None]:
    """:func:`function_key` and the graph's data inputs by name."""
    from pytensor.compile.io import In, Out
    from pytensor.compile.sharedvalue import SharedVariable
    from pytensor.graph.basic import Constant
    from pytensor.graph.replace import clone_replace
    from pytensor.graph.traversal import io_toposort
    from pytensor.link.numba.cache import hash_from_pickle_dump
    from pytensor.link.numba.dispatch.basic import cache_key_for_constant

    if not set(options) <= CACHEABLE_OPTIONS or not isinstance(mode, str | None):
        return None, None
    if not isinstance(outputs, list | tuple) or not isinstance(inputs, list | tuple):
        return None, None  # (a single output is returned unwrapped: left to the usual compile)
    if any(isinstance(variable, In | Out) for variable in [*inputs, *outputs]):
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
    # Every input, used or not, by position, name (keyword arguments) and type.
    signature = [(variable.name, str(variable.type)) for variable in inputs]
    where = {variable: ("input", i) for i, variable in enumerate(inputs)}

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
        _check_bounds(),
        sorted((name, repr(value)) for name, value in options.items()),
        signature,
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
    _store(entry, function, data)
    counts["compiled"] += 1
    return function


class _Pickler(pickle.Pickler):
    """Pickles a function with its data inputs (the shared variables, their containers, the lists
    in them and their values) as references by name, so that the entry holds no data."""

    def __init__(self, file, data: dict):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.references = {
            id(_part(variable, kind) if kind != "variable" else variable): (kind, name)
            for name, variable in data.items()
            for kind in ("variable", "container", "storage", "value")
        }

    def persistent_id(self, obj):
        return self.references.get(id(obj))


class _Unpickler(pickle.Unpickler):
    """Loads a function pickled by :class:`_Pickler` with the caller's data inputs in place of the
    references: the function reads and follows the caller's shared variables."""

    def __init__(self, file, data: dict):
        super().__init__(file)
        self.data = data

    def persistent_load(self, reference):
        kind, name = reference
        variable = self.data[name]  # a KeyError: the entry does not fit (compiled again)
        return variable if kind == "variable" else _part(variable, kind)


def _load(entry: Path, data: dict):
    """The function stored in ``entry``, reading the caller's data inputs ``data`` (name ->
    shared variable); None if there is no such entry or it cannot be read."""
    from pytensor.compile.executor import Function

    if not entry.exists():
        return None
    try:
        with open(entry, "rb") as stored:
            function = _Unpickler(stored, data).load()
    except Exception:  # an unreadable entry (another version's, damaged): compiled again
        return None
    return function if isinstance(function, Function) else None


def _store(entry: Path, function, data: dict) -> None:
    """Pickle ``function`` into ``entry``, its data inputs ``data`` as references (not stored)
    and without the per-node functions that the Python linker prepares (Blockwise's
    ``tag.gufunc``, a closure; restored afterwards, and prepared again by a load). Where storing
    fails (a function that cannot be pickled, a full disk), nothing is stored."""
    import tempfile

    prepared = {
        node: node.tag.gufunc
        for node in function.maker.fgraph.apply_nodes
        if hasattr(node.tag, "gufunc")
    }
    partial = None
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        descriptor, partial = tempfile.mkstemp(dir=entry.parent, suffix=".tmp")
        for node in prepared:
            del node.tag.gufunc
        with os.fdopen(descriptor, "wb") as stored:
            _Pickler(stored, data).dump(function)
        os.replace(partial, entry)
        partial = None
    except Exception:
        pass  # not stored: the next job compiles it again
    finally:
        for node, gufunc in prepared.items():
            node.tag.gufunc = gufunc
        if partial is not None:
            Path(partial).unlink(missing_ok=True)


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
