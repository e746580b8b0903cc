"""Keras' merge layers: `Add`, `Subtract`, `Multiply`, `Average`, `Maximum`, `Minimum`,
`Concatenate`, and the functional forms `add`, `subtract`, ..., `concatenate`.

They take a list of inputs and have no weights.  The shape rules are Keras 3.15.1's
(`keras/src/layers/merging/base_merge.py`, `concatenate.py`):

* element-wise merges: the batch sizes that are known must be equal (the batch axis never
  broadcasts); the other axes broadcast as in NumPy, a lower-rank input getting 1-dims
  inserted right after its batch axis (Keras expands it at axis 1); an unknown (None) size
  against anything gives None.  At least one input (Keras 3 accepts a single input, which
  passes through); `Subtract` exactly two.
* `Concatenate(axis)`: inputs of one rank whose sizes match, where known, on every axis but
  `axis` (the batch axis included); the output's `axis` is the sum, or None if any is unknown.

The per-call contract: `forward(inputs) -> (output, ctx)` keeps in `ctx` what this call's
`backward(ctx, grad_output) -> (grad_inputs, [])` needs and nothing on `self`, so one layer
may run in several places and threads at once; `call(inputs)` keeps nothing.  Inputs of one
float dtype keep it (float32 -> float32, float64 -> float64); mixed or non-float inputs are
cast to the layer's dtype, which is what Keras does to every float input of a layer.  Each
gradient is a fresh array of its input's shape and dtype (never a view of `grad_output` or
of another gradient), so a graph may accumulate gradients in place.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..ops import concat as concat_ops
from .autodiff import NOT_GIVEN, recording
from .base import Layer, Shape, noted
from .spec import LayerSpec

_FLOATS = ("float32", "float64")

# Maximum/Minimum backward, per element of one fold step m' = max(m, x): the comparison of
# m with x is coded 0 (m > x), 1 (m < x), 2 (m == x), 3 (unordered: a NaN).  PyTorch's rule
# for torch.maximum: the larger gets the gradient, a tie splits it in halves, and with a NaN
# both get all of it (neither `self < other` nor `self > other` masks it).
_GREATER, _LESS, _EQUAL, _UNORDERED = 0, 1, 2, 3
_MAX_WEIGHTS = ((1.0, 0.0, 0.5, 1.0), (0.0, 1.0, 0.5, 1.0))   # (to m, to x) by code
_MIN_WEIGHTS = ((0.0, 1.0, 0.5, 1.0), (1.0, 0.0, 0.5, 1.0))


def _shape_text(shapes) -> str:
    return str([tuple(s) for s in shapes])


def _sum_to(grad: np.ndarray, shape: Tuple[int, ...]) -> np.ndarray:
    """`grad` summed over the axes where `shape` (same rank) has a 1 that was broadcast, else `grad`
    itself: an Add's inputs share one gradient array (a copy per input measurably slowed ResNet-20's training
    step; measurements: benchmarks/README.md, 'Measurements behind the code's choices'); no backward pass
    writes into the gradient it is given."""
    axes = tuple(i for i, (g, s) in enumerate(zip(grad.shape, shape)) if s == 1 and g != 1)
    return grad.sum(axis=axes, keepdims=True) if axes else grad


def _expanded(x: np.ndarray, rank: int) -> np.ndarray:
    """`x` with 1-dims inserted after the batch axis up to `rank` (Keras' expand_dims at axis 1)."""
    if x.ndim == rank:
        return x
    return x.reshape((x.shape[0],) + (1,) * (rank - x.ndim) + x.shape[1:])


def _compare(m: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The int8 comparison code of m against x, element by element (see `_GREATER` ...)."""
    less, equal = np.less(m, x), np.equal(m, x)
    code = np.full(np.broadcast_shapes(m.shape, x.shape), _UNORDERED, dtype=np.int8)
    code[np.greater(m, x)] = _GREATER
    code[less] = _LESS
    code[equal] = _EQUAL
    return code


class _Merge(Layer):
    """What every merge layer shares: the list of input shapes, the dtype rule, `__call__` on a list."""

    _MIN_INPUTS = 1
    _MAX_INPUTS: Optional[int] = None

    # -- shapes ------------------------------------------------------------------------------
    def _shapes(self, input_shapes) -> List[Shape]:
        """The list of input shapes as tuples, checked: a list of shapes with a batch axis, counted."""
        if not isinstance(input_shapes, (list, tuple)) or not all(
                isinstance(s, (list, tuple)) for s in input_shapes):
            raise ValueError(f"{self._describe()}: expected a list of input shapes (a merge layer takes a "
                             f"list of inputs), got {input_shapes!r}")
        shapes = []
        for shape in input_shapes:
            if len(shape) < 1 or any(
                    d is not None and (isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 0)
                    for d in shape):
                raise ValueError(f"{self._describe()}: expected shapes with a batch axis and sizes that are "
                                 f"ints >= 0 or None, got shapes {_shape_text(input_shapes)}")
            shapes.append(tuple(None if d is None else int(d) for d in shape))
        n = len(shapes)
        if n < self._MIN_INPUTS or (self._MAX_INPUTS is not None and n > self._MAX_INPUTS):
            if self._MAX_INPUTS == self._MIN_INPUTS:
                expected = f"exactly {self._MIN_INPUTS}"
            else:
                expected = f"at least {self._MIN_INPUTS}"
            raise ValueError(f"{self._describe()}: expected a list of {expected} input(s), got {n}: "
                             f"shapes {_shape_text(shapes)}")
        return shapes

    def build(self, input_shapes) -> None:
        """No weights to create: only the shape checks, so a bad merge fails here."""
        self.compute_output_shape(input_shapes)
        self.built = True

    # -- arrays ------------------------------------------------------------------------------
    def __call__(self, inputs, training=NOT_GIVEN):
        """Keras' `layer([x1, x2, ...])`: float inputs cast to the layer's dtype (Keras' autocast)."""
        if (not isinstance(inputs, (list, tuple)) or any(hasattr(x, "keras_history") for x in inputs)
                or recording()):
            # Symbolic tensors (the functional API), single arrays and calls inside a traced call: the base
            # class's call, which records a graph node, a node on the tape or, for an array, reaches `call`'s
            # "list of inputs" error.
            return super().__call__(inputs, training=training)
        arrays = [self._as_input_array(x) for x in inputs]
        if not self.built:
            self.build_from_shape([(None,) + a.shape[1:] for a in arrays])
        return noted(self, inputs, self.call(arrays, training=bool(training)))

    def _arrays(self, inputs) -> Tuple[List[np.ndarray], List[np.dtype]]:
        """The inputs as arrays of one dtype, their own dtypes, and the shape checks on them."""
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(f"{self._describe()}: expected a list of input arrays, got "
                             f"{type(inputs).__name__} of shape {np.shape(inputs)}")
        arrays = [np.asarray(x) for x in inputs]
        for x in arrays:
            if x.dtype.kind not in "biuf":
                raise TypeError(f"{self._describe()}: expected numeric arrays, got dtypes "
                                f"{[str(a.dtype) for a in arrays]}")
        dtypes = [x.dtype for x in arrays]
        if not (len(set(dtypes)) == 1 and dtypes[0].name in _FLOATS):
            arrays = [x.astype(self.dtype, copy=False) for x in arrays]
        self.compute_output_shape([x.shape for x in arrays])
        return arrays, dtypes

    def call(self, inputs, training: bool = False) -> np.ndarray:
        """The merged output only (Keras' `call`); keeps nothing."""
        arrays, _ = self._arrays(inputs)
        return self._merge(arrays)

    def describe(self):
        """kind "merge", op the class' name in snake case ("add", "concatenate"), axis Concatenate's."""
        return LayerSpec(kind="merge", op=type(self).__name__.lower(), axis=getattr(self, "axis", None))

    def forward(self, inputs, training: bool = False) -> Tuple[np.ndarray, Dict[str, Any]]:
        """(output, ctx): ctx holds what `backward` needs for this call; nothing is kept on the layer."""
        arrays, dtypes = self._arrays(inputs)
        output, saved = self._merge_for_backward(arrays)
        ctx = {"shapes": [x.shape for x in arrays], "dtypes": dtypes, "dtype": output.dtype,
               "output_shape": output.shape, "saved": saved}
        return output, ctx

    def backward(self, ctx: Dict[str, Any], grad_output, need_input_grad: bool = True):
        """(grad_inputs, []): one gradient per input, of its shape and dtype; no weights."""
        if not isinstance(ctx, dict) or "saved" not in ctx:
            raise TypeError(f"{self._describe()}: backward() takes the ctx that forward() returned, got "
                            f"{type(ctx).__name__}")
        grad = np.asarray(grad_output)
        if grad.shape != ctx["output_shape"]:
            raise ValueError(f"{self._describe()}: expected a gradient of the output's shape "
                             f"{ctx['output_shape']}, got {grad.shape}")
        if not need_input_grad:
            return [None] * len(ctx["shapes"]), []
        grad = grad.astype(ctx["dtype"], copy=False)
        grads = self._merge_backward(ctx, grad)
        return [np.ascontiguousarray(g.reshape(shape)).astype(dtype if dtype.kind == "f" else g.dtype, copy=False)
                for g, shape, dtype in zip(grads, ctx["shapes"], ctx["dtypes"])], []

    # -- what subclasses define -------------------------------------------------------------
    def _merge(self, arrays: List[np.ndarray]) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__}._merge")

    def _merge_for_backward(self, arrays: List[np.ndarray]):
        raise NotImplementedError(f"{type(self).__name__}._merge_for_backward")

    def _merge_backward(self, ctx: Dict[str, Any], grad: np.ndarray) -> List[np.ndarray]:
        raise NotImplementedError(f"{type(self).__name__}._merge_backward")


class _ElementwiseMerge(_Merge):
    """Element-wise merges (Keras' `Merge`): a left fold of a binary op over the broadcast inputs."""

    def compute_output_shape(self, input_shapes) -> Shape:
        """Keras' rule: equal known batch sizes; the rest broadcast (see the module's docstring)."""
        shapes = self._shapes(input_shapes)
        batch = {s[0] for s in shapes} - {None}
        if len(batch) > 1:
            raise ValueError(f"{self._describe()}: expected inputs with the same batch size, got shapes "
                             f"{_shape_text(shapes)}")
        output = shapes[0][1:]
        for shape in shapes[1:]:
            output = self._broadcast(output, shape[1:], shapes)
        return (batch.pop() if batch else None,) + output

    def _broadcast(self, shape1: Shape, shape2: Shape, shapes) -> Shape:
        """Keras' `_compute_elemwise_op_output_shape` (batch axis excluded), with our error message."""
        if len(shape1) < len(shape2):
            shape1, shape2 = shape2, shape1
        if not shape2:
            return shape1
        output = list(shape1[:len(shape1) - len(shape2)])
        for i, j in zip(shape1[len(shape1) - len(shape2):], shape2):
            if i is None or j is None:
                output.append(None)
            elif i == 1:
                output.append(j)
            elif j == 1 or i == j:
                output.append(i)
            else:
                raise ValueError(f"{self._describe()}: expected inputs whose shapes broadcast (after the "
                                 f"batch axis, aligned on the last axis: equal sizes or 1), got shapes "
                                 f"{_shape_text(shapes)}: {i} against {j}")
        return tuple(output)

    @staticmethod
    def _aligned(arrays: List[np.ndarray]) -> List[np.ndarray]:
        rank = max(x.ndim for x in arrays)
        return [_expanded(x, rank) for x in arrays]

    _op = None        # the binary NumPy ufunc of the fold

    def _merge(self, arrays):
        xs = self._aligned(arrays)
        out = xs[0] if len(xs) > 1 else np.array(xs[0], copy=True)   # a single input passes through
        for x in xs[1:]:
            out = self._op(out, x)
        return out

    def _merge_for_backward(self, arrays):
        xs = self._aligned(arrays)
        return self._merge(arrays), {"aligned": [x.shape for x in xs]}

    def _merge_backward(self, ctx, grad):
        return [_sum_to(grad, shape) for shape in ctx["saved"]["aligned"]]


class Add(_ElementwiseMerge):
    """Element-wise sum of a list of inputs (`keras.layers.Add`); each input's gradient is the output's."""

    _op = np.add


class Subtract(_ElementwiseMerge):
    """`inputs[0] - inputs[1]` (`keras.layers.Subtract`): exactly two inputs."""

    _MIN_INPUTS = _MAX_INPUTS = 2
    _op = np.subtract

    def _merge_backward(self, ctx, grad):
        first, second = ctx["saved"]["aligned"]
        return [_sum_to(grad, first), np.negative(_sum_to(grad, second))]


class Multiply(_ElementwiseMerge):
    """Element-wise product (`keras.layers.Multiply`); an input's gradient is the product of the others,
    taken through the same left fold ((x0 * x1) * x2 ...) as the forward pass and autograd."""

    _op = np.multiply

    def _merge_for_backward(self, arrays):
        xs = self._aligned(arrays)
        prefixes = [xs[0]]                   # x0, x0*x1, ...: each step's left operand
        for x in xs[1:-1]:
            prefixes.append(prefixes[-1] * x)
        out = prefixes[-1] * xs[-1] if len(xs) > 1 else np.array(xs[0], copy=True)
        return out, {"aligned": [x.shape for x in xs], "inputs": xs, "prefixes": prefixes}

    def _merge_backward(self, ctx, grad):
        saved = ctx["saved"]
        xs, prefixes = saved["inputs"], saved["prefixes"]
        grads: List[Optional[np.ndarray]] = [None] * len(xs)
        for k in range(len(xs) - 1, 0, -1):   # step k: prefixes[k-1] * xs[k]
            grads[k] = _sum_to(grad * prefixes[k - 1], xs[k].shape)
            grad = _sum_to(grad * xs[k], prefixes[k - 1].shape)
        grads[0] = grad if len(xs) > 1 else grad.copy()
        return grads


class Average(_ElementwiseMerge):
    """Element-wise mean (`keras.layers.Average`): the sum divided by the number of inputs; 1/n each."""

    _op = np.add

    def _merge(self, arrays):
        out = super()._merge(arrays)
        return out / np.asarray(len(arrays), dtype=out.dtype)

    def _merge_backward(self, ctx, grad):
        grad = grad / np.asarray(len(ctx["shapes"]), dtype=grad.dtype)
        return [_sum_to(grad, shape) for shape in ctx["saved"]["aligned"]]


class _Extremum(_ElementwiseMerge):
    """Maximum/Minimum: the gradient goes to the input that holds the extremum; PyTorch's rule on ties
    (torch.maximum: halves to each side of a tie), applied to each step of Keras' left fold, so three
    tied inputs get 1/4, 1/4 and 1/2 exactly as autograd through Keras' ops on the torch backend."""

    _WEIGHTS = _MAX_WEIGHTS

    def _merge_for_backward(self, arrays):
        xs = self._aligned(arrays)
        out = xs[0]
        codes, left_shapes = [], []
        for x in xs[1:]:
            codes.append(_compare(out, x))
            left_shapes.append(out.shape)
            out = self._op(out, x)
        if len(xs) == 1:
            out = np.array(out, copy=True)
        return out, {"aligned": [x.shape for x in xs], "codes": codes, "left_shapes": left_shapes}

    def _merge_backward(self, ctx, grad):
        saved = ctx["saved"]
        aligned = saved["aligned"]
        to_left, to_right = (np.asarray(w, dtype=grad.dtype) for w in self._WEIGHTS)
        grads: List[Optional[np.ndarray]] = [None] * len(aligned)
        for k in range(len(aligned) - 1, 0, -1):   # step k: extremum(left, xs[k])
            code = saved["codes"][k - 1]
            grads[k] = _sum_to(grad * to_right[code], aligned[k])
            grad = _sum_to(grad * to_left[code], saved["left_shapes"][k - 1])
        grads[0] = grad if len(aligned) > 1 else grad.copy()
        return grads


class Maximum(_Extremum):
    """Element-wise maximum (`keras.layers.Maximum`); a NaN propagates, as in np/torch.maximum."""

    _op = np.maximum
    _WEIGHTS = _MAX_WEIGHTS


class Minimum(_Extremum):
    """Element-wise minimum (`keras.layers.Minimum`); a NaN propagates, as in np/torch.minimum."""

    _op = np.minimum
    _WEIGHTS = _MIN_WEIGHTS


class Concatenate(_Merge):
    """Joins a list of inputs along `axis` (`keras.layers.Concatenate`; the batch axis 0 included)."""

    def __init__(self, axis: int = -1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"{self._describe()}: argument `axis` must be an int, got {axis!r}")
        self.axis = int(axis)

    def _concat_axis(self, shapes) -> int:
        """`axis` as a non-negative index, after checking the inputs' ranks and the other sizes."""
        ranks = {len(s) for s in shapes}
        if len(ranks) > 1:
            raise ValueError(f"{self._describe()}: expected inputs of the same rank with matching shapes "
                             f"except for the concatenation axis ({self.axis}), got shapes "
                             f"{_shape_text(shapes)}")
        rank = ranks.pop()
        if not -rank <= self.axis < rank:
            raise ValueError(f"{self._describe()}: expected inputs with an axis {self.axis} to concatenate "
                             f"on, got shapes {_shape_text(shapes)} (rank {rank})")
        axis = self.axis % rank
        for position in range(rank):
            known = {s[position] for s in shapes} - {None}
            if position != axis and len(known) > 1:
                raise ValueError(f"{self._describe()}: expected inputs with matching shapes except for the "
                                 f"concatenation axis ({self.axis}), got shapes {_shape_text(shapes)}: "
                                 f"axis {position} differs")
        return axis

    def compute_output_shape(self, input_shapes) -> Shape:
        """Keras' rule: the first input's shape with `axis` summed (None if any size is unknown)."""
        shapes = self._shapes(input_shapes)
        axis = self._concat_axis(shapes)
        sizes = [s[axis] for s in shapes]
        output = list(shapes[0])
        output[axis] = None if None in sizes else sum(sizes)
        return tuple(output)

    def _merge(self, arrays):
        return concat_ops.concatenate(arrays, axis=self._concat_axis([x.shape for x in arrays]))

    def _merge_for_backward(self, arrays):
        axis = self._concat_axis([x.shape for x in arrays])
        return concat_ops.concatenate(arrays, axis=axis), {"axis": axis}

    def _merge_backward(self, ctx, grad):
        axis = ctx["saved"]["axis"]
        ends = np.cumsum([s[axis] for s in ctx["shapes"]])[:-1]
        return [part.copy() for part in np.split(grad, ends, axis=axis)]

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config["axis"] = self.axis
        return config


def add(inputs: Sequence, **kwargs):
    """Keras' `layers.add(inputs)`: `Add(**kwargs)(inputs)`."""
    return Add(**kwargs)(inputs)


def subtract(inputs: Sequence, **kwargs):
    """Keras' `layers.subtract(inputs)`: `Subtract(**kwargs)(inputs)`."""
    return Subtract(**kwargs)(inputs)


def multiply(inputs: Sequence, **kwargs):
    """Keras' `layers.multiply(inputs)`: `Multiply(**kwargs)(inputs)`."""
    return Multiply(**kwargs)(inputs)


def average(inputs: Sequence, **kwargs):
    """Keras' `layers.average(inputs)`: `Average(**kwargs)(inputs)`."""
    return Average(**kwargs)(inputs)


def maximum(inputs: Sequence, **kwargs):
    """Keras' `layers.maximum(inputs)`: `Maximum(**kwargs)(inputs)`."""
    return Maximum(**kwargs)(inputs)


def minimum(inputs: Sequence, **kwargs):
    """Keras' `layers.minimum(inputs)`: `Minimum(**kwargs)(inputs)`."""
    return Minimum(**kwargs)(inputs)


def concatenate(inputs: Sequence, axis: int = -1, **kwargs):
    """Keras' `layers.concatenate(inputs, axis)`: `Concatenate(axis=axis, **kwargs)(inputs)`."""
    return Concatenate(axis=axis, **kwargs)(inputs)
