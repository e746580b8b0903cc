"""The 1-D layers (Conv1D, pooling, UpSampling1D, ZeroPadding1D, Cropping1D), Cropping2D and SpatialDropout2D.

Oracles: PyTorch 2.13 for forward and backward over hundreds of random configurations (float32 to
1e-5, float64 to 1e-10, both data formats, TF's SAME split written out in `_oracle`), float64
finite differences on a few, and Keras 3.15.1 for configs, defaults, output shapes (refusals
included), outputs with the same weights, and whole models (one training step, config both ways).
"""

import json
import re

import numpy as np
import pytest

import convscope as cs
from _calls import backward, forward
from _gradcheck import assert_layer_matches_finite_differences
from _oracle import assert_matches, comparable_config, tf_same_split
from convscope import layers as L

torch = pytest.importorskip("torch")
F = torch.nn.functional

DTYPES = ["float32", "float64"]
FORMATS = ["channels_last", "channels_first"]


# -- helpers ------------------------------------------------------------------------------------------

def to_format(x, data_format):
    """A channels_last sequence/image batch in `data_format` (contiguous)."""
    if data_format == "channels_last":
        return x
    return np.ascontiguousarray(np.moveaxis(x, -1, 1))


def to_last(x, data_format):
    return x if data_format == "channels_last" else np.moveaxis(x, 1, -1)


def run_both(layer, x_last, data_format, reference, rng, training=False):
    """Our forward/backward and PyTorch's on the same channels_last input; `reference(x_t)` gives the
    channels_last torch output.  Returns (ours, theirs) as dicts of arrays, all channels_last."""
    dtype = x_last.dtype
    y, ctx = forward(layer, to_format(x_last, data_format), training=training)
    if not training:     # predict's path (no_backward, no context) gives the same numbers
        np.testing.assert_array_equal(layer(to_format(x_last, data_format)), y)
    x_t = torch.from_numpy(x_last.copy()).requires_grad_(True)
    y_t = reference(x_t)
    upstream = rng.standard_normal(tuple(y_t.shape)).astype(dtype)
    y_t.backward(torch.from_numpy(upstream))
    upstream_ours = upstream if y.ndim == 2 else to_format(upstream, data_format)
    grad_x, grads = backward(layer, ctx, upstream_ours)
    ours = {"y": y if y.ndim == 2 else to_last(y, data_format), "grad_x": to_last(grad_x, data_format)}
    theirs = {"y": y_t.detach().numpy(), "grad_x": x_t.grad.numpy()}
    return ours, theirs, grads


def assert_all_match(ours, theirs, dtype, what):
    for key in theirs:
        try:
            assert_matches(ours[key], theirs[key], dtype)
        except AssertionError as error:
            raise AssertionError(f"{key} of {what}: {error}") from None


# -- Conv1D against F.conv1d --------------------------------------------------------------------------

def random_conv1d_case(rng):
    """A random valid Conv1D configuration and input length."""
    groups = int(rng.choice([1, 1, 2, 3]))
    case = dict(filters=groups * int(rng.integers(1, 4)), kernel_size=int(rng.integers(1, 6)),
                padding=str(rng.choice(["valid", "same", "causal"])), groups=groups,
                activation=str(rng.choice(["linear", "relu", "tanh"])), use_bias=bool(rng.random() < 0.8))
    if rng.random() < 0.5:
        case["strides"] = int(rng.integers(1, 4))
    else:
        case["dilation_rate"] = int(rng.integers(1, 4))
    span = case.get("dilation_rate", 1) * (case["kernel_size"] - 1) + 1
    length = int(rng.integers(span if case["padding"] == "valid" else 1, span + 12))
    return case, length, groups * int(rng.integers(1, 4))


def torch_conv1d(layer, x_t, kernel_t, bias_t):
    """Keras' Conv1D on PyTorch: channels_last x_t, TF's SAME split, causal = left padding."""
    k, s, d = layer.kernel_size[0], layer.strides[0], layer.dilation_rate[0]
    xc = x_t.permute(0, 2, 1)
    if layer.padding == "same":
        xc = F.pad(xc, tf_same_split(xc.shape[2], k, s, d))
    elif layer.padding == "causal":
        xc = F.pad(xc, (d * (k - 1), 0))
    z = F.conv1d(xc, kernel_t.permute(2, 1, 0), bias_t, stride=s, dilation=d, groups=layer.groups)
    act = {"linear": lambda t: t, "relu": F.relu, "tanh": torch.tanh}[layer.activation.name]
    return act(z).permute(0, 2, 1)


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(4))
def test_conv1d_matches_torch_on_random_configurations(seed, dtype, data_format, kernel_path):
    """4 seeds x 25 configurations x 2 dtypes x 2 formats x 2 kernel paths: forward, input, kernel and
    bias gradients."""
    rng = np.random.default_rng(1000 + seed)
    for _ in range(25):
        case, length, channels = random_conv1d_case(rng)
        layer = L.Conv1D(data_format=data_format, dtype=dtype, bias_initializer="random_normal", **case)
        x = rng.standard_normal((int(rng.integers(1, 4)), length, channels)).astype(dtype)
        layer.build_from_shape((None,) + to_format(x, data_format).shape[1:])
        kernel_t = torch.from_numpy(layer.kernel.numpy()).requires_grad_(True)
        bias_t = torch.from_numpy(layer.bias.numpy()).requires_grad_(True) if layer.use_bias else None
        ours, theirs, grads = run_both(layer, x, data_format, lambda x_t: torch_conv1d(layer, x_t, kernel_t, bias_t),
                                       rng)
        what = f"{case}, length {length}, {channels} channels"
        assert_all_match(ours, theirs, dtype, what)
        assert_matches(grads[layer.kernel.name], kernel_t.grad.numpy(), dtype)
        if layer.use_bias:
            assert_matches(grads[layer.bias.name], bias_t.grad.numpy(), dtype)


