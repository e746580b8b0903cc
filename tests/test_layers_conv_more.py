"""DepthwiseConv2D, SeparableConv2D, Conv2DTranspose and their ops against PyTorch 2.13 (forward, input and
weight gradients over hundreds of random configurations), float64 finite differences, and Keras 3.15.1
(configs, defaults, output shapes and refusals, outputs with the same weights, a functional model both ways)."""

import json
import warnings

import numpy as np
import pytest

import convscope as cs
from convscope import layers as L
from convscope import ops
from convscope.ops import compiled
from convscope.layers import _normalize_config

from _calls import backward, forward
from _gradcheck import numerical_gradient
from _oracle import assert_matches, comparable_config, tf_same_split

torch = pytest.importorskip("torch")
F = torch.nn.functional
FORMATS = ("NHWC", "NCHW")
LAYER_FORMAT = {"NHWC": "channels_last", "NCHW": "channels_first"}


# -- references written out here, independently of ops/shapes.py -------------------------------------

def keras_transpose_pads(k, s, d, padding, output_padding):
    """Keras 3's (left, right) padding of the stride-dilated input of a transposed convolution
    (keras/src/backend/common/backend_utils.py, the JAX rule its torch backend crops to), copied out."""
    k = (k - 1) * d + 1
    if padding == "valid":
        extra = max(k, s) - k if output_padding is None else output_padding
        return k - 1, k - 1 + extra
    pad_len = s + k - 2 if output_padding is None else k + k % 2 - 2 + output_padding
    left = min(pad_len // 2 + pad_len % 2, k - 1)
    return left, pad_len - left


def nchw_tensor(x_nhwc):
    """A standard-contiguous NCHW tensor: with one channel, NumPy's transposed strides would read as channels_last
    too, and PyTorch 2.13's float32 CPU conv2d then gets some strided windows wrong (seen: kernel (5, 4), stride
    (1, 2))."""
    return torch.from_numpy(x_nhwc.transpose(0, 3, 1, 2).copy())


def to_format(x_nhwc, data_format):
    return x_nhwc if data_format == "NHWC" else np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))


def to_nhwc(x, data_format):
    return x if data_format == "NHWC" else x.transpose(0, 2, 3, 1)


def torch_same_pad(x_nchw, kernel, strides, dilations, padding):
    """`x_nchw` padded as TensorFlow pads it for this window ("valid": unchanged)."""
    if padding == "valid":
        return x_nchw
    top, bottom = tf_same_split(x_nchw.shape[2], kernel[0], strides[0], dilations[0])
    left, right = tf_same_split(x_nchw.shape[3], kernel[1], strides[1], dilations[1])
    return F.pad(x_nchw, (left, right, top, bottom))


def torch_depthwise(x_nchw, kernel, strides, dilations, padding):
    """PyTorch's grouped convolution of our depthwise kernel (kh, kw, in, multiplier): weights (in*m, 1, kh, kw)."""
    kh, kw, channels, multiplier = kernel.shape
    weight = kernel.reshape(kh, kw, channels * multiplier).permute(2, 0, 1).unsqueeze(1)
    x_nchw = torch_same_pad(x_nchw, (kh, kw), strides, dilations, padding)
    return F.conv2d(x_nchw, weight, stride=strides, dilation=dilations, groups=channels)


def torch_transpose(x_nchw, kernel, strides, dilations, padding, output_padding):
    """PyTorch's full transposed convolution of our kernel (kh, kw, out, in), cut (negative F.pad) or
    zero-extended to Keras' window."""
    full = F.conv_transpose2d(x_nchw, kernel.permute(3, 2, 0, 1), stride=strides, dilation=dilations)
    pads = []
    for axis in (1, 0):                      # F.pad lists the last axis first
        extra = None if output_padding is None else output_padding[axis]
        left, right = keras_transpose_pads(kernel.shape[axis], strides[axis], dilations[axis], padding, extra)
        span = (kernel.shape[axis] - 1) * dilations[axis] + 1
        pads += [left - (span - 1), right - (span - 1)]
    return F.pad(full, pads)


def random_window(rng, allow_stride_with_dilation=True):
    """kernel, strides, dilations, padding: kernel sizes 1-5, strides 1-3, dilations 1-3."""
    kernel = tuple(int(k) for k in rng.integers(1, 6, 2))
    strides = tuple(int(s) for s in rng.integers(1, 4, 2))
    dilations = tuple(int(d) for d in rng.integers(1, 4, 2)) if rng.random() < 0.4 else (1, 1)
    if not allow_stride_with_dilation and max(dilations) > 1:
        strides = (1, 1)
    return kernel, strides, dilations, str(rng.choice(["same", "valid"]))


def random_image(rng, kernel, dilations, channels, dtype, data_format, batch=None):
    """A batch large enough for the dilated kernel ('valid' fits), in `data_format`, and its NCHW torch twin."""
    size = [(k - 1) * d + 1 + int(rng.integers(0, 5)) for k, d in zip(kernel, dilations)]
    x = rng.standard_normal((batch or int(rng.integers(1, 4)), size[0], size[1], channels)).astype(dtype)
    return to_format(x, data_format), nchw_tensor(x)


