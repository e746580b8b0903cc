"""ops.Tape: the gradient of every differentiable Keras op against float64 central finite
differences and torch.autograd; operators, Variables, `record`, and per-thread tapes."""

import gc
import itertools
import threading
import weakref

import numpy as np
import pytest

from _gradcheck import assert_gradients_close, numerical_gradient
from _oracle import TOLERANCE
from convscope import ops
from convscope.variables import Variable

torch = pytest.importorskip("torch")
F = torch.nn.functional

KINKS = (-3.0, 0.0, 3.0, 6.0)     # where relu, relu6, hard_sigmoid, hard_silu, abs bend
# (hard_sigmoid's twin is its formula: F.hardsigmoid's float64 backward scales by a float32 1/6)


def normal(rng, shape):
    return np.asarray(rng.normal(size=shape))


def positive(rng, shape):
    return np.asarray(rng.uniform(0.5, 2.0, size=shape))


def smooth(rng, shape):
    """-5 .. 7, at least 0.1 from every kink."""
    x = rng.uniform(-5.0, 7.0, size=shape)
    for kink in KINKS:
        x = np.where(np.abs(x - kink) < 0.1, kink + 0.1, x)
    return x


def T(fn, ours, theirs, *shapes, draw=normal):
    """A gradient case: `ours(*traced)` with convscope.ops, `theirs(*tensors)` with torch (None: no
    torch twin), one input per shape."""
    return pytest.param(fn, ours, theirs, shapes, draw, id=f"{fn}-{next(_NUMBER)}")


_NUMBER = itertools.count()


def t_take(x, index, axis):
    index = torch.as_tensor(np.asarray(index))
    return x.reshape(-1)[index] if axis is None else x[(slice(None),) * axis + (index,)]


def t_dot(a, b):
    return torch.tensordot(a, b, dims=([a.ndim - 1], [max(b.ndim - 2, 0)]))


def t_softmax(function, axis):
    def run(x):
        if axis is None:
            return function(x.reshape(-1), dim=0).reshape(x.shape)
        return function(x, dim=axis)
    return run


def t_pad(mode):
    return lambda x: F.pad(x[None], (2, 1, 1, 2), mode=mode)[0]


GRADS = []
for _fn, _ours, _theirs in [("add", ops.add, torch.add), ("subtract", ops.subtract, torch.subtract),
                            ("multiply", ops.multiply, torch.multiply), ("maximum", ops.maximum, torch.maximum),
                            ("minimum", ops.minimum, torch.minimum)]:
    GRADS += [T(_fn, _ours, _theirs, (3, 4), (4,)), T(_fn, _ours, _theirs, (2, 1, 4), (3, 1))]
GRADS += [
    T("add", lambda x: ops.add(x, 2.5), lambda x: x + 2.5, (3, 4)),
    T("subtract", lambda x: ops.subtract(1, x), lambda x: 1 - x, (3, 4)),
    T("divide", ops.divide, torch.divide, (3, 4), (4,), draw=positive),
    T("divide", lambda x: ops.divide(2.0, x), lambda x: 2.0 / x, (2, 3), draw=positive),
    T("true_divide", ops.true_divide, torch.true_divide, (2, 1, 3), (4, 1), draw=positive),
    T("negative", ops.negative, torch.negative, (3, 4)),
    T("power", ops.power, torch.pow, (3, 4), (4,), draw=positive),
    T("power", lambda x: ops.power(x, 3), lambda x: x ** 3, (3, 4)),
    T("power", lambda x: ops.power(2.0, x), lambda x: 2.0 ** x, (3, 4)),
    T("square", ops.square, torch.square, (3, 4)),
    T("sqrt", ops.sqrt, torch.sqrt, (3, 4), draw=positive),
    T("exp", ops.exp, torch.exp, (3, 4)),
    T("log", ops.log, torch.log, (3, 4), draw=positive),
    T("log1p", ops.log1p, torch.log1p, (3, 4), draw=positive),
    T("abs", ops.abs, torch.abs, (3, 4), draw=smooth),
    T("absolute", ops.absolute, torch.abs, (3, 4), draw=smooth),
    T("sign", ops.sign, torch.sign, (3, 4), draw=smooth),
    T("tanh", ops.tanh, torch.tanh, (3, 4)),
    T("clip", lambda x: ops.clip(x, -0.5, 0.7), lambda x: torch.clamp(x, -0.5, 0.7), (4, 5)),
    T("clip", lambda x, lo, hi: ops.clip(x, lo * 0.1 - 1, hi * 0.1 + 1),
      lambda x, lo, hi: torch.clamp(x, lo * 0.1 - 1, hi * 0.1 + 1), (4, 5), (5,), (5,)),
    T("where", lambda x, y: ops.where(np.arange(12).reshape(3, 4) % 3 == 0, x, y),
      lambda x, y: torch.where(torch.as_tensor(np.arange(12).reshape(3, 4) % 3 == 0), x, y), (3, 4), (4,)),
    T("matmul", ops.matmul, torch.matmul, (3, 4), (4, 5)),
    T("matmul", ops.matmul, torch.matmul, (2, 3, 4), (4,)),
    T("matmul", ops.matmul, torch.matmul, (4,), (2, 4, 5)),
    T("matmul", ops.matmul, torch.matmul, (2, 1, 3, 4), (5, 4, 2)),
    T("matmul", ops.matmul, torch.matmul, (4,), (4,)),
    T("dot", ops.dot, t_dot, (3, 4), (4, 5)), T("dot", ops.dot, t_dot, (2, 3, 4), (2, 4, 5)),
    T("dot", ops.dot, t_dot, (3, 4), (4,)), T("dot", ops.dot, torch.multiply, (), (3,)),
    T("tensordot", ops.tensordot, lambda a, b: torch.tensordot(a, b, dims=2), (3, 4, 5), (4, 5, 2)),
    T("tensordot", lambda a, b: ops.tensordot(a, b, axes=([2, 0], [0, 1])),
      lambda a, b: torch.tensordot(a, b, dims=([2, 0], [0, 1])), (3, 4, 2), (2, 3, 5)),
    T("einsum", lambda a, b: ops.einsum("ij,jk->ik", a, b), lambda a, b: torch.einsum("ij,jk->ik", a, b),
      (3, 4), (4, 5)),
    T("einsum", lambda a, b: ops.einsum("...ij,...jk", a, b), lambda a, b: torch.einsum("...ij,...jk", a, b),
      (2, 3, 4), (1, 4, 5)),
    T("einsum", lambda a, b: ops.einsum("bi,j->ij", a, b), lambda a, b: torch.einsum("bi,j->ij", a, b), (2, 3), (4,)),
]
for _fn, _torch in [("sum", torch.sum), ("mean", torch.mean), ("max", torch.amax), ("min", torch.amin),
                    ("var", lambda x, **k: torch.var(x, correction=0, **k)),
                    ("std", lambda x, **k: torch.std(x, correction=0, **k))]:
    GRADS += [
        T(_fn, getattr(ops, _fn), lambda x, f=_torch: f(x, dim=(0, 1, 2)), (2, 3, 4)),
        T(_fn, lambda x, f=getattr(ops, _fn): f(x, axis=1), lambda x, f=_torch: f(x, dim=1), (2, 3, 4)),
        T(_fn, lambda x, f=getattr(ops, _fn): f(x, axis=(0, 2), keepdims=True),
          lambda x, f=_torch: f(x, dim=(0, 2), keepdim=True), (2, 3, 4)),
    ]
