"""`convscope report MODEL --image a.png --image b.jpg`: pictures read as Keras' load_img + img_to_array
(the oracle: real Keras 3.15.1), several samples in one page with their predictions; the one-line errors.
Also the history picture (no browser): round ticks, accuracy in %, final values, Korean labels."""

import base64
import json
import re

import numpy as np
import pytest

from convscope import backend
from convscope.cli import main
from convscope.viz import plot_history
from convscope.viz.images import load_image

Image = pytest.importorskip("PIL.Image")

MODEL_PY = """
from convscope.models import Sequential
from convscope.layers import Conv2D, MaxPooling2D, Flatten, Dense, Input

model = Sequential([
    Input(shape=(12, 10, {channels})),
    Conv2D(4, (3, 3), padding="same", activation="relu"),
    MaxPooling2D(),
    Flatten(),
    Dense(5, activation="softmax"),
])
"""


def run(capsys, *argv):
    backend.clear_session(free_memory=False)
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def page_data(path):
    html = path.read_text(encoding="utf-8")
    return json.loads(re.search(r'id="report-data">(.*?)</script>', html, re.S).group(1))


def decoded(entry):
    return np.frombuffer(base64.b64decode(entry["data"]), "<f4").reshape(entry["shape"])


@pytest.fixture
def pictures(tmp_path):
    rng = np.random.default_rng(4)
    rgb = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 256, (31, 17, 3), dtype=np.uint8)).save(rgb)
    gray = tmp_path / "digit.jpg"
    Image.fromarray(rng.integers(0, 256, (12, 10), dtype=np.uint8)).save(gray, quality=90)
    rgba = tmp_path / "icon.png"
    Image.fromarray(rng.integers(0, 256, (8, 25, 4), dtype=np.uint8), "RGBA").save(rgba)
    return [rgb, gray, rgba]


@pytest.mark.parametrize("channels,mode", [(1, "grayscale"), (3, "rgb")])
def test_images_are_read_as_keras_load_img(keras, capsys, tmp_path, pictures, channels, mode):
    model_py = tmp_path / "model.py"
    model_py.write_text(MODEL_PY.format(channels=channels))
    out_file = tmp_path / "report.html"
    code, out, err = run(capsys, "report", model_py, "-o", out_file, *sum((["--image", p] for p in pictures), []),
                         "--rescale", 0.5, "--label", 1, "--label", 0, "--label", 4)
    assert code == 0, err
    data = page_data(out_file)
    shown = [data["sample"]] + data["more_samples"]
    assert len(shown) == 3
    for picture, entry in zip(pictures, shown):
        image = keras.utils.load_img(picture, color_mode=mode, target_size=(12, 10), interpolation="nearest")
        expected = keras.utils.img_to_array(image) * 0.5
        np.testing.assert_array_equal(decoded(entry["input"]), expected)
        assert len(entry["prediction"]["probs"]) == 5
    assert [entry["prediction"]["label"] for entry in shown] == [1, 0, 4]


def test_load_image_channels_first_and_rgba(keras, pictures):
    array = load_image(pictures[2], (None, 4, 6, 5), "channels_first")
    image = keras.utils.load_img(pictures[2], color_mode="rgba", target_size=(6, 5), interpolation="nearest")
    np.testing.assert_array_equal(array, np.moveaxis(keras.utils.img_to_array(image), -1, 0))


def test_load_image_keeps_a_16_bit_grayscale_png_as_keras(keras, tmp_path):
    """Keras' load_img(color_mode="grayscale") keeps a 16-bit PNG's values (mode "I;16"); converting it
    to "L" would clip them to 255."""
    path = tmp_path / "depth.png"
    Image.fromarray(np.random.default_rng(7).integers(0, 65536, (7, 9), dtype=np.uint16)).save(path)
    for size in ((7, 9), (4, 5)):
        image = keras.utils.load_img(path, color_mode="grayscale", target_size=size, interpolation="nearest")
        expected = keras.utils.img_to_array(image)
        assert expected.max() > 255
        np.testing.assert_array_equal(load_image(path, (None,) + size + (1,)), expected)


