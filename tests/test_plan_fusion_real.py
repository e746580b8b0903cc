"""MobileNet/ResNet inference fusion (ops/fused_inference.py, plan.EpilogueStage, graph residual Adds): every
fused path against the unfused NumPy reference on random configurations, the plan's stages, weight changes
seen by the next predict, and a Keras MobileNetV2's predictions (the independent oracle)."""

import numpy as np
import pytest

from _paths import assert_declined, recording
from convscope import layers as L
from convscope.models import Model, Sequential
from convscope.models.plan import INFERENCE, build_plan
from convscope.ops import depthwise_fast, fused_inference as fi

pytestmark = pytest.mark.usefixtures("kernel_path")
ACTS = fi.INFERENCE_ACTIVATIONS


def _tolerance(dtype):
    return dict(rtol=1e-5, atol=1e-5) if np.dtype(dtype) == np.float32 else dict(rtol=1e-12, atol=1e-12)


def _epilogue_args(rng, channels, out_shape, dtype):
    """Random epilogue arguments, each part present or not."""
    bias = rng.standard_normal(channels).astype(dtype) if rng.random() < 0.7 else None
    scale, shift = ((rng.random(channels).astype(dtype) + 0.5, rng.standard_normal(channels).astype(dtype))
                    if rng.random() < 0.7 else (None, None))
    residual = rng.standard_normal(out_shape).astype(dtype) * 3 if rng.random() < 0.5 else None
    return dict(bias=bias, activation=ACTS[rng.integers(4)], scale=scale, shift=shift, residual=residual,
                then=ACTS[rng.integers(4)])


def _padding(rng):
    choice = rng.integers(3)
    return ("SAME", "VALID", [[0, 0], [int(rng.integers(3)), int(rng.integers(3))],
                              [int(rng.integers(3)), int(rng.integers(3))], [0, 0]])[choice]


@pytest.mark.parametrize("lanes", ["native", 8])
@pytest.mark.parametrize("seed", range(12))
def test_depthwise_inference_matches_the_unfused_reference(seed, lanes, monkeypatch):
    """Every path of the ordered list: SIMD tiles (at this machine's width and at AVX2's 8 lanes; channels
    past the last vector one by one; the 4-pixel tiles inside, single pixels at the borders), the plain
    compiled kernel (float64, multiplier 1), the reference (multiplier 2)."""
    if lanes == 8 and depthwise_fast.lanes():
        monkeypatch.setattr(depthwise_fast, "lanes", lambda: 8)
    rng = np.random.default_rng(seed)
    dtype = (np.float32, np.float64)[seed % 2]
    k, stride, dilation = int(rng.choice([3, 3, 5, 1])), int(rng.choice([1, 2])), 1 + (seed % 5 == 4)
    stride = 1 if dilation > 1 else stride
    x = (rng.standard_normal((int(rng.integers(1, 4)), int(rng.integers(7, 14)), int(rng.integers(7, 20)),
                              int(rng.integers(1, 45)))) * 2).astype(dtype)
    multiplier = 1 if seed % 6 else 2          # the compiled kernel takes multiplier 1; 2 goes to the reference
    _check_depthwise(rng, x, k, multiplier, stride, dilation)


def _check_depthwise(rng, x, k, multiplier, stride, dilation):
    """`depthwise_inference` against its reference on `x` with random filters, padding and epilogue."""
    f = rng.standard_normal((k, k, x.shape[3], multiplier)).astype(x.dtype)
    padding = _padding(rng)
    shape = fi.depthwise_inference_reference(x, f, stride, padding, dilation).shape
    args = _epilogue_args(rng, x.shape[3] * multiplier, shape, x.dtype)
    expected = fi.depthwise_inference_reference(x, f, stride, padding, dilation, **args)
    got = fi.depthwise_inference(x, f, stride, padding, dilation, **args)
    assert got.dtype == x.dtype and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, **_tolerance(x.dtype))


