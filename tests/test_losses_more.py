"""Keras' further losses (convscope/tape_losses.py): hinge family, log-cosh, KL divergence, Poisson, MAPE, MSLE,
cosine similarity, the focal crossentropies, Dice and Tversky.

Oracle: Keras 3.15.1 on the torch backend — each loss's value and its gradient (torch autograd through Keras'
own function) on the same targets and predictions, configs both ways, `compile(loss=...)` training a CNN to
Keras' weights, a Keras file compiled with such a loss.
"""

import numpy as np
import pytest

import convscope as cs
from convscope import layers as L

rng = np.random.default_rng(31)
PROBS = rng.dirichlet(np.ones(4), size=6).astype("float32")              # rows summing to 1
ONE_HOT = np.eye(4, dtype="float32")[rng.integers(0, 4, 6)]
BINARY = rng.integers(0, 2, (6, 4)).astype("float32")
SIGNED = rng.normal(size=(6, 4)).astype("float32")
POSITIVE = rng.uniform(0.1, 3.0, (6, 4)).astype("float32")
WITH_ZERO_ROW = SIGNED.copy()
WITH_ZERO_ROW[0] = 0.0                                                        # its norm bounded by 1e-12
MASKS = (rng.uniform(size=(2, 5, 5, 1)) > 0.5).astype("float32")
MASK_PROBS = rng.uniform(0.01, 0.99, (2, 5, 5, 1)).astype("float32")

CASES = [  # (class name, keyword arguments, y_true, y_pred)
    ("Hinge", {}, BINARY, SIGNED), ("Hinge", {}, 2 * BINARY - 1, SIGNED),
    ("SquaredHinge", {}, BINARY, SIGNED), ("CategoricalHinge", {}, ONE_HOT, SIGNED),
    ("LogCosh", {}, SIGNED, SIGNED[::-1].copy()), ("KLDivergence", {}, PROBS[::-1].copy(), PROBS),
    ("Poisson", {}, POSITIVE, POSITIVE[::-1].copy()),
    ("MeanAbsolutePercentageError", {}, POSITIVE, SIGNED),
    ("MeanSquaredLogarithmicError", {}, POSITIVE, POSITIVE[::-1].copy()),
    ("CosineSimilarity", {}, SIGNED, SIGNED[::-1].copy()), ("CosineSimilarity", {"axis": 0}, SIGNED, POSITIVE),
    ("CosineSimilarity", {}, WITH_ZERO_ROW, POSITIVE),
    ("BinaryFocalCrossentropy", {}, BINARY, PROBS),
    ("BinaryFocalCrossentropy", {"apply_class_balancing": True, "alpha": 0.4, "gamma": 1.5, "label_smoothing": 0.1},
     BINARY, PROBS),
    ("BinaryFocalCrossentropy", {"from_logits": True}, BINARY, SIGNED),
    ("CategoricalFocalCrossentropy", {}, ONE_HOT, PROBS),
    ("CategoricalFocalCrossentropy", {"from_logits": True, "alpha": 0.5, "gamma": 3.0, "label_smoothing": 0.2},
     ONE_HOT, SIGNED),
    ("Dice", {}, MASKS, MASK_PROBS), ("Dice", {"axis": [1, 2, 3]}, MASKS, MASK_PROBS),
    ("Tversky", {}, MASKS, MASK_PROBS), ("Tversky", {"alpha": 0.7, "beta": 0.3, "axis": -1}, BINARY, PROBS),
]


