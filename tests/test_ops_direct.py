"""The direct convolution (compiled path of thin float32 convolutions, `ops/direct.py`) against
PyTorch and float64 im2col, and the rule that decides where it runs."""

import numpy as np
import pytest

from _oracle import assert_matches, tf_same_split
from _spies import spy_bound_calls
from convscope import ops
from convscope.ops import compiled, conv, direct, fused, winograd_pool
from convscope.ops.kept_filters import KeptFilters, same_bits

pytestmark = pytest.mark.skipif(not compiled.available(), reason="the direct convolution is compiled")


@pytest.fixture(autouse=True)
def avx512_tiles(monkeypatch):
    """The tiles sized for AVX-512 whatever this machine has (LLVM splits the vectors where it must), so
    that these tests run the same paths everywhere; a test may set another width."""
    monkeypatch.setattr(direct, "VECTOR_BITS", 512)


def _torch_conv(x, filters, bias, strides, dilations, pads):
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    x_t = functional.pad(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()),
                         (pads[1][0], pads[1][1], pads[0][0], pads[0][1]))
    out = functional.conv2d(x_t, torch.from_numpy(filters.transpose(3, 2, 0, 1).copy()), torch.from_numpy(bias),
                            stride=strides, dilation=dilations)
    return out.numpy().transpose(0, 2, 3, 1)


def _spy_direct_blocks(monkeypatch) -> list:
    """Calls of the direct kernel's forward blocks recorded as (kernel, bands, whether finished in the tiles):
    `conv_block`'s ("block", bands None), and `conv_claimed_block`'s ("claimed", each thread's claiming call)."""
    calls = []
    block, claimed = direct.conv_block, direct.conv_claimed_block
    monkeypatch.setattr(direct, "conv_block", lambda *a, finish=None, **k: calls.append(
        ("block", None, finish is not None)) or block(*a, finish=finish, **k))
    monkeypatch.setattr(direct, "conv_claimed_block", lambda *a, finish=None, **k: calls.append(
        ("claimed", a[7], finish is not None)) or claimed(*a, finish=finish, **k))
    return calls


def _same_pads(shape, kernel, strides, dilations):
    return tuple(tf_same_split(shape[1 + axis], kernel, strides[axis], dilations[axis]) for axis in range(2))


CASES = [  # (input shape, kernel, filters, strides, dilations, padding)
    ((5, 28, 28, 1), 5, 32, (1, 1), (1, 1), "SAME"),       # seed 000's first layer: 32 lanes; 28 = 3.5 tiles
    ((4, 14, 14, 32), 2, 64, (1, 1), (1, 1), "SAME"),      # seed 000's second: two 32-filter tiles
    ((3, 28, 28, 1), 3, 75, (1, 1), (1, 1), "SAME"),       # 16 lanes, the last tile 11 filters wide
    ((2, 20, 23, 3), 5, 16, (1, 1), (1, 1), "VALID"),      # one 16-lane tile; 19 columns: overlapping tiles
    ((2, 17, 21, 3), 3, 50, (2, 2), (1, 1), "SAME"),       # strided; 50 filters: two 32-lane tiles
    ((2, 19, 24, 4), 3, 10, (1, 2), (2, 1), "VALID"),      # dilated rows, strided columns
    ((2, 10, 10, 2), 3, 33, (1, 1), (1, 1), "VALID"),      # exactly one tile wide
    ((3, 9, 8, 2), 3, 33, (1, 1), (1, 1), "VALID"),        # 6 wide: tiles of 2 rows x 4, 7 rows overlap
    ((2, 9, 9, 50), 3, 25, (1, 1), (1, 1), "SAME"),        # seed 001's third layer at 9x9: 2 x 4 tiles
    ((2, 5, 3, 2), 3, 8, (1, 1), (1, 1), "SAME"),          # 3 wide: narrower than any tile, im2col
    ((2, 1, 6, 2), 3, 8, (1, 1), (1, 1), "SAME"),          # 6 wide but 1 high: im2col
    ((1, 9, 12, 5), 1, 7, (2, 1), (1, 1), "SAME"),         # 1x1 strided (not pointwise)
]


