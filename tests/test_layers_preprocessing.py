"""Rescaling, Normalization, Resizing, LayerNormalization, Permute, Identity, bilinear UpSampling2D and the
activations of Keras' applications (relu6, hard_sigmoid, hard_silu, mish, log_softmax).

Oracles: PyTorch 2 (F.interpolate, F.layer_norm, autograd) for forward and backward passes, central
finite differences in float64, and Keras 3 on torch for configs, defaults, weights, shapes and outputs.
"""

import json

import numpy as np
import pytest

from _calls import backward, forward
from _gradcheck import numerical_gradient
from _oracle import assert_matches
from convscope import activations, backend, ops
from convscope import layers as L
from convscope.models import Sequential, model_from_json

torch = pytest.importorskip("torch")
F = torch.nn.functional
DTYPES = ["float32", "float64"]


def _t(array, grad=True):
    return torch.tensor(np.ascontiguousarray(array), requires_grad=grad)


def _keras_numpy(keras, value):
    return keras.ops.convert_to_numpy(value)


def _comparable(config):
    """A config through JSON, without name and dtype (Keras writes a DTypePolicy dict)."""
    config = json.loads(json.dumps(config))
    config.pop("name", None)
    config.pop("dtype", None)
    for key, value in list(config.items()):
        if isinstance(value, dict) and "module" in value:
            config[key] = {"class_name": value["class_name"], "config": value["config"]}
    return config


def _check_torch_pass(layer, x, torch_fn, rng, dtype):
    """Forward and input gradient of one call against `torch_fn` (x given in our layout)."""
    y, ctx = forward(layer, x)
    x_t = _t(x)
    y_t = torch_fn(x_t)
    assert_matches(y, y_t.detach().numpy(), dtype)
    upstream = rng.standard_normal(y.shape).astype(dtype)
    y_t.backward(torch.tensor(upstream))
    grad, _ = backward(layer, ctx, upstream)
    assert_matches(grad, x_t.grad.numpy(), dtype)


def _check_finite_differences(layer, x, rng, rtol=1e-6):
    """The input gradient of a float64 call against central differences of sum(y * w)."""
    y, ctx = forward(layer, x)
    weights = rng.standard_normal(y.shape)
    grad, _ = backward(layer, ctx, weights)
    numeric = numerical_gradient(lambda: float(np.sum(layer.forward(x)[0] * weights)), x)
    np.testing.assert_allclose(grad, numeric, rtol=rtol, atol=1e-7)


# -- activations -------------------------------------------------------------------------------
NEW_ACTIVATIONS = ["relu6", "hard_sigmoid", "hard_silu", "hard_swish", "mish", "log_softmax"]
TORCH_ACTIVATIONS = {"relu6": F.relu6, "hard_sigmoid": lambda t: F.relu6(t + 3) / 6, "hard_silu": F.hardswish,
                     "hard_swish": F.hardswish, "mish": F.mish, "log_softmax": lambda t: F.log_softmax(t, dim=-1)}


def _activation_inputs(rng, dtype, shape=(4, 6)):
    x = (rng.standard_normal(shape) * 5).astype(dtype)
    x.reshape(-1)[:6] = [-3.5, -2.5, 2.5, 3.5, 5.5, 6.5]      # both sides of each kink
    return x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NEW_ACTIVATIONS)
def test_activations_match_keras_3(keras, name, dtype):
    x = _activation_inputs(np.random.default_rng(len(name)), dtype)
    expected = _keras_numpy(keras, getattr(keras.activations, name)(keras.ops.convert_to_tensor(x)))
    assert_matches(getattr(activations, name)(x), expected, dtype)
    assert_matches(ops.get_activation(name).forward(x), expected, dtype)


def test_hard_sigmoid_is_keras_3s_not_keras_2s():
    """Keras 3: relu6(x + 3) / 6, so 1/6 slope and saturation at +-3 (Keras 2: 0.2 x + 0.5 within +-2.5)."""
    x = np.array([-3.0, -2.6, 1.0, 2.6, 3.0])
    np.testing.assert_allclose(activations.hard_sigmoid(x), np.clip(x + 3, 0, 6) / 6)
    assert not np.allclose(activations.hard_sigmoid(x), np.clip(0.2 * x + 0.5, 0, 1))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NEW_ACTIVATIONS)