GRADS += [
    T("max", lambda x: ops.max(x, axis=1, initial=0.0), lambda x: torch.clamp(torch.amax(x, dim=1), min=0.0), (4, 3)),
    T("prod", ops.prod, torch.prod, (2, 3, 4)),
    T("prod", lambda x: ops.prod(x, axis=1), lambda x: torch.prod(x, dim=1), (2, 3, 4)),
    T("prod", lambda x: ops.prod(x * np.array([1.0, 0.0, 1.0]), axis=-1), lambda x: torch.prod(
        x * torch.tensor([1.0, 0.0, 1.0], dtype=x.dtype), dim=-1), (2, 3)),
    T("prod", lambda x: ops.prod(x, axis=(0, 2), keepdims=True), None, (2, 3, 4)),
    T("reshape", lambda x: ops.reshape(x, (4, -1)), lambda x: x.reshape(4, -1), (2, 3, 4)),
    T("transpose", ops.transpose, lambda x: x.permute(2, 1, 0), (2, 3, 4)),
    T("transpose", lambda x: ops.transpose(x, (1, 0, 2)), lambda x: x.permute(1, 0, 2), (2, 3, 4)),
    T("expand_dims", lambda x: ops.expand_dims(x, 1), lambda x: x.unsqueeze(1), (3, 4)),
    T("squeeze", ops.squeeze, torch.squeeze, (3, 1, 4)),
    T("squeeze", lambda x: ops.squeeze(x, axis=0), lambda x: x.squeeze(0), (1, 3, 1)),
    T("concatenate", lambda a, b: ops.concatenate([a, b], axis=1), lambda a, b: torch.cat([a, b], dim=1),
      (2, 3), (2, 2)),
    T("stack", lambda a, b: ops.stack([a, b], axis=-1), lambda a, b: torch.stack([a, b], dim=-1), (2, 3), (2, 3)),
    T("split", lambda x: ops.split(x, 3), lambda x: list(torch.split(x, 2)), (6, 2)),
    T("split", lambda x: ops.split(x, [1, 4], axis=1)[1:],
      lambda x: list(torch.split(x, [1, 3, 1], dim=1))[1:], (2, 5)),
    T("tile", lambda x: ops.tile(x, (2, 1, 3)), lambda x: torch.tile(x, (2, 1, 3)), (2, 3)),
    T("repeat", lambda x: ops.repeat(x, 2), lambda x: torch.repeat_interleave(x, 2), (2, 3)),
    T("repeat", lambda x: ops.repeat(x, np.array([1, 0, 3]), axis=1),
      lambda x: torch.repeat_interleave(x, torch.tensor([1, 0, 3]), dim=1), (2, 3)),
    T("broadcast_to", lambda x: ops.broadcast_to(x, (2, 3, 4)), lambda x: torch.broadcast_to(x, (2, 3, 4)), (3, 1)),
    T("take", lambda x: ops.take(x, [[0, 5], [5, 11]]), lambda x: t_take(x, [[0, 5], [5, 11]], None), (3, 4)),
    T("take", lambda x: ops.take(x, [2, 0, 2], axis=1), lambda x: t_take(x, [2, 0, 2], 1), (3, 4)),
    T("pad", lambda x: ops.pad(x, ((1, 2), (2, 1))), t_pad("constant"), (3, 4)),
    T("pad", lambda x: ops.pad(x, ((1, 2), (2, 1)), mode="reflect"), t_pad("reflect"), (3, 4)),
    T("pad", lambda x: ops.pad(x, ((1, 2), (2, 1)), mode="edge"), t_pad("replicate"), (3, 4)),
    T("pad", lambda x: ops.pad(x, ((1, 2), (2, 1)), mode="wrap"), t_pad("circular"), (3, 4)),
    T("pad", lambda x: ops.pad(x, ((3, 2), (2, 4)), mode="symmetric"), None, (3, 4)),
    T("cast", lambda x: ops.cast(x, "float64") * 2, lambda x: x.double() * 2, (3, 4)),
    T("getitem", lambda x: x[1:, ::2], lambda x: x[1:, ::2], (3, 4)),
    T("getitem", lambda x: x[[0, 2, 0]], lambda x: x[[0, 2, 0]], (3, 4)),
    T("getitem", lambda x: x[None, ..., 1], lambda x: x[None, ..., 1], (3, 4)),
    T("getitem", lambda x: x[np.arange(12).reshape(3, 4) % 5 == 0],
      lambda x: x[torch.as_tensor(np.arange(12).reshape(3, 4) % 5 == 0)], (3, 4)),
]
for _fn, _torch in [("relu", F.relu), ("relu6", F.relu6), ("sigmoid", torch.sigmoid),
                    ("hard_sigmoid", lambda x: torch.clamp(x + 3, 0, 6) / 6),
                    ("silu", F.silu), ("swish", F.silu), ("hard_silu", F.hardswish), ("hard_swish", F.hardswish),
                    ("gelu", lambda x: F.gelu(x, approximate="tanh")), ("softplus", F.softplus),
                    ("softsign", F.softsign), ("elu", F.elu), ("selu", F.selu),
                    ("leaky_relu", lambda x: F.leaky_relu(x, 0.2)), ("softmax", t_softmax(F.softmax, -1)),
                    ("log_softmax", t_softmax(F.log_softmax, -1))]:
    GRADS.append(T(_fn, getattr(ops, _fn), _torch, (3, 5), draw=smooth))
