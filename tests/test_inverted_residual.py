"""ops/inverted_residual.py: a MobileNetV2 block (1x1 expand -> 3x3 depthwise -> 1x1 project, each with its
epilogue, the residual in the last) band by band, against the three unfused NumPy references one after
another, each path of the ordered list alone, on random configurations (several bands, band borders at the
image's top and bottom, strides 1 and 2, AVX2's 8 lanes; with the NumPy kernels, that the banded path declines
and the next one runs); and its argument errors."""

import numpy as np
import pytest

from _paths import recording
from convscope.ops import depthwise_fast, fused_inference as fi, inverted_residual as ir, parallel, pointwise_simd

pytestmark = pytest.mark.usefixtures("kernel_path")
ACTS = fi.INFERENCE_ACTIVATIONS


def _epilogue(rng, channels, dtype):
    bias = rng.standard_normal(channels).astype(dtype) if rng.random() < 0.5 else None
    scale, shift = ((rng.random(channels).astype(dtype) + 0.5, rng.standard_normal(channels).astype(dtype))
                    if rng.random() < 0.8 else (None, None))
    return dict(bias=bias, activation=ACTS[rng.integers(4)], scale=scale, shift=shift, then=ACTS[rng.integers(4)])


def _block(rng, dtype, lowest_mid):
    n, h, w = int(rng.integers(1, 4)), int(rng.integers(3, 19)), int(rng.integers(3, 15))
    channels, mid = int(rng.integers(1, 12)), int(rng.integers(lowest_mid, lowest_mid + 30))
    return _block_arrays(rng, dtype, (n, h, w, channels), mid, lambda: int(rng.integers(1, 12)))


def _block_arrays(rng, dtype, shape, mid, outputs):
    """A random block on input `shape` with `mid` middle channels and `outputs()` output channels (drawn after
    the depthwise filters): (x, expand, depthwise, project, stride, padding, epilogues)."""
    stride = int(rng.choice([1, 2]))
    padding = "SAME" if rng.random() < 0.5 else [[0, 0], [int(rng.integers(2)), int(rng.integers(2))],
                                                  [int(rng.integers(2)), int(rng.integers(2))], [0, 0]]
    x = (rng.standard_normal(shape) * 2).astype(dtype)
    expand = (rng.standard_normal((1, 1, shape[3], mid)) * 0.5).astype(dtype)
    depthwise = (rng.standard_normal((3, 3, mid, 1)) * 0.5).astype(dtype)
    project = (rng.standard_normal((1, 1, mid, outputs())) * 0.3).astype(dtype)
    epilogues = [_epilogue(rng, mid, dtype), _epilogue(rng, mid, dtype), _epilogue(rng, project.shape[3], dtype)]
    return x, expand, depthwise, project, stride, padding, epilogues


def _only_path(path, lanes, seed, monkeypatch):
    """Run `path` alone, with `lanes` 8 for AVX2's tiles; odd seeds take bands of rows, many per image,
    borders inside and at its edges (else units of whole images).  Returns (banded, asked): asked is None,
    or, where the banded path cannot run (the NumPy kernels, no SIMD), a list that records each path's
    answer while the whole list runs instead (`_check_declined`)."""
    if lanes == 8 and depthwise_fast.lanes():
        monkeypatch.setattr(depthwise_fast, "lanes", lambda: 8)
    banded = path == "banded"
    if seed % 2:
        monkeypatch.setattr(ir, "BAND_BYTES", 1)
    if banded and not (fi.compiled.active() and depthwise_fast.lanes()):
        asked = []
        monkeypatch.setattr(ir, "_PATHS", recording(ir._PATHS, asked))
        return banded, asked
    monkeypatch.setattr(ir, "_PATHS", tuple(e for e in ir._PATHS if e[0] == path))
    return banded, None


def _check_declined(asked) -> None:
    """Where the banded path cannot run: it was asked and declined, and "one_by_one" ran instead."""
    if asked is not None:
        assert asked == [("compiled_bands", False), ("banded", False), ("one_by_one", True)], asked


GENERAL_PATHS = [name for name, _, _ in ir._PATHS if name != "compiled_bands"]   # any shapes; compiled_bands'
                                                                                    # own tests below


