"""BatchNormalization against PyTorch (training and inference, forward and backward, moving statistics)."""

import numpy as np
import pytest

from _calls import backward, forward
from convscope.layers import BatchNormalization, deserialize, serialize

torch = pytest.importorskip("torch")
F = torch.nn.functional


def to_torch_layout(x, axis):
    """PyTorch normalizes axis 1; move our channel axis there."""
    return np.moveaxis(x, axis, 1)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape,axis", [((6, 4), -1), ((3, 5, 4, 3), -1), ((3, 3, 4, 5), 1)])
def test_training_mode_matches_torch_and_updates_moving_statistics(shape, axis, dtype, kernel_path):
    rng = np.random.default_rng(2)
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    layer = BatchNormalization(axis=axis, momentum=0.9, dtype=dtype)
    layer.build_from_shape((None,) + shape[1:])
    gamma = rng.uniform(0.5, 2, layer.gamma.shape)
    beta = rng.standard_normal(layer.beta.shape)
    layer.set_weights([gamma, beta, np.zeros(gamma.shape), np.ones(gamma.shape)])
    twin = BatchNormalization(axis=axis, momentum=0.9, dtype=dtype)   # the same call through layer(x)
    twin.build_from_shape((None,) + shape[1:])
    twin.set_weights(layer.get_weights())
    y, ctx = forward(layer, x, training=True)    # one call (moving statistics updated once), kept for backward
    np.testing.assert_array_equal(twin(x, training=True), y)
    for ours, theirs in zip(layer.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(ours, theirs)

    x_t = torch.from_numpy(to_torch_layout(x, axis).copy()).requires_grad_(True)
    gamma_t = torch.from_numpy(gamma.astype(dtype)).requires_grad_(True)
    beta_t = torch.from_numpy(beta.astype(dtype)).requires_grad_(True)
    running_mean = torch.zeros(gamma.shape, dtype=x_t.dtype)
    running_var = torch.ones(gamma.shape, dtype=x_t.dtype)
    y_t = F.batch_norm(x_t, running_mean, running_var, gamma_t, beta_t, training=True,
                       momentum=0.1, eps=1e-3)  # torch's momentum is 1 - Keras'
    tol = 1e-5 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(to_torch_layout(y, axis), y_t.detach().numpy(), rtol=tol, atol=tol)

    channel_axis = axis % len(shape)
    reduce_axes = tuple(i for i in range(len(shape)) if i != channel_axis)
    np.testing.assert_allclose(layer.moving_mean.numpy(), running_mean.numpy(), rtol=tol, atol=tol)
    biased_var = x.astype(np.float64).var(axis=reduce_axes)  # Keras moves with the biased variance
    np.testing.assert_allclose(layer.moving_variance.numpy(), 0.9 + 0.1 * biased_var, rtol=tol, atol=tol)

    upstream = rng.standard_normal(shape).astype(dtype)
    y_t.backward(torch.from_numpy(to_torch_layout(upstream, axis).copy()))
    grad, grads = backward(layer, ctx, upstream)
    np.testing.assert_allclose(to_torch_layout(grad, axis), x_t.grad.numpy(), rtol=tol, atol=tol * 10)
    np.testing.assert_allclose(grads[layer.gamma.name], gamma_t.grad.numpy(), rtol=tol, atol=tol * 10)
    np.testing.assert_allclose(grads[layer.beta.name], beta_t.grad.numpy(), rtol=tol, atol=tol * 10)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_inference_mode_uses_moving_statistics_like_torch_eval(dtype, kernel_path):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4, 3, 3, 5)).astype(dtype)
    layer = BatchNormalization(dtype=dtype, epsilon=0.01)
    layer.build_from_shape((None, 3, 3, 5))
    weights = [rng.uniform(0.5, 2, 5), rng.standard_normal(5), rng.standard_normal(5), rng.uniform(0.5, 2, 5)]
    layer.set_weights(weights)
    y = layer(x)  # inference is the default
    y_kept, ctx = forward(layer, x)     # the same call, keeping its context for backward
    np.testing.assert_array_equal(y_kept, y)
    tensors = [torch.from_numpy(w.astype(dtype)) for w in weights]
    x_t = torch.from_numpy(np.moveaxis(x, -1, 1).copy()).requires_grad_(True)
    y_t = F.batch_norm(x_t, tensors[2], tensors[3], tensors[0], tensors[1], training=False, eps=0.01)
    tol = 1e-5 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(np.moveaxis(y, -1, 1), y_t.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(layer.moving_mean.numpy(), weights[2].astype(dtype))  # unchanged
    upstream = rng.standard_normal(x.shape).astype(dtype)
    y_t.backward(torch.from_numpy(np.moveaxis(upstream, -1, 1).copy()))
    grad, _ = backward(layer, ctx, upstream)
    np.testing.assert_allclose(np.moveaxis(grad, -1, 1), x_t.grad.numpy(), rtol=tol, atol=tol)


def test_weights_order_trainability_and_counts():
    layer = BatchNormalization()
    layer.build_from_shape((None, 28, 28, 75))
    assert [v.name.split("/")[1] for v in layer.weights] == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert [v.trainable for v in layer.weights] == [True, True, False, False]
    assert layer.count_params() == 300
    assert sum(v.value.size for v in layer.non_trainable_weights) == 150
    gamma, beta, mean, var = layer.get_weights()
    assert (gamma == 1).all() and (beta == 0).all() and (mean == 0).all() and (var == 1).all()
    assert (layer.momentum, layer.epsilon, layer.axis) == (0.99, 1e-3, -1)


def test_frozen_layer_runs_inference_even_when_training(kernel_path):
    layer = BatchNormalization(trainable=False)
    x = np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32) * 5 + 2
    y = layer(x, training=True)
    np.testing.assert_allclose(y, x / np.sqrt(1 + 1e-3), rtol=1e-6)
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 4


def test_keras2_axis_list_and_config_round_trip():
    layer = deserialize({"class_name": "BatchNormalization", "config": {
        "name": "bn", "trainable": True, "dtype": "float32", "axis": [3], "momentum": 0.9,
        "epsilon": 0.001, "center": True, "scale": False,
        "beta_initializer": {"class_name": "Zeros", "config": {}},
        "gamma_initializer": {"class_name": "Ones", "config": {}},
        "moving_mean_initializer": {"class_name": "Zeros", "config": {}},
        "moving_variance_initializer": {"class_name": "Ones", "config": {}},
        "beta_regularizer": None, "gamma_regularizer": None, "beta_constraint": None,
        "gamma_constraint": None, "synchronized": False}})
    assert layer.axis == 3 and not layer.scale
    layer.build_from_shape((None, 4, 4, 2))
    assert [v.name for v in layer.weights] == ["bn/beta", "bn/moving_mean", "bn/moving_variance"]
    assert deserialize(serialize(layer)).get_config() == layer.get_config()
