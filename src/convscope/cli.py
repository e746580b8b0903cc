"""The `convscope` command: summary, explain, plot, report, train, export (ONNX) and demo on a model file.

A model is given as a Python file that defines `model`, a JSON config (from
`Sequential.to_json()` / `get_config()`, or Keras' `model.to_json()` for the
supported layers) or a saved `.convscope`, Keras `.keras` or legacy `.h5` file (only
read, never executed: see `convscope.io.keras_files`).  A `.py` model file is executed
(with `runpy`, as `python file.py` would run it): only run files you trust.  JSON
and `.convscope` files are only read: a JSON config nested deeper than
`MAX_JSON_DEPTH` levels, or whose weights would need more than half of the
memory, is refused before anything is allocated.  Every user error prints one
line on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import json
import os
import re
import runpy
import sys
from pathlib import Path
from typing import List, NamedTuple, Optional

import numpy as np

EXIT_USAGE = 2
DATASETS = ("digits", "shapes", "mnist", "fashion_mnist")
MAX_JSON_DEPTH = 100     # Keras' model configs nest about 8 levels; Python's parser recurses per level
TRUST_NOTE = ("A .py model file is executed, as `python file.py` would run it: only run files you trust.")


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""


class Output(NamedTuple):
    """The file a command writes: the option as typed (`-o`), its value and the path."""

    option: str
    value: str
    path: Path


# What each command writes: (argparse dest, option as typed, accepted suffixes, what it is).
OUTPUTS = {"plot": ("output", "-o", (".svg", ".png"), "a picture"),
           "report": ("output", "-o", (".html", ".htm"), "an HTML report"),
           "train": ("save", "--save", (".convscope", ".keras", ".h5", ".hdf5"), "a saved model"),
           "export": ("output", "-o", (".onnx",), "an ONNX model"),
           "predict": ("output", "-o", (".parquet",), "a Parquet")}
_OUTPUT: contextvars.ContextVar = contextvars.ContextVar("convscope_cli_output", default=None)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line `argv` (default: sys.argv[1:]); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        with _writing(args):
            return int(args.handler(args) or 0)
    except CLIError as error:
        message = str(error)
    except MemoryError:
        message = ("ran out of memory (MemoryError): the model or the data is too large for this machine; "
                   "make the layers, the images or --batch-size smaller")
    except RecursionError:
        message = "the input is nested too deeply to process (RecursionError)"
    print(f"convscope {args.command}: error: {_one_line(message)}", file=sys.stderr)
    return EXIT_USAGE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convscope",
        description="Keras-compatible CNNs on NumPy that show their work: shapes, parameters, kernels, "
                    "FLOPs and receptive fields, explained.", epilog=TRUST_NOTE)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    summary = sub.add_parser("summary", help="print the Keras-style summary table",
                             description="Print model.summary(), optionally with extra columns.")
    _model_arg(summary)
    summary.add_argument("--show-kernels", action="store_true", help="add the number of 2-D kernels")
    summary.add_argument("--show-flops", action="store_true", help="add MACs and FLOPs per layer")
    summary.add_argument("--show-receptive-field", action="store_true", help="add receptive field size/jump/start")
    summary.add_argument("--show-memory", action="store_true", help="add activation and parameter memory")
    summary.add_argument("--all", action="store_true", help="all of the extra columns")
    summary.set_defaults(handler=_cmd_summary)

    explain = sub.add_parser("explain", help="explain every layer's numbers with formulas",
                             description="Explain shapes, parameters, kernels, FLOPs, memory and "
                                         "receptive fields, layer by layer.")
    _model_arg(explain)
    _lang_arg(explain)
    explain.add_argument("--format", choices=("text", "markdown", "json"), default="text",
                         help="output format (default: text)")
    explain.add_argument("--layer", metavar="NAME", help="explain only this layer (name or 0-based index)")
    explain.add_argument("--batch-size", type=int, metavar="N", help="batch size for per-batch memory")
    explain.set_defaults(handler=_cmd_explain)

    plot = sub.add_parser("plot", help="draw the model diagram (SVG or PNG)",
                          description="Draw the model as keras.utils.plot_model does, without Graphviz.")
    _model_arg(plot)
    plot.add_argument("-o", "--output", default="model.png", metavar="FILE",
                      help="picture to write; .svg or .png (default: model.png)")
    plot.add_argument("--show-shapes", action="store_true", help="show input/output shapes")
    plot.add_argument("--show-layer-activations", action="store_true", help="show activation functions")
    plot.add_argument("--hide-layer-names", action="store_true", help="do not show layer names")
    plot.add_argument("--rankdir", choices=("TB", "LR"), default="TB", help="direction (default: TB)")
    plot.add_argument("--dpi", type=int, default=96, help="resolution of a PNG (default: 96)")
    _lang_arg(plot)
    plot.set_defaults(handler=_cmd_plot)

    report = sub.add_parser("report", help="write the interactive HTML report",
                            description="Write one self-contained HTML report of the model.")
    _model_arg(report)
    _lang_arg(report)
    report.add_argument("-o", "--output", default="report.html", metavar="FILE",
                        help="HTML file to write (default: report.html)")
    report.add_argument("--sample", choices=DATASETS, metavar="DATASET",
                        help="show feature maps for the first test image of this dataset "
                             f"({', '.join(DATASETS)})")
    report.add_argument("--count", type=int, default=1, metavar="N",
                        help="with --sample: show N test images side by side (1-8, default 1), with their labels")
    report.add_argument("--misclassified", action="store_true",
                        help="with --sample: show test images the model gets wrong (among the first 2,000)")
    report.add_argument("--image", action="append", metavar="PICTURE",
                        help="a PNG/JPEG to run through the model (resized and converted as Keras' load_img; "
                             "repeat for several, shown side by side; at most 8)")
    report.add_argument("--rescale", type=float, default=1.0, metavar="FACTOR",
                        help="multiply the pictures' pixel values (0-255) by this, e.g. 0.00392156862745098 for "
                             "1/255 (default: 1, as img_to_array)")
    report.add_argument("--label", type=int, action="append", metavar="CLASS",
                        help="the true class of each picture (repeat, in the order of --image)")
    report.set_defaults(handler=_cmd_report)

    train = sub.add_parser("train", help="compile and fit the model on a dataset",
                           description="Compile the model and train it on a named dataset, then "
                                       "report the test loss and accuracy.")
    _model_arg(train)
    train.add_argument("--dataset", choices=DATASETS, default="digits", help="dataset (default: digits)")
    train.add_argument("--epochs", type=int, default=1, help="epochs (default: 1)")
    train.add_argument("--batch-size", type=int, default=32, help="batch size (default: 32)")
    train.add_argument("--optimizer", default="adam", help="optimizer name (default: adam)")
    train.add_argument("--loss", default="sparse_categorical_crossentropy",
                       help="loss name (default: sparse_categorical_crossentropy)")
    train.add_argument("--validation-split", type=float, default=0.0, help="fraction held out (default: 0)")
    train.add_argument("--limit", type=int, metavar="N", help="train on the first N images only")
    train.add_argument("--save", metavar="FILE", help="save the trained model to FILE")
    train.add_argument("--seed", type=int, metavar="N", help="random seed for the weights and shuffling")
    train.add_argument("--verbose", type=int, choices=(0, 1, 2), default=2, help="Keras verbosity (default: 2)")
    train.set_defaults(handler=_cmd_train)

    export = sub.add_parser("export", help="write the model's inference graph as an ONNX file",
                            description="Export the model to ONNX, as model.export(FILE, format='onnx'): a "
                                        "dynamic batch axis, the model's input and output names.")
    _model_arg(export)
    export.add_argument("-o", "--output", default="model.onnx", metavar="FILE",
                        help="ONNX file to write (default: model.onnx)")
    from .io.onnx_export import DEFAULT_OPSET
    export.add_argument("--opset", type=int, metavar="N", help=f"ONNX opset version (default: {DEFAULT_OPSET})")
    export.add_argument("--no-fold-batch-norm", action="store_true",
                        help="keep BatchNormalization nodes instead of folding them into the convolutions")
    export.set_defaults(handler=_cmd_export)

    predict = sub.add_parser("predict", help="score a folder of PNG/JPEG images into a Parquet file, on Dask",
                             description="Predict every PNG/JPEG under a folder (any size: resized to the model's "
                                         "input), in chunks on a Dask cluster; one row per file (path, "
                                         "prediction, error).")
    _model_arg(predict)
    predict.add_argument("images", metavar="FOLDER", help="folder of .png/.jpg/.jpeg files (searched recursively)")
    predict.add_argument("-o", "--output", default="predictions.parquet", metavar="FILE",
                         help="Parquet file to write (default: predictions.parquet)")
    predict.add_argument("--scheduler", metavar="ADDRESS",
                         help="a Dask scheduler address (tcp://host:8786), 'threads' or 'synchronous' "
                              "(default: a LocalCluster of one worker process per CPU)")
    predict.add_argument("--batch-size", type=int, default=32, help="images per predict batch (default: 32)")
    predict.add_argument("--chunk-size", type=int, default=256, help="images per Dask task (default: 256)")
    predict.add_argument("--rescale", type=float, default=1 / 255, metavar="FACTOR",
                         help="multiply the pixel values (0-255) by this (default: 1/255)")
    predict.add_argument("--no-progress", action="store_true", help="no progress bar")
    predict.set_defaults(handler=_cmd_predict)

    demo = sub.add_parser("demo", help="run the demo: train seed 002's CNN on the embedded digits",
                          description="Train seed 002's CNN on the embedded 8x8 digits, offline, and "
                                      "print the test accuracy.")
    demo.add_argument("--epochs", type=int, help="epochs (default: the demo's own)")
    demo.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1, help="Keras verbosity (default: 1)")
    demo.set_defaults(handler=_cmd_demo)
    return parser


def _model_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL",
                        help="a .py file defining `model` (executed, as `python file.py` would run it: only "
                             "run files you trust), a .json model config, or a saved .convscope, .keras or .h5 file")
    parser.epilog = TRUST_NOTE


def _lang_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lang", choices=("en", "ko"), default="en", help="language (default: en)")


# -- loading models -------------------------------------------------------------------------------

def load_model_file(path) -> object:
    """The model defined by a .py file, a .json config, or a saved .convscope, .keras or .h5 file."""
    path = Path(path)
    if not path.exists():
        raise CLIError(f"model file not found: {path}")
    if not path.is_file():
        raise CLIError(f"model path is not a file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".py":
        return _model_from_python(path)
    if suffix == ".json":
        return _model_from_json(path)
    if suffix in (".convscope", ".zip", ".keras", ".h5", ".hdf5"):
        from .io import load_model
        try:
            return load_model(str(path))
        except (ValueError, TypeError, KeyError, OSError, ImportError) as error:
            raise CLIError(f"cannot load the saved model {path}: {error}") from None
    raise CLIError(f"unsupported model file {path}: expected a .py file defining `model`, "
                   "a .json config, a .convscope file, a Keras 3 .keras archive or a legacy Keras .h5 file")


def _model_from_python(path: Path):
    try:
        namespace = runpy.run_path(str(path), run_name="__convscope_model__")
    except SystemExit as error:
        raise CLIError(f"model file {path} exited (status {error.code}) before defining `model`") from None
    except Exception as error:  # the user's script may fail in any way; report it in one line
        raise CLIError(f"model file {path} failed: {type(error).__name__}: {error}") from None
    model = namespace.get("model")
    if model is None:
        raise CLIError(f"model file {path} defines no variable `model`")
    if not isinstance(getattr(model, "layers", None), (list, tuple)):
        raise CLIError(f"`model` in {path} is a {type(model).__name__}, expected a convscope model (Sequential or keras.Model(inputs, outputs))")
    return model


def _model_from_json(path: Path):
    from .layers.base import deferred_weights
    from .models import Sequential
    from .models.functional import Functional
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise CLIError(f"{path} is not valid JSON: {error}") from None
    depth = json_depth(text, MAX_JSON_DEPTH)
    if depth > MAX_JSON_DEPTH:
        raise CLIError(f"{path} nests its JSON more than {MAX_JSON_DEPTH} levels deep; a model config nests "
                       "fewer than 20, so it is not read")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise CLIError(f"{path} is not valid JSON: {error}") from None
    except RecursionError:
        raise CLIError(f"{path} nests its JSON too deeply to read") from None
    if not isinstance(data, dict):
        raise CLIError(f"{path} must hold a JSON object (a model config), got {type(data).__name__}")
    functional = "input_layers" in data
    if "class_name" in data:
        functional = data["class_name"] in ("Functional", "Model")
        if not functional and data["class_name"] != "Sequential":
            raise CLIError(f"{path} describes a {data['class_name']!r} model; expected a Sequential or "
                           "Functional model config")
        data = data.get("config", {})
    build = Functional.from_config if functional else Sequential.from_config
    try:
        with deferred_weights():        # every weight's shape, nothing allocated, no automatic name taken
            probe = build(data if functional else _with_names(data))
        _check_weight_memory(probe, path)
        return build(data)
    except (ValueError, TypeError, KeyError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        raise CLIError(f"cannot build the model from {path}: {message}") from None
    except RecursionError:
        raise CLIError(f"cannot build the model from {path}: its config nests too deeply") from None
    except MemoryError:
        raise CLIError(f"cannot build the model from {path}: its weights do not fit in memory") from None


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def json_depth(text: str, limit: int) -> int:
    """How deeply `text` nests JSON arrays and objects (strings skipped), without recursion; the
    count stops at `limit` + 1."""
    depth = deepest = 0
    for match in _JSON_BRACKET.finditer(_JSON_STRING.sub("", text)):
        if match.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > limit:
                break
        else:
            depth -= 1
    return deepest


def _with_names(config):
    """`config` with a name on the model and on every layer that has none, so that building a probe
    of it takes no automatic name (`dense`, `dense_1`, ...) that the real model should get."""
    if isinstance(config, dict) and isinstance(config.get("layers"), list):
        return dict(config, name=config.get("name") or "probe", layers=_with_names(config["layers"]))
    if not isinstance(config, list):
        return config
    named = []
    for index, layer in enumerate(config):
        inner = layer.get("config") if isinstance(layer, dict) else None
        if isinstance(layer, dict) and (inner is None or isinstance(inner, dict)) and not (inner or {}).get("name"):
            layer = dict(layer, config=dict(inner or {}, name=f"probe_{index}"))
        named.append(layer)
    return named


def memory_limit() -> int:
    """Bytes the weights of a model may take: half of the machine's memory, or of the process'
    address-space limit (`ulimit -v`) when that is lower."""
    limits = []
    with contextlib.suppress(AttributeError, ValueError, OSError):
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    with contextlib.suppress(ImportError, AttributeError, ValueError, OSError):
        import resource
        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft != resource.RLIM_INFINITY and soft > 0:
            limits.append(soft)
    return (min(limits) if limits else 8 * 2 ** 30) // 2


def _check_weight_memory(model, path: Path) -> None:
    weights = model.weights
    count = sum(int(v.value.size) for v in weights)
    needed = sum(int(v.value.size) * v.value.itemsize for v in weights)
    limit = memory_limit()
    if needed > limit:
        raise CLIError(f"the model in {path} needs {_bytes(needed)} for its weights ({count:,} parameters), "
                       f"more than the {_bytes(limit)} allowed (half of the memory this process may use); make "
                       "its layers smaller")


def _bytes(count: int) -> str:
    for unit, size in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} B"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _call(what: str, function, *args, **kwargs):
    """Run a library call, turning its argument errors into one-line CLI errors, prefixed with `what`
    unless the library's message already starts with it (no "fit: fit: ...").  A failed write of the
    command's output names its option and file, never the temporary file beside it."""
    try:
        return function(*args, **kwargs)
    except OSError as error:
        output = _OUTPUT.get()
        if output is not None and _about(error, output):
            reason = os.strerror(error.errno) if error.errno else str(error)
            raise CLIError(f"{output.option} {output.value}: cannot write the file: {reason}") from None
        message = str(error)
        raise CLIError(message if message.startswith(f"{what}:") else f"{what}: {message}") from None
    except (ValueError, TypeError, ImportError) as error:
        message = str(error)
        raise CLIError(message if message.startswith(f"{what}:") else f"{what}: {message}") from None


