"""The shape arithmetic against the seeds' numbers and a brute-force count of window positions."""

import itertools

import pytest

from convscope.ops.shapes import (conv_output_length, dropped_by_floor, normalize_tuple, pad_amounts,
                                  receptive_field_step, same_padding)


def brute_force_positions(length, kernel, stride, dilation, before, after):
    """Count window starts by walking the padded axis one cell at a time."""
    padded = length + before + after
    span = dilation * (kernel - 1) + 1
    return sum(1 for start in range(0, padded, stride) if start + span <= padded)


def test_seed003_same_output_is_ceil_of_input_over_stride():
    # seed 003: SAME gives ceil(13 / 5) = 3
    assert conv_output_length(13, 6, stride=5, padding="same") == 3
    assert conv_output_length(13, 1, stride=5, padding="SAME") == 3


def test_seed003_explicit_padding_formula():
    # seed 003: (4 + 2*1 - 3) / 1 + 1 = 4
    assert conv_output_length(4, 3, 1, 1, (1, 1)) == 4


def test_seed001_and_seed004_sizes():
    assert conv_output_length(28, 3, 1, 1, "same") == 28          # seed 001 first conv
    assert conv_output_length(7, 2, 2, 1, "same") == 4            # seed 001 third pooling
    assert conv_output_length(300, 5, 1, 1, "valid") == 296       # seed 004
    assert conv_output_length(296, 2, 2, 1, "valid") == 148       # seed 004 pooling


def test_tensorflow_same_puts_the_odd_cell_after():
    # stride 2 on an even input: TF pads 0 before, 1 after (PyTorch would pad symmetrically)
    assert same_padding(28, 3, stride=2) == (0, 1)
    assert same_padding(7, 2, stride=2) == (0, 1)
    assert same_padding(5, 4, stride=1) == (1, 2)


@pytest.mark.parametrize("length,kernel,stride,dilation", [
    (n, k, s, d) for n, k, s, d in itertools.product(range(1, 12), range(1, 6), range(1, 4), range(1, 4))
])
def test_output_length_matches_a_brute_force_count(length, kernel, stride, dilation):
    for padding in ("valid", "same", (1, 2), (0, 3)):
        before, after = pad_amounts(length, kernel, stride, dilation, padding)
        expected = brute_force_positions(length, kernel, stride, dilation, before, after)
        assert max(conv_output_length(length, kernel, stride, dilation, padding), 0) == expected
    out_same = conv_output_length(length, kernel, stride, dilation, "same")
    assert out_same == -(-length // stride)


def test_cells_dropped_by_the_floor():
    # 7 cells, kernel 2, stride 2, valid: windows cover 0..5, the 7th cell is dropped
    assert dropped_by_floor(7, 2, 2) == 1
    assert dropped_by_floor(8, 2, 2) == 0


def test_receptive_field_through_two_convs_and_a_pool():
    field, jump, start = 1, 1, 0.0
    field, jump, start = receptive_field_step(field, jump, start, 3, 1, 1, pad_before=1)
    assert (field, jump, start) == (3, 1, -1)
    field, jump, start = receptive_field_step(field, jump, start, 2, 2, 1, pad_before=0)
    assert (field, jump, start) == (4, 2, -1)
    field, jump, start = receptive_field_step(field, jump, start, 3, 1, 2, pad_before=2)
    assert (field, jump, start) == (12, 2, -5)


def test_normalize_tuple_messages():
    assert normalize_tuple(3, 2, "kernel_size", "Conv2D") == (3, 3)
    assert normalize_tuple((2, 5), 2, "kernel_size", "Conv2D") == (2, 5)
    with pytest.raises(ValueError, match=r"Conv2D: argument `kernel_size` must be positive, got 0"):
        normalize_tuple(0, 2, "kernel_size", "Conv2D")
    with pytest.raises(ValueError, match=r"tuple of 2 ints, got \(1, 2, 3\)"):
        normalize_tuple((1, 2, 3), 2, "strides", "Conv2D")
    with pytest.raises(TypeError, match=r"`strides` must contain ints, got \(1.5, 2\)"):
        normalize_tuple((1.5, 2), 2, "strides", "Conv2D")
    with pytest.raises(TypeError, match="must be an int or a tuple"):
        normalize_tuple("3", 2, "kernel_size", "Conv2D")
