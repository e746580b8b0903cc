"""max/avg pooling forward/backward against PyTorch and finite differences, on both kernel paths."""

import numpy as np
import pytest

from _gradcheck import assert_gradients_close, numerical_gradient
from _oracle import assert_matches, tf_same_split
from convscope import ops
from convscope.ops import compiled

both_paths = pytest.mark.usefixtures("kernel_path")  # the test runs on the NumPy path and on the compiled kernels

N_CONFIGS = 110


def pool_configs(count, seed=303):
    rng = np.random.default_rng(seed)
    configs = []
    for index in range(count):
        kernel = tuple(int(k) for k in rng.integers(1, 6, size=2))
        if rng.random() < 0.3:
            strides = kernel  # the reshape fast path when nothing is padded
        else:
            strides = tuple(int(s) for s in rng.integers(1, 4, size=2))
        padding = str(rng.choice(["VALID", "SAME", "explicit"]))
        size, pads = [], []
        for axis in range(2):
            pair = ((int(rng.integers(0, kernel[axis])), int(rng.integers(0, kernel[axis])))
                    if padding == "explicit" else (0, 0))
            low = 1 if padding == "SAME" else max(1, kernel[axis] - sum(pair))
            size.append(int(rng.integers(low, low + 7)))
            pads.append(pair)
        configs.append(dict(index=index, kernel=kernel, strides=strides, padding=padding, pads=pads,
                            size=tuple(size), batch=int(rng.integers(1, 5)), channels=int(rng.integers(1, 4)),
                            data_format=str(rng.choice(["NHWC", "NCHW"])),
                            dtype=str(rng.choice(["float32", "float64"]))))
    return configs


def _config_id(c):
    return (f"{c['index']}-k{c['kernel'][0]}x{c['kernel'][1]}-s{c['strides'][0]}{c['strides'][1]}-{c['padding']}"
            f"-{c['data_format']}-n{c['batch']}-{c['size'][0]}x{c['size'][1]}-{c['dtype']}")


CONFIGS = pool_configs(N_CONFIGS)


def _torch_pool(torch, kind, x_t, c, pads):
    """PyTorch's answer: -inf padding for max; for avg, torch's count_include_pad=False where it
    applies (symmetric padding of at most half the window), else window sums over real-cell counts."""
    functional = torch.nn.functional
    (top, bottom), (left, right) = pads
    if kind == "max":
        padded = functional.pad(x_t, (left, right, top, bottom), value=-float("inf"))
        return functional.max_pool2d(padded, c["kernel"], c["strides"])
    if top == bottom and left == right and top <= c["kernel"][0] // 2 and left <= c["kernel"][1] // 2:
        return functional.avg_pool2d(x_t, c["kernel"], c["strides"], padding=(top, left), count_include_pad=False)
    sums = functional.avg_pool2d(functional.pad(x_t, (left, right, top, bottom)), c["kernel"], c["strides"],
                                 divisor_override=1)
    ones = torch.ones((1, 1) + tuple(x_t.shape[2:]), dtype=x_t.dtype)
    counts = functional.avg_pool2d(functional.pad(ones, (left, right, top, bottom)), c["kernel"], c["strides"],
                                   divisor_override=1)
    return sums / counts


