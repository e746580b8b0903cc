"""SIMD vectors of float32 for the compiled kernels (numba intrinsics; imported only where numba is).

numba has no vector type, and its auto-vectorizer cannot keep a tile of accumulators in
registers across a loop.  `Float32Vector(lanes)` is an LLVM `<lanes x float>` value:
a kernel that holds a few of them in local variables gets them in registers (16 lanes
is one AVX-512 register; LLVM splits wider vectors, or narrower hardware, itself).
`lanes` is a literal int (e.g. a closure constant of the kernel), or a vector of the
width wanted: helpers called with vectors need no literal of their own.

    acc = zeros(16)
    acc = fma(broadcast(x, i, 16), load(w, j, 16), acc)   # acc += x[i] * w[j:j+16]
    store_first(out, k, acc, 16)                           # out[k:k+16] = acc

`add` and `multiply` round each result (no fusing), so a vector epilogue gives the numbers
of the scalar kernels' `value * scale + shift`; `relu` and `max_or_nan` keep NaN as they do.

Arrays are float32; an index counts elements from the array's first one in memory (a 1-D contiguous
array's own index; of any other array, the offset its strides give, so a kernel can walk a strided view
without a flat copy of it).  Indices are not checked (as numba's own).
"""

from __future__ import annotations

import platform

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

from . import compiled

__all__ = ["vector_bits", "double_pumped", "full_width", "FULL_WIDTH_CPU", "Float32Vector", "zeros", "full", "load",
           "load_first", "broadcast", "fma", "add", "subtract", "multiply", "divide", "clip", "relu", "max_or_nan",
           "index_of_max", "store_first", "store_stream", "stream_fence", "prefetch", "prefetch_l2", "epilogue"]

_FLOAT = ir.FloatType()
_INT32 = ir.IntType(32)


def vector_bits() -> int:
    """The width of the float vector registers numba compiles for: 512 (AVX-512: 32 registers), 256
    (AVX2 with FMA: 16 registers) or 128 (anything else), from its target features
    (`NUMBA_CPU_FEATURES` where set)."""
    from numba.core import codegen, config
    features = config.CPU_FEATURES if config.CPU_FEATURES is not None else codegen.get_host_cpu_features()
    enabled = {feature[1:] for feature in features.split(",") if feature.startswith("+")}
    if "avx512f" in enabled:
        return 512
    return 256 if {"avx2", "fma"} <= enabled else 128


DOUBLE_PUMPED_CPUS = ("znver4",)     # LLVM's names of CPUs that run 512-bit vectors as two 256-bit halves


def double_pumped() -> bool:
    """True where numba compiles 512-bit vectors for a CPU that runs each as two 256-bit halves (AMD's Zen 4,
    "znver4" to LLVM): OpenBLAS' kernel for 512-bit units (SkylakeX), tuned for Intel's full-width ones, runs
    there below convscope's own tiles, which some paths choose by this.  The CPU is the one numba compiles for:
    `NUMBA_CPU_NAME` where set to a name ("skylake-avx512" on a Zen 4 gives False), else this machine's."""
    from llvmlite import binding
    from numba.core import config
    name = config.CPU_NAME if config.CPU_NAME not in (None, "", "host") else binding.get_host_cpu_name()
    return vector_bits() >= 512 and name in DOUBLE_PUMPED_CPUS


def full_width() -> bool:
    """True where numba compiles 512-bit vectors for a CPU that runs each whole (not `double_pumped`): the direct
    kernel's multiply-adds there run twice as fast as on a double-pumped CPU, and some paths choose it longer.
    (An Intel part with one 512-bit FMA unit counts as full width too: not told apart here.)"""
    return vector_bits() >= 512 and not double_pumped()


FULL_WIDTH_CPU = full_width()     # asked once (the CPU's name and features take milliseconds to read); the kernels'
                                  # modules read it at call time with their own vector width (`direct.full_width_units`)


class Float32Vector(types.Type):
    """`lanes` float32 values operated on together."""

    def __init__(self, lanes: int):
        self.lanes = lanes
        super().__init__(name=f"float32x{lanes}")


@register_model(Float32Vector)
class _Float32VectorModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, ir.VectorType(_FLOAT, fe_type.lanes))


def _vector_type(lanes):
    """The vector type for a literal `lanes`, or of a vector given in its place; None for a plain int
    (numba then retries with literals)."""
    if isinstance(lanes, Float32Vector):
        return lanes
    if not isinstance(lanes, types.IntegerLiteral):
        return None
    if lanes.literal_value < 1:
        raise TypeError(f"simd: `lanes` must be a positive int, got {lanes.literal_value}")
    return Float32Vector(lanes.literal_value)


