"""Regularizer penalties and gradients (finite differences, float64); constraints against torch.renorm."""

import numpy as np
import pytest

from convscope import constraints, regularizers

from _gradcheck import assert_gradients_close, numerical_gradient


@pytest.mark.parametrize("regularizer", [regularizers.L1(0.03), regularizers.L2(0.02),
                                         regularizers.L1L2(l1=0.01, l2=0.05), regularizers.l1_l2(0.0, 0.3)])
def test_gradient_matches_finite_differences(regularizer):
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 3, 2, 4))
    w[np.abs(w) < 1e-3] = 0.5            # keep away from L1's kink
    assert_gradients_close(regularizer.gradient(w), numerical_gradient(lambda: regularizer(w), w),
                           rtol=1e-6, atol=1e-9)


def test_penalties_are_keras_formulas():
    w = np.array([[1.0, -2.0], [0.5, 0.0]])
    assert regularizers.L1(0.1)(w) == pytest.approx(0.1 * 3.5)
    assert regularizers.L2(0.1)(w) == pytest.approx(0.1 * 5.25)     # no 1/2, as Keras
    assert regularizers.L1L2(l1=0.1, l2=0.1)(w) == pytest.approx(0.35 + 0.525)
    assert regularizers.L2().l2 == 0.01 and regularizers.L1().l1 == 0.01
    assert regularizers.L1L2().get_config() == {"l1": 0.0, "l2": 0.0}
    assert regularizers.L2(0.1).gradient(w.astype("float32")).dtype == np.float32


def test_regularizer_get_and_serialize():
    assert isinstance(regularizers.get("l2"), regularizers.L2)
    assert regularizers.get(None) is None
    again = regularizers.get(regularizers.serialize(regularizers.L1L2(l1=0.2, l2=0.3)))
    assert isinstance(again, regularizers.L1L2) and again.get_config() == {"l1": 0.2, "l2": 0.3}
    with pytest.raises(ValueError, match="unknown regularizer 'l3'"):
        regularizers.get("l3")
    with pytest.raises(ValueError, match=r"L2: argument `l2` must be a non-negative number, got -0.1"):
        regularizers.L2(-0.1)
    with pytest.raises(TypeError, match=r"L1: argument `l1` must be a non-negative number, got '0.1'"):
        regularizers.L1("0.1")


def test_max_norm_matches_torch_renorm_per_conv_filter():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    kernel = rng.normal(size=(3, 3, 2, 5)).astype("float32")        # (rows, cols, in, out)
    kernel[..., 0] *= 0.05                                           # one filter already within the norm
    ours = constraints.MaxNorm(max_value=1.5, axis=[0, 1, 2])(kernel)
    theirs = torch.renorm(torch.tensor(kernel), p=2, dim=3, maxnorm=1.5).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-7)
    assert ours.dtype == np.float32
    norms = np.sqrt((ours.astype(np.float64) ** 2).sum(axis=(0, 1, 2)))
    assert np.all(norms <= 1.5 + 1e-5)


def test_dense_default_axis_and_other_constraints():
    w = np.array([[3.0, 0.1], [4.0, -0.2]])                # columns have norms 5 and ~0.224
    np.testing.assert_allclose(constraints.MaxNorm(2.0)(w), [[1.2, 0.1], [1.6, -0.2]], rtol=1e-6)
    np.testing.assert_allclose(constraints.UnitNorm()(w)[:, 0], [0.6, 0.8], rtol=1e-6)
    np.testing.assert_allclose(constraints.NonNeg()(w), [[3.0, 0.1], [4.0, 0.0]])
    clipped = constraints.MinMaxNorm(min_value=1.0, max_value=2.0)(w)
    np.testing.assert_allclose(np.linalg.norm(clipped, axis=0), [2.0, 1.0], rtol=1e-5)
    half = constraints.MinMaxNorm(min_value=0.0, max_value=1.0, rate=0.5)(w)
    np.testing.assert_allclose(np.linalg.norm(half[:, 0]), 3.0, rtol=1e-6)   # halfway from 5 to 1


def test_constraint_get_and_serialize():
    assert isinstance(constraints.get("non_neg"), constraints.NonNeg)
    assert isinstance(constraints.get("MaxNorm"), constraints.MaxNorm)
    again = constraints.get(constraints.serialize(constraints.max_norm(3, axis=[0, 1, 2])))
    assert again.get_config() == {"max_value": 3.0, "axis": [0, 1, 2]}
    with pytest.raises(ValueError, match="unknown constraint 'positive'"):
        constraints.get("positive")
    with pytest.raises(ValueError, match=r"MinMaxNorm: argument `max_value` \(0.5\) must be >= `min_value` \(1.0\)"):
        constraints.MinMaxNorm(min_value=1.0, max_value=0.5)
    with pytest.raises(TypeError, match=r"UnitNorm: argument `axis` must be an int or a list of ints, got 'rows'"):
        constraints.UnitNorm(axis="rows")
