"""Keras 3's augmentation layers that map pixel values (layers/augmentation_color.py) and their maps
(ops/augment_color.py): RandomGrayscale, RandomInvert, Solarization, RandomPosterization,
RandomColorDegeneration, RandomSharpness, RandomSaturation, RandomHue, RandomColorJitter, RandomGaussianBlur,
RandomErasing, Equalization, AutoContrast.

Oracles: Keras 3.15.1 on torch — its layers' `transform_images` given the parameters Keras itself drew
(outputs, and torch autograd through them for the gradients), its layers called with a fixed factor, the
distributions of its draws, its configs and `.keras` files; ONNX Runtime for the export.
"""

import numpy as np
import pytest

import convscope as cs
from _calls import backward, forward
from _oracle import assert_layer_config_matches_keras_both_ways, assert_matches, comparable_config
from convscope import layers as L
from convscope import utils
from convscope.ops import augment_color as ac
from convscope.ops.tape import Tape

torch = pytest.importorskip("torch")

NAMES = ["RandomGrayscale", "RandomInvert", "Solarization", "RandomPosterization", "RandomColorDegeneration",
         "RandomSharpness", "RandomSaturation", "RandomHue", "RandomColorJitter", "Equalization", "AutoContrast"]


def _np(keras, value):
    return keras.ops.convert_to_numpy(value)


def _images(shape, seed=0, scale=255.0):
    return (np.random.default_rng(seed).random(shape) * scale).astype("float32")



def _taped(fn, x, upstream):
    """(fn(x), the gradient of sum(fn(x) * upstream) w.r.t. x through a Tape; None where fn passes none)."""
    with Tape() as tape:
        watched = tape.watch(x)
        y = fn(watched)
        if not hasattr(y, "_node"):
            return np.asarray(y), None
        return y.value, tape.gradient(y, [watched], output_gradient=upstream)[0]


# -- the maps, given the parameters Keras drew, against Keras' transform_images and torch's autograd ---------

def _p(key=None):
    return (lambda keras, p: _np(keras, p).reshape(-1)) if key is None else (lambda keras, p: _np(keras, p[key]))


MAPS = [
    ("RandomGrayscale", dict(factor=0.5), lambda x, p, a: ac.select_grayscale(x, p[0], a), [_p()]),
    ("RandomInvert", dict(factor=0.6), lambda x, p, a: ac.invert(x, p[0], 255), [_p("apply_inversion")]),
    ("Solarization", dict(addition_factor=0.3, threshold_factor=0.7),
     lambda x, p, a: ac.solarize(x, p[0], p[1], (0, 255)), [_p("additions"), _p("thresholds")]),
    ("Solarization", dict(addition_factor=(0.1, 0.2), threshold_factor=0.9, value_range=(1, 0)),
     lambda x, p, a: ac.solarize(x, p[0], p[1], (0, 1)), [_p("additions"), _p("thresholds")]),
    ("RandomPosterization", dict(factor=(2, 7)), lambda x, p, a: ac.posterize(x, p[0], (0, 255)),
     [_p("shift_factor")]),
    ("RandomPosterization", dict(factor=3, value_range=(0, 1)), lambda x, p, a: ac.posterize(x, p[0], (0, 1)),
     [_p("shift_factor")]),
    ("RandomPosterization", dict(factor=(0, 3)), lambda x, p, a: ac.posterize(x, p[0], (0, 255)),
     [_p("shift_factor")]),         # 0 bits: 8 - 0, every bit cleared
    ("RandomPosterization", dict(factor=(5, 10)), lambda x, p, a: ac.posterize(x, p[0], (0, 255)),
     [_p("shift_factor")]),         # 9 bits: Keras' bytes wrap 8 - 9 to 255
    ("RandomColorDegeneration", dict(factor=0.8), lambda x, p, a: ac.degenerate(x, p[0], (0, 255), a),
     [_p("factor")]),
    ("RandomSharpness", dict(factor=0.9), lambda x, p, a: ac.sharpen(x, p[0], (0, 255), a), [_p("factor")]),
    ("RandomSaturation", dict(factor=0.7), lambda x, p, a: ac.adjust_saturation(x, p[0], (0, 255), a),
     [_p("factor")]),
    ("RandomSaturation", dict(factor=(0.2, 0.6), value_range=(0, 1)),
     lambda x, p, a: ac.adjust_saturation(x, p[0], (0, 1), a), [_p("factor")]),
    ("RandomHue", dict(factor=0.8), lambda x, p, a: ac.adjust_hue(x, p[0], (0, 255), a), [_p("factor")]),
    ("RandomHue", dict(factor=(0.3, 0.9), value_range=(0, 1)), lambda x, p, a: ac.adjust_hue(x, p[0], (0, 1), a),
     [_p("factor")]),
    ("RandomGaussianBlur", dict(factor=0.7, kernel_size=5, sigma=(0.3, 1.0)),
     lambda x, p, a: ac.gaussian_blur(x, p[0], 5, p[1], (0, 255), a), [_p("should_apply_blur"), _p("blur_factor")]),
    ("RandomGaussianBlur", dict(sigma=0.6, value_range=(0.2, 0.9)),
     lambda x, p, a: ac.gaussian_blur(x, p[0], 3, p[1], (0.2, 0.9), a), [_p("should_apply_blur"), _p("blur_factor")]),
    ("RandomErasing", dict(factor=0.8, scale=(0.1, 0.5)), lambda x, p, a: ac.erase(x, p[0], p[1], p[2]),
     [_p("batch_masks"), _p("apply_erasing"), _p("fill_value")]),
    ("RandomErasing", dict(scale=0.6, fill_value=0.5, value_range=(0, 1)), lambda x, p, a: ac.erase(x, *p),
     [_p("batch_masks"), _p("apply_erasing"), _p("fill_value")]),
    ("AutoContrast", dict(), lambda x, p, a: ac.auto_contrast(x, (0, 255)), []),
    ("AutoContrast", dict(value_range=(0, 1)), lambda x, p, a: ac.auto_contrast(x, (0, 1)), []),
    ("Equalization", dict(), lambda x, p, a: ac.equalize(x, (0, 255), 256, a), []),
    ("Equalization", dict(value_range=(0, 1), bins=64), lambda x, p, a: ac.equalize(x, (0, 1), 64, a), []),
]


