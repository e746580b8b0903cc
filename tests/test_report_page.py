"""The report as a reader uses it, in Chromium on a desktop (1366×900) and a phone (390×844) screen.

Checks: no horizontal scroll on the phone; a tapped unit's result lies within the
screen; the predicted class and its probability (against `model.predict`) and the
Dense layer's largest terms x·w (recomputed here from the layer outputs and the
kernel) appear; in Korean no SVG holds an English word (only identifiers: layer,
class and activation names); colour scales follow the data, the highlight keeps
the pixels visible, channels are paged, filters wrap, values show on hover, the
keyboard moves the unit and the diagram opens layers.  No console errors, no
request but the file and data: URIs.
"""

import re

import numpy as np
import pytest

from convscope.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from convscope.models import Sequential
from convscope.viz import report

pytestmark = pytest.mark.browser

from _browser import ARTIFACTS, browser  # noqa: F401,E402  (the fixture; skips without chromium)
DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}


def digits_model():
    """An MNIST-style classifier: conv (relu) → pool → conv (20 channels, SAME) → pool → Dense softmax."""
    model = Sequential()
    model.add(Conv2D(6, 3, activation="relu", input_shape=(14, 14, 1), name="conv_first"))
    model.add(MaxPooling2D(2, name="pool_first"))
    model.add(Conv2D(20, 3, padding="same", name="conv_wide"))
    model.add(MaxPooling2D(2, name="pool_last"))
    model.add(Flatten(name="flatten"))
    model.add(Dropout(0.3, name="dropout"))
    model.add(Dense(10, activation="softmax", name="classes"))
    rng = np.random.default_rng(3)
    for variable in model.weights:
        variable.assign(rng.normal(0, 0.4, size=variable.shape).astype(np.float32))
    return model


def images(count=2):
    return np.random.default_rng(5).random((count, 14, 14, 1)).astype(np.float32)


@pytest.fixture(scope="module")
def page_file(tmp_path_factory):
    model = digits_model()
    path = report(model, sample=images(), labels=[4, 7], to_file=tmp_path_factory.mktemp("r") / "report.html",
                  history={"loss": [0.8], "accuracy": [0.62], "val_loss": [0.7], "val_accuracy": [0.66]})
    return model, path


def open_page(browser, path, viewport):
    url = path.resolve().as_uri()
    page = browser.new_page(viewport=viewport)
    problems = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))

    def route(request_route):
        if request_route.request.url != url and not request_route.request.url.startswith("data:"):
            problems.append(f"request: {request_route.request.url}")
            request_route.abort()
        else:
            request_route.continue_()
    page.route("**/*", route)
    page.goto(url)
    page.wait_for_function("window.convscopeReport !== undefined")
    return page, problems