def test_image_errors_are_one_line(capsys, tmp_path, pictures):
    model_py = tmp_path / "model.py"
    model_py.write_text(MODEL_PY.format(channels=3))
    out_file = tmp_path / "report.html"
    code, _, err = run(capsys, "report", model_py, "-o", out_file, "--image", tmp_path / "missing.png")
    assert code == 2 and err.count("\n") == 1 and "--image" in err and "missing.png" in err
    not_a_picture = tmp_path / "notes.png"
    not_a_picture.write_text("not a picture")
    code, _, err = run(capsys, "report", model_py, "-o", out_file, "--image", not_a_picture)
    assert code == 2 and err.count("\n") == 1 and "--image" in err and "not a picture Pillow can read" in err
    code, _, err = run(capsys, "report", model_py, "-o", out_file, "--label", "3")
    assert code == 2 and "--label needs --image" in err
    code, _, err = run(capsys, "report", model_py, "-o", out_file, "--image", pictures[0], "--label", 1, "--label", 2)
    assert code == 2 and "argument `labels` must hold one class index per sample (1), got 2" in err
    code, _, err = run(capsys, "report", model_py, "-o", out_file, *(["--image", pictures[0]] * 9))
    assert code == 2 and "at most 8 pictures" in err
    assert not out_file.exists()
    with pytest.raises(ValueError, match=r"load_image: the model input has 2 channels; a picture gives 1"):
        load_image(pictures[0], (None, 4, 4, 2))
    with pytest.raises(TypeError, match=r"load_image: argument `path` must be a file path"):
        load_image(3, (None, 4, 4, 1))


# -- the training curves ---------------------------------------------------------------------------

def texts(svg, css_class):
    return re.findall(rf'<text class="{css_class}"[^>]*>([^<]*)</text>', svg)


def test_history_has_round_ticks_percent_accuracy_and_final_values():
    history = {"loss": [0.913, 0.5071, 0.187], "accuracy": [0.51, 0.833, 0.9412],
               "val_loss": [0.95, 0.61, 0.33], "val_accuracy": [0.49, 0.8, 0.9]}
    svg = plot_history(history).to_svg()
    loss_ticks = [t for t in texts(svg, "tick") if not t.endswith("%")]
    accuracy_ticks = [t for t in texts(svg, "tick") if t.endswith("%")]
    for ticks, scale in ((loss_ticks, 1.0), (accuracy_ticks, 1.0)):
        values = [float(t.rstrip("%")) for t in ticks]
        steps = np.diff(values)
        assert len(values) >= 3 and np.allclose(steps, steps[0])
        mantissa = steps[0] / 10 ** np.floor(np.log10(steps[0]))
        assert any(np.isclose(mantissa, m) for m in (1, 2, 2.5, 5))      # 0.2, 10%, 25, 0.05 ...
    percents = [float(t.rstrip("%")) for t in accuracy_ticks]
    assert min(percents) <= 49 and max(percents) >= 94
    finals = texts(svg, "final")
    assert "94.12%" in " ".join(finals) or "94.1%" in " ".join(finals)
    assert any(f.startswith("0.18") or f.startswith("0.19") for f in finals)
    assert "accuracy (%)" in svg


def test_one_epoch_history_in_korean():
    svg = plot_history({"loss": [0.5], "accuracy": [0.91], "val_loss": [0.4], "val_accuracy": [0.93]},
                       lang="ko").to_svg()
    assert svg.count('class="curve"') == 4 and len(texts(svg, "final")) == 4
    words = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
    english = [w for w in words if re.search(r"[A-Za-z]{2,}", w)]
    assert english == []
    assert "정확도 (%)" in words and "손실" in words
    with pytest.raises(ValueError, match=r"plot_history: argument `lang` must be one of \('en', 'ko'\), got 'de'"):
        plot_history({"loss": [1.0]}, lang="de")


# -- the prediction's Dense terms through a global pooling (a graph model), without a browser -------

def test_dense_terms_trace_through_global_pooling(tmp_path):
    from convscope.layers import Conv2D, Dense, GlobalAveragePooling2D, Input
    from convscope.models import Model
    from convscope.viz import report

    image = Input((6, 5, 2), name="image")
    maps = Conv2D(7, 3, padding="same", activation="relu", name="features")(image)
    logits = Dense(4, name="head")(GlobalAveragePooling2D(name="gap")(maps))
    model = Model(image, logits)
    sample = np.random.default_rng(8).normal(size=(6, 5, 2)).astype(np.float32)
    data = page_data(report(model, sample=sample, to_file=tmp_path / "r.html"))
    terms = data["sample"]["prediction"]["terms"]
    features = Model(image, maps).predict(sample[None], verbose=0)[0]          # (6, 5, 7)
    out = model.predict(sample[None], verbose=0)[0]
    predicted = int(np.argmax(out))
    kernel = model.get_layer("head").kernel.numpy()[:, predicted]
    pooled = features.mean(axis=(0, 1))
    assert data["sample"]["prediction"]["predicted"] == predicted
    assert terms["pooled"] == "global_avg_pool" and data["layers"][terms["map_layer"]]["name"] == "features"
    assert [item["channel"] for item in terms["top"]] == list(np.argsort(-pooled * kernel, kind="stable"))
    for item in terms["top"]:
        assert item["x"] == pytest.approx(pooled[item["channel"]], rel=1e-5)
        assert (item["row"], item["col"]) == np.unravel_index(np.argmax(features[:, :, item["channel"]]), (6, 5))
    assert terms["z"] == pytest.approx(out[predicted], rel=1e-5)


