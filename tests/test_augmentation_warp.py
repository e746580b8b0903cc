"""Keras 3's RandomShear, RandomPerspective and RandomElasticTransform (layers/augmentation_affine.py) and their
maps (`ops.augment.shear_transforms`, `homography_transforms`, the projective division of `affine_transform`,
`elastic_coordinates` and `map_coordinates_forward`).

Oracles: Keras 3.15.1 on torch — its layers' `transform_images` given the parameters Keras drew (outputs,
and torch autograd through them for the input gradients), the distributions of its draws, its configs;
float64 central differences for the projective resampling's backward pass.
"""

import numpy as np
import pytest

import convscope as cs
from _calls import backward, forward
from _gradcheck import numerical_gradient
from _oracle import assert_layer_config_matches_keras_both_ways, assert_matches, comparable_config
from convscope import layers as L
from convscope import utils
from convscope.ops import augment

torch = pytest.importorskip("torch")


def _np(keras, value):
    return keras.ops.convert_to_numpy(value)


def _images(shape, seed=0):
    return np.random.default_rng(seed).random(shape).astype("float32")



def _with_gradient(keras, layer, x, transformation):
    """Keras' transform_images output for `transformation` and torch's input gradient for `upstream`."""
    x_t = torch.tensor(x, requires_grad=True)
    y_t = layer.transform_images(x_t, transformation, training=True)
    upstream = np.random.default_rng(3).standard_normal(tuple(y_t.shape)).astype("float32")
    y_t.backward(torch.tensor(upstream))
    return _np(keras, y_t.detach()), x_t.grad.numpy(), upstream


@pytest.mark.parametrize("interpolation", augment.INTERPOLATIONS)
@pytest.mark.parametrize("fill_mode", augment.FILL_MODES)
def test_shear_transforms_give_keras_outputs_and_gradients(keras, fill_mode, interpolation):
    x = _images((4, 7, 9, 2), seed=1)
    layer = keras.layers.RandomShear(0.4, (0.1, 0.5), interpolation=interpolation, fill_mode=fill_mode,
                                     fill_value=0.3)
    p = layer.get_random_transformation(x, training=True)
    shear = _np(keras, p["shear_factor"])
    expected, grad, upstream = _with_gradient(keras, layer, x, p)
    y, ctx = augment.affine_transform_forward(x, augment.shear_transforms(shear[:, 0], shear[:, 1]), interpolation,
                                              fill_mode, 0.3)
    assert_matches(y, expected, "float32")
    assert_matches(augment.affine_transform_backward(upstream, ctx), grad, "float32")


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("interpolation", augment.INTERPOLATIONS)
def test_perspective_homographies_give_keras_outputs_and_gradients(keras, interpolation, data_format):
    x = _images((5, 8, 6, 3), seed=2)
    if data_format == "channels_first":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    layer = keras.layers.RandomPerspective(0.8, 0.6, interpolation=interpolation, fill_value=0.2,
                                           data_format=data_format)
    p = layer.get_random_transformation(x, training=True)
    expected, grad, upstream = _with_gradient(keras, layer, x, p)
    transforms = augment.homography_transforms(_np(keras, p["start_points"]), _np(keras, p["end_points"]))
    fmt = "NHWC" if data_format == "channels_last" else "NCHW"
    warped, ctx = augment.affine_transform_forward(x, transforms, interpolation, "constant", 0.2, fmt)
    flags = _np(keras, p["apply_perspective"]).reshape(-1, 1, 1, 1)
    assert_matches(np.where(flags, warped, x), expected, "float32")
    assert_matches(np.where(flags, augment.affine_transform_backward(upstream, ctx), upstream), grad, "float32")


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("interpolation", augment.INTERPOLATIONS)
@pytest.mark.parametrize("fill_mode", augment.MAP_FILL_MODES)
def test_elastic_fields_give_keras_outputs_and_gradients(keras, monkeypatch, fill_mode, interpolation, data_format):
    """Keras' layer draws its probability and distortion; its two normal fields (torch.normal inside
    `elastic_transform`, not in the draw) are replaced by given ones, which convscope's grids take too."""
    rng = np.random.default_rng(11)
    x = (rng.random((3, 10, 13, 2)) * 255).astype("float32")
    if data_format == "channels_first":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    layer = keras.layers.RandomElasticTransform(factor=(1.0, 1.0), scale=(0.5, 1.0), interpolation=interpolation,
                                                fill_mode=fill_mode, fill_value=7.0, data_format=data_format)
    p = layer.get_random_transformation(x, training=True)
    noises = [rng.standard_normal((3, 10, 13)).astype("float32") for _ in range(2)]
    given = iter(noises)
    monkeypatch.setattr(torch, "normal", lambda *args, **kwargs: torch.tensor(next(given)))
    expected, grad, upstream = _with_gradient(keras, layer, x, p)
    monkeypatch.undo()
    d = np.float32(_np(keras, p["distortion_factor"]))
    rows, cols = augment.elastic_coordinates(noises[0], noises[1], np.float32(13) * (np.float32(0.1) * d),
                                             np.float32(10) * (np.float32(0.05) * d))
    fmt = "NHWC" if data_format == "channels_last" else "NCHW"
    warped, ctx = augment.map_coordinates_forward(x, rows, cols, interpolation, fill_mode, 7.0, fmt)
    assert_matches(np.clip(warped, 0, 255), expected, "float32")
    inside = (warped >= 0) & (warped <= 255)
    assert_matches(augment.affine_transform_backward(np.where(inside, upstream, 0), ctx), grad, "float32")


