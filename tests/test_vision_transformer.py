"""Keras' example "Image classification with Vision Transformer" (keras.io/examples/vision/image_classification_with_
vision_transformer), made small, run with convscope in place of keras: its custom layers (`Patches` through
`keras.ops.image.extract_patches`, `PatchEncoder` with an Embedding of `ops.arange` positions), MultiHeadAttention,
LayerNormalization and gelu MLPs predict and train with AdamW as Keras 3.15.1 does from the same weights; and
`ops.image`'s two functions against Keras' (values, gradients through the tape, symbolic tensors)."""

import numpy as np
import pytest

import convscope as cs
from _oracle import assert_step_and_file_match_keras


def vit(lib, dropout=0.0):
    """The Keras example 'Image classification with Vision Transformer', small."""
    L, ops = lib.layers, lib.ops
    image_size, patch_size, projection_dim, num_heads, transformer_layers = 16, 4, 8, 2, 2
    num_patches = (image_size // patch_size) ** 2
    transformer_units = [projection_dim * 2, projection_dim]
    mlp_head_units = [16, 8]

    class Patches(L.Layer):
        def __init__(self, patch_size):
            super().__init__()
            self.patch_size = patch_size

        def call(self, images):
            input_shape = ops.shape(images)
            batch_size, height, width, channels = input_shape[0], input_shape[1], input_shape[2], input_shape[3]
            num_patches_h, num_patches_w = height // self.patch_size, width // self.patch_size
            patches = lib.ops.image.extract_patches(images, size=self.patch_size)
            return ops.reshape(patches, (batch_size, num_patches_h * num_patches_w,
                                         self.patch_size * self.patch_size * channels))

    class PatchEncoder(L.Layer):
        def __init__(self, num_patches, projection_dim):
            super().__init__()
            self.num_patches = num_patches
            self.projection = L.Dense(units=projection_dim)
            self.position_embedding = L.Embedding(input_dim=num_patches, output_dim=projection_dim)

        def call(self, patch):
            positions = ops.expand_dims(ops.arange(start=0, stop=self.num_patches, step=1), axis=0)
            return self.projection(patch) + self.position_embedding(positions)

    def mlp(x, hidden_units, dropout_rate):
        for units in hidden_units:
            x = L.Dense(units, activation=lib.activations.gelu)(x)
            x = L.Dropout(dropout_rate)(x)
        return x

    inputs = lib.Input(shape=(image_size, image_size, 3))
    encoded = PatchEncoder(num_patches, projection_dim)(Patches(patch_size)(inputs))
    for _ in range(transformer_layers):
        x1 = L.LayerNormalization(epsilon=1e-6)(encoded)
        attention = L.MultiHeadAttention(num_heads=num_heads, key_dim=projection_dim, dropout=dropout)(x1, x1)
        x2 = L.Add()([attention, encoded])
        x3 = mlp(L.LayerNormalization(epsilon=1e-6)(x2), transformer_units, dropout)
        encoded = L.Add()([x3, x2])
    representation = L.Dropout(dropout)(L.Flatten()(L.LayerNormalization(epsilon=1e-6)(encoded)))
    return lib.Model(inputs=inputs, outputs=L.Dense(5)(mlp(representation, mlp_head_units, dropout)))


def test_the_keras_vit_example_predicts_and_trains_as_keras(keras):
    rng = np.random.default_rng(0)
    x, y = rng.uniform(size=(12, 16, 16, 3)).astype("float32"), rng.integers(0, 5, 12)
    keras.utils.set_random_seed(0)
    theirs, ours = vit(keras), vit(cs)
    ours.set_weights([np.asarray(w) for w in theirs.get_weights()])
    np.testing.assert_allclose(ours.predict(x, verbose=0), np.asarray(theirs.predict(x, verbose=0)), rtol=1e-5,
                               atol=1e-5)
    history = []
    for model, lib in ((theirs, keras), (ours, cs)):
        model.compile(optimizer=lib.optimizers.AdamW(learning_rate=0.01, weight_decay=0.0001),
                      loss=lib.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=[lib.metrics.SparseCategoricalAccuracy(name="accuracy")])
        history.append(model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history)
    np.testing.assert_allclose(history[1]["loss"], history[0]["loss"], rtol=1e-5)
    assert history[1]["accuracy"] == history[0]["accuracy"]
    for got, expected in zip(ours.get_weights(), theirs.get_weights()):
        # Adam divides each gradient by its own running size: the attention's key bias, whose exact gradient is 0
        # (a softmax ignores a shift all of a query's scores share), moves by float32's rounding, scaled up
        np.testing.assert_allclose(got, np.asarray(expected), rtol=1e-3, atol=1e-3)


PATCH_CASES = [dict(size=4), dict(size=(2, 4), strides=(2, 2)), dict(size=3, strides=2, padding="same"),
               dict(size=2, dilation_rate=2, strides=1), dict(size=2, data_format="channels_first")]
RESIZE_CASES = [dict(size=(5, 6)), dict(size=(16, 12), interpolation="nearest"),
                dict(size=(6, 6), crop_to_aspect_ratio=True), dict(size=(4, 8), pad_to_aspect_ratio=True,
                                                                   fill_value=0.5)]


@pytest.mark.parametrize("name,kwargs", [("extract_patches", k) for k in PATCH_CASES] +
                         [("resize", k) for k in RESIZE_CASES])
def test_ops_image_values_and_gradients_match_keras(keras, name, kwargs):
    import torch
    rng = np.random.default_rng(len(kwargs))
    x = rng.uniform(size=(2, 8, 8, 3)).astype("float32")
    expected = getattr(keras.ops.image, name)(torch.tensor(x, requires_grad=True), **kwargs)
    upstream = rng.normal(size=tuple(expected.shape)).astype("float32")
    images = torch.tensor(x, requires_grad=True)
    (getattr(keras.ops.image, name)(images, **kwargs) * torch.tensor(upstream)).sum().backward()
    variable = cs.layers.Variable(x, "images")
    with cs.ops.Tape() as tape:
        tape.watch(variable)
        out = getattr(cs.ops.image, name)(variable, **kwargs)
        total = cs.ops.sum(cs.ops.multiply(out, upstream))
    np.testing.assert_allclose(out.value, expected.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tape.gradient(total, variable), images.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_ops_image_on_symbolic_tensors_records_keras_operations(keras, tmp_path):
    """A Keras model with ExtractPatches and Resize nodes opens, trains a step and goes back."""
    def build(lib):
        image = lib.Input((8, 8, 3))
        patches = lib.ops.image.extract_patches(lib.layers.Conv2D(4, 1, name="mix")(image), size=2)    # (4, 4, 16)
        larger = lib.ops.image.resize(patches, (6, 6))
        return lib.Model(image, lib.layers.Dense(2, name="head")(lib.layers.GlobalAveragePooling2D()(larger)))
    keras.utils.set_random_seed(1)
    theirs = build(keras)
    theirs.save(tmp_path / "theirs.keras")
    ours = cs.models.load_model(tmp_path / "theirs.keras")
    assert {type(layer).__name__ for layer in ours.operations} >= {"ExtractPatches", "Resize"}
    rng = np.random.default_rng(2)
    x, y = rng.uniform(size=(3, 8, 8, 3)).astype("float32"), rng.normal(size=(3, 2)).astype("float32")
    assert_step_and_file_match_keras(keras, ours, theirs, x, y, "mse", tmp_path)
    with pytest.raises(ValueError, match=r"ops.image.extract_patches: argument `size` must be an int or a tuple of 2 "
                                         r"ints, got \(2, 2, 2\)"):
        cs.ops.image.extract_patches(x, (2, 2, 2))
    with pytest.raises(ValueError, match=r"ops.image.resize: argument `size` must be positive, got \(0, 4\)"):
        cs.ops.image.resize(x, (0, 4))
    with pytest.raises(ValueError, match=r"ops.image.resize: argument `antialias=True` is not supported"):
        cs.ops.image.resize(x, (4, 4), antialias=True)
