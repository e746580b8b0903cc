"""A convolution and the per-channel and per-window ops after it, finished block by block.

Outside the products, most of a CNN's time goes into moving activations through
main memory: a Conv2D writes its output, a BatchNormalization reads and writes it
again, a pooling reads it once more (seed 001's first block: 30 MB three times over).
Here each block of images is finished while it is in cache, so only the pooled
output goes to memory:

* `conv2d_inference` (inference) applies the bias, the activation, an inference
  batch norm's per-channel affine map, a second ReLU and a max or average pooling,
  and keeps nothing for a backward pass; a ReLU6 (a MobileNet stem's conv -> BN -> ReLU6) is a ReLU whose
  cap at 6 each block takes last, while in cache (so only where nothing but ReLUs follows it: not before
  the affine map, not before a pooling);
* `conv2d_max_pool_forward` (training) applies the bias and activation and a max
  pooling, and returns the contexts of both backward passes; the convolution's
  output is not kept.

Both give the numbers of the same ops run one after another (`conv2d_inference` to float rounding: on
the compiled path it takes the first of `_INFERENCE_PATHS` that applies: the pooling in the tiles
(`conv.prepare_pooled`: Winograd F(2x2, 2x2)'s for a 2x2 convolution, but where 512-bit units run whole,
else the direct kernel's, which also takes a "same" max pooling's windows that an odd-sized output cuts), then
Winograd, the direct kernel or im2col + GEMM on tasks shared among the threads (`ops/conv_split.py`: bands,
whole images or slices of the filters), else `conv.convolve`'s blocks, the reference path).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from . import compiled, conv_split
from .conv import (_check_conv_args, _forward_context, bind_arrays, conv2d_forward, convolve, convolve_pooled,
                   forward_geometry, pools_in_tiles, prepare_pooled, whole_image_blocks)
from .epilogue import FUSED_ACTIVATIONS, bias_activation_forward, check_affine, check_epilogue, epilogue_value
from .kept_filters import KeptFilters
from .parallel import on_slices
from .pooling import avg_pool2d, max_pool2d, max_pool2d_context, max_pool2d_forward, max_pool2d_into, pool_geometry

__all__ = ["CAPS", "conv2d_inference", "prepare_conv2d_inference", "conv2d_max_pool_forward"]

POOL_MODES = ("max", "avg")
CAPS = {"relu6": 6.0}       # conv2d_inference's capped ReLUs: a ReLU, then the cap on each finished block


def _check_caps(activation: str, then: str, scale, pool, op: str) -> Tuple[str, str, Optional[float]]:
    """(activation, then) with a capped ReLU as a ReLU, and the cap (None without one); the cap is the
    epilogue's last step, so a capped `activation` takes no `scale` after it, and neither takes a `pool`."""
    allowed = FUSED_ACTIVATIONS + tuple(CAPS)
    for name, value in (("activation", activation), ("then", then)):
        if not isinstance(value, str) or value not in allowed:
            raise ValueError(f"{op}: argument `{name}` must be one of {allowed}, got {value!r}")

    capped = [name for name, value in (("activation", activation), ("then", then)) if value in CAPS]
    if not capped:
        return activation, then, None
    if pool is not None:
        raise ValueError(f"{op}: argument `pool` must be None with a capped ReLU {sorted(CAPS)} in "
                         f"`{capped[0]}`, got {pool!r}")
    if activation in CAPS and scale is not None:
        raise ValueError(f"{op}: argument `activation` must be one of ('linear', 'relu') when `scale` is given "
                         f"(a cap goes last), got {activation!r}")
    cap = min(CAPS[value] for value in (activation, then) if value in CAPS)
    activation, then = ("relu" if value in CAPS else value for value in (activation, then))
    return activation, then, cap


def _check_pool(pool, op: str) -> Optional[tuple]:
    """`pool` as (mode, ksize, strides, padding), or None."""
    if pool is None:
        return None
    if not isinstance(pool, (tuple, list)) or len(pool) != 4 or pool[0] not in POOL_MODES:
        raise ValueError(f"{op}: argument `pool` must be None or (mode, ksize, strides, padding) with mode "
                         f"one of {POOL_MODES}, got {pool!r}")
    return tuple(pool)


