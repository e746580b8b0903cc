"""Blocks of work shared evenly among the threads."""

import numpy as np
import pytest

from convscope.ops import parallel


@pytest.mark.parametrize("count,max_size,workers,expected", [
    (128, 41, 2, [32, 32, 32, 32]),       # not 41 + 41 + 41 + 5
    (9, 4, 2, [2, 2, 2, 3]),
    (5, 100, 2, [2, 3]),
    (1, 100, 2, [1]),
    (7, 1, 2, [1] * 7),
    (0, 10, 2, []),
])
def test_balanced_ranges_give_each_thread_the_same_work(count, max_size, workers, expected, monkeypatch):
    monkeypatch.setattr(parallel, "worker_count", lambda: workers)
    ranges = parallel.balanced_ranges(count, max_size)
    assert [stop - start for start, stop in ranges] == expected
    assert [r[0] for r in ranges[1:]] == [r[1] for r in ranges[:-1]]


def test_one_item_runs_on_the_calling_thread_without_asking_the_thread_count(monkeypatch):
    """An image at batch 1 is one block whatever the thread count: reading the count (threadpoolctl, a few
    microseconds a call, several times per stage) is skipped for it."""
    import threading

    def asked():
        raise AssertionError("worker_count was asked for one item")
    monkeypatch.setattr(parallel, "worker_count", asked)
    assert parallel.balanced_ranges(1, 8) == [(0, 1)] and parallel.balanced_ranges(0, 8) == []
    caller = threading.get_ident()
    assert parallel.run_in_parallel(["only"], lambda chunk: (chunk, threading.get_ident())) == [(["only"], caller)]


@pytest.mark.parametrize("shape_a,shape_b", [
    ((4096, 300), (300, 40)),     # split by rows
    ((16, 3136), (3136, 1000)),   # split by columns
    ((600, 256), (256, 600)),     # square-ish
    ((4, 5), (5, 3)),             # small: stays on the calling thread
    ((2, 3136), (3136, 1000)),    # a few rows by 12.5 MB: split by columns too
    ((1, 7), (7, 1)),
])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_matmul_matches_numpy(shape_a, shape_b, dtype):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    rng = np.random.default_rng(shape_a[0])
    a = rng.standard_normal(shape_a).astype(dtype)
    b = rng.standard_normal(shape_b).astype(dtype)
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        out = parallel.matmul(a, b)
        transposed = parallel.matmul(b.T, a.T)     # strided views
    assert out.dtype == np.dtype(dtype)
    tolerance = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(out, a @ b, rtol=tolerance, atol=tolerance * shape_a[1])
    np.testing.assert_allclose(transposed, (a @ b).T, rtol=tolerance, atol=tolerance * shape_a[1])


@pytest.mark.parametrize("compiled_on", [True, False])
def test_a_few_rows_by_a_large_matrix_go_row_by_row_each_row_as_alone(compiled_on, monkeypatch):
    """Up to GEMV_ROWS rows by a matrix of GEMV_BYTES or more (under STREAMED_BYTES): one compiled call
    (`few_rows`), or without compiled ops one matrix-vector product per row (OpenBLAS' gemm packs the
    whole matrix for a few rows), on the calling thread; a row's bits do not depend on the rows beside it
    (a sample predicted alone or in a batch of 3 gets the same output)."""
    from convscope.ops import compiled
    if compiled_on and not compiled.active():
        pytest.skip("the few-rows product is compiled")
    rng = np.random.default_rng(9)
    b = rng.standard_normal((700, 400)).astype(np.float32)            # 1.1 MB
    a = rng.standard_normal((parallel.GEMV_ROWS, 700)).astype(np.float32)
    monkeypatch.setattr(parallel, "run_in_parallel", lambda *args, **kwargs: pytest.fail("handed to the pool"))
    if compiled_on:
        monkeypatch.setattr(parallel, "single_threaded_blas", lambda: pytest.fail("BLAS called"))
    with compiled.use_compiled(compiled_on):
        out = parallel.matmul(a, b)
        np.testing.assert_allclose(out, a.astype(np.float64) @ b, rtol=1e-5, atol=1e-4)
        for row in range(len(a)):
            assert np.array_equal(parallel.matmul(a[row:row + 1], b)[0], out[row])
            assert np.array_equal(parallel.matmul(a[row:row + 2][::-1], b)[-1], out[row])      # another neighbour
        strided = np.asfortranarray(a)                                     # rows with a stride
        assert np.array_equal(parallel.matmul(strided, b), out)