@both_paths
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("config", CONFIGS, ids=[_config_id(c) for c in CONFIGS])
def test_pooling_forward_and_backward_match_torch(config, kind):
    torch = pytest.importorskip("torch")
    c = config
    rng = np.random.default_rng(c["index"])
    x_nchw = rng.standard_normal((c["batch"], c["channels"]) + c["size"]).astype(c["dtype"])
    nhwc = c["data_format"] == "NHWC"
    x = x_nchw.transpose(0, 2, 3, 1).copy() if nhwc else x_nchw
    if c["padding"] == "explicit":
        pairs = [list(p) for p in c["pads"]]
        padding = [[0, 0]] + pairs + [[0, 0]] if nhwc else [[0, 0], [0, 0]] + pairs
        pads = c["pads"]
    else:
        padding = c["padding"]
        pads = ([tf_same_split(c["size"][a], c["kernel"][a], c["strides"][a]) for a in range(2)]
                if padding == "SAME" else [(0, 0), (0, 0)])
    forward = getattr(ops, f"{kind}_pool2d_forward")
    backward = getattr(ops, f"{kind}_pool2d_backward")
    output, ctx = forward(x, list(c["kernel"]), list(c["strides"]), padding, c["data_format"])
    np.testing.assert_array_equal(
        getattr(ops, f"{kind}_pool2d")(x, list(c["kernel"]), list(c["strides"]), padding, c["data_format"]), output)

    x_t = torch.tensor(x_nchw, requires_grad=True)
    expected = _torch_pool(torch, kind, x_t, c, pads)
    expected_np = expected.detach().numpy()
    if nhwc:
        expected_np = expected_np.transpose(0, 2, 3, 1)
    assert output.shape == expected_np.shape
    assert_matches(output, expected_np, c["dtype"])

    grad_output = rng.standard_normal(output.shape).astype(c["dtype"])
    grad_nchw = grad_output.transpose(0, 3, 1, 2) if nhwc else grad_output
    expected.backward(torch.tensor(np.ascontiguousarray(grad_nchw)))
    expected_grad = x_t.grad.numpy().transpose(0, 2, 3, 1) if nhwc else x_t.grad.numpy()
    assert_matches(backward(grad_output, ctx), expected_grad, c["dtype"])


def test_the_configurations_cover_the_acceptance_grid():
    assert {c["padding"] for c in CONFIGS} == {"VALID", "SAME", "explicit"}
    assert {s for c in CONFIGS for s in c["strides"]} >= {1, 2, 3}
    assert any(c["kernel"][0] != c["kernel"][1] for c in CONFIGS)
    assert {c["batch"] for c in CONFIGS} == {1, 2, 3, 4}
    assert {c["data_format"] for c in CONFIGS} == {"NHWC", "NCHW"}
    assert {c["dtype"] for c in CONFIGS} == {"float32", "float64"}
    tiled = [c for c in CONFIGS if c["strides"] == c["kernel"] and c["padding"] != "explicit"]
    assert len(tiled) >= 10
    asymmetric_same = [c for c in CONFIGS if c["padding"] == "SAME" and any(
        len(set(tf_same_split(c["size"][a], c["kernel"][a], c["strides"][a]))) == 2 for a in range(2))]
    assert len(asymmetric_same) >= 10


