"""The scope on functional (graph) models: analyze, explain, summary columns, plot_model, feature maps.

Oracles, computed here without the analysis code: parameter counts from the weights'
sizes, output shapes and MACs from real forward passes (`predict`) and the kernels'
shapes, and receptive fields measured by perturbing input pixels of models whose
weights are all positive (so a pixel inside a unit's field always moves the unit).
"""

import json
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import convscope
from convscope import explain
from convscope.layers import (Add, AveragePooling2D, BatchNormalization, Concatenate, Conv2D, Dense, Flatten,
                              Input, MaxPooling2D, ZeroPadding2D)
from convscope.models import Model, Sequential
from convscope.models.analysis import analyze, summary_columns
from convscope.viz import plot_feature_maps, plot_model

SVG = "{http://www.w3.org/2000/svg}"


def two_branch_model():
    """Input → stem → (3×3 conv, stride 2 | 2×2 max pool → 1×1 conv) → Add → Concatenate with a pooled stem → Dense."""
    image = Input((12, 12, 2), name="image")
    stem = Conv2D(4, 3, padding="same", activation="relu", name="stem")(image)
    left = Conv2D(6, 3, strides=2, padding="same", name="left")(stem)
    right = MaxPooling2D(2, name="pool")(stem)
    right = Conv2D(6, 1, name="right")(right)
    added = Add(name="add")([left, right])
    pooled = AveragePooling2D(2, name="avg")(stem)
    joined = Concatenate(name="join")([added, pooled])
    out = Dense(3, name="head")(Flatten(name="flat")(joined))
    return Model(image, out, name="two_branch")


def shared_model():
    """Two inputs through one shared conv, then Add: the siamese pattern."""
    a, b = Input((8, 8, 2), name="a"), Input((8, 8, 2), name="b")
    shared = Conv2D(3, 3, padding="same", name="shared")
    added = Add(name="add")([shared(a), shared(b)])
    return Model([a, b], Conv2D(2, 3, name="after")(added), name="siamese")


def offset_branches_model():
    """Two branches whose fields are shifted against each other, so their union is larger than either:
    (2 rows/cols of zeros before, 5×5 valid) sees −2…2, (2 after, 5×5 valid) sees 0…4, the Add −2…4."""
    image = Input((12, 12, 1), name="image")
    early = ZeroPadding2D(((2, 0), (2, 0)), name="pad_before")(image)
    early = Conv2D(2, 5, name="early")(early)
    late = ZeroPadding2D(((0, 2), (0, 2)), name="pad_after")(image)
    late = Conv2D(2, 5, name="late")(late)
    added = Add(name="add")([early, late])
    strided = Conv2D(2, 3, strides=2, padding="same", name="strided")(added)
    skip = MaxPooling2D(2, name="skip")(added)
    out = Add(name="add_2")([strided, skip])
    return Model(image, out, name="offsets")