def _check_array(arr, dtypes=(types.float32,)) -> None:
    if not (isinstance(arr, types.Array) and arr.dtype in dtypes):
        raise TypeError(f"simd: expected a {'/'.join(map(str, dtypes))} array, got {arr}")


def _array_vector(arr, lanes):
    """The vector type read from the float32 array `arr` (checked), as `_vector_type`."""
    _check_array(arr)
    return _vector_type(lanes)


def _check_vectors(name, *vectors) -> None:
    if not (isinstance(vectors[0], Float32Vector) and all(v == vectors[0] for v in vectors)):
        raise TypeError(f"simd.{name}: expected vectors of the same width, got {vectors}")


def _address(context, builder, array_type, array, index, lanes=None):
    """Pointer to array[index], as a pointer to `lanes` elements when `lanes` is given."""
    pointer = builder.gep(context.make_array(array_type)(context, builder, array).data, [index])
    if lanes is None:
        return pointer
    return builder.bitcast(pointer, ir.VectorType(context.get_data_type(array_type.dtype), lanes).as_pointer())


def _splat(builder, value, lanes: int):
    vector = ir.VectorType(_FLOAT, lanes)
    first = builder.insert_element(ir.Constant(vector, ir.Undefined), value, ir.Constant(_INT32, 0))
    return builder.shuffle_vector(first, ir.Constant(vector, ir.Undefined),
                                  ir.Constant(ir.VectorType(_INT32, lanes), [0] * lanes))


@intrinsic
def zeros(typingctx, lanes):
    """A vector of `lanes` zeros."""
    vector = _vector_type(lanes)
    if vector is None:
        return None

    def codegen(context, builder, signature, args):
        return ir.Constant(ir.VectorType(_FLOAT, vector.lanes), [0.0] * vector.lanes)
    return vector(lanes), codegen


@intrinsic
def full(typingctx, value, lanes):
    """`value` (a float32) in every lane."""
    vector = _vector_type(lanes)
    if vector is None:
        return None

    def codegen(context, builder, signature, args):
        return _splat(builder, args[0], vector.lanes)
    return vector(types.float32, lanes), codegen


@intrinsic
def load(typingctx, arr, index, lanes):
    """arr[index:index + lanes] as a vector."""
    vector = _array_vector(arr, lanes)
    if vector is None:
        return None

    def codegen(context, builder, signature, args):
        return builder.load(_address(context, builder, signature.args[0], args[0], args[1], vector.lanes),
                            align=4)
    return vector(arr, types.intp, lanes), codegen


@intrinsic
def load_first(typingctx, arr, index, count, lanes):
    """arr[index:index + count] in the first `count` lanes (0 <= count <= lanes), zeros in the others: one masked
    load (`llvm.masked.load`: the memory past the first `count` lanes is not read, so a row's last columns can be
    read at the end of an array); no branch on `count`."""
    vector = _array_vector(arr, lanes)
    if vector is None:
        return None

    def codegen(context, builder, signature, args):
        pointer = _address(context, builder, signature.args[0], args[0], args[1], vector.lanes)
        return _masked_load(builder, pointer, args[2], vector.lanes)
    return vector(arr, types.intp, types.intp, lanes), codegen


def _first_lanes(builder, count, lanes: int):
    """The mask of the first `count` of `lanes` lanes (an `<lanes x i1>`)."""
    mask_type = ir.VectorType(_INT32, lanes)
    first = builder.insert_element(ir.Constant(mask_type, ir.Undefined), builder.trunc(count, _INT32),
                                   ir.Constant(_INT32, 0))
    counts = builder.shuffle_vector(first, ir.Constant(mask_type, ir.Undefined),
                                    ir.Constant(ir.VectorType(_INT32, lanes), [0] * lanes))
    return builder.icmp_signed("<", ir.Constant(mask_type, list(range(lanes))), counts)


def _masked_load(builder, pointer, count, lanes: int):
    """The first `count` float32 lanes from `pointer` on, zeros in the others (their memory not read)."""
    vector = ir.VectorType(_FLOAT, lanes)
    mask = _first_lanes(builder, count, lanes)
    load = builder.module.declare_intrinsic(f"llvm.masked.load.v{lanes}f32.p0", fnty=ir.FunctionType(
        vector, [pointer.type, _INT32, mask.type, vector]))
    return builder.call(load, [pointer, ir.Constant(_INT32, 4), mask, ir.Constant(vector, [0.0] * lanes)])


@intrinsic
def broadcast(typingctx, arr, index, lanes):
    """arr[index] in every lane."""
    vector = _array_vector(arr, lanes)
    if vector is None:
        return None

    def codegen(context, builder, signature, args):
        value = builder.load(_address(context, builder, signature.args[0], args[0], args[1]))
        return _splat(builder, value, vector.lanes)
    return vector(arr, types.intp, lanes), codegen


