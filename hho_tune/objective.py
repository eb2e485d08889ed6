"""The LSTM fitness: params -> build, train briefly, score on validation.

Knows nothing about optimizers. TensorFlow is imported on first use, so that the CLI
answers ``--help`` and refuses bad input without paying TensorFlow's start-up.
"""

from __future__ import annotations

import copy
import math
import os
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hho_tune.data import NUM_CLASSES, Split, TrainValidation, load_train_validation
from hho_tune.errors import TrainingDiverged, UsageError

if TYPE_CHECKING:
    import keras

DEFAULT_EPOCHS = 2
DEFAULT_TRAIN_SIZE = 10_000
VALIDATION_BATCH = 1_000


@dataclass(frozen=True)
class LstmConfig:
    """The reference LSTM of the exercise; every field can be opened up by a search space."""

    learning_rate: float = 1e-3
    decay_steps: int = 100
    decay_rate: float = 0.96
    num_layers: int = 1
    lstm_units: int = 100
    batch_size: int = 50

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> LstmConfig:
        unknown = set(params) - set(PARAMETER_NAMES)
        if unknown:
            raise UsageError(f"unknown LSTM parameter {sorted(unknown)[0]!r}")
        config = cls(**{name: _coerce(name, value) for name, value in params.items()})
        config.check()
        return config

    def check(self) -> None:
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise UsageError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.decay_steps < 1:
            raise UsageError(f"decay_steps must be >= 1, got {self.decay_steps}")
        if not 0 < self.decay_rate <= 1:
            raise UsageError(f"decay_rate must be in (0, 1], got {self.decay_rate}")
        for name in ("num_layers", "lstm_units", "batch_size"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be >= 1, got {getattr(self, name)}")


PARAMETER_NAMES: tuple[str, ...] = tuple(LstmConfig.__dataclass_fields__)
_INTEGER_PARAMETERS = {"decay_steps", "num_layers", "lstm_units", "batch_size"}


def _coerce(name: str, value: Any) -> float | int:
    if name in _INTEGER_PARAMETERS:
        return round(float(value))
    return float(value)


def build_model(config: LstmConfig) -> keras.Model:
    """Stacked LSTMs reading 28 rows of 28 pixels, then a dense 10-way layer on logits."""
    import keras

    layers: list[Any] = [keras.Input(shape=(28, 28))]
    for index in range(config.num_layers):
        last = index == config.num_layers - 1
        layers.append(keras.layers.LSTM(config.lstm_units, return_sequences=not last))
    layers.append(keras.layers.Dense(NUM_CLASSES))
    model = keras.Sequential(layers)
    schedule = keras.optimizers.schedules.ExponentialDecay(
        initial_learning_rate=config.learning_rate,
        decay_steps=config.decay_steps,
        decay_rate=config.decay_rate,
        staircase=True,  # "x0.96 every decay_steps steps", as in the exercise
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=schedule),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def start_tensorflow(threads: int | None = None) -> None:
    """Import TensorFlow once, quietly, with its thread pools sized to ``threads`` (None: all cores).

    The pools can only be sized before TensorFlow's runtime starts, hence here.
    TensorFlow 2.21 writes start-up chatter (oneDNN, CUDA probing) from C++ before
    TF_CPP_MIN_LOG_LEVEL is read, so
    file descriptor 2 is pointed at a temporary file for the import; if the import fails,
    what it wrote is replayed so that the real error is not hidden.
    """
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    sys.stderr.flush()
    saved_stderr = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow as tf

            if threads is not None:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(threads)
            tf.config.list_physical_devices()  # the CUDA probe happens here, still muted
        except BaseException:
            os.dup2(saved_stderr, 2)
            capture.seek(0)
            sys.stderr.write(capture.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved_stderr, 2)
            os.close(saved_stderr)


def train_and_score(
    config: LstmConfig,
    data: TrainValidation,
    *,
    epochs: int,
    seed: int,
    callbacks: list[Any] | None = None,
    validation: Split | None = None,
) -> tuple[keras.Model, dict[str, list[float]]]:
    """Seeded training; raises :class:`TrainingDiverged` when the loss stops being finite.

    ``validation`` (final training only) is scored after every epoch, as ``val_loss`` and
    ``val_accuracy`` in the history; the search leaves it out and scores once at the end.
    """
    start_tensorflow()
    import keras

    keras.utils.set_random_seed(seed)
    model = build_model(config)
    history = model.fit(
        data.train.x,
        data.train.y,
        batch_size=config.batch_size,
        epochs=epochs,
        shuffle=True,
        verbose=0,
        callbacks=[keras.callbacks.TerminateOnNaN(), *(callbacks or [])],
        validation_data=None if validation is None else (validation.x, validation.y),
        validation_batch_size=VALIDATION_BATCH,
    )
    losses = history.history.get("loss", [])
    if (model.stop_training and len(losses) < epochs) or any(not math.isfinite(v) for v in losses):
        raise TrainingDiverged(f"training loss became non-finite (epoch losses: {losses})")
    return model, history.history


def validation_accuracy(model: keras.Model, data: TrainValidation) -> float:
    logits = model.predict(data.validation.x, batch_size=VALIDATION_BATCH, verbose=0)
    if not np.all(np.isfinite(logits)):
        raise TrainingDiverged("the model outputs non-finite logits on the validation images")
    return float(np.mean(np.argmax(logits, axis=1) == data.validation.y))


class LstmObjective:
    """Callable fitness: validation accuracy of a briefly trained LSTM (higher is better).

    The data are loaded once, when the objective is made, not once per trial.
    """

    name = "lstm-mnist"
    direction = "maximize"
    parameter_names = PARAMETER_NAMES

    def __init__(
        self,
        *,
        epochs: int = DEFAULT_EPOCHS,
        train_size: int | None = DEFAULT_TRAIN_SIZE,
        seed: int = 0,
        data_path: str | Path | None = None,
        threads: int | None = None,
    ) -> None:
        if epochs < 1:
            raise UsageError(f"--epochs must be at least 1, got {epochs}")
        self.epochs = epochs
        self.seed = seed
        self.data_path = data_path
        self.data = load_train_validation(data_path, train_size=train_size)
        self.train_size = len(self.data.train)
        start_tensorflow(threads)

    def __copy__(self) -> LstmObjective:
        """A shallow copy sharing the loaded data (copy.copy would otherwise go through __reduce__)."""
        twin = LstmObjective.__new__(LstmObjective)
        twin.__dict__.update(self.__dict__)
        return twin

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickle as the recipe, not the arrays: a Dask worker loads the data itself, once."""
        return _lstm_objective_in_this_process, (self.epochs, self.train_size, self.seed, self.data_path)

    def __call__(self, params: Mapping[str, Any]) -> float:
        config = LstmConfig.from_params(params)
        model, _ = train_and_score(config, self.data, epochs=self.epochs, seed=self.seed)
        score = validation_accuracy(model, self.data)
        import keras

        keras.backend.clear_session(free_memory=True)
        return score

    def with_seed(self, seed: int) -> LstmObjective:
        """The same objective (same data, same fidelity) training with ``seed``; nothing is reloaded.

        ``hho-tune compare`` gives seed k to every optimizer this way, so they differ only in
        what they propose.
        """
        twin = object.__new__(type(self))  # not copy.copy: __reduce__ rebuilds from the recipe
        twin.__dict__.update(self.__dict__, seed=seed)
        return twin

    def fidelity(self) -> dict[str, Any]:
        """What a score was measured at; written beside every trial."""
        return {"epochs": self.epochs, "train_size": self.train_size, "data": self.data.source}


_OBJECTIVES_IN_THIS_PROCESS: dict[tuple[Any, ...], LstmObjective] = {}


def _lstm_objective_in_this_process(epochs: int, train_size: int, seed: int, data_path: Any) -> LstmObjective:
    """Rebuild an unpickled objective, reusing this process's copy of the data.

    On a Dask worker, TensorFlow's pools get the worker's share of the cores (HHO_TUNE_THREADS,
    set by the executor): two processes of one thread train more images per second here than
    one process of two threads.
    """
    key = (epochs, train_size, data_path)
    if key not in _OBJECTIVES_IN_THIS_PROCESS:
        threads = os.environ.get("HHO_TUNE_THREADS")
        _OBJECTIVES_IN_THIS_PROCESS[key] = LstmObjective(
            epochs=epochs, train_size=train_size, seed=seed, data_path=data_path,
            threads=int(threads) if threads else None,
        )
    objective = copy.copy(_OBJECTIVES_IN_THIS_PROCESS[key])
    objective.seed = seed
    return objective
