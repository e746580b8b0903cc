"""`RMSNormalization` (Keras 3's) against Keras 3.15.1 on torch's autograd, float64 torch and finite differences,
configs and `.keras` files both ways, its analysis and explanation, and the checks of its arguments."""

import numpy as np
import pytest

import convscope as cs
from convscope import layers as L
from _calls import backward, forward
from _gradcheck import assert_layer_matches_finite_differences
from _oracle import (assert_layer_config_matches_keras_both_ways, assert_layer_matches_keras_through_autograd,
                     assert_step_and_file_match_keras)


@pytest.mark.parametrize("axis,shape,epsilon", [
    (-1, (4, 7), 1e-6), (-1, (2, 5, 6, 3), 1e-3), ([2, 3], (2, 5, 6, 3), 1e-6), ([-2, -1], (3, 4, 5), 0.5),
    ((3, 2), (2, 3, 4, 5), 1e-6),
])
def test_forward_and_gradients_match_keras_through_autograd(keras, axis, shape, epsilon):
    ours, theirs = L.RMSNormalization(axis=axis, epsilon=epsilon), keras.layers.RMSNormalization(axis, epsilon)
    assert_layer_matches_keras_through_autograd(ours, theirs, shape, np.random.default_rng(len(shape)), str(axis))
    assert ours.axis == sorted(ours.axis) and ours.scale.shape == tuple(theirs.scale.shape)