def english_words_in_svgs(page, model):
    """Words in any SVG text of the page that are not identifiers (layer, class, activation names)."""
    allowed = {"None"}
    for layer in model.layers:
        config = layer.get_config()
        allowed |= {layer.name, type(layer).__name__, str(config.get("activation", ""))}
    allowed |= {f"{model.layers[0].name}_input", "InputLayer"}
    texts = page.eval_on_selector_all("svg text", "nodes => nodes.map(n => n.textContent)")
    assert texts, "no SVG text on the page"
    return [(text, word) for text in texts for word in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text)
            if word not in allowed]


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_prediction_tap_and_korean_on_desktop_and_phone(browser, page_file, viewport):
    model, path = page_file
    page, problems = open_page(browser, path, viewport)
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]

    # The prediction of each sample, side by side, as model.predict gives it.
    probs = model.predict(images(), verbose=0)
    cards = page.locator("#prediction .prediction")
    assert cards.count() == 2
    for k, label in enumerate([4, 7]):
        card = cards.nth(k)
        predicted = int(np.argmax(probs[k]))
        assert int(card.get_attribute("data-predicted")) == predicted
        np.testing.assert_allclose(float(card.get_attribute("data-probability")), probs[k, predicted], rtol=1e-5)
        text = card.inner_text()
        assert f"Predicted: {predicted} (probability {100 * probs[k, predicted]:.1f}%)" in text
        assert f"True label: {label}" in text
        shown = [int(c) for c in card.locator(".bars li").evaluate_all("ns => ns.map(n => n.dataset.class)")]
        assert shown[:5] == list(np.argsort(-probs[k], kind="stable")[:5])

    assert page.locator("#prediction figure.gradcam canvas").count() == 2      # Grad-CAM over each input

    # The Dense layer's largest terms for the predicted class, traced to (row, col, channel) of pool_last.
    x = images()[:1]
    for layer in model.layers[:4]:
        x = layer(x)
    pooled = np.asarray(x)[0]                                  # (3, 3, 20)
    kernel = model.get_layer("classes").kernel.numpy()
    predicted = int(np.argmax(probs[0]))
    terms = pooled.reshape(-1) * kernel[:, predicted]
    top = np.argsort(-terms, kind="stable")[:12]
    data = page.evaluate("window.convscopeReport.data.sample.prediction.terms")
    assert [item["i"] for item in data["top"]] == list(top)
    for item in data["top"]:
        assert pooled[item["row"], item["col"], item["channel"]] == pytest.approx(item["x"], rel=1e-6)
        assert item["term"] == pytest.approx(terms[item["i"]], rel=1e-5)

    # "show in explorer" on a term opens its cell of pool_last (on the page of channels holding it).
    first = data["top"][0]
    page.click("#prediction .prediction >> nth=0 >> .dense-terms summary") if viewport is PHONE else None
    page.click("#prediction .prediction >> nth=0 >> .terms-list button >> nth=0")
    assert page.get_attribute("#layer-picker button.active", "data-layer") == "pool_last"
    unit = f"{first['channel']},{first['row']},{first['col']}"
    assert page.eval_on_selector("#rf-readout", "n => n.dataset.unit") == unit
    box = page.eval_on_selector("#unit-result", "n => n.getBoundingClientRect().toJSON()")
    assert 0 <= box["top"] < viewport["height"] - 40

    # Tapping a unit: the result shows within the screen, next to the tapped map.
    page.click('#layer-picker button[data-layer="conv_wide"]')
    canvas = page.locator('canvas[data-role="output"][data-channel="3"]')
    cell = int(canvas.get_attribute("data-cell"))
    canvas.click(position={"x": 2.5 * cell, "y": 1.5 * cell})
    assert page.eval_on_selector("#rf-readout", "n => n.dataset.unit") == "3,1,2"
    box = page.eval_on_selector("#unit-result", "n => n.getBoundingClientRect().toJSON()")
    assert 0 <= box["top"] < viewport["height"] - 40 and box["height"] > 40
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]

    # Korean: every label of the page and of every SVG.
    page.click("#lang-ko")
    if viewport is PHONE:   # the result stays beside the tapped map through the switch
        assert page.evaluate("document.getElementById('unit-result').parentNode.classList.contains('map-row')")
    assert page.eval_on_selector("#rf-readout", "n => n.dataset.unit") == "3,1,2"
    assert english_words_in_svgs(page, model) == []
    assert page.locator("#history svg").count() == 2 and page.locator("#diagram svg").count() == 1   # loss, accuracy
    widths = page.eval_on_selector_all("#history svg", "ss => ss.map(s => s.getBoundingClientRect().right)")
    assert max(widths) <= viewport["width"]
    assert "예측: " in page.inner_text("#prediction")
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"report_page_{viewport['width']}.png"))
    page.close()
    assert problems == []


