"""`convscope.utils`' `pad_sequences`, `pack_x_y_sample_weight`/`unpack_x_y_sample_weight`, `is_keras_tensor`,
`get_source_inputs` and `standardize_dtype` against Keras 3.15.1's."""

import numpy as np
import pytest

import convscope as cs
from convscope import utils

SEQUENCES = [[1], [2, 3], [4, 5, 6], [], [7, 8, 9, 10]]


@pytest.mark.parametrize("kwargs", [{}, dict(maxlen=2), dict(padding="post"), dict(truncating="post", maxlen=3),
                                    dict(value=-1, dtype="float32"), dict(maxlen=6, padding="post")])
def test_pad_sequences_is_keras(keras, kwargs):
    ours = utils.pad_sequences(SEQUENCES, **kwargs)
    theirs = keras.utils.pad_sequences(SEQUENCES, **kwargs)
    assert ours.dtype == theirs.dtype
    np.testing.assert_array_equal(ours, theirs)


def test_pad_sequences_of_vectors_and_its_refusals(keras):
    vectors = [np.ones((2, 3)), np.zeros((1, 3))]
    np.testing.assert_array_equal(utils.pad_sequences(vectors, dtype="float32"),
                                  keras.utils.pad_sequences(vectors, dtype="float32"))
    with pytest.raises(ValueError, match=r"pad_sequences: argument `padding` must be 'pre' or 'post', got 'mid'"):
        utils.pad_sequences(SEQUENCES, padding="mid")
    with pytest.raises(ValueError, match=r"pad_sequences: argument `sequences` must hold sequences; item 1 is int"):
        utils.pad_sequences([[1], 2])
    with pytest.raises(ValueError, match=r"pad_sequences: argument `dtype`='int32' cannot hold the string"):
        utils.pad_sequences([["a"]], value="x")


@pytest.mark.parametrize("data", [np.ones(2), (np.ones(2),), (np.ones(2), np.zeros(2)),
                                  [np.ones(2), np.zeros(2), np.ones(2)]])
def test_unpack_and_pack_are_keras(keras, data):
    ours, theirs = utils.unpack_x_y_sample_weight(data), keras.utils.unpack_x_y_sample_weight(data)
    assert [item is None for item in ours] == [item is None for item in theirs]
    assert type(utils.pack_x_y_sample_weight(*ours)) is type(keras.utils.pack_x_y_sample_weight(*theirs))
    with pytest.raises(ValueError, match="unpack_x_y_sample_weight: argument `data` must be"):
        utils.unpack_x_y_sample_weight((1, 2, 3, 4))
    assert utils.pack_x_y_sample_weight([1, 2]) == keras.utils.pack_x_y_sample_weight([1, 2])


def test_symbolic_tensor_helpers():
    a, b = cs.Input((3,)), cs.Input((3,))
    joined = cs.layers.Dense(2)(cs.layers.Add()([a, b * 2.0]))
    assert utils.is_keras_tensor(joined) and not utils.is_keras_tensor(np.ones(3))
    sources = utils.get_source_inputs(joined)
    assert len(sources) == 2 and sources[0] is a and sources[1] is b


@pytest.mark.parametrize("dtype", [None, "int", int, float, bool, np.float64, np.dtype("int8"), "float16", "uint8",
                                   "bool", "bfloat16"])
def test_standardize_dtype_is_keras(keras, dtype):
    assert utils.standardize_dtype(dtype) == keras.utils.standardize_dtype(dtype)


def test_standardize_dtype_refuses_what_keras_refuses(keras):
    for name in ("float", "double"):
        with pytest.raises(ValueError):
            keras.utils.standardize_dtype(name)
        with pytest.raises(ValueError, match="standardize_dtype: invalid dtype"):
            utils.standardize_dtype(name)
