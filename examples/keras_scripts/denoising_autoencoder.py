"""Convolutional autoencoder for image denoising — the keras.io example, run on convscope.

Source: https://keras.io/examples/vision/autoencoder/ (Santiago L. Valdarrama, Apache License 2.0).
Changes from the original, and nothing else:
  * imports: `from keras import layers` / `from keras.datasets import mnist` /
    `from keras.models import Model` -> convscope;
  * the matplotlib `display()` of sample images is left out (it only shows pictures);
  * trimmed for a quick run: 2,000 training and 500 test images, 1 epoch per stage (the original:
    all, 50 and 100 epochs).
"""

import numpy as np

from convscope import layers
from convscope.datasets import mnist
from convscope.models import Model


def preprocess(array):
    """Normalizes the supplied array and reshapes it."""
    array = array.astype("float32") / 255.0
    array = np.reshape(array, (len(array), 28, 28, 1))
    return array


def noise(array):
    """Adds random noise to each image in the supplied array."""
    noise_factor = 0.4
    noisy_array = array + noise_factor * np.random.normal(loc=0.0, scale=1.0, size=array.shape)
    return np.clip(noisy_array, 0.0, 1.0)


# Since we only need images from the dataset to encode and decode, we
# won't use the labels.
(train_data, _), (test_data, _) = mnist.load_data()
train_data, test_data = train_data[:2000], test_data[:500]  # trimmed

# Normalize and reshape the data
train_data = preprocess(train_data)
test_data = preprocess(test_data)

# Create a copy of the data with added noise
noisy_train_data = noise(train_data)
noisy_test_data = noise(test_data)

input = layers.Input(shape=(28, 28, 1))

# Encoder
x = layers.Conv2D(32, (3, 3), activation="relu", padding="same")(input)
x = layers.MaxPooling2D((2, 2), padding="same")(x)
x = layers.Conv2D(32, (3, 3), activation="relu", padding="same")(x)
x = layers.MaxPooling2D((2, 2), padding="same")(x)

# Decoder
x = layers.Conv2DTranspose(32, (3, 3), strides=2, activation="relu", padding="same")(x)
x = layers.Conv2DTranspose(32, (3, 3), strides=2, activation="relu", padding="same")(x)
x = layers.Conv2D(1, (3, 3), activation="sigmoid", padding="same")(x)

# Autoencoder
autoencoder = Model(input, x)
autoencoder.compile(optimizer="adam", loss="binary_crossentropy")
autoencoder.summary()

autoencoder.fit(
    x=train_data,
    y=train_data,
    epochs=1,  # trimmed (50)
    batch_size=128,
    shuffle=True,
    validation_data=(test_data, test_data),
)

predictions = autoencoder.predict(test_data)

autoencoder.fit(
    x=noisy_train_data,
    y=train_data,
    epochs=1,  # trimmed (100)
    batch_size=128,
    shuffle=True,
    validation_data=(noisy_test_data, test_data),
)

predictions = autoencoder.predict(noisy_test_data)
print("denoised:", predictions.shape, "test loss:", autoencoder.evaluate(noisy_test_data, test_data, verbose=0))