# -- output files ---------------------------------------------------------------------------------

@contextlib.contextmanager
def _writing(args):
    """Check the file the command will write before any work (`check_output`) and let `_call` name
    it when writing fails."""
    token = _OUTPUT.set(check_output(args))
    try:
        yield
    finally:
        _OUTPUT.reset(token)


def check_output(args) -> Optional[Output]:
    """The command's output file, checked: a known suffix, an existing folder (the CLI creates
    none), not a folder itself, and Pillow for a PNG.  None for a command that writes no file."""
    if args.command not in OUTPUTS or getattr(args, OUTPUTS[args.command][0], None) is None:
        return None
    dest, option, suffixes, what = OUTPUTS[args.command]
    value = str(getattr(args, dest))
    path = Path(value)
    if path.suffix.lower() not in suffixes:
        ending = ", ".join(suffixes[:-1]) + " or " + suffixes[-1] if len(suffixes) > 1 else suffixes[0]
        raise CLIError(f"{option} must name {what} file ending in {ending}, got {value!r}")
    folder = path.parent
    if not folder.is_dir():
        state = "is not a folder" if folder.exists() else "does not exist"
        raise CLIError(f"{option} {value}: the folder '{folder}' {state}; convscope creates no folders, "
                       "make it first")
    try:
        is_folder = path.is_dir()
    except OSError as error:        # a name the file system cannot hold (too long, ...)
        raise CLIError(f"{option} {value}: cannot write the file: {error.strerror}") from None
    if is_folder:
        raise CLIError(f"{option} {value} is a folder; name a file to write")
    if path.suffix.lower() == ".png" and not _has_pillow():
        raise CLIError(f"{option} {value}: writing a PNG needs Pillow (pip install convscope[viz]); install it "
                       "or write an .svg file")
    return Output(option, value, path)


