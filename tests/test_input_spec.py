"""`InputSpec` on a custom layer (Keras' way of stating what a layer takes): the same inputs accepted and refused as
Keras 3.15.1 (torch backend) accepts and refuses them, eagerly and symbolically, with messages naming the layer."""

import numpy as np
import pytest

import convscope
from convscope import layers as L


def _layer(lib, spec_kwargs, name="checked"):
    class Checked(lib.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.input_spec = lib.layers.InputSpec(**spec_kwargs)

        def call(self, x):
            return x * 2.0
    return Checked(name=name)


SPECS = [dict(ndim=4), dict(min_ndim=3), dict(max_ndim=2), dict(ndim=4, axes={-1: 3}), dict(axes={1: 5}),
         dict(shape=(None, 28, 28, 1), allow_last_axis_squeeze=True),
         dict(shape=(None, 28, 28), allow_last_axis_squeeze=True),
         dict(shape=(None, 28, 1), allow_last_axis_squeeze=True),
         dict(shape=(None, 6)), dict(dtype="float32")]
SHAPES = [(2, 28, 28, 1), (2, 28, 28), (2, 28, 1), (2, 6), (2, 5, 3), (2, 4, 4, 3), (2, 4, 4, 2)]


def _accepts(call) -> bool:
    try:
        call()
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("spec", SPECS)
def test_the_inputs_keras_accepts_and_refuses(keras, spec):
    for shape in SHAPES:
        for dtype in ("float32", "float64"):
            x = np.ones(shape, dtype)
            expected = _accepts(lambda: _layer(keras, spec)(x))
            assert _accepts(lambda: _layer(convscope, spec)(x)) == expected, (spec, shape, dtype)
            if dtype == "float32":                   # symbolic, of known lengths and of an unknown first one
                for known in (shape[1:], (None,) + shape[2:]):
                    symbolic = _accepts(lambda: _layer(keras, spec)(keras.Input(known)))
                    assert _accepts(lambda: _layer(convscope, spec)(L.Input(known))) == symbolic, (spec, known)


def test_messages_name_the_layer_the_input_and_what_was_expected():
    x = np.ones((2, 5, 3), np.float32)
    with pytest.raises(ValueError, match=r"Checked 'c': input 0 is incompatible with the layer: expected ndim=4, "
                                         r"found ndim=3 \(shape \(2, 5, 3\)\)"):
        _layer(convscope, dict(ndim=4), "c")(x)
    with pytest.raises(ValueError, match=r"input 0 is incompatible with the layer: expected axis -1 of the input "
                                         r"shape to have length 4, got shape \(None, 5, 3\)"):
        _layer(convscope, dict(axes={-1: 4}), "c")(L.Input((5, 3)))
    with pytest.raises(ValueError, match=r"expected dtype=float64, found dtype=float32"):
        _layer(convscope, dict(dtype="float64"), "c")(x)
    with pytest.raises(TypeError, match=r"InputSpec: argument `axes` must be a dict with integer keys, got \['a'\]"):
        L.InputSpec(axes=["a"])
    with pytest.raises(ValueError, match=r"InputSpec: axis 4 in `axes` is greater than the largest allowed, 3"):
        L.InputSpec(ndim=4, axes={4: 2})
    assert repr(L.InputSpec(ndim=4, axes={-1: 3})) == "InputSpec(ndim=4, axes={-1: 3})"


def test_a_model_of_such_layers_trains_and_refuses_data_its_spec_does_not_allow():
    """A subclassed model holding such a layer trains (its traced call checks the layer each step) and refuses,
    naming the layer, data of another width."""
    class Net(convscope.Model):
        def __init__(self):
            super().__init__()
            self.checked, self.head = _layer(convscope, dict(min_ndim=2, axes={-1: 3})), L.Dense(1)

        def call(self, x):
            return self.head(self.checked(x))
    rng = np.random.default_rng(0)
    model = Net()
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(rng.normal(size=(16, 3)), rng.normal(size=(16, 1)), epochs=3, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    with pytest.raises(ValueError, match=r"expected axis -1 of the input shape to have length 3, got shape \(2, 2\)"):
        model.fit(np.ones((4, 2)), np.ones((4, 1)), verbose=0)
