"""Keras's classic mnist_mlp.py (published: 98.40% test accuracy after 20 epochs), imports changed only.

    python examples/mnist_mlp.py

Dense(512, relu) -> Dropout(0.2) -> Dense(512, relu) -> Dropout(0.2) -> Dense(10, softmax); RMSprop, batch 128.
"""

import time

from _mnist_path import MNIST_DIR

import shenjing
from shenjing.datasets import mnist
from shenjing.layers import Dense, Dropout
from shenjing.models import Sequential
from shenjing.optimizers import RMSprop

shenjing.utils.set_random_seed(1337)

batch_size = 128
num_classes = 10
epochs = 20

(x_train, y_train), (x_test, y_test) = mnist.load_data(path=MNIST_DIR)

x_train = x_train.reshape(60000, 784)
x_test = x_test.reshape(10000, 784)
x_train = x_train.astype('float32')
x_test = x_test.astype('float32')
x_train /= 255
x_test /= 255
print(x_train.shape[0], 'train samples')
print(x_test.shape[0], 'test samples')

y_train = shenjing.utils.to_categorical(y_train, num_classes)
y_test = shenjing.utils.to_categorical(y_test, num_classes)

model = Sequential()
model.add(Dense(512, activation='relu', input_shape=(784,)))
model.add(Dropout(0.2))
model.add(Dense(512, activation='relu'))
model.add(Dropout(0.2))
model.add(Dense(num_classes, activation='softmax'))

model.summary()

model.compile(loss='categorical_crossentropy',
              optimizer=RMSprop(),
              metrics=['accuracy'])

start = time.perf_counter()
history = model.fit(x_train, y_train,
                    batch_size=batch_size,
                    epochs=epochs,
                    verbose=1,
                    validation_data=(x_test, y_test))
elapsed = time.perf_counter() - start
score = model.evaluate(x_test, y_test, verbose=0)
print('Test loss:', score[0])
print('Test accuracy:', score[1])
print(f"{elapsed / epochs:.1f} s per epoch (validation included), {len(x_train) * epochs / elapsed:.0f} samples/s")
