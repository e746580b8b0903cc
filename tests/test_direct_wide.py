"""ops/direct_wide.py: the direct convolution of wide layers on one image (tiles of 6 pixels x 64 filters) against
the NumPy reference in float64 and PyTorch on random configurations, its epilogues and caps, NaNs; its split among
1-3 threads (the same bits); its argument checks; where it applies and where conv2d_inference takes it."""

import numpy as np
import pytest

from _oracle import torch_conv2d_inference
from convscope import ops
from convscope.ops import compiled, conv, conv_split, direct, direct_wide, fused, parallel

pytestmark = pytest.mark.skipif(not compiled.active(),
                                reason="the kernel runs on the compiled path (numba, CONVSCOPE_COMPILED not 0)")


def _full_width(monkeypatch, on: bool = True) -> None:
    """As a CPU whose 512-bit units run whole (the kernel's vectors are 512-bit; elsewhere LLVM splits them), with
    2 threads (the rule asks for `MIN_PIXELS_PER_THREAD` output pixels per thread)."""
    monkeypatch.setattr(direct, "VECTOR_BITS", 512 if on else 256)
    monkeypatch.setattr("convscope.ops.simd.FULL_WIDTH_CPU", on)
    monkeypatch.setattr(direct_wide, "worker_count", lambda: 2)


def _only_wide(monkeypatch) -> list:
    """conv2d_inference with this path and the reference blocks only; its calls recorded."""
    kept = ("wide_direct", "blocks")
    monkeypatch.setattr(fused, "_INFERENCE_PATHS", tuple(p for p in fused._INFERENCE_PATHS if p[0] in kept))
    calls, original = [], conv_split.FORWARD["wide"]
    monkeypatch.setitem(conv_split.FORWARD, "wide", lambda *args: calls.append("wide") or original(*args))
    return calls


def _case(seed, kernels=(3,)):
    """A random convolution of one image the kernel takes: 128-512 input channels (a last chunk of fewer than
    `CHUNK` where not 128 or 256), whole blocks of filters, a kernel of `kernels`, dilation 1-2, 'same' or
    'valid'."""
    rng = np.random.default_rng(seed)
    channels = int(rng.choice([128, 131, 200, 256, 512]))
    out_channels = int(rng.choice([64, 128, 192, 256, 512]))
    kernel, dilation = int(rng.choice(kernels)), int(rng.integers(1, 3))
    padding = str(rng.choice(["SAME", "VALID"]))
    reach = (kernel - 1) * dilation
    h, w = (int(rng.integers(7 + (reach if padding == "VALID" else 0), 20)) for _ in range(2))
    x = rng.standard_normal((1, h, w, channels)).astype(np.float32)
    filters = (rng.standard_normal((kernel, kernel, channels, out_channels)) / np.sqrt(kernel * kernel * channels)
               ).astype(np.float32)
    bias, scale, shift = (rng.standard_normal(out_channels).astype(np.float32) for _ in range(3))
    epilogue = [(None, "linear", None, None, "linear"), (bias, "relu", None, None, "linear"),
                (bias, "linear", scale, shift, "relu"), (None, "relu", scale, shift, "linear"),
                (4 * bias, "relu6", None, None, "linear"), (bias, "relu", 8 * scale, shift, "relu6")][seed % 6]
    return x, filters, padding, dilation, epilogue


def _reference(x, filters, padding, dilation, epilogue):
    bias, activation, scale, shift, then = (v.astype(np.float64) if isinstance(v, np.ndarray) else v
                                            for v in epilogue)
    with compiled.use_compiled(False):
        return ops.conv2d_inference(x.astype(np.float64), filters.astype(np.float64), 1, padding, dilation,
                                    bias=bias, activation=activation, scale=scale, shift=shift, then=then)


