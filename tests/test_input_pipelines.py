"""Input pipelines: fit/evaluate/predict on generators, iterables and PyDatasets, against Keras 3.15.1
(torch backend) fed the same batches: weights after training, History, sample weights, validation with
validation_steps, callbacks' params["steps"], epoch hooks, batches consumed, predictions; endless
sources refused; streams read one batch at a time."""

import itertools
import math
import time
import warnings

import numpy as np
import pytest

import convscope as cs
from convscope import layers, utils
from convscope.callbacks import Callback
from convscope.preprocessing.image import ImageDataGenerator

RNG = np.random.default_rng(0)
X = RNG.normal(size=(40, 5)).astype("float32")
Y = RNG.integers(0, 3, 40).astype("int32")
W = RNG.uniform(0.1, 2.0, 40).astype("float32")


def batches(x, y, w=None, size=8, count=None):
    """A generator of (x, y[, w]) batches, counting what it yields in `count` (a list)."""
    for start in range(0, len(x), size):
        if count is not None:
            count.append(start)
        part = slice(start, start + size)
        yield (x[part], y[part]) if w is None else (x[part], y[part], w[part])


def models(keras):
    """The same Dense(8, relu) -> Dense(3, softmax) model in convscope and Keras, compiled alike."""
    ours = cs.Sequential([cs.Input((5,)), layers.Dense(8, activation="relu"), layers.Dense(3, activation="softmax")])
    theirs = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="relu"),
                               keras.layers.Dense(3, activation="softmax")])
    theirs.set_weights([w.numpy() for w in ours.weights])
    ours.compile(cs.optimizers.SGD(0.1), "sparse_categorical_crossentropy", metrics=["accuracy"])
    theirs.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return ours, theirs


def assert_same_training(ours, theirs, history, keras_history):
    assert set(history.history) == set(keras_history.history)
    for key, values in keras_history.history.items():
        np.testing.assert_allclose(history.history[key], values, rtol=1e-5, atol=1e-6)
    for mine, reference in zip(ours.weights, theirs.weights):
        np.testing.assert_allclose(mine.numpy(), reference.numpy(), rtol=1e-5, atol=1e-6)


class Recorder(Callback):
    def __init__(self):
        super().__init__()
        self.steps, self.batches, self.epochs = [], [], 0

    def on_train_begin(self, logs=None):
        self.steps.append(self.params.get("steps"))

    def on_train_batch_end(self, batch, logs=None):
        self.batches.append(batch)


