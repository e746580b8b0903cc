"""AdaptiveAveragePooling1D/2D/3D and AdaptiveMaxPooling1D/2D/3D (layers/adaptive_pooling.py,
ops/adaptive_pool.py).

Oracles: PyTorch 2.13's adaptive pooling for outputs and input gradients on random sizes (output larger
than, dividing and not dividing the input; ties after a ReLU), float64 finite differences, Keras 3.15.1
for configs, shapes, refusals and files, ONNX Runtime for the export of even windows.
"""

import json

import numpy as np
import pytest

import convscope as cs
from _calls import backward, forward
from _gradcheck import assert_layer_matches_finite_differences
from convscope import layers as L

torch = pytest.importorskip("torch")
F = torch.nn.functional

CLASSES = ["AdaptiveAveragePooling1D", "AdaptiveMaxPooling1D", "AdaptiveAveragePooling2D", "AdaptiveMaxPooling2D",
           "AdaptiveAveragePooling3D", "AdaptiveMaxPooling3D"]
TORCH = {"AdaptiveAveragePooling1D": F.adaptive_avg_pool1d, "AdaptiveMaxPooling1D": F.adaptive_max_pool1d,
         "AdaptiveAveragePooling2D": F.adaptive_avg_pool2d, "AdaptiveMaxPooling2D": F.adaptive_max_pool2d,
         "AdaptiveAveragePooling3D": F.adaptive_avg_pool3d, "AdaptiveMaxPooling3D": F.adaptive_max_pool3d}


def _rank(name):
    return int(name[-2])


@pytest.mark.parametrize("name", CLASSES)
@pytest.mark.parametrize("seed", range(8))
def test_outputs_and_gradients_match_torch(name, seed):
    rng = np.random.default_rng(seed)
    rank = _rank(name)
    lengths = tuple(int(n) for n in rng.integers(1, 12, rank))
    size = tuple(int(m) for m in rng.integers(1, 8, rank))
    data_format = str(rng.choice(["channels_last", "channels_first"]))
    dtype = "float64" if seed % 2 else "float32"
    channels = int(rng.integers(1, 4))
    x_first = rng.standard_normal((3, channels) + lengths).astype(dtype)
    if seed % 4 == 3:
        x_first = np.maximum(x_first, 0)              # ReLU's zeros: ties, the first maximum takes the gradient
    x = x_first if data_format == "channels_first" else np.ascontiguousarray(np.moveaxis(x_first, 1, -1))
    layer = getattr(L, name)(size if rank > 1 or seed % 3 else size[0], data_format=data_format, dtype=dtype)
    y, ctx = forward(layer, x)
    x_t = torch.tensor(x_first, requires_grad=True)
    y_t = TORCH[name](x_t, size)
    upstream_first = rng.standard_normal(tuple(y_t.shape)).astype(dtype)
    y_t.backward(torch.tensor(upstream_first))
    to_ours = (lambda a: a) if data_format == "channels_first" else (lambda a: np.moveaxis(a, 1, -1))
    grad_x, grads = backward(layer, ctx, np.ascontiguousarray(to_ours(upstream_first)))
    tolerance = dict(rtol=1e-5, atol=1e-6) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)
    what = f"{name}{size} {data_format} on {x.shape}"
    assert y.shape == (3,) + layer.compute_output_shape((None,) + x.shape[1:])[1:]
    np.testing.assert_allclose(y, to_ours(y_t.detach().numpy()), err_msg=what, **tolerance)
    np.testing.assert_allclose(grad_x, to_ours(x_t.grad.numpy()), err_msg=what, **tolerance)
    assert grads == {}
    np.testing.assert_array_equal(layer(x), y)


@pytest.mark.parametrize("make,shape", [
    (lambda: L.AdaptiveAveragePooling2D((3, 2), dtype="float64"), (2, 7, 5, 2)),
    (lambda: L.AdaptiveMaxPooling2D((4, 3), data_format="channels_first", dtype="float64"), (2, 2, 6, 7)),
    (lambda: L.AdaptiveAveragePooling1D(4, data_format="channels_first", dtype="float64"), (2, 3, 9)),
    (lambda: L.AdaptiveMaxPooling1D(6, dtype="float64"), (2, 4, 2)),           # more outputs than steps
    (lambda: L.AdaptiveAveragePooling3D((2, 3, 2), dtype="float64"), (2, 5, 4, 3, 2)),
    (lambda: L.AdaptiveMaxPooling3D((3, 2, 4), data_format="channels_first", dtype="float64"), (2, 2, 4, 5, 3)),
])
def test_gradients_match_float64_finite_differences(make, shape):
    assert_layer_matches_finite_differences(make(), np.random.default_rng(10).standard_normal(shape))