@compiled.kernel
def _epilogue_pool_kernel(x, bias, relu, scale, shift, affine, relu_after, average, counts,
                          kh, kw, sh, sw, top, left, out):
    """Each window of the epilogue of `x` (`epilogue_value`), pooled into
    `out`: its maximum (a NaN wins, as in `pooling._max_pool_kernel`) or, if `average`, its sum over
    the real cells divided by `counts` (as `pooling._avg_pool_kernel`).  One read of `x`, no write."""
    n, h, w, c = x.shape
    zero = x.dtype.type(0)
    for b in range(n):
        for p in range(out.shape[1]):
            row = p * sh - top
            for q in range(out.shape[2]):
                col = q * sw - left
                result = out[b, p, q]
                result[:] = 0 if average else -np.inf
                for i in range(max(0, -row), min(kh, h - row)):
                    for j in range(max(0, -col), min(kw, w - col)):
                        cell = x[b, row + i, col + j]
                        for ch in range(c):
                            value = epilogue_value(cell[ch], bias[ch], relu, scale[ch], shift[ch], affine,
                                                   relu_after, zero)
                            if average:
                                result[ch] += value
                            else:
                                current = result[ch]
                                result[ch] = value if (value > current) | (value != value) else current
                if average:
                    result /= counts[p, q]


def conv2d_inference(input, filters, strides, padding, dilations=None, groups: int = 1, bias=None,
                     activation: str = "linear", scale=None, shift=None, then: str = "linear",
                     pool: Optional[Sequence] = None) -> np.ndarray:
    """`pool(then(activation(conv2d(input) + bias) * scale + shift))` for an NHWC batch.

    `filters`, `strides`, `padding`, `dilations` and `groups` are `conv2d`'s; `bias` has one
    value per filter; `activation` and `then` are "linear", "relu" or "relu6" (`_check_caps`); `scale` and `shift`
    (one per filter, both or neither) are an inference BatchNormalization's map
    (`batch_norm_affine`); `pool` is None or (mode, ksize, strides, padding) with mode "max"
    or "avg", as `max_pool2d`/`avg_pool2d` take them.
    """
    run = prepare_conv2d_inference(input, filters, strides, padding, dilations, groups, bias, activation, scale,
                                   shift, then, pool)
    return run(input, filters, bias, scale, shift)