@both_paths
def test_max_pool_ties_route_to_the_first_maximum_like_torch():
    """Integer inputs tie often; each window's gradient goes to its first maximum, as in PyTorch."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    for ksize, strides in [((2, 2), (2, 2)), ((3, 3), (1, 1)), ((3, 2), (2, 1))]:
        x_nchw = rng.integers(0, 3, size=(2, 3, 7, 6)).astype(np.float64)
        output, ctx = ops.max_pool2d_forward(x_nchw, ksize, strides, "VALID", "NCHW")
        x_t = torch.tensor(x_nchw, requires_grad=True)
        expected = torch.nn.functional.max_pool2d(x_t, ksize, strides)
        grad = rng.standard_normal(output.shape)
        expected.backward(torch.tensor(grad))
        # equal up to the order of summation where overlapping windows share a maximum
        np.testing.assert_allclose(ops.max_pool2d_backward(grad, ctx), x_t.grad.numpy(), rtol=1e-12, atol=1e-15)


@both_paths
def test_max_pool_propagates_nan_like_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    x_nchw = rng.standard_normal((1, 2, 6, 6))
    x_nchw[0, 0, 1, 1] = x_nchw[0, 1, 4, 3] = x_nchw[0, 1, 4, 4] = np.nan
    for ksize, strides in [(2, 2), (3, 1)]:
        output, ctx = ops.max_pool2d_forward(x_nchw, ksize, strides, "VALID", "NCHW")
        np.testing.assert_array_equal(ops.max_pool2d(x_nchw, ksize, strides, "VALID", "NCHW"), output)
        x_t = torch.tensor(x_nchw, requires_grad=True)
        expected = torch.nn.functional.max_pool2d(x_t, ksize, strides)
        np.testing.assert_array_equal(output, expected.detach().numpy())
        grad = rng.standard_normal(output.shape)
        expected.backward(torch.tensor(grad))
        np.testing.assert_allclose(ops.max_pool2d_backward(grad, ctx), x_t.grad.numpy(), rtol=1e-12)


@both_paths
def test_max_pool_same_pads_with_minus_infinity():
    """All-negative input: a zero-padded border would win every edge window."""
    x = -np.arange(1, 10, dtype=np.float32).reshape(1, 3, 3, 1)
    out = ops.max_pool2d(x, 2, 2, "SAME")
    np.testing.assert_array_equal(out[0, :, :, 0], [[-1, -3], [-7, -9]])


@both_paths
def test_avg_pool_same_divides_by_the_real_cells():
    x = np.arange(1, 10, dtype=np.float64).reshape(1, 3, 3, 1)
    out = ops.avg_pool2d(x, 2, 2, "SAME")
    np.testing.assert_allclose(out[0, :, :, 0], [[(1 + 2 + 4 + 5) / 4, (3 + 6) / 2], [(7 + 8) / 2, 9.0]])


@both_paths
def test_seed_001_same_max_pool_7_to_4():
    x = np.zeros((1, 7, 7, 2), dtype=np.float32)
    assert ops.max_pool2d(x, 2, 2, "SAME").shape == (1, 4, 4, 2)
    assert ops.max_pool2d(x, 2, 2, "VALID").shape == (1, 3, 3, 2)


@both_paths
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("ksize, strides, padding", [
    (2, 2, "VALID"), (2, 2, "SAME"), (3, 2, "SAME"), ((3, 2), (1, 2), "VALID"),
    (3, 1, [[0, 0], [1, 2], [0, 1], [0, 0]]),
])
def test_pooling_gradients_match_finite_differences(kind, ksize, strides, padding):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 5, 7, 2))
    output, ctx = getattr(ops, f"{kind}_pool2d_forward")(x, ksize, strides, padding)
    weights = rng.standard_normal(output.shape)

    def loss():
        return float(np.sum(getattr(ops, f"{kind}_pool2d")(x, ksize, strides, padding) * weights))

    grad = getattr(ops, f"{kind}_pool2d_backward")(weights, ctx)
    assert_gradients_close(grad, numerical_gradient(loss, x))


@both_paths
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_is_kept(kind, dtype):
    x = np.ones((1, 5, 5, 2), dtype=dtype)
    for strides in (2, 1):
        out, ctx = getattr(ops, f"{kind}_pool2d_forward")(x, 2, strides, "SAME")
        grad = getattr(ops, f"{kind}_pool2d_backward")(np.ones_like(out), ctx)
        assert out.dtype == grad.dtype == np.dtype(dtype)


@both_paths
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("changes, error, pattern", [
    (dict(input=np.zeros((5, 5, 2))), ValueError, r"pool2d: argument `input` must be a rank-4 array, got rank 3"),
    (dict(ksize=0), ValueError, r"pool2d: argument `ksize` must be positive, got 0"),
    (dict(ksize=[1, 2, 2, 2]), ValueError, r"pool2d: argument `ksize` must be 1 on the batch and channel axes"),
    (dict(ksize=6), ValueError, r"pool2d: argument `ksize` gives a window of size \(6, 6\) .*larger than the "
                                r"padded input of size \(5, 5\)"),
    (dict(strides=(1, 2, 3)), ValueError, r"pool2d: argument `strides` must be an int or a list of 1, 2 or 4"),
    (dict(padding="same_"), ValueError, r"pool2d: argument `padding` must be 'SAME', 'VALID'"),
    (dict(padding=[[0, 0], [2, 0], [0, 0], [0, 0]]), ValueError,
     r"pool2d: argument `padding` must be smaller than the window `ksize` \(2, 2\)"),
    (dict(data_format="channels_last"), ValueError, r"pool2d: argument `data_format` must be 'NHWC' or 'NCHW'"),
])
def test_bad_arguments_are_named(kind, changes, error, pattern):
    args = dict(dict(input=np.zeros((1, 5, 5, 2)), ksize=2, strides=2, padding="VALID"), **changes)
    with pytest.raises(error, match=f"{kind}_{pattern}"):
        getattr(ops, f"{kind}_pool2d")(**args)


@both_paths
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_backward_rejects_a_gradient_of_the_wrong_shape(kind):
    _, ctx = getattr(ops, f"{kind}_pool2d_forward")(np.zeros((1, 4, 4, 3)), 2, 2, "VALID", "NHWC")
    with pytest.raises(ValueError, match=rf"{kind}_pool2d_backward: argument `grad_output` must have the "
                                         r"forward output's shape \(1, 2, 2, 3\), got \(1, 2, 3, 3\)"):
        getattr(ops, f"{kind}_pool2d_backward")(np.zeros((1, 2, 3, 3)), ctx)


@both_paths
@pytest.mark.parametrize("size, padding", [(28, "SAME"), (7, "SAME"), (9, "VALID"),
                                           (6, [[0, 0], [1, 1], [0, 0], [0, 0]])])
@pytest.mark.parametrize("block_bytes", [None, 1])
def test_tiled_max_pool_with_ties_and_padding_matches_torch(size, padding, block_bytes, monkeypatch):
    """stride == pool size (seed 001's 7 -> 4 SAME): gradients written per offset, first maximum on ties."""
    torch = pytest.importorskip("torch")
    from convscope.ops import pooling
    if block_bytes is not None:  # one image per unit of (threaded) work
        monkeypatch.setattr(pooling, "BLOCK_BYTES", block_bytes)
    rng = np.random.default_rng(size)
    x = rng.integers(-2, 3, size=(3, size, size, 5)).astype(np.float32)
    output, ctx = ops.max_pool2d_forward(x, 2, 2, padding)
    assert ctx["argmax"].dtype == np.uint8  # one byte per output kept for the backward pass
    np.testing.assert_array_equal(ops.max_pool2d(x, 2, 2, padding), output)
    if isinstance(padding, str):
        pads = [tf_same_split(size, 2, 2)] * 2 if padding == "SAME" else [(0, 0)] * 2
    else:
        pads = [tuple(padding[1]), tuple(padding[2])]
    x_t = torch.tensor(x.transpose(0, 3, 1, 2).copy(), requires_grad=True)
    padded = torch.nn.functional.pad(x_t, (pads[1][0], pads[1][1], pads[0][0], pads[0][1]), value=-np.inf)
    expected = torch.nn.functional.max_pool2d(padded, 2, 2)
    np.testing.assert_array_equal(output, expected.detach().numpy().transpose(0, 2, 3, 1))
    grad = rng.standard_normal(output.shape).astype(np.float32)
    expected.backward(torch.tensor(grad.transpose(0, 3, 1, 2).copy()))
    np.testing.assert_array_equal(ops.max_pool2d_backward(grad, ctx), x_t.grad.numpy().transpose(0, 2, 3, 1))


@both_paths
@pytest.mark.parametrize("block_bytes", [None, 1])
def test_tiled_max_pool_propagates_nan_with_padding(block_bytes, monkeypatch):
    torch = pytest.importorskip("torch")
    from convscope.ops import pooling
    if block_bytes is not None:
        monkeypatch.setattr(pooling, "BLOCK_BYTES", block_bytes)
    x = np.arange(3 * 2 * 7 * 7, dtype=np.float64).reshape(3, 2, 7, 7)
    x[0, 0, 0, 1] = x[0, 0, 6, 6] = x[0, 1, 2, 2] = x[0, 1, 3, 3] = x[2, 1, 5, 5] = np.nan
    output, ctx = ops.max_pool2d_forward(x, 2, 2, "SAME", "NCHW")
    x_t = torch.tensor(x, requires_grad=True)
    expected = torch.nn.functional.max_pool2d(torch.nn.functional.pad(x_t, (0, 1, 0, 1), value=-np.inf), 2, 2)
    np.testing.assert_array_equal(output, expected.detach().numpy())
    grad = np.random.default_rng(2).standard_normal(output.shape)
    expected.backward(torch.tensor(grad))
    np.testing.assert_array_equal(ops.max_pool2d_backward(grad, ctx), x_t.grad.numpy())


@both_paths
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_large_windows_keep_four_byte_offsets_and_match_torch(kind):
    """17 x 16 = 272 cells per window (global pooling of a large image): offsets need more than a byte."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(17)
    x_nchw = rng.standard_normal((2, 3, 18, 16))
    output, ctx = getattr(ops, f"{kind}_pool2d_forward")(x_nchw, (17, 16), (1, 1), "VALID", "NCHW")
    if kind == "max":
        assert ctx["argmax"].dtype == np.int32
    x_t = torch.tensor(x_nchw, requires_grad=True)
    expected = getattr(torch.nn.functional, f"{kind}_pool2d")(x_t, (17, 16), (1, 1))
    np.testing.assert_allclose(output, expected.detach().numpy(), rtol=1e-12)
    grad = rng.standard_normal(output.shape)
    expected.backward(torch.tensor(grad))
    np.testing.assert_allclose(getattr(ops, f"{kind}_pool2d_backward")(grad, ctx), x_t.grad.numpy(), rtol=1e-12)


@both_paths
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_an_empty_batch_gives_empty_outputs_and_gradients(kind):
    output, ctx = getattr(ops, f"{kind}_pool2d_forward")(np.zeros((0, 5, 5, 2), np.float32), 2, 2, "SAME")
    assert output.shape == (0, 3, 3, 2) and output.dtype == np.float32
    grad = getattr(ops, f"{kind}_pool2d_backward")(output, ctx)
    assert grad.shape == (0, 5, 5, 2) and grad.dtype == np.float32


def _path_configs(count, seed=909, channels=(1, 20)):
    """Odd sizes, overlapping windows, strides larger than the window, explicit and SAME pads, both dtypes."""
    rng = np.random.default_rng(seed)
    for index in range(count):
        kernel = tuple(int(k) for k in rng.integers(1, 6, size=2))
        strides = tuple(int(s) for s in rng.integers(1, 7, size=2))
        padding = str(rng.choice(["VALID", "SAME", "explicit"]))
        pairs = [[int(rng.integers(0, k)), int(rng.integers(0, k))] for k in kernel]
        size = tuple(int(rng.integers(max(kernel), 12)) for _ in range(2))
        yield dict(index=index, kernel=kernel, strides=strides, padding=padding, pairs=pairs, size=size,
                   batch=int(rng.integers(1, 6)), channels=int(rng.integers(*channels)),
                   data_format=str(rng.choice(["NHWC", "NCHW"])), dtype=str(rng.choice(["float32", "float64"])))


@pytest.mark.skipif(not compiled.available(), reason="numba is not installed")
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("config", list(_path_configs(60)), ids=lambda c: f"{c['index']}")
def test_compiled_kernels_agree_with_the_numpy_path_to_the_bit(config, kind, monkeypatch):
    """Same outputs, first-maximum offsets and gradients, with ties, NaN and -inf cells, threads splitting
    the batch; sums over overlapping windows are added in the same order on both paths."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from convscope.ops import pooling
    monkeypatch.setattr(pooling, "BLOCK_BYTES", 1)  # even these small batches are shared among threads
    c = config
    rng = np.random.default_rng(c["index"])
    nhwc = c["data_format"] == "NHWC"
    shape = (c["batch"],) + c["size"] + (c["channels"],) if nhwc else (c["batch"], c["channels"]) + c["size"]
    x = rng.integers(-2, 3, size=shape).astype(c["dtype"])
    x[rng.random(shape) < 0.05] = np.nan
    x[rng.random(shape) < 0.05] = -np.inf
    padding = c["padding"]
    if padding == "explicit":
        padding = [[0, 0]] + c["pairs"] + [[0, 0]] if nhwc else [[0, 0], [0, 0]] + c["pairs"]
    args = (list(c["kernel"]), list(c["strides"]), padding, c["data_format"])
    results = []
    for flag in (False, True):
        with compiled.use_compiled(flag), threadpoolctl.threadpool_limits(2, user_api="blas"):
            output, ctx = getattr(ops, f"{kind}_pool2d_forward")(x, *args)
            grad = np.random.default_rng(1).standard_normal(output.shape).astype(c["dtype"])
            results.append((output, getattr(ops, f"{kind}_pool2d")(x, *args), ctx.get("argmax"),
                            getattr(ops, f"{kind}_pool2d_backward")(grad, ctx)))
    for numpy_result, compiled_result in zip(*results):
        if numpy_result is not None:
            assert compiled_result.dtype == numpy_result.dtype
        np.testing.assert_array_equal(compiled_result, numpy_result)


@pytest.mark.skipif(not compiled.available(), reason="numba is not installed")
@pytest.mark.parametrize("config", list(_path_configs(40, seed=515, channels=(8, 70))), ids=lambda c: f"{c['index']}")
def test_simd_max_pool_agrees_with_the_scalar_kernel_and_numpy_to_the_bit(config, monkeypatch):
    """float32 channels in SIMD vectors (8 or 16 lanes) and the channels left over: the same maxima and
    first-maximum offsets as the scalar compiled kernel and the NumPy path, with ties, NaN and -inf cells,
    in training (offsets tracked) and inference (not), threads splitting the batch."""
    from convscope.ops import pooling, pooling_simd
    if not pooling_simd.lanes():
        pytest.skip("numba compiles for no SIMD width of 256 bits or more here")
    monkeypatch.setattr(pooling, "BLOCK_BYTES", 1)
    c = config
    rng = np.random.default_rng(c["index"])
    x = rng.integers(-2, 3, size=(c["batch"],) + c["size"] + (c["channels"],)).astype(np.float32)
    x[rng.random(x.shape) < 0.05] = np.nan
    x[rng.random(x.shape) < 0.05] = -np.inf
    padding = [[0, 0]] + c["pairs"] + [[0, 0]] if c["padding"] == "explicit" else c["padding"]
    args = (list(c["kernel"]), list(c["strides"]), padding, "NHWC")
    by_name = {entry[0]: entry for entry in pooling._MAX_POOL_PATHS}
    results = {}
    for name, paths, flag in (("simd", pooling._MAX_POOL_PATHS, True),
                              ("scalar", (by_name["compiled"],), True), ("numpy", (), False)):
        monkeypatch.setattr(pooling, "_MAX_POOL_PATHS", paths)
        with compiled.use_compiled(flag):
            output, ctx = ops.max_pool2d_forward(x, *args)
            results[name] = (output, ctx["argmax"], ops.max_pool2d(x, *args))
    for name in ("scalar", "numpy"):
        for simd_result, other in zip(results["simd"], results[name]):
            np.testing.assert_array_equal(simd_result, other, err_msg=f"simd against {name}")


@pytest.mark.parametrize("seed", range(12))
def test_the_2x2_kernel_takes_untracked_2x2_pools_with_the_general_kernels_bits(seed, monkeypatch):
    """Inference 2x2 stride-2 pools whose windows lie inside the image ('VALID', or 'SAME' on even sizes) run
    `pooling_simd.max_pool_2x2`: the general SIMD kernel's maxima bit for bit (ties, -0.0, NaN, -inf,
    channels past whole vectors); odd 'SAME' sizes, other windows and tracked offsets do not take it."""
    from convscope.ops import pooling, pooling_simd
    if not pooling_simd.lanes():
        pytest.skip("numba compiles for no SIMD width of 256 bits or more here")
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(1, 4)), int(rng.integers(2, 13)), int(rng.integers(2, 13)),
             int(rng.choice([1, 5, 8, 16, 19, 32, 40])))
    x = rng.integers(-2, 3, size=shape).astype(np.float32)
    x[rng.random(shape) < 0.1] = -0.0
    x[rng.random(shape) < 0.05] = np.nan
    x[rng.random(shape) < 0.05] = -np.inf
    padding = "VALID" if seed % 2 else "SAME"
    ran = []
    recorded = tuple((name, applies, (lambda *a, name=name, run=run: ran.append(name) or run(*a)))
                     for name, applies, run in pooling._MAX_POOL_PATHS)
    monkeypatch.setattr(pooling, "_MAX_POOL_PATHS", recorded)
    ours = ops.max_pool2d(x, 2, 2, padding)
    inside = padding == "VALID" or (shape[1] % 2 == 0 and shape[2] % 2 == 0)
    assert set(ran) == {"simd_2x2" if inside else "simd"}
    monkeypatch.setattr(pooling, "_MAX_POOL_PATHS", recorded[1:])
    ran.clear()
    general = ops.max_pool2d(x, 2, 2, padding)
    assert set(ran) == {"simd"}
    np.testing.assert_array_equal(ours, general)
    np.testing.assert_array_equal(np.signbit(ours), np.signbit(general))
    with compiled.use_compiled(False):
        np.testing.assert_array_equal(ours, ops.max_pool2d(x, 2, 2, padding))
    monkeypatch.setattr(pooling, "_MAX_POOL_PATHS", recorded)
    ran.clear()
    ops.max_pool2d_forward(x, 2, 2, padding)                      # training: offsets tracked
    if min(shape[1:3]) >= 3:
        ops.max_pool2d(x, 3, 2, "VALID")
    assert "simd_2x2" not in ran