def _has_pillow() -> bool:
    try:
        import PIL.Image  # noqa: F401
    except ImportError:
        return False
    return True


def _about(error: OSError, output: Output) -> bool:
    """Whether `error` concerns the output file or a temporary file written beside it."""
    name = output.path.name
    for filename in (error.filename, error.filename2):
        if filename is None:
            continue
        other = Path(os.fsdecode(filename))
        if other.name == name or other.name.startswith("." + name[:100]):
            return True
    return False


# -- commands -------------------------------------------------------------------------------------

def _cmd_summary(args) -> int:
    model = load_model_file(args.model)
    flags = {name: args.all or getattr(args, name)
             for name in ("show_kernels", "show_flops", "show_receptive_field", "show_memory")}
    _call("summary", model.summary, **{k: v for k, v in flags.items() if v})
    return 0


def _cmd_explain(args) -> int:
    from .explain import explain
    model = load_model_file(args.model)
    if args.batch_size is not None and args.batch_size < 1:
        raise CLIError(f"--batch-size must be a positive int, got {args.batch_size}")
    result = _call("explain", explain, model, lang=args.lang, batch_size=args.batch_size)
    if args.layer is not None:
        key = int(args.layer) if args.layer.lstrip("-").isdigit() else args.layer
        layer = _call("explain", result.layer, key)
        if args.format == "json":
            print(json.dumps(layer.to_dict(), ensure_ascii=False, indent=2))
        else:
            print(layer.to_markdown() if args.format == "markdown" else layer.to_text(), end="")
        return 0
    if args.format == "json":
        print(result.to_json())
    elif args.format == "markdown":
        print(result.to_markdown(), end="")
    else:
        print(result.to_text(), end="")
    return 0


