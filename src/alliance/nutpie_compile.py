"""Compile a PyMC model for nutpie so that a warm compile cache makes compiling cheap.

nutpie (:func:`nutpie.compile_pymc_model`, numba backend) turns the model's log density and
gradient into a PyTensor function compiled by numba, which PyTensor caches on disk, and wraps it in
a C callback (``numba.cfunc``) that the sampler calls. That wrapper calls the PyTensor function
directly, so numba links the function's whole LLVM module into the wrapper and optimises and
compiles it again, and the wrapper refers to per-process objects, so numba cannot cache it:
every process paid the full compile (measured: the association model 25 s warm, of which 19 s
the wrapper). Here the wrapper calls the cached function through its native address, read at run
time from the user data that nutpie passes to every call, and its source depends only on the
layout of the data inputs and the function's signature: it is compiled once and then loaded from
PyTensor's numba cache like the function itself (a warm compile of the association model: about
6 s, most of it PyTensor building and rewriting the graph; about 3 s where the rewritten graphs
come from :mod:`alliance.function_cache`).

:func:`compile_pymc_model` returns nutpie's own ``CompiledPyMCModel`` (``with_data``, sampling
and the initial points as nutpie's compile gives them), its log density and gradient the same
numbers (tests: ``tests/test_nutpie_compile.py``). It uses nutpie's private helpers and the layout
of numba's native calling convention, which the pinned versions (``requirements.txt``) fix.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np

#: Part of every wrapper's cache key, with this module's source and nutpie's version.
WRAPPER_VERSION = 2

_MODULE_HASH = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()

_SIGNATURES = {
    "logp": "int64(uint64, CPointer(float64), CPointer(float64), CPointer(float64), voidptr)",
    "expand": "int64(uint64, uint64, CPointer(float64), CPointer(float64), voidptr)",
}


class UncachedFunction(Exception):
    """PyTensor compiled the model's function without its cacheable form (which takes its
    arguments as one tuple): nutpie's own compile is used instead."""


def compile_pymc_model(model):
    """``nutpie.compile_pymc_model(model)`` (numba backend, defaults) with wrappers that a warm
    cache loads instead of compiling (see the module docstring). Where PyTensor did not compile a
    cacheable function (an operation without a cache key), nutpie's own compile."""
    import nutpie

    try:
        return _compile_cached(model)
    except UncachedFunction:
        return nutpie.compile_pymc_model(model)


def _compile_cached(model):
    from nutpie.compile_pymc import (
        CompiledPyMCModel,
        _make_functions,
        _prepare_dims_and_coords,
        _wrap_with_lock,
    )
    from pymc.initial_point import make_initial_point_fn

    from alliance.function_cache import caching_pymc_compile

    # As nutpie's compile_pymc_model: initial points at the support point, jittered.
    initial_point_fn = _wrap_with_lock(
        make_initial_point_fn(
            model=model,
            default_strategy="support_point",
            jitter_rvs=set(model.free_RVs),
            return_transformed=True,
        )
    )
    # The two functions' rewritten graphs come from the cache where a process built the same
    # graphs before (alliance.function_cache).
    with caching_pymc_compile():
        n_dim, n_expanded, logp_fn_pt, expand_fn_pt, initial_point, shape_info, reparameterized = (
            _make_functions(
                model,
                mode="NUMBA",
                compute_grad=True,
                join_expanded=True,
                pymc_initial_point_fn=initial_point_fn,
            )
        )
    # Every data input of either function, in order of first use, under a key fixed by its
    # position (nutpie draws random keys, which would make every wrapper's source new).
    shared_data, shared_var_keys = {}, {}
    for variable in [*logp_fn_pt.get_shared(), *expand_fn_pt.get_shared()]:
        if variable not in shared_var_keys:
            key = f"input_{len(shared_var_keys)}"
            shared_var_keys[variable] = key
            shared_data[key] = np.array(variable.get_value(), order="C", copy=True)
            shared_data[key].flags.writeable = False
    functions = {"logp": logp_fn_pt, "expand": expand_fn_pt}
    user_data = _user_data(shared_var_keys, shared_data)
    wrappers = {}
    for kind, function in functions.items():
        keys = [shared_var_keys[variable] for variable in function.get_shared()]
        inputs = [shared_data[key] for key in keys]
        address, native = _native_function(function.vm.jit_fn, inputs)
        user_data["functions"][kind] = address
        wrappers[kind] = _wrapper(
            kind, n_dim, n_expanded, keys, shared_data, user_data.dtype, native
        )
    dims, coords = _prepare_dims_and_coords(model, shape_info, reparameterized)
    return CompiledPyMCModel(
        _n_dim=n_dim,
        dims=dims,
        _coords=coords,
        _shapes={name: tuple(shape) for name, _, shape in zip(*shape_info, strict=True)},
        compiled_logp_func=wrappers["logp"],
        compiled_expand_func=wrappers["expand"],
        initial_point_func=initial_point,
        shared_data=shared_data,
        shared_var_keys=shared_var_keys,
        user_data=user_data,
        n_expanded=n_expanded,
        shape_info=shape_info,
        logp_func=logp_fn_pt,
        expand_func=expand_fn_pt,
        reparameterized_names=reparameterized,
    )


