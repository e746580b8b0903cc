"""ops/dense_tiles.py: a batch of rows by a large matrix in SIMD tiles, against the float64 product on random
shapes (whole tiles, rows and columns left over, blocks of the depth), for AVX2's and AVX-512's vector widths;
each output one chain of sums (a row's bits those of the row alone, on any number of threads and blocks);
where `parallel.matmul` takes it, and a Dense layer's predictions through it."""

import numpy as np
import pytest

from convscope.ops import compiled, dense_tiles as dt, parallel

pytestmark = pytest.mark.skipif(not compiled.available(), reason="the SIMD tiles are compiled")


@pytest.fixture(params=[256, 512], ids=["avx2", "avx512"])
def width(request, monkeypatch):
    """The tiles for 8 or 16 lanes, whatever this machine has."""
    monkeypatch.setattr(dt, "VECTOR_BITS", request.param)
    return request.param // 32


def _tiles(a, b, ranges):
    out = np.full((a.shape[0], b.shape[1]), np.nan, np.float32)
    for start, stop in ranges:
        dt.product(a, b, out, start, stop)
    return out


def _case(rng, rows, depth, columns):
    a = rng.standard_normal((rows, depth)).astype(np.float32)
    b = (rng.standard_normal((depth, columns)) * 0.5).astype(np.float32)
    return a, b


@pytest.mark.parametrize("seed", range(10))
def test_tiles_match_the_float64_product_on_random_shapes(width, seed):
    rng = np.random.default_rng(seed)
    rows = int(rng.integers(1, 3 * dt.WIDE_ROWS + 4))                # tiles of 8 and 4 rows, rows left over
    depth = int(rng.integers(1, 3 * dt.DEPTH_BLOCK + 50))         # one block or several, the last a part
    columns = int(rng.integers(1, 9)) * width + int(rng.integers(0, width))   # strips, pairs, a vector, scalars
    a, b = _case(rng, rows, depth, columns)
    out = _tiles(a, b, [(0, columns)])
    expected = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=2e-6 * np.sqrt(depth) * 4)


@pytest.mark.parametrize("rows,depth,columns", [(13, 700, 1000), (6, 257, 40), (32, 3 * 256, 72), (5, 300, 1003),
                                                (40, 1100, 1000), (17, 2000, 531)])     # streamed: blocks of 64
def test_each_output_is_summed_alike_whatever_the_tile_the_neighbours_or_the_column_ranges(
        width, rows, depth, columns):
    """A row alone, the rows in another order and other column ranges (as other thread counts split them):
    the same bits."""
    a, b = _case(np.random.default_rng(rows), rows, depth, columns)
    out = _tiles(a, b, [(0, columns)])
    for row in range(rows):
        assert np.array_equal(_tiles(a[row:row + 1], b, [(0, columns)])[0], out[row])
    assert np.array_equal(_tiles(a[::-1].copy(), b, [(0, columns)])[::-1], out)
    assert np.array_equal(_tiles(a, b, dt.column_ranges(columns, 3)), out)


def _blocked_chain(values: np.ndarray, block: int) -> np.float32:
    """The float32 sum of `values` as the tiles make it with a row of ones: a chain per block, the blocks' sums
    added in order."""
    total = np.float32(0)
    for start in range(0, len(values), block):
        chain = np.float32(0)
        for value in values[start:start + block]:
            chain = np.float32(chain + value)
        total = np.float32(total + chain)
    return total


