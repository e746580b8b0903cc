"""Augmentation layers (issue 15): RandomFlip, RandomRotation, RandomZoom, RandomTranslation, RandomCrop,
RandomContrast, RandomBrightness, and their array math in `ops.augment`.

Oracles: Keras 3.15.1 on torch — `keras.ops.image.affine_transform` for the resampling (every fill mode
and interpolation, both layouts), its layers for outputs with a fixed transform (a factor whose range
is one value), for outputs given the parameters Keras itself sampled, for statistics of random draws,
shapes, configs and `.keras` files, and torch autograd through Keras' layers for the backward passes;
float64 central differences for the ops' backward passes.
"""

import numpy as np
import pytest

import convscope as cs
from _calls import backward, forward
from _gradcheck import numerical_gradient
from _oracle import assert_layer_config_matches_keras_both_ways, assert_matches, comparable_config
from convscope import backend, utils
from convscope import layers as L
from convscope.ops import augment

torch = pytest.importorskip("torch")
NAMES = ["RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomCrop", "RandomContrast",
         "RandomBrightness"]


def _np(keras, value):
    return keras.ops.convert_to_numpy(value)



def _images(shape, seed=0, dtype="float32"):
    return np.random.default_rng(seed).random(shape).astype(dtype)


# -- ops.augment against Keras' affine_transform ---------------------------------------------------

@pytest.mark.parametrize("interpolation", augment.INTERPOLATIONS)
@pytest.mark.parametrize("fill_mode", augment.FILL_MODES)
def test_affine_transform_matches_keras_for_every_fill_mode(keras, fill_mode, interpolation):
    x = _images((4, 7, 9, 2))
    t = np.concatenate([augment.rotation_transforms([37.0, -123.0], 7, 9),
                        augment.zoom_transforms([1.3], [0.6], 7, 9),
                        augment.translation_transforms([2.3], [-3.7])]).astype("float32")
    ref = _np(keras, keras.ops.image.affine_transform(x, t, interpolation=interpolation, fill_mode=fill_mode,
                                                      fill_value=0.5))
    assert_matches(augment.affine_transform(x, t, interpolation, fill_mode, 0.5), ref, "float32")
    ref_cf = _np(keras, keras.ops.image.affine_transform(x.transpose(0, 3, 1, 2), t, interpolation=interpolation,
                                                         fill_mode=fill_mode, fill_value=0.5,
                                                         data_format="channels_first"))
    ours_cf = augment.affine_transform(x.transpose(0, 3, 1, 2), t, interpolation, fill_mode, 0.5, "NCHW")
    assert_matches(ours_cf, ref_cf, "float32")


@pytest.mark.parametrize("interpolation", augment.INTERPOLATIONS)
@pytest.mark.parametrize("fill_mode", augment.FILL_MODES)
def test_affine_transform_backward_against_finite_differences(fill_mode, interpolation):
    rng = np.random.default_rng(1)
    x = rng.random((2, 5, 6, 2))
    t = np.concatenate([augment.rotation_transforms([29.0], 5, 6), augment.zoom_transforms([0.7], [1.4], 5, 6)])
    y, ctx = augment.affine_transform_forward(x, t, interpolation, fill_mode, 0.3, "NCHW")
    w = rng.standard_normal(y.shape)
    numeric = numerical_gradient(lambda: float(np.sum(augment.affine_transform(x, t, interpolation, fill_mode, 0.3,
                                                                                "NCHW") * w)), x)
    np.testing.assert_allclose(augment.affine_transform_backward(w, ctx), numeric, rtol=1e-6, atol=1e-8)


def test_flip_crop_and_colour_ops_backward_against_finite_differences():
    rng = np.random.default_rng(2)
    x = rng.uniform(0.2, 0.8, (3, 4, 5, 2))
    cases = [
        (lambda a: (augment.flip(a, [True, False, True], True, True), [True, False, True]),
         lambda g, c: augment.flip(g, c, True, True)),
        (lambda a: augment.crop_resize_forward(a, 1, 1, (2, 3)), augment.crop_resize_backward),
        (lambda a: augment.crop_resize_forward(a, 0, 1, (6, 7)), augment.crop_resize_backward),     # resized up
        (lambda a: augment.brightness_forward(a, [0.1, -0.3, 0.35], (0.0, 1.0)), augment.brightness_backward),
        (lambda a: augment.contrast_forward(a, [1.4, 0.6, 1.9], (0.0, 1.0)), augment.contrast_backward),
    ]
    for run, back in cases:
        y, ctx = run(x)
        w = rng.standard_normal(y.shape)
        numeric = numerical_gradient(lambda: float(np.sum(run(x)[0] * w)), x)
        np.testing.assert_allclose(back(w, ctx), numeric, rtol=1e-6, atol=1e-8)


