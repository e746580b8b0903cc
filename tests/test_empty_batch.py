"""A batch of 0 samples gives Keras' empty output (its shape from Keras 3.15.1 itself) for the layers whose ops
reshape per batch (adaptive max pooling, transposed convolutions, the 1-D family, the 3-D layers)."""

import numpy as np
import pytest

from convscope import layers as L

CASES = [
    (lambda m: m.AdaptiveMaxPooling2D((2, 2)), (5, 5, 3)), (lambda m: m.AdaptiveMaxPooling1D(2), (5, 3)),
    (lambda m: m.AdaptiveAveragePooling2D(3), (5, 4, 2)),
    (lambda m: m.Conv1DTranspose(2, 3), (7, 3)), (lambda m: m.Conv2DTranspose(2, 3, strides=2), (4, 4, 3)),
    (lambda m: m.DepthwiseConv1D(3), (5, 2)), (lambda m: m.SeparableConv1D(2, 3), (5, 2)),
    (lambda m: m.Conv3D(2, 3), (4, 4, 4, 1)), (lambda m: m.Conv3DTranspose(2, 2, strides=2), (2, 2, 2, 1)),
    (lambda m: m.MaxPooling3D(), (4, 4, 4, 1)), (lambda m: m.AveragePooling3D(2, padding="same"), (3, 3, 3, 1)),
    (lambda m: m.GlobalAveragePooling3D(data_format="channels_first"), (3, 2, 2, 2)),
    (lambda m: m.UpSampling3D(), (2, 2, 2, 1)), (lambda m: m.Cropping3D(), (3, 3, 3, 1)),
]


@pytest.mark.parametrize("make,shape", CASES)
def test_an_empty_batch_gives_keras_empty_output(keras, make, shape):
    theirs = make(keras.layers)
    expected = tuple(keras.ops.convert_to_numpy(theirs(np.zeros((0,) + shape, "float32"))).shape)
    assert make(L)(np.zeros((0,) + shape, "float32")).shape == expected
