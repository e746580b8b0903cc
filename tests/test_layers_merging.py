"""Merge layers (Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate).

Numbers and gradients against PyTorch autograd (Keras' left fold of torch ops, lower-rank
inputs expanded at axis 1 as Keras does); shapes, refusals and configs against Keras 3
itself on the torch backend.  Skipped where torch or Keras is missing.
"""


import numpy as np
import pytest

from convscope import layers as L
from convscope.models import Model

torch = pytest.importorskip("torch")

ELEMENTWISE = ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"]
ALL = ELEMENTWISE + ["Concatenate"]
RTOL = {"float32": 1e-5, "float64": 1e-12}


def assert_close(ours, reference, dtype):
    """Agreement to RTOL[dtype] relative to the values' scale, in the expected dtype."""
    rtol = RTOL[dtype]
    assert ours.dtype == np.dtype(dtype)
    scale = max(1.0, float(np.abs(reference).max(initial=0.0)))
    np.testing.assert_allclose(ours, reference, rtol=rtol, atol=rtol * scale)


# -- the PyTorch oracle -----------------------------------------------------------------------
def torch_merge(name, tensors, axis=-1):
    """What Keras computes on the torch backend, written with torch ops (autograd gives the gradients)."""
    if name == "Concatenate":
        return torch.cat(tensors, dim=axis)
    rank = max(t.dim() for t in tensors)
    xs = []
    for t in tensors:                      # Keras' Merge.call: expand_dims(x, axis=1) up to the top rank
        while t.dim() < rank:
            t = t.unsqueeze(1)
        xs.append(t)
    if name == "Average":
        return torch.mean(torch.stack(torch.broadcast_tensors(*xs)), dim=0)
    op = {"Add": torch.add, "Subtract": torch.sub, "Multiply": torch.mul,
          "Maximum": torch.maximum, "Minimum": torch.minimum}[name]
    out = xs[0]
    for x in xs[1:]:
        out = op(out, x)
    return out


def torch_forward_backward(name, arrays, grad, axis=-1):
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = torch_merge(name, tensors, axis)
    out.backward(torch.from_numpy(grad))
    return out.detach().numpy(), [t.grad.numpy() for t in tensors]


def random_elementwise_shapes(rng, n):
    """n shapes that broadcast the Keras way: a full shape, some leading non-batch axes dropped, some 1s."""
    batch = int(rng.integers(1, 4))
    full = [int(d) for d in rng.integers(2, 5, size=int(rng.integers(1, 4)))]
    shapes = []
    for _ in range(n):
        dims = full[int(rng.integers(0, len(full) + 1)):]          # a lower rank (possibly batch only)
        dims = [1 if rng.random() < 0.3 else d for d in dims]
        shapes.append((batch,) + tuple(dims))
    return shapes


def random_concat_case(rng, n):
    rank = int(rng.integers(1, 5))
    axis = int(rng.integers(-rank, rank))
    base = [int(d) for d in rng.integers(1, 5, size=rank)]
    shapes = []
    for _ in range(n):
        shape = list(base)
        shape[axis] = int(rng.integers(1, 5))
        shapes.append(tuple(shape))
    return shapes, axis


def make_layer(name, dtype, axis=-1):
    cls = getattr(L, name)
    return cls(axis=axis, dtype=dtype) if name == "Concatenate" else cls(dtype=dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ALL)
def test_forward_and_backward_match_torch_autograd(name, dtype):
    rng = np.random.default_rng(hash((name, dtype)) % 2**32)
    for case in range(12):
        n = 2 if name == "Subtract" else int(rng.integers(2, 6))
        axis = -1
        if name == "Concatenate":
            shapes, axis = random_concat_case(rng, n)
        else:
            shapes = random_elementwise_shapes(rng, n)
        arrays = [rng.standard_normal(s).astype(dtype) for s in shapes]
        layer = make_layer(name, dtype, axis)
        out, ctx = layer.forward(arrays)
        grad = rng.standard_normal(out.shape).astype(dtype)
        grads, weight_grads = layer.backward(ctx, grad)
        ref_out, ref_grads = torch_forward_backward(name, arrays, grad, axis)
        assert out.shape == ref_out.shape, (shapes, axis)
        assert_close(out, ref_out, dtype)
        assert_close(layer.call(arrays), ref_out, dtype)
        assert weight_grads == []
        assert len(grads) == n
        for g, ref, x in zip(grads, ref_grads, arrays):
            assert g.shape == x.shape
            assert_close(g, ref, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["Maximum", "Minimum"])
