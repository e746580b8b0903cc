"""English sentences of the explanations; `core` fills in the numbers and formulas."""

AXES = {"height": "height", "width": "width"}
SIDES = {"height": ("top", "bottom"), "width": ("left", "right")}
CELLS = {"height": ("row", "rows"), "width": ("column", "columns")}

T = {
    "model_title": 'Model "{name}"',
    "layer_only_title": 'Layer "{name}"',
    "model_shapes": "Input {inp} → output {out}",
    "model_params": "Total params: {total} (trainable {trainable}, non-trainable {non_trainable})",
    "model_compute": "Work per sample: {macs} MACs, {flops} FLOPs in all",
    "model_memory": ("Memory: feature maps {act_sample} per sample, {act_batch} per batch of {batch}; "
                     "parameters {param_bytes}"),
    "model_optimizer": ("Optimizer {name} keeps {slots} extra value(s) per trainable parameter: "
                        "{state} of optimizer state (parameters × {multiplier} in all, with the weights)"),
    "largest": ("{name} ({cls}) holds the most parameters: {params} of {total} ({share:.1f}%)."),
    "largest_dense_after_flatten": (" It is the Dense after Flatten: every one of the {inputs} flattened "
                                    "values is wired to each of its {units} units."),
    "convention_mac": "1 multiply-accumulate (MAC) = 2 FLOPs (one multiply, one add).",
    "convention_extra": ("Bias adds, pooling work (comparisons for max, adds and a divide for average, "
                         "over the real cells of each window), BatchNormalization (one multiply and one add "
                         "per element at inference) and activations (one evaluation per element) are counted "
                         "separately and added to the FLOPs."),
    "convention_memory": "Memory counts values × bytes per value of the layer's dtype; a batch is {batch} samples.",
    "layer_title": "{name} ({cls}): {inp} → {out}",
    "sec_shape": "Shape",
    "sec_params": "Parameters",
    "sec_kernels": "Kernels",
    "sec_compute": "Compute",
    "sec_memory": "Memory",
    "sec_receptive_field": "Receptive field",
    "sec_notes": "Notes",
    # shape
    "shape_valid": '{axis} {n_in} → {n_out}: padding "valid" adds nothing, so ⌊(W − D·(F−1) − 1)/S⌋ + 1 = {expr}',
    "shape_same": ('{axis} {n_in} → {n_out}: padding "same" gives ⌈W/S⌉ = ⌈{n_in}/{stride}⌉ = {n_out}, '
                   "padding actually added: {before} {side_before}, {after} {side_after}"),
    "shape_general": "  general form ⌊(W + P_before + P_after − D·(F−1) − 1)/S⌋ + 1 = {expr}",
    "shape_familiar": "  familiar form {form} = {expr}",
    "shape_zero_pad": "{axis} {n_in} → {n_out}: {before} {side_before} + {n_in} + {after} {side_after} = {n_out}",
    "shape_global": "{axis} {n_in} → gone: the whole {n_h}×{n_w} map becomes one value per channel",
    "shape_dropped": ("  the floor drops {count} {cells} at the {side} of the (padded) input: "
                      "no window reaches {them}"),
    "shape_window": "  window {kernel} (effective {effective} with dilation {dilation}), stride {stride}",
    "shape_channels_conv": "channels {c_in} → {c_out}: one feature map per filter",
    "shape_channels_pool": "channels {c} → {c}: each channel is pooled on its own",
    "shape_dense": "Dense acts on the last axis: {n_in} → {units}; the other axes {rest} are kept",
    "shape_flatten": "Flatten lines the values up in one vector: {expr} = {total}",
    "shape_reshape": "Reshape: the same {total} values, rearranged",
    "shape_same_as_input": "Shape unchanged: {shape}",
    # parameters
    "params_conv": "filters × ({inner} + 1) = {expr} = {total} (the +1 is each filter's bias)",
    "params_conv_nobias": "filters × {inner} = {expr} = {total} (no bias)",
    "params_conv_alt": "the same as (kh·kw·in + 1)·filters = {expr} = {total}; padding and strides do not change it",
    "params_dense": "in × units + units = {expr} = {total} (weights on the last axis, plus one bias per unit)",
    "params_dense_nobias": "in × units = {expr} = {total} (no bias)",
    "params_bn": ("{factor} × C = {expr} = {total}: gamma and beta ({trainable}) are trained by gradients; "
                  "the moving mean and variance ({non_trainable}) are non-trainable: they are running "
                  "averages of batch statistics, used instead of them at inference"),
    "params_none": "No parameters: this layer has nothing to learn",
    "params_other": "{total} parameters in its weights",
    "params_frozen": "trainable=False: all {total} count as non-trainable",
    # kernels
    "kernels": "filters × {per} = {expr} = {count} kernels of {kh}×{kw}",
    "kernels_per_filter": ("each filter is a stack of {per} kernel(s), one per input channel{group_note}: "
                           "{per}·{kh}·{kw} = {weights} weights"),
    "kernels_group_note": " of its group",
    "kernels_not_filters": ("{filters} filters but {count} kernels: kernels ≠ filters "
                            "(weights.T.shape = {shape_t})"),
    # compute
    "compute_macs": "MACs = outputs × {per_name} = {outputs_expr} × {per_expr} = {macs}",
    "compute_flops": "FLOPs = 2 × MACs = {flops2}",
    "compute_bias": "+ {count} bias adds",
    "compute_activation": "+ {count} {activation} evaluations",
    "compute_pool_max": "+ {count} comparisons (window cells − 1 per output, real cells only)",
    "compute_pool_avg": "+ {count} adds and divides (window cells − 1 adds, 1 divide per output)",
    "compute_norm": "+ {count} normalization FLOPs (a multiply and an add per element)",
    "compute_total": "total {flops} FLOPs",
    "compute_none": "No arithmetic: values are only moved or copied",
    "per_conv": "in/groups·kh·kw",
    "per_dense": "in",
    # memory
    "memory_act": ("output {values} values × {itemsize} bytes = {per_sample} per sample, "
                   "{per_batch} per batch of {batch}"),
    "memory_params": "parameters {params} × {itemsize} bytes = {bytes}",
    # receptive field
    "rf_size": ("each output unit sees {size_h}×{size_w} input pixels; neighbouring units are "
                "{jump_h}×{jump_w} pixels apart (jump); unit (0, 0) starts at input ({start_h}, {start_w})"),
    "rf_padding": "  a negative start lies in the padding",
    "rf_step": ("  {axis}: size {prev_size} + ({effective} − 1)·{prev_jump} = {size}, "
                "jump {prev_jump}·{stride} = {jump}, start {prev_start} − {pad}·{prev_jump} = {start}"),
    "rf_all": "each unit sees the whole input",
    # notes
    "note_pool": "Pooling has no parameters: it only takes the {what} of each window.",
    "note_pool_max": "maximum",
    "note_pool_avg": "average",
    "note_xcorr": ("Conv2D computes a cross-correlation, not a convolution: the kernel is not flipped. "
                   "The weights are learned, so flipping would change nothing but their order."),
    "note_same_asym": ('"same" padding puts the odd cell at the {sides} (TensorFlow), so the padding is '
                       "asymmetric here; PyTorch's symmetric padding would differ."),
    "note_dilation": "Dilation {dilation} spreads the {kernel}-tap kernel over {effective} input cells.",
    "note_dropout": ("Dropout has no parameters; it is the identity at inference and zeroes a random {percent} "
                     "of the values in training, scaling the rest by 1/(1 − {rate})."),
    "note_largest": "This layer holds {share:.1f}% of all parameters, the most of any layer.",
    # graph models: calls, inputs, merges and the union of receptive fields
    "model_shapes_many": "Inputs {inp} → outputs {out}",
    "model_shared": ("{name} ({cls}) is called {calls} times: its {params} parameters count once in the total, "
                     "its work and its feature maps once per call."),
    "layer_call_title": "{name} ({cls}), call {call} of {calls}: from {sources} — {inp} → {out}",
    "shape_inbound": "input from {sources}",
    "shape_input": "model input: {shape}; the InputLayer passes the values on unchanged",
    "shape_merge": "{op} of {count} inputs {shapes}, element by element → {out}",
    "shape_concat": "Concatenate along axis {axis}: {expr} = {total}; the other axes must match",
    "merge_ops": {"Add": "sum", "Subtract": "difference", "Multiply": "product", "Average": "average",
                  "Maximum": "maximum", "Minimum": "minimum"},
    "params_shared": ("call {call} of {calls}: the same {total} parameters as call 1 (one set of weights, "
                      "counted once in the total)"),
    "compute_merge": "+ {count} element-wise operations: ({n} − 1) per output × {outputs} outputs",
    "compute_merge_average": "+ {count} adds and divides: ({n} − 1) adds and 1 divide per output × {outputs} outputs",
    "compute_concat": "No arithmetic: Concatenate only copies its inputs side by side",
    "rf_union": ("after {name}: the union of {count} branches; the largest field is {largest} (from {source}), "
                 "the others {others}"),
    "rf_union_same": "after {name}: the union of {count} branches, each {size}",
    "rf_branch": "  from {source}: {size}, jump {jump}, start ({start_h}, {start_w})",
    "rf_branch_all": "  from {source}: the whole input",
}
