"""`RepeatVector` (Keras' layer) against Keras 3.15.1 on torch's autograd, its config and a `.keras` file both
ways (a Dense decoder on the repeated vector, TimeDistributed), its explanation, ONNX export and refusals."""

import numpy as np
import pytest

import convscope as cs
from convscope import layers as L
from _oracle import (assert_layer_config_matches_keras_both_ways, assert_layer_matches_keras_through_autograd,
                     assert_step_and_file_match_keras)


@pytest.mark.parametrize("n,shape", [(1, (2, 5)), (3, (4, 2)), (7, (1, 3))])
def test_outputs_and_gradients_match_keras_through_autograd(keras, n, shape):
    x, y = assert_layer_matches_keras_through_autograd(L.RepeatVector(n), keras.layers.RepeatVector(n), shape,
                                                       np.random.default_rng(n))
    assert y.shape == (shape[0], n, shape[1]) and all(np.array_equal(y[:, i], x) for i in range(n))


def test_config_and_a_keras_model_both_ways(keras, tmp_path):
    assert_layer_config_matches_keras_both_ways(keras, "RepeatVector", {}, args=(4,))
    keras.utils.set_random_seed(2)
    theirs = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3), keras.layers.RepeatVector(4),
                               keras.layers.TimeDistributed(keras.layers.Dense(2))])
    theirs.save(tmp_path / "theirs.keras")
    ours = cs.models.load_model(tmp_path / "theirs.keras")
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((5, 6)).astype("float32"), rng.standard_normal((5, 4, 2)).astype("float32")
    assert_step_and_file_match_keras(keras, ours, theirs, x, y, "mse", tmp_path)


def test_explain_onnx_and_refusals(tmp_path):
    model = cs.Sequential([cs.Input((3,)), L.RepeatVector(5, name="rep"), L.Flatten()])
    assert "RepeatVector copies each sample's vector 5 times along a new axis 1: (None, 3) → (None, 5, 3)" in \
        str(cs.explain(model))
    assert "5번 복사합니다" in str(cs.explain(model, lang="ko"))
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    model.export(tmp_path / "rep.onnx", format="onnx")
    session = ort.InferenceSession(str(tmp_path / "rep.onnx"), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal((4, 3)).astype("float32")
    np.testing.assert_array_equal(session.run(None, {session.get_inputs()[0].name: x})[0], model.predict(x, verbose=0))
    with pytest.raises(ValueError, match=r"RepeatVector 'r': expected an input of rank 2 \(batch, features\), got "
                                         r"shape \(None, 3, 4\)"):
        L.RepeatVector(2, name="r").compute_output_shape((None, 3, 4))
    with pytest.raises(ValueError, match=r"RepeatVector 'r': argument `n` must be a positive int, got 0"):
        L.RepeatVector(0, name="r")
    with pytest.raises(TypeError, match=r"argument `n` must be a positive int, got 2.0"):
        L.RepeatVector(2.0)
