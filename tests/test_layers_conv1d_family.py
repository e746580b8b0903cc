"""DepthwiseConv1D, SeparableConv1D and Conv1DTranspose (layers/conv1d_family.py).

Oracles: Keras 3.15.1 on its torch backend for configs, defaults, output shapes, refusals and files, and
(through torch's autograd on Keras' own layers, which compute with PyTorch's convolutions and Keras'
padding rules) for outputs and every gradient on random configurations; float64 finite differences.
"""

import re

import numpy as np
import pytest

import convscope as cs
from _oracle import (assert_layer_config_matches_keras_both_ways, assert_layer_matches_keras_through_autograd,
                     assert_output_shape_or_refusal_as_keras)
from _gradcheck import assert_layer_matches_finite_differences
from convscope import layers as L

torch = pytest.importorskip("torch")

CLASSES = ["DepthwiseConv1D", "SeparableConv1D", "Conv1DTranspose"]


def random_case(name, rng):
    """(positional args, keyword args, input length) of a random configuration Keras accepts."""
    k = int(rng.integers(1, 5))
    kwargs = dict(padding=str(rng.choice(["valid", "same"])), activation=str(rng.choice(["linear", "relu", "tanh"])),
                  use_bias=bool(rng.random() < 0.8), data_format=str(rng.choice(["channels_last", "channels_first"])))
    if rng.random() < 0.5:
        kwargs["strides"] = int(rng.integers(1, 4))
    else:
        kwargs["dilation_rate"] = int(rng.integers(1, 3))
    if name != "Conv1DTranspose":
        kwargs["depth_multiplier"] = int(rng.integers(1, 3))
    elif kwargs.get("strides", 1) > 1 and rng.random() < 0.5:
        kwargs["output_padding"] = int(rng.integers(0, kwargs["strides"]))
    args = (k,) if name == "DepthwiseConv1D" else (int(rng.integers(1, 5)), k)
    span = kwargs.get("dilation_rate", 1) * (k - 1) + 1
    return args, kwargs, int(rng.integers(span, span + 9))


@pytest.mark.parametrize("name", CLASSES)
@pytest.mark.parametrize("seed", range(12))
def test_outputs_and_gradients_match_keras_on_random_configurations(keras, name, seed):
    rng = np.random.default_rng(seed)
    args, kwargs, length = random_case(name, rng)
    channels = int(rng.integers(1, 4))
    shape = (3, length, channels) if kwargs["data_format"] == "channels_last" else (3, channels, length)
    assert_layer_matches_keras_through_autograd(getattr(L, name)(*args, **kwargs),
                                                getattr(keras.layers, name)(*args, **kwargs), shape, rng,
                                                f"{name}{args} {kwargs} on {shape}")


@pytest.mark.parametrize("make,shape", [
    (lambda: L.DepthwiseConv1D(3, strides=2, depth_multiplier=2, padding="same", dtype="float64"), (2, 7, 2)),
    (lambda: L.SeparableConv1D(3, 2, dilation_rate=2, data_format="channels_first", activation="tanh",
                               dtype="float64"), (2, 2, 6)),
    (lambda: L.Conv1DTranspose(2, 3, strides=2, output_padding=1, padding="same", activation="elu",
                               dtype="float64"), (2, 4, 3)),
])
def test_gradients_match_float64_finite_differences(make, shape):
    """d sum(w * y) / d x and / d each weight, central differences in float64."""
    assert_layer_matches_finite_differences(make(), np.random.default_rng(10).standard_normal(shape))


CONFIG_CASES = [
    ("DepthwiseConv1D", (3,), {}),
    ("DepthwiseConv1D", ((5,), 2, "SAME", 3, "channels_first", 1, "relu"), dict(use_bias=False)),
    ("SeparableConv1D", (8, 3), {}),
    ("SeparableConv1D", (4, 2), dict(dilation_rate=2, depth_multiplier=2, pointwise_initializer="he_normal",
                                     depthwise_regularizer="l2", bias_constraint="non_neg")),
    ("SeparableConvolution1D", (4, 3), {}),
    ("Conv1DTranspose", (6, 3), {}),
    ("Conv1DTranspose", (6, 4, 3, "same", 2), dict(data_format="channels_first", kernel_initializer="ones")),
    ("Convolution1DTranspose", (2, 2), dict(strides=2)),
]


@pytest.mark.parametrize("class_name,args,kwargs", CONFIG_CASES)
def test_configs_match_keras_and_rebuild_both_ways(keras, class_name, args, kwargs):
    keras.utils.clear_session()
    ours, theirs = assert_layer_config_matches_keras_both_ways(keras, class_name, kwargs, args=args)
    assert re.sub(r"_\d+$", "", theirs.name) == ours.name