# -- layers with a fixed transform, against Keras' layers (outputs and input gradients) -------------

FIXED = [
    ("RandomRotation", dict(factor=(0.1, 0.1), fill_mode="constant", fill_value=0.25)),
    ("RandomRotation", dict(factor=(-0.3, -0.3), fill_mode="wrap", data_format="channels_first")),
    ("RandomZoom", dict(height_factor=(0.2, 0.2), width_factor=(-0.3, -0.3), interpolation="nearest")),
    ("RandomZoom", dict(height_factor=(-0.4, -0.4), fill_mode="nearest")),
    ("RandomTranslation", dict(height_factor=(0.3, 0.3), width_factor=(-0.15, -0.15))),
    ("RandomTranslation", dict(height_factor=(-0.5, -0.5), width_factor=(0.2, 0.2), fill_mode="constant",
                               interpolation="nearest", data_format="channels_first")),
    ("RandomBrightness", dict(factor=(0.3, 0.3), value_range=(0, 1))),
    ("RandomBrightness", dict(factor=(-0.2, -0.2), value_range=(1, 0))),
    ("RandomContrast", dict(factor=(-0.5, 0.5), value_range=(0, 1))),        # Keras' only fixed factor: 1.5
    ("RandomCrop", dict(height=8, width=12)),                                # smaller input: centre + resize
    ("RandomCrop", dict(height=5, width=6, data_format="channels_first")),    # equal height: centre window
]


@pytest.mark.parametrize("name,kwargs", FIXED, ids=[f"{n}-{i}" for i, (n, _) in enumerate(FIXED)])
def test_a_fixed_transform_matches_keras_forward_and_backward(keras, name, kwargs):
    channels_first = kwargs.get("data_format") == "channels_first"
    x = _images((3, 2, 5, 9) if channels_first else (3, 5, 9, 2), seed=3)
    ours, theirs = getattr(L, name)(**kwargs), getattr(keras.layers, name)(**kwargs)
    y, ctx = forward(ours, x, training=True)
    x_t = torch.tensor(x, requires_grad=True)
    y_t = theirs(x_t.clone(), training=True)       # a copy: Keras' RandomBrightness adds in place
    assert_matches(y, _np(keras, y_t.detach()), "float32")
    upstream = np.random.default_rng(4).standard_normal(y.shape).astype("float32")
    y_t.backward(torch.tensor(upstream))
    grad, _ = backward(ours, ctx, upstream)
    assert_matches(grad, x_t.grad.numpy(), "float32")
    assert ours.compute_output_shape((None,) + x.shape[1:]) == tuple(theirs.compute_output_shape((None,) + x.shape[1:]))


