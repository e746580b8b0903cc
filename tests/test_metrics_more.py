"""Metric objects against Keras 3.15.1: running values over several batches (with sample weights),
reset, configs; in compile/fit/evaluate (History keys and values) for Sequential and Functional
models; per-pixel sigmoid/softmax outputs evaluated with a fused crossentropy; argument errors."""

import json

import numpy as np
import pytest

from convscope import metrics
from convscope.layers import Conv2D, Dense, Input
from convscope.models import Model, Sequential
from convscope import losses, optimizers

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore:You are passing weight as `float`:UserWarning")]


# -- data ------------------------------------------------------------------------------------------
def _binary(rng, step):
    y_true = (rng.random((16, 1)) > 0.5).astype("float32")
    return y_true, rng.random((16, 1)).astype("float32"), rng.random(16).astype("float32") if step == 1 else None


def _binary_flat(rng, step):
    """(N,) targets against (N, 1) predictions: Keras adds the axis."""
    y_true, y_pred, weight = _binary(rng, step)
    return y_true[:, 0], y_pred, weight


def _pixels(rng, step):
    y_true = (rng.random((4, 6, 6, 1)) > 0.5).astype("float32")
    weight = rng.random((4, 6, 6)).astype("float32") if step == 1 else None
    return y_true, rng.random((4, 6, 6, 1)).astype("float32"), weight


def _one_hot(rng, step):
    y_true = np.eye(5, dtype="float32")[rng.integers(0, 5, 16)]
    return y_true, rng.random((16, 5)).astype("float32"), rng.random(16).astype("float32") if step == 1 else None


def _sparse(rng, step):
    weight = rng.random(16).astype("float32") if step == 1 else None
    return rng.integers(0, 5, 16), rng.random((16, 5)).astype("float32"), weight


def _ids(rng, step):
    weight = rng.integers(0, 3, (4, 8)) if step == 1 else None
    return rng.integers(0, 5, (4, 8)), rng.integers(0, 5, (4, 8)), weight


# (id, class name, constructor arguments, data): the same arguments go to Keras' class
CASES = [
    ("binary_accuracy", "BinaryAccuracy", {}, _binary),
    ("binary_accuracy_pixels", "BinaryAccuracy", {"threshold": 0.3}, _pixels),
    ("categorical_accuracy", "CategoricalAccuracy", {}, _one_hot),
    ("sparse_categorical_accuracy", "SparseCategoricalAccuracy", {}, _sparse),
    ("top_k", "TopKCategoricalAccuracy", {"k": 2}, _one_hot),
    ("sparse_top_k", "SparseTopKCategoricalAccuracy", {"k": 3}, _sparse),
    ("precision", "Precision", {}, _binary),
    ("precision_flat_targets", "Precision", {}, _binary_flat),
    ("precision_uneven_thresholds", "Precision", {"thresholds": [0.2, 0.5, 0.7]}, _binary),
    ("precision_even_thresholds", "Precision", {"thresholds": [0.0, 0.5, 1.0]}, _binary),
    ("precision_top_k", "Precision", {"top_k": 2}, _one_hot),
    ("precision_pixels", "Precision", {"thresholds": 0.4}, _pixels),
    ("recall", "Recall", {}, _binary),
    ("recall_class_id", "Recall", {"class_id": 2}, _one_hot),
    ("recall_top_k_class_id", "Recall", {"top_k": 2, "class_id": 1}, _one_hot),
    ("auc", "AUC", {}, _binary),
    ("auc_pixels", "AUC", {}, _pixels),
    ("auc_pr", "AUC", {"curve": "PR"}, _binary),
    ("auc_pr_minoring", "AUC", {"curve": "PR", "summation_method": "minoring"}, _binary),
    ("auc_majoring", "AUC", {"summation_method": "majoring"}, _binary),
    ("auc_7_thresholds", "AUC", {"num_thresholds": 7}, _binary),
    ("auc_given_thresholds", "AUC", {"thresholds": [0.1, 0.35, 0.8]}, _binary),
    ("auc_multi_label", "AUC", {"multi_label": True}, _one_hot),
    ("auc_multi_label_weights", "AUC", {"multi_label": True, "num_labels": 5,
                                        "label_weights": [1.0, 2.0, 0.0, 1.0, 1.0]}, _one_hot),
    ("auc_label_weights", "AUC", {"label_weights": [1.0, 2.0, 0.0, 1.0, 1.0]}, _one_hot),
    ("auc_multi_label_pr_thresholds", "AUC", {"multi_label": True, "curve": "PR",
                                              "thresholds": [0.2, 0.3, 0.9]}, _one_hot),
    ("auc_from_logits_prgain", "AUC", {"from_logits": True, "curve": "PRGAIN"}, _binary),
    ("mean_iou", "MeanIoU", {"num_classes": 5}, _ids),
    ("mean_iou_scores", "MeanIoU", {"num_classes": 5, "sparse_y_pred": False}, _sparse),
    ("mean_iou_one_hot_ignore", "MeanIoU", {"num_classes": 5, "sparse_y_true": False, "sparse_y_pred": False,
                                            "ignore_class": 0}, _one_hot),
]


