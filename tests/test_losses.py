"""Losses: values against PyTorch and hand formulas, gradients against finite differences (float64)."""

import numpy as np
import pytest

from convscope import losses, metrics
from convscope.ops import losses as ops_losses

from _gradcheck import assert_gradients_close, numerical_gradient


def _probabilities(rng, shape):
    z = rng.normal(size=shape)
    return np.exp(z) / np.exp(z).sum(-1, keepdims=True)


def _one_hot(rng, n, classes):
    return np.eye(classes)[rng.integers(0, classes, n)]


def _case(name, rng):
    """(loss object, y_true, y_pred) in float64 for each loss and mode."""
    n, c = 5, 4
    labels = rng.integers(0, c, n)
    logits = rng.normal(size=(n, c))
    cases = {
        "cce": (losses.CategoricalCrossentropy(), _one_hot(rng, n, c), _probabilities(rng, (n, c)) * 1.3),
        "cce_logits": (losses.CategoricalCrossentropy(from_logits=True), _one_hot(rng, n, c), logits),
        "cce_smooth": (losses.CategoricalCrossentropy(label_smoothing=0.2), _one_hot(rng, n, c),
                       _probabilities(rng, (n, c))),
        "scce": (losses.SparseCategoricalCrossentropy(), labels, _probabilities(rng, (n, c))),
        "scce_logits": (losses.SparseCategoricalCrossentropy(from_logits=True), labels, logits),
        "bce": (losses.BinaryCrossentropy(), rng.integers(0, 2, (n, 3)).astype(float),
                rng.uniform(0.05, 0.95, (n, 3))),
        "bce_logits": (losses.BinaryCrossentropy(from_logits=True), rng.uniform(0, 1, (n, 3)), rng.normal(size=(n, 3))),
        "mse": (losses.MeanSquaredError(), rng.normal(size=(n, 3)), rng.normal(size=(n, 3))),
        "mae": (losses.MeanAbsoluteError(), rng.normal(size=(n, 3)), rng.normal(size=(n, 3))),
        "huber": (losses.Huber(delta=0.7), rng.normal(size=(n, 3)), rng.normal(size=(n, 3)) * 2),
        "mse_sum": (losses.MeanSquaredError(reduction="sum"), rng.normal(size=(n, 2, 3)), rng.normal(size=(n, 2, 3))),
    }
    return cases[name]


@pytest.mark.parametrize("name", ["cce", "cce_logits", "cce_smooth", "scce", "scce_logits", "bce", "bce_logits",
                                  "mse", "mae", "huber", "mse_sum"])
def test_gradient_matches_finite_differences(name):
    loss, y_true, y_pred = _case(name, np.random.default_rng(1))
    analytic = loss.gradient(y_true, y_pred)
    assert analytic.dtype == np.float64 and analytic.shape == y_pred.shape
    numeric = numerical_gradient(lambda: loss(y_true, y_pred), y_pred)
    assert_gradients_close(analytic, numeric, rtol=1e-5, atol=1e-8)


def test_float32_in_float32_out():
    loss, y_true, y_pred = _case("cce", np.random.default_rng(2))
    assert loss.gradient(y_true, y_pred.astype("float32")).dtype == np.float32
    assert ops_losses.mean_squared_error(np.zeros((2, 3), "float32"), np.ones((2, 3), "float32")).dtype == np.float32


def test_crossentropy_values_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(6, 5)).astype("float32")
    labels = rng.integers(0, 5, 6)
    expected = torch.nn.functional.cross_entropy(torch.tensor(logits), torch.tensor(labels)).item()
    probs = ops_losses.softmax(logits)
    assert losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits) == pytest.approx(expected, rel=1e-6)
    assert losses.SparseCategoricalCrossentropy()(labels, probs) == pytest.approx(expected, rel=1e-5)
    assert losses.CategoricalCrossentropy()(np.eye(5)[labels], probs) == pytest.approx(expected, rel=1e-5)
    targets = rng.uniform(size=(6, 5)).astype("float32")
    expected_bce = torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor(logits),
                                                                        torch.tensor(targets)).item()
    assert losses.BinaryCrossentropy(from_logits=True)(targets, logits) == pytest.approx(expected_bce, rel=1e-6)
    sig = 1 / (1 + np.exp(-logits))
    assert losses.BinaryCrossentropy()(targets, sig) == pytest.approx(expected_bce, rel=1e-5)


def test_regression_values_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(2, 7, 3)) * 2
    ta, tb = torch.tensor(a), torch.tensor(b)
    assert losses.MeanSquaredError()(a, b) == pytest.approx(torch.nn.functional.mse_loss(tb, ta).item(), rel=1e-12)
    assert losses.MeanAbsoluteError()(a, b) == pytest.approx(torch.nn.functional.l1_loss(tb, ta).item(), rel=1e-12)
    assert losses.Huber(delta=1.5)(a, b) == pytest.approx(
        torch.nn.functional.huber_loss(tb, ta, delta=1.5).item(), rel=1e-12)


