"""The LSTM fitness: params -> build, train briefly, score on validation.

Knows nothing about optimizers. Keras and its backend (TensorFlow, or JAX with ``--backend
jax``: :mod:`hho_tune.backend`) are imported on first use, so that the CLI answers ``--help``
and refuses bad input without paying their start-up.
"""

from __future__ import annotations

import copy
import functools
import math
import os
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hho_tune.backend import (
    build_before_fit,
    current_backend,
    seed_training,
    start_backend,
    start_tensorflow,  # noqa: F401  re-exported: bench scripts and tests start TensorFlow from here
    tf_data_autotune_off,
    track_in_optimizer,
    use_backend,
)
from hho_tune.data import IMAGE_SHAPE, NUM_CLASSES, Split, TrainValidation, load_train_validation
from hho_tune.errors import SearchSpaceError, TrainingDiverged, TrialPruned, UsageError
from hho_tune.space import Domain, SearchSpace

if TYPE_CHECKING:
    import keras

DEFAULT_EPOCHS = 2
DEFAULT_TRAIN_SIZE = 10_000
VALIDATION_BATCH = 1_000


@dataclass(frozen=True)
class LstmConfig:
    """The reference LSTM of the exercise; every field can be opened up by a search space.

    The learning rate is multiplied by ``decay_rate`` every ``decay_steps`` Adam steps, or,
    when ``decay_epochs`` is given, every ``decay_epochs`` passes over the training set. Why
    epochs: a search trains on 10,000 images (200 steps an epoch), final training on 55,000
    (1,100); a schedule counted in steps decays 5.5 times faster per epoch in final training
    than in the search that chose it, one counted in epochs keeps its shape.
    """

    learning_rate: float = 1e-3
    decay_steps: int = 100
    decay_rate: float = 0.96
    num_layers: int = 1
    lstm_units: int = 100
    batch_size: int = 50
    decay_epochs: float | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> LstmConfig:
        """Refuses unknown names, values outside :data:`LSTM_DOMAINS` and 2.5 layers (never rounded)."""
        unknown = set(params) - set(PARAMETER_NAMES)
        if unknown:
            raise UsageError(f"unknown LSTM parameter {sorted(unknown)[0]!r}")
        if "decay_steps" in params and params.get("decay_epochs") is not None:
            raise UsageError("give decay_steps or decay_epochs, not both: they set the same schedule")
        params = {name: value for name, value in params.items() if not (name == "decay_epochs" and value is None)}
        for name, value in params.items():
            if not LSTM_DOMAINS[name].contains(value):
                raise UsageError(f"{name} must be {LSTM_DOMAINS[name].describe()}, got {value!r}")
        return cls(**{name: _coerce(name, value) for name, value in params.items()})

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        for name, domain in LSTM_DOMAINS.items():
            value = getattr(self, name)
            if not (value is None and name == "decay_epochs") and not domain.contains(value):
                raise UsageError(f"{name} must be {domain.describe()}, got {value!r}")

    def steps_per_epoch(self, train_size: int) -> int:
        return math.ceil(train_size / self.batch_size)

    def for_training_set(self, train_size: int) -> LstmConfig:
        """The same config with ``decay_steps`` set from ``decay_epochs`` for ``train_size`` images.

        ``decay_epochs`` stays in the result as the record of where the steps came from.
        """
        if self.decay_epochs is None:
            return self
        steps = max(1, round(self.decay_epochs * self.steps_per_epoch(train_size)))
        return replace(self, decay_steps=steps)


PARAMETER_NAMES: tuple[str, ...] = tuple(LstmConfig.__dataclass_fields__)

# What each parameter may be: every searched bound and fixed value of a space is checked
# against these when the space is loaded (check_lstm_space), so that no trial fails for a
# value the LSTM cannot take. Why these ends: a learning rate, a decay interval in epochs
# and its steps must be positive (Keras's ExponentialDecay raises on decay_steps <= 0);
# layers, units and the batch are counts. decay_rate is in (0, 1]: the rate multiplies the
# learning rate every interval, so 1 is a constant rate, 0 would stop learning after the
# first interval, a negative one would flip the sign of the steps, and one above 1 would
# make the learning rate grow without bound, which is not a decay.
LSTM_DOMAINS: dict[str, Domain] = {
    "learning_rate": Domain(low=0, low_open=True),
    "decay_steps": Domain(kind="int", low=1),
    "decay_rate": Domain(low=0, low_open=True, high=1),
    "num_layers": Domain(kind="int", low=1),
    "lstm_units": Domain(kind="int", low=1),
    "batch_size": Domain(kind="int", low=1),
    "decay_epochs": Domain(low=0, low_open=True),
}
_INTEGER_PARAMETERS = {name for name, domain in LSTM_DOMAINS.items() if domain.kind == "int"}


