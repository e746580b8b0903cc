"""ops/few_columns.py: rows by a matrix of 1-32 columns (a classifier's last Dense layer) in SIMD vectors, against
the float64 product on random shapes (tiles of rows and rows left over, one depth block or several, one vector of
columns or two, every column count), with the bias and the ReLU, in AVX-512's and AVX2's tiles; a row's bits
those of the row alone (any batch, any split among the threads); where `parallel.matmul` and a prepared Dense
take it; its checks."""

import numpy as np
import pytest

from convscope.ops import compiled, few_columns as fc, parallel

pytestmark = pytest.mark.skipif(not compiled.available(), reason="the few-columns product is compiled")


@pytest.fixture(params=[False, True], ids=["avx2", "avx512"])
def wide(request, monkeypatch):
    """Two vectors of columns in tiles of 2 rows (AVX2's 16 registers) or 4 (AVX-512's 32), whatever this
    machine has."""
    monkeypatch.setattr(fc, "_WIDE", request.param)
    return request.param


def _case(rng, rows, depth, columns, zeros=False):
    a = rng.standard_normal((rows, depth)).astype(np.float32)
    a = np.maximum(a, 0) if zeros else a
    b = (rng.standard_normal((depth, columns)) / np.sqrt(max(depth, 1))).astype(np.float32)
    return a, b


def _product(a, b, bias=None, relu=False):
    out = np.full((a.shape[0], b.shape[1]), np.nan, np.float32)
    fc.product(a, b, out, bias, relu)
    return out


