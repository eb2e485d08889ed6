"""Turn a mealpy optimizer, which insists on calling the objective itself, into ask/tell.

The pattern is nevergrad's ``recaster``: mealpy's ``solve`` runs in a background thread;
its objective function hands each point to :meth:`MealpyAskTell.ask` through a queue and
blocks until :meth:`MealpyAskTell.tell` sends the score back. A model with a batch hook
(our paper HHO) hands over a generation's independent moves at once, so parallel workers
can evaluate them together, with *follow-ups*: a point to evaluate next if a move's score
calls for it (a rapid dive's Z when its Y fails). Follow-ups are released in the batch's
order as soon as the moves they depend on are told, so a worker that would wait for the
slowest move of the generation trains a Z instead. The sequence of points asked is a pure
function of the seed and the scores, whatever order the scores of a batch arrive in: the
moves in order, then the follow-ups in the order of their moves, as in a serial run.

Why the runner, not mealpy, counts evaluations: mealpy's ``max_fe`` is checked only at the
end of an epoch and overshoots. Here mealpy runs without a termination; when the runner's
budget is spent it calls :meth:`close`, which makes the blocked objective raise and the
thread unwind.

mealpy searches the symmetric cube [-1, 1]^d, whose origin is the centre of every
parameter's range, and the bridge maps each point to the unit cube the search space decodes
(u = (x + 1) / 2). Why not [0, 1]^d directly: several of HHO's rules (the soft besiege's
difference vector, the second exploration rule, a mean of gathered hawks subtracted from the
rabbit) and those of other mealpy optimizers produce points near the coordinate origin. On
[0, 1]^d that origin is the lower corner of every range (learning rate 1e-4, the shortest
decay, one layer), and the search was pulled there whatever the objective said. Centred,
the same pull is toward the middle of the box, the one point that favours no bound.
If mealpy finishes all its epochs before the budget is spent, it is restarted with a new
seed derived from the first, so a run always reaches its budget.
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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hho_tune.errors import UsageError
from hho_tune.optimizers.base import Optimizer, OptimizerSettings, Suggestion, register

_FINISHED = object()
LOWER, UPPER = -1.0, 1.0  # mealpy's box: centred on the origin, so no rule is drawn to a bound


@dataclass(frozen=True)
class FollowUp:
    """A point to evaluate after a move if the move's score calls for it (a rapid dive's Z when its Y fails).

    The point is fixed when the batch is made, so the runner may plan with it before any score.
    """

    point: np.ndarray
    wanted: Callable[[float], bool]


@dataclass
class _Batch:
    """Points mealpy waits for; follow-ups may add points while the batch is out."""

    points: list[np.ndarray]
    follow_ups: dict[int, FollowUp] = field(default_factory=dict)  # move index -> its follow-up
    scores: list[float] = field(default_factory=list)
    told: set[int] = field(default_factory=set)
    followed_by: dict[int, int] = field(default_factory=dict)  # move index -> index of its follow-up point

    def __post_init__(self) -> None:
        self.moves = len(self.points)  # the points mealpy made; follow-ups come after them
        self.scores = [math.nan] * self.moves

    def add(self, point: np.ndarray) -> int:
        self.points.append(point)
        self.scores.append(math.nan)
        return len(self.points) - 1

    def result(self) -> tuple[list[float], dict[int, tuple[np.ndarray, float]]]:
        follow_up_results = {move: (self.points[index], self.scores[index]) for move, index in self.followed_by.items()}
        return self.scores[:self.moves], follow_up_results


class _Stop(Exception):
    """Raised inside mealpy's thread to unwind it when the run is over."""


