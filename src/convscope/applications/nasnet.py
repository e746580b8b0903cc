"""NASNet-A (Zoph et al., arXiv:1707.07012) as Keras 3 builds it: the same layers, names and weights.

A NASNet is a stem, then normal cells and reduction cells (each cell reads the two cells before it: `ip`, the
last, and `p`, the one before, adjusted to `ip`'s size and width).  NASNetMobile is NASNet (4 @ 1056), NASNetLarge
NASNet (6 @ 4032): N cells per stage, P filters before the top."""

from __future__ import annotations

from .. import layers
from . import _common

_BASE = _common.KERAS_BASE + "nasnet/"
# Keras' files: (URL name, the name Keras caches it under, MD5), with the top and without
_FILES = {
    224: (("NASNet-mobile.h5", "nasnet_mobile.h5", "020fb642bf7360b370c678b08e0adf61"),
          ("NASNet-mobile-no-top.h5", "nasnet_mobile_no_top.h5", "1ed92395b5b598bdda52abe5c0dbfd63")),
    331: (("NASNet-large.h5", "nasnet_large.h5", "11577c9a518f0070763c2b964a382f17"),
          ("NASNet-large-no-top.h5", "nasnet_large_no_top.h5", "d81d89dc07e6e56530c4e77faddd61b5")),
}


def _bn(x, name=None):
    return layers.BatchNormalization(axis=-1, momentum=0.9997, epsilon=1e-3, name=name)(x)


def _conv1x1(x, filters: int, name: str, strides: int = 1):
    return layers.Conv2D(filters, 1, strides=strides, padding="same", use_bias=False, name=name,
                         kernel_initializer="he_normal")(x)


def _separable_block(x, filters: int, kernel: int = 3, strides: int = 1, block_id: str = ""):
    """Twice ReLU, SeparableConv2D, BN; the first of stride 2 after Keras' `correct_pad` zero padding."""
    x = layers.Activation("relu")(x)
    if strides == 2:
        x = layers.ZeroPadding2D(padding=_common.correct_pad(x.shape[1:3], kernel),
                                 name=f"separable_conv_1_pad_{block_id}")(x)
    x = layers.SeparableConv2D(filters, kernel, strides=strides, padding="valid" if strides == 2 else "same",
                               use_bias=False, name=f"separable_conv_1_{block_id}")(x)
    x = layers.Activation("relu")(_bn(x, f"separable_conv_1_bn_{block_id}"))
    x = layers.SeparableConv2D(filters, kernel, padding="same", use_bias=False,
                               name=f"separable_conv_2_{block_id}")(x)
    return _bn(x, f"separable_conv_2_bn_{block_id}")


