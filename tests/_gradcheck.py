"""Central finite differences in float64: the oracle for every backward pass."""

import numpy as np


def numerical_gradient(f, x, eps=1e-6):
    """d f(x) / d x for a scalar function f, by central differences; x is perturbed in place."""
    x = np.asarray(x)
    grad = np.zeros_like(x, dtype=np.float64)
    flat = x.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        plus = f()
        flat[i] = old - eps
        minus = f()
        flat[i] = old
        grad.reshape(-1)[i] = (plus - minus) / (2 * eps)
    return grad


def assert_gradients_close(analytic, numeric, rtol=1e-6, atol=1e-8):
    np.testing.assert_allclose(analytic, numeric, rtol=rtol, atol=atol)


def assert_layer_matches_finite_differences(layer, x, seed: int = 10):
    """A layer's d sum(w · y) / d x and / d each trainable weight (w random) against central differences."""
    from _calls import backward, forward
    y, ctx = forward(layer, x)
    weights = np.random.default_rng(seed).standard_normal(np.shape(y))
    grad_x, grads = backward(layer, ctx, weights)
    loss = lambda: float(np.sum(weights * layer(x)))  # noqa: E731
    assert_gradients_close(grad_x, numerical_gradient(loss, x))
    for variable in layer.trainable_weights:
        assert_gradients_close(grads[variable.name], numerical_gradient(loss, variable.value))
