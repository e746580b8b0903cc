"""Bad arguments and inputs raise ValueError/TypeError naming the layer, the argument, the expectation and the value."""

import numpy as np
import pytest

from convscope import layers as L


@pytest.mark.parametrize("factory,error,pattern", [
    (lambda: L.Conv2D(0, 3), ValueError, r"Conv2D 'conv2d': argument `filters` must be a positive int, got 0"),
    (lambda: L.Conv2D(-4, 3), ValueError, r"Conv2D 'conv2d': argument `filters` must be a positive int, got -4"),
    (lambda: L.Conv2D(2.5, 3), TypeError, r"Conv2D 'conv2d': argument `filters` must be a positive int, got 2.5"),
    (lambda: L.Conv2D(4, 0), ValueError, r"Conv2D 'conv2d': argument `kernel_size` must be positive, got 0"),
    (lambda: L.Conv2D(4, (3, -1)), ValueError, r"Conv2D 'conv2d': argument `kernel_size` must be positive, got \(3, -1\)"),
    (lambda: L.Conv2D(4, (3, 3, 3)), ValueError,
     r"Conv2D 'conv2d': argument `kernel_size` must be an int or a tuple of 2 ints, got \(3, 3, 3\)"),
    (lambda: L.Conv2D(4, 3, strides=2, dilation_rate=2), ValueError,
     r"Conv2D 'conv2d': `strides > 1` is not supported together with `dilation_rate > 1`; "
     r"got strides=\(2, 2\) and dilation_rate=\(2, 2\)"),
    (lambda: L.Conv2D(6, 3, groups=4), ValueError,
     r"Conv2D 'conv2d': argument `filters` must be divisible by `groups`; got filters=6 and groups=4"),
    (lambda: L.Conv2D(4, 3, padding="full"), ValueError,
     r"Conv2D 'conv2d': argument `padding` must be 'valid' or 'same', got 'full'"),
    (lambda: L.Conv2D(4, 3, data_format="NHWC"), ValueError,
     r"Conv2D 'conv2d': argument `data_format` must be one of \('channels_last', 'channels_first'\) or None, got 'NHWC'"),
    (lambda: L.Conv2D(4, 3, activation="rellu"), ValueError,
     r"Conv2D 'conv2d': argument `activation`: get_activation: unknown activation 'rellu'"),
    (lambda: L.Conv2D(4, 3, kernel_initializer="glorot"), ValueError,
     r"Conv2D 'conv2d': argument `kernel_initializer` is an unknown initializer 'glorot'"),
    (lambda: L.Conv2D(4, 3, use_bias="yes"), TypeError, r"Conv2D 'conv2d': argument `use_bias` must be True or False, got 'yes'"),
    (lambda: L.Dense(0), ValueError, r"Dense 'dense': argument `units` must be a positive int, got 0"),
    (lambda: L.Dense(3, activation="softmaxx"), ValueError, r"Dense 'dense': argument `activation`:.*'softmaxx'"),
    (lambda: L.Dense(3, bias_initializer={"class_name": "Nope", "config": {}}), ValueError,
     r"Dense 'dense': argument `bias_initializer` names an unknown initializer 'Nope'"),
    (lambda: L.Dense(3, kernel_regularizer="l3"), ValueError, r"Dense 'dense': argument `kernel_regularizer`: .*'l3'"),
    (lambda: L.Dense(3, input_shape=(28, float("nan"))), TypeError,
     r"Dense: argument `input_shape` must be a tuple of positive ints, got \(28, nan\)"),
    (lambda: L.Dense(3, input_shape=(28, 0)), ValueError,
     r"Dense: argument `input_shape` must be a tuple of positive ints, got \(28, 0\)"),
    (lambda: L.Dense(3, foo=1), TypeError, r"Dense: unexpected keyword argument\(s\): foo"),
    (lambda: L.MaxPooling2D(0), ValueError, r"MaxPooling2D 'max_pooling2d': argument `pool_size` must be positive, got 0"),
    (lambda: L.MaxPooling2D(padding="causal"), ValueError,
     r"MaxPooling2D 'max_pooling2d': argument `padding` must be 'valid' or 'same', got 'causal'"),
    (lambda: L.AveragePooling2D(data_format="channels_middle"), ValueError,
     r"AveragePooling2D 'average_pooling2d': argument `data_format` must be one of"),
    (lambda: L.Dropout(1.5), ValueError, r"Dropout 'dropout': argument `rate` must be a finite number in \[0.0, 1.0\], got 1.5"),
    (lambda: L.Dropout(float("nan")), ValueError, r"Dropout 'dropout': argument `rate` must be a finite number"),
    (lambda: L.Dropout(0.5, noise_shape=(None, 0)), ValueError,
     r"Dropout 'dropout': argument `noise_shape` must hold positive ints or None, got \(None, 0\)"),
    (lambda: L.BatchNormalization(momentum=1.5), ValueError,
     r"BatchNormalization 'batch_normalization': argument `momentum` must be a finite number in \[0.0, 1.0\], got 1.5"),
    (lambda: L.BatchNormalization(epsilon=0), ValueError,
     r"BatchNormalization 'batch_normalization': argument `epsilon` must be a finite number in \(0.0, inf\]"),
    (lambda: L.BatchNormalization(gamma_initializer="onez"), ValueError,
     r"BatchNormalization 'batch_normalization': argument `gamma_initializer` is an unknown initializer 'onez'"),
    (lambda: L.Activation("swishy"), ValueError, r"Activation 'activation': argument `activation`:.*'swishy'"),
    (lambda: L.ReLU(max_value=-1), ValueError, r"ReLU 're_lu': argument `max_value` must be a finite number in \[0.0, inf\]"),
    (lambda: L.Reshape((2, -1, -1)), ValueError, r"Reshape 'reshape': argument `target_shape` may hold at most one -1"),
    (lambda: L.Reshape((2, float("inf"))), TypeError, r"Reshape 'reshape': argument `target_shape` must be a tuple of ints"),
    (lambda: L.ZeroPadding2D((1, 2, 3)), ValueError, r"ZeroPadding2D 'zero_padding2d': argument `padding` must be an int"),
    (lambda: L.ZeroPadding2D(-1), ValueError, r"ZeroPadding2D 'zero_padding2d': argument `padding` must be non-negative"),
    (lambda: L.Input(shape=(28, float("inf"))), TypeError,
     r"InputLayer: argument `shape` must be a tuple of positive ints, got \(28, inf\)"),
    (lambda: L.Input(batch_shape=(None, -2)), ValueError,
     r"InputLayer: argument `batch_shape` must be a tuple of positive ints, got \(None, -2\)"),
    (lambda: L.Input(), ValueError, r"InputLayer: give exactly one of shape, batch_shape"),
])
def test_constructor_errors(factory, error, pattern):
    with pytest.raises(error, match=pattern):
        factory()