def _user_data(shared_var_keys: dict, shared_data: dict) -> np.ndarray:
    """nutpie's user data record (each input's address, size and shape, which ``with_data``
    rewrites) with a field ``functions``: the native addresses of the two PyTensor functions
    (copied along by ``with_data``)."""
    from nutpie.compile_pymc import update_user_data

    keys = list(shared_var_keys.values())
    shapes = [(key, np.uint, (variable.ndim,)) for variable, key in shared_var_keys.items()]
    dtype = np.dtype(
        [
            (
                "shared",
                [
                    ("data", [(key, np.uintp) for key in keys]),
                    ("size", [(key, np.uintp) for key in keys]),
                    ("shape", shapes),
                ],
            ),
            ("functions", [("logp", np.uintp), ("expand", np.uintp)]),
        ]
    )
    return update_user_data(np.zeros((), dtype=dtype), shared_data)


def _array_type(values: np.ndarray):
    """The numba type of an input as the wrapper passes it (a C-contiguous, writable view)."""
    import numba
    from numba import types

    return types.Array(numba.from_dtype(values.dtype), values.ndim, "C")


def _native_function(dispatcher, inputs: list[np.ndarray]):
    """The native address of PyTensor's compiled function ``dispatcher`` for the argument types
    the wrapper passes (the point, then ``inputs``), compiled or loaded from the cache, and the
    numba type ``Tuple(return type, argument tuple)`` of its native signature."""
    from numba import types
    from numba.core.registry import cpu_target

    argument_types = (types.Array(types.float64, 1, "C"), *map(_array_type, inputs))
    cpu_target.typing_context.resolve_function_type(
        types.Dispatcher(dispatcher), argument_types, {}
    )
    matching = [
        compiled
        for compiled in dispatcher.overloads.values()
        if len(compiled.signature.args) == 1
        and isinstance(compiled.signature.args[0], (types.StarArgTuple, types.StarArgUniTuple))
        and tuple(compiled.signature.args[0]) == argument_types
    ]
    if len(matching) != 1:
        raise UncachedFunction(dispatcher)
    (result,) = matching
    address = result.library.get_pointer_to_function(result.fndesc.llvm_func_name)
    if not address:
        raise RuntimeError("the compiled PyTensor function has no native entry point")
    native = types.Tuple([result.signature.return_type, *result.signature.args])
    return address, native


def _shape(key: str, ndim: int) -> str:
    return "(" + "".join(f"int(shared['shape']['{key}'][{i}])," for i in range(ndim)) + ")"


