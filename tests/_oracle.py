"""Helpers of the oracle tests: TensorFlow's SAME split written out, the tolerances, configs made comparable."""

import json

import numpy as np
import pytest

TOLERANCE = {"float32": 1e-5, "float64": 1e-10}


def tf_same_split(length, kernel, stride, dilation=1):
    """TensorFlow's SAME padding (before, after), written out here independently of ops/shapes.py."""
    out = -(-length // stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - length, 0)
    return total // 2, total - total // 2


def assert_matches(ours, reference, dtype):
    """Agreement to 1e-5 (float32) / 1e-10 (float64) relative to the values' scale."""
    rtol = TOLERANCE[dtype]
    scale = max(1.0, float(np.abs(reference).max(initial=0.0)))
    assert ours.dtype == np.dtype(dtype)
    np.testing.assert_allclose(ours, reference, rtol=rtol, atol=rtol * scale)


def comparable_config(config):
    """A layer config as JSON, without the name and dtype, initializers as class name and config only (Keras
    adds input_axes/output_axes and a module), floats to 7 digits (Keras 3 writes an activity regularizer's
    0.01 as float32's 0.009999999776482582)."""
    config = json.loads(json.dumps(config), parse_float=lambda text: float(f"{float(text):.7g}"))
    for key in ("name", "dtype"):
        config.pop(key, None)
    for key, value in list(config.items()):
        if isinstance(value, dict) and "class_name" in value:
            inner = {k: v for k, v in (value.get("config") or {}).items() if k not in ("input_axes", "output_axes")}
            config[key] = {"class_name": value["class_name"], "config": inner}
    return config


def assert_output_shape_or_refusal_as_keras(ours, theirs, shape, error_pattern: str):
    """`ours.compute_output_shape(shape)` is Keras' (`theirs`'), or, where Keras refuses the shape or gives an
    empty axis, a ValueError matching `error_pattern` (the layer named)."""
    import pytest
    try:
        expected = tuple(theirs.compute_output_shape(shape))
    except Exception:
        expected = None
    if expected is None or any(d is not None and d <= 0 for d in expected):
        with pytest.raises(ValueError, match=error_pattern):
            ours.compute_output_shape(shape)
    else:
        assert ours.compute_output_shape(shape) == expected


def assert_layer_config_matches_keras_both_ways(keras, name: str, kwargs: dict, keras_reads_ours: bool = True,
                                                args: tuple = ()):
    """`layers.<name>(*args, **kwargs)`'s config is Keras' (names and dtypes aside); Keras' config rebuilds ours
    (the same class) and ours Keras' (`keras_reads_ours` False: a config Keras writes but refuses to read back;
    checked to be refused).  Returns (ours, theirs)."""
    from convscope import layers as L
    ours, theirs = getattr(L, name)(*args, **kwargs), getattr(keras.layers, name)(*args, **kwargs)
    expected = comparable_config(theirs.get_config())
    assert comparable_config(ours.get_config()) == expected
    rebuilt = L.deserialize(json.loads(json.dumps(keras.saving.serialize_keras_object(theirs))))
    assert type(rebuilt) is type(ours) and comparable_config(rebuilt.get_config()) == expected
    assert L.deserialize(json.loads(json.dumps(L.serialize(ours)))).get_config() == ours.get_config()
    config = json.loads(json.dumps(ours.get_config()))
    if not keras_reads_ours:
        try:
            getattr(keras.layers, name).from_config(config)
        except (TypeError, ValueError):
            return
        raise AssertionError(f"Keras now reads {name}'s config {config}")
    assert comparable_config(getattr(keras.layers, name).from_config(config).get_config()) == expected
    return ours, theirs


def assert_backward_matches_torch(ours, ctx, outputs, theirs, expected, tensors, rng, seeded=None, tol=1e-5):
    """A layer's call compared with Keras' on torch's autograd: `outputs` (ours, a list) equal `expected` (Keras'
    torch tensors); a random gradient on the outputs `seeded` (indices; the others get zeros) goes back through
    our `backward(ctx, ...)` and through torch: the gradients of the input `tensors` and of every weight (in
    `weights` order) agree."""
    import torch
    assert len(outputs) == len(expected)
    for got, reference in zip(outputs, expected):
        np.testing.assert_allclose(got, reference.detach().numpy(), rtol=1e-5, atol=tol)
    seeded = range(len(outputs)) if seeded is None else seeded
    upstream = [rng.standard_normal(np.shape(o)).astype("float32") if i in seeded else np.zeros_like(o)
                for i, o in enumerate(outputs)]
    sum((e * torch.tensor(u)).sum() for e, u in zip(expected, upstream)).backward()
    grads, pairs = ours.backward(ctx, upstream if len(upstream) > 1 else upstream[0])
    grads = grads if isinstance(grads, (list, tuple)) else [grads]
    for grad, tensor in zip(grads, tensors):
        np.testing.assert_allclose(grad, tensor.grad.numpy(), rtol=1e-4, atol=10 * tol)
    mine = {id(variable): grad for variable, grad in pairs}
    assert len(mine) == len(ours.weights) == len(theirs.weights)
    for variable, their_variable in zip(ours.weights, theirs.weights):
        np.testing.assert_allclose(mine[id(variable)], their_variable.value.grad.numpy(), rtol=1e-4, atol=10 * tol)


def assert_trains_as_keras(keras, theirs, ours, x, y, optimizer, loss="mse", epochs=3, batch_size=8, atol=1e-6):
    """`ours` given Keras' weights; both compiled with `optimizer(lib)` and `loss`, fitted alike (no shuffling): the
    same loss each epoch and the same weights after."""
    import convscope as cs
    ours.set_weights([np.asarray(w) for w in theirs.get_weights()])
    history = []
    for model, lib in ((theirs, keras), (ours, cs)):
        model.compile(optimizer=optimizer(lib), loss=loss)
        history.append(model.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=False, verbose=0).history["loss"])
    np.testing.assert_allclose(history[1], history[0], rtol=1e-5)
    for got, expected in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(got, np.asarray(expected), rtol=1e-4, atol=atol)