@pytest.mark.parametrize("lanes", ["native", 8])
@pytest.mark.parametrize("path", [name for name, _, _ in fi._DEPTHWISE_PATHS])
@pytest.mark.parametrize("seed", range(8))
def test_each_depthwise_path_alone_matches_the_unfused_reference(path, seed, lanes, monkeypatch):
    """Each entry of the ordered path list run alone on a random configuration it applies to (the 3x3 SIMD
    kernel: borders, 4-pixel tiles, strides 1 and 2, channels past the last vector; the SIMD kernel for
    any window; the plain compiled kernel; the reference), at this machine's width and at AVX2's 8 lanes."""
    if lanes == 8 and depthwise_fast.lanes():
        monkeypatch.setattr(depthwise_fast, "lanes", lambda: 8)
    simd = path.startswith("simd")
    asked = None
    if path != "reference" and not fi.compiled.active() or simd and not depthwise_fast.lanes():
        asked = []          # the path cannot run here: the whole list runs, and the path must decline
        monkeypatch.setattr(fi, "_DEPTHWISE_PATHS", recording(fi._DEPTHWISE_PATHS, asked))
    else:
        monkeypatch.setattr(fi, "_DEPTHWISE_PATHS", tuple(e for e in fi._DEPTHWISE_PATHS if e[0] == path))
    rng = np.random.default_rng(500 + seed)
    dtype = np.float32 if simd or seed % 2 else np.float64
    k = 3 if path == "simd_3x3" else int(rng.choice([1, 2, 3, 5]))
    stride = int(rng.choice([1, 2])) if path == "simd_3x3" else int(rng.integers(1, 4))
    dilation = 1 if path == "simd_3x3" or stride > 1 else int(rng.choice([1, 2]))
    lowest = max(1, depthwise_fast.lanes()) if simd else 1
    x = (rng.standard_normal((int(rng.integers(1, 4)), int(rng.integers(3, 16)), int(rng.integers(3, 22)),
                              int(rng.integers(lowest, lowest + 40)))) * 2).astype(dtype)
    if seed % 4 == 3:                   # a NaN stays NaN through the window sums and every activation
        x[0, x.shape[1] // 2, x.shape[2] // 2, 0] = np.nan
    _check_depthwise(rng, x, k, 2 if path == "reference" and seed % 2 else 1, stride, dilation)
    if asked is not None:
        assert_declined(asked, path)


@pytest.mark.parametrize("lanes", ["native", 8])
@pytest.mark.parametrize("stride, padding, channels", [(1, "SAME", 32), (2, [[0, 0], [0, 1], [0, 1], [0, 0]], 24),
                                                       (2, "SAME", 41), (1, "VALID", 19)])
def test_depthwise_3x3_as_in_mobilenets_matches_the_unfused_reference(stride, padding, channels, lanes, monkeypatch):
    if lanes == 8 and depthwise_fast.lanes():
        monkeypatch.setattr(depthwise_fast, "lanes", lambda: 8)
    rng = np.random.default_rng(channels)
    x = rng.standard_normal((2, 15, 14, channels)).astype(np.float32)
    f = rng.standard_normal((3, 3, channels, 1)).astype(np.float32)
    shape = fi.depthwise_inference_reference(x, f, stride, padding).shape
    for _ in range(3):
        args = _epilogue_args(rng, channels, shape, np.float32)
        np.testing.assert_allclose(fi.depthwise_inference(x, f, stride, padding, **args),
                                   fi.depthwise_inference_reference(x, f, stride, padding, **args), rtol=1e-5,
                                   atol=1e-5)


@pytest.mark.parametrize("lanes", ["native", 8])
@pytest.mark.parametrize("then", ACTS)
@pytest.mark.parametrize("activation", ACTS)
def test_depthwise_3x3_tile_epilogue_matches_the_unfused_reference(activation, then, lanes, monkeypatch):
    """Channels in whole vectors: with clips only the 3x3 kernel finishes each tile in registers (every
    clip pair, with and without the affine map and the residual, strides 1 and 2, NaN kept); with a
    hard-swish it finishes each row after (the same numbers)."""
    if lanes == 8 and depthwise_fast.lanes():
        monkeypatch.setattr(depthwise_fast, "lanes", lambda: 8)
    width = depthwise_fast.lanes() or 8
    rng = np.random.default_rng(11)
    for stride, affine, residual in ((1, True, True), (2, False, False), (1, False, True), (2, True, False)):
        x = (rng.standard_normal((2, 11, 13, 2 * width)) * 3).astype(np.float32)
        x[1, 5, 6, 3] = np.nan
        f = rng.standard_normal((3, 3, 2 * width, 1)).astype(np.float32)
        shape = fi.depthwise_inference_reference(x, f, stride, "SAME").shape
        args = dict(bias=rng.standard_normal(2 * width).astype(np.float32), activation=activation, then=then,
                    scale=rng.random(2 * width).astype(np.float32) + 0.5 if affine else None,
                    shift=rng.standard_normal(2 * width).astype(np.float32) if affine else None,
                    residual=rng.standard_normal(shape).astype(np.float32) if residual else None)
        expected = fi.depthwise_inference_reference(x, f, stride, "SAME", **args)
        got = fi.depthwise_inference(x, f, stride, "SAME", **args)
        assert np.array_equal(np.isnan(got), np.isnan(expected)) and np.isnan(got).any()
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("seed", range(12))
def test_conv2d_epilogue_inference_matches_the_unfused_reference(seed):
    """1x1 (one GEMM, stride 1 or 2, sometimes large enough to split in blocks among threads) and
    other convolutions (conv2d_inference, then the rest of the epilogue)."""
    rng = np.random.default_rng(100 + seed)
    dtype = (np.float32, np.float64)[seed % 2]
    pointwise = seed % 3 != 2
    k = 1 if pointwise else int(rng.choice([3, 5]))
    n, hw = (2, 24) if seed in (0, 1) else (int(rng.integers(1, 4)), int(rng.integers(6, 12)))
    big = seed in (0, 1)                  # past fi.SMALL_WORK: blocks of rows shared among the threads
    x = rng.standard_normal((n, hw, hw + 1, 64 if big else int(rng.integers(2, 40)))).astype(dtype)
    groups = 2 if (not pointwise and x.shape[3] % 2 == 0 and seed % 4 == 0) else 1
    out_channels = 64 if big else int(rng.integers(1, 5)) * 2
    filters = rng.standard_normal((k, k, x.shape[3] // groups, out_channels)).astype(dtype)
    stride, padding = (1 if big else int(rng.choice([1, 2]))), "VALID" if pointwise else _padding(rng)
    shape = fi.conv2d_epilogue_reference(x, filters, stride, padding, None, groups).shape
    args = _epilogue_args(rng, filters.shape[3], shape, dtype)
    if big:
        args.update(residual=rng.standard_normal(shape).astype(dtype), then="relu6")
    expected = fi.conv2d_epilogue_reference(x, filters, stride, padding, None, groups, **args)
    got = fi.conv2d_epilogue_inference(x, filters, stride, padding, None, groups, **args)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, expected, **_tolerance(dtype))


@pytest.mark.parametrize("path", [name for name, _, _ in fi._CONV_PATHS])
@pytest.mark.parametrize("seed", range(6))
def test_each_conv2d_epilogue_path_alone_matches_the_unfused_reference(path, seed, monkeypatch):
    """Each entry of the ordered path list run alone on a random configuration it applies to: the 1x1
    product of few rows shared among the threads by columns (`dense_tiles`' products on a 5x6 image, or BLAS'),
    `direct_wide`'s tiles on a 1x1 convolution of one 12x13 image (where 512-bit units run whole), the 1x1 product
    in blocks of rows (two seeds past fi.SMALL_WORK, so the blocks are shared among the threads), the
    convolution's own epilogue, the convolution then the rest."""
    rng = np.random.default_rng(300 + seed)
    entry = next(e for e in fi._CONV_PATHS if e[0] == path)
    asked = None
    tiles = path == "gemm_1x1_column_tiles"   # float32, 5 to dense_tiles.max_rows() rows, a matrix of 1 MB or more
    wide = path == "wide_1x1"                 # float32, one image of 48-256 pixels, 128+ channels, blocks of 64
    monkeypatch.setattr(fi.direct_wide, "worker_count", lambda: 2)     # (24 pixels per thread at least)
    if ((path.startswith("gemm_1x1_column") and not (fi.compiled.active() and (not tiles or fi.dense_tiles.lanes())))
            or (wide and not (fi.compiled.active() and fi.direct_wide.direct.full_width_units()))):
        asked = []          # it applies its epilogue with the compiled kernel: here it must decline
        monkeypatch.setattr(fi, "_CONV_PATHS", recording(fi._CONV_PATHS, asked))
    else:
        monkeypatch.setattr(fi, "_CONV_PATHS", (entry,))
    dtype = np.float32 if tiles or wide else (np.float32, np.float64)[seed % 2]
    pointwise = path.startswith("gemm") or wide
    big = path == "gemm_1x1" and seed < 2
    columns = path == "gemm_1x1_columns"      # few rows (<= fi.COLUMN_SPLIT_ROWS), >= 64 columns, past SMALL_WORK
    stride = int(rng.choice([1, 2]))
    n, hw = ((3, 40) if big else (2, 17) if columns else (1, 5) if tiles      # tiles: 30 rows, or 9 at stride 2
             else (1, 12 * stride) if wide else (int(rng.integers(1, 4)), int(rng.integers(5, 13))))
    inputs = (64 if big else (96 if stride == 1 else 400) if columns else 800 if tiles
              else int(rng.integers(128, 300)) if wide else int(rng.integers(1, 40)))
    x = rng.standard_normal((n, hw, hw + 1, inputs)).astype(dtype)
    # (an unpadded 1x1 convolution takes the 1x1 paths, not conv2d_inference's own epilogue)
    k = 1 if pointwise else 3 if path == "conv2d_inference" else int(rng.choice([1, 3]))
    outputs = (64 if big else int(rng.integers(72, 100)) if columns else int(rng.integers(660, 760)) if tiles
               else 64 * int(rng.integers(1, 5)) if wide else int(rng.integers(1, 70)))
    filters = (rng.standard_normal((k, k, x.shape[3], outputs)) * 0.2).astype(dtype)
    padding = "VALID" if pointwise else _padding(rng)
    shape = fi.conv2d_epilogue_reference(x, filters, stride, padding).shape
    args = _epilogue_args(rng, filters.shape[3], shape, dtype)
    if path == "conv2d_inference":       # its own epilogue only: ReLU, ReLU6 last, or none; no residual
        args.update(residual=None, activation=ACTS[seed % 3], then=ACTS[(seed // 3) % 3])
        if args["activation"] == "relu6":
            args.update(scale=None, shift=None)
        args["bias"] = None if args["bias"] is None else args["bias"] * 8      # values past 6 to cap
    if wide:             # a ReLU or none before the map, a ReLU, ReLU6 or none after
        args.update(activation=ACTS[seed % 2], then=ACTS[seed % 3])
    expected = fi.conv2d_epilogue_reference(x, filters, stride, padding, **args)
    got = fi.conv2d_epilogue_inference(x, filters, stride, padding, **args)
    if asked is not None:
        assert_declined(asked, path)
    assert got.dtype == dtype and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, **_tolerance(dtype))


@pytest.mark.parametrize("activation,then,path", [("relu", "relu6", "conv2d_inference"),
                                                   ("relu6", "linear", "conv2d_inference+epilogue"),
                                                   ("hard_silu", "relu", "conv2d_inference+epilogue")])
def test_a_prepared_conv2d_epilogue_checks_and_plans_its_convolution_once(activation, then, path, monkeypatch):
    """The convolution paths decide the convolution's checks, geometry and kernel when prepared, not at every
    run (a plan's stage runs one prepared op per input shape); each run still gives the reference's numbers
    for its own arrays."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 9, 10, 5)).astype(np.float32)
    filters = (rng.standard_normal((3, 3, 5, 12)) * 0.3).astype(np.float32)
    bias, scale, shift = (rng.standard_normal(12).astype(np.float32) for _ in range(3))
    asked, prepared = [], []
    monkeypatch.setattr(fi, "_CONV_PATHS", recording(fi._CONV_PATHS, asked))
    original = fi.prepare_conv2d_inference
    monkeypatch.setattr(fi, "prepare_conv2d_inference", lambda *args, **kwargs: prepared.append(1) or
                        original(*args, **kwargs))
    args = dict(bias=bias, activation=activation, scale=scale, shift=shift, then=then)
    run = fi.prepare_conv2d_epilogue_inference(x, filters, 1, "SAME", **args)
    assert [name for name, answer in asked if answer] == [path] and prepared == [1]
    for step in range(3):
        x_now, bias_now = x + step, bias * (step + 1)
        got = run(x_now, filters, bias_now, scale, shift, None)
        expected = fi.conv2d_epilogue_reference(x_now, filters, 1, "SAME", **dict(args, bias=bias_now))
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert prepared == [1]


@pytest.mark.parametrize("kernel,groups,strides,expected", [
    (1, 1, 1, "gemm_1x1"), (1, 1, 2, "gemm_1x1"),            # an unpadded 1x1 of one group: the 1x1 product
    (1, 2, 1, "conv2d_inference"),                          # of two groups: the convolution's own epilogue
    (3, 1, 1, "conv2d_inference"),
])
def test_every_unpadded_1x1_convolution_of_one_group_takes_the_1x1_paths(kernel, groups, strides, expected,
                                                                        monkeypatch):
    """At a batch of images, with an epilogue `conv2d_inference` could apply itself (bias, ReLU, the BN map):
    an unpadded 1x1 convolution of one group is one product over all its pixels (`_own_applies` declines it;
    `conv2d_inference` multiplied each image's pixels apart), a grouped 1x1 or a 3x3 convolution stays
    `conv2d_inference`'s; each against the unfused reference."""
    rng = np.random.default_rng(21)
    x = rng.standard_normal((4, 12, 13, 40)).astype(np.float32)
    filters = (rng.standard_normal((kernel, kernel, 40 // groups, 48)) * 0.2).astype(np.float32)
    bias, scale, shift = (rng.standard_normal(48).astype(np.float32) for _ in range(3))
    asked = []
    monkeypatch.setattr(fi, "_CONV_PATHS", recording(fi._CONV_PATHS, asked))
    args = dict(bias=bias, activation="relu", scale=scale, shift=shift, then="relu")
    got = fi.conv2d_epilogue_inference(x, filters, strides, "SAME", groups=groups, **args)
    expected_out = fi.conv2d_epilogue_reference(x, filters, strides, "SAME", groups=groups, **args)
    assert [name for name, answer in asked if answer][0] == expected
    np.testing.assert_allclose(got, expected_out, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("full_width", [True, False])
@pytest.mark.parametrize("hw,inputs,outputs,stride,tall", [
    (28, 128, 512, 1, True), (28, 512, 128, 1, True),      # 784 rows, 256 KiB matrices: the tall tiles pack them
    (56, 256, 512, 2, True),                                # 784 rows at stride 2, a 512 KiB matrix
    (14, 256, 1024, 1, False),                              # 196 rows: under TALL_PACK_ROWS (direct_wide's)
    (28, 512, 512, 1, False),                               # a 1 MiB matrix: left to BLAS
])
def test_a_1x1_product_of_one_image_shares_its_rows_where_the_tall_tiles_pack_its_matrix(
        hw, inputs, outputs, stride, tall, full_width, monkeypatch):
    """ResNet50's 1x1 convolutions at batch 1: a product of few rows is shared among the threads by columns
    (`gemm_1x1_columns`), but where the tall tiles run and pack its matrix (`pointwise_simd.packs(...,
    tall=True)`) by blocks of rows (`gemm_1x1`), and where they run on a product of 196 rows by `direct_wide`'s
    tiles (`wide_1x1`); each against the unfused reference."""
    monkeypatch.setattr(fi.pointwise_simd, "VECTOR_BITS", 512 if full_width else 256)
    monkeypatch.setattr(fi.direct_wide.direct, "VECTOR_BITS", 512 if full_width else 256)
    monkeypatch.setattr("convscope.ops.simd.FULL_WIDTH_CPU", full_width)
    monkeypatch.setattr(fi.direct_wide, "worker_count", lambda: 2)
    rng = np.random.default_rng(hw + inputs + outputs)
    x = rng.standard_normal((1, hw, hw, inputs)).astype(np.float32)
    filters = (rng.standard_normal((1, 1, inputs, outputs)) / np.sqrt(inputs)).astype(np.float32)
    bias, scale, shift = (rng.standard_normal(outputs).astype(np.float32) for _ in range(3))
    asked = []
    monkeypatch.setattr(fi, "_CONV_PATHS", recording(fi._CONV_PATHS, asked))
    args = dict(bias=bias, activation="relu", scale=scale, shift=shift)
    got = fi.conv2d_epilogue_inference(x, filters, stride, "VALID", **args)
    expected = fi.conv2d_epilogue_reference(x, filters, stride, "VALID", **args)
    columns = fi.compiled.active() and not (tall and full_width)      # (the NumPy kernels: blocks of rows)
    wide = fi.compiled.active() and full_width and hw == 14
    assert [name for name, answer in asked if answer][0] == ("wide_1x1" if wide else "gemm_1x1_columns" if columns
                                                              else "gemm_1x1")
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("batch", [1, 3])
def test_a_mobilenet_stem_keeps_its_relu6_in_the_convolutions_own_epilogue(batch, monkeypatch):
    """conv 3x3 stride 2 -> BN -> ReLU6 (MobileNetV2's Conv1): `conv2d_inference` applies the whole epilogue,
    the cap last on each finished block; a ReLU6 before the BN map leaves the map and the cap to the pass
    after it.  Both against the unfused reference."""
    rng = np.random.default_rng(batch)
    x = rng.random((batch, 34, 33, 3)).astype(np.float32)
    filters = rng.standard_normal((3, 3, 3, 32)).astype(np.float32)
    scale, shift = (4 * rng.random(32)).astype(np.float32), rng.standard_normal(32).astype(np.float32)
    for activation, then, path in (("linear", "relu6", "conv2d_inference"),
                                   ("relu6", "linear", "conv2d_inference+epilogue")):
        asked = []
        monkeypatch.setattr(fi, "_CONV_PATHS", recording(fi._CONV_PATHS, asked))
        args = dict(activation=activation, scale=scale, shift=shift, then=then)
        got = fi.conv2d_epilogue_inference(x, filters, 2, "SAME", **args)
        expected = fi.conv2d_epilogue_reference(x, filters, 2, "SAME", **args)
        assert [name for name, answer in asked if answer] == [path]
        assert got.max() == 6 if then == "relu6" else got.max() > 6
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
        monkeypatch.undo()


@pytest.mark.parametrize("then", ACTS)
@pytest.mark.parametrize("activation", ACTS)
def test_epilogue_inference_matches_the_reference_in_place_and_keeps_nan(activation, then):
    """Every pair of activations (the kernel's clip-only loop without a hard-swish, its general one with),
    with and without the affine map and the residual."""
    rng = np.random.default_rng(7)
    for dtype in (np.float32, np.float64):
        for affine, residual in ((True, True), (False, False), (True, False)):
            z = (rng.standard_normal((5, 6, 7)) * 5).astype(dtype)
            z[0, 0, 0] = np.nan
            args = dict(bias=rng.standard_normal(7), activation=activation,
                        scale=rng.random(7) + 0.1 if affine else None,
                        shift=rng.standard_normal(7) if affine else None,
                        residual=rng.standard_normal(z.shape).astype(dtype) if residual else None, then=then)
            expected = fi.epilogue_reference(z, **args)
            out = fi.epilogue_inference(z, **args)
            assert out is z and np.isnan(out[0, 0, 0])
            np.testing.assert_allclose(out, expected, **_tolerance(dtype))


def test_arguments_are_checked_with_messages_naming_the_op():
    x, f = np.zeros((1, 5, 5, 3), "float32"), np.zeros((3, 3, 3, 1), "float32")
    with pytest.raises(ValueError, match=r"depthwise_inference: argument `activation` must be one of "
                                         r"\('linear', 'relu', 'relu6', 'hard_silu'\), got 'tanh'"):
        fi.depthwise_inference(x, f, 1, "SAME", activation="tanh")
    with pytest.raises(ValueError, match=r"depthwise_inference: argument `residual` must have the output's "
                                         r"shape \(1, 5, 5, 3\), got \(1, 5, 5, 4\)"):
        fi.depthwise_inference(x, f, 1, "SAME", residual=np.zeros((1, 5, 5, 4), "float32"))
    with pytest.raises(ValueError, match=r"depthwise_inference: argument `filter` must have shape \[kh, kw, "
                                         r"in_channels, channel_multiplier\] with the input's 3 channels"):
        fi.depthwise_inference(x, np.zeros((3, 3, 2, 1)), 1, "SAME")
    with pytest.raises(ValueError, match=r"conv2d_epilogue_inference: argument `bias` must have shape \(4,\) "
                                         r"\(one per output channel\), got \(3,\)"):
        fi.conv2d_epilogue_inference(x, np.zeros((1, 1, 3, 4)), 1, "VALID", bias=np.zeros(3))
    with pytest.raises(ValueError, match=r"conv2d_epilogue_inference: arguments `scale` and `shift` must be "
                                         r"given together"):
        fi.conv2d_epilogue_inference(x, np.zeros((1, 1, 3, 4)), 1, "VALID", scale=np.ones(4))
    with pytest.raises(ValueError, match=r"^depthwise_inference: argument `strides` must be positive, got 0"):
        fi.depthwise_inference(x, f, 0, "SAME")
    with pytest.raises(ValueError, match=r"^conv2d_epilogue_inference: argument `padding` must be 'SAME', 'VALID'"):
        fi.conv2d_epilogue_inference(x, np.zeros((1, 1, 3, 4)), 1, "full")
    with pytest.raises(ValueError, match=r"epilogue_inference: argument `then` must be one of"):
        fi.epilogue_inference(np.zeros((2, 3)), then="gelu")


def _randomize_batch_norms(model, rng):
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            c = layer.moving_mean.shape
            layer.moving_mean.assign(rng.standard_normal(c).astype("float32"))
            layer.moving_variance.assign((rng.random(c) + 0.3).astype("float32"))
            layer.gamma.assign((rng.random(c) + 0.5).astype("float32"))
            layer.beta.assign(rng.standard_normal(c).astype("float32"))


def _inverted_residual(x, expand, stride, activation, residual):
    """MobileNetV2's block (ReLU(6.) layers, or hard_swish ones as MobileNetV3's); `expand` 1: none, as
    MobileNetV2's first block."""
    channels = x.shape[-1]
    act = (lambda: L.ReLU(6.0)) if activation == "relu6" else (lambda: L.Activation(activation))
    y = x
    if expand > 1:
        y = L.Conv2D(channels * expand, 1, use_bias=False)(x)
        y = act()(L.BatchNormalization()(y))
    if stride == 2:
        y = L.ZeroPadding2D(((0, 1), (0, 1)))(y)
    y = L.DepthwiseConv2D(3, strides=stride, padding="same" if stride == 1 else "valid", use_bias=False)(y)
    y = act()(L.BatchNormalization()(y))
    y = L.BatchNormalization()(L.Conv2D(channels if residual else channels + 2, 1, use_bias=False)(y))
    return L.Add()([x, y]) if residual else y


def _resnet_block(x, filters):
    shortcut = L.BatchNormalization()(L.Conv2D(filters, 1, strides=2)(x))
    y = L.Activation("relu")(L.BatchNormalization()(L.Conv2D(filters, 1, strides=2)(x)))
    y = L.Activation("relu")(L.BatchNormalization()(L.Conv2D(filters, 3, padding="same")(y)))
    y = L.BatchNormalization()(L.Conv2D(filters, 1)(y))
    return L.Activation("relu")(L.Add()([shortcut, y]))


def _graph_model(activation):
    inputs = L.Input((13, 12, 6))
    x = _inverted_residual(inputs, 1, 1, activation, True)
    x = _inverted_residual(x, 3, 1, activation, True)
    x = _inverted_residual(x, 2, 2, activation, False)
    x = _resnet_block(x, 8)
    return Model(inputs, L.Dense(3)(L.GlobalAveragePooling2D()(x)))


@pytest.mark.parametrize("activation", ["relu6", "hard_swish"])
def test_graph_blocks_fuse_bn_activations_padding_and_residual_adds_with_the_numbers_of_the_layers(activation):
    model = _graph_model(activation)
    rng = np.random.default_rng(11)
    _randomize_batch_norms(model, rng)
    steps = model._steps(False, False)
    fused = [(type(step.stage).__name__, [type(node.layer).__name__ for node in step.nodes]) for step in steps
             if step.stage is not None]
    act = "ReLU" if activation == "relu6" else "Activation"
    expand = ["Conv2D", "BatchNormalization", act]
    depthwise, project = ["DepthwiseConv2D", "BatchNormalization", act], ["Conv2D", "BatchNormalization"]
    # MobileNet's blocks as one stage each: with its residual Add, and at stride 2 with the padding folded
    assert ("InvertedResidualStage", expand + depthwise + project + ["Add"]) in fused
    assert ("InvertedResidualStage", expand + ["ZeroPadding2D"] + depthwise + project) in fused
    assert ("InvertedResidualStage", depthwise + project + ["Add"]) in fused          # a block without expansion
    assert ("EpilogueStage", ["Conv2D", "BatchNormalization", "Add", "Activation"]) in fused  # ResNet's: Add -> ReLU
    assert sum(step.residual is not None for step in steps) == 3
    x = rng.standard_normal((3, 13, 12, 6)).astype("float32")
    reference, _ = model.run([x], training=False, keep=True)            # the layers one by one
    np.testing.assert_allclose(model.predict(x, verbose=0), reference[0], rtol=1e-5, atol=1e-5)
    # batches of 2 and 1: each stage prepares its op once per input shape
    np.testing.assert_allclose(model.predict(x, batch_size=2, verbose=0), reference[0], rtol=1e-5, atol=1e-5)
    _randomize_batch_norms(model, rng)                                 # weights change: the next call sees it
    model.layers[1].kernel.assign(model.layers[1].kernel.numpy() * 2)
    reference, _ = model.run([x], training=False, keep=True)
    np.testing.assert_allclose(model.predict(x, verbose=0), reference[0], rtol=1e-5, atol=1e-5)


def test_sequential_depthwise_chain_fuses_and_capped_or_leaky_relus_other_than_relu6_stay_apart():
    model = Sequential([L.Input((9, 9, 4)), L.ZeroPadding2D(((0, 1), (0, 1))),
                        L.DepthwiseConv2D(3, strides=2, use_bias=True), L.Dropout(0.5), L.BatchNormalization(),
                        L.ReLU(6.0), L.DepthwiseConv2D(3, padding="same"), L.ReLU(max_value=5.0),
                        L.Conv2D(5, 1, activation="hard_silu"), L.ReLU(negative_slope=0.1), L.Flatten()])
    rng = np.random.default_rng(12)
    _randomize_batch_norms(model, rng)
    plan = build_plan(model.layers, INFERENCE)
    assert [(type(stage).__name__, len(stage.layers)) for stage in plan] == [
        ("EpilogueStage", 5), ("EpilogueStage", 1), ("LayerStage", 1), ("EpilogueStage", 1), ("LayerStage", 1),
        ("LayerStage", 1)]
    x = rng.standard_normal((4, 9, 9, 4)).astype("float32")
    expected = x
    for layer in model.layers:
        expected = layer(expected, training=False)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("config,shape,batch", [
    (dict(filters=16, kernel_size=5), (40, 36, 3), 3),                      # seed 004's layer: the direct tiles
    (dict(filters=8, kernel_size=3, padding="same", activation="relu"), (12, 12, 16), 2),
    (dict(filters=24, kernel_size=1, use_bias=False), (7, 9, 32), 4),        # a 1x1 product
    (dict(filters=6, kernel_size=3, strides=2, padding="same", activation="hard_silu"), (11, 10, 5), 1),
    (dict(filters=5, kernel_size=3, dilation_rate=2, activation="relu6"), (13, 13, 4), 2),
])
def test_a_lone_conv2d_predicts_through_its_epilogue_stage_with_the_layers_bits(config, shape, batch):
    """A Conv2D with nothing fusable after it is one `EpilogueStage` at inference (its bias and activation
    finished in the convolution's tiles, not in a pass over its output), with the bits of the layer's own call."""
    model = Sequential([L.Input(shape), L.Conv2D(**config), L.Flatten()])
    assert [type(stage).__name__ for stage in build_plan(model.layers, INFERENCE)] == ["EpilogueStage", "LayerStage"]
    rng = np.random.default_rng(batch)
    model.layers[0].bias is None or model.layers[0].bias.assign(rng.standard_normal(config["filters"]))
    x = rng.standard_normal((batch,) + shape).astype("float32")
    np.testing.assert_array_equal(model.predict(x, verbose=0), model.layers[1](model.layers[0](x)))


def test_a_resnet_stem_pads_and_max_pools_in_one_stage_with_the_numbers_of_the_layers():
    """ZeroPadding2D -> MaxPooling2D('valid') as one `PaddedMaxPoolStage` (ResNet's pool1_pad, pool1_pool) in a
    Sequential and a graph model; a 'same' pooling, an average pooling or a padding of another dtype stay apart."""
    from convscope.models.plan import PaddedMaxPoolStage
    stem = [L.Conv2D(6, 3, padding="same"), L.ZeroPadding2D(((1, 1), (1, 1))), L.MaxPooling2D(3, strides=2)]
    model = Sequential([L.Input((11, 10, 3))] + stem + [
        L.ZeroPadding2D(((0, 2), (1, 0))), L.MaxPooling2D(2, padding="same"),
        L.ZeroPadding2D(1), L.AveragePooling2D(2), L.ZeroPadding2D(1, dtype="float64"), L.MaxPooling2D(2)])
    plan = build_plan(model.layers, INFERENCE)
    padded = [[type(layer).__name__ for layer in stage.layers] for stage in plan
              if isinstance(stage, PaddedMaxPoolStage)]
    assert padded == [["ZeroPadding2D", "MaxPooling2D"]]
    rng = np.random.default_rng(21)
    x = rng.standard_normal((3, 11, 10, 3)).astype("float32") - 0.5
    expected = x
    for layer in model.layers:
        expected = layer(expected, training=False)
    np.testing.assert_array_equal(model.predict(x, verbose=0), expected)
    inputs = L.Input((11, 10, 3))
    y = inputs
    for layer in [L.Conv2D(6, 3, padding="same"), L.ZeroPadding2D(1), L.MaxPooling2D(3, strides=2)]:
        y = layer(y)
    graph = Model(inputs, L.GlobalAveragePooling2D()(y))
    stages = [type(step.stage).__name__ for step in graph._steps(False, False) if step.stage is not None]
    assert "PaddedMaxPoolStage" in stages
    expected = x
    for layer in graph.layers[1:]:
        expected = layer(expected, training=False)
    np.testing.assert_array_equal(graph.predict(x, verbose=0), expected)


@pytest.fixture(scope="module")
def keras_mobilenet(keras, tmp_path_factory):
    """Keras' own MobileNetV2 (random weights and moving statistics) and the .keras file it saved."""
    net = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=7)
    rng = np.random.default_rng(13)
    for layer in net.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.moving_mean.shape
            layer.set_weights([(rng.random(c) + 0.5).astype("float32"), rng.standard_normal(c).astype("float32") * .1,
                               rng.standard_normal(c).astype("float32") * .1, (rng.random(c) + .5).astype("float32")])
    path = tmp_path_factory.mktemp("mobilenet") / "mobilenet.keras"
    net.save(path)
    return net, path


def test_keras_mobilenet_v2_predictions_match_keras(keras, keras_mobilenet):
    """The independent oracle: Keras' own MobileNetV2, saved and loaded, predicts Keras' numbers through
    the fused plan."""
    from convscope.models import load_model
    net, path = keras_mobilenet
    rng = np.random.default_rng(14)
    model = load_model(path)
    stages = [type(step.stage).__name__ for step in model._steps(False, False)]
    assert stages.count("InvertedResidualStage") == 17 and stages.count("EpilogueStage") >= 2   # 17 blocks
    x = rng.standard_normal((2, 32, 32, 3)).astype("float32")
    logits_model = keras.Model(net.inputs, net.layers[-1].input)
    ours = Model(model.inputs, model.layers[-1].input)                 # before the softmax: sharper test
    np.testing.assert_allclose(ours.predict(x, verbose=0), np.asarray(logits_model.predict(x, verbose=0)),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.predict(x, verbose=0), np.asarray(net.predict(x, verbose=0)), atol=1e-6)


def test_a_1x1_conv_bn_relu_is_an_epilogue_stage_whose_large_products_take_the_packed_tiles(kernel_path,
                                                                                              monkeypatch):
    """A ResNet bottleneck's 1x1 conv -> BN -> ReLU as one `EpilogueStage` (a 3x3 one stays a
    `ConvInferenceStage`): its op takes the 1x1 products, and at 2 x 20 x 20
    pixels of 40 channels (over `pointwise_simd.PACK_ROWS`) the compiled path packs the matrix once and
    the whole product takes the packed tiles; the numbers those of the layers one by one, at batch 2 and 1."""
    from convscope.ops import pointwise_simd as ps
    monkeypatch.setattr(ps, "PACK_ROWS", 512)          # AVX2's and Zen 4's rule (full-width AVX-512: the tall rule)
    model = Sequential([L.Input((20, 20, 40)), L.Conv2D(32, 1), L.BatchNormalization(), L.ReLU(),
                        L.Conv2D(16, 3, padding="same"), L.BatchNormalization(), L.ReLU()])
    rng = np.random.default_rng(31)
    _randomize_batch_norms(model, rng)
    plan = build_plan(model.layers, INFERENCE)
    assert [(type(stage).__name__, len(stage.layers)) for stage in plan] == [("EpilogueStage", 3),
                                                                            ("ConvInferenceStage", 3)]
    x = rng.standard_normal((2, 20, 20, 40)).astype("float32")
    asked, packings = [], []
    pack = ps.pack
    monkeypatch.setattr(ps, "pack", lambda matrix: packings.append(matrix.shape) or pack(matrix))
    monkeypatch.setattr(fi, "_ROWS_PATHS", recording(fi._ROWS_PATHS, asked))
    monkeypatch.setattr(fi, "SMALL_WORK", 0)
    expected = x
    for layer in model.layers:                                          # the layers one by one
        expected = layer(expected, training=False)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)
    if kernel_path == "compiled" and ps.VECTOR_BITS >= 256:
        assert packings == [(40, 32)]
        assert ("simd_tiles_packed", True) in asked
        assert all(answer for name, answer in asked if name == "simd_tiles_packed")
    else:
        assert packings == [] and ("simd_tiles_packed", True) not in asked
    np.testing.assert_allclose(model.predict(x[:1], verbose=0), expected[:1], rtol=1e-5, atol=1e-5)
    assert len(packings) <= 1                                           # batch 1: 400 rows, not packed
