"""models/analysis.py against the real layers: forward shapes, weights, and back-propagated receptive fields."""

from types import SimpleNamespace

import numpy as np
import pytest

from convscope import backend
from convscope.explain import explain
from convscope.layers import (Activation, AveragePooling2D, BatchNormalization, Conv2D, Dense, Dropout,
                              Flatten, GlobalAveragePooling2D, GlobalMaxPooling2D, Input, MaxPooling2D,
                              ZeroPadding2D)
from convscope.models import Sequential
from convscope.models.analysis import analyze, analyze_layer, optimizer_slots, summary_columns
from convscope.ops import shapes

N_MODELS = 300


@pytest.fixture
def float64():
    backend.set_floatx("float64")
    yield
    backend.set_floatx("float32")


# -- random models --------------------------------------------------------------------------------

def _fits(length, kernel, stride, dilation, padding):
    return shapes.conv_output_length(length, kernel, stride, dilation, padding) >= 1


def _random_spatial_layer(rng, shape, data_format):
    """One random conv/pool/pad/BN/dropout layer that can take `shape` (None if the draw does not fit)."""
    c_axis = 1 if data_format == "channels_first" else 3
    rows, cols = (shape[2], shape[3]) if data_format == "channels_first" else (shape[1], shape[2])
    channels = shape[c_axis]
    kind = rng.choice(["conv", "conv", "conv", "max", "avg", "pad", "bn", "dropout"])
    padding = str(rng.choice(["valid", "same"]))
    if kind == "conv":
        kernel = tuple(int(k) for k in rng.integers(1, 5, size=2))
        if rng.random() < 0.5:
            strides, dilation = tuple(int(s) for s in rng.integers(1, 4, size=2)), (1, 1)
        else:
            strides, dilation = (1, 1), tuple(int(d) for d in rng.integers(1, 4, size=2))
        groups = int(rng.choice([g for g in (1, 2, 3) if channels % g == 0]))
        filters = groups * int(rng.integers(1, 4))
        if not all(_fits(n, k, s, d, padding) for n, k, s, d in zip((rows, cols), kernel, strides, dilation)):
            return None
        return Conv2D(filters, kernel, strides=strides, padding=padding, dilation_rate=dilation, groups=groups,
                      data_format=data_format, use_bias=bool(rng.random() < 0.8))
    if kind in ("max", "avg"):
        pool = tuple(int(k) for k in rng.integers(1, 4, size=2))
        strides = None if rng.random() < 0.4 else tuple(int(s) for s in rng.integers(1, 4, size=2))
        steps = pool if strides is None else strides
        if not all(_fits(n, k, s, 1, padding) for n, k, s in zip((rows, cols), pool, steps)):
            return None
        cls = MaxPooling2D if kind == "max" else AveragePooling2D
        return cls(pool, strides=strides, padding=padding, data_format=data_format)
    if kind == "pad":
        pads = tuple(tuple(int(p) for p in rng.integers(0, 3, size=2)) for _ in range(2))
        return ZeroPadding2D(pads, data_format=data_format)
    if kind == "bn":
        return BatchNormalization(axis=c_axis, center=bool(rng.random() < 0.8), scale=bool(rng.random() < 0.8))
    return Dropout(float(rng.uniform(0.1, 0.5)))


def _random_model(rng):
    data_format = "channels_first" if rng.random() < 0.25 else "channels_last"
    rows, cols, channels = (int(v) for v in (*rng.integers(6, 17, size=2), rng.integers(1, 5)))
    shape = (None, channels, rows, cols) if data_format == "channels_first" else (None, rows, cols, channels)
    model = Sequential([Input(shape=shape[1:])])
    target = int(rng.integers(1, 6))
    while sum(1 for _ in model.layers) < target:
        layer = _random_spatial_layer(rng, model.output_shape, data_format)
        if layer is not None:
            model.add(layer)
    tail = rng.choice(["none", "flatten", "gap", "gmp"])
    if tail != "none":
        model.add({"flatten": Flatten, "gap": GlobalAveragePooling2D,
                   "gmp": GlobalMaxPooling2D}[tail](**({} if tail == "flatten" else {"data_format": data_format})))
        model.add(Dense(int(rng.integers(1, 5)), use_bias=bool(rng.random() < 0.8)))
    return model


def _positive_weights(model, rng):
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([rng.uniform(0.1, 1.0, size=w.shape) for w in layer.get_weights()])


def _spatial(shape, data_format):
    return (shape[2], shape[3]) if data_format == "channels_first" else (shape[1], shape[2])