def _same(ours, theirs, what):
    np.testing.assert_allclose(np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64),
                               rtol=1e-5, atol=1e-6, err_msg=what)


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_metric_objects_match_keras(keras, case):
    """Three batches (the second weighted), reset, one more batch: Keras' value after each."""
    _, class_name, kwargs, data = case
    ours = getattr(metrics, class_name)(name="m", **kwargs)
    theirs = getattr(keras.metrics, class_name)(name="m", **kwargs)
    rng = np.random.default_rng(0)
    batches = [data(rng, step) for step in range(4)]
    for step, (y_true, y_pred, weight) in enumerate(batches[:3]):
        ours.update_state(y_true, y_pred, sample_weight=weight)
        theirs.update_state(y_true, y_pred, sample_weight=weight)
        _same(ours.result(), theirs.result(), f"{class_name} after batch {step + 1}")
    ours.reset_state()
    theirs.reset_state()
    _same(ours.result(), theirs.result(), f"{class_name} after reset_state")
    y_true, y_pred, weight = batches[3]
    _same(ours(y_true, y_pred), theirs(y_true, y_pred), f"{class_name} after reset and one batch")


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_metric_configs_match_keras_and_round_trip(keras, case):
    _, class_name, kwargs, data = case
    ours = getattr(metrics, class_name)(name="m", **kwargs)
    expected = getattr(keras.metrics, class_name)(name="m", **kwargs).get_config()
    config = ours.get_config()
    json.dumps(config)
    if expected.get("label_weights") is not None:
        expected["label_weights"] = np.asarray(expected["label_weights"]).tolist()
    assert config == expected
    again = metrics.deserialize(json.loads(json.dumps(metrics.serialize(ours))))
    assert type(again) is type(ours) and again.get_config() == config and again is not ours
    keras_again = getattr(keras.metrics, class_name).from_config(config)
    y_true, y_pred, weight = data(np.random.default_rng(1), 1)
    _same(again(y_true, y_pred, sample_weight=weight), keras_again(y_true, y_pred, sample_weight=weight),
          f"{class_name} rebuilt from its config")


def test_mean_matches_keras(keras):
    rng = np.random.default_rng(0)
    ours, theirs = metrics.Mean(), keras.metrics.Mean()
    for values, weight in [(rng.random((6, 3)), None), (rng.random((6, 3)), rng.random(6)),
                           (rng.random((6, 3)), rng.random((6, 3))), (2.5, 4.0), (rng.random(5), None)]:
        ours.update_state(values, sample_weight=weight)
        theirs.update_state(values, sample_weight=weight)
        _same(ours.result(), theirs.result(), f"Mean after values {np.shape(values)} weights {np.shape(weight)}")
    assert ours.get_config() == theirs.get_config() == {"name": "mean", "dtype": "float32"}


