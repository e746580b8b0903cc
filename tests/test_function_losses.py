"""Loss functions of the user's, written with `ops` as Keras users write them with `keras.ops` (a Dice loss
for segmentation, a focal loss): trained through a tape, saved by name, found again by name.

Oracle: Keras 3.15.1 on the torch backend — the same functions written with `keras.ops`, the same
models and weights: the loss history and the weights after SGD steps; files both ways."""

import numpy as np
import pytest

import convscope as cs


def dice(k_ops):
    def dice_loss(y_true, y_pred):
        intersection = k_ops.sum(y_true * y_pred, axis=(1, 2, 3))
        total = k_ops.sum(y_true, axis=(1, 2, 3)) + k_ops.sum(y_pred, axis=(1, 2, 3))
        return 1.0 - (2.0 * intersection + 1.0) / (total + 1.0)
    return dice_loss


def focal(k_ops):
    def focal_loss(y_true, y_pred):
        p = k_ops.clip(y_pred, 1e-6, 1 - 1e-6)
        return -k_ops.mean(y_true * (1 - p) ** 2 * k_ops.log(p), axis=-1)
    return focal_loss


def per_pixel(k_ops):
    def pixel_loss(y_true, y_pred):             # one value per pixel: (N, 8, 8), reduced by their mean
        return k_ops.mean(k_ops.abs(y_true - y_pred) ** 1.5, axis=-1)
    return pixel_loss


def segmenter(module):
    inputs = module.Input((8, 8, 2))
    h = module.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    return module.Model(inputs, module.layers.Conv2D(1, 1, activation="sigmoid")(h))


def classifier(module):
    return module.Sequential([module.Input((4,)), module.layers.Dense(3, activation="softmax")])


def _trained(module, k_ops, make, loss, x, y, weights, epochs):
    model = make(module)
    model.set_weights(weights)
    model.compile(module.optimizers.SGD(0.1), loss=loss(k_ops))
    history = model.fit(x, y, batch_size=4, epochs=epochs, shuffle=False, verbose=0)
    return history.history["loss"], model.get_weights()


@pytest.mark.parametrize("make,loss,target", [(segmenter, dice, "mask"), (segmenter, per_pixel, "mask"),
                                              (classifier, focal, "one_hot")])
def test_a_loss_function_trains_as_keras(keras, make, loss, target):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 8, 8, 2) if target == "mask" else (8, 4)).astype("float32")
    y = (rng.random((8, 8, 8, 1)) > 0.5).astype("float32") if target == "mask" else \
        np.eye(3, dtype="float32")[rng.integers(0, 3, 8)]
    weights = [rng.normal(0, 0.3, w.shape).astype("float32") for w in make(keras).get_weights()]
    ours, our_weights = _trained(cs, cs.ops, make, loss, x, y, weights, 3)
    theirs, their_weights = _trained(keras, keras.ops, make, loss, x, y, weights, 3)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    assert ours[-1] < ours[0]
    for a, b in zip(our_weights, their_weights):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_a_model_compiled_with_a_loss_function_saves_it_by_name(keras, tmp_path):
    ours_fn, keras_fn = dice(cs.ops), dice(keras.ops)
    model = segmenter(cs)
    model.compile("sgd", loss=ours_fn)
    x = np.random.default_rng(1).normal(size=(4, 8, 8, 2)).astype("float32")
    y = np.ones((4, 8, 8, 1), "float32")
    for suffix in (".convscope", ".keras", ".h5"):
        model.save(tmp_path / f"m{suffix}")
        with pytest.raises(ValueError, match="pass custom_objects=\\{'dice_loss': your_function\\}"):
            cs.models.load_model(tmp_path / f"m{suffix}")
        loaded = cs.models.load_model(tmp_path / f"m{suffix}", custom_objects={"dice_loss": ours_fn})
        assert loaded.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0), rel=1e-6)
    theirs = keras.saving.load_model(tmp_path / "m.keras", custom_objects={"dice_loss": keras_fn})
    assert theirs.loss is keras_fn
    k_model = segmenter(keras)
    k_model.compile("sgd", loss=keras_fn)
    k_model.save(tmp_path / "keras.keras")
    again = cs.models.load_model(tmp_path / "keras.keras", custom_objects={"dice_loss": ours_fn})
    assert again.evaluate(x, y, verbose=0) == pytest.approx(
        k_model.evaluate(x, y, verbose=0), rel=1e-5)


def test_a_registered_loss_function_needs_no_custom_objects(tmp_path):
    @cs.saving.register_keras_serializable(package="LossTests")
    def doubled_mse(y_true, y_pred):
        return cs.ops.mean(cs.ops.square(y_true - y_pred), axis=-1) * 2.0
    model = classifier(cs)
    model.compile("sgd", loss=doubled_mse)
    model.save(tmp_path / "m.convscope")
    assert cs.models.load_model(tmp_path / "m.convscope")._loss.fn is doubled_mse


def test_a_failing_loss_function_is_named():
    def broken(y_true, y_pred):
        return cs.ops.reshape(y_pred, (7,))
    model = classifier(cs)
    model.compile("sgd", loss=broken)
    with pytest.raises(ValueError, match="loss 'broken': the function failed on targets of shape \\(4, 3\\)"):
        model.fit(np.zeros((4, 4), "float32"), np.zeros((4, 3), "float32"), verbose=0)