@pytest.mark.parametrize("rows", [1, 3])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_few_rows_by_a_streamed_matrix_sum_fixed_blocks_of_its_rows_on_the_threads(rows, dtype, monkeypatch):
    """A few rows by a matrix of STREAMED_BYTES or more: compiled partial products over fixed blocks of the
    matrix's rows (`few_rows.depth_blocks`), claimed by the threads and added in block order: the same bits
    on one thread or two, each row's bits those of the row alone, the float64 product's to rounding."""
    import threadpoolctl
    from convscope.ops import compiled, few_rows
    if not compiled.active():
        pytest.skip("the few-rows product is compiled")
    rng = np.random.default_rng(rows)
    depth = 4 * parallel.STREAMED_BYTES // (np.dtype(dtype).itemsize * 1000) // 3 + 5     # ~1.3 x STREAMED_BYTES
    a = rng.standard_normal((rows, depth)).astype(dtype)
    b = rng.standard_normal((depth, 1000)).astype(dtype)
    blocks = few_rows.depth_blocks(b)
    assert len(blocks) >= 2 and len(blocks) % 2 == 0
    assert blocks[0][0] == 0 and blocks[-1][1] == depth
    assert all(stop == start for (_, stop), (start, _) in zip(blocks, blocks[1:]))
    assert all((stop - start) % 4 == 0 for start, stop in blocks[:-1])
    handed = []
    run = parallel.run_claimed
    monkeypatch.setattr(parallel, "run_claimed",
                        lambda count, work, **kw: handed.append((count, parallel.worker_count())) or run(count, work,
                                                                                                        **kw))
    monkeypatch.setattr(parallel, "single_threaded_blas", lambda: pytest.fail("BLAS called"))
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        one_thread = parallel.matmul(a, b)
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        out = parallel.matmul(a, b)
    assert handed == [(len(blocks), 1), (len(blocks), 2)]        # the blocks claimed by one thread, then by two
    assert np.array_equal(out, one_thread)
    tolerance = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(out, a.astype(np.float64) @ b.astype(np.float64), rtol=tolerance,
                               atol=tolerance * np.sqrt(depth))
    for row in range(rows):
        assert np.array_equal(parallel.matmul(a[row:row + 1], b)[0], out[row])


def test_nested_calls_run_in_place_and_every_chunk_runs_once():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    seen = []

    def inner(chunk):
        seen.extend(chunk)
        return len(chunk)

    def outer(chunk):
        return [parallel.run_in_parallel([10 * i + j for j in range(3)], inner) for i in chunk]

    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        results = parallel.run_in_parallel([0, 1, 2, 3], outer)
    assert results == [[[3], [3]], [[3], [3]]]      # nested: one chunk each, in the same thread
    assert sorted(seen) == sorted(10 * i + j for i in range(4) for j in range(3))


def test_an_error_surfaces_after_every_chunk_has_finished():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import threading
    import time
    finished = []

    def work(chunk):
        if chunk[0] == 0:
            raise ValueError("first chunk failed")
        time.sleep(0.05)
        finished.append(threading.current_thread().name)

    with threadpoolctl.threadpool_limits(2, user_api="blas"), pytest.raises(ValueError, match="first chunk"):
        parallel.run_in_parallel([0, 1], work)
    assert len(finished) == 1


def test_a_pool_chunks_error_surfaces_after_every_other_chunk_has_finished(monkeypatch):
    """Three threads: the second chunk (a pool thread's) fails at once, the third is still running then; the
    results of a region without errors come in the chunks' order."""
    import time
    monkeypatch.setattr(parallel, "worker_count", lambda: 3)
    finished = []

    def work(chunk):
        if chunk[0] == 1:
            raise ValueError("second chunk failed")
        time.sleep(0.2 if chunk[0] == 2 else 0.05)        # the third chunk ends well after the caller's
        finished.append(chunk[0])
        return chunk[0]

    with pytest.raises(ValueError, match="second chunk"):
        parallel.run_in_parallel([0, 1, 2], work)
    assert sorted(finished) == [0, 2]
    assert parallel.run_in_parallel([0, 3, 2], work) == [0, 3, 2]


