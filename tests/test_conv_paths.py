"""The convolution paths of training (`conv.conv_path`'s ordered list: the direct kernel first for thin
products, Winograd, the direct kernel, im2col + GEMM) against PyTorch's forward and autograd backward and
against the NumPy reference, on random configurations; and which path each geometry gets."""

import numpy as np
import pytest

from _oracle import assert_matches
from convscope import ops
from convscope.ops import compiled, conv, direct, winograd

torch = pytest.importorskip("torch")


def _geometry(in_channels, out_channels, out_hw=(16, 16), images=128, dtype=np.float32, kernel_hw=(3, 3),
              strides=(1, 1), whole_images=True):
    return conv.Geometry(np.dtype(dtype), kernel_hw, strides, (1, 1), 1, in_channels, out_channels, out_hw,
                         images, False, whole_images)


@pytest.mark.skipif(not compiled.available(), reason="the fast paths run on the compiled path")
@pytest.mark.parametrize("bits", [512, 256])
def test_the_first_path_that_applies_runs(bits, monkeypatch):
    """Thin float32 products run on the direct kernel before Winograd (up to DIRECT_BEFORE_WINOGRAD in x out
    channels for its tile: 2048 with AVX-512's tiles, 1024 with AVX2's tiles of 16 filters, 576 with its 8),
    wider ones on Winograd with whole-image blocks, else the direct kernel (up to 1024 taps, 512 with AVX2's),
    else the GEMM."""
    monkeypatch.setattr(direct, "VECTOR_BITS", bits)
    monkeypatch.setattr("convscope.ops.simd.FULL_WIDTH_CPU", False)                     # as a double-pumped CPU
    with compiled.use_compiled(True):
        assert conv.conv_path(_geometry(16, 16)) == "direct"                     # ResNet-20's first stage
        assert conv.conv_path(_geometry(24, 24)) == "direct"                     # 576
        assert conv.conv_path(_geometry(32, 32)) == "direct"                     # 1024
        assert conv.conv_path(_geometry(40, 24)) == ("direct" if bits == 512 else "winograd")   # AVX2: 8 x 8 tiles
        assert conv.conv_path(_geometry(32, 64)) == ("direct" if bits == 512 else "winograd")   # 2048
        assert conv.conv_path(_geometry(48, 48)) == "winograd"                   # 2304
        assert conv.conv_path(_geometry(64, 64, (8, 8))) == "winograd"
        assert conv.conv_path(_geometry(16, 16, dtype=np.float64)) == "winograd"  # the kernel is float32
        # too few images for Winograd: the direct kernel, up to 512 taps with AVX2's tiles (576 here)
        assert conv.conv_path(_geometry(64, 64, images=4)) == ("direct" if bits == 512 else "gemm")
        assert conv.conv_path(_geometry(56, 64, images=4)) == "direct"           # 504 taps
        assert conv.conv_path(_geometry(64, 64, whole_images=False)) == ("direct" if bits == 512 else "gemm")
        assert conv.conv_path(_geometry(56, 64, whole_images=False)) == "direct"  # bands of rows: not Winograd
        assert conv.conv_path(_geometry(16, 16, images=4, dtype=np.float64)) == "gemm"
        assert conv.conv_path(_geometry(120, 64)) == "winograd"
        assert conv.conv_path(_geometry(120, 64, kernel_hw=(5, 5), strides=(2, 2))) == "gemm"  # 3000 taps
        monkeypatch.setattr(conv, "DIRECT_BEFORE_WINOGRAD", {})
        assert conv.conv_path(_geometry(16, 16)) == "winograd"
        monkeypatch.setattr(direct, "VECTOR_BITS", 128)                          # no direct kernel
        assert conv.conv_path(_geometry(64, 64, whole_images=False)) == "gemm"
    with compiled.use_compiled(False):
        assert conv.conv_path(_geometry(16, 16)) == "gemm"