@pytest.mark.parametrize("name,y_true,y_pred", [
    ("binary_accuracy", np.array([1.0, 0.0, 1.0]), np.array([[0.7], [0.6], [0.2]])),
    ("binary_accuracy", np.array([[0.7], [1.0]]), np.array([[0.8], [0.9]])),      # 0.7 is never matched
    ("categorical_accuracy", np.eye(3)[[0, 2, 1]], np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7], [0.3, 0.3, 0.4]])),
    ("sparse_categorical_accuracy", np.array([[0], [2], [1]]), np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7],
                                                                          [0.3, 0.3, 0.4]])),
    ("top_k_categorical_accuracy", np.eye(3)[[0, 2, 1]], np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7],
                                                                   [0.2, 0.3, 0.3]])),
    ("sparse_top_k_categorical_accuracy", np.array([0, 2, 1]), np.array([[0.1, 0.3, 0.6], [0.1, 0.2, 0.7],
                                                                          [0.2, 0.3, 0.3]])),
])
def test_metric_functions_match_keras(keras, name, y_true, y_pred):
    kwargs = {"k": 2} if "top_k" in name else {}
    ours = getattr(metrics, name)(y_true, y_pred, **kwargs)
    theirs = np.asarray(getattr(keras.metrics, name)(y_true, y_pred, **kwargs))
    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(ours, theirs)


# -- in compile / fit / evaluate -------------------------------------------------------------------
def _keras_twin(keras, model_fn, ours_layers, their_layers, functional):
    """The same layers in both libraries (Keras' initial weights copied to ours)."""
    K = keras
    if functional:
        inputs = K.Input(model_fn)
        h = inputs
        for layer in their_layers:
            h = layer(h)
        theirs = K.Model(inputs, h)
        inputs = Input(model_fn)
        h = inputs
        for layer in ours_layers:
            h = layer(h)
        ours = Model(inputs, h)
    else:
        theirs = K.Sequential([K.Input(model_fn)] + their_layers)
        ours = Sequential([Input(model_fn)] + ours_layers)
    ours.set_weights([np.asarray(w) for w in theirs.get_weights()])
    return ours, theirs


def _compare_histories(ours, theirs, what):
    assert sorted(ours) == sorted(theirs), what
    for key in theirs:
        np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-5, atol=1e-6, err_msg=f"{what}: {key}")


@pytest.mark.parametrize("functional", [False, True], ids=["sequential", "functional"])
def test_binary_metric_objects_in_fit_match_keras_history(keras, functional):
    """AUC(), "accuracy", Precision(name="p"), Recall(), BinaryAccuracy(threshold=0.6): History keys
    (auto names "auc", "recall" as Keras gives them) and values, validation included."""
    K = keras
    K.utils.set_random_seed(0)
    K.backend.clear_session(free_memory=False)                       # Keras' automatic names start again at "auc"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype("float32")
    y = (x[:, 0] + 0.5 * x[:, 1] + 0.3 * rng.normal(size=40) > 0).astype("float32")
    ours, theirs = _keras_twin(K, (4,), [Dense(6, activation="tanh"), Dense(1, activation="sigmoid")],
                               [K.layers.Dense(6, activation="tanh"), K.layers.Dense(1, activation="sigmoid")],
                               functional)
    theirs.compile(K.optimizers.SGD(0.1), "binary_crossentropy",
                   metrics=[K.metrics.AUC(), "accuracy", K.metrics.Precision(name="p"), K.metrics.Recall(),
                            K.metrics.BinaryAccuracy(threshold=0.6)])
    ours.compile(optimizers.SGD(0.1), "binary_crossentropy",
                 metrics=[metrics.AUC(), "accuracy", metrics.Precision(name="p"), metrics.Recall(),
                          metrics.BinaryAccuracy(threshold=0.6)])
    kwargs = dict(epochs=2, batch_size=16, shuffle=False, verbose=0, validation_data=(x[:12], y[:12]))
    expected = theirs.fit(x, y, **kwargs).history
    history = ours.fit(x, y, **kwargs).history
    assert list(history) == ["loss", "auc", "accuracy", "p", "recall", "binary_accuracy", "val_loss", "val_auc",
                             "val_accuracy", "val_p", "val_recall", "val_binary_accuracy"]
    _compare_histories(history, expected, "fit")
    _compare_histories(ours.evaluate(x, y, verbose=0, return_dict=True),
                       theirs.evaluate(x, y, verbose=0, return_dict=True), "evaluate")


