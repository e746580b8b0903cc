"""The `convscope` command end to end: every subcommand, --help, and the one-line errors (exit 2)."""

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
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
    backend.clear_session(free_memory=False)
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
    backend.clear_session(free_memory=False)
    ours = tmp_path / "ours.json"
    ours.write_text(load_model_file(model_py).to_json())
    code, from_json, _ = run(capsys, "summary", ours)
    assert code == 0 and from_json == from_py
    backend.clear_session(free_memory=False)
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
        {"class_name": "Sequential", "config": {"layers": [{"class_name": "ConvLSTM3D", "config": {}}]}})),
     "unknown layer class 'ConvLSTM3D'"),
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


# -- issue 14: every user error is one line with exit status 2, before anything large is allocated ----------

UNBUILT_PY = """
from convscope.models import Sequential
from convscope.layers import Dense
model = Sequential([Dense(2)])
"""

THREE_UNITS_PY = """
from convscope.models import Sequential
from convscope.layers import Dense, Flatten, Input
model = Sequential([Input(shape=(8, 8, 1)), Flatten(), Dense(3, activation="softmax")])
"""


def _one_error_line(err, command):
    assert err.count("\n") == 1 and err.startswith(f"convscope {command}: error: ") and "Traceback" not in err


@pytest.mark.parametrize("text", [
    "[" * 100_000 + "]" * 100_000,
    '{"a": ' * 100_000 + "1" + "}" * 100_000,
], ids=["arrays", "objects"])
def test_deeply_nested_json_is_refused_in_one_line(capsys, tmp_path, text):
    from convscope import cli
    path = _write(tmp_path / "deep.json", text)
    code, out, err = run(capsys, "summary", path)
    assert code == 2 and out == ""
    _one_error_line(err, "summary")
    assert f"{path} nests its JSON more than {cli.MAX_JSON_DEPTH} levels deep" in err


def test_brackets_inside_json_strings_do_not_count_as_nesting(capsys, tmp_path):
    from convscope import cli
    name = "[{" * (cli.MAX_JSON_DEPTH + 1)
    config = dict(KERAS_JSON, config=dict(KERAS_JSON["config"], name=name))
    code, out, err = run(capsys, "summary", _write(tmp_path / "brackets.json", json.dumps(config)))
    assert code == 0 and err == "" and f'Model: "{name}"' in out


HUGE_UNITS = 100_000


def _huge_dense_json(path):
    return _write(path, json.dumps({"class_name": "Sequential", "config": {"name": "huge", "layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, HUGE_UNITS]}},
        {"class_name": "Dense", "config": {"units": HUGE_UNITS}}]}}))


def test_a_config_whose_weights_do_not_fit_is_refused_without_allocating_them(tmp_path):
    """A 1e5 x 1e5 Dense (37 GiB of float32) under a 3 GiB address-space limit: refused in one line from
    the shapes alone (an allocation would fail with MemoryError, and filling it would take minutes)."""
    resource = pytest.importorskip("resource")
    path = _huge_dense_json(tmp_path / "huge.json")
    limit = 3 * 2 ** 30

    def limit_memory():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    done = subprocess.run([sys.executable, "-m", "convscope", "summary", str(path)], capture_output=True,
                          text=True, timeout=120, preexec_fn=limit_memory)
    assert done.returncode == 2 and done.stdout == ""
    _one_error_line(done.stderr, "summary")
    parameters = HUGE_UNITS * HUGE_UNITS + HUGE_UNITS
    assert (f"the model in {path} needs {parameters * 4 / 2 ** 30:.1f} GiB for its weights ({parameters:,} "
            f"parameters), more than the {limit / 2 / 2 ** 30:.1f} GiB allowed") in done.stderr


def test_the_weight_memory_check_counts_every_weight(capsys, tmp_path, monkeypatch):
    from convscope import cli
    model = cli.load_model_file(_write(tmp_path / "model.py", MODEL_PY))
    needed = sum(w.nbytes for w in model.get_weights())
    config = _write(tmp_path / "model.json", model.to_json())
    monkeypatch.setattr(cli, "memory_limit", lambda: needed)
    code, out, _ = run(capsys, "summary", config)
    assert code == 0 and "Total params: 690" in out
    monkeypatch.setattr(cli, "memory_limit", lambda: needed - 1)
    code, out, err = run(capsys, "summary", config)
    assert code == 2 and out == ""
    _one_error_line(err, "summary")
    assert f"needs {needed / 1024:.1f} KiB for its weights (690 parameters), more than the" in err


