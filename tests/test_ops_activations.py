"""Activations: values and derivatives against PyTorch, finite differences and math.erf."""

import math

import numpy as np
import pytest

from _gradcheck import assert_gradients_close, numerical_gradient
from _oracle import TOLERANCE
from convscope import ops


def torch_reference(torch, name, **params):
    """The PyTorch function that defines each activation (Keras' formula where torch has none)."""
    functional = torch.nn.functional
    return {
        "linear": lambda t: t,
        "relu": functional.relu,
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "softmax": lambda t: functional.softmax(t, dim=params.get("axis", -1)),
        "elu": lambda t: functional.elu(t, alpha=params.get("alpha", 1.0)),
        "selu": functional.selu,
        # torch's softplus switches to x above its threshold (20); the test inputs stay below it
        "softplus": functional.softplus,
        "softsign": functional.softsign,
        "swish": functional.silu,
        "silu": functional.silu,
        "gelu": lambda t: functional.gelu(t, approximate="tanh" if params.get("approximate") else "none"),
        "leaky_relu": lambda t: functional.leaky_relu(t, params.get("negative_slope", 0.2)),
        "hard_sigmoid": lambda t: functional.relu6(t + 3) / 6,
        "relu6": functional.relu6,
        "hard_silu": functional.hardswish,
        "hard_swish": functional.hardswish,
        "mish": functional.mish,
        "log_softmax": lambda t: functional.log_softmax(t, dim=params.get("axis", -1)),
        "celu": lambda t: functional.celu(t, alpha=params.get("alpha", 1.0)),
        "hard_tanh": functional.hardtanh,
        "hard_shrink": lambda t: functional.hardshrink(t, params.get("threshold", 0.5)),
        "soft_shrink": lambda t: functional.softshrink(t, params.get("threshold", 0.5)),
        "tanh_shrink": functional.tanhshrink,
        "log_sigmoid": functional.logsigmoid,
        "squareplus": lambda t: (t + torch.sqrt(t * t + params.get("b", 4))) / 2,       # Keras' torch formulas
        "sparse_plus": lambda t: torch.where(t <= -1, torch.zeros_like(t), torch.where(t < 1, (t + 1) ** 2 / 4, t)),
        "sparse_sigmoid": lambda t: torch.where(t <= -1, torch.zeros_like(t),
                                                torch.where(t >= 1, torch.ones_like(t), 0.5 * (t + 1))),
        "exponential": torch.exp,
    }[name]


CASES = [(name, {}) for name in ops.ACTIVATION_NAMES] + [
    ("softmax", {"axis": 1}), ("elu", {"alpha": 0.5}), ("leaky_relu", {"negative_slope": 0.3}),
    ("gelu", {"approximate": True}), ("log_softmax", {"axis": 1}), ("celu", {"alpha": 0.5}),
    ("hard_shrink", {"threshold": 1.5}), ("soft_shrink", {"threshold": 0.25}), ("squareplus", {"b": 1.0}),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name, params", CASES, ids=[f"{n}-{p}" for n, p in CASES])
def test_activation_and_derivative_match_torch(name, params, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(len(name))
    x = (rng.standard_normal((3, 4, 5)) * 4).astype(dtype)
    x[0, 0, :3] = [-12.0, 12.0, 0.5]
    activation = ops.get_activation(name, **params)
    y = activation.forward(x)
    x_t = torch.tensor(x, requires_grad=True)
    expected = torch_reference(torch, name, **params)(x_t)
    rtol = TOLERANCE[dtype]
    assert y.dtype == np.dtype(dtype)
    np.testing.assert_allclose(y, expected.detach().numpy(), rtol=rtol, atol=rtol)
    grad_y = rng.standard_normal(x.shape).astype(dtype)
    expected.backward(torch.tensor(grad_y))
    grad_x = activation.backward(grad_y, x, y)
    assert grad_x.dtype == np.dtype(dtype)
    np.testing.assert_allclose(grad_x, x_t.grad.numpy(), rtol=rtol, atol=rtol)


@pytest.mark.parametrize("name, params", CASES, ids=[f"{n}-{p}" for n, p in CASES])
def test_derivative_matches_finite_differences(name, params):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 6)) * 3
    # keep away from the kinks (0 for relu-like, +-3 for hard_sigmoid) where no derivative exists
    x = np.where(np.abs(x) < 0.05, 0.5, x)
    x = np.where(np.abs(np.abs(x) - 3) < 0.05, 2.0, x)
    if name == "exponential":       # values up to e^10 would swamp the finite difference's rounding
        x = np.clip(x, -3.0, 2.5)
    activation = ops.get_activation(name, **params)
    weights = rng.standard_normal(x.shape)

    def loss():
        return float(np.sum(activation.forward(x) * weights))

    y = activation.forward(x)
    assert_gradients_close(activation.backward(weights, x, y), numerical_gradient(loss, x))