def check_lstm_space(space: SearchSpace) -> None:
    """Refuse a space the LSTM fitness cannot evaluate everywhere; one line naming the file and the parameter."""
    objective = "the LSTM fitness"
    space.check_names(PARAMETER_NAMES, objective=objective)
    space.check_domains(LSTM_DOMAINS, objective=objective)
    named = {*space.names, *space.fixed}
    if {"decay_steps", "decay_epochs"} <= named:
        raise SearchSpaceError(f"{space.source}: parameter 'decay_epochs': give decay_steps or decay_epochs, "
                               "not both (they set the same schedule)")


def _coerce(name: str, value: Any) -> float | int:
    if name in _INTEGER_PARAMETERS:
        return round(float(value))
    return float(value)


def build_model(config: LstmConfig, *, seed: int) -> keras.Model:
    """Stacked LSTMs reading 28 rows of 28 pixels, then a dense 10-way layer on logits, compiled."""
    model = build_network(config, seed=seed)
    compile_model(model, decay_schedule(config))
    return model


def build_network(config: LstmConfig, *, seed: int) -> keras.Model:
    """The layers alone, not compiled, their initial weights a function of ``seed`` only.

    Why explicit seeds: left to itself, Keras draws each initializer's seed from Python's
    global ``random`` when the layer is made, and on a Dask worker the event loop draws from
    the same generator at any moment (``dask.sizeof`` samples long lists with
    ``random.sample``): a draw landing between seeding and building gave a worker's training
    other initial weights and another score (bench/RESULTS.md section 4). The seeds are
    drawn here from a private generator, in the order Keras draws them (per LSTM: kernel,
    recurrent kernel, its dropout seed; then the dense kernel), so the weights are the ones
    ``keras.utils.set_random_seed(seed)`` followed by default layers gives
    (tests/test_objective.py), and scores recorded before stay reproducible.
    """
    import keras

    draws = random.Random(seed)

    def next_seed() -> int:
        return draws.randint(1, int(1e9))  # keras.src.random.seed_generator.make_default_seed

    layers: list[Any] = [keras.Input(shape=IMAGE_SHAPE)]
    for index in range(config.num_layers):
        last = index == config.num_layers - 1
        layers.append(keras.layers.LSTM(
            config.lstm_units, return_sequences=not last,
            kernel_initializer=keras.initializers.GlorotUniform(seed=next_seed()),
            recurrent_initializer=keras.initializers.Orthogonal(seed=next_seed()),
            seed=next_seed(),
        ))
    layers.append(keras.layers.Dense(NUM_CLASSES, kernel_initializer=keras.initializers.GlorotUniform(seed=next_seed())))
    return keras.Sequential(layers)


def decay_schedule(config: LstmConfig, *, adjustable: bool = False) -> Any:
    """"x0.96 every decay_steps steps", as in the exercise (staircase).

    ``adjustable`` holds the three numbers in Keras variables, so that a reused model can be
    given another schedule without tracing its training step again. Keras's own ``__call__``
    computes the rate either way, in float32 (it casts the plain numbers too), so the rates are
    the same.
    """
    import keras

    schedule = keras.optimizers.schedules.ExponentialDecay(
        initial_learning_rate=config.learning_rate,
        decay_steps=config.decay_steps,
        decay_rate=config.decay_rate,
        staircase=True,
    )
    if adjustable:
        schedule.initial_learning_rate = keras.Variable(config.learning_rate, dtype="float32", trainable=False)
        schedule.decay_steps = keras.Variable(float(config.decay_steps), dtype="float32", trainable=False)
        schedule.decay_rate = keras.Variable(config.decay_rate, dtype="float32", trainable=False)
    return schedule


def compile_model(model: keras.Model, schedule: Any) -> None:
    """Adam on the schedule, cross-entropy on logits, accuracy."""
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=schedule),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


