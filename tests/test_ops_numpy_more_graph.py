"""The further `keras.ops` functions (ops/numpy_more.py) on symbolic tensors: operation nodes as Keras records
them, so a Keras model written with them loads in convscope with Keras' outputs, trains a step as Keras does, and
goes back to Keras; and their explanation."""

import numpy as np
import pytest

import convscope as cs
from _oracle import assert_step_and_file_match_keras


def _model(lib):
    """Trigonometric features, a running sum, a flip, axes swapped, a sorted axis and logsumexp pooling."""
    ops, L = lib.ops, lib.layers
    x = lib.Input((6, 4))
    h = L.Dense(4, name="proj")(x)
    features = ops.sin(h) + ops.cos(h) * 0.5 + ops.tanh(ops.cumsum(h, axis=1)) + ops.flip(h, axis=1)
    features = ops.swapaxes(features, 1, 2)                       # (batch, 4, 6)
    features = ops.sort(features, axis=-1) + ops.expm1(ops.tril(features) * 0.1) + ops.roll(features, 1, axis=2)
    pooled = ops.logsumexp(features, axis=-1)                     # (batch, 4)
    return lib.Model(x, L.Dense(2, name="head")(ops.arctan(pooled) + ops.log1p(ops.exp2(pooled * 0.1))))


def test_a_keras_model_written_with_them_loads_trains_and_goes_back(keras, tmp_path):
    keras.utils.set_random_seed(2)
    theirs = _model(keras)
    theirs.save(tmp_path / "theirs.keras")
    ours = cs.models.load_model(tmp_path / "theirs.keras")
    functions = sorted({layer.function for layer in ours.operations if hasattr(layer, "function")})
    assert {"sin", "cos", "cumsum", "flip", "swapaxes", "sort", "expm1", "tril", "roll", "logsumexp", "arctan",
            "exp2"} <= set(functions)
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((5, 6, 4)).astype("float32"), rng.standard_normal((5, 2)).astype("float32")
    assert_step_and_file_match_keras(keras, ours, theirs, x, y, "mse", tmp_path)


def test_built_in_convscope_they_record_keras_classes_and_explain():
    model = _model(cs)
    names = {type(layer).__name__: layer.keras_module for layer in model.operations if hasattr(layer, "function")}
    assert names["Logsumexp"] == "keras.src.ops.math" and names["Cumsum"] == "keras.src.ops.numpy"
    row = {r.name: r for r in cs.models.analysis.analyze(model).layers}
    sin = next(r for name, r in row.items() if name.startswith("sin"))
    assert sin.kind == "operation" and sin.elementwise
    assert "sin" in str(cs.explain(model))


def test_creation_functions_are_not_symbolic():
    assert cs.ops.arange(3).tolist() == [0, 1, 2] and cs.ops.zeros((2,)).dtype == np.float32
    x = cs.Input((3, 5))
    assert cs.ops.shape(x) == (None, 3, 5) and cs.ops.ndim(x) == 3
    with pytest.raises(TypeError, match=r"ops\.roll: argument `shift` must be a constant"):
        cs.ops.roll(x, x)


