"""Sequential: building, shape inference errors, weights, forward/backward, predict, config and JSON."""

import json
import subprocess
import sys

import numpy as np
import pytest

from _gradcheck import assert_gradients_close, numerical_gradient
from convscope.layers import (BatchNormalization, Conv2D, Dense, Dropout, Flatten, Input, InputLayer,
                              MaxPooling2D)
import convscope
from convscope.models import Sequential, model_from_json


def conv_model(dtype="float32"):
    return Sequential([
        Input(shape=(6, 6, 2), dtype=dtype),
        Conv2D(3, 3, padding="same", activation="relu", dtype=dtype),
        BatchNormalization(dtype=dtype),
        MaxPooling2D(dtype=dtype),
        Flatten(dtype=dtype),
        Dropout(0.3, dtype=dtype),
        Dense(4, activation="softmax", dtype=dtype),
    ])


def test_input_shape_sources():
    assert Sequential([Input(shape=(5,)), Dense(2)]).output_shape == (None, 2)
    assert Sequential([Dense(2, input_shape=(5,))]).input_shape == (None, 5)
    assert Sequential([Dense(2, input_dim=5)]).input_shape == (None, 5)
    assert Sequential([Dense(2, batch_input_shape=(8, 5))]).output_shape == (8, 2)
    model = Sequential()
    model.add(Dense(3, input_shape=(4,)))
    model.add(Dense(2))
    assert [layer.output_shape for layer in model.layers] == [(None, 3), (None, 2)]
    assert len(model.layers) == 2  # the InputLayer is not one of them


def test_deferred_build_on_first_call_and_build():
    model = Sequential([Dense(3), Dense(1)])
    assert not model.built
    with pytest.raises(ValueError, match=r"count_params: the model has not been built yet"):
        model.count_params()
    assert model(np.ones((2, 4))).shape == (2, 1)
    assert model.built and model.input_shape == (None, 4) and model.count_params() == 4 * 3 + 3 + 3 + 1
    other = Sequential([Dense(3)])
    other.build((None, 7))
    assert other.layers[0].kernel.shape == (7, 3)


def test_add_explains_a_layer_that_cannot_take_its_input():
    model = Sequential([Input(shape=(4, 4, 1)), Conv2D(2, 3)])
    with pytest.raises(ValueError, match=r"Sequential 'sequential': layer 1 'conv2d_1' \(Conv2D\) cannot take the "
                                         r"input shape \(None, 2, 2, 2\): .*kernel spans 3 rows.*output would have 0"):
        model.add(Conv2D(2, 3))
    assert len(model.layers) == 1  # the failing layer was not added
    with pytest.raises(ValueError, match=r"Sequential 'sequential_1': layer 2 'conv2d_2' \(Conv2D\) cannot take the "
                                         r"input shape \(None, 5\): .*expected a 4-D input"):
        Sequential([Input(shape=(3,)), Flatten(), Dense(5), Conv2D(1, 1)])


def test_structure_errors():
    model = Sequential([Dense(2, input_shape=(3,), name="a")])
    with pytest.raises(ValueError, match=r"all layers must have unique names; 'a' is already used"):
        model.add(Dense(2, name="a"))
    with pytest.raises(ValueError, match=r"layer 'a' is already in the model"):
        model.add(model.layers[0])
    with pytest.raises(TypeError, match=r"add: argument `layer` must be a convscope Layer instance, got 3"):
        model.add(3)
    with pytest.raises(ValueError, match=r"an InputLayer \('input_layer'\) can only come first"):
        model.add(Input(shape=(2,)))
    with pytest.raises(TypeError, match=r"argument `layers` must be a list of layers"):
        Sequential(Dense(2))


def test_get_layer_and_pop():
    model = conv_model()
    assert model.get_layer("dense") is model.layers[-1]
    assert model.get_layer(index=1) is model.layers[1]
    assert model.get_layer(index=-1) is model.layers[-1]
    with pytest.raises(ValueError, match=r"get_layer: no layer named 'nope'; the layers are \['conv2d'"):
        model.get_layer("nope")
    with pytest.raises(ValueError, match=r"get_layer: argument `index` is 9 but the model has only 6 layers"):
        model.get_layer(index=9)
    with pytest.raises(ValueError, match=r"get_layer: give exactly one of `name` or `index`"):
        model.get_layer()
    last = model.pop()
    assert last.name == "dense" and model.output_shape == (None, 27)


