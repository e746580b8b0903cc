"""`SpectralNormalization` (Keras' wrapper) against Keras 3.15.1: the normalized kernel and `vector_u` after
training calls, outputs and gradients through torch's autograd, an SVD for sigma, configs and `.keras` files both
ways (the kernel and `vector_u` under the wrapper, the layer's weights under `<wrapper>/layer`), a training step,
its analysis, the ONNX export, and the checks of its arguments."""

import json

import numpy as np
import pytest

import convscope as cs
from convscope import layers as L
from _calls import backward, forward
from _oracle import assert_step_and_file_match_keras, assert_training_call_matches_keras, comparable_config


def _pair(keras, make, shape, iterations, rng):
    ours = L.SpectralNormalization(make(L), power_iterations=iterations)
    theirs = keras.layers.SpectralNormalization(make(keras.layers), power_iterations=iterations)
    theirs.build(shape)
    ours.build_from_shape((None,) + tuple(shape[1:]))
    weights = [rng.standard_normal(w.shape).astype("float32") for w in theirs.get_weights()]
    theirs.set_weights(weights)
    ours.set_weights(weights)
    return ours, theirs


@pytest.mark.parametrize("make,shape,iterations", [
    (lambda lib: lib.Conv2D(3, 2), (4, 5, 5, 2), 1),
    (lambda lib: lib.Dense(4), (3, 6), 3),
    (lambda lib: lib.Conv2DTranspose(2, 3, strides=2), (2, 3, 3, 4), 2),
    (lambda lib: lib.DepthwiseConv2D(3, depth_multiplier=2), (2, 5, 5, 3), 1),
], ids=["conv2d", "dense", "conv2d_transpose", "depthwise"])
def test_training_calls_normalize_the_kernel_and_match_keras_through_autograd(keras, make, shape, iterations):
    rng = np.random.default_rng(len(shape) + iterations)
    ours, theirs = _pair(keras, make, shape, iterations, rng)
    assert [v.name.split("/")[-1] for v in ours.weights] == [v.path.split("/")[-1] for v in theirs.weights]
    for _ in range(2):                      # twice: the second call starts from the first's vector_u
        grads = assert_training_call_matches_keras(keras, ours, theirs, rng.standard_normal(shape).astype("float32"),
                                                   rng)
        for variable in theirs.layer.trainable_weights:
            mine = grads[f"{ours.layer.name}/{variable.path.split('/')[-1]}"]
            np.testing.assert_allclose(mine, variable.value.grad.numpy(), rtol=1e-4, atol=1e-4)
            variable.value.grad = None


def test_many_iterations_bring_sigma_to_the_largest_singular_value():
    rng = np.random.default_rng(2)
    layer = L.SpectralNormalization(L.Dense(5, dtype="float64"), power_iterations=50, dtype="float64")
    layer.build_from_shape((None, 7))
    left, _ = np.linalg.qr(rng.standard_normal((7, 5)))
    right, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    kernel = left @ np.diag([3.0, 1.5, 1.0, 0.5, 0.1]) @ right.T         # sigma 3, the next 1.5
    layer.layer.kernel.assign(kernel)
    layer(np.ones((1, 7)), training=True)
    np.testing.assert_allclose(layer.layer.kernel.value, kernel / 3.0, rtol=1e-10)
    assert np.linalg.svd(layer.layer.kernel.value, compute_uv=False)[0] == pytest.approx(1.0, rel=1e-10)