def make_positive(model, seed=0):
    """Every weight in [0.1, 1]: a pixel inside a unit's field then always changes the unit."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        variable.assign(rng.uniform(0.1, 1.0, size=variable.shape).astype(variable.value.dtype))


def row(numbers, name, call=1):
    return next(r for r in numbers.layers if r.name == name and r.call == call)


def submodel(model, name, call=0):
    """The model from its inputs to one call of one layer (Keras' way of looking inside)."""
    node = model.get_layer(name)._inbound_nodes[call]
    return Model(model.inputs, node.outputs[0])


# -- numbers ----------------------------------------------------------------------------------------

def test_two_branch_numbers_match_weights_and_forward_passes():
    model = two_branch_model()
    numbers = analyze(model)
    x = np.random.default_rng(1).random((2, 12, 12, 2)).astype(np.float32)
    assert [r.name for r in numbers.layers] == [layer.name for layer in model.layers]
    for layer in model.layers:
        r = row(numbers, layer.name)
        assert r.params == sum(int(w.value.size) for w in layer.weights)
        if r.kind == "input":
            assert r.output_shape == (None, 12, 12, 2) and r.flops == 0
            continue
        out = submodel(model, layer.name).predict(x, verbose=0)
        assert r.output_shape == (None,) + out.shape[1:], layer.name
        if r.kind == "conv":
            kh, kw, per_group, filters = layer.kernel.value.shape
            assert r.macs == out[0].size * kh * kw * per_group
    assert numbers.params == model.count_params() == sum(int(w.value.size) for w in model.weights)
    add, join = row(numbers, "add"), row(numbers, "join")
    added = submodel(model, "add").predict(x, verbose=0)
    assert add.params == 0 and add.kind == "merge" and add.flops == (2 - 1) * added[0].size
    assert join.params == 0 and join.flops == 0 and join.output_shape == (None, 6, 6, 10)
    assert add.inbound == ["left", "right"] and join.inbound == ["add", "avg"]
    assert [numbers.layers[p].name for p in join.parents] == ["add", "avg"]
    assert numbers.flops == sum(r.flops for r in numbers.layers)
    shape = explain(model).layer("join").section("shape")
    assert "Concatenate along axis 3: 6 + 4 = 10; the other axes must match" in shape


def test_concatenate_names_its_axis_even_when_the_inputs_are_equal():
    image = Input((2, 8, 8), name="image")
    a = Conv2D(3, 3, padding="same", data_format="channels_first", name="a")(image)
    b = Conv2D(3, 1, data_format="channels_first", name="b")(image)
    model = Model(image, Concatenate(axis=1, name="cat")([a, b]))
    cat = explain(model).layer("cat")
    assert "Concatenate along axis 1: 3 + 3 = 6; the other axes must match" in cat.section("shape")
    assert cat.numbers.receptive_field[0].size == 3   # the channels are joined, the spatial fields united


def test_a_shared_layer_is_listed_once_per_call_and_counted_once():
    model = shared_model()
    numbers = analyze(model)
    calls = [r for r in numbers.layers if r.name == "shared"]
    assert [(r.call, r.calls, r.inbound) for r in calls] == [(1, 2, ["a"]), (2, 2, ["b"])]
    weights = sum(int(w.value.size) for w in model.get_layer("shared").weights)
    assert all(r.params == weights for r in calls)
    assert numbers.params == model.count_params() == weights + sum(
        int(w.value.size) for w in model.get_layer("after").weights)
    assert numbers.macs == 2 * calls[0].macs + row(numbers, "after").macs  # the work is done twice
    assert row(numbers, "add").inbound == ["shared (call 1)", "shared (call 2)"]

    text = explain(model).to_text()
    assert "shared (Conv2D), call 1 of 2: from a" in text and "shared (Conv2D), call 2 of 2: from b" in text
    assert text.count("shared (Conv2D), call") == 2
    assert "the same 57 parameters as call 1" in text
    assert "shared (Conv2D) is called 2 times" in text
    assert len(explain(model).calls("shared")) == 2
    assert explain(model).model_lines[0] == "Inputs (None, 8, 8, 2), (None, 8, 8, 2) → outputs (None, 6, 6, 2)"
    columns = dict(summary_columns(model, show_kernels=True, show_flops=True, show_receptive_field=True,
                                   show_memory=True))
    assert all(len(cells) == len(model.layers) for cells in columns.values())
    assert columns["Kernels"][[layer.name for layer in model.layers].index("shared")] == "6 x 3x3"


def test_totals_of_a_functional_model_equal_its_sequential_twin():
    layers = lambda: [Conv2D(4, 3, padding="same", activation="relu", name="c1"), BatchNormalization(name="bn"),
                      MaxPooling2D(2, name="p"), Conv2D(5, 3, strides=2, name="c2"), Flatten(name="f"),
                      Dense(3, name="d")]
    sequential = Sequential([Input((16, 16, 3))] + layers())
    image = Input((16, 16, 3), name="image")
    x = image
    for layer in layers():
        x = layer(x)
    functional = Model(image, x)
    a, b = analyze(sequential), analyze(functional)
    for total in ("params", "trainable_params", "non_trainable_params", "macs", "flops",
                  "activation_bytes_per_sample", "param_bytes"):
        assert getattr(a, total) == getattr(b, total), total
    assert [r.receptive_field for r in a.layers] == [r.receptive_field for r in b.layers[1:]]
    assert b.layers[0].kind == "input"


# -- receptive fields through branches -----------------------------------------------------------------

def measured_field(model, name, shape):
    """For each unit (row, col) of channel 0 of layer `name`: the input pixels whose change moves it."""
    probe = submodel(model, name)
    base = np.full((1,) + shape, 0.5, np.float32)
    h, w = shape[:2]
    batch = np.repeat(base, h * w, axis=0)
    for i in range(h * w):
        batch[i, i // w, i % w, :] += 1.0
    moved = np.abs(probe.predict(batch, verbose=0) - probe.predict(base, verbose=0)) > 1e-6
    return moved[..., 0].reshape(h, w, *moved.shape[1:3])   # [pixel row, pixel col, unit row, unit col]


def field_box(fields, unit_row, unit_col, size=12):
    """The input pixels inside the (clipped) rectangle of one unit's field: a (size, size) mask."""
    mask = np.zeros((size, size), bool)
    (fh, fw) = fields
    top, left = fh.start + unit_row * fh.jump, fw.start + unit_col * fw.jump
    mask[max(top, 0):max(top + fh.size, 0), max(left, 0):max(left + fw.size, 0)] = True
    return mask


@pytest.mark.parametrize("name", ["add", "strided", "skip", "add_2"])
def test_receptive_field_after_add_is_the_union_of_the_branches(name):
    """The field reported is the smallest rectangle holding every pixel that moves the unit; at the first
    merge the pixels that move it are exactly the union of its branches' rectangles (an L shape here)."""
    model = offset_branches_model()
    make_positive(model)
    r = row(analyze(model), name)
    seen = measured_field(model, name, (12, 12, 1))
    for unit_row in range(seen.shape[2]):
        for unit_col in range(seen.shape[3]):
            moved = seen[:, :, unit_row, unit_col]
            rows, cols = np.flatnonzero(moved.any(axis=1)), np.flatnonzero(moved.any(axis=0))
            bounding = np.zeros_like(moved)
            bounding[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] = True
            np.testing.assert_array_equal(bounding, field_box(r.receptive_field, unit_row, unit_col),
                                          err_msg=f"{name} unit ({unit_row}, {unit_col})")
            if name == "add":  # branches of plain convs: each sees a full rectangle
                union = np.logical_or.reduce([field_box(f, unit_row, unit_col) for _, f in r.branches])
                np.testing.assert_array_equal(moved, union, err_msg=f"{name} unit ({unit_row}, {unit_col})")
    if name == "add":   # the branches see −2…2 and 0…4: the union −2…4 is larger than either
        assert [f[0].size for _, f in r.branches] == [5, 5] and r.receptive_field[0].size == 7


@pytest.mark.parametrize("parts", [[(7, 1, -3), (3, 1, -1)], [(5, 1, -2), (5, 1, 0)], [(3, 2, 0), (9, 1, 0)],
                                   [(6, 2, -2), (2, 2, 0), (1, 1, 3)]])
def test_union_axis_covers_every_units_branches_and_no_more(parts):
    from convscope.models.analysis_graph import union_axis
    length = 8
    size, jump, start = union_axis(parts, length)
    spans = [(min(st + i * j for s, j, st in parts), max(st + i * j + s - 1 for s, j, st in parts))
             for i in range(length)]
    assert all(start + i * jump <= lo and hi <= start + i * jump + size - 1 for i, (lo, hi) in enumerate(spans))
    assert any(hi == start + i * jump + size - 1 for i, (_, hi) in enumerate(spans))   # tight
    assert start == spans[0][0]


def test_union_is_explained_in_english_and_korean():
    model = offset_branches_model()
    result = explain(model)
    add = result.layer("add")
    lines = add.section("receptive_field")
    assert lines[0].startswith("each output unit sees 7×7 input pixels")
    assert "after add: the union of 2 branches, each 5×5" in lines
    assert "  from early: 5×5, jump 1×1, start (-2, -2)" in lines
    assert "  from late: 5×5, jump 1×1, start (0, 0)" in lines
    mixed = result.layer("add_2").section("receptive_field")
    strided, skip = row(analyze(model), "strided"), row(analyze(model), "skip")
    assert (f"after add_2: the union of 2 branches; the largest field is "
            f"{strided.receptive_field[0].size}×{strided.receptive_field[1].size} (from strided), the others "
            f"{skip.receptive_field[0].size}×{skip.receptive_field[1].size}") in mixed
    korean = explain(model, lang="ko").to_text()
    assert "add 다음: 가지 2개의 수용 영역을 합친 것이며, 각각 5×5입니다" in korean
    assert "가장 큰 수용 영역은" in korean and "(strided에서 옴)" in korean
    assert "after add" not in korean and "Receptive field" not in korean
    data = result.to_dict()
    entry = next(e for e in data["layers"] if e["name"] == "add")
    assert [b["source"] for b in entry["branches"]] == ["early", "late"] and entry["inbound"] == ["early", "late"]
    shared_ko = explain(shared_model(), lang="ko").to_text()
    assert "shared (Conv2D), 2번 중 2번째 호출: b에서" in shared_ko


def test_summary_shows_the_scope_columns_for_a_functional_model():
    model = two_branch_model()
    lines = []
    model.summary(print_fn=lines.append, show_kernels=True, show_flops=True, show_receptive_field=True,
                  show_memory=True)
    table = "\n".join(lines)
    numbers = analyze(model)
    assert "Connected to" in table and "Receptive field" in table
    add_line = next(line for line in lines if line.startswith("add (Add)"))
    assert f"{row(numbers, 'add').flops:,}" in add_line and "left[0][0]" in add_line
    assert f"Total params: {model.count_params():,}" in table


# -- pictures -------------------------------------------------------------------------------------------

def connections(model):
    own = set(model._nodes)
    return [(t.keras_history[0].name, layer.name) for layer in model.layers
            for node in layer._inbound_nodes if node in own for t in node.input_tensors]


@pytest.mark.parametrize("make", [two_branch_model, shared_model, offset_branches_model])
def test_plot_model_draws_every_layer_and_one_arrow_per_connection(make, tmp_path):
    model = make()
    plot_model(model, to_file=tmp_path / "model.svg", show_shapes=True)
    root = ET.fromstring((tmp_path / "model.svg").read_bytes())
    texts = [node.text for node in root.iter(f"{SVG}text")]
    boxes = [r for r in root.iter(f"{SVG}rect") if r.get("class") == "layer"]
    assert len(boxes) == len(model.layers)
    for layer in model.layers:
        assert f"{layer.name} ({type(layer).__name__})" in texts
    edges = [n for n in root.iter() if n.get("class") == "edge"]
    heads = [n for n in root.iter() if n.get("class") == "edge-head"]
    assert len(edges) == len(heads) == len(connections(model))
    # Every arrow starts at the bottom of its source box and ends on top of its target box.
    where = {t: (float(b.get("x")), float(b.get("y")), float(b.get("width")), float(b.get("height")))
             for t, b in zip([f"{l.name} ({type(l).__name__})" for l in model.layers], boxes)}
    names = {layer.name: f"{layer.name} ({type(layer).__name__})" for layer in model.layers}
    ends = []
    for edge in edges:
        if edge.tag == f"{SVG}line":
            ends.append(((float(edge.get("x1")), float(edge.get("y1"))), (float(edge.get("x2")), float(edge.get("y2")))))
        else:
            points = [tuple(map(float, p.split(","))) for p in edge.get("points").split()]
            ends.append((points[0], points[-1]))
    for source, target in connections(model):
        sx, sy, sw, sh = where[names[source]]
        tx, ty, tw, th = where[names[target]]
        match = [e for e in ends if abs(e[0][1] - (sy + sh)) < 1e-6 and sx <= e[0][0] <= sx + sw
                 and ty - 8 <= e[1][1] <= ty and tx <= e[1][0] <= tx + tw]
        assert match, (source, target)
    merges = [l for l in model.layers if isinstance(l, (Add, Concatenate))]
    assert sum(1 for t in texts if t and t.startswith("Input shape: [(None")) == len(merges)
    Image = pytest.importorskip("PIL.Image")
    plot_model(model, to_file=tmp_path / "model.png", show_shapes=True, rankdir="LR")
    image = Image.open(tmp_path / "model.png")
    image.load()
    assert image.width > 100 and image.height > 50


def test_plot_model_draws_a_layer_called_on_its_own_output_as_a_loop():
    image = Input((6, 6, 2), name="image")
    twice = Conv2D(2, 3, padding="same", name="twice")
    model = Model(image, twice(twice(image)))
    root = ET.fromstring(plot_model(model, to_file=None).to_svg())
    box = [r for r in root.iter(f"{SVG}rect") if r.get("class") == "layer"][1]   # image, twice
    right = float(box.get("x")) + float(box.get("width"))
    loops = [n for n in root.iter(f"{SVG}polyline") if n.get("class") == "edge"]
    assert len([n for n in root.iter() if n.get("class") == "edge"]) == len(connections(model)) == 2
    assert len(loops) == 1
    xs = [float(p.split(",")[0]) for p in loops[0].get("points").split()]
    assert min(xs) >= right - 1e-6 and max(xs) > right   # beside the box, not through it
    assert analyze(model).layers[2].inbound == ["twice (call 1)"]


def test_plot_model_ranks_follow_the_longest_path():
    model = two_branch_model()
    root = ET.fromstring(plot_model(model, to_file=None).to_svg())
    ys = {}
    for layer, box in zip(model.layers, [r for r in root.iter(f"{SVG}rect") if r.get("class") == "layer"]):
        ys[layer.name] = float(box.get("y")) + float(box.get("height")) / 2
    # image, stem, (left | pool), right, add, join, flat, head: avg shares pool's rank, join waits for add.
    assert ys["image"] < ys["stem"] < ys["pool"] < ys["right"] < ys["add"] < ys["join"] < ys["flat"] < ys["head"]
    assert ys["left"] == ys["pool"] == ys["avg"]


def test_layout_ranks_dummies_and_barycenter_order():
    from convscope.viz import layout
    # 0 → 3, 1 → 2, 0 → 4 → ... : boxes 0, 1 on rank 0; 2, 3 on rank 1 in the crossing order first.
    edges = [(0, 3), (1, 2), (3, 4), (2, 4), (0, 4)]
    ranks = layout.longest_path_ranks(5, edges)
    assert ranks == [0, 0, 1, 1, 2]
    ranks, unit_edges, chains = layout.split_long_edges(ranks, edges)
    assert chains[-1] == [0, 5, 4] and ranks[5] == 1       # the long edge 0 → 4 bends at a dummy on rank 1
    start = [[0, 1], [2, 3, 5]]
    assert layout.crossings(start + [[4]], unit_edges) > 0
    ordered = layout.order_ranks(ranks, unit_edges)
    assert layout.crossings(ordered, unit_edges) == 0
    assert ordered[1].index(3) < ordered[1].index(2)       # 3 hangs under 0, 2 under 1


def test_feature_maps_of_a_functional_model_are_its_calls_outputs():
    model = shared_model()
    rng = np.random.default_rng(3)
    a, b = rng.random((8, 8, 2), np.float32), rng.random((8, 8, 2), np.float32)
    figure = plot_feature_maps(model, [a, b], layers=["shared", "after"])
    assert figure.info["tiles"] == [("shared", 3), ("shared", 3), ("after", 2)]
    root = ET.fromstring(figure.to_svg())
    titles = [t.text for t in root.iter(f"{SVG}text")]
    assert any(t.startswith("shared (Conv2D, call 2 of 2)") for t in titles)
    from convscope.viz.filters import run_layers
    _, outputs = run_layers(model, [a, b], "test")
    numbers = analyze(model)
    second = [i for i, r in enumerate(numbers.layers) if r.name == "shared"][1]
    np.testing.assert_allclose(outputs[second], submodel(model, "shared", 1).predict([a[None], b[None]], verbose=0),
                               rtol=1e-6)
    with pytest.raises(ValueError, match=r"must hold 2 samples, one per input \['a', 'b'\], got 1"):
        plot_feature_maps(model, a)


def test_report_of_a_functional_model_holds_its_calls_and_connections(tmp_path):
    model = shared_model()
    rng = np.random.default_rng(4)
    sample = [rng.random((8, 8, 2), np.float32), rng.random((8, 8, 2), np.float32)]
    html = convscope.report(model, sample=sample, to_file=tmp_path / "r.html").read_text(encoding="utf-8")
    data = json.loads(re.search(r'id="report-data">(.*?)</script>', html, re.DOTALL).group(1))
    assert data["graph"] is True
    assert [(l["name"], l["call"]) for l in data["layers"]] == [(r.name, r.call) for r in analyze(model).layers]
    add = next(l for l in data["layers"] if l["name"] == "add")
    assert add["inbound"] == ["shared (call 1)", "shared (call 2)"]
    assert [data["layers"][p]["name"] for p in add["parents"]] == ["shared", "shared"]
    assert len(data["sample"]["outputs"]) == len(data["layers"])
    assert "Connected to" in data["keras_summary"]
    assert html.count('class="layer"') == len(model.layers)