@pytest.mark.parametrize("functional", [False, True], ids=["sequential", "functional"])
def test_categorical_metric_objects_in_fit_match_keras_history(keras, functional):
    K = keras
    K.utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(36, 5)).astype("float32")
    y = np.eye(3, dtype="float32")[np.argmax(x[:, :3] + 0.5 * rng.normal(size=(36, 3)), axis=1)]

    def chosen(M):
        return [M.CategoricalAccuracy(), M.TopKCategoricalAccuracy(k=2), M.Precision(class_id=1, name="p1"),
                M.Recall(top_k=2, name="r2"), M.AUC(multi_label=True, name="ml_auc"), M.AUC(curve="PR", name="pr"),
                M.MeanIoU(3, sparse_y_true=False, sparse_y_pred=False, name="iou")]
    ours, theirs = _keras_twin(K, (5,), [Dense(8, activation="relu"), Dense(3, activation="softmax")],
                               [K.layers.Dense(8, activation="relu"), K.layers.Dense(3, activation="softmax")],
                               functional)
    theirs.compile(K.optimizers.SGD(0.2), "categorical_crossentropy", metrics=chosen(K.metrics))
    ours.compile(optimizers.SGD(0.2), "categorical_crossentropy", metrics=chosen(metrics))
    kwargs = dict(epochs=2, batch_size=10, shuffle=False, verbose=0, validation_split=0.25)
    _compare_histories(ours.fit(x, y, **kwargs).history, theirs.fit(x, y, **kwargs).history, "fit")
    _compare_histories(ours.test_on_batch(x, y, return_dict=True), theirs.test_on_batch(x, y, return_dict=True),
                       "test_on_batch")


def test_sparse_labels_and_named_metrics_match_keras(keras):
    """Strings resolve as Keras' compile does: "auc" and "precision" name their classes, "acc" by shapes."""
    K = keras
    K.utils.set_random_seed(2)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(30, 4)).astype("float32")
    labels = np.argmax(x[:, :3], axis=1)
    ours, theirs = _keras_twin(K, (4,), [Dense(3, activation="softmax")], [K.layers.Dense(3, activation="softmax")],
                               False)
    names = ["acc", "sparse_categorical_crossentropy", metrics.SparseTopKCategoricalAccuracy(k=1, name="top1"),
             metrics.MeanIoU(3, sparse_y_pred=False, name="iou")]
    their_names = names[:2] + [K.metrics.SparseTopKCategoricalAccuracy(k=1, name="top1"),
                               K.metrics.MeanIoU(3, sparse_y_pred=False, name="iou")]
    theirs.compile(K.optimizers.SGD(0.1), "sparse_categorical_crossentropy", metrics=their_names)
    ours.compile(optimizers.SGD(0.1), "sparse_categorical_crossentropy", metrics=names)
    kwargs = dict(epochs=2, batch_size=8, shuffle=False, verbose=0)
    _compare_histories(ours.fit(x, labels, **kwargs).history, theirs.fit(x, labels, **kwargs).history, "fit")
    assert ours.metrics_names == ["loss", "acc", "sparse_categorical_crossentropy", "top1", "iou"]
    binary = Sequential([Input((4,)), Dense(1, activation="sigmoid")])
    binary.compile("sgd", "binary_crossentropy", metrics=["auc", "precision"])
    logs = binary.evaluate(x, (labels == 0).astype("float32"), verbose=0, return_dict=True)
    assert list(logs) == ["loss", "auc", "precision"]
    assert [type(m) for m in binary._metric_objects] == [metrics.AUC, metrics.Precision]


