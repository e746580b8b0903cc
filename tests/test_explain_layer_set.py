"""explain / analysis / summary / plot_model / report for the layer set beyond the seeds (issue 13).

Every number is checked against the real thing: output shapes against the layer's
compute_output_shape and its forward output, parameter counts against count_params() and real
Keras 3.15.1 for the same config, kernel counts against the kernel arrays' shapes, receptive fields
against which input cells actually move an output (perturbation), transposed-conv sizes against
Keras over a grid of configurations.
"""

import itertools
import json
import re

import numpy as np
import pytest

from convscope import layers as L
from convscope.explain import explain
from convscope.models import Model, Sequential
from convscope.models.analysis import analyze, analyze_layer, summary_columns

IMAGE = (None, 9, 10, 4)
SEQUENCE = (None, 17, 3)

# (layer factory, input shape): every layer of the new set, a few options each.
CASES = [
    (lambda: L.DepthwiseConv2D(3, depth_multiplier=2, padding="same"), IMAGE),
    (lambda: L.DepthwiseConv2D((2, 3), strides=2, use_bias=False, data_format="channels_first"), (None, 4, 9, 10)),
    (lambda: L.SeparableConv2D(5, 3, depth_multiplier=3, strides=2), IMAGE),
    (lambda: L.SeparableConv2D(6, (3, 2), padding="same", use_bias=False, dilation_rate=2), IMAGE),
    (lambda: L.Conv2DTranspose(5, 3, strides=2, padding="same"), IMAGE),
    (lambda: L.Conv2DTranspose(3, (4, 3), strides=(2, 3), output_padding=(1, 2)), IMAGE),
    (lambda: L.Conv2DTranspose(2, 3, padding="same", output_padding=0, dilation_rate=2, use_bias=False), IMAGE),
    (lambda: L.UpSampling2D((2, 3)), IMAGE),
    (lambda: L.UpSampling2D(2, interpolation="bilinear"), IMAGE),
    (lambda: L.Cropping2D(((1, 2), (3, 0))), IMAGE),
    (lambda: L.SpatialDropout2D(0.3), IMAGE),
    (lambda: L.Conv1D(4, 3, padding="causal", dilation_rate=2), SEQUENCE),
    (lambda: L.Conv1D(6, 4, strides=3, groups=3, padding="same"), SEQUENCE),
    (lambda: L.MaxPooling1D(3, strides=2), SEQUENCE),
    (lambda: L.AveragePooling1D(4, padding="same"), SEQUENCE),
    (lambda: L.GlobalAveragePooling1D(), SEQUENCE),
    (lambda: L.GlobalMaxPooling1D(keepdims=True), SEQUENCE),
    (lambda: L.UpSampling1D(3), SEQUENCE),
    (lambda: L.ZeroPadding1D((2, 1)), SEQUENCE),
    (lambda: L.Cropping1D((3, 1)), SEQUENCE),
    (lambda: L.Rescaling(1 / 255.0, offset=-1.0), IMAGE),
    (lambda: L.Normalization(axis=-1), IMAGE),
    (lambda: L.Normalization(axis=(1, 3)), IMAGE),
    (lambda: L.Resizing(5, 7), IMAGE),
    (lambda: L.Resizing(6, 4, interpolation="nearest", crop_to_aspect_ratio=True), IMAGE),
    (lambda: L.Resizing(8, 4, pad_to_aspect_ratio=True), IMAGE),
    (lambda: L.LayerNormalization(), IMAGE),
    (lambda: L.LayerNormalization(axis=(1, 2), center=False), IMAGE),
    (lambda: L.Permute((3, 1, 2)), IMAGE),
    (lambda: L.Identity(), IMAGE),
    (lambda: L.Activation("relu6"), IMAGE),
    (lambda: L.Activation("hard_silu"), IMAGE),
    (lambda: L.Activation("mish"), IMAGE),
    (lambda: L.Activation("log_softmax"), IMAGE),
    (lambda: L.BatchNormalization(center=False), IMAGE),
]


def kernels_in_weights(layer):
    """2-D (or 1-D) kernels held, read off the kernel arrays: every axis after the window's."""
    names = ("kernel", "depthwise_kernel", "pointwise_kernel")
    arrays = [getattr(layer, n) for n in names if getattr(layer, n, None) is not None]
    window = len(layer.kernel_size)
    return [int(np.prod(a.shape[window:])) for a in arrays]


