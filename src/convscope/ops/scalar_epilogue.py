"""One output of the compiled kernels' epilogue (`epilogue_value`), on its own so that the ops below `epilogue`
(`dense_tiles`, which `parallel` imports, and `parallel` sits below `epilogue`) share the one rule."""

from __future__ import annotations

from . import compiled

__all__ = ["epilogue_value"]


@compiled.kernel(inline=True)
def epilogue_value(value, bias, relu, scale, shift, affine, relu_after, zero):
    """relu(value + bias), then, if `affine`, times scale plus shift, then relu if `relu_after`
    (NaN stays NaN): one output of the epilogue, shared by the compiled kernels that apply it.
    `zero` is 0 in the array's dtype (a float literal would turn `value` into float64)."""
    value = value + bias
    if relu and value < 0:
        value = zero
    if affine:
        value = value * scale + shift
    if relu_after and value < 0:
        value = zero
    return value