def _cmd_plot(args) -> int:
    from .viz import plot_model
    from .viz._model import MAX_DPI
    from .viz.raster import PictureTooLarge
    if not 1 <= args.dpi <= MAX_DPI:
        raise CLIError(f"--dpi must be between 1 and {MAX_DPI}, got {args.dpi}")
    model = load_model_file(args.model)

    def draw():
        try:
            return plot_model(model, to_file=args.output, show_shapes=args.show_shapes,
                              show_layer_names=not args.hide_layer_names, rankdir=args.rankdir, dpi=args.dpi,
                              show_layer_activations=args.show_layer_activations, lang=args.lang)
        except PictureTooLarge as error:
            raise CLIError(f"--dpi {args.dpi} would make a {error.width:,}x{error.height:,}-pixel PNG "
                           f"({error.width * error.height:,} pixels), more than the limit of {error.limit:,} "
                           "pixels; lower --dpi or write an .svg file") from None

    _call("plot_model", draw)
    print(f"wrote {args.output}")
    return 0


def _cmd_report(args) -> int:
    from .viz.report import report
    if args.sample is not None and args.image:
        raise CLIError("report: give --sample or --image, not both")
    if args.label and not args.image:
        raise CLIError("report: --label needs --image (one true class per picture)")
    if not np.isfinite(args.rescale) or args.rescale == 0:
        raise CLIError(f"report: --rescale must be a finite, non-zero number, got {args.rescale}")
    if not 1 <= args.count <= 8:
        raise CLIError(f"report: --count must be between 1 and 8, got {args.count}")
    if (args.count != 1 or args.misclassified) and args.sample is None:
        raise CLIError("report: --count and --misclassified need --sample DATASET")
    model = load_model_file(args.model)
    sample, labels = None, args.label
    if args.sample is not None:
        sample, labels = _test_samples(args.sample, model, args.count, args.misclassified)
    if args.image:
        sample = _pictures(args.image, model, args.rescale)
    _call("report", report, model, sample=sample, labels=labels, to_file=args.output, lang=args.lang)
    print(f"wrote {args.output}")
    return 0