def test_relu_parameters_match_keras_formula():
    x = np.array([-3.0, -1.0, 0.5, 1.5, 4.0, 8.0])
    relu = ops.get_activation("relu", negative_slope=0.1, max_value=6.0, threshold=1.0)
    # Keras: x >= max_value -> max_value; threshold <= x < max_value -> x; else slope * (x - threshold)
    np.testing.assert_allclose(relu.forward(x), [-0.4, -0.2, -0.05, 1.5, 4.0, 6.0])
    weights = np.arange(1.0, 7.0)
    xs = x.copy()
    assert_gradients_close(relu.backward(weights, x, relu.forward(x)),
                           numerical_gradient(lambda: float(np.sum(relu.forward(xs) * weights)), xs))


def test_defaults_follow_keras():
    x = np.array([-1.0, 2.0])
    np.testing.assert_allclose(ops.get_activation("leaky_relu").forward(x), [-0.2, 2.0])
    np.testing.assert_allclose(ops.get_activation("hard_sigmoid").forward(np.array([-4.0, 0.0, 1.5, 4.0])),
                               [0.0, 0.5, 0.75, 1.0])
    assert ops.get_activation(None).name == "linear"
    assert ops.get_activation("ReLU").name == "relu"
    relu = ops.get_activation("relu")
    assert ops.get_activation(relu) is relu


def test_softmax_is_stable_and_sums_to_one():
    x = np.array([[1000.0, 1000.0, -1000.0], [-1e4, 0.0, 1e4]], dtype=np.float32)
    y = ops.get_activation("softmax").forward(x)
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(y[0], [0.5, 0.5, 0.0])


def test_sigmoid_and_softplus_do_not_overflow():
    x = np.array([-800.0, 0.0, 800.0])
    with np.errstate(over="raise"):
        np.testing.assert_allclose(ops.get_activation("sigmoid").forward(x), [0.0, 0.5, 1.0])
        np.testing.assert_allclose(ops.get_activation("softplus").forward(x), [0.0, math.log(2.0), 800.0])