def test_ties_share_the_gradient_as_torch_maximum_and_minimum_do(name, dtype):
    rng = np.random.default_rng(7)
    for n in range(2, 6):
        for _ in range(4):
            shapes = random_elementwise_shapes(rng, n)
            arrays = [rng.integers(0, 2, size=s).astype(dtype) for s in shapes]   # ties everywhere
            layer = make_layer(name, dtype)
            out, ctx = layer.forward(arrays)
            grad = rng.integers(1, 5, size=out.shape).astype(dtype)   # sums of these halves are exact
            grads, _ = layer.backward(ctx, grad)
            ref_out, ref_grads = torch_forward_backward(name, arrays, grad)
            np.testing.assert_array_equal(out, ref_out)
            for g, ref in zip(grads, ref_grads):
                np.testing.assert_array_equal(g, ref)
    # three tied inputs: torch.maximum halves each fold step, so 1/4, 1/4, 1/2
    grads, _ = make_layer(name, dtype).backward(make_layer(name, dtype).forward([np.ones((1, 1), dtype)] * 3)[1],
                                                np.ones((1, 1), dtype))
    assert [float(g[0, 0]) for g in grads] == [0.25, 0.25, 0.5]


@pytest.mark.parametrize("name", ["Maximum", "Minimum"])
def test_nan_propagates_and_gives_both_sides_the_gradient_like_torch(name):
    a = np.array([[np.nan, 1.0, np.nan, 2.0]])
    b = np.array([[1.0, np.nan, np.nan, 3.0]])
    layer = make_layer(name, "float64")
    out, ctx = layer.forward([a, b])
    grads, _ = layer.backward(ctx, np.ones_like(out))
    ref_out, ref_grads = torch_forward_backward(name, [a, b], np.ones_like(out))
    np.testing.assert_array_equal(out, ref_out)
    for g, ref in zip(grads, ref_grads):
        np.testing.assert_array_equal(g, ref)


# -- the per-call contract ---------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_forward_keeps_nothing_on_the_layer_and_interleaved_calls_keep_their_own_context(name):
    rng = np.random.default_rng(1)
    n = 2 if name == "Subtract" else 3
    layer = make_layer(name, "float64")
    first = [rng.standard_normal((2, 3)) for _ in range(n)]
    second = [rng.standard_normal((4, 3)) for _ in range(n)]
    before = dict(vars(layer))
    out1, ctx1 = layer.forward(first)
    out2, ctx2 = layer.forward(second)
    g1, g2 = rng.standard_normal(out1.shape), rng.standard_normal(out2.shape)
    grads2, _ = layer.backward(ctx2, g2)
    grads1, _ = layer.backward(ctx1, g1)
    layer.call(second)
    assert vars(layer).keys() == before.keys()
    assert all(vars(layer)[k] is before[k] for k in before)
    for arrays, g, grads in ((first, g1, grads1), (second, g2, grads2)):
        _, ref = torch_forward_backward(name, arrays, g)
        for ours, theirs in zip(grads, ref):
            assert_close(ours, theirs, "float64")


