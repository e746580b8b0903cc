"""The seeds' models, written once as the posts write them, for every test that needs one."""

from convscope.layers import BatchNormalization, Dense, Dropout, Flatten, MaxPool2D
from convscope.layers.convolutional import Conv2D, MaxPooling2D
from convscope.models import Sequential


def seed000_model(dropout=True):
    """Seed 000's MNIST model; `dropout=False` leaves out its two Dropout layers (for oracle steps)."""
    model = Sequential()
    model.add(Conv2D(32, kernel_size=(5, 5), strides=(1, 1), padding="same", activation="relu",
                     input_shape=(28, 28, 1)))
    model.add(MaxPooling2D(pool_size=(2, 2), strides=(2, 2)))
    model.add(Conv2D(64, (2, 2), activation="relu", padding="same"))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    if dropout:
        model.add(Dropout(0.25))
    model.add(Flatten())
    model.add(Dense(1000, activation="relu"))
    if dropout:
        model.add(Dropout(0.5))
    model.add(Dense(10, activation="softmax"))
    return model


def seed001_model(names=None):
    """Seed 001's model; `names` (the model's then each layer's) can copy the post's own names."""
    names = list(names) if names else [None] * 14
    model = Sequential(name=names.pop(0) if len(names) == 15 else None)
    model.add(Conv2D(75, (3, 3), strides=1, padding="same", activation="relu", input_shape=(28, 28, 1),
                     name=names[0]))
    model.add(BatchNormalization(name=names[1]))
    model.add(MaxPool2D((2, 2), strides=2, padding="same", name=names[2]))
    model.add(Conv2D(50, (3, 3), strides=1, padding="same", activation="relu", name=names[3]))
    model.add(Dropout(0.2, name=names[4]))
    model.add(BatchNormalization(name=names[5]))
    model.add(MaxPool2D((2, 2), strides=2, padding="same", name=names[6]))
    model.add(Conv2D(25, (3, 3), strides=1, padding="same", activation="relu", name=names[7]))
    model.add(BatchNormalization(name=names[8]))
    model.add(MaxPool2D((2, 2), strides=2, padding="same", name=names[9]))
    model.add(Flatten(name=names[10]))
    model.add(Dense(units=512, activation="relu", name=names[11]))
    model.add(Dropout(0.3, name=names[12]))
    model.add(Dense(units=25, activation="softmax", name=names[13]))
    return model


def seed002_model():
    """Seed 002's 8x8 shapes model (3 classes)."""
    model = Sequential()
    model.add(Conv2D(2, (3, 3), input_shape=(8, 8, 1), padding="same", activation="relu"))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Conv2D(3, (2, 2), padding="same", activation="relu"))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Flatten())
    model.add(Dense(8, activation="relu"))
    model.add(Dense(3, activation="softmax"))
    return model