def test_erf_and_erfc_match_math():
    x = np.concatenate([np.linspace(-7, 7, 4001), [0.0, 1e-300, -1e-12, 1.4999999, 1.5, 26.0, -30.0]])
    np.testing.assert_allclose(ops.erf(x), [math.erf(v) for v in x], rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(ops.erfc(x), [math.erfc(v) for v in x], rtol=1e-12, atol=1e-300)


def test_gelu_is_accurate_in_the_far_tail():
    """GELU(-10) is about -7.6e-23: 1 + erf would round it to zero; erfc keeps it."""
    x = np.array([-10.0, -6.0])
    expected = [v * 0.5 * math.erfc(-v / math.sqrt(2.0)) for v in x]
    np.testing.assert_allclose(ops.get_activation("gelu").forward(x), expected, rtol=1e-12)


@pytest.mark.parametrize("identifier, kwargs, error, pattern", [
    ("mishy", {}, ValueError, r"get_activation: unknown activation 'mishy'; expected one of linear, relu"),
    (3, {}, TypeError,
     r"get_activation: argument `identifier` must be an activation name, None or an Activation, got 3"),
    ("tanh", {"alpha": 1.0}, TypeError, r"get_activation: activation 'tanh' takes no parameter\(s\) \['alpha'\]"),
])
def test_bad_identifiers_are_named(identifier, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        ops.get_activation(identifier, **kwargs)


def test_bad_inputs_are_named():
    relu = ops.get_activation("relu")
    with pytest.raises(TypeError, match=r"activation 'relu': argument `x` must be a numeric array, got dtype <U1"):
        relu.forward(np.array(["a"]))
    with pytest.raises(ValueError, match=r"activation 'relu' backward: arguments `grad_y`, `x` and `y` must have "
                                         r"the same shape, got \(2,\), \(3,\) and \(3,\)"):
        relu.backward(np.zeros(2), np.zeros(3), np.zeros(3))


# Every case whose Activation claims `output_suffices` (relu with a cap among them); the others keep x.
RELU_CASES = [("relu", {"max_value": 6.0}), ("relu", {"max_value": 2.0}), ("relu", {"negative_slope": 0.1}),
              ("relu", {"threshold": 0.5})]
OUTPUT_CASES = [(name, params) for name, params in CASES + RELU_CASES
                if ops.get_activation(name, **params).output_suffices]


@pytest.mark.parametrize("name, params", OUTPUT_CASES, ids=[f"{n}-{p}" for n, p in OUTPUT_CASES])
def test_derivative_from_the_output_alone_matches_torch_where_claimed(name, params):
    """Where `output_suffices` says so, the derivative read from y (x not kept) is PyTorch's, with
    inputs exactly at the kinks (0, 6, the cap) and beyond them."""
    torch = pytest.importorskip("torch")
    activation = ops.get_activation(name, **params)
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((4, 6, 5)) * 4).astype(np.float32)
    x[0, 0, :5] = [0.0, 6.0, 2.0, -0.0, 7.5]
    y = activation.forward(x)
    grad_y = rng.standard_normal(x.shape).astype(np.float32)
    x_t = torch.tensor(x, requires_grad=True)
    reference = torch_reference(torch, name, **params)
    if "max_value" in params:     # hardtanh, not clamp: its gradient is 0 at both kinks, as Keras'
        reference = lambda t: torch.nn.functional.hardtanh(t, 0.0, params["max_value"])  # noqa: E731
    reference(x_t).backward(torch.tensor(grad_y))
    np.testing.assert_allclose(activation.backward(grad_y, y, y), x_t.grad.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(activation.backward(grad_y, y, y), activation.backward(grad_y, x, y))


@pytest.mark.parametrize("shape, dtype", [((1, 10), np.float32), ((32, 25), np.float32), ((3, 4, 7), np.float64),
                                          ((5,), np.float32), ((700, 25), np.float32), ((9000, 16), np.float64)])
def test_short_rows_softmax_runs_compiled_and_matches_float64_and_torch(shape, dtype, monkeypatch):
    """A softmax on the last axis of rows of at most `MAX_ROW` runs in compiled code (`ops.softmax_rows`), on the
    threads for a large array: its values those of the float64 formula (of the shifted values, rounded as the
    reference rounds them) to float32's or float64's rounding, and PyTorch's; NaN in a row (or +inf) makes that
    row NaN as in the NumPy reference; other axes and longer rows take the reference."""
    from convscope.ops import compiled, softmax_rows
    if not compiled.available():
        pytest.skip("the compiled softmax needs numba")
    calls = []
    original = softmax_rows._softmax_rows
    monkeypatch.setattr(softmax_rows, "_softmax_rows", lambda *a: calls.append(1) or original(*a))
    rng = np.random.default_rng(len(shape))
    x = (rng.standard_normal(shape) * 6).astype(dtype)
    softmax = ops.get_activation("softmax")
    with compiled.use_compiled(True):
        y = softmax.forward(x)
    assert calls and y.dtype == dtype and y.shape == x.shape
    exact = np.exp((x - x.max(axis=-1, keepdims=True)).astype(np.float64))     # the shift rounds in x's dtype
    exact /= exact.sum(axis=-1, keepdims=True)
    eps = np.finfo(dtype).eps
    rtol = 4 * eps if dtype == np.float32 else 32 * eps         # float64's "exact" rounds as often as the kernel
    np.testing.assert_allclose(y, exact, rtol=rtol, atol=4 * eps * np.finfo(np.float32).tiny / eps)
    torch = pytest.importorskip("torch")
    np.testing.assert_allclose(y, torch.softmax(torch.from_numpy(x), dim=-1).numpy(), rtol=1e-5, atol=1e-7)
    special = np.concatenate([x.reshape(-1, shape[-1])] * 3)                     # at least 3 rows
    special[0, -1] = np.nan
    special[1, 0] = np.inf
    with compiled.use_compiled(True):
        got = softmax.forward(special)
    with compiled.use_compiled(False), np.errstate(invalid="ignore"):         # inf - inf in the reference
        reference = softmax.forward(special)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(reference))
    assert np.isnan(got[0]).all() and np.isnan(got[1]).all() and not np.isnan(got[2:]).any()
    np.testing.assert_allclose(got[2:], reference[2:], rtol=32 * eps)         # both round a few times
    calls.clear()
    with compiled.use_compiled(True):
        ops.get_activation("softmax", axis=0).forward(x.reshape((1,) + x.shape))
        softmax.forward(np.zeros((2, softmax_rows.MAX_ROW + 1), dtype))
    assert calls == []
    assert not softmax_rows.applies(x, float(x.ndim - 1)) and not softmax_rows.applies(x, x.ndim == 2)   # not ints


@pytest.mark.parametrize("shape", [(3, 10), (2, 5, 25), (20000, 16)])
def test_short_rows_softmax_in_place_has_the_bits_of_a_new_array_and_checks_out(shape):
    """`softmax_rows.softmax(x, out=x)` (a prepared Dense's softmax) writes the bits of `softmax(x)` over `x`, on
    one thread or, from 1 MiB (20000 x 16), several; an `out` of another shape, dtype or layout, or one overlapping
    `x` but not `x` itself, is refused, naming it."""
    from convscope.ops import compiled, softmax_rows
    if not compiled.available():
        pytest.skip("the compiled softmax needs numba")
    x = (np.random.default_rng(len(shape)).standard_normal(shape) * 6).astype(np.float32)
    with compiled.use_compiled(True):
        expected = softmax_rows.softmax(x)
        inplace = x.copy()
        assert softmax_rows.softmax(inplace, out=inplace) is inplace
    np.testing.assert_array_equal(inplace, expected)
    assert (x.nbytes >= softmax_rows._MIN_PARALLEL_BYTES) == (shape[0] == 20000)     # the threads' path
    strided = np.empty(shape[:-1] + (2 * shape[-1],), np.float32)[..., ::2]
    shifted = x.reshape(-1, shape[-1]).copy()                          # rows 0..n-2 onto rows 1..n-1 of one buffer
    for given, out in [(x, np.empty(shape, np.float64)), (x, np.empty(shape[::-1], np.float32)), (x, strided),
                       (shifted[:-1], shifted[1:])]:
        with pytest.raises(ValueError, match=r"softmax_rows\.softmax: argument `out` must be a C-contiguous float32 "
                                             r"array of shape"):
            softmax_rows.softmax(given, out=out)
    with pytest.raises(TypeError, match=r"softmax_rows\.softmax: argument `out` must be a NumPy array, got list"):
        softmax_rows.softmax(x, out=x.tolist())


def test_a_samples_softmax_has_the_same_bits_in_any_batch_and_layout():
    """The compiled path is chosen by the rows' length alone, and each row is computed alone: a sample's softmax has
    the same bits alone, in a batch of 2,000 (shared among the threads), or read from a non-contiguous array."""
    from convscope.ops import compiled
    x = (np.random.default_rng(3).standard_normal((2000, 10)) * 4).astype(np.float32)
    softmax = ops.get_activation("softmax")
    with compiled.use_compiled(True):
        whole = softmax.forward(x)
        for start in (0, 7, 1999):
            np.testing.assert_array_equal(softmax.forward(x[start:start + 1]), whole[start:start + 1])
        np.testing.assert_array_equal(np.concatenate([softmax.forward(x[i:i + 32]) for i in range(0, 2000, 32)]),
                                      whole)
        strided = np.asfortranarray(x)
        np.testing.assert_array_equal(softmax.forward(strided), whole)
        np.testing.assert_array_equal(softmax.forward(np.repeat(x, 2, axis=1)[:, ::2]), whole)
