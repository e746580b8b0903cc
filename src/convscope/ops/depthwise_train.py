"""The depthwise convolution for training on compiled kernels: NHWC, channel multiplier 1, float32/float64.

The grouped convolution (`conv.conv2d` with one group per channel) builds im2col columns
and runs one thin matrix product per channel: most of a MobileNet training step.  Here
the forward pass is the inference kernel (`fused_inference.depthwise_inference`: SIMD tiles
of pixels x channels, bias and ReLU applied while in cache) and its context keeps only
the input and the taps.  Backward, channels are innermost everywhere, so each update is a
run of contiguous channels in vectors (the SIMD width numba targets, never a CPU model):

- the input gradient of a stride-1 convolution is the depthwise convolution of the output
  gradient by the flipped taps (`_transposed_pads`), on the same inference kernel;
- otherwise one plain kernel pass over whole images scatters each output pixel's gradient
  through its border-clipped window into the input gradient and sums the filter gradient;
- the float32 filter gradient (stride 1 along rows) sums 4 pixels at a time in SIMD
  registers per tap and vector of channels (`_BACKWARD_PATHS` chooses).

Threads take contiguous slices of images: each sums its filter gradient per image in the
dtype and adds the image sums into its own float64 partial; the partials are added in slice
order (the same bits run after run for a given thread count).
"""

from __future__ import annotations

import functools
from typing import Any, Dict, Optional, Tuple

import numpy as np

from . import compiled, depthwise_fast
from .parallel import on_slices

if compiled.available():
    from .simd import add, fma, load, store_first, zeros

__all__ = ["applies", "forward", "backward"]

SMALL_WORK = 1 << 22    # multiply-adds under which the backward pass stays on the calling thread


def applies(x: np.ndarray, w: np.ndarray, data_format: str) -> bool:
    """Compiled path on, NHWC, multiplier 1, input and filter float32 or float64."""
    floats = (np.float32, np.float64)
    return (compiled.active() and data_format == "NHWC" and w.shape[3] == 1
            and x.dtype in floats and w.dtype in floats)


def forward(x: np.ndarray, w: np.ndarray, strides, dilations, pads, out_hw, dtype, bias,
            activation: str) -> Tuple[np.ndarray, Dict[str, Any]]:
    """`activation(depthwise(x, w) + bias)` of the checked NHWC `x` by `w` (kh, kw, C, 1), and the context
    `backward` needs: a reference to the input (cast to `dtype`) and the taps, no columns."""
    from .fused_inference import depthwise_inference   # it imports the depthwise ops: imported on first use
    x = np.ascontiguousarray(x, dtype=dtype)
    w = np.ascontiguousarray(w, dtype=dtype)
    y = depthwise_inference(x, w, strides, pads, dilations, bias, activation)
    ctx = {"x": x, "taps": w[..., 0], "strides": strides, "dilations": dilations, "pads": pads,
           "out_hw": tuple(out_hw), "dtype": dtype}
    return y, ctx