@pytest.mark.skipif(not compiled.available(), reason="the fast paths run on the compiled path")
@pytest.mark.parametrize("full_width", [True, False])
def test_the_direct_kernel_runs_longer_where_512_bit_units_are_full_width(full_width, monkeypatch):
    """Training's paths and inference's bands (`conv_split.thin_direct_applies`) take the direct kernel before
    Winograd up to `conv.DIRECT_BEFORE_WINOGRAD`, or up to `FULL_WIDTH_DIRECT_BEFORE_WINOGRAD` in x out channels
    on a CPU whose 512-bit units run whole (not a double-pumped one's, nor AVX2's)."""
    from convscope.ops import conv_split
    monkeypatch.setattr(direct, "VECTOR_BITS", 512)
    monkeypatch.setattr("convscope.ops.simd.FULL_WIDTH_CPU", full_width)

    def thin(in_channels, out_channels):
        inference = conv_split.thin_direct_applies({"direct": True, "filters": np.empty(
            (3, 3, in_channels, out_channels), np.float32)})
        assert inference is (conv.conv_path(_geometry(in_channels, out_channels)) == "direct")     # as training's
        return inference
    with compiled.use_compiled(True):
        assert conv.FULL_WIDTH_DIRECT_BEFORE_WINOGRAD == 8192 and direct.full_width_units() is full_width
        assert thin(32, 64) and thin(16, 16)                                  # 2048: on every CPU
        assert thin(64, 64) is full_width and thin(80, 80) is full_width and thin(64, 128) is full_width
        assert not thin(96, 96) and not thin(112, 112)                         # 9216, 12544: Winograd
        monkeypatch.setattr(direct, "VECTOR_BITS", 256)                        # AVX2's tiles: its own limits
        assert not direct.full_width_units() and not thin(64, 64) and thin(32, 32)
        monkeypatch.setattr(direct, "VECTOR_BITS", 512)
        monkeypatch.setattr(conv, "DIRECT_BEFORE_WINOGRAD", {})
        assert not thin(16, 16)                                                 # no tile limit: no direct first


def test_the_forward_context_names_the_path():
    """The training context names the forward path.  On the direct kernel it keeps the input itself, whose
    blocks both passes pad in cache (the backward pass makes no padded copy, and gives the gradients of the
    padded copy's path); elsewhere it keeps the padded input."""
    x = np.random.default_rng(2).standard_normal((8, 12, 12, 16)).astype(np.float32)
    filters = np.random.default_rng(3).standard_normal((3, 3, 16, 16)).astype(np.float32)
    grad = np.random.default_rng(4).standard_normal((8, 12, 12, 16)).astype(np.float32)
    with compiled.use_compiled(True):
        _, ctx = ops.conv2d_forward(x, filters, 1, "SAME")
        if compiled.available() and direct.VECTOR_BITS >= 256:
            assert ctx["path"] == "direct" and not ctx["winograd"]
            assert ctx["x"] is x and ctx["x_pad"] is None and ctx["pads_in_blocks"]
            grads = ops.conv2d_backward(grad, ctx)
            assert ctx["x_pad"] is None                                   # padded block by block
            padded = dict(ctx, x_pad=conv.pad_spatial(x, ctx["pads"]))    # the whole padded copy's path
            for ours, expected in zip(grads, ops.conv2d_backward(grad, padded)):
                np.testing.assert_array_equal(ours, expected)
        else:
            assert ctx["x_pad"].shape == (8, 14, 14, 16)
    with compiled.use_compiled(False):
        _, ctx = ops.conv2d_forward(x, filters, 1, "SAME")
    assert ctx["path"] == "gemm" and ctx["x_pad"].shape == (8, 14, 14, 16)