def test_claimed_items_go_one_at_a_time_to_whichever_thread_is_free():
    """`claimed=True`: each item goes to exactly one `work([item])` call; a thread slowed down (the calling
    thread here, 20 ms per item) takes few of them while the other takes the rest (equal chunks: 20 each)."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import threading
    import time
    main, done = threading.current_thread(), []

    def work(chunk):
        assert len(chunk) == 1
        if threading.current_thread() is main:
            time.sleep(0.02)
        done.append((threading.current_thread() is main, chunk[0]))

    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        assert parallel.run_in_parallel(list(range(40)), work, claimed=True) == [None, None]
    assert sorted(item for _, item in done) == list(range(40))
    assert 1 <= sum(on_main for on_main, _ in done) <= 5


@pytest.mark.parametrize("count,size,min_size,expected", [
    (10, 4 << 20, 1 << 20, [(0, 5), (5, 10)]),     # one slice per thread
    (10, 1000, 1 << 20, [(0, 10)]),                # small: one call on the calling thread
    (1, 4 << 20, 1 << 20, [(0, 1)]),
    (0, 4 << 20, 1 << 20, []),
])
def test_on_slices_gives_each_thread_one_contiguous_slice(count, size, min_size, expected, monkeypatch):
    monkeypatch.setattr(parallel, "worker_count", lambda: 2)
    calls = parallel.on_slices(count, size, lambda part: (part.start, part.stop), min_size)
    assert calls == expected


def test_single_threaded_blas_sets_one_thread_and_restores_the_count_even_after_an_error():
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def blas_threads():
        return [info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]
    if not blas_threads():
        pytest.skip("no BLAS library that threadpoolctl controls")
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        before = blas_threads()
        with parallel.single_threaded_blas():
            assert set(blas_threads()) == {1}
        assert blas_threads() == before
        with pytest.raises(RuntimeError, match="inside"):
            with parallel.single_threaded_blas():
                raise RuntimeError("inside")
        assert blas_threads() == before


def test_alone_runs_every_item_as_one_chunk_on_the_calling_thread_with_blas_single_threaded():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import threading
    seen = []

    def work(chunk):
        counts = {info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"}
        seen.append((threading.get_ident(), list(chunk), counts))
        return len(chunk)

    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        assert parallel.run_in_parallel([1, 2, 3, 4], work, alone=True) == [4]
        shared = parallel.run_in_parallel([1, 2, 3, 4], work)
    assert seen[0] == (threading.get_ident(), [1, 2, 3, 4], {1})
    assert shared == [2, 2]
    assert {ident for ident, _, _ in seen[1:]} - {threading.get_ident()}     # without `alone`: a pool thread too


@pytest.mark.parametrize("rows,depth,columns", [(1, 240, 512), (1, 512, 25), (2, 7, 3), (3, 1, 9), (4, 1027, 33)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_few_rows_run_compiled_each_row_alone(rows, depth, columns, dtype, monkeypatch):
    """Up to `few_rows.MAX_ROWS` rows: one compiled call (no BLAS, no thread hand-over), float64's product to
    rounding, and each row's bits those of the row alone, however it is laid out."""
    from convscope.ops import compiled, few_rows
    if not compiled.active():
        pytest.skip("the few-rows product is compiled")
    rng = np.random.default_rng(rows * depth)
    a = rng.standard_normal((rows, depth)).astype(dtype)
    b = rng.standard_normal((depth, columns)).astype(dtype)
    monkeypatch.setattr(parallel, "single_threaded_blas", lambda: pytest.fail("BLAS called"))
    monkeypatch.setattr(parallel, "run_in_parallel", lambda *args, **kwargs: pytest.fail("handed to the pool"))
    out = parallel.matmul(a, b)
    tolerance = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(out, a.astype(np.float64) @ b.astype(np.float64), rtol=tolerance,
                               atol=tolerance * depth)
    for row in range(rows):
        assert np.array_equal(parallel.matmul(a[row:row + 1], b)[0], out[row])
    assert np.array_equal(parallel.matmul(np.asfortranarray(a), b), out)
    assert not few_rows.applies(a, np.asfortranarray(b)) or columns == 1 or depth == 1   # strided rows: BLAS
    assert not few_rows.applies(np.ones((5, depth), dtype), b)


