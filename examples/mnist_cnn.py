"""Keras's classic mnist_cnn.py (published: 99.25% test accuracy after 12 epochs), imports changed only.

    python examples/mnist_cnn.py

Conv2D(32, 3x3, relu) -> Conv2D(64, 3x3, relu) -> MaxPooling2D(2) -> Dropout(0.25) -> Flatten ->
Dense(128, relu) -> Dropout(0.5) -> Dense(10, softmax); Adadelta, batch 128, 12 epochs.
The Keras 2.0 script ran Adadelta with that era's default learning rate of 1.0 (today's default is 0.001),
so the rate is written out here.
"""

import time

from _mnist_path import MNIST_DIR

import shenjing
from shenjing import backend as K
from shenjing.datasets import mnist
from shenjing.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from shenjing.models import Sequential

shenjing.utils.set_random_seed(1337)

batch_size = 128
num_classes = 10
epochs = 12
img_rows, img_cols = 28, 28

(x_train, y_train), (x_test, y_test) = mnist.load_data(path=MNIST_DIR)

if K.image_data_format() == 'channels_first':
    x_train = x_train.reshape(x_train.shape[0], 1, img_rows, img_cols)
    x_test = x_test.reshape(x_test.shape[0], 1, img_rows, img_cols)
    input_shape = (1, img_rows, img_cols)
else:
    x_train = x_train.reshape(x_train.shape[0], img_rows, img_cols, 1)
    x_test = x_test.reshape(x_test.shape[0], img_rows, img_cols, 1)
    input_shape = (img_rows, img_cols, 1)

x_train = x_train.astype('float32')
x_test = x_test.astype('float32')
x_train /= 255
x_test /= 255
print('x_train shape:', x_train.shape)
print(x_train.shape[0], 'train samples')
print(x_test.shape[0], 'test samples')

y_train = shenjing.utils.to_categorical(y_train, num_classes)
y_test = shenjing.utils.to_categorical(y_test, num_classes)

model = Sequential()
model.add(Conv2D(32, kernel_size=(3, 3), activation='relu', input_shape=input_shape))
model.add(Conv2D(64, (3, 3), activation='relu'))
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Dropout(0.25))
model.add(Flatten())
model.add(Dense(128, activation='relu'))
model.add(Dropout(0.5))
model.add(Dense(num_classes, activation='softmax'))

model.compile(loss=shenjing.losses.categorical_crossentropy,
              optimizer=shenjing.optimizers.Adadelta(lr=1.0),
              metrics=['accuracy'])

start = time.perf_counter()
model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, verbose=1, validation_data=(x_test, y_test))
elapsed = time.perf_counter() - start
score = model.evaluate(x_test, y_test, verbose=0)
print('Test loss:', score[0])
print('Test accuracy:', score[1])
print(f"{elapsed / epochs:.1f} s per epoch (validation included), {len(x_train) * epochs / elapsed:.0f} samples/s")
