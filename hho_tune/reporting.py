"""What an objective receives to report its learning curve and hear that it should stop.

Optuna's habit, without Optuna's trial object::

    def objective(params, reporter):
        for epoch in range(1, 9):
            accuracy = train_one_epoch(params)
            reporter.report(accuracy, step=epoch)
            if reporter.should_prune():
                raise hho_tune.TrialPruned()
        return accuracy

An objective gets a reporter when its signature has a parameter named ``reporter``; a plain
``params -> float`` function is called as before. The reporter keeps the curve (it travels back
with the trial, also from a Dask worker) and passes each value to a *channel*, the runner's
ear: the channel writes the value to learning_curves.csv and the study and answers whether to
prune (Optuna's pruner on the run's study, :mod:`hho_tune.pruning`).
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable
from typing import Any

# (trial number, step, value, seconds the step took) -> should the trial stop?
ReportChannel = Callable[[int, int, float, float], bool]


def wants_reporter(objective: Any) -> bool:
    """Does the objective take a ``reporter`` argument? (Checked by name, as pytest finds fixtures.)"""
    try:
        return "reporter" in inspect.signature(objective).parameters
    except (TypeError, ValueError):  # a builtin or a C callable: no signature, no reporter
        return False


class TrialReporter:
    """One trial's reporter: ``report(value, step)`` after each step, then ``should_prune()``.

    Steps are whole numbers that grow (epochs, from 1); the same step twice, or a smaller one, is
    the objective's bug and fails the trial with that message. ``seconds`` is measured here,
    where the training runs, so the time a Dask answer takes does not count as training time.
    """

    def __init__(self, number: int, channel: ReportChannel | None = None) -> None:
        self.number = number
        self._channel = channel
        self.curve: list[tuple[int, float, float]] = []
        self._since = time.perf_counter()
        self._prune = False

    def report(self, value: float, step: int, *, seconds: float | None = None) -> None:
        if isinstance(step, bool) or not isinstance(step, int | float) or step != int(step):
            raise ValueError(f"reporter.report: step must be a whole number, got {step!r}")
        step = int(step)
        if self.curve and step <= self.curve[-1][0]:
            raise ValueError(f"reporter.report: steps must grow, got step {step} after step {self.curve[-1][0]}")
        value = float(value)
        if seconds is not None and not (isinstance(seconds, int | float) and math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"reporter.report: seconds must be a finite number >= 0, got {seconds!r}")
        now = time.perf_counter()
        measured, self._since = now - self._since, now
        seconds = measured if seconds is None else float(seconds)
        self.curve.append((step, value, seconds))
        if not math.isfinite(value):
            self._prune = True  # a diverged curve goes no further, whatever the pruner would say
            return
        self._prune = bool(self._channel(self.number, step, value, seconds)) if self._channel else False
        self._since = time.perf_counter()  # waiting for the answer is not the next step's training time

    def should_prune(self) -> bool:
        """Did the pruner say, at the last report, that this trial should stop?"""
        return self._prune


def is_pruned_signal(exc: BaseException) -> bool:
    """Our TrialPruned, or Optuna's (by class, without importing Optuna when it is not loaded)."""
    from hho_tune.errors import TrialPruned

    if isinstance(exc, TrialPruned):
        return True
    return any(cls.__name__ == "TrialPruned" and cls.__module__.startswith("optuna") for cls in type(exc).__mro__)
