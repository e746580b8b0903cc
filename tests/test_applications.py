"""`convscope.applications`: ResNet50/101/152, MobileNetV2, VGG16/19 built as Keras 3 builds them.

Oracle: Keras 3.15.1's `keras.applications` on the torch backend, `weights=None` — every layer's name and
class, the parameter count, the weights' shapes, and the outputs with Keras' weights copied in (batch
norms' statistics drawn away from 0/1); `weights="imagenet"` from a Keras weights file (legacy HDF5, as
Keras publishes them) found in Keras' cache, no network; `preprocess_input` against Keras'.
"""

import hashlib
import json
import io
import re

import numpy as np
import pytest

import convscope as cs
from convscope.applications import _common

h5py = pytest.importorskip("h5py")

CASES = [
    ("ResNet50", dict(input_shape=(64, 64, 3))),
    ("ResNet101", dict(include_top=False, input_shape=(32, 32, 3), pooling="avg")),
    ("ResNet50V2", dict(input_shape=(64, 64, 3))),
    ("ResNet152V2", dict(include_top=False, input_shape=(33, 33, 3), pooling="max")),
    ("MobileNetV2", dict(input_shape=(96, 96, 3))),
    ("MobileNetV2", dict(alpha=0.35, include_top=False, input_shape=(75, 75, 3), pooling="max")),
    ("MobileNetV2", dict(alpha=1.3, input_shape=(64, 64, 3), classes=7, classifier_activation=None)),
    ("VGG16", dict(input_shape=(32, 32, 3))),
    ("VGG19", dict(include_top=False, input_shape=(48, 48, 3))),
    ("MobileNet", dict(input_shape=(64, 64, 3))),
    ("MobileNet", dict(alpha=0.5, depth_multiplier=2, include_top=False, input_shape=(45, 50, 3), pooling="avg")),
    ("DenseNet121", dict(input_shape=(64, 64, 3))),
    ("DenseNet169", dict(include_top=False, input_shape=(40, 40, 3), pooling="max")),
    ("EfficientNetB0", dict(input_shape=(64, 64, 3))),
    ("EfficientNetB3", dict(include_top=False, input_shape=(49, 50, 3), pooling="avg")),
    ("Xception", dict(input_shape=(71, 71, 3))),
    ("Xception", dict(include_top=False, input_shape=(80, 90, 3), pooling="avg")),
    ("InceptionV3", dict(input_shape=(75, 75, 3))),
    ("InceptionV3", dict(include_top=False, input_shape=(99, 80, 3), pooling="max")),
    ("InceptionResNetV2", dict(input_shape=(75, 75, 3), classes=7)),
    ("MobileNetV3Small", dict(input_shape=(64, 64, 3))),
    ("MobileNetV3Large", dict(alpha=0.75, include_top=False, input_shape=(48, 56, 3), pooling="avg")),
    ("MobileNetV3Large", dict(minimalistic=True, input_shape=(32, 32, 3), classes=5, include_preprocessing=False)),
    ("ConvNeXtTiny", dict(input_shape=(32, 32, 3))),
    ("ConvNeXtSmall", dict(include_top=False, input_shape=(64, 48, 3), pooling="avg", include_preprocessing=False)),
    ("EfficientNetV2B0", dict(input_shape=(64, 64, 3))),
    ("EfficientNetV2S", dict(include_top=False, input_shape=(48, 56, 3), pooling="max")),
    ("EfficientNetV2B2", dict(include_top=False, input_shape=(40, 40, 3), include_preprocessing=False)),
    ("NASNetMobile", dict(input_shape=(64, 64, 3))),
    ("NASNetMobile", dict(include_top=False, input_shape=(65, 67, 3), pooling="avg", classes=3)),
    ("NASNetLarge", dict(include_top=False, input_shape=(32, 33, 3), pooling="max")),
]


def _named(layer) -> str:
    """A layer's name, a counter Keras and convscope append to a default name (`input_layer_3`) left out."""
    # names made from the class, with a counter
    default = ("input_layer", "global_", "max_pooling2d", "zero_padding2d", "rescaling", "normalization", "conv2d",
               "batch_normalization", "activation", "average_pooling2d", "concatenate", "add", "re_lu", "dropout",
               "flatten", "layer_normalization", "custom_scale_layer", "cropping2d")
    return re.sub(r"_\d+$", "", layer.name) if layer.name.startswith(default) else layer.name


