"""A model without layers cannot run: predict, call, evaluate and fit raise, as in Keras 3."""


import numpy as np
import pytest

from convscope.layers import Input
from convscope.models import Sequential

X = np.ones((2, 3), np.float32)


def _compiled(model):
    model.compile(optimizer="sgd", loss="mse")
    return model


OPERATIONS = {
    "predict": lambda model: model.predict(X, verbose=0),
    "call": lambda model: model(X),
    "evaluate": lambda model: _compiled(model).evaluate(X, X, verbose=0),
    "fit": lambda model: _compiled(model).fit(X, X, verbose=0),
    "train_on_batch": lambda model: _compiled(model).train_on_batch(X, X),
    "test_on_batch": lambda model: _compiled(model).test_on_batch(X, X),
}
OURS = {
    "predict": r"^Sequential 'empty'\.predict: the model has no layers",
    "call": r"^Sequential 'empty'\.call: the model has no layers",
    "evaluate": r"^evaluate: Sequential 'empty' has no layers",
    "fit": r"^fit: Sequential 'empty' has no layers",
    "train_on_batch": r"^train_on_batch: Sequential 'empty' has no layers",
    "test_on_batch": r"^test_on_batch: Sequential 'empty' has no layers",
}


@pytest.mark.parametrize("with_input", [False, True], ids=["no input", "input only"])
@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_a_model_without_layers_refuses_to_run(operation, with_input):
    model = Sequential([Input(shape=(3,))] if with_input else None, name="empty")
    with pytest.raises(ValueError, match=OURS[operation] + r", so it cannot be built or run; add layers with "
                                                          r"`model\.add\(layer\)` first$"):
        OPERATIONS[operation](model)


@pytest.mark.parametrize("operation", ["predict", "call", "evaluate", "fit"])
def test_keras_and_convscope_refuse_the_same_calls(keras, operation):
    """Keras 3 (the oracle) raises a ValueError saying the model has no layers; so does convscope."""
    with pytest.raises(ValueError, match="has no layers"):
        OPERATIONS[operation](keras.Sequential(name="empty"))
    with pytest.raises(ValueError, match=OURS[operation]):
        OPERATIONS[operation](Sequential(name="empty"))


def test_after_adding_a_layer_the_model_runs():
    from convscope.layers import Dense
    model = Sequential(name="empty")
    with pytest.raises(ValueError, match="has no layers"):
        model.predict(X, verbose=0)
    model.add(Dense(2))
    assert model.predict(X, verbose=0).shape == (2, 2)