def _adjust_block(p, ip, filters: int, block_id: str):
    """`p` made to match `ip`: `ip` itself where there is no `p`; halved (two 1x1 paths of stride 2, the second
    shifted by one pixel, concatenated) where its width differs (compared as Keras compares it, on the width
    axis); projected by a 1x1 where its channels differ."""
    if p is None:
        return ip
    if p.shape[-2] != ip.shape[-2]:
        p = layers.Activation("relu", name=f"adjust_relu_1_{block_id}")(p)
        p1 = layers.AveragePooling2D(1, strides=2, padding="valid", name=f"adjust_avg_pool_1_{block_id}")(p)
        p1 = _conv1x1(p1, filters // 2, f"adjust_conv_1_{block_id}")
        p2 = layers.Cropping2D(cropping=((1, 0), (1, 0)))(layers.ZeroPadding2D(padding=((0, 1), (0, 1)))(p))
        p2 = layers.AveragePooling2D(1, strides=2, padding="valid", name=f"adjust_avg_pool_2_{block_id}")(p2)
        p2 = _conv1x1(p2, filters // 2, f"adjust_conv_2_{block_id}")
        return _bn(layers.concatenate([p1, p2], axis=-1), f"adjust_bn_{block_id}")
    if p.shape[-1] != filters:
        p = _conv1x1(layers.Activation("relu")(p), filters, f"adjust_conv_projection_{block_id}")
        return _bn(p, f"adjust_bn_{block_id}")
    return p


def _squeezed(ip, filters: int, kind: str, block_id: str):
    """A cell's first step: ReLU, 1x1 to `filters`, BN."""
    h = _conv1x1(layers.Activation("relu")(ip), filters, f"{kind}_conv_1_{block_id}")
    return _bn(h, f"{kind}_bn_1_{block_id}")


def _average(x, name: str, strides: int = 1):
    return layers.AveragePooling2D(3, strides=strides, padding="same" if strides == 1 else "valid", name=name)(x)


def _normal_cell(ip, p, filters: int, block_id: str):
    """A normal cell (the paper's Fig. 4): five sums of separable blocks and 3x3 averages of `h` (`ip` squeezed)
    and `p`, concatenated after `p`.  Returns (the cell, `ip` as the next cell's `p`)."""
    p = _adjust_block(p, ip, filters, block_id)
    h = _squeezed(ip, filters, "normal", block_id)
    x1 = layers.add([_separable_block(h, filters, 5, block_id=f"normal_left1_{block_id}"),
                     _separable_block(p, filters, block_id=f"normal_right1_{block_id}")],
                    name=f"normal_add_1_{block_id}")
    x2 = layers.add([_separable_block(p, filters, 5, block_id=f"normal_left2_{block_id}"),
                     _separable_block(p, filters, 3, block_id=f"normal_right2_{block_id}")],
                    name=f"normal_add_2_{block_id}")
    x3 = layers.add([_average(h, f"normal_left3_{block_id}"), p], name=f"normal_add_3_{block_id}")
    x4 = layers.add([_average(p, f"normal_left4_{block_id}"), _average(p, f"normal_right4_{block_id}")],
                    name=f"normal_add_4_{block_id}")
    x5 = layers.add([_separable_block(h, filters, block_id=f"normal_left5_{block_id}"), h],
                    name=f"normal_add_5_{block_id}")
    return layers.concatenate([p, x1, x2, x3, x4, x5], axis=-1, name=f"normal_concat_{block_id}"), ip


def _reduction_cell(ip, p, filters: int, block_id: str):
    """A reduction cell (Fig. 4): stride-2 separable blocks and 3x3 poolings, four sums concatenated.  Returns
    (the cell, `ip` as the next cell's `p`)."""
    p = _adjust_block(p, ip, filters, block_id)
    h = _squeezed(ip, filters, "reduction", block_id)
    h3 = layers.ZeroPadding2D(padding=_common.correct_pad(h.shape[1:3], 3), name=f"reduction_pad_1_{block_id}")(h)
    x1 = layers.add([_separable_block(h, filters, 5, 2, f"reduction_left1_{block_id}"),
                     _separable_block(p, filters, 7, 2, f"reduction_right1_{block_id}")],
                    name=f"reduction_add_1_{block_id}")
    x2 = layers.add([layers.MaxPooling2D(3, strides=2, padding="valid", name=f"reduction_left2_{block_id}")(h3),
                     _separable_block(p, filters, 7, 2, f"reduction_right2_{block_id}")],
                    name=f"reduction_add_2_{block_id}")
    x3 = layers.add([_average(h3, f"reduction_left3_{block_id}", strides=2),
                     _separable_block(p, filters, 5, 2, f"reduction_right3_{block_id}")],
                    name=f"reduction_add3_{block_id}")
    x4 = layers.add([x2, _average(x1, f"reduction_left4_{block_id}")])
    x5 = layers.add([_separable_block(x1, filters, 3, block_id=f"reduction_left4_{block_id}"),
                     layers.MaxPooling2D(3, strides=2, padding="valid", name=f"reduction_right5_{block_id}")(h3)],
                    name=f"reduction_add4_{block_id}")
    return layers.concatenate([x2, x3, x4, x5], axis=-1, name=f"reduction_concat_{block_id}"), ip


def _nasnet(where, input_shape, penultimate_filters, num_blocks, stem_block_filters, skip_reduction,
            include_top, weights, input_tensor, pooling, classes, default_size, classifier_activation, name):
    """Keras' `nasnet.NASNet`: a stem (3x3 of stride 2, BN, two reduction cells), then three stages of
    `num_blocks` normal cells with a reduction cell between them, the filters doubling at each (filter
    multiplier 2)."""
    _common.check_arguments(where, weights, include_top, classes, input_tensor, pooling, classifier_activation)
    if weights == "imagenet" and input_shape is not None and None in tuple(input_shape):
        raise ValueError(f"{where}: with weights='imagenet' the input shape must be static (no None entries), got "
                         f"input_shape={tuple(input_shape)}")
    shape = _common.input_shape_for(where, input_shape, default_size, 32, include_top, weights)
    if None in shape[:2]:       # Keras builds it, then fails at the first call (a cell adds two sizes)
        raise ValueError(f"{where}: the input's height and width must be known (each cell matches its two inputs' "
                         f"sizes), got input_shape={shape}")
    multiplier, filters = 2, penultimate_filters // 24
    inputs = layers.Input(shape=shape)
    x = layers.Conv2D(stem_block_filters, 3, strides=2, padding="valid", use_bias=False, name="stem_conv1",
                      kernel_initializer="he_normal")(inputs)
    x = _bn(x, "stem_bn1")
    x, p = _reduction_cell(x, None, filters // multiplier ** 2, "stem_1")
    x, p = _reduction_cell(x, p, filters // multiplier, "stem_2")
    for stage in range(3):
        width = filters * multiplier ** stage
        if stage:
            x, p0 = _reduction_cell(x, p, width, f"reduce_{stage * num_blocks}")
            p = p if skip_reduction else p0
        for i in range(num_blocks):
            x, p = _normal_cell(x, p, width, f"{i}" if stage == 0 else f"{stage * num_blocks + i + 1}")
    x = layers.Activation("relu")(x)
    x = _common.top(x, include_top, pooling, classes, classifier_activation, (None, None))
    url = md5 = cache_name = None
    if weights == "imagenet":
        url_name, cache_name, md5 = _FILES[default_size][0 if include_top else 1]
        url = _BASE + url_name
    return _common.finish(inputs, x, name, weights, url, md5, cache_name)


def NASNetMobile(input_shape=None, include_top=True, weights="imagenet", input_tensor=None, pooling=None,
                 classes=1000, classifier_activation="softmax", name="nasnet_mobile"):
    """Keras' `applications.NASNetMobile` (NASNet 4 @ 1056): 5.3 M parameters with the top; inputs from
    `preprocess_input` (scaled to [-1, 1]), at least 32x32, 224x224 by default (also without the top)."""
    if not include_top and input_shape is None:
        input_shape = (224, 224, 3)
    return _nasnet("NASNetMobile", input_shape, 1056, 4, 32, False, include_top, weights, input_tensor, pooling,
                   classes, 224, classifier_activation, name)


def NASNetLarge(input_shape=None, include_top=True, weights="imagenet", input_tensor=None, pooling=None,
                classes=1000, classifier_activation="softmax", name="nasnet_large"):
    """Keras' `applications.NASNetLarge` (NASNet 6 @ 4032): 88.9 M parameters with the top; inputs from
    `preprocess_input` (scaled to [-1, 1]), at least 32x32, 331x331 by default."""
    return _nasnet("NASNetLarge", input_shape, 4032, 6, 96, True, include_top, weights, input_tensor, pooling,
                   classes, 331, classifier_activation, name)


preprocess_input = _common.preprocessor("tf", "nasnet.preprocess_input")
decode_predictions = _common.decoder()
