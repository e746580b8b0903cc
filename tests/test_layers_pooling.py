"""Pooling layers against PyTorch (TF's SAME padding applied by hand), shapes, aliases, config."""

import re

import numpy as np
import pytest

from _calls import backward, forward
from convscope import backend, ops
from convscope.ops import compiled
from convscope.layers import (AveragePooling2D, AvgPool2D, GlobalAveragePooling2D, GlobalMaxPooling2D,
                              MaxPool2D, MaxPooling2D, deserialize, serialize)

torch = pytest.importorskip("torch")
F = torch.nn.functional


def tf_same_split(length, kernel, stride):
    out = -(-length // stride)
    total = max((out - 1) * stride + kernel - length, 0)
    return total // 2, total - total // 2


def torch_pool(x_nchw, layer, kind):
    """Max pooling pads with -inf; average pooling divides by the number of real cells (TF's SAME)."""
    (kh, kw), (sh, sw) = layer.pool_size, layer.strides
    pads = (0, 0, 0, 0)
    if layer.padding == "same":
        top, bottom = tf_same_split(x_nchw.shape[2], kh, sh)
        left, right = tf_same_split(x_nchw.shape[3], kw, sw)
        pads = (left, right, top, bottom)
    if kind == "max":
        return F.max_pool2d(F.pad(x_nchw, pads, value=-float("inf")), (kh, kw), (sh, sw))
    sums = F.avg_pool2d(F.pad(x_nchw, pads), (kh, kw), (sh, sw))
    counts = F.avg_pool2d(F.pad(torch.ones_like(x_nchw), pads), (kh, kw), (sh, sw))
    return sums / counts


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("cls,kind", [(MaxPooling2D, "max"), (AveragePooling2D, "avg")])
@pytest.mark.parametrize("kwargs", [dict(), dict(pool_size=3, strides=2, padding="same"),
                                    dict(pool_size=(2, 3), strides=(1, 2), padding="same"),
                                    dict(pool_size=(3, 2), strides=1)])
def test_pooling_matches_torch(cls, kind, kwargs, data_format, dtype):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 3, 7, 6)).astype(dtype)  # NCHW
    layer = cls(data_format=data_format, dtype=dtype, **kwargs)
    to_layer = (lambda a: a) if data_format == "channels_first" else (lambda a: np.ascontiguousarray(
        a.transpose(0, 2, 3, 1)))
    from_layer = (lambda a: a) if data_format == "channels_first" else (lambda a: a.transpose(0, 3, 1, 2))
    y = layer(to_layer(x))
    y_kept, ctx = forward(layer, to_layer(x))   # the same call, keeping its context for backward
    np.testing.assert_array_equal(y_kept, y)
    x_t = torch.from_numpy(x).requires_grad_(True)
    y_t = torch_pool(x_t, layer, kind)
    tol = 1e-5 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(from_layer(y), y_t.detach().numpy(), rtol=tol, atol=tol)
    upstream = rng.standard_normal(y_t.shape).astype(dtype)
    y_t.backward(torch.from_numpy(upstream))
    grad_x, _ = backward(layer, ctx, to_layer(upstream))
    np.testing.assert_allclose(from_layer(grad_x), x_t.grad.numpy(), rtol=tol, atol=tol)


def test_global_pooling_matches_numpy_reductions_and_keepdims():
    x = np.random.default_rng(1).standard_normal((2, 4, 5, 3)).astype(np.float32)
    np.testing.assert_allclose(GlobalMaxPooling2D()(x), x.max(axis=(1, 2)), rtol=1e-6)
    np.testing.assert_allclose(GlobalAveragePooling2D()(x), x.mean(axis=(1, 2)), rtol=1e-5)
    kept = GlobalAveragePooling2D(keepdims=True, data_format="channels_first")
    assert kept(x).shape == (2, 4, 1, 1)
    assert kept.compute_output_shape((None, 4, 5, 3)) == (None, 4, 1, 1)


def test_defaults_aliases_and_seed_shapes():
    layer = MaxPool2D()
    assert MaxPool2D is MaxPooling2D and AvgPool2D is AveragePooling2D
    assert (layer.pool_size, layer.strides, layer.padding, layer.data_format) == ((2, 2), (2, 2), "valid",
                                                                                 "channels_last")
    assert layer.name == "max_pooling2d"
    # seed 004: MaxPool2D() on (64, 296, 296, 16) -> (64, 148, 148, 16); seed 001: same-padded 7 -> 4
    assert layer.compute_output_shape((64, 296, 296, 16)) == (64, 148, 148, 16)
    assert MaxPool2D((2, 2), strides=2, padding="same").compute_output_shape((None, 7, 7, 25)) == (None, 4, 4, 25)
    assert repr(MaxPool2D(3, padding="same")) == "MaxPooling2D(pool_size=(3, 3), padding='same', name='max_pooling2d_2')"


