"""The `convscope` command end to end: every subcommand, --help, and the one-line errors (exit 2)."""

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from convscope import backend
from convscope.cli import main

MODEL_PY = """
from convscope.models import Sequential
from convscope.layers import Conv2D, MaxPooling2D, Flatten, Dense, Input

model = Sequential([
    Input(shape=(8, 8, 1)),
    Conv2D(4, (3, 3), padding="same", activation="relu"),
    MaxPooling2D(),
    Flatten(),
    Dense(10, activation="softmax"),
])
"""

# What tf.keras 2.x's model.to_json() writes for a small Sequential model (seed 002's first layers).
KERAS_JSON = {
    "class_name": "Sequential",
    "config": {"name": "sequential", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 8, 8, 1], "dtype": "float32",
                                                "sparse": False, "ragged": False, "name": "conv2d_input"}},
        {"class_name": "Conv2D", "config": {
            "name": "conv2d", "trainable": True, "dtype": "float32", "batch_input_shape": [None, 8, 8, 1],
            "filters": 4, "kernel_size": [3, 3], "strides": [1, 1], "padding": "same",
            "data_format": "channels_last", "dilation_rate": [1, 1], "groups": 1, "activation": "relu",
            "use_bias": True, "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
            "bias_initializer": {"class_name": "Zeros", "config": {}}, "kernel_regularizer": None,
            "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None,
            "bias_constraint": None}},
        {"class_name": "MaxPooling2D", "config": {"name": "max_pooling2d", "trainable": True, "dtype": "float32",
                                                  "pool_size": [2, 2], "padding": "valid", "strides": [2, 2],
                                                  "data_format": "channels_last"}},
        {"class_name": "Flatten", "config": {"name": "flatten", "trainable": True, "dtype": "float32",
                                             "data_format": "channels_last"}},
        {"class_name": "Dense", "config": {
            "name": "dense", "trainable": True, "dtype": "float32", "units": 10, "activation": "softmax",
            "use_bias": True, "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
            "bias_initializer": {"class_name": "Zeros", "config": {}}, "kernel_regularizer": None,
            "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None,
            "bias_constraint": None}},
    ]},
    "keras_version": "2.12.0", "backend": "tensorflow",
}


@pytest.fixture
def model_py(tmp_path):
    path = tmp_path / "model.py"
    path.write_text(MODEL_PY)
    return path


def run(capsys, *argv):
    """main(argv) as a fresh process would run it: automatic names start again at `conv2d`."""
    backend.clear_session()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", [[], ["summary"], ["explain"], ["plot"], ["report"], ["train"], ["demo"]])