def test_filters_and_feature_maps_pictures_in_korean():
    from convscope.layers import Conv2D, Dense, Flatten, MaxPooling2D
    from convscope.models import Sequential
    from convscope.viz import plot_feature_maps, plot_filters

    model = Sequential()
    model.add(Conv2D(4, 3, input_shape=(8, 8, 2), name="edges"))
    model.add(MaxPooling2D(2, name="shrink"))
    model.add(Flatten(name="flat"))
    model.add(Dense(2, name="out"))
    identifiers = {"edges", "shrink", "Conv2D", "MaxPooling2D"}
    image = np.random.default_rng(0).normal(size=(8, 8, 2)).astype(np.float32)
    for svg in (plot_filters(model.layers[0], lang="ko").to_svg(),
                plot_feature_maps(model, image, max_channels=2, lang="ko").to_svg()):
        words = re.findall(r"<(?:text|title)[^>]*>([^<]*)</", svg)
        assert words and any("채널" in w or "커널" in w for w in words)
        assert [w for text in words for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text) if w not in identifiers] == []
    english = plot_feature_maps(model, image, max_channels=2).to_svg()
    assert "edges (Conv2D): 6×6×4 (2 of 4 channels shown)" in english
    with pytest.raises(ValueError, match=r"plot_filters: argument `lang` must be one of \('en', 'ko'\), got 'jp'"):
        plot_filters(model.layers[0], lang="jp")
    with pytest.raises(ValueError, match=r"plot_feature_maps: argument `lang` must be one of"):
        plot_feature_maps(model, image, lang=None)


def test_report_output_errors_name_the_option(capsys, tmp_path):
    model_py = tmp_path / "model.py"
    model_py.write_text(MODEL_PY.format(channels=1))
    code, out, err = run(capsys, "report", model_py, "-o", tmp_path / "r.txt")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "-o" in err and ".html" in err and "to_file" not in err
    code, _, err = run(capsys, "report", model_py, "-o", tmp_path / "missing" / "r.html")
    assert code == 2 and err.count("\n") == 1 and "the folder" in err and "does not exist" in err
    assert ".part" not in err and not (tmp_path / "missing").exists()
    code, _, err = run(capsys, "report", model_py, "--rescale", "nan")
    assert code == 2 and "--rescale must be a finite, non-zero number" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.py"]


def test_report_embeds_gradcam_of_the_predicted_class(tmp_path):
    from convscope.layers import Conv2D, Dense, Flatten
    from convscope.models import Sequential
    from convscope.viz import gradcam, report

    model = Sequential()
    model.add(Conv2D(3, 3, activation="relu", input_shape=(7, 6, 1), name="look"))
    model.add(Flatten(name="flat"))
    model.add(Dense(3, name="score"))
    sample = np.random.default_rng(6).random((7, 6, 1)).astype(np.float32)
    data = page_data(report(model, sample=sample, to_file=tmp_path / "r.html"))
    entry = data["sample"]["gradcam"]
    assert entry["dtype"] == "u8" and entry["shape"] == [7, 6]
    stored = np.frombuffer(base64.b64decode(entry["data"]), np.uint8).reshape(7, 6) / 255.0
    predicted = data["sample"]["prediction"]["predicted"]
    assert predicted == int(np.argmax(model.predict(sample[None], verbose=0)[0]))
    np.testing.assert_allclose(stored, gradcam(model, sample, class_index=predicted), atol=0.5 / 255 + 1e-6)


