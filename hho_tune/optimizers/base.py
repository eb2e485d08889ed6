"""The optimizer contract: ``ask() -> Suggestion``, ``tell(suggestion, score)``.

Several suggestions may be pending at once (parallel workers): ``ready()`` says whether
another ask() may come before the pending ones are told. Scores are always "higher is
better": the runner negates a minimized objective before telling, so no optimizer has a
``direction`` switch. A failed trial is told ``None``; each optimizer decides what that
means for it (Optuna marks the trial failed, HHO treats it as worse than anything seen).
A trial stopped by a pruner is told through :meth:`Optimizer.tell_pruned`, with its curve.

New optimizers register a factory under a name with :func:`register`; :func:`make`
builds one. Names of the form ``mealpy:Module.Class`` and ``optuna:SamplerClass`` are
resolved by the factories registered for those prefixes.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hho_tune.errors import UsageError
from hho_tune.space import Params, SearchSpace


@dataclass(frozen=True)
class Suggestion:
    """A configuration proposed by an optimizer. ``token`` lets it match the later tell.

    ``follow_up`` is a configuration the optimizer may propose as soon as this one is told,
    depending on its score (HHO: a rapid dive's Z, trained when its Y fails). A parallel runner
    starts a training that may lead to another before an equally long one that cannot, so that
    the follow-up is not left to train alone at the end of a batch.
    """

    params: Params
    token: int
    follow_up: Params | None = None


@dataclass(frozen=True)
class OptimizerSettings:
    """Everything an optimizer may size itself by; keyword-only so call sites read well."""

    space: SearchSpace
    seed: int
    budget: int
    pop_size: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


class Optimizer(abc.ABC):
    """Proposes configurations and learns from their scores."""

    name: str = "abstract"

    @abc.abstractmethod
    def ask(self) -> Suggestion | None:
        """The next configuration, or None when the optimizer has nothing more to propose."""

    @abc.abstractmethod
    def tell(self, suggestion: Suggestion, score: float | None) -> None:
        """Report the score (higher is better) of a suggestion; None for a failed trial."""

    def tell_pruned(self, suggestion: Suggestion, curve: Sequence[tuple[int, float]]) -> None:
        """A suggestion whose training the pruner stopped; ``curve`` is its (step, score) reports, higher better.

        Default: told as a failure, the safe reading for an optimizer that knows nothing of
        fidelities (random search ignores it either way). Optuna samplers get the pruned trial
        with its intermediate values; HHO ranks it below every completed trial (see their
        overrides).
        """
        self.tell(suggestion, None)

    def ready(self) -> bool:
        """Can ask() propose another configuration before the pending ones are told?

        Parallel runs ask while this is true. Random search and Optuna always can (TPE fills the
        gaps with its constant liar); HHO can within a generation's batch of independent moves.
        """
        return True

    def settled(self) -> int:
        """How many further asks are settled already: what they propose no longer depends on any score.

        A parallel runner asks those ahead and starts the costliest first, so that a long
        training does not start last and keep the other workers waiting for it at the end of a
        batch. Default 0: TPE's next proposal depends on the scores told in between.
        """
        return 0

    def close(self) -> None:  # noqa: B027 - optional hook, most optimizers hold nothing
        """Release threads or storage; called once when the run ends, however it ends."""

    def describe(self) -> dict[str, Any]:
        """Settings worth writing into run.json."""
        return {"name": self.name}


Factory = Callable[[str, OptimizerSettings], Optimizer]
_REGISTRY: dict[str, Factory] = {}
_PREFIXES: dict[str, Factory] = {}


def register(name: str, factory: Factory, *, prefix: bool = False) -> None:
    """Add a factory; with ``prefix=True`` it serves every name that starts with ``name:``."""
    (_PREFIXES if prefix else _REGISTRY)[name] = factory


def available() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY) + [f"{prefix}:NAME" for prefix in sorted(_PREFIXES)]


def make(name: str, settings: OptimizerSettings) -> Optimizer:
    """Build the optimizer called ``name``; an unknown name is a :class:`UsageError`."""
    _load_builtins()
    if name in _REGISTRY:
        return _REGISTRY[name](name, settings)
    prefix, _, rest = name.partition(":")
    if rest and prefix in _PREFIXES:
        return _PREFIXES[prefix](rest, settings)
    raise UsageError(f"unknown optimizer {name!r} (available: {', '.join(available())})")


def check_name(name: str) -> None:
    """Fail early, before any file is written, for a name no factory serves."""
    _load_builtins()
    prefix, _, rest = name.partition(":")
    if name not in _REGISTRY and not (rest and prefix in _PREFIXES):
        raise UsageError(f"unknown optimizer {name!r} (available: {', '.join(available())})")


def _load_builtins() -> None:
    # Importing the modules runs their register() calls; kept lazy to avoid import cycles.
    from hho_tune.optimizers import hho, mealpy_bridge, random, tpe  # noqa: F401