def test_causal_output_never_sees_the_future():
    """Changing input step t changes no output before t (and does change output t)."""
    rng = np.random.default_rng(3)
    layer = L.Conv1D(4, 3, padding="causal", dilation_rate=2, dtype="float64")
    x = rng.standard_normal((1, 12, 2))
    y = layer(x)
    for t in range(12):
        bumped = x.copy()
        bumped[0, t] += 1.0
        changed = np.abs(layer(bumped) - y).max(axis=2)[0] > 0
        assert not changed[:t].any() and changed[t]


def test_conv1d_weight_layout_parameter_count_and_glorot_fans():
    layer = L.Conv1D(12, 5, groups=3)
    layer.build_from_shape((None, 40, 9))
    kernel, bias = layer.get_weights()
    assert kernel.shape == (5, 3, 12) and bias.shape == (12,)
    assert layer.count_params() == 5 * 3 * 12 + 12
    assert [v.name for v in layer.weights] == ["conv1d/kernel", "conv1d/bias"]
    limit = np.sqrt(6.0 / (5 * 3 + 5 * 12))       # fan_in = k * in/groups, fan_out = k * filters
    assert limit * 0.9 < np.abs(kernel).max() <= limit


# -- pooling against F.max_pool1d / F.avg_pool1d --------------------------------------------------------

def torch_pool1d(x_t, mode, k, s, padding):
    """Keras' SAME pooling on PyTorch: -inf padding for max; for average the sum over the window
    divided by the number of real (unpadded) steps in it."""
    xc = x_t.permute(0, 2, 1)
    pads = tf_same_split(xc.shape[2], k, s) if padding == "same" else (0, 0)
    if mode == "max":
        return F.max_pool1d(F.pad(xc, pads, value=-float("inf")), k, s).permute(0, 2, 1)
    sums = F.avg_pool1d(F.pad(xc, pads), k, s) * k
    counts = F.avg_pool1d(F.pad(torch.ones_like(xc[:1, :1]), pads), k, s) * k
    return (sums / counts).permute(0, 2, 1)


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls", [L.MaxPooling1D, L.AveragePooling1D])
def test_pooling1d_matches_torch_on_random_configurations(cls, dtype, data_format, kernel_path):
    """60 random (pool_size, strides, padding, length) per class, dtype, format and kernel path."""
    rng = np.random.default_rng(20 + DTYPES.index(dtype))
    mode = "max" if cls is L.MaxPooling1D else "avg"
    for _ in range(60):
        k = int(rng.integers(1, 6))
        s = None if rng.random() < 0.3 else int(rng.integers(1, 5))
        padding = str(rng.choice(["valid", "same"]))
        length = int(rng.integers(k if padding == "valid" else 1, k + 14))
        layer = cls(k, strides=s, padding=padding, data_format=data_format, dtype=dtype)
        x = rng.standard_normal((int(rng.integers(1, 4)), length, int(rng.integers(1, 5)))).astype(dtype)
        ours, theirs, _ = run_both(layer, x, data_format, lambda x_t: torch_pool1d(x_t, mode, k, s or k, padding),
                                   rng)
        assert_all_match(ours, theirs, dtype, f"{cls.__name__}({k}, strides={s}, padding={padding!r}), L={length}")


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("cls", [L.GlobalMaxPooling1D, L.GlobalAveragePooling1D])
def test_global_pooling1d_matches_torch(cls, keepdims, dtype, data_format):
    rng = np.random.default_rng(5)
    for length in (1, 2, 7, 33):
        layer = cls(data_format=data_format, keepdims=keepdims, dtype=dtype)
        x = rng.standard_normal((3, length, 4)).astype(dtype)

        def reference(x_t):
            return (x_t.amax if cls is L.GlobalMaxPooling1D else x_t.mean)(dim=1, keepdim=keepdims)
        ours, theirs, _ = run_both(layer, x, data_format, reference, rng)
        assert ours["y"].shape == ((3, 1, 4) if keepdims else (3, 4))
        assert_all_match(ours, theirs, dtype, f"{cls.__name__} L={length}")