def test_inference_and_an_all_zero_kernel_leave_the_weights_alone():
    layer = L.SpectralNormalization(L.Dense(3))
    layer.build_from_shape((None, 4))
    before = layer.get_weights()
    layer(np.ones((2, 4), np.float32))
    for a, b in zip(layer.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    layer.layer.kernel.assign(np.zeros((4, 3), np.float32))
    u = layer.vector_u.value.copy()
    layer(np.ones((2, 4), np.float32), training=True)
    assert not np.any(layer.layer.kernel.value) and np.array_equal(layer.vector_u.value, u)


def _critic(lib):
    """A small GAN critic: spectrally normalized convolutions and Dense."""
    S = lib.layers.SpectralNormalization
    return lib.Sequential([lib.Input((6, 6, 2)), S(lib.layers.Conv2D(4, 3, strides=2, padding="same")),
                           lib.layers.LeakyReLU(0.2), lib.layers.Flatten(), S(lib.layers.Dense(1), power_iterations=2)])


def test_a_keras_model_loads_trains_a_step_and_saves_as_keras(keras, tmp_path):
    keras.utils.set_random_seed(7)
    theirs = _critic(keras)
    theirs.save(tmp_path / "theirs.keras")
    ours = cs.models.load_model(tmp_path / "theirs.keras")
    assert [type(layer).__name__ for layer in ours.layers] == [type(layer).__name__ for layer in theirs.layers]
    for a, b in zip(ours.get_weights(), theirs.get_weights()):              # vector_u read from the file too
        np.testing.assert_array_equal(a, keras.ops.convert_to_numpy(b))
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((4, 6, 6, 2)).astype("float32"), rng.standard_normal((4, 1)).astype("float32")
    assert_step_and_file_match_keras(keras, ours, theirs, x, y, "mse", tmp_path)


def test_a_wrapper_in_a_wrapper_keeps_keras_file_layout(keras, tmp_path):
    """TimeDistributed(SpectralNormalization(Dense)): the Dense's weights under `<td>/layer/layer`."""
    keras.utils.set_random_seed(8)
    theirs = keras.Sequential([keras.Input((3, 4)), keras.layers.TimeDistributed(
        keras.layers.SpectralNormalization(keras.layers.Dense(2)))])
    theirs.save(tmp_path / "nested.keras")
    ours = cs.models.load_model(tmp_path / "nested.keras")
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((5, 3, 4)).astype("float32"), rng.standard_normal((5, 3, 2)).astype("float32")
    assert_step_and_file_match_keras(keras, ours, theirs, x, y, "mse", tmp_path)


def _input_gradient_and_finite_differences(layer, x, weights):
    """The input gradient of sum(layer(x, training=True) · weights) and float64 central differences, every
    call from the same weights (a training call renormalizes the kernel)."""
    state = [v.numpy() for v in layer.weights]

    def restore():
        for variable, value in zip(layer.weights, state):
            variable.assign(value)

    def loss(values):
        restore()
        return float(np.sum(layer(values, training=True) * weights))

    restore()
    _, ctx = forward(layer, x, training=True)
    grad, _ = backward(layer, ctx, weights)
    numeric = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[i] += 1e-6
        down[i] -= 1e-6
        numeric[i] = (loss(up) - loss(down)) / 2e-6
    return grad, numeric


def test_each_step_of_a_time_distributed_gets_its_own_kernels_input_gradient():
    """TimeDistributed(SpectralNormalization(Dense)) renormalizes the kernel at every step (as Keras calls it
    per step); each step's input gradient is taken with the kernel that step used."""
    rng = np.random.default_rng(0)
    layer = L.TimeDistributed(L.SpectralNormalization(L.Dense(3, dtype="float64"), dtype="float64"), dtype="float64")
    layer.build_from_shape((None, 4, 5))
    layer.layer.layer.kernel.assign(rng.standard_normal((5, 3)) * 3)
    grad, numeric = _input_gradient_and_finite_differences(layer, rng.standard_normal((2, 4, 5)),
                                                           rng.standard_normal((2, 4, 3)))
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


def test_a_layer_of_another_dtype_keeps_vector_u_in_its_dtype(keras, tmp_path):
    """Keras makes `vector_u` in the kernel's dtype: a float64 Dense in a float32 wrapper, built and from a file."""
    layer = L.SpectralNormalization(L.Dense(3, dtype="float64"))
    layer.build_from_shape((None, 4))
    assert [v.dtype for v in layer.weights] == [np.float64] * 3
    theirs = keras.Sequential([keras.Input((4,)), keras.layers.SpectralNormalization(keras.layers.Dense(
        3, dtype="float64"))])
    theirs.save(tmp_path / "f64.keras")
    ours = cs.models.load_model(tmp_path / "f64.keras")
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_array_equal(a, keras.ops.convert_to_numpy(b))


def test_the_receptive_field_is_the_wrapped_convolutions():
    def net(wrap):
        return cs.Sequential([cs.Input((32, 32, 1))] + [wrap(L.Conv2D(2, 3, strides=2)) for _ in range(3)])
    plain = [row.receptive_field for row in cs.models.analysis.analyze(net(lambda layer: layer)).layers]
    wrapped = [row.receptive_field for row in cs.models.analysis.analyze(net(L.SpectralNormalization)).layers]
    assert wrapped == plain and plain[-1] is not None


def test_config_matches_keras_both_ways(keras):
    theirs = keras.layers.SpectralNormalization(keras.layers.Conv2D(3, 2, name="inner"), power_iterations=4,
                                                name="sn")
    ours = L.deserialize(json.loads(json.dumps(keras.saving.serialize_keras_object(theirs))))
    assert type(ours) is L.SpectralNormalization and ours.power_iterations == 4 and ours.layer.name == "inner"
    assert comparable_config(ours.layer.get_config()) == comparable_config(theirs.layer.get_config())
    back = keras.saving.deserialize_keras_object(json.loads(json.dumps(L.serialize(ours))))
    assert type(back).__name__ == "SpectralNormalization" and back.power_iterations == 4
    assert comparable_config(back.layer.get_config()) == comparable_config(theirs.layer.get_config())
    assert L.LAYER_CLASSES["SpectralNormalization"] is L.SpectralNormalization


def test_analysis_explain_and_onnx_read_the_wrapped_layer(tmp_path):
    from convscope.models.analysis import analyze
    model = _critic(cs)
    row = analyze(model).layers[0]
    assert (row.kind, row.inner.kind, row.output_shape, row.params) == ("spectral_norm", "conv", (None, 3, 3, 4),
                                                                       4 * (3 * 3 * 2 + 1) + 4)
    assert row.macs == 3 * 3 * 4 * 3 * 3 * 2
    text = str(cs.explain(model))
    assert "its kernel divided by its largest singular value (power iteration) at each training call" in text
    assert "학습 호출마다 커널을" in str(cs.explain(model, lang="ko"))
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    model.export(tmp_path / "critic.onnx", format="onnx")
    session = ort.InferenceSession(str(tmp_path / "critic.onnx"), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(3).standard_normal((5, 6, 6, 2)).astype("float32")
    np.testing.assert_allclose(session.run(None, {session.get_inputs()[0].name: x})[0], model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)


def test_arguments_are_checked_by_name():
    with pytest.raises(TypeError, match=r"SpectralNormalization 'sn': argument `layer` must be a layer instance"):
        L.SpectralNormalization("dense", name="sn")
    with pytest.raises(ValueError, match=r"SpectralNormalization 'sn': argument `power_iterations` must be a positive "
                                         r"int, got 0"):
        L.SpectralNormalization(L.Dense(2), power_iterations=0, name="sn")
    layer = L.SpectralNormalization(L.MaxPooling2D(), name="sn")
    with pytest.raises(ValueError, match=r"SpectralNormalization 'sn': argument `layer` must have a `kernel` or "
                                         r"`embeddings` weight, got MaxPooling2D"):
        layer.build_from_shape((None, 4, 4, 1))