def test_weights_order_and_set_weights_checks():
    model = conv_model()
    names = [v.name for v in model.weights]
    assert names == ["conv2d/kernel", "conv2d/bias", "batch_normalization/gamma", "batch_normalization/beta",
                     "batch_normalization/moving_mean", "batch_normalization/moving_variance",
                     "dense/kernel", "dense/bias"]
    assert [v.name for v in model.non_trainable_weights] == names[4:6]
    weights = model.get_weights()
    with pytest.raises(ValueError, match=r"set_weights: expected a list of 8 arrays \(shapes .*\), got 7"):
        model.set_weights(weights[:-1])
    bad = list(weights)
    bad[6] = np.zeros((28, 4))
    with pytest.raises(ValueError, match=r"set_weights: array 6 is for 'dense/kernel' of shape \(27, 4\), "
                                         r"got shape \(28, 4\)"):
        model.set_weights(bad)
    new = [w + 1 for w in weights]
    model.set_weights(new)
    for got, expected in zip(model.get_weights(), new):
        np.testing.assert_array_equal(got, expected)


def test_forward_and_backward_compose_layers_and_pass_gradcheck():
    model = conv_model("float64")
    rng = np.random.default_rng(0)
    for variable in model.weights[2:6]:
        variable.assign(rng.uniform(0.5, 1.5, variable.shape))
    x = rng.standard_normal((3, 6, 6, 2))
    upstream = rng.standard_normal((3, 4))
    expected = x
    for layer in model.layers:
        expected = layer(expected)
    np.testing.assert_allclose(model(x), expected)
    output, ctx = model.forward(x, training=False)          # one call, its context per stage
    np.testing.assert_allclose(output, expected)
    grad, pairs = model.backward(ctx, upstream)
    numeric = numerical_gradient(lambda: float(np.sum(model(x) * upstream)), x)
    assert_gradients_close(grad, numeric)
    dense_kernel = model.get_layer("dense").kernel
    numeric_kernel = numerical_gradient(lambda: float(np.sum(model(x) * upstream)), dense_kernel.value)
    assert_gradients_close(dict((id(v), g) for v, g in pairs)[id(dense_kernel)], numeric_kernel)


def test_training_flag_reaches_dropout_and_batch_norm():
    model = conv_model()
    x = np.random.default_rng(1).standard_normal((4, 6, 6, 2)).astype(np.float32)
    np.testing.assert_array_equal(model(x), model(x))
    before = model.get_layer("batch_normalization").moving_mean.numpy()
    model(x, training=True)
    assert not np.array_equal(before, model.get_layer("batch_normalization").moving_mean.numpy())


def test_predict_batches_and_validates(capsys):
    model = conv_model()
    x = np.random.default_rng(2).standard_normal((70, 6, 6, 2)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x, batch_size=32, verbose=0), model(x), rtol=1e-6)
    assert capsys.readouterr().out == ""
    model.predict(x[:5])
    assert capsys.readouterr().out.startswith("1/1")
    with pytest.raises(ValueError, match=r"predict: expected input of shape \(None, 6, 6, 2\) \(batch first\), "
                                         r"got \(6, 6, 2\)"):
        model.predict(x[0])
    with pytest.raises(ValueError, match=r"predict: argument `batch_size` must be a positive int, got 0"):
        model.predict(x, batch_size=0)
    with pytest.raises(ValueError, match=r"predict: argument `verbose` must be 'auto', 0, 1 or 2, got 3"):
        model.predict(x, verbose=3)


def test_predict_never_returns_a_view_of_the_input():
    model = Sequential([Input((3, 4)), Flatten()])      # Flatten's output is a view of its input
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    out = model.predict(x, verbose=0)
    out[...] = -1
    assert x.min() == 0                          # the caller's array is untouched


def test_config_round_trip_rebuilds_the_same_model():
    model = conv_model()
    clone = Sequential.from_config(json.loads(json.dumps(model.get_config())))
    assert [type(layer) for layer in clone.layers] == [type(layer) for layer in model.layers]
    assert clone.get_config() == model.get_config()
    clone.set_weights(model.get_weights())
    x = np.random.default_rng(3).standard_normal((2, 6, 6, 2)).astype(np.float32)
    np.testing.assert_array_equal(clone(x), model(x))
    again = model_from_json(model.to_json())
    assert again.name == model.name and again.count_params() == model.count_params()


