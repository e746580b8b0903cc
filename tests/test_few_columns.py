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
    """`parallel.matmul` on a float32 matrix of up to 32 columns (its rows contiguous) is this product, on the
    calling thread or split by rows among the threads (a product from `SMALL_PRODUCT`); a strided `a` is read
    as its contiguous copy; float64, or 33 columns, take another path."""
    rng = np.random.default_rng(3)
    a, b = _case(rng, 203, 700, 10)
    y = _product(a, b)
    np.testing.assert_array_equal(parallel.matmul(a, b), y)
    monkeypatch.setattr(parallel, "SMALL_PRODUCT", 1 << 10)
    calls = []
    original = fc.product
    monkeypatch.setattr(fc, "product", lambda a, *rest: calls.append(a.shape[0]) or original(a, *rest))
    monkeypatch.setattr(parallel, "worker_count", lambda: 2)
    np.testing.assert_array_equal(parallel.matmul(a, b), y)
    assert sorted(calls) == [101, 102]
    strided = np.asfortranarray(a)
    np.testing.assert_array_equal(parallel.matmul(strided, b), y)
    assert not fc.applies(a.astype(np.float64), b.astype(np.float64))
    assert not fc.applies(a, np.zeros((700, fc.MAX_COLUMNS + 1), np.float32))
    assert not fc.applies(a, np.asfortranarray(b))


def test_the_product_checks_its_arguments():
    a, b = _case(np.random.default_rng(4), 4, 9, 3)
    with pytest.raises(ValueError, match=r"few_columns\.product: arguments `a` and `b` must be float32 matrices.*"
                                         r"got float64 of shape \(4, 9\)"):
        fc.product(a.astype(np.float64), b, np.empty((4, 3), np.float32))
    with pytest.raises(ValueError, match=r"few_columns\.product: argument `out` must be a C-contiguous float32 "
                                         r"array of shape \(4, 3\), got float32 of shape \(3, 4\)"):
        fc.product(a, b, np.empty((3, 4), np.float32))
    with pytest.raises(ValueError, match=r"few_columns\.product: argument `bias` must be a float32 vector of 3 "
                                         r"values, got float64 of shape \(3,\)"):
        fc.product(a, b, np.empty((4, 3), np.float32), np.zeros(3))
