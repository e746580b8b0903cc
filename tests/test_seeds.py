"""The numbers printed in the five seed posts (../shared/seeds), as acceptance tests."""

import io
import re
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest

import convscope.utils
from convscope.layers import Conv2D, Dense, MaxPool2D, ZeroPadding2D
from convscope.models import Sequential
from convscope.utils import np_utils
from seed_models import seed000_model, seed001_model, seed002_model

SEEDS = Path(__file__).resolve().parents[1].parent / "shared" / "seeds"


SEED001_ROWS = [
    ((None, 28, 28, 75), 750), ((None, 28, 28, 75), 300), ((None, 14, 14, 75), 0),
    ((None, 14, 14, 50), 33800), ((None, 14, 14, 50), 0), ((None, 14, 14, 50), 200),
    ((None, 7, 7, 50), 0), ((None, 7, 7, 25), 11275), ((None, 7, 7, 25), 100),
    ((None, 4, 4, 25), 0), ((None, 400), 0), ((None, 512), 205312), ((None, 512), 0), ((None, 25), 12825),
]


def test_seed001_every_shape_and_parameter_count():
    model = seed001_model()
    assert [(layer.output_shape, layer.count_params()) for layer in model.layers] == SEED001_ROWS
    assert model.count_params() == 264_562
    assert sum(v.value.size for v in model.trainable_weights) == 264_262
    assert sum(v.value.size for v in model.non_trainable_weights) == 300
    # the third MaxPool2D(padding="same") takes 7 to 4
    assert model.layers[9].input_shape == (None, 7, 7, 25) and model.layers[9].output_shape == (None, 4, 4, 25)


def test_seed001_summary_lines_in_a_fresh_session():
    lines = []
    seed001_model().summary(print_fn=lines.append)
    assert lines[0] == 'Model: "sequential"'
    assert lines[4] == "conv2d (Conv2D)              (None, 28, 28, 75)        750       "
    assert lines[6] == "batch_normalization (BatchNo (None, 28, 28, 75)        300       "
    assert lines[-4:] == ["Total params: 264,562", "Trainable params: 264,262", "Non-trainable params: 300",
                          "_" * 65]


def _collapse(line):
    return " ".join(line.split())


def test_seed001_summary_is_the_posts_table():
    path = SEEDS / "001_9e8e7ade239a934e.txt"
    if not path.exists():
        pytest.skip("seed posts not found in ../shared/seeds")
    text = path.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(text) if line.startswith('Model: "'))
    end = next(i for i in range(start, len(text)) if text[i].startswith("Non-trainable params"))
    posted = [_collapse(line) for line in text[start:end + 2]]
    # the post's model came late in a session: use its names to print the very same table
    names = [posted[0].split('"')[1]] + [row.split()[0] for row in posted if re.match(r"^\w+ \(", row)]
    names = [n for n in names if n != "Layer"]
    printed = []
    seed001_model(names).summary(print_fn=printed.append)
    assert [_collapse(line) for line in printed] == posted