CONFIG_CASES = [("AdaptiveAveragePooling2D", (7,), {}),
                ("AdaptiveMaxPooling2D", ((3, 5),), dict(data_format="channels_first")),
                ("AdaptiveAveragePooling1D", (4,), {}),
                ("AdaptiveMaxPooling1D", ((2,),), dict(data_format="channels_first")),
                ("AdaptiveAveragePooling3D", (3,), {}),
                ("AdaptiveMaxPooling3D", ((2, 3, 4),), dict(data_format="channels_first"))]


@pytest.mark.parametrize("class_name,args,kwargs", CONFIG_CASES)
def test_configs_and_shapes_match_keras(keras, class_name, args, kwargs):
    keras.utils.clear_session()
    ours = getattr(L, class_name)(*args, **kwargs)
    theirs = getattr(keras.layers, class_name)(*args, **kwargs)
    assert ours.name == theirs.name
    config = {k: v for k, v in theirs.get_config().items() if k != "dtype"}
    assert json.loads(json.dumps({k: v for k, v in ours.get_config().items() if k != "dtype"})) == \
        json.loads(json.dumps(config))
    again = L.deserialize(json.loads(json.dumps(keras.saving.serialize_keras_object(theirs))))
    assert type(again) is type(ours) and again.get_config() == ours.get_config()
    shape = {"1D": (None, 9, 3), "2D": (None, 9, 8, 3), "3D": (None, 9, 8, 7, 3)}[class_name[-2:]]
    assert ours.compute_output_shape(shape) == tuple(theirs.compute_output_shape(shape))


@pytest.mark.parametrize("factory,error,pattern", [
    (lambda: L.AdaptiveAveragePooling2D((2, 2, 2)), ValueError,
     r"AdaptiveAveragePooling2D 'adaptive_average_pooling2d': argument `output_size`"),
    (lambda: L.AdaptiveMaxPooling1D(0), ValueError, r"AdaptiveMaxPooling1D 'adaptive_max_pooling1d': argument "
                                                    r"`output_size`"),
    (lambda: L.AdaptiveMaxPooling2D(2, data_format="nhwc"), ValueError, r"AdaptiveMaxPooling2D .*`data_format`"),
    (lambda: L.AdaptiveAveragePooling1D(2).compute_output_shape((None, 4, 4, 2)), ValueError,
     r"AdaptiveAveragePooling1D 'adaptive_average_pooling1d': expected a 3-D input"),
])
def test_bad_arguments_and_inputs_are_refused_by_name(factory, error, pattern):
    with pytest.raises(error, match=pattern):
        factory()


def torchvision_style(m):
    """A VGG/ResNet head as torchvision writes it: adaptive pooling to 3x3, then to 1x1, then a classifier."""
    inputs = m.Input((11, 13, 3))
    x = m.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = m.layers.AdaptiveMaxPooling2D((3, 3))(x)
    x = m.layers.AdaptiveAveragePooling2D(1)(x)
    return m.Model(inputs, m.layers.Dense(2)(m.layers.Flatten()(x)))


