"""Keras 3.15.1's applications and two hand-written functional models, through Keras' own files.

Each model is built by Keras with `weights=None` at the smallest input it takes (kernels from
Keras' seeded initializers; BatchNormalization's moving statistics, gammas, betas and biases
drawn away from their 0/1 starting values), saved by Keras as `.keras` and legacy `.h5` in a temporary folder and
loaded by convscope: the same parameter count and outputs (1e-4 relative), one SGD step as
Keras' `train_on_batch`, summary/explain/plot_model on it, and convscope's own `.keras` of
it opened by Keras with the same outputs.  Also: the optimizers whose slots Keras keeps per
variable (Adadelta, Adamax, Nadam, Lion, Ftrl, Lamb, Adafactor) restored by compile=True, and ConvNeXt's LayerScale and
StochasticDepth.  (A Lambda with bytecode and an unknown class: tests/test_keras_files.py.)
"""

import types

import numpy as np
import pytest

import convscope as cs
from convscope.io.keras_tree import keras_layers

pytest.importorskip("h5py")
FORMATS = (".keras", ".h5")


# -- the models ------------------------------------------------------------------------------------

def unet(keras):
    """A small U-Net: two levels down, Conv2DTranspose and UpSampling2D up, skips by Concatenate,
    `x * 0.5` and `x + y` written as arithmetic (operations in Keras' config)."""
    L = keras.layers

    def block(x, filters):
        x = L.ReLU()(L.BatchNormalization()(L.Conv2D(filters, 3, padding="same", use_bias=False)(x)))
        return L.Conv2D(filters, 3, padding="same", activation="relu")(x)

    i = L.Input((32, 32, 3))
    d1 = block(i, 8)
    d2 = block(L.MaxPooling2D()(d1), 16)
    bottom = block(L.MaxPooling2D()(d2), 32) * 0.5
    u2 = block(L.Concatenate()([L.Conv2DTranspose(16, 2, strides=2)(bottom), d2]), 16)
    u1 = L.UpSampling2D()(u2)
    u1 = block(L.Concatenate()([L.Conv2D(8, 1)(u1) + d1, d1]), 8)
    return keras.Model(i, L.Conv2D(3, 1, name="logits")(u1), name="unet")