@pytest.mark.parametrize("lanes", ["native", 8])
@pytest.mark.parametrize("path", GENERAL_PATHS)
@pytest.mark.parametrize("seed", range(10))
def test_each_path_alone_matches_the_three_references(path, seed, lanes, monkeypatch):
    banded, asked = _only_path(path, lanes, seed, monkeypatch)
    rng = np.random.default_rng(700 + seed)
    dtype = np.float32 if banded or seed % 3 else np.float64
    x, expand, depthwise, project, stride, padding, epilogues = _block(rng, dtype, depthwise_fast.lanes() or 1)
    if seed % 4 == 3:
        x[0, x.shape[1] // 2, 0, 0] = np.nan            # NaN stays NaN through all three
    mid_shape = fi.conv2d_epilogue_reference(x, expand, 1, "VALID").shape
    out_shape = fi.depthwise_inference_reference(np.zeros(mid_shape, dtype), depthwise, stride, padding).shape
    residual = (rng.standard_normal(out_shape[:3] + (project.shape[3],)).astype(dtype) if seed % 3 != 1 else None)
    expected = ir.inverted_residual_reference(x, expand, depthwise, project, stride, padding, *epilogues, residual)
    got = ir.inverted_residual_inference(x, expand, depthwise, project, stride, padding, *epilogues, residual)
    _check_declined(asked)
    assert got.dtype == dtype and got.shape == expected.shape
    tolerance = dict(rtol=2e-5, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got, expected, **tolerance)


@pytest.mark.parametrize("lanes", ["native", 8])
@pytest.mark.parametrize("path", GENERAL_PATHS)
@pytest.mark.parametrize("seed", range(8))
def test_a_block_without_expansion_matches_depthwise_then_project(path, seed, lanes, monkeypatch):
    """expand None (MobileNetV2's first block, a MobileNet v1 pair): the input's rows go to the depthwise
    kernel as they are; against the two unfused references one after the other."""
    banded, asked = _only_path(path, lanes, seed, monkeypatch)
    rng = np.random.default_rng(900 + seed)
    dtype = np.float32 if banded or seed % 3 else np.float64
    x, _, depthwise, project, stride, padding, epilogues = _block(rng, dtype, depthwise_fast.lanes() or 1)
    x = (rng.standard_normal(x.shape[:3] + (depthwise.shape[2],)) * 2).astype(dtype)
    if seed % 4 == 3:
        x = np.asfortranarray(x)                        # any layout: the op takes its rows contiguous
    mid = fi.depthwise_inference_reference(x, depthwise, stride, padding, **epilogues[1])
    residual = rng.standard_normal(mid.shape[:3] + (project.shape[3],)).astype(dtype) if seed % 3 != 1 else None
    expected = fi.conv2d_epilogue_reference(mid, project, 1, "VALID", residual=residual, **epilogues[2])
    got = ir.inverted_residual_inference(x, None, depthwise, project, stride, padding, {}, *epilogues[1:],
                                         residual)
    _check_declined(asked)
    assert got.dtype == dtype and got.shape == expected.shape
    tolerance = dict(rtol=2e-5, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got, expected, **tolerance)


@pytest.mark.skipif(not depthwise_fast.lanes(), reason="the banded path needs the compiled kernels (numba) and "
                    "256-bit SIMD or wider")
@pytest.mark.parametrize("images,per_unit,workers", [(32, 3, 2), (32, 5, 2), (11, 3, 2), (12, 5, 3), (8, 3, 4)])
def test_whole_image_units_give_each_thread_as_many_images(images, per_unit, workers, monkeypatch):
    """Units of whole images (as many as fit `BAND_BYTES`, e.g. 3 of MobileNetV2's 14x14x384 blocks at batch
    32) are cut so that each thread's chunk holds as many images (within one), not 15 against 17; the
    result is the references'."""
    rng = np.random.default_rng(images + per_unit)
    x, expand, depthwise, project, _, _, epilogues = _block(rng, np.float32, 16)
    x = rng.standard_normal((images, 6, 5, x.shape[3])).astype(np.float32)
    monkeypatch.setattr(ir, "BAND_BYTES", 6 * 5 * expand.shape[3] * 4 * per_unit)
    monkeypatch.setattr(ir, "worker_count", lambda: workers)
    monkeypatch.setattr(parallel, "worker_count", lambda: workers)     # balanced_ranges' count
    chunks = []
    monkeypatch.setattr(ir, "run_in_parallel", lambda units, each, **options: chunks.extend(
        units[len(units) * k // workers:len(units) * (k + 1) // workers] for k in range(workers)) or each(units))
    with fi.compiled.use_compiled(True):        # under either kernel_path: the banded path is compiled only
        got = ir.inverted_residual_inference(x, expand, depthwise, project, 1, "SAME", *epilogues)
    counts = [sum(stop - start for start, stop in chunk) for chunk in chunks]
    assert sum(counts) == images and max(counts) - min(counts) <= 1, counts
    assert max(stop - start for chunk in chunks for start, stop in chunk) <= per_unit
    np.testing.assert_allclose(got, ir.inverted_residual_reference(x, expand, depthwise, project, 1, "SAME",
                                                                   *epilogues), rtol=2e-5, atol=2e-5)


def test_a_prepared_run_takes_new_weights_and_epilogue_values_each_call():
    rng = np.random.default_rng(3)
    x, expand, depthwise, project, stride, padding, epilogues = _block(rng, np.float32, 16)
    run = ir.prepare_inverted_residual_inference(x, expand, depthwise, project, stride, padding, *epilogues)
    for _ in range(2):
        expand, project = expand * 1.5, project - 0.1
        epilogues = [dict(e, scale=None if e["scale"] is None else e["scale"] * 2) for e in epilogues]
        np.testing.assert_allclose(run(x, expand, depthwise, project, *epilogues, None),
                                   ir.inverted_residual_reference(x, expand, depthwise, project, stride, padding,
                                                                  *epilogues), rtol=2e-5, atol=2e-5)


def test_arguments_are_checked_with_messages_naming_the_op_and_argument():
    rng = np.random.default_rng(4)
    x, expand, depthwise, project, stride, padding, epilogues = _block(rng, np.float32, 16)
    wide = np.zeros((3, 3) + expand.shape[2:], np.float32)
    with pytest.raises(ValueError, match=r"inverted_residual_inference: argument `expand` must be 1x1 filters.*"
                                         r"\(3, 3, "):
        ir.inverted_residual_inference(x, wide, depthwise, project, stride, padding, *epilogues)
    with pytest.raises(ValueError, match=r"inverted_residual_inference: argument `project` must be 1x1"):
        ir.inverted_residual_inference(x, expand, depthwise, np.zeros((1, 3, 4, 5), np.float32), stride, padding,
                                       *epilogues)
    with pytest.raises(TypeError, match=r"argument `depthwise_epilogue` must be a dict with keys among"):
        ir.inverted_residual_inference(x, expand, depthwise, project, stride, padding, epilogues[0],
                                       dict(epilogues[1], residual=None), epilogues[2])
    with pytest.raises(ValueError, match=r"depthwise_inference: argument `filter`"):
        ir.inverted_residual_inference(x, expand, depthwise[:, :, :-1], project, stride, padding, *epilogues)
    with pytest.raises(ValueError, match=r"conv2d_epilogue_inference: argument `residual` must have the output's"):
        ir.inverted_residual_inference(x, expand, depthwise, project, stride, padding, *epilogues,
                                       residual=np.zeros((1, 1, 1, 1), np.float32))


def _fitting_block(rng, dtype=np.float32, odd_eights=False):
    """A block the compiled bands take: middle channels in whole pairs of vectors, output channels in whole
    vectors (an odd number of them about half the time), images of at least `pointwise_simd.ROWS` pixels a row
    before and after the depthwise step; any input channels.  `odd_eights`: an odd number of pairs of 8-lane
    vectors in the middle and of 8-lane vectors out (MobileNetV2's 144 -> 24), which only 8-lane tiles take."""
    lanes = pointwise_simd.lanes()
    n, h, w = int(rng.integers(1, 4)), int(rng.integers(3, 17)), int(rng.integers(14, 19))
    channels, mid, out = int(rng.integers(1, 40)), 2 * lanes * int(rng.integers(1, 4)), lanes * int(rng.integers(1, 5))
    if odd_eights:
        mid, out = 16 * int(rng.choice([1, 3, 5, 9])), 8 * int(rng.choice([1, 3, 5]))
    x, expand, depthwise, project, stride, padding, epilogues = _block_arrays(rng, dtype, (n, h, w, channels), mid,
                                                                              lambda: out)
    for e in (epilogues[0], epilogues[2]):          # hard-swish is not in the tiles' epilogue: its own test
        e.update({key: "relu6" for key in ("activation", "then") if e[key] == "hard_silu"})
    return x, expand, depthwise, project, stride, padding, epilogues


def _residual_for(rng, x, expand, depthwise, project, stride, padding):
    mid = np.zeros(x.shape[:3] + (depthwise.shape[2],), x.dtype)
    shape = fi.depthwise_inference_reference(mid, depthwise, stride, padding).shape[:3] + (project.shape[3],)
    return rng.standard_normal(shape).astype(x.dtype)


@pytest.mark.parametrize("seed", range(12))
def test_the_compiled_bands_match_the_three_references(seed, monkeypatch):
    """MobileNet-shaped blocks (any input channels, whole pairs of vectors in the middle, whole vectors out),
    with and without expansion and residual, strides 1 and 2, bands of whole images or of rows (odd seeds,
    borders inside each image), matrices packed or as they lie: the compiled bands run, where compiled and
    SIMD (else they decline and the banded or the one-by-one path runs), and give the three unfused
    references' numbers."""
    if seed % 2:
        monkeypatch.setattr(ir, "BAND_BYTES", 1)
    if seed % 3 == 2:
        monkeypatch.setattr(pointwise_simd, "PACK_ROWS", 1)    # packed: each matrix of over 32 input channels
    rng = np.random.default_rng(1100 + seed)
    x, expand, depthwise, project, stride, padding, epilogues = _fitting_block(rng)
    if seed % 4 == 3:
        expand, epilogues[0] = None, {}
        x = (rng.standard_normal(x.shape[:3] + (depthwise.shape[2],)) * 2).astype(np.float32)
    residual = _residual_for(rng, x, expand, depthwise, project, stride, padding) if seed % 3 else None
    asked = []
    monkeypatch.setattr(ir, "_PATHS", recording(ir._PATHS, asked))
    got = ir.inverted_residual_inference(x, expand, depthwise, project, stride, padding, *epilogues, residual)
    expected = ir.inverted_residual_reference(x, expand, depthwise, project, stride, padding, *epilogues, residual)
    takes = (fi.compiled.active() and depthwise_fast.lanes() > 0 and pointwise_simd.VECTOR_BITS >= 256
             and depthwise_fast.lanes() == pointwise_simd.lanes())
    assert asked[0] == ("compiled_bands", takes), asked
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-5)


@pytest.mark.skipif(not (fi.compiled.available() and depthwise_fast.lanes() and pointwise_simd.VECTOR_BITS >= 256),
                    reason="the compiled bands need numba and 256-bit SIMD or wider")
def test_the_compiled_bands_give_the_same_bits_on_any_threads_bands_and_batch(monkeypatch):
    """Each output row is summed the same way whichever thread claims its band and whether its matrices are
    packed: one thread and whole images, two or three threads claiming bands of one or two rows, and each
    image alone give the same bits."""
    rng = np.random.default_rng(12)
    _, expand, depthwise, project, stride, padding, epilogues = _fitting_block(rng)
    x = rng.standard_normal((3, 13, 15, expand.shape[2])).astype(np.float32)    # 13 or 7 output rows
    residual = _residual_for(rng, x, expand, depthwise, project, stride, padding)
    two_rows = (3 + stride) * 15 * depthwise.shape[2] * 4        # BAND_BYTES for bands of 2 rows: 2, 2, ..., 1
    runs = []
    with fi.compiled.use_compiled(True):
        for workers, band_bytes, pack_rows in ((1, 1 << 30, 1 << 30), (2, 1, 1), (3, 1, 1 << 30), (2, two_rows, 1),
                                               (2, 1 << 30, 1)):
            monkeypatch.setattr(ir, "worker_count", lambda: workers)
            monkeypatch.setattr(parallel, "worker_count", lambda: workers)
            monkeypatch.setattr(ir, "BAND_BYTES", band_bytes)
            monkeypatch.setattr(pointwise_simd, "PACK_ROWS", pack_rows)
            runs.append(ir.inverted_residual_inference(x, expand, depthwise, project, stride, padding, *epilogues,
                                                       residual))
        alone = [ir.inverted_residual_inference(x[i:i + 1], expand, depthwise, project, stride, padding, *epilogues,
                                                residual[i:i + 1]) for i in range(len(x))]
    for got in runs[1:] + [np.concatenate(alone)]:
        np.testing.assert_array_equal(got, runs[0])


def test_the_compiled_bands_decline_what_their_tiles_cannot_take_and_hard_swish_runs_banded(monkeypatch):
    """Declined: output channels not in whole vectors, images narrower than a tile of rows, float64;
    a product's hard-swish epilogue at run time goes to the banded path's run.  Each gives the references'
    numbers."""
    rng = np.random.default_rng(13)
    x, expand, depthwise, project, _, _, epilogues = _fitting_block(rng)
    odd = project.shape[3] - 1
    cases = {"odd channels": (x, expand, project[..., :odd], [epilogues[0], epilogues[1], _first(epilogues[2], odd)]),
             "narrow": (x[:, :, :pointwise_simd.ROWS - 1], expand, project, epilogues),
             "float64": (x.astype(np.float64), expand.astype(np.float64), project.astype(np.float64),
                         [{k: v.astype(np.float64) if isinstance(v, np.ndarray) else v for k, v in e.items()}
                          for e in epilogues])}
    paths = ir._PATHS
    with fi.compiled.use_compiled(True):
        for name, (xc, ec, pc, es) in cases.items():
            asked = []
            monkeypatch.setattr(ir, "_PATHS", recording(paths[:1], asked) + paths[1:])
            dc = depthwise.astype(xc.dtype)
            got = ir.inverted_residual_inference(xc, ec, dc, pc, 1, "SAME", *es)
            assert asked == [("compiled_bands", False)], name
            np.testing.assert_allclose(got, ir.inverted_residual_reference(xc, ec, dc, pc, 1, "SAME", *es),
                                       rtol=2e-5, atol=2e-5)
        monkeypatch.setattr(ir, "_PATHS", paths)
        swish = [dict(epilogues[0], activation="hard_silu"), epilogues[1], dict(epilogues[2], then="hard_silu")]
        run = ir.prepare_inverted_residual_inference(x, expand, depthwise, project, 1, "SAME", *swish)
        assert run.__qualname__.startswith("_compiled_bands")
        calls = []
        monkeypatch.setattr(ir.inverted_residual_simd, "band_kernel", lambda lanes: calls.append(lanes))
        got = run(x, expand, depthwise, project, *swish, None)
        assert calls == []
        np.testing.assert_allclose(got, ir.inverted_residual_reference(x, expand, depthwise, project, 1, "SAME",
                                                                       *swish), rtol=2e-5, atol=2e-5)


def _first(epilogue, channels):
    """`epilogue` for the first `channels` output channels."""
    return {k: v[:channels] if isinstance(v, np.ndarray) else v for k, v in epilogue.items()}


@pytest.mark.skipif(not (fi.compiled.available() and depthwise_fast.lanes() and pointwise_simd.VECTOR_BITS >= 256),
                    reason="the compiled bands need numba and 256-bit SIMD or wider")
def test_a_prepared_compiled_run_packs_new_weights_and_takes_new_epilogue_values_each_call(monkeypatch):
    rng = np.random.default_rng(14)
    x, expand, depthwise, project, stride, padding, epilogues = _fitting_block(rng)
    with fi.compiled.use_compiled(True):
        run = ir.prepare_inverted_residual_inference(x, expand, depthwise, project, stride, padding, *epilogues)
        assert run.__qualname__.startswith("_compiled_bands")
        for _ in range(2):
            expand, project = expand * 1.5, project - 0.1
            epilogues = [dict(e, bias=None if e["bias"] is None else e["bias"] + 1) for e in epilogues]
            np.testing.assert_allclose(run(x, expand, depthwise, project, *epilogues, None),
                                       ir.inverted_residual_reference(x, expand, depthwise, project, stride, padding,
                                                                      *epilogues), rtol=2e-5, atol=2e-5)


COMPILED_TILES = (fi.compiled.available() and depthwise_fast.lanes() > 0 and pointwise_simd.VECTOR_BITS >= 256
                  and depthwise_fast.lanes() == pointwise_simd.lanes())


UNTOUCHED = np.float32(1e30)    # what a kernel did not write (a value no epilogue keeps as it is)


def _threads(monkeypatch, workers: int) -> None:
    monkeypatch.setattr(ir, "worker_count", lambda: workers)
    monkeypatch.setattr(parallel, "worker_count", lambda: workers)


def _kernels_used(monkeypatch) -> set:
    """The compiled kernels called (by any thread) since the set was last cleared: "groups", "bands"."""
    used, simd = set(), ir.inverted_residual_simd

    def spy(real, tag):
        return lambda lanes: (lambda *arguments: used.add(tag) or real(lanes)(*arguments))
    for name, tag in (("group_kernel", "groups"), ("band_kernel", "bands")):
        monkeypatch.setattr(simd, name, spy(getattr(simd, name), tag))
    return used


@pytest.mark.skipif(not COMPILED_TILES, reason="the compiled bands need numba and 256-bit SIMD or wider")
@pytest.mark.parametrize("seed", range(9))
def test_channel_groups_give_the_bands_bits_and_the_references_numbers(seed, monkeypatch):
    """Fewer images than threads, each shared by groups of channels (expand and depthwise per group of middle
    channels, then the projection per group of output channels once those are all done): run after run the
    bands' bits and the unfused references' numbers, with and without expansion and residual, strides 1 and 2,
    matrices packed or not, 2-4 threads, groups of many pairs, of one, and more groups asked than pairs."""
    rng = np.random.default_rng(1500 + seed)
    x, expand, depthwise, project, stride, padding, epilogues = _fitting_block(rng)
    workers = 2 + seed % 3
    x = x[:workers - 1]
    if seed % 4 == 3:
        expand, epilogues[0] = None, {}
        x = (rng.standard_normal(x.shape[:3] + (depthwise.shape[2],)) * 2).astype(np.float32)
    residual = _residual_for(rng, x, expand, depthwise, project, stride, padding) if seed % 3 else None
    if seed % 3 == 2:
        monkeypatch.setattr(pointwise_simd, "PACK_ROWS", 1)
    monkeypatch.setattr(ir, "GROUPS_PER_THREAD", (1, 4, 64)[seed % 3])
    monkeypatch.setattr(fi, "SMALL_WORK", 0)            # handed out however small
    _threads(monkeypatch, workers)
    used = _kernels_used(monkeypatch)
    arguments = (x, expand, depthwise, project, stride, padding, *epilogues, residual)
    with fi.compiled.use_compiled(True):
        grouped = [ir.inverted_residual_inference(*arguments) for _ in range(4)]
        assert used == {"groups"}
        used.clear()
        monkeypatch.setattr(ir, "GROUP_BYTES", 0)
        banded = ir.inverted_residual_inference(*arguments)
        assert used == {"bands"}
    for got in grouped:
        np.testing.assert_array_equal(got, banded)
    np.testing.assert_allclose(grouped[0], ir.inverted_residual_reference(*arguments), rtol=2e-5, atol=2e-5)


@pytest.mark.skipif(not COMPILED_TILES, reason="the compiled bands need numba and 256-bit SIMD or wider")
def test_channel_groups_only_for_fewer_images_than_threads_of_a_small_expanded_tensor(monkeypatch):
    """As many images as threads, one thread, an expanded image over `GROUP_BYTES` or work kept on one thread:
    bands; one image on two threads: groups."""
    rng = np.random.default_rng(16)
    x, expand, depthwise, project, stride, padding, epilogues = _fitting_block(rng)
    x = np.concatenate([x, x])[:2]
    expanded = x.shape[1] * x.shape[2] * expand.shape[3] * 4
    cases = [(2, 2, expanded, 0, "bands"), (1, 1, expanded, 0, "bands"), (1, 2, expanded - 1, 0, "bands"),
             (1, 2, expanded, 1 << 40, "bands"), (1, 2, expanded, 0, "groups")]
    with fi.compiled.use_compiled(True):
        for images, workers, group_bytes, small_work, kernel in cases:
            _threads(monkeypatch, workers)
            monkeypatch.setattr(ir, "GROUP_BYTES", group_bytes)
            monkeypatch.setattr(fi, "SMALL_WORK", small_work)
            used = _kernels_used(monkeypatch)
            got = ir.inverted_residual_inference(x[:images], expand, depthwise, project, stride, padding, *epilogues)
            assert used == {kernel}, (images, workers, group_bytes, small_work)
            np.testing.assert_allclose(got, ir.inverted_residual_reference(x[:images], expand, depthwise, project,
                                                                           stride, padding, *epilogues),
                                       rtol=2e-5, atol=2e-5)


@pytest.mark.skipif(not COMPILED_TILES, reason="the compiled bands need numba and 256-bit SIMD or wider")
@pytest.mark.parametrize("activation", ["relu6", "hard_silu"])
def test_the_3x3_depthwise_kernel_writes_only_the_channels_it_is_given(activation):
    """`depthwise3x3_tiles`' channel range (a thread's group of an image's channels): the whole image's bits in
    channels first..stop, every other channel untouched, with the epilogue in the tiles (ReLU6) or after them
    (hard-swish), residual added, strides 1 and 2 (SAME padding); the whole image the NumPy reference's numbers."""
    lanes = depthwise_fast.lanes()
    kernel = depthwise_fast.depthwise3x3_tiles(lanes)
    rng = np.random.default_rng(17)
    h, w, channels = 9, 11, 4 * lanes
    x = rng.standard_normal((h, w * channels)).astype(np.float32)
    taps = rng.standard_normal(9 * channels).astype(np.float32)
    epilogue = dict(_epilogue(rng, channels, np.float32), activation=activation)
    bias, scale, shift, limits = ir._ends(channels, epilogue)
    for stride in (1, 2):
        out_h, out_w = -(-h // stride), -(-w // stride)
        residual = rng.standard_normal((out_h, out_w * channels)).astype(np.float32)

        def run(first, stop):
            out = np.full((out_h, out_w * channels), UNTOUCHED, np.float32)
            kernel(x, taps, bias, scale, shift, residual, limits, epilogue["scale"] is not None, True, h, w, channels,
                   stride, 1, 1, 0, out_h, out, first, stop)
            return out.reshape(out_h, out_w, channels)

        whole = run(0, channels)
        expected = fi.depthwise_inference_reference(
            x.reshape(1, h, w, channels), taps.reshape(3, 3, channels, 1), stride, "SAME",
            residual=residual.reshape(1, out_h, out_w, channels), **epilogue)[0]
        np.testing.assert_allclose(whole, expected, rtol=2e-5, atol=2e-5)
        for first, stop in [(0, lanes), (lanes, 3 * lanes), (3 * lanes, channels)]:
            part = run(first, stop)
            np.testing.assert_array_equal(part[..., first:stop], whole[..., first:stop])
            assert (part[..., :first] == UNTOUCHED).all() and (part[..., stop:] == UNTOUCHED).all()


def _lanes_used(monkeypatch) -> list:
    """The lanes of each compiled band or group kernel called (by any thread) from now on."""
    used, simd = [], ir.inverted_residual_simd

    def spy(real):
        return lambda lanes: (lambda *arguments: used.append(lanes) or real(lanes)(*arguments))
    for name in ("group_kernel", "band_kernel"):
        monkeypatch.setattr(simd, name, spy(getattr(simd, name)))
    return used


def test_the_kernels_width_is_the_machines_where_the_channels_fit_else_eight_lanes():
    """`_width`: the machine's lanes for middle channels in whole pairs of its vectors and output channels in
    whole vectors; else 8 lanes where they fit those (MobileNetV2's 96 -> 24, 144 -> 24, 144 -> 32 with 16-lane
    vectors: 8 lanes with AVX2 as with AVX-512); else none (the compiled bands decline; so with the compiled ops
    off)."""
    lanes = pointwise_simd.lanes()
    if not (COMPILED_TILES and fi.compiled.active()):       # no SIMD kernels, or the NumPy kernels
        assert ir._width(64, 32) is None
        return
    assert ir._width(2 * lanes, lanes) == lanes and ir._width(6 * lanes, 3 * lanes) == lanes
    assert ir._width(64, 16) == (16 if lanes == 16 else 8) and ir._width(192, 32) == lanes
    for mid, out in ((96, 24), (144, 24), (144, 32), (16, 8), (48, 40)):
        assert ir._width(mid, out) == 8, (mid, out)
    for mid, out in ((40, 24), (144, 12), (8, 8), (144, 0)):
        assert ir._width(mid, out) is None, (mid, out)


@pytest.mark.skipif(not COMPILED_TILES, reason="the compiled bands need numba and 256-bit SIMD or wider")
@pytest.mark.parametrize("seed", range(8))
def test_channels_that_only_eight_lane_tiles_fit_run_them_and_give_the_references_numbers(seed, monkeypatch):
    """An odd number of 8-lane vector pairs in the middle and of 8-lane vectors out: the compiled bands or
    channel groups run 8-lane kernels whatever the machine's vectors, with and without expansion and
    residual, strides 1 and 2, bands of rows or whole images, matrices packed or not; the same bits on one
    thread in whole images, on two claiming bands of rows, image by image and shared by channel groups; the
    unfused references' numbers."""
    rng = np.random.default_rng(1700 + seed)
    x, expand, depthwise, project, stride, padding, epilogues = _fitting_block(rng, odd_eights=True)
    if seed % 4 == 3:
        expand, epilogues[0] = None, {}
        x = (rng.standard_normal(x.shape[:3] + (depthwise.shape[2],)) * 2).astype(np.float32)
    residual = _residual_for(rng, x, expand, depthwise, project, stride, padding) if seed % 3 else None
    if seed % 2:
        monkeypatch.setattr(pointwise_simd, "PACK_ROWS", 1)
    monkeypatch.setattr(fi, "SMALL_WORK", 0)
    used = _lanes_used(monkeypatch)
    asked = []
    monkeypatch.setattr(ir, "_PATHS", recording(ir._PATHS, asked))
    arguments = (x, expand, depthwise, project, stride, padding, *epilogues, residual)
    runs = []
    with fi.compiled.use_compiled(True):
        for workers, band_bytes in ((1, 1 << 30), (2, 1)):
            _threads(monkeypatch, workers)
            monkeypatch.setattr(ir, "BAND_BYTES", band_bytes)
            runs.append(ir.inverted_residual_inference(*arguments))
        _threads(monkeypatch, 2)
        monkeypatch.setattr(ir, "GROUP_BYTES", 1 << 30)        # one image on two threads: channel groups
        for i in range(len(x)):
            alone = ir.inverted_residual_inference(x[i:i + 1], expand, depthwise, project, stride, padding,
                                                   *epilogues, None if residual is None else residual[i:i + 1])
            np.testing.assert_array_equal(alone, runs[0][i:i + 1])
    assert {answer for answer in asked if answer[0] == "compiled_bands"} == {("compiled_bands", True)}, asked
    assert used and set(used) == {8}, used
    np.testing.assert_array_equal(runs[1], runs[0])
    np.testing.assert_allclose(runs[0], ir.inverted_residual_reference(*arguments), rtol=2e-5, atol=2e-5)


@pytest.mark.skipif(not COMPILED_TILES, reason="the compiled bands need numba and 256-bit SIMD or wider")
def test_a_run_prepared_on_the_compiled_bands_keeps_them_with_the_compiled_ops_off():
    """A block prepared while the compiled ops are on (its path and width chosen then: 8-lane channels) runs
    its compiled bands when called with them off, and gives the references' numbers."""
    rng = np.random.default_rng(18)
    x, expand, depthwise, project, stride, padding, epilogues = _fitting_block(rng, odd_eights=True)
    with fi.compiled.use_compiled(True):
        run = ir.prepare_inverted_residual_inference(x, expand, depthwise, project, stride, padding, *epilogues)
    assert run.__qualname__.startswith("_compiled_bands")
    with fi.compiled.use_compiled(False):
        got = run(x, expand, depthwise, project, *epilogues, None)
        expected = ir.inverted_residual_reference(x, expand, depthwise, project, stride, padding, *epilogues)
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-5)
