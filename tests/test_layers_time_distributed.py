"""`TimeDistributed` (Keras' wrapper) against Keras 3.15.1 on torch's autograd: outputs and gradients, a
BatchNormalization's per-step statistics in training, configs and `.keras` files both ways (the wrapped layer's
weights under `<wrapper>/layer`), a training step, float64 finite differences for the weights shared by the steps,
the analysis and explanation, the ONNX export, and the checks of its arguments."""

import json

import numpy as np
import pytest

import convscope as cs
from convscope import layers as L
from _calls import backward, forward
from _gradcheck import assert_gradients_close, numerical_gradient
from _oracle import (assert_layer_matches_keras_through_autograd, assert_step_and_file_match_keras,
                     assert_training_call_matches_keras, comparable_config)


@pytest.mark.parametrize("make,shape", [
    (lambda lib: lib.layers.Conv2D(3, 3, padding="same"), (2, 4, 6, 5, 2)),
    (lambda lib: lib.layers.Dense(4, activation="tanh"), (3, 5, 7)),
    (lambda lib: lib.layers.DepthwiseConv2D(3, strides=2), (2, 3, 7, 7, 3)),
    (lambda lib: lib.layers.LayerNormalization(), (2, 3, 4, 5)),
], ids=["conv2d", "dense", "depthwise", "layer_norm"])
def test_outputs_and_gradients_match_keras_through_autograd(keras, make, shape):
    ours, theirs = L.TimeDistributed(make(cs)), keras.layers.TimeDistributed(make(keras))
    assert_layer_matches_keras_through_autograd(ours, theirs, shape, np.random.default_rng(len(shape)))


