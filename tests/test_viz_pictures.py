"""The standalone pictures (issue 16): colour scales chosen by the data, colour bars with values,
"n of m channels shown" and channel choice, filter banks in a wrapping grid, Korean labels,
and feature maps of graph models that use operators (`x * 0.5`, `x + y`).

Oracles: the report's own colour function (assets/report.js, its stops parsed from the file and
its arithmetic written out here), PyTorch for every activation, Pillow for decoding PNGs.
"""

import base64
import io
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import convscope.viz
from convscope.layers import Concatenate, Conv2D, Dense, Flatten, Input, MaxPooling2D
from convscope.models import Model, Sequential
from convscope.viz import plot_feature_maps, plot_filters, plot_model, report
from convscope.viz import colors
from convscope.viz.filters import run_layers
from seed_models import seed002_model

Image = pytest.importorskip("PIL.Image")
torch = pytest.importorskip("torch")

SVG = "{http://www.w3.org/2000/svg}"
REPORT_JS = Path(convscope.viz.__file__).parent / "assets" / "report.js"


# -- the report's colour function, as its JavaScript computes it ----------------------------------------

def js_constants():
    source = REPORT_JS.read_text(encoding="utf-8")
    seq = json.loads(re.search(r"var SEQ = (\[\[.*?\]\]);", source).group(1))
    div = re.search(r"var DIV_NEG = (\[[^\]]*\]), DIV_ZERO = (\[[^\]]*\]), DIV_POS = (\[[^\]]*\]);", source)
    return seq, [json.loads(g) for g in div.groups()]


def js_colour(value, kind, hi):
    """report.js `colour(value, scale)`, line for line (Math.round is floor(x + 0.5))."""
    seq, (neg, zero, pos) = js_constants()
    if not np.isfinite(value):
        return [255, 0, 255]
    if kind == "seq":
        f = max(0.0, min(1.0, value / hi)) * (len(seq) - 1)
        i = min(len(seq) - 2, int(np.floor(f)))
        g = f - i
        return [int(np.floor(v + (seq[i + 1][k] - v) * g + 0.5)) for k, v in enumerate(seq[i])]
    x = max(-1.0, min(1.0, value / hi))
    end, a = (pos if x >= 0 else neg), abs(x)
    return [int(np.floor(z + (end[k] - z) * a + 0.5)) for k, z in enumerate(zero)]


def js_colours(values, kind, hi):
    values = np.asarray(values, np.float64)
    return np.array([js_colour(v, kind, hi) for v in values.ravel()]).reshape(values.shape + (3,))


# -- helpers ------------------------------------------------------------------------------------------

def svg_root(text):
    return ET.fromstring(text.encode("utf-8") if isinstance(text, str) else text)


def texts(root):
    return [node.text for node in root.iter(f"{SVG}text")]


def images(root, css_class):
    return [node for node in root.iter(f"{SVG}image") if node.get("class") == css_class]


def title(node):
    return node.find(f"{SVG}title").text


def pixels(node):
    uri = node.get("href")
    assert uri.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB")).astype(int)


def number(text):
    """A value as the pictures print it ("0.123", "-9.48×10⁻⁴")."""
    return float(text.replace("×10", "e").translate(str.maketrans("⁻⁰¹²³⁴⁵⁶⁷⁸⁹", "-0123456789")))


def torch_conv(x, layer, relu=False):
    """PyTorch's conv2d (same padding, stride 1) of an NHWC array with the layer's weights, NHWC out."""
    out = torch.nn.functional.conv2d(torch.from_numpy(np.moveaxis(x, -1, 1)),
                                     torch.from_numpy(layer.kernel.numpy().transpose(3, 2, 0, 1)),
                                     torch.from_numpy(layer.bias.numpy()), padding="same")
    return np.moveaxis((torch.relu(out) if relu else out).numpy(), 1, -1)