CASES = [m + (fmt,) for m in MAPS for fmt in ("channels_last", "channels_first")
         if not (m[0] == "Solarization" and fmt == "channels_first")]     # elementwise: Keras' has no data_format


@pytest.mark.parametrize("name,kwargs,run,params,data_format", CASES,
                         ids=[f"{c[0]}-{i}-{c[4]}" for i, c in enumerate(CASES)])
def test_each_map_gives_keras_outputs_and_torch_gradients(keras, name, kwargs, run, params, data_format):
    """Keras' layer draws its parameters; the same parameters through `ops.augment_color` give its
    `transform_images` output, and the tape's gradient is torch's through it (none where torch's is none)."""
    scale = 1.0 if "value_range" in kwargs else 255.0
    x = _images((4, 6, 7, 3), seed=1, scale=scale)
    if data_format == "channels_first":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    layer = getattr(keras.layers, name)(**kwargs, **({} if name == "Solarization" else {"data_format": data_format}))
    transformation = layer.get_random_transformation(x, training=True)
    drawn = [get(keras, transformation) for get in params]
    x_t = torch.tensor(x, requires_grad=True)
    y_t = layer.transform_images(x_t.clone(), transformation, training=True)
    upstream = np.random.default_rng(2).standard_normal(x.shape).astype("float32")
    axis = -1 if data_format == "channels_last" else -3
    ours, grad = _taped(lambda v: run(v, drawn, axis), x, upstream)
    assert_matches(ours, _np(keras, y_t.detach()), "float32")
    if y_t.requires_grad:
        y_t.backward(torch.tensor(upstream))
        theirs = x_t.grad.numpy()
        if grad is None:        # a cast or a lookup: torch's gradient is zero everywhere
            np.testing.assert_array_equal(theirs, 0)
        else:
            assert_matches(grad, theirs, "float32")
    else:
        assert grad is None


