"""Seed 002's CNN on hand-drawn 8x8 triangles, squares and circles, imports changed to convscope.

Run from the repository root: `python examples/seed002_shapes.py`.  The seed
draws the model with `model_to_dot(...).create(prog='dot', format='svg')` in a
notebook; here the SVG is written to `seed002_model.svg` (convscope draws it
itself, no Graphviz).  Then the model is trained on `convscope.datasets.shapes`,
the seed's 8x8 shapes drawn with stroke noise, and its test accuracy printed.
"""
# 사용할 패키지 불러오기
from convscope.models import Sequential
from convscope.layers import Dense, Flatten
from convscope.layers.convolutional import Conv2D, MaxPooling2D
from convscope.utils import np_utils

# CNN 모델 만들기
model = Sequential()

model.add(Conv2D(2, (3, 3), input_shape = (8, 8, 1), padding = 'same', activation= 'relu'))
model.add(MaxPooling2D(pool_size = (2, 2)))
model.add(Conv2D(3, (2, 2), padding = 'same', activation = 'relu'))
model.add(MaxPooling2D(pool_size = (2, 2)))
model.add(Flatten())
model.add(Dense(8, activation = 'relu'))
model.add(Dense(3, activation = 'softmax'))

from convscope.utils.vis_utils import model_to_dot

svg = model_to_dot(model, show_shapes = True).create(prog = 'dot', format = 'svg')
with open('seed002_model.svg', 'wb') as handle:
    handle.write(svg)
model.summary()

# training on the seed's problem (added; the seed post stops at the drawing)
import convscope
from convscope.datasets import shapes
from convscope.optimizers import Adam

convscope.utils.set_random_seed(0)
(x_train, y_train), (x_test, y_test) = shapes.load_data()
x_train = x_train.reshape(-1, 8, 8, 1).astype('float32') / 255.
x_test = x_test.reshape(-1, 8, 8, 1).astype('float32') / 255.
y_train = np_utils.to_categorical(y_train, 3)
y_test = np_utils.to_categorical(y_test, 3)
model.compile(loss='categorical_crossentropy', optimizer=Adam(learning_rate=0.01), metrics=['accuracy'])
model.fit(x_train, y_train, batch_size=32, epochs=40, verbose=2)
test_loss, test_accuracy = model.evaluate(x_test, y_test, verbose=0)
print(f'test accuracy: {test_accuracy:.4f} ({len(x_test)} shapes: {", ".join(shapes.CLASS_NAMES)})')
