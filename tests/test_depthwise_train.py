"""The depthwise convolution's compiled training path (`ops/depthwise_train.py`: NHWC, multiplier 1) against
the grouped-convolution reference path, PyTorch 2.13's `F.conv2d(groups=C)` forward and autograd backward, and
float64 finite differences; at this machine's SIMD width and at AVX2's (forward tiles of 8 lanes, and the
kernels compiled for a Haswell target in a subprocess); layers trained through `train_on_batch` both ways."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import convscope as cs
from convscope import layers as L
from convscope import ops
from convscope.ops import compiled, depthwise, depthwise_fast, depthwise_train, parallel

from _gradcheck import numerical_gradient
from _oracle import assert_matches, tf_same_split

torch = pytest.importorskip("torch")
F = torch.nn.functional
pytestmark = pytest.mark.skipif(not compiled.available(), reason="numba is not installed")

CHANNELS = (1, 3, 7, 8, 16, 17, 33)      # below, at and above a vector of 8 and of 16 float32s


def random_case(rng, channels=None):
    """A random depthwise configuration: kernel 1-5, strides 1-3, dilations 1-2, SAME/VALID/explicit pads,
    batch 1-3, `channels` (or one of CHANNELS)."""
    kernel = tuple(int(k) for k in rng.integers(1, 6, 2))
    strides = tuple(int(s) for s in rng.integers(1, 4, 2))
    dilations = tuple(int(d) for d in rng.integers(1, 3, 2))
    kind = str(rng.choice(["SAME", "VALID", "explicit"]))
    pads = [tuple(int(p) for p in rng.integers(0, 3, 2)) for _ in range(2)]
    padding = [[0, 0], list(pads[0]), list(pads[1]), [0, 0]] if kind == "explicit" else kind
    span = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    size = tuple(s + int(rng.integers(0, 6)) for s in span)
    batch, channels = int(rng.integers(1, 4)), int(rng.choice(CHANNELS)) if channels is None else channels
    return kernel, strides, dilations, padding, (batch,) + size + (channels,)


def torch_pads(padding, shape, kernel, strides, dilations):
    """(left, right, top, bottom) for F.pad, TensorFlow's SAME split written out in tests/_oracle.py."""
    if padding == "VALID":
        return (0, 0, 0, 0)
    if padding == "SAME":
        top, bottom = tf_same_split(shape[1], kernel[0], strides[0], dilations[0])
        left, right = tf_same_split(shape[2], kernel[1], strides[1], dilations[1])
        return (left, right, top, bottom)
    return (padding[2][0], padding[2][1], padding[1][0], padding[1][1])


def torch_forward(x, w, bias, activation, strides, dilations, padding):
    """PyTorch's grouped convolution (one group per channel) of NHWC `x` by (kh, kw, C, 1) `w`, with autograd."""
    x_t = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).requires_grad_(True)
    w_t = torch.from_numpy(w.copy()).requires_grad_(True)
    padded = F.pad(x_t, torch_pads(padding, x.shape, w.shape[:2], strides, dilations))
    z = F.conv2d(padded, w_t[..., 0].permute(2, 0, 1).unsqueeze(1), stride=strides, dilation=dilations,
                 groups=x.shape[3])
    if bias is not None:
        z = z + torch.from_numpy(bias).reshape(1, -1, 1, 1)
    return x_t, w_t, (torch.relu(z) if activation == "relu" else z)


