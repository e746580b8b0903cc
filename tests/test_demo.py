"""The demo (README command 1) and the examples: real training on embedded data, offline."""

import runpy
from pathlib import Path

import numpy as np
import pytest

from convscope import demo
from convscope.datasets import digits
from convscope.layers import Conv2D, Dense, Flatten, MaxPooling2D

REPO = Path(__file__).resolve().parents[1]


def test_demo_reaches_95_percent_on_the_embedded_digits_quickly():
    """The CI's training test: ≥ 95% test accuracy on real handwritten digits, well under a minute."""
    result = demo.run(epochs=8, verbose=0)
    assert result.seconds < 60
    assert result.test_accuracy >= 0.95
    # recount the accuracy independently of `evaluate`, from the raw predictions
    (_, _), (x_test, y_test) = digits.load_data()
    probabilities = result.model.predict(x_test[..., None].astype(np.float32) / 16, verbose=0)
    recount = float(np.mean(probabilities.argmax(axis=1) == y_test))
    assert recount == pytest.approx(result.test_accuracy, abs=1e-6)
    assert len(result.history["loss"]) == 8
    assert result.history["loss"][-1] < result.history["loss"][0] / 4


def test_demo_keeps_seed_002s_layer_sequence():
    model = demo.build_model()
    assert [type(layer) for layer in model.layers] == [Conv2D, MaxPooling2D, Conv2D, MaxPooling2D,
                                                       Flatten, Dense, Dense]
    first, second = model.layers[0].get_config(), model.layers[2].get_config()
    assert tuple(first["kernel_size"]) == (3, 3) and first["padding"] == "same"
    assert tuple(second["kernel_size"]) == (2, 2) and second["padding"] == "same"
    assert model.output_shape == (None, 10)
    # (3·3·1+1)·32 + (2·2·32+1)·64 + (2·2·64+1)·128 + (128+1)·10
    assert model.count_params() == 320 + 8256 + 32896 + 1290


def test_demo_prints_the_summary_progress_and_accuracy(capsys):
    result = demo.run(epochs=1, verbose=2)
    out = capsys.readouterr().out
    assert 'Model: "seed002_digits"' in out
    assert "Total params: 42,762" in out
    assert "Epoch 1/1" in out
    assert f"Test accuracy: {result.test_accuracy:.2%} on 359 unseen digits" in out


def test_demo_is_repeatable():
    first = demo.run(epochs=1, verbose=0, seed=4)
    second = demo.run(epochs=1, verbose=0, seed=4)
    assert first.history == second.history
    assert all(np.array_equal(a, b) for a, b in zip(first.model.get_weights(),
                                                    second.model.get_weights()))


def test_demo_argument_errors():
    with pytest.raises(ValueError, match=r"demo.run: argument `epochs` must be a positive int, got 0"):
        demo.run(epochs=0)
    with pytest.raises(ValueError, match=r"demo.run: argument `verbose` must be 0, 1, 2 or 'auto', "
                                         r"got 'loud'"):
        demo.run(verbose="loud")


@pytest.mark.slow
def test_seed002_example_trains_on_the_shapes(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(REPO / "examples" / "seed002_shapes.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert (tmp_path / "seed002_model.svg").read_bytes().lstrip().startswith((b"<?xml", b"<svg"))
    assert "Total params: 178" in out   # seed 002's model: 20 + 27 + 104 + 27
    accuracy = float(out.rsplit("test accuracy:", 1)[1].split()[0])
    assert accuracy >= 0.85   # chance is 1/3