def test_the_elastic_layer_draws_and_clips_as_keras(keras):
    """The share of moved images follows the probability; the clip to value_range; scale 0 leaves the images
    as they are (Keras draws nothing then, and clips nothing)."""
    x = _images((400, 8, 8, 1), seed=12) * 3 - 1
    utils.set_random_seed(13)
    keras.utils.set_random_seed(13)
    outputs = [L.RandomElasticTransform((0.2, 0.6), value_range=(-1, 2))(x),
               _np(keras, keras.layers.RandomElasticTransform((0.2, 0.6), value_range=(-1, 2))(x.copy()))]
    for y in outputs:
        assert y.min() >= -1 and y.max() <= 2
    moved = [np.mean(np.any(np.abs(y - np.clip(x, -1, 2)) > 1e-6, axis=(1, 2, 3))) for y in outputs]
    assert abs(moved[0] - 0.4) < 0.07 and abs(moved[1] - 0.4) < 0.07, moved
    smooth = np.tile(np.linspace(0, 1, 12, dtype=np.float32), (300, 12, 1))[..., None]      # a ramp: moves show
    change = [np.abs(y - smooth).mean() for y in (
        L.RandomElasticTransform((1.0, 1.0), scale=(0.6, 0.6), fill_mode="nearest", value_range=(0, 1))(smooth),
        _np(keras, keras.layers.RandomElasticTransform((1.0, 1.0), scale=(0.6, 0.6), fill_mode="nearest",
                                                       value_range=(0, 1))(smooth.copy())))]
    assert abs(change[0] - change[1]) < 0.1 * change[1], change
    still = L.RandomElasticTransform(scale=0.0, value_range=(0, 1))
    y, ctx = forward(still, x, training=True)
    np.testing.assert_array_equal(y, x)            # not clipped to (0, 1) either
    np.testing.assert_array_equal(backward(still, ctx, x)[0], x)