GRADS += [
    T("gelu", lambda x: ops.gelu(x, approximate=False), F.gelu, (3, 5), draw=smooth),
    T("elu", lambda x: ops.elu(x, alpha=0.5), lambda x: F.elu(x, alpha=0.5), (3, 5), draw=smooth),
    T("leaky_relu", lambda x: ops.leaky_relu(x, negative_slope=0.1), lambda x: F.leaky_relu(x, 0.1), (3, 5),
      draw=smooth),
    T("softmax", lambda x: ops.softmax(x, axis=0), t_softmax(F.softmax, 0), (3, 5)),
    T("softmax", lambda x: ops.softmax(x, axis=None), t_softmax(F.softmax, None), (3, 5)),
    T("log_softmax", lambda x: ops.log_softmax(x, axis=0), t_softmax(F.log_softmax, 0), (3, 5)),
    # operators, a value used twice, chains
    T("operators", lambda x, y: x * 0.5 + y, lambda x, y: x * 0.5 + y, (3, 4), (4,)),
    T("operators", lambda x, y: 2.0 - x / y + x ** 2 - (-y) @ np.arange(16.0).reshape(4, 4),
      lambda x, y: 2.0 - x / y + x ** 2 - (-y) @ torch.arange(16.0, dtype=y.dtype).reshape(4, 4), (4,), (3, 4),
      draw=positive),
    T("operators", lambda x: np.linspace(1, 2, 4) * x - abs(x) + 2 ** x, lambda x: torch.tensor(
        np.linspace(1, 2, 4), dtype=x.dtype) * x - abs(x) + 2 ** x, (3, 4), draw=smooth),
    T("used twice", lambda x: x * x + ops.exp(x), lambda x: x * x + torch.exp(x), (3, 4)),
    T("chain", lambda x, w: ops.sum(ops.softmax(ops.matmul(ops.tanh(x), w)) * ops.sigmoid(x[:, :2]), axis=0),
      lambda x, w: torch.sum(F.softmax(torch.tanh(x) @ w, dim=-1) * torch.sigmoid(x[:, :2]), dim=0), (5, 3), (3, 2)),
]

def small(rng, shape):
    """|x| < 0.6: inside arcsin's, arccos' and arctanh's domains."""
    return rng.uniform(-0.6, 0.6, size=shape)


def above_one(rng, shape):
    return rng.uniform(1.3, 2.5, size=shape)


for _fn, _theirs, _draw in [("sin", torch.sin, normal), ("cos", torch.cos, normal), ("tan", torch.tan, small),
                            ("arcsin", torch.arcsin, small), ("arccos", torch.arccos, small),
                            ("arctan", torch.arctan, normal), ("sinh", torch.sinh, normal),
                            ("cosh", torch.cosh, normal), ("arcsinh", torch.arcsinh, normal),
                            ("arccosh", torch.arccosh, above_one), ("arctanh", torch.arctanh, small),
                            ("expm1", torch.expm1, normal), ("exp2", torch.exp2, normal),
                            ("log2", torch.log2, positive), ("log10", torch.log10, positive),
                            ("reciprocal", torch.reciprocal, positive), ("rsqrt", torch.rsqrt, positive),
                            ("cbrt", lambda x: torch.sign(x) * torch.abs(x) ** (1 / 3), positive),
                            ("ravel", lambda x: x.reshape(-1), normal)]:
    GRADS.append(T(_fn, getattr(ops, _fn), _theirs, (3, 4), draw=_draw))
GRADS += [
    T("floor", ops.floor, torch.floor, (3, 4)), T("ceil", ops.ceil, torch.ceil, (3, 4)),
    T("trunc", ops.trunc, torch.trunc, (3, 4)), T("round", ops.round, torch.round, (3, 4)),
    T("swapaxes", lambda x: ops.swapaxes(x, 0, 2), lambda x: torch.swapaxes(x, 0, 2), (2, 3, 4)),
    T("moveaxis", lambda x: ops.moveaxis(x, 0, -1), lambda x: torch.moveaxis(x, 0, -1), (2, 3, 4)),
    T("flip", lambda x: ops.flip(x, 1), lambda x: torch.flip(x, (1,)), (2, 3, 4)),
    T("flip", ops.flip, lambda x: torch.flip(x, (0, 1, 2)), (2, 3, 4)),
    T("roll", lambda x: ops.roll(x, 2), lambda x: torch.roll(x, 2), (3, 4)),
    T("roll", lambda x: ops.roll(x, (1, -2), (0, 1)), lambda x: torch.roll(x, (1, -2), (0, 1)), (3, 4)),
    T("triu", lambda x: ops.triu(x, 1), lambda x: torch.triu(x, 1), (2, 3, 4)),
    T("tril", ops.tril, torch.tril, (3, 4)),
    T("cumsum", lambda x: ops.cumsum(x, 1), lambda x: torch.cumsum(x, 1), (3, 4)),
    T("cumsum", ops.cumsum, lambda x: torch.cumsum(x.reshape(-1), 0), (3, 4)),
    T("logsumexp", lambda x: ops.logsumexp(x, 1), lambda x: torch.logsumexp(x, 1), (3, 4)),
    T("logsumexp", lambda x: ops.logsumexp(x, (0, 1), True), lambda x: torch.logsumexp(x, (0, 1), True), (3, 4)),
    T("sort", lambda x: ops.sort(x, 0), lambda x: torch.sort(x, dim=0, stable=True).values, (3, 4)),
]


