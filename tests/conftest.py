"""Shared fixtures: the seeds and MNIST folders beside the repo, fresh layer names per test."""

import os
from pathlib import Path

import pytest

import convscope.backend
from convscope.ops import compiled

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(autouse=True)
def _fresh_session():
    """Each test starts with automatic names at `conv2d`, `dense`, ... as in a new Keras session."""
    convscope.backend.clear_session(free_memory=False)      # names only: a gc pass per test costs ~1 s
    yield


@pytest.fixture(scope="session")
def keras():
    """Keras 3 on its torch backend, the oracle of configs, files and defaults (skips where absent)."""
    pytest.importorskip("torch")
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip(f"needs Keras on the torch backend, got {keras.backend.backend()}")
    return keras


@pytest.fixture
def mnist_dir():
    """The four original MNIST IDX .gz files, or skip when they are not beside the repo."""
    folder = SHARED / "datasets" / "mnist"
    if not (folder / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("MNIST files not found in ../shared/datasets/mnist")
    return folder


@pytest.fixture(params=["numpy", "compiled"])
def kernel_path(request):
    """Run a test on the NumPy reference path and on the compiled (numba) kernels."""
    if request.param == "compiled" and not compiled.available():
        pytest.skip("numba is not installed")
    with compiled.use_compiled(request.param == "compiled"):
        yield request.param