def test_random_models_agree_with_forward_weights_and_backprop(float64):
    rng = np.random.default_rng(2024)
    exact_fields = 0
    for _ in range(N_MODELS):
        backend.clear_session(free_memory=False)
        model = _random_model(rng)
        _positive_weights(model, rng)
        explained = explain(model)
        numbers, entries = explained.numbers, explained.to_dict()["layers"]
        x = rng.uniform(0.1, 1.0, size=(2,) + tuple(model.input_shape[1:]))
        outputs, contexts = [], []
        h = x
        for layer in model.layers:
            h, ctx = layer.forward(h)
            outputs.append(h)
            contexts.append(ctx)
        np.testing.assert_allclose(model._forward(x, training=False), h)
        assert [e["name"] for e in entries] == [layer.name for layer in model.layers]
        for entry, item, layer, out in zip(entries, explained.layers, model.layers, outputs):
            assert tuple(entry["output_shape"][1:]) == out.shape[1:], (entry["name"], entry["axes"])
            shape_text = "\n".join(item.section("shape"))
            for axis in entry["axes"]:
                if axis["mode"] in ("valid", "same"):
                    assert f"{axis['input']} → {axis['output']}" in shape_text
            weights = layer.get_weights()
            assert entry["params"] == sum(w.size for w in weights) == layer.count_params()
            assert entry["trainable_params"] == sum(v.value.size for v in layer.trainable_weights)
            assert entry["non_trainable_params"] == sum(v.value.size for v in layer.non_trainable_weights)
            if entry["kind"] == "conv":
                kernel = weights[0]
                assert entry["kernels"]["count"] == kernel.shape[2] * kernel.shape[3]
                assert entry["kernels"]["weights_per_filter"] == kernel.shape[0] * kernel.shape[1] * kernel.shape[2]
                assert f"= {entry['kernels']['count']:,} kernels of " in "\n".join(item.section("kernels"))
            else:
                assert entry["kernels"] is None
        # receptive fields: one-hot gradient at the centre unit, back through every layer up to this one
        for k, row in enumerate(numbers.layers):
            if entries[k]["receptive_field"] is None:
                continue
            data_format = row.data_format
            out = outputs[k]
            grad = np.zeros_like(out)
            rows_out, cols_out = _spatial(out.shape, data_format)
            i, j = rows_out // 2, cols_out // 2
            index = (0, 0, i, j) if data_format == "channels_first" else (0, i, j, 0)
            grad[index] = 1.0
            grad_in = grad
            for layer, ctx in zip(reversed(model.layers[:k + 1]), reversed(contexts[:k + 1])):
                grad_in, _ = layer.backward(ctx, grad_in)
            hit = np.abs(grad_in[0]).sum(axis=0 if data_format == "channels_first" else 2)
            rows_hit, cols_hit = np.nonzero(hit)
            height, width = (SimpleNamespace(**axis) for axis in entries[k]["receptive_field"])
            lo = (height.start + i * height.jump, width.start + j * width.jump)
            hi = (lo[0] + height.size - 1, lo[1] + width.size - 1)
            rows_in, cols_in = _spatial(x.shape, data_format)
            inside = lo[0] >= 0 and lo[1] >= 0 and hi[0] < rows_in and hi[1] < cols_in
            if rows_hit.size == 0:  # possible only when every tap lands in padding
                assert not inside, (row.name, "no gradient reached a field inside the input")
                continue
            measured_lo = (rows_hit.min(), cols_hit.min())
            measured_hi = (rows_hit.max(), cols_hit.max())
            assert measured_lo[0] >= lo[0] and measured_lo[1] >= lo[1], (row.name, lo, measured_lo)
            assert measured_hi[0] <= hi[0] and measured_hi[1] <= hi[1], (row.name, hi, measured_hi)
            no_max = all(r.kind != "max_pool" for r in numbers.layers[:k + 1])
            if inside and no_max:  # max pooling routes the gradient to one cell, so only containment there
                assert measured_lo == lo and measured_hi == hi, (row.name, lo, hi, measured_lo, measured_hi)
                exact_fields += 1
    assert exact_fields >= 200


# -- single rules, checked by hand ------------------------------------------------------------------

def test_same_padding_stride_two_is_asymmetric_and_shifts_the_field():
    model = Sequential([Input(shape=(7, 8, 1)), Conv2D(2, 2, strides=2, padding="same"),
                        MaxPooling2D(3, strides=2, padding="same")])
    conv, pool = analyze(model).layers
    assert [(a.pad_before, a.pad_after, a.output) for a in conv.axes] == [(0, 1, 4), (0, 0, 4)]
    # pool on 4x4: out 2, total pad (2-1)*2+3-4 = 1 -> (0, 1)
    assert [(a.pad_before, a.pad_after) for a in pool.axes] == [(0, 1), (0, 1)]
    assert [(f.size, f.jump, f.start) for f in conv.receptive_field] == [(2, 2, 0), (2, 2, 0)]
    # size 2 + (3-1)*2 = 6, jump 4, start 0 - 0*2 = 0
    assert [(f.size, f.jump, f.start) for f in pool.receptive_field] == [(6, 4, 0), (6, 4, 0)]


