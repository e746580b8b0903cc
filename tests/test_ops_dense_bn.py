"""dense, batch norm, zero padding and dropout ops against PyTorch and finite differences."""

import numpy as np
import pytest

from _gradcheck import assert_gradients_close, numerical_gradient
from _oracle import TOLERANCE, assert_matches
from convscope import ops
from convscope.ops import compiled


# -- dense ----------------------------------------------------------------------------------
def dense_configs(count, seed=404):
    rng = np.random.default_rng(seed)
    return [dict(index=i, leading=tuple(int(d) for d in rng.integers(1, 5, size=int(rng.integers(1, 4)))),
                 units_in=int(rng.integers(1, 21)), units=int(rng.integers(1, 21)), bias=bool(rng.random() < 0.7),
                 dtype=str(rng.choice(["float32", "float64"])))
            for i in range(count)]


DENSE = dense_configs(40)


@pytest.mark.parametrize("config", DENSE, ids=lambda c: f"{c['index']}-{c['leading']}x{c['units_in']}"
                                                       f"->{c['units']}-bias{c['bias']}-{c['dtype']}")
def test_dense_matches_torch(config):
    torch = pytest.importorskip("torch")
    c = config
    rng = np.random.default_rng(c["index"])
    x = rng.standard_normal(c["leading"] + (c["units_in"],)).astype(c["dtype"])
    kernel = rng.standard_normal((c["units_in"], c["units"])).astype(c["dtype"])
    bias = rng.standard_normal(c["units"]).astype(c["dtype"]) if c["bias"] else None
    y = ops.dense_forward(x, kernel, bias)
    x_t, k_t = torch.tensor(x, requires_grad=True), torch.tensor(kernel, requires_grad=True)
    b_t = torch.tensor(bias, requires_grad=True) if c["bias"] else None
    expected = torch.nn.functional.linear(x_t, k_t.T, b_t)
    assert y.shape == c["leading"] + (c["units"],)
    assert_matches(y, expected.detach().numpy(), c["dtype"])
    grad_y = rng.standard_normal(y.shape).astype(c["dtype"])
    expected.backward(torch.tensor(grad_y))
    grad_x, grad_kernel, grad_bias = ops.dense_backward(grad_y, x, kernel)
    assert_matches(grad_x, x_t.grad.numpy(), c["dtype"])
    assert_matches(grad_kernel, k_t.grad.numpy(), c["dtype"])
    if c["bias"]:
        assert_matches(grad_bias, b_t.grad.numpy(), c["dtype"])
    assert ops.dense_backward(grad_y, x, kernel, need_input_grad=False)[0] is None


def test_seed_004_dense_on_the_last_axis():
    x, kernel, bias = np.zeros((64, 10, 20), np.float32), np.zeros((20, 30), np.float32), np.zeros(30, np.float32)
    out = ops.dense_forward(x, kernel, bias)
    assert out.shape == (64, 10, 30) and out.dtype == np.float32


def test_dense_gradients_match_finite_differences():
    rng = np.random.default_rng(1)
    x, kernel, bias = rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 5)), rng.standard_normal(5)
    weights = rng.standard_normal((2, 3, 5))

    def loss():
        return float(np.sum(ops.dense_forward(x, kernel, bias) * weights))

    grad_x, grad_kernel, grad_bias = ops.dense_backward(weights, x, kernel)
    assert_gradients_close(grad_x, numerical_gradient(loss, x))
    assert_gradients_close(grad_kernel, numerical_gradient(loss, kernel))
    assert_gradients_close(grad_bias, numerical_gradient(loss, bias))


@pytest.mark.parametrize("args, error, pattern", [
    ((np.zeros((2, 3)), np.zeros((4, 5))), ValueError,
     r"dense_forward: argument `kernel` must have 3 rows \(the last axis of x, shape \(2, 3\)\), "
     r"got kernel of shape \(4, 5\)"),
    ((np.zeros((2, 3)), np.zeros(3)), ValueError,
     r"dense_forward: argument `kernel` must be a rank-2 array, got rank 1"),
    ((np.zeros((2, 3)), np.zeros((3, 5)), np.zeros(4)), ValueError,
     r"dense_forward: argument `bias` must have shape \(5,\), got \(4,\)"),
    ((np.zeros(3, dtype=object), np.zeros((3, 5))), TypeError, r"dense_forward: argument `x` must be a numeric array"),
])
def test_dense_bad_arguments_are_named(args, error, pattern):
    with pytest.raises(error, match=pattern):
        ops.dense_forward(*args)