KERAS2_JSON = json.dumps({"class_name": "Sequential", "config": {"name": "sequential", "layers": [
    {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 28, 28, 1], "dtype": "float32",
                                            "sparse": False, "ragged": False, "name": "conv2d_input"}},
    {"class_name": "Conv2D", "config": {
        "name": "conv2d", "trainable": True, "batch_input_shape": [None, 28, 28, 1], "dtype": "float32",
        "filters": 32, "kernel_size": [5, 5], "strides": [1, 1], "padding": "same",
        "data_format": "channels_last", "dilation_rate": [1, 1], "groups": 1, "activation": "relu",
        "use_bias": True, "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
        "bias_initializer": {"class_name": "Zeros", "config": {}}, "kernel_regularizer": None,
        "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None,
        "bias_constraint": None}},
    {"class_name": "MaxPooling2D", "config": {"name": "max_pooling2d", "trainable": True, "dtype": "float32",
                                              "pool_size": [2, 2], "padding": "valid", "strides": [2, 2],
                                              "data_format": "channels_last"}},
    {"class_name": "Dropout", "config": {"name": "dropout", "trainable": True, "dtype": "float32",
                                         "rate": 0.25, "noise_shape": None, "seed": None}},
    {"class_name": "Flatten", "config": {"name": "flatten", "trainable": True, "dtype": "float32",
                                         "data_format": "channels_last"}},
    {"class_name": "Dense", "config": {
        "name": "dense", "trainable": True, "dtype": "float32", "units": 10, "activation": "softmax",
        "use_bias": True, "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
        "bias_initializer": {"class_name": "Zeros", "config": {}}, "kernel_regularizer": None,
        "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None,
        "bias_constraint": None}}]}, "keras_version": "2.11.0", "backend": "tensorflow"})


def test_keras2_to_json_is_accepted():
    model = model_from_json(KERAS2_JSON)
    assert [layer.name for layer in model.layers] == ["conv2d", "max_pooling2d", "dropout", "flatten", "dense"]
    assert model.output_shape == (None, 10)
    assert model.count_params() == (5 * 5 + 1) * 32 + (14 * 14 * 32 + 1) * 10


def test_keras3_config_is_accepted():
    policy = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None}
    config = {"module": "keras", "class_name": "Sequential", "registered_name": None, "config": {
        "name": "sequential_3", "trainable": True, "dtype": policy, "layers": [
            {"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
             "config": {"batch_shape": [None, 12], "dtype": "float32", "sparse": False, "name": "input_layer"}},
            {"module": "keras.layers", "class_name": "Dense", "registered_name": None,
             "build_config": {"input_shape": [None, 12]},
             "config": {"name": "dense", "trainable": True, "dtype": policy, "units": 3, "activation": "relu",
                        "use_bias": True, "kernel_initializer": {"module": "keras.initializers",
                                                                 "class_name": "GlorotUniform",
                                                                 "config": {"seed": None}, "registered_name": None},
                        "bias_initializer": {"module": "keras.initializers", "class_name": "Zeros",
                                             "config": {}, "registered_name": None},
                        "kernel_regularizer": None, "bias_regularizer": None, "kernel_constraint": None,
                        "bias_constraint": None, "quantization_config": None}}]}}
    model = Sequential.from_config(config)
    assert model.name == "sequential_3" and model.output_shape == (None, 3) and model.count_params() == 39


def test_model_from_json_errors():
    with pytest.raises(ValueError, match=r"model_from_json: argument `json_string` is not valid JSON"):
        model_from_json("{nope")
    with pytest.raises(ValueError, match=r"Functional.from_config: expected a dict with a 'layers' list, "
                                         r"got a dict with keys \[\]"):
        model_from_json(json.dumps({"class_name": "Functional", "config": {}}))
    with pytest.raises(ValueError, match=r"model_from_config: expected a Sequential or Functional model "
                                         r"config, got class_name='MyModel'"):
        model_from_json(json.dumps({"class_name": "MyModel", "config": {}}))
    with pytest.raises(ValueError, match=r"layers.deserialize: unknown layer class 'ConvLSTM2D'"):
        model_from_json(json.dumps({"class_name": "Sequential", "config": {"layers": [
            {"class_name": "ConvLSTM2D", "config": {}}]}}))
    with pytest.raises(TypeError, match=r"LSTM.from_config: the config lacks `units`, got keys \[\]"):
        model_from_json(json.dumps({"class_name": "Sequential", "config": {"layers": [
            {"class_name": "LSTM", "config": {}}]}}))


