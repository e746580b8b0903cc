"""`Embedding` (layers/embedding.py) and integer model inputs.

Oracles: PyTorch 2.13's embedding (rows and their summed gradients), Keras 3.15.1 (configs, a text CNN's file
loaded, trained a step and saved back, an integer image input), ONNX Runtime (Gather on int64 inputs).
"""

import json
import re

import numpy as np
import pytest

import convscope as cs
from _calls import backward, forward
from _oracle import assert_step_and_file_match_keras, comparable_config
from convscope import layers as L

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_rows_and_summed_gradients_match_torch(dtype):
    rng = np.random.default_rng(0)
    layer = L.Embedding(7, 3, dtype=dtype)
    indices = rng.integers(0, 7, (4, 5))                      # repeats: their gradients add up
    y, ctx = forward(layer, indices)
    weight = torch.tensor(layer.embeddings.value, requires_grad=True)
    y_t = torch.nn.functional.embedding(torch.tensor(indices), weight)
    upstream = rng.standard_normal(y.shape).astype(dtype)
    y_t.backward(torch.tensor(upstream))
    grad_x, grads = backward(layer, ctx, upstream)
    np.testing.assert_array_equal(y, y_t.detach().numpy())
    np.testing.assert_allclose(grads[layer.embeddings.name], weight.grad.numpy(), rtol=1e-12, atol=1e-6)
    assert grad_x is None and y.dtype == dtype
    np.testing.assert_array_equal(layer(indices.astype("float32") + 0.7), y)       # Keras casts floats to int


@pytest.mark.parametrize("factory,error,pattern", [
    (lambda: L.Embedding(5, 2)(np.array([[1, 5]])), ValueError,
     r"Embedding 'embedding\w*': index 5 is out of range; expected indices 0 to 4 \(input_dim=5\)"),
    (lambda: L.Embedding(0, 2), ValueError, r"Embedding 'embedding\w*': argument `input_dim` must be a positive"),
    (lambda: L.Embedding(5, 2, mask_zero=True), ValueError, r"Embedding 'embedding\w*': argument `mask_zero` is True"),
    (lambda: L.Embedding(5, 2)(np.array(["a"])), TypeError, r"Embedding 'embedding\w*': expected integer indices"),
])
def test_bad_arguments_and_indices_are_refused_by_name(factory, error, pattern):
    with pytest.raises(error, match=pattern):
        factory()


@pytest.mark.parametrize("args,kwargs", [((10, 4), {}), ((50, 8), dict(embeddings_initializer="he_normal",
                                                                      embeddings_regularizer="l2",
                                                                      embeddings_constraint="non_neg"))])
def test_configs_match_keras_and_rebuild_both_ways(keras, args, kwargs):
    keras.utils.clear_session()
    ours, theirs = L.Embedding(*args, **kwargs), keras.layers.Embedding(*args, **kwargs)
    assert re.sub(r"_\d+$", "", theirs.name) == ours.name
    keras_config = {k: v for k, v in theirs.get_config().items() if k != "quantization_config"}
    assert comparable_config(ours.get_config()) == comparable_config(keras_config)
    from_keras = L.deserialize(json.loads(json.dumps(keras.saving.serialize_keras_object(theirs))))
    assert from_keras.get_config() == {**ours.get_config(), "name": theirs.name}
    into_keras = keras.layers.deserialize(json.loads(json.dumps(L.serialize(ours))))
    assert comparable_config(into_keras.get_config()) == comparable_config(theirs.get_config())


def text_cnn(m):
    """keras.io's text classification from scratch, on integer token ids: Embedding → Conv1D → pooling."""
    inputs = m.Input((12,), dtype="int64")
    x = m.layers.Embedding(60, 8)(inputs)
    x = m.layers.Conv1D(6, 3, padding="valid", activation="relu", strides=2)(x)
    x = m.layers.GlobalMaxPooling1D()(x)
    return m.Model(inputs, m.layers.Dense(1, activation="sigmoid")(m.layers.Dense(4, activation="relu")(x)))


def test_a_keras_text_cnn_file_loads_trains_a_step_as_keras_and_saves_back(keras, tmp_path):
    keras.utils.set_random_seed(3)
    theirs = text_cnn(keras)
    theirs.save(tmp_path / "text.keras")
    ours = cs.models.load_model(tmp_path / "text.keras")
    assert ours.inputs[0].dtype == "int64"
    rng = np.random.default_rng(4)
    x, y = rng.integers(0, 60, (6, 12)), rng.integers(0, 2, (6, 1)).astype("float32")
    assert_step_and_file_match_keras(keras, ours, theirs, x, y, "binary_crossentropy", tmp_path)


def test_a_uint8_image_input_is_cast_by_its_layers_as_keras(keras):
    keras.utils.set_random_seed(5)
    inputs = keras.Input((6, 6, 1), dtype="uint8")
    x = keras.layers.Conv2D(2, 3)(keras.layers.Rescaling(1 / 255)(inputs))
    theirs = keras.Model(inputs, keras.layers.Flatten()(x))
    ours = cs.Model.from_config(json.loads(theirs.to_json())["config"])
    ours.set_weights([keras.ops.convert_to_numpy(w) for w in theirs.get_weights()])
    pixels = np.random.default_rng(6).integers(0, 256, (2, 6, 6, 1)).astype("uint8")
    np.testing.assert_allclose(ours.predict(pixels, verbose=0),
                               keras.ops.convert_to_numpy(theirs.predict(pixels, verbose=0)), rtol=1e-5, atol=1e-6)