def prepare_conv2d_inference(input, filters, strides, padding, dilations=None, groups: int = 1, bias=None,
                             activation: str = "linear", scale=None, shift=None, then: str = "linear",
                             pool: Optional[Sequence] = None):
    """Check `conv2d_inference`'s arguments and decide its geometry and path once: `run(input, filters,
    bias, scale, shift)` for arrays of the same shapes and dtypes (bias, scale and shift given or None as
    here), with no further checks: a plan's stage keeps one per input shape (at batch 1 the checks and
    the geometry took a large share of a small convolution's time; measurements: benchmarks/README.md,
    'Measurements behind the code's choices')."""
    op = "conv2d_inference"
    x, w, strides, dilations, padding, _, groups = _check_conv_args(
        input, filters, strides, padding, "NHWC", dilations, groups)
    channels = w.shape[3]
    pool = _check_pool(pool, op)
    activation, then, cap = _check_caps(activation, then, scale, pool, op)
    check_epilogue(bias, activation, channels, op, "one per filter")
    check_affine(scale, shift, then, channels, op)
    geometry = forward_geometry(x, w, strides, padding, dilations, groups, "NHWC", pad_in_blocks=True)
    dtype, deciding = geometry["dtype"], dict(geometry, filters=w)
    conv_shape = (x.shape[0],) + tuple(geometry["out_hw"]) + (channels,)
    kept = KeptFilters()        # the direct kernel's padded filters, kept while the filters are the same

    def values(bias, scale, shift):
        """The epilogue's values in the convolution's dtype."""
        return tuple(None if value is None else np.asarray(value).astype(dtype, copy=False)
                     for value in (bias, scale, shift))

    def arrays(input, filters, bias, scale, shift):
        """The call's context and its epilogue's values."""
        ctx = bind_arrays(geometry, np.asarray(input), np.asarray(filters))
        ctx["kept_filters"] = kept
        return (ctx, *values(bias, scale, shift))

    if pool is None:
        path = _forward_path(deciding, None, (None, None))

        def run(input, filters, bias, scale, shift):
            ctx, bias, scale, shift = arrays(input, filters, bias, scale, shift)
            out = np.empty(conv_shape, dtype=dtype)
            path(ctx, (bias, activation, scale, shift, then, cap), out)
            return out
        return run
    average = pool[0] == "avg"
    pooled_hw, window, counts = pool_geometry(conv_shape, *pool[1:], op, counts=average)
    pooled_shape = (x.shape[0],) + pooled_hw + (channels,)
    path = _forward_path(deciding, pool, (window, pooled_hw))
    if path is _pooled_in_tiles:       # the direct kernel's path: its blocks pad the input, if it is padded
        pooled_run = prepare_pooled(deciding, x.shape, geometry["pads"] if geometry["pads_in_blocks"] else None,
                                    pooled_shape)

        def run_pooled(input, filters, bias, scale, shift):
            bias, scale, shift = values(bias, scale, shift)
            pooled = np.empty(pooled_shape, dtype=dtype)
            pooled_run(np.ascontiguousarray(input, dtype=dtype), np.asarray(filters).astype(dtype, copy=False), kept,
                       (bias, activation, scale, shift, then, average), pooled)
            return pooled
        return run_pooled
    finisher = _pool_finisher(activation, then, pool, window, counts, channels, dtype)
    whole = path is _blocks and whole_image_blocks(geometry)

    def run_then_pool(input, filters, bias, scale, shift):
        ctx, bias, scale, shift = arrays(input, filters, bias, scale, shift)
        pooled = np.empty(pooled_shape, dtype=dtype)
        finish = finisher(pooled, bias, scale, shift)
        if whole:
            convolve(ctx, lambda rows: None, finish=finish)
        else:                     # the whole output, then the pooling
            out = np.empty(conv_shape, dtype=dtype)
            path(ctx, (None, "linear", None, None, "linear", None), out)
            on_slices(len(out), out.nbytes, lambda images: finish(images, out[images]))
        return pooled
    return run_then_pool


def _pool_finisher(activation, then, pool, window, counts, channels, dtype):
    """`finisher(pooled, bias, scale, shift)` -> `finish(images, block)`: a block of the convolution's output
    finished by the epilogue and pooled into `pooled[images]` (compiled: in one pass)."""
    if not compiled.active():
        pool_op = max_pool2d if pool[0] == "max" else avg_pool2d

        def numpy_finisher(pooled, bias, scale, shift):
            def finish(images, block):
                bias_activation_forward(block, bias, activation, scale, shift, then)
                pooled[images] = pool_op(block, *pool[1:])
            return finish
        return numpy_finisher
    average = pool[0] == "avg"
    flags = (activation == "relu", then == "relu", average)
    counts = counts.astype(dtype) if average else np.ones((1, 1), dtype=dtype)     # unused for max

    def compiled_finisher(pooled, bias, scale, shift):
        zeros = np.zeros(channels, dtype=dtype)
        bias, affine_scale, affine_shift = (zeros if value is None else value for value in (bias, scale, shift))

        def finish(images, block):
            _epilogue_pool_kernel(block, bias, flags[0], affine_scale, affine_shift, scale is not None, flags[1],
                                  flags[2], counts, *window, pooled[images])
        return finish
    return compiled_finisher


def _blocks(ctx, epilogue: tuple, out: np.ndarray) -> None:
    """`conv.convolve`'s blocks of whole images (or bands of rows of one large image), with the NumPy or
    compiled epilogue on each (then the cap, if any): the reference path, and the one for groups and 1x1
    convolutions.  `epilogue`: (bias, activation, scale, shift, then, cap)."""
    cap = epilogue[5]

    def finish(rows):
        bias_activation_forward(rows, *epilogue[:5])
        if cap is not None:
            conv_split.cap_block(rows, cap)

    convolve(ctx, finish, out)


def _split(name: str):
    """A `conv_split` computation (tasks split so that every thread has work), taking `_blocks`' arguments."""
    def run(ctx, epilogue: tuple, out: np.ndarray) -> None:
        conv_split.FORWARD[name](ctx, conv_split.epilogue_tuple(*epilogue[:5], out.shape[3], out.dtype,
                                                                 epilogue[5]), out)
    run.__name__ = f"_split_{name}"
    return run