def test_dense_backward_rejects_a_gradient_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"dense_backward: argument `grad_y` must have the output's shape "
                                         r"\(2, 5\), got \(2, 4\)"):
        ops.dense_backward(np.zeros((2, 4)), np.zeros((2, 3)), np.zeros((3, 5)))


# -- batch normalization ------------------------------------------------------------------
def bn_configs(count, seed=505):
    rng = np.random.default_rng(seed)
    configs = []
    for index in range(count):
        layout = str(rng.choice(["NC", "NHWC", "NCHW", "NLC"]))
        n, c = int(rng.integers(2, 6)), int(rng.integers(1, 5))
        h, w = (int(d) for d in rng.integers(1, 5, size=2))
        shape, axis = {"NC": ((n, c), -1), "NHWC": ((n, h, w, c), -1), "NCHW": ((n, c, h, w), 1),
                       "NLC": ((n, h, c), 2)}[layout]
        configs.append(dict(index=index, layout=layout, shape=shape, axis=axis,
                            epsilon=float(rng.choice([1e-3, 1e-5])), affine=bool(rng.random() < 0.8),
                            dtype=str(rng.choice(["float32", "float64"]))))
    return configs


BN = bn_configs(50)


def _channels_to_dim1(array, axis):
    return np.moveaxis(array, axis, 1)


@pytest.mark.parametrize("config", BN, ids=lambda c: f"{c['index']}-{c['layout']}{c['shape']}-eps{c['epsilon']}"
                                                     f"-affine{c['affine']}-{c['dtype']}")
def test_batch_norm_matches_torch(config, kernel_path):
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    c = config
    rng = np.random.default_rng(c["index"])
    channels = c["shape"][c["axis"]]
    x = (rng.standard_normal(c["shape"]) * 3 + 1).astype(c["dtype"])
    gamma = rng.standard_normal(channels).astype(c["dtype"]) if c["affine"] else None
    beta = rng.standard_normal(channels).astype(c["dtype"]) if c["affine"] else None
    y, ctx, mean, var = ops.batch_norm_train(x, gamma, beta, c["axis"], c["epsilon"])

    x_t = torch.tensor(np.ascontiguousarray(_channels_to_dim1(x, c["axis"])), requires_grad=True)
    g_t = torch.tensor(gamma, requires_grad=True) if c["affine"] else None
    b_t = torch.tensor(beta, requires_grad=True) if c["affine"] else None
    expected = functional.batch_norm(x_t, None, None, g_t, b_t, training=True, eps=c["epsilon"])
    assert_matches(y, np.moveaxis(expected.detach().numpy(), 1, c["axis"]), c["dtype"])
    reduce_dims = [d for d in range(x.ndim) if d != 1]
    assert_matches(mean, x_t.mean(dim=reduce_dims).detach().numpy(), c["dtype"])
    assert_matches(var, x_t.var(dim=reduce_dims, unbiased=False).detach().numpy(), c["dtype"])

    grad_y = rng.standard_normal(y.shape).astype(c["dtype"])
    expected.backward(torch.tensor(np.ascontiguousarray(_channels_to_dim1(grad_y, c["axis"]))))
    grad_x, grad_gamma, grad_beta = ops.batch_norm_backward(grad_y, ctx)
    assert_matches(grad_x, np.moveaxis(x_t.grad.numpy(), 1, c["axis"]), c["dtype"])
    if c["affine"]:
        assert_matches(grad_gamma, g_t.grad.numpy(), c["dtype"])
        assert_matches(grad_beta, b_t.grad.numpy(), c["dtype"])
    else:
        assert grad_gamma is None and grad_beta is None

    moving_mean = rng.standard_normal(channels).astype(c["dtype"])
    moving_var = rng.uniform(0.5, 2.0, channels).astype(c["dtype"])
    y_infer = ops.batch_norm_infer(x, gamma, beta, moving_mean, moving_var, c["axis"], c["epsilon"])
    x_t.grad = None
    expected = functional.batch_norm(x_t, torch.tensor(moving_mean), torch.tensor(moving_var), g_t, b_t,
                                     training=False, eps=c["epsilon"])
    assert_matches(y_infer, np.moveaxis(expected.detach().numpy(), 1, c["axis"]), c["dtype"])
    expected.backward(torch.tensor(np.ascontiguousarray(_channels_to_dim1(grad_y, c["axis"]))))
    grad_infer = ops.batch_norm_infer_backward(grad_y, gamma, moving_var, c["axis"], c["epsilon"])
    assert_matches(grad_infer, np.moveaxis(x_t.grad.numpy(), 1, c["axis"]), c["dtype"])


