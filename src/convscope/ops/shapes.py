"""The one place where padding, stride and dilation arithmetic lives.

Ops, layers, the summary and the explanations all call these functions, so a
shape printed in an explanation is, by construction, the shape the op computes.

Conventions (TensorFlow / Keras):

* effective kernel size with dilation d:   k_eff = d * (k - 1) + 1
* "valid":    out = floor((n - k_eff) / s) + 1
* "same":     out = ceil(n / s); the total padding is
              max((out - 1) * s + k_eff - n, 0), split as total // 2 before and
              the odd pixel after (bottom/right).  PyTorch's padding="same" does
              not allow stride > 1; this split is what makes TF's stride-2 SAME
              differ from a symmetric PyTorch padding.
* "causal":   (Conv1D) d * (k - 1) cells before, none after: out = ceil(n / s), and
              output t sees inputs up to t * s only
* explicit:   out = floor((n + before + after - k_eff) / s) + 1
* transposed ("deconvolution", Keras' Conv2DTranspose rule):
              "valid": out = (n - 1) * s + k_eff + output_padding, with output_padding
                       max(k_eff, s) - k_eff when None;
              "same":  out = n * s when output_padding is None, else
                       (n - 1) * s + k_eff % 2 + output_padding.
              That is (n - 1) * s - 2p + k_eff + output_padding with p = 0 ("valid")
              or p = k_eff // 2 ("same" with output_padding); the cells cut from the
              full (n - 1) * s + k_eff are `deconv_padding`'s (before, after).
* adaptive (pooling to a given size m, PyTorch's and Keras' rule): output cell i pools
              input cells floor(i * n / m) to ceil((i + 1) * n / m) - 1; windows of one
              or two lengths that overlap where m does not divide n.
"""

from __future__ import annotations

from typing import Sequence, Tuple, Union

Padding1D = Union[str, Tuple[int, int]]

__all__ = [
    "effective_kernel_size",
    "same_padding",
    "causal_padding",
    "pad_amounts",
    "conv_output_length",
    "dropped_by_floor",
    "receptive_field_step",
    "normalize_tuple",
    "ceil_div",
    "deconv_output_length",
    "deconv_padding",
    "adaptive_windows",
]


def effective_kernel_size(kernel_size: int, dilation: int = 1) -> int:
    """Span of a dilated kernel: d * (k - 1) + 1 input cells."""
    return dilation * (kernel_size - 1) + 1


def same_padding(length: int, kernel_size: int, stride: int = 1, dilation: int = 1) -> Tuple[int, int]:
    """TensorFlow's SAME padding for one axis as (before, after); the odd cell goes after."""
    out = ceil_div(length, stride)
    total = max((out - 1) * stride + effective_kernel_size(kernel_size, dilation) - length, 0)
    return total // 2, total - total // 2


def causal_padding(kernel_size: int, dilation: int = 1) -> Tuple[int, int]:
    """Keras' "causal" padding (Conv1D) as (before, after): k_eff - 1 cells before, none after."""
    return effective_kernel_size(kernel_size, dilation) - 1, 0


def pad_amounts(length: int, kernel_size: int, stride: int, dilation: int, padding: Padding1D) -> Tuple[int, int]:
    """Cells added (before, after) on one axis for "valid", "same", "causal" or an explicit pair."""
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return 0, 0
        if mode == "same":
            return same_padding(length, kernel_size, stride, dilation)
        if mode == "causal":
            return causal_padding(kernel_size, dilation)
        raise ValueError(f"padding must be 'valid', 'same', 'causal' or a (before, after) pair, got {padding!r}")
    before, after = padding
    return int(before), int(after)


def conv_output_length(length: int, kernel_size: int, stride: int = 1, dilation: int = 1,
                       padding: Padding1D = "valid") -> int:
    """Output length of a convolution or pooling window on one axis.

    May be zero or negative when the (dilated) kernel does not fit; callers turn
    that into an error that names the layer.
    """
    before, after = pad_amounts(length, kernel_size, stride, dilation, padding)
    return (length + before + after - effective_kernel_size(kernel_size, dilation)) // stride + 1


def dropped_by_floor(length: int, kernel_size: int, stride: int = 1, dilation: int = 1,
                     padding: Padding1D = "valid") -> int:
    """Input cells at the end (after padding) that no window reaches because of the floor."""
    before, after = pad_amounts(length, kernel_size, stride, dilation, padding)
    span = length + before + after - effective_kernel_size(kernel_size, dilation)
    return span % stride if span >= 0 else 0


