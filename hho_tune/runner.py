"""The ONE loop: ask -> cache? -> evaluate -> record -> tell.

It owns the budget (exactly ``budget`` evaluations, whatever the optimizer's own counters
say), the cache (a configuration already evaluated is answered without training and costs
nothing), failures (an exception or a non-finite value is a failed trial, never a crash)
and the order in which listeners hear about trials. Display and files are listeners.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from hho_tune.optimizers.base import Optimizer
from hho_tune.space import Params, SearchSpace
from hho_tune.trial import Trial, TrialState, best_trial

Objective = Callable[[Mapping[str, Any]], float]
DEFAULT_MAX_FAILURES = 5
DEFAULT_MAX_CACHED_IN_A_ROW = 500


class TrialListener:
    """Hooks the runner calls; the default does nothing, so listeners override what they need."""

    def on_start(self, budget: int) -> None:
        """Called once before the first evaluation."""

    def on_evaluation_start(self, number: int, params: Params) -> None:
        """A training is about to start (for progress displays)."""

    def on_trial(self, trial: Trial, best: Trial | None) -> None:
        """A trial finished, successfully or not; ``best`` already includes it."""

    def on_cached(self, params: Params, value: float | None) -> None:
        """The optimizer proposed a known configuration; no training happened."""

    def on_interrupted(self, number: int, params: Params, reason: str) -> None:
        """The training in flight was interrupted (Ctrl-C); the exception propagates after this."""


@dataclass(frozen=True)
class RunOutcome:
    trials: tuple[Trial, ...]
    cached: int
    replayed: int
    best: Trial | None
    stop_reason: str
    seconds: float
    optimizer: dict[str, Any] = field(default_factory=dict)

    @property
    def evaluations(self) -> int:
        return len(self.trials)


def run_loop(
    objective: Objective,
    space: SearchSpace,
    optimizer: Optimizer,
    *,
    budget: int,
    direction: str = "maximize",
    listeners: Iterable[TrialListener] = (),
    max_failures: int = DEFAULT_MAX_FAILURES,
    max_cached_in_a_row: int = DEFAULT_MAX_CACHED_IN_A_ROW,
    history: Sequence[Trial] = (),
) -> RunOutcome:
    """Evaluate exactly ``budget`` configurations unless the optimizer gives up first.

    ``history`` holds the trials of an interrupted run being resumed: they count toward the
    budget, and when the optimizer proposes one of them again its recorded result is replayed
    without training. A seeded optimizer re-proposes them in the same order, so the resumed
    run continues where the first one stopped.
    """
    listeners = list(listeners)
    started = time.perf_counter()
    trials: list[Trial] = list(history)
    ledger = {space.key(t.params): t for t in history}
    cache: dict[tuple, float | None] = {}
    cached = replayed = cached_in_a_row = failures_in_a_row = 0
    stop_reason = "budget spent"
    for listener in listeners:
        listener.on_start(budget)
    try:
        while len(trials) < budget:
            suggestion = optimizer.ask()
            if suggestion is None:
                stop_reason = "the optimizer has nothing more to propose"
                break
            key = space.key(suggestion.params)
            if key not in cache and key in ledger:
                replayed += 1
                cache[key] = ledger[key].value if ledger[key].ok else None
                optimizer.tell(suggestion, _score(cache[key], direction))
                continue
            if key in cache:
                cached += 1
                cached_in_a_row += 1
                for listener in listeners:
                    listener.on_cached(suggestion.params, cache[key])
                optimizer.tell(suggestion, _score(cache[key], direction))
                if cached_in_a_row >= max_cached_in_a_row:
                    stop_reason = (
                        f"the optimizer proposed only known configurations {cached_in_a_row} times in a row"
                    )
                    break
                continue
            cached_in_a_row = 0
            number = len(trials)
            for listener in listeners:
                listener.on_evaluation_start(number, suggestion.params)
            try:
                trial = evaluate(objective, space, suggestion.params, number=number)
            except KeyboardInterrupt:
                for listener in listeners:
                    listener.on_interrupted(number, suggestion.params, "interrupted by the user (Ctrl-C)")
                raise
            trials.append(trial)
            cache[key] = trial.value if trial.ok else None
            best = best_trial(trials, direction)
            for listener in listeners:
                listener.on_trial(trial, best)
            optimizer.tell(suggestion, _score(cache[key], direction))
            failures_in_a_row = 0 if trial.ok else failures_in_a_row + 1
            if failures_in_a_row >= max_failures:
                stop_reason = f"{failures_in_a_row} failed trials in a row (last: {trial.error})"
                break
    finally:
        optimizer.close()
    return RunOutcome(
        trials=tuple(trials),
        cached=cached,
        replayed=replayed,
        best=best_trial(trials, direction),
        stop_reason=stop_reason,
        seconds=time.perf_counter() - started,
        optimizer=optimizer.describe(),
    )


def evaluate(objective: Objective, space: SearchSpace, params: Params, *, number: int) -> Trial:
    """Run the objective once; any exception or non-finite value becomes a failed trial."""
    start = _now()
    try:
        value = float(objective(space.full_params(params)))
    except Exception as exc:
        return Trial(number, dict(params), None, TrialState.FAIL, start, _now(), error=_describe(exc))
    if not math.isfinite(value):
        return Trial(number, dict(params), None, TrialState.FAIL, start, _now(), error=f"non-finite value {value}")
    return Trial(number, dict(params), value, TrialState.COMPLETE, start, _now())


def _score(value: float | None, direction: str) -> float | None:
    """Optimizers maximize; a minimized objective is negated on its way to them."""
    if value is None:
        return None
    return value if direction == "maximize" else -value


def _describe(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" (at {last[0].filename.rsplit('/', 1)[-1]}:{last[0].lineno})" if last else ""
    message = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {message}{where}"[:500]


def _now() -> datetime:
    return datetime.now(timezone.utc)