# -- UpSampling1D, ZeroPadding1D, Cropping1D/2D against F.interpolate, F.pad and slicing -----------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_upsampling1d_matches_torch_interpolate(dtype):
    rng = np.random.default_rng(6)
    for _ in range(40):
        size, length = int(rng.integers(1, 5)), int(rng.integers(1, 9))
        layer = L.UpSampling1D(size, dtype=dtype)
        x = rng.standard_normal((2, length, int(rng.integers(1, 4)))).astype(dtype)
        reference = lambda x_t: F.interpolate(x_t.permute(0, 2, 1), scale_factor=size,  # noqa: E731
                                              mode="nearest").permute(0, 2, 1)
        ours, theirs, _ = run_both(layer, x, "channels_last", reference, rng)
        assert_all_match(ours, theirs, dtype, f"UpSampling1D({size}), L={length}")


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_padding1d_matches_torch_pad(dtype, data_format):
    rng = np.random.default_rng(7)
    for _ in range(40):
        pads = (int(rng.integers(0, 4)), int(rng.integers(0, 4)))
        padding = pads[0] if pads[0] == pads[1] and rng.random() < 0.5 else pads
        layer = L.ZeroPadding1D(padding, data_format=data_format, dtype=dtype)
        x = rng.standard_normal((2, int(rng.integers(1, 9)), 3)).astype(dtype)
        reference = lambda x_t: F.pad(x_t, (0, 0) + pads)  # noqa: E731
        ours, theirs, _ = run_both(layer, x, data_format, reference, rng)
        assert_all_match(ours, theirs, dtype, f"ZeroPadding1D({padding!r})")


@pytest.mark.parametrize("dtype", DTYPES)
def test_cropping1d_matches_torch_slicing(dtype):
    rng = np.random.default_rng(8)
    for _ in range(40):
        before, after = int(rng.integers(0, 4)), int(rng.integers(0, 4))
        length = before + after + int(rng.integers(1, 6))
        layer = L.Cropping1D((before, after), dtype=dtype)
        x = rng.standard_normal((2, length, 3)).astype(dtype)
        ours, theirs, _ = run_both(layer, x, "channels_last", lambda x_t: x_t[:, before:length - after], rng)
        assert_all_match(ours, theirs, dtype, f"Cropping1D(({before}, {after})), L={length}")


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_cropping2d_matches_torch_slicing(dtype, data_format):
    rng = np.random.default_rng(9)
    for _ in range(60):
        (top, bottom), (left, right) = crops = rng.integers(0, 4, size=(2, 2)).tolist()
        form = rng.integers(3)
        cropping = (crops if form == 0 else (top, left) if form == 1 else top)
        if form == 1:
            bottom, right = top, left
        elif form == 2:
            bottom = left = right = top
        rows, cols = top + bottom + int(rng.integers(1, 5)), left + right + int(rng.integers(1, 5))
        layer = L.Cropping2D(cropping, data_format=data_format, dtype=dtype)
        x = rng.standard_normal((2, rows, cols, 3)).astype(dtype)
        reference = lambda x_t: x_t[:, top:rows - bottom, left:cols - right]  # noqa: E731
        ours, theirs, _ = run_both(layer, x, data_format, reference, rng)
        assert_all_match(ours, theirs, dtype, f"Cropping2D({cropping!r}) on {rows}x{cols}")


# -- float64 finite differences -------------------------------------------------------------------------

FD_CASES = [
    (lambda: L.Conv1D(3, 3, padding="causal", dilation_rate=2, activation="tanh", bias_initializer="ones",
                      data_format="channels_first", dtype="float64"), (2, 2, 7)),
    (lambda: L.Conv1D(4, 2, strides=2, padding="same", groups=2, activation="elu", dtype="float64"), (2, 5, 2)),
    (lambda: L.AveragePooling1D(3, strides=2, padding="same", dtype="float64"), (2, 6, 2)),
    (lambda: L.MaxPooling1D(2, strides=1, padding="same", data_format="channels_first", dtype="float64"), (2, 3, 5)),
    (lambda: L.GlobalAveragePooling1D(keepdims=True, dtype="float64"), (2, 4, 3)),
    (lambda: L.UpSampling1D(3, dtype="float64"), (2, 3, 2)),
    (lambda: L.ZeroPadding1D((2, 1), data_format="channels_first", dtype="float64"), (2, 2, 3)),
    (lambda: L.Cropping1D((1, 2), dtype="float64"), (2, 6, 2)),
    (lambda: L.Cropping2D(((1, 0), (2, 1)), data_format="channels_first", dtype="float64"), (2, 2, 4, 5)),
]


