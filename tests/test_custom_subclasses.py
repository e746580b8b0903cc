"""Keras' two other ways of writing a layer: a subclass of a built-in layer that writes `call` (and calls
`super().call`), and a layer that holds layers as attributes (alone, in lists or dicts) and calls them.

Oracle: Keras 3.15.1 on the torch backend — the same classes written against `keras`, the same weights,
then predict, the weights' order, shapes and flags, and one SGD step compared.
"""

import json
import threading
import time

import numpy as np
import pytest

import convscope as cs
from convscope import ops
from convscope import layers as L
from _oracle import assert_trains_as_keras

torch = pytest.importorskip("torch")


def make_twice(dense, conv):
    """A Dense whose output is doubled, a Conv2D whose output is shifted: Keras' way of changing a layer."""
    class TwiceDense(dense):
        def call(self, x, training=False):
            return 2.0 * super().call(x, training=training)

    class ShiftedConv(conv):
        def call(self, x):
            return super().call(x) + 0.25
    return TwiceDense, ShiftedConv


def make_block(base, layers, k_ops):
    """A layer holding a BatchNormalization, a Dense and a list of two Dense heads, plus a weight of its own."""
    class Block(base):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.norm = layers.BatchNormalization()
            self.dense = layers.Dense(5, activation="relu")
            self.heads = [layers.Dense(2), layers.Dense(3, activation="tanh")]

        def build(self, input_shape):
            self.scale = self.add_weight(shape=(5,), initializer="ones", name="scale")

        def call(self, x):
            h = self.dense(self.norm(x)) * self.scale
            return k_ops.concatenate([self.heads[0](h), self.heads[1](h)], axis=-1)
    return Block


def _sgd_step(model, x, y):
    model.compile(optimizer=_sgd(model), loss="mse")
    model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    return model.get_weights()


def _sgd(model):
    module = cs if isinstance(model, cs.Model) else __import__("keras")
    return module.optimizers.SGD(learning_rate=0.1)


def _randomized(keras_model, ours, rng):
    weights = [rng.normal(0, 0.4, w.shape).astype("float32") for w in keras_model.get_weights()]
    weights = [np.abs(w) + 0.5 if "variance" in v.path else w for w, v in zip(weights, keras_model.weights)]
    keras_model.set_weights(weights)
    ours.set_weights(weights)