@pytest.mark.parametrize("shape, axis", [((4, 3), -1), ((2, 3, 2, 2), 1), ((3, 2, 2, 2), -1)])
def test_batch_norm_gradients_match_finite_differences(shape, axis, kernel_path):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape)
    channels = shape[axis]
    gamma, beta = rng.standard_normal(channels), rng.standard_normal(channels)
    weights = rng.standard_normal(shape)

    def loss():
        return float(np.sum(ops.batch_norm_train(x, gamma, beta, axis, 1e-3)[0] * weights))

    _, ctx, _, _ = ops.batch_norm_train(x, gamma, beta, axis, 1e-3)
    grad_x, grad_gamma, grad_beta = ops.batch_norm_backward(weights, ctx)
    assert_gradients_close(grad_x, numerical_gradient(loss, x), rtol=1e-5, atol=1e-7)
    assert_gradients_close(grad_gamma, numerical_gradient(loss, gamma))
    assert_gradients_close(grad_beta, numerical_gradient(loss, beta))

    mean, var = rng.standard_normal(channels), rng.uniform(0.5, 2, channels)

    def infer_loss():
        return float(np.sum(ops.batch_norm_infer(x, gamma, beta, mean, var, axis, 1e-3) * weights))

    assert_gradients_close(ops.batch_norm_infer_backward(weights, gamma, var, axis, 1e-3),
                           numerical_gradient(infer_loss, x))