def test_the_parameters_keras_samples_give_keras_outputs(keras):
    """Keras' own random draws (zoom factors, shifts, angles, contrast, brightness, crop window) through
    convscope's ops give Keras' outputs."""
    x = _images((4, 6, 8, 3), seed=5)
    k = keras.layers
    zoom = k.RandomZoom(0.3, 0.2, fill_mode="constant")
    p = zoom.get_random_transformation(x, training=True)
    t = augment.zoom_transforms(_np(keras, p["width_zoom"]), _np(keras, p["height_zoom"]), 6, 8)
    assert_matches(augment.affine_transform(x, t, "bilinear", "constant"),
                   _np(keras, zoom.transform_images(x, p)), "float32")
    shift = k.RandomTranslation(0.3, 0.4, interpolation="nearest", fill_mode="wrap")
    p = shift.get_random_transformation(x, training=True)
    d = _np(keras, p["translations"])
    assert_matches(augment.affine_transform(x, augment.translation_transforms(d[:, 0], d[:, 1]), "nearest", "wrap"),
                   _np(keras, shift.transform_images(x, p)), "float32")
    rotate = k.RandomRotation(0.4)
    p = rotate.get_random_transformation(x, training=True)
    t = augment.rotation_transforms(_np(keras, p["angle"]), 6, 8)
    assert_matches(augment.affine_transform(x, t, "bilinear", "reflect"),
                   _np(keras, rotate.transform_images(x, p)), "float32")
    contrast = k.RandomContrast(0.6, value_range=(0, 1))
    p = contrast.get_random_transformation(x, training=True)
    assert_matches(augment.contrast_forward(x, _np(keras, p["contrast_factor"]), (0, 1))[0],
                   _np(keras, contrast.transform_images(keras.ops.convert_to_tensor(x), p)), "float32")
    bright = k.RandomBrightness(0.4, value_range=(0, 1))
    p = bright.get_random_transformation(x, training=True)
    assert_matches(augment.brightness_forward(x, _np(keras, p["rgb_delta"]), (0, 1))[0],
                   _np(keras, bright.transform_images(keras.ops.convert_to_tensor(x.copy()), p)), "float32")
    crop = k.RandomCrop(3, 5)
    top, left = (int(_np(keras, v)) for v in crop.get_random_transformation(x, training=True))
    assert_matches(augment.crop_resize_forward(x, top, left, (3, 5))[0],
                   _np(keras, crop.transform_images(x, (top, left))), "float32")


# -- random draws: statistics against Keras' ------------------------------------------------------

def _both(keras, name, x, calls=1, **kwargs):
    """Outputs of `calls` training calls of convscope's and Keras' layer on `x` (both generators seeded, so
    that the statistics below are the same numbers on every run)."""
    utils.set_random_seed(21)
    keras.utils.set_random_seed(21)
    ours, theirs = getattr(L, name)(**kwargs), getattr(keras.layers, name)(**kwargs)
    return ([ours(x, training=True) for _ in range(calls)],
            [_np(keras, theirs(x.copy(), training=True)) for _ in range(calls)])   # Keras may write into x


def test_flip_fraction_and_modes_agree_with_keras(keras):
    x = _images((400, 2, 3, 1), seed=6)
    for mode, flipped in [("horizontal", x[:, :, ::-1]), ("vertical", x[:, ::-1]),
                          ("horizontal_and_vertical", x[:, ::-1, ::-1])]:
        (ours,), (theirs,) = _both(keras, "RandomFlip", x, mode=mode)
        fractions = []
        for y in (ours, theirs):
            same = np.all(y == x, axis=(1, 2, 3))
            turned = np.all(y == flipped, axis=(1, 2, 3))
            assert np.all(same | turned), mode        # each image as it was or flipped as a whole
            fractions.append(turned.mean())
        assert abs(fractions[0] - 0.5) < 0.1 and abs(fractions[1] - 0.5) < 0.1, (mode, fractions)


def test_brightness_and_contrast_draws_agree_with_keras(keras):
    x = np.full((500, 2, 2, 1), 0.5, np.float32)
    (ours,), (theirs,) = _both(keras, "RandomBrightness", x, factor=0.2, value_range=(0, 1))
    deltas = [(y - x)[:, 0, 0, 0] for y in (ours, theirs)]
    for d in deltas:
        assert -0.2 - 1e-6 <= d.min() and d.max() <= 0.2 + 1e-6
        assert abs(d.mean()) < 0.03 and abs(d.std() - 0.4 / np.sqrt(12)) < 0.02
    x = np.tile(np.array([0.25, 0.75], np.float32).reshape(1, 1, 2, 1), (500, 2, 1, 1))
    (ours,), (theirs,) = _both(keras, "RandomContrast", x, factor=0.5, value_range=(0, 1))
    factors = [(y[:, 0, 1, 0] - 0.5) / 0.25 for y in (ours, theirs)]
    for f in factors:       # Keras 3.15.1: a number f draws the factor in [1, 1 + f]
        assert 1 - 1e-5 <= f.min() and f.max() <= 1.5 + 1e-5
        assert abs(f.mean() - 1.25) < 0.03 and abs(f.std() - 0.5 / np.sqrt(12)) < 0.02