def assert_layer_matches_keras_through_autograd(ours, theirs, shape, rng, what: str = ""):
    """Both layers built for `shape`, Keras' weights redrawn (standard normal) and copied into ours; a random
    input through ours (`forward`, `backward`) and through Keras on torch's autograd: the output shape,
    outputs, input gradient and every weight's gradient (by the variable's last name) agree, and `ours(x)` (no
    context kept) gives the same output.  Returns (x, y)."""
    import torch
    from _calls import backward, forward
    theirs.build(shape)
    ours.build_from_shape((None,) + tuple(shape[1:]))
    weights = [rng.standard_normal(w.shape).astype("float32") for w in theirs.get_weights()]
    theirs.set_weights(weights)
    ours.set_weights(weights)
    x = rng.standard_normal(shape).astype("float32")
    y, ctx = forward(ours, x)
    assert y.shape == tuple(theirs.compute_output_shape(shape)) == ours.compute_output_shape(shape), what
    upstream = rng.standard_normal(y.shape).astype("float32")
    x_t = torch.tensor(x, requires_grad=True)
    y_t = theirs(x_t)
    y_t.backward(torch.tensor(upstream))
    grad_x, grads = backward(ours, ctx, upstream)
    grads = {key.split("/")[-1]: value for key, value in grads.items()}
    expected = {v.path.split("/")[-1]: v.value.grad.numpy() for v in theirs.trainable_weights}
    np.testing.assert_allclose(y, y_t.detach().numpy(), rtol=1e-5, atol=1e-5, err_msg=what)
    np.testing.assert_array_equal(ours(x), y)
    np.testing.assert_allclose(grad_x, x_t.grad.numpy(), rtol=1e-4, atol=1e-4, err_msg=what)
    assert sorted(grads) == sorted(expected), what
    for key, value in expected.items():
        np.testing.assert_allclose(grads[key], value, rtol=1e-4, atol=1e-4, err_msg=f"{key} of {what}")
    return x, y


def assert_step_and_file_match_keras(keras, ours, theirs, x, y, loss: str, tmp_path):
    """`ours`, loaded from `theirs`' file: Keras' predictions, one SGD step of `loss` to Keras' weights, and a file
    of ours that Keras reads back to the same predictions."""
    np.testing.assert_allclose(ours.predict(x, verbose=0), keras.ops.convert_to_numpy(theirs.predict(x, verbose=0)),
                               rtol=1e-5, atol=1e-6)
    for model in (ours, theirs):
        model.compile(optimizer="sgd", loss=loss)
        model.train_on_batch(x, y)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, keras.ops.convert_to_numpy(b), rtol=1e-4, atol=1e-6)
    ours.save(tmp_path / "again.keras")
    back = keras.saving.load_model(tmp_path / "again.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(back.predict(x, verbose=0)), ours.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)


def assert_training_call_matches_keras(keras, ours, theirs, x, rng):
    """One training call of `ours` (`forward`, `backward`) and of Keras' `theirs` on torch's autograd: the same
    outputs, every weight the same after it (moving statistics, normalized kernels) and the same input gradient.
    Returns our weight gradients by name (Keras' are on `theirs`' variables' `.value.grad`)."""
    import torch
    from _calls import backward, forward
    y, ctx = forward(ours, x, training=True)
    x_t = torch.tensor(x, requires_grad=True)
    y_t = theirs(x_t, training=True)
    upstream = rng.standard_normal(y.shape).astype("float32")
    y_t.backward(torch.tensor(upstream))
    np.testing.assert_allclose(y, y_t.detach().numpy(), rtol=1e-5, atol=1e-5)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, keras.ops.convert_to_numpy(b), rtol=1e-5, atol=1e-6)
    grad_x, grads = backward(ours, ctx, upstream)
    np.testing.assert_allclose(grad_x, x_t.grad.numpy(), rtol=1e-4, atol=1e-4)
    return grads


def torch_conv2d_inference(x, filters, strides, padding, dilations, bias, activation, scale, shift, then,
                           residual=None):
    """PyTorch's conv2d of an NHWC batch (HWIO filters, TensorFlow's SAME split), then activation(+ bias),
    * scale + shift, + residual (NHWC, if given) and `then` (linear, relu, relu6): the inference epilogue's oracle,
    in NHWC."""
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    kh, kw = filters.shape[:2]
    if padding == "SAME":
        pads = [tf_same_split(x.shape[1 + a], (kh, kw)[a], strides, dilations) for a in range(2)]
    else:
        pads = [(0, 0), (0, 0)]
    t = functional.pad(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), (*pads[1], *pads[0]))
    t = functional.conv2d(t, torch.from_numpy(filters.transpose(3, 2, 0, 1).copy()), stride=strides,
                          dilation=dilations)
    if bias is not None:
        t = t + torch.from_numpy(bias)[:, None, None]
    activations = {"linear": lambda v: v, "relu": functional.relu, "relu6": functional.relu6}
    t = activations[activation](t)
    if scale is not None:
        t = t * torch.from_numpy(scale)[:, None, None] + torch.from_numpy(shift)[:, None, None]
    if residual is not None:
        t = t + torch.from_numpy(residual.transpose(0, 3, 1, 2).copy())
    return activations[then](t).numpy().transpose(0, 2, 3, 1)