def relu_then_signed_model():
    model = Sequential()
    model.add(Conv2D(6, 3, padding="same", activation="relu", input_shape=(8, 8, 1), name="relu_conv"))
    model.add(Conv2D(3, 3, padding="same", name="signed_conv"))
    model.add(MaxPooling2D(2, name="pool"))
    model.add(Flatten(name="flat"))
    model.add(Dense(3, activation="softmax", name="out"))
    return model


# -- scales -------------------------------------------------------------------------------------------

def test_the_pictures_scales_are_the_reports():
    seq, (neg, zero, pos) = js_constants()
    assert colors.SEQUENTIAL.tolist() == seq
    assert (colors.NEGATIVE.tolist(), colors.ZERO.tolist(), colors.POSITIVE.tolist()) == (neg, zero, pos)
    values = np.random.default_rng(0).normal(size=200)
    np.testing.assert_array_equal(colors.scale_rgb(np.abs(values), colors.Scale("seq", 0.0, 2.0)),
                                  js_colours(np.abs(values), "seq", 2.0))
    np.testing.assert_array_equal(colors.scale_rgb(values, colors.Scale("div", -2.0, 2.0)),
                                  js_colours(values, "div", 2.0))
    assert colors.scale_of(np.array([0.0, 3.0])) == colors.Scale("seq", 0.0, 3.0)
    assert colors.scale_of(np.array([-1.0, 3.0])) == colors.Scale("div", -3.0, 3.0)
    assert colors.scale_of(np.zeros(4)) == colors.Scale("seq", 0.0, 1.0)
    assert colors.scale_rgb(np.array([np.nan]), colors.Scale("seq", 0.0, 1.0)).tolist() == [[255, 0, 255]]
    assert [colors.tick(v, True) for v in (0.0, 0.1234, -2.5e-5, 3.0e6)] == ["0", "+0.123", "-2.50×10⁻⁵",
                                                                             "+3.00×10⁶"]


def test_feature_maps_colours_follow_the_data_against_pytorch(tmp_path):
    model = relu_then_signed_model()
    image = np.random.default_rng(1).random((8, 8, 1)).astype(np.float32)
    first = torch_conv(image[None], model.layers[0], relu=True)[0]
    second = torch_conv(first[None], model.layers[1])[0]
    figure = plot_feature_maps(model, image, layers=["relu_conv", "signed_conv"], to_file=tmp_path / "maps.png")
    root = svg_root(figure.to_svg())
    kinds = {name: scale.kind for name, scale in figure.info["scales"]}
    assert kinds == {"input": "seq", "relu_conv": "seq", "signed_conv": "div"}

    [tile] = images(root, "input-tile")
    np.testing.assert_array_equal(pixels(tile), js_colours(image[:, :, 0], "seq", image.max()))
    found = images(root, "tile")
    assert len(found) == 6 + 3
    hi = np.abs(first).max()
    for channel in range(6):           # >= 0: white at 0, the sequential scale up to the layer's largest value
        assert title(found[channel]) == f"relu_conv (Conv2D), channel {channel}"
        assert np.abs(pixels(found[channel]) - js_colours(first[:, :, channel], "seq", hi)).max() <= 1
    assert (first == 0).any() and (pixels(found[0])[first[:, :, 0] == 0] == 255).all()
    limit = np.abs(second).max()
    for channel in range(3):           # signed: diverging around 0, symmetric
        assert np.abs(pixels(found[6 + channel]) - js_colours(second[:, :, channel], "div", limit)).max() <= 1

    # The PNG shows the same colours: the middle of the input tile's cell (2, 5).
    png = np.asarray(Image.open(tmp_path / "maps.png").convert("RGB")).astype(int)
    x, y = float(tile.get("x")), float(tile.get("y"))
    cell = float(tile.get("width")) / 8
    assert png[int(y + 2.5 * cell), int(x + 5.5 * cell)].tolist() == js_colour(image[2, 5, 0], "seq", image.max())