def test_terms_through_a_hidden_dense_layer_are_input_times_gradient(tmp_path):
    """Flatten → Dense(relu) → Dropout → Dense(softmax): x_i · ∂z/∂x_i of the flattened maps for the predicted
    logit z, against torch.autograd on the same weights."""
    torch = pytest.importorskip("torch")
    from convscope.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
    from convscope.models import Sequential
    from convscope.viz import report

    model = Sequential()
    model.add(Conv2D(3, 3, activation="relu", input_shape=(8, 8, 1), name="conv"))
    model.add(MaxPooling2D(2, name="pool"))
    model.add(Flatten(name="flat"))
    model.add(Dense(16, activation="relu", name="hidden"))
    model.add(Dropout(0.5, name="drop"))
    model.add(Dense(4, activation="softmax", name="classes"))
    sample = np.random.default_rng(9).random((8, 8, 1)).astype(np.float32)
    data = page_data(report(model, sample=sample, to_file=tmp_path / "r.html"))
    terms = data["sample"]["prediction"]["terms"]
    pooled = np.asarray(model.layers[1](model.layers[0](sample[None])))[0]       # (3, 3, 3)
    x = torch.tensor(pooled.reshape(1, -1), dtype=torch.float64, requires_grad=True)
    hidden, head = model.get_layer("hidden"), model.get_layer("classes")
    h = torch.relu(x @ torch.tensor(hidden.kernel.numpy(), dtype=torch.float64)
                   + torch.tensor(hidden.bias.numpy(), dtype=torch.float64))
    logits = h @ torch.tensor(head.kernel.numpy(), dtype=torch.float64) + torch.tensor(head.bias.numpy(),
                                                                                        dtype=torch.float64)
    predicted = int(torch.argmax(logits))
    logits[0, predicted].backward()
    expected = (x * x.grad).detach().numpy()[0]
    assert terms["unit"] == predicted and terms["through"] == ["hidden", "classes"]
    assert terms["z"] == pytest.approx(float(logits.detach()[0, predicted]), rel=1e-5)
    assert terms["sum"] == pytest.approx(float(expected.sum()), rel=1e-5, abs=1e-6)
    assert [item["i"] for item in terms["top"]] == list(np.argsort(-expected, kind="stable")[:12])
    for item in terms["top"]:
        assert item["term"] == pytest.approx(float(expected[item["i"]]), rel=1e-5, abs=1e-7)
        assert pooled[item["row"], item["col"], item["channel"]] == pytest.approx(item["x"], rel=1e-6)


def test_report_shows_misclassified_test_samples_with_their_labels(capsys, tmp_path):
    from convscope.datasets import digits
    from convscope.models import load_model

    model_py = tmp_path / "model.py"
    model_py.write_text(MODEL_PY.replace("Input(shape=(12, 10, {channels}))", "Input(shape=(8, 8, 1))")
                        .replace("Dense(5,", "Dense(10,"))
    saved = tmp_path / "model.convscope"
    code, _, err = run(capsys, "train", model_py, "--dataset", "digits", "--epochs", "1", "--batch-size", "64",
                       "--seed", "2", "--verbose", "0", "--save", saved)
    assert code == 0, err
    out_file = tmp_path / "wrong.html"
    code, out, err = run(capsys, "report", saved, "-o", out_file, "--sample", "digits", "--count", "3",
                         "--misclassified")
    assert code == 0, err
    data = page_data(out_file)
    shown = [data["sample"]] + data["more_samples"]
    (_, _), (x_test, y_test) = digits.load_data()
    x = (x_test[:2000] / x_test.max()).astype(np.float32).reshape(-1, 8, 8, 1)
    predicted = load_model(saved).predict(x, verbose=0).argmax(axis=1)
    wrong = np.flatnonzero(predicted != y_test[:2000])[:3]
    assert len(wrong) == 3 and len(shown) == 3
    for index, entry in zip(wrong, shown):
        assert entry["prediction"]["label"] == int(y_test[index])
        assert entry["prediction"]["predicted"] == int(predicted[index]) != entry["prediction"]["label"]
        np.testing.assert_allclose(decoded(entry["input"])[..., 0], x[index, ..., 0], rtol=1e-6)
    code, _, err = run(capsys, "report", saved, "-o", out_file, "--count", "2")
    assert code == 2 and "--count and --misclassified need --sample DATASET" in err
    code, _, err = run(capsys, "report", saved, "-o", out_file, "--sample", "digits", "--count", "9")
    assert code == 2 and "--count must be between 1 and 8, got 9" in err