@pytest.mark.parametrize("name,kwargs", [
    ("RandomRotation", dict(factor=0.2)),
    ("RandomZoom", dict(height_factor=(-0.3, 0.1), width_factor=0.2, fill_mode="constant")),
    ("RandomTranslation", dict(height_factor=0.2, width_factor=(0.0, 0.3), fill_mode="nearest")),
])
def test_affine_draws_change_images_as_keras_does(keras, name, kwargs):
    """The per-image mean change |y - x| has Keras' distribution (mean, median, spread) and the outputs
    Keras' mean."""
    x = _images((500, 9, 9, 1), seed=7)
    (ours,), (theirs,) = _both(keras, name, x, **kwargs)
    change = [np.abs(y - x).mean(axis=(1, 2, 3)) for y in (ours, theirs)]
    assert abs(change[0].mean() - change[1].mean()) < 0.1 * change[1].mean(), change
    assert abs(np.median(change[0]) - np.median(change[1])) < 0.02
    assert abs(change[0].std() - change[1].std()) < 0.3 * change[1].std()
    assert abs(ours.mean() - theirs.mean()) < 0.02


def test_crop_windows_are_uniform_like_keras(keras):
    x = np.arange(10 * 12, dtype=np.float32).reshape(1, 10, 12, 1)
    ours, theirs = _both(keras, "RandomCrop", x, calls=150, height=6, width=8)
    for outputs in (ours, theirs):
        corner = np.array([y[0, 0, 0, 0] for y in outputs])
        tops, lefts = corner // 12, corner % 12
        assert set(tops) == set(range(5)) and set(lefts) == set(range(5))
        assert abs(tops.mean() - 2) < 0.45 and abs(lefts.mean() - 2) < 0.45
        for y, top, left in zip(outputs, tops.astype(int), lefts.astype(int)):
            np.testing.assert_array_equal(y, x[:, top:top + 6, left:left + 8])


# -- inference, standalone calls, seeds ---------------------------------------------------------

def test_inference_is_the_identity_and_crop_takes_the_centre(keras):
    x = _images((2, 7, 9, 3), seed=8)
    for layer in [L.RandomFlip(), L.RandomRotation(0.3), L.RandomZoom(0.5), L.RandomTranslation(0.4, 0.4),
                  L.RandomContrast(0.9), L.RandomBrightness(0.9)]:
        y, ctx = forward(layer, x, training=False)
        assert y is x
        grad, _ = backward(layer, ctx, x)
        assert grad is x
        np.testing.assert_array_equal(layer(x, training=False), x)
    crop, kcrop = L.RandomCrop(4, 4), keras.layers.RandomCrop(4, 4)
    top, left = kcrop.get_random_transformation(x, training=False)      # Keras' centred window ...
    np.testing.assert_array_equal(crop(x, training=False), x[:, top:top + 4, left:left + 4])
    # ... which Keras 3.15.1 computes but then does not apply at inference (its output keeps 7x9)
    assert tuple(kcrop(x, training=False).shape) == x.shape


def test_random_crop_describes_its_inference_window_as_a_crop():
    """The plan/analysis/explain read RandomCrop as the Cropping2D its inference is (for inputs at least the
    target's size): pads agree with the window forward cuts."""
    x = _images((2, 16, 20, 3), seed=16)
    layer = L.RandomCrop(12, 12)
    y = layer(x, training=False)
    spec = layer.describe()
    (top, bottom), (left, right) = spec.pads
    assert spec.kind == "crop2d" and top + bottom == 4 and left + right == 8
    np.testing.assert_array_equal(y, x[:, top:16 - bottom, left:20 - right])
    small = L.RandomCrop(12, 12)
    small(x[:, :8])
    assert small.describe().kind == "other"      # a resize, not a crop


def test_a_standalone_call_augments_by_default_and_takes_one_image(keras):
    x = _images((6, 5, 5, 1), seed=9)
    layer = L.RandomBrightness((0.5, 0.5), value_range=(0, 10))
    np.testing.assert_allclose(layer(x), x + 5, rtol=1e-6)                   # Keras' default: training=True
    np.testing.assert_allclose(keras.layers.RandomBrightness((0.5, 0.5), value_range=(0, 10))(x), x + 5,
                               rtol=1e-6)
    image = layer(x[0])
    assert image.shape == x[0].shape and np.allclose(image, x[0] + 5)
    assert L.RandomCrop(3, 2)(x[0]).shape == (3, 2, 1)


