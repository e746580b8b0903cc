"""The depthwise convolution for training on compiled kernels: NHWC, channel multiplier 1, float32/float64.

The grouped convolution (`conv.conv2d` with one group per channel) builds im2col columns
and runs one thin matrix product per channel: most of a MobileNet training step.  Here
the forward pass is the inference kernel (`fused_inference.depthwise_inference`: SIMD tiles
of pixels x channels, bias and ReLU applied while in cache) and its context keeps only
the input and the taps.  The backward pass is one compiled kernel over whole images: each
output pixel's gradient is scattered through its (border-clipped) window into the input
gradient and multiplied by the input under the window into the filter gradient; channels
are innermost, so every update is a run of contiguous channels the compiler vectorizes
(at the SIMD width numba targets).  Threads take contiguous slices of images: each sums
its filter gradient per image in the dtype and adds the image sums into its own float64
partial, and the partials are added in slice order (deterministic for a given thread count).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np

from . import compiled
from .parallel import on_slices

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
                     top, left, first, last, need_input):
    """Images first..last: gx (flat NHWC, as x) = the input gradient (if `need_input`), gw (kh*kw*C,
    float64) += the filter gradient; `local` (kh*kw*C, the dtype) is scratch for one image's sums."""
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
                        for c in range(channels):
                            lv[c] += gv[c] * xv[c]
        for k in range(kh * kw * channels):
            gw[k] += local[k]


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
    gx = np.empty(x.size if need_input_grad else 1, dtype=dtype)
    geometry = (n, h, width, channels, oh, ow, kh, kw, sh, sw, dh, dw, ctx["pads"][0][0], ctx["pads"][1][0])

    def work(images: slice) -> np.ndarray:
        partial = np.zeros(kh * kw * channels)
        local = np.empty(kh * kw * channels, dtype=dtype)
        _backward_images(x.reshape(-1), flat_taps, g, gx, partial, local, *geometry, images.start, images.stop,
                         need_input_grad)
        return partial

    partials = on_slices(n, g.size * kh * kw, work, min_size=SMALL_WORK)
    grad_w = sum(partials, np.zeros(kh * kw * channels)).astype(dtype).reshape(kh, kw, channels, 1)
    return (gx.reshape(x.shape) if need_input_grad else None), grad_w