class ModelPool:
    """One compiled model per architecture, handed out as if it had just been built.

    Why: a search trains dozens of models of the same two or three shapes. Building and
    compiling a fresh one each time makes Keras trace the training step again (13% of the
    default search's wall time, bench/RESULTS.md section 3) and forces a ``clear_session``
    (another 6%). A kept model is reset instead: the weights a fresh build would draw (a
    fresh network is built for exactly that), Adam's
    moments and step counter at zero, the schedule's numbers assigned. Same seed, same
    configuration: the same score as a fresh model, bit for bit (tests/test_objective.py).
    Models are kept per thread, so a Dask worker running several trainings in threads never
    hands one model to two of them.

    On JAX the same holds (tests/test_backend.py), with two additions, both no-ops on
    TensorFlow: the schedule's variables join the optimizer's state, since Keras on JAX would
    otherwise bake their first values into the compiled step (:func:`~hho_tune.backend.track_in_optimizer`),
    and :func:`train_and_score` builds every model before ``fit`` so that a kept and a new model
    train on the same shuffle order (:func:`~hho_tune.backend.build_before_fit`).
    """

    def __init__(self) -> None:
        self._models: dict[tuple[int, int, int], keras.Model] = {}

    def __len__(self) -> int:
        return len(self._models)

    def model_for(self, config: LstmConfig, *, seed: int) -> keras.Model:
        """A compiled model in the state of ``build_model(config, seed=seed)``."""
        import keras

        fresh = build_network(config, seed=seed)
        key = (threading.get_ident(), config.num_layers, config.lstm_units)
        model = self._models.get(key)
        if model is None:
            schedule = decay_schedule(config, adjustable=True)
            compile_model(fresh, schedule)
            track_in_optimizer(fresh.optimizer, [schedule.initial_learning_rate, schedule.decay_steps,
                                                 schedule.decay_rate])
            self._models[key] = fresh
            return fresh
        model.set_weights(fresh.get_weights())
        for variable in model.optimizer.variables:  # moments, step counter
            variable.assign(keras.ops.zeros(variable.shape, variable.dtype))
        schedule = model.optimizer._learning_rate  # Keras keeps the schedule object here
        schedule.initial_learning_rate.assign(config.learning_rate)
        schedule.decay_steps.assign(float(config.decay_steps))
        schedule.decay_rate.assign(config.decay_rate)
        return model


def train_and_score(
    config: LstmConfig,
    data: TrainValidation,
    *,
    epochs: int,
    seed: int,
    callbacks: list[Any] | None = None,
    validation: Split | None = None,
    pool: ModelPool | None = None,
) -> tuple[keras.Model, dict[str, list[float]]]:
    """Seeded training; raises :class:`TrainingDiverged` when the loss stops being finite.

    ``validation`` (final training only) is scored after every epoch, as ``val_loss`` and
    ``val_accuracy`` in the history; the search leaves it out and scores once at the end.
    ``pool`` (the search) reuses a kept model of the same architecture instead of building one.
    """
    start_backend()
    import keras

    config = config.for_training_set(len(data.train))
    seed_training(seed)  # the order in which fit shuffles the images
    model = build_model(config, seed=seed) if pool is None else pool.model_for(config, seed=seed)
    build_before_fit(model, data.train.x[:config.batch_size], data.train.y[:config.batch_size])
    with tf_data_autotune_off():
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
    stopped_by_choice = any(getattr(callback, "stopped_epoch", 0) > 0 for callback in callbacks or [])  # EarlyStopping
    cut_short = model.stop_training and len(losses) < epochs and not stopped_by_choice
    if cut_short or any(not math.isfinite(v) for v in losses):
        raise TrainingDiverged(f"training loss became non-finite (epoch losses: {losses})")
    return model, history.history


@functools.cache
def _epoch_scores_class() -> type:
    """Made on first use: subclassing keras.callbacks.Callback at import would import Keras with the package."""
    import keras

    class EpochScores(keras.callbacks.Callback):
        """Scores the validation images after each epoch and reports it (the learning curve).

        Raises :class:`~hho_tune.errors.TrialPruned` from ``on_epoch_end`` when the reporter says
        to stop: the exception leaves ``model.fit`` at once, and the next trial resets the pooled
        model as always. An epoch whose loss is not finite is left to ``TerminateOnNaN`` (a
        failed trial).
        """

        def __init__(self, data: TrainValidation, reporter: Any) -> None:
            super().__init__()
            self.data, self.reporter = data, reporter
            self.last: float | None = None

        def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)):
                return
            self.last = validation_accuracy(self.model, self.data)
            self.reporter.report(self.last, epoch + 1)
            if self.reporter.should_prune():
                raise TrialPruned(f"pruned after epoch {epoch + 1}")

    return EpochScores


def epoch_scores(data: TrainValidation, reporter: Any) -> Any:
    """The callback that reports the validation accuracy after each epoch to ``reporter``."""
    return _epoch_scores_class()(data, reporter)


def validation_accuracy(model: keras.Model, data: TrainValidation) -> float:
    logits = model.predict(data.validation.x, batch_size=VALIDATION_BATCH, verbose=0)
    if not np.all(np.isfinite(logits)):
        raise TrainingDiverged("the model outputs non-finite logits on the validation images")
    return float(np.mean(np.argmax(logits, axis=1) == data.validation.y))