def test_dropped_rows_and_dilation_are_reported():
    model = Sequential([Input(shape=(10, 9, 1)), Conv2D(1, 3, strides=(3, 2)),
                        Conv2D(1, 3, dilation_rate=2, padding="same")])
    first, second = analyze(model).layers
    # rows: (10-3) % 3 = 1 dropped; cols: (9-3) % 2 = 0
    assert [a.dropped for a in first.axes] == [1, 0]
    assert [a.effective_kernel for a in second.axes] == [5, 5]
    assert [(a.pad_before, a.pad_after) for a in second.axes] == [(2, 2), (2, 2)]
    # field: 3 + (5-1)*3 = 15 rows, jump 3, start 0 - 2*3 = -6
    assert (second.receptive_field[0].size, second.receptive_field[0].jump,
            second.receptive_field[0].start) == (15, 3, -6)


def _window_cells_by_brute_force(n, k, s, pad_before, out):
    mask = np.zeros(n + pad_before + k + s * out, dtype=int)
    mask[pad_before:pad_before + n] = 1
    return sum(int(mask[o * s:o * s + k].sum()) for o in range(out))


@pytest.mark.parametrize("cls,extra", [(MaxPooling2D, 0), (AveragePooling2D, 1)])
def test_pooling_ops_count_only_real_cells(cls, extra):
    model = Sequential([Input(shape=(7, 5, 3)), cls((3, 2), strides=(2, 2), padding="same")])
    row = analyze(model).layers[0]
    cells = 3
    for axis in row.axes:
        cells *= _window_cells_by_brute_force(axis.input, axis.kernel, axis.stride, axis.pad_before, axis.output)
    outputs = 4 * 3 * 3
    assert row.output_shape == (None, 4, 3, 3)
    assert row.pool_ops == cells - outputs + extra * outputs
    assert row.params == 0 and row.macs == 0


def test_batch_norm_and_dense_numbers():
    model = Sequential([Input(shape=(10, 20)), Dense(30, activation="relu"), BatchNormalization(),
                        Activation("tanh")])
    dense, bn, act = analyze(model).layers
    assert dense.output_shape == (None, 10, 30) and dense.params == 630
    assert dense.macs == 10 * 30 * 20 and dense.bias_adds == 300 and dense.activation_ops == 300
    assert dense.flops == 2 * 6000 + 300 + 300
    assert (bn.params, bn.trainable_params, bn.non_trainable_params) == (120, 60, 60)
    assert bn.norm_ops == 2 * 300
    assert act.activation == "tanh" and act.activation_ops == 300


def test_memory_and_optimizer_slots():
    from convscope import optimizers
    model = Sequential([Input(shape=(8, 8, 1)), Conv2D(4, 3), Flatten(), Dense(10)])
    numbers = analyze(model, batch_size=16)
    conv = numbers.layers[0]
    assert conv.activation_bytes_per_sample == 6 * 6 * 4 * 4
    assert conv.activation_bytes_per_batch == 16 * 6 * 6 * 4 * 4
    assert numbers.param_bytes == 4 * model.count_params()
    assert numbers.optimizer_slots is None
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    compiled = analyze(model)
    assert compiled.optimizer == "Adam" and compiled.optimizer_slots == 2
    assert compiled.optimizer_state_bytes == 2 * 4 * model.count_params()
    assert optimizer_slots(optimizers.SGD()) == 0
    assert optimizer_slots(optimizers.SGD(momentum=0.9)) == 1
    assert optimizer_slots(optimizers.Adam(amsgrad=True)) == 3


@pytest.mark.parametrize("name,config", [
    ("SGD", {}), ("SGD", {"momentum": 0.9}), ("Adam", {}), ("Adam", {"amsgrad": True}), ("AdamW", {}),
    ("RMSprop", {}), ("RMSprop", {"momentum": 0.5, "centered": True}), ("Adagrad", {}), ("Adadelta", {}),
    ("Adamax", {}), ("Nadam", {}), ("Lion", {}), ("Ftrl", {}), ("Lamb", {}), ("Adafactor", {})])
