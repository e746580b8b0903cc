"""ops/pointwise_simd.py: a 1x1 product of few input channels with its epilogue in SIMD tiles, against a
float64 product and the NumPy epilogue (`fused_inference.epilogue_reference`), on random configurations, for
AVX2's and AVX-512's vector widths (LLVM splits the wider vectors where it must); where it runs
(`applies`), that a row's bits do not depend on the rows beside it, NaN and infinities as the NumPy
epilogue, and the fused ops that take it (a 1x1 `conv2d_epilogue_inference`, MobileNetV2's blocks)."""

import sys

import numpy as np
import pytest

from _paths import recording
from convscope.ops import compiled, fused_inference as fi, inverted_residual as ir, pointwise_simd as ps

pytestmark = pytest.mark.skipif(not compiled.available(), reason="the SIMD tiles are compiled")


@pytest.fixture(params=[256, 512], ids=["avx2", "avx512"])
def width(request, monkeypatch):
    """The tiles for 8 or 16 lanes, whatever this machine has; matrices packed from 512 rows (AVX2's rule: with
    512-bit vectors on full-width units convscope packs only a 1x1 convolution's matrices of at most
    `TALL_PACK_BYTES`, but the packed tiles run there all the same)."""
    monkeypatch.setattr(ps, "VECTOR_BITS", request.param)
    monkeypatch.setattr(ps, "PACK_ROWS", 512)
    return request.param // 32


def _case(rng, lanes, rows=None, depth=None):
    rows = int(rng.integers(ps.ROWS, 300)) if rows is None else rows
    depth = int(rng.integers(1, ps.MAX_DEPTH + 1)) if depth is None else depth
    channels = 2 * lanes * int(rng.integers(1, 7))
    x = (rng.standard_normal((rows, depth)) * 2).astype(np.float32)
    w = (rng.standard_normal((depth, channels)) * 0.5).astype(np.float32)
    bias, scale, shift = (rng.standard_normal(channels).astype(np.float32) for _ in range(3))
    act, then, affine = int(rng.integers(3)), int(rng.integers(3)), bool(rng.random() < 0.7)
    return x, w, bias, scale, shift, act, then, affine


def _expected(x, w, bias, scale, shift, act, then, affine):
    """The float64 product rounded to float32, then the NumPy epilogue (`ops.activations`, op after op)."""
    z = (x.astype(np.float64) @ w.astype(np.float64)).astype(np.float32)
    return fi.epilogue_reference(z, bias, fi.INFERENCE_ACTIVATIONS[act], scale if affine else None,
                                 shift if affine else None, None, fi.INFERENCE_ACTIVATIONS[then])


def _tiles(x, w, bias, scale, shift, act, then, affine):
    out = np.full((x.shape[0], w.shape[1]), np.nan, np.float32)
    ps.product_rows(x, w, out, bias, scale, shift, fi._limits(act, then, np.float32), affine)
    return out


@pytest.mark.parametrize("seed", range(12))
def test_tiles_match_the_float64_product_and_the_scalar_epilogue(width, seed):
    rng = np.random.default_rng(seed)
    case = _case(rng, width)
    assert ps.applies(case[0], case[1], False, False)
    got, expected = _tiles(*case), _expected(*case)
    scale = np.abs(case[0]).max() * np.abs(case[1]).sum(axis=0).max() + 1
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6 * scale)
    assert not np.isnan(got).any()


def test_a_rows_bits_do_not_depend_on_the_rows_beside_it(width):
    """The last tile overlaps the one before; any block of rows gives each row the same bits."""
    rng = np.random.default_rng(7)
    x, w, *rest = _case(rng, width, rows=47, depth=24)
    whole = _tiles(x, w, *rest)
    for start, stop in [(0, 6), (5, 13), (13, 47), (40, 47), (1, 46)]:
        np.testing.assert_array_equal(_tiles(np.ascontiguousarray(x[start:stop]), w, *rest), whole[start:stop])


def test_nan_and_infinities_pass_through_as_in_the_reference_epilogue(width):
    rng = np.random.default_rng(3)
    x, w, bias, scale, shift, _, _, _ = _case(rng, width, rows=20, depth=16)
    x[2, 3], x[5, 0], x[9, 9] = np.nan, np.inf, -np.inf
    for act, then in [(1, 0), (2, 2), (0, 1), (2, 0)]:
        got = _tiles(x, w, bias, scale, shift, act, then, True)
        z = fi.epilogue_reference(x @ w, bias, fi.INFERENCE_ACTIVATIONS[act], scale, shift, None,
                                  fi.INFERENCE_ACTIVATIONS[then])    # NumPy's products where not finite
        assert np.array_equal(np.isnan(got), np.isnan(z))
        finite = np.isfinite(z)
        np.testing.assert_allclose(got[finite], z[finite], rtol=1e-5, atol=1e-4)
        np.testing.assert_array_equal(got[~finite & ~np.isnan(z)], z[~finite & ~np.isnan(z)])


def test_where_the_tiles_apply(width):
    rng = np.random.default_rng(0)
    x, w = _case(rng, width, rows=10, depth=ps.MAX_DEPTH)[:2]
    assert ps.applies(x, w, False, False)
    deep = np.ones((ps.MAX_DEPTH + 1, w.shape[1]), np.float32)
    odd = np.ones((w.shape[0], w.shape[1] - width), np.float32)      # channels not whole pairs of vectors
    assert not ps.applies(np.ones((10, ps.MAX_DEPTH + 1), np.float32), deep, False, False)
    assert not ps.applies(x, odd, False, False)
    assert not ps.applies(x[:ps.ROWS - 1], w, False, False)
    assert not ps.applies(x, w, True, False)                          # hard-swish
    assert not ps.applies(x, w, False, True)                          # a residual
    assert not ps.applies(x.astype(np.float64), w.astype(np.float64), False, False)
    assert not ps.applies(np.asfortranarray(x), w, False, False)
    with compiled.use_compiled(False):
        assert not ps.applies(x, w, False, False)


