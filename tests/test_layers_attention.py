"""`Attention` and `AdditiveAttention` (Keras 3.15.1's) against Keras on torch's autograd: outputs, attention scores,
query and value masks, the causal mask, a key apart from the value, the scale weights and "concat" scores; gradients
of every input and weight; configs both ways; a `.keras` file of a model using one (its masks model inputs) loaded,
trained a step and saved back; dropout; the checks of the arguments."""

import numpy as np
import pytest

import convscope as cs
from convscope import layers as L
from _oracle import (assert_backward_matches_torch, assert_layer_config_matches_keras_both_ways,
                     assert_step_and_file_match_keras)

CASES = [
    ("Attention", {}, dict()),
    ("Attention", dict(use_scale=True), dict(mask=True)),
    ("Attention", dict(score_mode="concat"), dict(use_causal_mask=True)),
    ("Attention", dict(score_mode="concat", use_scale=True), dict(mask=True, use_causal_mask=True)),
    ("AdditiveAttention", {}, dict(mask=True)),
    ("AdditiveAttention", dict(use_scale=False), dict(use_causal_mask=True)),
]


@pytest.mark.parametrize("with_key", [False, True])
@pytest.mark.parametrize("name,kwargs,call", CASES)
def test_outputs_scores_and_gradients_match_keras_through_autograd(keras, name, kwargs, call, with_key):
    import torch
    rng = np.random.default_rng(len(kwargs) + 2 * len(call) + with_key)
    shapes = [(2, 4, 5), (2, 6, 3)] + ([(2, 6, 5)] if with_key else [])
    arrays = [rng.standard_normal(s).astype("float32") for s in shapes]
    if not with_key:
        arrays[1] = rng.standard_normal((2, 6, 5)).astype("float32")      # the value is the key: its features
    theirs, ours = getattr(keras.layers, name)(**kwargs), getattr(L, name)(**kwargs)
    theirs(arrays)
    ours(arrays)
    weights = [rng.standard_normal(np.shape(w)).astype("float32") for w in theirs.get_weights()]
    theirs.set_weights(weights)
    ours.set_weights(weights)
    assert [v.name.split("/")[-1] for v in ours.weights] == [v.path.split("/")[-1] for v in theirs.weights]
    call = dict(call)
    if call.pop("mask", False):
        value_mask = rng.random((2, 6)) > 0.4
        value_mask[0, 0], value_mask[1] = True, False          # the second sample's values all masked, as Keras
        call["mask"] = [rng.random((2, 4)) > 0.3, value_mask]
    outputs, ctx = ours.forward(arrays, training=True, return_attention_scores=True, **call)
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    expected = theirs(tensors, return_attention_scores=True, training=True, **call)
    assert_backward_matches_torch(ours, ctx, outputs, theirs, expected, tensors, rng, seeded=[0], tol=1e-6)
    np.testing.assert_allclose(ours(arrays, **call), outputs[0], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name,kwargs", [("Attention", {}), ("Attention", dict(use_scale=True, score_mode="concat",
                                                                                 dropout=0.2, seed=3)),
                                         ("AdditiveAttention", dict(use_scale=False, dropout=0.1))])
def test_config_matches_keras_both_ways(keras, name, kwargs):
    assert_layer_config_matches_keras_both_ways(keras, name, kwargs)


def _model(lib, name):
    """A text-CNN-style encoder attending over its own features, the value mask a model input (a query mask would
    start Keras' implicit masking of the layers after it, which convscope does not have)."""
    tokens, value_mask = lib.Input((6, 4)), lib.Input((6,), dtype="bool")
    features = lib.layers.Conv1D(5, 3, padding="same", activation="relu")(tokens)
    keys = lib.layers.Dense(5)(features)
    attended, scores = getattr(lib.layers, name)()([features, features, keys], mask=[None, value_mask],
                                                   return_attention_scores=True)
    pooled = lib.layers.GlobalAveragePooling1D()(lib.layers.Concatenate()([features, attended]))
    return lib.Model([tokens, value_mask], lib.layers.Dense(2)(pooled))


@pytest.mark.parametrize("name", ["Attention", "AdditiveAttention"])
def test_a_keras_model_loads_trains_a_step_and_saves_as_keras(keras, tmp_path, name):
    keras.utils.set_random_seed(5)
    theirs = _model(keras, name)
    theirs.save(tmp_path / "theirs.keras")
    ours = cs.models.load_model(tmp_path / "theirs.keras")
    rng = np.random.default_rng(2)
    value_mask = rng.random((4, 6)) > 0.4
    value_mask[:, 0] = True
    x = [rng.standard_normal((4, 6, 4)).astype("float32"), value_mask]
    y = rng.standard_normal((4, 2)).astype("float32")
    assert_step_and_file_match_keras(keras, ours, theirs, x, y, "mse", tmp_path)
    built = _model(cs, name)                          # written by hand, the same graph
    assert [type(layer).__name__ for layer in built.layers] == [type(layer).__name__ for layer in ours.layers]


