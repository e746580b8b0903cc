"""Training-mode element-wise ops: ReLU with Keras' parameters (compiled one-pass kernels,
`ops/elementwise_fast.py`) and batch normalization's compiled paths, against PyTorch, float64
finite differences and the NumPy reference.

Run as a script (`python tests/test_elementwise_train.py`) it compares the compiled kernels with the
reference and prints the SIMD width: the AVX2 test runs it in a child compiled for 256-bit vectors.
"""

import functools
import os
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
                arguments = (params.get("negative_slope", 0.0), params.get("max_value"), params.get("threshold", 0.0))
                y, grad_x = elementwise_fast.relu_forward(x, *arguments), elementwise_fast.relu_backward(grad_y, x, *arguments)
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


@pytest.mark.skipif(not compiled.available(), reason="numba is not installed")
def test_relu_path_choice():
    """The kernels take contiguous float arrays (a plain relu from PLAIN_MIN_ELEMENTS on, where its call
    costs less than np.maximum's), and nothing with the compiled path switched off."""
    small, large = np.ones(elementwise_fast.PLAIN_MIN_ELEMENTS - 1, np.float32), np.ones((4, 2048), np.float64)
    plain, relu6 = (0.0, None, 0.0), (0.0, 6.0, 0.0)
    assert not elementwise_fast.relu_applies(plain, small) and elementwise_fast.relu_applies(relu6, small)
    assert elementwise_fast.relu_applies(plain, large) and elementwise_fast.relu_applies(plain, large, large)
    assert not elementwise_fast.relu_applies(relu6, small[:0]) and not elementwise_fast.relu_applies(relu6, small.astype(int))
    with compiled.use_compiled(False):
        assert not elementwise_fast.relu_applies(relu6, large)


def test_relu_strided_and_mixed_inputs_take_the_reference_path():
    """A non-contiguous view or a gradient of another dtype is not the kernels' and still gives the right values."""
    rng = np.random.default_rng(9)
    x = (rng.standard_normal((6, 8)) * 4).astype(np.float32)
    view = x[:, ::2]
    params = (0.0, 2.0, 0.0)
    assert not elementwise_fast.relu_applies(params, view)
    assert not elementwise_fast.relu_applies(params, x.astype(np.float64), x)
    relu = ops.get_activation("relu", max_value=2.0)
    np.testing.assert_array_equal(relu.forward(view), np.minimum(np.maximum(view, 0), 2))
    grad = relu.backward(np.ones(view.shape), view, view)
    assert grad.dtype == np.float32
    np.testing.assert_array_equal(grad, ((view > 0) & (view < 2)).astype(np.float32))


# -- batch normalization (training) --------------------------------------------------------------------
def bn_train_configs(count, seed=2002):
    """NHWC shapes with 1 to 100 channels (row counts with few and many divisors: the kernels' row
    grouping), some NCHW (axis 1), means near 0 or 1000, float32 and float64."""
    rng = np.random.default_rng(seed)
    configs = []
    for index in range(count):
        channels = int(rng.integers(1, 101)) if index % 4 else int(rng.choice([1, 3, 16, 17]))
        batch, height, width = (int(v) for v in rng.integers(1, 9, size=3))
        nchw = index % 5 == 4
        configs.append(dict(index=index, shape=(batch, channels, height, width) if nchw else (batch, height, width, channels),
                            axis=1 if nchw else -1, offset=float(rng.choice([0.0, 1000.0])),
                            affine=bool(index % 6), dtype=str(rng.choice(["float32", "float64"]))))
    return configs


def _bn_tolerance(dtype):
    return 1e-5 if dtype == "float32" else 1e-10


def _assert_close(ours, expected, dtype, tolerance=None):
    """Agreement to 1e-5 (float32) / 1e-10 (float64), or `tolerance`, relative to the values' scale."""
    tolerance = _bn_tolerance(dtype) if tolerance is None else tolerance
    assert ours.dtype == np.dtype(dtype) and ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, rtol=tolerance,
                               atol=tolerance * max(1.0, float(np.abs(expected).max(initial=0.0))))


def _bn_inputs(config):
    rng = np.random.default_rng(config["index"])
    channels = config["shape"][config["axis"]]
    x = (rng.standard_normal(config["shape"]) * rng.uniform(0.1, 3, channels).reshape(
        [-1 if d == config["axis"] % 4 else 1 for d in range(4)]) + config["offset"]).astype(config["dtype"])
    gamma = rng.standard_normal(channels).astype(config["dtype"]) if config["affine"] else None
    beta = rng.standard_normal(channels).astype(config["dtype"]) if config["affine"] else None
    return x, gamma, beta, rng.standard_normal(x.shape).astype(config["dtype"])