def test_a_wrong_output_is_refused(width):
    rng = np.random.default_rng(0)
    x, w, bias, scale, shift, act, then, affine = _case(rng, width, rows=12, depth=8)
    limits = fi._limits(act, then, np.float32)
    for out in (np.empty((12, w.shape[1] + 1), np.float32), np.empty((w.shape[1], 12), np.float32).T):
        with pytest.raises(ValueError, match="pointwise_simd: argument `out` must be C-contiguous of shape"):
            ps.product_rows(x, w, out, bias, scale, shift, limits, affine)


@pytest.mark.parametrize("seed", range(4))
def test_a_1x1_convolution_with_its_epilogue_takes_the_tiles(width, seed, monkeypatch):
    """conv2d_epilogue_inference's 1x1 path on few input channels, against the unfused reference."""
    rng = np.random.default_rng(seed)
    channels, filters = int(rng.integers(1, ps.MAX_DEPTH + 1)), 2 * width * int(rng.integers(1, 4))
    x = rng.standard_normal((int(rng.integers(2, 5)), 9, 7, channels)).astype(np.float32)
    w = (rng.standard_normal((1, 1, channels, filters)) * 0.5).astype(np.float32)
    bias, scale, shift = (rng.standard_normal(filters).astype(np.float32) for _ in range(3))
    asked = []
    monkeypatch.setattr(fi, "_ROWS_PATHS", recording(fi._ROWS_PATHS, asked))
    got = fi.conv2d_epilogue_inference(x, w, 1, "VALID", bias=bias, activation="relu6", scale=scale, shift=shift)
    expected = fi.conv2d_epilogue_reference(x, w, 1, "VALID", bias=bias, activation="relu6", scale=scale,
                                            shift=shift)
    assert asked and set(asked) == {("simd_tiles", True)}      # every block in the tiles
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def _block(rng, n, size, channels, mid):
    """A MobileNetV2 block's input (n, size, size, channels), weights and epilogues (BN maps, ReLU6 but the
    projection's)."""
    x = rng.standard_normal((n, size, size, channels)).astype(np.float32)
    expand = (rng.standard_normal((1, 1, channels, mid)) * 0.3).astype(np.float32)
    depthwise = (rng.standard_normal((3, 3, mid, 1)) * 0.3).astype(np.float32)
    project = (rng.standard_normal((1, 1, mid, channels)) * 0.3).astype(np.float32)
    epilogues = [dict(bias=rng.standard_normal(c).astype(np.float32), activation="relu6",
                      scale=rng.random(c).astype(np.float32) + 0.5, shift=rng.standard_normal(c).astype(np.float32))
                 for c in (mid, mid, channels)]
    epilogues[2]["activation"] = "linear"
    return x, expand, depthwise, project, epilogues


@pytest.mark.parametrize("seed", range(4))
def test_mobilenet_blocks_expand_and_project_few_channels_in_tiles(width, seed, monkeypatch):
    """The banded inverted residual with MobileNetV2's shapes of few channels (16 -> 96 -> 16 and the like;
    a residual or many channels in the projection go through BLAS), against the three references.  (The
    compiled bands, first in the list: `test_inverted_residual.py`.)"""
    rng = np.random.default_rng(seed)
    monkeypatch.setattr(ir, "_PATHS", tuple(entry for entry in ir._PATHS if entry[0] != "compiled_bands"))
    channels = int(rng.choice([16, 24, 32]))
    mid, n, size = 2 * width * int(rng.integers(3, 6)), int(rng.integers(1, 3)), int(rng.integers(6, 15))
    x, expand, depthwise, project, epilogues = _block(rng, n, size, channels, mid)
    stride = int(rng.choice([1, 2]))
    residual = x if stride == 1 else None
    if seed % 2:
        monkeypatch.setattr(ir, "BAND_BYTES", 1)          # bands of rows, borders inside each image
    asked = []
    monkeypatch.setattr(fi, "_ROWS_PATHS", recording(fi._ROWS_PATHS, asked))
    got = ir.inverted_residual_inference(x, expand, depthwise, project, stride, "SAME", *epilogues,
                                         residual=residual)
    expected = ir.inverted_residual_reference(x, expand, depthwise, project, stride, "SAME", *epilogues,
                                              residual=residual)
    assert ("simd_tiles", True) in asked
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def _deep_case(rng, lanes, rows=None, residual=True):
    """A product of `MAX_DEPTH` + 1 to `DEEP_MAX_DEPTH` input channels, with or without a residual."""
    depth = int(rng.integers(ps.MAX_DEPTH + 1, ps.DEEP_MAX_DEPTH + 1))
    x, w, bias, scale, shift, act, then, affine = _case(rng, lanes, rows, depth)
    res = rng.standard_normal((x.shape[0], w.shape[1])).astype(np.float32) if residual else None
    return x, w, bias, scale, shift, act, then, affine, res


def _deep_tiles(x, w, bias, scale, shift, act, then, affine, res):
    """`deep_product_rows` by `w`, a matrix or `pack`'s copy of one."""
    channels = w.shape[1] if w.ndim == 2 else w.shape[0] * w.shape[2]
    out = np.full((x.shape[0], channels), np.nan, np.float32)
    has_residual = res is not None
    ps.deep_product_rows(x, w, out, bias, scale, shift, res if has_residual else np.zeros((1, channels),
                         np.float32), fi._limits(act, then, np.float32), affine, has_residual)
    return out


