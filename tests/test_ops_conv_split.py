"""ops/conv_split.py: conv2d_inference's Winograd, direct and GEMM paths on tasks split among the threads
(bands of rows, whole images, slices of the output channels), each against the NumPy reference path in
float64 and PyTorch, on random configurations; the task plan's cover; Winograd's compiled filter transform."""

import threading

import numpy as np
import pytest

from _oracle import torch_conv2d_inference as _torch
from convscope import ops
from convscope.ops import compiled, conv, conv_split, direct, fused, parallel, winograd

pytestmark = pytest.mark.skipif(not compiled.active(),
                                reason="the split paths run on the compiled path (numba, CONVSCOPE_COMPILED not 0)")

PATHS = {"winograd": "winograd_bands", "direct": "direct_bands", "gemm": "gemm_bands"}


def _only(monkeypatch, name):
    """conv2d_inference with the tiles' pooling, the path `name` and the reference blocks only; the calls
    of the path's computation recorded."""
    kept = ("pooled_in_tiles", PATHS[name], "blocks")
    monkeypatch.setattr(fused, "_INFERENCE_PATHS", tuple(p for p in fused._INFERENCE_PATHS if p[0] in kept))
    calls = []
    original = conv_split.FORWARD[name]
    monkeypatch.setitem(conv_split.FORWARD, name, lambda *args: calls.append(name) or original(*args))
    return calls


def _case(seed, path):
    """A random convolution the path computes: (x, filters, strides, padding, dilations, epilogue)."""
    rng = np.random.default_rng(seed)
    images = int(rng.integers(1, 10))
    if path == "winograd":
        kernel, strides, dilations = 3, 1, 1
        channels, out_channels = int(rng.choice([16, 19, 32, 45])), int(rng.choice([7, 33, 64, 70, 96]))
        size = int(rng.integers(5, 19))
    else:
        kernel, strides, dilations = int(rng.choice([1, 2, 3, 5])), int(rng.integers(1, 3)), int(rng.integers(1, 3))
        channels = int(rng.choice([1, 3, 5, 17, 40])) if path == "direct" else int(rng.choice([3, 9, 40, 131]))
        out_channels = int(rng.choice([3, 8, 17, 33, 64])) if path == "direct" else int(rng.choice([5, 33, 70]))
        size = int(rng.integers(12, 30)) if path == "direct" else int(rng.integers(5, 24))
    padding = str(rng.choice(["SAME", "VALID"]))
    x = rng.standard_normal((images, size, size + int(rng.integers(0, 4)), channels)).astype(np.float32)
    x[rng.random(x.shape) < 0.002] = np.nan if seed % 4 == 0 and path != "winograd" else 0.0   # a NaN spreads
                                                                                  # over Winograd's whole tiles
    filters = (rng.standard_normal((kernel, kernel, channels, out_channels))
               / np.sqrt(kernel * kernel * channels)).astype(np.float32)
    bias, scale, shift = (rng.standard_normal(out_channels).astype(np.float32) for _ in range(3))
    form = seed % 4
    epilogue = [(None, "linear", None, None, "linear"), (bias, "relu", None, None, "linear"),
                (bias, "linear", scale, shift, "relu"), (None, "relu", scale, shift, "linear")][form]
    return x, filters, strides, padding, dilations, epilogue


