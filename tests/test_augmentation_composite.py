"""Keras 3's RandAugment and AugMix (layers/augmentation_composite.py).

Oracles: Keras 3.15.1 on torch — its RandAugment's draws (picks and the eleven layers' parameters) applied by
its own eleven layers in the picked order (outputs, torch autograd for the input gradients), its configs and
files.  Keras' own `transform_images` also applies RandomBrightness at every op, picked or not (the layer adds
its delta into the images in place), and a rotation picked twice turns the second time by another angle (torch's
affine_transform swaps the entries of the drawn matrix in place); convscope applies the picked ops only, each
picked one with its draw as drawn (the oracle below runs Keras' layers on copies).
"""

import copy

import numpy as np
import pytest

import convscope as cs
from _calls import backward, forward
from _oracle import assert_layer_config_matches_keras_both_ways, assert_matches, comparable_config
from convscope import layers as L
from convscope.ops import augment

torch = pytest.importorskip("torch")


def _np(keras, value):
    return keras.ops.convert_to_numpy(value)



def _our_draw(keras, name, p, height, width):
    """convscope's parameters for the Keras draw `p` of the layer `name`."""
    if p is None:
        return None
    if name == "random_shear":
        shear = _np(keras, p["shear_factor"])
        return augment.shear_transforms(shear[:, 0], shear[:, 1])
    if name == "random_translation":
        shift = _np(keras, p["translations"])
        return augment.translation_transforms(shift[:, 0], shift[:, 1])
    if name == "random_rotation":
        return augment.rotation_transforms(_np(keras, p["angle"]), height, width)
    if name == "solarization":
        return _np(keras, p["additions"]), _np(keras, p["thresholds"])
    key = {"random_brightness": "rgb_delta", "random_contrast": "contrast_factor",
           "random_posterization": "shift_factor"}.get(name, "factor")
    return _np(keras, p[key]).reshape(-1)


@pytest.mark.parametrize("kwargs,data_format,seed", [
    (dict(num_ops=3, factor=0.6), "channels_last", 0), (dict(num_ops=2, factor=(0.2, 0.9)), "channels_last", 1),
    (dict(num_ops=4, factor=0.8, value_range=(0, 1), interpolation="nearest"), "channels_last", 2),
    (dict(num_ops=3, factor=0.5), "channels_first", 3)])
def test_keras_draws_applied_give_keras_layers_outputs_and_gradients(keras, kwargs, data_format, seed):
    scale = 1.0 if "value_range" in kwargs else 255.0
    keras.utils.set_random_seed(seed)
    for trial in range(6):
        x = (np.random.default_rng(10 * seed + trial).random((4, 8, 9, 3)) * scale).astype("float32")
        if data_format == "channels_first":
            x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        theirs = keras.layers.RandAugment(**kwargs, data_format=data_format)
        p = theirs.get_random_transformation(x, training=True)
        picks = _np(keras, p["layer_idxes"])
        x_t = torch.tensor(x, requires_grad=True)
        y_t = x_t
        for pick in picks:
            name = theirs._AUGMENT_LAYERS[pick]
            y_t = getattr(theirs, name).transform_images(y_t.clone(), copy.deepcopy(p["transforms"][name]))
        ours = L.RandAugment(**kwargs, data_format=data_format)
        draws = [_our_draw(keras, name, p["transforms"][name], 8, 9) for name in theirs._AUGMENT_LAYERS]
        y, ctx = ours._apply(x, (picks, draws))
        assert_matches(y, _np(keras, y_t.detach()), "float32")
        if y_t.requires_grad:
            upstream = np.random.default_rng(trial).standard_normal(x.shape).astype("float32")
            y_t.backward(torch.tensor(upstream))
            assert_matches(ours._backward(ctx, upstream), x_t.grad.numpy(), "float32")


@pytest.mark.parametrize("kwargs", [dict(), dict(factor=(0.3, 0.9), value_range=(0, 1), interpolation="nearest",
                                              seed=2, data_format="channels_first")])
