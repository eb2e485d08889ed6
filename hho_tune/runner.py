"""The ONE loop: ask -> cache? -> evaluate -> record -> tell.

It owns the budget (exactly ``budget`` evaluations, whatever the optimizer's own counters
say), the cache (a configuration already evaluated is answered without training and costs
nothing), failures (an exception or a non-finite value is a failed trial, never a crash)
and the order in which listeners hear about trials. Display and files are listeners.
"""

from __future__ import annotations

import itertools
import math
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

from hho_tune.executors import InlineExecutor, Job
from hho_tune.optimizers.base import Optimizer, Suggestion
from hho_tune.reporting import ReportChannel, TrialReporter, is_pruned_signal, wants_reporter
from hho_tune.space import Params, SearchSpace
from hho_tune.trial import Trial, TrialState, beats, best_trial, failed_trial

if TYPE_CHECKING:
    from hho_tune.executors import DaskExecutor

    Executor = InlineExecutor | DaskExecutor

Objective = Callable[[Mapping[str, Any]], float]
DEFAULT_MAX_FAILURES = 5
DEFAULT_MAX_CACHED_IN_A_ROW = 500
EPOCH_BUDGET_SPENT = "epoch budget spent"


class TrialListener:
    """Hooks the runner calls; the default does nothing, so listeners override what they need."""

    def on_start(self, budget: int, finished: int) -> None:
        """Called once before the first evaluation; ``finished`` trials are already recorded (resume)."""

    def on_evaluation_start(self, number: int, params: Params) -> None:
        """A training is about to start (for progress displays)."""

    def on_trial(self, trial: Trial, best: Trial | None) -> None:
        """A trial finished, successfully or not; ``best`` already includes it."""

    def on_report(self, number: int, step: int, value: float, seconds: float) -> None:
        """Trial ``number`` reported ``value`` after ``step`` (an epoch), which took ``seconds``."""

    def on_cached(self, params: Params, value: float | None) -> None:
        """The optimizer proposed a known configuration; no training happened."""

    def on_interrupted(self, number: int, params: Params, reason: str) -> None:
        """The training in flight was interrupted (Ctrl-C); the exception propagates after this."""


class Pruning(Protocol):
    """What the loop asks when a trial reports a step: should it stop? (:class:`hho_tune.pruning.OptunaPruning`)."""

    def should_prune(self, number: int, step: int) -> bool:
        """Called after the step's value reached every listener (the study holds it)."""
        ...


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
    executor: Executor | None = None,
    cost: Callable[[Params], float] | None = None,
    pruning: Pruning | None = None,
    epoch_budget: int | None = None,
) -> RunOutcome:
    """Evaluate exactly ``budget`` configurations unless the optimizer gives up first.

    ``history`` holds the trials of an interrupted run being resumed: they count toward the
    budget, and when the optimizer proposes one of them again its recorded result is replayed
    without training. A seeded optimizer re-proposes them in the same order, so the resumed
    run continues where the first one stopped.

    ``executor`` runs the trainings (default: one at a time, in this process). With room for
    several, the loop keeps asking while the optimizer is ``ready()`` and records each trial
    as it ends. ``cost`` (the objective's relative cost of a configuration, when it has one)
    orders what the optimizer has settled ahead (:meth:`Optimizer.settled`, a generation's
    moves in HHO): the costliest starts first, counting the follow-up a training may lead to
    (a dive's Y, then its Z), so that the workers finish a batch together instead of one
    waiting for a long training, or a Z, started last. Trial numbers stay in the order of
    asking.

    ``pruning`` decides, each time a trial reports a step, whether it stops there; a pruned
    trial costs one configuration of the budget like any other, and the optimizer is told it
    was pruned (:meth:`Optimizer.tell_pruned`), with its curve.

    ``epoch_budget``: ask no more once the recorded trials (``history`` included) have trained
    that many steps in all, each counted by its last reported step. The trainings in flight
    still finish, so a run may pass the budget by less than one trial's steps per worker.
    """
    loop = _Loop(space, optimizer, budget=budget, direction=direction, listeners=list(listeners),
                 max_failures=max_failures, max_cached_in_a_row=max_cached_in_a_row, history=history,
                 executor=executor or InlineExecutor(objective, space), cost=cost, pruning=pruning,
                 epoch_budget=epoch_budget)
    started = time.perf_counter()
    try:
        loop.run()
    finally:
        optimizer.close()
    return RunOutcome(
        trials=tuple(loop.trials),
        cached=loop.cached,
        replayed=loop.replayed,
        best=loop.best,
        stop_reason=loop.stop_reason,
        seconds=time.perf_counter() - started,
        optimizer=optimizer.describe(),
    )


