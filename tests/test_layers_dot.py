"""`Dot` (Keras' `layers.Dot`, `layers.dot`) against Keras 3.15.1 on torch's autograd, its shape rule and refusals,
configs and `.keras` files both ways, float64 finite differences, and ONNX Runtime for the export."""

import numpy as np
import pytest

import convscope as cs
from convscope import layers as L
from _gradcheck import assert_gradients_close, numerical_gradient
from _oracle import assert_layer_config_matches_keras_both_ways, assert_step_and_file_match_keras

# (shape of x, shape of y, axes, normalize): ints and pairs, negative axes, rank 2 against 3 and 4
CASES = [
    ((4, 3, 5), (4, 10, 3), (1, 2), False),
    ((4, 7), (4, 7), 1, True),
    ((4, 7), (4, 7), -1, False),
    ((2, 3, 4, 5), (2, 5, 6), (3, 1), True),
    ((2, 3, 4, 5), (2, 5, 6), (-1, -2), False),
    ((3, 4), (3, 6, 4), (1, 2), False),
    ((3, 4, 2), (3, 4), (1, 1), True),
    ((2, 6, 3), (2, 6, 3), -1, True),
    ((2, 6, 3), (2, 6, 3), 1, False),
]


def _keras_dot_through_autograd(keras, x, y, axes, normalize, grad):
    import torch
    tensors = [torch.tensor(a, requires_grad=True) for a in (x, y)]
    out = keras.layers.Dot(axes, normalize=normalize)(tensors)
    out.backward(torch.tensor(grad))
    return out.detach().numpy(), [t.grad.numpy() for t in tensors]


def _torch_einsum_through_autograd(x, y, axes, normalize, grad):
    """float64: torch's einsum over subscripts written out per axis (Keras computes its Dot in float32)."""
    import torch
    tensors = [torch.tensor(a, requires_grad=True) for a in (x, y)]
    a0, a1 = [(a if isinstance(a, int) else a) % t.ndim for a, t in zip(
        (axes, axes) if isinstance(axes, int) else axes, tensors)]
    xs = "b" + "".join("k" if i == a0 else "pqrs"[i] for i in range(1, x.ndim))
    ys = "b" + "".join("k" if i == a1 else "tuvw"[i] for i in range(1, y.ndim))
    out_letters = "".join(c for c in xs + ys[1:] if c not in "kb")
    inputs = [t / torch.clamp(torch.linalg.vector_norm(t, dim=a, keepdim=True), min=1e-7) if normalize else t
              for t, a in zip(tensors, (a0, a1))]
    out = torch.einsum(f"{xs},{ys}->b{out_letters}", *inputs)
    out = out.reshape(len(x), -1) if out.ndim == 1 else out
    out.backward(torch.tensor(grad))
    return out.detach().numpy(), [t.grad.numpy() for t in tensors]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("xs,ys,axes,normalize", CASES)
def test_forward_and_backward_match_keras_through_autograd(keras, xs, ys, axes, normalize, dtype):
    rng = np.random.default_rng(len(xs) * 10 + len(ys))
    x, y = rng.standard_normal(xs).astype(dtype), rng.standard_normal(ys).astype(dtype)
    layer = L.Dot(axes, normalize=normalize, dtype=dtype)
    out, ctx = layer.forward([x, y], training=True)
    grad = rng.standard_normal(out.shape).astype(dtype)
    oracle = _keras_dot_through_autograd if dtype == "float32" else \
        lambda keras, *args: _torch_einsum_through_autograd(*args)
    want, (want_x, want_y) = oracle(keras, x, y, axes, normalize, grad)
    tol = 1e-5 if dtype == "float32" else 1e-12
    assert out.shape == want.shape and out.dtype == np.dtype(dtype)
    np.testing.assert_allclose(out, want, rtol=tol, atol=tol)
    (grad_x, grad_y), weights = layer.backward(ctx, grad)
    assert weights == []
    np.testing.assert_allclose(grad_x, want_x, rtol=tol, atol=tol)
    np.testing.assert_allclose(grad_y, want_y, rtol=tol, atol=tol)
    np.testing.assert_allclose(layer([x, y]), out, rtol=0, atol=0)
    assert layer.compute_output_shape([(None,) + xs[1:], (None,) + ys[1:]]) == \
        tuple(keras.layers.Dot(axes).compute_output_shape([(None,) + xs[1:], (None,) + ys[1:]]))