def test_input_layer_from_first_layer_keeps_keras2_name():
    model = Sequential([Dense(2, input_shape=(3,))])
    first, second = model.get_config()["layers"]
    assert first == {"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
                     "config": {"name": "dense_input", "dtype": "float32", "batch_shape": [None, 3]}}
    assert "batch_input_shape" not in second["config"]  # the InputLayer carries the shape
    assert isinstance(model._input_layer, InputLayer)


def test_top_level_keras_import_paths():
    """`import convscope as keras` then keras.layers / keras.models / keras.utils, in a fresh interpreter."""
    code = ("import convscope as keras\n"
            "assert keras.layers.Conv2D.__name__ == 'Conv2D'\n"
            "assert keras.models.Sequential.__name__ == 'Sequential'\n"
            "assert keras.utils.to_categorical([1], 2).tolist() == [[0.0, 1.0]]\n"
            "assert keras.layers.convolutional.MaxPooling2D is keras.layers.MaxPooling2D\n"
            "assert keras.utils.np_utils.to_categorical is keras.utils.to_categorical\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_predict_steps_and_callbacks():
    from convscope.callbacks import Callback

    class Recorder(Callback):
        def __init__(self):
            super().__init__()
            self.events = []

        def on_predict_begin(self, logs=None):
            self.events.append("begin")

        def on_predict_batch_end(self, batch, logs=None):
            self.events.append((batch, logs["outputs"].shape))

        def on_predict_end(self, logs=None):
            self.events.append("end")

    model = Sequential([Dense(2, input_shape=(3,))])
    recorder = Recorder()
    out = model.predict(np.ones((10, 3)), batch_size=4, verbose=0, steps=2, callbacks=[recorder])
    assert out.shape == (8, 2)
    assert recorder.events == ["begin", (0, (4, 2)), (1, (4, 2)), "end"] and recorder.model is model
    with pytest.raises(TypeError, match=r"predict: argument `callbacks` must be a list of Callback objects"):
        model.predict(np.ones((2, 3)), callbacks="log")
    with pytest.raises(ValueError, match=r"predict: argument `steps` must be None or a positive int, got 0"):
        model.predict(np.ones((2, 3)), steps=0)


@pytest.mark.parametrize("samples, batch_size", [(3, 8), (3, 3), (10, 4)])
def test_predict_calls_the_hooks_as_keras_one_batch_or_many(keras, samples, batch_size):
    """A callback hears the same hooks with the same batch indices and output shapes as in Keras, whether the
    input is one batch (which `predict` runs without hooks when no callback listens) or several."""
    def events_of(lib):
        class Recorder(lib.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.events = []

            def on_predict_begin(self, logs=None):
                self.events.append("begin")

            def on_predict_batch_begin(self, batch, logs=None):
                self.events.append(("batch_begin", batch))

            def on_predict_batch_end(self, batch, logs=None):
                self.events.append(("batch_end", batch, tuple(np.shape(logs["outputs"]))))

            def on_predict_end(self, logs=None):
                self.events.append("end")

        model = lib.Sequential([lib.Input((3,)), lib.layers.Dense(2)])
        recorder = Recorder()
        out = model.predict(np.ones((samples, 3), np.float32), batch_size=batch_size, verbose=0,
                            callbacks=[recorder])
        return recorder.events, np.shape(out)

    assert events_of(convscope) == events_of(keras)


def test_predict_checks_the_input_shape_where_the_model_leaves_axes_open():
    """Open axes take any size, the others must match, and so must the rank (a scalar for a model of scalar
    samples too); one batch with no callback gives the call's numbers."""
    model = Sequential([Input((None, None, 2)), Conv2D(3, 3, padding="same")])
    for height, width in ((5, 7), (9, 4)):
        x = np.random.default_rng(height).standard_normal((2, height, width, 2)).astype(np.float32)
        np.testing.assert_allclose(model.predict(x, verbose=0), model(x), rtol=1e-6)
    with pytest.raises(ValueError, match=r"predict: expected input of shape \(None, None, None, 2\) \(batch first\), "
                                         r"got \(2, 5, 5, 3\)"):
        model.predict(np.zeros((2, 5, 5, 3), np.float32), verbose=0)
    with pytest.raises(ValueError, match=r"predict: expected input of shape \(None, None, None, 2\) \(batch first\), "
                                         r"got \(2, 5, 2\)"):
        model.predict(np.zeros((2, 5, 2), np.float32), verbose=0)
    scalars = Sequential([Input(()), Dropout(0.5)])
    with pytest.raises(ValueError, match=r"call: expected input of shape \(None,\) \(batch first\), got \(\)"):
        scalars(np.float32(3))


@pytest.mark.filterwarnings("ignore:Do not pass an `input_shape`")   # Keras' own advice, kept as the idiom
def test_a_model_with_a_known_input_as_first_layer_builds_the_sequential_as_keras(keras):
    """The TensorFlow tutorial's idiom: Sequential([data_augmentation, Rescaling, ...]) where only the
    nested augmentation Sequential names an input shape — Keras 3 builds the outer model at once."""
    def build(lib):
        aug = lib.Sequential([lib.layers.RandomFlip("horizontal", input_shape=(12, 12, 3)),
                              lib.layers.RandomZoom(0.1)])
        return lib.Sequential([aug, lib.layers.Rescaling(1 / 255), lib.layers.Conv2D(4, 3),
                               lib.layers.Flatten(), lib.layers.Dense(5)])

    ours, theirs = build(convscope), build(keras)
    assert ours.built and theirs.built
    assert ours.input_shape == tuple(theirs.input_shape) == (None, 12, 12, 3)
    assert ours.output_shape == tuple(theirs.output_shape) == (None, 5)
    assert ours.count_params() == theirs.count_params()
    unknown = convscope.Sequential([convscope.Sequential([Dense(3)]), Dense(1)])
    assert not unknown.built     # an inner model without an input shape builds on the first call
    assert unknown(np.ones((2, 4), "float32")).shape == (2, 1)


def test_inputs_are_cast_to_the_input_dtype_as_keras(keras):
    """uint8 images fed to a Sequential come out as Keras' (float32 through Flatten and Resizing, an explicit
    input dtype kept), built with an Input or on the first call."""
    x = np.arange(2 * 6 * 6 * 3).reshape(2, 6, 6, 3).astype(np.uint8)
    for build in (lambda m: [m.Input((6, 6, 3)), m.layers.Flatten()], lambda m: [m.layers.Flatten()],
                  lambda m: [m.Input((6, 6, 3)), m.layers.Resizing(4, 4)],
                  lambda m: [m.Input((6, 6, 3), dtype="float64"), m.layers.Flatten(dtype="float64")],
                  lambda m: [m.layers.Flatten(dtype="float64")],
                  lambda m: [m.layers.Dense(2, dtype="float64", kernel_initializer="ones")]):
        ours, theirs = convscope.Sequential(build(convscope)), keras.Sequential(build(keras))
        expected = keras.ops.convert_to_numpy(theirs.predict(x, verbose=0))
        for got in (ours.predict(x, verbose=0), ours(x)):
            assert got.dtype == expected.dtype
            np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_a_float64_model_inside_a_float32_one_as_keras(keras):
    """Each layer computes in its own dtype and casts its float input to it (a nested float64 Sequential gives a
    float32 Dense float64 values, which it casts back), as Keras."""
    x = np.random.default_rng(3).normal(size=(2, 4)).astype(np.float32)
    for build in (lambda m: [m.Sequential([m.layers.Dense(2, dtype="float64", kernel_initializer="ones")]),
                             m.layers.Dense(1, kernel_initializer="ones")],
                  lambda m: [m.Input((4,)), m.layers.Dense(2, dtype="float64", kernel_initializer="ones")]):
        ours, theirs = convscope.Sequential(build(convscope)), keras.Sequential(build(keras))
        expected = keras.ops.convert_to_numpy(theirs.predict(x, verbose=0))
        got = ours.predict(x, verbose=0)
        assert got.dtype == expected.dtype
        np.testing.assert_allclose(got, expected, rtol=1e-6)

    def graph(m):                       # the same inside a graph model, whose plan runs the stages too
        inputs = m.Input((4,))
        inner = m.Sequential([m.layers.Dense(2, dtype="float64", kernel_initializer="ones")])
        return m.Model(inputs, m.layers.Dense(1, kernel_initializer="ones")(inner(inputs)))
    expected = keras.ops.convert_to_numpy(graph(keras).predict(x, verbose=0))
    got = graph(convscope).predict(x, verbose=0)
    assert got.dtype == expected.dtype
    np.testing.assert_allclose(got, expected, rtol=1e-6)