def test_dropout_drops_attention_weights_in_training_only():
    rng = np.random.default_rng(0)
    q = rng.standard_normal((2, 5, 4)).astype("float32")
    layer = L.Attention(dropout=0.5, seed=1)
    inference, scores = layer([q, q], return_attention_scores=True)
    assert np.allclose(scores.sum(-1), 1.0, atol=1e-6)
    trained, dropped = layer([q, q], return_attention_scores=True, training=True)
    assert not np.allclose(trained, inference) and np.isclose(dropped, 0).any()
    assert np.allclose(dropped[dropped != 0] / 2, scores[dropped != 0], rtol=1e-6)   # kept ones scaled by 1/(1-rate)


def test_arguments_are_checked_by_name():
    x = np.ones((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match=r"Attention 'a': argument `score_mode` must be one of \('dot', 'concat'\), "
                                         r"got 'add'"):
        L.Attention(score_mode="add", name="a")
    with pytest.raises(ValueError, match=r"argument `dropout` must be a number in \[0, 1\)"):
        L.AdditiveAttention(dropout=1.0)
    with pytest.raises(ValueError, match=r"Attention 'a': must be called on a list \[query, value\] or \[query, "
                                         r"value, key\], got ndarray"):
        L.Attention(name="a")(x)
    with pytest.raises(ValueError, match=r"Attention 'a': `query` and `key` must have as many features, got "
                                         r"\(None, 3, 4\) and \(None, 3, 5\)"):
        L.Attention(name="a")([x, np.ones((2, 3, 5), np.float32)])
    with pytest.raises(ValueError, match=r"Attention 'a': argument `mask` must be \[query_mask, value_mask\] of "
                                         r"shapes \(2, 3\) and \(2, 3\); its value_mask has shape \(2, 4\)"):
        L.Attention(name="a")([x, x], mask=[None, np.ones((2, 4), bool)])
    query = L.Input((3, 4))
    with pytest.raises(ValueError, match=r"its query_mask has shape \(None, 5\)"):
        L.Attention(name="a")([query, query], mask=[L.Input((5,), dtype="bool"), None])
    with pytest.raises(TypeError, match=r"Attention 'a': give the inputs and masks all as symbolic tensors"):
        L.Attention(name="a")([query, query], mask=[np.ones((2, 3), bool), None])


def test_analysis_and_explain_count_its_work():
    """6 query positions × 6 value positions = 36 scores of 5 products, 36 weighted sums of 5 (360 MACs); a
    softmax's 3 operations per score; AdditiveAttention's scale: 5 parameters."""
    from convscope.models.analysis import analyze
    for name, params in (("Attention", 0), ("AdditiveAttention", 5)):
        model = _model(cs, name)
        layer = model.layers[[type(x).__name__ for x in model.layers].index(name)]
        row = {r.name: r for r in analyze(model).layers}[layer.name]
        assert (row.kind, row.macs, row.norm_ops, row.params) == ("attention", 360, 108, params)
        text = "\n".join(line for section in cs.explain(model).layer(layer.name).sections for line in section["lines"])
        assert ("each of the query's 6 positions attends to the value's 6, by scores over 5 features, averaging "
                "values of 5: (None, 6, 5) → (None, 6, 5)") in text
        assert "MACs = 6·6 scores × (5 features in each score + 5 in each weighted value) = 360" in text
        assert "쿼리의 위치 6개 각각이 특성 5개로 낸 점수로 값의 위치 6개를 보고" in str(cs.explain(model, lang="ko"))


def test_a_keras_file_whose_query_mask_starts_keras_masking_is_refused_by_name(keras, tmp_path):
    """Keras carries the query mask on to the layers after the attention (a masked average here); convscope has
    no implicit masking, so the file is refused naming the first layer given a mask, not half-loaded."""
    tokens, query_mask = keras.Input((6, 4)), keras.Input((6,), dtype="bool")
    features = keras.layers.Conv1D(5, 3, padding="same")(tokens)
    attended = keras.layers.Attention()([features, features], mask=[query_mask, None])
    pooled = keras.layers.GlobalAveragePooling1D(name="pool")(attended)
    keras.Model([tokens, query_mask], keras.layers.Dense(2)(pooled)).save(tmp_path / "masked.keras")
    with pytest.raises(ValueError, match=r"layer 'pool' \(GlobalAveragePooling1D\) is called with a "
                                         r"Keras mask .* convscope does not propagate Keras' masks"):
        cs.models.load_model(tmp_path / "masked.keras")