def test_a_metric_object_is_shared_by_the_models_compiled_with_it_as_in_keras(keras):
    """Keras uses the object itself (no clone): its result is the last evaluate's, whichever model ran."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(20, 3)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    results = {}
    def ours():
        return Sequential([Input((3,)), Dense(1, activation="sigmoid")])

    def theirs():
        return keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")])
    for library, M, make in [("ours", metrics, ours), ("keras", keras.metrics, theirs)]:
        shared = M.AUC(name="shared")
        first, second = make(), make()
        first.compile("sgd", "binary_crossentropy", metrics=[shared])
        second.compile("sgd", "binary_crossentropy", metrics=[shared])
        a = first.evaluate(x, y, verbose=0, return_dict=True)["shared"]
        b = second.evaluate(x, y, verbose=0, return_dict=True)["shared"]
        results[library] = (a != b, float(shared.result()) == pytest.approx(b))
    assert results["ours"] == results["keras"] == (True, True)


def test_compiled_metric_objects_survive_compile_config_and_saving(tmp_path):
    from convscope.models import load_model
    rng = np.random.default_rng(4)
    x = rng.normal(size=(24, 3)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    model = Sequential([Input((3,)), Dense(1, activation="sigmoid")])
    model.compile("sgd", "binary_crossentropy",
                  metrics=[metrics.AUC(curve="PR", name="pr_auc"), "accuracy", metrics.Precision(thresholds=0.3,
                                                                                                  name="p")])
    expected = model.evaluate(x, y, verbose=0, return_dict=True)
    config = json.loads(json.dumps(model.get_compile_config()))
    assert config["metrics"][1] == "accuracy" and config["metrics"][2]["class_name"] == "Precision"
    twin = Sequential([Input((3,)), Dense(1, activation="sigmoid")])
    twin.set_weights(model.get_weights())
    twin.compile_from_config(config)
    assert twin.metrics_names == ["loss", "pr_auc", "accuracy", "p"]
    assert twin.evaluate(x, y, verbose=0, return_dict=True) == pytest.approx(expected)
    assert twin._metric_objects[0] is not model._metric_objects[0]
    model.save(tmp_path / "m.convscope")
    restored = load_model(tmp_path / "m.convscope")
    assert restored.evaluate(x, y, verbose=0, return_dict=True) == pytest.approx(expected)
    assert restored._metric_objects[2].get_config() == model._metric_objects[2].get_config()


# -- per-pixel sigmoid / softmax outputs (the fused crossentropy in evaluation) --------------------
def _pixel_twins(keras, activation, functional):
    K = keras
    K.utils.set_random_seed(5)
    channels = 1 if activation == "sigmoid" else 3
    ours_layers = [Conv2D(4, 3, padding="same", activation="relu"), Conv2D(channels, 3, padding="same",
                                                                           activation=activation)]
    their_layers = [K.layers.Conv2D(4, 3, padding="same", activation="relu"),
                    K.layers.Conv2D(channels, 3, padding="same", activation=activation)]
    return _keras_twin(K, (10, 10, 1), ours_layers, their_layers, functional)


def _pixel_data(activation):
    rng = np.random.default_rng(5)
    x = rng.random((40, 10, 10, 1)).astype("float32")
    if activation == "sigmoid":
        return x, (x > 0.5).astype("float32")
    return x, np.eye(3, dtype="float32")[np.digitize(x[..., 0], [0.3, 0.6])]


@pytest.mark.parametrize("functional", [False, True], ids=["sequential", "functional"])
@pytest.mark.parametrize("activation,loss", [("sigmoid", "binary_crossentropy"),
                                             ("softmax", "categorical_crossentropy")])
def test_per_pixel_outputs_evaluate_like_keras(keras, activation, loss, functional):
    """evaluate, test_on_batch and fit's validation with a last Conv2D(sigmoid|softmax): the loss taken
    from the pre-activation the last layer kept (batches of 32 and 8), Keras' numbers."""
    ours, theirs = _pixel_twins(keras, activation, functional)
    x, y = _pixel_data(activation)
    def chosen(M):
        if activation == "sigmoid":
            return ["accuracy", "auc", M.Precision(name="p")]
        return ["accuracy", M.MeanIoU(3, sparse_y_true=False, sparse_y_pred=False, name="iou")]
    ours.compile(optimizers.SGD(0.5), loss, metrics=chosen(metrics))
    theirs.compile(keras.optimizers.SGD(0.5), loss, metrics=chosen(keras.metrics))
    _compare_histories(ours.evaluate(x, y, verbose=0, return_dict=True),
                       theirs.evaluate(x, y, verbose=0, return_dict=True), "evaluate")
    _compare_histories(ours.test_on_batch(x[:32], y[:32], return_dict=True),
                       theirs.test_on_batch(x[:32], y[:32], return_dict=True), "test_on_batch")
    kwargs = dict(epochs=2, batch_size=32, shuffle=False, verbose=0, validation_data=(x[:20], y[:20]))
    _compare_histories(ours.fit(x, y, **kwargs).history, theirs.fit(x, y, **kwargs).history, "fit")