@intrinsic
def fma(typingctx, a, b, c):
    """a * b + c lane by lane (fused where the CPU has FMA: `llvm.fmuladd`)."""
    _check_vectors("fma", a, b, c)

    def codegen(context, builder, signature, args):
        vector = ir.VectorType(_FLOAT, a.lanes)
        function = builder.module.declare_intrinsic(f"llvm.fmuladd.v{a.lanes}f32",
                                                    fnty=ir.FunctionType(vector, [vector] * 3))
        return builder.call(function, list(args))
    return a(a, b, c), codegen


@intrinsic
def store_first(typingctx, arr, index, v, count):
    """arr[index:index + count] = v[:count] (count <= lanes): one vector store when count == lanes; else, with
    AVX-512, one masked store (its mask registers make it one instruction), elsewhere a lane at a time.
    Into a uint8 array the lanes are stored as bytes (whole numbers 0-255, e.g. `index_of_max`'s)."""
    _check_array(arr, (types.float32, types.uint8))
    if not isinstance(v, Float32Vector):
        raise TypeError(f"simd.store_first: expected a vector, got {v}")
    masked = vector_bits() >= 512

    def codegen(context, builder, signature, args):
        array, start, vector, n = args
        if arr.dtype == types.uint8:
            vector = builder.fptoui(vector, ir.VectorType(ir.IntType(8), v.lanes))
        with builder.if_else(builder.icmp_signed("==", n, ir.Constant(n.type, v.lanes))) as (whole, part):
            with whole:
                builder.store(vector, _address(context, builder, signature.args[0], array, start, v.lanes),
                              align=1)
            with part:
                if masked:
                    _masked_store(builder, vector, _address(context, builder, signature.args[0], array, start,
                                                            v.lanes), n, v.lanes)
                else:
                    with cgutils.for_range(builder, n) as loop:
                        lane = builder.extract_element(vector, builder.trunc(loop.index, _INT32))
                        builder.store(lane, _address(context, builder, signature.args[0], array,
                                                     builder.add(start, loop.index)))
        return context.get_dummy_value()
    return types.void(arr, types.intp, v, types.intp), codegen


def _masked_store(builder, vector, pointer, count, lanes: int) -> None:
    """The first `count` lanes of `vector` stored from `pointer` on (`llvm.masked.store`: the other lanes' memory
    neither written nor read)."""
    lane_type = vector.type.element
    mask = _first_lanes(builder, count, lanes)
    name = f"llvm.masked.store.v{lanes}{'f32' if lane_type == _FLOAT else 'i8'}.p0"
    store = builder.module.declare_intrinsic(name, fnty=ir.FunctionType(
        ir.VoidType(), [vector.type, pointer.type, _INT32, mask.type]))
    builder.call(store, [vector, pointer, ir.Constant(_INT32, 1), mask])


@intrinsic
def store_stream(typingctx, arr, index, v):
    """arr[index:index + lanes] = v, a non-temporal store (to memory, not kept in the caches: an output
    larger than the caches is then written without being read first).  The address must be aligned to the
    vector's size: the caller checks the array's."""
    _check_array(arr)
    if not isinstance(v, Float32Vector):
        raise TypeError(f"simd.store_stream: expected a vector, got {v}")

    def codegen(context, builder, signature, args):
        array, start, vector = args
        store = builder.store(vector, _address(context, builder, signature.args[0], array, start, v.lanes),
                              align=4 * v.lanes)
        store.set_metadata("nontemporal", builder.module.add_metadata([ir.Constant(_INT32, 1)]))
        return context.get_dummy_value()
    return types.void(arr, types.intp, v), codegen


def _prefetch_codegen(locality: int):
    """The codegen of a prefetch of the line holding arr[index] (LLVM's locality: 3 keeps it in every cache
    level, L1 included; 2 in L2 and beyond: x86's prefetcht0 and prefetcht1)."""
    def codegen(context, builder, signature, args):
        byte = ir.IntType(8).as_pointer()
        pointer = builder.bitcast(_address(context, builder, signature.args[0], args[0], args[1]), byte)
        function = builder.module.declare_intrinsic("llvm.prefetch.p0", fnty=ir.FunctionType(
            ir.VoidType(), [byte, _INT32, _INT32, _INT32]))
        builder.call(function, [pointer, ir.Constant(_INT32, 0), ir.Constant(_INT32, locality),
                                ir.Constant(_INT32, 1)])
        return context.get_dummy_value()
    return codegen


@intrinsic
def prefetch(typingctx, arr, index):
    """A hint to bring the cache line holding arr[index] into the caches (the CPU may ignore it; no fault on any
    address): a kernel that will read strided rows of a large matrix asks for them ahead of its use, where the
    hardware's prefetchers do not see the stride."""
    _check_array(arr)
    return types.void(arr, types.intp), _prefetch_codegen(3)