def test_homography_maps_the_end_points_to_the_start_points_and_its_resampling_backward_is_exact():
    start = np.array([[[0, 0], [5, 0], [0, 4], [5, 4]]], np.float32)
    end = start + np.array([[[0.4, -0.3], [-0.5, 0.2], [0.3, 0.1], [-0.2, -0.4]]], np.float32)
    t = augment.homography_transforms(start, end)[0].astype(np.float64)
    for (sx, sy), (ex, ey) in zip(start[0], end[0]):
        k = t[6] * ex + t[7] * ey + 1
        np.testing.assert_allclose([(t[0] * ex + t[1] * ey + t[2]) / k, (t[3] * ex + t[4] * ey + t[5]) / k],
                                   [sx, sy], atol=1e-4)
    rng = np.random.default_rng(4)
    x = rng.random((1, 5, 6, 2))
    y, ctx = augment.affine_transform_forward(x, t, "bilinear", "constant", 0.25)
    w = rng.standard_normal(y.shape)
    numeric = numerical_gradient(lambda: float(np.sum(augment.affine_transform(x, t, "bilinear", "constant",
                                                                               0.25) * w)), x)
    np.testing.assert_allclose(augment.affine_transform_backward(w, ctx), numeric, rtol=1e-6, atol=1e-8)


def test_the_layers_draw_as_keras_draws(keras):
    """Shear: sx and sy in their ranges with one sign per image, both signs half the time (a row's shift
    tells sx); perspective: the fraction of warped images is the drawn probability's mean."""
    x = np.tile(np.arange(9, dtype=np.float32).reshape(1, 1, 9, 1), (600, 9, 1, 1))
    utils.set_random_seed(5)
    keras.utils.set_random_seed(5)
    ours = L.RandomShear(x_factor=(0.2, 0.2), interpolation="nearest", fill_mode="nearest")(x)
    theirs = _np(keras, keras.layers.RandomShear(x_factor=(0.2, 0.2), interpolation="nearest",
                                                 fill_mode="nearest")(x))
    for y in (ours, theirs):
        shift = y[:, 8, 4, 0] - 4           # row 8 reads column 4 + sx * 8 = 4 +- 1.6 -> 2 or 6
        assert set(np.unique(shift)) == {-2.0, 2.0}
        assert 0.4 < np.mean(shift > 0) < 0.6
    images = _images((600, 6, 6, 1), seed=6)
    warped = [np.mean(np.any(y != images, axis=(1, 2, 3))) for y in (
        L.RandomPerspective((0.2, 0.6), 0.5)(images),
        _np(keras, keras.layers.RandomPerspective((0.2, 0.6), 0.5)(images)))]
    assert abs(warped[0] - 0.4) < 0.06 and abs(warped[1] - 0.4) < 0.06, warped
    change = [np.abs(y - images).mean() for y in (L.RandomPerspective((1.0, 1.0), 0.7)(images),      # every image
                                                  _np(keras, keras.layers.RandomPerspective((1.0, 1.0), 0.7)(images)))]
    assert abs(change[0] - change[1]) < 0.05 * change[1], change


def test_training_calls_backpropagate_and_inference_is_the_identity():
    x = _images((3, 6, 7, 2), seed=7)
    for layer in (L.RandomShear(0.3, 0.3, seed=1), L.RandomPerspective(seed=2),
                  L.RandomElasticTransform((1.0, 1.0), fill_mode="constant", seed=3)):
        y, ctx = forward(layer, x, training=True)
        assert y.shape == x.shape and not np.array_equal(y, x)
        upstream = np.random.default_rng(8).standard_normal(x.shape).astype("float32")
        grad, _ = backward(layer, ctx, upstream)
        # the map is linear in the images: <grad, x> = <upstream, y> (the constant fill aside: fill 0)
        np.testing.assert_allclose(np.sum(grad * x), np.sum(upstream * y), rtol=1e-4)
        out, ctx = forward(layer, x, training=False)
        assert out is x and backward(layer, ctx, x)[0] is x
        assert layer.describe().kind == "augment"


