"""The 3-D layers (layers/conv3d.py, pooling3d.py, reshaping3d.py, SpatialDropout3D) on ops/volume.py.

Oracles: PyTorch 2.13 (conv3d, pooling with TensorFlow's SAME split written out, padding, upsampling) and Keras
3.15.1's own layers through torch's autograd (Conv3DTranspose's output placement) for outputs and every
gradient on random configurations; float64 finite differences; Keras for configs, shapes, refusals and files.
"""

import re

import numpy as np
import pytest

import convscope as cs
from _calls import backward, forward
from _gradcheck import assert_layer_matches_finite_differences
from _oracle import (assert_layer_config_matches_keras_both_ways, assert_layer_matches_keras_through_autograd,
                     assert_output_shape_or_refusal_as_keras, assert_step_and_file_match_keras, tf_same_split)
from convscope import layers as L, ops

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _first(x):
    return np.moveaxis(x, -1, 1)


def _last(x):
    return np.moveaxis(x, 1, -1)


def _same_pad(x_t, spatial, kernel, strides, dilation=(1, 1, 1), value=0.0):
    pairs = [tf_same_split(n, k, s, d) for n, k, s, d in zip(spatial, kernel, strides, dilation)]
    return F.pad(x_t, [v for pair in reversed(pairs) for v in pair], value=value)


def _layer_vs(layer, x, reference, rng, data_format):
    """Our output and gradients against `reference(x_t in channels_first) -> y_t in channels_first`."""
    y, ctx = forward(layer, x)
    x_first = x if data_format == "channels_first" else _first(x)
    x_t = torch.tensor(np.ascontiguousarray(x_first), requires_grad=True)
    y_t = reference(x_t)
    upstream = rng.standard_normal(tuple(y_t.shape))
    y_t.backward(torch.tensor(upstream))
    mine = upstream if data_format == "channels_first" else _last(upstream)
    grad_x, grads = backward(layer, ctx, np.ascontiguousarray(mine).astype(x.dtype))
    expected_y = y_t.detach().numpy() if data_format == "channels_first" else _last(y_t.detach().numpy())
    expected_g = x_t.grad.numpy() if data_format == "channels_first" else _last(x_t.grad.numpy())
    return y, expected_y, grad_x, expected_g, grads


