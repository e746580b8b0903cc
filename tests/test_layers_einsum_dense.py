"""`EinsumDense` (Keras' layer) against Keras 3.15.1 on torch's autograd for Keras' equation forms ("...",
heads, bias axes, activations), float64 finite differences, the kernel initializer's fans, configs and `.keras`
files both ways, the analysis and explanation, the ONNX export, and the checks of its arguments."""

import numpy as np
import pytest

import convscope as cs
from convscope import layers as L
from _calls import backward, forward
from _gradcheck import assert_layer_matches_finite_differences
from _oracle import assert_layer_config_matches_keras_both_ways, assert_step_and_file_match_keras

CASES = [
    ("ab,bc->ac", 4, "c", None, (3, 5)),
    ("abc,cd->abd", (None, 6), "d", "relu", (2, 4, 5)),
    ("abc,cde->abde", (None, 3, 2), "de", "tanh", (2, 4, 5)),
    ("abc,cde->abde", (None, 3, 2), "e", None, (2, 4, 5)),
    ("...b,bc->...c", 5, "c", None, (2, 3, 4, 6)),
    ("ab...,bc->ac...", (5,), "c", "gelu", (2, 6, 3, 4)),
    ("abcd,cde->abe", (None, 3), "e", None, (2, 3, 4, 5)),
    ("abc,cd->abd", (None, 6), None, "sigmoid", (2, 4, 5)),
    ("abc,bd->adc", (6, None), "d", None, (2, 4, 5)),
]