@pytest.mark.parametrize("seed", range(18))
def test_the_kernel_matches_the_reference_and_torch(seed, monkeypatch):
    """conv2d_inference on this path alone: it runs where it applies, and gives the float64 reference's numbers
    (and PyTorch's), NaNs where the reference has them, ReLU6's caps."""
    _full_width(monkeypatch)
    calls = _only_wide(monkeypatch)
    x, filters, padding, dilation, epilogue = _case(seed)
    if seed % 3 == 0:
        x[0, x.shape[1] // 2, 1, 5] = np.nan           # spreads to the outputs whose windows read it
    bias, activation, scale, shift, then = epilogue
    ours = ops.conv2d_inference(x, filters, 1, padding, dilation, bias=bias, activation=activation, scale=scale,
                                shift=shift, then=then)
    reference = _reference(x, filters, padding, dilation, epilogue)
    ctx = conv._forward_context(x, filters, (1, 1), padding, (dilation,) * 2, 1, "NHWC")
    assert calls == (["wide"] if conv_split.wide_direct_applies(ctx) else [])
    assert ours.dtype == np.float32 and ours.shape == reference.shape
    scale_of = max(1.0, float(np.nanmax(np.abs(reference))))
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=2e-5 * scale_of)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(reference))
    if "relu6" in (activation, then):
        assert np.nanmax(ours) == 6 and np.any((ours > 0) & (ours < 6))
    theirs = torch_conv2d_inference(x, filters, 1, padding, dilation, bias, activation, scale, shift, then)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * scale_of)


def test_most_random_cases_take_the_kernel(monkeypatch):
    """The random cases above are ones the path applies to (the test would pass with the path never running)."""
    _full_width(monkeypatch)
    taken = 0
    for seed in range(18):
        x, filters, padding, dilation, _ = _case(seed)
        ctx = conv._forward_context(x, filters, (1, 1), padding, (dilation,) * 2, 1, "NHWC")
        taken += conv_split.wide_direct_applies(ctx)
    assert taken >= 12


