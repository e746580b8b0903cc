"""BatchNormalization [-> Add] -> ReLU in training as one op (`ops.batch_norm_act`) and one plan stage
(`plan.BatchNormReluStage`): the numbers of the layers one by one, float64 finite differences, a frozen
batch norm, and the messages of bad arguments."""

import numpy as np
import pytest

import convscope as cs
from convscope import layers as L
from convscope.models import plan
from convscope.models.plan import TRAINING, BatchNormReluStage, build_plan
from convscope.ops import batch_norm_act as ba, compiled, normalization as bn
from _gradcheck import numerical_gradient

CONFIGS = [  # (shape, axis, gamma/beta present, residual)
    ((6, 5, 5, 16), 3, (True, True), False),
    ((6, 5, 5, 16), 3, (True, True), True),
    ((4, 3, 7, 3), 3, (False, True), True),
    ((4, 3, 3, 130), 3, (True, False), False),
    ((9, 33), 1, (True, True), True),
    ((3, 8, 4, 4), 1, (True, True), True),         # channels first
    ((2, 6, 6, 1), 3, (False, False), False),
]


def _arrays(shape, axis, parts, residual, dtype, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(dtype)
    channels = shape[axis]
    gamma = rng.standard_normal(channels).astype(dtype) if parts[0] else None
    beta = rng.standard_normal(channels).astype(dtype) if parts[1] else None
    res = rng.standard_normal(shape).astype(dtype) if residual else None
    return x, gamma, beta, res, rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("max_value", [None, 0.8])
@pytest.mark.parametrize("use_kernels", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, axis, parts, residual", CONFIGS)
def test_the_fused_op_gives_the_layers_numbers_one_by_one(shape, axis, parts, residual, dtype, use_kernels,
                                                          max_value):
    if use_kernels and not compiled.available():
        pytest.skip("the compiled path needs numba")
    x, gamma, beta, res, grad = _arrays(shape, axis, parts, residual, dtype, len(shape) + shape[axis])
    with compiled.use_compiled(use_kernels):
        y, ctx, mean, var = ba.batch_norm_relu_train(x, gamma, beta, axis, 1e-3, res, max_value)
        grads = ba.batch_norm_relu_backward(grad, ctx)
        ry, rctx, rmean, rvar = ba.batch_norm_relu_reference(x, gamma, beta, axis, 1e-3, res, max_value)  # same BN
        expected = ba.batch_norm_relu_backward_reference(grad, rctx)
    assert ctx["path"] == ("compiled" if use_kernels else "reference")
    tolerance = dict(rtol=2e-5, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(y, ry)                  # the same operations in the same order
    np.testing.assert_allclose(mean, rmean, **tolerance)
    np.testing.assert_allclose(var, rvar, **tolerance)
    assert y.dtype == dtype and (y >= 0).all() and (y == 0).any()
    assert max_value is None or (y.max() == np.asarray(max_value, dtype) and (y == y.max()).sum() > 1)
    for got, want in zip(grads, expected):
        assert (got is None) == (want is None)
        if want is not None:
            assert got.dtype == dtype
            np.testing.assert_allclose(got, want, **tolerance)
    assert (grads[1] is None) == (gamma is None) and (grads[2] is None) == (beta is None)
    assert (grads[3] is None) == (not residual)


@pytest.mark.parametrize("use_kernels", [True, False])
@pytest.mark.parametrize("residual, max_value", [(False, None), (True, None), (True, 0.7)])
def test_the_fused_gradients_match_float64_finite_differences(residual, max_value, use_kernels):
    if use_kernels and not compiled.available():
        pytest.skip("the compiled path needs numba")
    x, gamma, beta, res, grad = _arrays((3, 3, 2, 4), 3, (True, True), residual, np.float64, 3)

    def loss():
        with compiled.use_compiled(use_kernels):
            return float((ba.batch_norm_relu_train(x, gamma, beta, 3, 1e-3, res, max_value)[0] * grad).sum())

    with compiled.use_compiled(use_kernels):
        _, ctx, _, _ = ba.batch_norm_relu_train(x, gamma, beta, 3, 1e-3, res, max_value)
        grad_x, grad_gamma, grad_beta, grad_res = ba.batch_norm_relu_backward(grad, ctx)
    for analytic, value in ((grad_x, x), (grad_gamma, gamma), (grad_beta, beta)) + (
            ((grad_res, res),) if residual else ()):
        np.testing.assert_allclose(analytic, numerical_gradient(loss, value), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("max_value", [None, 6.0])
def test_a_nan_reaches_the_output_and_the_gradients_as_the_layers_send_it(max_value):
    """A plain ReLU keeps a NaN, a capped one (Keras' ReLU(max_value)) gives 0 for it: as the layers."""
    x, gamma, beta, res, grad = _arrays((4, 3, 3, 16), 3, (True, True), True, np.float32, 7)
    x[1, 2, 0, 5] = np.nan
    grad[0, 0, 0, 3] = np.inf
    with np.errstate(invalid="ignore"):          # inf - inf in the sums, as the layers one by one
        y, ctx, _, _ = ba.batch_norm_relu_train(x, gamma, beta, 3, 1e-3, res, max_value)
        ry, rctx, _, _ = ba.batch_norm_relu_reference(x, gamma, beta, 3, 1e-3, res, max_value)
        grads = ba.batch_norm_relu_backward(grad, ctx)
        expected = ba.batch_norm_relu_backward_reference(grad, rctx)
    np.testing.assert_array_equal(y, ry)
    assert np.isnan(y[..., 5]).all() if max_value is None else (y[..., 5] == 0).all()
    for got, want in zip(grads, expected):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("max_value", [None, 0.8])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_masked_kernels_compute_in_the_arrays_dtype(dtype, max_value, residual):
    """The ReLU's mask applied inside the batch norm's backward kernels (recomputed from x there) gives, to the
    bit, the plain kernels' gradient of the output gradient masked where 0 < y [< max_value], both in x's
    dtype (not float64 for float32 x)."""
    if not compiled.available():
        pytest.skip("the compiled path needs numba")
    x, gamma, beta, res, grad = _arrays((8, 6, 6, 16), 3, (True, True), residual, dtype, 11)
    y, ctx, _, _ = ba.batch_norm_relu_train(x, gamma, beta, 3, 1e-3, res, max_value)
    assert ctx["path"] == "compiled"
    grad_x, _, _, grad_residual = ba.batch_norm_relu_backward(grad, ctx)
    gate = (y > 0) & (y < (np.inf if max_value is None else np.asarray(max_value, dtype)))
    masked = grad * gate.astype(dtype)
    plain_x = bn._backward_compiled(masked, ctx["norm"], bn._count(x, 3))[0]
    assert grad_x.dtype == dtype
    np.testing.assert_array_equal(grad_x, plain_x)
    if residual:
        np.testing.assert_array_equal(grad_residual, masked)


@pytest.mark.parametrize("residual", [False, True])
def test_the_blocks_claimed_by_any_number_of_threads_give_the_same_bits(residual, monkeypatch):
    """The kernels' rows go in blocks of `CLAIM_BYTES` that the threads claim (`run_claimed`), each block's sums
    its own: on 1, 2 or 3 threads the batch statistics and all the gradients have the same bits (float64: the
    per-thread partial sums of fixed halves gave other bits on other thread counts), and the reference's numbers."""
    if not compiled.available():
        pytest.skip("the compiled path needs numba")
    from convscope.ops import parallel
    x, gamma, beta, res, grad = _arrays((16, 9, 9, 8), 3, (True, True), residual, np.float64, 5)
    x += 1e3                                                     # a large mean: the shifted sums' case
    monkeypatch.setattr(bn, "CLAIM_BYTES", 4096)                 # 20 blocks of 8 rows of 64 values
    monkeypatch.setattr(bn, "BLOCK_BYTES", 0)                    # never alone
    counts, run = [], parallel.run_claimed
    monkeypatch.setattr(bn, "run_claimed", lambda count, work, alone: counts.append((count, alone))
                        or run(count, work, alone=alone))
    results = []
    for threads in (1, 2, 3):
        monkeypatch.setattr(parallel, "worker_count", lambda: threads)
        y, ctx, mean, var = ba.batch_norm_relu_train(x, gamma, beta, 3, 1e-3, res)
        results.append((y, mean, var) + tuple(value for value in ba.batch_norm_relu_backward(grad, ctx)
                                              if value is not None))
    assert set(counts) == {(20, False)} and len(counts) == 3 * 4
    for other in results[1:]:
        for ours, first in zip(other, results[0]):
            np.testing.assert_array_equal(ours, first)
    with compiled.use_compiled(False):                           # the NumPy reference
        y_ref, ctx_ref, mean_ref, var_ref = ba.batch_norm_relu_reference(x, gamma, beta, 3, 1e-3, res)
        expected = (y_ref, mean_ref, var_ref) + tuple(value for value in ba.batch_norm_relu_backward_reference(
            grad, ctx_ref) if value is not None)
    assert ctx_ref["path"] == "reference" and ctx_ref["norm"].get("centered") is not None
    for ours, reference in zip(results[0], expected):
        np.testing.assert_allclose(ours, reference, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("residual", [False, True])
def test_the_context_keeps_y_only_where_the_backward_reads_it(residual):
    """Without a residual the compiled backward recomputes the ReLU's mask from x: the context holds no
    copy or reference of y (a training step would keep every such output alive until its backward)."""
    if not compiled.available():
        pytest.skip("the compiled path needs numba")
    x, gamma, beta, res, _ = _arrays((8, 6, 6, 16), 3, (True, True), residual, np.float32, 12)
    y, ctx, _, _ = ba.batch_norm_relu_train(x, gamma, beta, 3, 1e-3, res)
    held = [value for value in list(ctx.values()) + list(ctx["norm"].values()) if isinstance(value, np.ndarray)]
    assert any(value is y for value in held) == residual
    assert not any(np.may_share_memory(value, y) for value in held if value is not y)


def test_bad_arguments_name_the_op_the_argument_and_what_was_expected():
    x, gamma, beta, _, grad = _arrays((2, 3, 3, 4), 3, (True, True), False, np.float32, 1)
    with pytest.raises(ValueError, match=r"batch_norm_relu_train: argument `residual` must have the input's "
                                         r"shape \(2, 3, 3, 4\), got \(2, 3, 3, 5\)"):
        ba.batch_norm_relu_train(x, gamma, beta, 3, 1e-3, np.zeros((2, 3, 3, 5), np.float32))
    _, ctx, _, _ = ba.batch_norm_relu_train(x, gamma, beta, 3, 1e-3)
    with pytest.raises(ValueError, match=r"batch_norm_relu_backward: argument `grad_y` must have the output's "
                                         r"shape \(2, 3, 3, 4\), got \(2, 3, 3\)"):
        ba.batch_norm_relu_backward(grad[..., 0], ctx)
    with pytest.raises(TypeError, match="batch_norm_relu_train: argument `residual`"):
        ba.batch_norm_relu_train(x, gamma, beta, 3, 1e-3, "ones")
    with pytest.raises(ValueError, match=r"batch_norm_relu_train: argument `max_value` must be None or a number "
                                         r">= 0, got -1.0"):
        ba.batch_norm_relu_train(x, gamma, beta, 3, 1e-3, None, -1.0)


def _residual_model():
    inputs = cs.Input((8, 8, 3), name="image")
    x = L.Conv2D(6, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(6.0, name="stem_relu")(x)
    y = L.Conv2D(6, 3, padding="same", name="conv1")(x)
    y = L.BatchNormalization(momentum=0.9, name="bn1")(y)
    y = L.Activation("relu", name="relu1")(y)
    y = L.Conv2D(6, 3, padding="same", name="conv2")(y)
    y = L.BatchNormalization(center=False, name="bn2")(y)
    x = L.Add(name="add")([y, x])
    x = L.ReLU(name="out_relu")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return cs.Model(inputs, L.Dense(3, name="head")(x), name="block")


def _twins(monkeypatch, build):
    """(model with the fused training plan, the same weights with the layers one by one)."""
    fused, reference = build(), build()
    rng = np.random.default_rng(4)
    fused.set_weights([w + rng.normal(0, 0.2, w.shape).astype(w.dtype) * (0 if "variance" in v.name else 1)
                       for w, v in zip(fused.get_weights(), fused.weights)])
    reference.set_weights(fused.get_weights())
    with monkeypatch.context() as patch:
        patch.setattr(plan, "_norm_relu_run", lambda *args: 0)
        reference._steps(training=True, keep=True)                # its plan made without the fusion
    return fused, reference


def _gradients(model, x, grad):
    outputs, execution = model.run([x], training=True, keep=True)
    _, pairs = model.backward_graph(execution, [grad])
    return outputs[0], {variable.name: value for variable, value in pairs}


@pytest.mark.parametrize("frozen", [False, True])
def test_a_residual_block_trains_with_the_fused_stages_as_with_the_layers_one_by_one(monkeypatch, frozen):
    fused, reference = _twins(monkeypatch, _residual_model)
    stages = [[n.layer.name for n in step.nodes] for step in fused._steps(training=True, keep=True)
              if isinstance(step.stage, BatchNormReluStage)]
    assert stages == [["stem_bn", "stem_relu"], ["bn1", "relu1"], ["bn2", "add", "out_relu"]]
    assert not any(isinstance(step.stage, BatchNormReluStage) for step in reference._steps(training=True, keep=True))
    if frozen:                                  # frozen after the plan was made: inference-mode batch norms
        for model in (fused, reference):
            model.get_layer("bn2").trainable = False
    rng = np.random.default_rng(5)
    x = rng.standard_normal((5, 8, 8, 3)).astype(np.float32)
    grad = rng.standard_normal((5, 3)).astype(np.float32)
    out, grads = _gradients(fused, x, grad)
    expected_out, expected = _gradients(reference, x, grad)
    np.testing.assert_allclose(out, expected_out, rtol=1e-5, atol=1e-6)
    assert sorted(grads) == sorted(expected)
    scale = max(np.abs(value).max() for value in expected.values())
    for name, value in expected.items():     # a bias before a batch norm: a gradient of 0 plus rounding
        np.testing.assert_allclose(grads[name], value, rtol=1e-4, atol=2e-6 * scale, err_msg=name)
    for ours, theirs in zip(fused.weights, reference.weights):      # the moving statistics moved alike
        np.testing.assert_allclose(ours.value, theirs.value, rtol=1e-6, atol=1e-7, err_msg=ours.name)


def test_a_sequential_fuses_batch_norm_relu_in_training_only_where_the_rule_holds():
    def build(regularizer=None):
        return cs.Sequential([cs.Input((6, 6, 2)), L.Conv2D(4, 3), L.BatchNormalization(),
                              L.ReLU(activity_regularizer=regularizer), L.Conv2D(3, 2), L.BatchNormalization(),
                              L.ReLU(max_value=6.0), L.BatchNormalization(), L.ReLU(negative_slope=0.1),
                              L.Flatten(), L.Dense(2)])

    assert [type(stage).__name__ for stage in build_plan(build().layers, TRAINING)] == [
        "LayerStage", "BatchNormReluStage", "LayerStage", "BatchNormReluStage", "LayerStage", "LayerStage",
        "LayerStage", "LayerStage"]
    assert [len(stage.layers) for stage in build_plan(build("l2").layers, TRAINING)] == [1, 1, 1, 1, 2, 1, 1, 1, 1]
    model, reference = build(), build()
    reference.set_weights(model.get_weights())
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((7, 6, 6, 2)).astype(np.float32), rng.standard_normal((7, 2)).astype(np.float32)
    out, contexts = x, []
    for layer in reference.layers:                      # the layers one by one, each with its own ctx
        out, ctx = layer.forward(out, training=True)
        contexts.append(ctx)
    grad, grads = 2 * (out - y) / out.size, {}
    for layer, ctx in zip(reversed(reference.layers), reversed(contexts)):
        grad, pairs = layer.backward(ctx, grad)
        grads.update((id(variable), value) for variable, value in pairs)
    model.compile(optimizer="sgd", loss="mse")
    model.train_on_batch(x, y)
    scale = max(np.abs(value).max() for value in grads.values())
    for ours, theirs in zip(model.trainable_weights, reference.trainable_weights):
        np.testing.assert_allclose(ours.grad, grads[id(theirs)], rtol=1e-4, atol=2e-6 * scale, err_msg=ours.name)
    for ours, theirs in zip(model.non_trainable_weights, reference.non_trainable_weights):
        np.testing.assert_allclose(ours.value, theirs.value, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("residual, max_value", [(False, None), (True, None), (True, 6.0)])
def test_the_fused_op_matches_pytorch_forward_and_backward(residual, max_value):
    """The oracle: PyTorch's batch_norm (training, batch statistics) [+ residual] -> relu / hardtanh(0, 6)."""
    torch = pytest.importorskip("torch")
    x, gamma, beta, res, grad = _arrays((8, 5, 5, 12), 3, (True, True), residual, np.float32, 11)
    gamma *= 4                                         # some values past the cap of 6
    y, ctx, mean, var = ba.batch_norm_relu_train(x, gamma, beta, 3, 1e-3, res, max_value)
    grads = ba.batch_norm_relu_backward(grad, ctx)

    def nchw(a):
        return torch.tensor(a.transpose(0, 3, 1, 2), requires_grad=True)
    tx, tg, tb = nchw(x), torch.tensor(gamma, requires_grad=True), torch.tensor(beta, requires_grad=True)
    z = torch.nn.functional.batch_norm(tx, None, None, tg, tb, training=True, eps=1e-3)
    tr = nchw(res) if residual else None
    if residual:
        z = z + tr
    ty = torch.relu(z) if max_value is None else torch.nn.functional.hardtanh(z, 0.0, max_value)
    ty.backward(torch.tensor(grad.transpose(0, 3, 1, 2)))
    np.testing.assert_allclose(y, ty.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-5, atol=2e-5)
    np.testing.assert_allclose(mean, x.mean(axis=(0, 1, 2)), rtol=1e-5, atol=1e-5)
    assert max_value is None or ((y == max_value).any() and (y == 0).any())
    expected = [tx.grad.numpy().transpose(0, 2, 3, 1), tg.grad.numpy(), tb.grad.numpy()] + (
        [tr.grad.numpy().transpose(0, 2, 3, 1)] if residual else [None])
    for got, want in zip(grads, expected):
        if want is None:
            assert got is None
        else:
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