@pytest.mark.parametrize("call, error, pattern", [
    (lambda: ops.batch_norm_train(np.zeros((2, 3)), np.ones(4), np.zeros(3), -1, 1e-3), ValueError,
     r"batch_norm_train: argument `gamma` must have shape \(3,\) \(the size of axis 1 of x, "
     r"shape \(2, 3\)\), got \(4,\)"),
    (lambda: ops.batch_norm_train(np.zeros((2, 3)), None, None, 2, 1e-3), ValueError,
     r"batch_norm_train: argument `axis` must be in \[-2, 1\] for x of shape \(2, 3\), got 2"),
    (lambda: ops.batch_norm_train(np.zeros((2, 3)), None, None, 1.0, 1e-3), TypeError,
     r"batch_norm_train: argument `axis` must be an int, got 1.0"),
    (lambda: ops.batch_norm_infer(np.zeros((2, 3)), None, None, np.zeros(3), np.ones(3), -1, 0.0), ValueError,
     r"batch_norm_infer: argument `epsilon` must be a positive float, got 0.0"),
    (lambda: ops.batch_norm_infer(np.zeros((2, 3)), None, None, np.zeros(2), np.ones(3), -1, 1e-3), ValueError,
     r"batch_norm_infer: argument `mean` must have shape \(3,\)"),
])
def test_batch_norm_bad_arguments_are_named(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def _batch_norm_all(x, axis, gamma=None, beta=None, grad_y=None):
    """Every output of the four batch-norm ops on x (float64 statistics for the inference ones)."""
    channels = x.shape[axis]
    grad_y = np.cos(np.arange(x.size)).reshape(x.shape).astype(x.dtype) if grad_y is None else grad_y
    y, ctx, mean, var = ops.batch_norm_train(x, gamma, beta, axis, 1e-3)
    moving_mean, moving_var = np.linspace(-1, 1, channels), np.linspace(0.5, 2, channels)
    return (y, mean, var, *ops.batch_norm_backward(grad_y, ctx),
            ops.batch_norm_infer(x, gamma, beta, moving_mean, moving_var, axis, 1e-3),
            ops.batch_norm_infer_backward(grad_y, gamma, moving_var, axis, 1e-3))


@pytest.mark.skipif(not compiled.available(), reason="numba is not installed")
@pytest.mark.parametrize("case", [
    "channel axis 0", "channel axis in the middle", "transposed view", "rank 1", "one sample", "one row per channel",
    "float16", "int64", "dense outputs", "empty batch"])
def test_batch_norm_compiled_kernels_match_numpy(case):
    """The compiled path gives the NumPy path's values and dtypes on inputs off the NHWC road."""
    rng = np.random.default_rng(8)
    x = (rng.standard_normal((5, 4, 3)) * 2 + 1).astype(np.float32)
    x, axis = {"channel axis 0": (x, 0), "channel axis in the middle": (x.astype(np.float64), 1),
               "transposed view": (x.transpose(2, 0, 1), 1), "rank 1": (x[0, 0], 0),
               "one sample": (x[:1], -1), "one row per channel": (x[:, :, 0].T.copy(), 0),
               "float16": (x.astype(np.float16), -1), "int64": ((x * 10).astype(np.int64), -1),
               "dense outputs": (x.reshape(20, 3), -1), "empty batch": (x[:0], -1)}[case]
    channels = x.shape[axis]
    gamma, beta = np.linspace(0.5, 2, channels), np.linspace(-1, 1, channels)
    with compiled.use_compiled(False):
        expected = _batch_norm_all(x, axis, gamma, beta)
    with compiled.use_compiled(True):
        results = _batch_norm_all(x, axis, gamma, beta)
    for ours, reference in zip(results, expected):
        assert ours.dtype == reference.dtype and ours.shape == reference.shape
        tolerance = {np.float16: 1e-3, np.float32: 1e-5}.get(ours.dtype.type, 1e-10)
        np.testing.assert_allclose(ours, reference, rtol=tolerance, atol=tolerance)


@pytest.mark.skipif(not compiled.available(), reason="numba is not installed")
@pytest.mark.parametrize("forward_compiled", [True, False])
def test_batch_norm_backward_takes_the_other_paths_context(forward_compiled):
    """A forward pass on one path and the backward pass on the other (the switch flipped in between)."""
    rng = np.random.default_rng(9)
    x, grad_y = rng.standard_normal((6, 3, 2, 4)), rng.standard_normal((6, 3, 2, 4))
    gamma, beta = rng.standard_normal(4), rng.standard_normal(4)
    with compiled.use_compiled(forward_compiled):
        ctx = ops.batch_norm_train(x, gamma, beta, -1, 1e-3)[1]
    with compiled.use_compiled(not forward_compiled):
        crossed = ops.batch_norm_backward(grad_y, ctx)
    with compiled.use_compiled(forward_compiled):
        same = ops.batch_norm_backward(grad_y, ctx)
    for ours, reference in zip(crossed, same):
        np.testing.assert_allclose(ours, reference, rtol=1e-10, atol=1e-12)


@pytest.mark.skipif(not compiled.available(), reason="numba is not installed")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_batch_norm_kernels_variance_survives_a_large_mean(dtype):
    """Mean 10^4, standard deviation 1: a one-pass E[x^2] - E[x]^2 would lose the variance's digits.

    (The NumPy path's float32 sums lose some of them to the float32 mean: not tested here.)
    """
    rng = np.random.default_rng(10)
    x = (rng.standard_normal((64, 5, 5, 3)) + 1e4).astype(dtype)
    with compiled.use_compiled(True):
        _, _, mean, var = ops.batch_norm_train(x, None, None, -1, 1e-3)
    exact = x.astype(np.float64)
    assert_matches(mean, exact.mean(axis=(0, 1, 2)), dtype)
    np.testing.assert_allclose(var, exact.var(axis=(0, 1, 2)), rtol=TOLERANCE[dtype])


# -- zero padding -------------------------------------------------------------------------
@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
def test_zero_pad2d_and_its_gradient(data_format):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    padding = ((1, 2), (0, 3))
    out = ops.zero_pad2d(x, padding, data_format)
    expected = np.pad(x, [(0, 0), (1, 2), (0, 3), (0, 0)] if data_format == "NHWC" else
                      [(0, 0), (0, 0), (1, 2), (0, 3)])
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == np.float32
    grad = rng.standard_normal(out.shape)
    x64 = x.astype(np.float64)

    def loss():
        return float(np.sum(ops.zero_pad2d(x64, padding, data_format) * grad))

    assert_gradients_close(ops.zero_pad2d_backward(grad, padding, data_format), numerical_gradient(loss, x64))


@pytest.mark.parametrize("padding, error, pattern", [
    ((1, 2), TypeError, r"zero_pad2d: argument `padding` must be \(\(top, bottom\), \(left, right\)\), got \(1, 2\)"),
    (((1, -1), (0, 0)), ValueError, r"zero_pad2d: argument `padding` must be non-negative"),
    (((1, 1.5), (0, 0)), TypeError, r"zero_pad2d: argument `padding` must contain ints"),
])
def test_zero_pad2d_bad_padding_is_named(padding, error, pattern):
    with pytest.raises(error, match=pattern):
        ops.zero_pad2d(np.zeros((1, 2, 2, 1)), padding)


# -- dropout --------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_is_inverted_and_its_gradient_is_the_mask(kernel_path, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 50)).astype(dtype)
    y, mask = ops.dropout_forward(x, 0.4, rng=rng)
    assert y.dtype == mask.dtype == dtype and y.shape == mask.shape == x.shape
    kept = mask != 0
    np.testing.assert_array_equal(mask[kept], dtype(1 / 0.6))
    np.testing.assert_array_equal(y, x * mask)
    assert abs(kept.mean() - 0.6) < 0.02
    grad = rng.standard_normal(x.shape).astype(dtype)
    np.testing.assert_array_equal(ops.dropout_backward(grad, mask), grad * mask)


@pytest.mark.parametrize("rate", [0.1, 0.25, 0.5, 0.8])
def test_dropout_drops_each_unit_with_probability_rate(kernel_path, rate):
    n = 1_000_000
    _, mask = ops.dropout_forward(np.ones(n, np.float32), rate, rng=np.random.default_rng(11))
    dropped = np.count_nonzero(mask == 0)
    assert abs(dropped / n - rate) < 5 * np.sqrt(rate * (1 - rate) / n)      # 5 standard deviations
    assert set(np.unique(mask)) == {np.float32(0), np.float32(1 / (1 - rate))}


@pytest.mark.parametrize("shape", [(4, 7, 7, 64), (3, 5, 7), (1,), (2,)])    # odd sizes: the last unit alone
def test_dropout_masks_are_the_same_on_both_paths_and_dtypes(shape):
    if not compiled.available():
        pytest.skip("numba is not installed")
    x = np.random.default_rng(2).standard_normal(shape)
    results = {}
    for flag in (False, True):
        for dtype in (np.float32, np.float64):
            with compiled.use_compiled(flag):
                results[flag, dtype] = ops.dropout_forward(x.astype(dtype), 0.3, rng=np.random.default_rng(5))
    for dtype in (np.float32, np.float64):
        for reference, fused in zip(results[False, dtype], results[True, dtype]):
            assert fused.dtype == dtype
            np.testing.assert_array_equal(fused, reference)
    np.testing.assert_array_equal(results[True, np.float32][1] == 0, results[True, np.float64][1] == 0)


def test_dropout_takes_strided_and_integer_inputs(kernel_path):
    x = np.random.default_rng(3).standard_normal((30, 40)).astype(np.float32).T     # not contiguous
    y, mask = ops.dropout_forward(x, 0.5, rng=np.random.default_rng(4))
    np.testing.assert_array_equal(y, x * mask)
    y, mask = ops.dropout_forward(np.arange(12).reshape(3, 4), 0.5, rng=np.random.default_rng(4))
    assert y.dtype == mask.dtype == np.float64
    np.testing.assert_array_equal(y, np.arange(12).reshape(3, 4) * mask)


def test_dropout_gradient_matches_finite_differences(kernel_path):
    rng = np.random.default_rng(6)
    x, weights = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))

    def loss():  # the same generator seed each call, hence the same mask
        return float(np.sum(ops.dropout_forward(x, 0.3, rng=np.random.default_rng(9))[0] * weights))

    _, mask = ops.dropout_forward(x, 0.3, rng=np.random.default_rng(9))
    assert_gradients_close(ops.dropout_backward(weights, mask), numerical_gradient(loss, x))