@intrinsic
def prefetch_l2(typingctx, arr, index):
    """`prefetch` into L2 (and the levels beyond), not L1: for lines asked for long before their use, which in L1
    would push out the lines in use first."""
    _check_array(arr)
    return types.void(arr, types.intp), _prefetch_codegen(2)


@intrinsic
def stream_fence(typingctx):
    """Orders the `store_stream`s before it before any store after it (x86's `sfence`; non-temporal stores are
    weakly ordered): a kernel that streamed its output ends with it, so another thread that learns the kernel
    is done reads the output, not what was there before.  Elsewhere a sequentially consistent fence."""
    def codegen(context, builder, signature, args):
        if platform.machine() in ("x86_64", "AMD64", "i686"):
            sfence = builder.module.declare_intrinsic("llvm.x86.sse.sfence", fnty=ir.FunctionType(ir.VoidType(), []))
            builder.call(sfence, [])
        else:  # pragma: no cover - measured and tested on x86 only
            builder.fence("seq_cst")
        return context.get_dummy_value()
    return types.void(), codegen


@intrinsic
def add(typingctx, a, b):
    """a + b lane by lane."""
    _check_vectors("add", a, b)
    return a(a, b), lambda context, builder, signature, args: builder.fadd(*args)


@intrinsic
def subtract(typingctx, a, b):
    """a - b lane by lane."""
    _check_vectors("subtract", a, b)
    return a(a, b), lambda context, builder, signature, args: builder.fsub(*args)


@intrinsic
def multiply(typingctx, a, b):
    """a * b lane by lane."""
    _check_vectors("multiply", a, b)
    return a(a, b), lambda context, builder, signature, args: builder.fmul(*args)


@intrinsic
def divide(typingctx, a, b):
    """a / b lane by lane."""
    _check_vectors("divide", a, b)
    return a(a, b), lambda context, builder, signature, args: builder.fdiv(*args)


@intrinsic
def clip(typingctx, a, low, high):
    """`a` raised to `low` where below it, then lowered to `high` where above it (NaN stays NaN): the
    scalar kernels' `low if value < low else value`, then `high if value > high else value`."""
    _check_vectors("clip", a, low, high)

    def codegen(context, builder, signature, args):
        value, lo, hi = args
        value = builder.select(builder.fcmp_ordered("<", value, lo), lo, value)
        return builder.select(builder.fcmp_ordered(">", value, hi), hi, value)
    return a(a, low, high), codegen


@intrinsic
def relu(typingctx, a):
    """0 where a < 0, else a (NaN stays NaN, -0.0 stays -0.0: the scalar kernels' `if value < 0`)."""
    _check_vectors("relu", a)

    def codegen(context, builder, signature, args):
        zero = ir.Constant(args[0].type, [0.0] * a.lanes)
        return builder.select(builder.fcmp_ordered("<", args[0], zero), zero, args[0])
    return a(a), codegen


@intrinsic
def max_or_nan(typingctx, current, value):
    """`value` where it is greater than `current` or NaN, else `current`: a max pooling's running
    maximum, in which a NaN wins (as the scalar pooling kernels)."""
    _check_vectors("max_or_nan", current, value)

    def codegen(context, builder, signature, args):
        old, new = args
        return builder.select(_wins(builder, old, new), new, old)
    return current(current, value), codegen


@intrinsic
def index_of_max(typingctx, current, value, current_index, index):
    """`index` where `value` wins over `current` as in `max_or_nan`, else `current_index`: the offset
    of a window's first maximum, beside its running maximum."""
    _check_vectors("index_of_max", current, value, current_index, index)

    def codegen(context, builder, signature, args):
        old, new, old_index, new_index = args
        return builder.select(_wins(builder, old, new), new_index, old_index)
    return current(current, value, current_index, index), codegen


def _wins(builder, old, new):
    """Lanes where `new` replaces the running maximum `old`: greater, or NaN."""
    return builder.or_(builder.fcmp_ordered(">", new, old), builder.fcmp_unordered("uno", new, new))


@compiled.kernel
def epilogue(v, bias, relu_first, scale, shift, affine, relu_after):
    """The compiled kernels' epilogue (`epilogue.epilogue_value`) on a vector: relu(v + bias), then if `affine`
    times scale plus shift, then relu if `relu_after` (`bias`, `scale`, `shift`: vectors of the same lanes)."""
    v = add(v, bias)
    if relu_first:
        v = relu(v)
    if affine:
        v = add(multiply(v, scale), shift)
    if relu_after:
        v = relu(v)
    return v