def probability(rng, shape):
    return rng.uniform(0.05, 0.95, size=shape)


def off_the_jumps(rng, shape):
    """Away from the multiples of 0.7, where mod(x, 0.7) jumps."""
    return rng.integers(-3, 3, size=shape) * 0.7 + rng.uniform(0.15, 0.55, size=shape)


_EPS = 1e-7
_MASK = np.array([1.0, 0.0, 1.0, 0.0])
_LABELS = np.array([0, 2, 1])


def t_divide_no_nan(a, b):
    b = b * torch.tensor(_MASK, dtype=b.dtype)
    return torch.where(b == 0, torch.zeros_like(a), a / torch.where(b == 0, torch.ones_like(b), b))


def t_depth_to_space(x):            # Keras' torch code, channels_last
    n, h, w, c = x.shape
    return x.reshape(n, h, w, 2, 2, c // 4).permute(0, 1, 3, 2, 4, 5).reshape(n, h * 2, w * 2, c // 4)


def t_space_to_depth(x):
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).permute(0, 1, 3, 2, 4, 5).reshape(n, h // 2, w // 2, c * 4)


def t_bce(t, p):
    p = torch.clamp(p, _EPS, 1 - _EPS)
    return -(t * torch.log(p) + (1 - t) * torch.log(1 - p))


def t_cce(t, p):
    p = torch.clamp(p / p.sum(-1, keepdim=True), _EPS, 1 - _EPS)
    return -(t * torch.log(p)).sum(-1)


def t_moments(x):
    mean = x.mean(dim=(0, 1))
    return mean, (x * x).mean(dim=(0, 1)) - mean * mean


GRADS += [
    T("erf", ops.erf, torch.erf, (3, 4)), T("erfc", ops.erfc, torch.erfc, (3, 4)),
    T("amax", lambda x: ops.amax(x, axis=1), lambda x: torch.amax(x, dim=1), (3, 4)),
    T("amin", ops.amin, torch.amin, (3, 4)),
    T("average", lambda x: ops.average(x, axis=1), lambda x: x.mean(1), (3, 4)),
    T("average", lambda x, w: ops.average(x, axis=-1, weights=w), lambda x, w: (x * w).sum(-1) / w.sum(-1),
      (3, 4), (4,), draw=positive),
    T("divide_no_nan", lambda a, b: ops.divide_no_nan(a, ops.multiply(b, _MASK)), t_divide_no_nan, (3, 4), (4,),
      draw=positive),
    T("logaddexp", ops.logaddexp, torch.logaddexp, (3, 4), (4,)),
    T("arctan2", ops.arctan2, torch.arctan2, (3, 4), (4,)),
    T("mod", lambda x: ops.mod(x, 0.7), lambda x: torch.remainder(x, 0.7), (3, 4), draw=off_the_jumps),
    T("mod", lambda b: ops.mod(np.array([2.1, -1.3, 0.4]), b), lambda b: torch.remainder(
        torch.tensor([2.1, -1.3, 0.4], dtype=b.dtype), b), (3,), draw=lambda rng, s: np.array([0.9, 0.8, 0.7])),
    T("outer", ops.outer, torch.outer, (3,), (4,)),
    T("nan_to_num", ops.nan_to_num, torch.nan_to_num, (3, 4)),
    T("norm", ops.norm, torch.linalg.norm, (3, 4)),
    T("norm", lambda x: ops.norm(x, ord=1, axis=1), lambda x: torch.linalg.norm(x, 1, dim=1), (3, 4), draw=smooth),
    T("norm", lambda x: ops.norm(x, ord=3, axis=0, keepdims=True),
      lambda x: torch.linalg.norm(x, 3, dim=0, keepdim=True), (3, 4), draw=smooth),
    T("norm", lambda x: ops.norm(x, ord=np.inf, axis=-1), lambda x: torch.linalg.norm(x, np.inf, dim=-1), (3, 4),
      draw=smooth),
    T("norm", lambda x: ops.norm(x, ord="fro", axis=(1, 2)), lambda x: torch.linalg.norm(x, "fro", dim=(1, 2)),
      (2, 3, 4)),
    T("norm", lambda x: ops.norm(x, ord=1, axis=(1, 2)), lambda x: torch.linalg.norm(x, 1, dim=(1, 2)), (2, 3, 4),
      draw=smooth),
    T("normalize", ops.normalize, lambda x: x / torch.clamp(torch.linalg.norm(x, dim=-1, keepdim=True), min=_EPS),
      (3, 4)),
    T("moments", lambda x: ops.moments(x, (0, 1)), t_moments, (2, 3, 4)),
    T("depth_to_space", lambda x: ops.depth_to_space(x, 2), t_depth_to_space, (2, 3, 3, 8)),
    T("space_to_depth", lambda x: ops.space_to_depth(x, 2), t_space_to_depth, (2, 4, 6, 3)),
    T("take_along_axis", lambda x: ops.take_along_axis(x, np.array([[0, 3, 3], [1, -1, 0]]), axis=1),
      lambda x: torch.take_along_dim(x, torch.tensor([[0, 3, 3], [1, 3, 0]]), dim=1), (2, 4)),
    T("take_along_axis", lambda x: ops.take_along_axis(x, np.array([[2, 0, 0]]), axis=1),
      lambda x: torch.take_along_dim(x, torch.tensor([[2, 0, 0]]), dim=1), (3, 4)),
    T("top_k", lambda x: ops.top_k(x, 2)[0], lambda x: torch.topk(x, 2).values, (3, 5)),
    T("unstack", lambda x: ops.unstack(x, axis=1), lambda x: torch.unbind(x, 1), (3, 4)),
    T("slice", lambda x: ops.slice(x, (1, 2), (2, 3)), lambda x: x[1:3, 2:5], (4, 5)),
    T("hstack", lambda a, b: ops.hstack([a, b]), lambda a, b: torch.hstack([a, b]), (2, 3), (2, 1)),
    T("vstack", lambda a, b: ops.vstack([a, b]), lambda a, b: torch.vstack([a, b]), (2, 3), (3,)),
    T("glu", ops.glu, lambda x: torch.nn.functional.glu(x, dim=-1), (3, 4)),
    T("threshold", lambda x: ops.threshold(x, 0.2, -1.0), lambda x: torch.nn.functional.threshold(x, 0.2, -1.0),
      (3, 4), draw=smooth),
    T("binary_crossentropy", ops.binary_crossentropy, t_bce, (3, 4), (3, 4), draw=probability),
    T("binary_crossentropy", lambda t, z: ops.binary_crossentropy(t, z, from_logits=True),
      lambda t, z: torch.nn.functional.binary_cross_entropy_with_logits(z, t, reduction="none"), (3, 4), (3, 4),
      draw=probability),
    T("categorical_crossentropy", ops.categorical_crossentropy, t_cce, (3, 4), (3, 4), draw=probability),
    T("categorical_crossentropy", lambda t, z: ops.categorical_crossentropy(t, z, from_logits=True),
      lambda t, z: -(t * torch.log_softmax(z, -1)).sum(-1), (3, 4), (3, 4)),
    T("sparse_categorical_crossentropy", lambda p: ops.sparse_categorical_crossentropy(_LABELS, p),
      lambda p: t_cce(torch.nn.functional.one_hot(torch.tensor(_LABELS), 4).to(p.dtype), p), (3, 4),
      draw=probability),
]


def t_conv2d(x, w, stride=1, padding=1):
    """tf.nn.conv2d's NHWC / HWIO in torch's NCHW / OIHW."""
    return F.conv2d(x.permute(0, 3, 1, 2), w.permute(3, 2, 0, 1), stride=stride, padding=padding).permute(0, 2, 3, 1)


def t_depthwise(x, w):
    kh, kw, channels, multiplier = w.shape
    weight = w.permute(2, 3, 0, 1).reshape(channels * multiplier, 1, kh, kw)
    return F.conv2d(x.permute(0, 3, 1, 2), weight, padding=1, groups=channels).permute(0, 2, 3, 1)


def nchw(fn):
    return lambda x, *rest: fn(x.permute(0, 2, 3, 1), *rest).permute(0, 3, 1, 2)


GRADS += [      # the tf.nn-style ops of the seeds, in a custom layer's call
    T("conv2d", lambda x, w: ops.conv2d(x, w, 1, "SAME"), t_conv2d, (2, 5, 5, 3), (3, 3, 3, 4)),
    T("conv2d", lambda x, w, b: ops.conv2d(x, w, 2, "VALID", bias=b),
      lambda x, w, b: t_conv2d(x, w, 2, 0) + b, (2, 6, 6, 3), (3, 3, 3, 2), (2,)),
    T("conv2d", lambda x, w, b: ops.conv2d(x, w, 1, "SAME", data_format="NCHW", bias=b),
      lambda x, w, b: nchw(t_conv2d)(x, w) + b.reshape(1, -1, 1, 1), (2, 3, 4, 4), (3, 3, 3, 2), (2,)),
    T("depthwise_conv2d", lambda x, w: ops.depthwise_conv2d(x, w, 1, "SAME"), t_depthwise, (2, 5, 5, 3),
      (3, 3, 3, 2)),
    T("separable_conv2d", lambda x, d, p: ops.separable_conv2d(x, d, p, 1, "SAME"),
      lambda x, d, p: t_conv2d(t_depthwise(x, d), p, 1, 0), (2, 5, 5, 3), (3, 3, 3, 2), (1, 1, 6, 4)),
    T("max_pool2d", lambda x: ops.max_pool2d(x, 2, 2, "VALID"),
      lambda x: F.max_pool2d(x.permute(0, 3, 1, 2), 2, 2).permute(0, 2, 3, 1), (2, 6, 6, 3)),
    T("avg_pool2d", lambda x: ops.avg_pool2d(x, 2, 2, "VALID", data_format="NCHW"),
      lambda x: F.avg_pool2d(x, 2, 2), (2, 3, 6, 4)),
    T("global_avg_pool2d", ops.global_avg_pool2d, lambda x: x.mean(dim=(1, 2)), (2, 4, 5, 3)),
    T("zero_pad2d", lambda x: ops.zero_pad2d(x, ((1, 2), (0, 1))), lambda x: F.pad(x, (0, 0, 0, 1, 1, 2)),
      (2, 3, 4, 2)),
    T("resize2d", lambda x: ops.resize2d(x, (6, 8)), lambda x: F.interpolate(
        x.permute(0, 3, 1, 2), size=(6, 8), mode="bilinear", align_corners=False).permute(0, 2, 3, 1), (2, 3, 4, 2)),
    T("copy", ops.copy, torch.clone, (3, 4)), T("deg2rad", ops.deg2rad, torch.deg2rad, (3, 4)),
    T("rad2deg", ops.rad2deg, torch.rad2deg, (3, 4)), T("hypot", ops.hypot, torch.hypot, (3, 4), (4,)),
    T("append", ops.append, lambda a, b: torch.cat([a.reshape(-1), b.reshape(-1)]), (3, 4), (2, 2)),
    T("diagonal", lambda x: ops.diagonal(x, -1, 2, 1), lambda x: torch.diagonal(x, -1, 2, 1), (3, 4, 5)),
    T("trace", lambda x: ops.trace(x, 1), lambda x: torch.diagonal(x, 1).sum(-1), (4, 5, 3)),
    T("quantile", lambda x: ops.quantile(x, [0.2, 0.7], axis=1), lambda x: torch.quantile(
        x, torch.tensor([0.2, 0.7], dtype=x.dtype), dim=1), (3, 6)),
    T("percentile", lambda x: ops.percentile(x, 30, axis=0), lambda x: torch.quantile(x, 0.3, dim=0), (5, 3)),
    T("median", ops.median, lambda x: torch.quantile(x, 0.5), (3, 4)),
    T("max_pool", lambda x: ops.max_pool(x, 2), lambda x: F.max_pool2d(x.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1),
      (2, 6, 6, 3)),
    T("average_pool", lambda x: ops.average_pool(x, 2), lambda x: F.avg_pool1d(x.permute(0, 2, 1), 2).permute(
        0, 2, 1), (2, 6, 3)),
    T("depthwise_conv", lambda x, w: ops.depthwise_conv(x, w, padding="same"), t_depthwise, (2, 5, 5, 3), (3, 3, 3, 2)),
    T("separable_conv", lambda x, d, p: ops.separable_conv(x, d, p, padding="same"),
      lambda x, d, p: t_conv2d(t_depthwise(x, d), p, 1, 0), (2, 5, 5, 3), (3, 3, 3, 2), (1, 1, 6, 4)),
    T("conv_transpose", lambda x, w: ops.conv_transpose(x, w, 2, "valid", output_padding=1),
      lambda x, w: F.conv_transpose2d(x.permute(0, 3, 1, 2), w.permute(3, 2, 0, 1), stride=2,
                                      output_padding=1).permute(0, 2, 3, 1), (2, 3, 3, 4), (3, 3, 2, 4)),
    T("conv2d_transpose", lambda x, w: ops.conv2d_transpose(x, w, strides=2, padding="SAME"),
      lambda x, w: F.conv_transpose2d(x.permute(0, 3, 1, 2), w.permute(3, 2, 0, 1), stride=2)[:, :, :6, :6].permute(
          0, 2, 3, 1), (2, 3, 3, 4), (3, 3, 2, 4)),        # TF's SAME: the full output's last row and column cut
]

DIFFERENTIABLE = {
    "add", "subtract", "multiply", "divide", "true_divide", "negative", "power", "square", "sqrt", "exp", "log",
    "log1p", "abs", "absolute", "sign", "tanh", "maximum", "minimum", "clip", "where", "matmul", "dot",
    "tensordot", "einsum", "sum", "mean", "max", "min", "prod", "var", "std", "reshape", "transpose",
    "expand_dims", "squeeze", "concatenate", "stack", "split", "tile", "repeat", "broadcast_to", "take", "pad",
    "cast", "relu", "relu6", "sigmoid", "hard_sigmoid", "silu", "swish", "hard_silu", "hard_swish", "gelu",
    "softplus", "softsign", "elu", "selu", "leaky_relu", "softmax", "log_softmax",
    "sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "arcsinh", "arccosh", "arctanh", "expm1",
    "exp2", "log2", "log10", "reciprocal", "rsqrt", "cbrt", "floor", "ceil", "round", "trunc", "swapaxes",
    "moveaxis", "flip", "roll", "ravel", "triu", "tril", "cumsum", "logsumexp", "sort",
    "erf", "erfc", "amax", "amin", "average", "divide_no_nan", "logaddexp", "arctan2", "mod", "outer", "nan_to_num",
    "norm", "normalize", "moments", "depth_to_space", "space_to_depth", "take_along_axis", "top_k", "unstack",
    "slice", "hstack", "vstack", "glu", "threshold", "binary_crossentropy", "categorical_crossentropy",
    "sparse_categorical_crossentropy", "conv2d", "depthwise_conv2d", "separable_conv2d", "max_pool2d", "avg_pool2d",
    "global_avg_pool2d", "zero_pad2d", "resize2d", "conv2d_transpose", "max_pool", "average_pool", "depthwise_conv",
    "separable_conv", "conv_transpose", "copy", "deg2rad", "rad2deg", "hypot", "append", "diagonal", "trace",
    "quantile", "percentile", "median",
}


def outputs_of(result):
    return list(result) if isinstance(result, (list, tuple)) else [result]


def tape_gradients(ours, arrays, weights):
    """d sum(out * weight) / d input, by the tape (weights as the output gradients)."""
    with ops.Tape() as tape:
        xs = [tape.watch(a) for a in arrays]
        outs = outputs_of(ours(*xs))
    assert all(isinstance(o, ops.Traced) for o in outs)
    return tape.gradient(outs, xs, output_gradient=weights)


def torch_gradients(theirs, arrays, weights):
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    outs = outputs_of(theirs(*tensors))
    loss = sum((o * torch.tensor(w)).sum() for o, w in zip(outs, weights))
    return [g.numpy() for g in torch.autograd.grad(loss, tensors)]


@pytest.mark.parametrize("fn, ours, theirs, shapes, draw", GRADS)
def test_gradient_matches_finite_differences(fn, ours, theirs, shapes, draw):
    rng = np.random.default_rng(1)
    arrays = [draw(rng, s) for s in shapes]
    weights = [rng.normal(size=np.shape(o)) for o in outputs_of(ours(*arrays))]
    grads = tape_gradients(ours, arrays, weights)

    def loss():
        return float(sum(np.sum(np.asarray(o) * w) for o, w in zip(outputs_of(ours(*arrays)), weights)))
    for array, grad in zip(arrays, grads):
        assert grad.dtype == np.float64 and grad.shape == array.shape
        assert_gradients_close(grad, numerical_gradient(loss, array), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("fn, ours, theirs, shapes, draw", [case for case in GRADS if case.values[2] is not None])
def test_gradient_matches_torch_autograd(fn, ours, theirs, shapes, draw, dtype):
    """Every case with a torch twin (the others are checked against finite differences only)."""
    rng = np.random.default_rng(2)
    arrays = [draw(rng, s).astype(dtype) for s in shapes]
    weights = [rng.normal(size=np.shape(o)).astype(dtype) for o in outputs_of(ours(*arrays))]
    for grad, expected, array in zip(tape_gradients(ours, arrays, weights),
                                     torch_gradients(theirs, arrays, weights), arrays):
        assert grad.dtype == array.dtype
        rtol = TOLERANCE[dtype]
        scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
        np.testing.assert_allclose(grad, expected, rtol=rtol, atol=rtol * scale)


def test_every_differentiable_function_has_a_gradient_case():
    assert DIFFERENTIABLE <= {p.values[0] for p in GRADS}


# -- the tape's semantics ----------------------------------------------------------------------
def test_variable_leaves_sum_the_gradients_of_every_use():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 3))
    scale = Variable(rng.normal(size=3), "scale")
    with ops.Tape() as tape:
        y = ops.multiply(x, scale) * ops.sigmoid(x) + 0.5 * x + scale ** 2     # scale used twice
    grad = tape.gradient(y, scale)
    s = torch.tensor(scale.value, requires_grad=True)
    xt = torch.tensor(x)
    ((xt * s) * torch.sigmoid(xt) + 0.5 * xt + s ** 2).sum().backward()
    np.testing.assert_allclose(grad, s.grad.numpy(), rtol=1e-12)

    def loss():
        return float(np.sum(x * scale.value / (1 + np.exp(-x)) + 0.5 * x + scale.value ** 2))
    assert_gradients_close(grad, numerical_gradient(loss, scale.value))


