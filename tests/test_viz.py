"""Pictures: plot_model / model_to_dot (seed 002), plot_filters, plot_feature_maps, plot_history, report.

Oracles: the seed's printed shapes, the real layers' weights and outputs,
PyTorch for the feature-map values, Pillow for decoding every PNG.
"""

import base64
import io
import json
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from convscope.callbacks import History
from convscope.layers import (Activation, BatchNormalization, Conv2D, Dense, Dropout, Flatten, MaxPooling2D,
                              ZeroPadding2D)
from convscope.models import Sequential
from convscope.utils.vis_utils import model_to_dot
from convscope.viz import plot_feature_maps, plot_filters, plot_history, plot_model, report
from convscope.viz.svg import Drawing, encode_png
from seed_models import seed002_model

Image = pytest.importorskip("PIL.Image")

SVG = "{http://www.w3.org/2000/svg}"
# Seed 002's printed output shapes, layer by layer (its model_to_dot picture).
SEED_002_SHAPES = ["(None, 8, 8, 2)", "(None, 4, 4, 2)", "(None, 4, 4, 3)", "(None, 2, 2, 3)",
                   "(None, 12)", "(None, 8)", "(None, 3)"]


def svg_root(text):
    return ET.fromstring(text.encode("utf-8") if isinstance(text, str) else text)


def texts(root):
    return [node.text for node in root.iter(f"{SVG}text")]


def open_png(data):
    image = Image.open(io.BytesIO(data))
    image.load()
    return image.convert("RGB")


def decode_data_uri(uri):
    assert uri.startswith("data:image/png;base64,")
    return np.asarray(open_png(base64.b64decode(uri.split(",", 1)[1])))


def tiles(root, css_class="tile"):
    return [node for node in root.iter(f"{SVG}image") if node.get("class") == css_class]


# -- model_to_dot / plot_model --------------------------------------------------------------------

def test_seed_002_model_to_dot_call_works_as_written():
    model = seed002_model()
    svg = model_to_dot(model, show_shapes=True).create(prog="dot", format="svg")
    assert isinstance(svg, bytes)
    root = svg_root(svg)
    assert root.tag == f"{SVG}svg"
    boxes = [r for r in root.iter(f"{SVG}rect") if r.get("class") == "layer"]
    assert len(boxes) == len(model.layers) + 1  # the InputLayer box, as Keras draws it
    lines = texts(root)
    titles = [t for t in lines if t.endswith(")") and " (" in t and not t.startswith(("Input", "Output"))]
    assert titles == ["conv2d_input (InputLayer)"] + [f"{l.name} ({type(l).__name__})" for l in model.layers]
    outputs = [t.split(": ", 1)[1] for t in lines if t.startswith("Output shape:")]
    assert outputs == ["(None, 8, 8, 1)"] + SEED_002_SHAPES
    assert outputs[1:] == [str(tuple(l.output_shape)) for l in model.layers]
    edges = [n for n in root.iter(f"{SVG}line") if n.get("class") == "edge"]
    assert len(edges) == len(model.layers)


def test_model_dot_other_formats_and_write(tmp_path):
    dot = model_to_dot(seed002_model(), show_shapes=True, rankdir="LR")
    source = dot.to_string()
    assert source.startswith('digraph "sequential"') and "rankdir=LR" in source
    assert source.count("->") == 7 and "(None, 4, 4, 3)" in source
    assert dot.create(format="dot").decode() == source
    assert model_to_dot(seed002_model(), subgraph=True).to_string().startswith('subgraph "cluster_')
    png = open_png(dot.create(prog="dot", format="png"))
    assert png.width > png.height  # left to right
    assert svg_root(dot.create_svg()).tag == f"{SVG}svg"
    written = dot.write(tmp_path / "model.dot")
    assert written.read_text() == source
    dot.write_svg(tmp_path / "model.svg")
    svg_root((tmp_path / "model.svg").read_bytes())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.dot", "model.svg"]  # no temporary files left
    with pytest.raises(ValueError, match=r"create: argument `format` must be .*got 'pdf'"):
        dot.create(format="pdf")
    with pytest.raises(ValueError, match=r"create: argument `prog` must be one of .*got 'gcc'"):
        dot.create(prog="gcc")


