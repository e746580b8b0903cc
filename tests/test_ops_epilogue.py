"""The fused bias + ReLU epilogue (ops.bias_activation_*) and conv2d's fused bias/activation,
against float64 NumPy, PyTorch and finite differences, on the NumPy and the compiled path."""

import numpy as np
import pytest

from _gradcheck import assert_gradients_close, numerical_gradient
from _oracle import assert_matches
from convscope import ops

pytestmark = pytest.mark.usefixtures("kernel_path")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(7, 5), (3, 4, 6, 9), (2, 300, 16), (1, 1)])
@pytest.mark.parametrize("activation", ["linear", "relu"])
@pytest.mark.parametrize("with_bias", [True, False])
def test_forward_and_backward_match_float64_formulas(shape, dtype, activation, with_bias):
    rng = np.random.default_rng(sum(shape))
    z = rng.standard_normal(shape).astype(dtype)
    bias = rng.standard_normal(shape[-1]).astype(dtype) if with_bias else None
    expected = z.astype(np.float64) + (0.0 if bias is None else bias.astype(np.float64))
    if activation == "relu":
        expected = np.maximum(expected, 0.0)
    y = ops.bias_activation_forward(z.copy(), bias, activation)
    assert y.dtype == np.dtype(dtype)
    assert_matches(y, expected, dtype)

    grad_y = rng.standard_normal(shape).astype(dtype)
    grad_z, grad_bias = ops.bias_activation_backward(grad_y, y, activation, with_bias)
    expected_grad = grad_y.astype(np.float64) * ((expected > 0) if activation == "relu" else 1.0)
    assert grad_z.dtype == np.dtype(dtype)
    assert_matches(grad_z, expected_grad, dtype)
    if with_bias:
        assert grad_bias.dtype == np.dtype(dtype)
        assert_matches(grad_bias, expected_grad.reshape(-1, shape[-1]).sum(axis=0), dtype)
    else:
        assert grad_bias is None


def test_forward_works_in_place_and_keeps_nan():
    z = np.array([[-1.0, 0.5, np.nan], [2.0, -3.0, np.inf]], dtype=np.float32)
    out = ops.bias_activation_forward(z, np.array([0.5, -1.0, 0.0], dtype=np.float32), "relu")
    assert out is z
    np.testing.assert_array_equal(z, [[0.0, 0.0, np.nan], [2.5, 0.0, np.inf]])


def test_backward_multiplies_by_the_mask_like_numpy():
    y = np.array([[0.0, 1.0, np.nan]], dtype=np.float32)
    with np.errstate(invalid="ignore"):
        grad_z, _ = ops.bias_activation_backward(np.array([[np.inf, 2.0, 3.0]], dtype=np.float32), y, "relu", True)
    np.testing.assert_array_equal(grad_z, [[np.nan, 2.0, 0.0]])   # inf * 0 is NaN, as NumPy's g * mask