# -- arguments -------------------------------------------------------------------------------------
@pytest.mark.parametrize("make,error,message", [
    (lambda: metrics.BinaryAccuracy(threshold="high"),
     TypeError, r"BinaryAccuracy: argument `threshold` must be a number.*got 'high'"),
    (lambda: metrics.TopKCategoricalAccuracy(k=0),
     ValueError, r"TopKCategoricalAccuracy: argument `k` must be an int >= 1, got 0"),
    (lambda: metrics.SparseTopKCategoricalAccuracy(k=2.5),
     TypeError, r"SparseTopKCategoricalAccuracy: argument `k` must be an int >= 1, got 2.5"),
    (lambda: metrics.Precision(thresholds=[0.2, 1.5]),
     ValueError,
     r"Precision: argument `thresholds` must be a number or a non-empty list of numbers in \[0, 1\], got"
     r" \[0.2, 1.5\]"),
    (lambda: metrics.Recall(top_k=0), ValueError, r"Recall: argument `top_k` must be an int >= 1, got 0"),
    (lambda: metrics.Recall(class_id="cat"), TypeError, r"Recall: argument `class_id` must be an int >= 0, got 'cat'"),
    (lambda: metrics.AUC(num_thresholds=1), ValueError, r"AUC: argument `num_thresholds` must be an int >= 2, got 1"),
    (lambda: metrics.AUC(curve="roc_auc"),
     ValueError, r"AUC: argument `curve` must be one of \['ROC', 'PR', 'PRGAIN'\], got 'roc_auc'"),
    (lambda: metrics.AUC(summation_method="trapezoid"),
     ValueError, r"AUC: argument `summation_method` must be one of .*got 'trapezoid'"),
    (lambda: metrics.AUC(num_labels=3),
     ValueError, r"AUC: argument `num_labels` is needed only with multi_label=True, got num_labels=3"),
    (lambda: metrics.AUC(multi_label="yes"),
     TypeError, r"AUC: argument `multi_label` must be True or False, got 'yes'"),
    (lambda: metrics.AUC(multi_label=True, num_labels=2, label_weights=[1, 2, 3]),
     ValueError, r"AUC: argument `label_weights` must be a list of numbers, one per label \(2\), got \[1, 2, 3\]"),
    (lambda: metrics.MeanIoU(num_classes=0), ValueError, r"MeanIoU: argument `num_classes` must be an int >= 1, got 0"),
    (lambda: metrics.MeanIoU(3, dtype="int8"),
     ValueError,
     r"MeanIoU: argument `dtype` must be None or one of \['int32', 'int64', 'float32', 'float64'\], got 'int8'"),
    (lambda: metrics.Mean(name=""), TypeError, r"Mean: argument `name` must be a non-empty string or None, got ''"),
    (lambda: metrics.Precision(dtype="float16"),
     ValueError, r"Precision: argument `dtype` must be None or one of \['float32', 'float64'\], got 'float16'"),
    (lambda: metrics.MeanMetricWrapper("mse"),
     TypeError, r"MeanMetricWrapper: argument `fn` must be a function of \(y_true, y_pred\), got 'mse'"),
])
def test_constructor_errors_name_the_class_and_argument(make, error, message):
    with pytest.raises(error, match=message):
        make()