def test_auto_contrast_on_saturated_patches_and_nan_follows_torch(keras):
    """Tied maxima (a saturated patch): torch's 255 / t is 1 / t * 255, which decides whether the stretched
    maximum clips, and so its gradient; a NaN keeps its whole slice, its gradient NaN as torch's."""
    rng = np.random.default_rng(21)
    x = (rng.random((20, 6, 6, 3)) * 0.9).astype("float32")
    x[:, 2:4, 2:4, :] = 1.0
    x[3, 0, 0, 1] = np.nan
    upstream = rng.standard_normal(x.shape).astype("float32")
    layer = keras.layers.AutoContrast(value_range=(0, 1))
    x_t = torch.tensor(x, requires_grad=True)
    y_t = layer.transform_images(x_t, None)
    y_t.backward(torch.tensor(upstream))
    ours, grad = _taped(lambda v: ac.auto_contrast(v, (0, 1)), x, upstream)
    np.testing.assert_array_equal(ours, _np(keras, y_t.detach()))
    theirs = x_t.grad.numpy()
    np.testing.assert_array_equal(np.isnan(grad), np.isnan(theirs))
    assert_matches(np.nan_to_num(grad), np.nan_to_num(theirs), "float32")     # the clipped ones: exactly 0


def test_maximum_and_minimum_pass_gradients_as_torch_for_ties_and_nan():
    a = np.array([1.0, 2.0, np.nan, 3.0, np.nan], np.float32)
    b = np.array([1.0, 1.0, 0.5, np.nan, np.nan], np.float32)
    g = np.array([1.0, 2.0, 3.0, 4.0, 5.0], np.float32)
    for ours_fn, torch_fn in [(cs.ops.maximum, torch.maximum), (cs.ops.minimum, torch.minimum)]:
        with Tape() as tape:
            ta, tb = tape.watch(a), tape.watch(b)
            ga, gb = tape.gradient(ours_fn(ta, tb), [ta, tb], output_gradient=g)
        xa, xb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
        torch_fn(xa, xb).backward(torch.tensor(g))
        np.testing.assert_array_equal(ga, xa.grad.numpy())
        np.testing.assert_array_equal(gb, xb.grad.numpy())


def test_grayscale_of_one_channel_is_the_channel_and_the_colour_maps_need_three(keras):
    x = _images((2, 4, 5, 1), seed=3)
    np.testing.assert_array_equal(ac.grayscale(x, -1), _np(keras, keras.ops.image.rgb_to_grayscale(x)))
    x3 = _images((2, 4, 5, 3), seed=3)
    assert_matches(ac.grayscale(x3, -1), _np(keras, keras.ops.image.rgb_to_grayscale(x3)), "float32")
    assert_matches(ac.rgb_to_hsv(x3 / 255, -1), _np(keras, keras.ops.image.rgb_to_hsv(x3 / 255)), "float32")
    hsv = np.random.default_rng(4).random((2, 4, 5, 3)).astype("float32") * [2.0, 1.0, 1.0] - [0.5, 0, 0]
    assert_matches(ac.hsv_to_rgb(hsv.astype("float32"), -1),
                   _np(keras, keras.ops.image.hsv_to_rgb(hsv.astype("float32"))), "float32")
    with pytest.raises(ValueError, match=r"rgb_to_hsv: the images must have 3 channels \(axis -1\), got shape"):
        ac.rgb_to_hsv(x, -1)
    with pytest.raises(ValueError, match=r"grayscale: the images must have 1 or 3 channels"):
        ac.grayscale(_images((1, 2, 2, 4)), -1)
    with pytest.raises(ValueError, match=r"posterize: argument `shifts` must hold one shift of 0 to 255 per image"):
        ac.posterize(x, [256, 1], (0, 255))
    with pytest.raises(ValueError, match=r"sharpen: argument `factors` must hold one value per image \(2\), got 3"):
        ac.sharpen(x, [0.1, 0.2, 0.3], (0, 255), -1)


# -- layers with a fixed draw, against Keras' layers (outputs and input gradients) ----------------------

FIXED = [
    ("RandomGrayscale", dict(factor=1.0)),
    ("RandomGrayscale", dict(factor=1.0, data_format="channels_first")),
    ("RandomInvert", dict(factor=(1.0, 1.0), value_range=(0, 1))),
    ("Solarization", dict(addition_factor=0.0, threshold_factor=0.0)),
    ("RandomPosterization", dict(factor=(5, 5))),
    ("RandomColorDegeneration", dict(factor=(0.3, 0.3))),
    ("RandomColorDegeneration", dict(factor=(-0.6, -0.6), data_format="channels_first")),
    ("RandomSharpness", dict(factor=(0.8, 0.8))),
    ("RandomSaturation", dict(factor=(0.6, 0.6))),
    ("RandomSaturation", dict(factor=(0.4, 0.4), data_format="channels_first")),
    ("RandomColorJitter", dict(brightness_factor=(0.1, 0.1), saturation_factor=(0.7, 0.7))),
    ("RandomGaussianBlur", dict(factor=(1.0, 1.0), kernel_size=5, sigma=(0.7, 0.7))),
    ("RandomGaussianBlur", dict(factor=(1.0, 1.0), sigma=(0.4, 0.4), data_format="channels_first")),
    ("Equalization", dict(bins=32)),
    ("AutoContrast", dict()),
]


