"""Three Keras APIs scripts use: `layers.Lambda`, `models.clone_model` and `ops.convert_to_tensor`/
`convert_to_numpy`.

Oracle: Keras 3.15.1 on the torch backend — the same models written against `keras`, then predictions,
one SGD step, output shapes, layer names and parameter counts compared; a Keras-written file holding a
Lambda, refused by name (its function is code).
"""

import json

import numpy as np
import pytest

import convscope as cs
from convscope import layers as L
from convscope import ops


def lambda_net(module, layers, k_ops):
    """A CNN with three Lambdas: one with `arguments`, one reducing, one taking `training` with `output_shape`."""
    inputs = module.Input((6, 6, 2))
    h = layers.Conv2D(4, 3)(inputs)
    h = layers.Lambda(lambda t, k: k_ops.square(t) * k, arguments={"k": 0.5})(h)
    h = layers.Lambda(lambda t: k_ops.mean(t, axis=(1, 2)), name="pool")(h)
    h = layers.Lambda(lambda t, training=None: t * (2.0 if training else 1.0), output_shape=(4,))(h)
    return module.Model(inputs, layers.Dense(3)(h))


def test_lambda_layers_predict_and_train_as_keras(keras):
    ours, theirs = lambda_net(cs, L, ops), lambda_net(keras, keras.layers, keras.ops)
    rng = np.random.default_rng(3)
    theirs.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in theirs.get_weights()])
    ours.set_weights(theirs.get_weights())
    assert [type(layer).__name__ for layer in ours.layers] == [type(layer).__name__ for layer in theirs.layers]
    assert ours.output_shape == theirs.output_shape and ours.count_params() == theirs.count_params()
    x, y = rng.normal(size=(8, 6, 6, 2)).astype("float32"), rng.normal(size=(8, 3)).astype("float32")
    np.testing.assert_allclose(ours.predict(x, verbose=0), keras.ops.convert_to_numpy(theirs.predict(x, verbose=0)),
                               rtol=1e-5, atol=1e-5)
    for model, module in ((ours, cs), (theirs, keras)):       # the third Lambda doubles in training: the step
        model.compile(optimizer=module.optimizers.SGD(0.01), loss="mse")     # sees it, as Keras'
        model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    clone = cs.models.clone_model(ours)            # the same functions, new weights (Keras refuses: safe mode)
    clone.set_weights(ours.get_weights())
    np.testing.assert_array_equal(clone.predict(x, verbose=0), ours.predict(x, verbose=0))
    for shape in ((None, 5), (None, 7, 3)):
        for given in (None, (2,) + shape[2:], lambda s: (s[0], 2) + tuple(s[2:])):
            assert L.Lambda(lambda t: t[:, :2], output_shape=given).compute_output_shape(shape) == \
                tuple(keras.layers.Lambda(lambda t: t[:, :2], output_shape=given).compute_output_shape(shape))


def test_a_lambda_is_code_so_files_keep_it_out(keras, tmp_path):
    """Saving a model holding a Lambda (nested too) is refused by name and writes nothing; its weights save
    and load; a Keras file holding one is refused by name, as is its config: convscope never runs code from
    a file."""
    ours = lambda_net(cs, L, ops)
    outer = cs.Sequential([cs.Input((6, 6, 2)), ours])
    for model in (ours, outer):
        for suffix in (".keras", ".h5", ".convscope"):
            with pytest.raises(ValueError, match=r"the Lambda layer 'lambda\w*', whose function is Python code.*"
                                                 r"save_weights"):
                model.save(tmp_path / f"net{suffix}")
            assert not (tmp_path / f"net{suffix}").exists()
    ours.save_weights(tmp_path / "net.weights.npz")
    again = lambda_net(cs, L, ops)
    again.load_weights(tmp_path / "net.weights.npz")
    x = np.random.default_rng(4).normal(size=(2, 6, 6, 2)).astype("float32")
    np.testing.assert_array_equal(again.predict(x, verbose=0), ours.predict(x, verbose=0))
    theirs = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda t: t * 2, name="twice")])
    theirs.save(tmp_path / "keras_lambda.keras")
    with pytest.raises(ValueError, match="holds a Lambda layer with serialized Python bytecode; convscope never runs"):
        cs.models.load_model(tmp_path / "keras_lambda.keras")
    scaled = cs.Sequential([cs.Input((3,)), L.Lambda(lambda t, k: t * k, arguments={"k": np.arange(3.0)})])
    assert json.loads(scaled.to_json())["config"]["layers"][1]["config"]["arguments"] == {"k": [0.0, 1.0, 2.0]}
    config = json.loads(ours.to_json())["config"]
    with pytest.raises(ValueError, match="Lambda 'lambda.*': its config holds a function's code"):
        cs.Model.from_config(config)


def test_lambda_arguments_are_checked_by_name():
    with pytest.raises(TypeError, match="Lambda 'lambda.*': argument `function` must be callable, got int"):
        L.Lambda(3)
    with pytest.raises(TypeError, match="argument `arguments` must be a dict .*got list"):
        L.Lambda(abs, arguments=[1])
    with pytest.raises(ValueError, match="argument `mask` is not supported"):
        L.Lambda(abs, mask=True)
    with pytest.raises(TypeError, match="argument `output_shape` must be a shape .*got 'x'"):
        L.Lambda(abs, output_shape="x")