@pytest.mark.parametrize("seed", range(12))
def test_deep_tiles_match_the_float64_product_and_the_scalar_epilogue_with_a_residual(width, seed):
    """33-64 input channels (ResNet50's first stage: 64 -> 256 with the shortcut's sum), rows first: the
    float64 product rounded to float32, then the NumPy epilogue with the residual after the batch norm's map."""
    rng = np.random.default_rng(100 + seed)
    x, w, bias, scale, shift, act, then, affine, res = _deep_case(rng, width, residual=seed % 3 != 0)
    assert ps.deep_applies(x, w, False) and not ps.applies(x, w, False, False)
    got = _deep_tiles(x, w, bias, scale, shift, act, then, affine, res)
    z = (x.astype(np.float64) @ w.astype(np.float64)).astype(np.float32)
    expected = fi.epilogue_reference(z, bias, fi.INFERENCE_ACTIVATIONS[act], scale if affine else None,
                                     shift if affine else None, res, fi.INFERENCE_ACTIVATIONS[then])
    size = np.abs(x).max() * np.abs(w).sum(axis=0).max() + 1
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6 * size)
    assert not np.isnan(got).any()


@pytest.mark.parametrize("packed", [False, True])
def test_the_deep_kernel_writes_only_the_output_channels_it_is_given(width, packed):
    """`deep_kernel`'s channel range (a thread's group of an image's channels in `inverted_residual_simd`): the
    whole product's bits in pairs of vectors first..stop, every other channel untouched."""
    rng = np.random.default_rng(9)
    x, w, bias, scale, shift, act, then, affine, res = _deep_case(rng, width, rows=23)
    w = np.concatenate([w, w[:, ::-1]], axis=1)            # at least four pairs of vectors
    bias, scale, shift, res = (np.concatenate([v, v], axis=-1) for v in (bias, scale, shift, res))
    whole = _deep_tiles(x, ps.pack(w) if packed else w, bias, scale, shift, act, then, affine, res)
    pair, depth, channels = 2 * width, w.shape[0], w.shape[1]
    step, scale_c = (pair, depth) if packed else (channels, 1)
    matrix = (ps.pack(w) if packed else w).reshape(-1)
    for first, stop in [(0, pair), (pair, 3 * pair), (channels - pair, channels), (pair, pair)]:
        out = np.full_like(whole, 1e30)
        ps.deep_kernel(width)(x, matrix, step, scale_c, out, bias, scale, shift, res, fi._limits(act, then, np.float32),
                              affine, True, False, first, stop)
        np.testing.assert_array_equal(out[:, first:stop], whole[:, first:stop])
        assert (out[:, :first] == 1e30).all() and (out[:, stop:] == 1e30).all()


@pytest.mark.parametrize("stream", [False, True])
def test_the_deep_kernel_takes_the_last_vector_alone_after_the_pairs(width, stream):
    """An odd number of vectors of output channels (MobileNetV2's 24 on AVX2) from a matrix as it lies: the
    pairs' tiles, then the last vector alone, each output summed as in a pair (the bits of the same channels
    beside one more vector), the float64 product and the NumPy epilogue with the residual to rounding."""
    rng = np.random.default_rng(10)
    x, w, bias, scale, shift, act, then, affine, res = _deep_case(rng, width, rows=29)
    w, bias, scale, shift = w[:, :3 * width], bias[:3 * width], scale[:3 * width], shift[:3 * width]
    res = np.ascontiguousarray(rng.standard_normal((x.shape[0], 3 * width)).astype(np.float32))
    assert ps.deep_fits(3 * width) and not ps.tiles_fit(3 * width)
    wide = np.concatenate([w, w[:, :width]], axis=1)          # the same channels and one more vector: pairs only
    pad = lambda v: np.concatenate([v, v[..., :width]], axis=-1)
    limits = fi._limits(act, then, np.float32)
    out = fi._aligned_empty((x.shape[0], 3 * width), np.float32)
    ps.deep_kernel(width)(x, w.reshape(-1), 3 * width, 1, out, bias, scale, shift, res, limits, affine, True, stream,
                          0, 3 * width)
    paired = np.full((x.shape[0], 4 * width), 1e30, np.float32)
    ps.deep_kernel(width)(x, wide.reshape(-1), 4 * width, 1, paired, pad(bias), pad(scale), pad(shift),
                          np.ascontiguousarray(pad(res)), limits, affine, True, False, 0, 4 * width)
    np.testing.assert_array_equal(out, paired[:, :3 * width])
    z = (x.astype(np.float64) @ w.astype(np.float64)).astype(np.float32)
    expected = fi.epilogue_reference(z, bias, fi.INFERENCE_ACTIVATIONS[act], scale if affine else None,
                                     shift if affine else None, res, fi.INFERENCE_ACTIVATIONS[then])
    size = np.abs(x).max() * np.abs(w).sum(axis=0).max() + 1
    np.testing.assert_allclose(out, expected, rtol=0, atol=2e-6 * size)


