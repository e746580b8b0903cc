"""Simple MNIST convnet — the keras.io example, run on convscope.

Source: https://keras.io/examples/vision/mnist_convnet/ (fchollet, Apache License 2.0).
Changes from the original, and nothing else:
  * imports: `import keras` / `from keras import layers` -> convscope;
  * trimmed for a quick run: 6,000 training and 2,000 test images, 1 epoch (the original: all, 15).
The data: `keras.datasets.mnist.load_data()` finds the MNIST files locally (CONVSCOPE_DATA, or
shared/datasets/mnist beside a checkout) or downloads them once, checked against their checksums.
"""

import numpy as np
import convscope as keras
from convscope import layers

# Model / data parameters
num_classes = 10
input_shape = (28, 28, 1)

# Load the data and split it between train and test sets
(x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
(x_train, y_train), (x_test, y_test) = (x_train[:6000], y_train[:6000]), (x_test[:2000], y_test[:2000])  # trimmed

# Scale images to the [0, 1] range
x_train = x_train.astype("float32") / 255
x_test = x_test.astype("float32") / 255
# Make sure images have shape (28, 28, 1)
x_train = np.expand_dims(x_train, -1)
x_test = np.expand_dims(x_test, -1)
print("x_train shape:", x_train.shape)
print(x_train.shape[0], "train samples")
print(x_test.shape[0], "test samples")

# convert class vectors to binary class matrices
y_train = keras.utils.to_categorical(y_train, num_classes)
y_test = keras.utils.to_categorical(y_test, num_classes)

model = keras.Sequential(
    [
        keras.Input(shape=input_shape),
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(num_classes, activation="softmax"),
    ]
)

model.summary()

batch_size = 128
epochs = 1  # trimmed (15)

model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])

model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, validation_split=0.1)

score = model.evaluate(x_test, y_test, verbose=0)
print("Test loss:", score[0])
print("Test accuracy:", score[1])