def _models(module, layers):
    inputs = module.Input((4,))
    a, b = layers.Dense(3, name="d0")(inputs), layers.Dense(3, name="d1")(inputs)
    functional = module.Model(inputs, layers.Dense(2, name="dd")(layers.Add(name="add")([a, b])), name="fun")
    sequential = module.Sequential([module.Input((4,)), layers.Dense(3, name="s1"),
                                    layers.BatchNormalization(name="bn"),
                                    layers.Dense(2, name="s2")], name="seq")
    outer = module.Sequential([module.Input((4,)), sequential, layers.Dense(1, name="top")], name="outer")
    return functional, sequential, outer


def _wider(module):
    def clone(layer):
        if isinstance(layer, module.layers.Dense):
            return module.layers.Dense(layer.units + 1, name=layer.name + "_x")
        return type(layer).from_config(layer.get_config())
    return clone


def test_clone_model_rebuilds_the_structure_with_new_weights_as_keras(keras):
    for ours, theirs in zip(_models(cs, L), _models(keras, keras.layers)):
        for options in ({}, {"clone_function": _wider(cs)}, {"recursive": True}):
            k_options = dict(options, clone_function=_wider(keras)) if "clone_function" in options else options
            mine, keras_clone = cs.models.clone_model(ours, **options), keras.models.clone_model(theirs, **k_options)
            assert type(mine).__name__ == type(keras_clone).__name__ and mine.name == keras_clone.name
            assert [layer.name for layer in mine.layers if not isinstance(layer, L.InputLayer)] == \
                [layer.name for layer in keras_clone.layers if not isinstance(layer, keras.layers.InputLayer)]
            assert mine.count_params() == keras_clone.count_params()
            assert mine.output_shape == keras_clone.output_shape
            assert not any(a is b for a, b in zip(mine.layers, ours.layers))
            assert not any(a is b for a, b in zip(mine.weights, ours.weights))
    _, sequential, outer = _models(cs, L)
    recursive = cs.models.clone_model(outer, clone_function=_wider(cs), recursive=True)
    assert [layer.name for layer in recursive.layers[0].layers] == ["s1_x", "bn", "s2_x"]
    for ours, theirs in zip(_models(cs, L), _models(keras, keras.layers)):     # a frozen model's clone
        ours.trainable = theirs.trainable = False
        for options in ({}, {"recursive": True}):
            mine, keras_clone = cs.models.clone_model(ours, **options), keras.models.clone_model(theirs, **options)
            assert mine.trainable == keras_clone.trainable
            leaves = [layer.trainable for layer in mine.layers if not isinstance(layer, cs.Model)]
            assert leaves == [layer.trainable for layer in keras_clone.layers if not isinstance(layer, keras.Model)]
            assert len(mine.trainable_weights) == len(keras_clone.trainable_weights)


def test_a_clone_trains_apart_from_its_model():
    model = _models(cs, L)[0]
    clone = cs.models.clone_model(model)
    clone.set_weights(model.get_weights())
    before = model.get_weights()
    x = np.random.default_rng(5).normal(size=(6, 4)).astype("float32")
    clone.compile(optimizer="sgd", loss="mse")
    clone.fit(x, np.ones((6, 2), "float32"), epochs=1, verbose=0)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(clone.get_weights(), before))


def test_clone_model_names_what_it_refuses():
    class Net(cs.Model):
        def __init__(self):
            super().__init__()
            self.dense = L.Dense(2)

        def call(self, x):
            return self.dense(x)
    model = _models(cs, L)[1]
    with pytest.raises(TypeError, match="clone_model: argument `model` must be a Sequential or functional model, "
                                        "got Dense"):
        cs.models.clone_model(L.Dense(2))
    with pytest.raises(TypeError, match="clone_model: Net 'net.*' is a subclassed model"):
        cs.models.clone_model(Net())
    with pytest.raises(ValueError, match="clone_model: argument `input_tensors` is not supported yet"):
        cs.models.clone_model(model, input_tensors=[cs.Input((4,))])
    with pytest.raises(TypeError, match="argument `clone_function` must be callable"):
        cs.models.clone_model(model, clone_function=3)
    with pytest.raises(TypeError, match="`clone_function` must return a layer, got NoneType for layer 's1'"):
        cs.models.clone_model(model, clone_function=lambda layer: None)


def test_convert_to_tensor_and_numpy_give_keras_dtypes(keras):
    values = ([1.0, 2.0], [1, 2], np.ones(2), np.ones(2, "float32"), 3.0, True, np.ones(2, "int64"), np.int64(3),
              np.uint8(2), np.float16(1.5), np.float64(2.0), np.bool_(True))
    for value in values:
        theirs = keras.ops.convert_to_numpy(keras.ops.convert_to_tensor(value))
        ours = ops.convert_to_numpy(ops.convert_to_tensor(value))
        assert isinstance(ours, np.ndarray) and ours.dtype == theirs.dtype
        np.testing.assert_array_equal(ours, theirs)
        assert ops.convert_to_tensor(value, dtype="float16").dtype == np.float16
    dense = cs.layers.Dense(2)
    dense.build((None, 3))
    copied = ops.convert_to_numpy(dense.kernel)             # a copy, as Keras': writing it leaves the weight
    np.testing.assert_array_equal(copied, dense.kernel.numpy())
    copied[...] = 7.0
    assert not np.any(dense.kernel.numpy() == 7.0)
    with ops.Tape():
        doubled = dense.kernel * 2.0            # a traced value: its array, untracked
    assert isinstance(doubled, ops.Traced)
    np.testing.assert_array_equal(ops.convert_to_numpy(doubled), dense.kernel.numpy() * 2.0)
    with pytest.raises(TypeError, match="ops.convert_to_tensor: argument `dtype` must be a dtype"):
        ops.convert_to_tensor([1.0], dtype="nope")
    with pytest.raises((TypeError, ValueError), match="convert_to_tensor"):
        ops.convert_to_tensor(np.str_("ab"))
