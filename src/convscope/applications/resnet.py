"""ResNet50, ResNet101 and ResNet152 (He et al., arXiv:1512.03385) and their V2 (pre-activation,
arXiv:1603.05027: `resnet_v2.py`) as Keras 3 builds them: the same layers, names and weights, so Keras'
ImageNet files load into them."""

from __future__ import annotations

from .. import layers
from . import _common

_HASHES = {"resnet50": ("2cb95161c43110f7111970584f804107", "4d473c1dd8becc155b73f8504c6f6626"),
           "resnet101": ("f1aeb4b969a6efcfb50fad2f0c20cfc5", "88cf7a10940856eca736dc7b7e228a21"),
           "resnet152": ("100835be76be38e30d865e96f2aaae62", "ee4c566cf9a93f14d82f913c2dc6dd0c"),
           "resnet50v2": ("3ef43a0b657b3be2300d5770ece849e0", "fac2f116257151a9d068a22e544a4917"),
           "resnet101v2": ("6343647c601c52e1368623803854d971", "c0ed64b8031c3730f411d2eb4eea35b5"),
           "resnet152v2": ("a49b44d1979771252814e80f8ec446f9", "ed17cf2e0169df9d443503ef94b23b33")}
_BLOCKS = {"resnet50": (3, 4, 6, 3), "resnet101": (3, 4, 23, 3), "resnet152": (3, 8, 36, 3)}
_NAMES = {"resnet50": "ResNet50", "resnet101": "ResNet101", "resnet152": "ResNet152", "resnet50v2": "ResNet50V2",
          "resnet101v2": "ResNet101V2", "resnet152v2": "ResNet152V2"}


def _norm(name: str):
    return layers.BatchNormalization(axis=3, epsilon=1.001e-5, name=name)


def residual_block(x, filters: int, stride: int = 1, conv_shortcut: bool = True, name: str = ""):
    """A bottleneck: 1x1 (stride), 3x3, 1x1 to 4 * filters, each with a batch norm, added to the shortcut."""
    shortcut = x
    if conv_shortcut:
        shortcut = _norm(name + "_0_bn")(layers.Conv2D(4 * filters, 1, strides=stride, name=name + "_0_conv")(x))
    x = layers.Conv2D(filters, 1, strides=stride, name=name + "_1_conv")(x)
    x = layers.Activation("relu", name=name + "_1_relu")(_norm(name + "_1_bn")(x))
    x = layers.Conv2D(filters, 3, padding="same", name=name + "_2_conv")(x)
    x = layers.Activation("relu", name=name + "_2_relu")(_norm(name + "_2_bn")(x))
    x = _norm(name + "_3_bn")(layers.Conv2D(4 * filters, 1, name=name + "_3_conv")(x))
    return layers.Activation("relu", name=name + "_out")(layers.Add(name=name + "_add")([shortcut, x]))


def residual_block_v2(x, filters: int, stride: int = 1, conv_shortcut: bool = False, name: str = ""):
    """A pre-activation bottleneck: batch norm and ReLU first, then 1x1, 3x3 (stride), 1x1 to 4 * filters, added
    to the shortcut (a 1x1 convolution of the pre-activation, or the input, every `stride`-th pixel)."""
    preact = layers.Activation("relu", name=name + "_preact_relu")(_norm(name + "_preact_bn")(x))
    if conv_shortcut:
        shortcut = layers.Conv2D(4 * filters, 1, strides=stride, name=name + "_0_conv")(preact)
    else:
        shortcut = layers.MaxPooling2D(1, strides=stride)(x) if stride > 1 else x
    x = layers.Conv2D(filters, 1, strides=1, use_bias=False, name=name + "_1_conv")(preact)
    x = layers.Activation("relu", name=name + "_1_relu")(_norm(name + "_1_bn")(x))
    x = layers.ZeroPadding2D(padding=((1, 1), (1, 1)), name=name + "_2_pad")(x)
    x = layers.Conv2D(filters, 3, strides=stride, use_bias=False, name=name + "_2_conv")(x)
    x = layers.Activation("relu", name=name + "_2_relu")(_norm(name + "_2_bn")(x))
    x = layers.Conv2D(4 * filters, 1, name=name + "_3_conv")(x)
    return layers.Add(name=name + "_out")([shortcut, x])