def test_the_element_wise_ones_export_to_onnx(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    ops = cs.ops
    x = cs.Input((5,))
    h = cs.layers.Dense(5)(x)
    y = ops.sin(h) + ops.cos(h) + ops.arctan(h) + ops.sinh(h * 0.5) + ops.cosh(h * 0.5) + ops.arcsinh(h)
    y = y + ops.floor(h) + ops.ceil(h) + ops.tan(ops.tanh(h)) + ops.arcsin(ops.tanh(h) * 0.5)
    y = y + ops.arccos(ops.tanh(h) * 0.5) + ops.arctanh(ops.tanh(h) * 0.5) + ops.arccosh(ops.abs(h) + 1.5)
    model = cs.Model(x, y + ops.reciprocal(ops.abs(h) + 1.0))
    model.export(tmp_path / "m.onnx", format="onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    data = np.random.default_rng(0).standard_normal((4, 5)).astype("float32")
    np.testing.assert_allclose(session.run(None, {session.get_inputs()[0].name: data})[0],
                               model.predict(data, verbose=0), rtol=1e-5, atol=1e-5)


def test_full_like_any_and_logical_ops_on_symbolic_tensors_as_keras(keras, tmp_path):
    """`full_like`'s fill value is a node argument in Keras (not config); `any`/`all` take axis tuples (a JSON list
    in a file); `logical_and` broadcasts an unknown axis as the other element-wise functions."""
    def build(lib):
        x = lib.Input((3, 4))
        filled = lib.ops.full_like(x, 2.5) * x
        flags = lib.ops.cast(lib.ops.any(x > 0, axis=(1, 2), keepdims=True), "float32")
        return lib.Model(x, filled * flags)
    keras.utils.set_random_seed(0)
    theirs = build(keras)
    theirs.save(tmp_path / "theirs.keras")
    ours = cs.models.load_model(tmp_path / "theirs.keras")
    x = np.random.default_rng(3).standard_normal((2, 3, 4)).astype("float32")
    np.testing.assert_allclose(ours.predict(x, verbose=0), keras.ops.convert_to_numpy(theirs(x)), rtol=1e-6)
    build(cs).save(tmp_path / "ours.keras")
    back = keras.saving.load_model(tmp_path / "ours.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(back(x)), keras.ops.convert_to_numpy(theirs(x)), rtol=1e-6)
    unknown = cs.Input((None,))
    assert cs.ops.logical_and(unknown > 0, np.ones(5, bool)).shape == \
        tuple(keras.ops.logical_and(keras.Input((None,)) > 0, np.ones(5, bool)).shape)


def _composed_model(lib):
    """ops/composed.py's functions as a CNN's custom parts use them: a pixel shuffle up and down, normalized
    features, moments, GLU, a norm, a safe division, logaddexp, arctan2, mod and take_along_axis."""
    ops, L = lib.ops, lib.layers
    image = lib.Input((4, 4, 8))
    h = L.Conv2D(8, 1, name="mix")(image)
    up = ops.normalize(ops.depth_to_space(h, 2), axis=-1)                       # (batch, 8, 8, 2)
    down = ops.space_to_depth(up, 2)                                            # (batch, 4, 4, 8)
    mean, variance = ops.moments(down, axes=[1, 2])                            # (batch, 8) each
    gated = ops.glu(ops.concatenate([mean, variance], axis=-1))                 # (batch, 8)
    size = ops.norm(gated, axis=-1, keepdims=True)
    mixed = ops.divide_no_nan(gated, size) + ops.logaddexp(mean, variance) + ops.arctan2(mean, variance + 1.0)
    mixed = mixed + ops.mod(variance, 0.5) * 0.1 + ops.take_along_axis(mixed, np.array([[7, 0, 1, 2, 3, 4, 5, 6]]),
                                                                       axis=1)
    pooled = ops.average_pool(ops.max_pool(h, 2, 1), 2, 1)                      # (batch, 2, 2, 8)
    mixed = mixed + ops.mean(pooled, axis=(1, 2))
    cells = ops.reshape(down, (-1, 16, 8))
    mixed = mixed + ops.quantile(cells, 0.25, axis=1) + ops.percentile(cells, 75, axis=1) + ops.median(cells, axis=1)
    return lib.Model(image, L.Dense(3, name="head")(mixed))


def test_a_keras_model_written_with_the_composed_ops_loads_trains_and_goes_back(keras, tmp_path):
    keras.utils.set_random_seed(4)
    theirs = _composed_model(keras)
    theirs.save(tmp_path / "theirs.keras")
    ours = cs.models.load_model(tmp_path / "theirs.keras")
    functions = {layer.function for layer in ours.operations if hasattr(layer, "function")}
    assert {"depth_to_space", "space_to_depth", "normalize", "moments", "glu", "norm", "divide_no_nan", "logaddexp",
            "arctan2", "mod", "take_along_axis", "max_pool", "average_pool", "quantile", "percentile",
            "median"} <= functions
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((4, 4, 4, 8)).astype("float32"), rng.standard_normal((4, 3)).astype("float32")
    assert_step_and_file_match_keras(keras, ours, theirs, x, y, "mse", tmp_path)
    built = _composed_model(cs)
    assert [type(layer).__name__ for layer in built.operations] == [type(layer).__name__ for layer in ours.operations]