class LstmObjective:
    """Callable fitness: validation accuracy of a briefly trained LSTM (higher is better).

    The data are loaded once, when the objective is made, not once per trial, and each
    architecture is compiled once (:class:`ModelPool`).

    ``backend`` (None: the one this process trains on, :func:`hho_tune.backend.current_backend`)
    is recorded in :meth:`fidelity` and travels with the objective to Dask workers, which then
    train on it too.
    """

    name = "lstm-mnist"
    direction = "maximize"
    parameter_names = PARAMETER_NAMES
    domains = LSTM_DOMAINS

    @staticmethod
    def check_space(space: SearchSpace) -> None:
        """The hook :func:`hho_tune.space.check_space` calls; callable on the class, before the data load."""
        check_lstm_space(space)

    def __init__(
        self,
        *,
        epochs: int = DEFAULT_EPOCHS,
        train_size: int | None = DEFAULT_TRAIN_SIZE,
        seed: int = 0,
        data_path: str | Path | None = None,
        threads: int | None = None,
        backend: str | None = None,
    ) -> None:
        if epochs < 1:
            raise UsageError(f"--epochs must be at least 1, got {epochs}")
        self.epochs = epochs
        self.seed = seed
        self.data_path = data_path
        self.data = load_train_validation(data_path, train_size=train_size)
        self.train_size = len(self.data.train)
        self.models = ModelPool()  # shared by copies and with_seed twins: one process, one pool
        self.threads = threads  # TensorFlow starts at the first training: a run on Dask workers never starts it here
        self.backend = current_backend() if backend is None else use_backend(backend)

    def __copy__(self) -> LstmObjective:
        """A shallow copy sharing the loaded data (copy.copy would otherwise go through __reduce__)."""
        twin = LstmObjective.__new__(LstmObjective)
        twin.__dict__.update(self.__dict__)
        return twin

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickle as the recipe, not the arrays: a Dask worker loads the data itself, once."""
        return _lstm_objective_in_this_process, (self.epochs, self.train_size, self.seed, self.data_path, self.backend)

    def __call__(self, params: Mapping[str, Any], reporter: Any = None) -> float:
        """Validation accuracy after ``epochs``; with a ``reporter``, after each epoch too (the learning curve).

        The per-epoch score is the same computation as the final one, on the same model, and
        touches no random state, so a trial scores the same with and without a reporter.
        """
        config = LstmConfig.from_params(params)
        start_backend(self.threads)
        if reporter is None:
            model, _ = train_and_score(config, self.data, epochs=self.epochs, seed=self.seed, pool=self.models)
            return validation_accuracy(model, self.data)
        scores = epoch_scores(self.data, reporter)
        train_and_score(config, self.data, epochs=self.epochs, seed=self.seed, pool=self.models, callbacks=[scores])
        assert scores.last is not None  # fit ran every epoch: a stop would have raised
        return scores.last

    def relative_cost(self, params: Mapping[str, Any]) -> float:
        """Multiply-adds of the LSTM stack per image: orders trainings by length, it is not a time.

        Only the order matters (the runner starts the costliest of a batch first), and training
        time rises with it: 2 epochs of 10,000 images took about 4.5, 9 and 13 s for 1, 2 and 3
        layers of 100 units on 2 cores here, for 1 : 2.6 : 4.1 times the multiply-adds (the
        time per step that does not depend on the size weighs more in small models).
        """
        defaults = LstmConfig()
        layers = _coerce("num_layers", params.get("num_layers", defaults.num_layers))
        units = _coerce("lstm_units", params.get("lstm_units", defaults.lstm_units))
        steps, pixels = IMAGE_SHAPE
        per_step = sum(4 * units * ((pixels if layer == 0 else units) + units + 1) for layer in range(layers))
        return float(steps * per_step + units * NUM_CLASSES)

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
        return {"epochs": self.epochs, "train_size": self.train_size, "data": self.data.source, "backend": self.backend}


_OBJECTIVES_IN_THIS_PROCESS: dict[tuple[Any, ...], LstmObjective] = {}


def _lstm_objective_in_this_process(epochs: int, train_size: int, seed: int, data_path: Any,
                                    backend: str = "tensorflow") -> LstmObjective:
    """Rebuild an unpickled objective, reusing this process's copy of the data.

    On a Dask worker, TensorFlow's pools (or XLA's, on JAX) get the worker's share of the cores
    (HHO_TUNE_THREADS, set by the executor): two processes of one thread train more images per
    second here than one process of two threads. The worker trains on the objective's
    ``backend`` (a pickle made before backends were recorded means TensorFlow), or refuses
    in one line when Keras already runs on another one there.
    """
    use_backend(backend)
    key = (epochs, train_size, data_path, backend)
    if key not in _OBJECTIVES_IN_THIS_PROCESS:
        threads = os.environ.get("HHO_TUNE_THREADS")
        _OBJECTIVES_IN_THIS_PROCESS[key] = LstmObjective(
            epochs=epochs, train_size=train_size, seed=seed, data_path=data_path,
            threads=int(threads) if threads else None, backend=backend,
        )
    objective = copy.copy(_OBJECTIVES_IN_THIS_PROCESS[key])
    objective.seed = seed
    return objective