def test_plot_model_writes_valid_svg_and_png(tmp_path):
    model = seed002_model()
    figure = plot_model(model, to_file=tmp_path / "model.svg", show_shapes=True, show_dtype=True,
                        show_layer_activations=True, show_trainable=True)
    assert figure.path == tmp_path / "model.svg"
    root = svg_root((tmp_path / "model.svg").read_bytes())
    lines = texts(root)
    assert lines.count("Activation: relu") == 3 and lines.count("Activation: softmax") == 1
    assert lines.count("dtype: float32") == 8 and lines.count("Trainable: Y") == 8
    assert figure._repr_svg_().startswith("<svg")

    plot_model(model, to_file=str(tmp_path / "model.png"), show_shapes=True)
    image = open_png((tmp_path / "model.png").read_bytes())
    pixels = np.asarray(image)
    assert image.height > image.width  # top to bottom, one box per layer
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 10  # boxes, text and arrows, not blank
    assert (pixels < 100).all(axis=2).sum() > 500  # dark text pixels were painted

    plot_model(model, to_file=tmp_path / "model2x.png", dpi=192)
    plot_model(model, to_file=tmp_path / "model1x.png", dpi=96)
    big, small = (Image.open(tmp_path / f"model{s}.png") for s in ("2x", "1x"))
    assert abs(big.width - 2 * small.width) <= 1 and abs(big.height - 2 * small.height) <= 1


def test_plot_model_names_and_directions():
    model = seed002_model()
    root = svg_root(plot_model(model, to_file=None, show_layer_names=False).to_svg())
    assert "Conv2D" in texts(root) and "conv2d (Conv2D)" not in texts(root)
    tall = plot_model(model, to_file=None, rankdir="BT").drawing
    wide = plot_model(model, to_file=None, rankdir="RL").drawing
    assert tall.height > tall.width and wide.width > wide.height
    boxes = [(float(r.get("x")), float(r.get("y"))) for r in svg_root(tall.to_svg()).iter(f"{SVG}rect")
             if r.get("class") == "layer"]
    assert boxes[0][1] > boxes[-1][1]  # bottom to top: the input box is lowest


class Block:
    """A nested model as plot_model sees one: a named object with its own `.layers`."""

    def __init__(self, name, layers):
        self.name, self.layers = name, layers


class Outer:
    def __init__(self, layers):
        self.name, self.layers = "outer", layers


def test_plot_model_expand_nested_draws_a_cluster():
    model = seed002_model()
    conv, pool, conv_1, pool_1, flatten, dense, dense_1 = model.layers
    outer = Outer([conv, Block("block", [pool, conv_1, pool_1]), flatten, dense, dense_1])
    folded = svg_root(plot_model(outer, to_file=None, show_shapes=True).to_svg())
    assert len([r for r in folded.iter(f"{SVG}rect") if r.get("class") == "layer"]) == 6
    assert "block (Block)" in texts(folded) and "Output shape: (None, 2, 2, 3)" in texts(folded)
    expanded = svg_root(plot_model(outer, to_file=None, expand_nested=True).to_svg())
    clusters = [r for r in expanded.iter(f"{SVG}rect") if r.get("class") == "cluster"]
    boxes = [r for r in expanded.iter(f"{SVG}rect") if r.get("class") == "layer"]
    assert len(clusters) == 1 and len(boxes) == 8 and "block (Block)" in texts(expanded)
    top, bottom = float(clusters[0].get("y")), float(clusters[0].get("y")) + float(clusters[0].get("height"))
    inside = [float(b.get("y")) for b in boxes if top < float(b.get("y")) < bottom]
    assert len(inside) == 3  # the block's three layers sit inside its cluster


