"""`MultiHeadAttention` (Keras 3.15.1's) against Keras on torch's autograd: outputs, attention scores, masks (given
and causal), a key apart from the value, 2-D attention over an image's axes, the gate; gradients of every input and
weight; configs and `.keras` files both ways with keyword tensors in the graph (`key=`, `attention_mask=`); a
training step; and the checks of its arguments."""

import numpy as np
import pytest

import convscope as cs
from convscope import layers as L
from _oracle import (assert_backward_matches_torch, assert_layer_config_matches_keras_both_ways,
                     assert_step_and_file_match_keras, comparable_config)


def _pair(keras, rng, shapes, **kwargs):
    ours, theirs = L.MultiHeadAttention(**kwargs), keras.layers.MultiHeadAttention(**kwargs)
    arrays = [rng.standard_normal(s).astype("float32") for s in shapes]
    theirs(*arrays[:2], key=arrays[2] if len(arrays) > 2 else None)
    ours.build_from_shape([(None,) + s[1:] for s in shapes])
    assert [v.name.split("/")[-1] for v in ours.weights] == [v.path.split("/")[-1] for v in theirs.weights]
    weights = [rng.standard_normal(w.shape).astype("float32") * 0.5 for w in theirs.get_weights()]
    theirs.set_weights(weights)
    ours.set_weights(weights)
    return ours, theirs, arrays


CASES = [
    (dict(num_heads=2, key_dim=3), [(2, 5, 8), (2, 7, 6)], {}),
    (dict(num_heads=3, key_dim=2, value_dim=4, output_shape=5), [(2, 4, 6), (2, 6, 6), (2, 6, 3)], {}),
    (dict(num_heads=2, key_dim=4), [(2, 5, 6), (2, 5, 6)], dict(use_causal_mask=True)),
    (dict(num_heads=2, key_dim=3, use_bias=False), [(2, 4, 6), (2, 5, 6)], dict(attention_mask=True)),
    (dict(num_heads=2, key_dim=3, attention_axes=(1, 2)), [(2, 3, 4, 5), (2, 3, 4, 5)], {}),
    (dict(num_heads=2, key_dim=3, use_gate=True), [(2, 4, 6), (2, 5, 6)], {}),
    (dict(num_heads=2, key_dim=3, attention_axes=(2,)), [(2, 3, 3, 5), (2, 3, 3, 5)], dict(use_causal_mask=True)),
]


@pytest.mark.parametrize("kwargs,shapes,call", CASES)
def test_outputs_scores_and_gradients_match_keras_through_autograd(keras, kwargs, shapes, call):
    import torch
    rng = np.random.default_rng(len(shapes) + len(kwargs))
    ours, theirs, arrays = _pair(keras, rng, shapes, **kwargs)
    call = dict(call)
    if call.pop("attention_mask", False):
        mask = rng.random((shapes[0][0], shapes[0][1], shapes[1][1])) > 0.3
        mask[:, :, 0] = True                                    # every query sees something
        call["attention_mask"] = mask
    key = arrays[2] if len(arrays) > 2 else None
    outputs, ctx = ours.forward(arrays[:2], training=True, key=key, return_attention_scores=True, **call)
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    expected = theirs(tensors[0], tensors[1], key=tensors[2] if key is not None else None,
                      return_attention_scores=True, training=True, **call)
    assert_backward_matches_torch(ours, ctx, outputs, theirs, expected, tensors, rng, seeded=[0], tol=1e-5)
    np.testing.assert_allclose(ours(*arrays[:2], key=key, **call), outputs[0], rtol=1e-6, atol=1e-7)


def _model(lib, with_mask, with_key=False):
    """A transformer encoder block over a CNN's feature map (flattened to patches), its mask an input; the key
    made by its own layer (a keyword tensor another layer computes: its gradient reaches that layer)."""
    image = lib.Input((4, 4, 3))
    patches = lib.layers.Reshape((16, 8))(lib.layers.Conv2D(8, 1)(image))
    inputs = [image]
    kwargs = {"key": lib.layers.Dense(5, name="keys")(patches)} if with_key else {}
    if with_mask:
        mask = lib.Input((16, 16), dtype="bool")
        inputs.append(mask)
        kwargs["attention_mask"] = mask
    attended = lib.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="mha")(patches, patches, **kwargs)
    mixed = lib.layers.LayerNormalization()(patches + attended)
    return lib.Model(inputs, lib.layers.Dense(3)(lib.layers.GlobalAveragePooling1D()(mixed)))