@pytest.mark.parametrize("name", ALL)
def test_backward_leaves_its_gradient_alone_and_add_passes_it_on_uncopied(name):
    n = 2 if name == "Subtract" else 3
    layer = make_layer(name, "float32")
    out, ctx = layer.forward([np.random.default_rng(n).standard_normal((2, 3)).astype(np.float32)] * n)
    grad = np.random.default_rng(1).standard_normal(out.shape).astype(np.float32)
    before = grad.copy()
    grads, _ = layer.backward(ctx, grad)
    np.testing.assert_array_equal(grad, before)
    if name == "Add":                   # each input's gradient is the output's, not a copy of it
        assert all(np.shares_memory(g, grad) for g in grads)
    assert layer.backward(ctx, grad, need_input_grad=False) == ([None] * n, [])


def test_a_models_input_gradients_are_the_callers_own():
    """An Add shares its gradient among its inputs; the model copies what it hands back."""
    a, b = L.Input((3,)), L.Input((3,))
    model = Model([a, b], L.Add()([a, b]))
    outputs, execution = model.run([np.ones((2, 3), np.float32)] * 2, keep=True)
    given = np.full((2, 3), 2.0, np.float32)
    grads, _ = model.backward_graph(execution, [given])
    assert not np.shares_memory(grads[0], grads[1])
    assert not any(np.shares_memory(g, given) for g in grads)
    grads[0] += 1
    np.testing.assert_array_equal(grads[1], given)
    np.testing.assert_array_equal(given, np.full((2, 3), 2.0))


@pytest.mark.parametrize("name", ALL)
def test_one_float_dtype_is_kept_and_mixed_inputs_get_the_layers_dtype(name):
    n = 2 if name == "Subtract" else 3
    for layer_dtype in ("float32", "float64"):
        layer = make_layer(name, layer_dtype)
        for dtype in ("float32", "float64"):
            out, ctx = layer.forward([np.ones((2, 3), dtype)] * n)
            assert out.dtype == dtype and layer.call([np.ones((2, 3), dtype)] * n).dtype == dtype
            assert all(g.dtype == dtype for g in layer.backward(ctx, np.ones_like(out))[0])
        mixed = [np.ones((2, 3), np.float32), np.ones((2, 3), np.float64)] + [np.ones((2, 3), np.float32)] * (n - 2)
        out, ctx = layer.forward(mixed)
        assert out.dtype == layer_dtype
        # each gradient comes back in its own input's dtype, as autograd through a cast gives it
        assert [g.dtype for g in layer.backward(ctx, np.ones_like(out))[0]] == [x.dtype for x in mixed]


@pytest.mark.parametrize("name", ["Add", "Subtract", "Multiply", "Average", "Concatenate"])
def test_call_on_arrays_gives_keras_dtype_and_numbers(name, keras):
    """Keras casts float inputs to the layer's dtype.  (Keras' Maximum/Minimum on torch answer
    float32 even for a float64 layer, from Keras' result_type: not reproduced, so not compared.)"""
    rng = np.random.default_rng(2)
    n = 2 if name == "Subtract" else 3
    for layer_dtype in ("float32", "float64"):
        for dtypes in (["float32"] * n, ["float64"] * n, ["float32", "float64"] + ["float32"] * (n - 2)):
            arrays = [rng.standard_normal((2, 3)).astype(d) for d in dtypes]
            theirs = getattr(keras.layers, name)(dtype=layer_dtype)(arrays)
            ours = getattr(L, name)(dtype=layer_dtype)(arrays)
            assert ours.dtype == np.dtype(str(theirs.dtype).replace("torch.", ""))
            assert_close(ours, theirs.detach().numpy(), layer_dtype)


def test_functional_forms_build_the_layers(keras):
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 4))
    for name in ELEMENTWISE:
        function = getattr(L, name.lower())
        expected = getattr(L, name)(dtype="float64")([a, b])
        np.testing.assert_array_equal(function([a, b], dtype="float64"), expected)
        theirs = getattr(keras.layers, name.lower())([a, b], dtype="float64").numpy()
        if name in ("Maximum", "Minimum"):     # Keras' torch backend answers these in float32
            np.testing.assert_array_equal(expected.astype(np.float32), theirs)
        else:
            np.testing.assert_allclose(expected, theirs, rtol=1e-12)
    np.testing.assert_array_equal(L.concatenate([a, a], axis=1, dtype="float64"), np.concatenate([a, a], axis=1))
    with pytest.raises(ValueError, match="Subtract"):
        L.subtract([b, b, b])