def test_a_keras_file_loads_with_its_outputs_and_saves_back(keras, tmp_path):
    keras.utils.set_random_seed(2)
    theirs = torchvision_style(keras)
    theirs.save(tmp_path / "head.keras")
    ours = cs.models.load_model(tmp_path / "head.keras")
    x = np.random.default_rng(1).standard_normal((4, 11, 13, 3)).astype("float32")
    expected = keras.ops.convert_to_numpy(theirs.predict(x, verbose=0))
    np.testing.assert_allclose(ours.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    ours.save(tmp_path / "again.keras")
    back = keras.saving.load_model(tmp_path / "again.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(back.predict(x, verbose=0)), expected, rtol=1e-5, atol=1e-6)


def test_analysis_counts_the_windows_and_explains_them():
    model = cs.Sequential([L.Input((10, 8, 3)), L.AdaptiveAveragePooling2D((3, 2)), L.AdaptiveMaxPooling2D(1)])
    first, second = cs.models.analysis.analyze(model).layers
    # rows of 10 into 3: cells 0-3, 3-6, 6-9 (12 read); columns of 8 into 2: 0-3, 4-7 (8 read)
    assert first.kind == "adaptive_avg_pool" and first.pool_ops == (12 * 8 - 6 + 6) * 3
    assert second.kind == "adaptive_max_pool" and second.pool_ops == (3 * 2 - 1) * 3
    assert not first.field_known and second.output_shape == (None, 1, 1, 3)
    text = str(cs.explain(model))
    assert "height 10 → 3: output cell i pools input cells ⌊i·10/3⌋ to ⌈(i + 1)·10/3⌉ − 1: 0–3, 3–6, 6–9" in text
    assert "width 8 → 2: 8/2 = 4 input cells per output cell" in text
    assert "출력 칸 i는 입력 칸 ⌊i·10/3⌋부터" in str(cs.explain(model, lang="ko"))


def test_even_windows_are_a_pooling_for_the_receptive_field():
    model = cs.Sequential([L.Input((12, 8, 3)), L.Conv2D(4, 3), L.AdaptiveAveragePooling2D((5, 3))])
    field = cs.models.analysis.analyze(model).layers[-1].receptive_field      # 10x6 into 5x3: windows 2x2
    assert [(a.size, a.jump, a.start) for a in field] == [(4, 2, 0), (4, 2, 0)]


def test_onnx_export_of_even_windows_agrees_with_onnx_runtime_and_uneven_ones_are_refused(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    cs.utils.set_random_seed(3)
    inputs = cs.Input((12, 9, 2))
    x = L.AdaptiveMaxPooling2D((4, 3))(inputs)
    y = L.AdaptiveAveragePooling1D(2, data_format="channels_first")(L.Reshape((4, 6))(x))
    model = cs.Model(inputs, L.Concatenate()([L.Flatten()(y), L.Flatten()(L.AdaptiveAveragePooling2D(1)(x))]))
    model.export(tmp_path / "even.onnx", format="onnx")
    session = ort.InferenceSession(str(tmp_path / "even.onnx"), providers=["CPUExecutionProvider"])
    data = np.random.default_rng(4).standard_normal((3, 12, 9, 2)).astype("float32")
    got = session.run(None, {session.get_inputs()[0].name: data})[0]
    np.testing.assert_allclose(got, model.predict(data, verbose=0), rtol=1e-5, atol=1e-6)
    uneven = cs.Sequential([L.Input((10, 8, 3)), L.AdaptiveAveragePooling2D((3, 2))])
    with pytest.raises(ValueError, match=r"'adaptive_average_pooling2d.*output_size \(3, 2\)"):
        uneven.export(tmp_path / "uneven.onnx", format="onnx")


def test_volumes_analyse_load_from_keras_and_export(keras, tmp_path):
    """The 3-D layers: the depth axis' windows in the analysis and explanation, a Keras file both ways, and the
    ONNX export of even windows."""
    model = cs.Sequential([L.Input((6, 10, 8, 2)), L.AdaptiveAveragePooling3D((3, 3, 2)), L.AdaptiveMaxPooling3D(1)])
    first, second = cs.models.analysis.analyze(model).layers
    assert first.kind == "adaptive_avg_pool" and [a.output for a in first.axes] == [3, 3, 2]
    assert first.pool_ops == (6 * 12 * 8 - 18 + 18) * 2 and second.output_shape == (None, 1, 1, 1, 2)
    assert "depth 6 → 3: 6/3 = 2 input cells per output cell" in str(cs.explain(model))
    k = keras.layers
    theirs = keras.Sequential([k.Input((6, 8, 4, 2)), k.AdaptiveMaxPooling3D((3, 4, 2)),
                               k.AdaptiveAveragePooling3D((1, 2, 1), data_format="channels_first"), k.Flatten(),
                               k.Dense(3)])
    theirs.save(tmp_path / "v.keras")
    ours = cs.models.load_model(tmp_path / "v.keras")
    x = np.random.default_rng(5).standard_normal((2, 6, 8, 4, 2)).astype("float32")
    expected = keras.ops.convert_to_numpy(theirs.predict(x, verbose=0))
    np.testing.assert_allclose(ours.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    ours.save(tmp_path / "again.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(keras.saving.load_model(tmp_path / "again.keras").predict(
        x, verbose=0)), expected, rtol=1e-5, atol=1e-6)
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    ours.export(tmp_path / "v.onnx", format="onnx")
    session = ort.InferenceSession(str(tmp_path / "v.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, ours.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