def test_the_probe_build_takes_no_names_and_no_random_numbers(tmp_path):
    """The shapes are learnt from a probe model before the real one is built: a config without names gets
    the automatic names, and a seed the weights, that building it directly gives."""
    from convscope.cli import load_model_file
    from convscope.models import Sequential
    from convscope.utils import set_random_seed
    config = {"layers": [{"class_name": "InputLayer", "config": {"batch_shape": [None, 8, 8, 1]}},
                         {"class_name": "Conv2D", "config": {"filters": 2, "kernel_size": 3}},
                         {"class_name": "Flatten", "config": {}},
                         {"class_name": "Dense", "config": {"units": 3}}]}
    path = _write(tmp_path / "anonymous.json", json.dumps(config))
    backend.clear_session(free_memory=False)
    set_random_seed(5)
    loaded = load_model_file(path)
    backend.clear_session(free_memory=False)
    set_random_seed(5)
    direct = Sequential.from_config(config)
    assert loaded.name == direct.name == "sequential"
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in direct.layers] == \
        ["conv2d", "flatten", "dense"]
    for ours, theirs in zip(loaded.get_weights(), direct.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
        assert ours.flags.c_contiguous and ours.flags.writeable


def test_a_dpi_beyond_the_limit_is_refused_before_drawing(capsys, model_py, tmp_path):
    from convscope.viz._model import MAX_DPI
    png = tmp_path / "big.png"
    code, out, err = run(capsys, "plot", model_py, "-o", png, "--dpi", "100000")
    assert code == 2 and out == "" and not png.exists()
    _one_error_line(err, "plot")
    assert f"--dpi must be between 1 and {MAX_DPI}, got 100000" in err


def test_a_png_of_too_many_pixels_is_refused_naming_dpi_and_its_size(capsys, tmp_path):
    from convscope.cli import load_model_file
    from convscope.viz import plot_model
    from convscope.viz.raster import MAX_PNG_PIXELS
    source = ("from convscope.models import Sequential\nfrom convscope.layers import Dense, Input\n"
              "model = Sequential([Input(shape=(4,))] + [Dense(2) for _ in range(150)])\n")
    path = _write(tmp_path / "long.py", source)
    drawing = plot_model(load_model_file(path), to_file=None).drawing
    width, height = round(drawing.width * 1200 / 96), round(drawing.height * 1200 / 96)
    assert width * height > MAX_PNG_PIXELS
    png = tmp_path / "long.png"
    code, out, err = run(capsys, "plot", path, "-o", png, "--dpi", "1200")
    assert code == 2 and out == "" and not png.exists()
    _one_error_line(err, "plot")
    assert (f"--dpi 1200 would make a {width:,}x{height:,}-pixel PNG ({width * height:,} pixels), more than "
            f"the limit of {MAX_PNG_PIXELS:,} pixels") in err


@pytest.mark.parametrize("command", ["summary", "explain", "plot", "report", "train"])
def test_help_says_a_python_model_file_is_executed(capsys, command):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "a .py file defining `model` (executed, as `python file.py` would run it: only run files you trust)" \
        in text


@pytest.mark.parametrize("command, source, extra, prefix", [
    ("summary", UNBUILT_PY, [], "summary:"),
    ("report", UNBUILT_PY, [], "report:"),
    ("plot", UNBUILT_PY, ["-o", "x.svg"], "plot_model:"),
    ("train", THREE_UNITS_PY, ["--verbose", "0"], "fit:"),
])
def test_library_messages_are_not_prefixed_twice(capsys, tmp_path, monkeypatch, command, source, extra, prefix):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, command, _write(tmp_path / "model.py", source), *extra)
    assert code == 2
    _one_error_line(err, command)
    message = err.split(": error: ", 1)[1]
    assert message.startswith(f"{prefix} ") and message.count(prefix) == 1


def test_training_a_model_without_an_input_shape_is_one_line(capsys, tmp_path):
    code, out, err = run(capsys, "train", _write(tmp_path / "unbuilt.py", UNBUILT_PY), "--verbose", "0")
    assert code == 2 and out == ""
    _one_error_line(err, "train")
    assert "the model has no input shape" in err


@pytest.mark.parametrize("error", [MemoryError, RecursionError])
def test_running_out_of_memory_or_stack_is_one_line(capsys, model_py, monkeypatch, error):
    from convscope import cli

    def fail(path):
        raise error()

    monkeypatch.setattr(cli, "load_model_file", fail)
    code, out, err = run(capsys, "summary", model_py)
    assert code == 2 and out == ""
    _one_error_line(err, "summary")
    assert f"({error.__name__})" in err


# -- graph models through the command line ---------------------------------------------------------

RESNET_PY = """
import convscope as keras
from convscope import layers
inputs = keras.Input((12, 12, 1), name="image")
x = layers.Conv2D(4, 3, padding="same", activation="relu", name="stem")(inputs)
y = layers.Conv2D(4, 3, padding="same", name="branch")(x)
shortcut = layers.Conv2D(4, 1, name="projection")(x)
x = layers.Add(name="residual")([y, shortcut])
outputs = layers.Dense(3, activation="softmax", name="head")(layers.GlobalAveragePooling2D()(x))
model = keras.Model(inputs, outputs, name="tiny_resnet")
"""


@pytest.mark.parametrize("source", ["py", "json"])
def test_summary_explain_plot_and_report_of_a_graph_model(capsys, tmp_path, source):
    path = _write(tmp_path / "resnet.py", RESNET_PY)
    if source == "json":
        import runpy
        model = runpy.run_path(str(path))["model"]
        path = _write(tmp_path / "resnet.json", model.to_json())
    code, out, err = run(capsys, "summary", path, "--all")
    assert code == 0 and err == "" and "Connected to" in out and "residual (Add)" in out
    assert "branch[0][0]" in out and "projection[0][0]" in out
    code, out, err = run(capsys, "explain", path, "--lang", "ko")
    assert code == 0 and "residual" in out
    code, out, _ = run(capsys, "plot", path, "-o", tmp_path / "resnet.svg", "--show-shapes")
    svg = (tmp_path / "resnet.svg").read_text()
    assert code == 0 and all(name in svg for name in ("stem", "branch", "projection", "residual", "head"))
    code, out, _ = run(capsys, "report", path, "-o", tmp_path / "report.html")
    html = (tmp_path / "report.html").read_text()
    assert code == 0 and "residual" in html and "Connected to" in html