def test_deep_tiles_give_a_row_the_same_bits_in_any_block(width):
    rng = np.random.default_rng(8)
    x, w, bias, scale, shift, act, then, affine, res = _deep_case(rng, width, rows=47)
    whole = _deep_tiles(x, w, bias, scale, shift, act, then, affine, res)
    for start, stop in [(0, 6), (5, 13), (13, 47), (40, 47), (1, 46)]:
        part = _deep_tiles(np.ascontiguousarray(x[start:stop]), w, bias, scale, shift, act, then, affine,
                           np.ascontiguousarray(res[start:stop]))
        np.testing.assert_array_equal(part, whole[start:stop])


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("rows", [12, 13, 24, 47])
def test_tall_tiles_give_the_bits_of_the_tiles_of_rows(width, packed, rows):
    """`deep_kernel(width, TALL_ROWS)` (12-row tiles, the last overlapping the one before): each output summed in
    the input channels' order as the 6-row tiles sum it, so the same bits, the residual and streamed stores
    included; an odd last vector (a matrix as it lies) alone after the pairs; the float64 product and the NumPy
    epilogue to rounding."""
    rng = np.random.default_rng(300 + rows)
    x, w, bias, scale, shift, act, then, affine, res = _deep_case(rng, width, rows=rows)
    channels = 4 * width if packed else 3 * width       # unpacked: three vectors, a pair, then one alone
    w = np.ascontiguousarray((rng.standard_normal((w.shape[0], channels)) * 0.5).astype(np.float32))
    bias, scale, shift = (rng.standard_normal(channels).astype(np.float32) for _ in range(3))
    res = np.ascontiguousarray(rng.standard_normal((rows, channels)).astype(np.float32))
    matrix = ps.pack(w) if packed else w
    depth = w.shape[0]
    step, scale_c = (2 * width, depth) if packed else (channels, 1)
    limits = fi._limits(act, then, np.float32)
    outs = {}
    for tile, stream in [(ps.ROWS, False), (ps.TALL_ROWS, False), (ps.TALL_ROWS, True)]:
        out = fi._aligned_empty((rows, channels), np.float32)
        ps.deep_kernel(width, tile)(x, matrix.reshape(-1), step, scale_c, out, bias, scale, shift, res, limits,
                                    affine, True, stream, 0, channels)
        outs[tile, stream] = out
    np.testing.assert_array_equal(outs[ps.TALL_ROWS, False], outs[ps.ROWS, False])
    np.testing.assert_array_equal(outs[ps.TALL_ROWS, True], outs[ps.ROWS, False])
    z = (x.astype(np.float64) @ w.astype(np.float64)).astype(np.float32)
    expected = fi.epilogue_reference(z, bias, fi.INFERENCE_ACTIVATIONS[act], scale if affine else None,
                                     shift if affine else None, res, fi.INFERENCE_ACTIVATIONS[then])
    size = np.abs(x).max() * np.abs(w).sum(axis=0).max() + 1
    np.testing.assert_allclose(outs[ps.TALL_ROWS, False], expected, rtol=0, atol=2e-6 * size)