@pytest.mark.parametrize("seed", range(12))
def test_the_product_matches_the_float64_one_on_random_shapes(seed, wide):
    rng = np.random.default_rng(seed)
    rows = int(rng.integers(1, 4 * fc.ROWS + 4))                    # whole tiles and rows left over
    depth = int(rng.integers(1, 3 * fc.DEPTH_BLOCK + 50))           # one block or several, the last a part
    columns = int(rng.integers(1, fc.MAX_COLUMNS + 1)) if seed % 4 else fc.LANES * (1 + seed % 8 // 4)
    a, b = _case(rng, rows, depth, columns, zeros=seed % 2 == 1)
    bias = rng.standard_normal(columns).astype(np.float32) if seed % 3 else None
    relu = seed % 4 < 2
    expected = a.astype(np.float64) @ b + (0 if bias is None else bias)
    expected = np.maximum(expected, 0) if relu else expected
    y = _product(a, b, bias, relu)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    # a row's bits are the row's alone: each row by itself, and the rows in another order, give the same
    alone = np.concatenate([_product(a[i:i + 1], b, bias, relu) for i in range(rows)])
    np.testing.assert_array_equal(y, alone)
    order = rng.permutation(rows)
    np.testing.assert_array_equal(_product(a[order], b, bias, relu), y[order])


def test_the_bias_and_relu_are_the_epilogue_of_the_product_bit_for_bit():
    """+ bias then the ReLU in the registers: the bits of the product followed by NumPy's float32 add and
    maximum (one rounding each), NaN kept through the ReLU."""
    rng = np.random.default_rng(1)
    a, b = _case(rng, 11, 300, 10)
    a[4, 17] = np.nan
    bias = rng.standard_normal(10).astype(np.float32)
    z = _product(a, b)
    finished = _product(a, b, bias, relu=True)
    np.testing.assert_array_equal(finished, np.maximum(z + bias, np.float32(0)))
    assert np.isnan(finished[4]).all() and not np.isnan(np.delete(finished, 4, axis=0)).any()
    np.testing.assert_array_equal(_product(a, b, relu=True), np.maximum(z, np.float32(0)))


def test_an_empty_depth_gives_the_bias_and_no_rows_nothing():
    rng = np.random.default_rng(2)
    bias = rng.standard_normal(7).astype(np.float32)
    np.testing.assert_array_equal(_product(np.zeros((3, 0), np.float32), np.zeros((0, 7), np.float32), bias),
                                  np.tile(bias, (3, 1)))
    assert _product(np.zeros((0, 5), np.float32), np.ones((5, 3), np.float32)).shape == (0, 3)


def test_parallel_matmul_takes_it_and_splits_the_rows_with_the_same_bits(monkeypatch):
    """`parallel.matmul` on C-contiguous float32 operands, the matrix of up to 32 columns, is this product, on the
    calling thread or split by rows among the threads (a product from `SMALL_PRODUCT`); a strided `a` (a Dense
    backward's transposed input), float64, or 33 columns take another path."""
    rng = np.random.default_rng(3)
    a, b = _case(rng, 203, 700, 10)
    y = _product(a, b)
    np.testing.assert_array_equal(parallel.matmul(a, b), y)
    monkeypatch.setattr(parallel, "SMALL_PRODUCT", 1 << 10)
    calls = []
    original = fc.kernel_for
    monkeypatch.setattr(fc, "kernel_for", lambda columns: lambda a, *rest: calls.append(a.shape[0]) or original(
        columns)(a, *rest))
    monkeypatch.setattr(parallel, "worker_count", lambda: 2)
    np.testing.assert_array_equal(parallel.matmul(a, b), y)
    assert sorted(calls) == [101, 102]
    strided = np.asfortranarray(a)
    assert not fc.applies(strided, b) and not fc.applies(a.T.copy().T, b)
    np.testing.assert_allclose(parallel.matmul(strided, b), y, rtol=1e-5, atol=1e-5)
    assert sorted(calls) == [101, 102]
    assert not fc.applies(a.astype(np.float64), b.astype(np.float64))
    assert not fc.applies(a, np.zeros((700, fc.MAX_COLUMNS + 1), np.float32))
    assert not fc.applies(a, np.asfortranarray(b))


def test_a_large_matrix_the_tiles_take_keeps_their_skipped_zeros():
    """A Dense of 16 columns by a matrix of 1 MiB or more on 5+ rows goes to `dense_tiles` first (which skips the
    matrix rows that only zeros multiply: an infinite weight there adds nothing), not here (0 x inf = NaN)."""
    from convscope.ops import dense_forward, dense_tiles
    rng = np.random.default_rng(6)
    a, b = _case(rng, 8, (1 << 20) // (4 * 16) + 10, 16)
    a[:, 7] = 0
    b[7] = np.inf
    if not dense_tiles.applies(a, b):
        pytest.skip("the SIMD tiles need AVX2 or wider")
    assert fc.applies(a, b)
    y = dense_forward(a, b)
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y, np.delete(a, 7, axis=1).astype(np.float64) @ np.delete(b, 7, axis=0),
                               rtol=1e-4, atol=1e-4)


def test_the_product_checks_its_arguments():
    """Wrong types, dtypes, layouts or shapes, an `out` overlapping the operands, and a column count the kernels do
    not take are refused, naming the function and the argument."""
    a, b = _case(np.random.default_rng(4), 4, 9, 3)
    with pytest.raises(ValueError, match=r"few_columns\.product: arguments `a` and `b` must be C-contiguous "
                                         r"float32 matrices.*got float64 of shape \(4, 9\)"):
        fc.product(a.astype(np.float64), b, np.empty((4, 3), np.float32))
    with pytest.raises(ValueError, match=r"few_columns\.product: arguments `a` and `b` must be C-contiguous"):
        fc.product(np.asfortranarray(a), b, np.empty((4, 3), np.float32))
    with pytest.raises(TypeError, match=r"few_columns\.product: arguments `a`, `b` and `out` must be NumPy arrays, "
                                        r"got list, ndarray, ndarray"):
        fc.product(a.tolist(), b, np.empty((4, 3), np.float32))
    with pytest.raises(ValueError, match=r"few_columns\.product: argument `out` must be a C-contiguous float32 "
                                         r"array of shape \(4, 3\) apart from `a` and `b`, got float32 of shape "
                                         r"\(3, 4\)"):
        fc.product(a, b, np.empty((3, 4), np.float32))
    square = np.ascontiguousarray(a[:, :4])
    with pytest.raises(ValueError, match=r"few_columns\.product: argument `out` must be .* apart from `a` and `b`"):
        fc.product(square, np.eye(4, dtype=np.float32), square)
    with pytest.raises(ValueError, match=r"parallel\.few_columns_product: arguments `a` and `b` must be operands "
                                         r"`few_columns` takes, got float32 of shape \(4, 9\)"):
        parallel.few_columns_product(np.asfortranarray(a), b)
    for columns in (0, fc.MAX_COLUMNS + 1, 2.0, True):
        with pytest.raises(ValueError, match=r"few_columns\.kernel_for: argument `columns` must be an int from 1 "
                                             r"to 32, got"):
            fc.kernel_for(columns)
    with pytest.raises(ValueError, match=r"few_columns\.product: argument `bias` must be a float32 vector of 3 "
                                         r"values, got float64 of shape \(3,\)"):
        fc.product(a, b, np.empty((4, 3), np.float32), np.zeros(3))
