"""Seed 000's MNIST script, with only its imports changed from keras to convscope.

Run from the repository root: `python examples/seed000_mnist.py`.  The data
comes from `convscope.datasets.mnist.load_data()`, which reads the four MNIST
files from the folder named by CONVSCOPE_DATA, from `../shared/datasets/mnist`
beside a source checkout, from Keras' cache, or downloads them (SHA-256 checked).
After the seed's own lines (which stop at the weight check) it trains 3 epochs
with batch 128 and Adam, and prints the test accuracy and the time per epoch.
"""
import sys
import time
import convscope as keras
from convscope.models import Sequential
from convscope.layers import Dense, Dropout, Flatten
from convscope.layers.convolutional import Conv2D, MaxPooling2D
import numpy as np
# data
img_rows = 28
img_cols = 28
(x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
input_shape = (img_rows, img_cols, 1)
x_train = x_train.reshape(x_train.shape[0], img_rows, img_cols, 1)
x_test = x_test.reshape(x_test.shape[0], img_rows, img_cols, 1)
x_train = x_train.astype('float32') / 255.
x_test = x_test.astype('float32') / 255.
print('x_train shape:', x_train.shape)
print(x_train.shape[0], 'train samples')
print(x_test.shape[0], 'test samples')
num_classes = 10
y_train = keras.utils.to_categorical(y_train, num_classes)
y_test = keras.utils.to_categorical(y_test, num_classes)

# model
model = Sequential()
model.add(Conv2D(32, kernel_size=(5, 5), strides=(1, 1), padding='same', activation='relu', input_shape=input_shape))
model.add(MaxPooling2D(pool_size=(2, 2), strides=(2, 2)))
model.add(Conv2D(64, (2, 2), activation='relu', padding='same'))
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Dropout(0.25))
model.add(Flatten())
model.add(Dense(1000, activation='relu'))
model.add(Dropout(0.5))
model.add(Dense(num_classes, activation='softmax'))
model.summary()
model.compile(loss='categorical_crossentropy', optimizer='adam', metrics=['accuracy'])

# weights
weights = model.get_weights()
print('weight check')
print(f'first convolution layer:\t{weights[0].T.shape}') # 32 x 1 x 5 x 5
print(f'second convolution layer:\t{weights[2].T.shape}') # 64 x 32 x 2 x 2

# training: 3 epochs, batch 128, Adam (added; the seed post stops above)
epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
start = time.perf_counter()
history = model.fit(x_train, y_train, batch_size=128, epochs=epochs, verbose=1,
                    validation_data=(x_test, y_test))
seconds = time.perf_counter() - start
test_loss, test_accuracy = model.evaluate(x_test, y_test, verbose=0)
print(f'test loss: {test_loss:.4f}')
print(f'test accuracy: {test_accuracy:.4f}')
print('test accuracy after each epoch:', ' '.join(f'{a:.4f}' for a in history.history['val_accuracy']))
print(f'time per epoch: {seconds / epochs:.1f} s ({epochs} epochs, {seconds:.1f} s in all, '
      'test evaluation included)')