@pytest.mark.parametrize("name,kwargs", FIXED, ids=[f"{n}-{i}" for i, (n, _) in enumerate(FIXED)])
def test_a_fixed_draw_matches_keras_forward_and_backward(keras, name, kwargs):
    channels_first = kwargs.get("data_format") == "channels_first"
    x = _images((3, 3, 5, 6) if channels_first else (3, 5, 6, 3), seed=5, scale=1.0 if name == "RandomInvert" else 255)
    ours, theirs = getattr(L, name)(**kwargs), getattr(keras.layers, name)(**kwargs)
    y, ctx = forward(ours, x, training=True)
    x_t = torch.tensor(x, requires_grad=True)
    y_t = theirs(x_t.clone(), training=True)
    assert_matches(y, _np(keras, y_t), "float32")
    upstream = np.random.default_rng(6).standard_normal(y.shape).astype("float32")
    grad, _ = backward(ours, ctx, upstream)
    if y_t.requires_grad:
        y_t.backward(torch.tensor(upstream))
        assert_matches(grad, x_t.grad.numpy(), "float32")
    else:                       # RandomPosterization: torch's graph stops at the cast to bytes
        np.testing.assert_array_equal(grad, 0)
    assert ours.compute_output_shape((None,) + x.shape[1:]) == tuple(theirs.compute_output_shape((None,) + x.shape[1:]))


# -- random draws: the same distributions as Keras' ------------------------------------------------------

def _both(keras, name, x, **kwargs):
    utils.set_random_seed(31)
    keras.utils.set_random_seed(31)
    ours, theirs = getattr(L, name)(**kwargs), getattr(keras.layers, name)(**kwargs)
    return ours(x, training=True), _np(keras, theirs(x.copy(), training=True))


def test_the_probabilities_of_gray_and_inverted_images_agree_with_keras(keras):
    x = _images((600, 2, 2, 3), seed=7)
    for name, kwargs, changed in [("RandomGrayscale", dict(factor=0.3), 0.3),
                                  ("RandomInvert", dict(factor=(0.2, 0.6)), 0.4)]:
        fractions = [np.mean(np.any(y != x, axis=(1, 2, 3))) for y in _both(keras, name, x, **kwargs)]
        assert abs(fractions[0] - changed) < 0.06 and abs(fractions[1] - changed) < 0.06, (name, fractions)


def test_posterization_bits_and_hue_turns_are_drawn_as_keras_draws_them(keras):
    """Posterization's bits are integers in [low, high): 255 keeps 8 - shift ones.  Hue turns by +- f / 2 with
    either sign: a pure red pixel's new hue, from both layers."""
    x = np.full((800, 1, 1, 3), 255, np.float32)
    outputs = _both(keras, "RandomPosterization", x, factor=(2, 6))
    for y in outputs:
        values, counts = np.unique(y[:, 0, 0, 0], return_counts=True)
        assert values.tolist() == [192.0, 224.0, 240.0, 248.0]        # 2, 3, 4, 5 bits kept; never 6
        assert counts.min() > 150
    red = np.tile(np.array([255, 0, 0], np.float32), (800, 1, 1, 1))
    hues = []
    for y in _both(keras, "RandomHue", red, factor=(0.2, 0.6)):
        hsv = np.asarray(ac.rgb_to_hsv(y / 255, -1))[:, 0, 0, 0]
        hues.append(np.where(hsv > 0.5, hsv - 1, hsv))     # the turn, in (-0.5, 0.5]
    for turn in hues:
        assert np.all((np.abs(turn) > 0.1 - 1e-3) & (np.abs(turn) < 0.3 + 1e-3))
        assert 0.4 < np.mean(turn > 0) < 0.6
    assert abs(np.mean(np.abs(hues[0])) - np.mean(np.abs(hues[1]))) < 0.01