def test_gradients_against_float64_finite_differences():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 4, 5))
    layer = L.Dot((2, 1), normalize=True, dtype="float64")
    out, ctx = layer.forward([x, y], training=True)
    weights = rng.standard_normal(out.shape)
    (grad_x, grad_y), _ = layer.backward(ctx, weights)
    loss = lambda: float(np.sum(layer([x, y]) * weights))  # noqa: E731
    for array, grad in ((x, grad_x), (y, grad_y)):
        assert_gradients_close(grad, numerical_gradient(loss, array))


def test_a_zero_vector_is_bounded_as_keras_bounds_it(keras):
    """normalize=True: a norm under 1e-7 (Keras' epsilon) is taken as 1e-7 — a zero vector gives 0, a tiny one its
    gradient times 1e7, as through Keras' `minimum(rsqrt(Σx²), 1 / epsilon)`.  At an exact zero vector Keras'
    gradient is NaN (0 · ∞ through rsqrt); ours is the bounded map's own, g / epsilon."""
    x = np.array([[0.0, 0.0, 0.0], [1e-9, 0.0, 0.0], [3.0, 4.0, 0.0]], np.float32)
    y = np.array([[1.0, 2.0, 2.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], np.float32)
    layer = L.Dot(-1, normalize=True)
    out, ctx = layer.forward([x, y], training=True)
    grad = np.ones(out.shape, np.float32)
    want, (want_x, want_y) = _keras_dot_through_autograd(keras, x, y, -1, True, grad)
    np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-7)
    (grad_x, grad_y), _ = layer.backward(ctx, grad)
    assert np.isnan(want_x[0]).all() and not np.isnan(grad_x).any()
    np.testing.assert_allclose(grad_x[1:], want_x[1:], rtol=1e-5)
    np.testing.assert_allclose(grad_x[0], y[0] / 3.0 * 1e7, rtol=1e-6)      # y normalized, times 1 / epsilon
    np.testing.assert_allclose(grad_y, want_y, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shapes,axes,pattern", [
    ([(None, 3, 5), (None, 4, 5)], 1, r"Dot '.*': expected equal sizes on axes 1 and 1, got shapes \(None, 3, 5\) "
                                      r"and \(None, 4, 5\): 3 against 4"),
    ([(2, 5), (3, 5)], -1, r"expected equal batch sizes, got shapes \(2, 5\) and \(3, 5\): 2 against 3"),
    ([(None, 5), (None, 5)], 0, r"Dot '.*': argument `axes`=0 must name one axis of each input other than the "
                                r"batch axis 0, got inputs of ranks \(2, 2\)"),
    ([(None, 5), (None, 5)], (1, 3), r"argument `axes`=\[1, 3\] must name one axis .* ranks \(2, 2\)"),
    ([(None, 5), (None, 5), (None, 5)], 1, r"Dot '.*': expected a list of exactly 2 input\(s\), got 3"),
    ([(None, None, 8), (None, 5, 8)], 1, r"expected equal sizes on axes 1 and 1, got shapes \(None, None, 8\) and "
                                         r"\(None, 5, 8\): None against 5"),      # Keras' build refuses it
])
def test_shapes_keras_refuses_are_refused_naming_the_layer(keras, shapes, axes, pattern):
    arrays = [np.ones(tuple(2 if d is None else d for d in shape), np.float32) for shape in shapes]
    with pytest.raises(Exception):          # Keras refuses these arrays or shapes too (its errors name neither)
        if None in shapes[0][1:]:
            keras.layers.Dot(axes).build(shapes)
        else:
            keras.layers.Dot(axes)(arrays)
    with pytest.raises(ValueError, match=pattern):
        L.Dot(axes).compute_output_shape(shapes)


def test_arrays_that_do_not_match_are_refused_naming_the_layer():
    layer = L.Dot(-1, name="sim")
    with pytest.raises(ValueError, match=r"Dot 'sim': expected equal sizes on axes 1 and 1, got shapes \(None, 3\) "
                                         r"and \(None, 4\): 3 against 4"):
        layer([np.ones((2, 3)), np.ones((2, 4))])
    with pytest.raises(ValueError, match=r"Dot 'sim': expected two inputs of rank 2 or more, got shapes \(None,\)"):
        L.Dot(-1, name="sim")([np.ones(2), np.ones(2)])