@pytest.mark.parametrize("layer_kind", ["Dense", "Conv2D", "Activation"])
def test_activation_strings_in_layers_match_torch(name, layer_kind, dtype):
    rng = np.random.default_rng(7)
    if layer_kind == "Activation":
        layer, x = L.Activation(name, dtype=dtype), _activation_inputs(rng, dtype, (3, 4, 5))
        fn = TORCH_ACTIVATIONS[name]
    elif layer_kind == "Dense":
        layer, x = L.Dense(5, activation=name, dtype=dtype), rng.standard_normal((4, 3)).astype(dtype) * 3
        layer.build_from_shape((None, 3))
        kernel, bias = (torch.tensor(w) for w in layer.get_weights())
        fn = lambda t: TORCH_ACTIVATIONS[name](t @ kernel + bias)  # noqa: E731
    else:
        layer, x = L.Conv2D(4, 3, padding="same", activation=name, dtype=dtype), \
            rng.standard_normal((2, 5, 5, 3)).astype(dtype) * 3
        layer.build_from_shape((None, 5, 5, 3))
        kernel, bias = (torch.tensor(w) for w in layer.get_weights())
        fn = lambda t: TORCH_ACTIVATIONS[name](  # noqa: E731
            F.conv2d(t.permute(0, 3, 1, 2), kernel.permute(3, 2, 0, 1), bias, padding=1).permute(0, 2, 3, 1))
    _check_torch_pass(layer, x, fn, rng, dtype)


@pytest.mark.parametrize("name", NEW_ACTIVATIONS + ["swish", "silu"])
def test_activation_configs_use_keras_names(keras, name):
    for cls, args in (("Activation", ()), ("Dense", (3,)), ("Conv2D", (2, 3))):
        kwargs = {"activation": name}
        ours = getattr(L, cls)(*args, **kwargs).get_config()["activation"]
        theirs = getattr(keras.layers, cls)(*args, **kwargs).get_config()["activation"]
        assert ours == theirs, (cls, name)
    assert activations.serialize(getattr(activations, name)) == keras.activations.serialize(
        getattr(keras.activations, name))


@pytest.mark.parametrize("name", ["relu6", "hard_sigmoid", "hard_silu", "hard_swish", "log_softmax"])
def test_keras_ops_functions_agree_with_the_activations(name):
    """keras.ops.<name> (on a tape) gives the activation's values and derivative."""
    rng = np.random.default_rng(3)
    x = _activation_inputs(rng, "float64")
    activation = ops.get_activation(name)
    upstream = rng.standard_normal(x.shape)
    with ops.Tape() as tape:
        traced = tape.watch(x)
        y = getattr(ops, name)(traced)
    grad = tape.gradient(y, traced, output_gradient=upstream)
    np.testing.assert_allclose(np.asarray(y), activation.forward(x), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(grad), activation.backward(upstream, x, activation.forward(x)),
                               rtol=1e-12)


@pytest.mark.parametrize("name", ["mish", "log_softmax", "hard_silu", "relu6"])
def test_new_activation_derivatives_match_finite_differences(name):
    rng = np.random.default_rng(11)
    x = _activation_inputs(rng, "float64")
    layer = L.Activation(name, dtype="float64")
    _check_finite_differences(layer, x, rng)


