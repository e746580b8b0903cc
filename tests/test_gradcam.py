"""`convscope.viz.gradcam` and `saliency` against reference computations written here on PyTorch
(the same weights; the layer's activations and gradients read with a tensor hook), on a seed
model and the ResNet-style graph model; batches, the default layer and class, channels_first,
the pictures, and argument errors.
"""

import numpy as np
import pytest

import convscope as cs
from convscope import layers as L
from convscope.viz.saliency import heatmap_rgb, last_conv_layer, overlay

from seed_models import seed001_model, seed002_model
from test_functional import _randomize, resnet_style
from test_gradients import torch_model

torch = pytest.importorskip("torch")
F = torch.nn.functional


def torch_gradcam(model, x, layer_name, classes):
    """Grad-CAM as Selvaraju et al. and keras.io write it, on PyTorch: hook the layer's output,
    backpropagate the class logit, weight the channels by their mean gradient, ReLU, upsample
    bilinearly (align_corners=False) to the input size, divide by the maximum (an all-zero map,
    where every weighted sum is negative, stays zero)."""
    out, watched, _ = torch_model(model, x, logits=True, watch=[layer_name])
    activation = watched[layer_name]
    captured = {}
    activation.register_hook(lambda grad: captured.setdefault("grad", grad))
    out[torch.arange(len(x)), torch.as_tensor(classes)].sum().backward()
    weights = captured["grad"].mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((activation * weights).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=tuple(x.shape[1:3]), mode="bilinear", align_corners=False)[:, 0]
    peak = cam.amax(dim=(1, 2), keepdim=True)
    cam = cam / torch.where(peak > 0, peak, torch.ones_like(peak))
    return cam.detach().numpy(), out.detach().numpy()


def torch_saliency(model, x, classes):
    out, _, tx = torch_model(model, x, logits=True)
    out[torch.arange(len(x)), torch.as_tensor(classes)].sum().backward()
    return tx.grad.numpy()


def _normalized_abs_max(grad):
    maps = np.abs(grad).max(axis=-1)
    return maps / maps.reshape(len(maps), -1).max(axis=1)[:, None, None]


@pytest.fixture
def seed001():
    model = seed001_model()
    model.build((None, 28, 28, 1))
    _randomize(model, np.random.default_rng(0), scale=0.2)
    return model


def test_seed001_gradcam_matches_torch_hooks_default_layer_and_class(seed001):
    x = np.random.default_rng(1).normal(size=(3, 28, 28, 1)).astype("float32")
    layer = last_conv_layer(seed001)
    assert layer is seed001.layers[7] and isinstance(layer, L.Conv2D)
    _, logits = torch_gradcam(seed001, x, layer.name, [0, 0, 0])
    predicted = logits.argmax(axis=1)
    expected, _ = torch_gradcam(seed001, x, layer.name, predicted)
    maps = cs.viz.gradcam(seed001, x)
    assert maps.shape == (3, 28, 28) and maps.dtype == np.float32
    assert maps.min() >= 0 and np.allclose(maps.max(axis=(1, 2)), 1)
    assert np.abs(maps - expected).max() < 1e-4
    # one image (no batch axis) and a given class; an earlier layer by object
    other, _ = torch_gradcam(seed001, x[1:2], seed001.layers[3].name, [4])
    np.testing.assert_allclose(cs.viz.gradcam(seed001, x[1], seed001.layers[3], class_index=4), other[0],
                               atol=1e-4)


def test_resnet_style_gradcam_matches_torch_hooks():
    model = resnet_style()
    _randomize(model, np.random.default_rng(2))
    x = np.random.default_rng(3).normal(size=(2, 12, 12, 3)).astype("float32")
    lit = 0
    for layer in ("s2_out", "s1_add", "s0_relu1", last_conv_layer(model).name):
        expected, _ = torch_gradcam(model, x, layer, [1, 3])
        np.testing.assert_allclose(cs.viz.gradcam(model, x, layer, class_index=[1, 3]), expected, atol=1e-4)
        lit += int(np.isclose(expected.max(axis=(1, 2)), 1).sum())
    assert lit >= 5                 # most maps are not all zero (a comparison of substance)
    assert last_conv_layer(model).name == "s2_proj"          # the last conv in execution order


