"""Image classification from a folder of photos, with data augmentation — the TensorFlow tutorial,
run on convscope.

Source: https://www.tensorflow.org/tutorials/images/classification (The TensorFlow Authors, Apache
License 2.0). A Sequential CNN trained on a folder of flower photos read by
`image_dataset_from_directory`, then again with RandomFlip/RandomRotation/RandomZoom and Dropout,
and a prediction on one image read with `load_img`/`img_to_array`.
Changes from the original, and nothing else:
  * imports: `tensorflow`/`tensorflow.keras` -> convscope; `tf.keras.X` -> `keras.X` (Keras 3's
    spelling), `tf.expand_dims`/`tf.nn.softmax` -> `keras.ops.expand_dims`/`keras.ops.softmax`;
  * the tf.data-only calls (`.cache().shuffle().prefetch()`, `.map()`), the matplotlib plots and the
    TensorFlow Lite conversion are left out;
  * stand-in data: the 218 MB flower_photos download -> `standin.image_folder()`, 5 classes of 24
    generated JPEG/PNG images in a temporary folder;
  * trimmed for a quick run: 64x64 images (180x180), 2 and 2 epochs (10 and 15).
"""

import pathlib
import tempfile

import numpy as np
import PIL
import convscope as keras
from convscope import layers
from convscope.models import Sequential
import standin

data_dir = standin.image_folder(tempfile.mkdtemp(), ["daisy", "dandelion", "roses", "sunflowers", "tulips"],
                                per_class=24, size=(72, 80))  # stand-in for the flower_photos download
data_dir = pathlib.Path(data_dir)

image_count = len(list(data_dir.glob('*/*.jpg'))) + len(list(data_dir.glob('*/*.png')))
print(image_count)

roses = list(data_dir.glob('roses/*'))
PIL.Image.open(str(roses[0]))

batch_size = 32
img_height = 64  # trimmed (180)
img_width = 64  # trimmed (180)

train_ds = keras.utils.image_dataset_from_directory(
  data_dir,
  validation_split=0.2,
  subset="training",
  seed=123,
  image_size=(img_height, img_width),
  batch_size=batch_size)

val_ds = keras.utils.image_dataset_from_directory(
  data_dir,
  validation_split=0.2,
  subset="validation",
  seed=123,
  image_size=(img_height, img_width),
  batch_size=batch_size)

class_names = train_ds.class_names
print(class_names)

for image_batch, labels_batch in train_ds:
  print(image_batch.shape)
  print(labels_batch.shape)
  break

num_classes = len(class_names)

model = Sequential([
  layers.Rescaling(1./255, input_shape=(img_height, img_width, 3)),
  layers.Conv2D(16, 3, padding='same', activation='relu'),
  layers.MaxPooling2D(),
  layers.Conv2D(32, 3, padding='same', activation='relu'),
  layers.MaxPooling2D(),
  layers.Conv2D(64, 3, padding='same', activation='relu'),
  layers.MaxPooling2D(),
  layers.Flatten(),
  layers.Dense(128, activation='relu'),
  layers.Dense(num_classes)
])

model.compile(optimizer='adam',
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=['accuracy'])

model.summary()

epochs = 2  # trimmed (10)
history = model.fit(
  train_ds,
  validation_data=val_ds,
  epochs=epochs
)

acc = history.history['accuracy']
val_acc = history.history['val_accuracy']

loss = history.history['loss']
val_loss = history.history['val_loss']

data_augmentation = keras.Sequential(
  [
    layers.RandomFlip("horizontal",
                      input_shape=(img_height,
                                  img_width,
                                  3)),
    layers.RandomRotation(0.1),
    layers.RandomZoom(0.1),
  ]
)

model = Sequential([
  data_augmentation,
  layers.Rescaling(1./255),
  layers.Conv2D(16, 3, padding='same', activation='relu'),
  layers.MaxPooling2D(),
  layers.Conv2D(32, 3, padding='same', activation='relu'),
  layers.MaxPooling2D(),
  layers.Conv2D(64, 3, padding='same', activation='relu'),
  layers.MaxPooling2D(),
  layers.Dropout(0.2),
  layers.Flatten(),
  layers.Dense(128, activation='relu'),
  layers.Dense(num_classes, name="outputs")
])

model.compile(optimizer='adam',
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=['accuracy'])

model.summary()

epochs = 2  # trimmed (15)
history = model.fit(
  train_ds,
  validation_data=val_ds,
  epochs=epochs
)

sunflower_path = str(list(data_dir.glob('sunflowers/*'))[0])  # stand-in for the Red_sunflower download

img = keras.utils.load_img(
    sunflower_path, target_size=(img_height, img_width)
)
img_array = keras.utils.img_to_array(img)
img_array = keras.ops.expand_dims(img_array, 0) # Create a batch

predictions = model.predict(img_array)
score = keras.ops.softmax(predictions[0])

print(
    "This image most likely belongs to {} with a {:.2f} percent confidence."
    .format(class_names[np.argmax(score)], 100 * np.max(score))
)
