"""A Dense layer at inference (ops.linear.prepare_dense_inference, plan.DenseStage): each path of its ordered
list against the float64 product and bitwise against the unprepared ops on random shapes, its checks, and the
plan's stage: the layer's own bits, weights changed between predicts seen, a subclass's own forward kept."""

import numpy as np
import pytest

from _paths import assert_declined, recording
from convscope import layers as L
from convscope.models import Sequential
from convscope.models.plan import INFERENCE, DenseStage, build_plan
from convscope.ops import bias_activation_forward, compiled, dense_forward, few_columns, linear

pytestmark = pytest.mark.usefixtures("kernel_path")


def _case(rng, rows_shape, depth, units, dtype, with_bias, relu_input=False):
    x = rng.standard_normal(rows_shape + (depth,)).astype(dtype)
    x = np.maximum(x, 0) if relu_input else x               # half zeros, which the few-rows product skips
    kernel = (rng.standard_normal((depth, units)) / np.sqrt(depth)).astype(dtype)
    bias = rng.standard_normal(units).astype(dtype) if with_bias else None
    return x, kernel, bias


def _prepared(x, kernel, bias, activation):
    """`prepare_dense_inference`'s run, and the paths it asked ((name, applies) pairs)."""
    asked = []
    original = linear._DENSE_PATHS
    try:
        linear._DENSE_PATHS = recording(original, asked)
        return linear.prepare_dense_inference(x, kernel, bias, activation), asked
    finally:
        linear._DENSE_PATHS = original


def _float64_dense(x, kernel, bias, activation):
    """The layer in float64: x @ kernel + bias, then the ReLU where asked."""
    expected = np.asarray(x, np.float64) @ np.asarray(kernel, np.float64) + (0 if bias is None else bias)
    return np.maximum(expected, 0) if activation == "relu" else expected