# -- Rescaling ---------------------------------------------------------------------------------
RESCALINGS = [(1 / 255.0, 0.0), (2.0, -1.0), ([0.5, 2.0, -1.5], 0.25), (0.5, [1.0, -1.0, 0.5]),
              (np.array([0.2, 0.3, 0.4]), np.array([[0.1, 0.2, 0.3]]))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale,offset", RESCALINGS)
def test_rescaling_matches_torch_and_keras(keras, scale, offset, dtype):
    rng = np.random.default_rng(1)
    x = (rng.uniform(0, 255, (2, 4, 5, 3))).astype(dtype)
    layer = L.Rescaling(scale, offset, dtype=dtype)
    _check_torch_pass(layer, x, lambda t: t * torch.tensor(np.asarray(scale, dtype))
                      + torch.tensor(np.asarray(offset, dtype)), rng, dtype)
    twin = keras.layers.Rescaling(scale, offset, dtype=dtype)
    assert_matches(layer(x), _keras_numpy(keras, twin(x)), dtype)
    assert _comparable(layer.get_config()) == _comparable(twin.get_config())
    rebuilt = L.Rescaling.from_config(json.loads(json.dumps(twin.get_config())) | {"dtype": dtype})
    assert_matches(rebuilt(x), layer(x), dtype)


def test_rescaling_refuses_bad_factors_and_shapes():
    with pytest.raises(TypeError, match=r"Rescaling 'r': argument `scale` must be a number or an array of numbers, "
                                        r"got 'x'"):
        L.Rescaling("x", name="r")
    with pytest.raises(ValueError, match=r"Rescaling 'r': argument `offset` must be finite, got nan"):
        L.Rescaling(1.0, float("nan"), name="r")
    layer = L.Rescaling([1.0, 2.0, 3.0], name="r")
    with pytest.raises(ValueError, match=r"Rescaling 'r': argument `scale` of shape \(3,\) does not broadcast "
                                         r"against an input of shape \(5, 4\)"):
        layer.compute_output_shape((None, 5, 4))
    assert layer.compute_output_shape((None, 5, 3)) == (None, 5, 3)
    assert layer.describe().kind == "rescaling"


# -- Normalization -----------------------------------------------------------------------------
@pytest.mark.parametrize("axis,shape", [(-1, (40, 3)), (-1, (12, 4, 5, 3)), ((1, 2), (10, 4, 3, 2)),
                                        (None, (30, 4)), (1, (9, 3, 2, 2)), ((-1, 1), (8, 2, 3))])
def test_normalization_adapt_gives_keras_weights_and_outputs(keras, axis, shape):
    rng = np.random.default_rng(4)
    data = (rng.standard_normal(shape) * rng.uniform(0.5, 3) + rng.uniform(-2, 2)).astype(np.float32)
    for invert in (False, True):
        ours, theirs = L.Normalization(axis=axis, invert=invert), keras.layers.Normalization(axis=axis, invert=invert)
        ours.adapt(data)
        theirs.adapt(data)
        assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.weights]
        assert [w.dtype for w in ours.get_weights()] == [np.dtype(w.dtype) for w in theirs.get_weights()]
        for got, want in zip(ours.get_weights(), theirs.get_weights()):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        assert ours.count_params() == theirs.count_params()
        x = rng.standard_normal(shape).astype(np.float32)
        np.testing.assert_allclose(ours(x), _keras_numpy(keras, theirs(x)), rtol=1e-5, atol=1e-5)
        assert _comparable(ours.get_config()) == _comparable(theirs.get_config())