def test_set_random_seed_and_the_seed_argument_make_draws_repeatable():
    x = _images((8, 6, 6, 2), seed=10)
    makers = [lambda **s: L.RandomFlip(**s), lambda **s: L.RandomRotation(0.3, **s),
              lambda **s: L.RandomZoom(0.3, 0.3, **s), lambda **s: L.RandomTranslation(0.3, 0.3, **s),
              lambda **s: L.RandomCrop(4, 5, **s), lambda **s: L.RandomContrast(0.5, value_range=(0, 1), **s),
              lambda **s: L.RandomBrightness(0.5, value_range=(0, 1), **s)]
    for make in makers:
        layer = make()
        utils.set_random_seed(3)
        first = [layer(x) for _ in range(2)]
        utils.set_random_seed(3)
        again = [layer(x) for _ in range(2)]
        for a, b in zip(first, again):
            np.testing.assert_array_equal(a, b)
        assert not np.array_equal(first[0], first[1])          # a new draw per call
        seeded = [make(seed=11), make(seed=11), make(seed=12)]
        outputs = [s(x) for s in seeded]
        np.testing.assert_array_equal(outputs[0], outputs[1])
        assert not np.array_equal(outputs[0], outputs[2])


def test_each_call_keeps_its_own_parameters_in_its_ctx():
    """Two training calls of one layer, then their backward passes in reverse order: each gradient undoes its
    own call (a flip is its own transpose; a crop's transpose puts the window back), nothing read from the
    layer."""
    x = _images((16, 6, 7, 2), seed=17)
    for layer in (L.RandomFlip(seed=5), L.RandomCrop(4, 5, seed=5)):
        (y1, c1), (y2, c2) = forward(layer, x, training=True), forward(layer, x, training=True)
        assert not np.array_equal(y1, y2)
        for y, ctx in [(y2, c2), (y1, c1)]:
            grad, _ = backward(layer, ctx, y)
            kept = grad != 0 if isinstance(layer, L.RandomCrop) else np.ones(x.shape, bool)
            assert kept.sum() == y.size
            np.testing.assert_array_equal(grad[kept], x[kept])


# -- configs, files and training --------------------------------------------------------------------

CONFIGS = [
    ("RandomFlip", dict(mode="vertical", seed=4)),
    ("RandomRotation", dict(factor=0.2, fill_mode="constant", interpolation="nearest", fill_value=1.5)),
    ("RandomRotation", dict(factor=(-0.1, 0.3), data_format="channels_first")),
    ("RandomZoom", dict(height_factor=(-0.2, 0.3))),
    ("RandomZoom", dict(height_factor=0.2, width_factor=0.1, fill_mode="wrap", seed=2)),
    ("RandomTranslation", dict(height_factor=(-0.2, 0.3), width_factor=0.1, fill_mode="nearest")),
    ("RandomCrop", dict(height=3, width=4, seed=7)),
    ("RandomContrast", dict(factor=0.5)),
    ("RandomContrast", dict(factor=(0.1, 0.4), value_range=(0, 1))),
    ("RandomBrightness", dict(factor=0.2)),
    ("RandomBrightness", dict(factor=(-0.1, 0.3), value_range=(1, -1), seed=1)),
]


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)])
def test_configs_match_keras_both_ways(keras, name, kwargs):
    assert_layer_config_matches_keras_both_ways(keras, name, kwargs)


def _keras_augmented(keras):
    k = keras.layers
    return keras.Sequential([k.Input((8, 8, 3)), k.RandomFlip("horizontal", seed=1),
                             k.RandomRotation(0.1, fill_mode="constant"), k.RandomZoom(0.1, 0.2),
                             k.RandomTranslation(0.1, 0.1, interpolation="nearest"), k.RandomCrop(8, 8),
                             k.RandomContrast(0.2), k.RandomBrightness(0.1), k.Conv2D(2, 3), k.Flatten(),
                             k.Dense(3)])