def _torch_forward_backward(x, filters, bias, activation, strides, dilations, groups, pads, grad_z):
    """PyTorch's output (with bias and activation), and its autograd gradients of the convolution's own
    output `grad_z` w.r.t. the input and the filters, in our layouts."""
    functional = torch.nn.functional
    x_t = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).requires_grad_()
    w_t = torch.from_numpy(filters.transpose(3, 2, 0, 1).copy()).requires_grad_()
    padded = functional.pad(x_t, (pads[1][0], pads[1][1], pads[0][0], pads[0][1]))
    z = functional.conv2d(padded, w_t, None, strides, 0, dilations, groups)
    z.backward(torch.from_numpy(grad_z.transpose(0, 3, 1, 2).copy()))
    y = z.detach() + torch.from_numpy(bias).reshape(1, -1, 1, 1)
    if activation == "relu":
        y = functional.relu(y)
    return (y.numpy().transpose(0, 2, 3, 1), x_t.grad.numpy().transpose(0, 2, 3, 1),
            w_t.grad.numpy().transpose(2, 3, 1, 0))


def _random_configuration(rng, path):
    """(shape, filters shape, strides, dilations, groups, padding, dtype) of a convolution that `path` can
    compute: 3x3 stride 1 with 8-9 images for Winograd, float32 one group for the direct kernel."""
    dtype = "float64" if path == "gemm" and rng.random() < 0.5 else "float32"
    if path == "winograd":
        channels, out_channels = int(rng.choice([16, 17, 24, 33])), int(rng.choice([3, 16, 21, 64]))
        return ((int(rng.integers(8, 10)), 2 * int(rng.integers(3, 7)), 2 * int(rng.integers(3, 7)), channels),
                (3, 3, channels, out_channels), (1, 1), (1, 1), 1, str(rng.choice(["SAME", "VALID"])),
                str(rng.choice(["float32", "float64"])))
    groups = 1 if path != "gemm" else int(rng.choice([1, 1, 2, 3]))
    channels = groups * int(rng.choice([1, 3, 5, 16, 17] if path == "gemm" else [1, 3, 5, 16, 17, 64]))
    out_channels = groups * int(rng.choice([1, 3, 8, 16, 19, 64]))
    kernel = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    strides = (int(rng.integers(1, 4)), int(rng.integers(1, 4))) if rng.random() < 0.5 else (1, 1)
    dilations = (int(rng.integers(1, 3)), int(rng.integers(1, 3))) if strides == (1, 1) else (1, 1)
    size = (int(rng.integers(8, 20)), int(rng.integers(16 * strides[1], 16 * strides[1] + 9)))
    return ((int(rng.integers(1, 10)),) + size + (channels,), kernel + (channels // groups, out_channels), strides,
            dilations, groups, str(rng.choice(["SAME", "VALID"])), dtype)


@pytest.mark.parametrize("path,bits", [("direct", 512), ("direct", 256), ("winograd", 512), ("gemm", 512)])
@pytest.mark.parametrize("seed", range(4))
def test_each_path_matches_torch_and_the_reference(path, seed, bits, monkeypatch):
    """Random configurations (1-9 images, 1-64 channels, odd ones, strides 1-3, dilations, groups, SAME
    and VALID, float32/float64, bias with or without ReLU) forced onto one path (`_CONV_PATHS` cut to it
    and the GEMM), small blocks so the work spreads over blocks and threads: forward and backward (input
    and filter gradients) match PyTorch's autograd and the NumPy reference."""
    if path != "gemm" and not compiled.available():
        pytest.skip("numba is not installed")
    monkeypatch.setattr(direct, "VECTOR_BITS", min(bits, direct.VECTOR_BITS))   # 256: AVX2's tiles
    monkeypatch.setattr(conv, "_CONV_PATHS", tuple(entry for entry in conv._CONV_PATHS
                                                   if entry[0] in (path, "gemm")))
    if path != "winograd":                                               # several blocks (Winograd: whole images)
        monkeypatch.setattr(conv, "COLUMN_BUDGET_BYTES", 20_000)
        monkeypatch.setattr(direct, "OUTPUT_BUDGET_BYTES", 3_000)
    monkeypatch.setattr(winograd, "MIN_IMAGES", 1)
    rng = np.random.default_rng(1000 * seed + len(path) + bits)
    ran = []
    for _ in range(3):
        shape, filters_shape, strides, dilations, groups, padding, dtype = _random_configuration(rng, path)
        x = rng.standard_normal(shape).astype(dtype)
        x[0, 0, 0, 0] = np.nan if rng.random() < 0.25 else x[0, 0, 0, 0]   # NaN reaches the outputs it touches
        filters = (rng.standard_normal(filters_shape) / np.sqrt(np.prod(filters_shape[:3]))).astype(dtype)
        bias = rng.standard_normal(filters_shape[3]).astype(dtype)
        activation = str(rng.choice(["linear", "relu"]))
        with compiled.use_compiled(path != "gemm" or rng.random() < 0.5):
            y, ctx = ops.conv2d_forward(x, filters, strides, padding, dilations=dilations, groups=groups,
                                        bias=bias, activation=activation)
            grad_z = rng.standard_normal(y.shape).astype(dtype)
            grad_x, grad_w = ops.conv2d_backward(grad_z, ctx)
            plan = conv._transposed_plan(ctx)
        ran += [ctx["path"]] + ([] if plan is None else [plan["path"]])
        assert set(ran) <= {path, "gemm"}
        expected = _torch_forward_backward(x, filters, bias, activation, strides, dilations, groups,
                                           ctx["pads"], grad_z)
        with compiled.use_compiled(False):
            reference_y, reference_ctx = ops.conv2d_forward(x, filters, strides, padding, dilations=dilations,
                                                            groups=groups, bias=bias, activation=activation)
            reference = (reference_y,) + ops.conv2d_backward(grad_z, reference_ctx)
        for ours, theirs, ref in zip((y, grad_x, grad_w), expected, reference):
            assert np.array_equal(np.isnan(ours), np.isnan(theirs))
            finite = ~np.isnan(theirs)
            assert_matches(ours[finite], theirs[finite], dtype)
            assert_matches(ours[finite], ref[finite], dtype)
    assert path in ran                  # (a direct configuration may be too narrow for the kernel: the GEMM's)


@pytest.mark.skipif(not compiled.available(), reason="the fast paths run on the compiled path")
@pytest.mark.parametrize("channels,out_channels,path", [(16, 16, "direct"), (20, 24, "direct"), (48, 48, "winograd")])
def test_the_input_gradient_takes_the_same_list(channels, out_channels, path, monkeypatch):
    """The input gradient of a 3x3 stride-1 convolution (a transposed convolution from 16 input channels)
    runs on the path `conv_path` gives its geometry (out -> in channels), and matches PyTorch."""
    monkeypatch.setattr("convscope.ops.simd.FULL_WIDTH_CPU", False)    # any CPU's limits: 48 x 48 past direct's
    calls = []
    for module, name in ((direct, "conv_block"), (winograd, "conv_block")):
        original = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *args, _module=module, _original=original, **kwargs:
                            calls.append(_module.__name__.rsplit(".", 1)[1]) or _original(*args, **kwargs))
    rng = np.random.default_rng(channels)
    x = rng.standard_normal((9, 10, 12, channels)).astype(np.float32)
    filters = (rng.standard_normal((3, 3, channels, out_channels)) / (3 * np.sqrt(channels))).astype(np.float32)
    with compiled.use_compiled(True):
        y, ctx = ops.conv2d_forward(x, filters, 1, "SAME")
        grad_z = rng.standard_normal(y.shape).astype(np.float32)
        calls.clear()
        grad_x, grad_w = ops.conv2d_backward(grad_z, ctx)
        assert conv._transposed_plan(ctx)["path"] == path
    assert calls and set(calls) == {path}
    expected = _torch_forward_backward(x, filters, np.zeros(out_channels, np.float32), "linear", (1, 1), (1, 1), 1,
                                       ((1, 1), (1, 1)), grad_z)
    assert_matches(grad_x, expected[1], "float32")
    assert_matches(grad_w, expected[2], "float32")
