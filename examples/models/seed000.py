"""Seed 000's MNIST network, for the CLI: `convscope explain examples/models/seed000.py`."""

from convscope.layers import Dense, Dropout, Flatten
from convscope.layers.convolutional import Conv2D, MaxPooling2D
from convscope.models import Sequential

model = Sequential()
model.add(Conv2D(32, kernel_size=(5, 5), strides=(1, 1), padding="same", activation="relu",
                 input_shape=(28, 28, 1)))
model.add(MaxPooling2D(pool_size=(2, 2), strides=(2, 2)))
model.add(Conv2D(64, (2, 2), activation="relu", padding="same"))
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Dropout(0.25))
model.add(Flatten())
model.add(Dense(1000, activation="relu"))
model.add(Dropout(0.5))
model.add(Dense(10, activation="softmax"))