def test_seed000_kernel_counts_and_forward_pass():
    model = seed000_model()
    weights = model.get_weights()
    assert weights[0].T.shape == (32, 1, 5, 5)
    assert weights[2].T.shape == (64, 32, 2, 2)
    assert [layer.output_shape for layer in model.layers][:4] == [
        (None, 28, 28, 32), (None, 14, 14, 32), (None, 14, 14, 64), (None, 7, 7, 64)]
    assert model.output_shape == (None, 10)
    probabilities = model.predict(np.random.default_rng(0).random((3, 28, 28, 1)), verbose=0)
    assert probabilities.shape == (3, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    y = convscope.utils.to_categorical([7, 2, 1], 10)
    assert y.shape == (3, 10) and y.argmax(axis=1).tolist() == [7, 2, 1]


def test_seed002_weight_counts():
    cases = [((3, (2, 2)), (3, 3, 1), 12), ((1, (2, 2)), (3, 3, 3), 12), ((2, (2, 2)), (3, 3, 3), 24)]
    for (filters, kernel), input_shape, count in cases:
        layer = Conv2D(filters, kernel, padding="same", input_shape=input_shape)
        model = Sequential([layer])
        assert layer.kernel.value.size == count
        assert model.output_shape == (None, 3, 3, filters)
    dense = Dense(4, input_dim=9)
    Sequential([dense])
    assert dense.kernel.value.size == 36
    valid = Sequential([Conv2D(1, (2, 2), padding="valid", input_shape=(3, 3, 1))])
    assert valid.output_shape == (None, 2, 2, 1) and valid.layers[0].kernel.value.size == 4


def test_seed002_eight_by_eight_model():
    model = seed002_model()
    assert [(layer.output_shape, layer.count_params()) for layer in model.layers] == [
        ((None, 8, 8, 2), 20), ((None, 4, 4, 2), 0), ((None, 4, 4, 3), 27), ((None, 2, 2, 3), 0),
        ((None, 12), 0), ((None, 8), 104), ((None, 3), 27)]
    assert model.predict(np.ones((2, 8, 8, 1)), verbose=0).shape == (2, 3)
    assert np_utils.to_categorical([0, 2, 1]).tolist() == [[1, 0, 0], [0, 0, 1], [0, 1, 0]]


def test_seed003_same_and_explicit_padding():
    # SAME: output = ceil(13 / 5) = 3 (VALID would give 2)
    assert Conv2D(1, (1, 6), strides=5, padding="same").compute_output_shape((None, 1, 13, 1)) == (None, 1, 3, 1)
    assert Conv2D(1, (1, 6), strides=5).compute_output_shape((None, 1, 13, 1)) == (None, 1, 2, 1)
    assert MaxPool2D((1, 6), strides=5, padding="same").compute_output_shape((None, 1, 13, 1)) == (None, 1, 3, 1)
    # (4 + 2*1 - 3) / 1 + 1 = 4
    model = Sequential([ZeroPadding2D(1, input_shape=(4, 4, 1)), Conv2D(1, (3, 3))])
    assert model.output_shape == (None, 4, 4, 1)


def test_seed004_dense_conv_and_pool():
    dense = Dense(30)
    out = dense(np.zeros((64, 10, 20), dtype=np.float32))
    kernel, bias = dense.weights
    assert (kernel.shape, bias.shape, out.shape, dense.count_params()) == ((20, 30), (30,), (64, 10, 30), 630)

    conv = Conv2D(filters=16, kernel_size=(5, 5), strides=(1, 1))
    assert conv.compute_output_shape((64, 300, 300, 3)) == (64, 296, 296, 16)
    conv_out = conv(np.zeros((1, 300, 300, 3), dtype=np.float32))  # one sample keeps the test fast
    assert conv_out.shape == (1, 296, 296, 16) and conv.count_params() == 1216 == (5 * 5 * 3 + 1) * 16

    same = Conv2D(filters=16, kernel_size=(5, 5), strides=(1, 1), padding="same")
    assert same.compute_output_shape((64, 300, 300, 3)) == (64, 300, 300, 16)
    assert same(np.zeros((1, 300, 300, 3), dtype=np.float32)).shape == (1, 300, 300, 16)
    assert same.count_params() == 1216

    pool = MaxPool2D()
    assert pool.compute_output_shape((64, 296, 296, 16)) == (64, 148, 148, 16)
    assert pool(conv_out).shape == (1, 148, 148, 16)
    assert pool.count_params() == 0


def test_seed000_summary_runs_through_print():
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        seed000_model().summary()
    total = (5 * 5 * 1 + 1) * 32 + (2 * 2 * 32 + 1) * 64 + (7 * 7 * 64 + 1) * 1000 + (1000 + 1) * 10
    assert f"Total params: {total:,}" in buffer.getvalue()