def test_every_section_has_a_colour_bar_with_its_values():
    model = relu_then_signed_model()
    image = np.random.default_rng(2).random((8, 8, 1)).astype(np.float32)
    first = torch_conv(image[None], model.layers[0], relu=True)[0]
    second = torch_conv(first[None], model.layers[1])[0]
    root = svg_root(plot_feature_maps(model, image, layers=["relu_conv", "signed_conv"]).to_svg())
    bars = images(root, "colorbar")
    assert len(bars) == 3
    assert pixels(bars[0])[0, 0].tolist() == [255, 255, 255]            # seq starts at white (0) ...
    assert pixels(bars[0])[0, -1].tolist() == colors.SEQUENTIAL[-1].tolist()   # ... ends at the darkest
    assert pixels(bars[2])[0, 0].tolist() == colors.NEGATIVE.tolist()   # div: -limit blue ... +limit red
    assert pixels(bars[2])[0, -1].tolist() == colors.POSITIVE.tolist()
    ticks = [n.text for n in root.iter(f"{SVG}text") if n.get("class") == "colorbar-tick"]
    assert len(ticks) == 9
    ends = [(0.0, image.max()), (0.0, first.max()), (-np.abs(second).max(), np.abs(second).max())]
    for (low, middle, high), (lo, hi) in zip([ticks[0:3], ticks[3:6], ticks[6:9]], ends):
        assert float(low) == pytest.approx(lo, rel=6e-3, abs=1e-12)        # three significant digits
        assert float(middle) == pytest.approx((lo + hi) / 2, rel=6e-3, abs=1e-12)
        assert float(high) == pytest.approx(hi, rel=6e-3)
    assert ticks[0] == ticks[3] == ticks[7] == "0" and ticks[6].startswith("-") and ticks[8].startswith("+")
    words = [n.text for n in root.iter(f"{SVG}text") if n.get("class") == "colorbar-label"]
    assert words == ["pixel (scale from 0 (data ≥ 0))", "activation (scale from 0 (data ≥ 0))",
                     "activation (scale around 0)"]


# -- channels -----------------------------------------------------------------------------------------

def test_feature_maps_say_how_many_channels_are_shown_and_take_a_choice():
    model = relu_then_signed_model()
    image = np.random.default_rng(3).random((8, 8, 1)).astype(np.float32)
    first = torch_conv(image[None], model.layers[0], relu=True)[0]
    cut = plot_feature_maps(model, image, layers="relu_conv", max_channels=4)
    root = svg_root(cut.to_svg())
    assert "relu_conv (Conv2D): 8×8×6 (4 of 6 channels shown)" in texts(root)
    assert cut.info["tiles"] == [("relu_conv", 4)]
    whole = svg_root(plot_feature_maps(model, image, layers="relu_conv").to_svg())
    assert "relu_conv (Conv2D): 8×8×6" in texts(whole) and not any("shown" in t for t in texts(whole))

    chosen = plot_feature_maps(model, image, layers="relu_conv", channels=[5, 1])
    root = svg_root(chosen.to_svg())
    assert "relu_conv (Conv2D): 8×8×6 (2 of 6 channels shown)" in texts(root)
    found = images(root, "tile")
    assert [title(t) for t in found] == ["relu_conv (Conv2D), channel 5", "relu_conv (Conv2D), channel 1"]
    labels = [n.text for n in root.iter(f"{SVG}text") if n.get("class") == "channel-label"]
    assert labels == ["0", "5", "1"]                                   # the input's channel, then the chosen
    for tile, channel in zip(found, (5, 1)):                           # the scale is still the whole layer's
        assert np.abs(pixels(tile) - js_colours(first[:, :, channel], "seq", first.max())).max() <= 1
    assert plot_feature_maps(model, image, layers="relu_conv", channels=range(2, 4)).info["tiles"] == \
        [("relu_conv", 2)]

    with pytest.raises(ValueError, match=r"plot_feature_maps: argument `channels` must be distinct channel "
                                         r"indices in 0\.\.5 \(a list or range\); 'relu_conv' has 6 channels, "
                                         r"got \[6\]"):
        plot_feature_maps(model, image, layers="relu_conv", channels=[6])
    with pytest.raises(ValueError, match=r"plot_feature_maps: argument `channels` must be distinct"):
        plot_feature_maps(model, image, layers="relu_conv", channels=[1, 1])
    with pytest.raises(TypeError, match=r"plot_feature_maps: argument `channels` must be a list or range of "
                                        r"channel indices, got str"):
        plot_feature_maps(model, image, channels="0")