def test_saliency_and_smoothgrad_match_torch(seed001):
    x = np.random.default_rng(4).normal(size=(2, 28, 28, 1)).astype("float32")
    expected = _normalized_abs_max(torch_saliency(seed001, x, [3, 5]))
    maps = cs.viz.saliency(seed001, x, class_index=[3, 5])
    assert maps.shape == (2, 28, 28) and np.abs(maps - expected).max() < 1e-4
    # SmoothGrad: the gradients of noisy copies (noise 0.2 of each image's range) averaged first
    rng, total = np.random.default_rng(9), 0
    spread = 0.2 * (x.max(axis=(1, 2, 3), keepdims=True) - x.min(axis=(1, 2, 3), keepdims=True))
    for _ in range(3):
        total = total + torch_saliency(seed001, (x + rng.standard_normal(x.shape) * spread).astype("float32"), [3, 5])
    smooth = cs.viz.saliency(seed001, x, class_index=[3, 5], smooth_samples=3, noise=0.2, seed=9)
    # one noisy copy puts a ReLU input within float32's rounding of 0, where float32 and float64
    # take different sides of the kink: a dozen pixels differ by ~2e-3, every other within 1e-4
    difference = np.abs(smooth - _normalized_abs_max(total / 3))
    assert difference.max() < 1e-2 and np.mean(difference < 1e-4) > 0.99


def test_graph_saliency_and_a_two_dimensional_image():
    model = resnet_style()
    _randomize(model, np.random.default_rng(5))
    x = np.random.default_rng(6).normal(size=(1, 12, 12, 3)).astype("float32")
    expected = _normalized_abs_max(torch_saliency(model, x, [2]))[0]
    np.testing.assert_allclose(cs.viz.saliency(model, x[0], 2), expected, atol=1e-4)
    gray = seed002_model()
    image = np.random.default_rng(7).normal(size=(8, 8)).astype("float32")
    np.testing.assert_array_equal(cs.viz.gradcam(gray, image, class_index=1),
                                  cs.viz.gradcam(gray, image[None, ..., None], class_index=1)[0])


def test_channels_first_model_gives_the_channels_last_map():
    def build(data_format):
        shape = (3, 10, 10) if data_format == "channels_first" else (10, 10, 3)
        return cs.Sequential([cs.Input(shape), L.Conv2D(4, 3, activation="relu", data_format=data_format),
                              L.Conv2D(5, 3, padding="same", activation="relu", data_format=data_format),
                              L.GlobalAveragePooling2D(data_format=data_format), L.Dense(3, activation="softmax")])
    last, first = build("channels_last"), build("channels_first")
    _randomize(last, np.random.default_rng(8), scale=0.5)
    first.set_weights(last.get_weights())
    x = np.random.default_rng(9).normal(size=(2, 10, 10, 3)).astype("float32")
    x_first = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    np.testing.assert_allclose(cs.viz.gradcam(first, x_first), cs.viz.gradcam(last, x), atol=1e-5)
    np.testing.assert_allclose(cs.viz.saliency(first, x_first), cs.viz.saliency(last, x), atol=1e-5)


def test_pictures_svg_png_and_colours(tmp_path, seed001):
    x = np.random.default_rng(10).normal(size=(28, 28, 1)).astype("float32")
    figure = cs.viz.plot_gradcam(seed001, x, to_file=tmp_path / "cam.svg", class_index=2)
    svg = (tmp_path / "cam.svg").read_text()
    assert "Grad-CAM of class 2 at layer" in svg and "conv2d_2" in svg
    assert svg.count("<image") == 3 and figure.info["layer"] == "conv2d_2" and figure.info["class_index"] == 2
    np.testing.assert_array_equal(figure.info["heatmap"], cs.viz.gradcam(seed001, x, class_index=2))
    saliency = cs.viz.plot_saliency(seed001, x, class_index=2)
    assert saliency.path is None and "Saliency of class 2" in saliency.to_svg()
    pytest.importorskip("PIL")
    cs.viz.plot_saliency(seed001, x, to_file=tmp_path / "s.png", smooth_samples=2, seed=0)
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # jet: 0 dark blue, 0.5 green, 1 dark red; the overlay mixes at alpha
    np.testing.assert_array_equal(heatmap_rgb(np.array([0.0, 0.5, 1.0])), [[0, 0, 128], [128, 255, 128], [128, 0, 0]])
    image = np.zeros((2, 2, 1))
    image[0, 0] = 1
    mixed = overlay(image, np.ones((2, 2)), alpha=0.25)
    np.testing.assert_array_equal(mixed[0, 0], np.round(0.75 * 255 + 0.25 * np.array([128, 0, 0])))
    np.testing.assert_array_equal(mixed[1, 1], np.round(0.25 * np.array([128, 0, 0])))