@compiled.kernel
def _backward_images(x, taps, g, gx, gw, local, n, h, width, channels, oh, ow, kh, kw, sh, sw, dh, dw,
                     top, left, first, last, need_input, need_filter):
    """Images first..last: gx (flat NHWC, as x) = the input gradient (if `need_input`), gw (kh*kw*C,
    float64) += the filter gradient (if `need_filter`); `local` (kh*kw*C, the dtype) is scratch for one
    image's sums."""
    zero = local.dtype.type(0)
    for b in range(first, last):
        image = b * h * width * channels
        if need_input:
            for k in range(image, image + h * width * channels):
                gx[k] = zero
        for k in range(kh * kw * channels):
            local[k] = zero
        for p in range(oh):
            row = p * sh - top
            i0, i1 = max(0, (-row + dh - 1) // dh), min(kh, (h - row + dh - 1) // dh)
            for q in range(ow):
                col = q * sw - left
                j0, j1 = max(0, (-col + dw - 1) // dw), min(kw, (width - col + dw - 1) // dw)
                go = ((b * oh + p) * ow + q) * channels
                gv = g[go:go + channels]        # slices indexed by range(channels): no negative-index
                for i in range(i0, i1):         # checks, so the channel loops vectorize
                    for j in range(j0, j1):
                        xo = image + ((row + i * dh) * width + col + j * dw) * channels
                        to = (i * kw + j) * channels
                        xv, lv = x[xo:xo + channels], local[to:to + channels]
                        if need_input:
                            gxv, tv = gx[xo:xo + channels], taps[to:to + channels]
                            for c in range(channels):
                                gxv[c] += gv[c] * tv[c]
                        if need_filter:
                            for c in range(channels):
                                lv[c] += gv[c] * xv[c]
        if need_filter:
            for k in range(kh * kw * channels):
                gw[k] += local[k]


def _simd_kernel(lanes: int):
    """The float32 filter-gradient kernel for `lanes` channels per vector (only `lanes` is a closure
    constant: numba's disk cache)."""
    @compiled.kernel
    def filter_grad_tiles(x, g, gw, local, n, h, width, channels, oh, ow, kh, kw, sh, sw, dh, dw, top, left,
                          first, last):
        """Images first..last: gw (kh*kw*C, float64) += the filter gradient.  Per output row and tap,
        each vector of channels sums the row's pixels in 4 accumulators held in registers (4 pixels per
        step), then adds them into `local` (the image's sums, float32)."""
        vectors = channels - channels % lanes
        zero = zeros(lanes)
        for b in range(first, last):
            image = b * h * width * channels
            for k in range(kh * kw * channels):
                local[k] = 0.0
            for p in range(oh):
                row = p * sh - top
                i0, i1 = max(0, (-row + dh - 1) // dh), min(kh, (h - row + dh - 1) // dh)
                grow = (b * oh + p) * ow * channels
                for i in range(i0, i1):
                    xrow = image + (row + i * dh) * width * channels
                    for j in range(kw):
                        shift = left - j * dw           # pixel q reads column q * sw - shift
                        qa = max(0, (shift + sw - 1) // sw)
                        qb = min(ow, (width - 1 + shift) // sw + 1)
                        if qb <= qa:
                            continue
                        to = (i * kw + j) * channels
                        xstep = sw * channels
                        for c0 in range(0, vectors, lanes):
                            a0, a1, a2, a3 = zero, zero, zero, zero
                            go = grow + qa * channels + c0
                            xo = xrow + (qa * sw - shift) * channels + c0
                            q = qa
                            while q + 4 <= qb:
                                a0 = fma(load(g, go, lanes), load(x, xo, lanes), a0)
                                a1 = fma(load(g, go + channels, lanes), load(x, xo + xstep, lanes), a1)
                                a2 = fma(load(g, go + 2 * channels, lanes), load(x, xo + 2 * xstep, lanes), a2)
                                a3 = fma(load(g, go + 3 * channels, lanes), load(x, xo + 3 * xstep, lanes), a3)
                                go += 4 * channels
                                xo += 4 * xstep
                                q += 4
                            while q < qb:
                                a0 = fma(load(g, go, lanes), load(x, xo, lanes), a0)
                                go += channels
                                xo += xstep
                                q += 1
                            total = add(add(a0, a1), add(a2, a3))
                            store_first(local, to + c0, add(load(local, to + c0, lanes), total), lanes)
                        for c in range(vectors, channels):      # past the last full vector, one by one
                            total = local[to + c]
                            for q in range(qa, qb):
                                total += g[grow + q * channels + c] * x[xrow + (q * sw - shift) * channels + c]
                            local[to + c] = total
            for k in range(kh * kw * channels):
                gw[k] += local[k]

    return filter_grad_tiles


@functools.lru_cache(maxsize=None)
def _simd_filter_grad(lanes: int):
    """`_simd_kernel(lanes)`, compiled on first use."""
    return _simd_kernel(lanes)


def _simd_applies(dtype, strides, scatter: bool) -> bool:
    """float32 with SIMD, the input gradient not scattered here (one pass for both is faster), stride 1
    along the rows (with stride 2 the plain kernel measured faster; measurements: benchmarks/README.md,
    'Measurements behind the code's choices')."""
    return dtype == np.float32 and depthwise_fast.lanes() > 0 and not scatter and strides[1] == 1


def _simd_run(x, g, gx, partial, local, taps, geometry, images, need_input):
    """The SIMD filter gradient (`need_input` is False: see `_simd_applies`)."""
    _simd_filter_grad(depthwise_fast.lanes())(x, g, partial, local, *geometry, images.start, images.stop)


def _plain_run(x, g, gx, partial, local, taps, geometry, images, need_input):
    """The plain kernel: both gradients in one pass over the images."""
    _backward_images(x, taps, g, gx, partial, local, *geometry, images.start, images.stop, need_input, True)


# The paths of the backward pass over images, in order: (name, applies(dtype, strides, scatter), run); the
# first that applies runs.  `scatter`: the input gradient is wanted from this pass; that of a stride-1
# convolution is computed apart, as a convolution (`_transposed_pads`).
_BACKWARD_PATHS = (
    ("simd_float32", _simd_applies, _simd_run),
    ("compiled", lambda dtype, strides, scatter: True, _plain_run),
)


def backward(grad: np.ndarray, ctx: Dict[str, Any], need_input_grad: bool
             ) -> Tuple[Optional[np.ndarray], np.ndarray]:
    """(input gradient or None, filter gradient (kh, kw, C, 1)) from the NHWC output gradient `grad`
    (checked: the forward output's shape)."""
    x, taps, dtype = ctx["x"], ctx["taps"], ctx["dtype"]
    n, h, width, channels = x.shape
    kh, kw = taps.shape[:2]
    (oh, ow), (sh, sw), (dh, dw) = ctx["out_hw"], ctx["strides"], ctx["dilations"]
    g = np.ascontiguousarray(grad, dtype=dtype).reshape(-1)
    flat_taps = np.ascontiguousarray(taps).reshape(-1)
    transposed = _transposed_pads(ctx) if need_input_grad else None
    scatter = need_input_grad and transposed is None
    gx = np.empty(x.size if scatter else 1, dtype=dtype)
    geometry = (n, h, width, channels, oh, ow, kh, kw, sh, sw, dh, dw, ctx["pads"][0][0], ctx["pads"][1][0])
    run = next(path for _, applies, path in _BACKWARD_PATHS if applies(dtype, ctx["strides"], scatter))

    def work(images: slice) -> np.ndarray:
        partial = np.zeros(kh * kw * channels)
        local = np.empty(kh * kw * channels, dtype=dtype)
        run(x.reshape(-1), g, gx, partial, local, flat_taps, geometry, images, scatter)
        return partial

    partials = on_slices(n, g.size * kh * kw, work, min_size=SMALL_WORK)
    grad_w = sum(partials, np.zeros(kh * kw * channels)).astype(dtype).reshape(kh, kw, channels, 1)
    if transposed is not None:
        from .fused_inference import depthwise_inference
        flipped = np.ascontiguousarray(taps[::-1, ::-1, :, None])
        return depthwise_inference(g.reshape(grad.shape), flipped, 1, transposed, ctx["dilations"]), grad_w
    return (gx.reshape(x.shape) if need_input_grad else None), grad_w


def _transposed_pads(ctx):
    """The padding ((top, bottom), (left, right)) under which the input gradient of a stride-1 convolution
    is the depthwise convolution of the output gradient by the flipped taps (the inference kernels' fast
    tiles), or None (strided, or padded past the window: scattered by `_backward_images`)."""
    if tuple(ctx["strides"]) != (1, 1):
        return None
    pads = []
    for axis in range(2):
        span = ctx["dilations"][axis] * (ctx["taps"].shape[axis] - 1)
        before, after = ctx["pads"][axis]
        if max(before, after) > span:
            return None
        pads.append((span - before, span - after))
    return tuple(pads)