def _path_and_reference(monkeypatch, path, x, filters, strides, padding, dilations, epilogue):
    """(conv2d_inference on `path` alone, the NumPy reference in float64), the path checked to have run
    exactly where it applies."""
    bias, activation, scale, shift, then = epilogue
    calls = _only(monkeypatch, path)
    ours = ops.conv2d_inference(x, filters, strides, padding, dilations, bias=bias, activation=activation,
                                scale=scale, shift=shift, then=then)
    as64 = [None if v is None else v.astype(np.float64) for v in (x, filters, bias, scale, shift)]
    with compiled.use_compiled(False):
        reference = ops.conv2d_inference(as64[0], as64[1], strides, padding, dilations, bias=as64[2],
                                         activation=activation, scale=as64[3], shift=as64[4], then=then)
    ctx = conv._forward_context(x, filters, (strides,) * 2, padding, (dilations,) * 2, 1, "NHWC")
    assert calls == ([path] if getattr(conv_split, f"{path}_applies")(ctx) else [])
    return ours, reference


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("path", ["winograd", "direct", "gemm"])
def test_each_path_matches_the_reference_and_torch(path, seed, monkeypatch):
    x, filters, strides, padding, dilations, epilogue = _case(seed, path)
    dtype = np.float64 if seed % 6 == 5 else np.float32             # float64: Winograd and GEMM (not direct)
    x, filters = x.astype(dtype), filters.astype(dtype)
    bias, activation, scale, shift, then = (v.astype(dtype) if isinstance(v, np.ndarray) else v for v in epilogue)
    ours, reference = _path_and_reference(monkeypatch, path, x, filters, strides, padding, dilations,
                                          (bias, activation, scale, shift, then))
    scale_of = max(1.0, float(np.nanmax(np.abs(reference), initial=0.0)))
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    assert ours.dtype == dtype and ours.shape == reference.shape
    np.testing.assert_allclose(ours, reference, rtol=rtol, atol=2 * rtol * scale_of)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(reference))
    theirs = _torch(x, filters, strides, padding, dilations, bias, activation, scale, shift, then)
    np.testing.assert_allclose(ours, theirs, rtol=10 * rtol, atol=5 * rtol * scale_of)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("path", ["winograd", "direct", "gemm"])
def test_each_path_caps_a_relu6_as_torch(path, seed, monkeypatch):
    """A ReLU6 as `activation` (no BN map after it) or `then` (a MobileNet stem's conv -> BN -> ReLU6): each
    path caps its finished blocks at 6, as the NumPy reference and PyTorch's relu6 do."""
    x, filters, strides, padding, dilations, _ = _case(seed, path)
    rng = np.random.default_rng(100 + seed)
    channels = filters.shape[3]
    bias, shift = (rng.standard_normal(channels).astype(np.float32) for _ in range(2))
    scale = (8 * rng.random(channels)).astype(np.float32)           # values past 6 to cap
    bias, activation, scale, shift, then = [(8 * bias, "relu6", None, None, "linear"),
                                            (None, "linear", scale, shift, "relu6"),
                                            (bias, "relu", scale, shift, "relu6"),
                                            (4 * bias, "relu6", None, None, "relu6")][seed % 4]
    ours, reference = _path_and_reference(monkeypatch, path, x, filters, strides, padding, dilations,
                                          (bias, activation, scale, shift, then))
    assert np.nanmax(ours) == 6 and np.any((ours > 0) & (ours < 6))
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(reference))
    theirs = _torch(x, filters, strides, padding, dilations, bias, activation, scale, shift, then)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape,out_channels,path", [
    ((1, 24, 24, 64), 96, "winograd"),     # one image of 144 tiles: 2 bands, or on 3 threads 3 slices of channels
    ((1, 40, 40, 16), 16, "winograd"),     # one image in bands of tile rows
    ((3, 9, 9, 40), 70, "gemm"),           # 3 images on 2 threads: bands or channels, not 1 + 2 images
    ((1, 7, 7, 131), 70, "gemm"),          # 49 rows: the channels split
])
@pytest.mark.parametrize("workers", [1, 2, 3])
def test_one_image_or_a_few_share_the_threads(shape, out_channels, path, workers, monkeypatch):
    """With 1-3 threads, the work is split in as many tasks as threads (bands, images or channel slices),
    and the result is the reference's (the work counted as large enough to share)."""
    monkeypatch.setattr(direct, "SMALL_WORK", 0)
    monkeypatch.setattr(conv_split, "worker_count", lambda: workers)
    monkeypatch.setattr(conv, "worker_count", lambda: workers)        # (`conv.direct_bands`)
    monkeypatch.setattr(conv_split, "balanced_ranges", _balanced_for(workers))
    planned = []
    original_plan = conv_split.plan
    monkeypatch.setattr(conv_split, "plan", lambda *a, **k: planned.append(original_plan(*a, **k)) or planned[-1])
    calls = _only(monkeypatch, path)
    rng = np.random.default_rng(len(shape) + out_channels)
    x = rng.standard_normal(shape).astype(np.float32)
    filters = (rng.standard_normal((3, 3, shape[3], out_channels)) / 12).astype(np.float32)
    bias = rng.standard_normal(out_channels).astype(np.float32)
    ours = ops.conv2d_inference(x, filters, 1, "SAME", bias=bias, activation="relu")
    with compiled.use_compiled(False):
        reference = ops.conv2d_inference(x.astype(np.float64), filters.astype(np.float64), 1, "SAME",
                                         bias=bias.astype(np.float64), activation="relu")
    assert calls == [path] and len(planned) == 1
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-5)
    if workers > 1:                                   # split: not all on one thread
        assert len(planned[0]) >= (2 if shape == (1, 7, 7, 131) else workers)   # 70 channels: 2 slices of 32+