def _randomized(keras, model, seed):
    rng = np.random.default_rng(seed)
    weights = [rng.normal(0, 0.05, w.shape).astype("float32") for w in model.get_weights()]
    for i, variable in enumerate(model.weights):
        if "variance" in variable.path:
            weights[i] = np.abs(weights[i]) + 0.5
        elif "gamma" in variable.path:
            weights[i] += 1.0
    model.set_weights(weights)
    return weights


def _keras_application(keras, name, options):
    """Keras' application `name`; NASNetMobile, which Keras refuses on its torch backend, from Keras' own
    `nasnet.NASNet` with the arguments Keras' NASNetMobile passes it."""
    if name != "NASNetMobile":
        return getattr(keras.applications, name)(weights=None, **options)
    from keras.src.applications import nasnet
    return nasnet.NASNet(options["input_shape"], penultimate_filters=1056, num_blocks=4, stem_block_filters=32,
                         skip_reduction=False, filter_multiplier=2, include_top=options.get("include_top", True),
                         weights=None, pooling=options.get("pooling"), classes=options.get("classes", 1000),
                         default_size=224, name="nasnet_mobile")


@pytest.mark.parametrize("name,options", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_an_application_is_keras_layer_for_layer(keras, name, options):
    ours = getattr(cs.applications, name)(weights=None, **options)
    theirs = _keras_application(keras, name, options)
    assert ours.name == theirs.name
    assert [(type(a).__name__, _named(a)) for a in ours.layers] == \
        [(type(b).__name__, _named(b)) for b in theirs.layers]          # not `x + 3.0`'s operations, as Keras
    assert [type(a).__name__ for a in ours.operations] == [type(b).__name__ for b in theirs.operations]
    assert ours.count_params() == theirs.count_params()
    assert ours.output_shape == theirs.output_shape
    assert [v.shape for v in ours.weights] == [tuple(v.shape) for v in theirs.weights]
    ours.set_weights(_randomized(keras, theirs, 1))
    shape = options.get("input_shape") or (32, 32, 3)
    x = np.random.default_rng(2).uniform(0, 255, (2,) + shape).astype("float32")
    caffe = name.startswith("VGG") or name in ("ResNet50", "ResNet101")
    x = cs.applications.resnet.preprocess_input(x) if caffe else x / 127.5 - 1
    expected = keras.ops.convert_to_numpy(theirs.predict(x, verbose=0))
    np.testing.assert_allclose(ours.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_imagenet_weights_load_from_keras_cache_without_the_network(keras, tmp_path, monkeypatch):
    """A Keras weights file under ~/.keras/models (where Keras keeps the ones it downloaded) with the name
    Keras gives it: loaded by layer name, Keras' outputs; a ResNet's file must have the published MD5."""
    monkeypatch.setenv("HOME", str(tmp_path))
    from keras.src.legacy.saving import legacy_h5_format
    theirs = keras.applications.MobileNetV2(alpha=0.35, include_top=False, input_shape=(96, 96, 3), weights=None)
    _randomized(keras, theirs, 3)
    folder = tmp_path / ".keras" / "models"
    folder.mkdir(parents=True)
    with h5py.File(folder / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5", "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, theirs)
    ours = cs.applications.MobileNetV2(alpha=0.35, include_top=False, input_shape=(96, 96, 3), weights="imagenet")
    x = np.random.default_rng(4).uniform(-1, 1, (2, 96, 96, 3)).astype("float32")
    expected = keras.ops.convert_to_numpy(theirs.predict(x, verbose=0))
    np.testing.assert_allclose(ours.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    def no_network(url, timeout=None):
        raise OSError(f"no network in this test: {url}")
    monkeypatch.setattr("urllib.request.urlopen", no_network)
    with pytest.warns(UserWarning, match="the weights for 224x224 are loaded"):     # a size without weights
        with pytest.raises(OSError, match="no network .*kernels_0.35_224_no_top.h5"):   # not in the cache
            cs.applications.MobileNetV2(alpha=0.35, include_top=False, input_shape=(80, 80, 3), weights="imagenet")


def test_a_downloaded_weights_file_is_kept_only_with_the_published_md5(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    data = b"weights" * 100
    url = _common.KERAS_BASE + "resnet/some_weights.h5"
    with pytest.raises(ValueError, match="has MD5 .* expected 0+; the download was discarded"):
        _common.weights_file(url, "0" * 32, opener=lambda u: io.BytesIO(data))
    assert not (tmp_path / ".convscope" / "models" / "some_weights.h5").exists()
    md5 = hashlib.md5(data).hexdigest()
    damaged = tmp_path / ".keras" / "models" / "some_weights.h5"      # in Keras' cache, but not the published file
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(b"truncated")
    path = _common.weights_file(url, md5, opener=lambda u: io.BytesIO(data))
    assert path == tmp_path / ".convscope" / "models" / "some_weights.h5" and path.read_bytes() == data
    assert _common.weights_file(url, md5, opener=None) == path          # found in the cache: no download
    renamed = tmp_path / ".keras" / "models" / "kept_as.h5"            # Keras caches some under another name
    renamed.write_bytes(data)
    assert _common.weights_file(url, md5, opener=None, name="kept_as.h5") == renamed


def test_preprocess_input_is_keras(keras):
    x = np.random.default_rng(5).uniform(0, 255, (2, 4, 4, 3)).astype("float32")
    for ours, theirs in ((cs.applications.resnet50.preprocess_input, keras.applications.resnet50.preprocess_input),
                         (cs.applications.vgg16.preprocess_input, keras.applications.vgg16.preprocess_input),
                         (cs.applications.resnet_v2.preprocess_input, keras.applications.resnet_v2.preprocess_input),
                         (cs.applications.mobilenet_v2.preprocess_input,
                          keras.applications.mobilenet_v2.preprocess_input),
                         (cs.applications.mobilenet.preprocess_input, keras.applications.mobilenet.preprocess_input),
                         (cs.applications.densenet.preprocess_input, keras.applications.densenet.preprocess_input),
                         (cs.applications.xception.preprocess_input, keras.applications.xception.preprocess_input),
                         (cs.applications.inception_v3.preprocess_input,
                          keras.applications.inception_v3.preprocess_input)):
        before = x.copy()
        np.testing.assert_allclose(ours(x), keras.ops.convert_to_numpy(theirs(x.copy())), rtol=1e-6, atol=1e-4)
        np.testing.assert_array_equal(x, before)          # a new array: the caller's images stay as they were
    assert cs.applications.resnet.preprocess_input(np.zeros((1, 2, 2, 3), np.uint8)).dtype == np.float32


def test_arguments_are_checked_by_name(tmp_path):
    apps = cs.applications
    with pytest.raises(ValueError, match="ResNet50: argument `weights` must be None .* got 'imagenet21k'"):
        apps.ResNet50(weights="imagenet21k")
    with pytest.raises(ValueError, match="ResNet50: with weights='imagenet' and include_top=True, `classes` must "
                                         "be 1000"):
        apps.ResNet50(classes=10)
    with pytest.raises(ValueError, match="VGG16: with include_top=True and weights='imagenet', `input_shape` must "
                                         "be \\(224, 224, 3\\)"):
        apps.VGG16(input_shape=(64, 64, 3))
    with pytest.raises(ValueError, match="ResNet50: the input must be at least 32x32"):
        apps.ResNet50(weights=None, input_shape=(16, 16, 3))
    with pytest.raises(ValueError, match="MobileNetV2: argument `pooling` must be None, 'avg' or 'max'"):
        apps.MobileNetV2(weights=None, include_top=False, pooling="sum")
    with pytest.raises(TypeError, match="MobileNetV2: argument `input_shape` must be a tuple .*got 224"):
        apps.MobileNetV2(weights=None, input_shape=224)
    with pytest.raises(TypeError, match="MobileNetV2: argument `alpha` must be a number, got 'x'"):
        apps.MobileNetV2(weights=None, alpha="x")
    assert apps.MobileNetV2(weights=None, alpha=np.float32(0.5), input_shape=(96, 96, 3)).name == "mobilenetv2_0.50_96"
    with pytest.raises(ValueError, match="MobileNetV2: ImageNet weights exist for alpha in"):     # softmax by
        apps.MobileNetV2(alpha=0.6, weights="imagenet", classifier_activation=cs.activations.softmax)  # function
    with pytest.raises(ValueError, match="MobileNetV2: ImageNet weights exist for alpha in"):
        apps.MobileNetV2(alpha=0.6, weights="imagenet")
    with pytest.raises(ValueError, match="VGG19: with include_top=True the input shape must be known"):
        apps.VGG19(weights=None, input_shape=(None, None, 3))
    with pytest.raises(ValueError, match="ResNet152: argument `input_tensor` is not supported yet"):
        apps.ResNet152(weights=None, input_tensor=cs.Input((64, 64, 3)))
    with pytest.raises(ValueError, match="EfficientNetB0: the input must be at least 32x32"):
        apps.EfficientNetB0(weights=None, include_top=False, input_shape=(16, 16, 3))
    with pytest.raises(TypeError, match="MobileNetV3Small: argument `alpha` must be a number, got 'x'"):
        apps.MobileNetV3Small(weights=None, alpha="x", name="my_net")
    with pytest.raises(ValueError, match="DenseNet121: argument `pooling` must be None"):
        apps.DenseNet121(weights=None, include_top=False, pooling="mean")
    with pytest.raises(ValueError, match="ConvNeXtXLarge: argument `classes` must be a positive int"):
        apps.ConvNeXtXLarge(weights=None, classes=0)
    with pytest.raises(ValueError, match=r"NASNetMobile: the input's height and width must be known .*got "
                                         r"input_shape=\(None, None, 3\)"):       # Keras fails at the first call
        apps.NASNetMobile(weights=None, include_top=False, input_shape=(None, None, 3))
    with pytest.raises(ValueError, match=r"NASNetLarge: with weights='imagenet' the input shape must be static .*"
                                         r"\(None, 64, 3\)"):
        apps.NASNetLarge(include_top=False, input_shape=(None, 64, 3))
    with pytest.raises(ValueError, match=r"NASNetLarge: with include_top=True and weights='imagenet', `input_shape` "
                                         r"must be \(331, 331, 3\)"):
        apps.NASNetLarge(input_shape=(224, 224, 3))
    with pytest.raises(ValueError, match="NASNetMobile: the input must be at least 32x32"):
        apps.NASNetMobile(weights=None, include_top=False, input_shape=(31, 64, 3))


def test_decode_predictions_is_keras(keras, tmp_path, monkeypatch):
    """Against Keras' with the same class index (a made-up one: the test has no network, so its MD5 stands
    in for Keras' published one); the top count as Keras'; a damaged index is refused by name."""
    monkeypatch.setenv("HOME", str(tmp_path))
    table = {str(i): [f"n{i:08d}", f"class_{i}"] for i in range(1000)}
    data = json.dumps(table).encode()
    folder = tmp_path / ".keras" / "models"
    folder.mkdir(parents=True)
    (folder / "imagenet_class_index.json").write_bytes(data)
    monkeypatch.setattr(_common, "CLASS_INDEX_MD5", hashlib.md5(data).hexdigest())
    from keras.src.applications import imagenet_utils
    monkeypatch.setattr(imagenet_utils, "CLASS_INDEX", table)
    scores = np.random.default_rng(6).random((3, 1000)).astype("float32")
    for top in (1, 5):
        ours = cs.applications.resnet50.decode_predictions(scores, top=top)
        theirs = keras.applications.resnet50.decode_predictions(scores, top=top)
        assert [[(a, b, float(c)) for a, b, c in row] for row in ours] == \
            [[(a, b, float(c)) for a, b, c in row] for row in theirs]
    with pytest.raises(ValueError, match="decode_predictions: argument `preds` must be .* got shape \\(3, 10\\)"):
        cs.applications.vgg16.decode_predictions(scores[:, :10])
    with pytest.raises(ValueError, match="argument `top` must be an int from 1 to 1000, got 0"):
        cs.applications.mobilenet_v2.decode_predictions(scores, top=0)
    damaged = json.dumps({"0": ["n0", "a"]}).encode()
    (folder / "imagenet_class_index.json").write_bytes(damaged)
    monkeypatch.setattr(_common, "CLASS_INDEX_MD5", hashlib.md5(damaged).hexdigest())
    with pytest.raises(ValueError, match="is not an ImageNet class index"):
        cs.applications.resnet.decode_predictions(scores)


def test_imagenet_files_are_asked_for_by_keras_names(keras, tmp_path, monkeypatch):
    """Each application asks for Keras' file (name and folder as Keras'); DenseNet's in Keras' cache is used only
    with the MD5 Keras publishes for it; EfficientNet and MobileNetV3 take pixels as they are."""
    monkeypatch.setenv("HOME", str(tmp_path))
    folder = tmp_path / ".keras" / "models"
    folder.mkdir(parents=True)
    (folder / "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5").write_bytes(b"not the published file")
    def no_network(url, timeout=None):
        raise OSError(f"no network in this test: {url}")
    monkeypatch.setattr("urllib.request.urlopen", no_network)
    with pytest.raises(OSError, match="no network .*densenet/densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5"):
        cs.applications.DenseNet121(include_top=False, input_shape=(64, 64, 3))
    with pytest.raises(OSError, match="no network .*mobilenet/mobilenet_5_0_128_tf_no_top.h5"):
        cs.applications.MobileNet(alpha=0.5, include_top=False, input_shape=(128, 128, 3))
    with pytest.raises(OSError, match="no network .*storage.googleapis.com/keras-applications/efficientnetb0_notop.h5"):
        cs.applications.EfficientNetB0(include_top=False, input_shape=(64, 64, 3))
    x = np.arange(12.0).reshape(1, 2, 2, 3)
    assert cs.applications.efficientnet.preprocess_input(x) is x         # Keras': the model normalizes itself
    with pytest.raises(OSError, match="no network .*xception/xception_weights_tf_dim_ordering_tf_kernels_notop.h5"):
        cs.applications.Xception(include_top=False, input_shape=(71, 71, 3))
    with pytest.raises(OSError, match="no network .*inception_v3_weights_tf_dim_ordering_tf_kernels.h5"):
        cs.applications.InceptionV3()
    with pytest.warns(UserWarning, match="the weights for 224x224 are loaded"):
        with pytest.raises(OSError, match="no network .*/weights_mobilenet_v3_small_224_0.75_float_no_top_v2.h5"):
            cs.applications.MobileNetV3Small(alpha=0.75, include_top=False)
    assert cs.applications.mobilenet_v3.preprocess_input(x) is x
    with pytest.raises(OSError, match="no network .*convnext/convnext_tiny_notop.h5"):
        cs.applications.ConvNeXtTiny(include_top=False, input_shape=(64, 64, 3))
    with pytest.raises(ValueError, match="ImageNet weights need a ConvNeXt variant's depths"):
        cs.applications.ConvNeXtTiny(name="my_net")
    assert cs.applications.convnext.preprocess_input(x) is x
    with pytest.raises(OSError, match="no network .*efficientnet_v2/efficientnetv2-s_notop.h5"):
        cs.applications.EfficientNetV2S(include_top=False, input_shape=(64, 64, 3))
    assert cs.applications.efficientnet_v2.preprocess_input(x) is x
    with pytest.raises(OSError, match="no network .*tensorflow/keras-applications/inception_resnet_v2/"
                                      "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5"):
        cs.applications.InceptionResNetV2(include_top=False, input_shape=(75, 75, 3))
    np.testing.assert_allclose(cs.applications.inception_resnet_v2.preprocess_input(x), x / 127.5 - 1)
    (folder / "nasnet_mobile_no_top.h5").write_bytes(b"not the published file")   # Keras' name for it
    with pytest.raises(OSError, match="no network .*keras-applications/nasnet/NASNet-mobile-no-top.h5"):
        cs.applications.NASNetMobile(include_top=False, input_shape=(64, 64, 3))
    with pytest.raises(OSError, match="no network .*keras-applications/nasnet/NASNet-large.h5"):
        cs.applications.NASNetLarge()
    np.testing.assert_allclose(cs.applications.nasnet.preprocess_input(x), x / 127.5 - 1)


def test_a_sha256_published_file_is_checked_with_sha256(tmp_path, monkeypatch):
    """ConvNeXt's files are published with SHA-256s: a file is kept only with that hash (64 digits: SHA-256)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    data = b"convnext weights" * 50
    url = _common.KERAS_BASE + "convnext/convnext_tiny_notop.h5"
    with pytest.raises(ValueError, match="has SHA-256 .* expected f{64}"):
        _common.weights_file(url, "f" * 64, opener=lambda u: io.BytesIO(data))
    path = _common.weights_file(url, hashlib.sha256(data).hexdigest(), opener=lambda u: io.BytesIO(data))
    assert path.read_bytes() == data