CONFIGS = [
    ("RandomShear", dict()),
    ("RandomShear", dict(x_factor=0.3, y_factor=(0.5, 0.1), interpolation="nearest", fill_mode="constant",
                         fill_value=0.5, data_format="channels_first", seed=3)),
    ("RandomShear", dict(x_factor=(0.0, 0.3), y_factor=(0.5, 0.1))),
    ("RandomPerspective", dict()),
    ("RandomPerspective", dict(factor=(0.7, 0.2), scale=0.4, interpolation="nearest", fill_value=1.5, seed=2)),
    ("RandomElasticTransform", dict()),
    ("RandomElasticTransform", dict(factor=0.4, scale=(0.9, 0.3), interpolation="nearest", fill_mode="mirror",
                                    fill_value=2.0, value_range=(1, 0), seed=4, data_format="channels_first")),
]


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)])
def test_configs_match_keras_both_ways(keras, name, kwargs):
    config = getattr(L, name)(**kwargs).get_config()
    refused = name == "RandomShear" and min(config["x_factor"] + config["y_factor"]) < 0   # Keras' own (-f, f)
    assert_layer_config_matches_keras_both_ways(keras, name, kwargs, keras_reads_ours=not refused)


def test_a_keras_file_with_them_loads_and_saves_back(keras, tmp_path):
    """Keras' file opens; convscope's opens in Keras (shear ranges of non-negative numbers: Keras 3.15.1 writes
    a number f as (-f, f), then refuses that when it reads its own file; convscope reads it)."""
    k = keras.layers
    kmodel = keras.Sequential([k.Input((8, 8, 3)), k.RandomShear((0.0, 0.2), (0.1, 0.3)),
                               k.RandomPerspective(0.5, 0.3), k.Conv2D(2, 3), k.Flatten(), k.Dense(3)])
    kmodel.save(tmp_path / "k.keras")
    x = _images((2, 8, 8, 3), seed=9)
    expected = _np(keras, kmodel.predict(x, verbose=0))
    model = cs.models.load_model(tmp_path / "k.keras", compile=False)
    assert [type(layer).__name__ for layer in model.layers[:2]] == ["RandomShear", "RandomPerspective"]
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)
    model.save(tmp_path / "ours.keras")
    reloaded = keras.saving.load_model(tmp_path / "ours.keras", compile=False)
    for ours, theirs in zip(model.layers[:2], reloaded.layers):
        assert comparable_config(ours.get_config()) == comparable_config(theirs.get_config())
    shear = keras.Sequential([k.Input((8, 8, 3)), k.RandomShear(0.3, 0.2)])
    shear.save(tmp_path / "shear.keras")
    with pytest.raises(TypeError):
        keras.saving.load_model(tmp_path / "shear.keras")
    loaded = cs.models.load_model(tmp_path / "shear.keras")
    assert loaded.layers[0].x_factor == (-0.3, 0.3) and loaded.layers[0].y_factor == (-0.2, 0.2)


