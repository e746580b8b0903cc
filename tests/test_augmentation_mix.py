"""Keras 3's MixUp and CutMix (layers/augmentation_mix.py): images mixed within a batch, labels too in Keras'
dict form.

Oracles: Keras 3.15.1 on torch — its layers' `transform_images` and `transform_labels` given the parameters
Keras drew (outputs, torch autograd for the input gradients), the distributions of its draws, its configs
and files.
"""

import numpy as np
import pytest

import convscope as cs
from _calls import backward, forward
from _oracle import assert_layer_config_matches_keras_both_ways, assert_matches
from convscope import layers as L
from convscope import utils
from convscope.layers.augmentation_mix import _mix_labels
from convscope.ops.tape import Tape

torch = pytest.importorskip("torch")


def _np(keras, value):
    return keras.ops.convert_to_numpy(value)


def _images(shape, seed=0):
    return np.random.default_rng(seed).random(shape).astype("float32")



def _params(keras, name, p):
    order = _np(keras, p["permutation_order"])
    if name == "MixUp":
        return (order, _np(keras, p["mix_weight"]))
    return (order, _np(keras, p["batch_masks"]), _np(keras, p["mix_weight"]))


@pytest.mark.parametrize("name,kwargs,data_format", [
    ("MixUp", dict(alpha=0.4), "channels_last"), ("MixUp", dict(alpha=2.0), "channels_first"),
    ("CutMix", dict(factor=0.7), "channels_last"), ("CutMix", dict(factor=(0.3, 0.9)), "channels_first")])
def test_the_maps_give_keras_images_labels_and_gradients(keras, name, kwargs, data_format):
    x = _images((6, 5, 7, 3), seed=1)
    if data_format == "channels_first":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    labels = np.random.default_rng(2).random((6, 4)).astype("float32")
    theirs = getattr(keras.layers, name)(**kwargs, data_format=data_format)
    p = theirs.get_random_transformation(x, training=True)
    params = _params(keras, name, p)
    x_t = torch.tensor(x, requires_grad=True)
    y_t = theirs.transform_images(x_t, p, training=True)
    upstream = np.random.default_rng(3).standard_normal(x.shape).astype("float32")
    y_t.backward(torch.tensor(upstream))
    ours = getattr(L, name)(**kwargs, data_format=data_format)
    with Tape() as tape:
        watched = tape.watch(x)
        y = ours._map(watched, params)
        grad = tape.gradient(y, [watched], output_gradient=upstream)[0]
    assert_matches(y.value, _np(keras, y_t.detach()), "float32")
    assert_matches(grad, x_t.grad.numpy(), "float32")
    assert_matches(_mix_labels(labels, params[0], params[-1]), _np(keras, theirs.transform_labels(labels, p)),
                   "float32")


def test_the_dict_form_mixes_labels_with_the_images_weights():
    """One-hot labels tell each image's weight and partner: MixUp's image is w x[i] + (1 - w) x[j]; CutMix's
    keeps its own pixels on the share its label keeps (the rest is its partner's)."""
    x = _images((8, 6, 6, 3), seed=4)
    eye = np.eye(8, dtype=np.float32)
    utils.set_random_seed(5)
    out = L.MixUp(alpha=1.0)({"images": x, "labels": eye})
    for i in range(8):
        own = out["labels"][i, i]
        partner = int(np.argmax(np.where(np.arange(8) == i, -1, out["labels"][i])))
        expected = own * x[i] + (1 - own) * x[partner] if own < 1 else x[i]
        np.testing.assert_allclose(out["images"][i], expected, rtol=1e-5, atol=1e-6)
    big = _images((8, 20, 20, 3), seed=5)
    out = L.CutMix()({"images": big, "labels": eye})
    for i in range(8):
        kept = np.mean(np.all(out["images"][i] == big[i], axis=-1))
        # the box covers whole pixels: its continuous area (the label's) differs by at most a row and a column
        assert abs(kept - out["labels"][i, i]) <= 39 / 400, (kept, out["labels"][i, i])
    assert set(L.MixUp()({"images": x})) == {"images"}
    single = L.CutMix()({"images": x[0], "labels": eye[0]})
    np.testing.assert_array_equal(single["images"], x[0])          # Keras: a single image is left as it is
    np.testing.assert_array_equal(L.MixUp()({"images": x, "labels": eye}, training=False)["images"], x)