def _pooled_in_tiles(ctx, epilogue: tuple, out: np.ndarray) -> None:  # pragma: no cover - a marker
    """Marker: `conv.prepare_pooled`'s run computes the pooled output itself (its own arguments)."""
    raise AssertionError("conv2d_inference runs conv.prepare_pooled's op for this path")


# conv2d_inference's paths, the first that applies is taken: (name, applies(ctx, pool, (window, pooled_hw)), run)
_INFERENCE_PATHS = (
    ("pooled_in_tiles", lambda ctx, pool, geometry: pool is not None
     and pools_in_tiles(ctx, *geometry, clip=pool[0] == "max"), _pooled_in_tiles),
    ("thin_direct_bands", lambda ctx, pool, geometry: conv_split.thin_direct_applies(ctx), _split("direct")),
    ("wide_direct", lambda ctx, pool, geometry: conv_split.wide_direct_applies(ctx), _split("wide")),
    ("winograd_bands", lambda ctx, pool, geometry: conv_split.winograd_applies(ctx), _split("winograd")),
    ("direct_bands", lambda ctx, pool, geometry: conv_split.direct_applies(ctx), _split("direct")),
    ("gemm_bands", lambda ctx, pool, geometry: conv_split.gemm_applies(ctx), _split("gemm")),
    ("blocks", lambda ctx, pool, geometry: True, _blocks),
)


def _forward_path(ctx, pool, geometry):
    """The run function of the first of `_INFERENCE_PATHS` that applies."""
    return next(run for _, applies, run in _INFERENCE_PATHS if applies(ctx, pool, geometry))


def conv2d_max_pool_forward(input, filters, strides, padding, dilations=None, groups: int = 1, bias=None,
                            activation: str = "linear", pool=(2, 2, "VALID")
                            ) -> Tuple[np.ndarray, Dict[str, Any], Dict[str, Any]]:
    """Training: `max_pool2d(activation(conv2d(input) + bias))` for an NHWC batch, each block of images
    pooled while in cache, with the contexts of `conv2d_backward` and `max_pool2d_backward`:
    (pooled, conv_ctx, pool_ctx).  `pool` is (ksize, strides, padding).  The convolution's output
    is not kept (with a ReLU, `max_pool2d_backward(..., relu_output=pooled)` needs only the pooled
    values); the numbers are those of `conv2d_forward` then `max_pool2d_forward`.
    """
    op = "conv2d_max_pool_forward"
    x, w, strides, dilations, padding, _, groups = _check_conv_args(
        input, filters, strides, padding, "NHWC", dilations, groups)
    channels = w.shape[3]
    bias = check_epilogue(bias, activation, channels, op, "one per filter")
    if not isinstance(pool, (tuple, list)) or len(pool) != 3:
        raise ValueError(f"{op}: argument `pool` must be (ksize, strides, padding), got {pool!r}")
    ctx = _forward_context(x, w, strides, padding, dilations, groups, "NHWC")
    dtype = ctx["dtype"]
    conv_shape = (x.shape[0],) + tuple(ctx["out_hw"]) + (channels,)
    pool_ctx = max_pool2d_context(conv_shape, *pool, dtype, op)
    if not whole_image_blocks(ctx):       # bands of rows of large images: one op after the other
        out, ctx = conv2d_forward(x, w, strides, padding, "NHWC", dilations, groups, bias, activation)
        pooled, pool_ctx = max_pool2d_forward(out, *pool)
        return pooled, ctx, pool_ctx
    bias = None if bias is None else bias.astype(dtype, copy=False)
    pooled = np.empty(pool_ctx["argmax"].shape, dtype=dtype)
    if pools_in_tiles(ctx, pool_geometry(conv_shape, *pool, op)[1], pool_ctx["out_hw"]):
        convolve_pooled(ctx, bias, activation, None, None, "linear", False, pooled, pool_ctx["argmax"])
        return pooled, ctx, pool_ctx

    def finish(images, block):
        bias_activation_forward(block, bias, activation)
        max_pool2d_into(block, pooled[images], pool_ctx["argmax"][images], pool_ctx)

    convolve(ctx, lambda rows: None, finish=finish)
    return pooled, ctx, pool_ctx
