"""Winograd F(2x2, 2x2) with the pooling in its tiles (`ops/winograd_pool.py`): against a float64 NumPy reference
of the ops one after another (convolution, bias, ReLU, batch norm's map, ReLU, pooling), PyTorch, and, on integer
data where every sum is exact, the direct kernel's tiles bit for bit (the maxima's offsets included)."""

import threading

import numpy as np
import pytest

from _oracle import assert_matches
from _spies import spy_bound_calls
from convscope import ops
from convscope.ops import compiled, conv, direct, fused, winograd_pool

pytestmark = pytest.mark.skipif(not compiled.available(), reason="the Winograd pooled tiles are compiled code")


@pytest.fixture(autouse=True)
def any_cpu(monkeypatch):
    """The path as it runs where it applies, whatever the CPU (one whose 512-bit units run whole takes the direct
    kernel's tiles: `conv._winograd_pool_applies`)."""
    monkeypatch.setattr("convscope.ops.simd.FULL_WIDTH_CPU", False)


def _reference(x, filters, padding, bias=None, activation="linear", scale=None, shift=None, then="linear",
               mode="max"):
    """The ops one after another in float64: a 2x2 stride-1 convolution (SAME: one row below, one column right),
    bias, activation, scale and shift, then, and the 2x2 stride-2 pooling of whole windows."""
    x, w = x.astype(np.float64), filters.astype(np.float64)
    if padding == "SAME":
        x = np.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))
    h, width = x.shape[1] - 1, x.shape[2] - 1
    y = sum(x[:, i:i + h, j:j + width, :] @ w[i, j] for i in range(2) for j in range(2))
    y = y + (0.0 if bias is None else bias)
    y = np.maximum(y, 0.0) if activation == "relu" else y
    if scale is not None:
        y = y * scale + shift
    y = np.maximum(y, 0.0) if then == "relu" else y
    windows = y[:, :h // 2 * 2, :width // 2 * 2].reshape(len(y), h // 2, 2, width // 2, 2, -1)
    return windows.max(axis=(2, 4)) if mode == "max" else windows.mean(axis=(2, 4))


def _spy(monkeypatch):
    """The calls of the Winograd tiles' kernel, as `winograd_pool.pooled_tiles` binds it (their `bands`; one per
    thread of a parallel region)."""
    return spy_bound_calls(monkeypatch, winograd_pool, "pooled_tiles", lambda args: args[5])


@pytest.mark.parametrize("seed", range(10))
def test_random_configurations_match_the_unfused_reference_and_pytorch(seed, monkeypatch):
    """Images, sizes (odd ones leave a row or column unpooled), input channels (whole vectors and not), filters
    (padded to the tiles' lanes: 24, 50, 100), SAME and VALID, ReLU or not, a batch norm's map with a ReLU after,
    max and average pooling: within float32 rounding of the float64 reference."""
    seen = _spy(monkeypatch)
    rng = np.random.default_rng(seed)
    images, height, width = int(rng.integers(1, 10)), int(rng.integers(5, 19)), int(rng.integers(9, 19))
    channels = int(rng.choice([16, 20, 32, 37, 64]))
    out_channels = int(rng.choice([16, 24, 32, 50, 64, 100, 128]))
    padding, activation = rng.choice(["SAME", "VALID"]), rng.choice(["relu", "linear"])
    mode = rng.choice(["max", "avg"])
    x = rng.standard_normal((images, height, width, channels)).astype(np.float32)
    filters = (rng.standard_normal((2, 2, channels, out_channels)) / 8).astype(np.float32)
    bias = rng.standard_normal(out_channels).astype(np.float32)
    scale, shift, then = (None, None, "linear") if seed % 3 else (
        rng.uniform(-2, 2, out_channels).astype(np.float32), rng.standard_normal(out_channels).astype(np.float32),
        "relu")
    with compiled.use_compiled(True):
        pooled = ops.conv2d_inference(x, filters, 1, padding, bias=bias, activation=activation, scale=scale,
                                      shift=shift, then=then, pool=(mode, 2, 2, "VALID"))
    assert seen, "the Winograd tiles computed it"
    expected = _reference(x, filters, padding, bias, activation, scale, shift, then, mode)
    assert_matches(pooled, expected.astype(np.float32), "float32")
    torch = pytest.importorskip("torch")
    x_t = torch.from_numpy(np.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0))) if padding == "SAME" else x)
    y = torch.nn.functional.conv2d(x_t.permute(0, 3, 1, 2), torch.from_numpy(filters).permute(3, 2, 0, 1),
                                   torch.from_numpy(bias))
    y = torch.relu(y) if activation == "relu" else y
    if scale is not None:
        y = torch.relu(y * torch.from_numpy(scale)[:, None, None] + torch.from_numpy(shift)[:, None, None])
    pool = torch.nn.functional.max_pool2d if mode == "max" else torch.nn.functional.avg_pool2d
    assert_matches(pooled, pool(y, 2).permute(0, 2, 3, 1).numpy(), "float32")