@pytest.mark.parametrize("make,shape", FD_CASES)
def test_backward_matches_finite_differences(make, shape):
    """d sum(w * y) / d x and / d weights, central differences in float64."""
    assert_layer_matches_finite_differences(make(), np.random.default_rng(10).standard_normal(shape))


# -- SpatialDropout2D -----------------------------------------------------------------------------------

@pytest.mark.parametrize("data_format", FORMATS)
def test_spatial_dropout2d_drops_whole_channels_and_scales_the_rest(data_format, kernel_path):
    rate = 0.4
    layer = L.SpatialDropout2D(rate, data_format=data_format, seed=3)
    x = to_format(np.random.default_rng(11).uniform(0.5, 1.5, (64, 3, 4, 8)).astype("float32"), data_format)
    y, ctx = forward(layer, x, training=True)
    ratio = to_last(y / x, data_format).reshape(64, 12, 8)
    np.testing.assert_allclose(ratio, np.broadcast_to(ratio[:, :1], ratio.shape), rtol=1e-6)  # per image, channel
    kept = ratio[:, 0, :]
    assert np.all(np.isclose(kept, 0) | np.isclose(kept, 1 / (1 - rate), rtol=1e-6))
    assert abs((kept == 0).mean() - rate) < 0.08                        # 512 draws
    grad = np.random.default_rng(12).standard_normal(x.shape).astype("float32")
    grad_x, _ = backward(layer, ctx, grad)
    np.testing.assert_allclose(grad_x, grad * (y / x), rtol=1e-6)      # the same mask backward
    y_inference, ctx_inference = forward(layer, x, training=False)
    assert y_inference is x and backward(layer, ctx_inference, grad)[0] is grad


def test_spatial_dropout2d_masks_follow_the_seed_and_differ_per_call():
    x = np.ones((4, 2, 2, 16), dtype="float32")
    first, second = L.SpatialDropout2D(0.5, seed=7), L.SpatialDropout2D(0.5, seed=7)
    a, b = first(x, training=True), second(x, training=True)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first(x, training=True), a)
    cs.utils.set_random_seed(5)
    c = L.SpatialDropout2D(0.5)(x, training=True)
    cs.utils.set_random_seed(5)
    np.testing.assert_array_equal(L.SpatialDropout2D(0.5)(x, training=True), c)


# -- Keras 3.15.1: configs, defaults, output shapes and refusals, outputs ------------------------------------



CONFIG_CASES = [
    ("Conv1D", (8, 3), {}),
    ("Conv1D", (6, (5,)), dict(strides=2, padding="CAUSAL", data_format="channels_first", groups=3,
                               activation="relu", use_bias=False, kernel_initializer="he_normal",
                               kernel_regularizer="l2", bias_constraint="non_neg")),
    ("Conv1D", (4, 2), dict(dilation_rate=3, padding="same")),
    ("MaxPooling1D", (), {}), ("MaxPooling1D", (3,), dict(strides=1, padding="same", data_format="channels_first")),
    ("AveragePooling1D", (2,), {}), ("AveragePooling1D", ((4,), 3, "same"), {}),
    ("GlobalMaxPooling1D", (), {}), ("GlobalAveragePooling1D", (), dict(data_format="channels_first", keepdims=True)),
    ("UpSampling1D", (), {}), ("UpSampling1D", (4,), {}),
    ("ZeroPadding1D", (), {}), ("ZeroPadding1D", ((2, 0),), dict(data_format="channels_first")),
    ("Cropping1D", (), {}), ("Cropping1D", (3,), {}),
    ("Cropping2D", (), {}), ("Cropping2D", (2,), {}), ("Cropping2D", ((1, 3),), dict(data_format="channels_first")),
    ("Cropping2D", (((1, 2), (0, 3)),), {}),
    ("SpatialDropout2D", (0.5,), {}), ("SpatialDropout2D", (0.2,), dict(data_format="channels_first", seed=4)),
]


@pytest.mark.parametrize("class_name,args,kwargs", CONFIG_CASES)
def test_configs_match_keras_and_rebuild_both_ways(keras, class_name, args, kwargs):
    ours = getattr(L, class_name)(*args, **kwargs)
    theirs = getattr(keras.layers, class_name)(*args, **kwargs)
    assert re.sub(r"_\d+$", "", theirs.name) == ours.name      # automatic names as Keras' (fresh session)
    assert sorted(ours.get_config()) == sorted(theirs.get_config())
    assert comparable_config(ours.get_config()) == comparable_config(theirs.get_config())
    from_keras = L.deserialize(json.loads(json.dumps(keras.saving.serialize_keras_object(theirs))))
    assert from_keras.get_config() == {**ours.get_config(), "name": theirs.name}
    into_keras = keras.layers.deserialize(json.loads(json.dumps(L.serialize(ours))))
    assert comparable_config(into_keras.get_config()) == comparable_config(theirs.get_config())