# -- shapes and refusals against Keras ---------------------------------------------------------
def keras_output_shape(keras, name, shapes, axis=-1):
    """Keras' output shape, or None where Keras refuses (at build or in compute_output_shape)."""
    cls = getattr(keras.layers, name)
    try:
        layer = cls(axis=axis) if name == "Concatenate" else cls()
        layer.build(shapes)
        return tuple(layer.compute_output_shape(shapes))
    except (ValueError, IndexError):
        return None


def assert_refused(layer, shapes):
    with pytest.raises(ValueError) as error:
        layer.compute_output_shape(shapes)
    message = str(error.value)
    assert layer._describe() in message
    assert str([tuple(s) for s in shapes]) in message
    with pytest.raises(ValueError):
        layer.build(shapes)


ELEMENTWISE_CASES = [
    [(None, 3), (None, 3)],
    [(None, 3, 4), (None, 4)],
    [(None, 1, 4), (None, 3, 1)],
    [(None, None), (None, 4)],
    [(None, 1), (None, None)],
    [(None,), (None, 4)],
    [(2, 3), (None, 3)],
    [(None, 2, 3, 4), (None, 3, 4), (None, 4), (None, 1, 1, 1)],
    [(None, 5)],                         # Keras 3 takes a single input
    [(None, 3), (None, 4)],              # refused from here on
    [(None, 3, 4), (None, 3)],
    [(2, 3), (5, 3)],                    # batch sizes never broadcast
    [(2, 3), (1, 3)],
    [(None, 2, 3), (None, 3, 3)],
]

CONCAT_CASES = [
    ([(None, 3, 4), (None, 3, 5)], -1),
    ([(None, 3, 4), (None, 2, 4)], 1),
    ([(None, None, 4), (None, 3, None)], -1),
    ([(None, 3, 4), (None, None, 4)], -1),
    ([(2, 3, 4), (5, 3, 4)], 0),
    ([(None, 3, 4), (None, 3, 4)], 0),
    ([(None, 3, 4)], -1),
    ([(None, 3, 4), (None, 3, 4), (None, 3, 1)], 2),
    ([(None, 3, 4), (None, 2, 5)], -1),        # refused from here on
    ([(None, 3, 4), (None, 5)], -1),
    ([(None, 1, 4), (None, 3, 4)], -1),        # no squeezing of 1-dims
    ([(2, 3, 4), (5, 3, 4)], -1),              # batch sizes compared too
    ([(None, 3, 4), (None, 2, 4)], 3),         # no such axis
    ([(None, 3, 4), (None, 3, 4)], -4),
    ([(None, 3, 4), (None, 3, 4, 1)], 1),
]


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_shapes_and_refusals_match_keras(name, keras):
    rng = np.random.default_rng(4)
    cases = list(ELEMENTWISE_CASES)
    sizes = [None, 1, 2, 3]
    for _ in range(60):                  # random shapes: some broadcast, some do not
        n = 2 if name == "Subtract" else int(rng.integers(2, 4))
        cases.append([tuple([[None, 2][int(rng.integers(0, 2))]]
                            + [sizes[int(i)] for i in rng.integers(0, 4, size=int(rng.integers(0, 4)))])
                      for _ in range(n)])
    if name == "Subtract":
        cases = [c for c in cases if len(c) == 2] + [[(None, 3)], [(None, 3)] * 3]
    refused = 0
    for shapes in cases:
        expected = keras_output_shape(keras, name, shapes)
        layer = getattr(L, name)()
        if expected is None:
            refused += 1
            assert_refused(layer, shapes)
        else:
            assert layer.compute_output_shape(shapes) == expected, shapes
            layer.build(shapes)
            assert layer.built
    assert refused >= 5