@pytest.mark.parametrize("bits,full_width,stream,residual,count,expected", [
    (512, True, False, True, 40, 12), (512, True, True, False, 40, 12), (512, True, False, True, 12, 12),
    (512, True, False, True, 11, 6),     # fewer rows than a tall tile
    (512, True, True, True, 40, 6),      # 24 rows streamed in and out: the tiles of 6 rows
    (512, False, False, True, 40, 6),    # 512-bit vectors on 256-bit halves (Zen 4): unmeasured, 6 rows
    (256, True, False, True, 40, 6),
])
def test_deep_product_rows_takes_tall_tiles_where_512_bit_units_run_whole(bits, full_width, stream, residual, count,
                                                                          expected, monkeypatch):
    """`tall_tiles()` (512-bit vectors, `simd.FULL_WIDTH_CPU`) decides the rows per tile of `deep_product_rows`, from
    `TALL_ROWS` rows, but for a streamed output with a residual; the numbers of the float64 product either way."""
    monkeypatch.setattr(ps, "VECTOR_BITS", bits)
    monkeypatch.setattr("convscope.ops.simd.FULL_WIDTH_CPU", full_width)
    asked, kernel = [], ps.deep_kernel
    monkeypatch.setattr(ps, "deep_kernel", lambda width, rows=ps.ROWS: asked.append(rows) or kernel(width, rows))
    assert ps.tall_tiles() is (bits == 512 and full_width)
    rng = np.random.default_rng(11)
    x, w, bias, scale, shift, act, then, affine, res = _deep_case(rng, bits // 32, rows=count)
    out = fi._aligned_empty((count, w.shape[1]), np.float32)
    ps.deep_product_rows(x, w, out, bias, scale, shift, res, fi._limits(act, then, np.float32), affine, residual,
                         stream)
    assert asked == [expected]
    z = (x.astype(np.float64) @ w.astype(np.float64)).astype(np.float32)
    expected_out = fi.epilogue_reference(z, bias, fi.INFERENCE_ACTIVATIONS[act], scale if affine else None,
                                         shift if affine else None, res if residual else None,
                                         fi.INFERENCE_ACTIVATIONS[then])
    size = np.abs(x).max() * np.abs(w).sum(axis=0).max() + 1
    np.testing.assert_allclose(out, expected_out, rtol=0, atol=2e-6 * size)


def test_where_the_deep_tiles_apply_and_what_they_refuse(width):
    rng = np.random.default_rng(1)
    x, w = _deep_case(rng, width, rows=10)[:2]
    assert ps.deep_applies(x, w, False)
    for depth, expected in [(ps.MAX_DEPTH, False), (ps.MAX_DEPTH + 1, True), (ps.DEEP_MAX_DEPTH, True),
                            (ps.DEEP_MAX_DEPTH + 1, False)]:
        rows, matrix = np.ones((10, depth), np.float32), np.ones((depth, w.shape[1]), np.float32)
        assert ps.deep_applies(rows, matrix, False) is expected
    assert not ps.deep_applies(x, w, True)                             # hard-swish
    assert not ps.deep_applies(x[:ps.ROWS - 1], w, False)
    assert not ps.deep_applies(x, np.ones((w.shape[0], w.shape[1] - width), np.float32), False)
    assert not ps.deep_applies(np.asfortranarray(x), w, False)
    with compiled.use_compiled(False):
        assert not ps.deep_applies(x, w, False)
    out, limits = np.empty((10, w.shape[1]), np.float32), fi._limits(0, 0, np.float32)
    with pytest.raises(ValueError, match="pointwise_simd: argument `residual` must be C-contiguous of shape"):
        ps.deep_product_rows(x, w, out, *([np.zeros(w.shape[1], np.float32)] * 3), np.zeros((9, w.shape[1]),
                             np.float32), limits, False, True)


@pytest.mark.parametrize("seed", range(4))
def test_a_resnet_1x1_with_its_shortcut_takes_the_deep_tiles(width, seed, monkeypatch):
    """conv2d_epilogue_inference's 1x1 path on 33-64 input channels with a residual (a ResNet bottleneck's
    last convolution), every block in the deep tiles, against the unfused reference."""
    rng = np.random.default_rng(200 + seed)
    channels, filters = int(rng.integers(ps.MAX_DEPTH + 1, ps.DEEP_MAX_DEPTH + 1)), 2 * width * int(rng.integers(1, 4))
    x = rng.standard_normal((int(rng.integers(2, 5)), 9, 7, channels)).astype(np.float32)
    w = (rng.standard_normal((1, 1, channels, filters)) * 0.3).astype(np.float32)
    scale, shift = rng.random(filters).astype(np.float32) + 0.5, rng.standard_normal(filters).astype(np.float32)
    residual = rng.standard_normal(x.shape[:3] + (filters,)).astype(np.float32)
    asked = []
    monkeypatch.setattr(fi, "_ROWS_PATHS", recording(fi._ROWS_PATHS, asked))
    got = fi.conv2d_epilogue_inference(x, w, 1, "VALID", scale=scale, shift=shift, residual=residual, then="relu")
    expected = fi.conv2d_epilogue_reference(x, w, 1, "VALID", scale=scale, shift=shift, residual=residual,
                                            then="relu")
    assert asked and set(asked) == {("simd_tiles", False), ("simd_tiles_packed", False), ("simd_tiles_deep", True)}
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("seed", range(8))
def test_the_packed_matrix_gives_the_bits_of_the_matrix_as_it_is_at_any_depth(width, seed):
    """`pack`'s copy (each pair of vectors of channels a strip) read by the rows-first tiles: the bits of
    the tiles reading the matrix as it is, the float64 product and the NumPy epilogue with the residual
    to rounding, at depths beyond the unpacked limit (ResNet50's 128-2048, MobileNetV2's 96-960)."""
    rng = np.random.default_rng(300 + seed)
    depth = int(rng.integers(ps.MAX_DEPTH + 1, 700))
    x, w, bias, scale, shift, act, then, affine = _case(rng, width, int(rng.integers(ps.ROWS, 80)), depth)
    res = rng.standard_normal((x.shape[0], w.shape[1])).astype(np.float32) if seed % 3 else None
    packed = ps.pack(w)
    strip = 2 * width
    assert packed.shape == (w.shape[1] // strip, depth, strip) and packed.flags.c_contiguous
    np.testing.assert_array_equal(packed[1 % len(packed), 7], w[7, strip * (1 % len(packed)):][:strip])
    got = _deep_tiles(x, packed, bias, scale, shift, act, then, affine, res)
    np.testing.assert_array_equal(got, _deep_tiles(x, w, bias, scale, shift, act, then, affine, res))
    z = (x.astype(np.float64) @ w.astype(np.float64)).astype(np.float32)
    expected = fi.epilogue_reference(z, bias, fi.INFERENCE_ACTIVATIONS[act], scale if affine else None,
                                     shift if affine else None, res, fi.INFERENCE_ACTIVATIONS[then])
    size = np.abs(x).max() * np.abs(w).sum(axis=0).max() + 1
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6 * size)


@pytest.mark.parametrize("compiled_pack", [False, True])
def test_pack_lays_each_pair_of_vectors_of_channels_out_as_one_strip(width, compiled_pack):
    """`pack` (the compiled loop, or NumPy's copy of the transposed view): strip s holds channels
    s * 2 * lanes .. (s + 1) * 2 * lanes of every input channel, in order."""
    if compiled_pack and not compiled.available():
        pytest.skip("numba is not installed")
    rng = np.random.default_rng(width)
    strip = 2 * width
    for depth, strips in ((1, 1), (37, 3), (960, 5)):
        w = rng.standard_normal((depth, strip * strips)).astype(np.float32)
        with compiled.use_compiled(compiled_pack):
            packed = ps.pack(w)
        expected = np.stack([w[:, s * strip:(s + 1) * strip] for s in range(strips)])
        assert packed.dtype == np.float32 and packed.flags.c_contiguous
        np.testing.assert_array_equal(packed, expected)


def test_where_the_matrix_is_packed_and_what_the_packed_tiles_refuse(width):
    rng = np.random.default_rng(2)
    w = rng.standard_normal((96, 4 * width)).astype(np.float32)
    assert ps.packs(ps.PACK_ROWS, w, False)
    assert not ps.packs(ps.PACK_ROWS - 1, w, False)
    assert ps.packs(ps.PACK_ROWS, np.ones((ps.MAX_DEPTH + 1, 2 * width), np.float32), False)
    assert not ps.packs(ps.PACK_ROWS, np.ones((ps.MAX_DEPTH, 2 * width), np.float32), False)   # the tiles' own
    assert not ps.packs(ps.PACK_ROWS, w, True)                                                 # hard-swish
    assert not ps.packs(ps.PACK_ROWS, w[:, :-width], False)                   # not whole pairs of vectors
    assert not ps.packs(ps.PACK_ROWS, w.astype(np.float64), False)
    assert not ps.packs(ps.PACK_ROWS, np.asfortranarray(w), False)
    with compiled.use_compiled(False):
        assert not ps.packs(ps.PACK_ROWS, w, False)
    packed = ps.pack(w)
    x = rng.standard_normal((10, 96)).astype(np.float32)
    assert ps.packed_applies(x, packed)
    assert not ps.packed_applies(x[:ps.ROWS - 1], packed)
    assert not ps.packed_applies(np.asfortranarray(x), packed)
    assert not ps.packed_applies(x[:, :95].copy(), packed)
    out, limits, zeros = np.empty((10, w.shape[1]), np.float32), fi._limits(0, 0, np.float32), np.zeros(w.shape[1])
    with pytest.raises(ValueError, match=r"pointwise_simd: argument `matrix` must be 2-D or as `pack` makes it, "
                                         r"got shape \(2, 96, 4\)"):
        ps.deep_product_rows(x, np.ones((2, 96, 4), np.float32), out, *[zeros.astype(np.float32)] * 3,
                             np.zeros((1, w.shape[1]), np.float32), limits, False, False)
    with pytest.raises(ValueError, match="pointwise_simd: argument `rows` must have 96 columns, got"):
        ps.deep_product_rows(x[:, :90].copy(), packed, out, *[zeros.astype(np.float32)] * 3,
                             np.zeros((1, w.shape[1]), np.float32), limits, False, False)


@pytest.mark.parametrize("case", range(4))
def test_a_large_1x1_convolution_packs_its_matrix_once_for_all_its_blocks(width, case, monkeypatch):
    """conv2d_epilogue_inference's 1x1 path with at least `PACK_ROWS` rows and more than `MAX_DEPTH` input
    channels (ResNet50's bottlenecks at batch 32, with or without the shortcut's sum; strided too): the matrix
    packed once, the whole product in the packed tiles, its blocks of rows claimed by the threads, against the
    unfused reference."""
    rng = np.random.default_rng(400 + case)
    stride, has_residual = (1, 2, 1, 2)[case], case < 2
    channels, filters = int(rng.integers(ps.MAX_DEPTH + 1, 200)), 2 * width * int(rng.integers(1, 4))
    x = rng.standard_normal((2, 24 * stride, 25 * stride, channels)).astype(np.float32)   # over COLUMN_SPLIT_ROWS
    w = (rng.standard_normal((1, 1, channels, filters)) * 0.2).astype(np.float32)
    bias, scale, shift = (rng.standard_normal(filters).astype(np.float32) for _ in range(3))
    residual = rng.standard_normal((2, 24, 25, filters)).astype(np.float32) if has_residual else None
    packings, asked = [], []
    pack = ps.pack
    monkeypatch.setattr(ps, "pack", lambda matrix: packings.append(matrix.shape) or pack(matrix))
    monkeypatch.setattr(fi, "_ROWS_PATHS", recording(fi._ROWS_PATHS, asked))
    monkeypatch.setattr(ps, "SHARED_ROWS", 100)                           # several blocks,
    monkeypatch.setattr(fi, "SMALL_WORK", 0)                                # not one on this thread
    claimed = []
    run_claimed = ps.run_claimed
    monkeypatch.setattr(ps, "run_claimed", lambda count, work: claimed.append(count) or run_claimed(count, work))
    kwargs = dict(bias=bias, activation="relu", scale=scale, shift=shift, residual=residual,
                  then="relu" if has_residual else "linear")
    got = fi.conv2d_epilogue_inference(x, w, stride, "VALID", **kwargs)
    expected = fi.conv2d_epilogue_reference(x, w, stride, "VALID", **kwargs)
    assert packings == [(channels, filters)]
    assert [answer for name, answer in asked if name == "simd_tiles_packed"] == [True]
    assert len(claimed) == 1 and claimed[0] >= min(4, x.shape[0] * 24 * 25 // ps.SHARED_ROWS)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("full_width", [True, False])
@pytest.mark.parametrize("seed", range(8))
def test_a_shared_product_gives_the_bits_of_one_call(width, full_width, seed, monkeypatch):
    """`deep_product_rows(shared=True)` on two threads: blocks of rows claimed by the threads (a few rows each here,
    their number not dividing the rows), packed or not, in tall tiles or not (`simd.FULL_WIDTH_CPU`), with a residual,
    streamed, or both: every output the bits of the product in one call, every row written."""
    from convscope.ops import parallel
    rng = np.random.default_rng(700 + seed)
    monkeypatch.setattr("convscope.ops.simd.FULL_WIDTH_CPU", full_width)
    monkeypatch.setattr(ps, "SHARED_ROWS", int(rng.integers(ps.TALL_ROWS, 40)))
    monkeypatch.setattr(ps, "SHARED_BLOCKS", 64)
    for module in (ps, parallel):
        monkeypatch.setattr(module, "worker_count", lambda: 2)
    x, w, bias, scale, shift, act, then, affine, res = _deep_case(rng, width, rows=int(rng.integers(100, 400)))
    matrix = ps.pack(w) if seed % 2 else w
    has_residual, stream = seed % 4 != 0, seed % 4 in (0, 3)
    limits = fi._limits(act, then, np.float32)
    res = res if has_residual else np.zeros((1, w.shape[1]), np.float32)
    claimed, run_claimed = [], ps.run_claimed
    monkeypatch.setattr(ps, "run_claimed", lambda count, work: claimed.append(count) or run_claimed(count, work))
    outs = []
    for shared in (False, True):
        out = fi._aligned_empty((x.shape[0], w.shape[1]), np.float32)
        out[...] = np.nan
        ps.deep_product_rows(x, matrix, out, bias, scale, shift, res, limits, affine, has_residual, stream,
                             shared=shared)
        outs.append(out)
    assert len(claimed) == 1 and claimed[0] >= x.shape[0] // ps.SHARED_ROWS
    assert not np.isnan(outs[1]).any()
    np.testing.assert_array_equal(outs[1], outs[0])


@pytest.mark.parametrize("count,tile,workers,expected", [
    (3136, 12, 2, 8), (784, 12, 2, 4), (300, 12, 2, 2), (100352, 12, 2, 8), (20, 12, 2, 1), (23, 12, 2, 1),
    (24, 12, 2, 2), (3136, 6, 1, 4), (300, 12, 1, 1), (11, 12, 2, 1)])
def test_a_shared_product_cuts_blocks_of_about_shared_rows_one_per_thread_at_least(count, tile, workers, expected,
                                                                                     monkeypatch):
    """`_shared_blocks`: about `SHARED_ROWS` rows a block, one block per thread at least, `SHARED_BLOCKS` per thread
    at most, and never a block shorter than a tile (the tiles' loop needs one)."""
    monkeypatch.setattr(ps, "worker_count", lambda: workers)
    blocks = ps._shared_blocks(count, tile)
    assert blocks == expected
    assert blocks == 1 or count // blocks >= tile


def test_mobilenet_blocks_pack_their_projection_for_many_rows(width, monkeypatch):
    """The banded inverted residual with a 96-channel middle over 2 x 24 x 24 pixels: its projection (96 ->
    32, with the block's residual) packed once and taken by the packed tiles, its expansion (16 channels) by
    the tiles of few channels; against the three references.  (The compiled bands, first in the list, pack
    both matrices: `test_inverted_residual.py`.)"""
    rng = np.random.default_rng(5)
    monkeypatch.setattr(ir, "_PATHS", tuple(entry for entry in ir._PATHS if entry[0] != "compiled_bands"))
    channels, mid = 2 * width, 96
    x, expand, depthwise, project, epilogues = _block(rng, 2, 24, channels, mid)
    packings, asked = [], []
    pack = ps.pack
    monkeypatch.setattr(ps, "pack", lambda matrix: packings.append(matrix.shape) or pack(matrix))
    monkeypatch.setattr(fi, "_ROWS_PATHS", recording(fi._ROWS_PATHS, asked))
    got = ir.inverted_residual_inference(x, expand, depthwise, project, 1, "SAME", *epilogues, residual=x)
    expected = ir.inverted_residual_reference(x, expand, depthwise, project, 1, "SAME", *epilogues, residual=x)
    assert packings == [(mid, channels)]
    assert ("simd_tiles_packed", True) in asked and ("simd_tiles", True) in asked
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_streamed_stores_give_the_same_bits_and_need_an_aligned_output(width):
    """`deep_product_rows(stream=True)`: each output vector stored non-temporally where `out` is aligned to
    a vector (`fused_inference._aligned_empty`), else as usual; the bits of the plain stores either way."""
    rng = np.random.default_rng(9)
    x, w, bias, scale, shift, act, then, affine = _case(rng, width, 50, 64)
    res = rng.standard_normal((50, w.shape[1])).astype(np.float32)
    packed, limits = ps.pack(w), fi._limits(act, then, np.float32)
    plain = _deep_tiles(x, packed, bias, scale, shift, act, then, affine, res)
    z = (x.astype(np.float64) @ w.astype(np.float64)).astype(np.float32)
    expected = fi.epilogue_reference(z, bias, fi.INFERENCE_ACTIVATIONS[act], scale if affine else None,
                                     shift if affine else None, res, fi.INFERENCE_ACTIVATIONS[then])
    np.testing.assert_allclose(plain, expected, rtol=0, atol=2e-6 * (np.abs(x).max() * np.abs(w).sum(axis=0).max() + 1))
    for misaligned in (0, 1):
        buffer = fi._aligned_empty((50 * w.shape[1] + 1,), np.float32)
        assert buffer.ctypes.data % 64 == 0
        out = buffer[misaligned:misaligned + 50 * w.shape[1]].reshape(50, w.shape[1])
        out[...] = np.nan
        ps.deep_product_rows(x, packed, out, bias, scale, shift, res, limits, affine, True, stream=True)
        np.testing.assert_array_equal(out, plain)
    for shape, dtype in [((3, 5), np.float32), ((7, 11, 13), np.float64), ((1,), np.float32)]:
        array = fi._aligned_empty(shape, dtype)
        assert array.shape == shape and array.dtype == dtype and array.flags.c_contiguous
        assert array.ctypes.data % 64 == 0


@pytest.mark.parametrize("pack_rows", [512, sys.maxsize])
def test_a_product_streams_its_output_where_it_is_large_and_shallow(width, pack_rows, monkeypatch):
    """`streams`: at most `DEEP_MAX_DEPTH` input channels and an output of `STREAM_BYTES` or more; the 1x1
    path then asks the tiles rows first, packed or not, to stream (ResNet50's 64 -> 256 at batch 32), and not
    for a deeper product; the numbers the unfused reference's."""
    assert ps.streams(ps.DEEP_MAX_DEPTH, ps.STREAM_BYTES)
    assert not ps.streams(ps.DEEP_MAX_DEPTH + 1, ps.STREAM_BYTES)
    assert not ps.streams(ps.DEEP_MAX_DEPTH, ps.STREAM_BYTES - 1)
    rng = np.random.default_rng(10)
    monkeypatch.setattr(ps, "STREAM_BYTES", 1 << 16)
    monkeypatch.setattr(ps, "PACK_ROWS", pack_rows)         # packed (AVX2's rule) or as it lies (512-bit vectors')
    product = ps.deep_product_rows
    streamed = []
    monkeypatch.setattr(ps, "deep_product_rows", lambda *args, **kwargs: streamed.append(args[-1]) or product(*args,
                                                                                                          **kwargs))
    for channels in (48, 96):
        filters = 4 * width
        x = rng.standard_normal((2, 24, 25, channels)).astype(np.float32)
        w = (rng.standard_normal((1, 1, channels, filters)) * 0.2).astype(np.float32)
        scale, shift = rng.random(filters).astype(np.float32) + 0.5, rng.standard_normal(filters).astype(np.float32)
        residual = rng.standard_normal((2, 24, 25, filters)).astype(np.float32)
        kwargs = dict(scale=scale, shift=shift, residual=residual, then="relu")
        streamed.clear()
        got = fi.conv2d_epilogue_inference(x, w, 1, "VALID", **kwargs)
        np.testing.assert_allclose(got, fi.conv2d_epilogue_reference(x, w, 1, "VALID", **kwargs), rtol=1e-5,
                                   atol=1e-4)
        if channels <= ps.DEEP_MAX_DEPTH:
            assert streamed and set(streamed) == {True}
        else:                                               # packed tiles not streaming, or BLAS' product
            assert set(streamed) <= {False} and (streamed or pack_rows == sys.maxsize)


@pytest.mark.parametrize("depth,filters", [(64, 32), (576, 256)])
def test_large_1x1_products_pack_their_matrix_by_this_machines_rule(depth, filters, monkeypatch):
    """This machine's rule, as imported: a 1x1 product of 1568 rows (a ResNet50 stage-5 1x1's at batch 32, here
    `depth` -> `filters`, 8 KiB or 576 KiB of matrix) packs its matrix with 256-bit vectors
    and with 512-bit ones run as two halves (Zen 4); with 512-bit vectors on full-width units only a matrix of at
    most `TALL_PACK_BYTES`, for the tall tiles (a larger one is left to BLAS); the float64 product's numbers
    either way."""
    if not compiled.active():
        pytest.skip("the packed tiles are compiled")
    from convscope.ops import simd
    rng = np.random.default_rng(9)
    x = rng.standard_normal((32, 7, 7, depth)).astype(np.float32)
    w = (rng.standard_normal((1, 1, depth, filters)) * 0.2).astype(np.float32)
    packings = []
    pack = ps.pack
    monkeypatch.setattr(ps, "pack", lambda matrix, *width: packings.append(matrix.shape) or pack(matrix, *width))
    got = fi.conv2d_epilogue_inference(x, w, 1, "VALID", activation="relu")
    halves = 0 < ps.VECTOR_BITS <= 256 or (ps.VECTOR_BITS == 512 and simd.double_pumped())
    assert bool(packings) == (halves or (ps.tall_tiles() and w.nbytes <= ps.TALL_PACK_BYTES))
    expected = np.maximum(x.reshape(-1, depth).astype(np.float64) @ w.reshape(depth, -1), 0).reshape(got.shape)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_the_tall_tiles_pack_a_matrix_of_at_most_tall_pack_bytes_from_512_rows(width, monkeypatch):
    """`packs(..., tall=True)`: 512 rows or more, more than `MAX_DEPTH` input channels, at most `TALL_PACK_BYTES`
    of matrix (whatever `PACK_ROWS`); a 1x1 convolution's blocks read that copy where `tall_tiles()`, but the
    banded MobileNet blocks' products (`_rows_arrays` without `tall`) do not."""
    monkeypatch.setattr(ps, "PACK_ROWS", sys.maxsize)
    small, large = (np.ones((depth, 2 * width), np.float32) for depth in (64, ps.TALL_PACK_BYTES // (8 * width) + 1))
    assert small.nbytes <= ps.TALL_PACK_BYTES < large.nbytes
    assert ps.packs(512, small, False, tall=True) and not ps.packs(511, small, False, tall=True)
    assert not ps.packs(512, large, False, tall=True) and not ps.packs(10 ** 6, small, False)
    assert not ps.packs(512, np.ones((ps.MAX_DEPTH, 2 * width), np.float32), False, tall=True)
    assert not ps.packs(512, small, True, tall=True)                            # hard-swish
    monkeypatch.setattr("convscope.ops.simd.FULL_WIDTH_CPU", True)
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 16, 20, 64)).astype(np.float32)
    w = (rng.standard_normal((1, 1, 64, 2 * width)) * 0.2).astype(np.float32)
    packings, asked = [], []
    pack = ps.pack
    monkeypatch.setattr(ps, "pack", lambda matrix: packings.append(matrix.shape) or pack(matrix))
    monkeypatch.setattr(fi, "_ROWS_PATHS", recording(fi._ROWS_PATHS, asked))
    monkeypatch.setattr(fi, "SMALL_WORK", 0)
    got = fi.conv2d_epilogue_inference(x, w, 1, "VALID", activation="relu")
    assert packings == ([(64, 2 * width)] if ps.tall_tiles() else [])
    assert ("simd_tiles_packed", True) in asked or not ps.tall_tiles()
    expected = np.maximum(x.reshape(-1, 64).astype(np.float64) @ w.reshape(64, -1), 0).reshape(got.shape)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    codes = (0, False, False, 0)
    assert fi._rows_arrays(np.float32, w.reshape(64, -1), 640, None, None, None, None, codes)[4] is None


@pytest.mark.parametrize("cpu,features,pack_rows,pumped", [
    ("znver4", "+avx,+avx2,+fma,+avx512f", 512, True),                 # 512-bit vectors on 256-bit halves: packed
    ("skylake-avx512", "+avx,+avx2,+fma,+avx512f", sys.maxsize, False),  # Intel's full-width units: BLAS
    ("znver4", "+avx,+avx2,+fma", 512, False),                         # AVX2 code (the benchmark's --isa avx2)
    ("haswell", "+avx,+avx2,+fma", 512, False),
])
def test_the_matrix_is_packed_from_pack_rows_by_the_vector_width_and_the_cpu(cpu, features, pack_rows, pumped):
    """`PACK_ROWS`: 512 rows with 256-bit vectors and on CPUs that run 512-bit ones as two halves (Zen 4:
    `simd.double_pumped`), never with 512-bit vectors on Intel's full-width units; read from the CPU numba
    compiles for (`NUMBA_CPU_NAME`, `NUMBA_CPU_FEATURES`), whatever this machine is."""
    import os
    import subprocess
    code = ("from convscope.ops import pointwise_simd as ps, simd; "
            "print(ps.PACK_ROWS, simd.double_pumped(), ps.VECTOR_BITS)")
    env = dict(os.environ, NUMBA_CPU_NAME=cpu, NUMBA_CPU_FEATURES=features)
    printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env,
                             timeout=120).stdout.split()
    assert printed == [str(pack_rows), str(pumped), "512" if "avx512f" in features else "256"], printed


@pytest.mark.parametrize("setting,host,expected", [
    (None, "znver4", True), ("host", "znver4", True), ("", "znver4", True),     # unset: this machine's CPU
    ("skylake-avx512", "znver4", False),                                          # set: the CPU numba compiles for
    ("znver4", "skylake-avx512", True), (None, "sapphirerapids", False),
])
def test_double_pumped_reads_the_cpu_numba_compiles_for(setting, host, expected, monkeypatch):
    from llvmlite import binding
    from numba.core import config
    from convscope.ops import simd
    monkeypatch.setattr(config, "CPU_NAME", setting)
    monkeypatch.setattr(binding, "get_host_cpu_name", lambda: host)
    monkeypatch.setattr(simd, "vector_bits", lambda: 512)
    assert simd.double_pumped() is expected
    monkeypatch.setattr(simd, "vector_bits", lambda: 256)
    assert simd.double_pumped() is False
