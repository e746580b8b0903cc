"""InceptionResNetV2's `CustomScaleLayer` (layers/inception_resnet.py): x + scale · r against PyTorch's
autograd and float64 finite differences; Keras' own class (its module, config and files) both ways."""

import json

import numpy as np
import pytest

import convscope as cs
from _calls import backward, forward
from _gradcheck import assert_gradients_close, numerical_gradient
from convscope import layers as L

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_forward_and_backward_match_torch(dtype):
    rng = np.random.default_rng(0)
    layer = L.CustomScaleLayer(0.17, dtype=dtype)
    x, r = (rng.standard_normal((2, 5, 5, 4)).astype(dtype) for _ in range(2))
    layer.build([(None, 5, 5, 4)] * 2)
    y, ctx = forward(layer, [x, r])
    x_t, r_t = (torch.tensor(a, requires_grad=True) for a in (x, r))
    y_t = x_t + r_t * 0.17
    upstream = rng.standard_normal(y.shape).astype(dtype)
    y_t.backward(torch.tensor(upstream))
    (grad_x, grad_r), grads = backward(layer, ctx, upstream)
    np.testing.assert_allclose(y, y_t.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(grad_x, x_t.grad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(grad_r, r_t.grad.numpy(), rtol=1e-6)
    assert grads == {} and y.dtype == dtype


def test_gradients_match_float64_finite_differences():
    rng = np.random.default_rng(1)
    layer = L.CustomScaleLayer(0.2, dtype="float64")
    x, r = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 4))
    layer.build([(None, 3, 4)] * 2)
    y, ctx = forward(layer, [x, r])
    weights = rng.standard_normal(y.shape)
    (grad_x, grad_r), _ = backward(layer, ctx, weights)
    loss = lambda: float(np.sum(weights * layer([x, r])))  # noqa: E731
    assert_gradients_close(grad_x, numerical_gradient(loss, x))
    assert_gradients_close(grad_r, numerical_gradient(loss, r))


def _residual_net(layers_module, scale_cls, keras_input):
    inputs = keras_input((6, 6, 3))
    x = layers_module.Conv2D(4, 3, padding="same")(inputs)
    up = layers_module.Conv2D(4, 1, name="block_conv")(layers_module.Activation("relu")(x))
    x = scale_cls(0.17)([x, up])
    return x, inputs


def test_keras_files_with_the_layer_load_and_save_back(keras, tmp_path):
    from keras.src.applications.inception_resnet_v2 import CustomScaleLayer as KerasScale
    keras.utils.set_random_seed(4)
    x, inputs = _residual_net(keras.layers, KerasScale, keras.Input)
    theirs = keras.Model(inputs, keras.layers.Activation("relu")(x))
    theirs.save(tmp_path / "net.keras")
    entry = json.loads(json.dumps(cs.layers.serialize(L.CustomScaleLayer(0.17))))
    their_entry = json.loads(json.dumps(keras.saving.serialize_keras_object(KerasScale(0.17))))
    assert {k: entry[k] for k in ("module", "class_name", "registered_name")} == \
        {k: their_entry[k] for k in ("module", "class_name", "registered_name")}
    assert entry["config"]["scale"] == their_entry["config"]["scale"] == 0.17
    ours = cs.models.load_model(tmp_path / "net.keras")
    data = np.random.default_rng(5).standard_normal((2, 6, 6, 3)).astype("float32")
    expected = keras.ops.convert_to_numpy(theirs.predict(data, verbose=0))
    np.testing.assert_allclose(ours.predict(data, verbose=0), expected, rtol=1e-5, atol=1e-6)
    ours.save(tmp_path / "again.keras")
    back = keras.saving.load_model(tmp_path / "again.keras")
    assert type(back.layers[-2]).__name__ == "CustomScaleLayer"
    np.testing.assert_allclose(keras.ops.convert_to_numpy(back.predict(data, verbose=0)), expected, rtol=1e-5,
                               atol=1e-6)


def test_analysis_counts_a_multiply_and_an_add_per_output():
    x, inputs = _residual_net(L, L.CustomScaleLayer, cs.Input)
    model = cs.Model(inputs, x)
    row = [r for r in cs.models.analysis.analyze(model).layers if r.class_name == "CustomScaleLayer"][0]
    assert row.merge_ops == 2 * 6 * 6 * 4
    assert "288 multiplies and adds: x + scale·r, 2 per output × 144 outputs" in str(cs.explain(model))


def test_refuses_one_input_and_a_non_number_scale_by_name():
    with pytest.raises(ValueError, match=r"CustomScaleLayer 'custom_scale_layer\w*': expected a list of exactly 2"):
        L.CustomScaleLayer(0.1).compute_output_shape([(None, 3)])
    with pytest.raises(TypeError, match=r"CustomScaleLayer 'custom_scale_layer\w*': argument `scale`"):
        L.CustomScaleLayer("big")
