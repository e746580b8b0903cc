"""`Attention` (Luong's dot-product attention) and `AdditiveAttention` (Bahdanau's), Keras 3's layers.

`layer([query, value(, key)], mask=[query_mask, value_mask], return_attention_scores=False, use_causal_mask=False)`:
query (B, Tq, dim), value (B, Tv, dim_v), key (B, Tv, dim; the value where not given).  Scores (B, Tq, Tv):
Attention's "dot" query · keyᵀ (times the scalar `scale` with `use_scale`), its "concat"
concat_score_weight · Σ tanh(scale · (query + key)); AdditiveAttention's Σ scale ⊙ tanh(query + key) (`scale` of
shape (dim,)).  Where the value mask is False, or a key comes after the query with the causal mask, 1e9 is taken
off the score (Keras' way: a row masked throughout keeps its softmax); softmax over Tv; dropout on the weights in
training; weights · value; a False in the query mask zeroes that output row.  Gradients: the ops on a per-call
tape.  The masks are explicit arguments (convscope has no implicit Keras masking).
"""

from __future__ import annotations

from typing import Any, Dict, List

import numpy as np

from .. import backend, ops
from ..ops.dropout import dropout_forward
from . import graph, step_losses
from .autodiff import NOT_GIVEN, call_traced, plain, recording, resolve_training, run_on_tape
from .base import Layer, Shape, check_bool, noted
from .spec import LayerSpec