@pytest.mark.parametrize("config", bn_train_configs(40),
                         ids=lambda c: f"{c['index']}-{c['shape']}-axis{c['axis']}+{c['offset']:g}-{c['dtype']}")
def test_batch_norm_training_matches_torch(config, kernel_path):
    """Forward (y, batch mean and variance) and backward (x, gamma, beta) against torch's batch_norm +
    autograd, computed in float64 from the same values; the large-mean inputs need a stable variance."""
    torch = pytest.importorskip("torch")
    # The NumPy reference sums float32 in float32: at a mean of 1000 it cannot reach 1e-5 (its worst error over
    # these configurations, measured: 1.7e-3, the gamma gradient), so it is held to 5e-3 there; the compiled
    # kernels to 1e-5 everywhere.
    loose = kernel_path == "numpy" and config["offset"] and config["dtype"] == "float32"
    close = functools.partial(_assert_close, tolerance=5e-3 if loose else None)
    x, gamma, beta, grad_y = _bn_inputs(config)
    axis = config["axis"]
    y, ctx, mean, var = ops.batch_norm_train(x, gamma, beta, axis, 1e-3)
    grad_x, grad_gamma, grad_beta = ops.batch_norm_backward(grad_y, ctx)

    to_torch = lambda a: torch.tensor(np.moveaxis(a, axis, 1).astype(np.float64), requires_grad=True)
    x_t = to_torch(x)
    g_t, b_t = (None, None) if gamma is None else (torch.tensor(gamma.astype(np.float64), requires_grad=True),
                                                   torch.tensor(beta.astype(np.float64), requires_grad=True))
    expected = torch.nn.functional.batch_norm(x_t, None, None, g_t, b_t, training=True, eps=1e-3)
    expected.backward(torch.tensor(np.moveaxis(grad_y, axis, 1).astype(np.float64)))
    from_torch = lambda t: np.moveaxis(t.detach().numpy(), 1, axis)
    dims = [0, 2, 3]
    close(y, from_torch(expected), config["dtype"])
    close(mean, x_t.mean(dim=dims).detach().numpy(), config["dtype"])
    close(var, x_t.var(dim=dims, unbiased=False).detach().numpy(), config["dtype"])
    close(grad_x, from_torch(x_t.grad), config["dtype"])
    if gamma is None:
        assert grad_gamma is None and grad_beta is None
    else:
        close(grad_gamma, g_t.grad.numpy(), config["dtype"])
        close(grad_beta, b_t.grad.numpy(), config["dtype"])


@pytest.mark.skipif(not compiled.available(), reason="numba is not installed")
@pytest.mark.parametrize("config", [c for c in bn_train_configs(40) if not (c["offset"] and c["dtype"] == "float32")],
                         ids=lambda c: f"{c['index']}-{c['shape']}-axis{c['axis']}+{c['offset']:g}-{c['dtype']}")
def test_batch_norm_training_kernels_match_the_reference(config):
    """The compiled path and the NumPy reference give the same outputs and gradients (to rounding)."""
    compare_batch_norm_paths(config)


def compare_batch_norm_paths(config):
    x, gamma, beta, grad_y = _bn_inputs(config)
    results = {}
    for flag in (False, True):
        with compiled.use_compiled(flag):
            y, ctx, mean, var = ops.batch_norm_train(x, gamma, beta, config["axis"], 1e-3)
            results[flag] = (y, mean, var, *ops.batch_norm_backward(grad_y, ctx))
    for ours, expected in zip(results[True], results[False]):
        if expected is None:
            assert ours is None
        else:
            _assert_close(ours, expected, config["dtype"])


@pytest.mark.skipif(not compiled.available(), reason="numba is not installed")
@pytest.mark.parametrize("shape, axis, groups", [((7, 5, 3, 1), -1, 35), ((128, 4, 4, 16), -1, 4), ((3, 5, 5, 16), -1, 3),
                                                 ((6, 2, 3, 3), 1, 3), ((2, 4, 4, 64), -1, 1), ((13, 1, 1, 7), -1, 1)])
