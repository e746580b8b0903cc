"""summary(): tf.keras 2's layout (columns end at .45/.85/1. of 65 chars), options and errors."""

import pytest

from convscope.layers import BatchNormalization, Conv2D, Dense, Flatten, Input
from convscope.models import Sequential


def small_model():
    return Sequential([Input(shape=(8, 8, 3)), Conv2D(4, 3, padding="same"), BatchNormalization(trainable=False),
                       Flatten(), Dense(2)])


def test_layout_columns_and_rules():
    lines = []
    small_model().summary(print_fn=lines.append)
    assert lines[0] == 'Model: "sequential"'
    assert lines[1] == "_" * 65 and lines[3] == "=" * 65
    assert lines[2] == "Layer (type)".ljust(29) + "Output Shape".ljust(26) + "Param #".ljust(10)
    rows = lines[4:-4:2]
    assert [row[:29].rstrip() for row in rows] == ["conv2d (Conv2D)", "batch_normalization (BatchNo",
                                                  "flatten (Flatten)", "dense (Dense)"]
    assert [row[29:55].rstrip() for row in rows] == ["(None, 8, 8, 4)", "(None, 8, 8, 4)", "(None, 256)",
                                                    "(None, 2)"]
    assert [row[55:].rstrip() for row in rows] == ["112", "16", "0", "514"]
    assert all(len(line) == 65 for line in lines[2:-4])
    assert lines[5] == "_" * 65 and lines[-5] == "=" * 65
    assert lines[-4:] == ["Total params: 642", "Trainable params: 626", "Non-trainable params: 16", "_" * 65]


def test_line_length_positions_and_trainable_column():
    lines = []
    small_model().summary(line_length=80, positions=[30, 60, 80], print_fn=lines.append, show_trainable=True)
    assert lines[1] == "_" * 91
    assert lines[2].startswith("Layer (type)".ljust(30) + "Output Shape".ljust(30) + "Param #".ljust(20) + "Trainable")
    rows = lines[4:-4:2]
    assert [row[80:].strip() for row in rows] == ["Y", "N", "Y", "Y"]
    fractions = []
    small_model().summary(line_length=100, positions=[.5, .8, 1.], print_fn=fractions.append)
    assert fractions[2].index("Output Shape") == 50 and fractions[2].index("Param #") == 80


def test_analysis_columns_are_appended():
    lines = []
    small_model().summary(print_fn=lines.append, show_kernels=True, show_flops=True)
    header = lines[2]
    assert header.startswith("Layer (type)")
    for title in ("Kernels", "MACs", "FLOPs"):
        assert title in header
    assert len(lines[1]) > 65 and len(lines[1]) == len(lines[3])


def test_summary_errors():
    unbuilt = Sequential([Dense(3)])
    with pytest.raises(ValueError, match=r"summary: Sequential 'sequential' has not been built yet"):
        unbuilt.summary()
    model = small_model()
    with pytest.raises(ValueError, match=r"summary: argument `positions` must be 3 positive, finite numbers"):
        model.summary(positions=[0.5, 1.0])
    with pytest.raises(ValueError, match=r"summary: argument `positions` must increase"):
        model.summary(positions=[40, 30, 65])
    with pytest.raises(ValueError, match=r"summary: argument `line_length` must be an int >= 20, got 5"):
        model.summary(line_length=5)
    with pytest.raises(TypeError, match=r"summary: argument `print_fn` must be callable"):
        model.summary(print_fn="stdout")
    with pytest.raises(TypeError, match=r"summary: argument `show_trainable` must be True or False"):
        model.summary(show_trainable="yes")