def test_the_weights_are_drawn_as_keras_draws_them(keras):
    x = _images((400, 8, 8, 1), seed=6)
    eye = np.eye(400, dtype=np.float32)
    for name, kwargs in [("MixUp", dict(alpha=0.3)), ("MixUp", dict(alpha=3.0)), ("CutMix", dict(factor=0.5))]:
        utils.set_random_seed(7)
        keras.utils.set_random_seed(7)
        ours = getattr(L, name)(**kwargs)({"images": x, "labels": eye})["labels"]
        theirs = _np(keras, getattr(keras.layers, name)(**kwargs)({"images": x.copy(), "labels": eye.copy()})["labels"])
        own = [np.diag(labels) for labels in (ours, theirs)]
        assert abs(own[0].mean() - own[1].mean()) < 0.05, (name, kwargs, own[0].mean(), own[1].mean())
        assert abs(own[0].std() - own[1].std()) < 0.05, (name, kwargs, own[0].std(), own[1].std())


def test_a_model_trains_through_them_and_predicts_as_if_they_were_not_there():
    inputs = L.Input((6, 6, 3))
    h = L.Conv2D(3, 3, padding="same")(inputs)
    h = L.CutMix()(L.MixUp(0.5)(h))
    outputs = L.Dense(1)(L.Flatten()(h))
    model = cs.models.Model(inputs, outputs)
    plain = cs.models.Model(inputs, L.Dense(1)(L.Flatten()(L.Conv2D(3, 3, padding="same")(inputs))))
    plain.set_weights(model.get_weights())
    x = _images((4, 6, 6, 3), seed=8)
    np.testing.assert_allclose(model.predict(x, verbose=0), plain.predict(x, verbose=0), rtol=1e-6)
    model.compile(optimizer=cs.optimizers.SGD(0.05), loss="mse")
    before = [w.copy() for w in model.get_weights()]
    model.fit(x, np.ones((4, 1), np.float32), epochs=1, verbose=0)
    assert all(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    for layer in (L.MixUp(), L.CutMix()):
        y, ctx = forward(layer, x, training=False)
        assert y is x and backward(layer, ctx, x)[0] is x and layer.describe().kind == "augment"


@pytest.mark.parametrize("name,kwargs", [("MixUp", dict()), ("MixUp", dict(alpha=0.7, seed=3)),
                                         ("CutMix", dict()), ("CutMix", dict(factor=(0.9, 0.2), seed=1,
                                                                             data_format="channels_first"))])
def test_configs_match_keras_both_ways(keras, name, kwargs):
    assert_layer_config_matches_keras_both_ways(keras, name, kwargs)


def test_a_keras_file_with_them_loads_and_predicts(keras, tmp_path):
    k = keras.layers
    kmodel = keras.Sequential([k.Input((6, 6, 3)), k.MixUp(0.3), k.CutMix(0.6), k.Conv2D(2, 3), k.Flatten(),
                               k.Dense(2)])
    kmodel.save(tmp_path / "k.keras")
    x = _images((3, 6, 6, 3), seed=9)
    model = cs.models.load_model(tmp_path / "k.keras", compile=False)
    assert [type(layer).__name__ for layer in model.layers[:2]] == ["MixUp", "CutMix"]
    np.testing.assert_allclose(model.predict(x, verbose=0), _np(keras, kmodel.predict(x, verbose=0)), rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize("make,error,message", [
    (lambda: L.MixUp(alpha=0), ValueError, r"MixUp.*`alpha` must be a positive number, got 0"),
    (lambda: L.MixUp(alpha="x"), TypeError, r"MixUp.*`alpha`.*'x'"),
    (lambda: L.CutMix(factor=1.5), ValueError, r"CutMix.*`factor`.*\[0, 1\], got 1.5"),
    (lambda: L.CutMix()({"images": _images((2, 4, 4, 3)), "bounding_boxes": []}), ValueError,
     r"cut_mix.*a dict input must hold 'images' and may hold 'labels'.*'bounding_boxes'"),
])
def test_arguments_are_checked_with_clear_messages(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_cut_mix_boxes_cover_every_channel_in_both_layouts_and_bad_labels_are_named():
    x = _images((6, 3, 12, 12), seed=11)
    out = L.CutMix(data_format="channels_first")({"images": x, "labels": np.eye(6, dtype=np.float32)})["images"]
    changed = out != x
    assert changed.any()
    assert np.all(changed.any(axis=1) == changed.all(axis=1))       # a pasted pixel brings all its channels
    with pytest.raises(ValueError, match=r"mix_up.*'labels' must hold one label per image \(4\), got 3"):
        L.MixUp()({"images": _images((4, 5, 5, 3)), "labels": np.eye(3)})