@pytest.mark.parametrize("equation,output_shape,bias_axes,activation,shape", CASES)
def test_outputs_and_gradients_match_keras_through_autograd(keras, equation, output_shape, bias_axes, activation,
                                                             shape):
    import torch
    rng = np.random.default_rng(len(shape) + len(equation))
    ours = L.EinsumDense(equation, output_shape, activation=activation, bias_axes=bias_axes)
    theirs = keras.layers.EinsumDense(equation, output_shape, activation=activation, bias_axes=bias_axes)
    theirs.build(shape)
    ours.build_from_shape((None,) + shape[1:])
    weights = [rng.standard_normal(w.shape).astype("float32") for w in theirs.get_weights()]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    x = rng.standard_normal(shape).astype("float32")
    y, ctx = forward(ours, x, training=True)
    x_t = torch.tensor(x, requires_grad=True)
    y_t = theirs(x_t)
    assert y.shape == tuple(y_t.shape) == ours.compute_output_shape(shape)
    np.testing.assert_allclose(y, y_t.detach().numpy(), rtol=1e-5, atol=1e-5)
    upstream = rng.standard_normal(y.shape).astype("float32")
    y_t.backward(torch.tensor(upstream))
    grad_x, grads = backward(ours, ctx, upstream)
    np.testing.assert_allclose(grad_x, x_t.grad.numpy(), rtol=1e-4, atol=1e-4)
    for variable in theirs.trainable_weights:
        name = variable.path.split("/")[-1]
        np.testing.assert_allclose(grads[f"{ours.name}/{name}"], variable.value.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_shapes_keras_leaves_unknown_or_reverses_are_the_arrays_own():
    """Keras 3.15.1's symbolic shape keeps None where the input gives the size, and reverses the axes a leading
    "..." keeps; convscope's is the output's own shape."""
    assert L.EinsumDense("abc,cd->abd", (None, 6)).compute_output_shape((None, 4, 5)) == (None, 4, 6)
    assert L.EinsumDense("...b,bc->...c", 5).compute_output_shape((None, 3, 4, 6)) == (None, 3, 4, 5)


def test_an_axis_only_the_input_has_is_summed_and_its_gradient_broadcast():
    """"abc,cd->ad": b is summed over in the forward pass; float64 finite differences for every gradient."""
    rng = np.random.default_rng(4)
    layer = L.EinsumDense("abc,cd->ad", 3, bias_axes="d", activation="tanh", dtype="float64")
    layer.build_from_shape((None, 4, 5))
    assert_layer_matches_finite_differences(layer, rng.standard_normal((2, 4, 5)))


def test_the_kernel_initializer_takes_its_fans_from_the_equation(keras):
    """Keras' VarianceScaling on an EinsumDense kernel (64, 8, 16): fans 64 and 8·16, not a convolution's 8·64 and
    16·64 — Glorot's uniform limit √(6 / 192), which 8,192 draws reach, as Keras' own kernel does."""
    ours = L.EinsumDense("abc,cde->abde", (None, 8, 16))
    ours.build_from_shape((None, 10, 64))
    theirs = keras.layers.EinsumDense("abc,cde->abde", (None, 8, 16))
    theirs.build((None, 10, 64))
    ours_max = np.abs(ours.kernel.value).max()
    theirs_max = np.abs(keras.ops.convert_to_numpy(theirs.kernel)).max()
    assert ours_max == pytest.approx(theirs_max, rel=0.02) and ours_max == pytest.approx(np.sqrt(6 / 192), rel=0.02)


@pytest.mark.parametrize("kwargs", [dict(equation="abc,cd->abd", output_shape=[None, 4], bias_axes="d"),
                                    dict(equation="...b,bc->...c", output_shape=3, activation="relu")])
def test_config_matches_keras_both_ways(keras, kwargs):
    ours, _ = assert_layer_config_matches_keras_both_ways(keras, "EinsumDense", kwargs)
    assert L.LAYER_CLASSES["EinsumDense"] is type(ours)


def _model(lib):
    """A token mixer: features split into heads and joined again (ViT's projections)."""
    E = lib.layers.EinsumDense
    return lib.Sequential([lib.Input((5, 8)), E("abc,cde->abde", (None, 2, 4), bias_axes="de", name="heads"),
                           E("abcd,cde->abe", (None, 6), bias_axes="e", activation="relu", name="joined"),
                           lib.layers.GlobalAveragePooling1D()])


def test_a_keras_model_loads_trains_a_step_and_saves_as_keras(keras, tmp_path):
    keras.utils.set_random_seed(5)
    theirs = _model(keras)
    theirs.save(tmp_path / "theirs.keras")
    ours = cs.models.load_model(tmp_path / "theirs.keras")
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((4, 5, 8)).astype("float32"), rng.standard_normal((4, 6)).astype("float32")
    assert_step_and_file_match_keras(keras, ours, theirs, x, y, "mse", tmp_path)


def test_analysis_explain_and_onnx(tmp_path):
    from convscope.models.analysis import analyze
    model = _model(cs)
    heads, joined = analyze(model).layers[:2]
    assert (heads.kind, heads.output_shape, heads.macs, heads.bias_adds) == ("einsum_dense", (None, 5, 2, 4),
                                                                            5 * 8 * 2 * 4, 5 * 2 * 4)
    assert joined.macs == 5 * 2 * 4 * 6 and joined.params == 2 * 4 * 6 + 6
    text = str(cs.explain(model))
    assert "EinsumDense computes abc,cde->abde of the input (None, 5, 8) and its kernel → (None, 5, 2, 4)" in text
    assert "MACs = the product of every axis' size but the batch's (b·c·d·e) = 5·8·2·4 = 320" in text
    assert "배치를 뺀 모든 축 크기의 곱" in str(cs.explain(model, lang="ko"))
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    rng = np.random.default_rng(2)
    for variable in model.weights:
        variable.assign(rng.standard_normal(variable.shape).astype("float32"))
    model.export(tmp_path / "einsum.onnx", format="onnx")
    session = ort.InferenceSession(str(tmp_path / "einsum.onnx"), providers=["CPUExecutionProvider"])
    x = rng.standard_normal((3, 5, 8)).astype("float32")
    np.testing.assert_allclose(session.run(None, {session.get_inputs()[0].name: x})[0], model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kwargs,error,pattern", [
    (dict(equation="ab->b", output_shape=3), ValueError, r"EinsumDense 'e': argument `equation` must be of the form "
                                                          r"'\[X\],\[Y\]->\[Z\]'"),
    (dict(equation="aab,bc->ac", output_shape=3), ValueError, r"must name each axis of an operand once"),
    (dict(equation="ab,bc->ac", output_shape=0), ValueError, r"argument `output_shape` must be an int or a tuple of "
                                                             r"positive ints or None, got 0"),
    (dict(equation="ab,bc->ac", output_shape=3, bias_axes=1), TypeError, r"argument `bias_axes` must be a string"),
    (dict(equation="ab,bc->ac", output_shape=3, lora_rank=2), ValueError, r"argument `lora_rank` is not supported"),
])
def test_constructor_arguments_are_checked_by_name(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        L.EinsumDense(name="e", **kwargs)


@pytest.mark.parametrize("equation,output_shape,bias_axes,shape,pattern", [
    ("ab,bc->ac", 3, "x", (None, 4), r"EinsumDense 'e': argument `bias_axes`='x' must name axes of the output spec"),
    ("abc,cd->abd", (7, 3), None, (None, 5, 4), r"the input and output shapes differ on their shared axis 'b': 5 "
                                                r"against 7"),
    ("ab,bc->ac", 3, None, (None, 4, 2), r"an input of shape \(None, 4, 2\) does not fit the equation"),
    ("ab,bc->acd", (3,), None, (None, 4), r"argument `output_shape`=\(3,\) does not fit the equation"),
    ("ab,bc->ac", 3, None, (None, None), r"the kernel's sizes must be known"),
])
def test_shapes_that_do_not_fit_are_refused_naming_the_layer(equation, output_shape, bias_axes, shape, pattern):
    with pytest.raises(ValueError, match=pattern):
        L.EinsumDense(equation, output_shape, bias_axes=bias_axes, name="e").compute_output_shape(shape)


@pytest.mark.parametrize("equation,output_shape,bias_axes,shape", [
    ("abc,bcd->abd", (None, 4), None, (None, 5, 3)),          # the kernel's b from the output: None
    ("abc,dc->abd", (None, 6), "bd", (None, 5, 3)),           # the bias' b: None
])
def test_weights_keras_cannot_size_are_refused_as_keras_refuses_them(keras, equation, output_shape, bias_axes,
                                                                     shape):
    """A kernel or bias axis on the output takes its size from `output_shape`, as in Keras, which cannot build
    them either (a file with them would not open in Keras)."""
    with pytest.raises(Exception):
        keras.layers.EinsumDense(equation, output_shape, bias_axes=bias_axes).build(shape)
    with pytest.raises(ValueError, match=r"EinsumDense 'e': the (kernel's|bias') sizes must be known"):
        L.EinsumDense(equation, output_shape, bias_axes=bias_axes, name="e").build_from_shape(shape)
