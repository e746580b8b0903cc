"""ops/concat.py: concatenation along the last axis, compiled rows among the threads, against NumPy's
`concatenate` (bitwise: a copy) on random shapes, and its fallbacks."""

import numpy as np
import pytest

from convscope.ops import compiled, concat, parallel

pytestmark = pytest.mark.usefixtures("kernel_path")


def _ran(monkeypatch):
    """The names of the paths `concatenate` takes, recorded."""
    taken = []
    monkeypatch.setattr(concat, "_PATHS", tuple(
        (name, applies, lambda arrays, axis, run=run, name=name: taken.append(name) or run(arrays, axis))
        for name, applies, run in concat._PATHS))
    return taken


@pytest.mark.parametrize("seed", range(8))
def test_rows_match_numpy_bitwise_on_random_shapes_and_threads(seed, kernel_path, monkeypatch):
    rng = np.random.default_rng(seed)
    dtype = (np.float32, np.float64)[seed % 2]
    lead = tuple(int(n) for n in rng.integers(1, 9, size=int(rng.integers(1, 4))))
    arrays = [rng.standard_normal(lead + (int(rng.integers(1, 70)),)).astype(dtype)
              for _ in range(int(rng.integers(2, 9)))]
    monkeypatch.setattr(concat, "MIN_BYTES", 0)
    block_bytes = 64 if seed % 2 else 1 << 40                   # blocks of rows claimed by the threads, or one
    monkeypatch.setattr(concat, "BLOCK_BYTES", block_bytes)
    taken, claimed = _ran(monkeypatch), []
    run = concat.run_claimed
    monkeypatch.setattr(concat, "run_claimed", lambda count, work: claimed.append(count) or run(count, work))
    for threads in (1, 2):
        monkeypatch.setattr(parallel, "worker_count", lambda threads=threads: threads)
        out = concat.concatenate(arrays, axis=-1 if seed % 3 else len(lead))
        assert out.dtype == dtype and out.shape == lead + (sum(a.shape[-1] for a in arrays),)
        np.testing.assert_array_equal(out, np.concatenate(arrays, axis=-1))
    assert taken == ["rows" if kernel_path == "compiled" else "numpy"] * 2
    rows = int(np.prod(lead))
    blocks = len(parallel.block_bounds(rows, out.nbytes, block_bytes)) - 1
    assert blocks == (1 if not seed % 2 else min(rows, out.nbytes // 64))
    assert claimed == ([blocks] * 2 if kernel_path == "compiled" else [])


def test_a_u_net_skip_connection_is_large_enough_for_the_rows(kernel_path, monkeypatch):
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal((4, 64, 64, 32)).astype(np.float32) for _ in range(2)]     # 4 MiB out
    taken = _ran(monkeypatch)
    np.testing.assert_array_equal(concat.concatenate(arrays), np.concatenate(arrays, axis=-1))
    assert taken == ["rows" if kernel_path == "compiled" else "numpy"]
    small = [a[:, :8] for a in arrays]                                   # 512 KiB: NumPy's copy
    np.testing.assert_array_equal(concat.concatenate([np.ascontiguousarray(a) for a in small]),
                                  np.concatenate(small, axis=-1))
    assert taken[-1] == "numpy"


@pytest.mark.parametrize("case", ["other axis", "strided", "mixed dtypes", "integers", "one array", "rank 1"])
def test_what_the_rows_do_not_take_is_numpys(case, kernel_path, monkeypatch):
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2, 6, 8, 5)).astype(np.float32), rng.standard_normal((2, 6, 8, 3)).astype(np.float32)
    axis = -1
    arrays = {"other axis": [a, a], "strided": [a, b[:, :, ::-1]], "mixed dtypes": [a, b.astype(np.float64)],
              "integers": [a.astype(np.int32), b.astype(np.int32)], "one array": [a], "rank 1": [a[0, 0, 0], b[0, 0, 0]]
              }[case]
    if case == "other axis":
        axis = 1
    monkeypatch.setattr(concat, "MIN_BYTES", 0)
    taken = _ran(monkeypatch)
    out = concat.concatenate(arrays, axis=axis)
    expected = np.concatenate(arrays, axis=axis)
    assert out.dtype == expected.dtype
    np.testing.assert_array_equal(out, expected)
    assert taken == ["numpy"]


def test_shapes_that_disagree_raise_numpys_error(kernel_path):
    with pytest.raises(ValueError, match="dimensions except for the concatenation axis must match"):
        concat.concatenate([np.ones((4, 3, 2), np.float32), np.ones((4, 5, 2), np.float32)])


def test_the_concatenate_layer_takes_it_forward_and_for_backward(kernel_path, monkeypatch):
    from convscope.layers import Concatenate
    rng = np.random.default_rng(4)
    x = [rng.standard_normal((2, 16, 16, c)).astype(np.float32) for c in (24, 40)]
    monkeypatch.setattr(concat, "MIN_BYTES", 0)
    taken = _ran(monkeypatch)
    layer = Concatenate()
    np.testing.assert_array_equal(np.asarray(layer(x)), np.concatenate(x, axis=-1))
    out, ctx = layer.forward(x, training=True)                  # the call a training step keeps for backward
    np.testing.assert_array_equal(out, np.concatenate(x, axis=-1))
    assert taken == ["rows" if compiled.active() else "numpy"] * 2
    grad = rng.standard_normal(out.shape).astype(np.float32)
    grads, _ = layer.backward(ctx, grad)
    np.testing.assert_array_equal(grads[0], grad[..., :24])
    np.testing.assert_array_equal(grads[1], grad[..., 24:])