@pytest.mark.parametrize("with_mask,with_key", [(False, False), (True, False), (True, True)])
def test_a_keras_model_loads_trains_a_step_and_saves_as_keras(keras, tmp_path, with_mask, with_key):
    keras.utils.set_random_seed(3)
    theirs = _model(keras, with_mask, with_key)
    theirs.save(tmp_path / "theirs.keras")
    ours = cs.models.load_model(tmp_path / "theirs.keras")
    rng = np.random.default_rng(1)
    x = [rng.standard_normal((4, 4, 4, 3)).astype("float32")]
    if with_mask:
        mask = rng.random((4, 16, 16)) > 0.4
        mask[:, :, 0] = True
        x.append(mask)
    y = rng.standard_normal((4, 3)).astype("float32")
    assert_step_and_file_match_keras(keras, ours, theirs, x if with_mask else x[0], y, "mse", tmp_path)


@pytest.mark.parametrize("kwargs", [
    dict(num_heads=2, key_dim=3),
    dict(num_heads=4, key_dim=8, value_dim=6, dropout=0.1, use_bias=False, output_shape=(5,), attention_axes=(1,),
         use_gate=True),
    dict(num_heads=2, key_dim=3, kernel_initializer="he_normal", bias_initializer="ones", kernel_regularizer="l2",
         bias_regularizer="l1", activity_regularizer="l2", kernel_constraint="non_neg", bias_constraint="unit_norm")])
def test_config_matches_keras_both_ways(keras, kwargs):
    assert_layer_config_matches_keras_both_ways(keras, "MultiHeadAttention", kwargs)


def test_projections_take_keras_initializers_regularizers_and_constraints(keras):
    kwargs = dict(num_heads=2, key_dim=3, use_gate=True, kernel_initializer="he_normal", bias_initializer="ones",
                  kernel_regularizer="l2", bias_regularizer="l1", activity_regularizer="l2",
                  kernel_constraint="non_neg", bias_constraint="unit_norm")
    theirs, ours = keras.layers.MultiHeadAttention(**kwargs), L.MultiHeadAttention(**kwargs)
    theirs.build((2, 5, 4), (2, 6, 4))
    ours.build([(2, 5, 4), (2, 6, 4)])
    for path, sublayer in ours.keras_sublayers():
        theirs_sub = getattr(theirs, path if path.startswith("_") else "_" + path)
        assert comparable_config(sublayer.get_config()) == comparable_config(theirs_sub.get_config()), path


def test_dropout_drops_attention_weights_in_training_only():
    rng = np.random.default_rng(0)
    layer = L.MultiHeadAttention(num_heads=1, key_dim=4, dropout=0.5, seed=3)
    q = rng.standard_normal((8, 16, 4)).astype("float32")
    inference = layer(q, q)
    (_, scores), _ = layer.forward([q, q], training=False, return_attention_scores=True)
    assert np.array_equal(layer(q, q), inference) and np.allclose(scores.sum(-1), 1.0, atol=1e-5)
    trained = layer.forward([q, q], training=True)[0]
    assert not np.allclose(trained, inference)


def test_arguments_are_checked_by_name():
    with pytest.raises(ValueError, match=r"MultiHeadAttention 'm': argument `num_heads` must be a positive int"):
        L.MultiHeadAttention(num_heads=0, key_dim=2, name="m")
    with pytest.raises(ValueError, match=r"argument `sliding_window` is not supported"):
        L.MultiHeadAttention(num_heads=1, key_dim=2, sliding_window=3)
    with pytest.raises(ValueError, match=r"argument `dropout` must be a number in \[0, 1\)"):
        L.MultiHeadAttention(num_heads=1, key_dim=2, dropout=1.0)
    layer = L.MultiHeadAttention(num_heads=1, key_dim=2, name="m")
    with pytest.raises(ValueError, match=r"MultiHeadAttention 'm': `value` and `key` must have the same shape but"):
        layer.build_from_shape([(None, 3, 4), (None, 5, 4), (None, 6, 4)])
    with pytest.raises(ValueError, match=r"argument `query_mask` is not supported"):
        layer(np.ones((1, 3, 4), np.float32), np.ones((1, 3, 4), np.float32), query_mask=np.ones((1, 3), bool))


