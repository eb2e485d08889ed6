"""A small convolutional network on the packaged MNIST, tuned by hho-tune: a model of your own, not the LSTM.

From the repository root::

    hho-tune --objective examples.cnn_mnist:objective --budget 12 --pruner sha
    hho-tune export results/<run>            # the winner, trained again by its own train_final:
    hho-tune train results/<run>/best.json --epochs 6

The search trains each network 3 epochs on the first 10,000 training images and scores the
validation images (the last 5,000 of the 60,000, as for the LSTM); final training uses the same
images for more epochs and reads the 10,000 test images once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hho_tune.data import VALIDATION_SIZE, packaged_mnist_path
from hho_tune.keras import KerasObjective
from hho_tune.space import Param, SearchSpace

TRAIN_IMAGES = 10_000


def build_model(params: dict[str, Any]) -> Any:
    """Two 3x3 convolutions, max pooling, dropout, a dense softmax: the KerasTuner habit, params -> compiled model.

    Keras is imported here, not at the top: hho-tune starts TensorFlow quietly before the first training.
    """
    import keras

    filters = int(params["filters"])
    model = keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        keras.layers.Conv2D(filters, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(2 * filters, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dropout(float(params["dropout"])),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(float(params["learning_rate"])),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _images(x: np.ndarray) -> np.ndarray:
    return (x.astype("float32") / 255.0)[..., None]


with np.load(packaged_mnist_path()) as _mnist:
    _x, _y = _mnist["x_train"], _mnist["y_train"]
    objective = KerasObjective(
        build_model, _images(_x[:TRAIN_IMAGES]), _y[:TRAIN_IMAGES],
        validation_data=(_images(_x[-VALIDATION_SIZE:]), _y[-VALIDATION_SIZE:]),
        epochs=3, batch_size=64, metric="val_accuracy", seed=0,
        test_data=(_images(_mnist["x_test"]), _mnist["y_test"]), name="cnn-mnist",
    )

objective.default_space = SearchSpace(params=(
    Param("learning_rate", "float", 1e-4, 1e-2, log=True),
    Param("filters", "int", 8, 32),
    Param("dropout", "float", 0.0, 0.5),
), source="examples/cnn_mnist.py")