def test_optimizer_slots_match_keras_per_variable_state(keras, name, config):
    """Every optimizer convscope has (Lion was refused, so explain/summary of a model compiled with it
    failed): its slots per parameter are Keras' variables of that parameter's shape after build."""
    from convscope import optimizers
    theirs = getattr(keras.optimizers, name)(**config)
    weight = keras.Variable(np.zeros((3, 5), "float32"))
    theirs.build([weight])
    per_variable = sum(tuple(v.shape) == (3, 5) for v in theirs.variables)
    assert optimizer_slots(getattr(optimizers, name)(**config)) == per_variable
    model = Sequential([Input(shape=(4,)), Dense(2)])
    model.compile(optimizer=getattr(optimizers, name)(**config), loss="mse")
    assert analyze(model).optimizer_state_bytes == per_variable * 4 * model.count_params()
    assert "Dense" in explain(model).to_markdown()


def test_analyze_layer_on_its_build_shape():
    layer = Conv2D(16, (5, 5))
    layer(np.zeros((2, 300, 300, 3), dtype=np.float32))
    row = analyze_layer(layer)
    assert row.output_shape == (None, 296, 296, 16) and row.params == 1216 and row.kernels == 48


def test_summary_columns():
    model = Sequential([Input(shape=(28, 28, 1)), Conv2D(32, 5, padding="same"), MaxPooling2D(),
                        Flatten(), Dense(10)])
    assert summary_columns(model) == []
    columns = dict(summary_columns(model, show_kernels=True, show_flops=True, show_receptive_field=True,
                                   show_memory=True))
    assert list(columns) == ["Kernels", "MACs", "FLOPs", "Receptive field", "Activations/sample", "Param memory"]
    assert all(len(cells) == 4 for cells in columns.values())
    assert columns["Kernels"] == ["32 x 5x5", "", "", ""]
    assert columns["MACs"][0] == f"{28 * 28 * 32 * 25:,}"
    assert columns["Receptive field"][:2] == ["5x5 /1 @-2,-2", "6x6 /2 @-2,-2"]
    assert columns["Receptive field"][3] == "all"
    assert columns["Param memory"][0] == "3.2 KiB"  # (25 + 1) * 32 * 4 = 3,328 bytes


def test_errors_name_the_function_and_argument():
    with pytest.raises(TypeError, match=r"analyze: argument `model` must be a Sequential model, got int"):
        analyze(3)
    model = Sequential([Input(shape=(4, 4, 1)), Conv2D(1, 2)])
    with pytest.raises(ValueError, match=r"analyze: argument `batch_size` must be a positive int, got 0"):
        analyze(model, batch_size=0)
    with pytest.raises(TypeError, match=r"summary: argument `show_flops` must be True or False, got 'yes'"):
        summary_columns(model, show_flops="yes")
    with pytest.raises(ValueError, match=r"analyze_layer: Conv2D 'c' has not been built"):
        analyze_layer(Conv2D(1, 2, name="c"))
    with pytest.raises(ValueError, match=r"analyze: the model has no input shape yet"):
        analyze(Sequential([Conv2D(1, 2)]))
    with pytest.raises(ValueError, match=r"analyze: argument `model` has no layers"):
        analyze(Sequential())


@pytest.mark.parametrize("seed", range(12))
def test_conv_and_dense_macs_match_torch_flop_counter(seed):
    """PyTorch's FlopCounterMode counts 2 FLOPs per multiply-accumulate of conv2d and linear."""
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode
    rng = np.random.default_rng(seed)
    groups = int(rng.choice([1, 2, 3]))
    in_channels, filters = groups * int(rng.integers(1, 4)), groups * int(rng.integers(1, 4))
    kernel = tuple(int(k) for k in rng.integers(1, 5, size=2))
    strides = tuple(int(s) for s in rng.integers(1, 4, size=2)) if seed % 2 else (1, 1)
    dilation = (1, 1) if seed % 2 else tuple(int(d) for d in rng.integers(1, 3, size=2))
    padding = "same" if seed % 3 else "valid"
    model = Sequential([Input(shape=(13, 11, in_channels)),
                        Conv2D(filters, kernel, strides=strides, padding=padding, dilation_rate=dilation,
                               groups=groups), Flatten(), Dense(7)])
    conv, _, dense = analyze(model).layers
    pads = [(a.pad_before, a.pad_after) for a in conv.axes]
    x = torch.zeros(1, in_channels, 13 + sum(pads[0]), 11 + sum(pads[1]))
    weight = torch.zeros(filters, in_channels // groups, *kernel)
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.conv2d(x, weight, stride=strides, dilation=dilation, groups=groups)
    assert 2 * conv.macs == counter.get_total_flops()
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.linear(torch.zeros(1, dense.in_channels), torch.zeros(7, dense.in_channels))
    assert 2 * dense.macs == counter.get_total_flops()
