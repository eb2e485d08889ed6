"""The record that crosses from the runner to the result files: one evaluation, frozen."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum

from hho_tune.space import Params


class TrialState(str, Enum):
    """Optuna's names, so trials.csv reads like ``study.trials_dataframe()``."""

    COMPLETE = "COMPLETE"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Trial:
    number: int
    params: Params
    value: float | None
    state: TrialState
    datetime_start: datetime
    datetime_complete: datetime
    error: str = ""
    user_attrs: dict[str, object] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return (self.datetime_complete - self.datetime_start).total_seconds()

    @property
    def ok(self) -> bool:
        return self.state is TrialState.COMPLETE and self.value is not None and math.isfinite(self.value)


ERROR_LENGTH = 500


def failed_trial(number: int, params: Params, error: str, *, start: datetime | None = None) -> Trial:
    """A failed trial that ends now (and starts then too, unless ``start`` says otherwise).

    Its error goes on one line of at most :data:`ERROR_LENGTH` characters, whoever wrote it (an
    exception's message, a lost worker, a worker that could not set up): trials.csv keeps one
    row per trial and the progress table one line.
    """
    end = datetime.now(timezone.utc)
    return Trial(number, dict(params), None, TrialState.FAIL, start or end, end,
                 error=" ".join(error.split())[:ERROR_LENGTH])


def better(a: float, b: float, direction: str) -> bool:
    """Is value a strictly better than b?"""
    return a > b if direction == "maximize" else a < b


def beats(trial: Trial, best: Trial | None, direction: str) -> bool:
    """Does ``trial`` take the lead from ``best``? Only a completed trial can, and a tie cannot."""
    return trial.ok and (best is None or better(trial.value, best.value, direction))


def best_trial(trials: list[Trial] | tuple[Trial, ...], direction: str) -> Trial | None:
    """The best completed trial; a failed trial can never win. Ties go to the earliest."""
    best: Trial | None = None
    for trial in trials:
        if beats(trial, best, direction):
            best = trial
    return best


def ranked(trials: list[Trial] | tuple[Trial, ...], direction: str) -> list[Trial]:
    """Completed trials best first (ties by trial number), then the failed ones."""
    sign = -1.0 if direction == "maximize" else 1.0
    done = sorted((t for t in trials if t.ok), key=lambda t: (sign * t.value, t.number))
    return done + [t for t in trials if not t.ok]
