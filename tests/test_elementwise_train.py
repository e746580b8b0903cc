"""Training-mode element-wise ops: ReLU with Keras' parameters (compiled one-pass kernels,
`ops/elementwise_fast.py`) and batch normalization's compiled paths, against PyTorch, float64
finite differences and the NumPy reference.

Run as a script (`python tests/test_elementwise_train.py`) it compares the compiled kernels with the
reference and prints the SIMD width: the AVX2 test runs it in a child compiled for 256-bit vectors.
"""

import subprocess
import sys

import numpy as np
import pytest

from convscope import ops
from convscope.ops import compiled, elementwise_fast, normalization

# -- ReLU ------------------------------------------------------------------------------------------
RELU_PARAMS = [{}, {"max_value": 6.0}, {"negative_slope": 0.1}, {"threshold": 0.5}, {"max_value": 1.5},
               {"negative_slope": 0.3, "max_value": 6.0, "threshold": 1.0},
               {"negative_slope": 0.2, "threshold": -1.0}, {"max_value": 0.0}]
# odd sizes below and above the 8/16 float lanes of a vector, and one past the threads' threshold
RELU_SHAPES = [(1,), (7,), (2, 17), (3, 5, 5, 33), (4, 9, 9, 144), (2, 300, 300, 3)]


def relu_configs(count, seed=1802):
    rng = np.random.default_rng(seed)
    return [dict(index=i, params=RELU_PARAMS[i % len(RELU_PARAMS)], shape=RELU_SHAPES[int(rng.integers(len(RELU_SHAPES)))],
                 dtype=str(rng.choice(["float32", "float64"]))) for i in range(count)]


def _away_from_kinks(rng, shape, dtype, params):
    """Values of scale 4 at least 0.01 from the threshold and max_value (the derivative's jumps)."""
    x = rng.standard_normal(shape) * 4
    for kink in (params.get("threshold", 0.0), params.get("max_value")):
        if kink is not None:
            near = np.abs(x - kink) < 0.01
            x[near] = kink + 0.5
    return x.astype(dtype)


def _torch_relu(torch, x, negative_slope=0.0, max_value=None, threshold=0.0):
    """Keras' relu written with torch operations (autograd gives its derivative)."""
    y = torch.where(x > threshold, x, negative_slope * (x - threshold))
    return y if max_value is None else torch.clamp(y, max=max_value)


