"""ops.conv2d_inference (a convolution with its epilogue, an inference batch norm and a pooling, block
by block) against the same ops run one after another, PyTorch and float64; ops.batch_norm_affine; the
epilogue's affine map and second ReLU.  On the NumPy and the compiled path."""

import numpy as np
import pytest

from _oracle import assert_matches
from _spies import spy_bound_calls
from convscope import ops
from convscope.ops import direct, winograd

pytestmark = pytest.mark.usefixtures("kernel_path")

POOLS = [None, ("max", 2, 2, "SAME"), ("avg", 3, 2, "SAME"), ("max", 3, 1, "VALID"), ("avg", 2, 2, "VALID")]
CONVS = [  # (input shape, filters shape, strides, padding, dilations, groups)
    ((6, 11, 11, 1), (3, 3, 1, 7), 1, "SAME", 1, 1),         # one input channel: offset-major columns
    ((8, 12, 12, 16), (3, 3, 16, 9), 1, "SAME", 1, 1),       # Winograd on the compiled path (>= 8 images)
    ((4, 13, 10, 3), (5, 5, 3, 6), 2, "VALID", 1, 1),
    ((3, 12, 12, 4), (3, 3, 2, 6), 1, "SAME", 2, 2),         # dilated, grouped
]


def _parameters(rng, channels, dtype):
    bias = rng.standard_normal(channels).astype(dtype)
    gamma, beta, mean = (rng.standard_normal(channels).astype(dtype) for _ in range(3))
    var = (rng.random(channels) + 0.2).astype(dtype)
    return bias, (gamma, beta, mean, var)


def _one_after_another(x, filters, conv, bias, activation, norm, then, pool):
    y = ops.conv2d(x, filters, conv[0], conv[1], dilations=conv[2], groups=conv[3], bias=bias,
                   activation=activation)
    if norm is not None:
        y = ops.batch_norm_infer(y, *norm, 3, 1e-3)
    if then == "relu":
        y = np.maximum(y, 0)
    if pool is not None:
        y = (ops.max_pool2d if pool[0] == "max" else ops.avg_pool2d)(y, *pool[1:])
    return y


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("pool", POOLS)
@pytest.mark.parametrize("case", CONVS)
@pytest.mark.parametrize("activation,with_norm,then", [("relu", True, "linear"), ("linear", True, "relu"),
                                                       ("linear", False, "linear"), ("relu", False, "relu")])
def test_same_numbers_as_the_ops_one_after_another(case, pool, activation, with_norm, then, dtype, monkeypatch):
    """Where the pooling ran in the direct kernel's tiles (preferred to Winograd), the reference's
    convolution runs on the direct kernel too."""
    shape, filter_shape, *conv = case
    rng = np.random.default_rng(sum(shape) + len(str(pool)))
    x = rng.standard_normal(shape).astype(dtype)
    filters = (rng.standard_normal(filter_shape) / np.sqrt(np.prod(filter_shape[:3]))).astype(dtype)
    bias, norm = _parameters(rng, filter_shape[3], dtype)
    norm = norm if with_norm else None
    scale, shift = ops.batch_norm_affine(*norm, 1e-3, dtype) if with_norm else (None, None)
    in_tiles = spy_bound_calls(monkeypatch, direct, "pooled_tiles", lambda args: 1)
    fused = ops.conv2d_inference(x, filters, *conv, bias=bias, activation=activation, scale=scale, shift=shift,
                                 then=then, pool=pool)
    if in_tiles:
        monkeypatch.setattr(winograd, "applies", lambda *args: False)
    expected = _one_after_another(x, filters, conv, bias, activation, norm, then, pool)
    assert fused.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(fused, expected)       # the same operations in the same order