def _grads_match(ours_nhwc_or_weight, tensor, dtype, nchw=False):
    reference = tensor.grad.numpy()
    if nchw:
        reference = reference.transpose(0, 2, 3, 1)
    assert_matches(np.ascontiguousarray(ours_nhwc_or_weight), reference, dtype)


# -- the ops against PyTorch, hundreds of random configurations --------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("seed", range(40))
def test_depthwise_op_matches_torch(seed, dtype, kernel_path):
    rng = np.random.default_rng(seed)
    kernel, strides, dilations, padding = random_window(rng)
    data_format, channels, multiplier = FORMATS[seed % 2], int(rng.integers(1, 5)), int(rng.integers(1, 4))
    x, x_t = random_image(rng, kernel, dilations, channels, dtype, data_format)
    w = rng.standard_normal(kernel + (channels, multiplier)).astype(dtype)
    y, ctx = ops.depthwise_conv2d_forward(x, w, strides, padding.upper(), data_format, dilations)
    x_t.requires_grad_(True)
    w_t = torch.from_numpy(w).requires_grad_(True)
    y_t = torch_depthwise(x_t, w_t, strides, dilations, padding)
    assert_matches(to_nhwc(y, data_format), y_t.detach().numpy().transpose(0, 2, 3, 1), dtype)
    np.testing.assert_array_equal(ops.depthwise_conv2d(x, w, strides, padding, data_format, dilations), y)
    upstream = rng.standard_normal(y_t.shape).astype(dtype)
    y_t.backward(torch.from_numpy(upstream))
    grad_x, grad_w = ops.depthwise_conv2d_backward(to_format(upstream.transpose(0, 2, 3, 1), data_format), ctx)
    _grads_match(to_nhwc(grad_x, data_format), x_t, dtype, nchw=True)
    _grads_match(grad_w, w_t, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("seed", range(30))
def test_separable_op_matches_torch(seed, dtype, kernel_path):
    rng = np.random.default_rng(100 + seed)
    kernel, strides, dilations, padding = random_window(rng)
    data_format, channels, multiplier = FORMATS[seed % 2], int(rng.integers(1, 5)), int(rng.integers(1, 4))
    filters = int(rng.integers(1, 6))
    x, x_t = random_image(rng, kernel, dilations, channels, dtype, data_format)
    dw = rng.standard_normal(kernel + (channels, multiplier)).astype(dtype)
    pw = rng.standard_normal((1, 1, channels * multiplier, filters)).astype(dtype)
    bias = rng.standard_normal(filters).astype(dtype)
    y, ctx = ops.separable_conv2d_forward(x, dw, pw, strides, padding, data_format, dilations, bias=bias)
    x_t.requires_grad_(True)
    dw_t, pw_t = torch.from_numpy(dw).requires_grad_(True), torch.from_numpy(pw).requires_grad_(True)
    middle = torch_depthwise(x_t, dw_t, strides, dilations, padding)
    y_t = F.conv2d(middle, pw_t.permute(3, 2, 0, 1), torch.from_numpy(bias))
    assert_matches(to_nhwc(y, data_format), y_t.detach().numpy().transpose(0, 2, 3, 1), dtype)
    upstream = rng.standard_normal(y_t.shape).astype(dtype)
    y_t.backward(torch.from_numpy(upstream))
    grad_x, grad_dw, grad_pw = ops.separable_conv2d_backward(to_format(upstream.transpose(0, 2, 3, 1), data_format),
                                                             ctx)
    _grads_match(to_nhwc(grad_x, data_format), x_t, dtype, nchw=True)
    _grads_match(grad_dw, dw_t, dtype)
    _grads_match(grad_pw, pw_t, dtype)


def random_transpose_case(rng):
    """kernel, strides, dilations, padding, output_padding (None or below the stride) as Keras allows."""
    kernel, strides, dilations, padding = random_window(rng, allow_stride_with_dilation=False)
    output_padding = None
    if rng.random() < 0.6:
        output_padding = tuple(int(rng.integers(0, s)) for s in strides)
    return kernel, strides, dilations, padding, output_padding


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("seed", range(60))
def test_conv2d_transpose_op_matches_torch(seed, dtype, kernel_path):
    rng = np.random.default_rng(200 + seed)
    kernel, strides, dilations, padding, output_padding = random_transpose_case(rng)
    data_format, channels, filters = FORMATS[seed % 2], int(rng.integers(1, 5)), int(rng.integers(1, 5))
    x = rng.standard_normal((int(rng.integers(1, 4)),) + tuple(int(n) for n in rng.integers(1, 6, 2))
                            + (channels,)).astype(dtype)
    w = rng.standard_normal(kernel + (filters, channels)).astype(dtype)
    x_t = nchw_tensor(x).requires_grad_(True)
    w_t = torch.from_numpy(w).requires_grad_(True)
    y_t = torch_transpose(x_t, w_t, strides, dilations, padding, output_padding)
    if min(y_t.shape[2:]) < 1:           # Keras' rule gives no output (a kernel of 2, "same", n=1, op=0)
        with pytest.raises(ValueError, match="conv2d_transpose: the output would have"):
            ops.conv2d_transpose(to_format(x, data_format), w, None, strides, padding, data_format, dilations,
                                 output_padding)
        return
    y, ctx = ops.conv2d_transpose_forward(to_format(x, data_format), w, None, strides, padding, data_format,
                                          dilations, output_padding)
    assert_matches(to_nhwc(y, data_format), y_t.detach().numpy().transpose(0, 2, 3, 1), dtype)
    upstream = rng.standard_normal(y_t.shape).astype(dtype)
    y_t.backward(torch.from_numpy(upstream))
    grad_x, grad_w = ops.conv2d_transpose_backward(to_format(upstream.transpose(0, 2, 3, 1), data_format), ctx)
    _grads_match(to_nhwc(grad_x, data_format), x_t, dtype, nchw=True)
    _grads_match(grad_w, w_t, dtype)
    assert ops.conv2d_transpose_backward(to_format(upstream.transpose(0, 2, 3, 1), data_format), ctx,
                                         need_input_grad=False)[0] is None


@pytest.mark.parametrize("path", ["one_product", "per_tap"])
@pytest.mark.parametrize("seed", range(12))
def test_each_conv2d_transpose_forward_path_alone_matches_torch(seed, path, monkeypatch):
    """Each entry of conv_transpose._FORWARD_PATHS alone on a configuration it applies to: one product for
    non-overlapping taps (kernel = stride, U-Net's 2x2 up-convolutions; with padding and output_padding),
    per-tap products for any window."""
    from convscope.ops import transposed_conv as conv_transpose
    monkeypatch.setattr(conv_transpose, "_FORWARD_PATHS",
                        tuple(e for e in conv_transpose._FORWARD_PATHS if e[0] == path))
    rng = np.random.default_rng(900 + seed)
    dtype = ("float32", "float64")[seed % 2]
    if path == "one_product":
        kernel = tuple(int(k) for k in rng.integers(1, 4, 2))
        strides, dilations = kernel, (1, 1)
    else:
        kernel, strides, dilations = (3, 2), (2, 1), (1, 2)
    padding = ("same", "valid")[seed % 3 == 0]
    output_padding = None if seed % 4 else tuple(int(rng.integers(0, s)) for s in strides)
    x = rng.standard_normal((int(rng.integers(1, 4)), int(rng.integers(1, 7)), int(rng.integers(1, 7)),
                             int(rng.integers(1, 9)))).astype(dtype)
    w = rng.standard_normal(kernel + (int(rng.integers(1, 9)), x.shape[3])).astype(dtype)
    y_t = torch_transpose(torch.from_numpy(x.transpose(0, 3, 1, 2)), torch.from_numpy(w), strides, dilations,
                          padding, output_padding)
    if min(y_t.shape[2:]) < 1:
        pytest.skip("Keras' rule gives no output here")
    y = ops.conv2d_transpose(x, w, None, strides, padding, "NHWC", dilations, output_padding)
    assert_matches(y, y_t.numpy().transpose(0, 2, 3, 1), dtype)


@pytest.mark.parametrize("seed", range(12))
def test_the_finished_one_product_has_the_bits_of_the_product_then_the_epilogue(seed, monkeypatch):
    """Non-overlapping taps whose output is exactly the interleaved product: bias and ReLU applied in the
    interleaving copy ("one_product_finished"), the bits of "one_product" followed by
    `bias_activation_forward`, and PyTorch's numbers; with an output_padding that extends the output it
    declines and "one_product" runs."""
    from convscope.ops import transposed_conv as conv_transpose
    rng = np.random.default_rng(1200 + seed)
    dtype = ("float32", "float64")[seed % 2]
    kernel = tuple(int(k) for k in rng.integers(1, 4, 2))
    padding, activation = ("same", "valid")[seed % 3 == 0], ("relu", "linear")[seed % 4 == 3 or seed % 6 == 5]
    x = rng.standard_normal((int(rng.integers(1, 4)), int(rng.integers(1, 9)), int(rng.integers(1, 9)),
                             int(rng.integers(1, 20)))).astype(dtype)
    x[rng.random(x.shape) < 0.02] = np.nan
    w = rng.standard_normal(kernel + (int(rng.integers(1, 40)), x.shape[3])).astype(dtype)
    bias = None if seed % 6 == 5 else rng.standard_normal(w.shape[2]).astype(dtype)   # linear, no bias: a copy
    extended = seed % 5 == 4 and max(kernel) > 1
    output_padding = tuple(k - 1 for k in kernel) if extended else None
    ran = []
    monkeypatch.setattr(conv_transpose, "_FORWARD_PATHS", tuple(
        (name, applies, lambda *a, name=name, run=run: ran.append(name) or run(*a))
        for name, applies, run in conv_transpose._FORWARD_PATHS))
    args = (x, w, None, kernel, padding, "NHWC", None, output_padding, bias, activation)
    y = ops.conv2d_transpose(*args)
    finished = compiled.active() and not (extended and padding == "valid")
    assert ran[-1] == ("one_product_finished" if finished else "one_product")
    monkeypatch.setattr(conv_transpose, "_FORWARD_PATHS", conv_transpose._FORWARD_PATHS[1:])
    expected = ops.conv2d_transpose(*args)
    assert y.tobytes() == expected.tobytes()
    y_t = torch_transpose(torch.from_numpy(x.transpose(0, 3, 1, 2)), torch.from_numpy(w), kernel, (1, 1),
                          padding, output_padding)
    y_t = y_t if bias is None else y_t + torch.from_numpy(bias)[:, None, None]
    y_t = torch.relu(y_t) if activation == "relu" else y_t
    assert_matches(y, y_t.numpy().transpose(0, 2, 3, 1), dtype)


@pytest.mark.parametrize("seed", range(30))
def test_conv2d_transpose_with_output_shape_is_the_input_gradient_of_conv2d(seed):
    """tf.nn's `output_shape`: the output is the gradient w.r.t. the input of the convolution (TensorFlow's
    padding of that size) that the input is the output of; PyTorch's autograd of F.conv2d is the oracle,
    twice differentiated for the backward pass."""
    rng = np.random.default_rng(300 + seed)
    kernel, strides, dilations, padding = random_window(rng, allow_stride_with_dilation=False)
    size = [(k - 1) * d + 1 + int(rng.integers(0, 6)) for k, d in zip(kernel, dilations)]
    conv_out = [-(-n // s) if padding == "same" else (n - (k - 1) * d - 1) // s + 1
                for n, k, s, d in zip(size, kernel, strides, dilations)]
    x = rng.standard_normal((2, conv_out[0], conv_out[1], 3))
    w = rng.standard_normal(kernel + (2, 3))
    y, ctx = ops.conv2d_transpose_forward(x, w, [2] + size + [2], strides, padding.upper(), "NHWC", dilations)
    x_t, w_t = torch.from_numpy(x).requires_grad_(True), torch.from_numpy(w).requires_grad_(True)
    z = torch.zeros((2, 2, size[0], size[1]), dtype=torch.float64, requires_grad=True)
    conv = F.conv2d(torch_same_pad(z, kernel, strides, dilations, padding), w_t.permute(3, 2, 0, 1),
                    stride=strides, dilation=dilations)
    y_t, = torch.autograd.grad(conv, z, grad_outputs=x_t.permute(0, 3, 1, 2), create_graph=True)
    assert_matches(y, y_t.detach().numpy().transpose(0, 2, 3, 1), "float64")
    upstream = rng.standard_normal(y_t.shape)
    y_t.backward(torch.from_numpy(upstream))
    grad_x, grad_w = ops.conv2d_transpose_backward(upstream.transpose(0, 2, 3, 1), ctx)
    _grads_match(grad_x, x_t, "float64")
    _grads_match(grad_w, w_t, "float64")


def test_op_argument_errors_name_the_op_and_what_was_expected():
    x, w = np.zeros((1, 4, 4, 3)), np.zeros((3, 3, 2, 3))
    with pytest.raises(ValueError, match=r"conv2d_transpose: argument `output_padding` must be non-negative and "
                                         r"below the stride.*output_padding=2 with strides=\(2, 2\)"):
        ops.conv2d_transpose(x, w, None, 2, "SAME", output_padding=2)
    with pytest.raises(ValueError, match=r"argument `filters` must have shape \[kh, kw, out_channels, in_channels\]"
                                         r" with the input's 3 channels last, got \(3, 3, 3, 2\)"):
        ops.conv2d_transpose(x, np.zeros((3, 3, 3, 2)), None, 1, "SAME")
    with pytest.raises(ValueError, match=r"`output_shape` asks for 9 cells, but a convolution .* gives 5, "
                                         r"not the input's 4"):
        ops.conv2d_transpose(x, w, [1, 9, 8, 2], 2, "SAME")
    with pytest.raises(ValueError, match="give `output_shape` or `output_padding`, not both"):
        ops.conv2d_transpose(x, w, [8, 8], 2, "SAME", output_padding=1)
    with pytest.raises(ValueError, match=r"depthwise_conv2d: argument `filter` must have shape \[kh, kw, "
                                         r"in_channels, channel_multiplier\] with the input's 3 channels"):
        ops.depthwise_conv2d(x, np.zeros((3, 3, 2, 1)), 1, "SAME")
    with pytest.raises(ValueError, match=r"separable_conv2d: argument `pointwise_filter` must have shape "
                                         r"\[1, 1, in_channels \* channel_multiplier \(6\), out_channels\]"):
        ops.separable_conv2d(x, np.zeros((3, 3, 3, 2)), np.zeros((1, 1, 3, 4)), 1, "SAME")


# -- the layers against PyTorch: bias, activation, both formats, every weight's gradient ---------------

TORCH_ACTIVATIONS = {"linear": lambda t: t, "relu": F.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}


def random_layer(rng, kind, data_format, dtype):
    """(layer, its torch function of (x_nchw, weights as tensors in `layer.weights` order))."""
    activation = str(rng.choice(list(TORCH_ACTIVATIONS)))
    use_bias = bool(rng.random() < 0.8)
    common = dict(data_format=data_format, dtype=dtype, activation=activation, use_bias=use_bias,
                  bias_initializer="random_normal")
    if kind == "transpose":
        kernel, strides, dilations, padding, output_padding = random_transpose_case(rng)
        layer = L.Conv2DTranspose(int(rng.integers(1, 5)), kernel, strides, padding, output_padding,
                                  dilation_rate=dilations, **common)
        body = lambda x, w: torch_transpose(x, w[0], strides, dilations, padding, output_padding)
    else:
        kernel, strides, dilations, padding = random_window(rng)
        multiplier = int(rng.integers(1, 4))
        if kind == "depthwise":
            layer = L.DepthwiseConv2D(kernel, strides, padding, multiplier, dilation_rate=dilations, **common)
            body = lambda x, w: torch_depthwise(x, w[0], strides, dilations, padding)
        else:
            layer = L.SeparableConv2D(int(rng.integers(1, 5)), kernel, strides, padding, dilation_rate=dilations,
                                      depth_multiplier=multiplier, **common)
            body = lambda x, w: F.conv2d(torch_depthwise(x, w[0], strides, dilations, padding),
                                         w[1].permute(3, 2, 0, 1))
    n_kernels = 2 if kind == "separable" else 1

    def run(x_nchw, weights):
        z = body(x_nchw, weights)
        if use_bias:
            z = z + weights[n_kernels].reshape(1, -1, 1, 1)
        return TORCH_ACTIVATIONS[activation](z)
    return layer, run, kernel, dilations


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("seed", range(25))
@pytest.mark.parametrize("kind", ["depthwise", "separable", "transpose"])
def test_layer_forward_and_backward_match_torch(kind, seed, dtype):
    rng = np.random.default_rng(400 + seed)
    data_format = LAYER_FORMAT[FORMATS[seed % 2]]
    layer, run, kernel, dilations = random_layer(rng, kind, data_format, dtype)
    x, x_t = random_image(rng, kernel, dilations, int(rng.integers(1, 5)), dtype, FORMATS[seed % 2])
    y, ctx = forward(layer, x)
    np.testing.assert_array_equal(layer(x), y)
    x_t.requires_grad_(True)
    weights = [torch.from_numpy(v.numpy()).requires_grad_(True) for v in layer.weights]
    y_t = run(x_t, weights)
    assert_matches(to_nhwc(y, FORMATS[seed % 2]), y_t.detach().numpy().transpose(0, 2, 3, 1), dtype)
    upstream = rng.standard_normal(y_t.shape).astype(dtype)
    y_t.backward(torch.from_numpy(upstream))
    grad_x, grads = backward(layer, ctx, to_format(upstream.transpose(0, 2, 3, 1), FORMATS[seed % 2]))
    _grads_match(to_nhwc(grad_x, FORMATS[seed % 2]), x_t, dtype, nchw=True)
    for variable, tensor in zip(layer.weights, weights):
        _grads_match(grads[variable.name], tensor, dtype)


@pytest.mark.parametrize("kind", ["depthwise", "separable", "transpose"])
def test_float64_finite_differences(kind):
    """Input and weight gradients of a tanh layer against central differences of sum(y * upstream)."""
    rng = np.random.default_rng(7)
    layer = {"depthwise": lambda: L.DepthwiseConv2D(3, 2, "same", 2, activation="tanh", dtype="float64",
                                                    bias_initializer="random_normal"),
             "separable": lambda: L.SeparableConv2D(3, (2, 3), padding="same", dilation_rate=(2, 1),
                                                    depth_multiplier=2, activation="tanh", dtype="float64",
                                                    bias_initializer="random_normal"),
             "transpose": lambda: L.Conv2DTranspose(2, 3, 2, "same", output_padding=(0, 1), activation="tanh",
                                                    dtype="float64", bias_initializer="random_normal")}[kind]()
    x = rng.standard_normal((2, 5, 4, 2))
    y, ctx = forward(layer, x)
    upstream = rng.standard_normal(y.shape)
    grad_x, grads = backward(layer, ctx, upstream)
    loss = lambda: float((layer(x) * upstream).sum())
    np.testing.assert_allclose(grad_x, numerical_gradient(loss, x), rtol=1e-6, atol=1e-8)
    for variable in layer.weights:
        np.testing.assert_allclose(grads[variable.name], numerical_gradient(loss, variable.value),
                                   rtol=1e-6, atol=1e-8)


def test_frozen_layer_and_first_layer_skip_gradients():
    layer = L.SeparableConv2D(3, 3, trainable=False)
    x = np.random.default_rng(0).standard_normal((1, 5, 5, 2)).astype("float32")
    y, ctx = forward(layer, x)
    grad_x, pairs = layer.backward(ctx, np.ones_like(y))
    assert pairs == [] and grad_x.shape == x.shape
    transpose = L.Conv2DTranspose(2, 3)
    y, ctx = forward(transpose, x)
    grad_x, pairs = transpose.backward(ctx, np.ones_like(y), need_input_grad=False)
    assert grad_x is None and [v.name for v, _ in pairs] == [v.name for v in transpose.weights]
    with cs.backend.no_backward():
        assert transpose.forward(x)[1] is None


# -- weights, describe() and constructor validation ------------------------------------------------

def test_weight_layouts_names_and_describe():
    depthwise, separable, transpose = (L.DepthwiseConv2D(3, depth_multiplier=2), L.SeparableConv2D(5, (3, 2)),
                                       L.Conv2DTranspose(4, (2, 3), strides=2, output_padding=1))
    for layer in (depthwise, separable, transpose):
        layer.build_from_shape((None, 8, 8, 3))
    assert [(v.name, v.shape) for v in depthwise.weights] == [
        ("depthwise_conv2d/kernel", (3, 3, 3, 2)), ("depthwise_conv2d/bias", (6,))]
    assert [(v.name, v.shape) for v in separable.weights] == [
        ("separable_conv2d/depthwise_kernel", (3, 2, 3, 1)), ("separable_conv2d/pointwise_kernel", (1, 1, 3, 5)),
        ("separable_conv2d/bias", (5,))]
    assert [(v.name, v.shape) for v in transpose.weights] == [
        ("conv2d_transpose/kernel", (2, 3, 4, 3)), ("conv2d_transpose/bias", (4,))]
    spec = depthwise.describe()
    assert (spec.kind, spec.groups, spec.window.size, spec.activation) == ("depthwise_conv2d", 3, (3, 3), "linear")
    assert set(separable.describe().weights) == {"depthwise_kernel", "pointwise_kernel", "bias"}
    spec = transpose.describe()
    assert (spec.kind, spec.window.strides, spec.weights["kernel"]) == ("conv2d_transpose", (2, 2), transpose.kernel)


@pytest.mark.parametrize("make,error,pattern", [
    (lambda: L.DepthwiseConv2D(3, depth_multiplier=0), ValueError,
     r"DepthwiseConv2D 'depthwise_conv2d': argument `depth_multiplier` must be a positive int, got 0"),
    (lambda: L.DepthwiseConv2D((3, 0)), ValueError, r"argument `kernel_size` must be positive, got \(3, 0\)"),
    (lambda: L.DepthwiseConv2D(3, depthwise_initializer="nope"), ValueError, r"`depthwise_initializer`"),
    (lambda: L.DepthwiseConv2D(3, depthwise_regularizer="nope"), ValueError, r"`depthwise_regularizer`"),
    (lambda: L.SeparableConv2D(0, 3), ValueError,
     r"SeparableConv2D 'separable_conv2d': argument `filters` must be a positive int, got 0"),
    (lambda: L.SeparableConv2D(2.5, 3), TypeError, r"argument `filters` must be a positive int, got 2.5"),
    (lambda: L.SeparableConv2D(2, 3, pointwise_constraint="nope"), ValueError, r"`pointwise_constraint`"),
    (lambda: L.SeparableConv2D(2, 3, padding="full"), ValueError,
     r"argument `padding` must be 'valid' or 'same', got 'full'"),
    (lambda: L.Conv2DTranspose(2, 3, strides=2, output_padding=2), ValueError,
     r"Conv2DTranspose 'conv2d_transpose': argument `output_padding` must be strictly less than `strides`.*"
     r"got output_padding=\(2, 2\) and strides=\(2, 2\)"),
    (lambda: L.Conv2DTranspose(2, 3, output_padding=-1), ValueError, r"`output_padding` must be non-negative"),
    (lambda: L.Conv2DTranspose(2, 3, strides=2, dilation_rate=2), ValueError,
     r"`strides > 1` is not supported together with `dilation_rate > 1`"),
    (lambda: L.Conv2DTranspose(2, 3, use_bias="yes"), TypeError, r"argument `use_bias` must be True or False"),
    (lambda: L.Conv2DTranspose(2, 3, data_format="NHWC"), ValueError, r"argument `data_format` must be one of"),
])
def test_constructor_errors_name_layer_argument_expected_and_given(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make()


def test_input_errors_name_the_layer():
    layer = L.DepthwiseConv2D(3)
    with pytest.raises(ValueError, match=r"DepthwiseConv2D 'depthwise_conv2d': expected a 4-D input"):
        layer.compute_output_shape((None, 5, 5))
    with pytest.raises(ValueError, match=r"the channel axis of the input must be known"):
        layer.compute_output_shape((None, 5, 5, None))
    with pytest.raises(ValueError, match=r"input shape \(None, 2, 5, 1\) is too small: the kernel spans 3 rows"):
        layer.compute_output_shape((None, 2, 5, 1))
    layer.build_from_shape((None, 5, 5, 2))
    with pytest.raises(ValueError, match=r"expected an input with 2 channels"):
        layer.compute_output_shape((None, 5, 5, 3))


# -- Keras 3.15.1: configs, defaults, output shapes and refusals, outputs with the same weights --------



CONFIG_CASES = [
    ("DepthwiseConv2D", (3,), {}),
    ("DepthwiseConv2D", ((2, 3),), dict(strides=2, padding="same", depth_multiplier=3, data_format="channels_first",
                                        activation="relu", use_bias=False, depthwise_initializer="he_normal",
                                        bias_initializer="ones", depthwise_regularizer="l2",
                                        depthwise_constraint="non_neg", activity_regularizer="l1")),
    ("SeparableConv2D", (4, 3), {}),
    ("SeparableConv2D", (8, (3, 1)), dict(dilation_rate=2, padding="SAME", depth_multiplier=2, activation="tanh",
                                          pointwise_initializer="glorot_normal", pointwise_regularizer="l1",
                                          bias_constraint="max_norm", depthwise_constraint="unit_norm")),
    ("Conv2DTranspose", (4, 3), {}),
    ("Conv2DTranspose", (6, (3, 2)), dict(strides=(2, 3), padding="same", output_padding=(1, 2),
                                          data_format="channels_first", activation="sigmoid",
                                          kernel_initializer="lecun_uniform", kernel_regularizer="l2",
                                          bias_regularizer="l1")),
    ("Conv2DTranspose", (2, 5), dict(dilation_rate=3, output_padding=0)),
]


@pytest.mark.parametrize("class_name,args,kwargs", CONFIG_CASES)
def test_configs_equal_keras(keras, class_name, args, kwargs):
    ours = getattr(L, class_name)(*args, **kwargs)
    theirs = getattr(keras.layers, class_name)(*args, **kwargs)
    assert comparable_config(ours.get_config()) == comparable_config(theirs.get_config())
    rebuilt = L.deserialize({"class_name": class_name, "config": _normalize_config(class_name, theirs.get_config())})
    assert comparable_config(rebuilt.get_config()) == comparable_config(theirs.get_config())
    assert L.deserialize(json.loads(json.dumps(L.serialize(ours)))).get_config() == ours.get_config()


def test_defaults_and_aliases_are_keras(keras):
    assert L.SeparableConvolution2D is L.SeparableConv2D and L.Convolution2DTranspose is L.Conv2DTranspose
    for alias in ("SeparableConvolution2D", "Convolution2DTranspose"):
        assert L.LAYER_CLASSES[alias].__name__ == getattr(keras.layers, alias).__name__
    for name in ("DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose"):
        assert L.LAYER_CLASSES[name] is getattr(L, name)
    layer = L.DepthwiseConv2D(3)
    assert repr(layer) == "DepthwiseConv2D(kernel_size=(3, 3), name='depthwise_conv2d')"
    assert repr(L.Conv2DTranspose(2, 3, strides=2, output_padding=1)) == (
        "Conv2DTranspose(filters=2, kernel_size=(3, 3), strides=(2, 2), output_padding=(1, 1), "
        "name='conv2d_transpose')")


def _keras_shape(layer, shape):
    try:
        return tuple(layer.compute_output_shape(shape))
    except ValueError:
        return "refused"


def _our_shape(layer, shape):
    try:
        return tuple(layer.compute_output_shape(shape))
    except ValueError:
        return "refused"


@pytest.mark.parametrize("seed", range(40))
def test_output_shapes_and_refusals_equal_keras(keras, seed):
    """Many configs and shapes (unknown batch and spatial axes, inputs smaller than the kernel); Keras'
    Conv2DTranspose gives an axis of 0 where its rule leaves no output (kernel 2, "same", one pixel,
    output_padding 0): convscope refuses that shape."""
    rng = np.random.default_rng(500 + seed)
    kernel, strides, dilations, padding = random_window(rng, allow_stride_with_dilation=seed % 3 != 2)
    data_format = LAYER_FORMAT[FORMATS[seed % 2]]
    common = dict(strides=strides, padding=padding, data_format=data_format, dilation_rate=dilations)
    pairs = [(L.DepthwiseConv2D(kernel, depth_multiplier=2, **common),
              keras.layers.DepthwiseConv2D(kernel, depth_multiplier=2, **common)),
             (L.SeparableConv2D(3, kernel, **common), keras.layers.SeparableConv2D(3, kernel, **common))]
    if seed % 3 == 2:
        output_padding = tuple(int(rng.integers(0, s)) for s in strides) if seed % 2 else None
        pairs.append((L.Conv2DTranspose(3, kernel, output_padding=output_padding, **common),
                      keras.layers.Conv2DTranspose(3, kernel, output_padding=output_padding, **common)))
    for _ in range(8):
        spatial = [None if rng.random() < 0.15 else int(rng.integers(1, 12)) for _ in range(2)]
        shape = (None, *spatial, 2) if data_format == "channels_last" else (None, 2, *spatial)
        for ours, theirs in pairs:
            expected = _keras_shape(theirs, shape)
            if expected != "refused" and 0 in expected:
                expected = "refused"
            assert _our_shape(ours, shape) == expected, (type(ours).__name__, shape)


@pytest.mark.parametrize("seed", range(24))
def test_outputs_equal_keras_with_the_same_weights(keras, seed):
    rng = np.random.default_rng(600 + seed)
    kind = ("depthwise", "separable", "transpose")[seed % 3]
    data_format = LAYER_FORMAT[FORMATS[(seed // 3) % 2]]
    layer, _, kernel, dilations = random_layer(rng, kind, data_format, "float32")
    config = _normalize_config(type(layer).__name__, layer.get_config())
    config.pop("dtype")
    theirs = getattr(keras.layers, type(layer).__name__)(**config)
    x, _ = random_image(rng, kernel, dilations, int(rng.integers(1, 5)), "float32", FORMATS[(seed // 3) % 2])
    ours = layer(x)
    theirs.build(x.shape)
    theirs.set_weights(layer.get_weights())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = keras.ops.convert_to_numpy(theirs(x))
    assert_matches(ours, expected, "float32")


# -- a functional model: a MobileNet-style block and a Conv2DTranspose up-path ------------------------

def mobile_unet(keras_module=None):
    """The same graph in convscope or (given `keras_module`) in Keras."""
    K = keras_module.layers if keras_module is not None else L
    Input = keras_module.Input if keras_module is not None else cs.Input
    Model = keras_module.Model if keras_module is not None else cs.Model
    inputs = Input((12, 12, 3), name="image")
    x = K.Conv2D(8, 3, strides=2, padding="same", use_bias=False, name="stem")(inputs)
    x = K.BatchNormalization(name="stem_bn")(x)
    x = K.ReLU(max_value=6.0, name="stem_relu6")(x)
    x = K.DepthwiseConv2D(3, padding="same", use_bias=False, depth_multiplier=2, name="dw")(x)
    x = K.BatchNormalization(name="dw_bn")(x)
    x = K.ReLU(max_value=6.0, name="dw_relu6")(x)
    x = K.Conv2D(12, 1, use_bias=False, name="pw")(x)
    x = K.BatchNormalization(name="pw_bn")(x)
    skip = K.SeparableConv2D(12, 3, padding="same", activation="relu", name="sep")(x)
    up = K.Conv2DTranspose(6, 3, strides=2, padding="same", output_padding=1, activation="relu", name="up")(skip)
    outputs = K.Conv2DTranspose(2, 2, activation="sigmoid", name="head")(up)
    return Model(inputs, outputs, name="mobile_unet")


def test_functional_model_trains_one_step_like_keras_and_round_trips(keras):
    ours = mobile_unet()
    assert ours.output_shape == (None, 13, 13, 2)
    rng = np.random.default_rng(8)
    ours.set_weights([w + rng.uniform(-0.2, 0.2, w.shape).astype(w.dtype) for w in ours.get_weights()])
    twin = mobile_unet(keras)
    assert [tuple(w.shape) for w in twin.get_weights()] == [w.shape for w in ours.get_weights()]
    twin.set_weights(ours.get_weights())
    x = rng.standard_normal((4, 12, 12, 3)).astype("float32")
    y = (rng.random((4, 13, 13, 2)) < 0.5).astype("float32")
    ours.compile(cs.optimizers.SGD(0.1), "binary_crossentropy")
    twin.compile(keras.optimizers.SGD(0.1), "binary_crossentropy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loss_theirs = float(twin.train_on_batch(x, y))
        loss_ours = float(ours.train_on_batch(x, y))
    assert abs(loss_ours - loss_theirs) <= 1e-5 * abs(loss_theirs)
    for got, want in zip(ours.get_weights(), twin.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)

    rebuilt = keras.Model.from_config(json.loads(json.dumps(ours.get_config())))
    assert [layer.name for layer in rebuilt.layers] == [layer.name for layer in ours.layers]
    rebuilt.set_weights(ours.get_weights())
    expected = rebuilt.predict(x, verbose=0)
    assert_matches(ours.predict(x, verbose=0), expected, "float32")
    again = cs.Model.from_config(json.loads(rebuilt.to_json())["config"])
    again.set_weights(rebuilt.get_weights())
    assert_matches(again.predict(x, verbose=0), expected, "float32")


def test_sequential_step_with_a_last_softmax_fused_into_the_loss_matches_keras(keras):
    """The last SeparableConv2D's softmax meets the crossentropy on its pre-activation (backward with
    from_preactivation=True): one SGD step equals Keras' step."""
    def build(K, Sequential, Input):
        return Sequential([Input((9, 9, 3)),
                           K.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2, activation="relu"),
                           K.Conv2DTranspose(4, 3, strides=2, output_padding=0, activation="tanh"),
                           K.SeparableConv2D(5, 2, padding="same", activation="softmax")])
    ours, twin = build(L, cs.Sequential, cs.Input), build(keras.layers, keras.Sequential, keras.Input)
    rng = np.random.default_rng(9)
    twin.set_weights([w + rng.uniform(-0.2, 0.2, w.shape).astype(w.dtype) for w in twin.get_weights()])
    ours.set_weights(twin.get_weights())
    x = rng.standard_normal((3, 9, 9, 3)).astype("float32")
    y = np.eye(5, dtype="float32")[rng.integers(0, 5, (3, 11, 11))]
    ours.compile(cs.optimizers.SGD(0.5), "categorical_crossentropy")
    twin.compile(keras.optimizers.SGD(0.5), "categorical_crossentropy")
    assert ours._fusion() is ours.layers[-1]           # the path under test
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loss_theirs = float(twin.train_on_batch(x, y))
    assert abs(float(ours.train_on_batch(x, y)) - loss_theirs) <= 1e-5 * loss_theirs
    for got, want in zip(ours.get_weights(), twin.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("extension", [".keras", ".h5"])
def test_keras_saved_model_with_the_new_layers_loads_with_the_same_outputs(keras, tmp_path, extension):
    twin = mobile_unet(keras)
    rng = np.random.default_rng(10)
    twin.set_weights([w + rng.uniform(-0.2, 0.2, w.shape).astype(w.dtype) for w in twin.get_weights()])
    path = str(tmp_path / f"model{extension}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        twin.save(path)
    model = cs.models.load_model(path)
    assert [type(layer).__name__ for layer in model.layers] == [type(layer).__name__ for layer in twin.layers]
    x = rng.standard_normal((2, 12, 12, 3)).astype("float32")
    assert_matches(model.predict(x, verbose=0), twin.predict(x, verbose=0), "float32")