def test_analysis_and_explanation_of_an_embedding():
    model = text_cnn(cs)
    row = cs.models.analysis.analyze(model).layers[1]
    assert (row.kind, row.params, row.macs, row.output_shape) == ("embedding", 480, 0, (None, 12, 8))
    text = str(cs.explain(model))
    assert "input_dim × output_dim = 60 × 8 = 480 (one row per index)" in text
    assert "each index (0 to 59) is replaced by its row of 8 learned values" in text
    assert "input_dim × output_dim = 60 × 8 = 480개" in str(cs.explain(model, lang="ko"))


def test_onnx_export_takes_int64_indices_as_onnx_runtime(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    cs.utils.set_random_seed(7)
    model = text_cnn(cs)
    model.export(tmp_path / "text.onnx", format="onnx")
    session = ort.InferenceSession(str(tmp_path / "text.onnx"), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(8).integers(0, 60, (3, 12)).astype("int64")
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_an_embedding_after_another_layer_trains_as_keras(keras):
    """No gradient reaches the layers before an Embedding (its indices): a Sequential's backward stops there."""
    keras.utils.set_random_seed(9)
    theirs = keras.Sequential([keras.Input((8,)), keras.layers.Reshape((8,)), keras.layers.Embedding(30, 2),
                               keras.layers.Flatten(), keras.layers.Dense(1)])
    ours = cs.Sequential([cs.Input((8,)), L.Reshape((8,)), L.Embedding(30, 2), L.Flatten(), L.Dense(1)])
    ours.set_weights([keras.ops.convert_to_numpy(w) for w in theirs.get_weights()])
    x = np.random.default_rng(0).integers(0, 30, (4, 8)).astype("float32")
    y = np.random.default_rng(1).standard_normal((4, 1)).astype("float32")
    for model in (ours, theirs):
        model.compile(optimizer="sgd", loss="mse")
        model.train_on_batch(x, y)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, keras.ops.convert_to_numpy(b), rtol=1e-5, atol=1e-7)


def test_integer_inputs_reach_operations_lambdas_and_nested_models_as_integers(keras):
    """Keras casts only float inputs to a layer's float type: integer arithmetic stays exact (ids above 2**24)."""
    ids = np.array([[10 ** 10 + 7, 10 ** 10 + 123]], dtype="int64")
    i = cs.Input((2,), dtype="int64")
    hashed = cs.Model(i, L.Lambda(lambda t: t % 1000, output_shape=(2,))(i))
    np.testing.assert_array_equal(hashed.predict(ids, verbose=0), [[7, 123]])
    inner_in = cs.Input((2,), dtype="int64")
    inner = cs.Model(inner_in, cs.ops.subtract(inner_in, 10 ** 10))
    outer_in = cs.Input((2,), dtype="int64")
    table = L.Embedding(1000, 1)
    outer = cs.Model(outer_in, table(inner(outer_in)))
    table.embeddings.assign(np.arange(1000, dtype="float32")[:, None])
    np.testing.assert_array_equal(outer.predict(ids, verbose=0)[..., 0], [[7, 123]])
    k_in = keras.Input((4,))
    keras_argmax = keras.Model(k_in, keras.ops.abs(keras.ops.argmax(k_in, axis=-1)))
    c_in = cs.Input((4,))
    our_argmax = cs.Model(c_in, cs.ops.abs(cs.ops.argmax(c_in, axis=-1)))
    x = np.random.default_rng(2).standard_normal((3, 4)).astype("float32")
    theirs = keras.ops.convert_to_numpy(keras_argmax.predict(x, verbose=0))
    ours = our_argmax.predict(x, verbose=0)
    assert ours.dtype.kind == theirs.dtype.kind == "i"
    np.testing.assert_array_equal(ours, theirs)


def test_onnx_export_keeps_integer_ids_exact_and_refuses_integer_arithmetic(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    i = cs.Input((2,), dtype="int64")
    table = L.Embedding(16_777_220, 1)
    model = cs.Model(i, table(i))
    table.embeddings.assign((np.arange(16_777_220) % 1000).astype("float32")[:, None])
    model.export(tmp_path / "ids.onnx", format="onnx")
    session = ort.InferenceSession(str(tmp_path / "ids.onnx"), providers=["CPUExecutionProvider"])
    x = np.array([[16_777_217, 16_777_219]], dtype="int64")            # beyond float32's exact integers
    np.testing.assert_array_equal(session.run(None, {session.get_inputs()[0].name: x})[0],
                                  model.predict(x, verbose=0))
    j = cs.Input((2,), dtype="int64")
    arithmetic = cs.Model(j, L.Embedding(1000, 1)(cs.ops.subtract(j, 10 ** 10)))
    with pytest.raises(ValueError, match=r"cannot be exported to ONNX: it computes on an integer model input"):
        arithmetic.export(tmp_path / "arithmetic.onnx", format="onnx")