def keras_count(keras, layer, input_shape):
    """Keras 3.15.1's parameter count for the same config, built on the same input shape."""
    twin = keras.layers.deserialize({"module": "keras.layers", "class_name": type(layer).__name__,
                                     "config": layer.get_config(), "registered_name": None})
    twin.build(input_shape)
    return twin.count_params(), tuple(twin.compute_output_shape(input_shape))


def section(item, key):
    return "\n".join(item.section(key))


@pytest.mark.parametrize("make,input_shape", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_numbers_match_the_layer_its_forward_pass_and_keras(keras, make, input_shape):
    layer = make()
    x = np.random.default_rng(0).random((2,) + input_shape[1:]).astype(np.float32)
    y = layer(x)
    row = analyze_layer(layer, input_shape)
    unbuilt = analyze_layer(make(), input_shape)     # from the spec alone, before any weight exists
    assert (unbuilt.params, unbuilt.trainable_params, unbuilt.kernels) == (row.params, row.trainable_params,
                                                                           row.kernels)
    assert row.output_shape == tuple(layer.compute_output_shape(input_shape))
    assert row.output_shape[1:] == y.shape[1:]
    count, keras_shape = keras_count(keras, layer, input_shape)
    assert row.params == layer.count_params() == count
    assert row.output_shape == keras_shape
    if hasattr(layer, "kernel_size"):
        counts = kernels_in_weights(layer)
        assert row.kernels == counts[0]
        assert row.pointwise_kernels == (counts[1] if len(counts) > 1 else None)
    model = Sequential([L.Input(input_shape[1:]), layer])
    for lang in ("en", "ko"):
        item = explain(model, lang=lang).layer(0)
        assert item.sections and all(sec["lines"] for sec in item.sections)
        if row.params:
            assert f"= {row.params:,}" in section(item, "params")


def test_depthwise_and_separable_formulas_with_numbers():
    depthwise = L.DepthwiseConv2D(3, depth_multiplier=2)
    depthwise(np.zeros((1, 9, 10, 4), np.float32))
    item = explain(depthwise).layer(0)
    assert "kh·kw·in·depth_multiplier + in·depth_multiplier = 3·3·4·2 + 4·2 = 80" in section(item, "params")
    assert "in × depth_multiplier = 4 × 2 = 8 kernels of 3×3" in section(item, "kernels")
    assert "channels 4 → 8" in section(item, "shape")
    separable = L.SeparableConv2D(5, 3, depth_multiplier=3)
    separable(np.zeros((1, 9, 10, 4), np.float32))
    item = explain(separable).layer(0)
    params = section(item, "params")
    assert "= 3·3·4·3 + 4·3·5 + 5 = 173" in params
    assert "separable = depthwise + pointwise (+ bias): 108 + 60 + 5 = 173" in params
    assert separable.depthwise_kernel.value.size == 108 and separable.pointwise_kernel.value.size == 60
    kernels = section(item, "kernels")
    assert "12 kernels of 3×3" in kernels and "5 × 4·3 = 60 kernels of 1×1" in kernels and "72 kernels" in kernels
    full = 3 * 3 * 4 * 5 + 5
    assert f"would need {full} parameters" in section(item, "notes")
    ko = explain(separable, lang="ko").layer(0)
    assert "깊이별" in section(ko, "params") and "점별" in section(ko, "kernels") and "= 173개" in section(ko, "params")


@pytest.mark.parametrize("n,k,s,d,padding,extra", [
    (n, k, s, d, padding, extra)
    for n, k, s, d in [(5, 3, 2, 1), (4, 4, 2, 1), (6, 1, 3, 1), (5, 3, 1, 2), (3, 2, 3, 1)]
    for padding in ("valid", "same") for extra in (None, 0, s - 1)])
def test_transposed_output_size_formula_against_keras(keras, n, k, s, d, padding, extra):
    args = dict(kernel_size=(k, 1), strides=(s, 1), padding=padding, dilation_rate=(d, 1),
                output_padding=None if extra is None else (extra, 0))
    layer = L.Conv2DTranspose(2, **args)
    twin = keras.layers.Conv2DTranspose(2, **args)
    shape = (None, n, 2, 3)
    row = analyze_layer(layer, shape)
    out = twin.compute_output_shape(shape)[1]
    assert row.axes[0].output == out
    text = section(explain(Sequential([L.Input(shape[1:]), layer])).layer(0), "shape")
    assert f"{n} → {out}" in text
    full = (n - 1) * s + d * (k - 1) + 1
    assert f"= {full} cells" in text and f"leave {out}" in text
    if not (padding == "same" and extra is None):
        pad = 0 if padding == "valid" else (d * (k - 1) + 1) // 2
        op = extra if extra is not None else max(d * (k - 1) + 1, s) - (d * (k - 1) + 1)
        assert f"({n} − 1)·{s} − 2·{pad} + {d}·({k} − 1) + 1 + {op} = {out}" in text


def field_support(model, x, unit):
    """The real input cells (per spatial axis) whose change moves output `unit` (all channels): the
    receptive field measured by perturbation, a large step at one cell at a time."""
    base = model.predict(x, verbose=0)
    moved = set()
    for cell in np.ndindex(*x.shape[1:-1]):
        bumped = x.copy()
        bumped[(0,) + cell] += 100.0
        if np.any(np.abs(model.predict(bumped, verbose=0)[(0,) + unit] - base[(0,) + unit]) > 1e-3):
            moved.add(cell)
    return moved


@pytest.mark.parametrize("build", [
    lambda: [L.Input((23, 2)), L.Conv1D(3, 3, padding="causal", dilation_rate=2), L.ZeroPadding1D((2, 0)),
             L.MaxPooling1D(2), L.Cropping1D((1, 0)), L.Conv1D(2, 2, strides=2, padding="same")],
    lambda: [L.Input((13, 12, 2)), L.DepthwiseConv2D(3, padding="same"), L.Cropping2D(((2, 0), (1, 1))),
             L.SeparableConv2D(2, 3, strides=2), L.Rescaling(2.0, offset=1.0)],
], ids=["conv1d_causal_pad_pool_crop", "depthwise_crop_separable"])
def test_receptive_fields_match_the_cells_that_move_an_output(build):
    """The first unit and the last one whose field ends inside the input (the (size, jump, start) rule
    counts a later layer's end padding as input cells, so units reading it are left out)."""
    model = Sequential(build())
    rng = np.random.default_rng(1)
    for layer in model.layers:
        for w in layer.weights:
            w.assign(rng.uniform(0.5, 1.5, w.shape).astype(np.float32))
    x = rng.random((1,) + model.input_shape[1:]).astype(np.float32)
    numbers = analyze(model)
    last, extent = numbers.layers[-1], [a.input for a in numbers.layers[0].axes]
    inside = tuple(max(i for i in range(n) if f.start + i * f.jump + f.size <= size)
                   for f, n, size in zip(last.receptive_field, last.output_shape[1:-1], extent))
    for unit in (tuple(0 for _ in inside), inside):
        expected = [range(max(f.start + i * f.jump, 0), f.start + i * f.jump + f.size)
                    for f, i in zip(last.receptive_field, unit)]
        assert field_support(model, x, unit + (0,)) == set(itertools.product(*expected))


def test_sequential_summary_plot_and_report_show_the_new_layers(tmp_path):
    from convscope.viz import plot_model
    from convscope.viz.report import report
    model = Sequential([L.Input((12, 12, 3)), L.Rescaling(0.5), L.DepthwiseConv2D(3, depth_multiplier=2),
                        L.SeparableConv2D(4, 3, padding="same"), L.Conv2DTranspose(3, 3, strides=2),
                        L.UpSampling2D(), L.Cropping2D(2), L.SpatialDropout2D(0.1), L.Resizing(6, 6),
                        L.LayerNormalization(), L.Permute((2, 1, 3)), L.Identity(), L.Flatten(), L.Dense(2)])
    lines = []
    model.summary(print_fn=lines.append, show_kernels=True, show_flops=True, show_receptive_field=True,
                  show_memory=True)
    text = "\n".join(lines)
    assert "6 x 3x3" in text and "6 x 3x3 + 24 x 1x1" in text and "12 x 3x3" in text
    columns = dict(summary_columns(model, show_receptive_field=True, show_flops=True))
    names = [layer.name for layer in model.layers]
    fields = dict(zip(names, columns["Receptive field"]))
    assert fields["separable_conv2d"] == "5x5 /1 @-1,-1" and fields["conv2d_transpose"] == "-"
    assert fields["dense"] == "-"           # not followed after the transposed conv
    svg = plot_model(model, to_file=str(tmp_path / "m.svg"), show_shapes=True).to_svg()
    for layer in model.layers:
        assert type(layer).__name__ in svg
    report(model, sample=np.ones((1, 12, 12, 3), np.float32), to_file=str(tmp_path / "r.html"))
    assert (tmp_path / "r.html").stat().st_size > 0
    for lang in ("en", "ko"):
        data = explain(model, lang=lang).to_dict()
        assert json.loads(json.dumps(data)) == data
        assert [entry["kind"] for entry in data["layers"]][:5] == ["rescaling", "depthwise_conv", "separable_conv",
                                                                    "conv_transpose", "upsample"]
    flops = [r.flops for r in analyze(model).layers]
    assert all(f >= 0 for f in flops) and sum(flops) == analyze(model).flops


def test_graph_model_rows_merges_and_korean():
    a, b = L.Input((16, 3)), L.Input((16, 3))
    shared = L.Conv1D(4, 3, padding="causal")
    added = L.Add()([shared(a), shared(b)])
    up = L.MaxPooling1D(2)(L.UpSampling1D(2)(shared(a)))
    joined = L.Concatenate()([added, up])
    halved = joined * 0.5
    model = Model([a, b], L.GlobalAveragePooling1D()(halved))
    numbers = analyze(model)
    rows = {(r.name, r.call): r for r in numbers.layers}
    assert rows[("add", 1)].kind == "merge" and rows[("add", 1)].merge_ops == 16 * 4
    assert rows[("concatenate", 1)].concat_axis == 2 and rows[("concatenate", 1)].merge_ops == 0
    assert [r.kind for r in numbers.layers if r.name == "multiply"] == ["operation"]
    halved_row = rows[("multiply", 1)]
    assert halved_row.merge_ops == 16 * 8           # one per output value
    assert halved_row.receptive_field is None and not halved_row.field_known    # an input went through UpSampling
    assert numbers.params == model.count_params() == 4 * (3 * 3 + 1)
    add_field = rows[("add", 1)].receptive_field
    assert [(f.axis, f.size, f.jump, f.start) for f in add_field] == [("steps", 3, 1, -2)]
    ko = explain(model, lang="ko")
    add = "\n".join(ko.layer("add").section("receptive_field"))
    assert "3스텝" in add and "가지 2개" in add
    calls = explain(model).calls("conv1d")
    assert len(calls) == 3 and "call 2 of 3" in calls[1].title
    assert "causal" in "\n".join(calls[0].section("shape"))
    lines = []
    model.summary(print_fn=lines.append, show_kernels=True, show_receptive_field=True)
    assert "12 x 3" in "\n".join(lines)


def test_korean_terms_and_unknown_sizes_are_refused():
    layer = L.Conv2DTranspose(2, 3, strides=2)
    layer(np.zeros((1, 5, 5, 3), np.float32))
    ko = explain(layer, lang="ko").layer(0).to_text()
    for word in ("커널", "필터", "파라미터", "출력 크기", "층"):
        assert word in ko, word
    assert re.search(r"\(5 − 1\)·2 − 2·0 \+ 1·\(3 − 1\) \+ 1 \+ 0 = 11", ko)
    assert any("전치 합성곱의 MAC" in line for line in explain(layer, lang="ko").conventions)
    plain = Sequential([L.Input((4,)), L.Dense(2)])
    assert not any("transposed" in line for line in explain(plain).conventions)
    with pytest.raises(ValueError, match=r"analyze: the steps of the input is unknown \(None\)"):
        analyze_layer(L.UpSampling1D(2), (None, None, 3))
    with pytest.raises(ValueError, match=r"analyze: the height of the input is unknown \(None\)"):
        analyze_layer(L.Conv2DTranspose(2, 3), (None, None, 4, 3))


def test_normalization_notes_and_a_merge_after_an_unfollowed_field():
    a = L.Input((16, 3))
    c = L.Conv1D(4, 3)(a)
    up = L.Cropping1D((1, 1))(L.UpSampling1D(2)(L.MaxPooling1D(2)(c)))
    added = L.Add()([L.Cropping1D((1, 1))(c), up])
    normed = L.LayerNormalization(center=False)(added)
    model = Model(a, L.GlobalMaxPooling1D()(normed))
    result = explain(model)
    assert "not followed here" in section(result.layer("add"), "receptive_field")
    assert "not followed through UpSampling1D" in section(result.layer("up_sampling1d"), "receptive_field")
    norm = result.layer("layer_normalization")
    assert "1 × 4 = 4: gamma, one each" in section(norm, "params")
    assert "over the axes [2], not over the batch" in section(norm, "notes")
    assert "the whole sequence of 12 steps" in section(result.layer("global_max_pooling1d"), "shape")
    ko = explain(model, lang="ko")
    assert "γ가 하나씩" in section(ko.layer("layer_normalization"), "params")
    assert "12스텝짜리 시퀀스" in section(ko.layer("global_max_pooling1d"), "shape")


def test_elementwise_operations_carry_the_union_of_their_inputs_fields():
    a, b = L.Input((8, 8, 2)), L.Input((8, 8, 2))
    summed = L.Conv2D(2, 3, padding="same")(a) + L.Conv2D(2, 5, padding="same")(b)
    model = Model([a, b], L.GlobalAveragePooling2D()(L.Activation("relu")(summed * 0.5)))
    rows = {r.name: r for r in analyze(model).layers}
    assert rows["add"].kind == "operation" and rows["add"].merge_ops == 8 * 8 * 2
    for name in ("add", "multiply", "activation"):
        assert [(f.size, f.jump, f.start) for f in rows[name].receptive_field] == [(5, 1, -2)] * 2
    field = section(explain(model).layer("add"), "receptive_field")
    assert "the union of 2 branches; the largest field is 5×5 (from conv2d_1), the others 3×3" in field
    image = L.Input((4, 4, 3))
    probe = Model(image, L.Flatten()(L.Conv2D(2, 3)(image) * 2.0))
    scaled = [r for r in analyze(probe).layers if r.kind == "operation"]
    assert [(f.size, f.start) for f in scaled[0].receptive_field] == [(3, 0)] * 2


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_augmentation_layers_pass_the_receptive_field_as_at_inference(lang):
    """Flip/rotation/zoom/translation/contrast/brightness are the identity at inference: the field
    after them is the conv's own, and explain says why (they were 'other': no field at all)."""
    import convscope as cs
    from convscope.models.analysis import analyze
    augment = [cs.layers.RandomFlip(), cs.layers.RandomRotation(0.1), cs.layers.RandomZoom(0.1),
               cs.layers.RandomTranslation(0.1, 0.1), cs.layers.RandomContrast(0.2),
               cs.layers.RandomBrightness(0.2)]
    model = cs.Sequential([cs.Input((12, 12, 3)), *augment, cs.layers.Conv2D(2, 3)])
    rows = analyze(model).layers
    assert [r.kind for r in rows[:6]] == ["augment"] * 6
    assert [(f.size, f.jump) for f in rows[-1].receptive_field] == [(3, 1), (3, 1)]
    text = str(cs.explain(model, lang=lang))
    assert text.count("seed=") == 6


def test_a_model_inside_a_model_counts_its_layers_work():
    """A nested block (a transfer-learning backbone's case): its row sums its layers' work — a 3×3 convolution
    of 3 to 4 channels over 6×6 outputs is 6·6·4·3·3·3 = 3,888 MACs — and its explanation says what it is; inside
    a TimeDistributed, the same per step."""
    inner = Sequential([L.Input((8, 8, 3)), L.Conv2D(4, 3), L.ReLU()], name="block")
    x = L.Input((8, 8, 3))
    model = Model(x, L.GlobalAveragePooling2D()(inner(x)))
    row = {r.name: r for r in analyze(model).layers}["block"]
    assert (row.kind, row.macs, row.params, row.output_shape) == ("model", 6 * 6 * 4 * 3 * 3 * 3, 112, (None, 6, 6, 4))
    assert row.flops == 2 * row.macs + 6 * 6 * 4 + 6 * 6 * 4         # bias adds and ReLU evaluations
    text = "\n".join(explain(model).layer("block").section("compute") + explain(model).layer("block").section("shape"))
    assert "8,064 FLOPs (3,888 MACs), the sum of its 2 layers'" in text and "a model of 2 layers" in text
    assert "층 2개로 된 모델" in str(explain(model, lang="ko"))
    frames = Sequential([L.Input((5, 8, 8, 3)), L.TimeDistributed(inner)])
    assert analyze(frames).layers[0].macs == 5 * 3888