def test_report_argument_errors_name_the_argument(tmp_path):
    from convscope.layers import Conv2D, Dense, Flatten
    from convscope.models import Sequential
    from convscope.viz import report

    model = Sequential()
    model.add(Conv2D(2, 3, input_shape=(5, 5, 1)))
    model.add(Flatten())
    model.add(Dense(3, activation="softmax"))
    one = np.zeros((5, 5, 1), np.float32)
    target = tmp_path / "r.html"
    cases = [
        (dict(sample=[one] * 9), ValueError, r"report: argument `sample` holds 9 samples; at most 8"),
        (dict(sample=[]), ValueError, r"report: argument `sample` is an empty list"),
        (dict(labels=1), ValueError, r"report: argument `labels` needs `sample`"),
        (dict(sample=one, labels=-1), ValueError,
         r"report: argument `labels` must hold class indices \(ints >= 0\), got -1"),
        (dict(sample=[one, one], labels=[1]), ValueError,
         r"report: argument `labels` must hold one class index per sample \(2\), got 1"),
        (dict(class_names="abc"), TypeError, r"report: argument `class_names` must be a list of str, got 'abc'"),
        (dict(class_names=["a", "b"]), ValueError,
         r"report: argument `class_names` must name the 3 classes of the output \(None, 3\), got 2 names"),
        (dict(history=[1, 2]), TypeError, r"report: argument `history` must be a History"),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            report(model, to_file=target, **kwargs)
    assert not target.exists()
    data = page_data(report(model, sample=np.zeros((2, 5, 5, 1), np.float32), labels=np.array([2, 0]),
                            class_names=["cat", "dog", "owl"], to_file=target))
    assert [data["sample"]["prediction"]["label"], data["more_samples"][0]["prediction"]["label"]] == [2, 0]
    assert data["class_names"] == ["cat", "dog", "owl"]


def test_history_tick_labels_show_every_step():
    from convscope.viz.history import nice_ticks
    for low, high in ((0.4, 0.5), (0.0, 1.0), (91.0, 93.0), (0.187, 0.833), (1e-4, 3e-4)):
        ticks, decimals = nice_ticks(low, high)
        labels = [f"{t:.{decimals}f}" for t in ticks]
        assert len(set(labels)) == len(labels), labels                  # no two ticks print alike
        assert [float(v) for v in labels] == pytest.approx(ticks)     # each label is its tick exactly
        assert ticks[0] <= low and ticks[-1] >= high


def test_prediction_of_binary_and_regression_heads(tmp_path):
    from convscope.layers import Conv2D, Dense, Flatten
    from convscope.models import Sequential
    from convscope.viz import report

    def model(activation):
        m = Sequential()
        m.add(Conv2D(2, 3, input_shape=(5, 5, 1)))
        m.add(Flatten())
        m.add(Dense(1, activation=activation))
        return m
    sample = np.random.default_rng(1).random((5, 5, 1)).astype(np.float32)
    binary = model("sigmoid")
    p = float(binary.predict(sample[None], verbose=0)[0, 0])
    data = page_data(report(binary, sample=sample, to_file=tmp_path / "b.html"))
    assert data["sample"]["prediction"]["probs"] == pytest.approx([1 - p, p], rel=1e-6)
    assert data["sample"]["prediction"]["predicted"] == int(p > 0.5)
    data = page_data(report(model(None), sample=sample, to_file=tmp_path / "r.html"))
    assert data["sample"]["prediction"] is None          # a regression: no class probabilities invented
    multi_label = model("sigmoid")
    multi_label.pop()
    multi_label.add(Dense(4, activation="sigmoid"))       # four independent labels: no softmax over them
    probs = multi_label.predict(sample[None], verbose=0)[0]
    prediction = page_data(report(multi_label, sample=sample, to_file=tmp_path / "m.html"))["sample"]["prediction"]
    assert prediction["probs"] == pytest.approx(probs.tolist(), rel=1e-6)
    assert prediction["source"] == "sigmoid" and prediction["predicted"] == int(np.argmax(probs))


def test_feature_maps_picture_ends_with_the_prediction():
    from convscope.layers import Conv2D, Dense, Flatten, MaxPooling2D
    from convscope.models import Sequential
    from convscope.viz import plot_feature_maps

    model = Sequential()
    model.add(Conv2D(3, 3, activation="relu", input_shape=(8, 8, 1)))
    model.add(MaxPooling2D(2))
    model.add(Flatten())
    model.add(Dense(7, activation="softmax"))
    image = np.random.default_rng(2).random((8, 8, 1)).astype(np.float32)
    probs = model.predict(image[None], verbose=0)[0]
    top = np.argsort(-probs, kind="stable")[:5]
    for lang, word in (("en", "prediction: class"), ("ko", "예측: 클래스")):
        svg = plot_feature_maps(model, image, lang=lang).to_svg()
        assert f"{word} {top[0]} ({100 * probs[top[0]]:.1f}%)" in svg
        widths = [float(w) for w in re.findall(r'<rect class="probability"[^>]*width="([0-9.]+)"', svg)]
        np.testing.assert_allclose(widths, 200 * probs[top], atol=0.01)