def test_an_inner_axis_is_normalized_and_scaled_there():
    """axis=1 of (batch, 4, 5): float64 torch written out here.  Keras 3.15.1 on torch normalizes the last axis
    whatever `axis` says (and fails here: 4 against 5); convscope normalizes and scales axis 1."""
    import torch
    rng = np.random.default_rng(7)
    x, scale, grad = rng.standard_normal((3, 4, 5)), rng.standard_normal(4), rng.standard_normal((3, 4, 5))
    layer = L.RMSNormalization(axis=1, epsilon=1e-3, dtype="float64")
    layer.build_from_shape((None, 4, 5))
    layer.scale.assign(scale)
    out, ctx = forward(layer, x, training=True)
    grad_x, grads = backward(layer, ctx, grad)
    tx, ts = torch.tensor(x, requires_grad=True), torch.tensor(scale, requires_grad=True)
    ty = tx / torch.sqrt(torch.mean(tx * tx, dim=1, keepdim=True) + 1e-3) * ts[None, :, None]
    ty.backward(torch.tensor(grad))
    np.testing.assert_allclose(out, ty.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(grad_x, tx.grad.numpy(), rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(grads[layer.scale.name], ts.grad.numpy(), rtol=1e-11)


def test_gradients_against_float64_finite_differences():
    rng = np.random.default_rng(3)
    layer = L.RMSNormalization(axis=[1, 2], epsilon=1e-4, dtype="float64")
    layer.build_from_shape((None, 3, 4, 2))
    layer.scale.assign(rng.standard_normal((3, 4)))
    assert_layer_matches_finite_differences(layer, rng.standard_normal((2, 3, 4, 2)))


@pytest.mark.parametrize("kwargs", [{}, dict(axis=[1, 2], epsilon=1e-3), dict(axis=-2)])
def test_config_matches_keras_both_ways(keras, kwargs):
    ours, _ = assert_layer_config_matches_keras_both_ways(keras, "RMSNormalization", kwargs)
    assert L.LAYER_CLASSES["RMSNormalization"] is type(ours)


def test_a_keras_model_loads_trains_a_step_and_saves_as_keras(keras, tmp_path):
    keras.utils.set_random_seed(2)
    theirs = keras.Sequential([keras.Input((6, 6, 3)), keras.layers.Conv2D(4, 3), keras.layers.RMSNormalization(),
                               keras.layers.Flatten(), keras.layers.Dense(2)])
    rng = np.random.default_rng(1)
    theirs.layers[1].set_weights([rng.uniform(0.5, 1.5, 4).astype("float32")])
    theirs.save(tmp_path / "theirs.keras")
    ours = cs.models.load_model(tmp_path / "theirs.keras")
    assert type(ours.layers[1]) is L.RMSNormalization and ours.layers[1].axis == [-1]
    x, y = rng.standard_normal((5, 6, 6, 3)).astype("float32"), rng.standard_normal((5, 2)).astype("float32")
    assert_step_and_file_match_keras(keras, ours, theirs, x, y, "mse", tmp_path)


def test_epsilon_none_is_keras_epsilon_and_round_trips(keras, tmp_path):
    """Keras takes epsilon=None as `backend.epsilon()` (1e-7) and keeps None in its config."""
    keras.utils.set_random_seed(3)
    theirs = keras.Sequential([keras.Input((4,)), keras.layers.RMSNormalization(epsilon=None)])
    theirs.save(tmp_path / "none.keras")
    ours = cs.models.load_model(tmp_path / "none.keras")
    assert ours.layers[0].epsilon is None and ours.layers[0].get_config()["epsilon"] is None
    x = np.array([[1e-4, -2e-4, 3e-4, 0.0], [1.0, 2.0, 3.0, 4.0]], np.float32)       # tiny: the epsilon shows
    np.testing.assert_allclose(ours.predict(x, verbose=0), keras.ops.convert_to_numpy(theirs(x)), rtol=1e-5)
    ours.save(tmp_path / "again.keras")
    back = keras.saving.load_model(tmp_path / "again.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(back(x)), ours.predict(x, verbose=0), rtol=1e-5)


def test_analysis_and_explain_count_its_work():
    from convscope.models.analysis import analyze
    model = cs.Sequential([cs.Input((5, 4)), L.RMSNormalization(name="rms")])
    row = analyze(model).layers[0]
    assert (row.kind, row.params, row.in_channels, row.norm_ops, row.dims) == ("rms_norm", 4, 4, 4 * 20, (2,))
    english = str(cs.explain(model))
    assert "4: scale, one per position of the normalized axes [2]" in english
    assert "80 normalization FLOPs (4 per element: square, mean, multiply by 1 / RMS, by scale)" in english
    assert "y = x / √(mean(x²) + ε) · scale" in english
    assert "정규화 80 FLOPs (원소마다 4회" in str(cs.explain(model, lang="ko"))


@pytest.mark.parametrize("kwargs,error,pattern", [
    (dict(axis="1"), TypeError, r"RMSNormalization '.*': argument `axis` must be an int or a list/tuple of ints, "
                                r"got '1'"),
    (dict(axis=[]), TypeError, r"argument `axis` must be an int or a list/tuple of ints, got \[\]"),
    (dict(epsilon=-1.0), ValueError, r"RMSNormalization '.*': argument `epsilon` must be a finite number in "
                                     r"\[0.0, inf\], got -1.0"),
    (dict(epsilon="small"), TypeError, r"argument `epsilon` must be a number, got 'small'"),
])
def test_constructor_arguments_are_checked_by_name(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        L.RMSNormalization(**kwargs)


@pytest.mark.parametrize("axis,shape,pattern", [
    (0, (None, 4), r"RMSNormalization 'r': argument `axis`=0 must name feature axes of known size \(not the batch "
                   r"axis\), got an input of shape \(None, 4\)"),
    (-1, (None, None), r"must name feature axes of known size .*\(None, None\)"),
    (3, (None, 4), r"RMSNormalization 'r': argument `axis`=3 is out of range for an input of rank 2"),
])
def test_inputs_it_cannot_normalize_are_refused_by_name(axis, shape, pattern):
    with pytest.raises(ValueError, match=pattern):
        L.RMSNormalization(axis=axis, name="r").compute_output_shape(shape)


def test_a_built_layer_refuses_other_sizes_by_name():
    layer = L.RMSNormalization(name="r")
    layer(np.ones((2, 4), np.float32))
    with pytest.raises(ValueError, match=r"RMSNormalization 'r': .*expected sizes \(4,\) on axes \[-1\] .*\(None, 5\)"):
        layer(np.ones((2, 5), np.float32))
