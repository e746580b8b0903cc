"""The HTML report in a real browser: Debian's chromium, headless, driven by Playwright.

Checks: it loads offline with no console errors and no requests but the file
itself; every layer is shown; clicking (or hovering over) an output unit
highlights the window and the receptive field that the layer configs give,
computed here from the configs alone; the sum shown equals the real output;
the en/ko switch works and Korean is rendered with a CJK font.  Screenshots go
to artifacts/ (gitignored).
"""


import numpy as np
import pytest

from convscope.layers import AveragePooling2D, Conv2D, Dense, Flatten, MaxPooling2D
from convscope.models import Sequential
from convscope.viz import report

pytestmark = pytest.mark.browser

from _browser import ARTIFACTS, browser  # noqa: F401,E402  (the fixture; skips without chromium)
HANGUL = "\uac00-\ud7a3"


def explorer_model():
    """Stride 2 with asymmetric SAME padding (0 top, 1 bottom), pooling, dilation 2 with groups, SAME avg pool."""
    model = Sequential()
    model.add(Conv2D(4, (3, 3), strides=2, padding="same", input_shape=(12, 11, 2), name="conv_a"))
    model.add(MaxPooling2D(2, name="pool_max"))
    model.add(Conv2D(4, (3, 3), dilation_rate=2, padding="same", groups=2, name="conv_dilated"))
    model.add(AveragePooling2D(2, strides=1, padding="same", name="pool_avg"))
    model.add(Flatten(name="flat"))
    model.add(Dense(2, name="head"))
    return model


# -- the numbers, from the layer configs alone ----------------------------------------------------

def window_numbers(layer, length, axis):
    """(kernel, stride, dilation, pad_before) of a conv/pool layer on one axis, from its config."""
    config = layer.get_config()
    kernel = (config.get("kernel_size") or config.get("pool_size"))[axis]
    stride = config["strides"][axis]
    dilation = config.get("dilation_rate", [1, 1])[axis]
    pad_before = 0
    if config["padding"] == "same":
        out = -(-length // stride)
        total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - length, 0)
        pad_before = total // 2
    return kernel, stride, dilation, pad_before


def expected_highlight(model, index, channel, row, col):
    """Window rows/cols on the layer's input, its input channels, the model-input cells it really reads
    and the span of its receptive field (padding included)."""
    layers = model.layers

    def positions(k, unit, axis):
        """Cells (padding included) of layer k's input that unit `unit` of layer k reads on `axis`."""
        length = layers[k].input_shape[1 + axis]
        kernel, stride, dilation, pad_before = window_numbers(layers[k], length, axis)
        return [unit * stride - pad_before + t * dilation for t in range(kernel)]

    def span(k, unit, axis):
        """First and last model-input cell of the field of unit `unit` of layer k (padding included)."""
        cells = positions(k, unit, axis)
        if k == 0:
            return cells[0], cells[-1]
        return span(k - 1, cells[0], axis)[0], span(k - 1, cells[-1], axis)[1]

    def real_cells(k, unit, axis):
        """The model-input cells really reached, through real (unpadded) cells only."""
        length = layers[k].input_shape[1 + axis]
        inside = [p for p in positions(k, unit, axis) if 0 <= p < length]
        if k == 0:
            return set(inside)
        return set().union(*(real_cells(k - 1, p, axis) for p in inside))

    out = {}
    for axis, unit in ((0, row), (1, col)):
        length = layers[index].input_shape[1 + axis]
        out[f"prev_{axis}"] = [p for p in positions(index, unit, axis) if 0 <= p < length]
        out[f"field_{axis}"] = list(span(index, unit, axis))
        out[f"input_{axis}"] = sorted(real_cells(index, unit, axis))
    config = layers[index].get_config()
    if "filters" in config:
        per_group = layers[index].input_shape[-1] // config["groups"]
        group = channel // (config["filters"] // config["groups"])
        out["channels"] = list(range(group * per_group, (group + 1) * per_group))
    else:
        out["channels"] = [channel]
    return out


# -- the browser ----------------------------------------------------------------------------------

@pytest.fixture
def open_report(browser, tmp_path):
    """Write a report and open it; yields (page, url, problems) where problems collects errors and requests."""
    pages = []

    def opener(model, **kwargs):
        path = report(model, to_file=tmp_path / "report.html", **kwargs)
        url = path.resolve().as_uri()
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        pages.append(page)
        problems = []
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("request", lambda r: problems.append(f"request: {r.url}")
                if r.url != url and not r.url.startswith("data:") else None)

        def route(request_route):
            if request_route.request.url == url:
                request_route.continue_()
            else:
                problems.append(f"routed request: {request_route.request.url}")
                request_route.abort()

        page.route("**/*", route)
        page.goto(url)
        page.wait_for_function("window.convscopeReport !== undefined")
        return page, problems

    yield opener
    for page in pages:
        page.close()