def _stack(x, filters: int, blocks: int, stride: int, name: str):
    x = residual_block(x, filters, stride=stride, name=name + "_block1")
    for index in range(2, blocks + 1):
        x = residual_block(x, filters, conv_shortcut=False, name=f"{name}_block{index}")
    return x


def _stack_v2(x, filters: int, blocks: int, stride: int, name: str):
    """V2's stride is in the stage's last block (Keras' `stack_residual_blocks_v2`)."""
    x = residual_block_v2(x, filters, conv_shortcut=True, name=name + "_block1")
    for index in range(2, blocks):
        x = residual_block_v2(x, filters, name=f"{name}_block{index}")
    return residual_block_v2(x, filters, stride=stride, name=f"{name}_block{blocks}")


def _resnet(model_name: str, include_top, weights, input_tensor, input_shape, pooling, classes,
            classifier_activation, name):
    where, preact = _NAMES[model_name], model_name.endswith("v2")
    _common.check_arguments(where, weights, include_top, classes, input_tensor, pooling, classifier_activation)
    shape = _common.input_shape_for(where, input_shape, 224, 32, include_top, weights)
    inputs = layers.Input(shape=shape)
    x = layers.ZeroPadding2D(padding=((3, 3), (3, 3)), name="conv1_pad")(inputs)
    x = layers.Conv2D(64, 7, strides=2, name="conv1_conv")(x)
    if not preact:
        x = layers.Activation("relu", name="conv1_relu")(_norm("conv1_bn")(x))
    x = layers.ZeroPadding2D(padding=((1, 1), (1, 1)), name="pool1_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    for stage, (filters, blocks) in enumerate(zip((64, 128, 256, 512), _BLOCKS[model_name.replace("v2", "")])):
        if preact:
            x = _stack_v2(x, filters, blocks, 1 if stage == 3 else 2, f"conv{stage + 2}")
        else:
            x = _stack(x, filters, blocks, 1 if stage == 0 else 2, f"conv{stage + 2}")
    if preact:
        x = layers.Activation("relu", name="post_relu")(_norm("post_bn")(x))
    x = _common.top(x, include_top, pooling, classes, classifier_activation, ("avg_pool", "max_pool"))
    file = f"{model_name}_weights_tf_dim_ordering_tf_kernels{'' if include_top else '_notop'}.h5"
    return _common.finish(inputs, x, name, weights, _common.KERAS_BASE + "resnet/" + file,
                          _HASHES[model_name][0 if include_top else 1])


def variant(model_name: str, doc: str):
    """Keras' `applications.<Name>(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
    pooling=None, classes=1000, classifier_activation="softmax", name=...)` for one of `_NAMES`."""
    def build(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None, classes=1000,
              classifier_activation="softmax", name=model_name):
        return _resnet(model_name, include_top, weights, input_tensor, input_shape, pooling, classes,
                       classifier_activation, name)
    build.__name__ = build.__qualname__ = _NAMES[model_name]
    build.__doc__ = doc
    return build


ResNet50 = variant("resnet50", """Keras' `applications.ResNet50`: 25.6 M parameters with the top; inputs from
    `preprocess_input` ("caffe": BGR, ImageNet's mean subtracted).  `weights="imagenet"` downloads Keras' file once
    (checked against its published MD5) or takes it from Keras' cache.""")
ResNet101 = variant("resnet101", "Keras' `applications.ResNet101` (stages of 3, 4, 23 and 3 blocks).")
ResNet152 = variant("resnet152", "Keras' `applications.ResNet152` (stages of 3, 8, 36 and 3 blocks).")


preprocess_input = _common.preprocessor("caffe", "resnet.preprocess_input")
decode_predictions = _common.decoder()