def _wrapper(kind, n_dim, n_expanded, keys, shared_data, record_dtype, native):
    """The C callback nutpie calls (nutpie's signature and return codes), compiled from generated
    source and cached under a key of its source and the native signature it calls."""
    import numba
    import nutpie
    from nutpie.compile_pymc import address_as_void_pointer
    from pytensor.link.numba.cache import compile_numba_function_src

    inputs = [
        f"        s{i} = numba.carray(address_as_void_pointer(shared['data']['{key}'][()]), "
        f"{_shape(key, shared_data[key].ndim)}, dtypes[{i}])"
        for i, key in enumerate(keys)
    ]
    call = f"ok, result = call_native(user_data['functions']['{kind}'][()], NATIVE, x, ("
    call += "".join(f"s{i}," for i in range(len(keys))) + "))"
    if kind == "logp":
        head = "def logp_wrapper(dim, x_, out_, logp_, user_data_):"
        checks = ["    if dim != n_dim:", "        return -1"]
        body = [
            "        if not ok:",
            "            return 1",
            "        logp_value, gradient = result",
            "        if gradient.shape[0] != n_dim:",
            "            return 1",
            "        value = logp_value[()]",
            "        logp_[0] = value",
            "        for i in range(n_dim):",
            "            g = gradient[i]",
            "            if not np.isfinite(g):",
            "                return 3",
            "            out_[i] = g",
            "        if not np.isfinite(value):",
            "            return 4",
        ]
        failure = "1"
    else:
        head = "def expand_wrapper(dim, expanded, x_, out_, user_data_):"
        checks = ["    if dim != n_dim or expanded != n_expanded:", "        return -1"]
        body = [
            "        if not ok:",
            "            return -2",
            "        (values,) = result",
            "        if values.shape[0] != n_expanded:",
            "            return -2",
            "        for i in range(n_expanded):",
            "            out_[i] = values[i]",
        ]
        failure = "-2"
    source = "\n".join(
        [
            head,
            *checks,
            "    try:",
            "        user_data = numba.carray(user_data_, (), record_dtype)",
            "        shared = user_data['shared']",
            *inputs,
            "        x = numba.carray(x_, (n_dim,))",
            f"        {call}",
            *body,
            "    except Exception:",
            f"        return {failure}",
            "    return 0",
            "",
        ]
    )
    environment = {
        # numba rebuilds a cached callback's environment from the module of this name.
        "__name__": __name__,
        "numba": numba,
        "np": np,
        "address_as_void_pointer": address_as_void_pointer,
        "call_native": _call_native(),
        "NATIVE": native,
        "dtypes": tuple(shared_data[key].dtype for key in keys),
        "record_dtype": record_dtype,
        "n_dim": n_dim,
        "n_expanded": n_expanded,
    }
    # numba compiles the globals in as constants: they are part of the key with the source, and
    # so is the code generating the call (this module, nutpie's helpers).
    identity = repr(
        (
            WRAPPER_VERSION,
            _MODULE_HASH,
            nutpie.__version__,
            source,
            str(native),
            str(record_dtype),
            environment["dtypes"],
            n_dim,
            n_expanded,
        )
    )
    cache_key = "nutpie_wrapper_" + hashlib.sha256(identity.encode()).hexdigest()
    function = compile_numba_function_src(
        source,
        f"{kind}_wrapper",
        global_env=environment,
        cache_key=cache_key,
    )
    return numba.cfunc(_SIGNATURES[kind], cache=True)(function)


@functools.cache
def _call_native():
    from numba import types
    from numba.core import cgutils
    from numba.core.errors import TypingError
    from numba.extending import intrinsic

    @intrinsic
    def call_native(typingctx, address, native, x, inputs):
        """``(ok, result)`` of the numba-compiled function at ``address`` called with
        ``(x, *inputs)``; ``native``: the type ``Tuple(return type, argument tuple)`` it was
        compiled for (checked against the arguments). ``ok`` is False when it raised; the
        result is then empty."""
        return_type, star_arguments = native.instance_type.types
        if (x, *inputs.types) != tuple(star_arguments.types):
            raise TypingError(
                f"arguments {(x, *inputs.types)} differ from the compiled function's "
                f"{star_arguments}"
            )
        signature = types.Tuple([types.boolean, return_type])(address, native, x, inputs)

        def codegen(context, builder, sig, args):
            address_value, _, x_value, inputs_value = args
            items = [x_value] + [
                builder.extract_value(inputs_value, i) for i in range(len(inputs.types))
            ]
            packed = context.make_tuple(builder, star_arguments, items)
            function_type = context.call_conv.get_function_type(return_type, (star_arguments,))
            pointer = builder.inttoptr(address_value, function_type.as_pointer())
            status, value = context.call_conv.call_function(
                builder, pointer, return_type, (star_arguments,), [packed]
            )
            result = cgutils.alloca_once_value(
                builder, cgutils.get_null_value(context.get_value_type(return_type))
            )
            with builder.if_then(builder.not_(status.is_error)):
                builder.store(value, result)
            ok = builder.not_(status.is_error)
            return context.make_tuple(builder, sig.return_type, [ok, builder.load(result)])

        return signature, codegen

    return call_native