def test_erased_boxes_and_blurred_images_are_drawn_as_keras_draws_them(keras):
    """The share of each image a box covers (its sides sqrt(scale) of the image's) and the share of images
    erased or blurred, from both layers."""
    x = _images((500, 10, 12, 3), seed=15)
    covered = []
    for y in _both(keras, "RandomErasing", x, factor=(1.0, 1.0), scale=(0.1, 0.4), fill_value=-1.0,
                   value_range=(-1, 255)):
        share = np.mean(y == -1.0, axis=(1, 2, 3))
        assert np.all(share > 0) and np.all(share < 0.6)      # whole pixels of a box of 0.1 to 0.4 of it
        covered.append(share)
    assert abs(covered[0].mean() - covered[1].mean()) < 0.1 * covered[1].mean(), [c.mean() for c in covered]
    assert abs(covered[0].std() - covered[1].std()) < 0.25 * covered[1].std()
    changed = [np.mean(np.any(y != x, axis=(1, 2, 3))) for y in _both(keras, "RandomGaussianBlur", x,
                                                                       factor=(0.2, 0.6))]
    assert abs(changed[0] - 0.4) < 0.07 and abs(changed[1] - 0.4) < 0.07, changed


def test_saturation_and_sharpness_factors_spread_as_keras(keras):
    x = _images((500, 4, 4, 3), seed=8)
    for name, kwargs in [("RandomSaturation", dict(factor=(0.2, 0.8))), ("RandomSharpness", dict(factor=0.7)),
                         ("RandomColorDegeneration", dict(factor=0.5)), ("Solarization", dict(threshold_factor=0.6))]:
        change = [np.abs(y - x).mean(axis=(1, 2, 3)) for y in _both(keras, name, x, **kwargs)]
        assert abs(change[0].mean() - change[1].mean()) < 0.1 * change[1].mean(), (name, change[0].mean(),
                                                                                    change[1].mean())
        assert abs(change[0].std() - change[1].std()) < 0.2 * change[1].std(), name


# -- inference, seeds ---------------------------------------------------------------------------------

def test_inference_is_the_identity_but_auto_contrast_applies_as_keras(keras):
    x = _images((2, 5, 6, 3), seed=9)
    for name in NAMES[:-1]:
        layer = {"RandomPosterization": lambda: L.RandomPosterization(3),
                 "RandomColorJitter": lambda: L.RandomColorJitter(brightness_factor=0.5, hue_factor=0.5)}.get(
                     name, lambda: getattr(L, name)(**({} if name in ("RandomGrayscale", "RandomInvert", "Solarization",
                                                                      "Equalization") else {"factor": 0.9})))()
        y, ctx = forward(layer, x, training=False)
        assert y is x, name
        grad, _ = backward(layer, ctx, x)
        assert grad is x, name
        assert layer.describe().kind == "augment", name
    contrast, theirs = L.AutoContrast(), keras.layers.AutoContrast()
    assert_matches(contrast(x, training=False), _np(keras, theirs(x, training=False)), "float32")
    assert contrast.describe().kind == "other"


def test_color_jitter_is_its_four_layers_in_keras_order():
    """Brightness, contrast, saturation, then hue, each drawing in turn: the same images as the four layers
    called one after another from the same generator state."""
    x = _images((6, 5, 5, 3), seed=11)
    kwargs = dict(brightness_factor=0.2, contrast_factor=0.4, saturation_factor=(0.3, 0.8), hue_factor=0.6)
    utils.set_random_seed(9)
    jittered = L.RandomColorJitter(**kwargs)(x)
    utils.set_random_seed(9)
    y = x
    for layer in (L.RandomBrightness(0.2), L.RandomContrast(0.4), L.RandomSaturation((0.3, 0.8)), L.RandomHue(0.6)):
        y = layer(y)
    np.testing.assert_array_equal(jittered, y)


def test_set_random_seed_and_the_seed_argument_make_draws_repeatable():
    x = _images((8, 5, 5, 3), seed=10)
    makers = [lambda **s: L.RandomGrayscale(**s), lambda **s: L.RandomInvert(0.5, **s),
              lambda **s: L.Solarization(0.5, 0.5, **s), lambda **s: L.RandomPosterization((1, 8), **s),
              lambda **s: L.RandomColorDegeneration(0.9, **s), lambda **s: L.RandomSharpness(0.9, **s),
              lambda **s: L.RandomSaturation(0.9, **s), lambda **s: L.RandomHue(0.9, **s),
              lambda **s: L.RandomColorJitter(brightness_factor=0.3, hue_factor=0.4, **s)]
    for make in makers:
        layer = make()
        utils.set_random_seed(3)
        first = [layer(x) for _ in range(2)]
        utils.set_random_seed(3)
        again = [layer(x) for _ in range(2)]
        for a, b in zip(first, again):
            np.testing.assert_array_equal(a, b)
        assert not np.array_equal(first[0], first[1])
        if "seed" in make(seed=1).get_config():         # RandomGrayscale keeps no seed (Keras' config)
            outputs = [make(seed=11)(x), make(seed=11)(x), make(seed=12)(x)]
            np.testing.assert_array_equal(outputs[0], outputs[1])
            assert not np.array_equal(outputs[0], outputs[2])