def _claimed_calls(monkeypatch):
    """The direct path's `run_claimed` calls (`conv.run_direct_claimed`'s) recorded as (items, alone), and each thread's
    `conv_claimed_block` calls as (thread, bands)."""
    runs, blocks = [], []
    original_run, original_block = conv.run_claimed, direct.conv_claimed_block
    monkeypatch.setattr(conv, "run_claimed", lambda count, work, alone=False: runs.append((count, alone))
                        or original_run(count, work, alone=alone))
    monkeypatch.setattr(direct, "conv_claimed_block", lambda *a, **k: blocks.append(
        (threading.get_ident(), a[7] if len(a) > 7 else k.get("bands", 1))) or original_block(*a, **k))
    return runs, blocks


@pytest.mark.parametrize("shape,most", [      # most: the bands a tile high
    ((1, 56, 40, 8), 56),                  # one image: bands of one row at the fewest
    ((3, 6, 5, 8), 3),                     # 5 wide: tiles of 2 rows, bands of at least 2 rows
    ((2, 20, 12, 3), 20),                  # `conv.DIRECT_ITEMS_PER_THREAD` items per thread
    ((70, 9, 9, 3), 9),                    # images enough: whole ones
])
@pytest.mark.parametrize("workers", [1, 2, 3])
def test_a_direct_convolution_claims_images_or_bands_of_rows_on_every_thread(shape, most, workers, monkeypatch):
    """The direct path's threads claim whole images, or bands of output rows where the images are fewer than
    `conv.DIRECT_ITEMS_PER_THREAD` per thread (as many bands as that takes, each a tile high at least), every thread
    making the claiming call, and the result is the reference's."""
    monkeypatch.setattr(direct, "SMALL_WORK", 0)
    monkeypatch.setattr(conv_split, "worker_count", lambda: workers)
    monkeypatch.setattr(conv, "worker_count", lambda: workers)        # (`conv.direct_bands`)
    monkeypatch.setattr(parallel, "worker_count", lambda: workers)
    calls = _only(monkeypatch, "direct")
    runs, blocks = _claimed_calls(monkeypatch)
    rng = np.random.default_rng(shape[0])
    x = rng.standard_normal(shape).astype(np.float32)
    filters = (rng.standard_normal((3, 3, shape[3], 16)) / 5).astype(np.float32)
    bias = rng.standard_normal(16).astype(np.float32)
    ours = ops.conv2d_inference(x, filters, 1, "SAME", bias=bias, activation="relu")
    with compiled.use_compiled(False):
        reference = ops.conv2d_inference(x.astype(np.float64), filters.astype(np.float64), 1, "SAME",
                                         bias=bias.astype(np.float64), activation="relu")
    expected = min(most, -(-conv.DIRECT_ITEMS_PER_THREAD * workers // shape[0]))
    assert calls == ["direct"] and runs == [(shape[0] * expected, False)]
    assert [b for _, b in blocks] == [expected] * workers                 # one claiming call per thread
    assert (len({t for t, _ in blocks}) > 1) == (workers > 1)
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-5)


def test_a_small_direct_convolution_runs_on_the_calling_thread(monkeypatch):
    """Under `direct.SMALL_WORK` multiply-adds the direct path claims all its items on the calling thread."""
    monkeypatch.setattr(conv_split, "worker_count", lambda: 2)
    monkeypatch.setattr(conv, "worker_count", lambda: 2)        # (`conv.direct_bands`)
    monkeypatch.setattr(parallel, "worker_count", lambda: 2)
    calls = _only(monkeypatch, "direct")
    runs, blocks = _claimed_calls(monkeypatch)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 56, 40, 8)).astype(np.float32)
    filters = (rng.standard_normal((3, 3, 8, 16)) / 12).astype(np.float32)
    assert 56 * 40 * 9 * 8 * 16 < direct.SMALL_WORK
    ours = ops.conv2d_inference(x, filters, 1, "SAME", activation="relu")
    with compiled.use_compiled(False):
        reference = ops.conv2d_inference(x.astype(np.float64), filters.astype(np.float64), 1, "SAME",
                                         activation="relu")
    assert calls == ["direct"] and [alone for _, alone in runs] == [True]
    assert {t for t, _ in blocks} == {threading.get_ident()}
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape,out_channels,path", [
    ((1, 14, 14, 40), 50, "gemm"),         # one small image (as seed 001's second layer at batch 1): one band, not 2
    ((1, 40, 40, 16), 16, "winograd"),
])
def test_small_work_runs_as_planned_for_one_thread(shape, out_channels, path, monkeypatch):
    """Under `direct.SMALL_WORK` multiply-adds the convolution runs on the calling thread, in tasks planned
    for one thread (as few and long as the cache budget allows), and gives the reference's result."""
    monkeypatch.setattr(conv_split, "worker_count", lambda: 2)
    monkeypatch.setattr(conv, "worker_count", lambda: 2)        # (`conv.direct_bands`)
    planned, threads = [], set()
    original_plan, original_run = conv_split.plan, conv_split.run_in_parallel
    monkeypatch.setattr(conv_split, "plan", lambda *a, **k: planned.append((a, k)) or original_plan(*a, **k))
    monkeypatch.setattr(conv_split, "run_in_parallel", lambda tasks, work, **k: original_run(
        tasks, lambda chunk: threads.add(threading.get_ident()) or work(chunk), **k))
    calls = _only(monkeypatch, path)
    rng = np.random.default_rng(out_channels)
    x = rng.standard_normal(shape).astype(np.float32)
    filters = (rng.standard_normal((3, 3, shape[3], out_channels)) / 12).astype(np.float32)
    assert shape[1] * shape[2] * 9 * shape[3] * out_channels < direct.SMALL_WORK
    ours = ops.conv2d_inference(x, filters, 1, "SAME", activation="relu")
    with compiled.use_compiled(False):
        reference = ops.conv2d_inference(x.astype(np.float64), filters.astype(np.float64), 1, "SAME",
                                         activation="relu")
    assert calls == [path] and len(planned) == 1
    args, options = planned[0]
    assert options["workers"] == 1
    assert len(original_plan(*args, **options)) == 1 < len(original_plan(*args, **dict(options, workers=2)))
    assert threads == {threading.get_ident()}
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("images,workers", [(1, 1), (1, 2), (1, 3), (2, 3), (2, 2), (3, 2)])
def test_a_1x1_convolution_of_fewer_images_than_threads_is_split(images, workers, monkeypatch):
    """A 1x1 stride-1 convolution (whose columns are its input) goes to the split GEMM only for fewer
    images than threads (`conv.convolve` gives an image to one thread: ResNet50's 1x1 layers at batch 1);
    either way the numbers are the float64 reference's and PyTorch's."""
    monkeypatch.setattr(conv_split, "worker_count", lambda: workers)
    monkeypatch.setattr(conv, "worker_count", lambda: workers)        # (`conv.direct_bands`)
    monkeypatch.setattr(conv_split, "balanced_ranges", _balanced_for(workers))
    calls = _only(monkeypatch, "gemm")
    rng = np.random.default_rng(images * 10 + workers)
    x = rng.standard_normal((images, 14, 13, 96)).astype(np.float32)
    filters = (rng.standard_normal((1, 1, 96, 70)) / 10).astype(np.float32)
    bias, scale, shift = (rng.standard_normal(70).astype(np.float32) for _ in range(3))
    ours = ops.conv2d_inference(x, filters, 1, "VALID", bias=bias, activation="relu", scale=scale, shift=shift)
    with compiled.use_compiled(False):
        reference = ops.conv2d_inference(*(v.astype(np.float64) for v in (x, filters)), 1, "VALID",
                                         bias=bias.astype(np.float64), activation="relu",
                                         scale=scale.astype(np.float64), shift=shift.astype(np.float64))
    assert calls == (["gemm"] if images < workers else [])
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-5)
    theirs = _torch(x, filters, 1, "VALID", 1, bias, "relu", scale, shift, "linear")
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