def test_a_nested_graph_model_ending_in_an_operation_is_drawn_with_its_shape_and_the_operation():
    import convscope as cs
    inputs = cs.Input((6, 4))
    inner = cs.Model(inputs, cs.ops.mean(Dense(5, name="dd")(inputs), axis=1), name="inner")   # (None, 5)
    outer = Sequential([cs.Input((6, 4)), inner, Dense(2)])
    folded = texts(svg_root(plot_model(outer, to_file=None, show_shapes=True).to_svg()))
    assert "inner (Functional)" in folded and "Output shape: (None, 5)" in folded
    expanded = texts(svg_root(plot_model(outer, to_file=None, expand_nested=True).to_svg()))
    assert "mean (Mean)" in expanded and "dd (Dense)" in expanded


def test_plot_model_argument_errors(tmp_path):
    model = seed002_model()
    with pytest.raises(ValueError, match=r"plot_model: argument `rankdir` must be one of .*got 'XY'"):
        plot_model(model, to_file=None, rankdir="XY")
    with pytest.raises(ValueError, match=r"plot_model: argument `to_file` must end in \.svg or \.png"):
        plot_model(model, to_file=tmp_path / "model.pdf")
    with pytest.raises(TypeError, match=r"plot_model: argument `show_shapes` must be True or False, got 'yes'"):
        plot_model(model, to_file=None, show_shapes="yes")
    with pytest.raises(ValueError, match=r"plot_model: argument `dpi` must be a positive number, got 0"):
        plot_model(model, to_file=None, dpi=0)
    with pytest.raises(TypeError, match=r"plot_model: argument `model` must be a Sequential model .*got int"):
        plot_model(42, to_file=None)
    unbuilt = Sequential()
    unbuilt.add(Dense(3))
    with pytest.raises(ValueError, match=r"plot_model: the model is not built"):
        plot_model(unbuilt, to_file=None)
    with pytest.raises(ValueError, match=r"model_to_dot: argument `rankdir`"):
        model_to_dot(model, rankdir="diagonal")
    assert not list(tmp_path.iterdir())


def test_png_needs_pillow_with_a_clear_message(monkeypatch):
    import sys
    drawing = Drawing(10, 10)
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r"pip install convscope\[viz\]"):
        drawing.to_png()
    assert drawing.to_svg().startswith("<svg")  # SVG needs nothing


def test_encode_png_round_trips_through_pillow():
    rgb = np.random.default_rng(1).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    assert np.array_equal(np.asarray(open_png(encode_png(rgb))), rgb)
    with pytest.raises(ValueError, match=r"encode_png: argument `rgb` must have shape"):
        encode_png(np.zeros((4, 4)))


# -- filters --------------------------------------------------------------------------------------

def test_plot_filters_one_tile_per_kernel_with_the_weights_colours(tmp_path):
    model = seed002_model()
    layer = model.layers[2]  # Conv2D(3, (2, 2)) on 2 channels: 2 x 3 = 6 kernels (seed 002: 24 weights)
    kernel = layer.kernel.numpy()
    kernel[0, 0, 0, 0] = -2 * np.abs(kernel).max()  # the most negative weight of the layer
    layer.kernel.assign(kernel)
    figure = plot_filters(layer, to_file=tmp_path / "filters.svg")
    root = svg_root((tmp_path / "filters.svg").read_bytes())
    found = tiles(root)
    assert len(found) == 2 * 3 == figure.info["kernels"]
    xs = sorted({float(t.get("x")) for t in found})
    ys = sorted({float(t.get("y")) for t in found})
    assert (len(ys), len(xs)) == (2, 3)  # rows = input channels, columns = filters
    assert any("2 × 3 = 6 kernels of 2×2" in t for t in texts(root))
    limit = np.abs(kernel).max()
    for tile in found:
        row, col = ys.index(float(tile.get("y"))), xs.index(float(tile.get("x")))
        pixels = decode_data_uri(tile.get("href")).astype(int)
        weights = kernel[:, :, row, col]
        assert pixels.shape[:2] == weights.shape
        red_minus_blue = pixels[..., 0] - pixels[..., 2]
        assert np.all(np.sign(red_minus_blue[np.abs(weights) > 0.05 * limit]) ==
                      np.sign(weights[np.abs(weights) > 0.05 * limit]))
    corner = decode_data_uri(found[0].get("href"))[0, 0]
    assert tuple(corner) == (33, 102, 172)  # the largest magnitude takes the full blue of the scale
    assert any(n.get("class") == "colorbar" for n in root.iter(f"{SVG}image"))

    plot_filters(layer, to_file=tmp_path / "filters.png")
    png = np.asarray(open_png((tmp_path / "filters.png").read_bytes())).astype(int)
    # Scan through the middle of the first tile row: three coloured runs of one tile width each.
    tile_w, tile_h, y0 = float(found[0].get("width")), float(found[0].get("height")), ys[0]
    line = png[int(y0 + tile_h / 2)]
    coloured = np.abs(line - 255).sum(axis=1) > 0
    x_start = int(xs[0])
    runs = np.flatnonzero(np.diff(coloured[x_start - 2:].astype(int)) == 1)
    assert len(runs) == 3 and coloured[x_start:x_start + int(tile_w)].all()