def test_the_eleven_layers_are_built_as_keras_builds_them(keras, kwargs):
    theirs, ours = keras.layers.RandAugment(**kwargs), L.RandAugment(**kwargs)
    assert len(ours._ops) == len(theirs._AUGMENT_LAYERS)
    for op, name in zip(ours._ops, theirs._AUGMENT_LAYERS):
        expected = comparable_config(getattr(theirs, name).get_config())
        got = comparable_config(op.get_config())
        assert type(op).__name__ == type(getattr(theirs, name)).__name__
        assert {k: v for k, v in got.items() if k != "trainable"} == \
            {k: v for k, v in expected.items() if k != "trainable"}, name


@pytest.mark.parametrize("kwargs,data_format", [
    (dict(), "channels_last"), (dict(num_chains=2, chain_depth=4, factor=0.6, alpha=0.5, all_ops=False),
                                "channels_last"),
    (dict(value_range=(0, 1), factor=(0.2, 0.8), interpolation="nearest"), "channels_first")])
def test_aug_mix_of_keras_draws_gives_keras_outputs_and_gradients(keras, kwargs, data_format):
    scale = 1.0 if "value_range" in kwargs else 255.0
    keras.utils.set_random_seed(7)
    for trial in range(5):
        x = (np.random.default_rng(trial).random((3, 8, 9, 3)) * scale).astype("float32")
        if data_format == "channels_first":
            x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        theirs = keras.layers.AugMix(**kwargs, data_format=data_format)
        p = theirs.get_random_transformation(x, training=True)
        ours = L.AugMix(**kwargs, data_format=data_format)
        names = [n for n in ours._NAMES if n in theirs._augment_layers]
        chains = [[(names.index(step["layer_name"]), _our_draw(keras, step["layer_name"], step["transformation"], 8,
                                                                 9)) for step in chain]
                  for chain in p["chain_transforms"]]
        params = (_np(keras, p["chain_mixing_weights"]).astype("float32"), np.float32(_np(keras, p["weight_sample"])),
                  chains)
        x_t = torch.tensor(x, requires_grad=True)
        y_t = theirs.transform_images(x_t, p)
        y, ctx = ours._apply(x, params)
        assert_matches(y, _np(keras, y_t.detach()), "float32")
        upstream = np.random.default_rng(trial + 10).standard_normal(x.shape).astype("float32")
        y_t.backward(torch.tensor(upstream))
        assert_matches(ours._backward(ctx, upstream), x_t.grad.numpy(), "float32")


def test_aug_mix_draws_as_keras_and_is_the_identity_at_inference():
    """Dirichlet chain weights (summing to 1) and steps that pick one of the layers or none (1 in 8 of Keras'
    seven plus none)."""
    layer = L.AugMix(all_ops=False, num_chains=4, chain_depth=5)
    x = np.random.default_rng(8).random((2, 6, 6, 3)).astype("float32") * 255
    steps, weights = 0, []
    for i in range(300):
        chain_weights, blend, chains = layer._draw(x, np.random.default_rng(i))
        assert abs(chain_weights.sum() - 1) < 1e-5 and 0 <= blend <= 1
        steps += sum(len(chain) for chain in chains)
        weights.append(chain_weights)
    assert abs(steps / (300 * 4 * 5) - 7 / 8) < 0.03
    assert abs(np.mean(weights) - 0.25) < 0.01 and abs(np.std(weights) - np.sqrt(3 / 16 / 5)) < 0.02  # Dir(1,1,1,1)
    out, ctx = forward(layer, x, training=False)
    assert out is x and backward(layer, ctx, x)[0] is x


def test_keras_own_transform_brightens_at_every_op(keras):
    """The difference convscope does not copy: Keras' RandAugment output holds RandomBrightness' delta even
    where brightness is not picked."""
    x = np.full((3, 5, 5, 3), 100.0, np.float32)
    layer = keras.layers.RandAugment(num_ops=1, factor=0.5)
    for _ in range(20):
        p = layer.get_random_transformation(x, training=True)
        if int(_np(keras, p["layer_idxes"])[0]) in (0, 1, 2):       # a shear, translation or rotation only
            break
    delta = _np(keras, p["transforms"]["random_brightness"]["rgb_delta"]).reshape(-1)
    y = _np(keras, layer.transform_images(keras.ops.convert_to_tensor(x.copy()), p))
    np.testing.assert_allclose(y[:, 2, 2, 0], 100.0 + delta, rtol=1e-5)