def keras_recorder(keras):
    class KerasRecorder(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.steps, self.batches = [], []

        def on_train_begin(self, logs=None):
            self.steps.append(self.params.get("steps"))

        def on_train_batch_end(self, batch, logs=None):
            self.batches.append(batch)
    return KerasRecorder()


def py_datasets(keras):
    """The same PyDataset (counting its epoch hooks) on convscope's and Keras' base classes."""
    def make(base):
        class Data(base):
            def __init__(self, weights=False, **kwargs):
                super().__init__(**kwargs)
                self.weights, self.begins, self.ends = weights, 0, 0

            def __len__(self):
                return 5

            def __getitem__(self, index):
                part = slice(8 * index, 8 * index + 8)
                return (X[part], Y[part], W[part]) if self.weights else (X[part], Y[part])

            def on_epoch_begin(self):
                self.begins += 1

            def on_epoch_end(self):
                self.ends += 1
        return Data
    return make(utils.PyDataset), make(keras.utils.PyDataset)


def test_generator_with_sample_weights_and_validation_matches_keras(keras):
    ours, theirs = models(keras)
    ours_cb, keras_cb = Recorder(), keras_recorder(keras)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        keras_history = theirs.fit(batches(X, Y, W), epochs=1, verbose=0, callbacks=[keras_cb],
                                   validation_data=(X[:16], Y[:16], W[:16]))
    history = ours.fit(batches(X, Y, W), epochs=1, verbose=0, callbacks=[ours_cb],
                       validation_data=(X[:16], Y[:16], W[:16]))
    assert_same_training(ours, theirs, history, keras_history)
    assert ours_cb.steps == keras_cb.steps == [None] and ours_cb.batches == keras_cb.batches == [0, 1, 2, 3, 4]
    # evaluate reads the stream to its end (or `steps` batches), weighted as Keras
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                    # Keras warns at a generator's end
        expected = [theirs.evaluate(batches(X, Y, W), verbose=0), theirs.evaluate(batches(X, Y), verbose=0, steps=2)]
    np.testing.assert_allclose(ours.evaluate(batches(X, Y, W), verbose=0), expected[0], rtol=1e-5)
    np.testing.assert_allclose(ours.evaluate(batches(X, Y), verbose=0, steps=2), expected[1], rtol=1e-5)


def test_py_dataset_epochs_hooks_and_steps_match_keras(keras):
    OurData, KerasData = py_datasets(keras)
    ours, theirs = models(keras)
    mine, reference = OurData(weights=True), KerasData(weights=True)
    ours_cb, keras_cb = Recorder(), keras_recorder(keras)
    keras_history = theirs.fit(reference, epochs=3, verbose=0, shuffle=False, callbacks=[keras_cb],
                               validation_data=KerasData(), validation_steps=2)
    history = ours.fit(mine, epochs=3, verbose=0, shuffle=False, callbacks=[ours_cb],
                       validation_data=OurData(), validation_steps=2)
    assert_same_training(ours, theirs, history, keras_history)
    assert (mine.begins, mine.ends) == (3, 3)        # Keras: one more pair, for the batch its build reads
    assert reference.begins == reference.ends == 4
    assert ours_cb.steps == keras_cb.steps == [5]
    # steps_per_epoch cuts a pass into epochs and starts over when it ends, with Keras' warning
    ours, theirs = models(keras)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        keras_history = theirs.fit(KerasData(), epochs=3, steps_per_epoch=3, verbose=0, shuffle=False,
                                   callbacks=[keras_cb])
        history = ours.fit(OurData(), epochs=3, steps_per_epoch=3, verbose=0, shuffle=False, callbacks=[ours_cb])
    assert_same_training(ours, theirs, history, keras_history)
    assert ours_cb.batches[-8:] == keras_cb.batches[-8:] == [0, 1, 2, 0, 1, 0, 1, 2]
    assert sum("ran out of data" in str(w.message) for w in caught) == 2          # one each
    assert ours_cb.steps[-1] == keras_cb.steps[-1] == 3


def test_keras_image_data_generator_flow_trains_in_both(keras):
    from keras.src.legacy.preprocessing.image import ImageDataGenerator as KerasGenerator
    images = RNG.uniform(0, 255, (20, 6, 6, 1)).astype("float32")
    labels = RNG.integers(0, 3, 20)
    ours = cs.Sequential([cs.Input((6, 6, 1)), layers.Flatten(), layers.Dense(3, activation="softmax")])
    theirs = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Flatten(),
                               keras.layers.Dense(3, activation="softmax")])
    theirs.set_weights([w.numpy() for w in ours.weights])
    ours.compile(cs.optimizers.SGD(0.05), "sparse_categorical_crossentropy")
    theirs.compile(keras.optimizers.SGD(0.05), "sparse_categorical_crossentropy")
    options = dict(rescale=1 / 255.0, samplewise_center=True)    # Keras' build reads a batch: no random draws
    flow = dict(batch_size=6, seed=11, shuffle=False)
    start = time.perf_counter()
    history = ours.fit(ImageDataGenerator(**options).flow(images, labels, **flow), epochs=2, verbose=0,
                       shuffle=False)
    assert time.perf_counter() - start < 10                     # the flow never returned
    keras_history = theirs.fit(KerasGenerator(**options).flow(images, labels, **flow), epochs=2, verbose=0,
                               shuffle=False)
    assert_same_training(ours, theirs, history, keras_history)
    # Keras' own iterator (a keras.utils.PyDataset) is taken by convscope's fit too
    again = ours.fit(KerasGenerator(horizontal_flip=True).flow(images, labels, batch_size=6, seed=1), epochs=1,
                     verbose=0)
    assert len(again.history["loss"]) == 1