@pytest.mark.parametrize("case", CASES)
def test_direct_matches_torch(case, monkeypatch):
    shape, kernel, out_channels, strides, dilations, padding = case
    out_hw = [(shape[1 + axis] - (kernel - 1) * dilations[axis] - 1) // strides[axis] + 1 if padding == "VALID"
              else -(-shape[1 + axis] // strides[axis]) for axis in range(2)]
    calls = _spy_direct_blocks(monkeypatch)
    rng = np.random.default_rng(shape[3] + out_channels)
    x = rng.standard_normal(shape).astype("float32")
    filters = (rng.standard_normal((kernel, kernel, shape[3], out_channels)) / kernel).astype("float32")
    bias = rng.standard_normal(out_channels).astype("float32")
    with compiled.use_compiled(True):
        y, ctx = ops.conv2d_forward(x, filters, strides, padding, dilations=dilations, bias=bias)
    uses_direct = out_hw[1] >= direct.PIXELS or (out_hw[1] >= direct.PIXELS // 2 and out_hw[0] >= 2
                                                 and out_channels <= direct.NARROW_MAX_OUT_CHANNELS)
    assert ctx["direct"] is uses_direct
    assert [kernel for kernel, _, _ in calls[:1]] == (["claimed"] if uses_direct else [])   # items claimed
    assert all(kernel == "claimed" for kernel, _, _ in calls)
    pads = (((0, 0), (0, 0)) if padding == "VALID"
            else _same_pads(shape, kernel, strides, dilations))
    assert_matches(y, _torch_conv(x, filters, bias, strides, dilations, pads), "float32")
    with compiled.use_compiled(False):
        reference = ops.conv2d(x.astype(np.float64), filters.astype(np.float64), strides, padding,
                               dilations=dilations, bias=bias.astype(np.float64))
    assert_matches(y, reference.astype(np.float32), "float32")


@pytest.mark.parametrize("images", [2, 20])
def test_bands_of_rows_of_a_large_image(images, monkeypatch):
    """An image whose output exceeds the block budget is convolved in bands of rows claimed by the threads (at
    batch 20 too, where the images alone would give every thread its items: `conv.direct_bands`)."""
    calls = _spy_direct_blocks(monkeypatch)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((images, 150, 150, 3)).astype("float32")
    filters = (rng.standard_normal((5, 5, 3, 16)) / 5).astype("float32")
    with compiled.use_compiled(True):
        y, ctx = ops.conv2d_forward(x, filters, 1, "VALID")
    assert ctx["direct"] and not conv.whole_image_blocks(ctx)
    budget_bands = -(-ctx["image_output_bytes"] // direct.OUTPUT_BUDGET_BYTES)
    assert calls and all(kernel == "claimed" and bands >= budget_bands > 1 for kernel, bands, _ in calls)
    assert_matches(y, _torch_conv(x, filters, np.zeros(16, np.float32), (1, 1), (1, 1), ((0, 0), (0, 0))),
                   "float32")


def test_nchw_input_and_the_fused_ops():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 2, 12, 12)).astype(np.float32)          # NCHW: a transposed view inside
    filters = rng.standard_normal((3, 3, 2, 24)).astype("float32")
    with compiled.use_compiled(True):
        y = ops.conv2d(x, filters, 1, "SAME", data_format="NCHW")
        pooled = ops.conv2d_inference(x.transpose(0, 2, 3, 1), filters, 1, "SAME", bias=np.ones(24, "float32"),
                                      activation="relu", pool=("max", 2, 2, "VALID"))
    with compiled.use_compiled(False):
        expected = ops.conv2d(x, filters, 1, "SAME", data_format="NCHW")
        expected_pooled = ops.max_pool2d(np.maximum(expected.transpose(0, 2, 3, 1) + 1, 0), 2, 2, "VALID")
    assert_matches(y, expected, "float32")
    assert_matches(pooled, expected_pooled, "float32")


@pytest.mark.parametrize("shape,kernel,out_channels,padding,activation,bias", [
    ((4, 12, 12, 16), 3, 16, "SAME", "linear", True),         # ResNet-20's first stage, smaller
    ((3, 10, 9, 3), 5, 24, "VALID", "relu", True),            # filters padded to whole vectors
    ((2, 7, 7, 8), 3, 32, "SAME", "relu", False),             # 7 wide: tiles of 2 rows, a ReLU without bias
    ((2, 150, 150, 3), 5, 16, "VALID", "linear", True),       # bands of rows of large images
])
def test_a_training_forward_finishes_its_bias_and_relu_in_the_tiles(shape, kernel, out_channels, padding,
                                                                   activation, bias, monkeypatch):
    """`conv2d_forward` (a training forward, its context kept) on the direct path adds the bias and applies the
    ReLU in the tiles (`convolve`'s `in_tiles`), with the bits of `bias_activation_forward`'s pass over the
    unfinished sums, which it replaces, and PyTorch's numbers."""
    rng = np.random.default_rng(kernel + out_channels)
    x = rng.standard_normal(shape).astype(np.float32)
    filters = (rng.standard_normal((kernel, kernel, shape[3], out_channels)) / kernel).astype(np.float32)
    b = rng.standard_normal(out_channels).astype(np.float32) if bias else None
    calls = _spy_direct_blocks(monkeypatch)
    with compiled.use_compiled(True):
        y, ctx = ops.conv2d_forward(x, filters, 1, padding, bias=b, activation=activation)
        assert ctx["direct"] and calls and all(kernel == "claimed" and finish for kernel, _, finish in calls)
        calls.clear()
        sums, _ = ops.conv2d_forward(x, filters, 1, padding)                # nothing to finish: the sums alone
        assert calls and not any(finish for _, _, finish in calls)
        expected = ops.bias_activation_forward(sums, b, activation)          # the pass the tiles replace
    np.testing.assert_array_equal(y, expected)
    pads = ((tf_same_split(shape[1], kernel, 1), tf_same_split(shape[2], kernel, 1)) if padding == "SAME"
            else ((0, 0), (0, 0)))
    reference = _torch_conv(x, filters, np.zeros(out_channels, np.float32) if b is None else b, (1, 1), (1, 1), pads)
    assert_matches(y, np.maximum(reference, 0) if activation == "relu" else reference, "float32")


def test_a_training_forward_without_bias_or_relu_is_not_finished(monkeypatch):
    """Nothing to add: the tiles store the sums as they are, no epilogue in them or after them."""
    calls = _spy_direct_blocks(monkeypatch)
    rng = np.random.default_rng(2)
    x, filters = rng.standard_normal((1, 9, 9, 2)).astype(np.float32), np.ones((3, 3, 2, 16), np.float32)
    with compiled.use_compiled(True):
        y, ctx = ops.conv2d_forward(x, filters, 1, "VALID")
    assert ctx["direct"] and calls and not any(finish for _, _, finish in calls)
    assert_matches(y, _torch_conv(x, filters, np.zeros(16, np.float32), (1, 1), (1, 1), ((0, 0), (0, 0))), "float32")


@pytest.mark.parametrize("args,expected", [
    ((np.float32, (5, 5), 1, 1, 32, (28, 28), False), True),
    ((np.float64, (5, 5), 1, 1, 32, (28, 28), False), False),     # float32 only
    ((np.float32, (3, 3), 2, 4, 32, (28, 28), False), False),     # grouped
    ((np.float32, (5, 5), 1, 1, 32, (7, 7), False), True),        # 7 wide: tiles of 2 rows x 4 pixels
    ((np.float32, (5, 5), 1, 1, 32, (7, 3), False), False),       # narrower than any tile
    ((np.float32, (5, 5), 1, 1, 32, (1, 7), False), False),       # one row of 7
    ((np.float32, (3, 3), 1, 64, 65, (7, 7), False), False),      # narrow with many filters: the GEMM
    ((np.float32, (3, 3), 1, 64, 65, (8, 8), False), True),
    ((np.float32, (1, 1), 1, 64, 32, (28, 28), True), False),     # pointwise: the input is the column matrix
    ((np.float32, (3, 3), 1, 114, 32, (28, 28), False), False),   # 1026 taps: a long sum, BLAS' strength
    ((np.float32, (3, 3), 1, 64, 129, (28, 28), False), False),   # many filters: a wide product
])
def test_where_the_direct_convolution_runs(args, expected, monkeypatch):
    with compiled.use_compiled(True):
        assert direct.applies(*args) is expected
    monkeypatch.setattr(direct, "VECTOR_BITS", 128)          # SSE or NEON: im2col + GEMM
    with compiled.use_compiled(True):
        assert direct.applies(*args) is False
    with compiled.use_compiled(False):
        assert direct.applies(*args) is False


@pytest.mark.parametrize("images,out_hw,expected", [
    (1, (14, 14), True),       # seed 001's 675-tap layer at batch 1: 196 rows, which BLAS runs far under its peak
    (2, (14, 14), True),       # 392 rows
    (3, (14, 14), False),      # 588 rows: the GEMM (or Winograd)
    (32, (14, 14), False),
    (0, (14, 14), False),      # images not known: AVX2's own limit
])
def test_avx2_takes_up_to_1024_taps_where_the_product_has_few_rows(images, out_hw, expected, monkeypatch):
    """With AVX2 a 513-1024-tap convolution runs direct where its product has at most `AVX2_FEW_ROWS` rows
    (images x output pixels), and its result is float64 im2col's."""
    monkeypatch.setattr(direct, "VECTOR_BITS", 256)
    with compiled.use_compiled(True):
        assert direct.applies(np.float32, (3, 3), 1, 75, 50, out_hw, False, images) is expected
        assert direct.applies(np.float32, (3, 3), 1, 56, 50, out_hw, False, images) is True     # 504 taps
        assert direct.applies(np.float32, (3, 3), 1, 114, 50, out_hw, False, images) is False   # 1026
    monkeypatch.setattr(direct, "VECTOR_BITS", 512)
    with compiled.use_compiled(True):
        assert direct.applies(np.float32, (3, 3), 1, 75, 50, out_hw, False, images) is True
    if not expected:
        return
    monkeypatch.setattr(direct, "VECTOR_BITS", 256)
    rng = np.random.default_rng(images)
    x = rng.standard_normal((images,) + out_hw + (75,)).astype(np.float32)
    filters = (rng.standard_normal((3, 3, 75, 50)) / 26).astype(np.float32)
    bias = rng.standard_normal(50).astype(np.float32)
    calls = []
    original = direct.conv_claimed_block
    monkeypatch.setattr(direct, "conv_claimed_block", lambda *args, **kwargs: calls.append(1)
                        or original(*args, **kwargs))
    with compiled.use_compiled(True):
        y = ops.conv2d_inference(x, filters, 1, "SAME", bias=bias, activation="relu")
    with compiled.use_compiled(False):
        y64 = ops.conv2d_inference(x.astype(np.float64), filters.astype(np.float64), 1, "SAME",
                                   bias=bias.astype(np.float64), activation="relu")
    assert calls
    assert_matches(y, y64.astype(np.float32), "float32")


@pytest.mark.parametrize("bits,out_channels,lanes,padded,pixels", [
    (512, 16, 16, 16, 8), (512, 10, 16, 16, 8), (512, 32, 32, 32, 8), (512, 75, 16, 80, 8), (512, 50, 32, 64, 8),
    (512, 64, 32, 64, 8), (512, 128, 32, 128, 8), (256, 32, 16, 32, 4), (256, 75, 16, 80, 4), (256, 10, 16, 16, 4),
    (256, 24, 8, 24, 8), (256, 8, 8, 8, 8)])
def test_filters_per_tile(bits, out_channels, lanes, padded, pixels, monkeypatch):
    """Two registers' worth of filters unless one leaves fewer padded filters; with AVX2's 16 registers a
    tile of two-register vectors is 4 pixels (8 accumulators), with AVX-512's 32 it stays 8."""
    monkeypatch.setattr(direct, "VECTOR_BITS", bits)        # AVX-512's 32 registers, AVX2's 16
    assert direct.lanes_for(out_channels) == lanes and direct.tile_pixels(lanes) == pixels
    filters, taps, tile_lanes = direct.prepare(np.ones((2, 3, 4, out_channels), np.float32), (1, 9, 10, 4), (2, 1))
    assert tile_lanes == lanes and filters.size == 2 * 3 * 4 * padded
    assert filters.reshape(-1, padded)[:, out_channels:].sum() == 0      # padding filters are zero
    # tap (i, j, c) of a flattened padded image 10 wide, 4 channels, rows dilated by 2
    assert list(taps[:5]) == [0, 1, 2, 3, 4] and taps[12] == 2 * 10 * 4


@pytest.mark.parametrize("pool", [("max", 2, 2, "VALID"), ("max", 2, 2, "SAME"), ("avg", 2, 2, "VALID"),
                                  ("avg", 2, 2, "SAME")])
@pytest.mark.parametrize("activation,with_norm,then", [("relu", True, "linear"), ("linear", True, "relu"),
                                                       ("linear", False, "linear"), ("relu", False, "relu")])
@pytest.mark.parametrize("shape,kernel,out_channels,strides", [
    ((3, 16, 20, 1), 3, 24, 1),          # 16 lanes, 8 x 10 pooled
    ((2, 14, 14, 5), 2, 40, 1),          # two 32-lane tiles, the second 8 filters wide; 7 pooled columns
    ((2, 19, 21, 3), 3, 16, 2),          # strided: a 10 x 11 output, VALID leaves its last column out
    ((2, 21, 17, 3), 3, 16, 2),          # strided: an 11 x 9 output, SAME's max pooling cuts both last windows
])
def test_pooling_in_the_tiles(shape, kernel, out_channels, strides, pool, activation, with_norm, then, monkeypatch):
    """conv2d_inference pools 2x2 windows inside the direct convolution's tiles: the numbers of the ops
    one after another, bit for bit, with NaN kept as the pooling keeps it; a "same" max pooling of an odd size
    too (its cut windows)."""
    calls = spy_bound_calls(monkeypatch, direct, "pooled_tiles", lambda args: 1)
    rng = np.random.default_rng(out_channels)
    x = rng.standard_normal(shape).astype(np.float32)
    x[0, 3, 4, 0] = np.nan
    filters = (rng.standard_normal((kernel, kernel, shape[3], out_channels)) / kernel).astype(np.float32)
    bias = rng.standard_normal(out_channels).astype(np.float32)
    norm = [rng.standard_normal(out_channels).astype(np.float32) for _ in range(3)]
    norm.append((rng.random(out_channels) + 0.2).astype(np.float32))
    scale, shift = ops.batch_norm_affine(*norm, 1e-3, np.float32) if with_norm else (None, None)
    with compiled.use_compiled(True):
        pooled = ops.conv2d_inference(x, filters, strides, "SAME", bias=bias, activation=activation, scale=scale,
                                      shift=shift, then=then, pool=pool)
        y = ops.conv2d(x, filters, strides, "SAME", bias=bias, activation=activation)
        if with_norm:
            y = ops.batch_norm_infer(y, *norm, 3, 1e-3)
        if then == "relu":
            y = np.where(y < 0, np.float32(0), y)
        expected = (ops.max_pool2d if pool[0] == "max" else ops.avg_pool2d)(y, *pool[1:])
    # a window the edge cuts to one row or column: in the tiles for a max pooling (that row read twice)
    in_tiles = pool[3] == "VALID" or pool[0] == "max" or all(size % 2 == 0 for size in y.shape[1:3])
    assert bool(calls) is in_tiles
    assert np.isnan(pooled).any() and np.isnan(expected).any()
    np.testing.assert_array_equal(pooled, expected)


@pytest.mark.parametrize("pool", [None, ("max", 2, 2, "VALID")])
def test_the_direct_convolution_pads_each_block(pool, monkeypatch):
    """conv2d, conv2d_inference and conv2d_forward (whose context keeps the unpadded input): the direct
    convolution pads each block of images (pooled in the tiles: each image) into a scratch block instead of
    padding the whole input first, and gives the whole padded input's numbers bit for bit (blocks of 3 of 10
    images, the last one short)."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((10, 14, 14, 32)).astype(np.float32)
    filters = (rng.standard_normal((2, 2, 32, 64)) / 8).astype(np.float32)
    bias = rng.standard_normal(64).astype(np.float32)
    monkeypatch.setattr(direct, "OUTPUT_BUDGET_BYTES", 3 * 14 * 14 * 64 * 4)
    monkeypatch.setattr(winograd_pool, "MIN_CHANNELS", 1 << 30)     # 2x2 and pooled: the direct kernel's tiles
    padded = []
    original = conv.pad_spatial
    monkeypatch.setattr(conv, "pad_spatial", lambda *args, **kw: padded.append(1) or original(*args, **kw))
    with compiled.use_compiled(True):
        _, w, strides, dilations, padding, _, groups = conv._check_conv_args(x, filters, 1, "SAME", "NHWC", None, None)
        whole = conv._forward_context(x, w, strides, padding, dilations, groups, "NHWC")       # the padded input
        assert len(padded) == 1 and whole["x_pad"].shape == (10, 15, 15, 32)
        expected = np.empty((10, 14, 14, 64), np.float32)
        conv.convolve(whole, lambda rows: pytest.fail("finished in the tiles"), expected, in_tiles=(bias, "relu"))
        forward, ctx = conv.conv2d_forward(x, filters, 1, "SAME", bias=bias, activation="relu")
        assert ctx["x_pad"] is None and ctx["x"] is x
        if pool is None:
            got = ops.conv2d(x, filters, 1, "SAME", bias=bias, activation="relu")
        else:
            got = ops.conv2d_inference(x, filters, 1, "SAME", bias=bias, activation="relu", pool=pool)
            expected, forward = (ops.max_pool2d(value, *pool[1:]) for value in (expected, forward))
    assert len(padded) == 1
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(forward, expected)


def test_pooling_in_the_tiles_is_preferred_to_winograd(monkeypatch):
    """A 3x3 convolution that Winograd computes alone is pooled in the direct kernel's tiles when a 2x2
    pooling follows (its output is never written); the plain convolution stays Winograd's."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    x = rng.standard_normal((8, 14, 14, 16)).astype(np.float32)
    filters = (rng.standard_normal((3, 3, 16, 24)) / 12).astype(np.float32)
    bias = rng.standard_normal(24).astype(np.float32)
    calls = spy_bound_calls(monkeypatch, direct, "pooled_tiles", lambda args: "pooled_tiles")
    original = direct.conv_block
    monkeypatch.setattr(direct, "conv_block", lambda *args: calls.append("conv_block") or original(*args))
    monkeypatch.setattr(conv, "DIRECT_BEFORE_WINOGRAD", {})     # 16 -> 24 filters: else direct before Winograd
    with compiled.use_compiled(True):
        assert conv._forward_context(x, filters, (1, 1), "SAME", (1, 1), 1, "NHWC")["winograd"]
        pooled = ops.conv2d_inference(x, filters, 1, "SAME", bias=bias, activation="relu",
                                      pool=("max", 2, 2, "VALID"))
        assert calls == ["pooled_tiles"] * len(calls) and calls
        calls.clear()
        ops.conv2d(x, filters, 1, "SAME", bias=bias, activation="relu")
        assert calls == []                                     # Winograd's
    x_t = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    expected = torch.nn.functional.max_pool2d(torch.relu(torch.nn.functional.conv2d(
        x_t, torch.from_numpy(filters.transpose(3, 2, 0, 1).copy()), torch.from_numpy(bias), padding=1)), 2)
    assert_matches(pooled, expected.numpy().transpose(0, 2, 3, 1), "float32")


def test_a_small_direct_convolution_stays_on_the_calling_thread(monkeypatch):
    """Under direct.SMALL_WORK multiply-adds the blocks run where they are called (a hand-over to another
    thread costs more than it saves); above it they are shared among the threads."""
    regions = []

    def recording(original):
        def record(*args, **kw):                        # a region shared among threads (not `alone`)
            if not kw.get("alone", False):
                regions.append(original.__name__)
            return original(*args, **kw)
        return record

    for name in ("run_in_parallel", "run_claimed"):    # images, and pooled images, claimed in compiled code
        monkeypatch.setattr(conv, name, recording(getattr(conv, name)))
    filters = np.ones((3, 3, 4, 32), np.float32)
    small = np.ones((2, 14, 14, 4), np.float32)        # 2 * 196 * 36 * 32 = 0.45M multiply-adds
    with compiled.use_compiled(True):
        assert conv._forward_context(small, filters, (1, 1), "SAME", (1, 1), 1, "NHWC")["direct"]
        y = ops.conv2d(small, filters, 1, "SAME")
        pooled = ops.conv2d_inference(small, filters, 1, "SAME", pool=("max", 2, 2, "VALID"))
        assert regions == []
        monkeypatch.setattr(direct, "SMALL_WORK", 1000)
        assert np.array_equal(ops.conv2d(small, filters, 1, "SAME"), y)
        assert np.array_equal(ops.conv2d_inference(small, filters, 1, "SAME", pool=("max", 2, 2, "VALID")), pooled)
    assert regions == ["run_claimed", "run_claimed"]
    assert y[0, 5, 5, 0] == 36 and y[0, 0, 0, 0] == 16 and pooled[0, 0, 0, 0] == 36


@pytest.mark.parametrize("bands", [1, 3, 4])
@pytest.mark.parametrize("padding, pads", [("SAME", ((1, 2), (2, 2))), ("VALID", None)])
def test_threads_claiming_the_pooled_images_compute_each_once_with_the_bits_of_one_thread(padding, pads, bands):
    """`conv_pool_block` called by 3 threads at once with one counter: every item (a band of an image's pooled
    rows: 1, 3 or 4 bands of 6 or 4 pooled rows, some uneven) is claimed by exactly one call (the counter ends
    at items + 3, one failed claim per call) and the output has the bits of one call alone, which are those of
    the ops one after another; unpadded (`pads` None) the input is read as it is."""
    import threading
    rng = np.random.default_rng(5)
    x = rng.standard_normal((11, 12, 16, 3)).astype(np.float32)
    filters = (rng.standard_normal((4, 5, 3, 24)) / 5).astype(np.float32)     # SAME: 1 row above, 2 below
    bias = rng.standard_normal(24).astype(np.float32)
    source = x if pads is None else np.pad(x, ((0, 0),) + pads + ((0, 0),))
    with compiled.use_compiled(True):
        y = ops.conv2d(x, filters, 1, padding, bias=bias, activation="relu")
        expected = ops.max_pool2d(y, 2, 2, "VALID")
    prepared = direct.prepare(filters, source.shape, (1, 1))
    epilogue = direct.tile_epilogue(direct.padded_filters(prepared), bias, "relu", None, None, "linear", False)
    alone, together = (np.full(expected.shape, np.nan, np.float32) for _ in range(2))
    direct.conv_pool_block(x if pads else source, pads, prepared, (1, 1), epilogue, alone, np.zeros(1, np.int64),
                           bands)
    counter = np.zeros(1, np.int64)
    threads = [threading.Thread(target=direct.conv_pool_block, args=(
        x if pads else source, pads, prepared, (1, 1), epilogue, together, counter, bands)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counter[0] == len(x) * bands + 3
    np.testing.assert_array_equal(alone, expected)
    np.testing.assert_array_equal(together, alone)


@pytest.mark.parametrize("images, small_work, bands", [(1, 1000, 7), (3, 1000, 7), (4, 1000, 1), (9, 1000, 1),
                                                      (1, None, 1)])
def test_a_pooled_convolution_of_few_images_shares_their_pooled_rows(images, small_work, bands, monkeypatch):
    """Under `conv.POOLED_BAND_IMAGES` images the threads claim pooled rows, else whole images, and one thread
    (less work than `direct.SMALL_WORK`) whole images; the numbers are the ops' one after another either way, and
    PyTorch's.  `bands` out of range and an input of other images are refused by name."""
    if small_work is not None:
        monkeypatch.setattr(direct, "SMALL_WORK", small_work)
    seen = spy_bound_calls(monkeypatch, direct, "pooled_tiles", lambda args: args[6])      # the bands
    rng = np.random.default_rng(images)
    x = rng.standard_normal((images, 14, 14, 8)).astype(np.float32)
    filters = (rng.standard_normal((3, 3, 8, 16)) / 8).astype(np.float32)
    with compiled.use_compiled(True):
        pooled = ops.conv2d_inference(x, filters, 1, "SAME", activation="relu", pool=("max", 2, 2, "VALID"))
        expected = ops.max_pool2d(ops.conv2d(x, filters, 1, "SAME", activation="relu"), 2, 2, "VALID")
    assert seen and set(seen) == {bands}
    np.testing.assert_array_equal(pooled, expected)
    torch = pytest.importorskip("torch")
    oracle = torch.nn.functional.max_pool2d(torch.relu(torch.nn.functional.conv2d(
        torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), torch.from_numpy(filters.transpose(3, 2, 0, 1).copy()),
        padding=1)), 2)
    assert_matches(pooled, oracle.numpy().transpose(0, 2, 3, 1), "float32")
    prepared = direct.prepare(filters, (images, 16, 16, 8), (1, 1))
    epilogue = direct.tile_epilogue(direct.padded_filters(prepared), None, "relu", None, None, "linear", False)
    with pytest.raises(ValueError, match="argument `bands` must be 1 to the 7 pooled rows, got 8"):
        direct.conv_pool_block(x, ((1, 1), (1, 1)), prepared, (1, 1), epilogue, pooled, np.zeros(1, np.int64), 8)
    with pytest.raises(ValueError, match=f"argument `x` must hold the {images} images of `pooled`, got {images + 1}"):
        direct.conv_pool_block(np.concatenate([x, x[:1]]), ((1, 1), (1, 1)), prepared, (1, 1), epilogue, pooled,
                               np.zeros(1, np.int64))
    with pytest.raises(ValueError, match=r"argument `clip` must be \(False, False\) where the maxima are tracked"):
        direct.conv_pool_block(x, ((1, 1), (1, 1)), prepared, (1, 1), epilogue, pooled, np.zeros(1, np.int64),
                               argmax=np.zeros(pooled.shape, np.uint8), clip=(True, False))
    too_many = np.empty((images, 8, 7, 16), np.float32)     # windows past the 14 output rows, cut or not
    for clip in ((False, False), (True, False)):
        with pytest.raises(ValueError, match=r"arguments `pooled` and `clip` must keep the tiles inside the padded "
                                             rf"input \(16, 16\): pooled \(8, 7\) with clip \({clip[0]}, False\)"):
            direct.conv_pool_block(x, ((1, 1), (1, 1)), prepared, (1, 1), epilogue, too_many, np.zeros(1, np.int64),
                                   clip=clip)


def test_a_claim_is_one_atomic_add_whatever_the_threads():
    """`claims.claim` from 4 threads at once, 1,000,000 claims each in compiled code: every number 0..3,999,999
    claimed exactly once (a plain read-then-write would hand some out twice)."""
    import threading
    import numba
    from convscope.ops.claims import claim

    @numba.njit(nogil=True)
    def take(counter, claimed):
        for k in range(claimed.shape[0]):
            claimed[k] = claim(counter, 1 << 62)

    counter = np.zeros(1, np.int64)
    claimed = [np.empty(1_000_000, np.int64) for _ in range(4)]
    take(np.zeros(1, np.int64), np.empty(1, np.int64))            # compiled before the threads start
    threads = [threading.Thread(target=take, args=(counter, part)) for part in claimed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    np.testing.assert_array_equal(np.sort(np.concatenate(claimed)), np.arange(4_000_000))
    assert counter[0] == 4_000_000
    with pytest.raises(TypeError, match="expected an int64 array"):
        numba.njit(lambda c: claim(c, 1))(np.zeros(1, np.int32))
    from convscope.ops.claims import mark_done
    done = np.zeros(1, np.int64)
    assert numba.njit(lambda c: mark_done(c) + mark_done(c))(done) == 1 and done[0] == 2     # the counts before
    with pytest.raises(TypeError, match="claims.mark_done: expected an int64 array"):
        numba.njit(lambda c: mark_done(c))(np.zeros(1, np.int32))


def test_odd_outputs_are_not_pooled_in_the_tiles():
    """A SAME pooling of an odd-sized output has windows of one row: the block epilogue pools it."""
    x = np.ones((1, 9, 11, 1), np.float32)
    filters = np.ones((3, 3, 1, 16), np.float32)
    with compiled.use_compiled(True):
        ctx = conv._forward_context(x, filters, (1, 1), "SAME", (1, 1), 1, "NHWC")
        pooled = ops.conv2d_inference(x, filters, 1, "SAME", pool=("max", 2, 2, "SAME"))
    assert not conv.pools_in_tiles(ctx, (2, 2, 2, 2, 0, 0), (5, 6))
    assert conv.pools_in_tiles(ctx, (2, 2, 2, 2, 0, 0), (4, 5))
    assert pooled.shape == (1, 5, 6, 16) and pooled[0, 4, 5, 0] == 4       # the corner window: 2x2 of ones


@pytest.mark.parametrize("shape,kernel,out_channels,padding,dilations", [
    ((3, 14, 14, 32), 2, 64, "SAME", 1),     # seed 000's second layer
    ((2, 12, 17, 16), 3, 20, "VALID", 1),
    ((2, 13, 12, 24), 3, 8, "SAME", 2),
])
def test_input_gradient_as_a_direct_transposed_convolution(shape, kernel, out_channels, padding, dilations,
                                                           monkeypatch):
    """From 16 input channels, stride 1, the input gradient is the output gradient correlated with the
    flipped filters: computed by the direct kernel, it matches float64 im2col and PyTorch."""
    torch = pytest.importorskip("torch")
    calls = []
    original = direct.conv_block
    monkeypatch.setattr(direct, "conv_block", lambda *args, **kwargs: calls.append(args[-1].shape)
                        or original(*args, **kwargs))
    rng = np.random.default_rng(out_channels)
    x = rng.standard_normal(shape).astype(np.float32)
    filters = (rng.standard_normal((kernel, kernel, shape[3], out_channels)) / kernel).astype(np.float32)
    with compiled.use_compiled(True):
        y, ctx = ops.conv2d_forward(x, filters, 1, padding, dilations=dilations)
        grad = rng.standard_normal(y.shape).astype(np.float32)
        calls.clear()
        grad_x, grad_w = ops.conv2d_backward(grad, ctx)
    assert calls and all(c[1:] == shape[1:] for c in calls)            # input-sized blocks: the transposed conv
    pads = (_same_pads(shape, kernel, (1, 1), (dilations, dilations)) if padding == "SAME"
            else ((0, 0), (0, 0)))
    x_t = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).requires_grad_()
    w_t = torch.from_numpy(filters.transpose(3, 2, 0, 1).copy()).requires_grad_()
    x_padded = torch.nn.functional.pad(x_t, (pads[1][0], pads[1][1], pads[0][0], pads[0][1]))
    out = torch.nn.functional.conv2d(x_padded, w_t, dilation=dilations)
    out.backward(torch.from_numpy(grad.transpose(0, 3, 1, 2).copy()))
    assert_matches(grad_x, x_t.grad.numpy().transpose(0, 2, 3, 1), "float32")
    assert_matches(grad_w, w_t.grad.numpy().transpose(2, 3, 1, 0), "float32")


@pytest.mark.parametrize("activation", ["relu", "linear"])
@pytest.mark.parametrize("shape,out_channels,padding", [((3, 16, 20, 2), 24, "SAME"), ((2, 15, 17, 1), 40, "VALID")])
def test_training_pooling_in_the_tiles_keeps_the_argmax(shape, out_channels, padding, activation, monkeypatch):
    """conv2d_max_pool_forward pools in the tiles too: the pooled values, each window's first-maximum
    offset (ties: the first; NaN wins) and so the backward pass are those of the ops one after another."""
    calls = spy_bound_calls(monkeypatch, direct, "pooled_tiles", lambda args: args[-1])     # tracked: the argmax
    rng = np.random.default_rng(out_channels)
    x = rng.standard_normal(shape).astype(np.float32)
    x[0, :6, :6, :] = 0.0                                        # equal sums: ties in the first windows
    x[1, 5, 7, 0] = np.nan
    filters = (rng.standard_normal((3, 3, shape[3], out_channels)) / 3).astype(np.float32)
    bias = np.zeros(out_channels, np.float32)
    with compiled.use_compiled(True):
        pooled, conv_ctx, pool_ctx = ops.conv2d_max_pool_forward(x, filters, 1, padding, bias=bias,
                                                                 activation=activation, pool=(2, 2, "VALID"))
        y, _ = ops.conv2d_forward(x, filters, 1, padding, bias=bias, activation=activation)
        expected, expected_ctx = ops.max_pool2d_forward(y, 2, 2, "VALID")
        grad = rng.standard_normal(pooled.shape).astype(np.float32)
        grads = ops.max_pool2d_backward(grad, pool_ctx), ops.max_pool2d_backward(grad, expected_ctx)
    assert calls and all(calls)                                  # tiles, with the offsets
    np.testing.assert_array_equal(pooled, expected)
    np.testing.assert_array_equal(pool_ctx["argmax"], expected_ctx["argmax"])
    assert (pool_ctx["argmax"][0, :2, :2] == 0).all() and np.isnan(pooled).any()
    np.testing.assert_array_equal(*grads)


@pytest.mark.parametrize("shape,kernel,out_channels,strides,dilations", [
    ((3, 16, 18, 1), 5, 32, 1, 1),       # 25 taps: the last group of 8 overlaps the one before
    ((2, 12, 12, 32), 2, 64, 1, 1),      # seed 000's second layer: 128 taps
    ((2, 13, 11, 3), 3, 40, 2, 1),       # 27 taps, strided; 40 filters padded to 48
    ((2, 14, 15, 4), 3, 16, 1, 2),       # dilated
])
def test_filter_gradient_on_the_direct_kernel(shape, kernel, out_channels, strides, dilations, monkeypatch):
    """From 8 taps, the filter gradient sums 8 taps x 16/32 filters over the output pixels in registers:
    it matches PyTorch and float64 im2col."""
    torch = pytest.importorskip("torch")
    calls = []
    original = direct.filter_grad_block
    monkeypatch.setattr(direct, "filter_grad_block", lambda *args: calls.append(1) or original(*args))
    rng = np.random.default_rng(out_channels + kernel)
    x = rng.standard_normal(shape).astype(np.float32)
    filters = (rng.standard_normal((kernel, kernel, shape[3], out_channels)) / kernel).astype(np.float32)
    with compiled.use_compiled(True):
        y, ctx = ops.conv2d_forward(x, filters, strides, "VALID", dilations=dilations)
        grad = rng.standard_normal(y.shape).astype(np.float32)
        _, grad_w = ops.conv2d_backward(grad, ctx, need_input_grad=False)
    assert calls
    x_t = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    w_t = torch.from_numpy(filters.transpose(3, 2, 0, 1).copy()).requires_grad_()
    torch.nn.functional.conv2d(x_t, w_t, stride=strides, dilation=dilations).backward(
        torch.from_numpy(grad.transpose(0, 3, 1, 2).copy()))
    assert_matches(grad_w, w_t.grad.numpy().transpose(2, 3, 1, 0), "float32")
    with compiled.use_compiled(False):
        _, ctx64 = ops.conv2d_forward(x.astype(np.float64), filters.astype(np.float64), strides, "VALID",
                                      dilations=dilations)
        reference = ops.conv2d_backward(grad.astype(np.float64), ctx64, need_input_grad=False)[1]
    assert_matches(grad_w, reference.astype(np.float32), "float32")


@pytest.mark.parametrize("shape,kernel,out_channels", [
    ((2, 34, 34, 16), 3, 16),            # ResNet-20's first stage: 144 taps, 9 groups of 16
    ((2, 37, 36, 3), 5, 16),             # 75 taps: the last group of 16 overlaps the one before
    ((2, 34, 34, 16), 3, 12),            # 12 filters padded to 16
])
def test_the_filter_gradient_sums_16_taps_at_a_time_on_large_images(shape, kernel, out_channels, monkeypatch):
    """Where a vector of filters takes one of 32 registers (AVX-512, 16 filters) and an image has
    `WIDE_TAPS_MIN_PIXELS` output pixels, the filter gradient sums 16 taps at a time: each tap's sum in the
    same order as 8 at a time (the same bits), PyTorch's and float64 im2col's numbers."""
    torch = pytest.importorskip("torch")
    if not compiled.available() or direct.VECTOR_BITS < 512:
        pytest.skip("16 taps at a time need 512-bit vectors")
    rng = np.random.default_rng(kernel + out_channels)
    x = rng.standard_normal(shape).astype(np.float32)
    filters = (rng.standard_normal((kernel, kernel, shape[3], out_channels)) / kernel).astype(np.float32)
    flags, original = [], direct._sixteen_taps
    monkeypatch.setattr(direct, "_sixteen_taps", lambda *args: flags.append(original(*args)) or flags[-1])
    grads = []
    with compiled.use_compiled(True):
        for min_pixels in (direct.WIDE_TAPS_MIN_PIXELS, 1 << 40):
            monkeypatch.setattr(direct, "WIDE_TAPS_MIN_PIXELS", min_pixels)
            y, ctx = ops.conv2d_forward(x, filters, 1, "VALID")
            grad = np.random.default_rng(5).standard_normal(y.shape).astype(np.float32)
            grads.append(ops.conv2d_backward(grad, ctx, need_input_grad=False)[1])
    assert flags and flags[0] and not flags[-1]
    np.testing.assert_array_equal(grads[0], grads[1])
    w_t = torch.from_numpy(filters.transpose(3, 2, 0, 1).copy()).requires_grad_()
    torch.nn.functional.conv2d(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), w_t).backward(
        torch.from_numpy(grad.transpose(0, 3, 1, 2).copy()))
    assert_matches(grads[0], w_t.grad.numpy().transpose(2, 3, 1, 0), "float32")
    with compiled.use_compiled(False):
        _, ctx64 = ops.conv2d_forward(x.astype(np.float64), filters.astype(np.float64), 1, "VALID")
        reference = ops.conv2d_backward(grad.astype(np.float64), ctx64, need_input_grad=False)[1]
    assert_matches(grads[0], reference.astype(np.float32), "float32")


@pytest.mark.parametrize("args,expected", [
    ((np.float32, (5, 5), 1, 1, 32, False), True),          # 25 taps in 4 groups of 8
    ((np.float32, (3, 3), 1, 1, 75, False), False),         # 9 taps in 2 groups: the GEMM is faster
    ((np.float32, (2, 2), 1, 2, 8, False), True),           # exactly 8
    ((np.float32, (2, 2), 1, 1, 8, False), False),          # 4 taps: fewer than a group
    ((np.float64, (5, 5), 1, 1, 32, False), False),
    ((np.float32, (1, 1), 1, 64, 32, True), False),         # pointwise: the input is the column matrix
])
def test_where_the_filter_gradient_runs_direct(args, expected):
    with compiled.use_compiled(True):
        assert direct.computes_filter_grad(*args) is expected
    with compiled.use_compiled(False):
        assert direct.computes_filter_grad(*args) is False


def test_avx2_tiles_of_8_filters(monkeypatch):
    """With AVX2's 16 registers the tiles hold 8 filters: forward, pooling with the argmax, the input
    gradient and the filter gradient match float64 im2col and the pooling one after another."""
    monkeypatch.setattr(direct, "VECTOR_BITS", 256)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((3, 14, 18, 20)).astype(np.float32)
    filters = (rng.standard_normal((3, 3, 20, 20)) / 9).astype(np.float32)     # 20 filters: 8 + 8 + 4
    bias = rng.standard_normal(20).astype(np.float32)
    with compiled.use_compiled(True):
        y, ctx = ops.conv2d_forward(x, filters, 1, "SAME", bias=bias, activation="relu")
        pooled, _, pool_ctx = ops.conv2d_max_pool_forward(x, filters, 1, "SAME", bias=bias, activation="relu")
        expected, expected_ctx = ops.max_pool2d_forward(y, 2, 2, "VALID")
        grad = rng.standard_normal(y.shape).astype(np.float32)
        grad_x, grad_w = ops.conv2d_backward(grad, ctx)
    assert ctx["direct"] and direct.lanes_for(20) == 8
    np.testing.assert_array_equal(pooled, expected)
    np.testing.assert_array_equal(pool_ctx["argmax"], expected_ctx["argmax"])
    with compiled.use_compiled(False):
        y64, ctx64 = ops.conv2d_forward(x.astype(np.float64), filters.astype(np.float64), 1, "SAME",
                                        bias=bias.astype(np.float64), activation="relu")
        grads64 = ops.conv2d_backward(grad.astype(np.float64), ctx64)
    assert_matches(y, y64.astype(np.float32), "float32")
    assert_matches(grad_x, grads64[0].astype(np.float32), "float32")
    assert_matches(grad_w, grads64[1].astype(np.float32), "float32")


@pytest.mark.parametrize("case", [((3, 12, 13, 16), 3, 16, (1, 1), "SAME"), ((2, 11, 9, 5), 3, 32, (2, 1), "VALID"),
                                  ((2, 9, 6, 3), 3, 48, (1, 1), "SAME"), ((2, 10, 10, 7), 2, 75, (1, 1), "VALID")])
def test_avx2_tiles_of_4_pixels_by_16_filters_match_8_by_8_bitwise(case, monkeypatch):
    """AVX2's tiles of 4 pixels x 16 filters (rows of 4, 2 x 2 for outputs narrower than 8, overlapping last
    tiles) sum each output in the order of the 8 x 8 tiles, and its filter gradient 6 taps x 16 filters at a
    time (the last 6 overlapping) in the order of 8 x 8: the same bits, and PyTorch's numbers."""
    shape, kernel, out_channels, strides, padding = case
    monkeypatch.setattr(direct, "VECTOR_BITS", 256)
    rng = np.random.default_rng(out_channels)
    x = rng.standard_normal(shape).astype(np.float32)
    filters = (rng.standard_normal((kernel, kernel, shape[3], out_channels)) / kernel).astype(np.float32)
    bias = np.zeros(out_channels, np.float32)
    assert direct.lanes_for(out_channels) == 16 and direct.tile_pixels(16) == 4
    grad = rng.standard_normal(tuple(np.shape(ops.conv2d(x, filters, strides, padding)))).astype(np.float32)
    with compiled.use_compiled(True):
        y, ctx = ops.conv2d_forward(x, filters, strides, padding, bias=bias)
        grad_filters = ops.conv2d_backward(grad, ctx)[1]
        assert ctx["direct"] and direct.computes_filter_grad(np.float32, (kernel, kernel), 1, shape[3], out_channels,
                                                             False)
        monkeypatch.setattr(direct, "lanes_for", lambda out_channels: 8)
        eight, ctx8 = ops.conv2d_forward(x, filters, strides, padding, bias=bias)
        grad_filters8 = ops.conv2d_backward(grad, ctx8)[1]
    assert np.array_equal(y, eight) and np.array_equal(grad_filters, grad_filters8)
    pads = ((0, 0), (0, 0)) if padding == "VALID" else _same_pads(shape, kernel, strides, (1, 1))
    assert_matches(y, _torch_conv(x, filters, bias, strides, (1, 1), pads), "float32")


@pytest.mark.parametrize("width", [12, 13])
@pytest.mark.parametrize("mode", ["max", "avg"])
def test_avx2_pooled_tiles_of_2_by_2_pixels_by_16_filters_match_8_filters_bitwise(width, mode, monkeypatch):
    """With AVX2's 16-filter tiles each 2x2 window is its own tile (even and odd rows of windows): the
    pooled values and the maxima's offsets are those of the 2 x 4 tiles of 8 filters, and the ops one by one."""
    monkeypatch.setattr(direct, "VECTOR_BITS", 256)
    rng = np.random.default_rng(width)
    x = rng.standard_normal((3, 10, width, 5)).astype(np.float32)
    filters = (rng.standard_normal((3, 3, 5, 32)) / 3).astype(np.float32)
    bias, scale, shift = (rng.standard_normal(32).astype(np.float32) for _ in range(3))
    pool = (mode, 2, 2, "VALID")
    assert direct.tile(32) == (16, 4)
    with compiled.use_compiled(True):
        pooled = ops.conv2d_inference(x, filters, 1, "SAME", bias=bias, activation="relu", scale=scale, shift=shift,
                                      pool=pool)
        out, _, pool_ctx = ops.conv2d_max_pool_forward(x, filters, 1, "SAME", bias=bias, activation="relu",
                                                       pool=(2, 2, "VALID"))
        monkeypatch.setattr(direct, "lanes_for", lambda out_channels: 8)
        eight = ops.conv2d_inference(x, filters, 1, "SAME", bias=bias, activation="relu", scale=scale, shift=shift,
                                     pool=pool)
        out8, _, pool_ctx8 = ops.conv2d_max_pool_forward(x, filters, 1, "SAME", bias=bias, activation="relu",
                                                         pool=(2, 2, "VALID"))
    assert np.array_equal(pooled, eight) and np.array_equal(out, out8)
    assert np.array_equal(pool_ctx["argmax"], pool_ctx8["argmax"])
    with compiled.use_compiled(False):
        expected = ops.conv2d_inference(x, filters, 1, "SAME", bias=bias, activation="relu", scale=scale,
                                        shift=shift, pool=pool)
    assert_matches(pooled, expected, "float32")


@pytest.mark.parametrize("seed", range(12))
def test_claimed_bands_are_the_blocks_bits(seed):
    """`conv_claimed_block` (images or bands of rows claimed from a counter, each band's padded rows filled into
    a scratch block, or the padded input read as it is) gives `conv_block`'s bits on the whole padded input, with
    and without the tiles' finish, and float64 im2col's numbers: strides, dilations, narrow outputs (tiles of 2
    rows), 16 and 32 lanes."""
    rng = np.random.default_rng(seed)
    channels, out_channels = int(rng.choice([1, 3, 5])), int(rng.choice([7, 16, 32, 40]))
    kernel, step, dilation = int(rng.choice([1, 3, 5])), int(rng.integers(1, 3)), int(rng.integers(1, 3))
    width = 4 * step + (kernel - 1) * dilation if seed % 3 == 0 else int(rng.integers(12, 30))   # 4 wide: 2 rows
    x = rng.standard_normal((int(rng.integers(1, 4)), int(rng.integers(12, 30)), width, channels)).astype(np.float32)
    filters = rng.standard_normal((kernel, kernel, channels, out_channels)).astype(np.float32)
    strides, dilations = (step, step), (dilation, dilation)
    ctx = conv._forward_context(x, filters, strides, "SAME" if seed % 2 else "VALID", dilations, 1, "NHWC")
    x_pad = np.ascontiguousarray(ctx["x_pad"])
    prepared = direct.prepare(filters, x_pad.shape, dilations)
    bias = rng.standard_normal(out_channels)
    finish = None if seed % 4 < 2 else direct.finish_vectors(prepared, bias, True, None, None, False, False, cap=1.5)
    expected = np.empty((len(x),) + tuple(ctx["out_hw"]) + (out_channels,), np.float32)
    direct.conv_block(x_pad, 0, 0, prepared, strides, expected, finish=finish)
    with compiled.use_compiled(False):                  # the oracle: float64 im2col, then the finish in NumPy
        oracle = ops.conv2d(x.astype(np.float64), filters.astype(np.float64), strides,
                            "SAME" if seed % 2 else "VALID", dilations=dilations)
    if finish is not None:
        oracle = np.minimum(np.maximum(oracle + bias, 0), 1.5)
    assert_matches(expected, oracle.astype(np.float32), "float32")
    height = 2 if ctx["out_hw"][1] < direct.PIXELS else 1
    reach = (kernel - 1) * dilation + 1
    for bands in sorted({1, 2, int(rng.integers(1, ctx["out_hw"][0] // height + 1)), ctx["out_hw"][0] // height}):
        for source, pads in ((x, ctx["pads"]), (x_pad, None)):
            out = np.full_like(expected, np.nan)
            counter = np.zeros(1, np.int64)
            direct.conv_claimed_block(source, pads, prepared, strides, reach, out, counter, bands, finish=finish)
            np.testing.assert_array_equal(out, expected)
            assert counter[0] >= len(x) * bands            # every item claimed


def test_claimed_bands_check_their_arguments():
    """`conv_claimed_block`'s messages name the argument, what it must be and what it got."""
    x = np.zeros((2, 10, 12, 3), np.float32)
    prepared = direct.prepare(np.zeros((3, 3, 3, 16), np.float32), x.shape, (1, 1))
    out, counter = np.empty((2, 8, 10, 16), np.float32), np.zeros(1, np.int64)
    with pytest.raises(ValueError, match=r"argument `x` must hold the 2 images of `out`, got 1"):
        direct.conv_claimed_block(x[:1], None, prepared, (1, 1), 3, out, counter)
    with pytest.raises(ValueError, match=r"argument `bands` must be 1 to 8 \(the 8 output rows in tiles 1 high\), "
                                         r"got 9"):
        direct.conv_claimed_block(x, None, prepared, (1, 1), 3, out, counter, bands=9)
    with pytest.raises(ValueError, match=r"argument `out` must be C-contiguous"):
        direct.conv_claimed_block(x, None, prepared, (1, 1), 3, out[:, :, ::2], counter)
    narrow = np.empty((2, 1, 6, 16), np.float32)
    with pytest.raises(ValueError, match=r"argument `out` must be at least 8 wide, or 4 wide and 2 high, got "
                                         r"\(2, 1, 6, 16\)"):
        direct.conv_claimed_block(x, None, prepared, (1, 1), 3, narrow, counter)


def test_kept_filters_are_used_while_the_same_and_made_anew_when_changed():
    """`KeptFilters` hands back its form (here the direct kernel's padded filters) while the filters keep their
    bits, and makes a new one when any filter changes (by one bit: -0.0 for 0.0, a NaN of other bits, one value),
    never writing into a form it handed out before; a form of another kind is made anew too."""
    rng = np.random.default_rng(8)
    w = rng.standard_normal((3, 3, 4, 50)).astype(np.float32)
    w[0, 0, 0, 0] = 0.0
    w[1, 1, 1, 1] = np.nan
    kept = KeptFilters()
    first = direct.prepare(w, (1, 9, 9, 4), (1, 1), kept)[0]
    np.testing.assert_array_equal(first.reshape(36, 64), np.pad(w.reshape(36, 50), ((0, 0), (0, 14))))
    assert direct.prepare(w, (1, 9, 9, 4), (1, 1), kept)[0] is first
    handed_out, before = first, first.copy()
    other_nan = np.array([0x7FC00001], np.int32).view(np.float32)[0]      # a NaN of other bits than np.nan's
    for change in ((0, 0, 0, 0, -0.0), (1, 1, 1, 1, other_nan), (2, 2, 3, 49, 7.0)):
        *where, value = change
        w[tuple(where)] = value
        current = direct.prepare(w, (1, 9, 9, 4), (1, 1), kept)[0]
        assert current is not first and not np.shares_memory(current, first)
        np.testing.assert_array_equal(current.reshape(36, 64).view(np.int32)[:, :50], w.reshape(36, 50).view(np.int32))
        assert not current.reshape(36, 64)[:, 50:].any()
        first = current
    np.testing.assert_array_equal(handed_out.view(np.int32), before.view(np.int32))    # never written into
    assert kept.get(w, "another form", lambda filters: filters[:1]).shape == (1, 3, 4, 50)
    assert same_bits(w, w.copy()) and not same_bits(w, w[:, :, :, :49]) and not same_bits(w, w.astype(np.float64))
    changed = w.astype(np.float64)
    changed.reshape(-1)[-1] = np.nextafter(changed.reshape(-1)[-1], np.inf)      # the last of 1800 float64s
    assert same_bits(changed, changed.copy()) and not same_bits(w.astype(np.float64), changed)
    longer = rng.standard_normal(2 * 4096 + 5).astype(np.float32)       # two whole blocks of the compare, 5 after
    for index in (0, 4095, 4096, 8191, 8192, 8196):
        other = longer.copy()
        other[index] = np.nextafter(other[index], np.float32(np.inf))
        assert not same_bits(longer, other) and same_bits(other, other.copy()), index


@pytest.mark.parametrize("shape, pool", [((1, 14, 14, 5), ("max", 2, 2, "VALID")), ((1, 14, 14, 5), None),
                                         ((6, 9, 12, 5), None)])
def test_a_prepared_inference_convolution_sees_filters_changed_in_place(shape, pool):
    """A prepared `conv2d_inference` (a plan's stage) keeps its padded filters between calls (50 filters: two
    32-lane tiles, 14 padding filters); filters written in place between calls give the new convolution,
    as the ops one after another give it and as PyTorch does: never the kept copy's."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal(shape).astype(np.float32)
    w = (rng.standard_normal((3, 3, 5, 50)) / 5).astype(np.float32)
    bias = rng.standard_normal(50).astype(np.float32)
    with compiled.use_compiled(True):
        run = fused.prepare_conv2d_inference(x, w, 1, "SAME", bias=bias, activation="relu", pool=pool)
        for _ in range(3):
            got = run(x, w, bias, None, None)
            expected = ops.conv2d(x, w, 1, "SAME", bias=bias, activation="relu")
            if pool is not None:
                expected = ops.max_pool2d(expected, 2, 2, "VALID")
            np.testing.assert_array_equal(got, expected)
            w[..., 7] *= -1.5                   # in place, as a training step or set_weights writes them
            w[1, 1, 2, 49] += 1.0
    oracle = ops.conv2d(x.astype(np.float64), w.astype(np.float64), 1, "SAME", bias=bias.astype(np.float64),
                        activation="relu")
    oracle = oracle if pool is None else ops.max_pool2d(oracle, 2, 2, "VALID")
    assert_matches(run(x, w, bias, None, None), oracle.astype(np.float32), "float32")