@pytest.mark.parametrize("seed", range(10))
def test_conv3d_matches_torch(seed):
    rng = np.random.default_rng(seed)
    groups = int(rng.choice([1, 2]))
    kernel = tuple(int(k) for k in rng.integers(1, 4, 3))
    strides = tuple(int(s) for s in rng.integers(1, 3, 3)) if seed % 2 else (1, 1, 1)
    dilation = (1, 1, 1) if max(strides) > 1 else tuple(int(d) for d in rng.integers(1, 3, 3))
    padding, data_format = str(rng.choice(["valid", "same"])), str(rng.choice(["channels_last", "channels_first"]))
    spatial = tuple(int(n) for n in rng.integers(5, 8, 3))
    layer = L.Conv3D(2 * groups, kernel, strides=strides, padding=padding, data_format=data_format,
                     dilation_rate=dilation, groups=groups, activation=str(rng.choice(["linear", "relu", "tanh"])),
                     dtype="float64")
    channels = 2 * groups
    x = rng.standard_normal((2,) + (spatial + (channels,) if data_format == "channels_last" else (channels,) + spatial))
    layer.build_from_shape((None,) + x.shape[1:])
    layer.set_weights([rng.standard_normal(w.shape) for w in layer.get_weights()])
    w_t = torch.tensor(np.transpose(layer.kernel.value, (4, 3, 0, 1, 2)), requires_grad=True)
    b_t = torch.tensor(layer.bias.value, requires_grad=True)
    act = {"linear": lambda t: t, "relu": torch.relu, "tanh": torch.tanh}[layer.activation.name]

    def reference(x_t):
        x_p = _same_pad(x_t, spatial, kernel, strides, dilation) if padding == "same" else x_t
        return act(F.conv3d(x_p, w_t, b_t, stride=strides, dilation=dilation, groups=groups))
    y, want_y, grad_x, want_gx, grads = _layer_vs(layer, x, reference, rng, data_format)
    np.testing.assert_allclose(y, want_y, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(grad_x, want_gx, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(grads[layer.kernel.name], np.transpose(w_t.grad.numpy(), (2, 3, 4, 1, 0)),
                               rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(grads[layer.bias.name], b_t.grad.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("seed", range(12))
def test_the_depth_paths_give_the_taps_reference(monkeypatch, seed):
    """`_CONV_PATHS`' fast paths (one 2-D convolution of the stacked depth slices for one group, else one per
    depth tap) against the tap-by-tap reference."""
    from convscope.ops import volume
    rng = np.random.default_rng(seed)
    dtype = "float32" if seed % 2 else "float64"
    groups = int(rng.choice([1, 3]))
    kernel = tuple(int(k) for k in rng.integers(1, 4, 3))
    strides = tuple(int(s) for s in rng.integers(1, 3, 3)) if seed % 3 else (1, 1, 1)
    dilation = (1, 1, 1) if max(strides) > 1 else tuple(int(d) for d in rng.integers(1, 3, 3))
    padding = str(rng.choice(["valid", "same"]))
    x = rng.standard_normal((2,) + tuple(int(n) for n in rng.integers(5, 9, 3)) + (3 * groups,)).astype(dtype)
    w = rng.standard_normal(kernel + (3, 2 * groups)).astype(dtype)
    args = (x, w, strides, padding, dilation, groups)
    y, ctx = ops.conv_nd_forward(*args)
    assert ctx["backward"] is (volume._conv_depth_stacked_backward if groups == 1 else
                               volume._conv_depth_slices_backward)
    np.testing.assert_array_equal(ops.conv_nd_forward(*args, keep=False)[0], y)
    upstream = rng.standard_normal(y.shape).astype(dtype)
    grads = ops.conv_nd_backward(upstream, ctx)
    monkeypatch.setattr(volume, "_CONV_PATHS", volume._CONV_PATHS[-1:])          # the taps alone
    y_ref, ctx_ref = ops.conv_nd_forward(*args)
    tolerance = dict(rtol=1e-5, atol=1e-5) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y, y_ref, **tolerance)
    for got, want in zip(grads, ops.conv_nd_backward(upstream, ctx_ref)):
        np.testing.assert_allclose(got, want, **tolerance)


@pytest.mark.parametrize("seed", range(12))
def test_the_depth_slices_pooling_gives_the_taps_reference(monkeypatch, seed):
    """`_POOL_PATHS`' fast path (2-D pooling of every slice, then the depth windows) against the tap-by-tap one."""
    from convscope.ops import volume
    rng = np.random.default_rng(seed)
    dtype, mode = ("float32" if seed % 2 else "float64"), ("max" if seed % 4 < 2 else "avg")
    pool = tuple(int(k) for k in rng.integers(1, 4, 3))
    strides = tuple(int(s) for s in rng.integers(1, 3, 3))
    padding = str(rng.choice(["valid", "same"]))
    x = rng.standard_normal((2,) + tuple(int(n) for n in rng.integers(3, 8, 3)) + (3,)).astype(dtype)
    if seed % 3 == 0:
        x = np.maximum(x, 0)                               # ties
    args = (x, pool, strides, padding, mode)
    y, ctx = ops.pool_nd_forward(*args)
    assert ctx["backward"] is volume._pool_depth_slices_backward
    np.testing.assert_array_equal(ops.pool_nd_forward(*args, keep=False)[0], y)
    upstream = rng.standard_normal(y.shape).astype(dtype)
    grad = ops.pool_nd_backward(upstream, ctx)
    monkeypatch.setattr(volume, "_POOL_PATHS", volume._POOL_PATHS[-1:])          # the taps alone
    y_ref, ctx_ref = ops.pool_nd_forward(*args)
    tolerance = dict(rtol=1e-6, atol=1e-6) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y, y_ref, **tolerance)
    np.testing.assert_allclose(grad, ops.pool_nd_backward(upstream, ctx_ref), **tolerance)


@pytest.mark.parametrize("seed", range(8))
def test_conv3d_transpose_matches_keras_through_autograd(keras, seed):
    rng = np.random.default_rng(seed)
    kernel = tuple(int(k) for k in rng.integers(1, 4, 3))
    strides = tuple(int(s) for s in rng.integers(1, 3, 3))
    kwargs = dict(padding=str(rng.choice(["valid", "same"])), data_format=str(rng.choice(["channels_last",
                                                                                           "channels_first"])))
    if seed % 3 == 0:
        kwargs["output_padding"] = tuple(int(rng.integers(0, s)) for s in strides)
    shape = (2, 3, 4, 3, 2) if kwargs["data_format"] == "channels_last" else (2, 2, 3, 4, 3)
    assert_layer_matches_keras_through_autograd(L.Conv3DTranspose(3, kernel, strides, **kwargs),
                                                keras.layers.Conv3DTranspose(3, kernel, strides, **kwargs), shape, rng,
                                                f"{kernel} {strides} {kwargs}")


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("mode", ["max", "avg"])
def test_pooling3d_matches_torch(seed, mode):
    rng = np.random.default_rng(seed)
    pool = tuple(int(k) for k in rng.integers(1, 4, 3))
    strides = tuple(int(s) for s in rng.integers(1, 3, 3))
    padding, data_format = str(rng.choice(["valid", "same"])), str(rng.choice(["channels_last", "channels_first"]))
    spatial = tuple(int(n) for n in rng.integers(3, 7, 3))
    cls = L.MaxPooling3D if mode == "max" else L.AveragePooling3D
    layer = cls(pool, strides, padding, data_format, dtype="float64")
    x = rng.standard_normal((2,) + (spatial + (3,) if data_format == "channels_last" else (3,) + spatial))
    if seed % 3 == 0:
        x = np.maximum(x, 0)                # ReLU's zeros: the first maximum takes the gradient

    def reference(x_t):
        if padding == "valid":
            return (F.max_pool3d if mode == "max" else F.avg_pool3d)(x_t, pool, strides)
        if mode == "max":
            return F.max_pool3d(_same_pad(x_t, spatial, pool, strides, value=-np.inf), pool, strides)
        cells = F.avg_pool3d(_same_pad(torch.ones_like(x_t), spatial, pool, strides), pool, strides)
        return F.avg_pool3d(_same_pad(x_t, spatial, pool, strides), pool, strides) / cells    # real cells only
    y, want_y, grad_x, want_gx, _ = _layer_vs(layer, x, reference, rng, data_format)
    np.testing.assert_allclose(y, want_y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad_x, want_gx, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_global_pooling_upsampling_padding_and_cropping_match_torch(data_format):
    rng = np.random.default_rng(3)
    spatial = (3, 4, 5)
    x = rng.standard_normal((2,) + (spatial + (2,) if data_format == "channels_last" else (2,) + spatial))
    x[0, 0, 0, 0, 0] = x[0, 1, 0, 0, 0] = 9.0                  # a tie: the first maximum takes the gradient
    cases = [
        (L.GlobalMaxPooling3D(data_format=data_format), lambda t: F.max_pool3d(t, t.shape[2:]).flatten(1)),
        (L.GlobalAveragePooling3D(data_format=data_format, keepdims=True), lambda t: t.mean(dim=(2, 3, 4),
                                                                                             keepdim=True)),
        (L.UpSampling3D((2, 1, 3), data_format=data_format), lambda t: F.interpolate(t, scale_factor=(2, 1, 3))),
        (L.ZeroPadding3D(((1, 0), (0, 2), (1, 1)), data_format=data_format), lambda t: F.pad(t, [1, 1, 0, 2, 1, 0])),
        (L.Cropping3D(((1, 0), (0, 2), (1, 1)), data_format=data_format), lambda t: t[:, :, 1:, :2, 1:4]),
    ]
    for layer, reference in cases:
        y, want_y, grad_x, want_gx, _ = _layer_vs(layer, x, reference, rng, data_format)
        if y.ndim == 2:
            want_y = _first(want_y) if data_format == "channels_last" else want_y
        np.testing.assert_allclose(y, want_y, rtol=1e-12, err_msg=layer.name)
        np.testing.assert_allclose(grad_x, want_gx, rtol=1e-12, atol=1e-12, err_msg=layer.name)


@pytest.mark.parametrize("make,shape", [
    (lambda: L.Conv3D(2, (2, 3, 1), strides=(2, 1, 1), padding="same", groups=2, activation="tanh",
                      dtype="float64"), (2, 3, 4, 3, 2)),
    (lambda: L.Conv3DTranspose(2, 2, strides=(2, 1, 2), output_padding=(1, 0, 0), data_format="channels_first",
                               dtype="float64"), (2, 2, 2, 3, 2)),
    (lambda: L.AveragePooling3D((2, 2, 3), strides=1, padding="same", dtype="float64"), (2, 3, 3, 4, 2)),
    (lambda: L.UpSampling3D((1, 2, 2), dtype="float64"), (1, 2, 2, 2, 2)),
])
def test_gradients_match_float64_finite_differences(make, shape):
    assert_layer_matches_finite_differences(make(), np.random.default_rng(10).standard_normal(shape))


def test_spatial_dropout3d_drops_whole_channels_and_is_the_identity_at_inference():
    cs.utils.set_random_seed(4)
    layer = L.SpatialDropout3D(0.5)
    x = np.ones((4, 2, 3, 2, 6), "float32")
    y, _ = layer.forward(x, training=True)
    per_channel = y.reshape(4, -1, 6)
    assert set(np.unique(per_channel)) <= {0.0, 2.0}
    assert (per_channel.min(axis=1) == per_channel.max(axis=1)).all()         # a channel is dropped whole
    assert 0 < (per_channel[:, 0] == 0).sum() < 24
    np.testing.assert_array_equal(layer(x), x)


CONFIG_CASES = [
    ("Conv3D", (4, 3), {}),
    ("Conv3D", (6, (1, 3, 5)), dict(strides=2, padding="SAME", data_format="channels_first", groups=3,
                                    activation="relu", use_bias=False, kernel_initializer="he_normal",
                                    kernel_regularizer="l2")),
    ("Convolution3D", (2, 2), dict(dilation_rate=(1, 2, 2))),
    ("Conv3DTranspose", (4, 3), {}),
    ("Conv3DTranspose", (4, 2, 2, "same", "channels_first", 1), {}),
    ("Convolution3DTranspose", (2, 3), dict(dilation_rate=2)),
    ("MaxPooling3D", (), {}), ("MaxPool3D", ((1, 2, 3), 1, "same"), {}),
    ("AveragePooling3D", (3,), dict(data_format="channels_first")), ("AvgPool3D", ((2, 1, 2),), {}),
    ("GlobalMaxPooling3D", (), {}), ("GlobalAveragePooling3D", (), dict(keepdims=True)),
    ("GlobalMaxPool3D", (), {}), ("GlobalAvgPool3D", (), {}),
    ("UpSampling3D", (), {}), ("UpSampling3D", ((1, 2, 3),), dict(data_format="channels_first")),
    ("ZeroPadding3D", (), {}), ("ZeroPadding3D", (2,), {}), ("ZeroPadding3D", ((1, 2, 3),), {}),
    ("ZeroPadding3D", (((0, 1), (2, 3), (4, 0)),), {}),
    ("Cropping3D", (), {}), ("Cropping3D", (((0, 1), (2, 3), (4, 0)),), dict(data_format="channels_first")),
    ("SpatialDropout3D", (0.3,), {}), ("SpatialDropout3D", (0.5,), dict(data_format="channels_first", seed=2)),
]


@pytest.mark.parametrize("class_name,args,kwargs", CONFIG_CASES)
def test_configs_match_keras_and_rebuild_both_ways(keras, class_name, args, kwargs):
    keras.utils.clear_session()
    ours, theirs = assert_layer_config_matches_keras_both_ways(keras, class_name, kwargs, args=args)
    assert re.sub(r"_\d+$", "", theirs.name) == ours.name


@pytest.mark.parametrize("make,shape", [
    (lambda m: m.Conv3D(2, 3), (None, 5, 4, 6, 2)),
    (lambda m: m.Conv3D(2, 3, strides=2, padding="same", data_format="channels_first"), (None, 2, 5, 4, 7)),
    (lambda m: m.Conv3D(2, 5), (None, 5, 4, 6, 2)),                        # does not fit
    (lambda m: m.Conv3DTranspose(2, 3, strides=(1, 2, 3), padding="same"), (None, 3, 4, 5, 2)),
    (lambda m: m.Conv3DTranspose(2, 3, strides=2, output_padding=1), (None, 3, 4, 5, 2)),
    (lambda m: m.MaxPooling3D((2, 3, 2), strides=(1, 2, 2), padding="same"), (None, 5, 5, 3, 1)),
    (lambda m: m.AveragePooling3D(3), (None, 2, 5, 5, 1)),                 # does not fit
    (lambda m: m.Cropping3D(((1, 1), (2, 2), (0, 3))), (None, 4, 5, 3, 2)),  # cuts everything
    (lambda m: m.UpSampling3D((2, 1, 3)), (None, None, 4, 5, 2)),
    (lambda m: m.Conv3D(2, 3), (None, 5, 5, 2)),                            # an image: refused
])
def test_output_shapes_and_refusals_match_keras(keras, make, shape):
    assert_output_shape_or_refusal_as_keras(make(L), make(keras.layers), shape, r"^\w+3D\w* '\w+'")


def volume_net(m):
    """A small 3-D CNN (a video or scan classifier with a decoder branch) in Keras' API."""
    layers = m.layers
    inputs = m.Input((6, 8, 8, 2))
    x = layers.BatchNormalization()(layers.Conv3D(4, 3, padding="same", activation="relu")(inputs))
    x = layers.MaxPooling3D((1, 2, 2))(x)
    up = layers.Conv3DTranspose(3, 3, strides=(1, 2, 2), padding="same")(layers.SpatialDropout3D(0.0)(x))
    up = layers.Cropping3D(((1, 0), (0, 0), (1, 1)))(layers.ZeroPadding3D(((0, 1), (0, 0), (0, 2)))(up))
    up = layers.AveragePooling3D(2, padding="same")(layers.UpSampling3D((1, 1, 2))(up))
    pooled = layers.Concatenate()([layers.GlobalAveragePooling3D()(x), layers.GlobalMaxPooling3D()(up)])
    return m.Model(inputs, layers.Dense(3, activation="softmax")(pooled))


def test_a_keras_file_loads_trains_a_step_as_keras_and_saves_back(keras, tmp_path):
    keras.utils.set_random_seed(5)
    theirs = volume_net(keras)
    theirs.save(tmp_path / "volume.keras")
    ours = cs.models.load_model(tmp_path / "volume.keras")
    assert [type(a).__name__ for a in ours.layers] == [type(b).__name__ for b in theirs.layers]
    assert ours.count_params() == theirs.count_params()
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 6, 8, 8, 2)).astype("float32")
    y = np.eye(3, dtype="float32")[[0, 2, 1]]
    # (its dropout's rate is 0: the two libraries' draws differ)
    assert_step_and_file_match_keras(keras, ours, theirs, x, y, "categorical_crossentropy", tmp_path)


def test_the_analysis_counts_a_volume_and_explains_it():
    model = cs.Sequential([L.Input((8, 8, 8, 2)), L.Conv3D(4, 3, padding="same", activation="relu"),
                           L.MaxPooling3D(), L.Conv3D(2, (1, 2, 3))])
    first, pool, last = cs.models.analysis.analyze(model).layers
    assert (first.params, first.macs, first.kernels) == (4 * (2 * 27 + 1), 8 * 8 * 8 * 4 * 2 * 27, 8)
    assert pool.pool_ops == (4 * 4 * 4 * 4) * 7
    assert [(f.size, f.jump, f.start) for f in last.receptive_field] == [(4, 2, -1), (6, 2, -1), (8, 2, -1)]
    text = str(cs.explain(model))
    assert "filters × (in·kd·kh·kw + 1) = 4 × (2·3·3·3 + 1) = 220" in text
    assert "depth 8 → 8: padding \"same\" gives ⌈W/S⌉ = ⌈8/1⌉ = 8, padding actually added: 1 front, 1 back" in text
    assert "each output unit sees 4×6×8 input cells (depth × height × width)" in text
    assert "깊이 8 → 4" in str(cs.explain(model, lang="ko"))


@pytest.mark.parametrize("path", ["depth_slices", "taps"])
def test_max_pooling3d_sends_a_nan_windows_gradient_to_its_nan_as_torch(monkeypatch, path):
    """A window holding NaN gives NaN (np.maximum) and its gradient goes where PyTorch sends it (the 2-D op's
    rule: a NaN wins over numbers, a later NaN over an earlier one), along the depth axis too."""
    from convscope.ops import volume
    monkeypatch.setattr(volume, "_POOL_PATHS", tuple(p for p in volume._POOL_PATHS if p[0] == path))
    x = np.random.default_rng(7).standard_normal((1, 4, 2, 4, 1))
    x[0, 1, 0, 1, 0] = x[0, 0, 1, 2, 0] = x[0, 3, 1, 3, 0] = x[0, 2, 0, 0, 0] = np.nan
    layer = L.MaxPooling3D((2, 2, 4), dtype="float64")
    y, ctx = forward(layer, x)
    x_t = torch.tensor(np.ascontiguousarray(_first(x)), requires_grad=True)
    y_t = F.max_pool3d(x_t, (2, 2, 4))
    y_t.backward(torch.ones_like(y_t))
    grad_x, _ = backward(layer, ctx, np.ones_like(y))
    assert np.isnan(y).all() and np.isnan(y_t.detach().numpy()).all()
    np.testing.assert_array_equal(grad_x, _last(x_t.grad.numpy()))


def test_explaining_a_sequential_volume_model_follows_its_first_layer_field():
    for first, expected in [(L.Conv3D(2, 3), "  depth: size 1 + (3 − 1)·1 = 3"),
                            (L.UpSampling3D(), "the receptive field is not followed through UpSampling3D"),
                            (L.GlobalMaxPooling3D(), "each unit sees the whole input")]:
        text = str(cs.explain(cs.Sequential([L.Input((8, 8, 8, 2)), first])))
        assert expected in text, type(first).__name__


def test_a_pool_deeper_than_128_slices_keeps_its_first_maxima_for_training():
    """The depth path's index of each window's first maximum holds 129 depth taps (an int8 one overflowed)."""
    x = np.random.default_rng(9).standard_normal((1, 130, 2, 2, 1))
    layer = L.MaxPooling3D((129, 2, 2), strides=1, dtype="float64")
    y, ctx = forward(layer, x)
    grad_x, _ = backward(layer, ctx, np.ones_like(y))
    x_t = torch.tensor(_first(x), requires_grad=True)
    y_t = F.max_pool3d(x_t, (129, 2, 2), stride=1)
    y_t.backward(torch.ones_like(y_t))
    np.testing.assert_array_equal(y, _last(y_t.detach().numpy()))
    np.testing.assert_array_equal(grad_x, _last(x_t.grad.numpy()))
