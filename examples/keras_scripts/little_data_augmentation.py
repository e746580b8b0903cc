"""A small convnet trained from a folder of images with ImageDataGenerator augmentation — the Keras
blog's "Building powerful image classification models using very little data" (script 1), run on
convscope.

Source: https://blog.keras.io/building-powerful-image-classification-models-using-very-little-data.html
(Francois Chollet, 2016; the script published with it, classifier_from_little_data_script_1.py).
Changes from the original, and nothing else:
  * imports: `keras` -> convscope;
  * the Keras 2 calls Keras 3 removed, spelled as Keras 3 requires: `fit_generator` -> `fit`,
    `save_weights('first_try.h5')` -> `'first_try.weights.h5'`;
  * stand-in data: the Kaggle cats-vs-dogs folders data/train and data/validation ->
    `standin.image_folder()` writing generated JPEG/PNG images in the same layout;
  * trimmed for a quick run: 64x64 images (150x150), 96/32 samples (2,000/800), 2 epochs (50).
"""

import os

from convscope.preprocessing.image import ImageDataGenerator
from convscope.models import Sequential
from convscope.layers import Conv2D, MaxPooling2D
from convscope.layers import Activation, Dropout, Flatten, Dense
from convscope import backend as K
import standin

# dimensions of our images.
img_width, img_height = 64, 64  # trimmed (150, 150)

train_data_dir = 'data/train'
validation_data_dir = 'data/validation'
standin.image_folder(train_data_dir, ['cats', 'dogs'], per_class=48, size=(80, 70), seed=1)  # stand-in
standin.image_folder(validation_data_dir, ['cats', 'dogs'], per_class=16, size=(80, 70), seed=2)  # stand-in
nb_train_samples = 96  # trimmed (2000)
nb_validation_samples = 32  # trimmed (800)
epochs = 2  # trimmed (50)
batch_size = 16

if K.image_data_format() == 'channels_first':
    input_shape = (3, img_width, img_height)
else:
    input_shape = (img_width, img_height, 3)

model = Sequential()
model.add(Conv2D(32, (3, 3), input_shape=input_shape))
model.add(Activation('relu'))
model.add(MaxPooling2D(pool_size=(2, 2)))

model.add(Conv2D(32, (3, 3)))
model.add(Activation('relu'))
model.add(MaxPooling2D(pool_size=(2, 2)))

model.add(Conv2D(64, (3, 3)))
model.add(Activation('relu'))
model.add(MaxPooling2D(pool_size=(2, 2)))

model.add(Flatten())
model.add(Dense(64))
model.add(Activation('relu'))
model.add(Dropout(0.5))
model.add(Dense(1))
model.add(Activation('sigmoid'))

model.compile(loss='binary_crossentropy',
              optimizer='rmsprop',
              metrics=['accuracy'])

# this is the augmentation configuration we will use for training
train_datagen = ImageDataGenerator(
    rescale=1. / 255,
    shear_range=0.2,
    zoom_range=0.2,
    horizontal_flip=True)

# this is the augmentation configuration we will use for testing:
# only rescaling
test_datagen = ImageDataGenerator(rescale=1. / 255)

train_generator = train_datagen.flow_from_directory(
    train_data_dir,
    target_size=(img_width, img_height),
    batch_size=batch_size,
    class_mode='binary')

validation_generator = test_datagen.flow_from_directory(
    validation_data_dir,
    target_size=(img_width, img_height),
    batch_size=batch_size,
    class_mode='binary')

model.fit(
    train_generator,
    steps_per_epoch=nb_train_samples // batch_size,
    epochs=epochs,
    validation_data=validation_generator,
    validation_steps=nb_validation_samples // batch_size)

model.save_weights('first_try.weights.h5')
print('saved', os.path.getsize('first_try.weights.h5'), 'bytes')