class Attention(Layer):
    """Keras' `layers.Attention(use_scale=False, score_mode="dot", dropout=0.0, seed=None)` (see the module)."""

    CALL_KWARGS = frozenset({"mask", "return_attention_scores", "use_causal_mask"})

    def __init__(self, use_scale=False, score_mode="dot", dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        where = self._describe()
        self.use_scale = check_bool(use_scale, "use_scale", where)
        if score_mode not in self._score_modes():
            raise ValueError(f"{where}: argument `score_mode` must be one of {self._score_modes()}, got "
                             f"{score_mode!r}")
        self.score_mode = score_mode
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"{where}: argument `dropout` must be a number in [0, 1), got {dropout!r}")
        self.dropout = float(dropout)
        self.seed = seed
        self._generator = None if seed is None else np.random.default_rng(seed)

    @staticmethod
    def _score_modes():
        return ("dot", "concat")

    # -- shapes and weights ------------------------------------------------------------------------------
    def _shapes(self, input_shape):
        """(query, value, key) shapes from `[query, value]` or `[query, value, key]`, checked."""
        where = self._describe()
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) not in (2, 3) or \
                not all(isinstance(s, (list, tuple)) for s in input_shape):
            raise ValueError(f"{where}: expected a list [query, value] or [query, value, key], got {input_shape!r}")
        query, value = (tuple(s) for s in input_shape[:2])
        key = tuple(input_shape[2]) if len(input_shape) == 3 else value
        if len(query) < 3 or not len(query) == len(value) == len(key):
            raise ValueError(f"{where}: expected query, value and key of one rank, 3 or more (batch, positions, "
                             f"features), got {query}, {value} and {key}")
        if key[-2] is not None and value[-2] is not None and key[-2] != value[-2]:
            raise ValueError(f"{where}: `key` and `value` must have as many positions, got {key} and {value}")
        if query[-1] is not None and key[-1] is not None and query[-1] != key[-1]:
            raise ValueError(f"{where}: `query` and `key` must have as many features, got {query} and {key}")
        return query, value, key

    def build(self, input_shape) -> None:
        query, value, _ = self._shapes(input_shape)
        self._build_scores(query[-1])
        self._features = (query[-1], value[-1])
        self.built = True

    def describe(self):
        """kind "attention" as MultiHeadAttention's, with one head, no projections (`weights` empty), size the
        features of the scores and of the values, attending over the positions (the axis before the features)."""
        features = vars(self).get("_features", (None, None))
        return LayerSpec(kind="attention", filters=1, size=features, axis=(-2,), weights={})

    def _build_scores(self, dim) -> None:
        self.scale = self.add_weight(name="scale", shape=(), initializer="ones") if self.use_scale else None
        self.concat_score_weight = (self.add_weight(name="concat_score_weight", shape=(), initializer="ones")
                                    if self.score_mode == "concat" else None)

    def compute_output_shape(self, input_shape) -> Shape:
        query, value, _ = self._shapes(input_shape)
        return tuple(query[:-1]) + (value[-1],)

    # -- calls ---------------------------------------------------------------------------------------------
    def __call__(self, inputs, mask=None, training=NOT_GIVEN, return_attention_scores=False, use_causal_mask=False):
        """Keras' call: symbolic tensors record a node (the masks and flags as keyword arguments); inside a traced
        call one node on the tape; arrays are computed."""
        where = self._describe()
        if not isinstance(inputs, (list, tuple)) or len(inputs) not in (2, 3):
            raise ValueError(f"{where}: must be called on a list [query, value] or [query, value, key], got "
                             f"{type(inputs).__name__}{'' if not isinstance(inputs, (list, tuple)) else len(inputs)}")
        if mask is not None and (not isinstance(mask, (list, tuple)) or len(mask) not in (2, 3)):
            raise ValueError(f"{where}: argument `mask` must be a list [query_mask, value_mask], got {mask!r}")
        items = list(inputs)
        kwargs: Dict[str, Any] = {} if mask is None or all(m is None for m in mask) else {"mask": list(mask[:2])}
        kwargs.update({name: True for name, flag in (("return_attention_scores", return_attention_scores),
                                                     ("use_causal_mask", use_causal_mask)) if flag})
        tensors = items + [m for m in kwargs.get("mask", []) if m is not None]
        symbolic = [isinstance(t, graph.KerasTensor) for t in tensors]
        if any(symbolic):
            if not all(symbolic):
                raise TypeError(f"{where}: give the inputs and masks all as symbolic tensors (keras.Input or a "
                                f"layer's output) or all as arrays, got {[type(t).__name__ for t in tensors]}")
            return self._record(items, kwargs)
        training = bool(resolve_training(training, False))
        if not self.built:
            self.build_from_shape([(None,) + tuple(np.shape(getattr(t, "value", t)))[1:] for t in items])
        if recording():
            return call_traced(self, items, training, forward=lambda layer, values, training=False: type(
                self).forward(layer, values, training=training, **kwargs))
        with backend.no_backward():
            outputs = self.forward([np.asarray(t) for t in items], training=training, **kwargs)[0]
        step_losses.penalize(self, outputs)           # into the step this call runs in (evaluate), if any
        return noted(self, items, outputs)

    def _record(self, items, kwargs):
        shapes = [tuple(t.shape) for t in items]
        if not self.built:
            self.build_from_shape([(None,) + s[1:] for s in shapes])
        query, _, key = self._shapes(shapes)
        self._check_masks([None if m is None else tuple(m.shape) for m in kwargs.get("mask", [None, None])],
                          query, key)
        outputs = [graph.KerasTensor(self.compute_output_shape(shapes), self.dtype)]
        if kwargs.get("return_attention_scores"):
            outputs.append(graph.KerasTensor(tuple(query[:-1]) + (key[-2],), self.dtype))
        graph.Node(self, [items], outputs, kwargs)
        return outputs if len(outputs) > 1 else outputs[0]

    def _check_masks(self, mask_shapes, query, key) -> None:
        """The query mask (B, Tq) and the value mask (B, Tv), where given, against the inputs' shapes."""
        for arg, shape, expected in (("query_mask", mask_shapes[0], tuple(query[:-1])),
                                     ("value_mask", mask_shapes[1], tuple(key[:-1]))):
            if shape is not None and (len(shape) != len(expected) or any(
                    a is not None and b is not None and a != b for a, b in zip(shape, expected))):
                raise ValueError(f"{self._describe()}: argument `mask` must be [query_mask, value_mask] of shapes "
                                 f"{tuple(query[:-1])} and {tuple(key[:-1])}; its {arg} has shape {shape}")

    def forward(self, inputs, training: bool = False, mask=None, return_attention_scores=False, use_causal_mask=False):
        """(output, or [output, scores]; the tape's context, None under `backend.no_backward()`)."""
        tensors = [np.asarray(t) for t in inputs]
        query, _, key = self._shapes([t.shape for t in tensors])
        masks = [None if m is None else np.asarray(m, dtype=bool) for m in (mask or [None, None])]
        self._check_masks([None if m is None else m.shape for m in masks], query, key)

        def attend(items):
            return self._attend(items, masks, training, return_attention_scores, use_causal_mask)
        if not backend.keeps_for_backward():
            return plain(attend(tensors)), None
        return run_on_tape(self, tensors, attend)

    def backward(self, ctx, grad_output, need_input_grad: bool = True):
        """(gradients of query, value (, key), [(variable, gradient)]); none for the masks."""
        return ctx.gradients(grad_output, need_input_grad, f"{self._describe()}.backward")

    # -- the computation -------------------------------------------------------------------------------------
    def _scores(self, query, key):
        if self.score_mode == "dot":
            scores = ops.matmul(query, ops.swapaxes(key, -2, -1))
            return scores if self.scale is None else ops.multiply(scores, self.scale)
        summed = ops.add(ops.expand_dims(query, -2), ops.expand_dims(key, -3))
        if self.scale is not None:
            summed = ops.multiply(self.scale, summed)
        return ops.multiply(self.concat_score_weight, ops.sum(ops.tanh(summed), axis=-1))

    def _attend(self, items: List, masks, training: bool, return_scores: bool, causal: bool):
        query, value = items[0], items[1]
        key = items[2] if len(items) > 2 else value
        scores = self._scores(query, key)
        query_mask, value_mask = masks[0], masks[1]
        keep = None if value_mask is None else value_mask[..., None, :]
        if causal:
            length_q, length_v = np.shape(getattr(scores, "value", scores))[-2:]
            lower = np.tril(np.ones((1, length_q, length_v), bool))
            keep = lower if keep is None else keep & lower
        if keep is not None:
            scores = ops.where(keep, scores, ops.subtract(scores, np.asarray(1e9, dtype=self.dtype)))
        weights = ops.softmax(scores, axis=-1)
        if training and self.dropout > 0:          # the library's draws, or the layer's own with a seed
            _, kept = dropout_forward(np.asarray(getattr(weights, "value", weights)), self.dropout, None,
                                      self._generator)
            weights = ops.multiply(weights, kept)
        out = ops.matmul(weights, value)
        if query_mask is not None:
            out = ops.where(query_mask[..., None], out, np.asarray(0.0, dtype=self.dtype))
        return [out, weights] if return_scores else out

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"use_scale": self.use_scale, "score_mode": self.score_mode, "dropout": self.dropout,
                       "seed": self.seed})
        return config


class AdditiveAttention(Attention):
    """Keras' `layers.AdditiveAttention(use_scale=True, dropout=0.0)` (see the module): `scale` of shape (dim,)."""

    def __init__(self, use_scale=True, dropout=0.0, **kwargs):
        kwargs.pop("score_mode", None)               # Keras' config of it carries Attention's "dot"
        super().__init__(use_scale=use_scale, dropout=dropout, **kwargs)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        del config["score_mode"]                     # as Keras writes it
        return config

    def _build_scores(self, dim) -> None:
        if self.use_scale and dim is None:
            raise ValueError(f"{self._describe()}: the features of `query` must be known to make `scale`")
        self.scale = self.add_weight(name="scale", shape=(dim,), initializer="glorot_uniform") \
            if self.use_scale else None
        self.concat_score_weight = None

    def _scores(self, query, key):
        tanh = ops.tanh(ops.add(ops.expand_dims(query, -2), ops.expand_dims(key, -3)))
        return ops.sum(tanh if self.scale is None else ops.multiply(self.scale, tanh), axis=-1)