def test_batch_norm_kernels_group_short_rows(shape, axis, groups):
    """Rows of fewer than MIN_COLUMNS values go to the kernels several at a time (the most that divide the row
    count), and the per-channel results are those of one row at a time."""
    x = np.random.default_rng(4).standard_normal(shape)
    x += 3.0 * np.arange(shape[axis]).reshape([-1 if d == axis % 4 else 1 for d in range(4)])  # channels apart
    rows, layout = normalization._as_rows(x, axis % 4)
    assert layout[0] == groups and rows.shape[1] == groups * x.shape[axis] * layout[2]
    _, ctx, mean, var = ops.batch_norm_train(x, None, None, axis, 1e-3)
    reduce = tuple(d for d in range(4) if d != axis % 4)
    np.testing.assert_allclose(mean, x.mean(axis=reduce), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(var, x.var(axis=reduce), rtol=1e-12, atol=1e-12)


def test_batch_norm_float64_gradient_matches_finite_differences(kernel_path):
    """A grouped layout (one channel) and an ungrouped one against central differences in float64."""
    rng = np.random.default_rng(11)
    for shape in [(4, 3, 2, 1), (2, 3, 1, 70)]:
        x = rng.standard_normal(shape) + 5
        gamma, beta, weights = rng.standard_normal(shape[-1]), rng.standard_normal(shape[-1]), rng.standard_normal(shape)
        loss = lambda: float(np.sum(ops.batch_norm_train(x, gamma, beta, -1, 1e-3)[0] * weights))
        _, ctx, _, _ = ops.batch_norm_train(x, gamma, beta, -1, 1e-3)
        grad_x = ops.batch_norm_backward(weights, ctx)[0]
        numerical = np.empty_like(x)
        for index in np.ndindex(shape):
            saved = x[index]
            x[index] = saved + 1e-6
            plus = loss()
            x[index] = saved - 1e-6
            minus = loss()
            x[index] = saved
            numerical[index] = (plus - minus) / 2e-6
        np.testing.assert_allclose(grad_x, numerical, rtol=1e-5, atol=1e-6)


def test_batch_norm_paths_are_one_ordered_list():
    """The compiled path first, the reference last and always applicable."""
    assert [path[0] for path in normalization._PATHS] == ["compiled", "reference"]
    assert normalization._PATHS[-1][1](np.zeros(0, np.float16))
    with compiled.use_compiled(False):
        assert normalization._path(np.ones((2, 3), np.float32))[0] == "reference"
    assert normalization._path(np.ones((2, 3), np.float16))[0] == "reference"


@pytest.mark.skipif(not compiled.available(), reason="numba is not installed")
def test_kernels_with_256_bit_vectors():
    """The ReLU kernels' bitwise comparison and batch norm's comparison with the reference in a child whose
    kernels are compiled for AVX2 (256-bit vectors)."""
    env = dict(os.environ, NUMBA_CPU_NAME="haswell", NUMBA_CPU_FEATURES=(
        "+64bit,+avx,+avx2,+bmi,+bmi2,+cmov,+cx16,+f16c,+fma,+fxsr,+lzcnt,+mmx,+movbe,+popcnt,+sse,+sse2,+sse3,"
        "+sse4.1,+sse4.2,+ssse3,+xsave"))
    proc = subprocess.run([sys.executable, __file__], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[-1] == "256"


if __name__ == "__main__":
    from convscope.ops import simd
    compare_relu_kernels_with_reference()
    for bn_config in bn_train_configs(40):
        if not (bn_config["offset"] and bn_config["dtype"] == "float32"):
            compare_batch_norm_paths(bn_config)
    print(simd.vector_bits())


def test_the_gradients_sum_is_numpys_to_the_bit():
    """`elementwise_fast.add` (a graph tensor read twice: its gradients summed) against NumPy's +."""
    from convscope.ops import elementwise_fast
    rng = np.random.default_rng(8)
    for shape, dtype in (((64, 32, 32, 16), np.float32), ((300, 1000), np.float64), ((3, 4), np.float32)):
        a, b = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
        a.reshape(-1)[5] = np.nan
        got = elementwise_fast.add(a, b)
        assert got is not a and got is not b and got.dtype == dtype
        np.testing.assert_array_equal(got, a + b)
    mixed = elementwise_fast.add(np.ones((512, 512), np.float32), np.ones((512, 512), np.float64))
    assert mixed.dtype == np.float64 and (mixed == 2).all()            # NumPy's promotion where they differ