def test_keras_style_layer_call_differentiates_through_operators():
    """The ScaleGate layer of the issue, written with ndarray-first products (reflected operators)."""
    rng = np.random.default_rng(4)
    x, scale = rng.normal(size=(2, 5)), Variable(rng.uniform(0.5, 1.5, size=5), "scale")

    def call(inputs):
        return ops.multiply(inputs, scale) * ops.sigmoid(inputs) + 0.5 * inputs

    with ops.Tape() as tape:
        xt = tape.watch(x)
        loss = ops.mean(ops.square(call(xt)))
    grad_x, grad_scale = tape.gradient(loss, [xt, scale])
    for array, grad in ((x, grad_x), (scale.value, grad_scale)):
        assert_gradients_close(grad, numerical_gradient(lambda: float(np.mean(call(x) ** 2)), array))


def test_unwatched_and_non_trainable_variables_are_not_leaves():
    trainable, frozen = Variable(np.ones(2), "t"), Variable(np.ones(2), "f", trainable=False)
    with ops.Tape() as tape:
        y = trainable * 2 + frozen * 3
    assert tape.gradient(y, frozen) is None          # as tf.GradientTape: unconnected -> None
    with ops.Tape(persistent=True) as tape:
        tape.watch(frozen)
        y = trainable * 2 + frozen * 3
    np.testing.assert_array_equal(tape.gradient(y, frozen), [3.0, 3.0])
    np.testing.assert_array_equal(tape.gradient(y, [trainable], unconnected_gradients="zero")[0], [2.0, 2.0])
    with ops.Tape(watch_accessed_variables=False) as tape:
        y = trainable * 2
    assert type(y) is np.ndarray and tape.gradient(y, trainable) is None