def test_scales_paging_hover_keyboard_filters_and_diagram(browser, page_file):
    model, path = page_file
    page, problems = open_page(browser, path, DESKTOP)
    page.click('#layer-picker button[data-layer="conv_wide"]')
    # Colour scales by the data: the input (>= 0) sequential, a linear conv's output diverging around 0.
    assert page.get_attribute('#explorer-maps .map-group[data-role="input"] .colorbar', "data-scale") == "seq"
    assert page.get_attribute('#explorer-maps .map-group[data-role="output"] .colorbar', "data-scale") == "div"

    # 16 of 20 channels on the first page, the other 4 on the next.
    output = '#explorer-maps .map-group[data-role="output"]'
    assert page.get_attribute(f"{output} .pager", "data-total") == "20"
    assert page.locator(f"{output} .map canvas").count() == 16
    assert "channels 0–15 of 20 shown" in page.inner_text(f"{output} .pager")
    page.click(f'{output} .pager button[data-page="next"]')
    assert page.eval_on_selector_all(f"{output} .map canvas", "cs => cs.map(c => +c.dataset.channel)") == [16, 17, 18, 19]

    # A value on hover: the map's own number.
    x = images()[:1]
    for layer in model.layers[:3]:
        x = layer(x)
    cell = int(page.get_attribute(f'{output} canvas[data-channel="17"]', "data-cell"))
    page.hover(f'{output} canvas[data-channel="17"]', position={"x": 4.5 * cell, "y": 2.5 * cell})
    tip = page.inner_text("#tooltip")
    assert tip.startswith("ch 17 [2,4] = ")
    assert float(tip.split("= ")[1]) == pytest.approx(float(np.asarray(x)[0, 2, 4, 17]), abs=1e-4)

    # The second sample: the explorer's maps are its own.
    page.click('#sample-picker button[data-sample="1"]')
    input_canvas = '#explorer-maps .map-group[data-role="input"] canvas'
    in_cell, margin = (int(page.get_attribute(input_canvas, k)) for k in ("data-cell", "data-margin"))
    page.hover(input_canvas, position={"x": (7.5 + margin) * in_cell, "y": (3.5 + margin) * in_cell})
    assert float(page.inner_text("#tooltip").split("= ")[1]) == pytest.approx(float(images()[1, 3, 7, 0]), abs=1e-4)
    page.click('#sample-picker button[data-sample="0"]')

    # The keyboard: focus a map, arrows move the unit, and the page follows.
    page.focus(f'{output} canvas[data-channel="16"]')
    page.keyboard.press("Enter")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowDown")
    assert page.eval_on_selector("#rf-readout", "n => n.dataset.unit") == "16,1,1"

    # The highlight keeps the input's pixels visible: each read cell is its colour blended with 28% amber.
    page.click('#layer-picker button[data-layer="conv_first"]')
    out_cell = int(page.get_attribute('canvas[data-role="output"][data-channel="0"]', "data-cell"))
    page.click('canvas[data-role="output"][data-channel="0"]', position={"x": 5.5 * out_cell, "y": 4.5 * out_cell})
    pixels = page.evaluate("""() => {
        const c = document.querySelector('#explorer-maps canvas[data-role="input"]'), cell = +c.dataset.cell;
        const base = c._base.getContext('2d').getImageData(5, 6, 1, 1).data;   // input cell row 6, col 5
        const shown = c.getContext('2d').getImageData(5 * cell + cell / 2, 6 * cell + cell / 2, 1, 1).data;
        return [Array.from(base), Array.from(shown)];
    }""")
    base, shown = np.array(pixels[0][:3], float), np.array(pixels[1][:3], float)
    np.testing.assert_allclose(shown, 0.72 * base + 0.28 * np.array([255, 176, 0]), atol=2.5)

    # Filters: rows = input channels, columns = filters, wrapped into blocks that fit the section.
    figure = '#filters figure[data-layer="conv_wide"]'
    assert page.get_attribute(f"{figure} .pager", "data-rows") == "6"
    assert page.get_attribute(f"{figure} .pager", "data-cols") == "20"
    assert page.locator(f"{figure} canvas.tile").count() == 6 * 20
    assert page.eval_on_selector(figure, "f => f.scrollWidth <= f.clientWidth")

    # The diagram opens a layer in the explorer.
    page.click('#diagram svg rect.layer[data-layer="pool_last"]')
    assert page.get_attribute("#layer-picker button.active", "data-layer") == "pool_last"
    page.close()
    assert problems == []