def test_normalization_adapt_over_batches_equals_adapt_over_all_data(keras):
    """Batches combined one by one (Keras' formula; Keras' own iterable path needs TensorFlow) give
    the statistics of all the data at once, as Keras' adapt of the concatenated array."""
    rng = np.random.default_rng(5)
    batches = [(rng.standard_normal((n, 4, 3)) * 2 + 1).astype(np.float32) for n in (7, 3, 11)]
    ours, theirs = L.Normalization(axis=-1), keras.layers.Normalization(axis=-1)
    ours.adapt(iter([(b, np.zeros(len(b))) for b in batches]))    # (x, y) batches from a generator
    theirs.adapt(np.concatenate(batches))
    for got, want in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    everything = np.concatenate(batches).reshape(-1, 3)
    np.testing.assert_allclose(ours.mean.numpy(), everything.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(ours.variance.numpy(), everything.var(axis=0), rtol=1e-5)


@pytest.mark.parametrize("axis,mean,variance,shape", [
    (-1, 3.0, 2.0, (4, 3)), (-1, [1.0, 2.0, 3.0], [1.0, 4.0, 0.25], (4, 5, 3)),
    ((1, 2), [0.5, -0.5], [2.0, 3.0], (3, 4, 2)), (None, 1.5, 0.0, (5, 2)),
])
def test_normalization_with_given_statistics_matches_keras(keras, axis, mean, variance, shape):
    rng = np.random.default_rng(6)
    x = rng.standard_normal(shape).astype(np.float32)
    for invert in (False, True):
        ours = L.Normalization(axis=axis, mean=mean, variance=variance, invert=invert)
        theirs = keras.layers.Normalization(axis=axis, mean=mean, variance=variance, invert=invert)
        np.testing.assert_allclose(ours(x), _keras_numpy(keras, theirs(x)), rtol=1e-5, atol=1e-5)
        assert ours.get_weights() == [] and ours.count_params() == theirs.count_params() == 0
        assert _comparable(ours.get_config()) == _comparable(theirs.get_config())
        rebuilt = L.Normalization.from_config(json.loads(json.dumps(theirs.get_config())) | {"dtype": "float32"})
        np.testing.assert_array_equal(rebuilt(x), ours(x))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("invert", [False, True])
def test_normalization_backward_matches_torch(invert, dtype):
    rng = np.random.default_rng(8)
    data = rng.standard_normal((20, 3, 4)).astype(dtype) * 3
    layer = L.Normalization(axis=(1, 2), invert=invert, dtype=dtype)
    layer.adapt(data)
    mean, std = (torch.tensor(v) for v in (layer.mean.numpy(), np.sqrt(layer.variance.numpy())))
    fn = (lambda t: mean + t * std) if invert else (lambda t: (t - mean) / std)
    _check_torch_pass(layer, rng.standard_normal((5, 3, 4)).astype(dtype), fn, rng, dtype)
    _check_finite_differences(L.Normalization(mean=[1.0, 2.0], variance=[4.0, 0.5], invert=invert, dtype="float64"),
                              rng.standard_normal((3, 2)), rng)


def test_normalization_refuses_bad_arguments_and_shapes():
    with pytest.raises(ValueError, match=r"Normalization 'n': arguments `mean` and `variance` must be given "
                                         r"together, got mean=1.0 and variance=None"):
        L.Normalization(mean=1.0, name="n")
    with pytest.raises(ValueError, match=r"Normalization 'n': arguments `mean` and `variance` must have the same "
                                         r"shape, got \(2,\) and \(3,\)"):
        L.Normalization(mean=[1, 2], variance=[1, 2, 3], name="n")
    with pytest.raises(ValueError, match=r"Normalization 'n': argument `variance` must hold finite numbers >= 0"):
        L.Normalization(mean=1.0, variance=-1.0, name="n")
    with pytest.raises(TypeError, match=r"Normalization 'n': argument `axis` must be an int, a tuple of ints or "
                                        r"None, got 'x'"):
        L.Normalization(axis="x", name="n")
    with pytest.raises(ValueError, match=r"Normalization 'n': argument `axis`=\(3,\) must hold axes in \[-2, 2\)"):
        L.Normalization(axis=3, name="n").compute_output_shape((None, 4))
    with pytest.raises(ValueError, match=r"axis 0 of the input shape \(None, 4\) is unknown"):
        L.Normalization(axis=0, name="n").compute_output_shape((None, 4))
    layer = L.Normalization(name="n")
    layer.adapt(np.ones((5, 3)))
    with pytest.raises(ValueError, match=r"Normalization 'n'.adapt: the layer was built for inputs of shape "
                                         r"\(None, 3\), but `data` holds an array of shape \(5, 4\)"):
        layer.adapt(np.ones((5, 4)))
    with pytest.raises(ValueError, match=r"Normalization 'n': expected sizes \(3,\) on axes \(1,\)"):
        layer.compute_output_shape((None, 4))
    with pytest.raises(ValueError, match=r"Normalization 'g'.adapt: the layer was given `mean` and `variance`"):
        L.Normalization(mean=0.0, variance=1.0, name="g").adapt(np.ones((2, 2)))


# -- Resizing and bilinear UpSampling2D ------------------------------------------------------------
def _torch_resize(size, interpolation, data_format="channels_last"):
    """Keras' torch backend: F.interpolate (nearest -> "nearest-exact"), no antialiasing."""
    mode = "bilinear" if interpolation == "bilinear" else "nearest-exact"
    corners = False if interpolation == "bilinear" else None

    def fn(t):
        t = t.permute(0, 3, 1, 2) if data_format == "channels_last" else t
        y = F.interpolate(t, size=tuple(int(s) for s in size), mode=mode, align_corners=corners, antialias=False)
        return y.permute(0, 2, 3, 1) if data_format == "channels_last" else y
    return fn


def _random_resize_case(rng):
    h, w = (int(v) for v in rng.integers(1, 17, 2))
    oh, ow = (int(v) for v in rng.integers(1, 33, 2))
    return (int(rng.integers(1, 4)), h, w, int(rng.integers(1, 4))), (oh, ow)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_resizing_matches_torch_interpolate_on_random_sizes(interpolation, dtype):
    rng = np.random.default_rng(12 if interpolation == "bilinear" else 13)
    for _ in range(60):
        shape, size = _random_resize_case(rng)
        layer = L.Resizing(*size, interpolation=interpolation, dtype=dtype)
        _check_torch_pass(layer, rng.standard_normal(shape).astype(dtype), _torch_resize(size, interpolation), rng,
                          dtype)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("aspect", [None, "crop_to_aspect_ratio", "pad_to_aspect_ratio"])
def test_resizing_matches_keras_on_random_images(keras, interpolation, aspect, data_format):
    rng = np.random.default_rng(14)
    for _ in range(12):
        (n, h, w, c), size = _random_resize_case(rng)
        shape = (n, h, w, c) if data_format == "channels_last" else (n, c, h, w)
        images = rng.uniform(0, 255, shape).astype(np.float32)
        kwargs = dict(interpolation=interpolation, data_format=data_format, **({aspect: True} if aspect else {}))
        if aspect == "pad_to_aspect_ratio":
            kwargs["fill_value"] = float(rng.uniform(-1, 1))
        ours, theirs = L.Resizing(*size, **kwargs), keras.layers.Resizing(*size, **kwargs)
        expected = _keras_numpy(keras, theirs(images))
        assert ours.compute_output_shape((None,) + shape[1:]) == (None,) + expected.shape[1:]
        np.testing.assert_allclose(ours(images), expected, rtol=1e-5, atol=255e-6)
        assert _comparable(ours.get_config()) == _comparable(theirs.get_config())


@pytest.mark.parametrize("aspect", ["crop_to_aspect_ratio", "pad_to_aspect_ratio"])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_resizing_gradients_match_finite_differences(interpolation, aspect):
    rng = np.random.default_rng(15)
    for shape, size in [((1, 5, 3, 2), (4, 4)), ((2, 2, 6, 1), (3, 7)), ((1, 4, 4, 1), (2, 6))]:
        layer = L.Resizing(*size, interpolation=interpolation, dtype="float64", **{aspect: True})
        _check_finite_differences(layer, rng.standard_normal(shape), rng)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_bilinear_upsampling_matches_keras_and_torch(keras, data_format, dtype):
    rng = np.random.default_rng(16)
    for size in [(2, 2), (3, 1), (1, 4), (2, 3)]:
        n, h, w, c = (int(v) for v in rng.integers(1, 7, 4))
        shape = (n, h, w, c) if data_format == "channels_last" else (n, c, h, w)
        x = rng.standard_normal(shape).astype(dtype)
        layer = L.UpSampling2D(size, data_format=data_format, interpolation="bilinear", dtype=dtype)
        _check_torch_pass(layer, x, _torch_resize((h * size[0], w * size[1]), "bilinear", data_format), rng, dtype)
        twin = keras.layers.UpSampling2D(size, data_format=data_format, interpolation="bilinear", dtype=dtype)
        assert_matches(layer(x), _keras_numpy(keras, twin(x)), dtype)
        assert _comparable(layer.get_config()) == _comparable(twin.get_config())
    _check_finite_differences(L.UpSampling2D((2, 3), interpolation="bilinear", dtype="float64"),
                              rng.standard_normal((2, 3, 2, 2)), rng)


def test_resizing_and_upsampling_refuse_what_they_lack():
    with pytest.raises(ValueError, match=r"Resizing 'r': argument `interpolation` must be one of \('bilinear', "
                                         r"'nearest'\), got 'bicubic' \(convscope does not have it yet\)"):
        L.Resizing(4, 4, interpolation="bicubic", name="r")
    with pytest.raises(ValueError, match=r"UpSampling2D 'u': argument `interpolation` must be one of "
                                         r"\('bilinear', 'nearest'\), got 'cubic'"):
        L.UpSampling2D(interpolation="cubic", name="u")
    assert L.UpSampling2D(interpolation="Bilinear").interpolation == "bilinear"     # Keras lower-cases it
    with pytest.raises(TypeError, match=r"Resizing 'r': argument `height` must be a positive int, got 2.5"):
        L.Resizing(2.5, 4, name="r")
    with pytest.raises(ValueError, match=r"Resizing 'r': argument `width` must be a positive int, got 0"):
        L.Resizing(2, 0, name="r")
    with pytest.raises(ValueError, match=r"Resizing 'r': only one of `crop_to_aspect_ratio` and "
                                         r"`pad_to_aspect_ratio` can be True"):
        L.Resizing(2, 2, crop_to_aspect_ratio=True, pad_to_aspect_ratio=True, name="r")
    with pytest.raises(ValueError, match=r"Resizing 'r': argument `antialias` must be False"):
        L.Resizing(2, 2, antialias=True, name="r")
    with pytest.raises(ValueError, match=r"Resizing 'r': argument `fill_mode` must be 'constant'"):
        L.Resizing(2, 2, fill_mode="reflect", name="r")
    with pytest.raises(ValueError, match=r"Resizing 'r': expected a 4-D input"):
        L.Resizing(2, 2, name="r").compute_output_shape((None, 5, 3))
    assert L.Resizing(2, 3, data_format="channels_first").compute_output_shape((None, 4, None, 9)) == (None, 4, 2, 3)


# -- LayerNormalization ------------------------------------------------------------------------------
def _torch_layer_norm(axes, gamma, beta, epsilon):
    """The definition over any axes (biased variance), in torch, for autograd."""
    def fn(t):
        mean = t.mean(dim=axes, keepdim=True)
        var = ((t - mean) ** 2).mean(dim=axes, keepdim=True)
        shape = [t.shape[a] if a in axes else 1 for a in range(t.ndim)]
        y = (t - mean) / torch.sqrt(var + epsilon)
        y = y if gamma is None else y * gamma.reshape(shape)
        return y if beta is None else y + beta.reshape(shape)
    return fn


def _layer_norm_case(rng, dtype, shape, axis, center=True, scale=True, epsilon=1e-3):
    layer = L.LayerNormalization(axis=axis, center=center, scale=scale, epsilon=epsilon, dtype=dtype)
    layer.build_from_shape((None,) + shape[1:])
    layer.set_weights([rng.uniform(0.5, 2, w.shape) if w is layer.gamma else rng.standard_normal(w.shape)
                       for w in layer.weights])
    x = (rng.standard_normal(shape) * rng.uniform(0.5, 4) + rng.uniform(-3, 3)).astype(dtype)
    return layer, x


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_normalization_matches_torch_layer_norm_on_random_cases(dtype):
    rng = np.random.default_rng(17)
    for _ in range(30):
        rank = int(rng.integers(2, 5))
        shape = tuple(int(v) for v in rng.integers(1, 6, rank))
        trailing = int(rng.integers(1, rank))
        axis = -1 if trailing == 1 and rng.random() < 0.5 else list(range(rank - trailing, rank))
        center, scale = bool(rng.random() < 0.8), bool(rng.random() < 0.8)
        epsilon = float(rng.choice([1e-3, 1e-5, 0.1]))
        layer, x = _layer_norm_case(rng, dtype, shape, axis, center, scale, epsilon)
        gamma_t = _t(layer.gamma.numpy()) if scale else None
        beta_t = _t(layer.beta.numpy()) if center else None
        y, ctx = forward(layer, x)
        x_t = _t(x)
        y_t = F.layer_norm(x_t, shape[rank - trailing:], gamma_t, beta_t, epsilon)
        assert_matches(y, y_t.detach().numpy(), dtype)
        upstream = rng.standard_normal(shape).astype(dtype)
        y_t.backward(torch.tensor(upstream))
        grad, grads = backward(layer, ctx, upstream)
        assert_matches(grad, x_t.grad.numpy(), dtype)
        for variable, reference in ((layer.gamma, gamma_t), (layer.beta, beta_t)):
            if variable is not None:
                assert_matches(grads[variable.name], reference.grad.numpy(), dtype)


@pytest.mark.parametrize("axis,shape", [(1, (3, 4, 5)), ([1, 3], (2, 3, 4, 5)), ([2, 1], (2, 3, 4, 2))])
def test_layer_normalization_over_any_axes_matches_its_definition(axis, shape):
    rng = np.random.default_rng(18)
    for dtype in DTYPES:
        layer, x = _layer_norm_case(rng, dtype, shape, axis)
        axes = sorted(a % len(shape) for a in (axis if isinstance(axis, list) else [axis]))
        _check_torch_pass(layer, x, _torch_layer_norm(axes, torch.tensor(layer.gamma.numpy()),
                                                      torch.tensor(layer.beta.numpy()), 1e-3), rng, dtype)
    layer, x = _layer_norm_case(rng, "float64", shape, axis, epsilon=0.01)
    _check_finite_differences(layer, x, rng)
    y, ctx = forward(layer, x)
    weights = rng.standard_normal(y.shape)
    _, grads = backward(layer, ctx, weights)
    for variable in (layer.gamma, layer.beta):
        numeric = numerical_gradient(lambda: float(np.sum(layer.forward(x)[0] * weights)), variable.value)
        np.testing.assert_allclose(grads[variable.name], numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("kwargs,shape", [({}, (3, 5)), ({"axis": [2, 3]}, (2, 3, 4, 5)),
                                          ({"center": False, "epsilon": 1e-5}, (2, 4, 6)), ({"scale": False}, (2, 6)),
                                          ({"axis": -2}, (2, 5, 5))])
def test_layer_normalization_matches_keras(keras, kwargs, shape):
    """Outputs are compared where the normalized axes end at the last one: for others (axis=-2 here)
    Keras 3.15's torch backend calls F.layer_norm, which normalizes the trailing axes instead (the
    definition, which convscope follows, is checked against torch above)."""
    rng = np.random.default_rng(19)
    ours, theirs = L.LayerNormalization(**kwargs), keras.layers.LayerNormalization(**kwargs)
    assert _comparable(ours.get_config()) == _comparable(theirs.get_config())
    theirs.build(shape)
    ours.build_from_shape((None,) + shape[1:])
    assert _comparable(ours.get_config()) == _comparable(theirs.get_config())     # axis a sorted list once built
    assert [w.shape for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
    assert [w.name.split("/")[-1] for w in ours.weights] == [w.name for w in theirs.weights]
    assert ours.count_params() == theirs.count_params()
    weights = [w + rng.uniform(0.1, 0.5, w.shape).astype(np.float32) for w in theirs.get_weights()]
    theirs.set_weights(weights)
    ours.set_weights(weights)
    x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
    if ours.axis[-1] in (-1, len(shape) - 1):
        np.testing.assert_allclose(ours(x), _keras_numpy(keras, theirs(x)), rtol=1e-5, atol=1e-5)


def test_layer_normalization_refusals_and_frozen_gradients():
    with pytest.raises(TypeError, match=r"LayerNormalization 'n': argument `axis` must be an int or a list/tuple "
                                        r"of ints, got 'x'"):
        L.LayerNormalization(axis="x", name="n")
    with pytest.raises(ValueError, match=r"LayerNormalization 'n': argument `epsilon` must be a finite number in "
                                         r"\(0.0, inf\], got 0.0"):
        L.LayerNormalization(epsilon=0.0, name="n")
    with pytest.raises(ValueError, match=r"LayerNormalization 'n': argument `rms_scaling` must be False"):
        L.LayerNormalization(rms_scaling=True, name="n")
    with pytest.raises(ValueError, match=r"LayerNormalization 'n'.*out of range.*\(input shape \(None, 4\)\)"):
        L.LayerNormalization(axis=2, name="n").compute_output_shape((None, 4))
    with pytest.raises(ValueError, match=r"LayerNormalization 'n': argument `axis`=0 must name feature axes"):
        L.LayerNormalization(axis=0, name="n").compute_output_shape((None, 4))
    with pytest.raises(ValueError, match=r"must name feature axes of known size.*\(None, None\)"):
        L.LayerNormalization(name="n").compute_output_shape((None, None))
    layer = L.LayerNormalization(trainable=False)
    y, ctx = forward(layer, np.random.default_rng(0).standard_normal((2, 3)))
    grad, grads = backward(layer, ctx, np.ones_like(y))
    assert grads == {} and grad.shape == (2, 3)
    with backend.no_backward():
        assert layer.forward(y)[1] is None
    assert layer.describe().kind == "layer_norm" and layer.describe().weights["gamma"] is layer.gamma


# -- Permute and Identity ----------------------------------------------------------------------------
@pytest.mark.parametrize("dims", [(2, 1), (3, 1, 2), (1, 2, 3), (2, 3, 1), (4, 2, 1, 3)])
def test_permute_matches_torch_and_keras(keras, dims):
    rng = np.random.default_rng(20)
    shape = (2,) + tuple(int(v) for v in rng.integers(1, 5, len(dims)))
    for dtype in DTYPES:
        x = rng.standard_normal(shape).astype(dtype)
        layer = L.Permute(dims, dtype=dtype)
        _check_torch_pass(layer, x, lambda t: t.permute((0,) + dims), rng, dtype)
        twin = keras.layers.Permute(dims, dtype=dtype)
        np.testing.assert_array_equal(layer(x), _keras_numpy(keras, twin(x)))
    assert layer.compute_output_shape((None,) + shape[1:]) == tuple(twin.compute_output_shape((None,) + shape[1:]))
    assert _comparable(layer.get_config()) == _comparable(twin.get_config())


def test_permute_and_identity_refusals_and_identity():
    with pytest.raises(ValueError, match=r"Permute 'p': argument `dims` must be a permutation of 1..2 \(the axes "
                                         r"after the batch axis, counted from 1\), got \(0, 1\)"):
        L.Permute((0, 1), name="p")
    with pytest.raises(TypeError, match=r"Permute 'p': argument `dims` must be a tuple of ints, got 3"):
        L.Permute(3, name="p")
    with pytest.raises(ValueError, match=r"Permute 'p': expected an input of rank 3 \(dims=\(2, 1\) and the batch "
                                         r"axis\), got shape \(None, 4\)"):
        L.Permute((2, 1), name="p").compute_output_shape((None, 4))
    layer, x = L.Identity(), np.random.default_rng(1).standard_normal((2, 3, 4))
    y, ctx = forward(layer, x)
    grad, grads = backward(layer, ctx, 2 * x)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(grad, 2 * x)
    assert grads == {} and layer.built and layer.count_params() == 0 and layer.describe().kind == "identity"


def test_permute_and_identity_configs_match_keras(keras):
    assert _comparable(L.Identity().get_config()) == _comparable(keras.layers.Identity().get_config())
    assert L.Identity().compute_output_shape((None, 3, 4)) == (None, 3, 4)


# -- the layers in models, Keras both ways -------------------------------------------------------
def _keras_model(keras):
    K = keras.layers
    return keras.Sequential([
        keras.Input((9, 7, 3)),
        K.Rescaling(1 / 127.5, offset=-1.0),
        K.Normalization(mean=[0.1, -0.2, 0.3], variance=[1.5, 0.5, 2.0]),
        K.Resizing(12, 10),
        K.Conv2D(4, 3, padding="same", activation="hard_swish"),
        K.LayerNormalization(axis=[1, 2, 3]),
        K.UpSampling2D((2, 1), interpolation="bilinear"),
        K.Activation("mish"),
        K.Resizing(6, 6, interpolation="nearest", crop_to_aspect_ratio=True),
        K.Permute((3, 1, 2)),
        K.Identity(),
        K.Conv2D(2, 3, data_format="channels_first", activation="relu6"),
        K.Flatten(),
        K.Dense(5, activation="log_softmax"),
    ])


def test_keras_json_rebuilds_the_same_model_and_numbers(keras):
    twin = _keras_model(keras)
    rng = np.random.default_rng(21)
    twin.set_weights([w + rng.uniform(-0.3, 0.3, w.shape).astype(w.dtype) for w in twin.get_weights()])
    model = model_from_json(twin.to_json())
    assert [type(layer).__name__ for layer in model.layers] == [type(layer).__name__ for layer in twin.layers]
    assert [layer.output_shape for layer in model.layers] == [tuple(layer.output.shape) for layer in twin.layers]
    assert [layer.count_params() for layer in model.layers] == [layer.count_params() for layer in twin.layers]
    model.set_weights(twin.get_weights())
    x = rng.uniform(0, 255, (3, 9, 7, 3)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0), twin.predict(x, verbose=0), rtol=1e-4, atol=1e-4)
    back = keras.models.model_from_json(model.to_json())
    back.set_weights(model.get_weights())
    np.testing.assert_allclose(back.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-4, atol=1e-4)


def test_adapted_normalization_weights_load_into_keras_and_back(keras):
    rng = np.random.default_rng(22)
    data = rng.standard_normal((50, 4)).astype(np.float32) * 3 + 2
    ours = Sequential([L.Normalization(input_shape=(4,)), L.Dense(2)])
    ours.layers[0].adapt(data)
    twin = keras.models.model_from_json(ours.to_json())
    twin.set_weights(ours.get_weights())
    np.testing.assert_allclose(twin.predict(data, verbose=0), ours.predict(data, verbose=0), rtol=1e-5, atol=1e-5)
    assert [w.dtype for w in twin.get_weights()] == [w.dtype for w in ours.get_weights()]


def test_calls_leave_no_state_on_the_layers():
    rng = np.random.default_rng(23)
    x = rng.standard_normal((2, 4, 4, 3))
    built = [L.Rescaling([1.0, 2.0, 3.0]), L.Normalization(), L.Resizing(3, 5), L.LayerNormalization(),
             L.Permute((3, 2, 1)), L.Identity(), L.UpSampling2D(interpolation="bilinear")]
    for layer in built:
        forward(layer, x)
        before = dict(vars(layer))
        y, ctx = layer.forward(x, training=True)
        backward(layer, ctx, np.ones_like(y))
        assert vars(layer).keys() == before.keys() and all(vars(layer)[k] is before[k] for k in before)
