"""Seed 001's 264,562-parameter network, for the CLI: `convscope summary examples/models/seed001.py`."""

from convscope.layers import BatchNormalization, Conv2D, Dense, Dropout, Flatten, MaxPool2D
from convscope.models import Sequential

model = Sequential([
    Conv2D(75, (3, 3), strides=1, padding="same", activation="relu", input_shape=(28, 28, 1)),
    BatchNormalization(),
    MaxPool2D((2, 2), strides=2, padding="same"),
    Conv2D(50, (3, 3), strides=1, padding="same", activation="relu"),
    Dropout(0.2),
    BatchNormalization(),
    MaxPool2D((2, 2), strides=2, padding="same"),
    Conv2D(25, (3, 3), strides=1, padding="same", activation="relu"),
    BatchNormalization(),
    MaxPool2D((2, 2), strides=2, padding="same"),
    Flatten(),
    Dense(units=512, activation="relu"),
    Dropout(0.3),
    Dense(units=25, activation="softmax"),
])