# -- configs and files ---------------------------------------------------------------------------------

CONFIGS = [
    ("RandomGrayscale", dict()),
    ("RandomGrayscale", dict(factor=0.2, data_format="channels_first", seed=3)),
    ("RandomInvert", dict()),
    ("RandomInvert", dict(factor=(0.7, 0.2), value_range=(1, 0), seed=2)),
    ("Solarization", dict()),
    ("Solarization", dict(addition_factor=0.4, threshold_factor=(0.9, 0.1), value_range=(1, -1), seed=5)),
    ("RandomPosterization", dict(factor=4)),
    ("RandomPosterization", dict(factor=(6, 2), value_range=(0, 1), data_format="channels_first")),
    ("RandomColorDegeneration", dict(factor=0.5)),
    ("RandomColorDegeneration", dict(factor=(-0.2, 0.9), value_range=(255, 0), seed=4)),
    ("RandomSharpness", dict(factor=0.3)),
    ("RandomSaturation", dict(factor=(0.1, 0.5), value_range=(0, 1))),
    ("RandomHue", dict(factor=0.4)),
    ("RandomHue", dict(factor=(0.9, 0.1), value_range=(1, 0), seed=8)),
    ("RandomColorJitter", dict()),
    ("RandomColorJitter", dict(value_range=(0, 1), brightness_factor=0.2, contrast_factor=(0.1, 0.3),
                               saturation_factor=0.5, hue_factor=(0.1, 0.2), seed=6)),
    ("Equalization", dict()),
    ("Equalization", dict(value_range=(1, 0), bins=64, data_format="channels_first")),
    ("AutoContrast", dict(value_range=(255, 0))),
    ("RandomGaussianBlur", dict()),
    ("RandomGaussianBlur", dict(factor=(0.7, 0.2), kernel_size=(5, 5), sigma=(0.9, 0.1), value_range=(1, 0),
                                data_format="channels_first", seed=3)),
    ("RandomErasing", dict()),
    ("RandomErasing", dict(factor=0.4, scale=0.3, fill_value=[1, 2, 3], value_range=(0, 1), seed=4)),
    ("RandomErasing", dict(scale=(0.5, 0.1), fill_value=2.5)),
]


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)])
def test_configs_match_keras_both_ways(keras, name, kwargs):
    assert_layer_config_matches_keras_both_ways(keras, name, kwargs)


def _keras_model(keras):
    k = keras.layers
    return keras.Sequential([k.Input((8, 8, 3)), k.RandomGrayscale(0.2), k.RandomInvert(0.1), k.Solarization(0.1),
                             k.RandomPosterization(6), k.RandomColorDegeneration(0.2), k.RandomSharpness(0.2),
                             k.RandomSaturation(0.2), k.RandomHue(0.1),
                             k.RandomColorJitter(brightness_factor=0.1, hue_factor=0.1), k.RandomGaussianBlur(),
                             k.RandomErasing(), k.AutoContrast(),
                             k.Conv2D(2, 3), k.Flatten(), k.Dense(3)])      # no Equalization: Keras 3.15.1's
    # output spec of it is its input tensor, which Keras then reports as "part of a cycle" in any model


def test_a_keras_file_with_the_colour_layers_loads_predicts_and_saves_back(keras, tmp_path):
    kmodel = _keras_model(keras)
    kmodel.save(tmp_path / "k.keras")
    x = _images((2, 8, 8, 3), seed=12)
    expected = _np(keras, kmodel.predict(x, verbose=0))
    model = cs.models.load_model(tmp_path / "k.keras", compile=False)
    assert [type(layer).__name__ for layer in model.layers[:12]] == NAMES[:9] + ["RandomGaussianBlur",
                                                                                "RandomErasing", "AutoContrast"]
    for ours, theirs in zip(model.layers[:12], kmodel.layers):
        assert comparable_config(ours.get_config()) == comparable_config(theirs.get_config())
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-4)
    model.save(tmp_path / "ours.keras")
    reloaded = keras.saving.load_model(tmp_path / "ours.keras", compile=False)
    np.testing.assert_allclose(_np(keras, reloaded.predict(x, verbose=0)), expected, rtol=1e-5, atol=1e-4)