def test_batch_normalization_takes_each_steps_statistics_in_training_as_keras(keras):
    """Keras calls the wrapped layer once per step: each step normalized by its own batch's statistics, the moving
    statistics updated once per step, in turn."""
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((4, 3, 5, 2)) * [1.0, 3.0] + [0.5, -2.0]).astype("float32")
    x[:, 1] *= 4.0                                      # another scale at step 1
    ours = L.TimeDistributed(L.BatchNormalization(momentum=0.5))
    theirs = keras.layers.TimeDistributed(keras.layers.BatchNormalization(momentum=0.5))
    grads = assert_training_call_matches_keras(keras, ours, theirs, x, rng)    # moving statistics compared too
    for variable in theirs.trainable_weights:
        name = variable.path.split("/")[-1]
        mine = next(g for key, g in grads.items() if key.endswith(name))
        np.testing.assert_allclose(mine, variable.value.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_the_steps_weight_gradients_sum_as_float64_finite_differences_say():
    """In training (one call per step) and at inference (the steps as one batch)."""
    rng = np.random.default_rng(3)
    layer = L.TimeDistributed(L.Dense(2, dtype="float64"), dtype="float64")
    x = rng.standard_normal((2, 3, 4))
    layer.build_from_shape((None, 3, 4))
    weights = rng.standard_normal((2, 3, 2))
    for training in (True, False):
        _, ctx = forward(layer, x, training=training)
        grad_x, grads = backward(layer, ctx, weights)
        loss = lambda: float(np.sum(layer(x, training=training) * weights))  # noqa: E731
        assert_gradients_close(grad_x, numerical_gradient(loss, x))
        for variable in layer.weights:
            assert_gradients_close(grads[variable.name], numerical_gradient(loss, variable.value))


def _video_model(lib):
    """A small video classifier: per-frame convolution, batch norm and pooling, then per-frame features."""
    T = lib.layers.TimeDistributed
    return lib.Sequential([lib.Input((3, 8, 8, 2)), T(lib.layers.Conv2D(4, 3, name="frame_conv")),
                           T(lib.layers.BatchNormalization()), T(lib.layers.MaxPooling2D()), T(lib.layers.Flatten()),
                           T(lib.layers.Dense(5)), lib.layers.GlobalAveragePooling1D()])


def test_a_keras_model_loads_trains_a_step_and_saves_as_keras(keras, tmp_path):
    keras.utils.set_random_seed(4)
    theirs = _video_model(keras)
    norm = theirs.layers[1].layer
    norm.moving_mean.assign(np.linspace(-1, 1, 4).astype("float32"))
    norm.moving_variance.assign(np.linspace(0.5, 2, 4).astype("float32"))
    theirs.save(tmp_path / "theirs.keras")
    ours = cs.models.load_model(tmp_path / "theirs.keras")
    assert [type(layer.layer).__name__ for layer in ours.layers[:5]] == \
        ["Conv2D", "BatchNormalization", "MaxPooling2D", "Flatten", "Dense"]
    assert ours.layers[0].layer.name == "frame_conv" and ours.count_params() == theirs.count_params()
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((4, 3, 8, 8, 2)).astype("float32"), rng.standard_normal((4, 5)).astype("float32")
    assert_step_and_file_match_keras(keras, ours, theirs, x, y, "mse", tmp_path)


def test_config_matches_keras_both_ways(keras):
    theirs = keras.layers.TimeDistributed(keras.layers.Conv2D(3, 2, name="inner"), name="td")
    ours = L.deserialize(json.loads(json.dumps(keras.saving.serialize_keras_object(theirs))))
    assert type(ours) is L.TimeDistributed and type(ours.layer) is L.Conv2D and ours.layer.name == "inner"
    assert comparable_config(ours.layer.get_config()) == comparable_config(theirs.layer.get_config())
    back = keras.saving.deserialize_keras_object(json.loads(json.dumps(L.serialize(ours))))
    assert type(back).__name__ == "TimeDistributed" and back.layer.name == "inner"
    assert comparable_config(back.layer.get_config()) == comparable_config(theirs.layer.get_config())
    assert L.LAYER_CLASSES["TimeDistributed"] is L.TimeDistributed


def test_a_wrapper_subclass_keeps_its_own_weights_as_keras(keras):
    """A user's `layers.Wrapper` subclass with a weight of its own (`add_weight`) and a `call`: its weight comes
    first, as in Keras, and trains."""
    def make(lib):
        class Scaled(lib.layers.Wrapper):
            def build(self, input_shape):
                super().build(input_shape)
                self.scale = self.add_weight(shape=(), initializer="ones", name="scale")

            def call(self, x, training=False):
                return self.layer(x) * self.scale
        return Scaled(lib.layers.Dense(2), name="scaled")
    ours, theirs = make(cs), make(keras)
    x = np.ones((1, 3), np.float32)
    ours(x), theirs(x)
    assert [v.name.split("/")[-1] for v in ours.weights] == [v.path.split("/")[-1] for v in theirs.weights]
    assert len(ours.trainable_weights) == len(theirs.trainable_weights) == 3
    _, ctx = forward(ours, x, training=True)
    _, grads = backward(ours, ctx, np.ones((1, 2), np.float32))
    assert ours.scale.name in grads


def test_trainable_false_given_to_the_constructor_trains_the_layer_as_keras_does(keras):
    """Keras sets a wrapper's constructor `trainable` before it holds the layer: the layer stays trainable and a
    model trains it.  Set later, `trainable` reaches the layer (below)."""
    layer = L.TimeDistributed(L.Dense(2), trainable=False)
    theirs = keras.layers.TimeDistributed(keras.layers.Dense(2), trainable=False)
    ours_model = cs.Sequential([cs.Input((3, 4)), layer])
    keras_model = keras.Sequential([keras.Input((3, 4)), theirs])
    assert len(ours_model.trainable_weights) == len(keras_model.trainable_weights) == 2


def test_trainable_reaches_the_wrapped_layer():
    layer = L.TimeDistributed(L.Dense(2))
    layer.build_from_shape((None, 3, 4))
    assert [v.name for v in layer.trainable_weights] == [v.name for v in layer.layer.weights]
    layer.trainable = False
    assert not layer.layer.trainable and layer.trainable_weights == [] and len(layer.non_trainable_weights) == 2
    _, ctx = forward(layer, np.ones((1, 3, 4), np.float32), training=True)
    assert layer.backward(ctx, np.ones((1, 3, 2), np.float32))[1] == []


def test_analysis_and_explain_count_the_steps():
    from convscope.models.analysis import analyze
    model = _video_model(cs)
    rows = analyze(model).layers
    conv = rows[0]
    assert (conv.kind, conv.steps, conv.inner.kind, conv.output_shape) == ("time_distributed", 3, "conv",
                                                                          (None, 3, 6, 6, 4))
    assert conv.macs == 3 * 6 * 6 * 4 * 3 * 3 * 2 and conv.params == 4 * (3 * 3 * 2 + 1)
    text = str(cs.explain(model))
    assert "frame_conv (Conv2D) on each of the 3 time steps: (None, 8, 8, 2) → (None, 6, 6, 4) per step" in text
    assert f"{conv.inner.flops:,} FLOPs per step (the wrapped layer's) × 3 steps = {conv.flops:,} FLOPs" in text
    assert "시간 단계 3개 각각에 적용합니다" in str(cs.explain(model, lang="ko"))
    unknown = cs.Sequential([cs.Input((None, 8, 8, 2)), L.TimeDistributed(L.Conv2D(4, 3), name="td")])
    lines = "\n".join(cs.explain(unknown).layer("td").section("compute"))
    assert "FLOPs per step (the wrapped layer's) × the time steps, unknown here" in lines


def test_arguments_and_inputs_are_checked_by_name():
    with pytest.raises(TypeError, match=r"TimeDistributed 'td': argument `layer` must be a layer instance, got "
                                        r"function"):
        L.TimeDistributed(lambda x: x, name="td")
    layer = L.TimeDistributed(L.Dense(2), name="td")
    with pytest.raises(ValueError, match=r"TimeDistributed 'td': expected one input of rank 3 or more \(batch, "
                                         r"time, ...\), got input shape \(None, 4\)"):
        layer.compute_output_shape((None, 4))


def test_no_time_steps_give_an_empty_time_axis():
    layer = L.TimeDistributed(L.Dense(2))
    out = layer(np.ones((2, 0, 4), np.float32))
    assert out.shape == (2, 0, 2) and out.dtype == np.float32


def test_onnx_export_equals_convscope(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    model = _video_model(cs)
    rng = np.random.default_rng(6)
    for variable in model.weights:
        variable.assign(rng.uniform(0.5, 1.5, variable.shape).astype("float32"))
    path = tmp_path / "video.onnx"
    model.export(path, format="onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = rng.standard_normal((5, 3, 8, 8, 2)).astype("float32")
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
