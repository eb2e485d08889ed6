"""Turn a mealpy optimizer, which insists on calling the objective itself, into ask/tell.

The pattern is nevergrad's ``recaster``: mealpy's ``solve`` runs in a background thread;
its objective function hands each point to :meth:`MealpyAskTell.ask` through a queue and
blocks until :meth:`MealpyAskTell.tell` sends the score back. A model with a batch hook
(our paper HHO) hands over a generation's independent moves at once, so parallel workers
can evaluate them together. The sequence of points is a pure function of the seed and the
scores, whatever order the scores of a batch arrive in.

Why the runner, not mealpy, counts evaluations: mealpy's ``max_fe`` is checked only at the
end of an epoch and overshoots. Here mealpy runs without a termination; when the runner's
budget is spent it calls :meth:`close`, which makes the blocked objective raise and the
thread unwind.

mealpy searches the unit cube [0, 1]^d; the search space decodes. If mealpy finishes all its
epochs before the budget is spent, it is restarted with a new seed derived from the first,
so a run always reaches its budget.
"""

from __future__ import annotations

import collections
import contextlib
import importlib
import inspect
import itertools
import math
import pkgutil
import queue
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from hho_tune.errors import UsageError
from hho_tune.optimizers.base import Optimizer, OptimizerSettings, Suggestion, register

_FINISHED = object()


class _Stop(Exception):
    """Raised inside mealpy's thread to unwind it when the run is over."""


class MealpyAskTell(Optimizer):
    """Drives ``model_factory()`` (a fresh mealpy Optimizer per restart) through ask/tell.

    mealpy's thread hands over a batch of points at a time: one point for any mealpy
    optimizer, a whole batch of independent moves for a model that has an
    ``evaluate_batch`` hook (our paper HHO). All points of a batch can be asked before any
    is told (parallel workers); mealpy continues when the last of them is told.
    """

    def __init__(self, name: str, model_factory: Callable[[], Any], settings: OptimizerSettings) -> None:
        self.name = name
        self._factory = model_factory
        self._space = settings.space
        self._seed = settings.seed
        self._batches: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._scores: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._stopping = threading.Event()
        self._tokens = itertools.count()
        self._unasked: collections.deque[tuple[int, np.ndarray]] = collections.deque()
        self._untold: dict[int, int] = {}  # token -> index in the current batch
        self._batch_scores: list[float] = []
        self._worst_seen: float | None = None
        self._best_seen: float | None = None
        self.restarts = 0
        self.model: Any = None

    # -- ask/tell, on the caller's thread ---------------------------------------------------
    def ready(self) -> bool:
        return bool(self._unasked) or not self._untold

    def ask(self) -> Suggestion:
        if not self.ready():
            raise RuntimeError("the whole batch is out: tell its scores before asking again")
        while not self._unasked:
            if self._thread is None:
                self._start()
            batch = self._batches.get()
            if batch is _FINISHED:
                self._thread.join()
                self._thread = None
                if self._error is not None:
                    raise RuntimeError(f"{self.name} failed inside mealpy") from self._error
                self.restarts += 1  # all epochs done before the budget: start again
                continue
            self._batch_scores = [math.nan] * len(batch)
            self._unasked.extend(enumerate(batch))
        index, point = self._unasked.popleft()
        token = next(self._tokens)
        self._untold[token] = index
        return Suggestion(params=self._space.from_unit(point), token=token)

    def tell(self, suggestion: Suggestion, score: float | None) -> None:
        if suggestion.token not in self._untold:
            raise RuntimeError("tell() must answer a suggestion of the current batch, once")
        self._batch_scores[self._untold.pop(suggestion.token)] = self._fitness_for(score)
        if not self._untold and not self._unasked:
            self._scores.put(self._batch_scores)

    def close(self) -> None:
        if self._thread is None:
            return
        self._stopping.set()
        # Unblock whichever side mealpy is waiting on.
        with contextlib.suppress(queue.Full):
            self._scores.put_nowait(None)
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self._batches.get(timeout=0.05)
        self._thread.join()
        self._thread = None

    def describe(self) -> dict[str, Any]:
        model = self.model or self._factory()
        return {
            "name": self.name,
            "mealpy_class": f"{type(model).__module__}.{type(model).__name__}",
            "epoch": getattr(model, "epoch", None),
            "pop_size": getattr(model, "pop_size", None),
            "restarts": self.restarts,
            "generations_done": self.generations_done(),
        }

    def generations_done(self) -> int:
        """Generations (mealpy epochs) completed by the current model: t in E = 2 E0 (1 - t/T)."""
        history = getattr(self.model, "history", None)
        if history is None:
            return 0
        # mealpy records the initial population and then one entry per generation.
        return max(len(history.list_global_best) - 1, 0)

    # -- mealpy's side, on the background thread --------------------------------------------
    def _start(self) -> None:
        from mealpy import FloatVar, Problem

        class _UnitCubeProblem(Problem):
            # One objective, declared up front: mealpy would otherwise call obj_func once
            # just to count the objectives, wasting a proposal.
            @property
            def n_objs(self) -> int:
                return 1

        dims = self._space.dims
        problem = _UnitCubeProblem(
            bounds=FloatVar(lb=(0.0,) * dims, ub=(1.0,) * dims),
            minmax="max",
            obj_func=self._objective_in_thread,
            obj_weights=np.ones(1),
            log_to=None,
        )
        self.model = self._factory()
        if hasattr(self.model, "evaluate_batch"):
            self.model.batch_evaluator = self._evaluate_batch_in_thread
        seed = self._seed + 7919 * self.restarts  # distinct, reproducible restarts
        self._thread = threading.Thread(target=self._solve, args=(self.model, problem, seed), daemon=True)
        self._thread.start()

    def _solve(self, model: Any, problem: Any, seed: int) -> None:
        try:
            model.solve(problem, seed=seed)
        except _Stop:
            pass
        except BaseException as exc:  # reported to the caller by ask()
            self._error = exc
        finally:
            self._batches.put(_FINISHED)

    def _objective_in_thread(self, x: np.ndarray) -> float:
        """mealpy's ``obj_func``: one point, answered when its score is told."""
        return self._evaluate_batch_in_thread([x])[0]

    def _evaluate_batch_in_thread(self, points: list[np.ndarray]) -> list[float]:
        """Hand a batch of independent points to ask() and wait until every one is told."""
        if self._stopping.is_set():
            raise _Stop
        if not points:
            return []
        self._batches.put([np.clip(np.asarray(x, dtype=float), 0.0, 1.0) for x in points])
        scores = self._scores.get()
        if self._stopping.is_set() or scores is None:
            raise _Stop
        return scores

    def _fitness_for(self, score: float | None) -> float:
        """A finite number for mealpy: a NaN would beat the incumbent in max mode."""
        if score is not None and math.isfinite(score):
            self._worst_seen = score if self._worst_seen is None else min(self._worst_seen, score)
            self._best_seen = score if self._best_seen is None else max(self._best_seen, score)
            return float(score)
        if self._worst_seen is None:
            return -1e9
        spread = max(1.0, self._best_seen - self._worst_seen)
        return self._worst_seen - spread  # a failure is worse than anything seen