@pytest.mark.parametrize("images,out_channels", [(1, 64), (1, 192), (1, 256), (2, 192), (2, 64)])
@pytest.mark.parametrize("workers", [1, 2, 3])
def test_the_threads_claim_blocks_and_ranges_of_pixels_with_the_same_bits(images, out_channels, workers,
                                                                          monkeypatch):
    """1-3 threads claim each image's blocks of filters (in ranges of pixels where the blocks do not share evenly:
    1 or 3 blocks on 2 threads, 4 on 3); each pixel's sum is taken in the same order whoever computes it, so the
    output's bits are the one thread's."""
    x = np.random.default_rng(out_channels).standard_normal((images, 15, 14, 160)).astype(np.float32)
    x_pad = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    filters = np.random.default_rng(1).standard_normal((3, 3, 160, out_channels)).astype(np.float32)
    epilogue = conv_split.epilogue_tuple(np.ones(out_channels, np.float32), "relu", None, None, "linear",
                                         out_channels, np.float32)
    outs, counts = {}, []
    original = direct_wide.run_claimed
    monkeypatch.setattr(direct_wide, "run_claimed", lambda count, work, alone=False: counts.append(count)
                        or original(count, work, alone=alone))
    for threads in (1, workers):
        monkeypatch.setattr(direct_wide, "worker_count", lambda: threads)
        monkeypatch.setattr(parallel, "worker_count", lambda: threads)
        outs[threads] = np.empty((images, 15, 14, out_channels), np.float32)
        direct_wide.conv_images(x_pad, filters, (1, 1), outs[threads], epilogue)
    blocks = out_channels // direct_wide.BLOCK
    assert counts[-1] == images * blocks * (1 if images * blocks % workers == 0 else workers)
    np.testing.assert_array_equal(outs[workers], outs[1])
    reference = _reference(x, filters, "SAME", 1, (np.ones(out_channels, np.float32), "relu", None, None, "linear"))
    np.testing.assert_allclose(outs[1], reference, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("seed", range(6))
def test_any_kernel_size_and_images_against_the_reference(seed):
    """`conv_images` itself (which `applies` gives 3x3 convolutions of one image only) on 1x1, 2x2 and 5x5 kernels,
    dilations 1-2 and 1-3 images, with a residual (each image its own) or none, against the float64 reference."""
    x, filters, padding, dilation, epilogue = _case(seed, kernels=(1, 2, 5))
    x = np.concatenate([x, x[:, ::-1]])[:1 + seed % 3]
    bias, activation, scale, shift, then = epilogue
    ctx = conv._forward_context(x, filters, (1, 1), padding, (dilation,) * 2, 1, "NHWC")
    shape = (len(x),) + tuple(ctx["out_hw"]) + (filters.shape[3],)
    residual = (None if seed in (1, 3, 4) else      # (seed 4's ReLU6 comes before the residual: the cap is last)
                np.random.default_rng(seed).standard_normal(shape).astype(np.float32))
    from convscope.ops import fused_inference as fi
    reference = fi.conv2d_epilogue_reference(            # the residual (each image its own) before the last ReLU
        x.astype(np.float64), filters.astype(np.float64), 1, padding, dilation,
        **{key: None if value is None else np.asarray(value, np.float64) for key, value in
           (("bias", bias), ("scale", scale), ("shift", shift), ("residual", residual))},
        activation=activation, then=then)
    out = np.empty(reference.shape, np.float32)
    activation, then, cap = fused._check_caps(activation, then, scale, None, "test")    # ReLU6: a ReLU and a cap
    direct_wide.conv_images(np.ascontiguousarray(conv.padded_input(ctx)), filters, (dilation,) * 2, out,
                            conv_split.epilogue_tuple(bias, activation, scale, shift, then, filters.shape[3],
                                                      np.float32, cap), residual)
    np.testing.assert_allclose(out, reference, rtol=1e-5, atol=2e-5 * max(1.0, float(np.abs(reference).max())))


def test_fewer_pixels_than_a_tile_per_thread_take_fewer_ranges(monkeypatch):
    """A plan prepared for few threads, run with more: the blocks that do not share evenly are split in no more
    ranges of pixels than hold a tile each (2x3 outputs, 3 blocks, 4 threads: 1 range; 3x4: 2), not refused."""
    monkeypatch.setattr(direct_wide, "worker_count", lambda: 4)
    monkeypatch.setattr(parallel, "worker_count", lambda: 4)
    monkeypatch.setattr(direct, "SMALL_WORK", 0)
    counts = []
    original = direct_wide.run_claimed
    monkeypatch.setattr(direct_wide, "run_claimed", lambda count, work, alone=False: counts.append(count)
                        or original(count, work, alone=alone))
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 5, 5, 128)).astype(np.float32)
    filters = (rng.standard_normal((3, 3, 128, 192)) / 30).astype(np.float32)
    epilogue = conv_split.epilogue_tuple(None, "linear", None, None, "linear", 192, np.float32)
    with pytest.raises(ValueError, match="at least 6 output pixels"):     # 1 x 3 outputs
        direct_wide.conv_images(x[:, :3], filters, (1, 1), np.empty((1, 1, 3, 192), np.float32), epilogue)
    direct_wide.conv_images(x[:, :4], filters, (1, 1), np.empty((1, 2, 3, 192), np.float32), epilogue)
    assert counts == [3 * 1]                                          # 6 pixels: one range
    wide = np.concatenate([x, x[:, :, :1]], axis=2)                  # 5 x 6: 3 x 4 outputs, 12 pixels: two ranges
    out = np.empty((1, 3, 4, 192), np.float32)
    direct_wide.conv_images(wide, filters, (1, 1), out, epilogue)
    assert counts[-1] == 3 * 2
    np.testing.assert_allclose(out, _reference(wide, filters, "VALID", 1, (None, "linear", None, None, "linear")),
                               rtol=1e-5, atol=1e-5)
    x, out = np.zeros((1, 8, 8, 128), np.float32), np.empty((1, 6, 6, 192), np.float32)
    direct_wide.conv_images(x, filters, (1, 1), out, epilogue)      # 36 pixels: 4 ranges, not 6
    assert counts[-1] == 3 * 4


def test_small_work_stays_on_the_calling_thread(monkeypatch):
    """Under `direct.SMALL_WORK` multiply-adds the kernel claims every item on the calling thread, one range of
    pixels per block."""
    monkeypatch.setattr(direct_wide, "worker_count", lambda: 2)
    runs = []
    monkeypatch.setattr(direct_wide, "run_claimed", lambda count, work, alone=False: runs.append((count, alone)))
    filters = np.zeros((3, 3, 128, 64), np.float32)
    epilogue = conv_split.epilogue_tuple(None, "linear", None, None, "linear", 64, np.float32)
    x, out = np.zeros((1, 9, 9, 128), np.float32), np.empty((1, 7, 7, 64), np.float32)
    direct_wide.conv_images(x, filters, (1, 1), out, epilogue)         # 49 x 73728: 3.6M multiply-adds
    monkeypatch.setattr(direct, "SMALL_WORK", 0)
    direct_wide.conv_images(x, filters, (1, 1), out, epilogue)
    assert runs == [(1, True), (2, False)]