def test_unconnected_sources_give_none_or_zeros():
    with ops.Tape(persistent=True) as tape:
        x, unused = tape.watch(np.ones(3)), tape.watch(np.ones((2, 2), dtype=np.float32))
        y = ops.exp(x)
    assert tape.gradient(y, [x, unused])[1] is None
    zeros = tape.gradient(y, (x, unused), unconnected_gradients="zero")
    assert isinstance(zeros, tuple) and zeros[1].dtype == np.float32 and not zeros[1].any()


def test_constant_computation_is_not_recorded_and_frees_what_backward_does_not_need():
    with ops.Tape() as tape:
        x = tape.watch(np.ones(3))
        constant = np.arange(3.0)
        assert type(ops.exp(constant) * 2 + constant) is np.ndarray
        added, multiplied = np.full(3, 2.0), np.full(3, 5.0)
        kept_added, kept_multiplied = weakref.ref(added), weakref.ref(multiplied)
        y = (x + added) * 1.0 + x * multiplied
        del added, multiplied
    gc.collect()
    assert kept_added() is None            # add's rule keeps no operand
    assert kept_multiplied() is not None   # multiply's keeps the other factor
    np.testing.assert_array_equal(tape.gradient(y, x), [6.0, 6.0, 6.0])
    node = weakref.ref(y)
    del y
    gc.collect()
    assert node() is None                  # the graph lives in the values, not in the tape