class _Loop:
    """The state of one run_loop call: what is recorded, cached and in flight.

    Nothing here costs more per trial as the run grows (dicts and sets, the best kept as
    trials come, the next free trial number kept as a cursor), so the loop's own overhead stays
    flat at tens of thousands of evaluations.
    """

    def __init__(self, space: SearchSpace, optimizer: Optimizer, *, budget: int, direction: str,
                 listeners: list[TrialListener], max_failures: int, max_cached_in_a_row: int,
                 history: Sequence[Trial], executor: Executor, cost: Callable[[Params], float] | None,
                 pruning: Pruning | None, epoch_budget: int | None = None) -> None:
        self.space, self.optimizer, self.executor, self.pruning = space, optimizer, executor, pruning
        self.cost = cost if executor.capacity > 1 else None  # one at a time: nothing to reorder
        self.budget, self.direction, self.listeners = budget, direction, listeners
        self.max_failures, self.max_cached_in_a_row = max_failures, max_cached_in_a_row
        self.trials: list[Trial] = list(history)
        self.ledger = {space.key(t.params): t for t in history}
        self.cache: dict[tuple, Trial] = {}  # configuration -> the trial that answered it
        self.in_flight: dict[int, tuple[Suggestion, tuple]] = {}  # number -> (suggestion, key)
        self.waiting: dict[tuple, list[Suggestion]] = {}  # proposals of a configuration in flight
        self.ahead: list[tuple[int, Suggestion, tuple]] = []  # asked and numbered, not yet submitted
        self.used_numbers = {t.number for t in history}
        self.next_number = 0  # no free number below it
        self.best = best_trial(self.trials, direction)
        self.cached = self.replayed = self.cached_in_a_row = self.failures_in_a_row = 0
        self.stop_reason = "budget spent"
        self.stopping = False
        self.epoch_budget = epoch_budget
        self.steps_spent = sum(t.steps or 0 for t in history)
        self._check_epoch_budget()
        self.heard: dict[int, int] = {}  # trial in flight -> the last step its listeners heard
        # An executor that starts workers only when enough is left to train hears how much is.
        self._expect: Callable[[int], None] | None = getattr(executor, "expect_trainings", None)
        connect = getattr(executor, "set_report_channel", None)  # an executor without it passes no reports
        if connect is not None:
            connect(self._on_report, answers=pruning is not None)

    def run(self) -> None:
        for listener in self.listeners:
            listener.on_start(self.budget, len(self.trials))
        try:
            while True:
                if self._expect is not None:
                    self._expect(max(self.budget - len(self.trials), 0))
                self._fill()
                if not self.in_flight:
                    return
                for _job, trial in self.executor.wait_any():
                    self._record(trial)
        except KeyboardInterrupt:
            for number, (suggestion, _) in sorted(self.in_flight.items()):
                for listener in self.listeners:
                    listener.on_interrupted(number, suggestion.params, "interrupted by the user (Ctrl-C)")
            self.executor.cancel_all()
            raise

    def _fill(self) -> None:
        """Submit while a worker is free; ask while the budget allows and the optimizer is ready."""
        while len(self.in_flight) < self.executor.capacity:
            if not self._ask_ahead():
                return
            costliest = max(self.ahead, key=self._cost_of) if self.cost else self.ahead[0]
            self.ahead.remove(costliest)
            self._submit(*costliest)

    def _cost_of(self, entry: tuple[int, Suggestion, tuple]) -> float:
        """The training's cost, plus its follow-up's: the length of the chain it may start."""
        assert self.cost is not None
        suggestion = entry[1]
        chain = [suggestion.params] if suggestion.follow_up is None else [suggestion.params, suggestion.follow_up]
        return sum(self.cost(self.space.full_params(params)) for params in chain)

    def _may_ask(self) -> bool:
        pending = len(self.trials) + len(self.in_flight) + len(self.ahead)
        return not self.stopping and pending < self.budget and self.optimizer.ready()

    def _ask_ahead(self) -> bool:
        """Ask until a configuration to train is queued, then, with a cost to order by, the settled rest.

        Called before every submission, so that what became settled since (a follow-up released
        by a score just told) competes with what was queued before it. False when nothing is
        queued and nothing could be (budget spent, optimizer not ready, or stopping).
        """
        while not self.ahead:
            if not self._may_ask():
                return False
            self._ask_one()
        while self.cost is not None and self.optimizer.settled() > 0 and self._may_ask():
            self._ask_one()
        return True

    def _ask_one(self) -> None:
        """Answer a known configuration at once; number a new one and queue it for training."""
        suggestion = self.optimizer.ask()
        if suggestion is None:
            self._stop("the optimizer has nothing more to propose")
            return
        key = self.space.key(suggestion.params)
        if key not in self.cache and key in self.ledger:
            self.replayed += 1
            self.cache[key] = self.ledger[key]
            self._tell(suggestion, self.cache[key])
        elif key in self.cache or key in self.waiting:
            self._answer_known(suggestion, key)
        else:
            self.cached_in_a_row = 0
            number = next(n for n in itertools.count(self.next_number) if n not in self.used_numbers)
            self.used_numbers.add(number)
            self.next_number = number + 1
            self.waiting[key] = []
            self.ahead.append((number, suggestion, key))

    def _answer_known(self, suggestion: Suggestion, key: tuple) -> None:
        self.cached += 1
        self.cached_in_a_row += 1
        if key in self.waiting:  # the same configuration is training right now: answer when it ends
            self.waiting[key].append(suggestion)
        else:
            known = self.cache[key]
            for listener in self.listeners:
                listener.on_cached(suggestion.params, None if known.failed else known.value)
            self._tell(suggestion, known)
        if self.cached_in_a_row >= self.max_cached_in_a_row:
            self._stop(f"the optimizer proposed only known configurations {self.cached_in_a_row} times in a row")

    def _submit(self, number: int, suggestion: Suggestion, key: tuple) -> None:
        self.in_flight[number] = (suggestion, key)
        for listener in self.listeners:
            listener.on_evaluation_start(number, suggestion.params)
        self.executor.submit(Job(number, dict(suggestion.params)))

    def _on_report(self, number: int, step: int, value: float, seconds: float) -> bool:
        """A step of a trial in flight: to the listeners (curve file, study), then to the pruner."""
        if number not in self.in_flight:  # a message that came after its trial ended: the trial brought its curve
            return False
        self.heard[number] = step
        for listener in self.listeners:
            listener.on_report(number, step, value, seconds)
        return self.pruning is not None and self.pruning.should_prune(number, step)

    def _record(self, trial: Trial) -> None:
        suggestion, key = self.in_flight.pop(trial.number)
        heard = self.heard.pop(trial.number, 0)
        for step, value, seconds in trial.curve:  # steps a worker reported that did not reach us (a lost message)
            if step > heard:
                for listener in self.listeners:
                    listener.on_report(trial.number, step, value, seconds)
        self.trials.append(trial)
        self.cache[key] = trial
        self.steps_spent += trial.steps or 0
        self._check_epoch_budget()
        if beats(trial, self.best, self.direction):
            self.best = trial  # what best_trial(self.trials) says: ties go to the earliest
        for listener in self.listeners:
            listener.on_trial(trial, self.best)
        self._tell(suggestion, self.cache[key])
        for twin in self.waiting.pop(key, []):
            self._tell(twin, self.cache[key])
        self.failures_in_a_row = self.failures_in_a_row + 1 if trial.failed else 0
        if self.failures_in_a_row >= self.max_failures:
            self._stop(f"{self.failures_in_a_row} failed trials in a row (last: {trial.error})")
            for number, _suggestion, key in self.ahead:  # asked ahead, never started: train none of them
                self.used_numbers.discard(number)
                self.next_number = min(self.next_number, number)
                self.waiting.pop(key, None)
            self.ahead.clear()

    def _tell(self, suggestion: Suggestion, trial: Trial) -> None:
        """What the trial tells the optimizer: a score, a pruned curve, or a failure (None)."""
        if trial.ok:
            self.optimizer.tell(suggestion, _score(trial.value, self.direction))
        elif trial.pruned:
            curve = [(step, _score(value, self.direction)) for step, value, _ in trial.curve]
            self.optimizer.tell_pruned(suggestion, curve)
        else:
            self.optimizer.tell(suggestion, None)

    def _check_epoch_budget(self) -> None:
        if self.epoch_budget is not None and self.steps_spent >= self.epoch_budget:
            self._stop(f"{EPOCH_BUDGET_SPENT} ({self.steps_spent} of {self.epoch_budget} epochs)")

    def _stop(self, reason: str) -> None:
        """Ask no more; the trainings in flight still finish and are recorded."""
        if not self.stopping:
            self.stopping, self.stop_reason = True, reason