# -- filters ------------------------------------------------------------------------------------------

def small_kernels_layer(filters=20, inputs=3, positive=False):
    model = Sequential()
    model.add(Conv2D(filters, 2, input_shape=(6, 6, inputs), name="small"))
    if positive:
        model.layers[0].kernel.assign(np.abs(model.layers[0].kernel.numpy()))
    return model.layers[0]


def test_filter_bank_wraps_into_bands_of_readable_2x2_kernels(tmp_path):
    layer = small_kernels_layer()
    kernel = layer.kernel.numpy()
    figure = plot_filters(layer, columns=8, to_file=tmp_path / "filters.png")
    root = svg_root(figure.to_svg())
    found = images(root, "tile")
    assert figure.info["bands"] == 3 and len(found) == 60
    assert len({t.get("x") for t in found}) == 8 and len({t.get("y") for t in found}) == 3 * 3
    first_band = [t for t in found if float(t.get("y")) < min(float(u.get("y")) for u in found) + 3 * 30]
    assert sorted({int(re.match(r"input channel \d+, filter (\d+)", title(t)).group(1)) for t in first_band}) \
        == list(range(8))
    limit = np.abs(kernel).max()
    for tile in found:
        match = re.fullmatch(r"input channel (\d+), filter (\d+): \[(\S+), (\S+); (\S+), (\S+)\]", title(tile))
        row, col = int(match.group(1)), int(match.group(2))
        np.testing.assert_allclose([number(v) for v in match.groups()[2:]], kernel[:, :, row, col].ravel(),
                                   rtol=5e-3, atol=1e-3)       # the weights on hover, three digits
        assert np.abs(pixels(tile) - js_colours(kernel[:, :, row, col], "div", limit)).max() <= 1
        assert float(tile.get("width")) >= 24 and float(tile.get("height")) >= 24   # 2×2 cells of >= 12 px
    grid = [n for n in root.iter(f"{SVG}line") if n.get("class") == "gridline"]
    assert len(grid) == 60 * 2                                          # one vertical, one horizontal each

    # In the PNG a grey line separates the cells, each cell keeps its weight's colour.
    png = np.asarray(Image.open(tmp_path / "filters.png").convert("RGB")).astype(int)
    tile = found[0]
    x, y, w = float(tile.get("x")), float(tile.get("y")), float(tile.get("width"))
    row, col = map(int, re.match(r"input channel (\d+), filter (\d+)", title(tile)).groups())
    assert png[int(y + w / 4), int(x + w / 2)].tolist() == [187, 187, 187]
    assert png[int(y + w / 4), int(x + w / 4)].tolist() == js_colour(kernel[0, 0, row, col], "div", limit)
    assert png[int(y + 3 * w / 4), int(x + 3 * w / 4)].tolist() == js_colour(kernel[1, 1, row, col], "div", limit)

    auto = plot_filters(small_kernels_layer(filters=64, inputs=2))
    assert auto.info["bands"] > 1 and auto.drawing.width <= 1000       # never one row of 64 columns