def test_predict_on_streams_matches_arrays(keras):
    ours, _ = models(keras)
    expected = ours.predict(X, verbose=0)
    OurData, _ = py_datasets(keras)
    np.testing.assert_array_equal(ours.predict(batches(X, Y), verbose=0), expected)
    np.testing.assert_array_equal(ours.predict(OurData(), verbose=0), expected)
    np.testing.assert_array_equal(ours.predict(((x,) for x, _ in batches(X, Y)), verbose=0, steps=2), expected[:16])

    class Bare(utils.PyDataset):                             # a PyDataset may give bare arrays
        def __len__(self):
            return 2

        def __getitem__(self, index):
            return X[20 * index:20 * index + 20]
    np.testing.assert_array_equal(ours.predict(Bare(), verbose=0), expected)
    inputs = cs.Input((5,))
    graph = cs.Model(inputs, layers.Dense(2)(inputs))
    graph.compile("sgd", "mse")
    np.testing.assert_allclose(graph.predict(batches(X, Y), verbose=0), graph.predict(X, verbose=0), rtol=1e-6)
    history = graph.fit(((x, np.ones((len(x), 2), "float32")) for x, _ in batches(X, Y)), verbose=0)
    assert len(history.history["loss"]) == 1


def test_streams_are_read_one_batch_at_a_time(keras):
    ours, _ = models(keras)
    pulled, seen = [], []

    class Watch(Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(len(pulled) - batch)                # batches taken from the source ahead of training

    ours.fit(batches(X, Y, count=pulled), verbose=0, callbacks=[Watch()])
    assert seen == [1] * 5 and len(pulled) == 5
    # a one-shot generator read to its end in epoch 1 stops training with Keras' warning
    with pytest.warns(UserWarning, match="Your input ran out of data"):
        history = ours.fit(batches(X, Y), epochs=3, verbose=0)
    assert len(history.history["loss"]) == 1
    # with steps_per_epoch a generator that ends mid-epoch ends that epoch and the training (warned once)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = ours.fit(batches(X, Y), epochs=3, steps_per_epoch=3, verbose=0)
    assert len(history.history["loss"]) == 2 and sum("ran out" in str(w.message) for w in caught) == 1
    # steps_per_epoch takes batches from the running stream across epochs
    pulled.clear()
    ours.fit(batches(np.tile(X, (2, 1)), np.tile(Y, 2), count=pulled), epochs=3, steps_per_epoch=3, verbose=0)
    assert len(pulled) == 9


def test_endless_sources_are_refused_without_steps(keras):
    ours, _ = models(keras)
    endless = itertools.cycle([(X[:8], Y[:8])])
    with pytest.raises(ValueError, match=r"fit: `x` is an endless iterator \(cycle\), so an epoch would never end; "
                                         r"pass `steps_per_epoch`"):
        ours.fit(endless, verbose=0)
    history = ours.fit(endless, epochs=2, steps_per_epoch=3, verbose=0)
    assert len(history.history["loss"]) == 2

    class Infinite(utils.PyDataset):
        num_batches = None

        def __getitem__(self, index):
            return X[:8], Y[:8]
    with pytest.raises(ValueError, match=r"fit: `x` is an infinite PyDataset \(num_batches is None\), so an epoch "
                                         r"would never end; pass `steps_per_epoch`"):
        ours.fit(Infinite(), verbose=0)
    with pytest.raises(ValueError, match=r"fit: `validation_data` is an infinite PyDataset .* pass `validation_steps`"):
        ours.fit(X, Y, validation_data=Infinite(), verbose=0)
    with pytest.raises(ValueError, match=r"evaluate: `x` is an endless iterator \(repeat\).* pass `steps`"):
        ours.evaluate(itertools.repeat((X, Y)), verbose=0)
    assert math.isfinite(ours.evaluate(itertools.repeat((X, Y)), steps=2, verbose=0)[0])
    assert ours.fit(Infinite(), steps_per_epoch=2, verbose=0).history["loss"]


def test_stream_argument_errors(keras):
    ours, _ = models(keras)
    with pytest.raises(ValueError, match=r"fit: when `x` is a generator, `y` should not be passed; the targets must "
                                         r"be part of its batches"):
        ours.fit(batches(X, Y), Y, verbose=0)
    with pytest.raises(ValueError, match=r"fit: argument `validation_split` is only supported for arrays, not when "
                                         r"`x` is a generator"):
        ours.fit(batches(X, Y), validation_split=0.2, verbose=0)
    with pytest.raises(ValueError, match=r"fit: each batch of `x` must be a tuple \(inputs,\), \(inputs, targets\) or "
                                         r"\(inputs, targets, sample_weights\), got list"):
        ours.fit(iter([[X, Y]]), verbose=0)
    with pytest.raises(ValueError, match=r"fit: a batch of `x` holds inputs only"):
        ours.fit(iter([(X,)]), verbose=0)
    with pytest.raises(ValueError, match=r"fit: sample weights must have one row per sample \(8\), got shape \(3,\)"):
        ours.fit(iter([(X[:8], Y[:8], W[:3])]), verbose=0)
    with pytest.raises(ValueError, match=r"fit: argument `validation_steps` must be an int >= 1, got 0"):
        ours.fit(X, Y, validation_steps=0, verbose=0)
    with pytest.raises(ValueError, match=r"fit: the model expects input of shape \(None, 5\), got x of shape \(8, 4\)"):
        ours.fit(iter([(X[:8, :4], Y[:8])]), verbose=0)
    with pytest.raises(ValueError, match=r"fit: `x` gave no batches; a generator or dataset must yield at least one"):
        ours.fit(iter([]), verbose=0)
    with pytest.raises(ValueError, match=r"evaluate: `x` gave no batches"):
        ours.evaluate(iter([]), verbose=0)
    with pytest.raises(ValueError, match=r"predict: `x` gave no batches"):
        ours.predict(iter([]), verbose=0)


def test_unknown_length_progress_line(keras, capsys):
    ours, _ = models(keras)
    ours.fit(batches(X, Y), verbose=2)
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("Epoch 1/1 - 5/5 - ") and "loss:" in line


def test_graph_model_with_two_outputs_and_sample_weights_matches_keras(keras):
    def build(api, Input, Dense):
        inputs = Input((5,), name="x")
        hidden = Dense(6, activation="tanh", name="h")(inputs)
        return api(inputs, [Dense(3, activation="softmax", name="cls")(hidden), Dense(2, name="reg")(hidden)])
    ours = build(cs.Model, cs.Input, layers.Dense)
    theirs = build(keras.Model, keras.Input, keras.layers.Dense)
    theirs.set_weights([w.numpy() for w in ours.weights])
    compile_args = dict(loss=["sparse_categorical_crossentropy", "mse"], loss_weights=[1.0, 0.5])
    ours.compile(cs.optimizers.SGD(0.1), **compile_args)
    theirs.compile(keras.optimizers.SGD(0.1), **compile_args)
    targets = RNG.normal(size=(40, 2)).astype("float32")

    def data():
        for start in range(0, 40, 10):
            part = slice(start, start + 10)
            yield X[part], (Y[part], targets[part]), W[part]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        keras_history = theirs.fit(data(), epochs=1, verbose=0)
        expected = theirs.evaluate(data(), verbose=0, return_dict=True)
    history = ours.fit(data(), epochs=1, verbose=0)
    assert_same_training(ours, theirs, history, keras_history)
    result = ours.evaluate(data(), verbose=0, return_dict=True)
    for key, value in expected.items():
        np.testing.assert_allclose(result[key], value, rtol=1e-5)


def test_array_sample_weight_and_validation_split_match_keras(keras):
    ours, theirs = models(keras)
    keras_history = theirs.fit(X, Y, sample_weight=W, batch_size=8, epochs=2, shuffle=False, validation_split=0.25,
                               verbose=0)
    history = ours.fit(X, Y, sample_weight=W, batch_size=8, epochs=2, shuffle=False, validation_split=0.25,
                       verbose=0)
    assert_same_training(ours, theirs, history, keras_history)
    np.testing.assert_allclose(ours.evaluate(X, Y, sample_weight=W, batch_size=16, verbose=0),
                               theirs.evaluate(X, Y, sample_weight=W, batch_size=16, verbose=0), rtol=1e-5)
    with pytest.raises(ValueError, match=r"fit: when `x` is a generator, `sample_weight` should not be passed"):
        ours.fit(batches(X, Y), sample_weight=W, verbose=0)
    with pytest.raises(ValueError, match=r"evaluate: sample weights must have one row per sample \(40\), got shape "
                                         r"\(3,\)"):
        ours.evaluate(X, Y, sample_weight=W[:3], verbose=0)
    inputs = cs.Input((5,))                                  # a graph model's validation_split
    graph = cs.Model(inputs, layers.Dense(3, activation="softmax")(inputs))
    graph.compile("sgd", "sparse_categorical_crossentropy")
    assert "val_loss" in graph.fit(X, Y, sample_weight=W, validation_split=0.25, verbose=0).history
    wide = np.ones((len(X), 4), "float32")                   # one weight per sample and class: not the loss' shape
    for model in (ours, graph):                              # each names the call it came from (evaluate said fit)
        for function, call in (("fit", model.fit), ("evaluate", model.evaluate)):
            with pytest.raises(ValueError, match=rf"^{function}: sample weights of shape \(8, 4\) do not match the "
                                                 r"loss values of shape \(8,\)"):
                call(X, Y, sample_weight=wide, batch_size=8, verbose=0)


def test_py_dataset_workers_read_ahead_in_order(keras):
    import threading

    class Slow(utils.PyDataset):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.lock, self.running, self.most, self.threads = threading.Lock(), 0, 0, set()

        def __len__(self):
            return 10

        def __getitem__(self, index):
            with self.lock:
                self.running += 1
                self.most = max(self.most, self.running)
                self.threads.add(threading.current_thread().name)
            time.sleep(0.02)
            with self.lock:
                self.running -= 1
            part = slice(4 * index, 4 * index + 4)
            return X[part], Y[part]
    ours, _ = models(keras)
    expected = ours.predict(X, verbose=0)
    data = Slow(workers=3, max_queue_size=4)
    # in order (batches of 4 rows run Dense as `ops.few_rows`, of 32 through BLAS: the last bits may differ)
    np.testing.assert_allclose(ours.predict(data, verbose=0), expected, rtol=1e-6, atol=1e-7)
    assert 1 < data.most <= 3 and len(data.threads) > 1
    with pytest.warns(UserWarning, match="ran out of data"):       # the pass ends 3 batches into epoch 2
        history = ours.fit(Slow(workers=2), epochs=3, steps_per_epoch=7, verbose=0)
    assert len(history.history["loss"]) == 3


def test_torch_data_loader_is_an_iterable_of_batches(keras):
    torch = pytest.importorskip("torch")
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.tensor(X), torch.tensor(Y).long()),
                                         batch_size=8, shuffle=False)
    ours, theirs = models(keras)
    keras_history = theirs.fit(loader, epochs=2, verbose=0, shuffle=False)
    history = ours.fit(loader, epochs=2, verbose=0)
    assert_same_training(ours, theirs, history, keras_history)
    np.testing.assert_allclose(ours.predict(loader, verbose=0), theirs.predict(loader, verbose=0), rtol=1e-5)


def test_data_parallel_fit_refuses_what_it_cannot_take(keras):
    ours, _ = models(keras)
    with pytest.raises(ValueError, match=r"fit: argument `sample_weight` is not supported in data-parallel training"):
        ours.fit(X, Y, sample_weight=W, distribute=object(), verbose=0)