@pytest.mark.parametrize("layer_factory,shape,pattern", [
    (lambda: L.Conv2D(4, (5, 5)), (None, 3, 3, 1),
     r"Conv2D 'conv2d': input shape \(None, 3, 3, 1\) is too small: the kernel spans 5 rows .*'valid'-padded input "
     r"has 3 rows, so the output would have -1"),
    (lambda: L.Conv2D(4, 3, dilation_rate=3), (None, 6, 9, 1),
     r"Conv2D 'conv2d': input shape \(None, 6, 9, 1\) is too small: the kernel spans 7 rows"),
    (lambda: L.Conv2D(4, 3, groups=2), (None, 8, 8, 3),
     r"Conv2D 'conv2d': the input's 3 channels must be divisible by groups=2 \(input shape \(None, 8, 8, 3\)\)"),
    (lambda: L.Conv2D(4, 3), (None, 8, 8), r"Conv2D 'conv2d': expected a 4-D input \(batch, rows, cols, channels\), "
                                         r"got shape \(None, 8, 8\) of rank 3"),
    (lambda: L.Conv2D(4, 3), (None, 8, 8, None), r"Conv2D 'conv2d': the channel axis of the input must be known"),
    (lambda: L.MaxPooling2D(3), (None, 2, 8, 1),
     r"MaxPooling2D 'max_pooling2d': input shape \(None, 2, 8, 1\) is too small: the pooling window has 3 rows"),
    (lambda: L.GlobalAveragePooling2D(), (None, 8), r"GlobalAveragePooling2D 'global_average_pooling2d': expected a 4-D input"),
    (lambda: L.Dense(3), (None,), r"Dense 'dense': expected an input of rank >= 2 \(batch, ..., features\), got shape \(None,\)"),
    (lambda: L.Dense(3), (None, None), r"Dense 'dense': the last axis of the input must be known"),
    (lambda: L.BatchNormalization(axis=3), (None, 4, 4), r"BatchNormalization 'batch_normalization': argument `axis`=3 does "
                                                        r"not name a feature axis of an input of shape \(None, 4, 4\)"),
    (lambda: L.Reshape((5, -1)), (None, 12), r"Reshape 'reshape': cannot reshape an input of shape \(None, 12\) "
                                             r"\(12 values per sample\) to target_shape \(5, -1\)"),
    (lambda: L.Dropout(0.5, noise_shape=(None, 1)), (None, 3, 4),
     r"Dropout 'dropout': argument `noise_shape` \(None, 1\) needs one entry per axis"),
    (lambda: L.Softmax(axis=2), (None, 5), r"Softmax 'softmax': argument `axis`=2 does not name a feature axis"),
])
def test_input_shape_errors(layer_factory, shape, pattern):
    with pytest.raises(ValueError, match=pattern):
        layer_factory().build_from_shape(shape)


