"""Shared by the bench scripts: what machine a figure was measured on, and a clock on the phases of an evaluation.

The clock wraps the package's own functions (by monkeypatching, undone on exit) rather than
copying them, so a figure always describes the code that ``hho-tune`` really runs.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: how busy the shared machine was."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def describe_machine() -> str:
    """One line for the top of a result: date, cores, CPU, load average."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"{now}; nproc={os.cpu_count()}; CPU: {cpu_model()}; load average {load_average()}"


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass(frozen=True)
class FitRecord:
    """One ``model.fit`` call: its wall time, how many images it trained on, the time of each epoch.

    ``first_step_seconds`` runs from the start of training to the end of the first batch:
    tracing and optimizing the training step of a new model, plus one step.

    ``cpu_seconds`` is the CPU time of the whole process (all threads) during the call: on a
    machine shared with other jobs it varies less than the wall time, which also counts the
    time other processes held the cores.
    """

    seconds: float
    cpu_seconds: float
    images: int
    epoch_seconds: tuple[float, ...]
    first_step_seconds: float

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds

    @property
    def images_per_cpu_second(self) -> float:
        return self.images / self.cpu_seconds

    @property
    def steady_images_per_second(self) -> float:
        """Throughput of the epochs after the first, which pays for tracing the training step."""
        later = self.epoch_seconds[1:]
        if not later:
            return float("nan")
        return (self.images / len(self.epoch_seconds)) * len(later) / sum(later)


@dataclass
class PhaseTimes:
    """Seconds spent in each phase of the evaluations run under one :func:`phase_clock`."""

    build: float = 0.0
    validation: float = 0.0
    clear_session: float = 0.0
    fits: list[FitRecord] = field(default_factory=list)

    @property
    def fit(self) -> float:
        return sum(record.seconds for record in self.fits)

    @property
    def first_steps(self) -> float:
        return sum(record.first_step_seconds for record in self.fits)


def epoch_clock() -> Any:
    """A Keras callback that records the wall time of every epoch and of the first training step.

    It declares itself ``async_safe``, so Keras dispatches batch callbacks as it would
    without it (no per-batch synchronisation is added where there was none).
    """
    import keras

    class EpochClock(keras.callbacks.Callback):
        async_safe = True

        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []
            self.first_step = float("nan")
            self._started = 0.0
            self._training_started = 0.0

        def on_train_begin(self, logs: dict | None = None) -> None:
            self._training_started = time.perf_counter()

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            if self.first_step != self.first_step:  # NaN until the first batch has ended
                self.first_step = time.perf_counter() - self._training_started

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self._started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.seconds.append(time.perf_counter() - self._started)

    return EpochClock()


def timed_fit(fit: Callable[..., Any], model: Any, *args: Any, **kwargs: Any) -> tuple[Any, FitRecord]:
    """Call ``fit(model, ...)`` with an epoch clock added to its callbacks; time the whole call."""
    clock = epoch_clock()
    kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), clock]
    started, cpu_started = time.perf_counter(), time.process_time()
    history = fit(model, *args, **kwargs)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    x = args[0] if args else kwargs["x"]
    return history, FitRecord(seconds, cpu_seconds, len(x) * len(clock.seconds), tuple(clock.seconds), clock.first_step)


@contextmanager
def patched(owner: Any, name: str, replacement: Any) -> Iterator[None]:
    """``owner.name = replacement`` for the duration of the block, then what was there before."""
    had_own = name in vars(owner)
    original = vars(owner).get(name)
    setattr(owner, name, replacement)
    try:
        yield
    finally:
        if had_own:
            setattr(owner, name, original)
        else:
            delattr(owner, name)


@contextmanager
def phase_clock() -> Iterator[PhaseTimes]:
    """Time model building, ``model.fit``, validation and ``clear_session`` in the package's evaluations.

    Wraps ``hho_tune.objective.build_model``, ``ModelPool.model_for`` (the search's way of
    getting a model: a kept one reset, or a new one built) and ``validation_accuracy`` (looked
    up by ``train_and_score`` and ``LstmObjective.__call__`` at call time), ``keras.Model.fit``
    and ``keras.backend.clear_session`` (which the package no longer calls per trial). Use it
    around package code only: the plain Keras baseline must run unpatched.
    """
    import keras

    import hho_tune.objective as objective

    times = PhaseTimes()
    build_model = objective.build_model
    model_for = objective.ModelPool.model_for
    validation_accuracy = objective.validation_accuracy
    fit = keras.Model.fit
    clear_session = keras.backend.clear_session

    def timed(function: Any, phase: str) -> Any:
        """``function``, with its wall time added to ``times.<phase>``."""
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                setattr(times, phase, getattr(times, phase) + time.perf_counter() - started)

        return wrapper

    def timed_model_fit(model: Any, *args: Any, **kwargs: Any) -> Any:
        history, record = timed_fit(fit, model, *args, **kwargs)
        times.fits.append(record)
        return history

    with (
        patched(objective, "build_model", timed(build_model, "build")),
        patched(objective.ModelPool, "model_for", timed(model_for, "build")),
        patched(objective, "validation_accuracy", timed(validation_accuracy, "validation")),
        patched(keras.Model, "fit", timed_model_fit),
        patched(keras.backend, "clear_session", timed(clear_session, "clear_session")),
    ):
        yield times
