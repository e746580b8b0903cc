"""LeakyReLU, ELU and PReLU (a learned slope per value, shared along `shared_axes`).

Oracle: Keras 3.15.1 on the torch backend — the same CNN, the same weights: predictions (the inference
plan), one SGD step (every gradient, PReLU's slopes included), configs both ways, a Keras-written file.
"""

import numpy as np
import pytest

import convscope as cs
from convscope import layers as L


def cnn(module, layers):
    return module.Sequential([
        module.Input((8, 8, 3)),
        layers.Conv2D(6, 3, padding="same"), layers.BatchNormalization(), layers.LeakyReLU(negative_slope=0.1),
        layers.Conv2D(6, 3), layers.PReLU(alpha_initializer="ones", shared_axes=[1, 2]),
        layers.AveragePooling2D(2),
        layers.Conv2D(4, 3), layers.ELU(alpha=0.5), layers.Flatten(),
        layers.Dense(5), layers.PReLU(), layers.LeakyReLU(), layers.Dense(3, activation="softmax"),
    ])


def test_leaky_relu_elu_and_prelu_predict_and_train_as_keras(keras):
    ours, theirs = cnn(cs, L), cnn(keras, keras.layers)
    rng = np.random.default_rng(21)
    weights = [rng.normal(0, 0.5, w.shape).astype("float32") for w in theirs.get_weights()]
    weights = [np.abs(w) + 0.5 if "variance" in v.path else w for w, v in zip(weights, theirs.weights)]
    theirs.set_weights(weights)
    ours.set_weights(weights)
    assert [v.shape for v in ours.weights] == [tuple(v.shape) for v in theirs.weights]
    assert ours.count_params() == theirs.count_params()
    x = rng.normal(size=(6, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 3, 6)
    np.testing.assert_allclose(ours.predict(x, verbose=0), keras.ops.convert_to_numpy(theirs.predict(x, verbose=0)),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.predict(x[:1], batch_size=1, verbose=0),
                               keras.ops.convert_to_numpy(theirs.predict(x[:1], verbose=0)), rtol=1e-5, atol=1e-6)
    slopes = [ours.layers[i].get_weights()[0] for i in (4, 10)]
    for model, module in ((ours, cs), (theirs, keras)):
        model.compile(optimizer=module.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
        model.fit(x, y, batch_size=6, epochs=1, shuffle=False, verbose=0)
    for a, b, v in zip(ours.get_weights(), theirs.get_weights(), theirs.weights):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=v.path)
    for index, before in zip((4, 10), slopes):                                # the slopes learned
        assert not np.array_equal(ours.layers[index].get_weights()[0], before)


def test_configs_and_a_keras_file_carry_over(keras, tmp_path):
    theirs = cnn(keras, keras.layers)
    for layer, k_layer in zip(cnn(cs, L).layers, theirs.layers):
        if type(layer).__name__ in ("LeakyReLU", "ELU", "PReLU"):
            ours_config, k_config = layer.get_config(), k_layer.get_config()
            for key in set(k_config) - {"name", "dtype"}:
                theirs_value = k_config[key]
                if isinstance(theirs_value, dict):      # an initializer: its class and config
                    theirs_value = {k: theirs_value[k] for k in ("class_name", "config")}
                assert ours_config[key] == theirs_value, (type(layer).__name__, key)
            rebuilt = cs.layers.deserialize(keras.layers.serialize(k_layer))
            assert type(rebuilt) is type(layer) and rebuilt.get_config() == {**ours_config, "name": k_layer.name}
    assert L.LeakyReLU(alpha=0.2).negative_slope == 0.2 == keras.layers.LeakyReLU(alpha=0.2).negative_slope
    rng = np.random.default_rng(22)
    theirs.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") + (1.0 if "variance" in v.path else 0.0)
                        for w, v in zip(theirs.get_weights(), theirs.weights)])
    theirs.save(tmp_path / "acts.keras")
    loaded = cs.models.load_model(tmp_path / "acts.keras")
    x = rng.normal(size=(3, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), keras.ops.convert_to_numpy(theirs.predict(x, verbose=0)),
                               rtol=1e-5, atol=1e-6)


def test_arguments_are_checked_by_name():
    with pytest.raises(ValueError, match="LeakyReLU 'leaky_re_lu.*': argument `negative_slope` must be a finite "
                                         "number in \\[0.0, inf\\], got -1.0"):
        L.LeakyReLU(negative_slope=-1)
    with pytest.raises(TypeError, match="ELU 'elu.*': argument `alpha` must be a number, got 'x'"):
        L.ELU(alpha="x")
    with pytest.raises(ValueError, match="PReLU 'p_re_lu.*': argument `shared_axes` must be axes counted from 1"):
        L.PReLU(shared_axes=[0])
    with pytest.raises(ValueError, match="PReLU 'p_re_lu.*': argument `shared_axes`=\\[3\\] names an axis"):
        cs.Sequential([cs.Input((4, 4)), L.PReLU(shared_axes=3)])


