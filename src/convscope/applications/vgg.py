"""VGG16 and VGG19 (Simonyan and Zisserman, arXiv:1409.1556) as Keras 3 builds them."""

from __future__ import annotations

from .. import layers
from . import _common

_HASHES = {"vgg16": ("64373286793e3c8b2b4e3219cbf3544b", "6d6bbae143d832006294945121d1f1fc"),
           "vgg19": ("cbe5617147190e668d6c5d5026f83318", "253f8cb515780f3b799900260a226db6")}
_CONVS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}


def _vgg(model_name: str, include_top, weights, input_tensor, input_shape, pooling, classes, classifier_activation,
         name):
    where = model_name.upper()
    _common.check_arguments(where, weights, include_top, classes, input_tensor, pooling, classifier_activation)
    shape = _common.input_shape_for(where, input_shape, 224, 32, include_top, weights)
    inputs = x = layers.Input(shape=shape)
    for block, (filters, convs) in enumerate(zip((64, 128, 256, 512, 512), _CONVS[model_name]), start=1):
        for conv in range(1, convs + 1):
            x = layers.Conv2D(filters, (3, 3), activation="relu", padding="same", name=f"block{block}_conv{conv}")(x)
        x = layers.MaxPooling2D((2, 2), strides=(2, 2), name=f"block{block}_pool")(x)
    if include_top:
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dense(4096, activation="relu", name="fc1")(x)
        x = layers.Dense(4096, activation="relu", name="fc2")(x)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    else:
        x = _common.top(x, False, pooling, classes, classifier_activation, (None, None))
    file = f"{model_name}_weights_tf_dim_ordering_tf_kernels{'' if include_top else '_notop'}.h5"
    return _common.finish(inputs, x, name, weights, _common.KERAS_BASE + f"{model_name}/" + file,
                          _HASHES[model_name][0 if include_top else 1])


def VGG16(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None, classes=1000,
          classifier_activation="softmax", name="vgg16"):
    """Keras' `applications.VGG16`: 138 M parameters with the top; inputs from `preprocess_input` ("caffe")."""
    return _vgg("vgg16", include_top, weights, input_tensor, input_shape, pooling, classes, classifier_activation,
                name)


def VGG19(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None, classes=1000,
          classifier_activation="softmax", name="vgg19"):
    """Keras' `applications.VGG19`: 144 M parameters with the top."""
    return _vgg("vgg19", include_top, weights, input_tensor, input_shape, pooling, classes, classifier_activation,
                name)


preprocess_input = _common.preprocessor("caffe", "vgg.preprocess_input")
decode_predictions = _common.decoder()