def _make_named_mealpy(spec: str, settings: OptimizerSettings) -> MealpyAskTell:
    """``mealpy:GWO.OriginalGWO`` -> that class, sized like HHO (restarts cover early ends)."""
    module_name, _, class_name = spec.partition(".")
    family = _mealpy_families().get(module_name)
    model_class = None
    if family is not None and class_name:
        model_class = getattr(importlib.import_module(f"mealpy.{family}.{module_name}"), class_name, None)
    if not (inspect.isclass(model_class) and hasattr(model_class, "evolve")):
        raise UsageError(
            f"unknown mealpy optimizer {spec!r}: use mealpy:MODULE.CLASS, for example mealpy:GWO.OriginalGWO"
        )
    pop_size = settings.pop_size or 10
    epoch = max(1, math.ceil(max(settings.budget - pop_size, 1) / pop_size))
    return MealpyAskTell(f"mealpy:{spec}", lambda: model_class(epoch=epoch, pop_size=pop_size), settings)


def _mealpy_families() -> dict[str, str]:
    """Module name -> family package, read from mealpy's own layout ('GWO' -> 'swarm_based')."""
    import mealpy

    families: dict[str, str] = {}
    for family in pkgutil.iter_modules(mealpy.__path__):
        if family.ispkg and family.name.endswith("_based"):
            package = importlib.import_module(f"mealpy.{family.name}")
            for module in pkgutil.iter_modules(package.__path__):
                families[module.name] = family.name
    return families


register("mealpy", _make_named_mealpy, prefix=True)