def keras_output_shape(keras, make, shape):
    """Keras' output shape, or ValueError where it refuses (a TypeError where it crashes on an unknown channel
    count, None % groups, which convscope refuses by name)."""
    try:
        return tuple(make(keras.layers)(keras.Input(batch_shape=shape)).shape)
    except (ValueError, TypeError):
        return ValueError


def our_output_shape(make, shape):
    try:
        return tuple(make(L).compute_output_shape(shape))
    except ValueError:
        return ValueError


SHAPE_MAKERS = [
    lambda m: m.Conv1D(6, 3, strides=2, groups=2),
    lambda m: m.Conv1D(4, 4, dilation_rate=3, padding="causal", data_format="channels_first"),
    lambda m: m.Conv1D(4, 5, strides=3, padding="same"),
    lambda m: m.MaxPooling1D(3, strides=2),
    lambda m: m.MaxPooling1D(2, padding="same", data_format="channels_first"),
    lambda m: m.AveragePooling1D(4, padding="same", data_format="channels_first"),
    lambda m: m.AveragePooling1D(3, strides=1),
    lambda m: m.GlobalAveragePooling1D(keepdims=True),
    lambda m: m.GlobalMaxPooling1D(data_format="channels_first"),
    lambda m: m.UpSampling1D(3),
    lambda m: m.ZeroPadding1D((2, 1), data_format="channels_first"),
    lambda m: m.Cropping1D((2, 3)),
    lambda m: m.Cropping2D(((1, 2), (3, 0))),
    lambda m: m.Cropping2D((2, 1), data_format="channels_first"),
    lambda m: m.SpatialDropout2D(0.3),
]
SHAPES = [(None, 6, 4), (2, 1, 4), (None, 2, 3), (3, 9, 2), (None, 4, 2), (None, 3, 1), (None, None, 6),
          (None, 5), (None, 4, 4, 4), (None, 3, 3, 6), (None, 7, 1, 2), (None, None, None, 4),
          (None, 1, 5, 4), (None, 5, 6, 7)]


@pytest.mark.parametrize("make", SHAPE_MAKERS)
def test_output_shapes_and_refusals_match_keras(keras, make):
    """compute_output_shape against Keras' symbolic call on 14 shapes (wrong ranks, too short, unknown axes)."""
    results = [(shape, our_output_shape(make, shape), keras_output_shape(keras, make, shape)) for shape in SHAPES]
    assert [(shape, ours) for shape, ours, _ in results] == [(shape, theirs) for shape, _, theirs in results]
    assert any(ours is ValueError for _, ours, _ in results) and any(ours is not ValueError for _, ours, _ in results)


KERAS_OUTPUT_CASES = [      # no asymmetric SAME average pooling: Keras' torch backend replicates edge values there
    (lambda m: m.Conv1D(6, 3, strides=2, padding="same", groups=2, activation="relu"), (3, 11, 4)),
    (lambda m: m.Conv1D(4, 4, dilation_rate=3, padding="causal", data_format="channels_first"), (3, 4, 10)),
    (lambda m: m.Conv1D(4, 2, strides=2, padding="same", activation="tanh"), (3, 9, 3)),
    (lambda m: m.MaxPooling1D(3, strides=2, padding="same"), (3, 10, 4)),
    (lambda m: m.AveragePooling1D(3, strides=1, padding="same", data_format="channels_first"), (3, 4, 9)),
    (lambda m: m.AveragePooling1D(3, strides=2), (3, 10, 4)),
    (lambda m: m.GlobalAveragePooling1D(keepdims=True), (3, 9, 4)),
    (lambda m: m.GlobalMaxPooling1D(data_format="channels_first"), (3, 4, 9)),
    (lambda m: m.UpSampling1D(3), (3, 5, 2)),
    (lambda m: m.ZeroPadding1D((2, 1), data_format="channels_first"), (3, 2, 5)),
    (lambda m: m.Cropping1D((2, 3)), (3, 8, 2)),
    (lambda m: m.Cropping2D(((1, 2), (3, 0)), data_format="channels_first"), (3, 2, 6, 7)),
    (lambda m: m.SpatialDropout2D(0.3), (3, 6, 7, 2)),
]


@pytest.mark.parametrize("make,shape", KERAS_OUTPUT_CASES)
def test_outputs_match_keras_with_the_same_weights(keras, make, shape):
    rng = np.random.default_rng(13)
    ours, theirs = make(L), make(keras.layers)
    theirs.build(shape)
    ours.build_from_shape((None,) + shape[1:])
    weights = [w + rng.uniform(0.1, 0.5, w.shape).astype(w.dtype) for w in theirs.get_weights()]
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in weights]
    theirs.set_weights(weights)
    ours.set_weights(weights)
    x = rng.standard_normal(shape).astype("float32")
    expected = keras.ops.convert_to_numpy(theirs(x))
    np.testing.assert_allclose(ours(x), expected, rtol=1e-5, atol=1e-5)