@pytest.mark.parametrize("call,error,message", [
    (lambda: metrics.Precision().update_state(np.ones((4, 1)), np.ones((4, 2))),
     ValueError,
     r"Precision.update_state: y_true and y_pred must have the same shape, got y_true \(4, 1\) and y_pred \(4, 2\)"),
    (lambda: metrics.AUC().update_state(["a", "b"], np.ones(2)),
     TypeError, r"AUC.update_state: argument `y_true` must be a numeric array, got dtype <U1"),
    (lambda: metrics.AUC().update_state(np.ones(4), np.ones(4), sample_weight=np.ones(3)),
     ValueError,
     r"AUC.update_state: argument `sample_weight` of shape \(3,\) does not broadcast to y_pred of shape \(4,\)"),
    (lambda: metrics.AUC(multi_label=True).update_state(np.ones(4), np.ones(4)),
     ValueError,
     r"AUC.update_state: with multi_label=True, y_pred must have shape rank 2 \(batch, labels\), got \(4,\)"),
    (lambda: metrics.Recall(class_id=3).update_state(np.ones((2, 3)), np.ones((2, 3))),
     ValueError, r"Recall.update_state: `class_id`=3 is out of range for y_pred with 3 classes"),
    (lambda: metrics.Mean().update_state(np.ones((4, 2)), sample_weight=np.ones(3)),
     ValueError,
     r"Mean.update_state: argument `sample_weight` of shape \(3,\) does not broadcast to the values of"
     r" shape \(4, 2\)"),
    (lambda: metrics.MeanIoU(3).update_state(np.ones(4), np.ones(5)),
     ValueError, r"MeanIoU.update_state: y_true and y_pred must hold the same number of class ids, got 4 and 5"),
    (lambda: metrics.Precision.from_config({"thresholds": 0.5, "colour": "red"}),
     TypeError, r"Precision.from_config: .*colour"),
    (lambda: metrics.get("f1"), ValueError, r"metrics.get: unknown metric 'f1'; known metrics: accuracy, acc, .*AUC"),
    (lambda: metrics.get(3),
     TypeError, r"metrics.get: expected a metric name, a config dict, a function or a Metric, got 3"),
    (lambda: metrics.deserialize({"class_name": "os.system", "config": {}}),
     ValueError, r"metrics.deserialize: unknown metric class 'os.system'; known: AUC, Accuracy"),
])
def test_call_errors_name_the_method_and_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_regression_metric_objects_as_keras(keras):
    """MeanSquaredError, MeanAbsoluteError and RootMeanSquaredError (the root of the running mean, not a mean
    of roots): fit's history with a validation split, and a sample-weighted update, as Keras 3's."""
    import convscope as cs
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20, 3)).astype("float32"), rng.normal(size=(20, 2)).astype("float32")

    def history(module):
        model = module.Sequential([module.Input((3,)), module.layers.Dense(2, kernel_initializer="ones")])
        chosen = [module.metrics.RootMeanSquaredError(), module.metrics.MeanAbsoluteError(),
                  module.metrics.MeanSquaredError()]
        model.compile(module.optimizers.SGD(0.01), "mse", metrics=chosen)
        return model.fit(x, y, batch_size=6, epochs=2, shuffle=False, verbose=0, validation_split=0.2).history
    ours, theirs = history(cs), history(keras)
    assert sorted(ours) == sorted(theirs)
    for key in theirs:
        np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-5)
    for name in ("RootMeanSquaredError", "MeanAbsoluteError", "MeanSquaredError"):
        mine, k_metric = getattr(cs.metrics, name)(), getattr(keras.metrics, name)()
        for metric in (mine, k_metric):
            metric.update_state(y[:5], x[:5, :2], sample_weight=np.arange(5.0))
            metric.update_state(y[5:9], x[5:9, :2])
        assert float(mine.result()) == pytest.approx(float(k_metric.result()), rel=1e-6)
        assert cs.metrics.get(mine.name).name == mine.name