def test_keras_files_with_augmentation_layers_load_and_save(keras, tmp_path):
    """Keras' .keras file loads with Keras' configs and outputs; convscope's .keras and legacy .h5 files of
    it open in Keras and in convscope alike (Keras 3.15.1 cannot write these layers to .h5 itself)."""
    pytest.importorskip("h5py")
    kmodel = _keras_augmented(keras)
    kmodel.save(tmp_path / "k.keras")
    x = _images((2, 8, 8, 3), seed=12) * 255
    expected = _np(keras, kmodel.predict(x, verbose=0))
    model = cs.models.load_model(tmp_path / "k.keras", compile=False)
    assert [type(layer).__name__ for layer in model.layers[:7]] == NAMES
    for ours, theirs in zip(model.layers[:7], kmodel.layers):
        assert comparable_config(ours.get_config()) == comparable_config(theirs.get_config())
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-4)
    for suffix in (".keras", ".h5"):
        model.save(tmp_path / f"ours{suffix}")
        for reloaded in (keras.saving.load_model(tmp_path / f"ours{suffix}", compile=False),
                         cs.models.load_model(tmp_path / f"ours{suffix}", compile=False)):
            for ours, theirs in zip(model.layers[:7], reloaded.layers):
                assert comparable_config(ours.get_config()) == comparable_config(theirs.get_config()), suffix
            np.testing.assert_allclose(_np(keras, reloaded.predict(x, verbose=0)), expected, rtol=1e-5, atol=1e-4)


def test_fit_runs_the_layers_in_training_only():
    """A fixed brightness shift in training: one SGD step equals the step of the same Dense on the shifted
    images; predict is the Dense on the images as they are."""
    x = _images((6, 3, 3, 1), seed=13)
    y = np.random.default_rng(14).standard_normal((6, 1)).astype("float32")
    augmented = cs.models.Sequential([L.Input((3, 3, 1)), L.RandomBrightness((0.5, 0.5), value_range=(0, 20)),
                                      L.Flatten(), L.Dense(1)])
    plain = cs.models.Sequential([L.Input((3, 3, 1)), L.Flatten(), L.Dense(1)])
    plain.set_weights(augmented.get_weights())
    for model in (augmented, plain):
        model.compile(optimizer=cs.optimizers.SGD(0.01), loss="mse")
    augmented.fit(x, y, batch_size=6, epochs=1, shuffle=False, verbose=0)
    plain.fit(x + 10, y, batch_size=6, epochs=1, shuffle=False, verbose=0)
    for ours, expected in zip(augmented.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(augmented.predict(x, verbose=0), plain.predict(x, verbose=0), rtol=1e-6)


def test_a_functional_model_trains_through_an_augmentation_layer_in_the_middle():
    inputs = L.Input((6, 6, 1))
    h = L.Conv2D(2, 3, padding="same")(inputs)
    h = L.RandomTranslation((0.5, 0.5), (0.0, 0.0), fill_mode="constant")(h)     # 3 rows down, zeros above
    outputs = L.Dense(1)(L.Flatten()(h))
    model = cs.models.Model(inputs, outputs)
    model.compile(optimizer=cs.optimizers.SGD(0.1), loss="mse")
    before = [w.copy() for w in model.get_weights()]
    model.fit(_images((4, 6, 6, 1), seed=15), np.ones((4, 1), np.float32), epochs=1, verbose=0)
    assert all(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))   # the conv learns too
    dense = model.layers[-1].get_weights()[0].reshape(6, 6, 2)
    np.testing.assert_array_equal(dense[:3], before[2].reshape(6, 6, 2)[:3])      # rows the shift filled with 0


# -- errors -------------------------------------------------------------------------------------