def test_a_subclass_writing_call_is_what_predict_and_fit_run(keras):
    """Dense and Conv2D subclasses in a chain the plan would fuse (conv, batch norm, ReLU, pooling; Dense's
    product and softmax): predict, evaluate and one SGD step as Keras'."""
    rng = np.random.default_rng(3)
    stacks = []
    for lib in (L, keras.layers):
        twice, shifted = make_twice(lib.Dense, lib.Conv2D)
        stacks.append([lib.Input((9, 9, 3)), shifted(6, 3, activation="relu"), lib.BatchNormalization(),
                       lib.ReLU(), lib.MaxPooling2D(), lib.Flatten(), twice(4, activation="relu"),
                       twice(3, activation="softmax")])
    keras.utils.clear_session()
    ours, theirs = cs.Sequential(stacks[0]), keras.Sequential(stacks[1])
    _randomized(theirs, ours, rng)
    x = rng.normal(size=(8, 9, 9, 3)).astype("float32")
    y = np.eye(3, dtype="float32")[rng.integers(0, 3, 8)]
    expected = keras.ops.convert_to_numpy(theirs.predict(x, verbose=0))
    np.testing.assert_allclose(ours.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.predict(x[:1], verbose=0), expected[:1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.layers[0](x), keras.ops.convert_to_numpy(theirs.layers[0](x)), rtol=1e-5,
                               atol=1e-6)
    for a, b in zip(_sgd_step(ours, x, y), _sgd_step(theirs, x, y)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert ours.layers[0].describe().kind == "other"        # nothing of it fused


def test_a_layer_holding_layers_tracks_their_weights_as_keras(keras):
    rng = np.random.default_rng(4)
    keras.utils.clear_session()
    ours_block, theirs_block = make_block(L.Layer, L, ops)(), make_block(keras.layers.Layer, keras.layers, keras.ops)()
    ours = cs.Sequential([L.Input((4,)), ours_block])
    theirs = keras.Sequential([keras.Input((4,)), theirs_block])
    assert ours.output_shape == theirs.output_shape == (None, 5)
    assert ours.count_params() == theirs.count_params()
    for lists in ("weights", "trainable_weights", "non_trainable_weights"):
        assert [v.shape for v in getattr(ours_block, lists)] == [tuple(v.shape) for v in getattr(theirs_block, lists)]
        assert ([v.name.split("/")[-1] for v in getattr(ours_block, lists)]
                == [v.path.split("/")[-1] for v in getattr(theirs_block, lists)])
    _randomized(theirs, ours, rng)
    x = rng.normal(size=(6, 4)).astype("float32")
    y = rng.normal(size=(6, 5)).astype("float32")
    np.testing.assert_allclose(ours.predict(x, verbose=0), keras.ops.convert_to_numpy(theirs.predict(x, verbose=0)),
                               rtol=1e-5, atol=1e-6)
    # one step in training mode: the batch norm inside `call` normalizes by the batch and moves its averages
    for a, b in zip(_sgd_step(ours, x, y), _sgd_step(theirs, x, y)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def make_residual(base, layers, models, functional):
    """A layer holding a Sequential or functional model and an Add (a list input inside `call`)."""
    class Residual(base):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            if functional:
                inputs = layers.Input((4,))
                self.mlp = models.Model(inputs, layers.Dense(4)(layers.Dense(6, activation="relu")(inputs)))
            else:
                self.mlp = models.Sequential([layers.Dense(6, activation="relu"), layers.Dense(4)])
            self.add = layers.Add()

        def call(self, x):
            return self.add([x, self.mlp(x)])
    return Residual


@pytest.mark.parametrize("functional", [False, True])
def test_a_held_model_and_merge_layer_train_as_keras(keras, functional):
    rng = np.random.default_rng(6)
    keras.utils.clear_session()
    ours = cs.Sequential([L.Input((4,)), make_residual(L.Layer, L, cs, functional)(), L.Dense(2)])
    theirs = keras.Sequential([keras.Input((4,)), make_residual(keras.layers.Layer, keras.layers, keras, functional)(),
                               keras.layers.Dense(2)])
    assert [w.shape for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
    _randomized(theirs, ours, rng)
    x, y = rng.normal(size=(5, 4)).astype("float32"), rng.normal(size=(5, 2)).astype("float32")
    np.testing.assert_allclose(ours.predict(x, verbose=0), keras.ops.convert_to_numpy(theirs.predict(x, verbose=0)),
                               rtol=1e-5, atol=1e-6)
    # the input's gradient on a tape, the layers in inference mode (as saliency takes it)
    with ops.Tape() as tape:
        source = tape.watch(x)
        target = ours.layers[0](source)
    ours_grad = tape.gradient(target, source, output_gradient=y[:, :1] * np.ones((1, 4), "float32"))
    source = torch.tensor(x, requires_grad=True)
    (theirs.layers[0](source) * torch.tensor(y[:, :1])).sum().backward()
    np.testing.assert_allclose(ours_grad, source.grad.numpy(), rtol=1e-5, atol=1e-6)
    for a, b in zip(_sgd_step(ours, x, y), _sgd_step(theirs, x, y)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_freezing_a_held_layer_or_the_holder(keras):
    keras.utils.clear_session()
    blocks = [make_block(L.Layer, L, ops)(), make_block(keras.layers.Layer, keras.layers, keras.ops)()]
    for block, inputs in zip(blocks, (L.Input((4,)), keras.Input((4,)))):
        block(inputs)
        block.heads[1].trainable = False
    ours, theirs = blocks
    assert len(ours.trainable_weights) == len(theirs.trainable_weights) == 7
    assert len(ours.non_trainable_weights) == len(theirs.non_trainable_weights) == 4
    ours.trainable = theirs.trainable = False
    assert ours.trainable_weights == [] and len(ours.non_trainable_weights) == len(theirs.non_trainable_weights) == 11
    assert not ours.heads[0].trainable and not theirs.heads[0].trainable
    ours.trainable = theirs.trainable = True
    assert len(ours.trainable_weights) == len(theirs.trainable_weights) == 9


def test_a_held_layer_gets_the_training_of_the_call_it_runs_in():
    class Noisy(L.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.drop = L.Dropout(0.5, seed=1)

        def call(self, x, training=False):
            return self.drop(x) + 1.0
    layer = Noisy()
    x = np.ones((4, 50), "float32")
    np.testing.assert_array_equal(layer(x), x + 1.0)
    dropped = layer(x, training=True)
    assert set(np.unique(dropped)) == {1.0, 3.0}
    model = cs.Sequential([L.Input((50,)), layer])
    np.testing.assert_array_equal(model.predict(x, verbose=0), x + 1.0)


def test_a_saved_model_with_a_subclass_and_a_holder_loads_the_same(tmp_path):
    rng = np.random.default_rng(5)
    twice, _ = make_twice(L.Dense, L.Conv2D)
    block = make_block(L.Layer, L, ops)
    model = cs.Sequential([L.Input((4,)), block(), twice(3)])
    for variable in model.weights:
        variable.assign(rng.normal(0, 0.4, variable.shape) + (1.0 if "variance" in variable.name else 0.0))
    path = tmp_path / "held.keras"
    model.save(path)
    again = cs.models.load_model(path, custom_objects={"Block": block, "TwiceDense": twice})
    x = rng.normal(size=(3, 4)).astype("float32")
    for a, b in zip(again.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))


def make_net(model_base, layers):
    """Keras' subclassing API: a small CNN whose layers are attributes and whose `call` runs them."""
    class Net(model_base):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.conv = layers.Conv2D(4, 3, activation="relu")
            self.norm = layers.BatchNormalization()
            self.pool = layers.MaxPooling2D()
            self.flatten = layers.Flatten()
            self.head = layers.Dense(3, activation="softmax")

        def call(self, x, training=False):
            h = self.conv(x)
            h = self.norm(h, training=training) + 0.5 * h      # not a chain: the call, not the layers' order
            return self.head(self.flatten(self.pool(h)))
    return Net


def _nets(keras):
    keras.utils.clear_session()
    ours, theirs = make_net(cs.Model, L)(), make_net(keras.Model, keras.layers)()
    ours.build((None, 8, 8, 2))             # runs `call` on placeholders, as tf.keras 2's build did
    theirs(np.zeros((1, 8, 8, 2), "float32"))   # Keras 3 builds a subclassed model's layers by a call on data
    return ours, theirs


def test_a_subclassed_model_predicts_evaluates_and_trains_as_keras(keras):
    rng = np.random.default_rng(7)
    ours, theirs = _nets(keras)
    assert [type(layer).__name__ for layer in ours.layers] == [type(layer).__name__ for layer in theirs.layers]
    assert [v.shape for v in ours.weights] == [tuple(v.shape) for v in theirs.weights]
    assert ours.count_params() == theirs.count_params()
    _randomized(theirs, ours, rng)
    x = rng.normal(size=(10, 8, 8, 2)).astype("float32")
    y = rng.integers(0, 3, 10)
    np.testing.assert_allclose(ours.predict(x, batch_size=4, verbose=0),
                               keras.ops.convert_to_numpy(theirs.predict(x, batch_size=4, verbose=0)),
                               rtol=1e-5, atol=1e-6)
    for model in (ours, theirs):
        model.compile(optimizer=_sgd(model), loss="sparse_categorical_crossentropy")
    np.testing.assert_allclose(ours.evaluate(x, y, verbose=0), theirs.evaluate(x, y, verbose=0), rtol=1e-5)
    for model in (ours, theirs):
        model.fit(x, y, batch_size=10, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    lines = []
    ours.summary(print_fn=lines.append)
    assert f"Total params: {theirs.count_params():,}" in lines
    assert any(line.startswith(f"{ours.conv.name} (Conv2D)") for line in lines)


def test_a_subclassed_model_saves_its_weights_not_its_file(tmp_path):
    rng = np.random.default_rng(8)
    net = make_net(cs.Model, L)
    model = net()
    model.build((None, 8, 8, 2))
    for variable in model.weights:
        variable.assign(rng.normal(0, 0.4, variable.shape) + (1.0 if "variance" in variable.name else 0.0))
    model.save_weights(tmp_path / "net.weights.npz")
    again = net()
    again.build((None, 8, 8, 2))
    again.load_weights(tmp_path / "net.weights.npz")
    x = rng.normal(size=(3, 8, 8, 2)).astype("float32")
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))
    with pytest.raises(ValueError, match="subclassed model .*save_weights"):
        model.save(tmp_path / "net.keras")
    assert not (tmp_path / "net.keras").exists()


def test_a_subclassed_model_names_what_is_wrong():
    class NoCall(cs.Model):
        pass
    with pytest.raises(NotImplementedError, match="NoCall.call: a layer must define `call`"):
        NoCall().predict(np.zeros((2, 3), "float32"), verbose=0)
    model = make_net(cs.Model, L)()
    with pytest.raises(ValueError, match=r"Net 'net.*'.build: argument `input_shape` must be a shape with the batch"):
        model.build((8,))
    with pytest.raises(TypeError, match="Model: give `inputs` and `outputs`.*or subclass Model"):
        cs.Model()


class SlowScale(L.Layer):
    """A per-channel scale whose build takes a while (other threads run meanwhile)."""

    def build(self, input_shape):
        time.sleep(0.05)
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="scale")

    def call(self, x):
        return x * self.scale


def test_a_subclassed_model_predicts_from_threads_as_alone():
    class Scaled(make_net(cs.Model, L)):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.slow = SlowScale()

        def call(self, x, training=False):
            return super().call(self.slow(x), training=training)
    rng = np.random.default_rng(9)
    model = Scaled()
    x = rng.normal(size=(6, 8, 8, 2)).astype("float32")
    results, barrier = [None] * 4, threading.Barrier(4)

    def run(i):
        barrier.wait()              # the first predicts at once: one build, one set of weights
        results[i] = model.predict(x, verbose=0)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(model.weights) == 9
    for result in results:
        np.testing.assert_array_equal(result, model.predict(x, verbose=0))


class TwoPath(cs.Model):
    """Not a chain: the input joined to its convolution, then a Dense head."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = L.Conv2D(3, 3, padding="same", activation="relu")
        self.join = L.Concatenate()
        self.flat = L.Flatten()
        self.head = L.Dense(3)

    def call(self, x):
        return self.head(self.flat(self.join([x, self.conv(x)])))


def test_explanations_and_feature_maps_of_a_subclassed_model_follow_its_call(tmp_path):
    from convscope.viz.filters import run_layers
    rng = np.random.default_rng(10)
    model = TwoPath()
    model.build((None, 8, 8, 2))
    rows = cs.explain(model).to_dict()["layers"]
    assert [(row["name"], row["output_shape"]) for row in rows] == [
        (model.conv.name, [None, 8, 8, 3]), (model.join.name, [None, 8, 8, 5]), (model.flat.name, [None, 320]),
        (model.head.name, [None, 3])]
    assert [tuple(s) for s in rows[1]["input_shape"]] == [(None, 8, 8, 2), (None, 8, 8, 3)]
    assert rows[3]["params"] == 8 * 8 * 5 * 3 + 3
    assert all(row["receptive_field"] is None for row in rows)      # not a chain: no field is followed
    image = rng.normal(size=(8, 8, 2)).astype("float32")
    batch, maps = run_layers(model, image, "test")
    conv = model.conv(image[None])
    joined = np.concatenate([image[None], conv], axis=-1)
    for got, expected in zip(maps, [conv, joined, joined.reshape(1, -1), model.head(joined.reshape(1, -1))]):
        np.testing.assert_array_equal(got, expected)
    cs.viz.plot_feature_maps(model, image, to_file=tmp_path / "maps.svg")
    assert (tmp_path / "maps.svg").stat().st_size > 0
    net = make_net(cs.Model, L)()                          # its pooling runs on norm(h) + 0.5 h, not on norm(h)
    net.build((None, 8, 8, 2))
    net.norm.moving_mean.assign(rng.normal(size=4))
    _, maps = run_layers(net, image, "test")
    h = net.conv(image[None])
    np.testing.assert_array_equal(maps[2], net.pool(net.norm(h) + 0.5 * h))


def test_a_subclassed_chain_is_explained_as_the_same_sequential_model():
    class Chain(cs.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.first, self.pool = L.Conv2D(4, 3, strides=2), L.MaxPooling2D(3, strides=2)
            self.second = L.Conv2D(5, 3, dilation_rate=2, padding="same")

        def call(self, x):
            return self.second(self.pool(self.first(x)))
    chain = Chain()
    chain.build((None, 33, 33, 3))
    sequential = cs.Sequential([L.Input((33, 33, 3)), L.Conv2D(4, 3, strides=2), L.MaxPooling2D(3, strides=2),
                                L.Conv2D(5, 3, dilation_rate=2, padding="same")])
    keys = ("input_shape", "output_shape", "params", "macs", "flops", "receptive_field")
    ours, expected = (cs.explain(m).to_dict()["layers"] for m in (chain, sequential))
    assert [{k: row[k] for k in keys} for row in ours] == [{k: row[k] for k in keys} for row in expected]
    assert ours[-1]["receptive_field"] is not None


def test_saliency_names_a_subclassed_model_it_does_not_read():
    model = TwoPath()
    model.build((None, 8, 8, 2))
    with pytest.raises(TypeError, match="saliency: .*got TwoPath, a subclassed model"):
        cs.viz.saliency(model, np.zeros((8, 8, 2), "float32"))
    with pytest.raises(TypeError, match="gradients: .*got TwoPath, a subclassed model"):
        cs.gradients(model, np.zeros((1, 8, 8, 2), "float32"), 0)


def test_a_subclassed_model_running_a_layer_twice_is_named():
    class Twice(cs.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = L.Dense(4)

        def call(self, x):
            return self.dense(self.dense(x))
    model = Twice()
    model.build((None, 4))
    with pytest.raises(ValueError, match="analyze: Twice 'twice.*'s call runs its layer 'dense.*' more than once"):
        cs.explain(model)


def _both(keras, make):
    """The same classes for convscope and for Keras: make(base_layer, layers, models, k_ops)."""
    keras.utils.clear_session()
    return make(L.Layer, L, cs, ops), make(keras.layers.Layer, keras.layers, keras, keras.ops)


def test_a_subclassed_model_with_its_own_build_and_list_inputs_as_keras(keras):
    def make(layer_base, layers, models, k_ops):
        class Scaled(models.Model):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.a, self.b = layers.Dense(2), layers.Dense(2)

            def build(self, input_shape):
                self.scale = self.add_weight(shape=(2,), initializer="ones", name="scale")

            def call(self, inputs):
                first, second = inputs
                return (self.a(first) + self.b(second)) * self.scale
        return Scaled()
    ours, theirs = _both(keras, make)
    rng = np.random.default_rng(11)
    x = [rng.normal(size=(5, 3)).astype("float32"), rng.normal(size=(5, 4)).astype("float32")]
    theirs(x)
    ours.predict(x, verbose=0)
    assert [v.shape for v in ours.weights] == [tuple(v.shape) for v in theirs.weights]
    _randomized(theirs, ours, rng)
    np.testing.assert_allclose(ours.predict(x, batch_size=2, verbose=0),
                               keras.ops.convert_to_numpy(theirs.predict(x, batch_size=2, verbose=0)), rtol=1e-5,
                               atol=1e-6)
    ours.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="fit: Scaled 'scaled.*' is a subclassed model, which trains .* one input"):
        ours.fit(x, np.zeros((5, 2), "float32"), verbose=0)


def test_held_layers_take_inputs_of_any_size_as_keras(keras):
    """A custom layer holding a convolution in a model of unknown height and width, and a subclassed fully
    convolutional model called on two sizes."""
    def make(layer_base, layers, models, k_ops):
        class Block(layer_base):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.conv = layers.Conv2D(4, 5)

            def call(self, x):
                return self.conv(x)

        class Pooled(models.Model):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.conv, self.pool = layers.Conv2D(4, 3), layers.GlobalAveragePooling2D()

            def call(self, x):
                return self.pool(self.conv(x))
        return models.Sequential([layers.Input((None, None, 3)), Block()]), Pooled()
    (ours, ours_pooled), (theirs, theirs_pooled) = _both(keras, make)
    assert ours.output_shape == tuple(theirs.output_shape) == (None, None, None, 4)
    rng = np.random.default_rng(12)
    for model, reference in ((ours, theirs), (ours_pooled, theirs_pooled)):
        reference(np.zeros((1, 9, 9, 3), "float32"))
        model.predict(np.zeros((1, 9, 9, 3), "float32"), verbose=0)
        _randomized(reference, model, rng)
        for size in (16, 9):
            x = rng.normal(size=(2, size, size, 3)).astype("float32")
            np.testing.assert_allclose(model.predict(x, verbose=0),
                                       keras.ops.convert_to_numpy(reference.predict(x, verbose=0)), rtol=1e-5,
                                       atol=1e-5)


def test_nested_shared_and_frozen_weights_as_keras(keras):
    """Layers in a list in a list; a layer both in a Sequential and held by a layer of it (counted once, trained
    once); a layer whose non-trainable weight comes first keeps its weights' order when frozen; a frozen
    Sequential trains nothing, its batch norm's statistics included."""
    def make(layer_base, layers, models, k_ops):
        class Nested(layer_base):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.deep = [[layers.Dense(3)], {"head": layers.Dense(3)}]

            def call(self, x):
                return self.deep[1]["head"](self.deep[0][0](x))

        class Counting(layer_base):
            def build(self, input_shape):
                self.count = self.add_weight(shape=(1,), initializer="zeros", trainable=False, name="count")
                self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="w")

            def call(self, x):
                return x * self.w + self.count

        shared = layers.Dense(3)

        class Holder(layer_base):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.shared = shared

            def call(self, x):
                return self.shared(x)
        model = models.Sequential([layers.Input((3,)), Nested(), Counting(), shared, Holder()])
        frozen = models.Sequential([layers.Input((3,)), layers.BatchNormalization(), layers.Dense(2)])
        return model, frozen
    (ours, ours_frozen), (theirs, theirs_frozen) = _both(keras, make)
    assert [v.shape for v in ours.weights] == [tuple(v.shape) for v in theirs.weights]
    rng = np.random.default_rng(13)
    _randomized(theirs, ours, rng)
    x, y = rng.normal(size=(6, 3)).astype("float32"), rng.normal(size=(6, 3)).astype("float32")
    for a, b in zip(_sgd_step(ours, x, y), _sgd_step(theirs, x, y)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    ours.layers[1].trainable = theirs.layers[1].trainable = False
    assert [v.name.split("/")[-1] for v in ours.layers[1].weights] == ["w", "count"]
    assert [v.path.split("/")[-1] for v in theirs.layers[1].weights] == ["w", "count"]
    ours_frozen.trainable = theirs_frozen.trainable = False
    assert ours_frozen.trainable_weights == [] and not ours_frozen.layers[0].trainable
    config, k_config = ours_frozen.get_config(), theirs_frozen.get_config()
    assert list(config)[:2] == list(k_config)[:2] == ["name", "trainable"] and config["trainable"] is False
    for rebuilt in (cs.Sequential.from_config(config), keras.Sequential.from_config(config)):
        assert rebuilt.trainable and [layer.trainable for layer in rebuilt.layers] == [False, False]
    before = ours_frozen.get_weights() + theirs_frozen.get_weights()
    after = _sgd_step(ours_frozen, x, y[:, :2]) + _sgd_step(theirs_frozen, x, y[:, :2])
    for a, b in zip(after, before):
        np.testing.assert_array_equal(a, b)


def test_threads_calling_an_unbuilt_subclassed_model_build_it_once():
    class Small(cs.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.slow, self.dense = SlowScale(), L.Dense(2)

        def call(self, x):
            return self.dense(self.slow(x))
    model = Small()
    barrier = threading.Barrier(6)

    def run():
        barrier.wait()
        model(np.ones((2, 3), "float32"))
    threads = [threading.Thread(target=run) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [v.shape for v in model.weights] == [(3,), (3, 2), (2,)]


def test_an_error_in_call_while_learning_the_output_shape_names_the_layer():
    class Bad(L.Layer):
        def call(self, x):
            return x[:, 100]
    with pytest.raises(ValueError, match=r"Bad 'bad.*': its call failed on placeholder inputs of shape \(2, 3\) .*"
                                         r"IndexError"):
        cs.Sequential([L.Input((3,)), Bad()])


def test_a_subclass_of_a_built_in_layer_still_names_a_wrong_input():
    twice, shifted = make_twice(L.Dense, L.Conv2D)
    dense, conv = twice(3), shifted(2, 3)
    dense(np.zeros((2, 6), "float32"))
    conv(np.zeros((1, 5, 5, 3), "float32"))
    with pytest.raises(ValueError, match=r"TwiceDense 'twice_dense.*': expected input of shape \(None, 6\), got "
                                         r"\(2, 7\)"):
        dense(np.zeros((2, 7), "float32"))
    with pytest.raises(ValueError, match=r"ShiftedConv 'shifted_conv.*': expected input of shape \(None, 5, 5, 3\), "
                                         r"got \(1, 5, 5, 4\)"):
        conv(np.zeros((1, 5, 5, 4), "float32"))
    assert conv(np.zeros((1, 9, 9, 3), "float32")).shape == (1, 7, 7, 2)      # other image sizes, as Keras


def test_a_normalization_with_given_statistics_names_other_channels():
    layer = L.Normalization(mean=[1.0, 2.0, 3.0], variance=[1.0, 4.0, 9.0])
    layer(np.zeros((2, 5, 3), "float32"))
    with pytest.raises(ValueError, match=r"Normalization 'normalization.*': expected input of shape \(None, 5, 3\), "
                                         r"got \(2, 5, 4\) \(.*the given mean/variance"):
        layer(np.zeros((2, 5, 4), "float32"))
    assert layer(np.ones((2, 7, 3), "float32")).shape == (2, 7, 3)


def test_a_sequential_subclass_writing_call_runs_it_as_keras(keras, tmp_path):
    """A Sequential whose `call` changes its layers' output (`super().call`, then more): predict, a direct
    call, evaluate, one SGD step and a call inside a functional model all run that call, as Keras does (was:
    `super().call` recursed without end); its layers' plan (conv, batch norm, ReLU, pooling fused) is what
    `super().call` reaches.  Saving it whole is refused: its call is code."""
    def make(layers, models):
        class Shifted(models.Sequential):
            def call(self, x, training=None):
                return 0.5 * super().call(x, training=training) + 1.0

        return Shifted([layers.Input((6, 6, 2)), layers.Conv2D(4, 3, padding="same"), layers.BatchNormalization(),
                        layers.Activation("relu"), layers.MaxPooling2D(), layers.Flatten(), layers.Dense(3)])

    rng = np.random.default_rng(11)
    ours, theirs = make(L, cs), make(keras.layers, keras)
    _randomized(theirs, ours, rng)
    x = rng.normal(size=(5, 6, 6, 2)).astype("float32")
    y = rng.normal(size=(5, 3)).astype("float32")
    expected = keras.ops.convert_to_numpy(theirs.predict(x, verbose=0))
    np.testing.assert_allclose(ours.predict(x, batch_size=2, verbose=0), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours(x), expected, rtol=1e-5, atol=1e-5)
    inputs = L.Input((6, 6, 2))
    wrapped = cs.Model(inputs, L.Dense(2)(ours(inputs)))
    k_inputs = keras.layers.Input((6, 6, 2))
    k_wrapped = keras.Model(k_inputs, keras.layers.Dense(2)(theirs(k_inputs)))
    k_wrapped.layers[-1].set_weights(wrapped.layers[-1].get_weights())
    np.testing.assert_allclose(wrapped.predict(x, verbose=0),
                               keras.ops.convert_to_numpy(k_wrapped.predict(x, verbose=0)), rtol=1e-5, atol=1e-5)
    for model in (ours, theirs):
        model.compile(optimizer=_sgd(model), loss="mse")
    np.testing.assert_allclose(ours.evaluate(x, y, verbose=0), theirs.evaluate(x, y, verbose=0), rtol=1e-5)
    for a, b in zip(_sgd_step(ours, x, y), _sgd_step(theirs, x, y)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="subclassed model .*save_weights"):
        ours.save(tmp_path / "shifted.keras")
    assert json.loads(ours.to_json())["class_name"] == json.loads(theirs.to_json())["class_name"] == "Shifted"
    with pytest.raises(ValueError, match="class_name='Shifted'"):      # not rebuilt as a plain Sequential
        cs.models.model_from_json(ours.to_json())


@pytest.mark.parametrize("name,kwargs", [("relu", {}), ("relu", dict(negative_slope=0.1, max_value=1.0)),
                                         ("tanh", {}), ("sigmoid", {}), ("softmax", dict(axis=-1)), ("gelu", {}),
                                         ("elu", {}), ("leaky_relu", {}), ("silu", {}), ("hard_sigmoid", {}),
                                         ("mish", {}), ("softplus", {})])
def test_keras_activation_functions_in_a_call_are_differentiated_as_keras(keras, name, kwargs):
    """`keras.activations.<name>(x)` inside a custom layer's call: the gradient flows through it (it once came back
    as a plain array, cutting the weights before it out of training); two SGD steps reach Keras' weights."""
    def build(lib):
        class Block(lib.layers.Layer):
            def __init__(self, **options):
                super().__init__(**options)
                self.dense = lib.layers.Dense(4)

            def call(self, x):
                return getattr(lib.activations, name)(self.dense(x), **kwargs)
        inputs = lib.Input((5,))
        return lib.Model(inputs, lib.layers.Dense(2)(Block()(inputs)))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 5)).astype("float32"), rng.normal(size=(8, 2)).astype("float32")
    assert_trains_as_keras(keras, build(keras), build(cs), x, y, lambda lib: lib.optimizers.SGD(0.5), epochs=2)