@pytest.mark.parametrize("name,kwargs,y_true,y_pred", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_values_gradients_and_configs_equal_keras(keras, name, kwargs, y_true, y_pred):
    import torch
    ours, theirs = getattr(cs.losses, name)(**kwargs), getattr(keras.losses, name)(**kwargs)
    watched = torch.tensor(y_pred, requires_grad=True)
    value = theirs(torch.tensor(y_true), watched)
    value.backward()
    np.testing.assert_allclose(ours(y_true, y_pred), value.item(), rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(ours.gradient(y_true, y_pred), watched.grad.numpy(), rtol=2e-4, atol=1e-6)
    keras_config, ours_config = theirs.get_config(), ours.get_config()
    assert {k: ours_config[k] for k in keras_config} == keras_config
    rebuilt = cs.losses.deserialize(keras.losses.serialize(theirs))
    assert type(rebuilt) is type(ours) and {k: rebuilt.get_config()[k] for k in keras_config} == keras_config
    assert type(keras.losses.deserialize(cs.losses.serialize(ours))) is type(theirs)


@pytest.mark.parametrize("loss", ["hinge", "kl_divergence", "kld", "mape", "MAPE", "msle", "log_cosh", "poisson"])
def test_function_names_are_found(loss):
    function = cs.losses.get(loss)
    assert callable(function) and type(cs.losses.as_loss_object(loss)).__name__ != "FunctionLoss"


def unet_like(module, layers):
    x = module.Input((8, 8, 2))
    y = layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    y = layers.Conv2D(1, 1, activation="sigmoid")(layers.MaxPooling2D(2)(y))
    return module.Model(x, layers.UpSampling2D(2)(y))


@pytest.mark.parametrize("loss", ["dice", "tversky", "binary_focal_crossentropy"])
def test_a_segmentation_net_trains_as_keras(keras, loss, tmp_path):
    ours, theirs = unet_like(cs, L), unet_like(keras, keras.layers)
    data = np.random.default_rng(32)
    weights = [data.normal(0, 0.5, w.shape).astype("float32") for w in theirs.get_weights()]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    x = data.normal(size=(4, 8, 8, 2)).astype("float32")
    y = (data.uniform(size=(4, 8, 8, 1)) > 0.5).astype("float32")
    for model, module in ((ours, cs), (theirs, keras)):
        model.compile(optimizer=module.optimizers.SGD(0.5), loss=loss)
        model.fit(x, y, batch_size=2, epochs=2, shuffle=False, verbose=0)
    for a, b, v in zip(ours.get_weights(), theirs.get_weights(), theirs.weights):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=v.path)
    theirs.save(tmp_path / "seg.keras")
    loaded = cs.models.load_model(tmp_path / "seg.keras")
    np.testing.assert_allclose(loaded.evaluate(x, y, verbose=0), theirs.evaluate(x, y, verbose=0), rtol=1e-5)


def test_arguments_are_checked_by_name():
    with pytest.raises(ValueError, match="BinaryFocalCrossentropy: argument `alpha` must be in \\[0, 1\\], got 2"):
        cs.losses.BinaryFocalCrossentropy(alpha=2)
    with pytest.raises(ValueError, match="CategoricalFocalCrossentropy: argument `gamma` must be a finite number"):
        cs.losses.CategoricalFocalCrossentropy(gamma=-1)
    with pytest.raises(TypeError, match="Dice: argument `axis` must be an int or None, got 'x'"):
        cs.losses.Dice(axis="x")
    with pytest.raises(TypeError, match="Hinge: unexpected keyword argument\\(s\\): axis"):
        cs.losses.Hinge(axis=1)
    with pytest.raises(ValueError, match="loss 'categorical_hinge' needs targets shaped like the model output"):
        cs.losses.CategoricalHinge().check_targets(np.zeros(6), (None, 4), "fit")


def test_keras_positional_arguments_alpha_per_class_and_rank_matching(keras):
    """Keras' argument order (the loss' own arguments first), CategoricalFocalCrossentropy's alpha per class,
    (N,) targets against (N, 1) predictions as Keras matches them, and tiny norms as Keras' normalize bounds them."""
    assert cs.losses.Tversky(0.3, 0.7).get_config() == keras.losses.Tversky(0.3, 0.7).get_config()
    assert cs.losses.CosineSimilarity(0).get_config()["axis"] == 0
    assert cs.losses.BinaryFocalCrossentropy(True, 0.4).get_config() == \
        keras.losses.BinaryFocalCrossentropy(True, 0.4).get_config()
    per_class = cs.losses.CategoricalFocalCrossentropy(alpha=[0.25, 0.5, 0.1, 0.15])
    theirs = keras.losses.CategoricalFocalCrossentropy(alpha=[0.25, 0.5, 0.1, 0.15])
    np.testing.assert_allclose(per_class(ONE_HOT, PROBS), float(theirs(ONE_HOT, PROBS)), rtol=1e-5)
    assert cs.losses.deserialize(keras.losses.serialize(theirs)).get_config()["alpha"] == [0.25, 0.5, 0.1, 0.15]
    y, p = np.array([1.0, 2.0, 3.0], "float32"), np.array([[1.5], [2.0], [2.0]], "float32")
    for name in ("mean_absolute_percentage_error", "mean_squared_logarithmic_error", "log_cosh", "cosine_similarity"):
        np.testing.assert_allclose(getattr(cs.losses, name)(y, p),
                                   keras.ops.convert_to_numpy(getattr(keras.losses, name)(y, p)), rtol=1e-5,
                                   err_msg=name)
    tiny_true, tiny_pred = np.array([[1, 0], [1, 1]], "float32"), np.array([[1e-9, 0], [3e-8, 1e-8]], "float32")
    np.testing.assert_allclose(cs.losses.CosineSimilarity(reduction="none")(tiny_true, tiny_pred),
                               keras.ops.convert_to_numpy(keras.losses.CosineSimilarity(reduction="none")(
                                   tiny_true, tiny_pred)), rtol=1e-5)
    smooth = dict(label_smoothing=0.3, axis=1)                                 # Keras smooths over the last axis
    maps = np.moveaxis(np.eye(3, dtype="float32")[rng.integers(0, 3, (2, 4, 5))], -1, 1)
    scores = np.moveaxis(rng.dirichlet(np.ones(3), size=(2, 4, 5)).astype("float32"), -1, 1)
    expected = keras.ops.convert_to_numpy(keras.losses.categorical_crossentropy(maps, scores, **smooth))
    np.testing.assert_allclose(cs.losses.categorical_crossentropy(maps, scores, **smooth), expected, rtol=1e-5)


@pytest.mark.parametrize("name", ["KLDivergence", "Poisson", "Hinge", "SquaredHinge", "BinaryFocalCrossentropy", "Dice",
                                  "Tversky", "MeanSquaredError", "BinaryCrossentropy"])
def test_targets_with_an_extra_axis_of_one_as_keras(keras, name):
    """(N, 1) targets against (N,) predictions: Keras gives the predictions the axis (no (N, N) broadcast)."""
    import torch
    y_true, y_pred = np.array([[1.0], [0.0], [1.0]], "float32"), np.array([0.9, 0.2, 0.6], "float32")
    ours, theirs = getattr(cs.losses, name)(), getattr(keras.losses, name)()
    watched = torch.tensor(y_pred, requires_grad=True)
    value = theirs(torch.tensor(y_true), watched)
    value.backward()
    np.testing.assert_allclose(ours(y_true, y_pred), value.item(), rtol=1e-5)
    np.testing.assert_allclose(ours.gradient(y_true, y_pred), watched.grad.numpy(), rtol=1e-4, atol=1e-7)