def test_a_causal_mask_runs_along_the_attention_axis(keras):
    """Over axis 2 of an image-like input whose axis 1 is shorter (Keras builds its causal mask from axis 1's
    length and fails there): as Keras with the lower-triangular mask given explicitly."""
    rng = np.random.default_rng(7)
    ours, theirs, arrays = _pair(keras, rng, [(2, 3, 5, 4), (2, 3, 5, 4)], num_heads=2, key_dim=3,
                                 attention_axes=(2,))
    explicit = np.broadcast_to(np.tril(np.ones((5, 5), bool)), (2, 3, 5, 5))
    expected = theirs(*arrays, attention_mask=explicit)
    np.testing.assert_allclose(ours(*arrays, use_causal_mask=True), expected.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(ours(*arrays), expected.detach().numpy(), atol=1e-3)


def test_masks_and_mixed_inputs_are_checked_where_the_call_is_made():
    """A mask that cannot broadcast to the scores is refused when the graph is built (not at predict) and in an
    eager call, naming the layer and the shape expected; so are a causal mask over two axes, attention axes
    outside the query's, and arrays mixed with symbolic tensors."""
    x = np.ones((2, 4, 6), np.float32)
    query = L.Input((4, 6))
    expected = r"MultiHeadAttention 'm': argument `attention_mask` must broadcast to the attention scores "
    with pytest.raises(ValueError, match=expected + r"\(None, 2, 4, 4\) .*e\.g\. shape \(None, 4, 4\), got "
                                                    r"\(None, 4, 5\)"):
        L.MultiHeadAttention(2, 3, name="m")(query, query, attention_mask=L.Input((4, 5), dtype="bool"))
    with pytest.raises(ValueError, match=expected + r"\(2, 2, 4, 4\) .*got \(2, 4, 5\)"):
        L.MultiHeadAttention(2, 3, name="m")(x, x, attention_mask=np.ones((2, 4, 5), bool))
    assert L.MultiHeadAttention(2, 3)(x, x, attention_mask=np.ones((4, 4), bool)).shape == (2, 4, 6)   # as Keras
    image = np.ones((2, 3, 5, 4), np.float32)
    with pytest.raises(ValueError, match=r"MultiHeadAttention 'm': `use_causal_mask=True` needs a single attention "
                                         r"axis; this layer attends over axes \(1, 2\)"):
        L.MultiHeadAttention(2, 3, name="m")(image, image, use_causal_mask=True)
    with pytest.raises(ValueError, match=expected + r"\(2, 2, 3, 5, 3, 5\) .*got \(5, 5\)"):    # Keras: AxisError
        L.MultiHeadAttention(2, 3, name="m")(image, image, attention_mask=np.ones((5, 5), bool))
    with pytest.raises(ValueError, match=r"MultiHeadAttention 'm': argument `attention_axes` must name distinct axes "
                                         r"of the query between the batch and the channels \(1 to 2 for shape "
                                         r"\(None, 3, 5, 4\)\), got \(3,\)"):
        L.MultiHeadAttention(2, 3, attention_axes=3, name="m")(image, image)
    with pytest.raises(TypeError, match=r"MultiHeadAttention 'm': give query, value, key and attention_mask all as "
                                        r"symbolic tensors .* got query KerasTensor, value KerasTensor, attention_mask "
                                        r"ndarray"):
        L.MultiHeadAttention(2, 3, name="m")(query, query, attention_mask=np.ones((2, 4, 4), bool))
    with pytest.raises(TypeError, match=r"got query ndarray, value KerasTensor"):
        L.MultiHeadAttention(2, 3, name="m")(x, query)


def test_analysis_and_explain_count_the_heads_work():
    """Projections: 16 positions × 64 weights each for query, key, value and output (4,096); per head 16 × 16
    scores of 4 products and 16 × 16 sums of 4 (2 × 256 × 8 = 4,096)."""
    from convscope.models.analysis import analyze
    model = _model(cs, True)
    row = {r.name: r for r in analyze(model).layers}["mha"]
    assert (row.kind, row.macs, row.norm_ops, row.params) == ("attention", 8192, 3 * 2 * 256, 4 * (64 + 8))
    text = "\n".join(line for section in cs.explain(model).layer("mha").sections for line in section["lines"])
    assert "2 heads attend from each of the query's 16 positions to the value's 16 (key_dim 4, value_dim 4)" in text
    assert "MACs = the projections' 4,096 + 2 heads × 16·16 scores × (key_dim 4 + value_dim 4) = 8,192" in text
    assert "헤드 2개가 쿼리의 위치 16개" in str(cs.explain(model, lang="ko"))


class _Encoder:
    """A subclassed model holding a Dense and a MultiHeadAttention (`call` on a tape in convscope)."""

    @staticmethod
    def build(lib):
        class Encoder(lib.Model):
            def __init__(self):
                super().__init__()
                self.proj = lib.layers.Dense(6)
                self.mha = lib.layers.MultiHeadAttention(num_heads=2, key_dim=3)
                self.head = lib.layers.Dense(2)

            def call(self, x, training=False):
                h = self.proj(x)
                return self.head(self.mha(h, h, training=training))
        return Encoder()


def test_inside_a_subclassed_model_it_trains_as_keras(keras):
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((4, 5, 3)).astype("float32"), rng.standard_normal((4, 5, 2)).astype("float32")
    ours, theirs = _Encoder.build(cs), _Encoder.build(keras)
    theirs(x)
    ours(x)
    weights = [rng.standard_normal(w.shape).astype("float32") * 0.5 for w in theirs.get_weights()]
    theirs.set_weights(weights)
    ours.set_weights(weights)
    for model in (ours, theirs):
        model.compile(optimizer="sgd", loss="mse")
        model.train_on_batch(x, y)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, keras.ops.convert_to_numpy(b), rtol=1e-4, atol=1e-6)
    assert "multi_head_attention" in str(cs.explain(ours))


