"""`MultiHeadAttention`: Keras' multi-head attention (Vaswani et al., arXiv:1706.03762), as ViT and hybrid CNNs use.

`mha(query, value, key=None, attention_mask=None, return_attention_scores=False, use_causal_mask=False)`:
query (B, T..., E_q), value (B, S..., E_v), key (B, S..., E_k; the value where not given).  The four projections
are EinsumDense sublayers named as Keras names them ("query", "key", "value", "attention_output"; "gate" with
`use_gate`), with Keras' equations; per head, softmax(query · keyᵀ / √key_dim) over the attention axes (masked
positions -1e9 before and 0 after, as Keras' Softmax), dropout on those weights in training, then the weighted sum
of the values.  Output: (B, T..., output_shape or E_q); with `return_attention_scores`, also the weights (B, heads,
T..., S...).  Gradients: the ops on a per-call tape.
"""

from __future__ import annotations

import math
import string
from typing import Any, Dict, List

import numpy as np

from .. import backend, ops
from ..ops.dropout import dropout_forward
from . import graph
from .autodiff import NOT_GIVEN, call_traced, plain, recording, resolve_training, run_on_tape
from .base import Layer, Shape, check_bool, check_positive_int, noted, resolve_optional
from .einsum_dense import EinsumDense
from .kernel_bias import set_weight_options, weight_options_config
from .spec import LayerSpec
from .. import initializers

_CALL_FLAGS = ("return_attention_scores", "use_causal_mask")


def _letter(i: int) -> str:
    return string.ascii_lowercase[i]


def attention_equations(rank: int, attention_axes):
    """Keras' `_build_attention_equation`: (query·key equation, weights·value equation, the scores' rank) for
    projected tensors of `rank` (batch, ..., heads, channels), attending over `attention_axes`."""
    target = "".join(_letter(i) for i in range(rank))
    batch = tuple(np.delete(range(rank), tuple(attention_axes) + (rank - 1,)))
    source, offset = "", rank
    for i in range(rank):
        if i in batch or i == rank - 1:
            source += target[i]
        else:
            source += _letter(offset)
            offset += 1
    product = "".join([target[i] for i in batch] + [target[i] for i in attention_axes]
                      + [source[i] for i in attention_axes])
    return f"{source},{target}->{product}", f"{product},{source}->{target}", len(product)


def projection_equation(free: int, bound: int, out: int):
    """Keras' `_build_proj_equation`: (equation, bias axes, output rank)."""
    letters = [_letter(i) for i in range(free + bound + out)]
    free_s, bound_s = "".join(letters[:free]), "".join(letters[free:free + bound])
    out_s = "".join(letters[free + bound:])
    return f"{free_s}{bound_s},{bound_s}{out_s}->{free_s}{out_s}", out_s, free + out