@pytest.mark.parametrize("seed", range(30))
def test_zero_padded_max_pool_has_the_bits_of_padding_then_pooling(seed):
    """ZeroPadding2D then a 'valid' max pooling as one op: the zero cells take part in the maxima (negative
    inputs, -0.0, NaN, -inf, ties; padding as wide as the window or wider), both dtypes and kernel paths."""
    from convscope.ops import pooling
    rng = np.random.default_rng(seed)
    kernel = tuple(int(k) for k in rng.integers(1, 5, size=2))
    strides = tuple(int(s) for s in rng.integers(1, 4, size=2))
    pads = tuple((int(rng.integers(0, 5)), int(rng.integers(0, 5))) for _ in range(2))
    dtype = (np.float32, np.float64)[seed % 2] if seed < 26 else np.float32
    shape = (int(rng.integers(1, 5)),) + tuple(int(rng.integers(max(kernel), 11)) for _ in range(2)) + (
        int(rng.integers(1, 40)),)
    x = rng.integers(-3, 2, size=shape).astype(dtype)
    x[rng.random(shape) < 0.1] = -0.0
    x[rng.random(shape) < 0.03] = np.nan
    x[rng.random(shape) < 0.03] = -np.inf
    for flag in (False, True):
        with compiled.use_compiled(flag):
            expected = ops.max_pool2d(ops.zero_pad2d(x, pads), list(kernel), list(strides), "VALID")
            got = ops.max_pool2d_zero_padded(x, pads, kernel, strides)
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(expected))   # +0.0 from the padding, -0.0 inside
    if dtype == np.float32 and compiled.available() and pooling.pooling_simd.lanes():
        assert pooling.pooling_simd.applies(x, np.uint8)                        # the kernel, not the reference, ran


@pytest.mark.parametrize("changes, error, pattern", [
    (dict(padding=((1, 1),)), TypeError, r"max_pool2d_zero_padded: argument `padding` must be \(\(top, bottom\)"),
    (dict(padding=((1, -1), (0, 0))), ValueError, r"max_pool2d_zero_padded: argument `padding` must be non-negative"),
    (dict(ksize=(0, 2)), ValueError, r"max_pool2d_zero_padded: argument `ksize`"),
    (dict(input=np.zeros((2, 3, 3))), ValueError, r"max_pool2d_zero_padded: argument `input` must be a rank-4"),
])
def test_zero_padded_max_pool_names_bad_arguments(changes, error, pattern):
    arguments = dict(input=np.zeros((1, 4, 4, 2), np.float32), padding=((1, 1), (1, 1)), ksize=(3, 3), strides=(2, 2))
    arguments.update(changes)
    with pytest.raises(error, match=pattern):
        ops.max_pool2d_zero_padded(**arguments)