def _test_samples(dataset: str, model, count: int, misclassified: bool):
    """`count` test images of `dataset` (the first ones, or the first the model gets wrong) and their labels."""
    (_, _), (x_test, y_test) = _load_dataset(dataset)
    labels = np.asarray(y_test).reshape(len(y_test), -1)
    labels = labels.argmax(axis=1) if labels.shape[1] > 1 else labels[:, 0]
    if not misclassified:
        return list(_fit_images(x_test[:count], model)), [int(v) for v in labels[:count]]
    images = _fit_images(x_test[:2000], model)
    scores = np.asarray(_call("predict", model.predict, images, verbose=0))
    if scores.ndim != 2 or scores.shape[1] < 2:
        raise CLIError("report: --misclassified needs a classifier (one score per class in the output), got "
                       f"outputs of shape {scores.shape[1:]}")
    wrong = np.flatnonzero(scores.argmax(axis=1) != labels[:2000])[:count]
    if not len(wrong):
        print(f"the model gets the first {len(images)} {dataset} test images right; showing the first {count}")
        wrong = np.arange(count)
    return [images[i] for i in wrong], [int(labels[i]) for i in wrong]


def _pictures(paths, model, rescale: float) -> list:
    """Each --image as one sample of the model input (Keras' load_img + img_to_array), times --rescale."""
    from .viz.images import load_image
    from .viz.filters import data_formats
    if len(paths) > 8:
        raise CLIError(f"report: --image: at most 8 pictures are shown side by side, got {len(paths)}")
    shape = getattr(model, "input_shape", None)
    layout = _call("report", data_formats, model)[0]
    try:
        return [_call("--image", load_image, path, shape, layout, where="--image") * np.float32(rescale)
                for path in paths]
    except ImportError as error:
        raise CLIError(str(error)) from None