def test_picks_are_uniform_with_repetition_and_the_layer_is_the_identity_at_inference():
    layer = L.RandAugment(num_ops=3, seed=4)
    x = np.random.default_rng(5).random((2, 6, 6, 3)).astype("float32") * 255
    picks = np.concatenate([layer._draw(x, np.random.default_rng(i))[0] for i in range(400)])
    counts = np.bincount(picks, minlength=11)
    assert counts.min() > 70 and counts.max() < 150            # 1200 picks of 11: about 109 each
    y, ctx = forward(layer, x, training=True)
    assert y.shape == x.shape and not np.array_equal(y, x)
    out, ctx = forward(layer, x, training=False)
    assert out is x and backward(layer, ctx, x)[0] is x and layer.describe().kind == "augment"


CONFIGS = [("RandAugment", dict()),
           ("RandAugment", dict(value_range=(0, 1), num_ops=3, factor=(0.7, 0.2), interpolation="nearest", seed=3,
                                data_format="channels_first")),
           ("AugMix", dict()),
           ("AugMix", dict(value_range=(0, 1), num_chains=2, chain_depth=1, factor=(0.7, 0.2), alpha=0.3,
                           all_ops=False, interpolation="nearest", seed=5, data_format="channels_first"))]


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)])
def test_configs_match_keras_both_ways(keras, name, kwargs):
    assert_layer_config_matches_keras_both_ways(keras, name, kwargs)


def test_a_keras_file_with_it_loads_trains_and_predicts(keras, tmp_path):
    k = keras.layers
    kmodel = keras.Sequential([k.Input((8, 8, 3)), k.RandAugment(num_ops=2, factor=0.4), k.AugMix(all_ops=False),
                               k.Conv2D(2, 3), k.Flatten(), k.Dense(2)])
    kmodel.save(tmp_path / "k.keras")
    x = np.random.default_rng(6).random((3, 8, 8, 3)).astype("float32") * 255
    model = cs.models.load_model(tmp_path / "k.keras", compile=False)
    assert [type(layer).__name__ for layer in model.layers[:2]] == ["RandAugment", "AugMix"]
    np.testing.assert_allclose(model.predict(x, verbose=0), _np(keras, kmodel.predict(x, verbose=0)), rtol=1e-5,
                               atol=1e-4)
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, np.zeros((3, 2), np.float32), epochs=1, verbose=0)


@pytest.mark.parametrize("make,error,message", [
    (lambda: L.RandAugment(num_ops=0), ValueError, r"RandAugment.*`num_ops` must be a positive int, got 0"),
    (lambda: L.RandAugment(factor=1.5), ValueError, r"RandAugment.*`factor`.*\[0, 1\], got 1.5"),
    (lambda: L.RandAugment(interpolation="cubic"), ValueError, r"RandAugment.*`interpolation` must be one of"),
    (lambda: L.RandAugment(value_range=5), TypeError, r"RandAugment.*`value_range` must be a list"),
    (lambda: L.AugMix(num_chains=0), ValueError, r"AugMix.*`num_chains` must be a positive int, got 0"),
    (lambda: L.AugMix(chain_depth=1.5), TypeError, r"AugMix.*`chain_depth` must be a positive int, got 1.5"),
    (lambda: L.AugMix(alpha=-1), ValueError, r"AugMix.*`alpha` must be a positive number, got -1"),
    (lambda: L.AugMix(all_ops="yes"), TypeError, r"AugMix.*`all_ops` must be a bool, got 'yes'"),
])
def test_arguments_are_checked_with_clear_messages(make, error, message):
    with pytest.raises(error, match=message):
        make()
