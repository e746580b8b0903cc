"""Winograd F(2x2, 3x3) (compiled path of 3x3 stride-1 convolutions) against PyTorch, float64 im2col,
and the rule that decides where it runs."""

import numpy as np
import pytest

from _oracle import assert_matches
from convscope import ops
from convscope.ops import compiled, conv, winograd

pytestmark = pytest.mark.skipif(not compiled.available(), reason="Winograd runs on the compiled path")


def _torch_conv(x, filters, bias, pads):
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    x_t = functional.pad(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()),
                         (pads[1][0], pads[1][1], pads[0][0], pads[0][1]))
    out = functional.conv2d(x_t, torch.from_numpy(filters.transpose(3, 2, 0, 1).copy()), torch.from_numpy(bias))
    return functional.relu(out).numpy().transpose(0, 2, 3, 1)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape,out_channels,padding,pads", [
    ((3, 14, 14, 16), 8, "SAME", ((1, 1), (1, 1))),
    ((2, 9, 10, 20), 5, "SAME", ((1, 1), (1, 1))),                 # odd rows: the last tile row is cut
    ((2, 12, 11, 17), 33, "VALID", ((0, 0), (0, 0))),
    ((1, 10, 12, 24), 7, [[0, 0], [2, 0], [0, 1], [0, 0]], ((2, 0), (0, 1))),
    ((40, 8, 8, 32), 16, "SAME", ((1, 1), (1, 1))),                # several blocks over the threads
    ((2, 7, 7, 128), 20, "SAME", ((1, 1), (1, 1))),                # 64 outputs for 49: wide channels
    ((2, 7, 5, 130), 9, "VALID", ((0, 0), (0, 0))),                # 5 x 3 out, 6 x 4 computed
])
def test_winograd_matches_torch(shape, out_channels, padding, pads, dtype, monkeypatch):
    monkeypatch.setattr(winograd, "MIN_IMAGES", 1)                 # small batches here, for speed
    monkeypatch.setattr(conv, "DIRECT_BEFORE_WINOGRAD", {})         # these thin ones would run direct first
    calls = []
    original = winograd.conv_block
    monkeypatch.setattr(winograd, "conv_block", lambda *args: calls.append(len(args[2])) or original(*args))
    rng = np.random.default_rng(shape[3])
    x = rng.standard_normal(shape).astype(dtype)
    filters = rng.standard_normal((3, 3, shape[3], out_channels)).astype(dtype)
    bias = rng.standard_normal(out_channels).astype(dtype)
    with compiled.use_compiled(True):
        y, ctx = ops.conv2d_forward(x, filters, 1, padding, bias=bias, activation="relu")
    assert sum(calls) == shape[0]                                  # every image went through Winograd
    assert_matches(y, _torch_conv(x, filters, bias, pads), dtype)
    with compiled.use_compiled(False):
        reference = ops.conv2d(x.astype(np.float64), filters.astype(np.float64), 1, padding,
                               bias=bias.astype(np.float64), activation="relu")
    assert_matches(y, reference.astype(dtype), dtype)
    grad = rng.standard_normal(y.shape).astype(dtype)               # the context serves the backward pass
    with compiled.use_compiled(False):
        _, ctx_reference = ops.conv2d_forward(x, filters, 1, padding)
    for ours, theirs in zip(ops.conv2d_backward(grad, ctx), ops.conv2d_backward(grad, ctx_reference)):
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("args,expected", [
    (((3, 3), (1, 1), (1, 1), 1, 16, (14, 14)), True),
    (((3, 3), (1, 1), (1, 1), 1, 15, (14, 14)), False),     # too few input channels
    (((3, 3), (2, 2), (1, 1), 1, 32, (14, 14)), False),     # strided
    (((3, 3), (1, 1), (2, 2), 1, 32, (14, 14)), False),     # dilated
    (((3, 3), (1, 1), (1, 1), 2, 32, (14, 14)), False),     # grouped
    (((5, 5), (1, 1), (1, 1), 1, 32, (14, 14)), False),
    (((3, 3), (1, 1), (1, 1), 1, 32, (7, 7)), False),       # 64 outputs computed for 49
    (((3, 3), (1, 1), (1, 1), 1, 127, (7, 7)), False),
    (((3, 3), (1, 1), (1, 1), 1, 128, (7, 7)), True),       # ... but 128 input channels: the products dominate
    (((3, 3), (1, 1), (1, 1), 1, 512, (5, 5)), True),       # 36 for 25
    (((3, 3), (1, 1), (1, 1), 1, 32, (9, 10)), True),       # 100 for 90
])
@pytest.mark.parametrize("images", [8, 7])
def test_where_winograd_runs(args, expected, images):
    with compiled.use_compiled(True):
        assert winograd.applies(*args, images) is (expected and images >= 8)   # too few images: im2col
    with compiled.use_compiled(False):
        assert winograd.applies(*args, images) is False


def test_filter_transform_is_g_g_gt():
    rng = np.random.default_rng(1)
    filters = rng.standard_normal((3, 3, 2, 3))
    g = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
    u = winograd.transform_filters(filters).reshape(4, 4, 2, 3)
    for c in range(2):
        for o in range(3):
            np.testing.assert_allclose(u[:, :, c, o], g @ filters[:, :, c, o] @ g.T, rtol=1e-14)


@pytest.mark.parametrize("shape,out_channels,padding", [((8, 14, 14, 20), 24, "SAME"), ((9, 13, 11, 16), 16, "VALID")])
def test_input_gradient_by_winograd(shape, out_channels, padding, monkeypatch):
    """The input gradient, a 3x3 stride-1 convolution of the output gradient by the flipped filters, runs
    as Winograd where that applies (from 16 output channels and 8 images): it matches PyTorch and float64."""
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(conv, "DIRECT_BEFORE_WINOGRAD", {})         # these thin ones would run direct first
    calls = []
    original = winograd.conv_block
    monkeypatch.setattr(winograd, "conv_block", lambda *args: calls.append(args[2].shape) or original(*args))
    rng = np.random.default_rng(out_channels)
    x = rng.standard_normal(shape).astype(np.float32)
    filters = (rng.standard_normal((3, 3, shape[3], out_channels)) / 3).astype(np.float32)
    with compiled.use_compiled(True):
        y, ctx = ops.conv2d_forward(x, filters, 1, padding)
        grad = rng.standard_normal(y.shape).astype(np.float32)
        calls.clear()
        grad_x, grad_w = ops.conv2d_backward(grad, ctx)
    assert calls and all(c[1:] == shape[1:] for c in calls)              # input-sized: the transposed conv
    pads = 1 if padding == "SAME" else 0
    x_t = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).requires_grad_()
    w_t = torch.from_numpy(filters.transpose(3, 2, 0, 1).copy()).requires_grad_()
    torch.nn.functional.conv2d(x_t, w_t, padding=pads).backward(torch.from_numpy(grad.transpose(0, 3, 1, 2).copy()))
    assert_matches(grad_x, x_t.grad.numpy().transpose(0, 2, 3, 1), "float32")
    assert_matches(grad_w, w_t.grad.numpy().transpose(2, 3, 1, 0), "float32")
    with compiled.use_compiled(False):
        _, ctx64 = ops.conv2d_forward(x.astype(np.float64), filters.astype(np.float64), 1, padding)
        reference = ops.conv2d_backward(grad.astype(np.float64), ctx64)[0]
    assert_matches(grad_x, reference.astype(np.float32), "float32")
