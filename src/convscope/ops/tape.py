"""Reverse-mode differentiation on a per-call tape, as `tf.GradientTape`, for Keras-style `call`s.

    with ops.Tape() as tape:
        x = tape.watch(array)                       # a Traced value
        y = ops.multiply(x, layer.scale) * ops.sigmoid(x) + 0.5 * x
    grad_x, grad_scale = tape.gradient(y, [x, layer.scale])

While a tape is active, each Keras op of `convscope.ops` (and each `record`) that gets a traced
value or a watched `Variable` records a node: where its inputs came from and a backward rule that
closes over only what that rule needs.  Its outputs are `Traced` values pointing to the node, so
the graph lives in the values: dropping the result frees it; the tape itself holds no node.
Ops on constants only are not recorded and return plain arrays.  `Tape.gradient` walks the nodes
reachable from the target in reverse topological order, summing the gradients of every use and
reducing broadcast gradients back to each input's shape.  The backward rules are NumPy, not
recorded: no gradients of gradients.

The active tapes live in a `contextvars.ContextVar`: per thread and per asyncio task, never
process-wide.  Tapes nest; an op is recorded on every active tape that sees one of its inputs.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Callable, Sequence, Tuple

import numpy as np

from .. import backend
from ..variables import ArrayOperators, Variable, apply_operator

__all__ = ["Tape", "Traced", "record", "record_node", "stop_gradient", "is_traced", "recording"]

_ACTIVE: contextvars.ContextVar = contextvars.ContextVar("convscope_active_tapes", default=())


class _Node:
    """One recorded operation.  `parents[i]`: None (a constant or integer input), (node, index) of
    a traced input, or a Variable; `rule(output_grads, need) -> input grads`; `outputs`: (shape,
    dtype) of each output; `tapes`: the tapes it is recorded on."""

    __slots__ = ("name", "parents", "rule", "shapes", "dtypes", "outputs", "tapes")

    def __init__(self, name, parents, rule, shapes, dtypes, outputs, tapes):
        self.name, self.parents, self.rule = name, parents, rule
        self.shapes, self.dtypes, self.outputs, self.tapes = shapes, dtypes, outputs, tapes


class Traced(ArrayOperators):
    """An array whose operations a tape records: `.value` (the ndarray), `.shape`, `.dtype`,
    `.ndim`, `.size`, `.T`, `len()`, `.numpy()`.

    Python operators and indexing go through the Keras ops, so they are recorded while the tape
    is active (outside it they return plain arrays).  `np.asarray(traced)` gives the value
    untracked, and a NumPy ufunc applied directly raises TypeError (`__array_ufunc__ = None`):
    use the `convscope.ops` functions.  The value is not copied: do not modify it in place.
    """

    __slots__ = ("value", "_node", "_index", "__weakref__")
    __hash__ = object.__hash__

    def __init__(self, value: np.ndarray, node: _Node, index: int = 0):
        self.value = value
        self._node = node
        self._index = index

    shape = property(lambda self: self.value.shape)
    dtype = property(lambda self: self.value.dtype)
    ndim = property(lambda self: self.value.ndim)
    size = property(lambda self: self.value.size)

    @property
    def T(self):
        return apply_operator("transpose", self)

    def numpy(self) -> np.ndarray:
        """A copy of the value (untracked)."""
        return self.value.copy()

    def __array__(self, dtype=None, copy=None):
        return self.value if dtype is None else self.value.astype(dtype)

    def __len__(self) -> int:
        return len(self.value)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __bool__(self) -> bool:
        return bool(self.value)

    def __float__(self) -> float:
        return float(self.value)

    def __int__(self) -> int:
        return int(self.value)

    def __eq__(self, other):
        return apply_operator("equal", self, other)

    def __ne__(self, other):
        return apply_operator("not_equal", self, other)

    def __repr__(self) -> str:
        return f"Traced({np.array2string(self.value, threshold=20)}, dtype={self.dtype}, op='{self._node.name}')"


def is_traced(value) -> bool:
    return isinstance(value, Traced)


def recording() -> bool:
    """Whether a tape is recording in this thread (or task): a layer called now is a node on it."""
    return bool(_ACTIVE.get())


class Tape:
    """Records the ops run inside `with Tape() as tape:` for `tape.gradient` (`tf.GradientTape`).

    `persistent=False` allows one `gradient` call (as TensorFlow).  With
    `watch_accessed_variables=True` every trainable `Variable` an op reads is a leaf; other
    variables and arrays become leaves through `watch`.  A tape belongs to one thread.
    """

    def __init__(self, persistent: bool = False, watch_accessed_variables: bool = True):
        for arg, value in (("persistent", persistent), ("watch_accessed_variables", watch_accessed_variables)):
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"Tape: argument `{arg}` must be True or False, got {value!r}")
        self.persistent = bool(persistent)
        self.watch_accessed_variables = bool(watch_accessed_variables)
        self._variables = {}            # id -> Variable given to `watch`
        self._tokens = []
        self._used = False

    def __enter__(self) -> "Tape":
        self._tokens.append(_ACTIVE.set(_ACTIVE.get() + (self,)))
        return self

    def __exit__(self, *exc) -> None:
        _ACTIVE.reset(self._tokens.pop())

    def watch(self, value):
        """Make `value` a leaf of this tape and return it traced.

        An array (or number, or list) comes back as a new `Traced` to compute with; a `Traced`
        (e.g. from an outer tape) or a `Variable` is marked and returned as it is.
        """
        if isinstance(value, Traced):
            value._node.tapes.add(self)
            return value
        if isinstance(value, Variable):
            self._variables[id(value)] = value
            return value
        array = _as_array(value)
        if array.dtype.kind != "f":
            raise TypeError(f"Tape.watch: argument `value` must hold floats (only they have gradients), "
                            f"got dtype {array.dtype}")
        node = _Node("watch", (), None, (), (), ((array.shape, array.dtype),), {self})
        return Traced(array, node)

    def gradient(self, target, sources, output_gradient=None, unconnected_gradients: str = "none"):
        """d(sum(target * output_gradient)) / d(source) for each source (a Traced or a Variable).

        `output_gradient` defaults to ones; with a list of targets, give a list (or None).  A
        single source gives one array, a list or tuple of sources a list or tuple.  A source the
        target does not depend on gives None (as TensorFlow), or zeros with
        `unconnected_gradients="zero"`.  Each gradient has its source's shape and dtype.
        """
        if self._used and not self.persistent:
            raise RuntimeError("Tape.gradient: a non-persistent tape computes one gradient; "
                               "use Tape(persistent=True) to call gradient() more than once")
        if unconnected_gradients not in ("none", "zero"):
            raise ValueError(f"Tape.gradient: argument `unconnected_gradients` must be 'none' or 'zero', "
                             f"got {unconnected_gradients!r}")
        single = not isinstance(sources, (list, tuple))
        listed = [sources] if single else list(sources)
        keys = [self._source_key(source, i) for i, source in enumerate(listed)]
        seeds = _seeds(target, output_gradient)
        self._used = True
        with _paused():
            grads = self._backpropagate(seeds, set(keys))
        results = [_result(grads.get(key), source, unconnected_gradients) for key, source in zip(keys, listed)]
        return results[0] if single else type(sources)(results)

    # -- the walk ---------------------------------------------------------------------------
    def _sees(self, variable: Variable) -> bool:
        return ((self.watch_accessed_variables and bool(variable.trainable))
                or id(variable) in self._variables)

    def _connected(self, parent) -> bool:
        if parent is None:
            return False
        if isinstance(parent, tuple):
            return self in parent[0].tapes
        return self._sees(parent)

    def _source_key(self, source, position: int):
        if isinstance(source, Traced):
            return (id(source._node), source._index)
        if isinstance(source, Variable):
            return id(source)
        raise TypeError(f"Tape.gradient: argument `sources` must hold traced values (from tape.watch or an op) "
                        f"or Variables, got {type(source).__name__} at position {position}")

    def _backpropagate(self, seeds, keep) -> dict:
        """Gradient of every recorded value the seeds reach (keyed as `_source_key`); values not
        in `keep` are dropped once their node has used them."""
        grads: dict = {}
        roots = []
        for traced, seed in seeds:
            if self in traced._node.tapes:
                _accumulate(grads, (id(traced._node), traced._index), seed)
                roots.append(traced._node)
        for node in reversed(_topological(roots, self)):
            outs = [grads.get((id(node), i)) for i in range(len(node.outputs))]
            if node.rule is None or all(g is None for g in outs):
                continue
            for i in range(len(outs)):
                if (id(node), i) not in keep:
                    grads.pop((id(node), i), None)
            need = tuple(self._connected(parent) for parent in node.parents)
            if any(need):
                self._run_rule(node, outs, need, grads)
        return grads

    def _run_rule(self, node: _Node, outs, need, grads) -> None:
        outs = [g if g is not None else np.zeros(shape, dtype) for g, (shape, dtype) in zip(outs, node.outputs)]
        in_grads = node.rule(outs[0] if len(outs) == 1 else tuple(outs), need)
        if not isinstance(in_grads, (list, tuple)) or len(in_grads) != len(node.parents):
            raise ValueError(f"Tape.gradient: the backward of '{node.name}' must return a list of "
                             f"{len(node.parents)} gradients (one per input, None for none), got {in_grads!r:.80}")
        for i, (parent, needed, grad) in enumerate(zip(node.parents, need, in_grads)):
            if not needed or grad is None:
                continue
            grad = _sum_to_shape(np.asarray(grad), node.shapes[i], node.name, i)
            key = (id(parent[0]), parent[1]) if isinstance(parent, tuple) else id(parent)
            _accumulate(grads, key, grad.astype(node.dtypes[i], copy=False))


def _accumulate(grads: dict, key, grad: np.ndarray) -> None:
    """Sum the gradients of every use; never in place (a rule may hand the same array to two inputs)."""
    old = grads.get(key)
    grads[key] = grad if old is None else old + grad


def _topological(roots, tape: Tape):
    """The nodes recorded on `tape` that the roots depend on, each after all of its parents."""
    order, seen = [], set()
    for root in roots:
        stack = [(root, False)]
        while stack:
            node, finished = stack.pop()
            if finished:
                order.append(node)
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.append((node, True))
            for parent in node.parents:
                if isinstance(parent, tuple) and id(parent[0]) not in seen and tape in parent[0].tapes:
                    stack.append((parent[0], False))
    return order


def _seeds(target, output_gradient):
    """[(traced target, its output gradient)], defaulting to ones; untraced targets are dropped."""
    targets = list(target) if isinstance(target, (list, tuple)) else [target]
    if isinstance(target, (list, tuple)):
        given = [None] * len(targets) if output_gradient is None else list(output_gradient)
        if len(given) != len(targets):
            raise ValueError(f"Tape.gradient: argument `output_gradient` must hold one array per target "
                             f"({len(targets)}), got {len(given)}")
    else:
        given = [output_gradient]
    seeds = []
    for item, grad in zip(targets, given):
        if not isinstance(item, Traced):
            continue
        if grad is None:
            seeds.append((item, np.ones(item.shape, item.dtype)))
            continue
        grad = np.array(np.asarray(grad), dtype=item.dtype)
        if grad.shape != item.shape:
            raise ValueError(f"Tape.gradient: argument `output_gradient` must have the target's shape "
                             f"{item.shape}, got {grad.shape}")
        seeds.append((item, grad))
    return seeds


def _result(grad, source, unconnected: str):
    if grad is None:
        return np.zeros(source.shape, source.dtype) if unconnected == "zero" else None
    if not grad.flags.writeable or not grad.flags.c_contiguous:
        grad = np.array(grad)
    return grad


def _sum_to_shape(grad: np.ndarray, shape: Tuple[int, ...], name: str, position: int) -> np.ndarray:
    """A gradient of a broadcast input summed back to the input's shape."""
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    if lead < 0 or any(n != 1 and n != m for n, m in zip(shape, grad.shape[lead:])):
        raise ValueError(f"Tape.gradient: the backward of '{name}' gave input {position} (shape {shape}) "
                         f"a gradient of shape {grad.shape}")
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1)
    return grad.sum(axis=axes).reshape(shape)


