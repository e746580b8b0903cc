"""The further Keras metrics: crossentropies, KL divergence, Poisson, hinges, MAPE, MSLE, log-cosh, cosine
similarity, IoU and its binary/one-hot forms, F1/F-beta scores, the confusion counts and R².

Oracle: Keras 3.15.1 on the torch backend — two batches (the second with sample weights) through the same
metric, the running result after each; the configs both ways; `compile(metrics=[...])` by name.
"""

import numpy as np
import pytest

import convscope as cs

rng = np.random.default_rng(41)
PROBS = rng.dirichlet(np.ones(4), size=(2, 6)).astype("float32")
ONE_HOT = np.eye(4, dtype="float32")[rng.integers(0, 4, (2, 6))]
LABELS = rng.integers(0, 4, (2, 6))
BINARY = rng.integers(0, 2, (2, 6, 3)).astype("float32")
SCORES = rng.uniform(0.01, 0.99, (2, 6, 3)).astype("float32")
ROUNDED = np.round(SCORES * 4) / 4                                       # some exactly at the threshold 0.5
SIGNED = rng.normal(size=(2, 6, 3)).astype("float32")
POSITIVE = rng.uniform(0.1, 3.0, (2, 6, 3)).astype("float32")
SEG_LABELS = rng.integers(0, 3, (2, 2, 4, 4))
SEG_PROBS = rng.dirichlet(np.ones(3), size=(2, 2, 4, 4)).astype("float32")
WEIGHTS = rng.uniform(0.2, 2.0, 6).astype("float32")

CASES = [  # (class name, keyword arguments, batches of y_true, batches of y_pred)
    ("BinaryCrossentropy", {}, BINARY, SCORES), ("BinaryCrossentropy", {"from_logits": True}, BINARY, SIGNED),
    ("BinaryCrossentropy", {"label_smoothing": 0.2}, BINARY, SCORES),
    ("CategoricalCrossentropy", {}, ONE_HOT, PROBS),
    ("CategoricalCrossentropy", {"from_logits": True, "label_smoothing": 0.1}, ONE_HOT, PROBS * 3),
    ("SparseCategoricalCrossentropy", {}, LABELS, PROBS),
    ("SparseCategoricalCrossentropy", {"ignore_class": 2}, LABELS, PROBS),
    ("SparseCategoricalCrossentropy", {"from_logits": True, "ignore_class": 0}, SEG_LABELS, SEG_PROBS),
    ("KLDivergence", {}, PROBS[::-1].copy(), PROBS), ("Poisson", {}, POSITIVE, POSITIVE[::-1].copy()),
    ("Hinge", {}, BINARY, SIGNED), ("SquaredHinge", {}, BINARY, SIGNED), ("CategoricalHinge", {}, ONE_HOT, PROBS),
    ("MeanAbsolutePercentageError", {}, POSITIVE, SIGNED),
    ("MeanSquaredLogarithmicError", {}, POSITIVE, SIGNED), ("LogCoshError", {}, SIGNED, POSITIVE),
    ("CosineSimilarity", {}, SIGNED, POSITIVE), ("CosineSimilarity", {"axis": 1}, SIGNED, POSITIVE),
    ("IoU", {"num_classes": 3, "target_class_ids": [0, 2]}, SEG_LABELS, SEG_LABELS[::-1].copy()),
    ("IoU", {"num_classes": 3, "target_class_ids": [1], "sparse_y_pred": False}, SEG_LABELS, SEG_PROBS),
    ("MeanIoU", {"num_classes": 3, "ignore_class": 1}, SEG_LABELS, SEG_LABELS[::-1].copy()),
    ("BinaryIoU", {}, BINARY, SCORES), ("BinaryIoU", {}, BINARY, ROUNDED),
    ("BinaryIoU", {"target_class_ids": [1], "threshold": 0.3}, BINARY, SCORES),
    ("OneHotIoU", {"num_classes": 4, "target_class_ids": [0, 3]}, ONE_HOT, PROBS),
    ("OneHotMeanIoU", {"num_classes": 4}, ONE_HOT, PROBS),
    ("F1Score", {}, ONE_HOT, PROBS), ("F1Score", {"average": "macro", "threshold": 0.3}, ONE_HOT, PROBS),
    ("F1Score", {"average": "micro"}, ONE_HOT, PROBS), ("FBetaScore", {"average": "weighted", "beta": 2.0},
                                                        ONE_HOT, PROBS),
    ("TruePositives", {}, BINARY, SCORES), ("FalsePositives", {"thresholds": [0.2, 0.7]}, BINARY, SCORES),
    ("TrueNegatives", {}, BINARY, SCORES), ("FalseNegatives", {"thresholds": 0.4}, BINARY, SCORES),
    ("R2Score", {}, SIGNED[:, :, :2], POSITIVE[:, :, :2]),
    ("R2Score", {"class_aggregation": None}, SIGNED[:, :, :2], POSITIVE[:, :, :2]),
    ("R2Score", {"class_aggregation": "variance_weighted_average", "num_regressors": 2}, SIGNED, SIGNED * 0.8),
]


def keras_value(value):
    return np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value, dtype=np.float64)


def assert_same_logs(ours_logs, keras_logs):
    """`evaluate(return_dict=True)`'s entries: the same names, the same values (a metric's array too)."""
    assert set(ours_logs) == set(keras_logs)
    for key in keras_logs:
        np.testing.assert_allclose(np.asarray(ours_logs[key], dtype=np.float64), keras_value(keras_logs[key]),
                                   rtol=1e-5, atol=1e-6, err_msg=key)