@pytest.mark.parametrize("kwargs,error,pattern", [
    (dict(axes="1"), TypeError, r"Dot '.*': argument `axes` must be an int or a pair of ints, got '1'"),
    (dict(axes=(1, 2, 3)), ValueError, r"argument `axes` must be an int or a pair of ints \(one axis of each "
                                       r"input\), got \(1, 2, 3\)"),
    (dict(axes=(1, 2.0)), TypeError, r"argument `axes` must be an int or a pair of ints, got \(1, 2.0\)"),
    (dict(axes=True), TypeError, r"argument `axes` must be an int or a pair of ints, got True"),
    (dict(axes=1, normalize="yes"), TypeError, r"Dot '.*': argument `normalize` must be a bool, got 'yes'"),
])
def test_constructor_arguments_are_checked_by_name(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        L.Dot(**kwargs)


@pytest.mark.parametrize("kwargs", [dict(axes=1), dict(axes=(1, 2), normalize=True), dict(axes=-1)])
def test_config_matches_keras_both_ways(keras, kwargs):
    ours, _ = assert_layer_config_matches_keras_both_ways(keras, "Dot", kwargs)
    assert L.LAYER_CLASSES["Dot"] is type(ours)


def _siamese(lib, normalize):
    """Two Dense branches and their per-sample dot product (cosine similarity with `normalize`), a Dense on it."""
    a, b = lib.Input((6,)), lib.Input((4, 3))
    left = lib.layers.Dense(3, name="left")(a)
    right = lib.layers.Dense(3, name="right")(b)
    similarity = lib.layers.dot([left, right], axes=(1, 2), normalize=normalize, name="similarity")
    return lib.Model([a, b], lib.layers.Dense(2, name="head")(similarity))


@pytest.mark.parametrize("normalize", [False, True])
def test_a_keras_model_with_dot_loads_trains_a_step_and_saves_as_keras(keras, tmp_path, normalize):
    keras.utils.set_random_seed(1)
    theirs = _siamese(keras, normalize)
    theirs.save(tmp_path / "theirs.keras")
    ours = cs.models.load_model(tmp_path / "theirs.keras")
    assert [type(layer).__name__ for layer in ours.layers] == [type(layer).__name__ for layer in theirs.layers]
    rng = np.random.default_rng(2)
    x = [rng.standard_normal((5, 6)).astype("float32"), rng.standard_normal((5, 4, 3)).astype("float32")]
    y = rng.standard_normal((5, 2)).astype("float32")
    assert_step_and_file_match_keras(keras, ours, theirs, x, y, "mse", tmp_path)


@pytest.mark.parametrize("normalize", [False, True])
def test_analysis_and_explain_count_the_dot_products(normalize):
    """4 outputs per sample, each a sum of 3 products: 12 MACs; normalize: 3 operations per input value."""
    from convscope.models.analysis import analyze
    model = _siamese(cs, normalize)
    row = {r.name: r for r in analyze(model).layers}["similarity"]
    assert (row.kind, row.op, row.dot_axes, row.in_channels, row.macs) == ("merge", "dot", (1, 2), 3, 12)
    assert row.norm_ops == (3 * (3 + 12) if normalize else 0)
    assert row.flops == 2 * 12 + row.norm_ops
    assert row.receptive_field is None and not row.field_known     # no union of the inputs' fields: not followed
    english = "\n".join(line for section in cs.explain(model).layer("similarity").sections for line in section["lines"])
    assert "input 1's axis 1 with input 2's axis 2 (3 pairs summed): (None, 3) · (None, 4, 3)" in english
    assert "MACs = outputs × in = 4 × 3 = 12" in english
    assert ("+ 45 FLOPs scaling both inputs to unit length first" in english) is normalize
    a, b = cs.Input((5, 5)), cs.Input((5, 5))
    square = cs.Model([a, b], L.Dot(axes=(2, 1), name="mm")([a, b]))      # out[i, j] = Σ_k a[i, k] · b[k, j]
    field = cs.explain(square).layer("mm").section("receptive_field")
    assert not any("union" in line for line in field), field          # not the inputs' steps joined: not followed
    korean = str(cs.explain(model, lang="ko"))
    assert "입력 1의 축 1와 입력 2의 축 2의 내적" in korean


def test_onnx_export_equals_convscope(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    rng = np.random.default_rng(4)
    for normalize in (False, True):
        model = _siamese(cs, normalize)
        for variable in model.weights:
            variable.assign(rng.standard_normal(variable.shape).astype("float32"))
        model.get_layer("left").bias.assign(np.full(3, 1e-9, np.float32))     # x[0] = 0: a norm under 1e-7
        path = tmp_path / f"dot{normalize}.onnx"
        model.export(path, format="onnx")
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        x = [rng.standard_normal((7, 6)).astype("float32"), rng.standard_normal((7, 4, 3)).astype("float32")]
        x[0][0] = 0.0
        got = session.run(None, {i.name: a for i, a in zip(session.get_inputs(), x)})[0]
        np.testing.assert_allclose(got, model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
        empty = session.run(None, {i.name: a[:0] for i, a in zip(session.get_inputs(), x)})[0]
        assert empty.shape == (0, 2)