def test_what_a_loss_function_cannot_do_is_named():
    x, y = np.zeros((4, 4), "float32"), np.zeros((4, 3), "float32")

    def numpy_loss(y_true, y_pred):             # NumPy, not ops: no gradient reaches y_pred
        return np.mean(np.square(np.asarray(y_true) - np.asarray(y_pred)), axis=-1)
    model = classifier(cs)
    model.compile("sgd", loss=numpy_loss)
    with pytest.raises(ValueError, match="loss 'numpy_loss': .*has no gradient; write the function with "
                                         "convscope.ops"):
        model.fit(x, y, verbose=0)

    def batch_loss(y_true, y_pred):
        return cs.ops.mean(cs.ops.square(y_true - y_pred))
    model.compile("sgd", loss=batch_loss)
    model.fit(x, y, verbose=0)                  # one value for the batch: trains


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum"])
def test_one_value_for_the_batch_is_weighted_as_keras(keras, reduction):
    """A loss giving one value for the batch (a Dice over the batch, a mean of its own) with sample weights:
    Keras scales it by the weights' mean (their sum with reduction="sum"); the step's weights as Keras'."""
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(4, 4)).astype("float32"), rng.uniform(size=(4, 3)).astype("float32")
    weights = np.array([0.5, 1.0, 2.0, 3.0], "float32")
    models = []
    for module in (cs, keras):
        def batch_loss(y_true, y_pred, ops=module.ops):
            return ops.mean(ops.square(y_true - y_pred))
        model = classifier(module)
        model.compile(module.optimizers.SGD(0.1), loss=module.losses.Dice(reduction=reduction) if reduction == "sum"
                      else batch_loss)
        models.append(model)
    models[0].set_weights(models[1].get_weights())
    logs = [m.fit(x, y, sample_weight=weights, batch_size=4, verbose=0).history["loss"] for m in models]
    np.testing.assert_allclose(logs[0], logs[1], rtol=1e-5)
    for a, b in zip(models[0].get_weights(), models[1].get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_a_callable_object_and_a_registered_loss_class(tmp_path):
    class Scaled:                               # unhashable: its hash raises, as a frozen dataclass' with a list
        def __hash__(self):
            raise TypeError("unhashable type: 'list'")

        def __call__(self, y_true, y_pred):
            return cs.ops.mean(cs.ops.square(y_true - y_pred), axis=-1)
    model = classifier(cs)
    model.compile("sgd", loss=Scaled())
    model.fit(np.ones((4, 4), "float32"), np.zeros((4, 3), "float32"), verbose=0)

    @cs.saving.register_keras_serializable(package="LossTests")
    class Tripled(cs.losses.Loss):
        def __init__(self, k=3.0, reduction="sum_over_batch_size", name="tripled"):
            super().__init__(name, reduction)
            self.k = k

        def per_sample(self, y_true, y_pred):
            return self.k * np.mean(np.square(y_true - y_pred), axis=-1)

        def _backward(self, y_true, y_pred, grad_loss):
            return self.k * 2 * (y_pred - y_true) / y_pred.shape[-1] * grad_loss[..., None]

        def get_config(self):
            return {**super().get_config(), "k": self.k}
    model.compile("sgd", loss="LossTests>Tripled")
    assert isinstance(model._loss, Tripled)
    model.compile("sgd", loss=Tripled(k=4.0))
    model.save(tmp_path / "m.convscope")
    assert cs.models.load_model(tmp_path / "m.convscope")._loss.k == 4.0


def test_per_value_weights_and_a_keras_style_loss_class_as_keras(keras):
    """A function's values weighted value by value (sample_weight shaped like them), and a Loss subclass that
    writes `call` (Keras' way, no name given): the history and the weights as Keras'."""
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(8, 4)).astype("float32"), rng.normal(size=(8, 3)).astype("float32")
    weights = rng.random((8, 3)).astype("float32")
    start = [rng.normal(0, 0.3, w.shape).astype("float32") for w in classifier(keras).get_weights()]

    def loss_class(module, k_ops):
        class Cubed(module.losses.Loss):
            def call(self, y_true, y_pred):
                return k_ops.mean(k_ops.abs(y_true - y_pred) ** 3, axis=-1)
        return Cubed()

    def run(module, k_ops, loss, **fit):
        model = classifier(module)
        model.set_weights(start)
        model.compile(module.optimizers.SGD(0.1), loss=loss)
        history = model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0, **fit)
        return history.history["loss"], model.get_weights()
    cases = [(lambda m, o: (lambda t, p: o.square(t - p)), {"sample_weight": weights}), (loss_class, {})]
    for make, fit in cases:
        ours, our_weights = run(cs, cs.ops, make(cs, cs.ops), **fit)
        theirs, their_weights = run(keras, keras.ops, make(keras, keras.ops), **fit)
        np.testing.assert_allclose(ours, theirs, rtol=1e-5)
        for a, b in zip(our_weights, their_weights):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_a_registered_subclass_of_a_built_in_loss_comes_back_as_itself(tmp_path):
    @cs.saving.register_keras_serializable(package="LossTests")
    class Huber(cs.losses.Huber):               # the built-in's class name, the user's registered one
        def per_sample(self, y_true, y_pred):
            return 10.0 * super().per_sample(y_true, y_pred)
    model = classifier(cs)
    model.compile("sgd", loss=Huber())
    model.save(tmp_path / "m.convscope")
    assert type(cs.models.load_model(tmp_path / "m.convscope")._loss) is Huber
    assert isinstance(cs.losses.get(cs.losses.MeanSquaredError), cs.losses.MeanSquaredError)     # a class: one