def both_paths(x, w, strides, padding, dilations, bias, activation, upstream, need_input_grad=True):
    """{path name: (y, grad_x, grad_w)} of the compiled path and of the grouped-conv reference."""
    results = {}
    for flag in (True, False):
        with compiled.use_compiled(flag):
            y, ctx = ops.depthwise_conv2d_forward(x, w, strides, padding, "NHWC", dilations, bias, activation)
            grad_z = upstream * (y > 0) if activation == "relu" else upstream
            results[ctx["path"]] = (y,) + ops.depthwise_conv2d_backward(grad_z, ctx, need_input_grad)
    return results


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("seed", range(40))
def test_compiled_path_matches_the_grouped_reference_and_torch(seed, dtype):
    rng = np.random.default_rng(7000 + seed)
    kernel, strides, dilations, padding, shape = random_case(rng, CHANNELS[seed % len(CHANNELS)])
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal(kernel + (shape[3], 1)).astype(dtype)
    bias = rng.standard_normal(shape[3]).astype(dtype) if rng.random() < 0.7 else None
    activation = str(rng.choice(["linear", "relu"]))
    x_t, w_t, y_t = torch_forward(x, w, bias, activation, strides, dilations, padding)
    upstream = rng.standard_normal(tuple(y_t.shape[i] for i in (0, 2, 3, 1))).astype(dtype)
    results = both_paths(x, w, strides, padding, dilations, bias, activation, upstream)
    assert set(results) == {"compiled_nhwc", "grouped_conv"}
    y_t.backward(torch.from_numpy(upstream.transpose(0, 3, 1, 2).copy()))
    torch_results = (y_t.detach().numpy().transpose(0, 2, 3, 1), x_t.grad.numpy().transpose(0, 2, 3, 1),
                     w_t.grad.numpy())
    for ours, reference, want in zip(results["compiled_nhwc"], results["grouped_conv"], torch_results):
        assert ours.shape == want.shape
        assert_matches(ours, reference, dtype)
        assert_matches(ours, np.ascontiguousarray(want), dtype)


@pytest.mark.parametrize("lanes", ["native", 8])
@pytest.mark.parametrize("path", [name for name, _, _ in depthwise_train._BACKWARD_PATHS])
@pytest.mark.parametrize("seed", range(12))
def test_each_backward_path_alone_matches_the_reference(path, seed, lanes, monkeypatch):
    """Each entry of the backward pass's ordered path list run alone on a random configuration it applies
    to (the SIMD filter gradient: float32, stride 1 along rows, the input gradient not scattered), at this
    machine's width and at AVX2's 8 lanes; some inputs hold a NaN, which must spread as in the reference."""
    if lanes == 8 and depthwise_fast.lanes():
        monkeypatch.setattr(depthwise_fast, "lanes", lambda: 8)
    rng = np.random.default_rng(7200 + seed)
    kernel, strides, dilations, padding, shape = random_case(rng)
    simd = path == "simd_float32"
    if simd and not depthwise_fast.lanes():
        pytest.skip("simd_float32 needs the compiled kernels with SIMD")
    strides = (strides[0], 1) if simd else strides
    dtype = "float32" if simd or seed % 2 else "float64"
    x = rng.standard_normal(shape).astype(dtype)
    if seed % 3 == 0:
        x[tuple(int(rng.integers(0, n)) for n in shape)] = np.nan
    w = rng.standard_normal(kernel + (shape[3], 1)).astype(dtype)
    y, ctx = ops.depthwise_conv2d_forward(x, w, strides, padding, "NHWC", dilations)
    need_input_grad = bool(rng.random() < 0.6)
    if simd and depthwise_train._transposed_pads(ctx) is None:
        need_input_grad = False                  # the SIMD path computes no scattered input gradient
    entry = next(e for e in depthwise_train._BACKWARD_PATHS if e[0] == path)
    assert entry[1](np.dtype(dtype), ctx["strides"], need_input_grad and depthwise_train._transposed_pads(ctx) is None)
    monkeypatch.setattr(depthwise_train, "_BACKWARD_PATHS", (entry,))
    upstream = rng.standard_normal(y.shape).astype(dtype)
    ours = ops.depthwise_conv2d_backward(upstream, ctx, need_input_grad)
    with compiled.use_compiled(False):
        _, ref_ctx = ops.depthwise_conv2d_forward(x, w, strides, padding, "NHWC", dilations)
        reference = ops.depthwise_conv2d_backward(upstream, ref_ctx, need_input_grad)
    assert (ours[0] is None) == (not need_input_grad)
    for got, want in zip(ours, reference):
        if want is not None:
            rtol = 1e-5 if dtype == "float32" else 1e-10
            scale = max(1.0, float(np.nanmax(np.abs(want), initial=0.0)))
            np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale)   # NaN where the reference has it