class MealpyAskTell(Optimizer):
    """Drives ``model_factory()`` (a fresh mealpy Optimizer per restart) through ask/tell.

    mealpy's thread hands over a batch of points at a time: one point for any mealpy
    optimizer, a whole batch of independent moves for a model that has an
    ``evaluate_batch`` hook (our paper HHO). All points of a batch can be asked before any
    is told (parallel workers); mealpy continues when the last of them, follow-ups included,
    is told.
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
        self._batch: _Batch | None = None
        self._worst_seen: float | None = None
        self._best_seen: float | None = None
        self.restarts = 0
        self.model: Any = None

    # -- ask/tell, on the caller's thread ---------------------------------------------------
    def ready(self) -> bool:
        return bool(self._unasked) or not self._untold

    def settled(self) -> int:
        """The rest of the batch: mealpy made its points before any of them was scored."""
        return len(self._unasked)

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
            self._batch = batch
            self._unasked.extend(enumerate(batch.points))
        index, point = self._unasked.popleft()
        token = next(self._tokens)
        self._untold[token] = index
        follow_up = self._batch.follow_ups.get(index) if index < self._batch.moves else None
        return Suggestion(params=self._decode(point), token=token,
                          follow_up=None if follow_up is None else self._decode(follow_up.point))

    def tell(self, suggestion: Suggestion, score: float | None) -> None:
        self._tell_fitness(suggestion, self._fitness_for(score))

    def _tell_fitness(self, suggestion: Suggestion, fitness: float) -> None:
        if suggestion.token not in self._untold:
            raise RuntimeError("tell() must answer a suggestion of the current batch, once")
        batch = self._batch
        index = self._untold.pop(suggestion.token)
        batch.scores[index] = fitness
        batch.told.add(index)
        self._release_follow_ups(batch)
        if not self._untold and not self._unasked and not batch.follow_ups:
            self._scores.put(batch)

    def tell_pruned(self, suggestion: Suggestion, curve: Sequence[tuple[int, float]]) -> None:
        """A pruned training ranks below every completed one told before it, deeper ones above shallower.

        Why not its last score: it was measured after fewer epochs, and an early score is not
        comparable with a final one (a fast starter is not a good finisher). mealpy compares one
        number per hawk, so the pruned hawk gets a number under the worst completed score seen
        so far: the rabbit (the best score any hawk held) is therefore always a completed
        training once one exists, and HHO never takes a score from fewer epochs for better than
        one from more when it chooses its rabbit. Among pruned trials the one that trained
        further is the less bad (TPE's order: depth first). A simpler reading than DEHB's one
        population per fidelity, and enough for a rabbit rule.
        """
        self._tell_fitness(suggestion, self._pruned_fitness(len(curve)))

    def _release_follow_ups(self, batch: _Batch) -> None:
        """Resolve follow-ups in move order, each once its move and all earlier ones are told.

        In order, so that the points are asked in the same sequence with any number of workers
        (a serial run asks every move, then the follow-ups in move order): a budget that ends in
        the middle of a generation cuts it at the same point.
        """
        while batch.follow_ups:
            move = min(batch.follow_ups)
            if move not in batch.told:
                return
            follow_up = batch.follow_ups.pop(move)
            if follow_up.wanted(batch.scores[move]):
                point = in_box(follow_up.point)
                index = batch.add(point)
                batch.followed_by[move] = index
                self._unasked.append((index, point))

    def _decode(self, point: np.ndarray) -> dict[str, Any]:
        return self._space.from_unit(to_unit_cube(point))

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

        class _CentredCubeProblem(Problem):
            # One objective, declared up front: mealpy would otherwise call obj_func once
            # just to count the objectives, wasting a proposal.
            @property
            def n_objs(self) -> int:
                return 1

        dims = self._space.dims
        problem = _CentredCubeProblem(
            bounds=FloatVar(lb=(LOWER,) * dims, ub=(UPPER,) * dims),
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
        scores, _ = self._evaluate_batch_in_thread([x])
        return scores[0]

    def _evaluate_batch_in_thread(
        self, points: list[np.ndarray], follow_ups: Mapping[int, FollowUp] | None = None,
    ) -> tuple[list[float], dict[int, tuple[np.ndarray, float]]]:
        """Hand a batch of independent points to ask() and wait until every one is told.

        Returns the points' scores and, for each move whose follow-up was wanted, that point
        and its score. ``wanted`` runs on the caller's thread: it must depend only on the score
        it is given and on what was fixed when the batch was made.
        """
        if self._stopping.is_set():
            raise _Stop
        if not points:
            return [], {}
        moves = [in_box(x) for x in points]
        self._batches.put(_Batch(list(moves), dict(follow_ups or {})))
        batch = self._scores.get()
        if self._stopping.is_set() or batch is None:
            raise _Stop
        return batch.result()

    def _fitness_for(self, score: float | None) -> float:
        """A finite number for mealpy: a NaN would beat the incumbent in max mode."""
        if score is not None and math.isfinite(score):
            self._worst_seen = score if self._worst_seen is None else min(self._worst_seen, score)
            self._best_seen = score if self._best_seen is None else max(self._best_seen, score)
            return float(score)
        if self._worst_seen is None:
            return -1e9
        spread = max(1.0, self._best_seen - self._worst_seen)
        return self._worst_seen - spread  # a failure is worse than anything seen, pruned trials included

    def _pruned_fitness(self, steps: int) -> float:
        """Under the worst completed score seen, above a failure; closer to the worst the more steps it trained."""
        if self._worst_seen is None:
            return -1e9 + 1e6 * (1 - 1 / (1 + steps))
        spread = max(1.0, self._best_seen - self._worst_seen)
        return self._worst_seen - spread / (1 + steps)


def in_box(point: Any) -> np.ndarray:
    """mealpy's positions and Zs may step a little outside [-1, 1]^d; the space decodes only inside it."""
    return np.clip(np.asarray(point, dtype=float), LOWER, UPPER)


def to_unit_cube(point: Any) -> np.ndarray:
    """A point of mealpy's [-1, 1]^d as the point of [0, 1]^d that the search space decodes."""
    return (in_box(point) - LOWER) / (UPPER - LOWER)


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