def test_probabilities_are_renormalized_and_clipped_as_keras():
    # Keras rescales the row to sum 1, then clips to [1e-7, 1 - 1e-7].
    y_true = np.array([[0.0, 1.0, 0.0]])
    y_pred = np.array([[2.0, 2.0, 4.0]])          # rescaled: 0.25, 0.25, 0.5
    assert losses.CategoricalCrossentropy()(y_true, y_pred) == pytest.approx(-np.log(0.25))
    zero = np.array([[1.0, 0.0, 0.0]])
    assert losses.CategoricalCrossentropy()(y_true, zero) == pytest.approx(-np.log(1e-7), rel=1e-6)
    assert losses.BinaryCrossentropy()(np.array([[1.0]]), np.array([[0.0]])) == pytest.approx(-np.log(1e-7), rel=1e-6)
    per_sample = losses.categorical_crossentropy(np.eye(3), np.full((3, 3), 1 / 3))
    np.testing.assert_allclose(per_sample, np.log(3) * np.ones(3))


def test_label_smoothing_and_reductions():
    y_true, y_pred = np.array([[0.0, 1.0]]), np.array([[0.3, 0.7]])
    smoothed = np.array([[0.05, 0.95]])
    assert losses.CategoricalCrossentropy(label_smoothing=0.1)(y_true, y_pred) == pytest.approx(
        -(smoothed * np.log(y_pred)).sum())
    values = losses.MeanSquaredError(reduction="none")(np.zeros((3, 2)), np.arange(6.0).reshape(3, 2))
    np.testing.assert_allclose(values, [0.5, 6.5, 20.5])
    assert losses.MeanSquaredError(reduction="sum")(np.zeros((3, 2)), np.arange(6.0).reshape(3, 2)) == 27.5


def test_get_serialize_and_aliases():
    assert losses.get("mse") is losses.mean_squared_error
    assert losses.get("MAE") is losses.mean_absolute_error
    assert isinstance(losses.get("CategoricalCrossentropy"), losses.CategoricalCrossentropy)
    loss = losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.1)
    again = losses.get(losses.serialize(loss))
    assert isinstance(again, losses.BinaryCrossentropy) and again.get_config() == loss.get_config()
    assert isinstance(losses.as_loss_object("huber"), losses.Huber)
    with pytest.raises(ValueError, match="unknown loss 'nope'"):
        losses.get("nope")
    assert isinstance(losses.as_loss_object(lambda a, b: a - b), losses.FunctionLoss)    # differentiated on a tape
    with pytest.raises(ValueError, match=r"argument `loss` is required"):
        losses.as_loss_object(None)


def test_argument_and_label_errors():
    with pytest.raises(ValueError, match=r"Huber: argument `delta` must be a positive number, got -1"):
        losses.Huber(delta=-1)
    with pytest.raises(ValueError, match=r"argument `label_smoothing` must be in \[0, 1\], got 2"):
        losses.CategoricalCrossentropy(label_smoothing=2)
    with pytest.raises(ValueError, match=r"argument `reduction` must be one of"):
        losses.MeanSquaredError(reduction="mean")
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\) for an output with 3 units, got label 5"):
        losses.SparseCategoricalCrossentropy()(np.array([0, 5]), np.full((2, 3), 1 / 3))
    with pytest.raises(ValueError, match=r"same shape, got y_true \(2, 2\) and y_pred \(2, 3\)"):
        losses.CategoricalCrossentropy()(np.eye(2), np.full((2, 3), 1 / 3))


def test_accuracy_resolves_from_shapes_as_keras():
    probs = np.array([[0.1, 0.9], [0.8, 0.2], [0.6, 0.4]])
    sparse = metrics.resolve("accuracy", (3,), (None, 2))
    sparse.update_state(np.array([1, 0, 1]), probs)
    assert sparse.result() == pytest.approx(2 / 3)
    assert metrics.resolve("accuracy", (3, 1), (None, 2)).fn is metrics.sparse_categorical_accuracy
    assert metrics.resolve("accuracy", (3, 2), (None, 2)).fn is metrics.categorical_accuracy
    binary = metrics.resolve("acc", (3, 1), (None, 1))
    binary.update_state(np.array([[1], [0], [1]]), np.array([[0.7], [0.4], [0.2]]))
    assert binary.fn is metrics.binary_accuracy and binary.name == "acc"
    assert binary.result() == pytest.approx(2 / 3)
    np.testing.assert_array_equal(metrics.top_k_categorical_accuracy(np.eye(3), np.array(
        [[0.5, 0.3, 0.2], [0.5, 0.3, 0.2], [0.5, 0.3, 0.2]]), k=2), [1, 1, 0])
    with pytest.raises(ValueError, match="unknown metric 'f1'"):
        metrics.get("f1")