@pytest.mark.parametrize("seed", range(6))
def test_float64_gradients_match_finite_differences(seed):
    rng = np.random.default_rng(7100 + seed)
    kernel, strides, dilations, padding, _ = random_case(rng)
    span = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    x = rng.standard_normal((2, span[0] + 1, span[1] + 2, int(rng.choice([1, 3, 5])))).astype("float64")
    w = rng.standard_normal(kernel + (x.shape[3], 1))
    y, ctx = ops.depthwise_conv2d_forward(x, w, strides, padding, "NHWC", dilations)
    assert ctx["path"] == "compiled_nhwc"
    upstream = rng.standard_normal(y.shape)
    grad_x, grad_w = ops.depthwise_conv2d_backward(upstream, ctx)
    loss = lambda: float(np.sum(ops.depthwise_conv2d(x, w, strides, padding, "NHWC", dilations) * upstream))
    np.testing.assert_allclose(grad_x, numerical_gradient(loss, x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(grad_w, numerical_gradient(loss, w), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("channels", [7, 16, 17, 33])
@pytest.mark.parametrize("stride", [1, 2])
def test_mobilenet_3x3_at_avx2_width_matches_the_reference(channels, stride, monkeypatch):
    """The forward SIMD tiles at AVX2's 8 lanes (where this machine has 16) and the backward beside them."""
    if depthwise_fast.lanes():
        monkeypatch.setattr(depthwise_fast, "lanes", lambda: 8)
    rng = np.random.default_rng(channels * 10 + stride)
    x = rng.standard_normal((3, 11, 13, channels)).astype("float32")
    w = rng.standard_normal((3, 3, channels, 1)).astype("float32")
    bias = rng.standard_normal(channels).astype("float32")
    shape = (3, -(-11 // stride), -(-13 // stride), channels)
    results = both_paths(x, w, stride, "SAME", None, bias, "relu", rng.standard_normal(shape).astype("float32"))
    for ours, reference in zip(results["compiled_nhwc"], results["grouped_conv"]):
        assert_matches(ours, reference, "float32")


def test_kernels_compiled_for_avx2_match_the_reference(tmp_path):
    """The whole path compiled for a Haswell target (256-bit vectors, `simd.vector_bits()` 256) in a fresh
    process with its own numba cache, against the grouped-conv reference there."""
    script = textwrap.dedent("""
        import numpy as np
        from convscope import ops
        from convscope.ops import compiled, depthwise_fast
        assert depthwise_fast.lanes() == 8, depthwise_fast.lanes()
        rng = np.random.default_rng(3)
        for channels, stride, kernel in ((17, 1, 3), (33, 2, 3), (8, 1, 5), (3, 3, 2)):
            x = rng.standard_normal((2, 10, 12, channels)).astype("float32")
            w = rng.standard_normal((kernel, kernel, channels, 1)).astype("float32")
            outs = []
            for flag in (True, False):
                with compiled.use_compiled(flag):
                    y, ctx = ops.depthwise_conv2d_forward(x, w, stride, "SAME", "NHWC", None, None, "relu")
                    g = np.cos(np.arange(y.size, dtype="float32")).reshape(y.shape) * (y > 0)
                    outs.append((ctx["path"], y) + ops.depthwise_conv2d_backward(g, ctx))
            assert outs[0][0] == "compiled_nhwc" and outs[1][0] == "grouped_conv"
            for ours, reference in zip(outs[0][1:], outs[1][1:]):
                scale = max(1.0, float(np.abs(reference).max()))
                np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-5 * scale)
        print("ok")
    """)
    features = "+sse,+sse2,+sse3,+ssse3,+sse4.1,+sse4.2,+popcnt,+avx,+avx2,+fma,+f16c,+bmi,+bmi2,+lzcnt,+movbe"
    env = dict(os.environ, NUMBA_CPU_NAME="haswell", NUMBA_CPU_FEATURES=features,
               NUMBA_CACHE_DIR=str(tmp_path), OMP_NUM_THREADS="2")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


def test_context_keeps_the_input_itself_and_no_columns():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 9, 9, 17)).astype("float32")
    w = rng.standard_normal((3, 3, 17, 1)).astype("float32")
    _, ctx = ops.depthwise_conv2d_forward(x, w, 1, "SAME")
    assert ctx["path"] == "compiled_nhwc" and ctx["x"] is x
    arrays = [value for value in ctx.values() if isinstance(value, np.ndarray)]
    assert sum(value.nbytes for value in arrays) == x.nbytes + w.nbytes


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("stride", [1, 2])
def test_filter_gradient_alone_and_reproducible_over_thread_slices(stride, dtype, monkeypatch):
    """need_input_grad=False gives None and the same filter gradient; the backward split into one slice of
    images per thread (3 forced) gives the same bits run after run, within rounding of one slice's."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 12, 10, 33)).astype(dtype)
    w = rng.standard_normal((3, 3, 33, 1)).astype(dtype)
    y, ctx = ops.depthwise_conv2d_forward(x, w, stride, "SAME")
    g = rng.standard_normal(y.shape).astype(dtype)
    one_slice = ops.depthwise_conv2d_backward(g, ctx)
    monkeypatch.setattr(depthwise_train, "SMALL_WORK", 0)
    monkeypatch.setattr(parallel, "worker_count", lambda: 3)
    assert len(parallel.on_slices(len(x), 1, lambda images: images, min_size=0)) == 3
    grad_x, grad_w = ops.depthwise_conv2d_backward(g, ctx)
    none, grad_w_alone = ops.depthwise_conv2d_backward(g, ctx, need_input_grad=False)
    assert none is None
    np.testing.assert_array_equal(grad_w_alone, grad_w)
    for _ in range(3):
        again_x, again_w = ops.depthwise_conv2d_backward(g, ctx)
        np.testing.assert_array_equal(again_x, grad_x)
        np.testing.assert_array_equal(again_w, grad_w)
    np.testing.assert_array_equal(grad_x, one_slice[0])        # each input pixel summed by one thread
    assert_matches(grad_w, one_slice[1], dtype)


def test_empty_batch_and_mixed_dtypes():
    """No images: empty output and gradients, zero filter gradient; float32 input with a float64 filter
    computes in float32, as the reference does."""
    x = np.zeros((0, 5, 5, 8), "float32")
    w = np.ones((3, 3, 8, 1), "float32")
    y, ctx = ops.depthwise_conv2d_forward(x, w, 1, "SAME")
    grad_x, grad_w = ops.depthwise_conv2d_backward(np.zeros(y.shape, "float32"), ctx)
    assert y.shape == (0, 5, 5, 8) and grad_x.shape == x.shape
    np.testing.assert_array_equal(grad_w, np.zeros_like(w))
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 6, 6, 3)).astype("float32")
    w = rng.standard_normal((2, 2, 3, 1))
    results = both_paths(x, w, 1, "VALID", None, None, "linear", rng.standard_normal((2, 5, 5, 3)))
    for ours, reference in zip(results["compiled_nhwc"], results["grouped_conv"]):
        assert ours.dtype == reference.dtype == np.float32
        assert_matches(ours, reference, "float32")


def test_other_cases_take_the_grouped_reference_path():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 6, 6, 4)).astype("float32")
    cases = [(x, np.ones((3, 3, 4, 2), "float32"), "NHWC"),                 # multiplier 2
             (x.transpose(0, 3, 1, 2).copy(), np.ones((3, 3, 4, 1), "float32"), "NCHW"),
             (x.astype("float16"), np.ones((3, 3, 4, 1), "float32"), "NHWC"),
             ((x * 10).astype("int32"), np.ones((3, 3, 4, 1), "int32"), "NHWC")]
    for inputs, w, data_format in cases:
        assert ops.depthwise_conv2d_forward(inputs, w, 1, "SAME", data_format)[1]["path"] == "grouped_conv"
    with compiled.use_compiled(False):
        assert ops.depthwise_conv2d_forward(x, np.ones((3, 3, 4, 1), "float32"), 1, "SAME")[1]["path"] \
            == "grouped_conv"


@pytest.mark.parametrize("use_compiled", [True, False])
def test_bad_arguments_name_the_op_the_argument_and_what_was_given(use_compiled):
    x = np.ones((2, 6, 6, 4), "float32")
    with compiled.use_compiled(use_compiled):
        y, ctx = ops.depthwise_conv2d_forward(x, np.ones((3, 3, 4, 1), "float32"), 1, "SAME")
        with pytest.raises(ValueError, match=r"depthwise_conv2d_backward: argument `grad_output` must have the "
                                             r"forward output's shape \(2, 6, 6, 4\), got \(2, 6, 5, 4\)"):
            ops.depthwise_conv2d_backward(np.ones((2, 6, 5, 4), "float32"), ctx)
        with pytest.raises(ValueError, match=r"depthwise_conv2d_backward: argument `grad_output` must be a "
                                             r"rank-4 array, got rank 2"):
            ops.depthwise_conv2d_backward(np.ones((6, 4), "float32"), ctx)
        with pytest.raises(ValueError, match=r"depthwise_conv2d: argument `filter` must have shape \[kh, kw, "
                                             r"in_channels, channel_multiplier\] with the input's 4 channels"):
            ops.depthwise_conv2d_forward(x, np.ones((3, 3, 5, 1), "float32"), 1, "SAME")
        with pytest.raises(ValueError, match=r"conv2d: argument `bias` must have shape \(4,\) \(one per "
                                             r"filter\), got \(3,\)"):
            ops.depthwise_conv2d_forward(x, np.ones((3, 3, 4, 1), "float32"), 1, "SAME", bias=np.ones(3))
        with pytest.raises(ValueError, match=r"argument `padding` must be 'SAME', 'VALID' or explicit"):
            ops.depthwise_conv2d_forward(x, np.ones((3, 3, 4, 1), "float32"), 1, "FULL")


def _mobile_block(dtype):
    return cs.Sequential([cs.Input((10, 10, 7), dtype=dtype),
                          L.DepthwiseConv2D(3, padding="same", activation="relu", bias_initializer="random_normal",
                                            dtype=dtype),
                          L.DepthwiseConv2D((3, 2), strides=2, dilation_rate=1, dtype=dtype),
                          L.SeparableConv2D(5, 3, padding="same", dilation_rate=(2, 1), activation="relu",
                                            dtype=dtype),
                          L.GlobalAveragePooling2D(dtype=dtype), L.Dense(3, dtype=dtype)])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_layers_train_the_same_on_both_paths(dtype, monkeypatch):
    """Two SGD steps of DepthwiseConv2D (ReLU and bias; stride 2) and SeparableConv2D layers through
    `train_on_batch`: the compiled path's losses and weight updates equal the grouped reference's."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((4, 10, 10, 7)).astype(dtype)
    y = rng.standard_normal((4, 3)).astype(dtype)
    taken = []
    monkeypatch.setattr(depthwise, "_PATHS", tuple(
        (name, applies, forward, lambda *args, name=name, backward=backward: taken.append(name) or backward(*args))
        for name, applies, forward, backward in depthwise._PATHS))
    runs = []
    for flag in (True, False):
        cs.backend.clear_session()
        cs.utils.set_random_seed(0)
        model = _mobile_block(dtype)
        model.compile(cs.optimizers.SGD(0.1), "mse")
        initial = model.get_weights()
        with compiled.use_compiled(flag):
            losses = [float(model.train_on_batch(x, y)) for _ in range(2)]
        runs.append((losses, initial, [after - before for after, before in zip(model.get_weights(), initial)]))
    assert taken == ["compiled_nhwc"] * 6 + ["grouped_conv"] * 6     # 3 depthwise convolutions, 2 steps
    (losses, initial, steps), (ref_losses, ref_initial, ref_steps) = runs
    for got, want in zip(initial, ref_initial):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5 if dtype == "float32" else 1e-12)
    rtol = 1e-5 if dtype == "float32" else 1e-10
    for got, want in zip(steps, ref_steps):       # the updates themselves, to their own scale
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * float(np.abs(want).max()))