# -- constructor and input refusals ------------------------------------------------------------------------

@pytest.mark.parametrize("factory,error,pattern", [
    (lambda: L.Conv1D(0, 3), ValueError, r"Conv1D 'conv1d': argument `filters` must be a positive int, got 0"),
    (lambda: L.Conv1D(4, (3, 3)), ValueError,
     r"Conv1D 'conv1d': argument `kernel_size` must be an int or a tuple of 1 ints, got \(3, 3\)"),
    (lambda: L.Conv1D(4, 0), ValueError, r"Conv1D 'conv1d': argument `kernel_size` must be positive, got 0"),
    (lambda: L.Conv1D(4, 3, strides=2, dilation_rate=2), ValueError,
     r"Conv1D 'conv1d': `strides > 1` is not supported together with `dilation_rate > 1`; "
     r"got strides=\(2,\) and dilation_rate=\(2,\)"),
    (lambda: L.Conv1D(6, 3, groups=4), ValueError,
     r"Conv1D 'conv1d': argument `filters` must be divisible by `groups`; got filters=6 and groups=4"),
    (lambda: L.Conv1D(4, 3, padding="full"), ValueError,
     r"Conv1D 'conv1d': argument `padding` must be 'valid', 'same' or 'causal', got 'full'"),
    (lambda: L.Conv1D(4, 3, activation="rellu"), ValueError, r"Conv1D 'conv1d': argument `activation`:.*'rellu'"),
    (lambda: L.MaxPooling1D(padding="causal"), ValueError,
     r"MaxPooling1D 'max_pooling1d': argument `padding` must be 'valid' or 'same', got 'causal'"),
    (lambda: L.AveragePooling1D(), TypeError, r"pool_size"),
    (lambda: L.AveragePooling1D(2, strides=0), ValueError,
     r"AveragePooling1D 'average_pooling1d': argument `strides` must be positive, got 0"),
    (lambda: L.GlobalMaxPooling1D(keepdims=1), TypeError,
     r"GlobalMaxPooling1D 'global_max_pooling1d': argument `keepdims` must be True or False, got 1"),
    (lambda: L.UpSampling1D((2,)), TypeError,
     r"UpSampling1D 'up_sampling1d': argument `size` must be a positive int, got \(2,\)"),
    (lambda: L.UpSampling1D(0), ValueError,
     r"UpSampling1D 'up_sampling1d': argument `size` must be a positive int, got 0"),
    (lambda: L.ZeroPadding1D(-1), ValueError,
     r"ZeroPadding1D 'zero_padding1d': argument `padding` must be non-negative, got -1"),
    (lambda: L.Cropping1D((1, 2, 3)), ValueError,
     r"Cropping1D 'cropping1d': argument `cropping` must be an int or a tuple of 2 ints, got \(1, 2, 3\)"),
    (lambda: L.Cropping2D(-1), ValueError,
     r"Cropping2D 'cropping2d': argument `cropping` must be an int, a tuple \(rows, cols\) or a tuple "
     r"\(\(top, bottom\), \(left, right\)\) of non-negative ints, got -1"),
    (lambda: L.Cropping2D((1, 2, 3)), ValueError, r"Cropping2D 'cropping2d': argument `cropping` .* got \(1, 2, 3\)"),
    (lambda: L.Cropping2D(((1, 2), "a")), TypeError, r"Cropping2D 'cropping2d': argument `cropping` .* got"),
    (lambda: L.Cropping2D(1.5), TypeError, r"Cropping2D 'cropping2d': argument `cropping` .* got 1.5"),
    (lambda: L.Cropping2D(data_format="NHWC"), ValueError, r"Cropping2D 'cropping2d': argument `data_format`"),
    (lambda: L.SpatialDropout2D(1.5), ValueError,
     r"SpatialDropout2D 'spatial_dropout2d': argument `rate` must be a finite number in \[0.0, 1.0\], got 1.5"),
    (lambda: L.SpatialDropout2D(0.5, noise_shape=(1, 1, 1, 3)), TypeError,
     r"SpatialDropout2D: unexpected keyword argument `noise_shape`"),
    (lambda: L.SpatialDropout2D(0.5, seed=-1), ValueError, r"SpatialDropout2D 'spatial_dropout2d': argument `seed`"),
])
def test_bad_arguments_are_refused_by_name(factory, error, pattern):
    with pytest.raises(error, match=pattern):
        factory()