def test_concatenate_shapes_and_refusals_match_keras(keras):
    rng = np.random.default_rng(5)
    cases = list(CONCAT_CASES)
    for _ in range(60):                  # random same-rank shapes: matching or not off the axis
        rank = int(rng.integers(1, 4))
        axis = int(rng.integers(-rank, rank))
        cases.append(([tuple([None, 2, 3][int(i)] for i in rng.integers(0, 3, size=rank))
                       for _ in range(int(rng.integers(2, 4)))], axis))
    refused = 0
    for shapes, axis in cases:
        expected = keras_output_shape(keras, "Concatenate", shapes, axis)
        layer = L.Concatenate(axis=axis)
        if expected is None:
            refused += 1
            assert_refused(layer, shapes)
        else:
            assert layer.compute_output_shape(shapes) == expected, (shapes, axis)
    assert refused >= 5


def test_refusals_keras_answers_with_other_errors():
    """No inputs (Keras: IndexError), a single shape instead of a list (Keras: ValueError too), a
    Concatenate axis past the rank of one input and a None size on the other (Keras' build passes and
    its compute_output_shape answers (None, 3, None); the call then fails): a ValueError here."""
    for layer in (L.Add(), L.Concatenate()):
        with pytest.raises(ValueError, match="at least 1 input"):
            layer.compute_output_shape([])
        with pytest.raises(ValueError, match="list of input shapes"):
            layer.compute_output_shape((None, 3))
    assert_refused(L.Concatenate(axis=2), [(None, 3, None), (None, 3)])


@pytest.mark.parametrize("name", ALL)
def test_arrays_that_do_not_merge_are_refused_naming_the_layer_and_shapes(name):
    layer = make_layer(name, "float32")
    bad = [np.ones((2, 3), np.float32), np.ones((1, 3), np.float32)]   # batch sizes differ
    for method in (layer.forward, layer.call, layer):
        with pytest.raises(ValueError, match=r"\[\(2, 3\), \(1, 3\)\]") as error:
            method(bad)
        assert layer._describe() in str(error.value)
    with pytest.raises(ValueError, match="list of input arrays"):
        layer.call(np.ones((2, 3), np.float32))
    n = 2 if name == "Subtract" else 3
    out, ctx = layer.forward([np.ones((2, 3), np.float32)] * n)
    with pytest.raises(ValueError, match=r"\(2, 4\)"):
        layer.backward(ctx, np.ones((2, 4), np.float32))


# -- configs against Keras ----------------------------------------------------------------------
@pytest.mark.parametrize("name,kwargs", [(n, {}) for n in ELEMENTWISE]
                         + [("Concatenate", {}), ("Concatenate", {"axis": 1}), ("Concatenate", {"axis": -2})])
def test_config_matches_keras_and_round_trips(name, kwargs, keras):
    for extra in ({"name": "merge_me"}, {"name": "frozen", "trainable": False, "dtype": "float64"}):
        theirs = getattr(keras.layers, name)(**kwargs, **extra).get_config()
        layer = getattr(L, name)(**kwargs, **extra)
        ours = layer.get_config()
        assert set(ours) == set(theirs)
        for key in set(ours) - {"dtype"}:
            assert ours[key] == theirs[key], key
        assert ours["dtype"] == theirs["dtype"]["config"]["name"]
        rebuilt = getattr(L, name).from_config(ours)
        assert type(rebuilt) is type(layer) and rebuilt.get_config() == ours
        from_keras = getattr(L, name).from_config(L._normalize_config(name, theirs))
        assert from_keras.get_config() == ours
        assert L.deserialize({"class_name": name, "config": theirs}).get_config() == ours
        assert L.LAYER_CLASSES[name] is type(layer)


def test_concatenate_axis_must_be_an_int():
    with pytest.raises(TypeError, match="Concatenate.*axis"):
        L.Concatenate(axis=1.5)