def test_a_keras_file_calling_it_with_keyword_query_and_value_loads(keras, tmp_path):
    x = keras.Input((5, 4))
    theirs = keras.Model(x, keras.layers.MultiHeadAttention(num_heads=2, key_dim=2, name="mha")(query=x, value=x))
    theirs.save(tmp_path / "kw.keras")
    ours = cs.models.load_model(tmp_path / "kw.keras")
    data = np.random.default_rng(0).standard_normal((2, 5, 4)).astype("float32")
    np.testing.assert_allclose(ours.predict(data, verbose=0), keras.ops.convert_to_numpy(theirs(data)), rtol=1e-5,
                               atol=1e-6)


def test_the_analysis_tells_the_mask_from_the_key():
    from convscope.models.analysis import analyze
    query, value, mask = cs.Input((2, 4)), cs.Input((50, 4)), cs.Input((2, 50), dtype="bool")
    layer = L.MultiHeadAttention(num_heads=1, key_dim=2, name="mha")
    plain = cs.Model([query, value], layer(query, value))
    masked = cs.Model([query, value, mask], L.MultiHeadAttention(num_heads=1, key_dim=2, name="mha")(
        query, value, attention_mask=mask))
    assert analyze(plain).layers[-1].macs == analyze(masked).layers[-1].macs > 0


def test_a_fully_masked_query_row_as_keras_default_path(keras):
    """No scores asked, no dropout, 3-D inputs: Keras' dot_product_attention, whose fully masked row keeps its
    uniform weights (with scores asked, Keras zeroes them: both paths as Keras)."""
    rng = np.random.default_rng(4)
    ours, theirs, (q, v) = _pair(keras, rng, [(2, 3, 4), (2, 5, 4)], num_heads=2, key_dim=2)
    mask = np.ones((2, 3, 5), bool)
    mask[0, 1] = False
    np.testing.assert_allclose(ours(q, v, attention_mask=mask),
                               keras.ops.convert_to_numpy(theirs(q, v, attention_mask=mask)), rtol=1e-5, atol=1e-5)
    out, scores = ours(q, v, attention_mask=mask, return_attention_scores=True)
    their_out, their_scores = theirs(q, v, attention_mask=mask, return_attention_scores=True)
    np.testing.assert_allclose(out, keras.ops.convert_to_numpy(their_out), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(scores, keras.ops.convert_to_numpy(their_scores), atol=1e-7)