@pytest.mark.parametrize("vector_bits, out_channels, pixels", [(512, 40, 8), (256, 32, 4), (256, 40, 8)])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_exact_sums_give_the_direct_kernels_bits(vector_bits, out_channels, pixels, padding, monkeypatch):
    """On small integers every sum is exact, so Winograd's transforms change no bit: the pooled values (ties where
    the input is zero, a NaN that wins) are those of the direct kernel's tiles, with AVX2's tiles (16 filters, 4
    tiles at a time) as well, and those of a training step's pooled forward, which keeps the direct kernel."""
    monkeypatch.setattr(direct, "VECTOR_BITS", vector_bits)
    rng = np.random.default_rng(vector_bits)
    x = rng.integers(-3, 4, (5, 13, 14, 24)).astype(np.float32)
    x[0, :6, :6] = 0.0
    x[1, 3, 4, 0] = np.nan
    filters = rng.integers(-2, 3, (2, 2, 24, out_channels)).astype(np.float32)
    bias = rng.integers(-4, 5, out_channels).astype(np.float32)
    assert direct.tile(out_channels)[1] == pixels
    seen = _spy(monkeypatch)
    with compiled.use_compiled(True):
        pooled = ops.conv2d_inference(x, filters, 1, padding, bias=bias, activation="relu",
                                      pool=("max", 2, 2, "VALID"))
        trained, _, _ = ops.conv2d_max_pool_forward(x, filters, 1, padding, bias=bias, activation="relu",
                                                    pool=(2, 2, "VALID"))
        assert len(seen) == 1
        monkeypatch.setattr(winograd_pool, "MIN_CHANNELS", 1 << 30)
        direct_pooled = ops.conv2d_inference(x, filters, 1, padding, bias=bias, activation="relu",
                                             pool=("max", 2, 2, "VALID"))
    assert len(seen) == 1 and np.isnan(pooled).any()
    np.testing.assert_array_equal(pooled, direct_pooled)
    np.testing.assert_array_equal(pooled, trained)


def test_a_training_steps_pooled_forward_keeps_the_ops_numbers(monkeypatch):
    """`conv2d_max_pool_forward` (a training step) of a layer Winograd computes at inference gives the bits of
    `conv2d_forward` then `max_pool2d_forward`, the maxima's offsets included: not Winograd's rounding."""
    seen = _spy(monkeypatch)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((4, 14, 14, 32)).astype(np.float32)
    filters = (rng.standard_normal((2, 2, 32, 64)) / 8).astype(np.float32)
    bias = rng.standard_normal(64).astype(np.float32)
    with compiled.use_compiled(True):
        pooled, _, pool_ctx = ops.conv2d_max_pool_forward(x, filters, 1, "SAME", bias=bias, activation="relu",
                                                          pool=(2, 2, "VALID"))
        assert not seen
        y, _ = ops.conv2d_forward(x, filters, 1, "SAME", bias=bias, activation="relu")
        expected, expected_ctx = ops.max_pool2d_forward(y, 2, 2, "VALID")
        inference = ops.conv2d_inference(x, filters, 1, "SAME", bias=bias, activation="relu",
                                         pool=("max", 2, 2, "VALID"))
    assert seen                                                 # the inference call
    np.testing.assert_array_equal(pooled, expected)
    np.testing.assert_array_equal(pool_ctx["argmax"], expected_ctx["argmax"])
    assert_matches(inference, expected, "float32")
    assert not np.array_equal(inference, expected)              # Winograd's own rounding: a different path


