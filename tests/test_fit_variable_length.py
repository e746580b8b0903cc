"""Training a model whose output has an axis of unknown size (a variable-length sequence, `Input((None, ...))`):
targets of any length fit it, one SGD step as Keras 3.15.1's, and targets that cannot fit are refused by name."""

import numpy as np
import pytest

import convscope as cs


def _sequence_model(lib, activation=None):
    inputs = lib.Input((None, 4))
    x = lib.layers.Conv1D(3, 3, padding="same", activation="relu")(inputs)
    return lib.Model(inputs, lib.layers.Dense(2, activation=activation)(x))


@pytest.mark.parametrize("loss,activation", [("mse", None), ("sparse_categorical_crossentropy", "softmax")])
def test_a_step_on_variable_length_sequences_matches_keras(keras, tmp_path, loss, activation):
    keras.utils.set_random_seed(3)
    theirs = _sequence_model(keras, activation)
    theirs.save(tmp_path / "seq.keras")
    ours = cs.models.load_model(tmp_path / "seq.keras")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 7, 4)).astype("float32")
    y = rng.standard_normal((3, 7, 2)).astype("float32") if loss == "mse" else rng.integers(0, 2, (3, 7))
    for model in (ours, theirs):
        model.compile(optimizer="sgd", loss=loss)
        model.train_on_batch(x, y)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, keras.ops.convert_to_numpy(b), rtol=1e-4, atol=1e-6)
    ours.fit(rng.standard_normal((2, 11, 4)).astype("float32"), rng.standard_normal((2, 11, 2)).astype("float32")
             if loss == "mse" else rng.integers(0, 2, (2, 11)), verbose=0)


def test_targets_that_cannot_fit_are_still_refused():
    model = _sequence_model(cs)
    model.compile(optimizer="sgd", loss="mse")
    x = np.ones((2, 5, 4), np.float32)
    with pytest.raises(ValueError, match=r"fit: loss 'mean_squared_error' needs targets shaped like the model "
                                         r"output \(None, None, 2\), i.e. \(2, None, 2\), got y of shape \(2, 5, 3\)"):
        model.fit(x, np.ones((2, 5, 3), np.float32), verbose=0)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"integer labels must have shape \(2, None\)"):
        model.fit(x, np.ones((2, 5, 1, 1), np.int64), verbose=0)