@contextlib.contextmanager
def _paused():
    """No tape records inside (backward rules may call ops)."""
    token = _ACTIVE.set(())
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def _as_array(value) -> np.ndarray:
    """An array as the Keras ops take it: a list or Python float becomes floatx, a Python int int32."""
    if isinstance(value, np.ndarray):
        return value
    array = np.asarray(value)
    if array.dtype == np.float64:
        return array.astype(backend.floatx())
    return array.astype(np.int32) if array.dtype == np.int64 else array


# -- recording ---------------------------------------------------------------------------------
def _parent(value, active):
    """(what a node keeps of one input, the active tapes that see it)."""
    if isinstance(value, Traced):
        tapes = value._node.tapes.intersection(active)
        return ((value._node, value._index), tapes) if tapes else (None, ())
    if isinstance(value, Variable) and value.value.dtype.kind == "f":
        tapes = {tape for tape in active if tape._sees(value)}
        return (value, tapes) if tapes else (None, ())
    return None, ()


def record_node(name: str, inputs: Sequence, outputs, rule: Callable):
    """The ops' way to record: `rule(output_grads, need) -> input grads` (one output: one gradient
    array in; `need[i]` says whether input i wants a gradient).  Returns Traced outputs when an
    active tape sees an input and the outputs are floats, else `outputs` unchanged."""
    active = _ACTIVE.get()
    if not active:
        return outputs
    multiple = isinstance(outputs, tuple)
    arrays = outputs if multiple else (outputs,)
    if any(array.dtype.kind != "f" for array in arrays):
        return outputs
    parents, tapes = [], set()
    for value in inputs:
        parent, seen_by = _parent(value, active)
        parents.append(parent)
        tapes.update(seen_by)
    if not tapes:
        return outputs
    shapes = tuple(np.shape(value.value) if parent is not None else None for value, parent in zip(inputs, parents))
    dtypes = tuple(value.value.dtype if parent is not None else None for value, parent in zip(inputs, parents))
    node = _Node(name, tuple(parents), rule, shapes, dtypes,
                 tuple((array.shape, array.dtype) for array in arrays), tapes)
    traced = tuple(Traced(array, node, i) for i, array in enumerate(arrays))
    return traced if multiple else traced[0]