NEW_ACTIVATIONS = ["celu", "hard_tanh", "hard_shrink", "soft_shrink", "tanh_shrink", "log_sigmoid", "squareplus",
                   "sparse_plus", "sparse_sigmoid", "exponential"]


def test_keras_3_activations_by_name_predict_train_and_load_as_keras(keras, tmp_path):
    """Each of Keras 3's further activations as a layer's `activation` and as an Activation layer: the same outputs,
    one SGD step's weights, a Keras file read back; the functions in `activations` equal Keras'."""
    def build(module):
        x = module.Input((6,))
        outs = [module.layers.Activation(name)(module.layers.Dense(3, activation=name)(x)) for name in NEW_ACTIVATIONS]
        return module.Model(x, module.layers.Dense(2)(module.layers.Concatenate()(outs)))
    ours, theirs = build(cs), build(keras)
    rng = np.random.default_rng(23)
    weights = [rng.normal(0, 0.7, w.shape).astype("float32") for w in theirs.get_weights()]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    x, y = rng.normal(size=(5, 6)).astype("float32"), rng.normal(size=(5, 2)).astype("float32")
    np.testing.assert_allclose(ours.predict(x, verbose=0), keras.ops.convert_to_numpy(theirs.predict(x, verbose=0)),
                               rtol=1e-5, atol=1e-5)
    for model, module in ((ours, cs), (theirs, keras)):
        model.compile(optimizer=module.optimizers.SGD(0.05), loss="mse")
        model.fit(x, y, batch_size=5, epochs=1, verbose=0)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    theirs.save(tmp_path / "acts.keras")
    np.testing.assert_allclose(cs.models.load_model(tmp_path / "acts.keras").predict(x, verbose=0),
                               keras.ops.convert_to_numpy(theirs.predict(x, verbose=0)), rtol=1e-5, atol=1e-5)
    values = np.linspace(-3, 3, 25).astype("float32")
    for name in NEW_ACTIVATIONS:
        np.testing.assert_allclose(getattr(cs.activations, name)(values),
                                   keras.ops.convert_to_numpy(getattr(keras.activations, name)(values)),
                                   rtol=1e-6, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(cs.activations.soft_shrink(values, threshold=1.0),
                               keras.ops.convert_to_numpy(keras.activations.soft_shrink(values, threshold=1.0)))


def test_keras_ops_activations_on_symbolic_tensors_and_the_tape(keras, tmp_path):
    """`ops.celu(x)` ... on a symbolic tensor is a graph node Keras writes and reads back; on a tape their
    gradients are the activations' own."""
    calls = [("celu", {"alpha": 0.5}), ("hard_tanh", {}), ("hard_shrink", {"threshold": 0.3}), ("soft_shrink", {}),
             ("tanh_shrink", {}), ("log_sigmoid", {}), ("squareplus", {"b": 2}), ("sparse_plus", {}),
             ("sparse_sigmoid", {})]
    def build(module):
        x = module.Input((4,))
        y = module.layers.Dense(4)(x)
        return module.Model(x, module.ops.concatenate([getattr(module.ops, f)(y, **k) for f, k in calls], axis=-1))
    theirs = build(keras)
    theirs.set_weights([np.random.default_rng(24).normal(0, 1, w.shape).astype("float32")
                        for w in theirs.get_weights()])
    theirs.save(tmp_path / "ops.keras")
    ours = cs.models.load_model(tmp_path / "ops.keras")
    x = np.random.default_rng(25).normal(size=(3, 4)).astype("float32")
    np.testing.assert_allclose(ours.predict(x, verbose=0), keras.ops.convert_to_numpy(theirs.predict(x, verbose=0)),
                               rtol=1e-5, atol=1e-6)
    built = build(cs)
    built.set_weights(theirs.get_weights())
    np.testing.assert_allclose(built.predict(x, verbose=0), ours.predict(x, verbose=0), rtol=1e-6)
    with cs.ops.Tape() as tape:
        watched = tape.watch(x.astype("float64"))
        total = cs.ops.sum(cs.ops.squareplus(watched, b=2) * 3.0)
    np.testing.assert_allclose(tape.gradient(total, [watched])[0], 1.5 * (1 + x / np.sqrt(x * x + 2)), rtol=1e-6)


def test_activation_parameters_are_checked_by_name_and_ints_kept():
    with pytest.raises(ValueError, match="celu: argument `alpha` must be non-zero, got 0.0"):
        cs.ops.celu(np.ones(3, "float32"), alpha=0.0)
    with pytest.raises(ValueError, match="soft_shrink: argument `threshold` must be >= 0, got -1.0"):
        cs.activations.soft_shrink(np.ones(3), threshold=-1.0)
    with pytest.raises(TypeError, match="squareplus: argument `b` must be a finite number, got None"):
        cs.ops.squareplus(np.ones(3), b=None)
    assert cs.ops.hard_tanh(np.array([-3, 0, 3])).dtype == np.int64         # ints stay ints, as Keras on torch