@pytest.mark.parametrize("config", relu_configs(24), ids=lambda c: f"{c['index']}-{c['params']}-{c['shape']}-{c['dtype']}")
def test_relu_matches_torch(config, kernel_path):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(config["index"])
    x = _away_from_kinks(rng, config["shape"], config["dtype"], config["params"])
    grad_y = rng.standard_normal(x.shape).astype(config["dtype"])
    relu = ops.get_activation("relu", **config["params"])
    y = relu.forward(x)
    x_t = torch.tensor(x, requires_grad=True)
    expected = _torch_relu(torch, x_t, **config["params"])
    expected.backward(torch.tensor(grad_y))
    tolerance = 1e-6 if config["dtype"] == "float32" else 1e-12
    assert y.dtype == x.dtype and y.shape == x.shape
    np.testing.assert_allclose(y, expected.detach().numpy(), rtol=tolerance, atol=tolerance)
    grad_x = relu.backward(grad_y, x, y)
    assert grad_x.dtype == x.dtype
    np.testing.assert_allclose(grad_x, x_t.grad.numpy(), rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("params", RELU_PARAMS, ids=str)
def test_relu_gradient_matches_finite_differences(params, kernel_path):
    rng = np.random.default_rng(5)
    x = _away_from_kinks(rng, (3, 4, 5), "float64", params)
    weights = rng.standard_normal(x.shape)
    relu = ops.get_activation("relu", **params)
    step = 1e-6
    numerical = np.empty_like(x)
    for index in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[index] += step
        minus[index] -= step
        numerical[index] = (np.sum(relu.forward(plus) * weights) - np.sum(relu.forward(minus) * weights)) / (2 * step)
    np.testing.assert_allclose(relu.backward(weights, x, relu.forward(x)), numerical, rtol=1e-6, atol=1e-6)


def _special_values(rng, shape, dtype, params):
    """Random values with NaN, +-inf, zeros, and values exactly at threshold and max_value."""
    x = (rng.standard_normal(shape) * 4).astype(dtype).reshape(-1)
    specials = [np.nan, np.inf, -np.inf, 0.0, -0.0, params.get("threshold", 0.0)]
    if params.get("max_value") is not None:
        specials.append(params["max_value"])
    picks = rng.integers(0, x.size, size=max(1, x.size // 5))
    x[picks] = np.array(specials, dtype=dtype)[rng.integers(0, len(specials), size=picks.size)]
    return x.reshape(shape)


def compare_relu_kernels_with_reference(seed=3):
    """The compiled kernels give the reference's values bit for bit (NaN where it has NaN), special values
    included, for every parameter set, both dtypes and sizes around the vector width and thread threshold."""
    rng = np.random.default_rng(seed)
    for params in RELU_PARAMS:
        for dtype in ("float32", "float64"):
            for shape in RELU_SHAPES:
                x = _special_values(rng, shape, dtype, params)
                grad_y = _special_values(rng, shape, dtype, {})
                relu = ops.get_activation("relu", **params)
                with compiled.use_compiled(False), np.errstate(invalid="ignore"):  # inf * 0
                    expected, expected_grad = relu.forward(x), relu.backward(grad_y, x, x)
                assert elementwise_fast.relu_applies(x) and elementwise_fast.relu_applies(grad_y, x)
                with compiled.use_compiled(True):
                    y, grad_x = relu.forward(x), relu.backward(grad_y, x, x)
                assert y.dtype == expected.dtype and grad_x.dtype == expected_grad.dtype
                np.testing.assert_array_equal(y, expected, err_msg=f"relu{params} {dtype} {shape}")
                np.testing.assert_array_equal(grad_x, expected_grad, err_msg=f"relu{params} grad {dtype} {shape}")


@pytest.mark.skipif(not compiled.available(), reason="numba is not installed")
def test_relu_kernels_equal_the_reference_with_special_values():
    compare_relu_kernels_with_reference()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_relu_edge_values(dtype, kernel_path):
    """x == threshold: negative side (output slope * 0, gradient `negative_slope`); x == max_value:
    output max_value, gradient 0; NaN: 0 with slope 0 (Keras' where), NaN with a slope; plain relu keeps NaN."""
    nan = np.nan
    x = np.array([1.0, 6.0, nan, -np.inf, 7.0, 0.5], dtype=dtype)
    ones = np.ones_like(x)
    relu6 = ops.get_activation("relu", max_value=6.0, threshold=1.0)
    np.testing.assert_array_equal(relu6.forward(x), [0.0, 6.0, 0.0, 0.0, 6.0, 0.0])
    np.testing.assert_array_equal(relu6.backward(ones, x, x), [0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    leaky = ops.get_activation("relu", negative_slope=0.5, max_value=6.0, threshold=1.0)
    np.testing.assert_array_equal(leaky.forward(x), [0.0, 6.0, nan, -np.inf, 6.0, -0.25])
    np.testing.assert_array_equal(leaky.backward(ones, x, x), [0.5, 0.0, 0.5, 0.5, 0.0, 0.5])
    relu = ops.get_activation("relu")
    np.testing.assert_array_equal(relu.forward(x), [1.0, 6.0, nan, 0.0, 7.0, 0.5])
    np.testing.assert_array_equal(relu.backward(ones, x, x), [1.0, 1.0, 0.0, 0.0, 1.0, 1.0])
    # a NaN gradient stays NaN where the slope is 0 (NaN * 0), as NumPy's product
    np.testing.assert_array_equal(relu6.backward(np.full_like(x, nan), x, x), np.full_like(x, nan))


def test_relu_strided_and_mixed_inputs_take_the_reference_path():
    """A non-contiguous view or a gradient of another dtype is not the kernels' and still gives the right values."""
    rng = np.random.default_rng(9)
    x = (rng.standard_normal((6, 8)) * 4).astype(np.float32)
    view = x[:, ::2]
    assert not elementwise_fast.relu_applies(view)
    assert not elementwise_fast.relu_applies(x.astype(np.float64), x)
    relu = ops.get_activation("relu", max_value=2.0)
    np.testing.assert_array_equal(relu.forward(view), np.minimum(np.maximum(view, 0), 2))
    grad = relu.backward(np.ones(view.shape), view, view)
    assert grad.dtype == np.float32
    np.testing.assert_array_equal(grad, ((view > 0) & (view < 2)).astype(np.float32))


@pytest.mark.skipif(not compiled.available(), reason="numba is not installed")
def test_relu_kernels_with_256_bit_vectors():
    """The same bitwise comparison in a child whose kernels are compiled for AVX2 (256-bit vectors)."""
    env = dict(__import__("os").environ, NUMBA_CPU_NAME="haswell", NUMBA_CPU_FEATURES=(
        "+64bit,+avx,+avx2,+bmi,+bmi2,+cmov,+cx16,+f16c,+fma,+fxsr,+lzcnt,+mmx,+movbe,+popcnt,+sse,+sse2,+sse3,"
        "+sse4.1,+sse4.2,+ssse3,+xsave"))
    proc = subprocess.run([sys.executable, __file__], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[-1] == "256"


if __name__ == "__main__":
    from convscope.ops import simd
    compare_relu_kernels_with_reference()
    print(simd.vector_bits())
