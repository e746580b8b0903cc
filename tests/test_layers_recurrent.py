"""SimpleRNN, LSTM, GRU, RNN over a cell and Bidirectional against Keras 3.15.1 on torch's autograd: outputs, final
states and gradients of the inputs and every weight; configs both ways; `.keras` files of CNN + RNN models loaded,
trained a step and saved back; a cell of the user's (Keras' guide's MinimalRNNCell); dropout; the checks."""

import numpy as np
import pytest

import convscope as cs
from convscope import layers as L
from _oracle import (assert_backward_matches_torch, assert_layer_config_matches_keras_both_ways,
                     assert_step_and_file_match_keras, assert_trains_as_keras)

CASES = [
    ("SimpleRNN", dict(units=3)),
    ("SimpleRNN", dict(units=2, activation="relu", return_sequences=True, go_backwards=True)),
    ("LSTM", dict(units=3, return_sequences=True)),
    ("LSTM", dict(units=2, activation="relu", recurrent_activation="hard_sigmoid", return_state=True,
                  go_backwards=True)),
    ("LSTM", dict(units=3, use_bias=False, unit_forget_bias=False, return_state=True, return_sequences=True)),
    ("GRU", dict(units=3, return_state=True)),
    ("GRU", dict(units=2, reset_after=False, go_backwards=True, return_sequences=True)),
    ("GRU", dict(units=3, use_bias=False)),
]


def _as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else [value]


@pytest.mark.parametrize("name,kwargs", CASES)
def test_outputs_states_and_gradients_match_keras_through_autograd(keras, name, kwargs):
    import torch
    rng = np.random.default_rng(len(kwargs))
    x = rng.normal(size=(3, 5, 4)).astype("float32")
    theirs, ours = getattr(keras.layers, name)(**kwargs), getattr(L, name)(**kwargs)
    theirs(x)
    ours(x)
    weights = [rng.normal(size=np.shape(w)).astype("float32") * 0.5 for w in theirs.get_weights()]
    theirs.set_weights(weights)
    ours.set_weights(weights)
    assert [v.name.split("/")[-1] for v in ours.weights] == [v.path.split("/")[-1] for v in theirs.weights]
    outputs, ctx = ours.forward(x, training=True)
    tensor = torch.tensor(x, requires_grad=True)
    assert_backward_matches_torch(ours, ctx, _as_list(outputs), theirs, _as_list(theirs(tensor, training=True)),
                                  [tensor], rng, tol=1e-6)


@pytest.mark.parametrize("name,kwargs", CASES[::2] + [
    ("LSTM", dict(units=4, kernel_regularizer="l2", recurrent_regularizer="l1", bias_regularizer="l2",
                  activity_regularizer="l1", kernel_constraint="non_neg", recurrent_constraint="unit_norm",
                  bias_constraint="max_norm", dropout=0.2, recurrent_dropout=0.1, seed=7,
                  kernel_initializer="he_normal", recurrent_initializer="glorot_uniform", bias_initializer="ones"))])
def test_config_matches_keras_both_ways(keras, name, kwargs):
    assert_layer_config_matches_keras_both_ways(keras, name, kwargs)


def _model(lib, merge_mode="concat"):
    """A CNN + RNN sequence model (as an OCR or video model is): Conv1D features, a Bidirectional LSTM over them,
    a Bidirectional GRU, and a backwards SimpleRNN beside them."""
    sequence = lib.Input((6, 4))
    features = lib.layers.Conv1D(5, 3, padding="same", activation="relu")(sequence)
    context = lib.layers.Bidirectional(lib.layers.LSTM(4, return_sequences=True), merge_mode=merge_mode)(features)
    summary = lib.layers.Bidirectional(lib.layers.GRU(3))(context)
    backwards = lib.layers.SimpleRNN(2, go_backwards=True)(features)
    return lib.Model(sequence, lib.layers.Dense(2)(lib.layers.Concatenate()([summary, backwards])))


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "ave", "mul"])
def test_a_keras_model_loads_trains_a_step_and_saves_as_keras(keras, tmp_path, merge_mode):
    keras.utils.set_random_seed(3)
    theirs = _model(keras, merge_mode)
    theirs.save(tmp_path / "theirs.keras")
    ours = cs.models.load_model(tmp_path / "theirs.keras")
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(4, 6, 4)).astype("float32"), rng.normal(size=(4, 2)).astype("float32")
    assert_step_and_file_match_keras(keras, ours, theirs, x, y, "mse", tmp_path)
    assert [type(layer).__name__ for layer in _model(cs, merge_mode).layers] == [type(layer).__name__
                                                                                for layer in ours.layers]


