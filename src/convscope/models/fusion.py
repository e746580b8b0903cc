"""Which layers of a Sequential model run fused: in inference, and one pair in training.

In inference (`predict`, `evaluate`: nothing kept for a backward pass) a Conv2D
takes the layers after it that act per channel or per window into its own op
(`Conv2D.call_fused`, `ops.conv2d_inference`), so that its output is finished one
block of images at a time in cache instead of going through main memory once per
layer.  The fused layers, in this order, each optional:

    Conv2D (channels_last, 'linear' or 'relu')
      -> BatchNormalization (last axis)  -> ReLU  -> MaxPooling2D / AveragePooling2D (channels_last)

with any Dropout in between (the identity in inference).

In a training step (`training_stages`) a Conv2D('relu') and the MaxPooling2D right
after it run forward as one op (`Conv2D.call_max_pooled`), and backward the
pooling's gradient goes straight through the ReLU (`relu_gated_pooling`): the
conv's full-size output is neither written nor read again.

Either way the numbers are those of the layers run one by one.
"""

from __future__ import annotations

from typing import List, Sequence

import numpy as np

from ..layers import Activation, AveragePooling2D, BatchNormalization, Conv2D, Dropout, MaxPooling2D, ReLU
from ..layers.base import Layer

__all__ = ["inference_stages", "training_stages", "run_stage", "relu_gated_pooling"]


def _fusable(layer: Layer, kind: str, head: Conv2D) -> bool:
    """True when `layer` can join `head`'s fused op in the role `kind`."""
    if layer.dtype != head.dtype:
        return False
    if kind == "norm":
        return isinstance(layer, BatchNormalization) and layer.normalizes_last_axis(4)
    if kind == "relu":
        return isinstance(layer, (Activation, ReLU)) and layer.inference_relu()
    return isinstance(layer, (MaxPooling2D, AveragePooling2D)) and layer.inference_pool() is not None


def inference_stages(layers: Sequence[Layer]) -> List[List[Layer]]:
    """The layers in order, grouped into stages: a Conv2D with the layers fused into it, or one layer."""
    stages, position = [], 0
    while position < len(layers):
        head, stage = layers[position], [layers[position]]
        position += 1
        if isinstance(head, Conv2D) and head.fused_activation() is not None:
            roles = ["norm", "relu", "pool"]
            # a layer whose output is never formed can have no activity regularizer
            while position < len(layers) and roles and stage[-1].activity_regularizer is None:
                layer = layers[position]
                if isinstance(layer, Dropout):
                    stage.append(layer)
                elif any(_fusable(layer, kind, head) for kind in roles):
                    while not _fusable(layer, roles[0], head):
                        roles.pop(0)
                    roles.pop(0)
                    stage.append(layer)
                else:
                    break
                position += 1
        stages.append(stage)
    return stages


def training_stages(layers: Sequence[Layer]) -> List[List[Layer]]:
    """The layers in order, grouped for a training step's forward pass: a Conv2D('relu') and the
    MaxPooling2D after it (`relu_gated_pooling`) as one stage, any other layer alone."""
    stages, position = [], 0
    while position < len(layers):
        size = 2 if position + 1 < len(layers) and relu_gated_pooling(layers, position + 1) else 1
        stages.append(list(layers[position:position + size]))
        position += size
    return stages


def run_stage(stage: Sequence[Layer], x, training: bool = False) -> np.ndarray:
    """One stage of `inference_stages` (or, with `training`, of `training_stages`) on `x`."""
    head = stage[0]
    if len(stage) == 1:
        return head(x, training=training)
    if training:
        pooled, pool_context = head.call_max_pooled(x, stage[1].inference_pool()[1:])
        stage[1].keep_forward(pool_context)
        return pooled
    arguments = {}
    for layer in stage[1:]:
        layer.forget_forward()
        if isinstance(layer, BatchNormalization):
            arguments["scale"], arguments["shift"] = layer.inference_affine(4)
        elif isinstance(layer, (Activation, ReLU)):
            arguments["then"] = "relu"
        elif isinstance(layer, (MaxPooling2D, AveragePooling2D)):
            arguments["pool"] = layer.inference_pool()
    return head.call_fused(x, **arguments)


def relu_gated_pooling(layers: Sequence[Layer], index: int) -> bool:
    """True when training's backward pass can take layer `index`'s gradient straight through the ReLU of
    the layer before it (`MaxPooling2D.backward_through_relu`): a channels_last MaxPooling2D right after
    a channels_last Conv2D with a 'relu' activation and no activity regularizer.  The conv's ReLU mask
    then comes from the pooled values, with no pass over the conv's full-size output."""
    if index < 1:
        return False
    layer, before = layers[index], layers[index - 1]
    return (isinstance(layer, MaxPooling2D) and layer.data_format == "channels_last"
            and isinstance(before, Conv2D) and before.fused_activation() == "relu"
            and before.activity_regularizer is None)