def record(inputs: Sequence, outputs, backward: Callable, name: str = "record"):
    """Record a node with a hand-written backward (a layer's fast path, a fused stage).

    `inputs`: Traced values, Variables or arrays; `outputs`: an ndarray or a tuple of them,
    computed from the inputs' values; `backward(output_grads) -> input_grads` gets one array (or
    a tuple, zeros for outputs the target does not use) and returns a list aligned with
    `inputs` (None for no gradient; a gradient of a broadcast input may keep the broadcast
    shape).  Returns Traced outputs when a tape is active and sees an input, else `outputs`.
    """
    if not isinstance(inputs, (list, tuple)):
        raise TypeError(f"record: argument `inputs` must be a list or tuple, got {type(inputs).__name__}")
    if not callable(backward):
        raise TypeError(f"record: argument `backward` must be callable, got {backward!r}")
    if isinstance(outputs, (list, tuple)):
        arrays = tuple(_output_array(o, i) for i, o in enumerate(outputs))
    else:
        arrays = _output_array(outputs, 0)
    return record_node(name, tuple(inputs), arrays, lambda grads, need: backward(grads))


def sees(*values) -> bool:
    """Whether an active tape sees one of `values` (a traced value, or a variable it watches)."""
    active = _ACTIVE.get()
    return bool(active) and any(_parent(value, active)[1] for value in values)


def record_forward(name: str, inputs: Sequence, forward: Callable, backward: Callable):
    """A `tf.nn`-style op with its own backward on a tape: `forward(*values) -> (outputs, ctx)` on the inputs'
    values, recorded with `backward(ctx, output_grads, need) -> input grads` (one per input)."""
    values = [value.value if isinstance(value, (Traced, Variable)) else value for value in inputs]
    outputs, ctx = forward(*values)
    return record_node(name, tuple(inputs), outputs, lambda grads, need: backward(ctx, grads, need))


def _output_array(value, position: int) -> np.ndarray:
    if isinstance(value, (Traced, Variable)):
        raise TypeError(f"record: argument `outputs` must hold plain arrays computed from the inputs' values, "
                        f"got a {type(value).__name__} at position {position}")
    return np.asarray(value)


def stop_gradient(variable) -> np.ndarray:
    """The value of `variable` (any array, traced or not) as a plain array, which no tape sees
    (`keras.ops.stop_gradient`).  Not a copy: a Variable's value is its array."""
    if isinstance(variable, (Traced, Variable)):
        return variable.value
    return _as_array(variable)