@pytest.mark.parametrize("seed", range(12))
def test_a_prepared_dense_matches_the_float64_product_and_the_unprepared_ops_bits(seed, monkeypatch):
    """1-4 rows by a small matrix take the finished rows (one compiled call) where compiled ops are on; more rows
    by a float32 matrix of up to 32 columns the few-columns product (its epilogue in its registers); other
    products, or the NumPy path, the product then the epilogue: the bits of `dense_forward` then
    `bias_activation_forward`, on 2-D and 3-D inputs, float32 and float64, with and without a bias."""
    rng = np.random.default_rng(seed)
    rows_shape = [(1,), (3,), (2, 2), (7,), (2, 5), (33,)][seed % 6]
    dtype = (np.float32, np.float64)[seed % 2]
    activation = ("linear", "relu")[seed // 2 % 2]
    x, kernel, bias = _case(rng, rows_shape, int(rng.integers(1, 300)), int(rng.integers(1, 70)), dtype,
                            seed % 3 != 2, relu_input=seed % 4 in (1, 2))
    asked = []
    monkeypatch.setattr(linear, "_DENSE_PATHS", recording(linear._DENSE_PATHS, asked))
    run = linear.prepare_dense_inference(x, kernel, bias, activation)
    narrow = dtype == np.float32 and kernel.shape[1] <= few_columns.MAX_COLUMNS and compiled.active()
    few = int(np.prod(rows_shape)) <= 4 and compiled.active()
    assert asked[0] == ("finished_rows", few)
    assert few or ("few_columns", narrow) in asked
    y = run(x, kernel, bias)
    expected = np.asarray(x, np.float64) @ kernel + (0 if bias is None else bias)
    expected = np.maximum(expected, 0) if activation == "relu" else expected
    tolerance = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    assert y.shape == rows_shape + (kernel.shape[1],) and y.dtype == dtype
    np.testing.assert_allclose(y, expected, **tolerance)
    np.testing.assert_array_equal(y, bias_activation_forward(dense_forward(x, kernel), bias, activation))


@pytest.mark.parametrize("seed", range(6))
def test_the_few_columns_match_the_float64_product_and_the_unprepared_ops_bits(seed, monkeypatch):
    """A classifier's head (1-32 float32 units) on 5-130 rows: the product with the bias and the ReLU in its
    registers, on the calling thread (or, seed 2, split by rows among two threads) — the bits of `dense_forward`
    then `bias_activation_forward`, NaN kept, with and without a bias; float64 declines it."""
    from convscope.ops import parallel
    if seed == 2:
        monkeypatch.setattr(linear, "SMALL_PRODUCT", 1 << 10)
        monkeypatch.setattr(parallel, "SMALL_PRODUCT", 1 << 10)
        monkeypatch.setattr(parallel, "worker_count", lambda: 2)
    rng = np.random.default_rng(seed)
    dtype = np.float64 if seed == 3 else np.float32
    rows = int(rng.integers(5, 131))
    activation = ("relu", "linear")[seed % 2]
    x, kernel, bias = _case(rng, (rows,), int(rng.integers(1, 1200)), int(rng.integers(1, 33)), dtype, seed != 4,
                            relu_input=seed > 1)
    x[0, int(rng.integers(0, x.shape[1]))] = np.nan if seed == 5 else x[0, 0]
    run, asked = _prepared(x, kernel, bias, activation)
    assert ("few_columns", dtype == np.float32 and compiled.active()) in asked
    y = run(x, kernel, bias)
    np.testing.assert_array_equal(y, bias_activation_forward(dense_forward(x, kernel), bias, activation))
    tolerance = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(y, _float64_dense(x, kernel, bias, activation), **tolerance)
    assert np.isnan(y[0]).all() == (seed == 5) and not np.isnan(y[1:]).any()


def test_the_finished_rows_decline_a_matrix_the_threads_stream_and_keep_nan():
    """A few rows by a matrix of `STREAMED_BYTES` or more go to `parallel.matmul` (split among the threads);
    a NaN input stays NaN through the ReLU, as NumPy's maximum keeps it."""
    rng = np.random.default_rng(0)
    x, kernel, bias = _case(rng, (2,), 1100, 1000, np.float32, True)        # 4.4 MB
    asked = []
    entries = recording(linear._DENSE_PATHS, asked)
    original = linear._DENSE_PATHS
    try:
        linear._DENSE_PATHS = entries
        run = linear.prepare_dense_inference(x, kernel, bias, "relu")
    finally:
        linear._DENSE_PATHS = original
    assert_declined(asked, "finished_rows")
    np.testing.assert_array_equal(run(x, kernel, bias), bias_activation_forward(dense_forward(x, kernel), bias, "relu"))
    x, kernel, bias = _case(rng, (1,), 8, 5, np.float32, True)
    x[0, 3] = np.nan
    assert np.isnan(linear.prepare_dense_inference(x, kernel, bias, "relu")(x, kernel, bias)).all()


@pytest.mark.parametrize("seed", range(6))
def test_the_streamed_rows_match_the_float64_product_and_the_unprepared_ops_bits(seed):
    """1-4 rows by a matrix of `STREAMED_BYTES` or more: the threads' partial products, then their sum, the bias
    and the ReLU in one compiled call — the bits of `dense_forward` (the same blocks, added in order) then
    `bias_activation_forward`, NaN kept; float32 and float64, with and without a bias.  (The NumPy path: the
    product then the epilogue, the same bits.)"""
    rng = np.random.default_rng(seed)
    dtype = (np.float32, np.float64)[seed % 2]
    rows = (1, 2, 4)[seed % 3]
    units = int(rng.integers(500, 1300))
    depth = linear.STREAMED_BYTES // (units * np.dtype(dtype).itemsize) + int(rng.integers(1, 700))
    activation = ("relu", "linear")[seed // 3]
    x, kernel, bias = _case(rng, (rows,), depth, units, dtype, seed != 4)
    x[0, int(rng.integers(0, depth))] = np.nan if seed == 5 else x[0, 0]
    run, asked = _prepared(x, kernel, bias, activation)
    assert ("streamed_rows", compiled.active()) in asked
    y = run(x, kernel, bias)
    np.testing.assert_array_equal(y, bias_activation_forward(dense_forward(x, kernel), bias, activation))
    tolerance = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(y, _float64_dense(x, kernel, bias, activation), **tolerance)
    assert np.isnan(y[0]).all() == (seed == 5)


@pytest.mark.parametrize("seed", range(6))
def test_the_finished_tiles_match_the_float64_product_and_the_unprepared_ops_bits(seed):
    """5 to `dense_tiles.max_rows()` float32 rows by a matrix of 1 MiB or more: the tiles on the threads, each
    finishing its columns (bias, ReLU) — the bits of `dense_forward` then `bias_activation_forward`, NaN kept,
    with and without a bias, with units every row's ReLU zeroed (skipped); float64 takes the product then the
    epilogue."""
    from convscope.ops import dense_tiles
    rng = np.random.default_rng(seed)
    dtype = np.float64 if seed == 3 else np.float32
    rows = int(rng.integers(dense_tiles.MIN_ROWS, max(dense_tiles.MIN_ROWS, dense_tiles.max_rows()) + 1))
    units = int(rng.integers(40, 700))
    depth = (1 << 20) // (4 * units) + int(rng.integers(1, 400))
    activation = ("relu", "linear")[seed % 2]
    x, kernel, bias = _case(rng, (rows,), depth, units, dtype, seed != 4, relu_input=seed > 1)
    x[:, rng.random(depth) < 0.2] = 0
    x[0, int(rng.integers(0, depth))] = np.nan if seed == 5 else x[0, 0]
    run, asked = _prepared(x, kernel, bias, activation)
    tiles = dense_tiles.applies(x, kernel)
    assert ("finished_tiles", tiles) in asked
    assert tiles == (dtype == np.float32 and dense_tiles.lanes() >= 8 and compiled.active())
    y = run(x, kernel, bias)
    np.testing.assert_array_equal(y, bias_activation_forward(dense_forward(x, kernel), bias, activation))
    tolerance = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(y, _float64_dense(x, kernel, bias, activation), **tolerance)
    assert np.isnan(y[0]).all() == (seed == 5) and not np.isnan(y[1:]).any()
    dead = ~(x != 0).any(axis=0)
    if tiles and dead.any():            # the units no row reads are skipped: an infinite weight there adds nothing
        kernel[dead] = np.inf
        y = run(x, kernel, bias)
        np.testing.assert_allclose(y, _float64_dense(x[:, ~dead], kernel[~dead], bias, activation), **tolerance)
        np.testing.assert_array_equal(y, bias_activation_forward(dense_forward(x, kernel), bias, activation))


def test_mixed_dtypes_compute_as_dense_forward_does():
    """A float64 input through float32 weights: computed in float64, as `dense_forward` computes it."""
    x, kernel, bias = _case(np.random.default_rng(1), (2,), 40, 9, np.float32, True)
    x = x.astype(np.float64)
    y = linear.prepare_dense_inference(x, kernel, bias, "relu")(x, kernel, bias)
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, bias_activation_forward(dense_forward(x, kernel), bias, "relu"))


def test_a_prepared_few_columns_run_takes_the_unprepared_path_for_another_layout():
    """Prepared on C-contiguous arrays, then given a strided input or kernel (a view a user passes): the bits of
    `dense_forward` (BLAS for a strided operand) then `bias_activation_forward`, not the compiled kernel's."""
    x, kernel, bias = _case(np.random.default_rng(3), (12,), 200, 10, np.float32, True)
    run, asked = _prepared(x, kernel, bias, "relu")
    assert ("few_columns", compiled.active()) in asked
    for x_given, kernel_given in [(np.asfortranarray(x), kernel), (x, np.asfortranarray(kernel)), (x, kernel)]:
        expected = bias_activation_forward(dense_forward(x_given, kernel_given), bias, "relu")
        np.testing.assert_array_equal(run(x_given, kernel_given, bias), expected)
        np.testing.assert_allclose(expected, _float64_dense(x, kernel, bias, "relu"), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("units", [10, 25, 26, 300])
def test_a_prepared_softmax_is_the_softmax_activations_bits(units):
    """"softmax": the linear product, then the softmax activation's bits (in place in the compiled rows up to
    `softmax_rows.MAX_ROW` units, else the activation's own path), the float64 softmax's values; a NaN input's
    row NaN, the others not."""
    from convscope.ops import activations
    rng = np.random.default_rng(units)
    x, kernel, bias = _case(rng, (3, 7), 40, units, np.float32, True)
    x[1, 2, 5] = np.nan
    y = linear.prepare_dense_inference(x, kernel, bias, "softmax")(x, kernel, bias)
    np.testing.assert_array_equal(y, activations.get_activation("softmax").forward(dense_forward(x, kernel, bias)))
    z = _float64_dense(x, kernel, bias, "linear")
    expected = np.exp(z - z.max(axis=-1, keepdims=True))
    np.testing.assert_allclose(y, expected / expected.sum(axis=-1, keepdims=True), rtol=1e-5, atol=1e-7)
    assert np.isnan(y[1, 2]).all() and np.isnan(y).sum() == units


@pytest.mark.parametrize("args,message", [
    (dict(activation="sigmoid"), r"prepare_dense_inference: argument `activation` must be one of \('linear', "
                                 r"'relu', 'softmax'\), got 'sigmoid'"),
    (dict(bias=np.ones(4, np.float32)), r"prepare_dense_inference: argument `bias` must have shape \(3,\) "
                                        r"\(the columns of kernel, shape \(5, 3\)\), got \(4,\)"),
    (dict(kernel=np.ones((4, 3), np.float32)), r"prepare_dense_inference: argument `kernel` must have 5 rows "
                                               r"\(the last axis of x, shape \(2, 5\)\), got kernel of shape "
                                               r"\(4, 3\)"),
    (dict(x="text"), r"prepare_dense_inference: argument `x`"),
])
def test_prepare_dense_inference_checks_its_arguments(args, message):
    given = dict(x=np.ones((2, 5), np.float32), kernel=np.ones((5, 3), np.float32), bias=None, activation="relu")
    given.update(args)
    with pytest.raises((ValueError, TypeError), match=message):
        linear.prepare_dense_inference(**given)


@pytest.mark.parametrize("activation", ["relu", "linear", "softmax", "sigmoid"])
@pytest.mark.parametrize("batch", [1, 3, 9])
def test_a_dense_layer_predicts_through_its_stage_with_the_layers_bits(activation, batch):
    """Each Dense is a `DenseStage` at inference (its activation after it where the stage does not fuse it),
    with the bits of the layers' own calls; a weight written between predicts is seen by the next."""
    model = Sequential([L.Input((6, 20)), L.Dense(30, activation="relu"), L.Flatten(),
                        L.Dense(11, activation=activation)])
    assert [type(stage).__name__ for stage in build_plan(model.layers, INFERENCE)] == [
        "DenseStage", "LayerStage", "DenseStage"]
    rng = np.random.default_rng(batch)
    x = rng.standard_normal((batch, 6, 20)).astype("float32")

    def layer_by_layer():
        out = x
        for layer in model.layers:
            out = layer(out)
        return np.asarray(out)
    np.testing.assert_array_equal(model.predict(x, verbose=0), layer_by_layer())
    model.layers[2].bias.assign(rng.standard_normal(11))
    model.layers[0].kernel.assign(rng.standard_normal((20, 30)))
    np.testing.assert_array_equal(model.predict(x, verbose=0), layer_by_layer())


def test_a_dense_subclass_with_its_own_forward_runs_it():
    """A subclass that writes its own `forward` is no `DenseStage`: the plan runs the subclass."""
    class Doubled(L.Dense):
        def forward(self, inputs, training=False):
            y, ctx = super().forward(inputs, training=training)
            return 2 * y, ctx

    model = Sequential([L.Input((4,)), Doubled(3), L.Dense(2)])
    assert [type(stage).__name__ for stage in build_plan(model.layers, INFERENCE)] == ["LayerStage", "DenseStage"]
    assert not DenseStage.takes(model.layers[0], model.layers[0].describe())
    x = np.random.default_rng(0).standard_normal((2, 4)).astype("float32")
    np.testing.assert_array_equal(model.predict(x, verbose=0), model.layers[1](model.layers[0](x)))


def test_evaluate_reads_the_last_dense_layers_preactivation_for_its_fused_loss():
    """`evaluate` runs the inference plan keeping the last stage's ctx (the crossentropy fused with the softmax
    reads its pre-activation): the last Dense gives it, and the loss is the one of `predict`'s probabilities."""
    model = Sequential([L.Input((5,)), L.Dense(8, activation="relu"), L.Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((6, 5)).astype("float32"), rng.integers(0, 3, 6)
    loss = model.evaluate(x, y, verbose=0, batch_size=6)
    probabilities = model.predict(x, verbose=0).astype(np.float64)
    np.testing.assert_allclose(loss, -np.log(probabilities[np.arange(6), y]).mean(), rtol=1e-5)


def test_strided_rows_give_the_bits_of_contiguous_ones():
    """Every other sample of a batch (a strided view): the prepared op's bits are those of the copy."""
    x, kernel, bias = _case(np.random.default_rng(4), (8,), 30, 7, np.float32, True)
    view = x[::2]
    run = linear.prepare_dense_inference(view, kernel, bias, "relu")
    np.testing.assert_array_equal(run(view, kernel, bias), run(view.copy(), kernel, bias))
    np.testing.assert_array_equal(run(view, kernel, bias), bias_activation_forward(dense_forward(view, kernel), bias,
                                                                                   "relu"))