def test_filters_chosen_by_index_and_the_scale_by_the_weights():
    layer = small_kernels_layer()
    figure = plot_filters(layer, inputs=[2], filters=range(5, 8))
    root = svg_root(figure.to_svg())
    assert [title(t).split(":")[0] for t in images(root, "tile")] == [f"input channel 2, filter {f}" for f in (5, 6, 7)]
    assert ("rows: input channels per group (1 of 3 shown), columns: filters (3 of 20 shown)" in texts(root))
    assert {"in 2", "f5", "f6", "f7"} <= set(texts(root))
    assert figure.info["scale"].kind == "div"

    positive = plot_filters(small_kernels_layer(positive=True))
    assert positive.info["scale"].kind == "seq"
    root = svg_root(positive.to_svg())
    ticks = [n.text for n in root.iter(f"{SVG}text") if n.get("class") == "colorbar-tick"]
    assert ticks[0] == "0" and not ticks[2].startswith("+")
    assert [n.text for n in root.iter(f"{SVG}text") if n.get("class") == "colorbar-label"] == \
        ["weight (scale from 0 (data ≥ 0))"]

    with pytest.raises(ValueError, match=r"plot_filters: argument `filters` must be distinct filter indices in "
                                         r"0\.\.19 \(a list or range\), got \[20\]"):
        plot_filters(layer, filters=[20])
    with pytest.raises(ValueError, match=r"plot_filters: argument `inputs` must be distinct input channel "
                                         r"indices in 0\.\.2"):
        plot_filters(layer, inputs=[])
    with pytest.raises(ValueError, match=r"plot_filters: argument `columns` must be a positive int, got 0"):
        plot_filters(layer, columns=0)


# -- Korean -------------------------------------------------------------------------------------------

def english_words(svg, allowed):
    words = re.findall(r"<(?:text|title)[^>]*>([^<]*)</", svg)
    assert words
    return [w for text in words for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text) if w not in allowed]


def shared_model():
    a, b = Input((8, 8, 2), name="a"), Input((8, 8, 2), name="b")
    shared = Conv2D(3, 3, padding="same", activation="relu", name="shared")
    joined = shared(a) + shared(b)
    return Model([a, b], Conv2D(2, 3, name="after")(joined), name="siamese")


def test_filters_and_feature_maps_of_a_graph_model_in_korean(tmp_path):
    model = shared_model()
    rng = np.random.default_rng(4)
    sample = [rng.random((8, 8, 2), np.float32), rng.random((8, 8, 2), np.float32)]
    maps = plot_feature_maps(model, sample, layers=["shared", "after"], max_channels=2, lang="ko",
                             to_file=tmp_path / "maps.png").to_svg()
    names = {"shared", "after", "Conv2D"}
    assert english_words(maps, names) == []
    assert "shared (Conv2D, 호출 2/2): 8×8×3 (채널 3개 중 2개 표시)" in texts(svg_root(maps))
    assert "활성값 (0부터의 척도 (값 ≥ 0))" in texts(svg_root(maps))
    filters = plot_filters(model.get_layer("after"), lang="ko").to_svg()
    assert english_words(filters, names) == [] and "가중치 (0 중심 척도)" in texts(svg_root(filters))
    english = plot_feature_maps(model, sample, layers=["shared"]).to_svg()
    assert any(t.startswith("shared (Conv2D, call 2 of 2)") for t in texts(svg_root(english)))

    from convscope.viz import raster
    font = raster._font(12, False, raster.has_cjk("입력"))
    if not Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc").exists():
        pytest.skip("no Noto CJK font installed: the PNG's Hangul cannot be checked")
    assert "CJK" in font.getname()[0]                                   # Hangul glyphs, not DejaVu's boxes


def test_plot_model_in_korean_leaves_only_names_in_english(tmp_path):
    model = seed002_model()
    options = dict(show_shapes=True, show_dtype=True, show_layer_activations=True, show_trainable=True)
    korean = plot_model(model, to_file=tmp_path / "model.svg", lang="ko", **options)
    svg = (tmp_path / "model.svg").read_text(encoding="utf-8")
    identifiers = ({l.name for l in model.layers} | {type(l).__name__ for l in model.layers}
                   | {"conv2d_input", "InputLayer", "relu", "softmax", "float32", "None"})
    assert english_words(svg, identifiers) == []
    lines = texts(svg_root(svg))
    assert lines.count("활성화 함수: relu") == 3 and lines.count("학습 가능: 예") == 8
    assert "입력 형태: (None, 8, 8, 1)" in lines and "자료형: float32" in lines
    english = texts(svg_root(plot_model(model, to_file=None, **options).to_svg()))
    assert len(english) == len(lines) and "Input shape: (None, 8, 8, 1)" in english
    assert korean.drawing.width >= plot_model(model, to_file=None, **options).drawing.width * 0.8

    graph = plot_model(shared_model(), to_file=None, lang="ko", **options).to_svg()
    assert english_words(graph, {"a", "b", "shared", "after", "add", "InputLayer", "Conv2D", "Add", "relu", "linear",
                                 "float32", "None"}) == []
    assert texts(svg_root(graph)).count("학습 가능: 예") == 5
    plot_model(model, to_file=tmp_path / "model.png", lang="ko", **options)
    assert Image.open(tmp_path / "model.png").width > 100
    with pytest.raises(ValueError, match=r"plot_model: argument `lang` must be one of \('en', 'ko'\), got 'fr'"):
        plot_model(model, to_file=None, lang="fr")