def test_bidirectional_without_merging_and_with_states_matches_keras(keras):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    theirs = keras.layers.Bidirectional(keras.layers.LSTM(2, return_sequences=True, return_state=True),
                                        merge_mode=None)
    ours = L.Bidirectional(L.LSTM(2, return_sequences=True, return_state=True), merge_mode=None)
    expected = theirs(x)
    ours(x)
    ours.set_weights([np.asarray(w) for w in theirs.get_weights()])
    got = ours(x)
    assert len(got) == len(expected) == 6                  # forward, backward, then 2 states of each
    for mine, reference in zip(got, expected):
        np.testing.assert_allclose(mine, keras.ops.convert_to_numpy(reference), rtol=1e-5, atol=1e-6)
    assert ours.compute_output_shape((None, 5, 3)) == [tuple(s) for s in theirs.compute_output_shape((None, 5, 3))]


def _minimal_cell(lib):
    """Keras' guide's MinimalRNNCell (keras.io/api/layers/recurrent_layers/rnn): a cell of the user's."""
    class MinimalRNNCell(lib.layers.Layer):
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.state_size = units

        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(input_shape[-1], self.units), initializer="uniform", name="kernel")
            self.recurrent_kernel = self.add_weight(shape=(self.units, self.units), initializer="uniform",
                                                    name="recurrent_kernel")

        def call(self, inputs, states):
            prev_output = states[0]
            h = lib.ops.matmul(inputs, self.kernel)
            output = h + lib.ops.matmul(prev_output, self.recurrent_kernel)
            return output, [output]
    return MinimalRNNCell


def test_an_rnn_over_a_cell_of_the_users_trains_as_keras(keras):
    def build(lib):
        inputs = lib.Input((5, 3))
        return lib.Model(inputs, lib.layers.Dense(1)(lib.layers.RNN(_minimal_cell(lib)(4))(inputs)))
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(6, 5, 3)).astype("float32"), rng.normal(size=(6, 1)).astype("float32")
    assert_trains_as_keras(keras, build(keras), build(cs), x, y, lambda lib: lib.optimizers.SGD(0.05), batch_size=3)


def test_lstm_starts_its_forget_gate_bias_at_one_and_dropout_acts_in_training_only():
    layer = L.LSTM(3, dropout=0.5, recurrent_dropout=0.5, seed=1)
    x = np.random.default_rng(0).normal(size=(2, 4, 5)).astype("float32")
    inference = layer(x)
    np.testing.assert_array_equal(layer.weights[2].value, np.r_[np.zeros(3), np.ones(3), np.zeros(6)])
    assert np.array_equal(layer(x), inference) and not np.allclose(layer(x, training=True), inference)
    assert layer.units == 3 and layer.dropout == 0.5       # the cell's arguments read on the layer, as Keras