def test_float32_stays_float32_and_mixed_dtypes_return_each_sources_dtype():
    with ops.Tape() as tape:
        a = tape.watch(np.ones(3, dtype=np.float32))
        b = tape.watch(np.full(3, 2.0))
        y = a * b + a * 0.5
    assert y.dtype == np.float64
    grad_a, grad_b = tape.gradient(y, [a, b])
    assert grad_a.dtype == np.float32 and grad_b.dtype == np.float64
    np.testing.assert_array_equal(grad_a, [2.5, 2.5, 2.5])


def test_integer_inputs_give_no_gradient_and_cannot_be_watched():
    with ops.Tape() as tape:
        x = tape.watch(np.ones(3))
        y = x * np.arange(3) + ops.argmax(x)
        assert type(ops.argmax(x)) is np.ndarray and type(x > 0) is np.ndarray
    np.testing.assert_array_equal(tape.gradient(y, x), [0.0, 1.0, 2.0])
    with pytest.raises(TypeError, match=r"Tape.watch: argument `value` must hold floats .* got dtype int64"):
        ops.Tape().watch(np.arange(3))


def test_output_gradient_and_several_targets():
    with ops.Tape(persistent=True) as tape:
        x = tape.watch(np.array([1.0, 2.0]))
        y, z = x * 3, ops.sum(x * x)
    np.testing.assert_array_equal(tape.gradient(y, x, output_gradient=np.array([1.0, -1.0])), [3.0, -3.0])
    np.testing.assert_array_equal(tape.gradient([y, z], x), [5.0, 7.0])
    with pytest.raises(ValueError, match=r"must have the target's shape \(2,\), got \(3,\)"):
        tape.gradient(y, x, output_gradient=np.ones(3))


def test_a_non_persistent_tape_gives_one_gradient():
    with ops.Tape() as tape:
        x = tape.watch(np.ones(2))
        y = x * 2
    tape.gradient(y, x)
    with pytest.raises(RuntimeError, match="a non-persistent tape computes one gradient"):
        tape.gradient(y, x)


def test_stop_gradient_and_untraced_targets():
    with ops.Tape(persistent=True) as tape:
        x = tape.watch(np.array([1.0, 3.0]))
        y = x * ops.stop_gradient(x)
    np.testing.assert_array_equal(tape.gradient(y, x), [1.0, 3.0])
    assert tape.gradient(np.ones(2), x) is None
    with pytest.raises(TypeError, match="argument `sources` must hold traced values .* got ndarray at position 0"):
        tape.gradient(y, [np.ones(2)])


