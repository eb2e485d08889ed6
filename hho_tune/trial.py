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
    PRUNED = "PRUNED"
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
    curve: tuple[tuple[int, float, float], ...] = ()  # (step, value, seconds that step took), as reported

    @property
    def steps(self) -> int | None:
        """The last step (epoch) the trial reported, None when it reported none."""
        return self.curve[-1][0] if self.curve else None

    @property
    def duration(self) -> float:
        return (self.datetime_complete - self.datetime_start).total_seconds()

    @property
    def ok(self) -> bool:
        """Completed with a finite value: trained as long as it was meant to."""
        return self.state is TrialState.COMPLETE and self.value is not None and math.isfinite(self.value)

    @property
    def pruned(self) -> bool:
        """Stopped early by the pruner; its value is the last one it reported."""
        return self.state is TrialState.PRUNED and self.value is not None and math.isfinite(self.value)

    @property
    def failed(self) -> bool:
        return not (self.ok or self.pruned)

    @property
    def reach(self) -> float:
        """How far the trial trained, for ranking: its last step; a completed trial that reported none ranks above any.

        SMAC's "highest observed budget": a score after more epochs outranks any score after fewer,
        so that a trial pruned after one lucky epoch never takes the lead from one trained to the end.
        """
        if self.curve:
            return float(self.curve[-1][0])
        return math.inf if self.ok else 0.0


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
    """Does ``trial`` take the lead from ``best``? Not a failed one, not a tie, not from fewer epochs.

    A trial that trained further wins (:attr:`Trial.reach`); at the same reach, the better value.
    A pruned trial can lead only while no trial has trained further than it.
    """
    if trial.failed:
        return False
    if best is None or trial.reach != best.reach:
        return best is None or trial.reach > best.reach
    return better(trial.value, best.value, direction)


def best_trial(trials: list[Trial] | tuple[Trial, ...], direction: str) -> Trial | None:
    """The best trial at the highest fidelity reached; a failed trial can never win. Ties go to the earliest."""
    best: Trial | None = None
    for trial in trials:
        if beats(trial, best, direction):
            best = trial
    return best


def ranked(trials: list[Trial] | tuple[Trial, ...], direction: str) -> list[Trial]:
    """Scored trials, those that trained furthest first, best first within; then the failed ones.

    Ties by trial number. Pruned trials come after every trial that trained further than they did.
    """
    sign = -1.0 if direction == "maximize" else 1.0
    done = sorted((t for t in trials if not t.failed), key=lambda t: (-t.reach, sign * t.value, t.number))
    return done + [t for t in trials if t.failed]