def _balanced_for(workers):
    """`parallel.balanced_ranges` as it splits for `workers` threads."""
    def ranges(count, max_size):
        pieces = -(-count // max(1, max_size))
        pieces = min(count, -(-pieces // workers) * workers)
        return [(count * k // pieces, count * (k + 1) // pieces) for k in range(pieces)]
    return ranges


@pytest.mark.parametrize("seed", range(40))
def test_plan_covers_every_output_once(seed, monkeypatch):
    """Random plans: every (image, row, channel) in exactly one task; bands of at least `min_units`
    rows; channel slices on multiples of CHANNEL_STEP; with several threads, work for each."""
    rng = np.random.default_rng(seed)
    workers = int(rng.integers(1, 5))
    monkeypatch.setattr(conv_split, "worker_count", lambda: workers)
    monkeypatch.setattr(conv, "worker_count", lambda: workers)        # (`conv.direct_bands`)
    monkeypatch.setattr(conv_split, "balanced_ranges", _balanced_for(workers))
    images, units, unit_rows = int(rng.integers(1, 10)), int(rng.integers(2, 60)), int(rng.integers(1, 60))
    channels, min_units = int(rng.integers(1, 600)), int(rng.integers(1, 3))
    unit_bytes, budget = int(rng.integers(1, 1 << 20)), int(rng.integers(1 << 16, 1 << 23))
    split = bool(rng.integers(0, 2))
    tasks = conv_split.plan(images, units, unit_rows, unit_bytes, budget, channels, min_units=min_units,
                            split_channels=split)
    covered = np.zeros((images, units, channels), dtype=int)
    for task_images, rows, part in tasks:
        covered[task_images, rows, part] += 1
        assert rows.stop - rows.start >= min(min_units, units)
        assert part.start % conv_split.CHANNEL_STEP == 0
        if part != slice(0, channels):
            assert split
    assert (covered == 1).all()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("channels,out_channels", [(1, 1), (3, 7), (16, 33), (70, 5)])
def test_compiled_filter_transform_is_the_reference(channels, out_channels, dtype):
    rng = np.random.default_rng(channels * out_channels)
    filters = rng.standard_normal((3, 3, channels, out_channels)).astype(dtype)
    compiled_u = winograd.transform_filters(filters)
    with compiled.use_compiled(False):
        reference = winograd.transform_filters(filters)
    np.testing.assert_array_equal(reference, winograd.transform_filters_reference(filters))
    assert compiled_u.dtype == np.dtype(dtype) and compiled_u.shape == (16, channels, out_channels)
    np.testing.assert_allclose(compiled_u, reference, rtol=1e-15 if dtype == "float64" else 1e-7, atol=1e-15)


@pytest.mark.parametrize("bits", [256, 512])
def test_direct_bands_on_avx2_and_avx512_tiles(bits, monkeypatch):
    """The direct kernel's bands with 8-lane (AVX2) and 16/32-lane (AVX-512) filter tiles."""
    monkeypatch.setattr(direct, "VECTOR_BITS", bits)
    calls = _only(monkeypatch, "direct")
    rng = np.random.default_rng(bits)
    x = rng.standard_normal((1, 33, 30, 5)).astype(np.float32)
    filters = (rng.standard_normal((3, 3, 5, 21)) / 6).astype(np.float32)
    scale, shift = (rng.standard_normal(21).astype(np.float32) for _ in range(2))
    ours = ops.conv2d_inference(x, filters, 1, "SAME", scale=scale, shift=shift, then="relu")
    with compiled.use_compiled(False):
        reference = ops.conv2d_inference(x, filters, 1, "SAME", scale=scale, shift=shift, then="relu")
    assert calls == ["direct"] and direct.lanes_for(21) == (8 if bits == 256 else 32)
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pool", [("max", 3, 2, "SAME"), ("avg", 3, 1, "VALID")])
@pytest.mark.parametrize("path", ["winograd", "gemm"])
def test_pooling_after_a_split_path(path, pool, monkeypatch):
    """A pooling the tiles cannot do runs over the split path's whole output, with the reference's numbers."""
    calls = _only(monkeypatch, path)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 16, 14, 24)).astype(np.float32)
    filters = (rng.standard_normal((3, 3, 24, 40)) / 14).astype(np.float32)
    bias = rng.standard_normal(40).astype(np.float32)
    ours = ops.conv2d_inference(x, filters, 1, "SAME", bias=bias, activation="relu", pool=pool)
    with compiled.use_compiled(False):
        reference = ops.conv2d_inference(x.astype(np.float64), filters.astype(np.float64), 1, "SAME",
                                         bias=bias.astype(np.float64), activation="relu", pool=pool)
    assert calls == [path]
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-5)


def _stored_then_finished(x, filters, strides, padding, dilations, epilogue):
    """The direct kernel's convolution stored as summed, then finished by the epilogue kernel and capped:
    the two passes `direct_forward` made before it finished its bands of rows in L1."""
    ctx = conv._forward_context(x, filters, strides, padding, dilations, 1, "NHWC")
    out = np.empty((len(x),) + tuple(ctx["out_hw"]) + (filters.shape[3],), np.float32)
    prepared = direct.prepare(filters, ctx["padded_shape"], dilations)
    direct.conv_block(np.ascontiguousarray(ctx["x_pad"]), 0, 0, prepared, strides, out)
    conv_split._finish_rows(out.reshape(-1, filters.shape[3]), epilogue, slice(None))
    return out


@pytest.mark.parametrize("bits", [256, 512])
@pytest.mark.parametrize("seed", range(10))
def test_the_direct_convolution_finishes_its_bands_of_rows_itself(seed, bits, monkeypatch):
    """`direct_forward` finishes each band of rows while in L1 (bias, ReLU, a batch norm's map, ReLU, the
    ReLU6's cap, NaN kept): bit for bit the output stored then finished in two passes, with no pass of
    the epilogue kernel over the output; narrow outputs (tiles of 2 rows), several bands per image (the last
    overlapping the one before), tiles of 8 and 16/32 lanes."""
    monkeypatch.setattr(direct, "VECTOR_BITS", bits)
    epilogue_kernel = conv_split._epilogue_kernel
    monkeypatch.setattr(conv_split, "_epilogue_kernel", None)       # a pass over the output would fail
    rng = np.random.default_rng(seed)
    channels, out_channels = int(rng.choice([1, 3, 8])), int(rng.choice([5, 16, 21, 32, 50]))
    kernel, step, dilation = int(rng.choice([1, 3, 5])), int(rng.integers(1, 3)), int(rng.integers(1, 3))
    width = 4 * step + (kernel - 1) * dilation if seed % 3 == 0 else int(rng.integers(12, 30))   # 4 wide: 2 rows
    x = rng.standard_normal((int(rng.integers(1, 4)), int(rng.integers(10, 24)), width, channels)).astype(np.float32)
    x[rng.random(x.shape) < 0.01] = np.nan
    filters = rng.standard_normal((kernel, kernel, channels, out_channels)).astype(np.float32)
    bias, shift = (rng.standard_normal(out_channels).astype(np.float32) for _ in range(2))
    scale = (4 * rng.standard_normal(out_channels)).astype(np.float32)
    bias, activation, scale, shift, then, cap = [(bias, "relu", None, None, "linear", None),
                                                 (None, "linear", scale, shift, "relu", 6.0),
                                                 (bias, "relu", scale, shift, "linear", None),
                                                 (bias, "linear", None, None, "linear", 0.5)][seed % 4]
    epilogue = conv_split.epilogue_tuple(bias, activation, scale, shift, then, out_channels, np.float32, cap)
    padding, strides, dilations = "SAME" if seed % 2 else "VALID", (step, step), (dilation, dilation)
    geometry = conv.forward_geometry(x, filters, strides, padding, dilations, 1, "NHWC", pad_in_blocks=True)
    assert direct.applies(np.float32, (kernel, kernel), 1, channels, out_channels, geometry["out_hw"], False)
    ours = np.empty((len(x),) + tuple(geometry["out_hw"]) + (out_channels,), np.float32)
    conv_split.direct_forward(conv.bind_arrays(geometry, x, filters), epilogue, ours)
    monkeypatch.setattr(conv_split, "_epilogue_kernel", epilogue_kernel)
    expected = _stored_then_finished(x, filters, strides, padding, dilations, epilogue)
    np.testing.assert_array_equal(ours, expected)
    theirs = _torch(x, filters, step, padding, dilation, bias, activation, scale, shift, then)
    theirs = theirs if cap is None else np.minimum(theirs, cap)           # the oracle: PyTorch, then the cap
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    size = max(1.0, float(np.nanmax(np.abs(theirs), initial=0.0)))
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * size)
    if cap is not None:
        assert np.nanmax(ours) == cap


@pytest.mark.parametrize("shape,out_channels", [
    ((2, 55, 8, 50), 25),        # 6 wide: tiles of 2 rows; 53 rows in bands of 26 (the last overlapping)
    ((1, 45, 40, 3), 64),        # bands of 1 row (a row is 9.5 KB): every band a tile high
    ((3, 20, 130, 8), 40),       # 128 wide, 40 filters: two vectors per pixel, the last 8 lanes of 16
])
def test_the_direct_convolution_finishes_tall_outputs_band_by_band(shape, out_channels, monkeypatch):
    """Outputs taller than one band (`direct.FINISH_BAND_BYTES`): every row finished once its band is summed,
    the last band overlapping the one before where the rows do not divide: the bits of the output stored then
    finished in two passes."""
    monkeypatch.setattr(conv, "DIRECT_ITEMS_PER_THREAD", 1)          # whole images claimed: all their bands
    rng = np.random.default_rng(out_channels)
    x = rng.standard_normal(shape).astype(np.float32)
    filters = rng.standard_normal((3, 3, shape[3], out_channels)).astype(np.float32)
    bias = rng.standard_normal(out_channels).astype(np.float32)
    epilogue = conv_split.epilogue_tuple(bias, "relu", None, None, "linear", out_channels, np.float32, 6.0)
    geometry = conv.forward_geometry(x, filters, (1, 1), "VALID", (1, 1), 1, "NHWC", pad_in_blocks=True)
    out_h, out_w = geometry["out_hw"]
    assert out_h > direct.FINISH_BAND_BYTES // (out_w * out_channels * 4)           # several bands per image
    ours = np.empty((len(x), out_h, out_w, out_channels), np.float32)
    conv_split.direct_forward(conv.bind_arrays(geometry, x, filters), epilogue, ours)
    np.testing.assert_array_equal(ours, _stored_then_finished(x, filters, (1, 1), "VALID", (1, 1), epilogue))
    assert 0 < np.count_nonzero(ours == 6.0) and np.all(ours >= 0)
    with compiled.use_compiled(False):                  # the oracle: float64 im2col, then min(relu(z + b), 6)
        oracle = ops.conv2d(x.astype(np.float64), filters.astype(np.float64), 1, "VALID")
    np.testing.assert_allclose(ours, np.minimum(np.maximum(oracle + bias, 0), 6), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("step,dilation", [(1, 1), (2, 1), (1, 2), (2, 2)])
@pytest.mark.parametrize("workers", [1, 2])
def test_a_band_of_rows_pads_only_the_rows_its_windows_read(step, dilation, workers, monkeypatch):
    """Few images are convolved in bands of rows, each thread padding into its scratch block only the padded
    rows its longest band's windows read (no padded copy of the whole input, no scratch as high as the padded
    image), with the reference's numbers."""
    monkeypatch.setattr(direct, "SMALL_WORK", 0)
    monkeypatch.setattr(parallel, "worker_count", lambda: workers)
    monkeypatch.setattr(conv_split, "worker_count", lambda: workers)
    monkeypatch.setattr(conv, "worker_count", lambda: workers)        # (`conv.direct_bands`)
    monkeypatch.setattr(conv, "pad_spatial", None)                  # padding the whole input would fail
    heights = []
    original_scratch = direct._scratch
    monkeypatch.setattr(direct, "_scratch", lambda shape: heights.append(shape[1]) or original_scratch(shape))
    calls = _only(monkeypatch, "direct")
    rng = np.random.default_rng(step + 2 * dilation)
    x = rng.standard_normal((2, 37, 26, 3)).astype(np.float32)
    filters = (rng.standard_normal((3, 3, 3, 16)) / 5).astype(np.float32)
    bias = rng.standard_normal(16).astype(np.float32)
    ours = ops.conv2d_inference(x, filters, step, "SAME", dilation, bias=bias, activation="relu")
    monkeypatch.undo()
    with compiled.use_compiled(False):
        reference = ops.conv2d_inference(x.astype(np.float64), filters.astype(np.float64), step, "SAME", dilation,
                                         bias=bias.astype(np.float64), activation="relu")
    assert calls == ["direct"]
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-5)
    geometry = conv.forward_geometry(x, filters, (step, step), "SAME", (dilation, dilation), 1, "NHWC")
    bands = conv.DIRECT_ITEMS_PER_THREAD * workers // 2             # 8 or 16 bands of each image
    longest = -(-geometry["out_hw"][0] // bands)
    assert heights == [(longest - 1) * step + 2 * dilation + 1] * workers
    assert heights[0] < geometry["padded_shape"][1] // 2


@pytest.mark.parametrize("seed", range(10))
def test_gemm_bands_of_a_few_rows_take_the_dense_tiles_products(seed, monkeypatch):
    """Bands of 5 to `dense_tiles.max_rows()` product rows by a matrix `dense_tiles` takes (its size limit
    lowered: ResNet50's 3x3 layers on a 7x7 image have 49 rows by a 9 MB matrix) run its products, on 1-3
    threads, the output channels split or not (any number: the last vector's columns summed apart); the
    result is the float64 reference's and PyTorch's."""
    from convscope.ops import dense_tiles
    if not dense_tiles.fits(dense_tiles.MIN_ROWS, 1 << 10, 1 << 10):
        pytest.skip("dense_tiles needs the compiled path and 256-bit SIMD or wider")
    rng = np.random.default_rng(2600 + seed)
    workers = 1 + seed % 3
    monkeypatch.setattr(dense_tiles, "MIN_BYTES", 0)
    monkeypatch.setattr(direct, "SMALL_WORK", 0)
    monkeypatch.setattr(conv_split, "worker_count", lambda: workers)
    monkeypatch.setattr(conv, "worker_count", lambda: workers)        # (`conv.direct_bands`)
    monkeypatch.setattr(conv_split, "balanced_ranges", _balanced_for(workers))
    products = []
    original = dense_tiles.product
    monkeypatch.setattr(dense_tiles, "product", lambda a, *rest: products.append(a.shape[0]) or original(a, *rest))
    calls = _only(monkeypatch, "gemm")
    size, channels = int(rng.integers(3, 9)), int(rng.choice([3, 20, 64]))
    out_channels = int(rng.choice([16, 33, 40, 70, 96, 130]))
    x = rng.standard_normal((int(rng.integers(1, 3)), size, size, channels)).astype(np.float32)
    filters = (rng.standard_normal((3, 3, channels, out_channels)) / np.sqrt(9 * channels)).astype(np.float32)
    bias, scale, shift = (rng.standard_normal(out_channels).astype(np.float32) for _ in range(3))
    ours = ops.conv2d_inference(x, filters, 1, "SAME", bias=bias, activation="relu", scale=scale, shift=shift)
    with compiled.use_compiled(False):
        reference = ops.conv2d_inference(*(v.astype(np.float64) for v in (x, filters)), 1, "SAME",
                                         bias=bias.astype(np.float64), activation="relu",
                                         scale=scale.astype(np.float64), shift=shift.astype(np.float64))
    assert calls == ["gemm"]
    rows = x.shape[0] * size * size
    assert products and all(dense_tiles.MIN_ROWS <= r <= min(rows, dense_tiles.max_rows()) for r in products), \
        (products, rows)
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-5)
    theirs = _torch(x, filters, 1, "SAME", 1, bias, "relu", scale, shift, "linear")
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape,out_channels", [((8, 7, 7, 128), 64), ((9, 7, 7, 160), 130), ((15, 5, 5, 128), 40),
                                                 ((10, 9, 7, 129), 33)])
def test_winograd_bands_of_partly_covered_tiles_with_wide_channels(shape, out_channels, monkeypatch):
    """Outputs whose 2x2 tiles overhang them (7x7: 64 computed for 49) take Winograd's bands from
    `winograd.WIDE_CHANNELS` input channels (ResNet50's stage 5 at batch 8 or more): the float64 reference's and
    PyTorch's numbers, with the bias, ReLU and an inference BN's map."""
    calls = _only(monkeypatch, "winograd")
    rng = np.random.default_rng(shape[3] + out_channels)
    x = rng.standard_normal(shape).astype(np.float32)
    filters = (rng.standard_normal((3, 3, shape[3], out_channels)) / np.sqrt(9 * shape[3])).astype(np.float32)
    bias, scale, shift = (rng.standard_normal(out_channels).astype(np.float32) for _ in range(3))
    epilogue = (bias, "relu", scale, shift, "linear")
    ours, reference = _path_and_reference(monkeypatch, "winograd", x, filters, 1, "SAME", 1, epilogue)
    assert calls == ["winograd"]
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-5)
    theirs = _torch(x, filters, 1, "SAME", 1, *epilogue)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