@pytest.mark.parametrize("seed", range(4))
def test_a_streamed_matrix_goes_in_smaller_blocks_with_the_same_accuracy(width, seed):
    """From `STREAM_BYTES` the tiles sum blocks of `STREAM_BLOCK` rows (asking for the next strip as they go):
    random shapes against the float64 product; and a column whose sum shows its blocks (2**24 then ones: a
    chain loses each 1, a new block keeps them) gives the blocks of that size, not `DEPTH_BLOCK`'s."""
    rng = np.random.default_rng(seed)
    rows = int(rng.integers(2, 3 * dt.WIDE_ROWS + 4))
    columns = int(rng.integers(10, 60)) * width + int(rng.integers(0, width))
    depth = -(-dt.STREAM_BYTES // (4 * columns)) + int(rng.integers(0, 300))
    a, b = _case(rng, rows, depth, columns)
    a[0], b[:, 0] = 1, 0
    b[0, 0], b[1:2 * dt.STREAM_BLOCK, 0] = 2 ** 24, 1
    asks = width == 16 and not dt._DOUBLE_PUMPED                      # where 512-bit vectors run whole
    assert dt.depth_block(b) == (dt.STREAM_BLOCK, asks) and dt.depth_block(b[:, :width]) == (dt.DEPTH_BLOCK, False)
    out = _tiles(a, b, dt.column_ranges(columns, 2))
    np.testing.assert_allclose(out[1:], a[1:].astype(np.float64) @ b.astype(np.float64), rtol=1e-5,
                               atol=2e-6 * np.sqrt(depth) * 4)
    assert out[0, 0] == _blocked_chain(b[:, 0], dt.STREAM_BLOCK) != _blocked_chain(b[:, 0], dt.DEPTH_BLOCK)


@pytest.mark.parametrize("seed", range(3))
def test_blocked_sums_are_as_accurate_as_blas(seed):
    """Seed 000's Dense at batch 32: the tiles' largest error from the float64 product at most 2x BLAS'
    (one chain of 3136 multiply-adds per output erred ~4x more)."""
    a, b = _case(np.random.default_rng(seed), 32, 3136, 1000)
    b *= 2                                                              # unit-variance weights
    expected = a.astype(np.float64) @ b.astype(np.float64)
    tiles_error = np.abs(_tiles(a, b, [(0, 1000)]) - expected).max()
    assert tiles_error <= 2 * np.abs(a @ b - expected).max()


@pytest.mark.parametrize("bits,strip", [(256, 16), (512, 48)])
@pytest.mark.parametrize("columns,parts", [(1000, 2), (1000, 16), (1003, 3), (24, 2), (16, 4), (100, 2), (1280, 2),
                                           (20, 2), (17, 3)])
def test_column_ranges_start_on_a_vector_and_share_the_columns_evenly(columns, parts, bits, strip, monkeypatch):
    """Strips of two vectors of 8 lanes, three of 16; ranges starting on a vector, each at least a vector long
    (where the columns allow), widths within a vector of each other (seed 000's 1000 columns on two threads:
    496 and 504, not 480 and 520)."""
    monkeypatch.setattr(dt, "VECTOR_BITS", bits)
    assert dt.strip() == strip
    lanes = bits // 32
    ranges = dt.column_ranges(columns, parts)
    assert ranges[0][0] == 0 and ranges[-1][1] == columns and len(ranges) <= parts
    assert all(stop == start for (_, stop), (start, _) in zip(ranges, ranges[1:]))
    assert all(start % lanes == 0 and stop > start and stop >= lanes for start, stop in ranges)
    widths = [stop - start for start, stop in ranges]
    assert max(widths) - min(widths) <= lanes or len(ranges) == 1
    if (columns, parts, bits) == (1000, 2, 512):
        assert ranges == [(0, 496), (496, 1000)]


def test_where_the_tiles_apply():
    """5-32 float32 rows (64 where vectors are 512-bit) by a C-contiguous float32 matrix of 1 MiB or more; not a
    few rows (`few_rows`), not many, not float64, not a strided or small matrix, not with compiled ops off."""
    if dt.lanes() < 8:
        pytest.skip("the SIMD tiles need AVX2 or wider")
    b = np.ones((1024, 256), np.float32)                       # 1 MiB
    assert dt.applies(np.ones((dt.MIN_ROWS, 1024), np.float32), b)
    assert dt.applies(np.ones((dt.max_rows(), 1024), np.float32), b)
    assert not dt.applies(np.ones((dt.MIN_ROWS - 1, 1024), np.float32), b)
    assert not dt.applies(np.ones((dt.max_rows() + 1, 1024), np.float32), b)
    assert not dt.applies(np.ones((8, 1024)), b.astype(np.float64))
    assert not dt.applies(np.ones((8, 1024), np.float32), np.asfortranarray(b))
    assert not dt.applies(np.ones((8, 1023), np.float32), b[:1023])
    with compiled.use_compiled(False):
        assert not dt.applies(np.ones((8, 1024), np.float32), b)


@pytest.mark.parametrize("bits,pumped,rows", [(256, False, 32), (512, False, 64), (512, True, 128)])
def test_the_wide_tiles_take_more_rows(bits, pumped, rows, monkeypatch):
    """AVX2's 4 x 2 tiles up to 32 rows, the 8 x 3 tiles of 512-bit vectors up to 64, or 128 on a CPU that runs
    them as two halves (BLAS' packed matrix pays for itself later beside them)."""
    monkeypatch.setattr(dt, "VECTOR_BITS", bits)
    monkeypatch.setattr(dt, "_DOUBLE_PUMPED", pumped)
    monkeypatch.setattr(compiled, "active", lambda: True)
    b = np.ones((1024, 256), np.float32)
    assert dt.max_rows() == rows
    assert dt.applies(np.ones((rows, 1024), np.float32), b)
    assert not dt.applies(np.ones((rows + 1, 1024), np.float32), b)


@pytest.mark.parametrize("threads", [1, 2])
def test_parallel_matmul_takes_the_tiles_by_columns_among_the_threads(threads, monkeypatch):
    """A Dense layer's product on `max_rows()` samples (32, 64 or 128): `parallel.matmul` gives the
    tiles' bits (not BLAS'), on the pool's threads for a large product, the float64 product's to rounding."""
    if dt.lanes() < 8:
        pytest.skip("the SIMD tiles need AVX2 or wider")
    a, b = _case(np.random.default_rng(3), dt.max_rows(), 3136, 1000)
    monkeypatch.setattr(parallel, "worker_count", lambda: threads)
    monkeypatch.setattr(parallel, "single_threaded_blas", lambda: pytest.fail("BLAS called"))
    handed, claimed = [], []
    work = dt.claimed_work
    monkeypatch.setattr(dt, "claimed_work", lambda a, b, out, ranges, skip, bias, relu: handed.append(
        ranges.tolist()) or work(a, b, out, ranges) if not (skip or bias is not None or relu) else pytest.fail(
        "matmul's product reads every row, with no epilogue"))
    run = parallel.run_claimed
    monkeypatch.setattr(parallel, "run_claimed", lambda count, work, **kw: claimed.append(
        (count, kw.get("alone", False))) or run(count, work, **kw))
    out = parallel.matmul(a, b)
    assert handed == [[list(r) for r in dt.column_ranges(1000, threads)]] and claimed == [(threads, False)]
    assert np.array_equal(out, _tiles(a, b, [(0, 1000)]))
    np.testing.assert_allclose(out, a.astype(np.float64) @ b, rtol=1e-5, atol=1e-3)
    assert np.array_equal(parallel.matmul(np.asfortranarray(a), b), out)       # strided rows: copied


@pytest.mark.parametrize("seed", range(6))
def test_skipping_the_matrix_rows_only_zeros_multiply_keeps_the_bits(width, seed):
    """`skip_zeros`: the columns of `a` with a nonzero entry (NaN included) are read, in order; a column of
    zeros (the first, the last, a whole depth block, scattered ones) skips its matrix row with the same bits
    as reading it, and an infinite or NaN weight there leaves the sums finite, the float64 product over the
    kept columns to rounding, where the product without skipping gives NaN."""
    rng = np.random.default_rng(seed)
    rows = int(rng.integers(dt.MIN_ROWS, 3 * dt.WIDE_ROWS + 4))
    depth = int(rng.integers(dt.DEPTH_BLOCK + 2, 3 * dt.DEPTH_BLOCK + 50))
    columns = int(rng.integers(1, 7)) * width + int(rng.integers(0, width))
    a, b = _case(rng, rows, depth, columns)
    a[rng.random(a.shape) < 0.5] = 0
    dead = rng.random(depth) < [0.1, 0.3, 0.6, 0.9, 1.0, 0.0][seed]
    dead[[0, -1]] = seed != 5
    dead[dt.DEPTH_BLOCK:2 * dt.DEPTH_BLOCK] |= seed == 1
    a[:, dead] = 0
    a[rng.integers(rows), np.flatnonzero(~dead)[:1]] = np.nan if seed == 2 else 1.5
    kept = dt.kept_depth(a, True)
    assert kept.dtype == np.int64 and kept.tolist() == np.flatnonzero((a != 0).any(axis=0)).tolist()
    assert dt.kept_depth(a, False).tolist() == list(range(depth))
    skipped = np.full((rows, columns), np.nan, np.float32)
    dt.product(a, b, skipped, 0, columns, skip_zeros=True)
    assert np.array_equal(skipped, _tiles(a, b, [(0, columns)]), equal_nan=True)
    b[np.flatnonzero(dead)[::2]] = np.inf
    b[np.flatnonzero(dead)[1::2]] = np.nan
    dt.product(a, b, skipped, 0, columns, skip_zeros=True)
    expected = a[:, kept].astype(np.float64) @ b[kept].astype(np.float64)
    np.testing.assert_allclose(skipped, expected, rtol=1e-5, atol=2e-6 * np.sqrt(depth) * 4)
    assert dead.any() == np.isnan(_tiles(a, b, [(0, columns)])).all() or seed == 2


def test_a_dense_layer_predicts_each_sample_as_in_any_batch_of_its_size():
    """Seed 000's Dense (3136 -> 1000) through the tiles at batch `max_rows()` and `MIN_ROWS`: a sample's output
    the same bits in either batch, and NumPy's float64 layer to rounding."""
    if dt.lanes() < 8:
        pytest.skip("the SIMD tiles need AVX2 or wider")
    from convscope.layers import Dense
    layer = Dense(1000, activation="relu")
    layer.build((None, 3136))
    x = np.random.default_rng(5).standard_normal((dt.max_rows(), 3136)).astype(np.float32)
    part = slice(dt.max_rows() // 4, dt.max_rows() // 4 + dt.MIN_ROWS)
    y_all, y_part = np.asarray(layer(x)), np.asarray(layer(x[part]))
    assert np.array_equal(y_all[part], y_part)
    kernel, bias = (np.asarray(w, np.float64) for w in layer.get_weights())
    np.testing.assert_allclose(y_all, np.maximum(x.astype(np.float64) @ kernel + bias, 0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("change,message", [
    (dict(a=np.ones((4, 8))), "argument `a` must be a C-contiguous 2-D float32 array, got float64"),
    (dict(b=np.ones((8, 32), np.float32)[:, ::2]), "argument `b` must be a C-contiguous 2-D float32 array"),
    (dict(out=np.ones((4, 8), np.float32)), r"`out` \(rows, columns\), at least 8 columns, got \(4, 8\), \(8, 16\) "
                                            r"and \(4, 8\)"),
    (dict(b=np.ones((8, 7), np.float32), out=np.empty((4, 7), np.float32), stop=7),
     r"at least 8 columns, got \(4, 8\), \(8, 7\) and \(4, 7\)"),
    (dict(b=np.ones((9, 16), np.float32)), r"got \(4, 8\), \(9, 16\)"),
    (dict(start=4), r"start a multiple of 8, stop at least 8 \(a vector ends there\) unless equal to start, got 4, 16"),
    (dict(stop=17), "stop <= 16, start a multiple of 8, .* got 0, 17"),
    (dict(stop=7), r"stop at least 8 \(a vector ends there\) unless equal to start, got 0, 7"),   # would read before b
])
def test_product_checks_its_arrays_before_the_unchecked_kernel(change, message, monkeypatch):
    monkeypatch.setattr(dt, "VECTOR_BITS", 256)
    args = dict(a=np.ones((4, 8), np.float32), b=np.ones((8, 16), np.float32), out=np.empty((4, 16), np.float32),
                start=0, stop=16)
    args.update(change)
    with pytest.raises(ValueError, match=message) as error:
        dt.product(**args)
    assert str(error.value).startswith("dense_tiles.product: argument")
    ranges = np.array([(0, 8), (args.pop("start"), args.pop("stop"))], np.int64)     # the claimed ranges alike
    with pytest.raises(ValueError, match=message) as error:
        dt.claimed_work(**args, ranges=ranges)
    assert str(error.value).startswith("dense_tiles.claimed_work: argument")


@pytest.mark.parametrize("cpu,features,rows", [
    ("znver4", "+avx,+avx2,+fma,+avx512f", 128),           # 512-bit vectors run as two 256-bit halves (Zen 4)
    ("skylake-avx512", "+avx,+avx2,+fma,+avx512f", 64),    # Intel's full-width units
    ("znver4", "+avx,+avx2,+fma", 32),                     # AVX2 code on Zen 4 (the benchmark's --isa avx2)
])
def test_the_tiles_row_limit_follows_the_vector_width_and_the_cpu(cpu, features, rows):
    """`max_rows` as imported for the CPU numba compiles for (`NUMBA_CPU_NAME`, `NUMBA_CPU_FEATURES`), whatever
    this machine is."""
    import os
    import subprocess
    import sys
    code = "from convscope.ops import dense_tiles; print(dense_tiles.max_rows())"
    env = dict(os.environ, NUMBA_CPU_NAME=cpu, NUMBA_CPU_FEATURES=features)
    printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env,
                             timeout=120).stdout.split()
    assert printed == [str(rows)], printed


@pytest.mark.parametrize("bias", [np.zeros(39, np.float32), np.zeros(40), [0.0] * 40])
def test_claimed_work_names_a_bias_of_the_wrong_shape_or_dtype(bias, monkeypatch):
    monkeypatch.setattr(dt, "VECTOR_BITS", 256)
    a, b = _case(np.random.default_rng(0), 8, 300, 40)
    out = np.empty((8, 40), np.float32)
    ranges = np.array([[0, 40]], dtype=np.int64)
    with pytest.raises(ValueError, match=r"dense_tiles.claimed_work: argument `bias` must be a float32 vector of 40 "
                                         r"values, got \w+ of shape \((39|40),\)"):
        dt.claimed_work(a, b, out, ranges, bias=bias)


def test_a_relu_without_a_bias_is_applied(monkeypatch):
    """`tiles_product` with `relu` and no bias: the product's ReLU (+ zeros, then max with 0), not the product."""
    monkeypatch.setattr(dt, "VECTOR_BITS", 256)
    a, b = _case(np.random.default_rng(1), 9, 300, 1000)
    y = parallel.tiles_product(a, b, relu=True)
    assert np.array_equal(y, np.maximum(parallel.tiles_product(a, b), 0)) and (y == 0).any()