@pytest.mark.parametrize("x_shape,filters_shape,out_shape,dilations,message", [
    ((1, 16, 16, 128), (3, 3, 100, 64), (1, 14, 14, 64), (1, 1), "must be one stride-1 convolution's"),
    ((1, 16, 16, 128), (3, 3, 128, 96), (1, 14, 14, 96), (1, 1), "filters in blocks of 64"),
    ((1, 16, 16, 128), (3, 3, 128, 64), (1, 13, 14, 64), (1, 1), "must be one stride-1 convolution's"),
    ((1, 16, 16, 128), (3, 3, 128, 64), (1, 14, 14, 64), (2, 2), "(dilations (2, 2))"),
    ((2, 16, 16, 128), (3, 3, 128, 64), (1, 14, 14, 64), (1, 1), "must be one stride-1 convolution's"),
    ((1, 3, 5, 128), (3, 3, 128, 64), (1, 1, 3, 64), (1, 1), "at least 6 output pixels"),
    ((16, 16, 128), (3, 3, 128, 64), (14, 14, 64), (1, 1), "must be non-empty 4-D arrays"),
    ((1, 5, 9, 128), (3, 3, 128, 64), (1, 7, 7, 64), (-1, 1), "a pair of positive ints"),
    ((1, 9, 9, 0), (3, 3, 0, 64), (1, 7, 7, 64), (1, 1), "must be non-empty 4-D arrays"),
])
def test_mismatched_arrays_are_refused_with_the_shapes(x_shape, filters_shape, out_shape, dilations, message):
    epilogue = conv_split.epilogue_tuple(None, "linear", None, None, "linear", filters_shape[3], np.float32)
    with pytest.raises(ValueError, match="direct_wide: arguments `x_pad`") as error:
        direct_wide.conv_images(np.zeros(x_shape, np.float32), np.zeros(filters_shape, np.float32), dilations,
                               np.empty(out_shape, np.float32), epilogue)
    assert message in str(error.value) and str(x_shape) in str(error.value)


def test_an_epilogue_of_the_wrong_length_is_refused():
    """The epilogue's vectors are read a block of 64 at a time, unchecked in the kernel: a short one is refused."""
    epilogue = conv_split.epilogue_tuple(np.ones(32, np.float32), "relu", None, None, "linear", 32, np.float32)
    with pytest.raises(ValueError, match="bias, scale and shift 64 values each"):
        direct_wide.conv_images(np.zeros((1, 16, 16, 128), np.float32), np.zeros((3, 3, 128, 64), np.float32),
                                (1, 1), np.empty((1, 14, 14, 64), np.float32), epilogue)


def test_a_strided_output_is_refused():
    epilogue = conv_split.epilogue_tuple(None, "linear", None, None, "linear", 64, np.float32)
    out = np.empty((1, 14, 14, 128), np.float32)[..., :64]
    with pytest.raises(ValueError, match="argument `out` must be C-contiguous float32"):
        direct_wide.conv_images(np.zeros((1, 16, 16, 128), np.float32), np.zeros((3, 3, 128, 64), np.float32), (1, 1),
                               out, epilogue)