@pytest.mark.parametrize("bands", [1, 3, 4])
def test_threads_claiming_the_items_compute_each_once_with_the_bits_of_one_thread(bands):
    """`conv_pool_block` called by 3 threads with one counter: every item (a band of an image's pooled rows: 4 bands
    of 6 rows are uneven) is claimed by exactly one call (the counter ends at items + 3) and the output has the bits
    of one call alone, within float32 rounding of the float64 reference."""
    rng = np.random.default_rng(bands)
    x = rng.standard_normal((7, 12, 10, 32)).astype(np.float32)
    filters = (rng.standard_normal((2, 2, 32, 64)) / 8).astype(np.float32)
    prepared = winograd_pool.prepare(filters)
    epilogue = direct.tile_epilogue(winograd_pool.padded_filters(prepared), None, "relu", None, None, "linear",
                                    False)
    pads = ((0, 1), (0, 1))
    alone, together = (np.full((7, 6, 5, 64), np.nan, np.float32) for _ in range(2))
    winograd_pool.conv_pool_block(x, pads, prepared, epilogue, alone, np.zeros(1, np.int64), bands)
    counter = np.zeros(1, np.int64)
    threads = [threading.Thread(target=winograd_pool.conv_pool_block,
                                args=(x, pads, prepared, epilogue, together, counter, bands)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counter[0] == len(x) * bands + 3
    np.testing.assert_array_equal(together, alone)
    assert_matches(alone, _reference(x, filters, "SAME", activation="relu").astype(np.float32), "float32")


@pytest.mark.parametrize("bands", [1, 2])
def test_rows_transformed_a_chunk_at_a_time_give_the_bits_of_whole_bands(bands, monkeypatch):
    """A large image's transformed input is made `CELLS_BYTES` at a time (1 or 2 pooled rows here, the last chunk of
    a band shorter): each tile's sums are the same chains, so the same bits as the whole band at once."""
    rng = np.random.default_rng(bands)
    x = rng.standard_normal((3, 14, 12, 16)).astype(np.float32)
    filters = (rng.standard_normal((2, 2, 16, 24)) / 4).astype(np.float32)
    prepared = winograd_pool.prepare(filters)
    epilogue = direct.tile_epilogue(32, None, "relu", None, None, "linear", False)
    results = []
    for rows in (7, 1, 2):
        monkeypatch.setattr(winograd_pool, "CELLS_BYTES", rows * 9 * 6 * 16 * 4)
        pooled = np.full((3, 7, 6, 24), np.nan, np.float32)
        winograd_pool.conv_pool_block(x, ((0, 1), (0, 1)), prepared, epilogue, pooled, np.zeros(1, np.int64), bands)
        results.append(pooled)
    np.testing.assert_array_equal(results[1], results[0])
    np.testing.assert_array_equal(results[2], results[0])
    assert_matches(results[0], _reference(x, filters, "SAME", activation="relu").astype(np.float32), "float32")


@pytest.mark.parametrize("pads", [((1, 2), (2, 1)), ((0, 0), (3, 0)), None])
def test_padding_on_any_side_is_read_as_zeros(pads):
    """Padding rows above and columns left of the image too (explicit pads): the pooled tiles are those of the
    padded input given as it is."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 9, 11, 16)).astype(np.float32)
    filters = (rng.standard_normal((2, 2, 16, 24)) / 4).astype(np.float32)
    padded = x if pads is None else np.pad(x, ((0, 0),) + pads + ((0, 0),))
    prepared = winograd_pool.prepare(filters)
    epilogue = direct.tile_epilogue(32, None, "linear", None, None, "linear", False)
    pooled = np.empty((2, (padded.shape[1] - 1) // 2, (padded.shape[2] - 1) // 2, 24), np.float32)
    winograd_pool.conv_pool_block(x, pads, prepared, epilogue, pooled, np.zeros(1, np.int64))
    assert_matches(pooled, _reference(padded, filters, "VALID").astype(np.float32), "float32")


def test_the_path_is_taken_where_it_applies_and_only_there(monkeypatch):
    """2x2, stride 1, one group, `MIN_CHANNELS` input channels or more, a 2x2 stride-2 unpadded pooling, and the
    direct kernel's conditions (float32, at most `direct.MAX_OUT_CHANNELS` filters); not on a CPU whose 512-bit
    units are full width."""
    def applies(kernel=(2, 2), strides=(1, 1), dilations=(1, 1), groups=1, channels=32, out_channels=64,
                window=(2, 2, 2, 2, 0, 0), dtype=np.float32):
        with compiled.use_compiled(True):
            return winograd_pool.applies(kernel, strides, dilations, groups, channels, out_channels, (14, 14),
                                         window, (7, 7), np.dtype(dtype))
    assert applies()
    assert not applies(kernel=(3, 3)) and not applies(strides=(2, 2)) and not applies(dilations=(2, 2))
    assert not applies(groups=2) and not applies(channels=winograd_pool.MIN_CHANNELS - 1)
    assert not applies(out_channels=direct.MAX_OUT_CHANNELS + 1) and not applies(dtype=np.float64)
    assert not applies(window=(3, 3, 2, 2, 0, 0)) and not applies(window=(2, 2, 1, 1, 0, 0))
    with compiled.use_compiled(False):
        assert not winograd_pool.applies((2, 2), (1, 1), (1, 1), 1, 32, 64, (14, 14), (2, 2, 2, 2, 0, 0), (7, 7),
                                         np.dtype(np.float32))
    ctx = {"filters": np.empty((2, 2, 32, 64), np.float32), "strides": (1, 1), "dilations": (1, 1), "groups": 1,
           "out_hw": (14, 14), "dtype": np.dtype(np.float32)}
    with compiled.use_compiled(True):
        assert conv._winograd_pool_applies(ctx, (7, 7), False) and not conv._winograd_pool_applies(ctx, (7, 7), True)
        monkeypatch.setattr(direct, "VECTOR_BITS", 512)
        monkeypatch.setattr("convscope.ops.simd.FULL_WIDTH_CPU", True)     # full-width 512-bit units: the direct tiles
        assert applies() and not conv._winograd_pool_applies(ctx, (7, 7), False)


def test_a_prepared_op_sees_filters_changed_in_place(monkeypatch):
    """The transformed filters are kept from call to call only while the filters keep their bits: filters written
    in place between calls (as a training step or `set_weights` writes them) give the new convolution."""
    seen = _spy(monkeypatch)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 8, 10, 16)).astype(np.float32)
    filters = (rng.standard_normal((2, 2, 16, 32)) / 4).astype(np.float32)
    with compiled.use_compiled(True):
        run = fused.prepare_conv2d_inference(x, filters, 1, "SAME", pool=("max", 2, 2, "VALID"))
        for _ in range(3):
            assert_matches(run(x, filters, None, None, None), _reference(x, filters, "SAME").astype(np.float32),
                           "float32")
            filters[..., 7] *= -1.5
            filters[1, 0, 3, 5] += 1.0
    assert len(seen) == 3


def test_bad_arguments_are_refused_by_name():
    """`bands` out of range, an input of other images or channels, a strided output."""
    x = np.zeros((2, 8, 8, 16), np.float32)
    prepared = winograd_pool.prepare(np.zeros((2, 2, 16, 32), np.float32))
    epilogue = direct.tile_epilogue(32, None, "relu", None, None, "linear", False)
    pooled = np.zeros((2, 4, 4, 32), np.float32)
    pads, counter = ((0, 1), (0, 1)), np.zeros(1, np.int64)
    with pytest.raises(ValueError, match="winograd_pool: argument `bands` must be 1 to the 4 pooled rows, got 5"):
        winograd_pool.conv_pool_block(x, pads, prepared, epilogue, pooled, counter, 5)
    with pytest.raises(ValueError, match=r"argument `x` must hold 2 images of 16 channels, got shape \(3, 8, 8, 16\)"):
        winograd_pool.conv_pool_block(np.zeros((3, 8, 8, 16), np.float32), pads, prepared, epilogue, pooled, counter)
    with pytest.raises(ValueError, match=r"argument `x` must hold 2 images of 16 channels, got shape \(2, 8, 8, 8\)"):
        winograd_pool.conv_pool_block(np.zeros((2, 8, 8, 8), np.float32), pads, prepared, epilogue, pooled, counter)
    with pytest.raises(ValueError, match="winograd_pool: argument `pooled` must be C-contiguous"):
        winograd_pool.conv_pool_block(x, pads, prepared, epilogue, np.zeros((2, 4, 4, 64), np.float32)[..., ::2],
                                      counter)
    with pytest.raises(ValueError, match=r"the padded input \(8, 8\) is too small for 4 x 4 pooled pixels"):
        winograd_pool.conv_pool_block(x, None, prepared, epilogue, pooled, counter)
    assert counter[0] == 0


def test_the_filter_transform_is_g_g_g_transposed():
    """G g G^T for each (in, out) pair, written out cell by cell, the filters past `out` zero."""
    rng = np.random.default_rng(9)
    w = rng.standard_normal((2, 2, 3, 5))
    cells = winograd_pool.transform_filters(w, 8).reshape(3, 3, 3, 8)
    g = w.transpose(2, 3, 0, 1)                                  # (in, out, 2, 2)
    rows = np.stack([g[..., 0, :], g[..., 0, :] + g[..., 1, :], g[..., 1, :]], axis=-2)      # G g: (in, out, 3, 2)
    full = np.stack([rows[..., 0], rows[..., 0] + rows[..., 1], rows[..., 1]], axis=-1)      # (G g) G^T
    np.testing.assert_allclose(cells[..., :5], full.transpose(2, 3, 0, 1).astype(np.float32), rtol=1e-6)
    assert cells.dtype == np.float32 and not cells[..., 5:].any()