def test_argument_errors(seed001):
    x = np.zeros((28, 28, 1), "float32")
    with pytest.raises(ValueError, match=r"gradcam: argument `layer`: Sequential '.*' has no layer named 'conv'; "
                                         r"its layers are \['conv2d', 'batch_normalization'"):
        cs.viz.gradcam(seed001, x, "conv")
    with pytest.raises(ValueError, match=r"gradcam: argument `layer`: layer 'flatten' outputs shape \(400,\), "
                                         r"not feature maps"):
        cs.viz.gradcam(seed001, x, "flatten")
    with pytest.raises(ValueError, match=r"gradcam: argument `class_index` must be None \(the predicted class\), "
                                         r"an int or one int per image \(1\), got 1.5"):
        cs.viz.gradcam(seed001, x, class_index=1.5)
    with pytest.raises(ValueError, match=r"gradcam: argument `class_index`: class 25 is out of range for 25 "
                                         r"classes \(0 to 24\)"):
        cs.viz.gradcam(seed001, x, class_index=25)
    with pytest.raises(ValueError, match=r"saliency: argument `class_index`: class -1 is out of range"):
        cs.viz.saliency(seed001, np.zeros((2, 28, 28, 1)), class_index=[0, -1])
    with pytest.raises(ValueError, match=r"plot_saliency: argument `class_index`: class 25 is out of range"):
        cs.viz.plot_saliency(seed001, x, class_index=25)
    with pytest.raises(ValueError, match=r"saliency: argument `image` must be one image of shape \(28, 28, 1\) or "
                                         r"a batch \(N,\) \+ \(28, 28, 1\), got shape \(28, 27, 1\)"):
        cs.viz.saliency(seed001, np.zeros((28, 27, 1)))
    with pytest.raises(ValueError, match=r"saliency: argument `smooth_samples` must be an int >= 0, got -1"):
        cs.viz.saliency(seed001, x, smooth_samples=-1)
    with pytest.raises(ValueError, match=r"saliency: argument `noise` must be a positive number"):
        cs.viz.saliency(seed001, x, smooth_samples=2, noise=0)
    with pytest.raises(TypeError, match=r"gradcam: argument `model` must be a convscope model .* got str"):
        cs.viz.gradcam("model", x)
    with pytest.raises(ValueError, match=r"plot_gradcam: argument `image` must be one image of shape "
                                         r"\(28, 28, 1\), got a batch of 2"):
        cs.viz.plot_gradcam(seed001, np.zeros((2, 28, 28, 1)))
    with pytest.raises(ValueError, match=r"overlay: argument `alpha` must be a number in \[0, 1\], got 2"):
        overlay(np.zeros((2, 2)), np.zeros((2, 2)), alpha=2)
    with pytest.raises(ValueError, match=r"overlay: argument `heatmap` must have the image's size \(2, 2\)"):
        overlay(np.zeros((2, 2)), np.zeros((3, 2)))
    dense = cs.Sequential([cs.Input((4, 4, 1)), L.Flatten(), L.Dense(2)])
    with pytest.raises(ValueError, match=r"gradcam: argument `layer`: Sequential '.*' has no conv layer"):
        cs.viz.gradcam(dense, np.zeros((4, 4, 1)))
    a, b = cs.Input((4, 4, 1)), cs.Input((4, 4, 1))
    two = cs.Model([a, b], L.Add()([a, b]))
    with pytest.raises(ValueError, match=r"saliency: argument `model` must have one input \(an image\), it has 2"):
        cs.viz.saliency(two, np.zeros((4, 4, 1)))
    image = cs.Input((4, 4, 1))
    features = L.Flatten()(L.Conv2D(2, 3)(image))
    heads = cs.Model(image, [L.Dense(3, activation="softmax")(features), L.Dense(3)(features)])
    for function in (cs.viz.gradcam, cs.viz.saliency, cs.viz.plot_gradcam):
        with pytest.raises(ValueError, match=rf"{function.__name__}: argument `model` must have one output \(the "
                                             r"class scores\), it has 2; for one of them use convscope.gradients"):
            function(heads, np.zeros((4, 4, 1)))
    unbuilt = cs.Sequential([L.Conv2D(2, 3), L.Flatten(), L.Dense(2)])
    with pytest.raises(ValueError, match=r"gradcam: argument `model` Sequential '.*' is not built \(its input "
                                         r"shape is unknown\)"):
        cs.viz.gradcam(unbuilt, np.zeros((4, 4, 1)))


def test_default_layer_of_a_transfer_learning_model_is_its_nested_base():
    """base (a nested Sequential of convs) -> pooling -> Dense: no conv at the top level, so the
    default is the base's feature maps (it refused with 'no conv layer')."""
    import convscope as cs
    base = cs.Sequential([cs.Input((10, 10, 3)), cs.layers.Conv2D(4, 3, activation="relu"),
                          cs.layers.Conv2D(5, 3, activation="relu")], name="base")
    inp = cs.Input((10, 10, 3))
    out = cs.layers.Dense(3, activation="softmax")(cs.layers.GlobalAveragePooling2D()(base(inp)))
    model = cs.Model(inp, out)
    image = np.random.default_rng(4).random((10, 10, 3)).astype("float32")
    assert last_conv_layer(model) is base
    default = cs.viz.gradcam(model, image)
    np.testing.assert_array_equal(default, cs.viz.gradcam(model, image, layer="base"))
    assert default.shape == (10, 10) and default.max() == pytest.approx(1.0)