def _applies(shape, out_channels, kernel=3, strides=1, groups=1, dtype=np.float32):
    x = np.zeros(shape, dtype)
    filters = np.zeros((kernel, kernel, shape[3] // groups, out_channels), dtype)
    ctx = conv._forward_context(x, filters, (strides,) * 2, "SAME", (1, 1), groups, "NHWC")
    return conv_split.wide_direct_applies(ctx)


def test_where_it_applies(monkeypatch):
    """One float32 image of stride 1 and one group, 128-512 input channels, 64-512 output channels in whole blocks,
    at least 24 pixels per thread and at most `MAX_PIXELS` pixels (`MAX_PIXELS_ONE_BLOCK` for 64 filters); over 128
    channels not where Winograd's bands would take it (ResNet50's 28x28 128 -> 128, 14x14 256 -> 256 and 7x7 512 ->
    512, a U-Net's 8x8 to 32x32 layers and 64x64 128 -> 64: yes; 32x32 256 -> 128: Winograd's), on a CPU whose
    512-bit units run whole only."""
    _full_width(monkeypatch)
    assert _applies((1, 28, 28, 128), 128) and _applies((1, 14, 14, 256), 256) and _applies((1, 7, 7, 512), 512)
    assert _applies((1, 16, 16, 256), 256) and _applies((1, 32, 32, 128), 128) and _applies((1, 16, 16, 512), 256)
    assert _applies((1, 8, 8, 256), 512) and _applies((1, 8, 8, 512), 512)
    assert not _applies((1, 32, 32, 256), 128)                        # Winograd's bands
    assert not _applies((2, 14, 14, 256), 256)                        # two images
    assert not _applies((1, 14, 14, 64), 64) and not _applies((1, 8, 8, 640), 512)      # channels
    assert not _applies((1, 8, 8, 512), 640)
    assert not _applies((1, 14, 14, 256), 240) and not _applies((1, 14, 14, 256), 96)    # not whole blocks of 64
    assert not _applies((1, 14, 14, 256), 256, strides=2) and not _applies((1, 14, 14, 256), 256, groups=2)
    assert not _applies((1, 14, 14, 256), 256, dtype=np.float64)
    assert not _applies((1, 33, 33, 128), 128)                        # over MAX_PIXELS
    assert _applies((1, 64, 64, 128), 64) and _applies((1, 40, 40, 128), 64)     # one block: to MAX_PIXELS_ONE_BLOCK
    assert not _applies((1, 65, 64, 128), 64) and not _applies((1, 56, 56, 128), 128)
    assert not _applies((1, 6, 7, 128), 128)                          # 42 pixels: under 24 per thread
    assert not _applies((1, 14, 14, 256), 256, kernel=1) and not _applies((1, 14, 14, 256), 256, kernel=5)
    _full_width(monkeypatch, False)
    assert not _applies((1, 14, 14, 256), 256)


def test_conv2d_inference_takes_it_before_winograd_and_the_gemm(monkeypatch):
    """In conv2d_inference's ordered list the kernel comes before Winograd's bands (28x28 128 -> 128, which they
    would take) and im2col + GEMM (14x14 256 -> 256); a double-pumped CPU keeps those."""
    taken = []
    original = fused._forward_path
    monkeypatch.setattr(fused, "_forward_path", lambda *args: taken.append(original(*args)) or taken[-1])
    for full_width in (True, False):
        _full_width(monkeypatch, full_width)
        for shape in ((1, 28, 28, 128), (1, 14, 14, 256)):
            fused.prepare_conv2d_inference(np.zeros(shape, np.float32), np.zeros((3, 3, shape[3], shape[3]),
                                                                                  np.float32), 1, "SAME")
    names = [run.__name__ for run in taken]
    assert names == ["_split_wide", "_split_wide", "_split_winograd", "_split_gemm"]


# -- the residual, and 1x1 convolutions of one image (fused_inference's "wide_1x1") ----------------------------

def _pointwise_case(seed):
    """A random 1x1 convolution of one image the 1x1 path takes: 48-256 output pixels (stride 1 or 2), 128-1100
    input channels (a last chunk of fewer than `CHUNK` where not a multiple of it), 64-1024 filters in whole
    blocks, and an epilogue it finishes: bias or none, ReLU or none, the batch norm's map or none, a residual or
    none, then ReLU, ReLU6 or none."""
    rng = np.random.default_rng(seed)
    stride = int(rng.choice([1, 2]))
    h, w = (int(rng.integers(7, 17)) for _ in range(2))
    h = max(h, -(-48 // w))                          # at least 48 output pixels: 24 on each of two threads
    channels = int(rng.choice([128, 200, 256, 1024, 1100]))
    out_channels = 64 * int(rng.choice([1, 3, 4, 16]))
    x = rng.standard_normal((1, stride * h, stride * w, channels)).astype(np.float32)
    filters = (rng.standard_normal((1, 1, channels, out_channels)) / np.sqrt(channels)).astype(np.float32)
    bias, scale, shift = (rng.standard_normal(out_channels).astype(np.float32) for _ in range(3))
    residual = 3 * rng.standard_normal((1, h, w, out_channels)).astype(np.float32)
    args = dict(bias=[None, bias][seed % 2], activation=["linear", "relu"][seed // 2 % 2],
                scale=[None, scale][seed // 4 % 2], shift=[None, shift][seed // 4 % 2],
                residual=[residual, None][seed % 3 == 2], then=["relu", "relu6", "linear"][seed % 3])
    return x, filters, stride, args


def _only_wide_1x1(monkeypatch) -> list:
    """conv2d_epilogue_inference with the 1x1 path of this kernel alone; its runs recorded."""
    from convscope.ops import fused_inference as fi
    entry = next(e for e in fi._CONV_PATHS if e[0] == "wide_1x1")
    runs = []
    monkeypatch.setattr(fi, "_CONV_PATHS", ((entry[0], entry[1], lambda *a: runs.append(1) or entry[2](*a)),))
    return runs


@pytest.mark.parametrize("seed", range(12))
def test_1x1_convolutions_of_one_image_match_the_reference_and_torch(seed, monkeypatch):
    """conv2d_epilogue_inference's "wide_1x1" path alone: the float64 reference's numbers (and PyTorch's), the
    residual added after the batch norm's map and before the last ReLU or ReLU6, NaNs where the reference has
    them."""
    from convscope.ops import fused_inference as fi
    _full_width(monkeypatch)
    runs = _only_wide_1x1(monkeypatch)
    x, filters, stride, args = _pointwise_case(seed)
    if seed % 4 == 1:
        x[0, 2 * stride, 3 * stride, 7] = np.nan           # one output pixel: NaN in every channel
    ours = fi.conv2d_epilogue_inference(x, filters, stride, "VALID", **args)
    assert runs == [1] and ours.dtype == np.float32
    wide = {key: value.astype(np.float64) if isinstance(value, np.ndarray) else value for key, value in args.items()}
    with compiled.use_compiled(False):
        reference = fi.conv2d_epilogue_reference(x.astype(np.float64), filters.astype(np.float64), stride, "VALID",
                                                 **wide)
    scale_of = max(1.0, float(np.nanmax(np.abs(reference))))
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=2e-5 * scale_of)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(reference))
    assert np.isnan(ours).any() == (seed % 4 == 1)
    if args["then"] == "relu6":
        assert np.nanmax(ours) == 6 and np.any((ours > 0) & (ours < 6))
    theirs = torch_conv2d_inference(x, filters, stride, "VALID", 1, args["bias"], args["activation"], args["scale"],
                                    args["shift"], args["then"], args["residual"])
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * scale_of)


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_the_residual_is_added_alike_on_any_number_of_threads(workers, monkeypatch):
    """`conv_images` with a residual: each output finished once, by whichever thread claims its block, so the bits
    are the one thread's; the residual's NaN and infinities reach the output (a NaN through the ReLU too)."""
    rng = np.random.default_rng(workers)
    x = rng.standard_normal((1, 11, 13, 300)).astype(np.float32)
    filters = (rng.standard_normal((1, 1, 300, 192)) / 17).astype(np.float32)
    residual = rng.standard_normal((1, 11, 13, 192)).astype(np.float32)
    residual[0, 1, 2, :3] = (np.nan, np.inf, -np.inf)
    bias, scale, shift = (rng.standard_normal(192).astype(np.float32), rng.random(192).astype(np.float32),
                          rng.standard_normal(192).astype(np.float32))
    epilogue = conv_split.epilogue_tuple(bias, "linear", scale, shift, "relu", 192, np.float32)
    outs = {}
    for threads in (1, workers):
        monkeypatch.setattr(direct_wide, "worker_count", lambda: threads)
        monkeypatch.setattr(parallel, "worker_count", lambda: threads)
        monkeypatch.setattr(direct, "SMALL_WORK", 0)
        outs[threads] = np.empty((1, 11, 13, 192), np.float32)
        direct_wide.conv_images(x, filters, (1, 1), outs[threads], epilogue, residual)
    np.testing.assert_array_equal(outs[workers], outs[1])
    assert np.isnan(outs[1][0, 1, 2, 0]) and outs[1][0, 1, 2, 1] == np.inf and outs[1][0, 1, 2, 2] == 0
    expected = np.maximum((np.tensordot(x.astype(np.float64), filters[0, 0], 1) + bias) * scale + shift + residual, 0)
    finite = np.isfinite(residual)
    np.testing.assert_allclose(outs[1][finite], expected[finite], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("residual,message", [
    (np.zeros((1, 14, 14, 128), np.float32), "must have the output's shape (1, 14, 14, 64)"),
    (np.zeros((1, 14, 14, 64), np.float64), "argument `residual` must be C-contiguous float32"),
    (np.zeros((1, 14, 14, 128), np.float32)[..., :64], "argument `residual` must be C-contiguous float32"),
])
def test_a_mismatched_residual_is_refused(residual, message):
    """The residual is read a block of 64 at a time, unchecked in the kernel: another shape, dtype or layout is
    refused with what was expected."""
    epilogue = conv_split.epilogue_tuple(None, "linear", None, None, "relu", 64, np.float32)
    with pytest.raises(ValueError, match="direct_wide: argument `residual`") as error:
        direct_wide.conv_images(np.zeros((1, 16, 16, 128), np.float32), np.zeros((3, 3, 128, 64), np.float32),
                                (1, 1), np.empty((1, 14, 14, 64), np.float32), epilogue, residual)
    assert message in str(error.value)


def _pointwise_path(shape, out_channels, strides=1, dtype=np.float32, residual=True, activation="linear",
                    then="relu") -> str:
    """The name of the path conv2d_epilogue_inference takes for a 1x1 convolution of `shape` with a batch norm's
    map (and a residual)."""
    from convscope.ops import fused_inference as fi
    from _paths import recording
    asked = []
    x = np.zeros(shape, dtype)
    filters = np.zeros((1, 1, shape[3], out_channels), dtype)
    out_shape = (shape[0], -(-shape[1] // strides), -(-shape[2] // strides), out_channels)
    original = fi._CONV_PATHS
    try:
        fi._CONV_PATHS = recording(original, asked)
        fi.prepare_conv2d_epilogue_inference(
            x, filters, strides, "VALID", scale=np.ones(out_channels, dtype), shift=np.zeros(out_channels, dtype),
            residual=np.zeros(out_shape, dtype) if residual else None, activation=activation, then=then)
    finally:
        fi._CONV_PATHS = original
    return asked[-1][0]


def test_where_the_1x1_path_applies(monkeypatch):
    """ResNet50's 1x1 convolutions of 196 pixels at batch 1 (14x14, and 28x28 at stride 2) take it, with and without
    the residual; those of 49 pixels keep `dense_tiles`' columns (their 1-4 MB matrices stream from memory: this
    path took 1.2x their time there), of 784 pixels the rows' paths; a batch of two, another dtype, fewer than 128
    input channels, filters not in blocks of 64, a hard-swish or a ReLU6 before the map, and a CPU whose 512-bit
    units are split do not."""
    _full_width(monkeypatch)
    assert _pointwise_path((1, 14, 14, 256), 1024) == "wide_1x1"
    assert _pointwise_path((1, 14, 14, 1024), 256, residual=False) == "wide_1x1"
    assert _pointwise_path((1, 28, 28, 512), 1024, strides=2, residual=False) == "wide_1x1"
    assert _pointwise_path((1, 14, 14, 256), 1024, then="relu6", activation="relu") == "wide_1x1"
    assert _pointwise_path((1, 7, 7, 512), 2048) == "gemm_1x1_column_tiles"
    assert _pointwise_path((1, 14, 14, 1024), 2048, strides=2, residual=False) == "gemm_1x1_column_tiles"
    assert _pointwise_path((1, 28, 28, 128), 512) != "wide_1x1"
    assert _pointwise_path((2, 14, 14, 256), 1024) != "wide_1x1"
    assert _pointwise_path((1, 14, 14, 256), 1024, dtype=np.float64) != "wide_1x1"
    assert _pointwise_path((1, 14, 14, 64), 256) != "wide_1x1"
    assert _pointwise_path((1, 14, 14, 256), 1000) != "wide_1x1"
    assert _pointwise_path((1, 14, 14, 256), 1024, then="hard_silu") != "wide_1x1"
    assert _pointwise_path((1, 14, 14, 256), 1024, activation="relu6", residual=False) != "wide_1x1"
    _full_width(monkeypatch, False)
    assert _pointwise_path((1, 14, 14, 256), 1024) != "wide_1x1"


def _cache_index(root, name, level, kind, size):
    folder = root / name
    folder.mkdir(parents=True)
    for file, text in (("level", level), ("type", kind), ("size", size)):
        (folder / file).write_text(text + "\n")


def test_the_l1_data_cache_is_read_from_sysfs(tmp_path):
    """The level-1 data (or unified) cache's size as Linux reports it, instructions' skipped; 0 where the folder is
    missing or a size unreadable (the panel then holds the smaller chunk)."""
    _cache_index(tmp_path / "a", "index0", "1", "Instruction", "32K")
    _cache_index(tmp_path / "a", "index1", "1", "Data", "48K")
    _cache_index(tmp_path / "a", "index2", "2", "Unified", "2048K")
    assert direct_wide.l1_data_bytes(tmp_path / "a") == 48 << 10
    _cache_index(tmp_path / "b", "index0", "1", "Unified", "1M")
    assert direct_wide.l1_data_bytes(tmp_path / "b") == 1 << 20
    _cache_index(tmp_path / "c", "index0", "1", "Data", "lots")
    assert direct_wide.l1_data_bytes(tmp_path / "c") == 0
    assert direct_wide.l1_data_bytes(tmp_path / "missing") == 0


def test_the_panel_holds_fewer_channels_where_l1_is_small(monkeypatch):
    """128 input channels per panel (32 KB) where L1 holds 48 KB, else 64 (16 KB); the sums are taken chunk by
    chunk, so the two give the reference's numbers, not the same bits (200 channels: chunks of 128 + 72 or
    64 + 64 + 64 + 8)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 9, 10, 200)).astype(np.float32)
    filters = (rng.standard_normal((3, 3, 200, 128)) / 40).astype(np.float32)
    epilogue = conv_split.epilogue_tuple(None, "linear", None, None, "linear", 128, np.float32)
    outs = {}
    try:
        for l1_bytes, chunk in ((48 << 10, 128), (32 << 10, 64), (0, 64)):
            monkeypatch.setattr(direct_wide, "l1_data_bytes", lambda: l1_bytes)
            direct_wide.panel_channels.cache_clear()
            assert direct_wide.panel_channels() == chunk
            outs[l1_bytes] = np.empty((1, 7, 8, 128), np.float32)
            direct_wide.conv_images(x, filters, (1, 1), outs[l1_bytes], epilogue)
    finally:
        direct_wide.panel_channels.cache_clear()
    reference = _reference(x, filters, "VALID", 1, (None, "linear", None, None, "linear"))
    for out in outs.values():
        np.testing.assert_allclose(out, reference, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(outs[32 << 10], outs[0])
    assert not np.array_equal(outs[48 << 10], outs[0])


def test_a_float64_or_strided_residual_is_read_as_the_path_needs(monkeypatch):
    """conv2d_epilogue_inference's "wide_1x1" takes a residual of another dtype or layout (a float64 view every other
    channel of a larger array) as float32 C-contiguous, with the reference's numbers."""
    from convscope.ops import fused_inference as fi
    _full_width(monkeypatch)
    runs = _only_wide_1x1(monkeypatch)
    rng = np.random.default_rng(9)
    x = rng.standard_normal((1, 14, 14, 256)).astype(np.float32)
    filters = (rng.standard_normal((1, 1, 256, 128)) / 16).astype(np.float32)
    residual = rng.standard_normal((1, 14, 14, 256))[..., ::2]            # float64, strided
    args = dict(bias=rng.standard_normal(128), scale=rng.random(128), shift=rng.standard_normal(128),
                residual=residual, then="relu")
    ours = fi.conv2d_epilogue_inference(x, filters, 1, "VALID", **args)
    assert runs == [1] and ours.dtype == np.float32
    reference = fi.conv2d_epilogue_reference(x.astype(np.float64), filters.astype(np.float64), 1, "VALID", **args)
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-5)