def test_seed_000_second_conv_shows_its_2048_kernels():
    """Seed 000: weights[2].T.shape is 64 x 32 x 2 x 2, so the layer holds 64 x 32 kernels, not 64."""
    model = Sequential()
    model.add(Conv2D(32, kernel_size=(5, 5), strides=(1, 1), padding='same', activation='relu',
                     input_shape=(28, 28, 1)))
    model.add(MaxPooling2D(pool_size=(2, 2), strides=(2, 2)))
    model.add(Conv2D(64, (2, 2), activation='relu', padding='same'))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Dropout(0.25))
    model.add(Flatten())
    model.add(Dense(10, activation='softmax'))
    assert model.get_weights()[2].T.shape == (64, 32, 2, 2)
    figure = plot_filters(model.layers[2], max_inputs=32, max_filters=64)
    root = svg_root(figure.to_svg())
    assert len(tiles(root)) == 64 * 32 == 2048
    assert "conv2d_1 (Conv2D): 32 × 64 = 2,048 kernels of 2×2" in texts(root)
    # The 64 columns wrap into bands of at most 24 filters, each band with all 32 input-channel rows,
    # so the figure stays under 1,000 px wide instead of one row of 64 tiles.
    assert figure.info["bands"] == 3 and figure.drawing.width <= 1000
    assert len({t.get("x") for t in tiles(root)}) == 24 and len({t.get("y") for t in tiles(root)}) == 3 * 32
    pairs = {tuple(map(int, re.match(r"input channel (\d+), filter (\d+)", t.find(f"{SVG}title").text).groups()))
             for t in tiles(root)}
    assert pairs == {(i, f) for i in range(32) for f in range(64)}
    assert len(tiles(svg_root(plot_filters(model.layers[0]).to_svg()))) == 32  # 1 x 32 kernels of 5x5


def test_plot_filters_caps_and_errors():
    model = Sequential()
    model.add(Conv2D(10, (3, 3), input_shape=(6, 6, 4)))
    model.add(Flatten())
    model.add(Dense(2))
    figure = plot_filters(model.layers[0], max_inputs=3, max_filters=4)
    assert (figure.info["rows"], figure.info["cols"], figure.info["kernels"]) == (3, 4, 40)
    assert len(tiles(svg_root(figure.to_svg()))) == 12
    with pytest.raises(ValueError, match=r"plot_filters: Dense 'dense' has no 4-D convolution kernel"):
        plot_filters(model.layers[2])
    with pytest.raises(ValueError, match=r"plot_filters: Conv2D 'conv2d_1' is not built yet"):
        plot_filters(Conv2D(2, 3))
    with pytest.raises(ValueError, match=r"plot_filters: argument `max_filters` must be a positive int, got 0"):
        plot_filters(model.layers[0], max_filters=0)


# -- feature maps ---------------------------------------------------------------------------------