def _cmd_train(args) -> int:
    if args.seed is not None:
        from .utils import set_random_seed
        _call("set_random_seed", set_random_seed, args.seed)
    model = load_model_file(args.model)
    for name in ("epochs", "batch_size"):
        if getattr(args, name) < 1:
            raise CLIError(f"--{name.replace('_', '-')} must be a positive int, got {getattr(args, name)}")
    if not 0.0 <= args.validation_split < 1.0:
        raise CLIError(f"--validation-split must be in [0, 1), got {args.validation_split}")
    (x_train, y_train), (x_test, y_test) = _load_dataset(args.dataset)
    if args.limit is not None:
        if args.limit < 1:
            raise CLIError(f"--limit must be a positive int, got {args.limit}")
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
    x_train, x_test = _fit_images(x_train, model), _fit_images(x_test, model)
    _call("compile", model.compile, optimizer=args.optimizer, loss=args.loss, metrics=["accuracy"])
    _call("fit", model.fit, x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
          validation_split=args.validation_split, verbose=args.verbose)
    results = _call("evaluate", model.evaluate, x_test, y_test, batch_size=args.batch_size, verbose=0)
    loss, accuracy = (list(results) + [None, None])[:2] if isinstance(results, (list, tuple)) else (results, None)
    line = f"test loss {loss:.4f}"
    if accuracy is not None:
        line += f", test accuracy {accuracy:.4f}"
    print(line)
    if args.save:
        from .io import save_model
        _call("save", save_model, model, args.save)
        print(f"saved {args.save}")
    return 0