@pytest.mark.parametrize("name,kwargs,y_true,y_pred", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_running_results_and_configs_equal_keras(keras, name, kwargs, y_true, y_pred):
    ours, theirs = getattr(cs.metrics, name)(**kwargs), getattr(keras.metrics, name)(**kwargs)
    weights = WEIGHTS if y_true[1].ndim < 3 else rng.uniform(0.2, 2.0, y_true[1].shape)   # per pixel
    if "IoU" in name:                           # one per class id, integers (the counts are int32, as Keras')
        weights = rng.integers(0, 3, y_true[1].shape[:-1] if "OneHot" in name else y_true[1].shape)
    for batch, weight in ((0, None), (1, weights)):
        ours.update_state(y_true[batch], y_pred[batch], sample_weight=weight)
        theirs.update_state(y_true[batch], y_pred[batch], sample_weight=weight)
        np.testing.assert_allclose(np.asarray(ours.result(), dtype=np.float64), keras_value(theirs.result()),
                                   rtol=2e-5, atol=1e-6, err_msg=f"after batch {batch}")
    ours.reset_state()
    theirs.reset_state()
    ours.update_state(y_true[1], y_pred[1])
    theirs.update_state(y_true[1], y_pred[1])
    np.testing.assert_allclose(np.asarray(ours.result(), dtype=np.float64), keras_value(theirs.result()),
                               rtol=2e-5, atol=1e-6, err_msg="after reset_state")
    keras_config = theirs.get_config()
    assert ours.get_config() == {**keras_config, "name": ours.name}
    rebuilt = cs.metrics.deserialize({"class_name": name, "config": keras_config})
    assert type(rebuilt) is type(ours) and rebuilt.get_config() == keras_config


@pytest.mark.parametrize("metric", ["mape", "MAPE", "msle", "MSLE", "bce", "MAE", "MSE", "kl_divergence", "poisson",
                                    "hinge",
                                    "f1_score", "log_cosh_error",
                                    "binary_crossentropy", "cosine_similarity", "r2_score"])
def test_compile_takes_the_names(keras, metric):
    def build(module):
        model = module.Sequential([module.Input((3,)), module.layers.Dense(2, activation="sigmoid")])
        model.compile(optimizer="sgd", loss="mse", metrics=[metric])
        return model
    ours, theirs = build(cs), build(keras)
    ours.set_weights(theirs.get_weights())
    x, y = rng.normal(size=(8, 3)).astype("float32"), rng.uniform(0.1, 1.0, (8, 2)).astype("float32")
    y = np.eye(2, dtype="float32")[rng.integers(0, 2, 8)] if metric == "f1_score" else y
    ours_logs = ours.evaluate(x, y, verbose=0, return_dict=True)
    keras_logs = theirs.evaluate(x, y, verbose=0, return_dict=True)
    assert_same_logs(ours_logs, keras_logs)


def test_arguments_are_checked_by_name():
    with pytest.raises(ValueError, match="IoU: argument `target_class_ids` must be a non-empty list of class ids "
                                         "in \\[0, 3\\), got \\[3\\]"):
        cs.metrics.IoU(3, [3])
    with pytest.raises(ValueError, match="F1Score: argument `average` must be one of"):
        cs.metrics.F1Score(average="mean")
    with pytest.raises(ValueError, match="R2Score: argument `class_aggregation` must be one of"):
        cs.metrics.R2Score(class_aggregation="sum")
    with pytest.raises(ValueError, match="FBetaScore.update_state: expected 2-D targets and scores"):
        cs.metrics.FBetaScore().update_state(np.zeros(4), np.zeros(4))
    with pytest.raises(TypeError, match="BinaryCrossentropy: argument `from_logits` must be True or False"):
        cs.metrics.BinaryCrossentropy(from_logits="yes")


def test_a_keras_file_keeps_its_metric_objects(keras, tmp_path):
    """Metric objects in a file's compile settings come back with their arguments (MeanIoU's classes,
    Precision's thresholds and class), not only their names."""
    def build(module, metrics):
        model = module.Sequential([module.Input((3,)), module.layers.Dense(3, activation="sigmoid")])
        model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=metrics)
        return model
    m = keras.metrics
    theirs = build(keras, [m.Precision(thresholds=[0.3, 0.6], class_id=1), m.F1Score(average="macro", threshold=0.5),
                           m.BinaryIoU(target_class_ids=[1]), m.TruePositives(thresholds=0.4),
                           m.OneHotMeanIoU(num_classes=3)])
    x, y = rng.normal(size=(10, 3)).astype("float32"), rng.integers(0, 2, (10, 3)).astype("float32")
    theirs.save(tmp_path / "metrics.keras")
    ours = cs.models.load_model(tmp_path / "metrics.keras")
    ours_logs = ours.evaluate(x, y, verbose=0, return_dict=True)
    keras_logs = theirs.evaluate(x, y, verbose=0, return_dict=True)
    assert_same_logs(ours_logs, keras_logs)


@pytest.mark.parametrize("name", ["MeanAbsolutePercentageError", "MeanSquaredLogarithmicError", "LogCoshError",
                                  "CosineSimilarity"])
def test_targets_of_one_rank_less_are_matched_as_keras(keras, name):
    """(N,) targets for (N, 1) predictions: Keras gives the targets the axis (no (N, N) broadcast)."""
    ours, theirs = getattr(cs.metrics, name)(), getattr(keras.metrics, name)()
    y, p = np.array([1.0, 2.0, 3.0], "float32"), np.array([[1.5], [2.0], [2.0]], "float32")
    ours.update_state(y, p)
    theirs.update_state(y, p)
    np.testing.assert_allclose(ours.result(), keras_value(theirs.result()), rtol=1e-5)