@pytest.mark.parametrize("layer,shape,pattern", [
    (lambda: L.Conv1D(4, 3), (None, 8, 8, 3), r"Conv1D 'conv1d': expected a 3-D input \(batch, steps, channels\)"),
    (lambda: L.Conv1D(4, 3, groups=2), (None, 8, 3), r"the input's 3 channels must be divisible by groups=2"),
    (lambda: L.Conv1D(4, 5, dilation_rate=2), (None, 8, 3), r"too small: the kernel spans 9 steps .* 8 steps"),
    (lambda: L.MaxPooling1D(4), (None, 3, 2), r"too small: the pooling window spans 4 steps"),
    (lambda: L.GlobalAveragePooling1D(data_format="channels_first"), (None, 3),
     r"expected a 3-D input \(batch, channels, steps\)"),
    (lambda: L.Cropping1D((2, 1)), (None, 3, 2),
     r"argument `cropping` \(2, 1\) must leave at least one of the 3 steps"),
    (lambda: L.Cropping2D(((0, 0), (2, 2))), (None, 9, 4, 2), r"must leave at least one of the 4 cols"),
    (lambda: L.SpatialDropout2D(0.1), (None, 4, 2), r"expected a 4-D input"),
])
def test_unusable_input_shapes_are_refused_by_name(layer, shape, pattern):
    with pytest.raises(ValueError, match=pattern):
        layer().compute_output_shape(shape)


def test_cropping_refuses_a_too_short_input_at_call_time():
    layer = L.Cropping1D((2, 2))
    layer.build_from_shape((None, None, 3))
    with pytest.raises(ValueError, match=r"Cropping1D 'cropping1d': argument `cropping` \(2, 2\) must leave"):
        layer(np.zeros((1, 4, 3), "float32"))


# -- whole models: one training step, configs both ways with Keras -------------------------------------------

def sequence_model():
    """Conv1D causal -> pooling -> ... -> GlobalAveragePooling1D -> Dense, every 1-D layer once."""
    inputs = cs.Input((16, 3), name="series")
    x = L.Conv1D(8, 3, padding="causal", dilation_rate=2, activation="relu", name="causal")(inputs)
    x = L.MaxPooling1D(2, name="max")(x)
    x = L.ZeroPadding1D((1, 2), name="pad")(x)
    x = L.Conv1D(6, 3, strides=2, padding="same", groups=2, activation="tanh", name="grouped")(x)
    x = L.UpSampling1D(3, name="up")(x)
    x = L.Cropping1D((1, 2), name="crop")(x)
    x = L.AveragePooling1D(3, strides=1, name="avg")(x)
    x = L.GlobalAveragePooling1D(name="gap")(x)
    return cs.Model(inputs, L.Dense(4, activation="softmax", name="out")(x))


def randomize(model, rng, scale=0.5):
    model.set_weights([rng.uniform(-scale, scale, w.shape).astype(w.dtype) for w in model.get_weights()])