def _cmd_export(args) -> int:
    from .io.onnx_export import export_onnx
    model = load_model_file(args.model)
    _call("export", export_onnx, model, args.output, opset_version=args.opset,
          fold_batch_norm=not args.no_fold_batch_norm)
    print(f"wrote {args.output}")
    return 0


def _cmd_predict(args) -> int:
    from .distribute import score_folder
    model = load_model_file(args.model)
    rows = _call("score_folder", score_folder, model, args.images, args.output, batch_size=args.batch_size,
                 chunk_size=args.chunk_size, rescale=args.rescale, scheduler=args.scheduler,
                 progress=not args.no_progress)
    print(f"wrote {args.output}: {rows} rows")
    return 0


def _cmd_demo(args) -> int:
    from . import demo
    options = {"verbose": args.verbose}
    if args.epochs is not None:
        options["epochs"] = args.epochs
    _call("demo", demo.run, **options)
    return 0


# -- data -----------------------------------------------------------------------------------------

def _load_dataset(name: str):
    import importlib
    module = importlib.import_module(f".datasets.{name}", __package__)
    return _call(f"{name}.load_data", module.load_data)


def _fit_images(images: np.ndarray, model) -> np.ndarray:
    """Images scaled to [0, 1] and reshaped to the model's input (channels added as needed)."""
    try:
        target = tuple(model.input_shape[1:])
    except AttributeError:
        raise CLIError("the model has no input shape, so the dataset's images cannot be fitted to it; give its "
                       "first layer `input_shape=` or start it with `Input(shape=...)`") from None
    x = np.asarray(images, dtype=np.float32)
    peak = float(x.max()) if x.size else 1.0
    x = x / (peak if peak > 0 else 1.0)
    per_image = int(np.prod(x.shape[1:]))
    if None in target or int(np.prod(target)) != per_image:
        raise CLIError(f"the dataset's images have shape {x.shape[1:]}, which does not fit the model input "
                       f"{tuple(model.input_shape)}")
    return x.reshape((len(x),) + target)


if __name__ == "__main__":
    sys.exit(main())