def receptive_field_step(field: int, jump: int, start: float, kernel_size: int, stride: int = 1,
                         dilation: int = 1, pad_before: int = 0) -> Tuple[int, int, float]:
    """Propagate (receptive field size, jump, start) through one window op on one axis.

    ``field`` is how many input pixels one unit sees, ``jump`` the distance in
    input pixels between neighbouring units, and ``start`` the input coordinate
    of the first pixel seen by unit 0 (negative where it lies in padding).
    """
    k_eff = effective_kernel_size(kernel_size, dilation)
    return field + (k_eff - 1) * jump, jump * stride, start - pad_before * jump


def normalize_tuple(value, n: int, arg: str, where: str, allow_zero: bool = False) -> Tuple[int, ...]:
    """An int or a length-n sequence of ints as a tuple of n positive ints.

    ``where`` names the caller (e.g. "Conv2D 'conv2d'") for the error message.
    """
    if isinstance(value, (bool, str, bytes)):
        raise TypeError(f"{where}: argument `{arg}` must be an int or a tuple of {n} ints, got {value!r}")
    if isinstance(value, (int,)) or (hasattr(value, "dtype") and getattr(value, "ndim", 1) == 0):
        items: Sequence = (int(value),) * n
    else:
        try:
            items = tuple(value)
        except TypeError:
            raise TypeError(f"{where}: argument `{arg}` must be an int or a tuple of {n} ints, "
                            f"got {value!r}") from None
        if len(items) != n:
            raise ValueError(f"{where}: argument `{arg}` must be an int or a tuple of {n} ints, "
                             f"got {value!r} ({len(items)} values)")
    out = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int,)) and not (
                hasattr(item, "dtype") and str(getattr(item, "dtype", "")).startswith(("int", "uint"))):
            raise TypeError(f"{where}: argument `{arg}` must contain ints, got {value!r}")
        item = int(item)
        low = 0 if allow_zero else 1
        if item < low:
            kind = "non-negative" if allow_zero else "positive"
            raise ValueError(f"{where}: argument `{arg}` must be {kind}, got {value!r}")
        out.append(item)
    return tuple(out)


def ceil_div(a: int, b: int) -> int:
    """ceil(a / b) for ints, exactly (no float rounding)."""
    return -(-a // b)


def deconv_output_length(length: int, kernel_size: int, stride: int = 1, dilation: int = 1,
                         padding: str = "valid", output_padding=None) -> int:
    """Output length of a transposed convolution on one axis, Keras' rule ("valid"/"same")."""
    k_eff = effective_kernel_size(kernel_size, dilation)
    mode = padding.lower()
    if mode == "valid":
        extra = max(k_eff, stride) - k_eff if output_padding is None else output_padding
        return (length - 1) * stride + k_eff + extra
    if mode != "same":
        raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
    if output_padding is None:
        return length * stride
    return (length - 1) * stride + k_eff % 2 + output_padding


def deconv_padding(length: int, kernel_size: int, stride: int = 1, dilation: int = 1,
                   padding: str = "valid", output_padding=None) -> Tuple[int, int]:
    """(before, after): cells cut from each end of a transposed convolution's full output,
    (length - 1) * stride + k_eff cells, to leave `deconv_output_length`'s (a negative `after`
    appends zeros).  `before` is the padding of the convolution it transposes, as Keras (and
    TensorFlow's SAME split) place the output: "valid" 0; "same" (k_eff - stride) // 2, or
    (k_eff - k_eff % 2 - output_padding) // 2 with an output_padding, never below 0."""
    k_eff = effective_kernel_size(kernel_size, dilation)
    out = deconv_output_length(length, kernel_size, stride, dilation, padding, output_padding)
    if padding.lower() == "valid":
        before = 0
    elif output_padding is None:
        before = max((k_eff - stride) // 2, 0)
    else:
        before = max((k_eff - k_eff % 2 - output_padding) // 2, 0)
    return before, (length - 1) * stride + k_eff - before - out


def adaptive_windows(length: int, output: int) -> Tuple[Tuple[int, int], ...]:
    """(start, stop) of the input cells each of `output` cells pools from `length` (adaptive pooling):
    start = floor(i * length / output), stop = ceil((i + 1) * length / output)."""
    return tuple((i * length // output, ceil_div((i + 1) * length, output)) for i in range(output))