def test_arguments_are_checked_by_name():
    with pytest.raises(ValueError, match=r"LSTM 'r': argument `stateful=True` is not supported"):
        L.LSTM(2, stateful=True, name="r")
    with pytest.raises(ValueError, match=r"argument `dropout` must be a number in \[0, 1\), got 1.5"):
        L.GRU(2, dropout=1.5)
    with pytest.raises(TypeError, match=r"argument `units` must be a positive int, got '2'"):
        L.SimpleRNN("2")
    with pytest.raises(ValueError, match=r"LSTM 'r': expected inputs of shape \(batch, time, features\), got "
                                         r"\(None, 4\)"):
        L.LSTM(2, name="r")(L.Input((4,)))
    with pytest.raises(TypeError, match=r"Bidirectional 'b': argument `layer` must be a recurrent layer .* got "
                                        r"Dense"):
        L.Bidirectional(L.Dense(2), name="b")
    with pytest.raises(ValueError, match=r"argument `merge_mode` must be one of"):
        L.Bidirectional(L.LSTM(2), merge_mode="max")
    with pytest.raises(ValueError, match=r"Bidirectional 'b': `layer` and `backward_layer` must have different "
                                         r"go_backwards, got False for both"):
        L.Bidirectional(L.LSTM(2), backward_layer=L.LSTM(2), name="b")
    with pytest.raises(ValueError, match=r"GRU 'r': the inputs have no time steps \(shape \(2, 0, 4\)\)"):
        L.GRU(2, name="r")(np.ones((2, 0, 4), np.float32))
    x, states = np.ones((2, 3, 4), np.float32), [np.zeros((2, 2), np.float32)] * 2
    with pytest.raises(ValueError, match=r"LSTM 'r': argument `initial_state` is not supported yet"):
        L.LSTM(2, name="r")(x, initial_state=states)
    with pytest.raises(ValueError, match=r"Bidirectional 'b': argument `mask` is not supported yet"):
        L.Bidirectional(L.LSTM(2), name="b")(x, mask=np.ones((2, 3), bool))


def test_analysis_and_explanations_count_the_gates_over_the_time_steps():
    """The Bidirectional LSTM(4) on 5 features over 6 steps: 2 × 4 gates × 4 units × (5 + 4 + 1) = 320 parameters,
    2 × 6 × 4 × 4 × (5 + 4) = 1,728 MACs; the GRU(3) (reset_after: two biases) on its 8 features: 2 × 3 × 3 ×
    (8 + 3 + 2) = 234 and 2 × 6 × 3 × 3 × 11 = 1,188; SimpleRNN(2): 16 and 84.  A cell of the user's has no
    formula: the explanation says so (it once said "Shape unchanged" and "No arithmetic")."""
    from convscope.models.analysis import analyze
    model = _model(cs)
    rows = {row.name: row for row in analyze(model).layers}
    numbers = [(rows[name].params, rows[name].macs) for name in ("bidirectional", "bidirectional_1", "simple_rnn")]
    assert numbers == [(320, 1728), (234, 1188), (16, 84)]
    lines = "\n".join(line for section in cs.explain(model).layer("bidirectional").sections
                      for line in section["lines"])
    assert "LSTM runs its cell over the 6 time steps forwards and backwards, 4 units: (None, 6, 5) → (None, 6, 8)" \
        in lines
    assert "2 × gates × units × (in + units + bias) = 2 × 4 × 4 × (5 + 4 + 1) = 320" in lines
    assert "MACs = 2 × steps × gates × units × (in + units) = 2 × 6 × 4 × 4 × (5 + 4) = 1,728" in lines
    assert "(입력 + 유닛 + 편향 2개) = 2 × 3 × 3 × (8 + 3 + 2) = 234" in str(cs.explain(model, lang="ko"))
    unknown = cs.Input((None, 8))
    lines = "\n".join(line for section in cs.explain(cs.Model(unknown, L.LSTM(4, name="l")(unknown))).layer("l")
                      .sections for line in section["lines"])
    assert "MACs per time step = gates × units × (in + units) = 4 × 4 × (8 + 4) = 192; times the steps" in lines
    assert "No arithmetic" not in lines
    inputs = cs.Input((5, 3))
    custom = cs.Model(inputs, L.RNN(_minimal_cell(cs)(4), name="mine")(inputs))
    lines = "\n".join(line for section in cs.explain(custom).layer("mine").sections for line in section["lines"])
    assert "RNN gives (None, 5, 3) → (None, 4) (the shape comes from running the layer" in lines
    assert "Its arithmetic is not counted: convscope has no formula for the work of RNN" in lines
    assert "연산량은 세지 않았습니다: convscope에는 RNN의 연산을 세는 식이 없습니다" in str(cs.explain(custom, lang="ko"))
