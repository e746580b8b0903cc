"""Public Keras CNN scripts, trimmed, with only their imports changed (examples/keras_scripts/),
each run to the end in its own process, and what each one leaves behind checked."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "examples" / "keras_scripts"


def run_script(name: str, cwd: Path) -> str:
    """Runs one script in a fresh interpreter (cwd: a temporary folder); returns its stdout."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SCRIPTS), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, str(SCRIPTS / name)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    assert "Traceback" not in proc.stderr
    return proc.stdout


def number_after(label: str, text: str) -> float:
    match = re.search(re.escape(label) + r"\s*([-+0-9.eE]+)", text)
    assert match, f"{label!r} not printed"
    return float(match.group(1))


def test_the_scripts_only_change_imports_and_say_what_else_they_trim():
    """Each script names its source and lists its changes; none imports keras or tensorflow."""
    names = sorted(p.name for p in SCRIPTS.glob("*.py") if p.name != "standin.py")
    assert len(names) >= 5
    for name in names:
        text = (SCRIPTS / name).read_text(encoding="utf-8")
        assert "Source:" in text and "Changes from the original" in text, name
        assert not re.search(r"^\s*(import|from)\s+(keras|tensorflow)\b", text, re.M), name


def test_keras_io_mnist_convnet(mnist_dir, tmp_path):
    out = run_script("mnist_convnet.py", tmp_path)
    assert "Total params: 34,826" in out          # the keras.io page's own figure
    assert number_after("Test accuracy:", out) > 0.5  # 1 epoch on 6,000 images; chance is 0.1


def test_keras_io_denoising_autoencoder(mnist_dir, tmp_path):
    out = run_script("denoising_autoencoder.py", tmp_path)
    assert "denoised: (500, 28, 28, 1)" in out
    assert number_after("test loss:", out) < 0.69  # below the loss of predicting 0.5 everywhere


def test_keras2_cifar10_resnet_with_callbacks(tmp_path):
    out = run_script("cifar10_resnet.py", tmp_path)
    assert "ResNet8v1" in out and "Learning rate:  0.001" in out
    saved = sorted((tmp_path / "saved_models").glob("cifar10_ResNet8v1_model.*.h5"))
    assert saved, "ModelCheckpoint saved nothing"
    from convscope.models import load_model
    model = load_model(saved[-1])
    assert model.count_params() == number_after("Total params:", out.replace(",", ""))
    assert 0.0 <= number_after("Test accuracy:", out) <= 1.0


def test_tensorflow_tutorial_flowers_from_a_folder(tmp_path):
    pytest.importorskip("PIL")
    out = run_script("flowers_classification.py", tmp_path)
    assert "['daisy', 'dandelion', 'roses', 'sunflowers', 'tulips']" in out
    assert "(32, 64, 64, 3)" in out and "(32,)" in out
    assert re.search(r"most likely belongs to \w+ with a [0-9.]+ percent confidence", out)


def test_keras_blog_little_data_with_image_data_generator(tmp_path):
    pytest.importorskip("PIL")
    out = run_script("little_data_augmentation.py", tmp_path)
    assert "Found 96 images belonging to 2 classes." in out
    assert "Found 32 images belonging to 2 classes." in out
    assert (tmp_path / "first_try.weights.h5").stat().st_size > 100_000