def test_training_runs_through_the_layers_between_convolutions():
    """A model with the colour layers between convolutions trains: every weight moves, so gradients reach the
    first convolution through them."""
    inputs = L.Input((6, 6, 3))
    h = L.Conv2D(3, 3, padding="same")(inputs)
    for layer in (L.RandomHue(0.3, value_range=(-3, 3)), L.RandomSaturation(0.5, value_range=(-3, 3)),
                  L.RandomSharpness(0.5, value_range=(-3, 3)), L.RandomColorDegeneration(0.5, value_range=(-3, 3)),
                  L.RandomGrayscale(0.5), L.AutoContrast(value_range=(-3, 3))):
        h = layer(h)
    outputs = L.Dense(1)(L.Flatten()(L.Conv2D(2, 3)(h)))
    model = cs.models.Model(inputs, outputs)
    model.compile(optimizer=cs.optimizers.SGD(0.01), loss="mse")
    before = [w.copy() for w in model.get_weights()]
    model.fit(_images((4, 6, 6, 3), seed=13, scale=1.0), np.ones((4, 1), np.float32), epochs=1, verbose=0)
    assert all(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_auto_contrast_exports_to_onnx(tmp_path, data_format):
    """ONNX Runtime gives AutoContrast's outputs (Keras' axes 1 and 2 of either layout; an image of one
    value kept), the training-only layers beside it as the identity."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    shape = (3, 5, 6) if data_format == "channels_first" else (5, 6, 3)
    model = cs.models.Sequential([L.Input(shape), L.RandomHue(0.4, data_format=data_format),
                                  L.AutoContrast(value_range=(-1, 2), data_format=data_format),
                                  L.Equalization(data_format=data_format)])
    x = _images((3,) + shape, seed=14, scale=3.0) - 1
    x[1] = 0.5
    x[2, 1, 1, 1] = np.nan          # ONNX Runtime's ReduceMin/Max skip a NaN; Keras keeps its slice
    path = tmp_path / "m.onnx"
    model.export(str(path), format="onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    expected = model.predict(x, verbose=0)
    np.testing.assert_array_equal(expected[1], x[1])
    assert np.isnan(expected[2]).sum() == 1
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)     # NaN where NaN


# -- errors -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make,error,message", [
    (lambda: L.RandomGrayscale(1.5), ValueError, r"RandomGrayscale.*`factor` must be a number in \[0, 1\], got 1.5"),
    (lambda: L.RandomGrayscale((0.1, 0.2)), TypeError, r"RandomGrayscale.*`factor`.*\(0.1, 0.2\)"),
    (lambda: L.RandomInvert(-0.5), ValueError, r"RandomInvert.*`factor` must be a number or a list of two numbers "
                                               r"in \[0, 1\], got -0.5"),
    (lambda: L.RandomInvert(value_range=(0, 1, 2)), ValueError, r"RandomInvert.*`value_range`"),
    (lambda: L.Solarization(addition_factor=1.2), ValueError, r"Solarization.*`addition_factor` must be a number "
                                                              r"or a list of two numbers in \[0, 1\], got 1.2"),
    (lambda: L.Solarization(threshold_factor="x"), TypeError, r"Solarization.*`threshold_factor`.*'x'"),
    (lambda: L.RandomPosterization(9), ValueError, r"RandomPosterization.*`factor`.*\[1, 8\], got 9"),
    (lambda: L.RandomPosterization(0.5), ValueError, r"RandomPosterization.*`factor`.*\[1, 8\], got 0.5"),
    (lambda: L.RandomColorDegeneration(2), ValueError, r"RandomColorDegeneration.*`factor`.*\[-1, 1\], got 2"),
    (lambda: L.RandomSharpness(0.5, value_range=3), TypeError, r"RandomSharpness.*`value_range` must be a list"),
    (lambda: L.RandomSaturation(None), TypeError, r"RandomSaturation.*`factor`.*None"),
    (lambda: L.RandomHue(1.5), ValueError, r"RandomHue.*`factor`.*\[0, 1\], got 1.5"),
    (lambda: L.Equalization(bins=0), ValueError, r"Equalization.*`bins` must be a positive int, got 0"),
    (lambda: L.AutoContrast(value_range=[0]), ValueError, r"AutoContrast.*`value_range`"),
    (lambda: L.RandomColorJitter(hue_factor=2), ValueError, r"RandomColorJitter.*argument `hue_factor` is "
                                                            r"RandomHue's `factor`.*\[0, 1\], got 2"),
    (lambda: L.RandomColorJitter(contrast_factor="a"), TypeError, r"RandomColorJitter.*`contrast_factor`.*'a'"),
    (lambda: L.AutoContrast(seed=1), TypeError, r"AutoContrast: unexpected argument `seed`"),
    (lambda: L.Equalization(seed=1), TypeError, r"Equalization: unexpected argument `seed`"),
    (lambda: L.RandomPosterization((2.5, 4)), ValueError, r"RandomPosterization.*`factor` must hold whole numbers"),
    (lambda: L.RandomHue(0.1, data_format="NHWC"), ValueError, r"RandomHue.*data_format"),
    (lambda: L.RandomGaussianBlur(kernel_size=4), ValueError, r"RandomGaussianBlur.*`kernel_size` must be an odd "
                                                              r"positive int or a pair of two equal ones.*got 4"),
    (lambda: L.RandomGaussianBlur(kernel_size=(3, 5)), ValueError, r"RandomGaussianBlur.*`kernel_size`.*\(3, 5\)"),
    (lambda: L.RandomGaussianBlur(sigma=1.5), ValueError, r"RandomGaussianBlur.*`sigma`.*\[0, 1\], got 1.5"),
    (lambda: L.RandomErasing(scale=2), ValueError, r"RandomErasing.*`scale`.*\[0, 1\], got 2"),
    (lambda: L.RandomErasing(fill_value=[1, 2]), ValueError, r"RandomErasing.*`fill_value` must be None, a number "
                                                             r"or a list of three numbers, got \[1, 2\]"),
    (lambda: L.RandomErasing(fill_value="red"), TypeError, r"RandomErasing.*`fill_value`.*'red'"),
])
def test_arguments_are_checked_with_clear_messages(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_the_channel_counts_are_checked_by_name():
    with pytest.raises(ValueError, match=r"random_hue.*expected images of 3 channels \(channels_last\), got input "
                                         r"shape \(None, 4, 4, 2\)"):
        cs.models.Sequential([L.Input((4, 4, 2)), L.RandomHue(0.2)])
    with pytest.raises(ValueError, match=r"random_grayscale.*1 or 3 channels \(channels_first\)"):
        L.RandomGrayscale(data_format="channels_first").compute_output_shape((None, 4, 5, 5))
    with pytest.raises(ValueError, match=r"'random_color_jitter\w*_random_saturation': expected images of 3 ch"):
        L.RandomColorJitter(saturation_factor=0.2)(_images((1, 3, 3, 4)))
    with pytest.raises(ValueError, match=r"random_sharpness.*4-D input"):
        L.RandomSharpness(0.2).compute_output_shape((None, 4, 4))


def test_erasing_noise_and_masks_as_keras_in_both_layouts(keras):
    """The noise fill is normal noise times value_range[1], clipped (half the erased values 0, a sixth at the
    top); each box covers every channel of its pixels in either layout."""
    x = np.full((300, 3, 10, 10), 100.0, np.float32)
    shares = []
    for y in _both(keras, "RandomErasing", x, factor=(1.0, 1.0), scale=(0.2, 0.4), data_format="channels_first"):
        erased = y[y != 100.0]
        shares.append((np.mean(erased == 0), np.mean(erased == 255)))
        changed = y != 100.0
        assert np.all(changed.any(axis=1) == changed.all(axis=1))           # every channel of an erased pixel
    for (zero, top), expected in zip(shares, [(0.5, 0.159), (0.5, 0.159)]):
        assert abs(zero - expected[0]) < 0.03 and abs(top - expected[1]) < 0.03, shares
    with pytest.raises(ValueError, match=r"random_erasing.*a `fill_value` of 3 numbers fills images of 3 channels"):
        L.RandomErasing(fill_value=[1, 2, 3])(_images((2, 4, 4, 1)))
