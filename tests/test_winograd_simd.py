"""ops/winograd_simd.py: Winograd's input and output transforms a SIMD vector of channels per step, against
the scalar kernels (`winograd._input_tiles`, `_output_tiles`) bit for bit, on random configurations for
AVX2's and AVX-512's vector widths: bands of rows, images after the first, channels left over after whole
vectors, slices of the output channels, odd output sizes, every epilogue, NaN, infinities and -0.0; where
the ordered path lists take them; and whole Winograd convolutions with and without them."""

import numpy as np
import pytest

from _paths import assert_declined, recording
from convscope.ops import compiled, fused, winograd, winograd_simd as ws

pytestmark = pytest.mark.skipif(not compiled.available(), reason="the SIMD transforms are compiled")


@pytest.fixture(params=[8, 16], ids=["avx2", "avx512"])
def width(request, monkeypatch):
    """Kernels of 8 or 16 lanes, whatever this machine has (LLVM splits the wider vectors where it must)."""
    monkeypatch.setattr(ws, "lanes", lambda: request.param)
    return request.param


def _specials(array, rng):
    """NaN, infinities and -0.0 at random places of `array` (in place)."""
    flat = array.reshape(-1)
    for value in (np.nan, np.inf, -np.inf, -0.0):
        flat[rng.integers(flat.size, size=3)] = value


def _same(a, b):
    return np.array_equal(a, b, equal_nan=True) and np.array_equal(np.signbit(a), np.signbit(b))


@pytest.mark.parametrize("seed", range(10))
def test_input_transform_is_the_scalar_kernels_bit_for_bit(width, seed):
    rng = np.random.default_rng(seed)
    images, tiles_h, tiles_w = (int(rng.integers(1, 4)), int(rng.integers(1, 6)), int(rng.integers(1, 7)))
    channels = width * int(rng.integers(1, 4)) + int(rng.integers(0, width))
    first, top = int(rng.integers(0, 2)), int(rng.integers(0, 3))
    x = rng.standard_normal((first + images + 1, top + 2 * tiles_h + 3, 2 * tiles_w + 2 + int(rng.integers(0, 3)),
                             channels)).astype(np.float32)
    _specials(x, rng)
    band = x[:, top:top + 2 * tiles_h + 2]                # a band of rows: the images' rows are strided
    tiles = images * tiles_h * tiles_w
    expected, got = (winograd._cell_planes(tiles, channels, np.float32) for _ in range(2))
    winograd._input_tiles(band, first, images, tiles_h, tiles_w, expected)
    assert ws.applies(band, got)
    ws.input_tiles(band, first, images, tiles_h, tiles_w, got, winograd._input_tiles)
    assert _same(got, expected)


@pytest.mark.parametrize("seed", range(12))
def test_output_transform_and_epilogue_are_the_scalar_kernels_bit_for_bit(width, seed):
    rng = np.random.default_rng(100 + seed)
    images, tiles_h, tiles_w = (int(rng.integers(1, 4)), int(rng.integers(1, 6)), int(rng.integers(1, 7)))
    channels = width * int(rng.integers(1, 4)) + int(rng.integers(0, width))
    start = int(rng.integers(0, 3))                       # a slice of the output channels (a channel split)
    out_h, out_w = 2 * tiles_h - int(rng.integers(0, 2)), 2 * tiles_w - int(rng.integers(0, 2))
    m = winograd._cell_planes(images * tiles_h * tiles_w, start + channels, np.float32)
    m[...] = rng.standard_normal(m.shape) * 3
    _specials(m, rng)
    finish, relu_first, affine, relu_after = (bool(flag) for flag in rng.integers(0, 2, 4))
    bias, scale, shift = (rng.standard_normal(channels).astype(np.float32) for _ in range(3))
    if seed % 2:                                          # strided values, as a slice of a caller's array
        bias = np.repeat(bias, 2)[::2]
    epilogue = (finish, bias, relu_first, scale, shift, affine, relu_after)
    buffers = [np.full((images, out_h, out_w, start + channels + 2), 7.0, np.float32) for _ in range(2)]
    part = slice(start, start + channels)
    winograd._output_tiles(m[:, :, part], images, tiles_h, tiles_w, buffers[0][..., part], *epilogue)
    assert ws.applies(m[:, :, part], buffers[1][..., part])
    ws.output_tiles(m[:, :, part], images, tiles_h, tiles_w, buffers[1][..., part], *epilogue,
                    winograd._output_tiles)
    assert _same(buffers[1], buffers[0])                  # the other channels untouched as well


def test_where_the_vector_transforms_run(width):
    lanes = width
    x = np.zeros((1, 6, 6, lanes), np.float32)
    assert ws.applies(x)
    assert not ws.applies(x.astype(np.float64))            # float64 stays on the scalar kernels
    assert not ws.applies(x[..., 1:])                      # fewer channels than one vector
    assert not ws.applies(np.zeros((1, 6, 6, 2 * lanes), np.float32)[..., ::2])   # strided channels
    with compiled.use_compiled(False):
        assert not ws.applies(x)


@pytest.mark.parametrize("dtype, declined", [(np.float32, None), (np.float64, "simd")])
def test_winograd_bands_take_the_vector_transforms_where_they_apply(dtype, declined, monkeypatch):
    """A batch-1 U-Net-like layer through `conv2d_inference`'s Winograd bands: the same bits with the
    vector transforms as with the scalar kernels alone; float64 declines them."""
    monkeypatch.setattr("convscope.ops.simd.FULL_WIDTH_CPU", False)   # 50 -> 45: direct where 512-bit units run whole
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 34, 30, 50)).astype(dtype)      # channels with a remainder on either width
    w = (rng.standard_normal((3, 3, 50, 45)) * 0.2).astype(dtype)
    scale, shift = rng.uniform(0.5, 1.5, 45).astype(dtype), rng.standard_normal(45).astype(dtype)
    run = fused.prepare_conv2d_inference(x, w, 1, "same", scale=scale, shift=shift, then="relu")
    inputs, outputs = [], []
    monkeypatch.setattr(winograd, "_INPUT_PATHS", recording(winograd._INPUT_PATHS, inputs))
    monkeypatch.setattr(winograd, "_OUTPUT_PATHS", recording(winograd._OUTPUT_PATHS, outputs))
    got = run(x, w, None, scale, shift)
    assert inputs and outputs, "the layer did not run through Winograd"
    if declined:
        assert_declined(inputs, declined)
        assert_declined(outputs, declined)
    elif ws.lanes():
        assert all(answer for name, answer in inputs + outputs if name == "simd")
    monkeypatch.setattr(winograd, "_INPUT_PATHS", winograd._INPUT_PATHS[-1:])
    monkeypatch.setattr(winograd, "_OUTPUT_PATHS", winograd._OUTPUT_PATHS[-1:])
    assert _same(got, run(x, w, None, scale, shift))