@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", [
    dict(shape=(3, 9, 8, 4), kernel=(3, 3), out=5, strides=1, padding="SAME", groups=1),
    dict(shape=(2, 7, 7, 6), kernel=(2, 3), out=6, strides=2, padding="VALID", groups=3),
    dict(shape=(2, 6, 6, 1), kernel=(5, 5), out=8, strides=1, padding="SAME", groups=1),
    dict(shape=(2, 5, 5, 3), kernel=(1, 1), out=4, strides=1, padding="VALID", groups=1),
])
def test_conv2d_with_fused_bias_and_relu_matches_torch(case, dtype, data_format):
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    rng = np.random.default_rng(case["out"])
    x_nhwc = rng.standard_normal(case["shape"]).astype(dtype)
    channels = case["shape"][3]
    filters = rng.standard_normal(case["kernel"] + (channels // case["groups"], case["out"])).astype(dtype)
    bias = rng.standard_normal(case["out"]).astype(dtype)
    x = x_nhwc if data_format == "NHWC" else np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))
    y = ops.conv2d(x, filters, case["strides"], case["padding"], data_format, groups=case["groups"],
                   bias=bias, activation="relu")

    x_t = torch.from_numpy(x_nhwc.transpose(0, 3, 1, 2).copy())
    if case["padding"] == "SAME":
        total_h, total_w = case["kernel"][0] - 1, case["kernel"][1] - 1
        x_t = functional.pad(x_t, (total_w // 2, total_w - total_w // 2, total_h // 2, total_h - total_h // 2))
    expected = functional.relu(functional.conv2d(x_t, torch.from_numpy(filters.transpose(3, 2, 0, 1).copy()),
                                                 torch.from_numpy(bias), stride=case["strides"],
                                                 groups=case["groups"])).numpy()
    if data_format == "NHWC":
        expected = expected.transpose(0, 2, 3, 1)
    assert_matches(y, expected, dtype)


def test_fused_conv_gradients_match_finite_differences():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 5, 5, 2))
    filters = rng.standard_normal((3, 3, 2, 3))
    bias = rng.standard_normal(3)
    grad_y = rng.standard_normal((2, 5, 5, 3))

    def loss():
        return float((ops.conv2d(x, filters, 1, "SAME", bias=bias, activation="relu") * grad_y).sum())

    y, ctx = ops.conv2d_forward(x, filters, 1, "SAME", bias=bias, activation="relu")
    grad_z, grad_bias = ops.bias_activation_backward(grad_y, y, "relu", with_bias=True)
    grad_x, grad_filters = ops.conv2d_backward(grad_z, ctx)
    assert_gradients_close(grad_x, numerical_gradient(loss, x))
    assert_gradients_close(grad_filters, numerical_gradient(loss, filters))
    assert_gradients_close(grad_bias, numerical_gradient(loss, bias))


@pytest.mark.parametrize("call,error,pattern", [
    (lambda: ops.bias_activation_forward(np.zeros((2, 3)), None, "tanh"), ValueError,
     r"bias_activation_forward: argument `activation` must be one of \('linear', 'relu'\), got 'tanh'"),
    (lambda: ops.bias_activation_forward(np.zeros((2, 3)), np.zeros(4), "relu"), ValueError,
     r"bias_activation_forward: argument `bias` must have shape \(3,\) .*got \(4,\)"),
    (lambda: ops.bias_activation_backward(np.zeros((2, 3)), np.zeros((2, 4)), "relu", True), ValueError,
     r"bias_activation_backward: arguments `grad_y` and `y` must have the same shape, got \(2, 3\) and \(2, 4\)"),
    (lambda: ops.conv2d(np.zeros((1, 4, 4, 2)), np.zeros((3, 3, 2, 5)), 1, "SAME", bias=np.zeros(4)),
     ValueError, r"conv2d: argument `bias` must have shape \(5,\) \(one per filter\), got \(4,\)"),
    (lambda: ops.conv2d(np.zeros((1, 4, 4, 2)), np.zeros((3, 3, 2, 5)), 1, "SAME", activation="gelu"),
     ValueError, r"conv2d: argument `activation` must be one of \('linear', 'relu'\), got 'gelu'"),
])
def test_bad_arguments_are_named(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()



def test_bias_add_on_the_channel_axis_and_its_errors():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(2, 3, 4, 5))
    bias = rng.normal(size=5)
    np.testing.assert_array_equal(ops.bias_add(z.copy(), bias), z + bias)
    bias_first = rng.normal(size=3)
    np.testing.assert_array_equal(ops.bias_add(z.copy(), bias_first, "NCHW"), z + bias_first[None, :, None, None])
    with pytest.raises(ValueError, match=r"bias_add: argument `bias` must have shape \(5,\) for z of shape "
                                         r"\(2, 3, 4, 5\) \(NHWC\), got \(3,\)"):
        ops.bias_add(z, bias_first)
    with pytest.raises(ValueError, match=r"bias_add: argument `data_format` must be 'NHWC' or 'NCHW', got 'NWHC'"):
        ops.bias_add(z, bias, "NWHC")