def test_sequence_model_trains_one_step_as_keras_and_its_config_goes_both_ways(keras):
    rng = np.random.default_rng(14)
    ours = sequence_model()
    randomize(ours, rng)
    theirs = keras.Model.from_config(json.loads(json.dumps(ours.get_config())))
    assert [layer.name for layer in theirs.layers] == [layer.name for layer in ours.layers]
    assert [tuple(layer.output.shape) for layer in theirs.layers] == [layer.output.shape for layer in ours.layers]
    theirs.set_weights(ours.get_weights())
    x = rng.standard_normal((5, 16, 3)).astype("float32")
    y = rng.integers(0, 4, size=5)
    expected = np.asarray(theirs.predict(x, verbose=0))
    np.testing.assert_allclose(ours.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    again = cs.Model.from_config(json.loads(theirs.to_json())["config"])
    again.set_weights(theirs.get_weights())
    np.testing.assert_allclose(again.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)

    ours.compile(cs.optimizers.SGD(learning_rate=0.5), loss="sparse_categorical_crossentropy")
    theirs.compile(keras.optimizers.SGD(learning_rate=0.5), loss="sparse_categorical_crossentropy")
    before = ours.get_weights()
    loss_ours, loss_theirs = ours.train_on_batch(x, y), theirs.train_on_batch(x, y)
    np.testing.assert_allclose(loss_ours, loss_theirs, rtol=1e-5)
    for name, old, new, want in zip([v.name for v in ours.weights], before, ours.get_weights(),
                                    theirs.get_weights()):
        assert np.abs(new - old).max() > 1e-4, f"{name} did not move"
        np.testing.assert_allclose(new - old, want - old, rtol=1e-4, atol=1e-6, err_msg=name)


def image_model(rate):
    inputs = cs.Input((9, 10, 3), name="image")
    x = L.Conv2D(6, 3, activation="relu", name="conv")(inputs)
    x = L.SpatialDropout2D(rate, seed=3, name="drop")(x)
    x = L.Cropping2D(((1, 0), (0, 2)), name="crop")(x)
    x = L.MaxPooling2D(2, name="pool")(x)
    return cs.Model(inputs, L.Dense(3, activation="softmax", name="out")(L.Flatten(name="flat")(x)))


def test_image_model_with_cropping_and_spatial_dropout_trains_one_step_as_torch_and_keras_reads_it(keras):
    """The training step against PyTorch with the mask the layer draws (a twin with the same seed draws it
    first); inference and the config against Keras."""
    rng = np.random.default_rng(15)
    model = image_model(0.5)
    randomize(model, rng, 0.2)      # no probability under Keras' 1e-7 clip of the crossentropy
    x = rng.standard_normal((4, 9, 10, 3)).astype("float32")
    y = rng.integers(0, 3, size=4)
    mask = L.SpatialDropout2D(0.5, seed=3)(np.ones((4, 7, 8, 6), "float32"), training=True)[:, :1, :1, :]
    assert 0 < (mask == 0).sum() < mask.size

    params = [torch.from_numpy(w.copy()).requires_grad_(True) for w in model.get_weights()]
    kernel, bias, dense_kernel, dense_bias = params
    h = F.relu(F.conv2d(torch.from_numpy(x).permute(0, 3, 1, 2), kernel.permute(3, 2, 0, 1), bias))
    h = (h * torch.from_numpy(mask).permute(0, 3, 1, 2))[:, :, 1:, :-2]
    h = F.max_pool2d(h, 2).permute(0, 2, 3, 1).reshape(4, -1)
    loss = F.cross_entropy(h @ dense_kernel + dense_bias, torch.from_numpy(y))
    loss.backward()
    model.compile(cs.optimizers.SGD(learning_rate=0.5), loss="sparse_categorical_crossentropy")
    np.testing.assert_allclose(model.train_on_batch(x, y), loss.item(), rtol=1e-5)
    for variable, p in zip(model.weights, params):
        np.testing.assert_allclose(variable.numpy(), (p - 0.5 * p.grad).detach().numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=variable.name)

    theirs = keras.Model.from_config(json.loads(json.dumps(model.get_config())))
    theirs.set_weights(model.get_weights())
    expected = np.asarray(theirs.predict(x, verbose=0))
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    again = cs.Model.from_config(json.loads(theirs.to_json())["config"])
    assert again.get_layer("drop").get_config() == model.get_layer("drop").get_config()
    again.set_weights(theirs.get_weights())
    np.testing.assert_allclose(again.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)


def test_models_with_the_new_layers_save_and_load_with_their_outputs(tmp_path):
    """The loader rebuilds every new layer from its config under deferred weights, then reads the arrays."""
    rng = np.random.default_rng(16)
    x_seq, x_img = rng.standard_normal((3, 16, 3)).astype("float32"), rng.standard_normal((3, 9, 10, 3))
    for model, x in ((sequence_model(), x_seq), (image_model(0.4), x_img.astype("float32"))):
        randomize(model, rng)
        path = tmp_path / f"{model.name}.convscope"
        model.save(path)
        loaded = cs.models.load_model(path)
        assert [type(layer).__name__ for layer in loaded.layers] == [type(layer).__name__ for layer in model.layers]
        np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))



def test_spatial_dropout_1d_as_keras(keras, tmp_path):
    """Keras' config; the identity at inference (a Keras-written file, the same outputs); in training whole
    channels of each sequence dropped (one draw per sample and channel), repeatable with a seed."""
    def model(module):
        layers = module.layers
        return module.Sequential([module.Input((10, 3)), layers.Conv1D(4, 3), layers.SpatialDropout1D(0.4, seed=5),
                                  layers.GlobalAveragePooling1D(), layers.Dense(2)])
    theirs = model(keras)
    assert theirs.layers[1].get_config() == model(cs).layers[1].get_config()
    theirs.save(tmp_path / "sd1.keras")
    ours = cs.models.load_model(tmp_path / "sd1.keras")
    x = np.random.default_rng(0).normal(size=(4, 10, 3)).astype("float32")
    np.testing.assert_allclose(ours.predict(x, verbose=0), keras.ops.convert_to_numpy(theirs.predict(x, verbose=0)),
                               rtol=1e-5, atol=1e-6)
    layer = cs.layers.SpatialDropout1D(0.5, seed=1)
    y, mask = layer.forward(np.ones((64, 7, 5), np.float32), training=True)
    assert set(np.unique(y)) <= {0.0, 2.0} and 0 < (y == 0).mean() < 1
    assert np.all(y == y[:, :1, :])                     # one draw per (sample, channel), the same at every step
    again, _ = cs.layers.SpatialDropout1D(0.5, seed=1).forward(np.ones((64, 7, 5), np.float32), training=True)
    np.testing.assert_array_equal(y, again)
    with pytest.raises(ValueError, match="SpatialDropout1D 'spatial_dropout1d.*': expected an input of rank 3"):
        cs.Sequential([cs.Input((4,)), cs.layers.SpatialDropout1D(0.2)])