def test_nested_tapes_each_see_their_own_leaves():
    with ops.Tape() as outer:
        x = outer.watch(np.array([2.0]))
        with ops.Tape() as inner:
            y = inner.watch(np.array([5.0]))
            z = x * y
    grad_x, grad_y = inner.gradient(z, [x, y])
    assert grad_x is None
    np.testing.assert_array_equal(grad_y, [2.0])
    np.testing.assert_array_equal(outer.gradient(z, x), [5.0])


def test_traced_values_behave_as_arrays():
    with ops.Tape() as tape:
        x = tape.watch(np.arange(6.0).reshape(2, 3))
        assert (x.shape, x.dtype, x.ndim, x.size, len(x)) == ((2, 3), np.float64, 2, 6, 2)
        np.testing.assert_array_equal(np.asarray(x), x.numpy())
        rows = list(x)
        assert all(isinstance(r, ops.Traced) for r in rows)
        assert float(x[1, 2]) == 5.0
        assert isinstance(x.T, ops.Traced) and x.T.shape == (3, 2)
        with pytest.raises(TypeError):
            np.exp(x)                  # ufuncs would drop the value out of the tape
        y = rows[0] * rows[1]
    np.testing.assert_array_equal(tape.gradient(y, x), [[3.0, 4.0, 5.0], [0.0, 1.0, 2.0]])
    assert type(x * 2) is np.ndarray   # outside the tape nothing is recorded


# -- record: hand-written backward passes ------------------------------------------------------
def dense_node(x, kernel, bias):
    """ops.dense_forward as one node with ops.dense_backward as its backward."""
    x_value, kernel_value = np.asarray(x), np.asarray(kernel)

    def backward(grad_y):
        return list(ops.dense_backward(grad_y, x_value, kernel_value))
    return ops.record([x, kernel, bias], ops.dense_forward(x_value, kernel_value, np.asarray(bias)), backward,
                      name="dense")


def test_record_composes_a_hand_written_backward_with_ops_nodes():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 3))
    kernel, bias = Variable(rng.normal(size=(3, 2)), "kernel"), Variable(rng.normal(size=2), "bias")

    def forward(inputs):       # the kernel is used by the node and by an ops penalty
        return ops.sum(ops.tanh(dense_node(inputs, kernel, bias)) * np.array([1.0, -2.0])) + ops.sum(kernel * kernel)

    with ops.Tape() as tape:
        xt = tape.watch(x)
        loss = forward(xt)
    grads = tape.gradient(loss, [xt, kernel, bias])
    for array, grad in zip((x, kernel.value, bias.value), grads):
        assert_gradients_close(grad, numerical_gradient(lambda: float(forward(x)), array))


def test_record_with_several_outputs_gets_zeros_for_unused_ones():
    seen = []

    def backward(grads):
        seen.append(grads)
        return [grads[0] + 2 * grads[1]]
    with ops.Tape() as tape:
        x = tape.watch(np.array([1.0, 2.0]))
        first, second = ops.record([x], (x.value * 1, x.value * 2), backward)
        y = first * 3
    np.testing.assert_array_equal(tape.gradient(y, x), [3.0, 3.0])
    np.testing.assert_array_equal(seen[0][1], [0.0, 0.0])


def test_record_without_a_tape_returns_the_plain_outputs():
    out = np.ones(2)
    assert ops.record([np.ones(2)], out, lambda g: [g]) is out
    with ops.Tape():
        assert ops.record([np.ones(2)], out, lambda g: [g]) is out     # no traced input


@pytest.mark.parametrize("backward, message", [
    (lambda g: [g, g], r"the backward of 'bad' must return a list of 1 gradients"),
    (lambda g: [np.ones(3)], r"the backward of 'bad' gave input 0 \(shape \(2,\)\) a gradient of shape \(3,\)"),
])
def test_record_checks_what_backward_returns(backward, message):
    with ops.Tape() as tape:
        x = tape.watch(np.ones(2))
        y = ops.record([x], x.value * 2, backward, name="bad")
    with pytest.raises(ValueError, match=message):
        tape.gradient(y, x)


# -- threads -----------------------------------------------------------------------------------
def test_a_tape_in_one_thread_does_not_record_another_threads_ops():
    shared = Variable(np.array([1.0, 2.0]), "shared")
    tape_open, other_done = threading.Event(), threading.Event()
    seen = {}

    def other_thread():
        assert tape_open.wait(timeout=30)
        seen["plain"] = shared * 10                  # no tape in this thread: a plain array
        with ops.Tape() as own:
            seen["own"] = shared * 100               # recorded on this thread's tape only
        seen["own_grad"] = own.gradient(seen["own"], shared)
        other_done.set()

    thread = threading.Thread(target=other_thread)
    thread.start()
    with ops.Tape(persistent=True) as tape:
        x = tape.watch(np.array([3.0, 4.0]))
        tape_open.set()
        assert other_done.wait(timeout=30)
        y = x * shared
    thread.join()
    assert type(seen["plain"]) is np.ndarray
    np.testing.assert_array_equal(seen["own_grad"], [100.0, 100.0])
    assert tape.gradient(seen["own"], shared) is None       # the other thread's node is not on this tape
    np.testing.assert_array_equal(tape.gradient(y, shared), [3.0, 4.0])


def test_average_weights_given_as_a_variable_get_their_gradient():
    """`ops.average(x, weights=w)` with `w` a watched Variable: its gradient, as torch's (once None)."""
    rng = np.random.default_rng(3)
    x, w = rng.normal(size=(3, 4)), rng.uniform(0.5, 2.0, size=4)
    weights = Variable(w.copy(), "w")
    with ops.Tape() as tape:
        tape.watch(weights)
        total = ops.sum(ops.multiply(ops.average(x, axis=-1, weights=weights), np.arange(3.0)))
    x_t, w_t = torch.tensor(x), torch.tensor(w, requires_grad=True)
    ((x_t * w_t).sum(-1) / w_t.sum() * torch.arange(3.0, dtype=torch.float64)).sum().backward()
    np.testing.assert_allclose(tape.gradient(total, weights), w_t.grad.numpy(), rtol=1e-10)