def resnet(keras):
    """A small residual net: bottleneck blocks with projection shortcuts, a nested Sequential
    block, `x + y` and the Add layer, hard_swish, Dropout and a Dense head."""
    L = keras.layers

    def bottleneck(x, filters, strides):
        shortcut = L.BatchNormalization()(L.Conv2D(filters, 1, strides=strides)(x))
        y = L.Activation("relu")(L.BatchNormalization()(L.Conv2D(filters // 2, 1)(x)))
        y = L.ZeroPadding2D(1)(y)
        y = L.Activation("hard_swish")(L.BatchNormalization()(L.Conv2D(filters // 2, 3, strides=strides)(y)))
        y = L.BatchNormalization()(L.Conv2D(filters, 1)(y))
        return L.ReLU()(L.Add()([shortcut, y]))

    i = L.Input((32, 32, 3))
    x = L.MaxPooling2D(3, strides=2, padding="same")(L.ReLU()(L.BatchNormalization()(L.Conv2D(16, 5, strides=2)(i))))
    x = bottleneck(x, 32, 1)
    x = bottleneck(x, 64, 2)
    inner = keras.Sequential([L.Input(tuple(x.shape[1:])), L.DepthwiseConv2D(3, padding="same"),
                              L.BatchNormalization(), L.ReLU(max_value=6.0)], name="inner_block")
    x = x + inner(x)
    x = L.Dropout(0.3)(L.GlobalAveragePooling2D()(x))
    return keras.Model(i, L.Dense(10, name="logits")(x), name="resnet_small")


def application(name, size):
    def build(keras):
        return getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3), classes=10,
                                                 classifier_activation=None)
    return build


# name -> (builder, image side, pixel range: 255 where the model rescales its input itself)
MODELS = {
    "VGG16": (application("VGG16", 32), 32, 1.0),
    "ResNet50": (application("ResNet50", 32), 32, 1.0),
    "ResNet50V2": (application("ResNet50V2", 32), 32, 1.0),
    "MobileNet": (application("MobileNet", 32), 32, 1.0),
    "MobileNetV2": (application("MobileNetV2", 32), 32, 1.0),
    "MobileNetV3Small": (application("MobileNetV3Small", 32), 32, 255.0),
    "DenseNet121": (application("DenseNet121", 32), 32, 1.0),
    "EfficientNetB0": (application("EfficientNetB0", 32), 32, 255.0),
    "Xception": (application("Xception", 71), 71, 1.0),
    "InceptionV3": (application("InceptionV3", 75), 75, 1.0),
    "ConvNeXtTiny": (application("ConvNeXtTiny", 32), 32, 255.0),
    "unet": (unet, 32, 1.0),
    "resnet": (resnet, 32, 1.0),
}
HEAVY = {"ResNet50", "Xception", "ConvNeXtTiny"}
PARAMS = [pytest.param(name, marks=pytest.mark.slow) if name in HEAVY else name for name in MODELS]
# The convscope -> Keras round trip leaves out two heavy models (Keras takes seconds to rebuild each) whose
# layers make it elsewhere: ResNet50's in ResNet50V2 and the hand-written resnet, ConvNeXtTiny's in
# test_convnext_layers_load_save_and_match_keras.
ROUND_TRIP_PARAMS = [name for name in MODELS if name not in ("ResNet50", "ConvNeXtTiny")]


def randomize(keras_model, seed):
    """Keras' kernels kept (its initializers); every other float weight drawn anew, away from 0/1."""
    rng = np.random.default_rng(seed)
    for variable in keras_model.weights:
        leaf, shape = variable.path.rsplit("/", 1)[-1], tuple(variable.shape)
        if "int" in str(variable.dtype):
            continue                                            # Normalization's count
        if leaf in ("moving_variance", "variance"):
            value = rng.uniform(0.5, 1.5, shape)
        elif leaf in ("gamma",):
            value = rng.uniform(0.5, 1.5, shape)
        elif leaf in ("moving_mean", "mean", "beta", "bias"):
            value = rng.normal(0.0, 0.2, shape)
        else:
            continue
        variable.assign(value.astype("float32"))


def prepare_for_the_step(layers, freeze_batch_norm):
    """Dropout off (draws cannot match between libraries); BatchNormalization frozen where asked
    (inference mode in training, as Keras 3 runs a BN with trainable=False)."""
    for layer in layers:
        if hasattr(layer, "layers"):
            prepare_for_the_step(layer.layers, freeze_batch_norm)
        elif type(layer).__name__ == "Dropout":
            layer.rate = 0.0
        elif type(layer).__name__ == "BatchNormalization" and freeze_batch_norm:
            layer.trainable = False


def loss_for(keras):
    return keras.losses.CategoricalCrossentropy(from_logits=True)


@pytest.fixture(scope="module", autouse=True)
def _torch_on_one_thread(keras):
    """Keras' torch ops on these small batches: one thread, no OpenMP spinning on a shared machine."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=PARAMS)
def case(request, keras, tmp_path_factory):
    """One Keras model, its two files, an input batch of 2, targets and Keras' outputs; the
    convscope models loaded from each file (compile=True) once, on first use."""
    name = request.param
    build, size, scale = MODELS[name]
    keras.utils.set_random_seed(0)
    model = build(keras)
    randomize(model, seed=1)
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss=loss_for(keras) if name != "unet" else "mse")
    folder = tmp_path_factory.mktemp(name)
    rng = np.random.default_rng(2)
    x = (rng.uniform(0, 1, (2, size, size, 3)) * scale).astype("float32")
    shape = tuple(model.outputs[0].shape[1:])
    y = rng.uniform(0, 1, (2,) + shape).astype("float32")
    if name != "unet":
        y = np.eye(shape[-1], dtype="float32")[[3, 7]]
    for suffix in FORMATS:
        model.save(folder / f"model{suffix}")
    loaded = {}

    def load(suffix):
        if suffix not in loaded:
            loaded[suffix] = cs.models.load_model(folder / f"model{suffix}")
        return loaded[suffix]

    yield types.SimpleNamespace(name=name, keras_model=model, folder=folder, x=x, y=y,
                                want=keras.ops.convert_to_numpy(model(x, training=False)), load=load)
    loaded.clear()


def all_layers(model):
    """The layers of `model` and of the models nested in it."""
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from all_layers(layer)


def assert_relative(got, want, rtol, what, atol=0.0):
    """|got - want| <= rtol * max|want| + atol everywhere (the scale of the whole tensor)."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, what
    scale = float(np.max(np.abs(want))) or 1.0
    error = float(np.max(np.abs(got - want)))
    assert error <= rtol * scale + atol, f"{what}: error {error:.2e} > {rtol:.0e} * {scale:.2e} + {atol:.0e}"


# -- Keras -> convscope -----------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", FORMATS)
def test_a_keras_file_loads_with_the_same_parameters_and_outputs(case, suffix):
    model = case.load(suffix)
    kmodel = case.keras_model
    assert model.count_params() == kmodel.count_params()
    assert [layer.name for layer in keras_layers(model)] == [layer.name for layer in kmodel.layers]
    assert [w.shape for w in model.get_weights()] == [tuple(w.shape) for w in kmodel.get_weights()]
    assert model.optimizer.learning_rate == pytest.approx(0.01)
    for layer in all_layers(model):
        if type(layer).__name__ == "BatchNormalization":      # statistics away from 0/1, as saved
            assert np.all(layer.moving_mean.value != 0) and np.all(layer.moving_variance.value != 1), layer.name
    assert_relative(model.predict(case.x, verbose=0), case.want, 1e-4, f"{case.name}{suffix} outputs")


def test_summary_explain_and_plot_model_run(case, capsys, tmp_path):
    model = case.load(".keras")
    model.summary()
    printed = capsys.readouterr().out
    assert f"Total params: {model.count_params():,}" in printed
    svg = tmp_path / "model.svg"
    cs.plot_model(model, str(svg), show_shapes=True)
    assert svg.stat().st_size > 0 and svg.read_text().lstrip().startswith(("<?xml", "<svg"))
    text = str(cs.explain(model))
    assert model.layers[-1].name in text


# -- convscope -> Keras ------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ROUND_TRIP_PARAMS, indirect=True)
def test_a_convscope_keras_file_opens_in_keras_with_the_same_outputs(case, keras, tmp_path):
    path = tmp_path / "again.keras"
    case.load(".keras").save(path)
    reopened = keras.saving.load_model(path, compile=False)
    assert reopened.count_params() == case.keras_model.count_params()
    got = keras.ops.convert_to_numpy(reopened(case.x, training=False))
    assert_relative(got, case.want, 1e-4, f"{case.name} through convscope")


# -- training: last, since it changes the models -------------------------------------------------------

def test_one_sgd_step_agrees_with_keras(case):
    """One `train_on_batch` of the model loaded from `.keras`: the loss and every weight's change.

    The applications train with their BatchNormalization frozen: over a batch of 2 their last
    stages normalize 2 to 8 values per channel, where float32 rounding grows through the blocks
    until Keras' own float32 output is 0.85 (relative) away from its float64 one (ResNet50; in
    Xception's first block Keras' float32 step is up to 9% off its float64 step, convscope's within
    5e-5); the two hand-written nets train theirs on the batch's statistics."""
    kmodel, model = case.keras_model, case.load(".keras")
    freeze = case.name not in ("unet", "resnet")
    before = [np.array(w) for w in kmodel.get_weights()]
    prepare_for_the_step(kmodel.layers, freeze)
    prepare_for_the_step(model.layers, freeze)
    want_loss = float(np.ravel(kmodel.train_on_batch(case.x, case.y))[0])
    loss = float(np.ravel(model.train_on_batch(case.x, case.y))[0])
    assert loss == pytest.approx(want_loss, rel=1e-4)
    names = [w.name for w in model.weights]
    for name, old, got, want in zip(names, before, model.get_weights(), kmodel.get_weights(), strict=True):
        if np.issubdtype(old.dtype, np.integer):
            continue
        # a bias right before a BatchNormalization has a zero gradient: both move it by rounding noise
        assert_relative(np.asarray(got, np.float64) - old, np.asarray(want, np.float64) - old, 2e-3,
                        f"{case.name}: the change of {name}", atol=1e-7)


# -- compile=True: the optimizers whose slots Keras keeps per variable ---------------------------------

def small_net(keras):
    L = keras.layers
    i = L.Input((8, 8, 3))
    x = L.BatchNormalization()(L.Conv2D(4, 3, activation="relu")(i))
    return keras.Model(i, L.Dense(5)(L.Flatten()(x)), name="small")


@pytest.mark.parametrize("optimizer", [("Adadelta", {"learning_rate": 0.5, "rho": 0.9}),
                                       ("Adamax", {"learning_rate": 0.01}),
                                       ("Nadam", {"learning_rate": 0.01}),
                                       ("Lion", {"learning_rate": 0.001, "beta_1": 0.8}),
                                       ("Ftrl", {"learning_rate": 0.05, "l1_regularization_strength": 0.01,
                                                 "l2_shrinkage_regularization_strength": 0.02, "beta": 0.1}),
                                       ("Lamb", {"learning_rate": 0.01, "beta_1": 0.8}),
                                       ("Adafactor", {"learning_rate": 0.05, "clip_threshold": 0.5})])
def test_compile_true_restores_the_optimizer_loss_metrics_and_slots(keras, tmp_path, optimizer):
    """Two Keras steps, saved: convscope's third step is Keras' third step, from either file; the
    model saved again by convscope after its step gives Keras the same fourth step."""
    class_name, arguments = optimizer
    keras.utils.set_random_seed(3)
    kmodel = small_net(keras)
    randomize(kmodel, seed=4)
    kmodel.compile(optimizer=getattr(keras.optimizers, class_name)(**arguments),
                   loss=loss_for(keras), metrics=["categorical_accuracy"])
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(4, 8, 8, 3)).astype("float32"), np.eye(5, dtype="float32")[[0, 2, 4, 1]]
    kmodel.train_on_batch(x, y)
    kmodel.train_on_batch(x * 0.5, y)
    # Keras' legacy .h5 cannot hold Adafactor's r and c (two datasets named after their weight): .keras only
    formats = [suffix for suffix in FORMATS if class_name != "Adafactor" or suffix == ".keras"]
    for suffix in formats:
        kmodel.save(tmp_path / f"m{suffix}")
    loaded = {suffix: cs.models.load_model(tmp_path / f"m{suffix}") for suffix in formats}
    kmodel.train_on_batch(x, y)
    for suffix, model in loaded.items():
        config = model.optimizer.get_config()
        assert type(model.optimizer).__name__ == class_name and model.optimizer.iterations == 2, suffix
        assert all(config[key] == pytest.approx(value) for key, value in arguments.items()), suffix
        logs = model.train_on_batch(x, y, return_dict=True)
        assert sorted(logs) == ["categorical_accuracy", "loss"], suffix
        for got, want in zip(model.get_weights(), kmodel.get_weights(), strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6, err_msg=suffix)
    path = loaded[".keras"].save(tmp_path / "again.keras")
    reopened = keras.saving.load_model(path)
    assert type(reopened.optimizer).__name__ == class_name and int(reopened.optimizer.iterations) == 3
    reopened.train_on_batch(x * 2.0, y)
    loaded[".keras"].train_on_batch(x * 2.0, y)
    for got, want in zip(loaded[".keras"].get_weights(), reopened.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


# -- ConvNeXt's LayerScale and StochasticDepth -----------------------------------------------------------

def convnext_block(keras):
    from keras.src.applications.convnext import LayerScale, StochasticDepth
    L = keras.layers
    i = L.Input((6, 6, 4))
    y = L.LayerNormalization(epsilon=1e-6)(L.Conv2D(4, 3, padding="same", groups=4)(i))
    y = LayerScale(0.5, 4, name="scale")(L.Dense(4)(L.Activation("gelu")(L.Dense(8)(y))))
    y = StochasticDepth(0.3, name="drop_path")(y)
    return keras.Model(i, L.Add()([i, y]), name="block")


def test_convnext_layers_load_save_and_match_keras(keras, tmp_path):
    keras.utils.set_random_seed(6)
    kmodel = convnext_block(keras)
    randomize(kmodel, seed=7)
    x = np.random.default_rng(8).normal(size=(3, 6, 6, 4)).astype("float32")
    want = np.asarray(kmodel.predict(x, verbose=0))
    kmodel.save(tmp_path / "block.keras")
    kmodel.save(tmp_path / "block.h5")
    for suffix in FORMATS:
        model = cs.models.load_model(tmp_path / f"block{suffix}", compile=False)
        assert type(model.get_layer("scale")).__name__ == "LayerScale", suffix
        assert model.get_layer("drop_path").drop_path_rate == pytest.approx(0.3)
        assert_relative(model.predict(x, verbose=0), want, 1e-5, suffix)
    for name in ("scale", "drop_path"):
        want_config = dict(kmodel.get_layer(name).get_config())
        got_config = model.get_layer(name).get_config()
        assert {k: v for k, v in got_config.items() if k != "dtype"} == \
            {k: v for k, v in want_config.items() if k != "dtype"}
    reopened = keras.saving.load_model(model.save(tmp_path / "again.keras"))
    assert type(reopened.get_layer("scale")).__name__ == "LayerScale"
    assert_relative(reopened.predict(x, verbose=0), want, 1e-5, "convscope's file in Keras")


def test_layer_scale_gradients_against_finite_differences():
    from _gradcheck import assert_gradients_close, numerical_gradient
    layer = cs.layers.LayerScale(0.5, 3, dtype="float64")
    x = np.random.default_rng(9).normal(size=(2, 4, 3))
    layer.build(x.shape)
    layer.gamma.assign(np.array([0.5, -1.0, 2.0]))
    upstream = np.random.default_rng(10).normal(size=x.shape)
    y, ctx = layer.forward(x, training=True)
    np.testing.assert_allclose(y, x * layer.gamma.value)
    grad_x, [(variable, grad_gamma)] = layer.backward(ctx, upstream)
    assert variable is layer.gamma

    def loss():
        return float(np.sum(layer.forward(x, training=True)[0] * upstream))

    assert_gradients_close(grad_x, numerical_gradient(loss, x))
    assert_gradients_close(grad_gamma, numerical_gradient(loss, layer.gamma.value))


def test_stochastic_depth_drops_whole_samples_in_training_only():
    layer = cs.layers.StochasticDepth(0.5)
    x = np.random.default_rng(11).uniform(1, 2, size=(400, 3, 3, 2)).astype("float32")
    assert layer.forward(x, training=False)[0] is x
    cs.utils.set_random_seed(12)
    y, ctx = layer.forward(x, training=True)
    kept = np.all(y != 0, axis=(1, 2, 3))
    assert np.all(y[~kept] == 0) and np.allclose(y[kept], x[kept] * 2.0)
    assert 150 < kept.sum() < 250                     # half of 400, within 5 standard deviations
    grad, pairs = layer.backward(ctx, np.ones_like(x))
    assert pairs == [] and np.array_equal(grad != 0, y != 0)


def test_convnext_layer_arguments_are_checked():
    with pytest.raises(ValueError, match=r"LayerScale.*`projection_dim`.*positive int, got 0"):
        cs.layers.LayerScale(0.1, 0)
    with pytest.raises(TypeError, match=r"LayerScale.*`init_values`.*number, got 'a'"):
        cs.layers.LayerScale("a", 4)
    with pytest.raises(ValueError, match=r"LayerScale.*projection_dim=4.*\(None, 3\)"):
        cs.layers.LayerScale(0.1, 4).compute_output_shape((None, 3))
    with pytest.raises(ValueError, match=r"StochasticDepth.*`drop_path_rate`.*\[0.0, 1.0\).*1.0"):
        cs.layers.StochasticDepth(1.0)


def test_a_graph_model_compiled_with_a_loss_object_reloads_from_its_own_file(tmp_path):
    """compile_from_config gives a graph model its Loss object back (its keys are no output names)."""
    inputs = cs.layers.Input((4,))
    model = cs.Model(inputs, cs.layers.Dense(3, name="out")(inputs))
    model.compile(optimizer=cs.optimizers.SGD(0.1), loss=cs.losses.CategoricalCrossentropy(from_logits=True))
    again = cs.models.load_model(model.save(tmp_path / "m.convscope"))
    assert again.get_compile_config()["loss"] == model.get_compile_config()["loss"]
    x, y = np.random.default_rng(13).normal(size=(5, 4)).astype("float32"), np.eye(3, dtype="float32")[[0, 1, 2, 0, 1]]
    assert again.train_on_batch(x, y) == pytest.approx(model.train_on_batch(x, y), rel=1e-6)
    for got, want in zip(again.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6)