def test_root_mean_squared_error_broadcasts_as_keras(keras):
    import convscope as cs
    rng = np.random.default_rng(1)
    y_true, y_pred = rng.normal(size=(6, 1)), rng.normal(size=(6, 3))
    mine, theirs = cs.metrics.RootMeanSquaredError(), keras.metrics.RootMeanSquaredError()
    mine.update_state(y_true, y_pred)
    theirs.update_state(y_true, y_pred)
    assert float(mine.result()) == pytest.approx(float(theirs.result()), rel=1e-6)
    with pytest.raises(ValueError, match="RootMeanSquaredError: targets of shape \\(6, 2\\) do not match"):
        cs.metrics.RootMeanSquaredError().update_state(np.zeros((6, 2)), y_pred)
    for shape_true, shape_pred in (((1, 3), (3, 1)), ((4,), (4, 1, 1))):
        a, b = rng.normal(size=shape_true), rng.normal(size=shape_pred)
        mine, theirs = cs.metrics.RootMeanSquaredError(), keras.metrics.RootMeanSquaredError()
        mine.update_state(a, b)
        theirs.update_state(a, b)
        assert float(mine.result()) == pytest.approx(float(theirs.result()), rel=1e-6)


def test_the_loss_functions_under_metrics_are_keras_and_work_in_compile(keras):
    """keras.metrics.<loss name> is the loss function itself (Keras 3): convscope's give Keras' values, and a
    model compiled with two of them reports Keras' history."""
    rng = np.random.default_rng(3)
    y_true = (rng.random((6, 4)) > 0.5).astype("float32")
    y_pred = rng.uniform(0.05, 0.95, (6, 4)).astype("float32")
    for name in metrics.LOSS_FUNCTIONS:
        assert getattr(metrics, name) is getattr(losses, name)
        assert getattr(keras.metrics, name) is getattr(keras.losses, name)
        truth = np.argmax(y_true, axis=-1) if name.startswith("sparse") else y_true
        np.testing.assert_allclose(getattr(metrics, name)(truth, y_pred),
                                   np.asarray(getattr(keras.metrics, name)(truth, y_pred)), rtol=1e-5, atol=1e-6)
    ours, theirs = _keras_twin(keras, (5,), [Dense(4, activation="sigmoid")],
                               [keras.layers.Dense(4, activation="sigmoid")], False)
    x = rng.random((12, 5)).astype("float32")
    y = (rng.random((12, 4)) > 0.5).astype("float32")
    ours.compile(optimizer="sgd", loss="binary_crossentropy", metrics=[metrics.mean_squared_error, metrics.hinge])
    theirs.compile(optimizer="sgd", loss="binary_crossentropy",
                   metrics=[keras.metrics.mean_squared_error, keras.metrics.hinge])
    _compare_histories(ours.fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=0).history,
                       theirs.fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=0).history, "functions")
