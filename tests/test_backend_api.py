"""`convscope.backend` as `keras.backend` (Keras 3.15.1, torch backend, is the oracle): the session
settings, what `clear_session` resets, and layers whose `data_format=None` follows the setting."""

import inspect
import threading

import numpy as np
import pytest

import convscope
from convscope import backend as K
from convscope import layers as L

# Required arguments of the layers that take `data_format`, to build one of each.
REQUIRED = {"pool_size": 2, "filters": 2, "kernel_size": 3, "height": 4, "width": 4, "rate": 0.5, "factor": 0.1,
            "height_factor": 0.1, "width_factor": 0.1, "output_size": 2}


@pytest.fixture
def settings(keras):
    """Restore both libraries' session settings after the test."""
    saved = (K.image_data_format(), K.epsilon(), K.floatx())
    saved_keras = (keras.backend.image_data_format(), keras.backend.epsilon(), keras.backend.floatx())
    yield keras
    K.set_image_data_format(saved[0]), K.set_epsilon(saved[1]), K.set_floatx(saved[2])
    keras.backend.set_image_data_format(saved_keras[0])
    keras.backend.set_epsilon(saved_keras[1])
    keras.backend.set_floatx(saved_keras[2])


def test_defaults_are_keras_defaults(settings):
    keras = settings
    assert K.image_data_format() == keras.backend.image_data_format() == "channels_last"
    assert K.epsilon() == keras.backend.epsilon()
    assert K.floatx() == keras.backend.floatx()
    assert K.backend() == "numpy"


@pytest.mark.parametrize("value", ["channels_first", "Channels_First", "CHANNELS_LAST", "channels_last"])
def test_set_image_data_format_as_keras(settings, value):
    keras = settings
    K.set_image_data_format(value)
    keras.backend.set_image_data_format(value)
    assert K.image_data_format() == keras.backend.image_data_format()
    assert K.image_data_format() == value.lower()


@pytest.mark.parametrize("value", ["channels_middle", "", "NHWC", None, 3])
def test_set_image_data_format_refuses_what_keras_refuses(settings, value):
    keras = settings
    with pytest.raises(ValueError):
        keras.backend.set_image_data_format(value)
    with pytest.raises(ValueError, match=r"set_image_data_format: argument `data_format` must be one of "
                                         r"\('channels_last', 'channels_first'\), got " + repr(value)):
        K.set_image_data_format(value)
    assert K.image_data_format() == "channels_last"     # unchanged by the refused call


@pytest.mark.parametrize("value", [1e-5, 1e-3, 2, np.float32(1e-4)])
def test_set_epsilon_as_keras(settings, value):
    keras = settings
    K.set_epsilon(value)
    keras.backend.set_epsilon(value)
    assert K.epsilon() == float(keras.backend.epsilon())
    assert isinstance(K.epsilon(), float)


@pytest.mark.parametrize("value, error, expected", [
    ("1e-7", TypeError, "a float"), (True, TypeError, "a float"), (None, TypeError, "a float"),
    (0.0, ValueError, "a finite float > 0"), (-1e-7, ValueError, "a finite float > 0"),
    (float("nan"), ValueError, "a finite float > 0"), (float("inf"), ValueError, "a finite float > 0"),
])
def test_set_epsilon_checks_its_argument(settings, value, error, expected):
    before = K.epsilon()
    with pytest.raises(error, match=rf"set_epsilon: argument `value` must be {expected}, got {value!r}"):
        K.set_epsilon(value)
    assert K.epsilon() == before


def test_set_floatx_message():
    with pytest.raises(ValueError, match=r"set_floatx: argument `value` must be 'float32' or 'float64', "
                                         r"got 'float16'"):
        K.set_floatx("float16")


def _naming_script(lib):
    """The same calls in either library: automatic names and get_uid share their counters."""
    lib.backend.clear_session()
    names = [lib.layers.Dense(2).name, lib.layers.Dense(2).name]
    names += [lib.backend.get_uid("dense"), lib.backend.get_uid("conv"), lib.backend.get_uid("")]
    names += [lib.layers.Dense(2).name, lib.layers.Conv2D(1, 1).name]
    lib.backend.clear_session()
    names += [lib.layers.Dense(2).name, lib.backend.get_uid("dense"), lib.backend.get_uid("dense")]
    return names


def test_get_uid_and_names_as_keras(keras):
    assert _naming_script(convscope) == _naming_script(keras)


def test_get_uid_checks_its_argument():
    with pytest.raises(TypeError, match=r"get_uid: argument `prefix` must be a str, got 3"):
        K.get_uid(3)


def test_clear_session_resets_names_not_settings_as_keras(settings):
    keras = settings
    for lib in (convscope, keras):
        lib.backend.set_image_data_format("channels_first")
        lib.backend.set_epsilon(1e-4)
        lib.backend.set_floatx("float64")
        lib.layers.Conv2D(1, 1)
        lib.backend.clear_session()
    for read in ("image_data_format", "epsilon", "floatx"):
        assert getattr(K, read)() == getattr(keras.backend, read)()
    assert (K.image_data_format(), K.floatx()) == ("channels_first", "float64")
    assert L.Conv2D(1, 1).name == keras.layers.Conv2D(1, 1).name == "conv2d"