def test_padding_is_drawn_and_dense_layers_show_their_values(browser, tmp_path):
    model = Sequential()
    model.add(Conv2D(3, 5, padding="same", input_shape=(9, 9, 1), name="wide_window"))
    model.add(Flatten(name="flat"))
    model.add(Dense(6, activation="relu", name="hidden"))
    model.add(Dense(4, name="logits"))                   # logits: the page shows their softmax
    sample = np.random.default_rng(2).normal(size=(9, 9, 1)).astype(np.float32)
    path = report(model, sample=sample, to_file=tmp_path / "r.html", class_names=["a", "b", "c", "d"])
    page, problems = open_page(browser, path, PHONE)
    assert int(page.get_attribute('#explorer-maps canvas[data-role="input"]', "data-margin")) == 2
    cell = int(page.get_attribute('canvas[data-role="output"][data-channel="0"]', "data-cell"))
    page.click('canvas[data-role="output"][data-channel="0"]', position={"x": 0.5 * cell, "y": 0.5 * cell})
    # The 5×5 field of unit (0, 0) reaches 2 rows and 2 cols past the edge: 25 - 3·3 = 16 cells of padding.
    assert page.inner_text("#rf-readout .padding").startswith("16 ")
    assert page.get_attribute('#explorer-maps .map-group[data-role="input"] .colorbar', "data-scale") == "div"

    logits = model.predict(sample[None], verbose=0)[0].astype(np.float64)
    probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    card = page.locator("#prediction .prediction")
    assert card.get_attribute("data-predicted") == str(int(np.argmax(logits)))
    assert "softmax of the logits" in card.inner_text()
    page.click('#layer-picker button[data-layer="logits"]')
    bars = page.locator("#explorer-maps .vector .bars li")
    assert bars.count() == 4
    assert bars.nth(1).inner_text().split("\n")[0] == "b"
    bars.nth(2).click()
    readout = page.inner_text("#rf-readout")
    assert readout.startswith("Unit c: ")
    assert float(readout.split(": ")[1].split(" ")[0]) == pytest.approx(logits[2], abs=1e-4)
    np.testing.assert_allclose(float(page.evaluate("window.convscopeReport.data.sample.prediction.probs[2]")),
                               probs[2], rtol=1e-6)
    # A hidden Dense layer: its values as bars, a unit's z = b + Σ x·w from the Flatten values and the kernel.
    page.click('#layer-picker button[data-layer="hidden"]')
    assert page.locator("#explorer-maps .values .bars li").count() == 6
    page.click('#explorer-maps .values .bars li[data-unit="2"]')
    flat = np.asarray(model.layers[1](model.layers[0](sample[None])))[0].astype(np.float64)
    hidden = model.get_layer("hidden")
    z = flat @ hidden.kernel.numpy()[:, 2].astype(np.float64) + float(hidden.bias.numpy()[2])
    assert float(page.get_attribute("#sum-readout", "data-sum")) == pytest.approx(z, rel=1e-5, abs=1e-6)
    assert f"relu(z) = " in page.inner_text("#sum-readout")
    box = page.eval_on_selector("#unit-result", "n => n.getBoundingClientRect().toJSON()")
    assert 0 <= box["top"] < PHONE["height"] - 40
    page.click('#layer-picker button[data-layer="flat"]')            # 243 values: the 24 largest
    assert page.locator("#explorer-maps .values .bars li").count() == 24
    assert "the 24 largest of 243" in page.inner_text("#explorer-maps .values h3")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.close()
    assert problems == []


def stages_model(stages=8):
    """A residual chain of `stages` blocks (conv, BN, ReLU, Add): more than 40 rows, a large model's page."""
    from convscope.layers import Add, BatchNormalization, GlobalAveragePooling2D, Input, ReLU
    from convscope.models import Model
    image = Input((8, 8, 3), name="image")
    x = Conv2D(4, 3, padding="same", name="stem_conv")(image)
    for s in range(1, stages + 1):
        y = Conv2D(4, 3, padding="same", name=f"stage{s}_unit_conv")(x)
        y = ReLU(name=f"stage{s}_unit_relu")(BatchNormalization(name=f"stage{s}_unit_bn")(y))
        x = ReLU(name=f"stage{s}_unit_out")(Add(name=f"stage{s}_unit_add")([x, y]))
    return Model(image, Dense(3, activation="softmax", name="head")(GlobalAveragePooling2D(name="gap")(x)))


def test_a_large_graph_model_collapses_searches_and_links_the_diagram(browser, tmp_path):
    model = stages_model()
    sample = np.random.default_rng(1).normal(size=(8, 8, 3)).astype(np.float32)
    path = report(model, sample=sample, to_file=tmp_path / "r.html")
    page, problems = open_page(browser, path, PHONE)
    assert page.evaluate("window.convscopeReport.data.precision") == "float16"
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    names = [layer.name for layer in model.layers]
    assert len(names) > 40
    assert page.locator("#summary-table tr.block").count() == 8
    shown = page.eval_on_selector_all("#summary-table tbody tr[data-layer]", "rs => rs.map(r => r.dataset.layer)")
    assert len(shown) < len(names) and "stage6_unit_bn" not in shown
    page.click('#summary-table tr.block[data-block="stage6_unit"] button')
    shown = page.eval_on_selector_all("#summary-table tbody tr[data-layer]", "rs => rs.map(r => r.dataset.layer)")
    assert [n for n in names if n.startswith("stage6_")] == [n for n in shown if n.startswith("stage6_")]

    page.fill("#summary-search", "stage3_unit_co")
    assert page.eval_on_selector_all("#summary-table tbody tr[data-layer]",
                                     "rs => rs.map(r => r.dataset.layer)") == ["stage3_unit_conv"]
    assert page.eval_on_selector_all("#layer-picker button:not([hidden])",
                                     "bs => bs.map(b => b.dataset.layer)") == ["stage3_unit_conv"]
    page.fill("#summary-search", "")

    page.click('#diagram svg rect.layer[data-layer="stage5_unit_add"]')
    assert page.get_attribute("#layer-picker button.active", "data-layer") == "stage5_unit_add"
    assert page.get_attribute("#summary-table tr.selected", "data-layer") == "stage5_unit_add"
    # float16 in the page: a hovered value within float16's precision of the real one.
    from convscope.models import Model
    real = Model(model.inputs, model.get_layer("stage5_unit_add").output).predict(sample[None], verbose=0)[0]
    canvas = '#explorer-maps .map-group[data-role="output"] canvas[data-channel="2"]'
    cell = int(page.get_attribute(canvas, "data-cell"))
    page.hover(canvas, position={"x": 3.5 * cell, "y": 6.5 * cell})
    shown_value = float(page.inner_text("#tooltip").split("= ")[1])
    assert shown_value == pytest.approx(float(real[6, 3, 2]), rel=2e-3, abs=2e-3)
    page.close()
    assert problems == []


