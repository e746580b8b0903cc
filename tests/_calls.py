"""One call of a layer under the per-call contract: `forward` returns (outputs, ctx), `backward(ctx, ...)`
returns (input gradient, [(variable, gradient), ...]) and sets nothing on the layer or its variables, nor
writes into the gradient it is given (an Add hands the same array to each of its inputs)."""

import contextlib

import numpy as np


def forward(layer, x, training=False):
    """(outputs, ctx) of one call; builds the layer for `x` first, as `layer(x)` would."""
    if not layer.built:
        layer.build_from_shape((None,) + np.shape(x)[1:])
    return layer.forward(x, training=training)


def backward(layer, ctx, grad_output, need_input_grad=True):
    """(input gradient, {variable name: gradient}) of the call that made `ctx`.

    Checks the contract on the way: one gradient per variable of the layer's `trainable_weights` (none
    for a frozen layer), each of its variable's shape, and every `variable.grad` left as it was."""
    variables = layer.weights
    before = [v.grad for v in variables]
    with _unchanged(grad_output):
        grad_x, pairs = layer.backward(ctx, grad_output, need_input_grad=need_input_grad)
    assert sorted(v.name for v, _ in pairs) == sorted(v.name for v in layer.trainable_weights)
    grads = {v.name: g for v, g in pairs}
    for variable, gradient in pairs:
        assert np.shape(gradient) == variable.shape, variable.name
    for variable, old in zip(variables, before):
        assert variable.grad is old, f"backward set {variable.name}.grad"
    return grad_x, grads



@contextlib.contextmanager
def _unchanged(grad):
    """Checks that the array gradient (or each in a list) is unchanged after the block."""
    arrays = [g for g in (grad if isinstance(grad, (list, tuple)) else [grad]) if isinstance(g, np.ndarray)]
    before = [a.copy() for a in arrays]
    yield grad
    for array, old in zip(arrays, before):
        np.testing.assert_array_equal(array, old, err_msg="backward wrote into the gradient it was given")