def test_plot_feature_maps_tiles_every_channel_with_the_real_activations(tmp_path):
    torch = pytest.importorskip("torch")
    model = seed002_model()
    image = np.random.default_rng(3).normal(size=(8, 8, 1)).astype(np.float32)
    figure = plot_feature_maps(model, image, to_file=tmp_path / "maps.svg")
    assert figure.info["tiles"] == [("conv2d", 2), ("max_pooling2d", 2), ("conv2d_1", 3), ("max_pooling2d_1", 3)]
    root = svg_root((tmp_path / "maps.svg").read_bytes())
    found = tiles(root)
    assert len(found) == 10 and len(tiles(root, "input-tile")) == 1

    # PyTorch's conv + relu as the oracle: a map >= 0 is on the sequential scale, white where it is 0,
    # blue (blue channel above red) where it is > 0.
    conv = model.layers[0]
    x = torch.from_numpy(image[None].transpose(0, 3, 1, 2))
    weight = torch.from_numpy(conv.kernel.numpy().transpose(3, 2, 0, 1))
    expected = torch.relu(torch.nn.functional.conv2d(x, weight, torch.from_numpy(conv.bias.numpy()),
                                                     padding="same")).numpy()[0]
    for channel in range(2):
        pixels = decode_data_uri(found[channel].get("href")).astype(int)
        assert pixels.shape[:2] == (8, 8)
        bluish = pixels[..., 2] - pixels[..., 0]
        clearly_positive = expected[channel] > 0.02 * np.abs(expected[:2]).max()
        assert (bluish[clearly_positive] > 0).all() and (pixels[expected[channel] == 0] == 255).all()
        assert clearly_positive.any() and (expected[channel] == 0).any()

    plot_feature_maps(model, image, to_file=tmp_path / "maps.png")
    png = np.asarray(open_png((tmp_path / "maps.png").read_bytes()))
    assert len(np.unique(png.reshape(-1, 3), axis=0)) > 20


def test_plot_feature_maps_layer_choice_and_errors():
    model = seed002_model()
    image = np.ones((1, 8, 8, 1), np.float32)
    figure = plot_feature_maps(model, image[0, :, :, 0], layers=["conv2d_1", 0])
    assert figure.info["tiles"] == [("conv2d_1", 3), ("conv2d", 2)]
    assert len(tiles(svg_root(figure.to_svg()))) == 5
    assert plot_feature_maps(model, image, layers=model.layers[1], max_channels=1).info["tiles"] == \
        [("max_pooling2d", 1)]
    with pytest.raises(ValueError, match=r"plot_feature_maps: argument `layers`: no layer named 'conv9'"):
        plot_feature_maps(model, image, layers=["conv9"])
    with pytest.raises(ValueError, match=r"plot_feature_maps: layer 'dense' outputs shape \(8,\), not feature maps"):
        plot_feature_maps(model, image, layers="dense")
    with pytest.raises(ValueError, match=r"plot_feature_maps: argument `image` must be one sample of shape "
                                         r"\(8, 8, 1\).*got \(2, 8, 8, 1\)"):
        plot_feature_maps(model, np.ones((2, 8, 8, 1)))


# -- history --------------------------------------------------------------------------------------

def test_plot_history_panels_and_curves(tmp_path):
    history = History()
    for epoch, (loss, acc) in enumerate([(1.0, 0.3), (0.6, 0.6), (0.4, 0.8)]):
        history.on_epoch_end(epoch, {"loss": loss, "accuracy": acc, "val_loss": loss + 0.1,
                                     "val_accuracy": acc - 0.1})
    figure = plot_history(history, to_file=tmp_path / "history.svg")
    assert figure.info["panels"] == ["loss", "accuracy"]
    root = svg_root((tmp_path / "history.svg").read_bytes())
    curves = [n for n in root.iter(f"{SVG}polyline") if n.get("class") == "curve"]
    assert len(curves) == 4 and all(len(c.get("points").split()) == 3 for c in curves)
    loss_points = [tuple(map(float, p.split(","))) for p in curves[0].get("points").split()]
    assert loss_points[0][1] < loss_points[1][1] < loss_points[2][1]  # falling loss goes down the page
    plot_history(history.history, to_file=tmp_path / "history.png")
    assert open_png((tmp_path / "history.png").read_bytes()).width == int(figure.drawing.width)
    with pytest.raises(ValueError, match=r"plot_history: argument `history` holds no values"):
        plot_history({})
    with pytest.raises(TypeError, match=r"plot_history: argument `history` must be a History"):
        plot_history([1, 2])


