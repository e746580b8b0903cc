"""DenseNet121/169/201 (Huang et al., arXiv:1608.06993) as Keras 3 builds them: the same layers, names and
weights (each layer's input the concatenation of every earlier layer's output in its block)."""

from __future__ import annotations

from .. import layers
from . import _common

_FILES = {  # blocks -> (name, MD5 with the top, MD5 without)
    (6, 12, 24, 16): ("densenet121", "9d60b8095a5708f2dcce2bca79d332c7", "30ee3e1110167f948a6b9946edeeb738"),
    (6, 12, 32, 32): ("densenet169", "d699b8f76981ab1b30698df4c175e90b", "b8c4d4c20dd625c148057b9ff1c1176b"),
    (6, 12, 48, 32): ("densenet201", "1ceb130c1ea1b78c3bf6114dbdfd8807", "c13680b51ded0fb44dff2d8f86ac8bb1"),
}


def _norm_relu(x, name: str):
    x = layers.BatchNormalization(axis=3, epsilon=1.001e-5, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def conv_block(x, growth_rate: int, name: str):
    """BN-ReLU-1x1 (4·growth) then BN-ReLU-3x3 (growth), concatenated to the block's input."""
    y = layers.Conv2D(4 * growth_rate, 1, use_bias=False, name=f"{name}_1_conv")(_norm_relu(x, f"{name}_0"))
    y = layers.Conv2D(growth_rate, 3, padding="same", use_bias=False,
                      name=f"{name}_2_conv")(_norm_relu(y, f"{name}_1"))
    return layers.Concatenate(axis=3, name=f"{name}_concat")([x, y])


def transition_block(x, reduction: float, name: str):
    """BN-ReLU-1x1 to `reduction` of the channels, then 2x2 average pooling."""
    x = _norm_relu(x, name)
    x = layers.Conv2D(int(x.shape[3] * reduction), 1, use_bias=False, name=f"{name}_conv")(x)
    return layers.AveragePooling2D(2, strides=2, name=f"{name}_pool")(x)


def DenseNet(blocks, include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
             classes=1000, classifier_activation="softmax", name="densenet"):
    """Keras' `applications.densenet.DenseNet` of four dense blocks of `blocks` conv blocks each."""
    blocks = tuple(blocks)
    where = {key: f"DenseNet{value[0][len('densenet'):]}" for key, value in _FILES.items()}.get(blocks, "DenseNet")
    _common.check_arguments(where, weights, include_top, classes, input_tensor, pooling, classifier_activation)
    if weights == "imagenet" and blocks not in _FILES:
        raise ValueError(f"{where}: ImageNet weights exist for the blocks {sorted(_FILES)}, got {blocks}")
    inputs = layers.Input(shape=_common.input_shape_for(where, input_shape, 224, 32, include_top, weights))
    x = layers.ZeroPadding2D(padding=((3, 3), (3, 3)))(inputs)
    x = _norm_relu(layers.Conv2D(64, 7, strides=2, use_bias=False, name="conv1_conv")(x), "conv1")
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(layers.ZeroPadding2D(padding=((1, 1), (1, 1)))(x))
    for index, count in enumerate(blocks):
        for i in range(count):
            x = conv_block(x, 32, name=f"conv{index + 2}_block{i + 1}")
        if index < len(blocks) - 1:
            x = transition_block(x, 0.5, name=f"pool{index + 2}")
    x = layers.Activation("relu", name="relu")(layers.BatchNormalization(axis=3, epsilon=1.001e-5, name="bn")(x))
    x = _common.top(x, include_top, pooling, classes, classifier_activation, ("avg_pool", "max_pool"))
    url = md5 = None
    if weights == "imagenet":
        file, top_md5, no_top_md5 = _FILES[blocks]
        suffix = "" if include_top else "_notop"
        url = f"{_common.KERAS_BASE}densenet/{file}_weights_tf_dim_ordering_tf_kernels{suffix}.h5"
        md5 = top_md5 if include_top else no_top_md5
    return _common.finish(inputs, x, name, weights, url, md5)


def _variant(blocks, default_name: str, parameters: str):
    def build(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None, classes=1000,
              classifier_activation="softmax", name=default_name):
        return DenseNet(blocks, include_top, weights, input_tensor, input_shape, pooling, classes,
                        classifier_activation, name=name)
    build.__name__ = build.__qualname__ = default_name.replace("densenet", "DenseNet")
    build.__doc__ = (f"Keras' `applications.{build.__name__}`: {parameters} parameters with the top; inputs from "
                     "`preprocess_input` (Keras' 'torch' mode).")
    return build


DenseNet121 = _variant((6, 12, 24, 16), "densenet121", "8.1 M")
DenseNet169 = _variant((6, 12, 32, 32), "densenet169", "14.3 M")
DenseNet201 = _variant((6, 12, 48, 32), "densenet201", "20.2 M")

preprocess_input = _common.preprocessor("torch", "densenet.preprocess_input")
decode_predictions = _common.decoder()