def test_config_round_trip_and_keras2_dict():
    layer = AveragePooling2D(pool_size=3, strides=(1, 2), padding="same", data_format="channels_first")
    assert deserialize(serialize(layer)).get_config() == layer.get_config()
    keras2 = {"class_name": "MaxPooling2D", "config": {"name": "max_pooling2d_3", "trainable": True,
                                                       "dtype": "float32", "pool_size": [2, 2],
                                                       "padding": "valid", "strides": [2, 2],
                                                       "data_format": "channels_last"}}
    assert deserialize(keras2).compute_output_shape((None, 14, 14, 64)) == (None, 7, 7, 64)


@pytest.mark.parametrize("compiled_on", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,data_format", [((1, 7, 7, 1280), "NHWC"), ((3, 5, 4, 33), "NHWC"),
                                               ((2, 1, 1, 8), "NHWC"), ((2, 6, 3, 5), "NCHW")])
def test_global_avg_pool2d_has_avg_pool2ds_bits(compiled_on, dtype, shape, data_format):
    """The inference op of GlobalAveragePooling2D gives exactly `avg_pool2d`'s numbers with the window of the whole
    image (the same sums in the same order), and the float64 mean to rounding."""
    if compiled_on and not compiled.available():
        pytest.skip("numba is not installed")
    x = np.random.default_rng(3).standard_normal(shape).astype(dtype)
    window = shape[1:3] if data_format == "NHWC" else shape[2:]
    with compiled.use_compiled(compiled_on):
        got = ops.global_avg_pool2d(x, data_format)
        expected = ops.avg_pool2d(x, window, 1, "VALID", data_format).reshape(shape[0], -1)
    assert got.dtype == np.dtype(dtype) and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    axes = (1, 2) if data_format == "NHWC" else (2, 3)
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(got, x.astype(np.float64).mean(axis=axes), rtol=tol, atol=tol)


def test_global_avg_pool2d_takes_integers_as_float64_and_a_strided_batch():
    x = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    np.testing.assert_array_equal(ops.global_avg_pool2d(x), x.mean(axis=(1, 2)))
    wide = np.random.default_rng(4).standard_normal((2, 6, 8, 6)).astype(np.float32)
    strided = wide[:, ::2, ::2, 1:4]
    np.testing.assert_array_equal(ops.global_avg_pool2d(strided),
                                  ops.avg_pool2d(np.ascontiguousarray(strided), (3, 4), 1, "VALID").reshape(2, 3))


@pytest.mark.parametrize("value,message", [
    (np.zeros((2, 3, 4)), "global_avg_pool2d: argument `input` must be a rank-4 array, got rank 3"),
    (np.zeros((1, 2, 2, 1), dtype=object), "global_avg_pool2d: argument `input` must be a numeric array, got dtype object"),
    (np.zeros((1, 0, 2, 3)), "global_avg_pool2d: argument `input` must have non-empty height, width and channels"),
])
def test_global_avg_pool2d_errors_name_the_op_the_argument_and_what_was_given(value, message):
    with pytest.raises((ValueError, TypeError), match=re.escape(message)):
        ops.global_avg_pool2d(value)
    with pytest.raises(ValueError, match=re.escape("global_avg_pool2d: argument `data_format` must be 'NHWC' or "
                                                   "'NCHW', got 'NWHC'")):
        ops.global_avg_pool2d(np.zeros((1, 2, 2, 1)), "NWHC")


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_global_average_pooling_at_inference_gives_the_training_forwards_bits(keepdims, data_format):
    """GlobalAveragePooling2D's inference call (`ops.global_avg_pool2d`) and its training forward (the windowed
    op, with its context for the backward pass) give the same array, shape and bits."""
    layer = GlobalAveragePooling2D(keepdims=keepdims, data_format=data_format)
    x = np.random.default_rng(5).standard_normal((3, 7, 7, 16)).astype(np.float32)
    inferred = layer(x)
    with backend.keep_for_backward():
        trained, ctx = layer.forward(x, training=True)
    assert ctx is not None and inferred.shape == trained.shape == layer.compute_output_shape(x.shape)
    np.testing.assert_array_equal(inferred, trained)