# -- graph models with operators ----------------------------------------------------------------------

def operator_model():
    image = Input((8, 8, 1), name="image")
    a = Conv2D(2, 3, padding="same", name="c1")(image)
    b = Conv2D(2, 3, padding="same", name="c2")(a * 0.5)
    doubled = 2.0 * (a + b)
    out = Dense(3, activation="softmax", name="head")(Flatten(name="flat")(doubled))
    return Model(image, out, name="operators")


def test_feature_maps_and_report_of_a_graph_model_with_operators(tmp_path):
    """`x * 0.5` records an operation whose arguments are [x, 0.5]: it used to reach the layer as one
    array (ValueError: inhomogeneous shape)."""
    model = operator_model()
    image = np.random.default_rng(5).random((8, 8, 1)).astype(np.float32)
    c1 = torch_conv(image[None], model.get_layer("c1"))
    c2 = torch_conv(0.5 * c1, model.get_layer("c2"))
    rows = [layer.name for layer in model.operations]      # a row per layer or operation
    _, outputs = run_layers(model, image, "test")
    by_name = dict(zip(rows, outputs))
    np.testing.assert_allclose(by_name["multiply"], 0.5 * c1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(by_name["add"], c1 + c2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(by_name["multiply_1"], 2.0 * (c1 + c2), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(outputs[-1], model.predict(image[None], verbose=0), rtol=1e-5, atol=1e-7)

    figure = plot_feature_maps(model, image, layers=["multiply", "add"])
    assert figure.info["tiles"] == [("multiply", 2), ("add", 2)]
    assert plot_feature_maps(model, image).info["tiles"] == [("c1", 2), ("c2", 2)]
    html = report(model, sample=image, to_file=tmp_path / "r.html").read_text(encoding="utf-8")
    data = json.loads(re.search(r'id="report-data">(.*?)</script>', html, re.DOTALL).group(1))
    index = [row["name"] for row in data["layers"]].index("add")
    stored = data["sample"]["outputs"][index]
    values = np.frombuffer(base64.b64decode(stored["data"]), "<f4").reshape(stored["shape"])
    np.testing.assert_allclose(values, (c1 + c2)[0], rtol=1e-5, atol=1e-6)


def test_cli_plot_draws_the_diagram_in_korean(capsys, tmp_path):
    from convscope.cli import main
    model_py = tmp_path / "model.py"
    model_py.write_text("from convscope.models import Sequential\n"
                        "from convscope.layers import Conv2D, Flatten, Dense, Input\n"
                        "model = Sequential([Input(shape=(8, 8, 1)), Conv2D(4, 3, activation='relu'), Flatten(),"
                        " Dense(2)])\n")
    svg = tmp_path / "model.svg"
    assert main(["plot", str(model_py), "-o", str(svg), "--show-shapes", "--lang", "ko"]) == 0
    lines = texts(svg_root(svg.read_bytes()))
    assert "출력 형태: (None, 6, 6, 4)" in lines and not any(t.startswith(("Input", "Output")) for t in lines)
    assert main(["plot", str(model_py), "-o", str(svg), "--show-shapes"]) == 0
    assert "Output shape: (None, 6, 6, 4)" in texts(svg_root(svg.read_bytes()))
    capsys.readouterr()
