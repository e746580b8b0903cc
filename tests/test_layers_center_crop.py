"""CenterCrop: the centred window, or Keras' smart_resize (aspect-ratio crop, bilinear resize) for a smaller input.

Oracles: Keras 3.15.1 on the torch backend (outputs on both paths and layouts, configs, a Keras-written file),
float64 finite differences for the gradient of both paths.
"""

import numpy as np
import pytest

import convscope as cs
from convscope import layers as L
from convscope import ops

CASES = [  # (input shape, height, width, data_format)
    ((2, 10, 12, 3), 6, 8, "channels_last"),        # cut: 2 rows above, 2 below; 2 columns left, 2 right
    ((2, 11, 9, 2), 8, 4, "channels_last"),         # odd cuts: 1 above, 2 below; 2 left, 3 right
    ((2, 8, 8, 3), 8, 8, "channels_last"),          # the whole image
    ((2, 5, 7, 3), 6, 4, "channels_last"),          # fewer rows than the target: smart_resize
    ((1, 9, 6, 2), 4, 9, "channels_last"),          # fewer columns
    ((2, 3, 10, 12), 6, 5, "channels_first"),
    ((2, 3, 4, 4), 7, 3, "channels_first"),
]


@pytest.mark.parametrize("shape,height,width,data_format", CASES)
def test_outputs_and_configs_equal_keras(keras, shape, height, width, data_format):
    x = np.random.default_rng(sum(shape)).normal(size=shape).astype("float32")
    ours = L.CenterCrop(height, width, data_format=data_format)
    theirs = keras.layers.CenterCrop(height, width, data_format=data_format)
    expected = keras.ops.convert_to_numpy(theirs(x))
    np.testing.assert_allclose(ours(x), expected, rtol=1e-5, atol=1e-6)
    assert ours.compute_output_shape(shape) == tuple(theirs.compute_output_shape(shape)) == expected.shape
    keras_config = theirs.get_config()
    assert {k: ours.get_config()[k] for k in ("height", "width", "data_format")} == \
        {k: keras_config[k] for k in ("height", "width", "data_format")}
    rebuilt = cs.layers.deserialize(keras.layers.serialize(theirs))
    assert isinstance(rebuilt, L.CenterCrop) and (rebuilt.height, rebuilt.width) == (height, width)


@pytest.mark.parametrize("shape,size", [((2, 7, 9, 2), (4, 6)), ((2, 5, 7, 2), (6, 4))], ids=["cut", "resize"])
def test_gradient_equals_finite_differences_in_float64(shape, size):
    rng = np.random.default_rng(7)
    x = rng.normal(size=shape)
    y, ctx = ops.center_crop_forward(x, size)
    weights = rng.normal(size=y.shape)
    grad = ops.center_crop_backward(weights, ctx)
    numeric = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = 1e-6
        numeric[index] = (np.sum(ops.center_crop_forward(x + step, size)[0] * weights)
                          - np.sum(ops.center_crop_forward(x - step, size)[0] * weights)) / 2e-6
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


def model(module, layers):
    return module.Sequential([module.Input((13, 10, 3)), layers.CenterCrop(8, 8), layers.Conv2D(4, 3),
                              layers.CenterCrop(7, 5), layers.Flatten(), layers.Dense(2)])


def test_a_keras_file_with_center_crops_loads_and_predicts_as_keras(keras, tmp_path):
    theirs = model(keras, keras.layers)
    theirs.save(tmp_path / "crops.keras")
    loaded = cs.models.load_model(tmp_path / "crops.keras")
    x = np.random.default_rng(8).normal(size=(3, 13, 10, 3)).astype("float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), keras.ops.convert_to_numpy(theirs.predict(x, verbose=0)),
                               rtol=1e-5, atol=1e-6)


def test_analysis_reads_a_cut_or_a_resize():
    rows = cs.models.analysis.analyze(model(cs, L)).layers
    cut, resize = rows[0], rows[2]
    assert (cut.kind, [(a.pad_before, a.pad_after) for a in cut.axes], cut.output_shape) == \
        ("crop", [(2, 3), (1, 1)], (None, 8, 8, 3))
    assert (resize.kind, resize.aspect, resize.output_shape) == ("resize", ("crop", 0, 1, 6, 4), (None, 7, 5, 4))
    text = str(cs.explain(model(cs, L)))
    assert "height 13 → 8: 13 − 2 top − 3 bottom = 8" in text                      # the cut, explained
    assert "first the centred 6×4 window (from row 0, column 1)" in text           # the resize's aspect crop


def test_arguments_and_inputs_are_checked_by_name():
    with pytest.raises(ValueError, match="CenterCrop 'center_crop.*': argument `height` must be a positive int"):
        L.CenterCrop(0, 3)
    with pytest.raises(ValueError, match="CenterCrop 'cc': expected a 4-D input"):
        cs.Sequential([cs.Input((4, 4)), L.CenterCrop(2, 2, name="cc")])


def test_one_image_goes_through_resizing_and_center_crop_as_keras(keras):
    """Keras' image preprocessing layers take one image (rank 3) as a batch of one; so do a Pipeline of them."""
    image = np.random.default_rng(30).random((6, 8, 3)).astype("float32")
    for make in (lambda lib: lib.layers.Resizing(4, 5), lambda lib: lib.layers.CenterCrop(4, 4),
                 lambda lib: lib.layers.Resizing(3, 4, data_format="channels_first"),
                 lambda lib: lib.layers.Pipeline([lib.layers.RandomFlip(), lib.layers.CenterCrop(4, 4)])):
        ours, theirs = make(cs), make(keras)
        x = image if getattr(ours, "data_format", "channels_last") == "channels_last" else image.transpose(2, 0, 1)
        got, expected = ours(x, training=False), keras.ops.convert_to_numpy(theirs(x.copy(), training=False))
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
