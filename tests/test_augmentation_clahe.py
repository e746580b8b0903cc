"""`ContrastLimitedAdaptiveHistogramEqualization` (Keras 3's CLAHE layer, `ops/clahe.py`) against Keras 3.15.1: its
outputs in either layout, padded tiles, one image, value ranges; the clip limit as Keras' float backends take it
(Keras' own algorithm with float histograms); applied at inference, no gradient; configs and `.keras` files both
ways; ONNX Runtime for the export; the checks of its arguments."""

import numpy as np
import pytest

import convscope as cs
from _calls import backward, forward
from _oracle import assert_layer_config_matches_keras_both_ways, assert_step_and_file_match_keras
from convscope import layers as L

NAME = "ContrastLimitedAdaptiveHistogramEqualization"


def _images(shape, seed=0, scale=255.0):
    rng = np.random.default_rng(seed)
    x = rng.random(shape) * scale
    x.reshape(-1)[: x.size // 5] = scale * 0.4                 # a flat patch: a clipped histogram
    return x.astype("float32")


# (shape, options): clip limits · tile area / 256 whole, where Keras on torch (integer histograms) is exact
CASES = [
    ((2, 32, 32, 3), dict(tile_grid_size=(2, 2), clip_limit=4.0)),
    ((1, 30, 31, 1), dict(tile_grid_size=(2, 2), clip_limit=3.2)),               # padded: tiles 15 × 16
    ((2, 9, 9, 2), dict(tile_grid_size=(8, 8), clip_limit=0.0)),
    ((1, 64, 48, 3), dict(tile_grid_size=(4, 3), clip_limit=3.0, value_range=(0, 1))),
    ((2, 3, 32, 16), dict(tile_grid_size=(2, 1), clip_limit=1.0, data_format="channels_first")),
    ((24, 20, 3), dict(tile_grid_size=(3, 2), clip_limit=0.0)),                   # one image
]


@pytest.mark.parametrize("shape,options", CASES)
def test_outputs_match_keras(keras, shape, options):
    scale = options.get("value_range", (0, 255))[1]
    x = _images(shape, seed=len(shape), scale=scale)
    ours, theirs = getattr(L, NAME)(**options), getattr(keras.layers, NAME)(**options)
    want = keras.ops.convert_to_numpy(theirs(x))
    np.testing.assert_allclose(ours(x), want, rtol=1e-5, atol=1e-4 * scale)
    np.testing.assert_allclose(ours(x, training=False), want, rtol=1e-5, atol=1e-4 * scale)


@pytest.mark.parametrize("clip_limit", [1.5, 2.7, 40.0])
def test_a_fractional_clip_limit_as_keras_float_backends_take_it(keras, monkeypatch, clip_limit):
    """Keras' algorithm with its histograms in float32 (its TF and JAX one-hots): the clip limit as given.
    (Keras on torch counts in integers and cuts 1.5 · 240 / 256 to 1.)"""
    from keras.src import backend
    one_hot = backend.nn.one_hot
    monkeypatch.setattr(backend.nn, "one_hot", lambda x, n, **kw: one_hot(x, n, **{**kw, "dtype": "float32"}))
    x = _images((2, 30, 32, 2), seed=3)
    theirs = getattr(keras.layers, NAME)(clip_limit=clip_limit, tile_grid_size=(2, 2))
    np.testing.assert_allclose(getattr(L, NAME)(clip_limit=clip_limit, tile_grid_size=(2, 2))(x),
                               keras.ops.convert_to_numpy(theirs(x)), rtol=1e-5, atol=1e-3)


def test_it_applies_at_inference_and_passes_no_gradient():
    layer = getattr(L, NAME)(tile_grid_size=(2, 2))
    x = _images((2, 8, 8, 1))
    model = cs.Sequential([cs.Input((8, 8, 1)), layer])
    np.testing.assert_array_equal(model.predict(x, verbose=0), layer(x))
    assert not np.array_equal(layer(x), x)
    y, ctx = forward(layer, x, training=True)
    grad, _ = backward(layer, ctx, np.ones_like(y))
    assert grad.shape == x.shape and not grad.any()
    assert layer.describe().kind == "other"


@pytest.mark.parametrize("kwargs", [{}, dict(value_range=(0, 1), clip_limit=2.0, tile_grid_size=(4, 2),
                                             data_format="channels_first")])
def test_config_matches_keras_both_ways(keras, kwargs):
    ours, _ = assert_layer_config_matches_keras_both_ways(keras, NAME, kwargs)
    assert L.LAYER_CLASSES[NAME] is type(ours)


def test_a_keras_model_with_it_loads_and_saves(keras, tmp_path):
    keras.utils.set_random_seed(1)
    theirs = keras.Sequential([keras.Input((16, 16, 1)), getattr(keras.layers, NAME)(tile_grid_size=(2, 2)),
                               keras.layers.Rescaling(1 / 255), keras.layers.Flatten(), keras.layers.Dense(2)])
    theirs.save(tmp_path / "theirs.keras")
    ours = cs.models.load_model(tmp_path / "theirs.keras")
    x, y = _images((3, 16, 16, 1)), np.random.default_rng(2).standard_normal((3, 2)).astype("float32")
    assert_step_and_file_match_keras(keras, ours, theirs, x, y, "mse", tmp_path)


@pytest.mark.parametrize("shape,options", [CASES[0], CASES[1], CASES[3], CASES[4]])
def test_onnx_export_equals_convscope(tmp_path, shape, options):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    model = cs.Sequential([cs.Input(shape[1:]), getattr(L, NAME)(**options)])
    model.export(tmp_path / "clahe.onnx", format="onnx")
    session = ort.InferenceSession(str(tmp_path / "clahe.onnx"), providers=["CPUExecutionProvider"])
    x = _images(shape, scale=options.get("value_range", (0, 255))[1])
    np.testing.assert_allclose(session.run(None, {session.get_inputs()[0].name: x})[0], model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("kwargs,error,pattern", [
    (dict(clip_limit=-1.0), ValueError, r"argument `clip_limit` must be a finite number >= 0, got -1.0"),
    (dict(clip_limit="4"), ValueError, r"argument `clip_limit` must be a finite number >= 0, got '4'"),
    (dict(tile_grid_size=8), ValueError, r"argument `tile_grid_size` must be a pair \(rows, columns\) of positive "
                                         r"ints, got 8"),
    (dict(tile_grid_size=(0, 2)), ValueError, r"argument `tile_grid_size` must be a positive int, got 0"),
    (dict(seed=3), TypeError, r"unexpected argument `seed`"),
])
def test_arguments_are_checked_by_name(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        getattr(L, NAME)(**kwargs)


def test_tiles_padded_by_mirroring_as_keras_float_backends(keras, monkeypatch):
    """Two or more padded rows: NumPy's "symmetric" mirror, as Keras' TF and JAX backends pad (Keras 3.15.1 on
    torch repeats the edge row instead: its pad maps "symmetric" to "replicate"), here put back into Keras."""
    import torch
    from keras.src.backend.torch import numpy as torch_numpy

    def symmetric(x, pad_width, mode="constant", constant_values=None):
        return torch.from_numpy(np.pad(x.numpy(), pad_width, mode=mode))
    monkeypatch.setattr(torch_numpy, "pad", symmetric)
    x = _images((2, 7, 9, 2), seed=5)
    options = dict(tile_grid_size=(3, 3), clip_limit=0.0)
    theirs = getattr(keras.layers, NAME)(**options)
    np.testing.assert_allclose(getattr(L, NAME)(**options)(x), keras.ops.convert_to_numpy(theirs(x)), rtol=1e-5,
                               atol=1e-3)


def test_inf_and_huge_pixels_read_the_top_bin_as_keras(keras):
    x = _images((1, 8, 8, 1), seed=6)
    x[0, 1, 2, 0], x[0, 5, 5, 0] = np.inf, 3e9
    options = dict(tile_grid_size=(2, 2), clip_limit=0.0)
    want = keras.ops.convert_to_numpy(getattr(keras.layers, NAME)(**options)(x))
    got = getattr(L, NAME)(**options)(x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)
    assert got[0, 1, 2, 0] == pytest.approx(want[0, 1, 2, 0]) and got[0, 1, 2, 0] > 200


def test_a_reversed_value_range_is_kept_as_keras_keeps_it(keras):
    x = _images((1, 8, 8, 1), seed=7)
    options = dict(value_range=(255, 0), tile_grid_size=(2, 2), clip_limit=0.0)
    ours = getattr(L, NAME)(**options)
    np.testing.assert_allclose(ours(x), keras.ops.convert_to_numpy(getattr(keras.layers, NAME)(**options)(x)),
                               rtol=1e-5, atol=1e-3)
    assert ours.get_config()["value_range"] == [255, 0]


def test_nan_pixels_are_refused_by_name():
    x = _images((1, 4, 4, 1))
    x[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"ContrastLimitedAdaptiveHistogramEqualization '.*': expected images "
                                         r"without NaN .*got 1 NaN values"):
        getattr(L, NAME)(tile_grid_size=(2, 2))(x)


@pytest.mark.parametrize("shape,grid", [((1, 4, 5, 1), (8, 2)), ((2, 3, 6, 2), (6, 3))])
def test_onnx_export_where_the_padding_is_the_whole_axis(tmp_path, shape, grid):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    model = cs.Sequential([cs.Input(shape[1:]), getattr(L, NAME)(tile_grid_size=grid, clip_limit=2.0)])
    model.export(tmp_path / "clahe.onnx", format="onnx")
    session = ort.InferenceSession(str(tmp_path / "clahe.onnx"), providers=["CPUExecutionProvider"])
    x = _images(shape, seed=8)
    x[0, 0, 0, 0] = np.inf
    np.testing.assert_allclose(session.run(None, {session.get_inputs()[0].name: x})[0], model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-4)