def evaluate(objective: Objective, space: SearchSpace, params: Params, *, number: int,
             channel: ReportChannel | None = None, takes_reporter: bool | None = None) -> Trial:
    """Run the objective once; any exception or non-finite value becomes a failed trial.

    An objective that takes a ``reporter`` gets one (:mod:`hho_tune.reporting`): its reports go
    to ``channel`` and its curve comes back with the trial; when it stops on the pruner's word
    (``TrialPruned``) the trial is PRUNED with the last value it reported. ``takes_reporter``:
    whether it does, when the caller has read it once for many trials (reading a signature
    costs 15-35 us, a few percent of what the loop spends on a cheap trial); None reads it here.
    """
    start = _now()
    if takes_reporter is None:
        takes_reporter = wants_reporter(objective)
    reporter = TrialReporter(number, channel) if takes_reporter else None
    try:
        full = space.full_params(params)
        value = float(objective(full) if reporter is None else objective(full, reporter=reporter))
    except Exception as exc:
        curve = tuple(reporter.curve) if reporter is not None else ()
        if not is_pruned_signal(exc):
            return replace(failed_trial(number, params, _describe(exc), start=start), curve=curve)
        if not curve:
            return failed_trial(number, params, "pruned before it reported any value", start=start)
        last = curve[-1][1]
        if not math.isfinite(last):
            return replace(failed_trial(number, params, f"non-finite value {last} at step {curve[-1][0]}",
                                        start=start), curve=curve)
        return Trial(number, dict(params), last, TrialState.PRUNED, start, _now(), curve=curve)
    curve = tuple(reporter.curve) if reporter is not None else ()
    if not math.isfinite(value):
        return replace(failed_trial(number, params, f"non-finite value {value}", start=start), curve=curve)
    return Trial(number, dict(params), value, TrialState.COMPLETE, start, _now(), curve=curve)


def _score(value: float | None, direction: str) -> float | None:
    """Optimizers maximize; a minimized objective is negated on its way to them."""
    if value is None:
        return None
    return value if direction == "maximize" else -value


def _describe(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" (at {last[0].filename.rsplit('/', 1)[-1]}:{last[0].lineno})" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _now() -> datetime:
    return datetime.now(timezone.utc)
