"""Helpers of the PyTorch oracle tests: TensorFlow's SAME split written out, and the tolerances."""

import numpy as np

TOLERANCE = {"float32": 1e-5, "float64": 1e-10}


def tf_same_split(length, kernel, stride, dilation=1):
    """TensorFlow's SAME padding (before, after), written out here independently of ops/shapes.py."""
    out = -(-length // stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - length, 0)
    return total // 2, total - total // 2


def assert_matches(ours, reference, dtype):
    """Agreement to 1e-5 (float32) / 1e-10 (float64) relative to the values' scale."""
    rtol = TOLERANCE[dtype]
    scale = max(1.0, float(np.abs(reference).max(initial=0.0)))
    assert ours.dtype == np.dtype(dtype)
    np.testing.assert_allclose(ours, reference, rtol=rtol, atol=rtol * scale)