@pytest.mark.parametrize("vector_bits", [512, 256])
@pytest.mark.parametrize("shape,filter_shape", [
    ((1, 7, 7, 50), (3, 3, 50, 25)),      # seed 001's third layer at batch 1: 7x7 -> 4x4
    ((3, 9, 12, 3), (3, 3, 3, 16)),       # cut rows only
    ((2, 12, 5, 8), (3, 3, 8, 40)),       # cut columns only, two tiles of filters
    ((9, 5, 5, 4), (3, 3, 4, 7)),         # whole images claimed, 3 x 3 windows
])
def test_a_same_max_pooling_cut_by_the_edge_pools_in_the_tiles(shape, filter_shape, vector_bits, kernel_path,
                                                               monkeypatch):
    """A "same" 2x2 max pooling of an odd-sized output runs in the direct kernel's tiles (of 2 rows x 4 pixels, or
    2 x 2 with AVX2's 16-filter tiles), each window the edge cuts reading its one row or column twice, on two
    threads (under 4 images, bands of pooled rows): the numbers of the ops one after another, and PyTorch's (a
    ceil-mode pooling keeps the same windows)."""
    monkeypatch.setattr(direct, "VECTOR_BITS", vector_bits)
    monkeypatch.setattr(direct, "SMALL_WORK", 0)
    rng = np.random.default_rng(sum(shape) + filter_shape[3])
    x = rng.standard_normal(shape).astype(np.float32)
    filters = (rng.standard_normal(filter_shape) / np.sqrt(np.prod(filter_shape[:3]))).astype(np.float32)
    bias, norm = _parameters(rng, filter_shape[3], np.float32)
    scale, shift = ops.batch_norm_affine(*norm, 1e-3)
    pool = ("max", 2, 2, "SAME")
    in_tiles = spy_bound_calls(monkeypatch, direct, "pooled_tiles", lambda args: args[-1])
    fused = ops.conv2d_inference(x, filters, 1, "SAME", bias=bias, activation="relu", scale=scale, shift=shift,
                                 pool=pool)
    cut = tuple(bool(size % 2) for size in shape[1:3])
    assert set(in_tiles) == ({cut} if kernel_path == "compiled" else set())
    monkeypatch.setattr(winograd, "applies", lambda *args: False)
    expected = _one_after_another(x, filters, (1, "SAME", 1, 1), bias, "relu", norm, "linear", pool)
    assert fused.shape == expected.shape == (shape[0], -(-shape[1] // 2), -(-shape[2] // 2), filter_shape[3])
    np.testing.assert_array_equal(fused, expected)
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    t = functional.conv2d(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()),
                          torch.from_numpy(filters.transpose(3, 2, 0, 1).copy()), torch.from_numpy(bias), padding=1)
    t = functional.batch_norm(functional.relu(t), *(torch.from_numpy(v) for v in (norm[2], norm[3], norm[0], norm[1])),
                              training=False, eps=1e-3)
    t = functional.max_pool2d(t, 2, ceil_mode=True)
    assert_matches(fused, t.numpy().transpose(0, 2, 3, 1), "float32")


def test_bands_of_rows_of_large_images_pool_after_the_convolution():
    """Images whose columns exceed the block budget are convolved in bands of rows: the fused op then
    pools the whole output, with the same numbers."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 300, 300, 3)).astype(np.float32)
    filters = (rng.standard_normal((5, 5, 3, 16)) / 8).astype(np.float32)
    bias, norm = _parameters(rng, 16, np.float32)
    scale, shift = ops.batch_norm_affine(*norm, 1e-3)
    pool = ("max", 2, 2, "VALID")
    fused = ops.conv2d_inference(x, filters, 1, "VALID", bias=bias, activation="relu", scale=scale,
                                 shift=shift, pool=pool)
    expected = _one_after_another(x, filters, (1, "VALID", 1, 1), bias, "relu", norm, "linear", pool)
    np.testing.assert_array_equal(fused, expected)


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_matches_torch_conv_batchnorm_relu_pool(mode):
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 14, 14, 8)).astype(np.float32)
    filters = (rng.standard_normal((3, 3, 8, 12)) / 8).astype(np.float32)
    bias, (gamma, beta, mean, var) = _parameters(rng, 12, np.float32)
    scale, shift = ops.batch_norm_affine(gamma, beta, mean, var, 1e-3)
    ours = ops.conv2d_inference(x, filters, 1, "SAME", bias=bias, scale=scale, shift=shift, then="relu",
                                pool=(mode, 2, 2, "VALID"))
    t = functional.conv2d(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()),
                          torch.from_numpy(filters.transpose(3, 2, 0, 1).copy()), torch.from_numpy(bias), padding=1)
    t = functional.batch_norm(t, torch.from_numpy(mean), torch.from_numpy(var), torch.from_numpy(gamma),
                              torch.from_numpy(beta), training=False, eps=1e-3)
    t = (functional.max_pool2d if mode == "max" else functional.avg_pool2d)(functional.relu(t), 2)
    assert_matches(ours, t.numpy().transpose(0, 2, 3, 1), "float32")


def test_nan_wins_in_fused_max_pooling():
    x = np.ones((1, 4, 4, 1), np.float32)
    x[0, 1, 2, 0] = np.nan
    filters = np.ones((1, 1, 1, 2), np.float32)
    out = ops.conv2d_inference(x, filters, 1, "VALID", pool=("max", 2, 2, "VALID"))
    assert np.isnan(out[0, 0, 1]).all() and (out[0, 0, 0] == 1).all() and (out[0, 1] == 1).all()
    np.testing.assert_array_equal(out, ops.max_pool2d(ops.conv2d(x, filters, 1, "VALID"), 2, 2, "VALID"))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_batch_norm_affine_is_the_inference_normalization(dtype):
    rng = np.random.default_rng(3)
    gamma, beta, mean = (rng.standard_normal(6) for _ in range(3))
    var = rng.random(6) + 0.1
    scale, shift = ops.batch_norm_affine(gamma, beta, mean, var, 1e-3, dtype)
    assert scale.shape == shift.shape == (6,) and scale.dtype == np.dtype(dtype)
    x = rng.standard_normal((5, 6)).astype(dtype)
    assert_matches(x * scale + shift, gamma * (x - mean) / np.sqrt(var + 1e-3) + beta, dtype)
    no_gamma_beta = ops.batch_norm_affine(None, None, mean, var, 1e-3, dtype)
    assert_matches(no_gamma_beta[0], 1 / np.sqrt(var + 1e-3), dtype)
    assert_matches(no_gamma_beta[1], -mean / np.sqrt(var + 1e-3), dtype)


@pytest.mark.parametrize("call,error,message", [
    (lambda x, w: ops.conv2d_inference(x, w, 1, "SAME", scale=np.ones(3)), ValueError,
     r"conv2d_inference: arguments `scale` and `shift` must be given together"),
    (lambda x, w: ops.conv2d_inference(x, w, 1, "SAME", scale=np.ones(4), shift=np.ones(4)), ValueError,
     r"conv2d_inference: argument `scale` must have shape \(3,\) \(one per channel\), got \(4,\)"),
    (lambda x, w: ops.conv2d_inference(x, w, 1, "SAME", then="tanh"), ValueError,
     r"conv2d_inference: argument `then` must be one of \('linear', 'relu', 'relu6'\), got 'tanh'"),
    (lambda x, w: ops.conv2d_inference(x, w, 1, "SAME", activation="relu6", pool=("max", 2, 2, "VALID")),
     ValueError, r"conv2d_inference: argument `pool` must be None with a capped ReLU \['relu6'\] in `activation`"),
    (lambda x, w: ops.conv2d_inference(x, w, 1, "SAME", activation="relu6", scale=np.ones(3), shift=np.ones(3)),
     ValueError, r"conv2d_inference: argument `activation` must be one of \('linear', 'relu'\) when `scale` is "
                 r"given \(a cap goes last\), got 'relu6'"),
    (lambda x, w: ops.conv2d_inference(x, w, 1, "SAME", activation="sigmoid"), ValueError,
     r"conv2d_inference: argument `activation` must be one of"),
    (lambda x, w: ops.conv2d_inference(x, w, 1, "SAME", pool=("min", 2, 2, "SAME")), ValueError,
     r"conv2d_inference: argument `pool` must be None or \(mode, ksize, strides, padding\) with mode one of "
     r"\('max', 'avg'\), got \('min', 2, 2, 'SAME'\)"),
    (lambda x, w: ops.conv2d_inference(x, w, 1, "SAME", pool=("max", 9, 1, "VALID")), ValueError,
     r"conv2d_inference"),
    (lambda x, w: ops.conv2d_inference(x, w[:, :, :1], 1, "SAME"), ValueError,
     r"conv2d: argument `filters` must have in/groups = 2 input channels"),
    (lambda x, w: ops.batch_norm_affine(np.ones(2), None, np.ones(3), np.ones(3), 1e-3), ValueError,
     r"batch_norm_affine: argument `gamma` must have shape \(3,\)"),
    (lambda x, w: ops.batch_norm_affine(None, None, np.ones(3), np.ones(3), 1e-3, "int32"), TypeError,
     r"batch_norm_affine: argument `dtype` must be a float dtype, got int32"),
    (lambda x, w: ops.bias_activation_forward(np.ones((2, 3)), None, "relu", then="elu"), ValueError,
     r"bias_activation_forward: argument `then` must be one of"),
])
def test_bad_arguments_name_the_op_and_the_argument(call, error, message):
    x, w = np.ones((1, 6, 6, 2), np.float32), np.ones((3, 3, 2, 3), np.float32)
    with pytest.raises(error, match=message):
        call(x, w)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_epilogue_affine_and_second_relu_match_float64(dtype):
    rng = np.random.default_rng(9)
    z = rng.standard_normal((50, 7)).astype(dtype)
    bias, scale, shift = (rng.standard_normal(7).astype(dtype) for _ in range(3))
    y = ops.bias_activation_forward(z.copy(), bias, "relu", scale, shift, then="relu")
    expected = np.maximum(np.maximum(z.astype(np.float64) + bias, 0) * scale + shift, 0)
    assert_matches(y, expected, dtype)


@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
@pytest.mark.parametrize("ksize,strides,padding", [(2, 2, "VALID"), (3, 2, "SAME"), (2, 1, "VALID"), (3, 3, "SAME")])
def test_max_pool_backward_through_relu_is_the_pool_then_the_relu_backward(ksize, strides, padding, data_format):
    rng = np.random.default_rng(ksize + strides)
    z = rng.standard_normal((3, 9, 8, 5)).astype(np.float32)
    z[0, :4] = -1.0                                             # whole windows <= 0: no gradient gets through
    if data_format == "NCHW":
        z = z.transpose(0, 3, 1, 2).copy()
    y = np.maximum(z, 0)
    pooled, ctx = ops.max_pool2d_forward(y, ksize, strides, padding, data_format)
    grad = rng.standard_normal(pooled.shape).astype(np.float32)
    expected = ops.max_pool2d_backward(grad, ctx) * (y > 0)       # the pooling's, then the ReLU's backward
    np.testing.assert_array_equal(ops.max_pool2d_backward(grad, ctx, relu_output=pooled), expected)
    with pytest.raises(ValueError, match=r"max_pool2d_backward: argument `relu_output` must have the forward "
                                         r"output's shape"):
        ops.max_pool2d_backward(grad, ctx, relu_output=pooled[:1])


@pytest.mark.parametrize("pool", [(2, 2, "VALID"), (2, 2, "SAME"), (3, 2, "SAME"), (3, 1, "VALID")])
@pytest.mark.parametrize("case", CONVS)
def test_conv_max_pool_forward_is_conv2d_forward_then_max_pool2d_forward(case, pool, monkeypatch):
    """As in inference, a pooling in the direct kernel's tiles is compared with a direct convolution."""
    shape, filter_shape, *conv = case
    rng = np.random.default_rng(sum(shape) + pool[0])
    x = rng.standard_normal(shape).astype(np.float32)
    filters = (rng.standard_normal(filter_shape) / np.sqrt(np.prod(filter_shape[:3]))).astype(np.float32)
    bias = rng.standard_normal(filter_shape[3]).astype(np.float32)
    in_tiles = spy_bound_calls(monkeypatch, direct, "pooled_tiles", lambda args: 1)
    pooled, conv_ctx, pool_ctx = ops.conv2d_max_pool_forward(x, filters, *conv, bias=bias, activation="relu",
                                                             pool=pool)
    if in_tiles:
        monkeypatch.setattr(winograd, "applies", lambda *args: False)
    y, conv_ctx_reference = ops.conv2d_forward(x, filters, conv[0], conv[1], dilations=conv[2], groups=conv[3],
                                               bias=bias, activation="relu")
    pooled_reference, pool_ctx_reference = ops.max_pool2d_forward(y, *pool)
    np.testing.assert_array_equal(pooled, pooled_reference)
    np.testing.assert_array_equal(pool_ctx["argmax"], pool_ctx_reference["argmax"])
    grad = rng.standard_normal(pooled.shape).astype(np.float32)
    grad_z = ops.max_pool2d_backward(grad, pool_ctx, relu_output=pooled)
    np.testing.assert_array_equal(grad_z, ops.max_pool2d_backward(grad, pool_ctx_reference) * (y > 0))
    for ours, theirs in zip(ops.conv2d_backward(grad_z, conv_ctx), ops.conv2d_backward(grad_z, conv_ctx_reference)):
        np.testing.assert_array_equal(ours, theirs)


def test_conv_max_pool_forward_of_large_images_runs_the_ops_one_after_the_other():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((1, 300, 300, 3)).astype(np.float32)
    filters = (rng.standard_normal((5, 5, 3, 8)) / 8).astype(np.float32)
    pooled, _, pool_ctx = ops.conv2d_max_pool_forward(x, filters, 1, "VALID", activation="relu")
    reference, reference_ctx = ops.max_pool2d_forward(ops.conv2d(x, filters, 1, "VALID", activation="relu"),
                                                      2, 2, "VALID")
    np.testing.assert_array_equal(pooled, reference)
    np.testing.assert_array_equal(pool_ctx["argmax"], reference_ctx["argmax"])


def test_conv_max_pool_forward_checks_its_pool_argument():
    x, w = np.ones((1, 6, 6, 2), np.float32), np.ones((3, 3, 2, 3), np.float32)
    with pytest.raises(ValueError, match=r"conv2d_max_pool_forward: argument `pool` must be \(ksize, strides, "
                                         r"padding\), got \('max', 2, 2, 'SAME'\)"):
        ops.conv2d_max_pool_forward(x, w, 1, "SAME", pool=("max", 2, 2, "SAME"))
    with pytest.raises(ValueError, match=r"conv2d_max_pool_forward: argument `ksize`"):
        ops.conv2d_max_pool_forward(x, w, 1, "SAME", pool=(0, 2, "SAME"))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("with_gamma,with_beta", [(True, True), (False, True), (True, False), (False, False)])
def test_the_plans_unchecked_batch_norm_map_has_batch_norm_affines_bits(dtype, with_gamma, with_beta):
    """`normalization.layer_affine` (the plan's, per inference step, without checks) gives exactly
    `ops.batch_norm_affine`'s numbers, variables stored in another float type included."""
    from convscope.ops.normalization import layer_affine
    rng = np.random.default_rng(11)
    gamma, beta, mean = (rng.standard_normal(37) * 3 for _ in range(3))
    var = rng.random(37) * 5
    gamma = gamma.astype(np.float32) if with_gamma else None       # float32 variables, any dtype asked
    beta = beta if with_beta else None
    expected = ops.batch_norm_affine(gamma, beta, mean, var, 1e-3, dtype)
    got = layer_affine(gamma, beta, mean, var, 1e-3, dtype)
    for ours, theirs in zip(got, expected):
        assert ours.dtype == theirs.dtype == np.dtype(dtype) and ours.shape == (37,)
        np.testing.assert_array_equal(ours, theirs)


def test_the_plans_batch_norm_map_follows_a_changed_epsilon_and_dtype():
    """`layer_affine` keeps epsilon and 1 in the map's dtype per (dtype, epsilon): another epsilon or dtype gets
    its own, and each call `batch_norm_affine`'s numbers."""
    from convscope.ops.normalization import layer_affine
    rng = np.random.default_rng(12)
    gamma, beta, mean = (rng.standard_normal(9).astype(np.float32) for _ in range(3))
    var = rng.random(9).astype(np.float32)
    for epsilon, dtype in ((1e-3, np.float32), (0.5, np.float32), (1e-3, np.float64), (0.5, "float64")):
        expected = ops.batch_norm_affine(gamma, beta, mean, var, epsilon, dtype)
        got = layer_affine(gamma, beta, mean, var, epsilon, dtype)
        for ours, theirs in zip(got, expected):
            assert ours.dtype == np.dtype(dtype)
            np.testing.assert_array_equal(ours, theirs)