def test_clear_session_free_memory(monkeypatch):
    calls = []
    monkeypatch.setattr(K.gc, "collect", lambda: calls.append(1))
    K.clear_session()
    K.clear_session(free_memory=False)
    assert calls == [1]
    with pytest.raises(TypeError, match=r"clear_session: argument `free_memory` must be True or False, "
                                        r"got 'yes'"):
        K.clear_session(free_memory="yes")


def test_settings_are_process_wide_as_in_keras(settings):
    keras = settings

    def set_in_a_thread():
        K.set_image_data_format("channels_first")
        keras.backend.set_image_data_format("channels_first")

    thread = threading.Thread(target=set_in_a_thread)
    thread.start()
    thread.join()
    assert K.image_data_format() == keras.backend.image_data_format() == "channels_first"


def test_keras_2_names_only_where_keras_3_has_them(keras):
    """Everything `keras.backend` offers that is about settings and names is here; Keras 2's
    `image_dim_ordering` family is not in Keras 3, and not here."""
    not_provided = {"is_float_dtype", "is_int_dtype", "is_keras_tensor", "result_type", "standardize_dtype"}
    public = {n for n in dir(keras.backend) if not n.startswith("_")}
    assert public - not_provided <= set(dir(K))
    for old in ("image_dim_ordering", "set_image_dim_ordering"):
        assert not hasattr(keras.backend, old) and not hasattr(K, old)


def _data_format_layers():
    """(name, convscope class) of every layer taking `data_format`."""
    found = []
    for name in sorted(dir(L)):
        cls = getattr(L, name)
        if inspect.isclass(cls) and "data_format" in inspect.signature(cls.__init__).parameters:
            found.append((name, cls))
    return found


def _make(cls, **extra):
    params = inspect.signature(cls.__init__).parameters
    required = dict(REQUIRED, **({"factor": 4} if cls.__name__ == "RandomPosterization" else {}))   # bits: [1, 8]
    args = {p: required[p] for p, v in params.items()
            if v.default is inspect.Parameter.empty and p != "self" and v.kind not in (v.VAR_POSITIONAL, v.VAR_KEYWORD)}
    return cls(**args, **extra)


@pytest.mark.parametrize("data_format", ["channels_first", "channels_last"])
def test_layers_with_data_format_none_follow_the_setting_as_keras(settings, data_format):
    keras = settings
    K.set_image_data_format(data_format)
    keras.backend.set_image_data_format(data_format)
    compared = 0
    for name, cls in _data_format_layers():
        ours = _make(cls)
        assert ours.data_format == data_format, name
        assert ours.get_config()["data_format"] == data_format, name
        if hasattr(keras.layers, name):
            theirs = _make(getattr(keras.layers, name))
            assert theirs.get_config()["data_format"] == ours.get_config()["data_format"], name
            compared += 1
        other = "channels_last" if data_format == "channels_first" else "channels_first"
        assert _make(cls, data_format=other).data_format == other, name   # explicit wins
    assert compared >= 15


def test_a_layer_keeps_the_format_it_was_created_with(settings):
    keras = settings
    ours, theirs = L.Conv2D(2, 3), keras.layers.Conv2D(2, 3)
    K.set_image_data_format("channels_first")
    keras.backend.set_image_data_format("channels_first")
    assert ours.data_format == theirs.data_format == "channels_last"
    assert L.Conv2D(2, 3).data_format == keras.layers.Conv2D(2, 3).data_format == "channels_first"


def _lenet_fragment(lib, x):
    """The classic Keras script: reshape and input_shape by `K.image_data_format()`."""
    Kb, layers = lib.backend, lib.layers
    img_rows, img_cols = 12, 10
    if Kb.image_data_format() == "channels_first":
        x = x.reshape(x.shape[0], 1, img_rows, img_cols)
        input_shape = (1, img_rows, img_cols)
    else:
        x = x.reshape(x.shape[0], img_rows, img_cols, 1)
        input_shape = (img_rows, img_cols, 1)
    model = lib.models.Sequential([
        lib.Input(input_shape), layers.Conv2D(4, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)), layers.Flatten(), layers.Dense(3, activation="softmax")])
    return model, x


@pytest.mark.parametrize("data_format", ["channels_first", "channels_last"])
def test_classic_script_fragment_as_keras(settings, data_format):
    keras = settings
    K.set_image_data_format(data_format)
    keras.backend.set_image_data_format(data_format)
    flat = np.random.default_rng(7).random((5, 120), dtype=np.float32)
    ours, x = _lenet_fragment(convscope, flat)
    theirs, kx = _lenet_fragment(keras, flat)
    expected_input = (5, 1, 12, 10) if data_format == "channels_first" else (5, 12, 10, 1)
    assert x.shape == kx.shape == expected_input
    conv_out = ours.layers[0].compute_output_shape((None,) + x.shape[1:])
    assert conv_out == tuple(theirs.layers[0].compute_output_shape((None,) + kx.shape[1:]))
    ours.set_weights(theirs.get_weights())
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(kx, verbose=0),
                               rtol=1e-5, atol=1e-6)