def test_dropout_noise_shape_shares_the_mask(kernel_path):
    x = np.ones((4, 3, 3, 8))
    y, mask = ops.dropout_forward(x, 0.5, noise_shape=(None, 1, 1, None), rng=np.random.default_rng(1))
    assert mask.shape == (4, 1, 1, 8)
    assert np.all(y == y[:, :1, :1, :])


def test_dropout_follows_the_library_seed(kernel_path):
    from convscope import _rng
    _rng.set_seed(3)
    first = ops.dropout_forward(np.ones(100), 0.5)[1]
    _rng.set_seed(3)
    np.testing.assert_array_equal(ops.dropout_forward(np.ones(100), 0.5)[1], first)


@pytest.mark.parametrize("kwargs, error, pattern", [
    (dict(rate=1.5), ValueError, r"dropout_forward: argument `rate` must be in \[0, 1\], got 1.5"),
    (dict(rate="0.5"), TypeError, r"dropout_forward: argument `rate` must be a float in \[0, 1\], got '0.5'"),
    (dict(rate=0.5, noise_shape=(2, 3)), ValueError, r"dropout_forward: argument `noise_shape` must have 3 entries"),
    (dict(rate=0.5, noise_shape=(2, 2, 1)), ValueError,
     r"dropout_forward: argument `noise_shape` entries must be 1 or the size of x's axis"),
])
def test_dropout_bad_arguments_are_named(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        ops.dropout_forward(np.ones((2, 3, 4)), **kwargs)


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
@pytest.mark.parametrize("affine", ["gamma and beta", "gamma only", "beta only"])
def test_batch_norm_in_blocks_matches_torch(layout, affine, monkeypatch, kernel_path):
    """Work runs over blocks of the batch axis shared among threads; a tiny block size gives many blocks."""
    torch = pytest.importorskip("torch")
    from convscope.ops import normalization
    monkeypatch.setattr(normalization, "BLOCK_BYTES", 100)
    rng = np.random.default_rng(21)
    shape, axis = ((6, 4, 3, 5), -1) if layout == "NHWC" else ((6, 5, 4, 3), 1)
    x = (rng.standard_normal(shape) * 2 + 3).astype(np.float32)
    gamma = rng.standard_normal(5).astype(np.float32) if affine != "beta only" else None
    beta = rng.standard_normal(5).astype(np.float32) if affine != "gamma only" else None
    y, ctx, mean, var = ops.batch_norm_train(x, gamma, beta, axis, 1e-3)
    x_t = torch.tensor(np.ascontiguousarray(np.moveaxis(x, axis, 1)), requires_grad=True)
    g_t = torch.tensor(gamma if gamma is not None else np.ones(5, np.float32), requires_grad=True)
    b_t = torch.tensor(beta if beta is not None else np.zeros(5, np.float32), requires_grad=True)
    expected = torch.nn.functional.batch_norm(x_t, None, None, g_t, b_t, training=True, eps=1e-3)
    assert_matches(y, np.moveaxis(expected.detach().numpy(), 1, axis), "float32")
    grad_y = rng.standard_normal(shape).astype(np.float32)
    expected.backward(torch.tensor(np.ascontiguousarray(np.moveaxis(grad_y, axis, 1))))
    grad_x, grad_gamma, grad_beta = ops.batch_norm_backward(grad_y, ctx)
    assert grad_x.dtype == np.float32
    assert_matches(grad_x, np.moveaxis(x_t.grad.numpy(), 1, axis), "float32")
    assert (grad_gamma is None) == (gamma is None) and (grad_beta is None) == (beta is None)
    if gamma is not None:
        assert_matches(grad_gamma, g_t.grad.numpy(), "float32")
    if beta is not None:
        assert_matches(grad_beta, b_t.grad.numpy(), "float32")
    moving_mean, moving_var = rng.standard_normal(5).astype(np.float32), rng.uniform(0.5, 2, 5).astype(np.float32)
    y_infer = ops.batch_norm_infer(x, gamma, beta, moving_mean, moving_var, axis, 1e-3)
    expected = torch.nn.functional.batch_norm(x_t, torch.tensor(moving_mean), torch.tensor(moving_var), g_t, b_t,
                                              training=False, eps=1e-3)
    assert y_infer.dtype == np.float32
    assert_matches(y_infer, np.moveaxis(expected.detach().numpy(), 1, axis), "float32")


def test_dropout_bits_are_the_splitmix64_sequence_of_one_key_drawn_per_call(kernel_path):
    """Pure-Python SplitMix64 (Steele, Lea and Flood, 2014) as the oracle of the counter-based bits."""
    key = int(np.random.default_rng(8).bit_generator.random_raw())
    words = []
    for counter in range(1, 4):
        z = (key + counter * 0x9E3779B97F4A7C15) % 2 ** 64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % 2 ** 64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % 2 ** 64
        z ^= z >> 31
        words += [z & 0xFFFFFFFF, z >> 32]
    rate = 0.5
    _, mask = ops.dropout_forward(np.ones(5, np.float32), rate, rng=np.random.default_rng(8))
    expected = [np.float32(2.0) if word >= 2 ** 31 else np.float32(0.0) for word in words[:5]]
    np.testing.assert_array_equal(mask, expected)