@pytest.mark.parametrize("make,shape", [
    (lambda m: m.DepthwiseConv1D(4), (None, 3, 2)),                              # the window does not fit
    (lambda m: m.DepthwiseConv1D(4, padding="same"), (None, 3, 2)),
    (lambda m: m.SeparableConv1D(3, 5, strides=2), (None, 9, 4)),
    (lambda m: m.SeparableConv1D(3, 5, dilation_rate=3), (None, 12, 4)),
    (lambda m: m.Conv1DTranspose(3, 4, strides=3, padding="valid"), (None, 5, 2)),
    (lambda m: m.Conv1DTranspose(3, 4, strides=3, output_padding=2), (None, 5, 2)),
    (lambda m: m.Conv1DTranspose(3, 3, data_format="channels_first"), (None, 2, 5)),
    (lambda m: m.DepthwiseConv1D(3), (None, 5, 5, 2)),                           # an image: refused
])
def test_output_shapes_and_refusals_match_keras(keras, make, shape):
    assert_output_shape_or_refusal_as_keras(make(L), make(keras.layers), shape,
                                            r"(DepthwiseConv1D|SeparableConv1D|Conv1DTranspose) '\w+'")


@pytest.mark.parametrize("factory,pattern", [
    (lambda: L.DepthwiseConv1D(3, padding="causal"), r"DepthwiseConv1D 'depthwise_conv1d': argument `padding` "
                                                     r"must be 'valid' or 'same', got 'causal'"),
    (lambda: L.SeparableConv1D(4, (3, 3)), r"SeparableConv1D 'separable_conv1d': argument `kernel_size`"),
    (lambda: L.SeparableConv1D(0, 3), r"SeparableConv1D 'separable_conv1d': argument `filters` must be a positive"),
    (lambda: L.Conv1DTranspose(4, 3, strides=2, output_padding=2),
     r"Conv1DTranspose 'conv1d_transpose': argument `output_padding` must be strictly less than `strides`"),
    (lambda: L.DepthwiseConv1D(3, depth_multiplier=0), r"argument `depth_multiplier` must be a positive int, got 0"),
])
def test_bad_arguments_are_refused_by_name(factory, pattern):
    with pytest.raises(ValueError, match=pattern):
        factory()


def sequence_model(m):
    inputs = m.Input((16, 3))
    x = m.layers.SeparableConv1D(8, 3, padding="same", activation="relu", depth_multiplier=2)(inputs)
    x = m.layers.DepthwiseConv1D(3, strides=2, padding="same")(x)
    x = m.layers.Conv1DTranspose(4, 3, strides=2, padding="same", output_padding=1)(x)
    x = m.layers.GlobalAveragePooling1D()(m.layers.Add()([x, m.layers.Conv1D(4, 1)(inputs)]))
    return m.Model(inputs, m.layers.Dense(2, activation="softmax")(x))


def test_a_keras_file_with_the_layers_loads_with_its_outputs_and_trains_as_keras(keras, tmp_path):
    keras.utils.set_random_seed(1)
    theirs = sequence_model(keras)
    path = tmp_path / "seq.keras"
    theirs.save(path)
    ours = cs.models.load_model(path)
    assert [type(a).__name__ for a in ours.layers] == [type(b).__name__ for b in theirs.layers]
    assert ours.count_params() == theirs.count_params()
    x = np.random.default_rng(4).standard_normal((5, 16, 3)).astype("float32")
    y = np.eye(2, dtype="float32")[[0, 1, 1, 0, 1]]
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    for model in (ours, theirs):
        model.compile(optimizer="sgd", loss="categorical_crossentropy")
    ours.train_on_batch(x, y)
    theirs.train_on_batch(x, y)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    again = tmp_path / "again.keras"
    ours.save(again)
    back = keras.models.load_model(again)
    np.testing.assert_allclose(back.predict(x, verbose=0), ours.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_the_analysis_counts_what_keras_counts_and_shows_the_formulas():
    model = sequence_model(cs)
    rows = {r.name: r for r in cs.models.analysis.analyze(model).layers}
    separable, depthwise, transpose = rows["separable_conv1d"], rows["depthwise_conv1d"], rows["conv1d_transpose"]
    assert (separable.kind, separable.params) == ("separable_conv", 3 * 3 * 2 + 6 * 8 + 8)
    assert separable.macs == 16 * 3 * 2 * 3 + 16 * 6 * 8
    assert (depthwise.kind, depthwise.params, depthwise.kernels) == ("depthwise_conv", 3 * 8 + 8, 8)
    assert (transpose.kind, transpose.params, transpose.kernels) == ("conv_transpose", 3 * 4 * 8 + 4, 32)
    assert transpose.output_shape == (None, 16, 4)
    text = str(cs.explain(model))
    assert "conv1d_transpose (Conv1DTranspose): (None, 8, 8) → (None, 16, 4)" in text
    assert "k·filters·in + filters = 3·4·8 + 4 = 100 (kernel (k, filters, in)" in text      # a 1-D window's symbols
    assert "depthwise k·in·depth_multiplier + pointwise in·depth_multiplier·filters + filters = 3·3·2 + 3·2·8 + 8 = " \
           "74" in text
    assert "a Conv1D with groups = in" in text and "Conv1DTranspose is the gradient of a Conv1D" in text
    korean = str(cs.explain(model, lang="ko"))
    assert "k·필터 수·in + 필터 수 = 3·4·8 + 4 = 100개 (커널 모양 (k, filters, in)" in korean
    assert "Conv1DTranspose는 Conv1D의 입력에 대한 기울기 연산입니다" in korean


def test_onnx_export_agrees_with_onnx_runtime(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    cs.utils.set_random_seed(2)
    model = sequence_model(cs)
    path = tmp_path / "seq.onnx"
    model.export(path, format="onnx")
    x = np.random.default_rng(5).standard_normal((3, 16, 3)).astype("float32")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