@pytest.mark.parametrize("make,error,message", [
    (lambda: L.RandomFlip(mode="diagonal"), ValueError, r"RandomFlip.*`mode` must be one of .*'diagonal'"),
    (lambda: L.RandomFlip(seed=-1), ValueError, r"RandomFlip.*`seed` must be None or a non-negative int.*-1"),
    (lambda: L.RandomFlip(seed="a"), TypeError, r"RandomFlip.*`seed`.*'a'"),
    (lambda: L.RandomRotation(1.5), ValueError, r"RandomRotation.*`factor` must be a number or a list of two "
                                                r"numbers in \[-1, 1\], got 1.5"),
    (lambda: L.RandomRotation((0.1, 0.2, 0.3)), ValueError, r"RandomRotation.*`factor`.*\(0.1, 0.2, 0.3\)"),
    (lambda: L.RandomRotation("big"), TypeError, r"RandomRotation.*`factor`.*'big'"),
    (lambda: L.RandomRotation(0.1, fill_mode="mirror"), ValueError, r"RandomRotation.*`fill_mode` must be one of "
                                                                     r"\('reflect', 'wrap', 'constant', 'nearest'\)"),
    (lambda: L.RandomRotation(0.1, interpolation="bicubic"), ValueError, r"RandomRotation.*`interpolation`.*bicubic"),
    (lambda: L.RandomRotation(0.1, fill_value="x"), TypeError, r"RandomRotation.*`fill_value` must be a number"),
    (lambda: L.RandomZoom(-1.0), ValueError, r"RandomZoom.*`height_factor`.*\(-1.0, 1.0\].*-1.0"),
    (lambda: L.RandomZoom(0.1, width_factor=(0.1, 2)), ValueError, r"RandomZoom.*`width_factor`.*\(0.1, 2\)"),
    (lambda: L.RandomTranslation(0.1, -1.5), ValueError, r"RandomTranslation.*`width_factor`.*\[-1.0, 1.0\].*-1.5"),
    (lambda: L.RandomTranslation(None, 0.1), TypeError, r"RandomTranslation.*`height_factor`.*None"),
    (lambda: L.RandomCrop(0, 3), ValueError, r"RandomCrop.*`height` must be a positive int, got 0"),
    (lambda: L.RandomCrop(3, 2.5), TypeError, r"RandomCrop.*`width` must be a positive int, got 2.5"),
    (lambda: L.RandomContrast(1.5), ValueError, r"RandomContrast.*`factor`.*\[0, 1\], got 1.5"),
    (lambda: L.RandomContrast(0.1, value_range=5), TypeError, r"RandomContrast.*`value_range` must be a list of "
                                                              r"two numbers \[low, high\], got 5"),
    (lambda: L.RandomBrightness(0.1, value_range=(0, 1, 2)), ValueError, r"RandomBrightness.*`value_range`"),
    (lambda: L.RandomBrightness(0.1, bounding_box_format="xyxy"), ValueError,
     r"RandomBrightness.*`bounding_box_format` must be None.*'xyxy'"),
    (lambda: L.RandomFlip(data_format="NHWC"), ValueError, r"RandomFlip.*data_format"),
])
def test_arguments_are_checked_with_clear_messages(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_input_and_op_errors_name_the_culprit():
    with pytest.raises(ValueError, match=r"random_rotation.*4-D input.*rank 2"):
        L.RandomRotation(0.1).compute_output_shape((None, 4))
    with pytest.raises(ValueError, match=r"affine_transform: argument `transforms` must have shape \(8,\), "
                                         r"\(1, 8\) or \(2, 8\) for 2 images, got \(3, 8\)"):
        augment.affine_transform(np.zeros((2, 3, 3, 1)), np.zeros((3, 8)))
    with pytest.raises(ValueError, match=r"affine_transform: argument `fill_mode` must be one of .*'mirror'"):
        augment.affine_transform(np.zeros((1, 3, 3, 1)), np.zeros(8), fill_mode="mirror")
    with pytest.raises(ValueError, match=r"affine_transform: argument `images` must be a rank-4 array"):
        augment.affine_transform(np.zeros((3, 3, 1)), np.zeros(8))
    with pytest.raises(ValueError, match=r"flip: argument `flips` must hold one flag per image \(2\), got 3"):
        augment.flip(np.zeros((2, 3, 3, 1)), [True, False, True], True, False)
    layer = L.RandomRotation(0.2)
    _, ctx = forward(layer, _images((1, 4, 4, 1)), training=True)
    with backend.no_backward():
        _, dropped = layer.forward(_images((1, 4, 4, 1)), training=True)
    with pytest.raises(RuntimeError, match="random_rotation.*backward"):
        layer.backward(dropped, np.ones((1, 4, 4, 1), np.float32))
