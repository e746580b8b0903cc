"""Blocks of work shared evenly among the threads."""

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
