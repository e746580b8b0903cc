"""`convscope.explain(model_or_layer, lang="en")`: every number of a model, with its formula.

The result (`Explanation`) renders as text (`to_text()`), Markdown
(`to_markdown()`, also the notebook repr), HTML (`_repr_html_()`) or a plain
dict (`to_dict()`), which the HTML report is built from.  Languages: "en", "ko".

Schema of ``to_dict()`` (version "convscope.explain/1"; all values JSON-serializable)::

    {
      "schema": "convscope.explain/1",
      "lang": "en" | "ko",
      "title": str,                       # e.g. 'Model "sequential"'
      "model": {
        "name": str,
        "input_shape": [int | null, ...],  "output_shape": [int | null, ...],
        "params": int, "trainable_params": int, "non_trainable_params": int,
        "macs": int, "flops": int,
        "batch_size": int,                 # batch used for per-batch memory
        "activation_bytes_per_sample": int, "activation_bytes_per_batch": int,
        "param_bytes": int,
        "optimizer": null | {"name": str, "slots": int, "state_bytes": int},
        "largest_layer": null | str,       # name of the layer holding most parameters
        "lines": [str, ...],               # totals, in the chosen language
        "notes": [str, ...]                # teaching notes about the whole model
      },
      "conventions": [str, ...],           # how MACs/FLOPs/memory are counted
      "layers": [{
        "index": int, "name": str, "class_name": str,
        "kind": "conv" | "depthwise_conv" | "separable_conv" | "conv_transpose" | "dense" | "max_pool"
                | "avg_pool" | "global_max_pool" | "global_avg_pool" | "batch_norm" | "layer_norm"
                | "group_norm" | "unit_norm" | "normalization" | "rescaling" | "zero_pad" | "crop" | "upsample"
                | "resize" | "flatten"
                | "reshape" | "permute" | "identity" | "dropout" | "noise" | "activation" | "operation" | "other"
                | "input" | "merge",               # the last two: functional models only
                                           # (Conv1D is "conv", 1-D pooling "max_pool" ..., one "steps" axis)
        "input_shape": [...], "output_shape": [...],
        "data_format": null | "channels_last" | "channels_first",
        "axes": [{"axis": "height" | "width" | "steps",
                  "mode": "valid" | "same" | "causal" | "explicit" | "crop" | "global" | "upsample" | "resize",
                  "input": int, "kernel": int, "stride": int, "dilation": int,
                  "pad_before": int, "pad_after": int, "output": int, "dropped": int,
                  "factor": int,                  # "upsample" only
                  "transposed": true, "output_padding": null | int}, ...],   # Conv2DTranspose only
        "params": int, "trainable_params": int, "non_trainable_params": int,
        "weights": [{"name": str, "shape": [int, ...], "trainable": bool}, ...],
        "kernels": null | {"count": int, "size": [kh, kw] | [k], "filters": int, "in_channels": int,
                           "groups": int, "weights_per_filter": int,
                           # DepthwiseConv2D / SeparableConv2D only ("count": the depthwise kernels):
                           "depth_multiplier": int, "pointwise_count": null | int},
        "macs": int, "flops": int, "bias_adds": int, "pool_ops": int, "norm_ops": int,
        "resize_ops": int, "scale_ops": int,
        "activation": null | str, "activation_ops": int,
        "activation_bytes_per_sample": int, "activation_bytes_per_batch": int, "param_bytes": int,
        "receptive_field": null | [{"axis": "height" | "width" | "steps", "size": int, "jump": int,
                                    "start": int}, ...],   # null: each unit sees the whole input
                                                           # (or the field is not followed: upsampling,
                                                           # resizing, transposed convs, operations)
        "title": str,                      # "conv2d (Conv2D): (None, 28, 28, 1) → (None, 28, 28, 75)"
        "sections": [{"key": "shape" | "params" | "kernels" | "compute" | "memory"
                              | "receptive_field" | "notes",
                      "title": str, "lines": [str, ...]}, ...],
        # functional models only: one entry per call of a layer (model.operations order, calls together)
        "call": int, "calls": int,         # call 2 of 2 of a shared layer
        "inbound": [str, ...],             # its inputs' sources: "conv2d", "shared (call 1)"
        "parents": [int, ...],             # the entries (indices) computing those inputs
        "input_shapes": [[int | null, ...], ...], "merge_ops": int, "concat_axis": null | int,
        "branches": [{"source": str, "receptive_field": null | [...]}, ...]   # a merge's inputs
      }, ...]
    }

In a functional model a shared layer's parameters count once in the model's totals
(its first call), its work and feature maps once per call; a merge's receptive field
is the union of its branches' (the smallest rectangle covering them all).
"""

from .core import Explanation, LayerExplanation, explain
from .gradients import GradientTrace, gradient_trace, gradients

__all__ = ["explain", "Explanation", "LayerExplanation", "gradients", "gradient_trace", "GradientTrace"]