def test_a_sequence_model_loads_without_errors(browser, tmp_path):
    from convscope.layers import Conv1D, Input, MaxPooling1D
    model = Sequential([Input(shape=(20, 3)), Conv1D(4, 3, activation="relu", name="taps"),
                        MaxPooling1D(2, name="halve"), Flatten(name="flat"), Dense(5, activation="softmax")])
    sample = np.random.default_rng(0).random((20, 3)).astype(np.float32)
    page, problems = open_page(browser, report(model, sample=sample, to_file=tmp_path / "r.html"), PHONE)
    assert page.eval_on_selector('#summary-table tr[data-layer="halve"]', "r => r.cells[5].textContent") == "4 (step 2)"
    page.click('#layer-picker button[data-layer="taps"]')
    assert "one axis" in page.inner_text("#explorer-maps")
    page.close()
    assert problems == []


def test_cropping_depthwise_and_separable_windows_match_the_pixels_that_move_the_unit(browser, tmp_path):
    """Which input pixels and previous channels really move a unit, measured on the model (positive weights and
    inputs: no cancellation), against the page's highlight."""
    from convscope.layers import Cropping2D, DepthwiseConv2D, Input, SeparableConv2D
    model = Sequential([Input(shape=(11, 10, 2)), Cropping2D(((1, 2), (3, 0)), name="cut"),
                        DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="depthwise"),
                        SeparableConv2D(3, 3, strides=2, name="separable")])
    rng = np.random.default_rng(4)
    for variable in model.weights:
        variable.assign(rng.uniform(0.1, 0.5, size=variable.shape).astype(np.float32))
    sample = rng.uniform(0.5, 1.0, size=(11, 10, 2)).astype(np.float32)
    page, problems = open_page(browser, report(model, sample=sample, to_file=tmp_path / "r.html"), DESKTOP)

    def run(x, upto):
        for layer in model.layers[:upto]:
            x = layer(x)
        return np.asarray(x)
    base = [run(sample[None], k) for k in (1, 2, 3)]
    for index, name in ((1, "depthwise"), (2, "separable")):
        page.click(f'#layer-picker button[data-layer="{name}"]')
        for channel, row, col in ((2, 1, 2), (1, 0, 0), (0, 2, 1)):
            cell = int(page.get_attribute(f'canvas[data-role="output"][data-channel="{channel}"]', "data-cell"))
            page.click(f'canvas[data-role="output"][data-channel="{channel}"]',
                       position={"x": (col + 0.5) * cell, "y": (row + 0.5) * cell})
            shown = page.eval_on_selector("#rf-readout", "n => Object.assign({}, n.dataset)")
            moved_rows, moved_cols = set(), set()
            for r in range(11):
                for c in range(10):
                    x = sample.copy()
                    x[r, c, :] += 1.0
                    if abs(run(x[None], index + 1)[0, row, col, channel] - base[index][0, row, col, channel]) > 1e-6:
                        moved_rows.add(r)
                        moved_cols.add(c)
            assert [int(v) for v in shown["inputRows"].split(",")] == sorted(moved_rows), (name, channel, row, col)
            assert [int(v) for v in shown["inputCols"].split(",")] == sorted(moved_cols), (name, channel, row, col)
            previous = base[index - 1][0]
            moved_channels = [k for k in range(previous.shape[-1])
                              if abs(model.layers[index](np.where(np.arange(previous.shape[-1]) == k, previous + 1,
                                                                  previous)[None])[0, row, col, channel]
                                     - base[index][0, row, col, channel]) > 1e-6]
            assert [int(v) for v in shown["prevChannels"].split(",")] == moved_channels, (name, channel)
    page.close()
    assert problems == []
