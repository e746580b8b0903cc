"""Dense: PyTorch oracle on N-D input (the last axis), weight layout, defaults, config."""

import json

import numpy as np
import pytest

from _calls import backward, forward
from convscope.layers import Dense, deserialize, serialize

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("activation", ["sigmoid", "relu", "linear"])   # relu and linear: the fused epilogue
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(5, 7), (4, 3, 7), (2, 3, 2, 7)])
def test_dense_matches_torch_linear_forward_and_backward(shape, dtype, activation, kernel_path):
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape).astype(dtype)
    layer = Dense(4, activation=activation, dtype=dtype, bias_initializer="random_uniform")
    y = layer(x)
    assert y.shape == shape[:-1] + (4,) and y.dtype == np.dtype(dtype)
    y_kept, ctx = forward(layer, x)         # the same call, keeping its context for backward
    np.testing.assert_array_equal(y_kept, y)

    x_t = torch.from_numpy(x).requires_grad_(True)
    kernel_t = torch.from_numpy(layer.kernel.numpy()).requires_grad_(True)
    bias_t = torch.from_numpy(layer.bias.numpy()).requires_grad_(True)
    torch_activation = {"sigmoid": torch.sigmoid, "relu": torch.relu, "linear": lambda z: z}[activation]
    y_t = torch_activation(torch.nn.functional.linear(x_t, kernel_t.T, bias_t))
    tol = 1e-5 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(y, y_t.detach().numpy(), rtol=tol, atol=tol)

    upstream = rng.standard_normal(y.shape).astype(dtype)
    y_t.backward(torch.from_numpy(upstream))
    grad_x, grads = backward(layer, ctx, upstream)
    np.testing.assert_allclose(grad_x, x_t.grad.numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(grads[layer.kernel.name], kernel_t.grad.numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(grads[layer.bias.name], bias_t.grad.numpy(), rtol=tol, atol=tol)


def test_seed004_dense_on_3d_input():
    layer = Dense(30)
    out = layer(np.zeros((64, 10, 20), dtype=np.float32))
    kernel, bias = layer.weights
    assert kernel.shape == (20, 30) and bias.shape == (30,)
    assert out.shape == (64, 10, 30)
    assert layer.count_params() == 630


def test_input_dim_shorthand_and_no_bias():
    layer = Dense(4, input_dim=9, use_bias=False)
    assert layer._batch_input_shape == (None, 9)
    layer.build_from_shape((None, 9))
    assert [w.shape for w in layer.get_weights()] == [(9, 4)]


def test_defaults_repr_and_config_round_trip():
    layer = Dense(10, activation="softmax", kernel_initializer="lecun_normal")
    assert repr(layer) == ("Dense(units=10, activation='softmax', kernel_initializer={'class_name': "
                           "'LecunNormal', 'config': {'seed': None}}, name='dense')")
    assert repr(Dense(3)) == "Dense(units=3, name='dense_1')"
    config = json.loads(json.dumps(serialize(layer)))
    assert deserialize(config).get_config() == layer.get_config()