def click_unit(page, channel, row, col, hover=False):
    selector = f'canvas[data-role="output"][data-channel="{channel}"]'
    cell = int(page.get_attribute(selector, "data-cell"))
    position = {"x": (col + 0.5) * cell, "y": (row + 0.5) * cell}
    if hover:
        page.hover(selector, position=position)
    else:
        page.click(selector, position=position)
    shown = page.eval_on_selector("#rf-readout", "n => Object.assign({}, n.dataset)")
    shown.update(page.eval_on_selector("#sum-readout", "n => Object.assign({}, n.dataset)"))
    return shown


def ints(text):
    return [int(v) for v in text.split(",") if v != ""]


def test_report_highlights_the_receptive_field_given_by_the_layer_configs(open_report):
    model = explorer_model()
    sample = np.random.default_rng(7).normal(size=(12, 11, 2)).astype(np.float32)
    page, problems = open_report(model, sample=sample, history={"loss": [0.9, 0.5, 0.4], "val_loss": [1.0, 0.7, 0.6]})

    names = [layer.name for layer in model.layers]
    assert page.eval_on_selector_all("#summary-table tbody tr", "rows => rows.map(r => r.dataset.layer)") == names
    assert page.eval_on_selector_all("#explain-cards article", "cards => cards.map(c => c.dataset.layer)") == names
    assert page.eval_on_selector_all("#layer-picker button", "bs => bs.map(b => b.dataset.layer)") == names
    assert page.locator("#diagram svg rect.layer").count() == len(names) + 1
    assert page.locator("#filters figure.filters").count() == 2
    assert page.locator("#history svg polyline.curve").count() == 2
    page.click("#keras-summary summary")
    keras_table = page.inner_text("#keras-summary pre")
    # 4·(2·3·3 + 1) + 4·(2·3·3 + 1) (groups=2: 4 input channels, 2 per group) + 36·2 + 2
    assert "Total params: 226" in keras_table and "conv_dilated (Conv2D)" in keras_table

    outputs, x = [], sample[None]
    for layer in model.layers:
        x = layer(x)
        outputs.append(x[0])
    checked = 0
    for index, layer in enumerate(model.layers[:4]):
        page.click(f'#layer-picker button[data-layer="{layer.name}"]')
        _, rows, cols, channels = layer.output_shape
        for channel, row, col in {(0, 0, 0), (channels - 1, rows - 1, cols - 1), (1, rows // 2, cols - 1)}:
            shown = click_unit(page, channel, row, col)
            expected = expected_highlight(model, index, channel, row, col)
            assert shown["unit"] == f"{channel},{row},{col}"
            assert ints(shown["prevRows"]) == expected["prev_0"]
            assert ints(shown["prevCols"]) == expected["prev_1"]
            assert ints(shown["inputRows"]) == expected["input_0"]
            assert ints(shown["inputCols"]) == expected["input_1"]
            assert ints(shown["fieldRows"]) == expected["field_0"]
            assert ints(shown["fieldCols"]) == expected["field_1"]
            assert ints(shown["prevChannels"]) == expected["channels"]
            # Linear convs and pools: the sum written on the page is the layer's real output.
            np.testing.assert_allclose(float(shown["sum"]), outputs[index][row, col, channel], rtol=1e-4, atol=1e-5)
            checked += 1
    assert checked >= 10

    # Hovering over a unit of a freshly picked layer highlights it too.
    page.click('#layer-picker button[data-layer="conv_dilated"]')
    shown = click_unit(page, 2, 1, 2, hover=True)
    assert shown["unit"] == "2,1,2"
    assert ints(shown["prevChannels"]) == [2, 3]  # the second group of groups=2

    page.click('#layer-picker button[data-layer="head"]')
    assert page.locator("#explorer-maps canvas").count() == 0  # a Dense unit sees everything: no window to show
    page.click('#layer-picker button[data-layer="conv_a"]')
    click_unit(page, 0, 2, 3)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report_explorer_en.png"))
    assert problems == []


def test_report_switches_language_and_renders_korean(open_report):
    model = explorer_model()
    page, problems = open_report(model, sample=np.ones((12, 11, 2), np.float32), lang="en")
    assert page.inner_text("#summary h2") == "Summary"
    english = page.inner_text("#explain-cards")
    click_unit(page, 1, 1, 1)

    page.click("#lang-ko")
    assert page.evaluate("document.documentElement.lang") == "ko"
    assert page.inner_text("#summary h2") == "모델 요약"
    korean = page.inner_text("#explain-cards")
    assert korean != english
    hangul = sum(1 for ch in korean if "\uac00" <= ch <= "\ud7a3")
    assert hangul > 50
    assert page.eval_on_selector("#rf-readout", "n => n.dataset.unit") == "1,1,1"  # the pick survives the switch
    assert "수용 영역" in page.inner_text("#rf-readout")

    # Korean is drawn with a real CJK font, not missing-glyph boxes.
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument")["root"]["nodeId"]
    node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": "#summary h2"})["nodeId"]
    fonts = [f["familyName"] for f in cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]]
    assert any("CJK" in name or "KR" in name for name in fonts), \
        f"Korean drawn with {fonts}; install a Korean font (apt-get install fonts-noto-cjk)"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report_explorer_ko.png"))

    page.click("#lang-en")
    assert page.inner_text("#summary h2") == "Summary"
    assert page.inner_text("#explain-cards") == english
    assert problems == []


def test_report_without_sample_loads_cleanly(open_report):
    model = explorer_model()
    page, problems = open_report(model, lang="ko")
    assert page.evaluate("document.documentElement.lang") == "ko"
    assert page.locator("#summary-table tbody tr").count() == len(model.layers)
    assert page.locator("#explorer-maps canvas").count() == 0
    assert "sample=" in page.inner_text("#explorer-maps")
    assert page.locator("#feature-maps").is_hidden() and page.locator("#history").is_hidden()
    assert problems == []


# -- a functional (ResNet-style) model ------------------------------------------------------------

def resnet_model():
    """Conv2D stem, an identity residual block and one with a strided 1×1 projection shortcut, BN, GAP, Dense."""
    from convscope.layers import Add, BatchNormalization, GlobalAveragePooling2D, Input, ReLU
    from convscope.models import Model

    def block(x, filters, stride, name):
        y = Conv2D(filters, 3, strides=stride, padding="same", name=f"{name}_conv1")(x)
        y = ReLU(name=f"{name}_relu")(BatchNormalization(name=f"{name}_bn1")(y))
        y = BatchNormalization(name=f"{name}_bn2")(Conv2D(filters, 3, padding="same", name=f"{name}_conv2")(y))
        shortcut = x if stride == 1 else Conv2D(filters, 1, strides=stride, name=f"{name}_proj")(x)
        return ReLU(name=f"{name}_out")(Add(name=f"{name}_add")([y, shortcut]))

    image = Input((12, 12, 2), name="image")
    x = Conv2D(4, 3, padding="same", activation="relu", name="stem")(image)
    x = block(block(x, 4, 1, "block1"), 6, 2, "block2")
    out = Dense(3, name="head")(GlobalAveragePooling2D(name="gap")(x))
    return Model(image, out, name="tiny_resnet")


def moved_pixels(model, name, sample):
    """{unit (row, col) of channel 0: input pixels whose change moves it}, measured on the real model."""
    from convscope.models import Model
    probe = Model(model.inputs, model.get_layer(name)._inbound_nodes[0].outputs[0])
    h, w, _ = sample.shape
    batch = np.repeat(sample[None], h * w, axis=0)
    for i in range(h * w):
        batch[i, i // w, i % w, :] += 1.0
    base = probe.predict(sample[None], verbose=0)
    moved = np.abs(probe.predict(batch, verbose=0) - base) > 1e-6
    return moved[..., 0].reshape(h, w, *moved.shape[1:3]), base[0]


def test_report_explores_a_branch_of_a_resnet(open_report):
    model = resnet_model()
    rng = np.random.default_rng(11)
    for variable in model.weights:   # positive weights and inputs: every pixel of a field moves the unit
        if variable.trainable:
            variable.assign(rng.uniform(0.05, 0.5, size=variable.shape).astype(np.float32))
    sample = rng.uniform(0.5, 1.0, size=(12, 12, 2)).astype(np.float32)
    page, problems = open_report(model, sample=sample)

    names = [layer.name for layer in model.layers]
    assert page.eval_on_selector_all("#summary-table tbody tr", "rows => rows.map(r => r.dataset.layer)") == names
    connected = page.eval_on_selector_all("#summary-table tbody tr", "rows => rows.map(r => r.lastChild.textContent)")
    assert connected[names.index("block2_proj")] == "block1_out"
    assert connected[names.index("block2_add")] == "block2_bn2, block2_proj"
    assert page.inner_text("#summary-table thead") .count("Connected to") == 1
    assert page.locator("#diagram svg rect.layer").count() == len(names)
    calls = sum(len(node.input_tensors) for node in model._nodes)
    assert page.locator("#diagram svg .edge").count() == calls

    for name in ("block2_proj", "block2_add"):
        page.click(f'#layer-picker button[data-layer="{name}"]')
        assert page.locator('canvas[data-role="output"]').count() > 0
        moved, output = moved_pixels(model, name, sample)
        for row, col in ((0, 0), (2, 3), (5, 5)):
            shown = click_unit(page, 0, row, col)
            rows, cols = ints(shown["inputRows"]), ints(shown["inputCols"])
            pixels = moved[:, :, row, col]
            assert rows == list(np.flatnonzero(pixels.any(axis=1))), (name, row, col)
            assert cols == list(np.flatnonzero(pixels.any(axis=0))), (name, row, col)
            if name == "block2_proj":   # a 1×1 stride-2 window on block1_out: one cell, (2·row, 2·col)
                assert ints(shown["prevRows"]) == [2 * row] and ints(shown["prevCols"]) == [2 * col]
                assert ints(shown["prevChannels"]) == [0, 1, 2, 3]
                np.testing.assert_allclose(float(shown["sum"]), output[row, col, 0], rtol=1e-4, atol=1e-5)
    assert page.locator('#explorer-maps .map-group[data-role="previous"] h3').first.inner_text().startswith(
        "Input of this layer")
    page.click("#lang-ko")
    assert "가지 2개의 수용 영역을 합친" in page.inner_text("#layer-explanation")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report_resnet_explorer.png"), full_page=False)
    assert problems == []