def test_built_layer_rejects_other_channels_and_rank():
    conv = L.Conv2D(2, 3)
    conv(np.zeros((1, 5, 5, 3)))
    with pytest.raises(ValueError, match=r"Conv2D 'conv2d': expected input of shape \(None, 5, 5, 3\), got \(1, 5, 5, 4\)"):
        conv(np.zeros((1, 5, 5, 4)))
    with pytest.raises(ValueError, match=r"Conv2D 'conv2d': expected an input with 3 channels \(the layer is built "
                                         r"for them\), got shape \(None, 9, 9, 4\)"):
        conv.compute_output_shape((None, 9, 9, 4))
    dense = L.Dense(2)
    dense(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"Dense 'dense': expected input of shape \(None, 3\), got \(2, 3, 3\)"):
        dense(np.zeros((2, 3, 3)))
    with pytest.raises(TypeError, match=r"Dense 'dense': expected a numeric array, got dtype <U1"):
        dense(np.array([["a", "b", "c"]]))


def test_layer_set_weights_count_and_shapes():
    conv = L.Conv2D(2, 3)
    conv.build_from_shape((None, 5, 5, 1))
    with pytest.raises(ValueError, match=r"Conv2D 'conv2d': set_weights expected a list of 2 arrays \(shapes "
                                         r"\[\(3, 3, 1, 2\), \(2,\)\]\), got 1"):
        conv.set_weights([np.zeros((3, 3, 1, 2))])
    with pytest.raises(ValueError, match=r"Conv2D 'conv2d': set_weights got shape \(3, 3, 2, 2\) for 'conv2d/kernel', "
                                         r"expected \(3, 3, 1, 2\)"):
        conv.set_weights([np.zeros((3, 3, 2, 2)), np.zeros(2)])


def test_unknown_layer_config_values():
    with pytest.raises(ValueError, match=r"layers.deserialize: BatchNormalization config has lora_rank=4"):
        L.deserialize({"class_name": "BatchNormalization", "config": {"lora_rank": 4}})
    with pytest.raises(TypeError, match=r"layers.deserialize: argument `config` must be a dict with 'class_name'"):
        L.deserialize(["Dense"])