class MultiHeadAttention(Layer):
    """Keras' `layers.MultiHeadAttention` (see the module's docstring)."""

    CALL_KWARGS = frozenset({"query", "value", "key", "attention_mask", "return_attention_scores", "use_causal_mask",
                             "query_mask", "value_mask", "key_mask"})

    def __init__(self, num_heads, key_dim, value_dim=None, dropout=0.0, use_bias=True, output_shape=None,
                 attention_axes=None, sliding_window=None, flash_attention=None, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, use_gate=False, seed=None, **kwargs):
        super().__init__(**kwargs)
        where = self._describe()
        self.num_heads = check_positive_int(num_heads, "num_heads", where)
        self.key_dim = check_positive_int(key_dim, "key_dim", where)
        self.value_dim = self.key_dim if value_dim is None else check_positive_int(value_dim, "value_dim", where)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"{where}: argument `dropout` must be a number in [0, 1), got {dropout!r}")
        self.dropout = float(dropout)
        self.use_bias = check_bool(use_bias, "use_bias", where)
        self.use_gate = check_bool(use_gate, "use_gate", where)
        if output_shape is not None:
            items = (output_shape,) if isinstance(output_shape, (int, np.integer)) else tuple(output_shape)
            output_shape = tuple(check_positive_int(d, "output_shape", where) for d in items)
        self.partial_output_shape = output_shape or None
        if isinstance(attention_axes, (int, np.integer)):
            attention_axes = (int(attention_axes),)
        elif attention_axes is not None:
            if not isinstance(attention_axes, (list, tuple)):
                raise TypeError(f"{where}: argument `attention_axes` must be an int, a list or a tuple, got "
                                f"{attention_axes!r}")
            attention_axes = tuple(int(a) for a in attention_axes)
        self.attention_axes = attention_axes
        for arg, value in (("sliding_window", sliding_window), ("flash_attention", flash_attention or None)):
            if value is not None:
                raise ValueError(f"{where}: argument `{arg}` is not supported, got {value!r}")
        self.seed = seed
        self._generator = None if seed is None else np.random.default_rng(seed)
        set_weight_options(self, where, kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
                           kernel_constraint, bias_constraint)
        # Keras gives it to each projection, not to the attention layer itself
        self.sublayer_activity_regularizer = resolve_optional("regularizers", activity_regularizer, where,
                                                              "activity_regularizer")
        self._dense = {}

    # -- weights: the projections' -------------------------------------------------------------------
    def keras_sublayers(self) -> List[tuple]:
        """(the name Keras' files give it, the sublayer) of the projections, in Keras' order."""
        dense = vars(self).get("_dense", {})       # none while the base constructor runs
        names = (("query_dense", "query"), ("key_dense", "key"), ("value_dense", "value"), ("_gate_dense", "gate"),
                 ("output_dense", "attention_output"))
        return [(path, dense[name]) for path, name in names if name in dense]

    def _children(self):
        return [layer for _, layer in self.keras_sublayers()]

    def _projections(self) -> list:
        """The projections in Keras' order of the weights (the order it builds them)."""
        return [self._dense[name] for name in ("query", "key", "gate", "value", "attention_output")
                if name in self._dense]

    @property
    def weights(self):
        return [v for layer in self._projections() for v in layer.weights]

    @property
    def trainable_weights(self):
        return [v for layer in self._projections() for v in layer.trainable_weights] if self.trainable else []

    # -- shapes and build ----------------------------------------------------------------------------
    def _shapes(self, input_shape):
        """(query, value, key) shapes from `[query, value]` or `[query, value, key]`."""
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) not in (2, 3) or \
                not all(isinstance(s, (list, tuple)) for s in input_shape):
            raise ValueError(f"{self._describe()}: expected the shapes of [query, value] or [query, value, key], got "
                             f"{input_shape!r}")
        query, value = (tuple(s) for s in input_shape[:2])
        key = tuple(input_shape[2]) if len(input_shape) == 3 else value
        if value[1:-1] != key[1:-1]:
            raise ValueError(f"{self._describe()}: `value` and `key` must have the same shape but for the last axis, "
                             f"got {value} and {key}")
        if len(query) < 3 or len(query) != len(value):
            raise ValueError(f"{self._describe()}: expected `query` and `value` of one rank, 3 or more, got {query} "
                             f"and {value}")
        return query, value, key

    def compute_output_shape(self, input_shape) -> Shape:
        query, _, _ = self._shapes(input_shape)
        return tuple(query[:-1]) + (self.partial_output_shape or (query[-1],))

    def _projection(self, name: str, rank: int, bound: int, dims, activation=None) -> EinsumDense:
        equation, bias_axes, out_rank = projection_equation(rank - 1, bound, len(dims))
        return EinsumDense(equation, [None] * (out_rank - 1 - len(dims)) + list(dims), activation=activation,
                           bias_axes=bias_axes if self.use_bias else None, name=name, dtype=self.dtype,
                           kernel_initializer=initializers.get(initializers.serialize(self.kernel_initializer)),
                           bias_initializer=initializers.get(initializers.serialize(self.bias_initializer)),
                           kernel_regularizer=self.kernel_regularizer, bias_regularizer=self.bias_regularizer,
                           activity_regularizer=self.sublayer_activity_regularizer,
                           kernel_constraint=self.kernel_constraint, bias_constraint=self.bias_constraint)

    def build(self, input_shape) -> None:
        query, value, key = self._shapes(input_shape)
        rank = len(query)
        dense = {"query": self._projection("query", rank, 1, (self.num_heads, self.key_dim)),
                 "key": self._projection("key", len(key), 1, (self.num_heads, self.key_dim))}
        if self.use_gate:
            dense["gate"] = self._projection("gate", rank, 1, (self.num_heads, self.value_dim), "sigmoid")
        dense["value"] = self._projection("value", len(value), 1, (self.num_heads, self.value_dim))
        dense["query"].build_from_shape(query)
        dense["key"].build_from_shape(key)
        if "gate" in dense:
            dense["gate"].build_from_shape(query)
        dense["value"].build_from_shape(value)
        axes = self.attention_axes if self.attention_axes is not None else tuple(range(1, rank - 1))
        normalized = tuple(a if a >= 0 else rank + a for a in axes)
        if not all(0 < a < rank - 1 for a in normalized) or len(set(normalized)) != len(normalized):
            raise ValueError(f"{self._describe()}: argument `attention_axes` must name distinct axes of the query "
                             f"between the batch and the channels (1 to {rank - 2} for shape {query}), got {axes}")
        self.attention_axes = normalized
        out = self.partial_output_shape or (query[-1],)
        dense["attention_output"] = self._projection("attention_output", rank, 2, out)
        projected = list(dense["query"].compute_output_shape(query))
        projected[-1] = self.value_dim
        dense["attention_output"].build_from_shape(tuple(projected))
        self._dense = dense
        self.built = True

    def describe(self):
        """kind "attention": filters the heads, size (key_dim, value_dim), axis the attention axes, weights the
        projections' kernels by role (the analysis counts their products)."""
        dense = vars(self).get("_dense", {})
        return LayerSpec(kind="attention", filters=self.num_heads, size=(self.key_dim, self.value_dim),
                         axis=self.attention_axes, weights={name: layer.kernel for name, layer in dense.items()})

    def keras_build_config(self) -> Dict[str, Any]:
        """Keras' `build_config` of this layer: the shapes by name (`build(query_shape, value_shape, key_shape)`)."""
        shapes = self._build_input_shape
        names = ("query_shape", "value_shape", "key_shape")
        return {"shapes_dict": {name: list(shape) for name, shape in zip(names, shapes)}}

    # -- calls ---------------------------------------------------------------------------------------
    def __call__(self, query, value, key=None, query_mask=None, value_mask=None, key_mask=None, attention_mask=None,
                 return_attention_scores=False, training=NOT_GIVEN, use_causal_mask=False):
        """Keras' call: symbolic tensors record a node (`[query, value]`, the rest as keyword arguments, as Keras
        writes them); inside a traced call (a custom layer, a subclassed model, an `ops.Tape`) one node on the
        tape; arrays are computed.  `training` follows Keras' rule (as passed, else the enclosing call's)."""
        for arg, mask in (("query_mask", query_mask), ("value_mask", value_mask), ("key_mask", key_mask)):
            if mask is not None:
                raise ValueError(f"{self._describe()}: argument `{arg}` is not supported (convscope has no Keras "
                                 "masks); give an `attention_mask`")
        given = (("key", key), ("attention_mask", attention_mask))
        kwargs = {name: tensor for name, tensor in given if tensor is not None}
        kwargs.update({name: True for name, flag in (("return_attention_scores", return_attention_scores),
                                                     ("use_causal_mask", use_causal_mask)) if flag})
        tensors = {"query": query, "value": value, **{name: kwargs[name] for name, _ in given if name in kwargs}}
        symbolic = {name: isinstance(tensor, graph.KerasTensor) for name, tensor in tensors.items()}
        if any(symbolic.values()):
            if not all(symbolic.values()):
                kinds = ", ".join(f"{name} {type(tensor).__name__}" for name, tensor in tensors.items())
                raise TypeError(f"{self._describe()}: give query, value, key and attention_mask all as symbolic "
                                f"tensors (keras.Input or a layer's output) or all as arrays, got {kinds}")
            return self._record(query, value, kwargs)
        training = bool(resolve_training(training, False))
        items = [query, value] + ([key] if key is not None else [])
        if not self.built:
            self.build_from_shape([(None,) + tuple(np.shape(getattr(t, "value", t)))[1:] for t in items])
        if recording():
            return self._on_tape(items, training, kwargs)
        with backend.no_backward():
            outputs = self.forward([np.asarray(query), np.asarray(value)], training=training, **kwargs)[0]
        return noted(self, [query, value], outputs)

    def _on_tape(self, items, training: bool, kwargs):
        """One node on the active tape: the tensors (query, value, key) traced, the mask and flags constant."""
        options = {name: value for name, value in kwargs.items() if name != "key"}

        def forward(layer, values, training=False):
            key = values[2] if len(values) > 2 else None
            return MultiHeadAttention.forward(layer, values[:2], training=training, key=key, **options)

        def backward(layer, ctx, grad, need_input_grad=True):
            grads, pairs = MultiHeadAttention.backward(layer, ctx, grad, need_input_grad)
            return (grads[:len(items)] if grads is not None else None), pairs
        return call_traced(self, items, training, forward=forward, backward=backward)

    def _record(self, query, value, kwargs):
        shapes = [tuple(query.shape), tuple(value.shape)] + ([tuple(kwargs["key"].shape)] if "key" in kwargs else [])
        if not self.built:
            self.build_from_shape([(None,) + s[1:] for s in shapes])
        mask = kwargs.get("attention_mask")
        self._check_masks(None if mask is None else tuple(mask.shape), kwargs.get("use_causal_mask", False), shapes)
        output = graph.KerasTensor(self.compute_output_shape(shapes), self.dtype)
        outputs = [output]
        if kwargs.get("return_attention_scores"):
            scores = self._scores_shape(shapes)
            outputs.append(graph.KerasTensor(scores, self.dtype))
        graph.Node(self, [query, value], outputs, kwargs)
        return outputs if len(outputs) > 1 else output

    def _scores_shape(self, shapes):
        query, _, key = self._shapes(shapes)
        batch = tuple(query[i] for i in range(len(query) - 1) if i not in self.attention_axes)
        return batch + (self.num_heads,) + tuple(query[a] for a in self.attention_axes) + tuple(
            key[a] for a in self.attention_axes)

    def forward(self, inputs, training: bool = False, key=None, attention_mask=None, return_attention_scores=False,
                use_causal_mask=False):
        """(output, or [output, scores]; the tape's context)."""
        tensors = [np.asarray(inputs[0]), np.asarray(inputs[1])] + ([np.asarray(key)] if key is not None else [])
        mask = None if attention_mask is None else np.asarray(attention_mask, dtype=bool)
        self._check_masks(None if mask is None else mask.shape, use_causal_mask, [t.shape for t in tensors])

        def attend(items):
            return self._attend(items[0], items[1], items[2] if len(items) > 2 else None, mask, training,
                                return_attention_scores, use_causal_mask)
        if not backend.keeps_for_backward():
            return plain(attend(tensors)), None
        outputs, context = run_on_tape(self, tensors, attend)
        return outputs, {"tape": context, "mask": mask is not None}

    def backward(self, ctx, grad_output, need_input_grad: bool = True):
        """(gradients of query, value (, key) (, None for the mask), [(variable, gradient)])."""
        grads, pairs = ctx["tape"].gradients(grad_output, need_input_grad, f"{self._describe()}.backward")
        if need_input_grad and ctx["mask"]:
            grads = list(grads) + [None]
        return grads, pairs

    def _attend(self, query, value, key, mask, training, return_scores, causal):
        """The attention on arrays or taped values; `key` None: the value."""
        key = value if key is None else key
        dense = self._dense
        gate = dense["gate"](query) if "gate" in dense else None
        q, k, v = dense["query"](query), dense["key"](key), dense["value"](value)
        rank = len(np.shape(getattr(q, "value", q)))
        dot, combine, scores_rank = attention_equations(rank, self.attention_axes)
        q = ops.multiply(q, np.asarray(1.0 / math.sqrt(float(self.key_dim)), dtype=self.dtype))
        scores = ops.einsum(dot, k, q)
        mask = self._mask(mask, causal, np.shape(getattr(query, "value", query)), np.shape(getattr(value, "value",
                                                                                                    value)),
                          scores_rank)
        norm_axes = tuple(range(scores_rank - len(self.attention_axes), scores_rank))
        if mask is not None:
            scores = ops.where(mask, scores, np.asarray(-1e9, dtype=self.dtype))
        weights = ops.softmax(scores, axis=norm_axes[0]) if len(norm_axes) == 1 else ops.exp(
            ops.subtract(scores, ops.logsumexp(scores, axis=norm_axes, keepdims=True)))
        if mask is not None and (return_scores or self.dropout > 0 or rank != 4):
            # Keras zeroes the masked weights on this path only; its other one (dot_product_attention: no scores
            # asked, no dropout, 3-D inputs) leaves a fully masked query row its uniform weights
            weights = ops.where(mask, weights, np.asarray(0.0, dtype=self.dtype))
        kept = weights
        if training and self.dropout > 0:          # the library's draws, or the layer's own with a seed
            _, keep = dropout_forward(np.asarray(getattr(weights, "value", weights)), self.dropout, None,
                                      self._generator)
            kept = ops.multiply(weights, keep)
        out = ops.einsum(combine, kept, v)
        if gate is not None:
            out = ops.multiply(out, gate)
        out = dense["attention_output"](out)
        return [out, weights] if return_scores else out

    def _check_masks(self, mask_shape, causal: bool, shapes) -> None:
        """Where the call is made (symbolic or not): a causal mask needs one attention axis, and `attention_mask`,
        widened as `_mask` widens it (Keras' rule: axes of 1 before the T... axes), must broadcast to the scores."""
        axes = self.attention_axes
        if causal and len(axes) != 1:
            raise ValueError(f"{self._describe()}: `use_causal_mask=True` needs a single attention axis; this layer "
                             f"attends over axes {axes} (set attention_axes to one of them)")
        if mask_shape is None:
            return
        scores = self._scores_shape(shapes)
        widened, position = list(mask_shape), -2 * len(axes) - 1
        while len(mask_shape) >= 2 * len(axes) and len(widened) < len(scores):
            widened.insert(len(widened) + 1 + position, 1)
        if len(widened) != len(scores) or not all(m in (1, None) or s is None or m == s
                                                  for m, s in zip(widened, scores)):
            heads = len(scores) - 2 * len(axes) - 1
            expected = scores[:heads] + scores[heads + 1:]
            raise ValueError(f"{self._describe()}: argument `attention_mask` must broadcast to the attention scores "
                             f"{scores} (batch, heads, query positions, key positions): e.g. shape {expected}, "
                             f"got {tuple(mask_shape)}")

    def _mask(self, mask, causal: bool, query_shape, value_shape, scores_rank: int):
        """The boolean mask broadcast to the scores, or None: `attention_mask` (B, T..., S...) and/or causal
        (lower-triangular over the one attention axis)."""
        combined = None
        if causal:
            axis = self.attention_axes[0]
            combined = np.tril(np.ones((query_shape[axis], value_shape[axis]), bool))[None]
        if mask is not None:
            combined = mask if combined is None else mask & combined
        if combined is None:
            return None
        axis = -len(self.attention_axes) * 2 - 1
        while combined.ndim < scores_rank:
            combined = np.expand_dims(combined, axis)
        return combined

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({
            "num_heads": self.num_heads, "key_dim": self.key_dim, "value_dim": self.value_dim,
            "dropout": self.dropout, "use_bias": self.use_bias, "use_gate": self.use_gate,
            "output_shape": None if self.partial_output_shape is None else list(self.partial_output_shape),
            "attention_axes": None if self.attention_axes is None else list(self.attention_axes),
            "sliding_window": None,
            **weight_options_config(self, self.sublayer_activity_regularizer),
            "seed": self.seed,
        })
        return config