@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_few_rows_skip_the_matrix_rows_their_zeros_multiply(streamed, dtype):
    """As the reference BLAS' gemv: a row's zeros skip their matrix rows (an infinite or NaN weight there adds
    nothing, where OpenBLAS' product gives NaN), its nonzero entries count (a NaN input makes NaN); each row is
    the float64 product over its nonzero entries, with 0-13 of them (every pass of the kernel) or half its depth."""
    from convscope.ops import compiled
    if not compiled.active():
        pytest.skip("the few-rows product is compiled")
    rng = np.random.default_rng(5)
    depth = 4 * parallel.STREAMED_BYTES // (np.dtype(dtype).itemsize * 1000) // 3 + 5 if streamed else 301
    a = np.zeros((4, depth), dtype)
    for row, count in enumerate([0, 13, 6, depth // 2]):
        kept = rng.choice(depth - 2, count, replace=False)
        a[row, kept] = rng.standard_normal(count)
    a[1, 0] = -0.0
    b = rng.standard_normal((depth, 1000 if streamed else 37)).astype(dtype)
    b[depth - 2], b[depth - 1, ::2], b[depth - 1, 1::2] = np.inf, -np.inf, np.nan     # rows no input multiplies
    out = parallel.matmul(a, b)
    tolerance = 1e-5 if dtype == "float32" else 1e-12
    for row in range(4):
        kept = a[row] != 0
        expected = a[row, kept].astype(np.float64) @ b[kept].astype(np.float64)
        np.testing.assert_allclose(out[row], expected, rtol=tolerance, atol=tolerance * np.sqrt(depth))
        assert np.array_equal(parallel.matmul(a[row:row + 1], b)[0], out[row])
    a[2, 7] = np.nan
    a[3, depth - 3] = np.inf
    out = parallel.matmul(a, np.ascontiguousarray(b[:, :4]))
    assert np.isnan(out[2]).all() and np.isinf(out[3][np.isfinite(b[depth - 3, :4])]).all()
    assert np.isfinite(out[:2]).all()


@pytest.mark.parametrize("columns,expected", [
    (1000, [500, 500]),               # seed 000's Dense
    (2048, [512] * 4),
    (1537, [384, 384, 384, 385]),     # four blocks: three of 512 would leave one thread idle a third of the time
    (100, [50, 50]),                  # two blocks even where one would do: one per thread
    (1, [1]),
])
def test_column_blocks_are_at_most_512_wide_even_in_number_and_the_same_on_any_thread_count(
        columns, expected, monkeypatch):
    blocks = parallel.column_blocks(columns)
    assert [stop - start for start, stop in blocks] == expected
    assert blocks[0][0] == 0 and blocks[-1][1] == columns
    assert all(stop == start for (_, stop), (start, _) in zip(blocks, blocks[1:]))
    monkeypatch.setattr(parallel, "worker_count", lambda: 3)
    assert parallel.column_blocks(columns) == blocks


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_worker_count_reads_the_blas_thread_count_as_threadpoolctl_gives_it(limit):
    """`worker_count` reads each library's count through a reader looked up once (`_count_reader`): it follows
    every change of the count, as threadpoolctl's own `num_threads` does."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not parallel._blas():
        pytest.skip("no BLAS library that threadpoolctl controls")
    with threadpoolctl.threadpool_limits(limit, user_api="blas"):
        counts = [library.num_threads for library in parallel._blas().lib_controllers]
        readers = [parallel._count_reader(library)() for library in parallel._blas().lib_controllers]
        assert readers == counts
        assert parallel.worker_count() == max(max(count or 1 for count in counts), 1)


def test_count_reader_falls_back_to_the_controllers_own_call():
    """A library that is not OpenBLAS, or a threadpoolctl without the symbol lookup, reads through the
    controller's `get_num_threads`."""
    class Other:
        internal_api = "mkl"

        def get_num_threads(self):
            return 5

        def _get_symbol(self, name):
            return lambda: 5
    other = Other()
    assert parallel._count_reader(other) == other.get_num_threads

    class Unlooked:
        internal_api = "openblas"
        get_num_threads = Other.get_num_threads
    unlooked = Unlooked()
    assert parallel._count_reader(unlooked) == unlooked.get_num_threads


@pytest.mark.parametrize("make", [lambda: np.empty(10, np.float32), lambda: np.empty((3, 5), np.float64)[1:, 2:],
                                  lambda: np.empty(17, np.uint8)[3:], lambda: np.empty((4, 4), np.float32).T,
                                  lambda: np.empty(0, np.float32)])
def test_compiled_address_is_ctypes_data(make):
    from convscope.ops import compiled
    array = make()
    assert compiled.address(array) == array.ctypes.data