@pytest.mark.parametrize("make,error,message", [
    (lambda: L.RandomShear(-0.2), ValueError, r"RandomShear.*`x_factor` must be a number in \[0, 1\] or a list of "
                                              r"two numbers in \[-1, 1\], got -0.2"),
    (lambda: L.RandomShear(0.1, (0.2, 1.5)), ValueError, r"RandomShear.*`y_factor`.*\(0.2, 1.5\)"),
    (lambda: L.RandomShear(0.1, fill_mode="mirror"), ValueError, r"RandomShear.*`fill_mode` must be one of"),
    (lambda: L.RandomPerspective(scale=1.5), ValueError, r"RandomPerspective.*`scale` must be a number in \[0, 1\], "
                                                         r"got 1.5"),
    (lambda: L.RandomPerspective(factor=2), ValueError, r"RandomPerspective.*`factor`.*\[0, 1\], got 2"),
    (lambda: L.RandomPerspective(interpolation="bicubic"), ValueError, r"RandomPerspective.*`interpolation` must "
                                                                        r"be one of .*'bicubic'"),
    (lambda: L.RandomPerspective(fill_value="x"), TypeError, r"RandomPerspective.*`fill_value` must be a number"),
    (lambda: L.RandomElasticTransform(scale=1.5), ValueError, r"RandomElasticTransform.*`scale`.*\[0, 1\], got 1.5"),
    (lambda: L.RandomElasticTransform(fill_mode="edge"), ValueError, r"RandomElasticTransform.*`fill_mode` must be "
                                                                      r"one of .*'mirror'.*got 'edge'"),
])
def test_arguments_are_checked_with_clear_messages(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_draws_keep_keras_structure():
    """One sign per image for both shear factors; a perspective's corners at the image's own width and height
    (a non-square image: the right edge moves by up to scale/2 of its x); RandomGaussianBlur's two sigmas."""
    x = _images((50, 6, 20, 1), seed=14)
    transforms = L.RandomShear((0.1, 0.4), (0.2, 0.5))._draw(x, np.random.default_rng(1))
    assert np.all(np.sign(transforms[:, 1]) == np.sign(transforms[:, 3]))
    assert {-1.0, 1.0} == set(np.sign(transforms[:, 1]))
    apply, t = L.RandomPerspective((1.0, 1.0), 0.5)._draw(x, np.random.default_rng(2))
    corners = np.array([[0, 0, 1], [19, 0, 1], [0, 5, 1], [19, 5, 1]], np.float64).T
    for row in t.astype(np.float64):            # the output points each input corner moved to: corner + corner * m
        matrix = np.array([row[0:3], row[3:6], [row[6], row[7], 1.0]])
        ends = np.linalg.solve(matrix, corners)
        ends = ends[:2] / ends[2]
        np.testing.assert_allclose(ends[:, 0], 0, atol=1e-3)                       # (0, 0) stays
        np.testing.assert_allclose(ends[1, :2], 0, atol=1e-3)                      # y = 0 stays on the top corners
        assert np.all(np.abs(ends[0, [1, 3]] - 19) <= 0.25 * 19 + 1e-3)          # x moves by up to scale/2 of 19
        assert np.all(np.abs(ends[1, [2, 3]] - 5) <= 0.25 * 5 + 1e-3)            # y by up to scale/2 of 5
    sigmas = L.RandomGaussianBlur(sigma=(0.1, 1.0))._draw(x, np.random.default_rng(3))[1]
    assert sigmas.shape == (2,) and sigmas[0] != sigmas[1]


def test_inside_another_layers_call_they_follow_its_training_and_take_keras_dicts(keras):
    """A custom layer calling them without `training`: predict leaves the images, a training call moves them
    (Keras' call context); alone they augment (Keras' default).  Keras' dict: images through, labels as given."""

    class Wrap(L.Layer):
        def __init__(self):
            super().__init__()
            self.shear = L.RandomShear((0.3, 0.3), (0.2, 0.2), seed=1)
            self.warp = L.RandomElasticTransform((1.0, 1.0), seed=2, value_range=(0, 1))

        def call(self, x):
            return self.warp(self.shear(x))

    x = _images((3, 6, 6, 2), seed=15)
    inputs = L.Input((6, 6, 2))
    model = cs.models.Model(inputs, Wrap()(inputs))
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)
    np.testing.assert_array_equal(model(x, training=False), x)
    assert not np.array_equal(model(x, training=True), x)
    assert not np.array_equal(L.RandomShear(0.3)(x), x)
    labels = np.arange(3)
    for layer in (L.RandomShear(0.3), L.RandomPerspective(), L.RandomElasticTransform()):
        out = layer({"images": x, "labels": labels})
        assert set(out) == {"images", "labels"} and out["labels"] is labels and out["images"].shape == x.shape
    with pytest.raises(ValueError, match=r"random_perspective.*expected images at least 2 x 2.*got 1 x 6"):
        L.RandomPerspective()(x[:, :1])