def test_help_everywhere(capsys, command):
    with pytest.raises(SystemExit) as stop:
        main(command + ["--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: convscope")
    if not command:
        for name in ("summary", "explain", "plot", "report", "train", "demo"):
            assert name in out


def test_summary_from_python_json_and_keras_json_agree(capsys, model_py, tmp_path):
    code, from_py, err = run(capsys, "summary", model_py)
    assert code == 0 and err == ""
    assert 'Model: "sequential"' in from_py and "conv2d (Conv2D)" in from_py and "Total params: 690" in from_py
    assert "Kernels" not in from_py
    from convscope.cli import load_model_file
    backend.clear_session()
    ours = tmp_path / "ours.json"
    ours.write_text(load_model_file(model_py).to_json())
    code, from_json, _ = run(capsys, "summary", ours)
    assert code == 0 and from_json == from_py
    backend.clear_session()
    config = tmp_path / "config.json"
    config.write_text(json.dumps(load_model_file(model_py).get_config()))
    code, from_config, _ = run(capsys, "summary", config)
    assert code == 0 and from_config == from_py
    keras = tmp_path / "keras.json"
    keras.write_text(json.dumps(KERAS_JSON))
    code, from_keras, _ = run(capsys, "summary", keras)
    assert code == 0 and from_keras == from_py
    code, wide, _ = run(capsys, "summary", model_py, "--all")
    assert code == 0
    for header in ("Kernels", "MACs", "FLOPs", "Receptive field", "Activations/sample", "Param memory"):
        assert header in wide
    assert "4 x 3x3" in wide


def test_explain_text_korean_json_and_one_layer(capsys, model_py):
    code, text, _ = run(capsys, "explain", model_py)
    assert code == 0 and "filters × (in·kh·kw + 1) = 4 × (1·3·3 + 1) = 40" in text
    code, korean, _ = run(capsys, "explain", model_py, "--lang", "ko")
    assert code == 0 and "필터 수 × (in·kh·kw + 1) = 4 × (1·3·3 + 1) = 40개" in korean and "수용 영역" in korean
    code, raw, _ = run(capsys, "explain", model_py, "--format", "json", "--batch-size", "8")
    data = json.loads(raw)
    assert code == 0 and data["model"]["batch_size"] == 8 and len(data["layers"]) == 4
    code, markdown, _ = run(capsys, "explain", model_py, "--format", "markdown")
    assert code == 0 and markdown.startswith('## Model "sequential"')
    code, one, _ = run(capsys, "explain", model_py, "--layer", "max_pooling2d")
    assert code == 0 and one.startswith("max_pooling2d (MaxPooling2D): (None, 8, 8, 4) → (None, 4, 4, 4)")
    code, _, err = run(capsys, "explain", model_py, "--layer", "nope")
    assert code == 2 and err.count("\n") == 1 and "no layer named 'nope'" in err


def test_plot_svg_and_png(capsys, model_py, tmp_path):
    svg = tmp_path / "model.svg"
    code, out, _ = run(capsys, "plot", model_py, "-o", svg, "--show-shapes")
    assert code == 0 and out.strip() == f"wrote {svg}"
    root = ET.fromstring(svg.read_text(encoding="utf-8"))
    assert root.tag.endswith("svg") and "conv2d" in svg.read_text(encoding="utf-8")
    png = tmp_path / "model.png"
    code, _, _ = run(capsys, "plot", model_py, "-o", png, "--rankdir", "LR", "--dpi", "72")
    assert code == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_with_a_sample(capsys, model_py, tmp_path):
    page = tmp_path / "report.html"
    code, out, _ = run(capsys, "report", model_py, "-o", page, "--lang", "ko", "--sample", "digits")
    assert code == 0 and out.strip() == f"wrote {page}"
    text = page.read_text(encoding="utf-8")
    assert text.lstrip().lower().startswith("<!doctype html") and "max_pooling2d" in text and "수용 영역" in text


def test_train_on_digits_then_summarize_the_saved_model(capsys, model_py, tmp_path):
    saved = tmp_path / "trained.convscope"
    code, out, err = run(capsys, "train", model_py, "--dataset", "digits", "--epochs", "3", "--batch-size", "16",
                         "--seed", "1", "--verbose", "0", "--save", saved)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].startswith("test loss ") and ", test accuracy " in lines[0]
    accuracy = float(lines[0].rsplit(" ", 1)[1])
    assert 0.5 < accuracy <= 1.0  # 3 short epochs: far above chance (0.1)
    assert lines[1] == f"saved {saved}" and saved.exists()
    code, summary, _ = run(capsys, "summary", saved)
    assert code == 0 and "Total params: 690" in summary


def test_demo_runs(capsys):
    code, out, _ = run(capsys, "demo", "--epochs", "1", "--verbose", "2")
    assert code == 0 and "accuracy" in out.lower()


@pytest.mark.parametrize("make,expected", [
    (lambda tmp: tmp / "missing.py", "model file not found: "),
    (lambda tmp: _write(tmp / "broken.py", "model = (\n"), "failed: SyntaxError"),
    (lambda tmp: _write(tmp / "empty.py", "x = 1\n"), "defines no variable `model`"),
    (lambda tmp: _write(tmp / "unknown.json", json.dumps(
        {"class_name": "Sequential", "config": {"layers": [{"class_name": "Conv3D", "config": {}}]}})),
     "unknown layer class 'Conv3D'"),
    (lambda tmp: _write(tmp / "garbage.json", "{not json"), "is not valid JSON"),
])
@pytest.mark.parametrize("command", ["summary", "explain"])
def test_errors_are_one_line_with_exit_code_2(capsys, tmp_path, make, expected, command):
    path = make(tmp_path)
    code, out, err = run(capsys, command, path)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"convscope {command}: error: ") and expected in err


def test_python_dash_m_and_exit_code(model_py, tmp_path):
    done = subprocess.run([sys.executable, "-m", "convscope", "explain", str(model_py), "--layer", "0"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("conv2d (Conv2D)")
    done = subprocess.run([sys.executable, "-m", "convscope", "summary", str(tmp_path / "nope.json")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and "model file not found" in done.stderr


def _write(path, text):
    path.write_text(text)
    return path
