"""UnitNormalization (vectors along `axis` scaled to unit L2 norm) and ActivityRegularization (the identity,
with an L1/L2 penalty on its input in the training loss).

Oracles: Keras 3.15.1 on the torch backend (outputs, configs, a training step's loss and weights, a Keras-written
file), PyTorch's `normalize` for the gradient, float64 finite differences (an all-zero vector included).
"""

import numpy as np
import pytest

import convscope as cs
from convscope import layers as L
from convscope import ops


@pytest.mark.parametrize("shape,axis", [((3, 5), -1), ((2, 4, 4, 3), -1), ((2, 4, 4, 3), [1, 2]),
                                        ((2, 6, 3), (1, 2))])
def test_unit_normalization_equals_keras(keras, shape, axis):
    x = np.random.default_rng(len(shape)).normal(size=shape).astype("float32")
    x[0] = 0.0                                                 # an all-zero sample stays zero (the 1e-12 bound)
    ours, theirs = L.UnitNormalization(axis=axis), keras.layers.UnitNormalization(axis=axis)
    np.testing.assert_allclose(ours(x), keras.ops.convert_to_numpy(theirs(x)), rtol=1e-5, atol=1e-6)
    assert ours.get_config()["axis"] == theirs.get_config()["axis"]
    rebuilt = cs.layers.deserialize(keras.layers.serialize(theirs))
    assert isinstance(rebuilt, L.UnitNormalization) and rebuilt.axis == theirs.axis


def test_unit_normalization_gradient_equals_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x, grad = rng.normal(size=(3, 4, 5)).astype("float32"), rng.normal(size=(3, 4, 5)).astype("float32")
    tx = torch.tensor(x, requires_grad=True)
    torch.nn.functional.normalize(tx, p=2.0, dim=1, eps=1e-12).backward(torch.tensor(grad))
    y, ctx = ops.unit_norm_forward(x, 1)
    np.testing.assert_allclose(ops.unit_norm_backward(grad, ctx), tx.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_unit_normalization_gradient_equals_finite_differences_in_float64():
    rng = np.random.default_rng(3)
    x, weights = rng.normal(size=(3, 2, 4)), rng.normal(size=(3, 2, 4))
    x[1, 0] = 1e-14                                            # below the bound: y = x / 1e-12
    _, ctx = ops.unit_norm_forward(x, [2])
    grad = ops.unit_norm_backward(weights, ctx)
    numeric = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = 1e-6 * max(abs(x[index]), 1e-14)
        numeric[index] = (np.sum(ops.unit_norm_forward(x + step, [2])[0] * weights)
                          - np.sum(ops.unit_norm_forward(x - step, [2])[0] * weights)) / (2 * step[index])
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-6)


def cnn(module, layers):
    return module.Sequential([
        module.Input((6, 6, 2)), layers.Conv2D(4, 3), layers.ActivityRegularization(l1=0.01, l2=0.05),
        layers.UnitNormalization(), layers.Flatten(), layers.ActivityRegularization(l2=0.1),
        layers.Dense(3, activation="softmax"),
    ])


def test_a_cnn_trains_saves_and_loads_as_keras(keras, tmp_path):
    ours, theirs = cnn(cs, L), cnn(keras, keras.layers)
    rng = np.random.default_rng(4)
    weights = [rng.normal(0, 0.5, w.shape).astype("float32") for w in theirs.get_weights()]
    theirs.set_weights(weights)
    ours.set_weights(weights)
    x, y = rng.normal(size=(8, 6, 6, 2)).astype("float32"), rng.integers(0, 3, 8)
    np.testing.assert_allclose(ours.predict(x, verbose=0), keras.ops.convert_to_numpy(theirs.predict(x, verbose=0)),
                               rtol=1e-5, atol=1e-6)
    histories = []
    for model, module in ((ours, cs), (theirs, keras)):
        model.compile(optimizer=module.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
        histories.append(model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history["loss"])
    np.testing.assert_allclose(histories[0], histories[1], rtol=1e-5)        # the penalties are in the loss
    for a, b, v in zip(ours.get_weights(), theirs.get_weights(), theirs.weights):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=v.path)
    for layer, k_layer in zip(ours.layers, theirs.layers):
        if type(layer).__name__ == "ActivityRegularization":
            factors = ("l1", "l2")
            assert {k: layer.get_config()[k] for k in factors} == {k: k_layer.get_config()[k] for k in factors}
            assert "activity_regularizer" not in k_layer.get_config()
            assert "activity_regularizer" not in layer.get_config()
    theirs.save(tmp_path / "reg.keras")
    loaded = cs.models.load_model(tmp_path / "reg.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), keras.ops.convert_to_numpy(theirs.predict(x, verbose=0)),
                               rtol=1e-5, atol=1e-6)
    ours.save(tmp_path / "ours.keras")
    assert [type(layer).__name__ for layer in keras.models.load_model(tmp_path / "ours.keras").layers] == \
        [type(layer).__name__ for layer in theirs.layers]


def test_explanations_follow_the_unit_normalization():
    rows = cs.models.analysis.analyze(cnn(cs, L)).layers
    regularized, unit = rows[1], rows[2]
    assert (regularized.kind, regularized.params) == ("identity", 0)
    assert (unit.kind, unit.params, unit.norm_ops) == ("unit_norm", 0, 3 * 4 * 4 * 4)
    assert [f.size for f in unit.receptive_field] == [3, 3]          # along the channels only: fields pass
    assert "UnitNormalization divides each sample's vector along the axes [3]" in str(cs.explain(cnn(cs, L)))
    assert "L2 노름" in str(cs.explain(cnn(cs, L), lang="ko"))
    open_sizes = cs.Sequential([cs.Input((None, None, 3)), L.UnitNormalization(axis=[1, 2])])   # unknown sizes
    assert cs.models.analysis.analyze(open_sizes).layers[-1].kind == "unit_norm"


def test_arguments_are_checked_by_name():
    with pytest.raises(ValueError, match="ActivityRegularization 'reg': argument `l1` must be a finite number in "
                                         "\\[0.0, inf\\], got -1.0"):
        L.ActivityRegularization(l1=-1, name="reg")
    with pytest.raises(TypeError, match="ActivityRegularization 'activity_regularization.*': argument `l2` must be a "
                                        "number, got 'a'"):
        L.ActivityRegularization(l2="a")
    with pytest.raises(TypeError, match="UnitNormalization 'unit_normalization.*': argument `axis` must be an int "
                                        "or a list/tuple of ints, got 'a'"):
        L.UnitNormalization(axis="a")
    with pytest.raises(ValueError, match="UnitNormalization 'un': argument `axis`=0 must name feature axes"):
        cs.Sequential([cs.Input((4,)), L.UnitNormalization(axis=0, name="un")])
