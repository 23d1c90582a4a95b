"""The seed convolutional program — a Keras 1 script with its imports changed and nothing else.

    python examples/mnist_seed_cnn.py            # full MNIST, 10 epochs
    python examples/mnist_seed_cnn.py --augment  # the ImageDataGenerator variant

Convolution2D(4, 5, 5) tanh -> Convolution2D(8, 3, 3) tanh -> MaxPooling2D(2, 2) -> Convolution2D(16, 3, 3) relu
-> MaxPooling2D(2, 2) -> Flatten -> Dense(128, init='normal') tanh -> Dense(10, init='normal') softmax,
SGD(lr=0.05, decay=1e-6, momentum=0.9, nesterov=True), categorical cross-entropy, Theano (channels-first) ordering.
"""

import sys
import time

from _mnist_path import MNIST_DIR

from shenjing.datasets import mnist
from shenjing.layers.convolutional import Convolution2D, MaxPooling2D
from shenjing.layers.core import Activation, Dense, Flatten
from shenjing.models import Sequential
from shenjing.optimizers import SGD
from shenjing.preprocessing.image import ImageDataGenerator
from shenjing.utils import np_utils, set_random_seed

set_random_seed(2016)
augment = "--augment" in sys.argv

(X_train, y_train), (X_test, y_test) = mnist.load_data(path=MNIST_DIR)
data = X_train.reshape(X_train.shape[0], 1, 28, 28).astype("float32") / 255
test = X_test.reshape(X_test.shape[0], 1, 28, 28).astype("float32") / 255
label = np_utils.to_categorical(y_train, 10)
test_label = np_utils.to_categorical(y_test, 10)

model = Sequential()
model.add(Convolution2D(4, 5, 5, border_mode='valid', input_shape=(1, 28, 28)))
model.add(Activation('tanh'))
model.add(Convolution2D(8, 3, 3, border_mode='valid'))
model.add(Activation('tanh'))
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Convolution2D(16, 3, 3, border_mode='valid'))
model.add(Activation('relu'))
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Flatten())
model.add(Dense(128, init='normal'))
model.add(Activation('tanh'))
model.add(Dense(10, init='normal'))
model.add(Activation('softmax'))

sgd = SGD(lr=0.05, decay=1e-6, momentum=0.9, nesterov=True)
model.compile(loss='categorical_crossentropy', optimizer=sgd, metrics=['accuracy'])
model.summary()

start = time.perf_counter()
if not augment:
    history = model.fit(data, label, batch_size=100, nb_epoch=10, shuffle=True, verbose=1, show_accuracy=True,
                        validation_split=0.2)
    n_train = int(len(data) * 0.8)
else:
    datagen = ImageDataGenerator(rotation_range=8, width_shift_range=0.08, height_shift_range=0.08,
                                 zoom_range=0.08, data_format='channels_first')
    split = int(len(data) * 0.8)
    history = model.fit(datagen.flow(data[:split], label[:split], batch_size=100),
                        steps_per_epoch=split // 100, epochs=10, verbose=1,
                        validation_data=(data[split:], label[split:]))
    n_train = split
elapsed = time.perf_counter() - start
epochs = len(history.history['loss'])

loss, accuracy = model.evaluate(test, test_label, batch_size=1000, verbose=0)
print(f"test loss {loss:.4f}, test accuracy {accuracy:.4f}")
print(f"{elapsed / epochs:.1f} s per epoch, {n_train * epochs / elapsed:.0f} training samples/s")