# -- the report, without a browser ----------------------------------------------------------------

def test_report_is_one_self_contained_file_with_the_model_data(tmp_path):
    model = seed002_model()
    sample = np.random.default_rng(0).random((8, 8, 1)).astype(np.float32)
    path = report(model, sample=sample, history={"loss": [1.0, 0.5]}, to_file=tmp_path / "report.html", lang="ko")
    html = path.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<link rel=\"stylesheet\"" not in html and "<script src" not in html
    blob = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S).group(1)
    data = json.loads(blob)
    assert data["lang"] == "ko" and [l["name"] for l in data["layers"]] == [l.name for l in model.layers]
    assert set(data["explain"]) == {"en", "ko"}
    outputs = data["sample"]["outputs"]
    stored = np.frombuffer(base64.b64decode(outputs[2]["data"]), "<f4").reshape(outputs[2]["shape"])
    x = sample[None]
    for layer in model.layers[:3]:
        x = layer(x)
    np.testing.assert_allclose(stored, x[0], rtol=1e-6)
    assert data["layers"][2]["field"] == [{"size": 6, "jump": 2, "start": -1}] * 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_report_and_feature_maps_read_channels_first_models(tmp_path):
    model = Sequential()
    model.add(ZeroPadding2D(((1, 2), (0, 1)), input_shape=(3, 9, 8), data_format="channels_first"))
    model.add(Conv2D(4, 3, strides=2, data_format="channels_first"))
    model.add(BatchNormalization(axis=1))
    model.add(Activation("relu"))  # knows no data_format: its maps are read in the conv's layout
    model.add(MaxPooling2D(2, padding="same", data_format="channels_first"))
    model.add(Flatten())
    model.add(Dense(3))
    sample = np.random.default_rng(5).random((3, 9, 8)).astype(np.float32)
    figure = plot_feature_maps(model, sample, layers=["conv2d", "activation", "max_pooling2d"])
    assert figure.info["tiles"] == [("conv2d", 4), ("activation", 4), ("max_pooling2d", 4)]
    assert len(tiles(svg_root(figure.to_svg()), "input-tile")) == 3
    html = report(model, sample=sample, to_file=tmp_path / "report.html").read_text(encoding="utf-8")
    data = json.loads(re.search(r'id="report-data">(.*?)</script>', html, re.DOTALL).group(1))
    x = sample[None]
    for layer in model.layers[:4]:
        x = layer(x)
    stored = data["sample"]["outputs"][3]
    assert stored["shape"] == [5, 4, 4]  # rows, cols, channels
    values = np.frombuffer(base64.b64decode(stored["data"]), "<f4").reshape(stored["shape"])
    np.testing.assert_allclose(values, np.moveaxis(x[0], 0, -1), rtol=1e-6)
    assert data["sample"]["input"]["shape"] == [9, 8, 3]


def test_report_argument_errors(tmp_path):
    model = seed002_model()
    with pytest.raises(ValueError, match=r"report: argument `lang` must be one of \('en', 'ko'\), got 'fr'"):
        report(model, to_file=tmp_path / "r.html", lang="fr")
    with pytest.raises(ValueError, match=r"report: argument `to_file` must end in \.html or \.htm"):
        report(model, to_file=tmp_path / "r.txt")
    with pytest.raises(ValueError, match=r"report: argument `sample` must be one sample of shape"):
        report(model, sample=np.ones((3, 3)), to_file=tmp_path / "r.html")
    assert not list(tmp_path.iterdir())
