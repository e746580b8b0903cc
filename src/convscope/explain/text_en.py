"""English sentences of the explanations; `core` fills in the numbers and formulas."""

AXES = {"height": "height", "width": "width", "steps": "steps", "depth": "depth"}
SIDES = {"height": ("top", "bottom"), "width": ("left", "right"), "steps": ("start", "end"), "depth": ("front", "back")}
CELLS = {"height": ("row", "rows"), "width": ("column", "columns"), "steps": ("step", "steps"),
         "depth": ("slice", "slices")}

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
    "convention_more": ("Bilinear upsampling and resizing count 2 multiplies and 1 add per value of each axis "
                        "pass; Rescaling and Normalization 2 FLOPs per element; LayerNormalization and "
                        "GroupNormalization 6 per element for their statistics and normalization, plus 1 each for "
                        "gamma and beta; UnitNormalization 3 per element; RMSNormalization 4 per element."),
    "convention_transpose": ("A transposed convolution's MACs are every input value times every tap of every "
                             "filter (its full output, before the cut to the output size)."),
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
    "shape_global": "{axis} {n_in} → gone: the whole {whole} map becomes one value per channel",
    "shape_causal": ('{axis} {n_in} → {n_out}: padding "causal" adds D·(K−1) = {pad_expr} cells at the '
                     "{side_before} only, so ⌈W/S⌉ = ⌈{n_in}/{stride}⌉ = {n_out}"),
    "shape_channels_depthwise": ("channels {c_in} → {c_out}: in × depth_multiplier = {c_in} × {m}; each input "
                                 "channel gets {m} feature map(s) of its own"),
    "shape_crop": "{axis} {n_in} → {n_out}: {n_in} − {before} {side_before} − {after} {side_after} = {n_out}",
    "shape_transpose": ('{axis} {n_in} → {n_out}: padding "{padding}", (W − 1)·S − 2P + D·(K − 1) + 1 + '
                        "output_padding = {expr}"),
    "shape_transpose_same": ('{axis} {n_in} → {n_out}: padding "same" without output_padding gives W·S = '
                             "{n_in}·{stride} = {n_out}"),
    "shape_transpose_default_op": ("  output_padding None: Keras uses max(D·(K − 1) + 1, S) − (D·(K − 1) + 1) = "
                                   "max({k_eff}, {stride}) − {k_eff} = {extra}"),
    "shape_transpose_full": ("  each input cell scatters a kernel: the full output is {expr} = {full} cells; "
                             "{before} cut at the {side_before}, {after} at the {side_after} leave {n_out} "
                             "(a negative cut appends zeros)"),
    "shape_upsample": "{axis} {n_in} → {n_out}: W × size = {n_in} × {factor} = {n_out}",
    "shape_resize": "{axis} {n_in} → {n_out}: the target size",
    "shape_resize_crop": ("crop_to_aspect_ratio: first the centred {rows}×{cols} window (from row {top}, "
                          "column {left}) of the target's aspect ratio"),
    "shape_resize_pad": ("pad_to_aspect_ratio: first {rows} row(s) of fill_value at the top and bottom and {cols} "
                         "column(s) at the left and right, to the target's aspect ratio"),
    "shape_interpolation": "interpolation: {method}",
    "interp_nearest": "nearest (each output cell copies the input cell its centre falls in)",
    "interp_bilinear": ("bilinear (each output cell mixes the 2×2 input cells around its centre, weighted by "
                        "distance; pixel centres, align_corners=False)"),
    "shape_permute": "Permute dims={dims}: the axes after the batch reordered, {inp} → {out}; no value changes",
    "shape_operation": "ops.{op} applied to its inputs → {shape}",
    "shape_dropped": ("  the floor drops {count} {cells} at the {side} of the (padded) input: "
                      "no window reaches {them}"),
    "shape_window": "  window {kernel} (effective {effective} with dilation {dilation}), stride {stride}",
    "shape_channels_conv": "channels {c_in} → {c_out}: one feature map per filter",
    "shape_adaptive": ("{axis} {n_in} → {n_out}: output cell i pools input cells ⌊i·{n_in}/{n_out}⌋ to "
                       "⌈(i + 1)·{n_in}/{n_out}⌉ − 1: {windows}"),
    "shape_adaptive_even": ("{axis} {n_in} → {n_out}: {n_in}/{n_out} = {size} input cells per output cell, side "
                            "by side (a pooling window and stride of {size})"),
    "shape_channels_pool": "channels {c} → {c}: each channel is pooled on its own",
    "shape_embedding": ("each index (0 to {last}) is replaced by its row of {width} learned values: "
                        "{inp} → {out}"),
    "shape_dense": "Dense acts on the last axis: {n_in} → {units}; the other axes {rest} are kept",
    "shape_flatten": "Flatten lines the values up in one vector: {expr} = {total}",
    "shape_attention": ("{heads} heads attend from each of the query's {targets} positions to the value's {sources} "
                        "(key_dim {key_dim}, value_dim {value_dim}): {inp} → {out}"),
    "shape_recurrent": "{cls} runs its cell over the {steps} time steps{both}, {units} units: {inp} → {out}",
    "both_directions": " forwards and backwards",
    "unknown_steps": "(unknown number of)",
    "compute_recurrent_unknown": ("MACs per time step = {twice}gates × units × (in + units) = {twice}{expr} = {per}; "
                                  "times the steps, unknown until it runs"),
    "shape_attention_plain": ("each of the query's {targets} positions attends to the value's {sources}, by scores "
                              "over {key_dim} features, averaging values of {value_dim}: {inp} → {out}"),
    "shape_einsum": "EinsumDense computes {equation} of the input {inp} and its kernel → {out}",
    "shape_repeat": "RepeatVector copies each sample's vector {n} times along a new axis 1: {inp} → {out}",
    "shape_reshape": "Reshape: the same {total} values, rearranged",
    "shape_same_as_input": "Shape unchanged: {shape}",
    "shape_other": "{cls} gives {inp} → {out} (the shape comes from running the layer, not from a formula)",
    # parameters
    "params_conv": "filters × ({inner} + 1) = {expr} = {total} (the +1 is each filter's bias)",
    "params_conv_nobias": "filters × {inner} = {expr} = {total} (no bias)",
    "params_conv_alt": "the same as ({alt} + 1)·filters = {expr} = {total}; padding and strides do not change it",
    "params_depthwise_conv": ("{window}·in·depth_multiplier + in·depth_multiplier = {expr} = {total} (one bias per "
                              "output channel)"),
    "params_depthwise_conv_nobias": "{window}·in·depth_multiplier = {expr} = {total} (no bias)",
    "params_separable_conv": ("depthwise {window}·in·depth_multiplier + pointwise in·depth_multiplier·filters + "
                              "filters = {expr} = {total}"),
    "params_separable_conv_nobias": ("depthwise {window}·in·depth_multiplier + pointwise "
                                     "in·depth_multiplier·filters = {expr} = {total} (no bias)"),
    "params_separable_sum": "separable = depthwise + pointwise (+ bias): {depthwise} + {pointwise} + {bias} = {total}",
    "params_transpose": ("{window}·filters·in + filters = {expr} = {total} (kernel ({window_axes}, filters, in), "
                         "one bias per filter)"),
    "params_transpose_nobias": "{window}·filters·in = {expr} = {total} (no bias)",
    "params_rms_norm": ("{size}: scale, one per position of the normalized axes {axes} (no shift: RMSNormalization "
                        "does not centre)"),
    "params_layer_norm": ("{count} × {size} = {total}: {which}, one each per position of the normalized "
                          "axes {axes}, trained by gradients"),
    "params_group_norm": ("{count} × {channels} = {total}: {which}, one each per channel, trained by "
                          "gradients"),
    "weight_names": {"gamma": "gamma", "beta": "beta"},
    "and": " and ",
    "params_normalization": ("2 × {size} + 1 = {total}: a mean and a variance per position of the kept axes "
                             "and a count, all non-trainable (set by adapt(), not by gradients)"),
    "params_normalization_given": "No parameters: the mean and variance were given as constants",
    "params_recurrent": ("{twice}gates × units × (in + units{bias}) = {expr} = {total}: each gate's units weigh the "
                         "input (kernel) and the last state (recurrent kernel)"),
    "recurrent_biases": {1: "bias", 2: "2 biases"},
    "params_embedding": "input_dim × output_dim = {vocabulary} × {width} = {total} (one row per index)",
    "params_dense": "in × units + units = {expr} = {total} (weights on the last axis, plus one bias per unit)",
    "params_dense_nobias": "in × units = {expr} = {total} (no bias)",
    "params_bn": ("{factor} × C = {expr} = {total}: gamma and beta ({trainable}) are trained by gradients; "
                  "the moving mean and variance ({non_trainable}) are non-trainable: they are running "
                  "averages of batch statistics, used instead of them at inference"),
    "params_none": "No parameters: this layer has nothing to learn",
    "params_other": "{total} parameters in its weights",
    "params_frozen": "trainable=False: all {total} count as non-trainable",
    # kernels
    "kernels": "filters × {per} = {expr} = {count} kernels of {size}",
    "kernels_per_filter": ("each filter is a stack of {per} kernel(s), one per input channel{group_note}: "
                           "{per}·{taps} = {weights} weights"),
    "kernels_depthwise": ("depthwise: in × depth_multiplier = {expr} = {count} kernels of {size}, each "
                          "sliding over one input channel"),
    "kernels_pointwise": ("pointwise: filters × in·depth_multiplier = {expr} = {count} kernels of {one} "
                          "(each mixes the channels at one position); {total} kernels in all"),
    "kernels_transpose": ("filters × in = {expr} = {count} kernels of {size} (kernel shape {shape}): each input "
                          "channel's value is spread over the output by one kernel per filter"),
    "kernels_group_note": " of its group",
    "kernels_not_filters": ("{filters} filters but {count} kernels: kernels ≠ filters "
                            "(weights.T.shape = {shape_t})"),
    # compute
    "compute_macs_attention": ("MACs = the projections' {projections} + {heads} heads × {targets}·{sources} scores "
                               "× (key_dim {key_dim} + value_dim {value_dim}) = {macs}"),
    "compute_macs_attention_plain": ("MACs = {targets}·{sources} scores × ({key_dim} features in each score + "
                                     "{value_dim} in each weighted value) = {macs}"),
    "compute_macs_recurrent": ("MACs = {twice}steps × gates × units × (in + units) = {expr} = {macs} (each step "
                               "multiplies the input and the last state by the kernels)"),
    "compute_macs_einsum": "MACs = the product of every axis' size but the batch's ({letters}) = {expr} = {macs}",
    "compute_macs": "MACs = outputs × {per_name} = {outputs_expr} × {per_expr} = {macs}",
    "compute_flops": "FLOPs = 2 × MACs = {flops2}",
    "compute_bias": "+ {count} bias adds",
    "compute_activation": "+ {count} {activation} evaluations",
    "compute_pool_max": "+ {count} comparisons (window cells − 1 per output, real cells only)",
    "compute_pool_avg": "+ {count} adds and divides (window cells − 1 adds, 1 divide per output)",
    "compute_norm": "+ {count} normalization FLOPs (a multiply and an add per element)",
    "compute_time_distributed_unknown": ("{per} FLOPs per step (the wrapped layer's) × the time steps, unknown "
                                         "here: not in the totals"),
    "compute_time_distributed": "{per} FLOPs per step (the wrapped layer's) × {steps} steps = {flops} FLOPs",
    "compute_model": "{flops} FLOPs ({macs} MACs), the sum of its {count} layers'",
    "compute_spectral_norm": ("{flops} FLOPs, the wrapped layer's (in training, the power iteration on its kernel "
                              "comes first)"),
    "compute_attention_softmax": "+ {count} softmax FLOPs (3 per score: exponent, sum, divide)",
    "compute_rms_norm": ("+ {count} normalization FLOPs ({per} per element: square, mean, multiply by 1 / RMS, "
                         "by scale)"),
    "compute_dot_normalize": ("+ {count} FLOPs scaling both inputs to unit length first (3 per input value: "
                              "square, sum, multiply by 1 / norm)"),
    "compute_unit_norm": "+ {count} normalization FLOPs ({per} per element: square, sum, multiply by 1 / norm)",
    "compute_total": "total {flops} FLOPs",
    "compute_none": "No arithmetic: values are only moved or copied",
    "compute_unknown": "Its arithmetic is not counted: convscope has no formula for the work of {cls}",
    "per_conv": "in/groups·kernel",
    "per_depthwise": "kernel taps",
    "compute_macs_separable": ("MACs = depthwise {positions} positions × {kernels} kernels × {taps} = {depthwise}"
                               " + pointwise {positions} × {pointwise_expr} = {pointwise}, in all {macs}"),
    "compute_macs_transpose": ("MACs = inputs × kernel·filters = {inputs_expr} × {per_expr} = {macs} (every "
                               "input value times every tap of every filter, before the cut)"),
    "compute_layer_norm": ("+ {count} normalization FLOPs ({per} per element: mean, variance, normalize, "
                           "then gamma and beta)"),
    "compute_rescale": "+ {count} FLOPs (a multiply by scale and an add of offset per element)",
    "compute_standardize": "+ {count} FLOPs (a subtract of the mean and a divide by the deviation per element)",
    "compute_resize": "+ {count} interpolation FLOPs (2 multiplies and 1 add per value, along rows then columns)",
    "compute_operation": "ops.{op}: its arithmetic is not counted here",
    "compute_elementwise": "+ {count} element-wise evaluations of ops.{op} (one per output value)",
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
    "rf_size_3d": ("each output unit sees {size_d}×{size_h}×{size_w} input cells (depth × height × width); "
                   "neighbouring units are {jump_d}×{jump_h}×{jump_w} cells apart (jump); unit (0, 0, 0) starts at "
                   "input ({start_d}, {start_h}, {start_w})"),
    "rf_size_1d": ("each output unit sees {size} input steps; neighbouring units are {jump} steps apart (jump); "
                   "unit 0 starts at input step {start}"),
    "rf_crop_step": "  {axis}: size and jump unchanged, start {prev_start} + {cut}·{prev_jump} = {start}",
    "rf_model": ("the receptive field is not followed through the model '{name}' here "
                 "(its own explanation follows it through its layers)"),
    "rf_untracked": ("the receptive field is not followed through {cls}: an output cell reads a varying "
                     "number of input cells, so no single size and jump describe it"),
    # notes
    "note_pool": "Pooling has no parameters: it only takes the {what} of each window.",
    "note_pool_max": "maximum",
    "note_pool_avg": "average",
    "note_xcorr": ("{cls} computes a cross-correlation, not a convolution: the kernel is not flipped. "
                   "The weights are learned, so flipping would change nothing but their order."),
    "note_same_asym": ('"same" padding puts the odd cell at the {sides} (TensorFlow), so the padding is '
                       "asymmetric here; PyTorch's symmetric padding would differ."),
    "note_dilation": "Dilation {dilation} spreads the {kernel}-tap kernel over {effective} input cells.",
    "note_augment": ("A random augmentation: in training it changes each image at random (seeded by "
                     "set_random_seed or its seed=); at inference it passes the images on unchanged, so the "
                     "receptive field is followed straight through it."),
    "note_noise": ("Gaussian noise has no parameters (nor Gaussian or alpha dropout); it is the identity at "
                   "inference (the receptive field is followed straight through it) and adds or multiplies random "
                   "noise in training, a regularizer (alpha dropout sets dropped values to SELU's negative "
                   "saturation and rescales, keeping SELU's mean and variance)."),
    "note_embedding": ("An Embedding only looks rows up: no multiplications, and a training step changes only "
                       "the rows of the indices in the batch."),
    "note_dropout": ("Dropout has no parameters; it is the identity at inference and zeroes a random {percent} "
                     "of the values in training, scaling the rest by 1/(1 − {rate})."),
    "note_largest": "This layer holds {share:.1f}% of all parameters, the most of any layer.",
    "note_depthwise": ("Depthwise: each input channel is convolved on its own; channels are never mixed "
                       "(a {conv} with groups = in)."),
    "note_separable": ("A {conv} with the same {filters} filters of {size} would need {full} parameters; "
                       "the separable one has {params} ({ratio}× fewer)."),
    "note_transpose": ("{cls} is the gradient of a {conv} with respect to its input (a "
                       "\"deconvolution\" only in name): it spreads each input value over a window, it does "
                       "not invert a convolution."),
    "note_causal": ("causal padding: output step t sees inputs up to t·strides and none after, so a model "
                    "cannot look into the future."),
    "note_spatial_dropout": ("Spatial dropout drops whole feature maps: one draw per sample and channel, "
                             "since neighbouring pixels (or steps) of a map are strongly correlated."),
    "note_upsample": "Nearest upsampling has no parameters and no arithmetic: each value is copied size times.",
    "shape_global_1d": "{axis} {n_in} → gone: the whole sequence of {n_in} steps becomes one value per channel",
    "rf_untracked_input": ("the receptive field is not followed here: one of its inputs comes through a layer "
                           "whose field is not followed"),
    "note_rescaling": "Rescaling computes y = x · scale + offset element by element; it has no parameters to learn.",
    "note_normalization": ("Normalization computes y = (x − mean) / max(√variance, 1e-7), one mean and variance "
                           "per position of the axes {axes} kept; adapt(data) sets them from data."),
    "note_group_norm": ("GroupNormalization cuts the {channels} channels on axis {axis} into {groups} groups of "
                        "{per} and computes y = (x − mean) / √(variance + ε) · γ + β with the mean and variance of "
                        "each sample's group over every position and every channel of the group, not over the "
                        "batch: the same in training and inference, at any batch size. Each output depends on every "
                        "position of its group's channels: its receptive field is the whole input."),
    "note_rms_norm": ("RMSNormalization computes y = x / √(mean(x²) + ε) · scale with the mean over the axes {axes} of "
                      "each sample: no mean is subtracted and nothing is added, unlike LayerNormalization"),
    "note_unit_norm": ("UnitNormalization divides each sample's vector along the axes {axes} by its L2 norm "
                       "√Σx² (at least 1e-12): every such vector comes out with length 1; no parameters, the same "
                       "in training and inference."),
    "note_layer_norm": ("LayerNormalization computes y = (x − mean) / √(variance + ε) · γ + β with the mean and "
                        "variance of each sample over the axes {axes}, not over the batch (unlike "
                        "BatchNormalization): the same in training and inference."),
    # graph models: calls, inputs, merges and the union of receptive fields
    "model_shapes_many": "Inputs {inp} → outputs {out}",
    "model_shared": ("{name} ({cls}) is called {calls} times: its {params} parameters count once in the total, "
                     "its work and its feature maps once per call."),
    "layer_call_title": "{name} ({cls}), call {call} of {calls}: from {sources} — {inp} → {out}",
    "shape_inbound": "input from {sources}",
    "shape_input": "model input: {shape}; the InputLayer passes the values on unchanged",
    "shape_merge": "{op} of {count} inputs {shapes}, element by element → {out}",
    "shape_time_distributed_unknown": ("{inner} on each time step (their number unknown here): {step_in} → "
                                       "{step_out} per step, stacked on axis 1 → {out}"),
    "shape_time_distributed": ("{inner} on each of the {steps} time steps: {step_in} → {step_out} per step, "
                               "stacked on axis 1 → {out}"),
    "shape_model": ("a model of {count} layers, called as one layer: {inp} → {out} "
                    "(cs.explain(model.get_layer('{name}')) explains its layers)"),
    "shape_spectral_norm": ("{inner}, its kernel divided by its largest singular value (power iteration) at each "
                            "training call → {out}"),
    "shape_dot": ("per sample, the dot product of input 1's axis {a0} with input 2's axis {a1} ({k} pairs summed): "
                  "{x} · {y}, both axes dropped → {out}"),
    "shape_concat": "Concatenate along axis {axis}: {expr} = {total}; the other axes must match",
    "merge_ops": {"Add": "sum", "Subtract": "difference", "Multiply": "product", "Average": "average",
                  "Maximum": "maximum", "Minimum": "minimum"},
    "params_shared": ("call {call} of {calls}: the same {total} parameters as call 1 (one set of weights, "
                      "counted once in the total)"),
    "compute_merge": "+ {count} element-wise operations: ({n} − 1) per output × {outputs} outputs",
    "compute_merge_scaled": "+ {count} multiplies and adds: x + scale·r, 2 per output × {outputs} outputs",
    "compute_merge_average": "+ {count} adds and divides: ({n} − 1) adds and 1 divide per output × {outputs} outputs",
    "compute_concat": "No arithmetic: Concatenate only copies its inputs side by side",
    "rf_union": ("after {name}: the union of {count} branches; the largest field is {largest} (from {source}), "
                 "the others {others}"),
    "rf_union_same": "after {name}: the union of {count} branches, each {size}",
    "rf_branch": "  from {source}: {size}, jump {jump}, start ({start})",
    "rf_branch_all": "  from {source}: the whole input",
}
