"""``--pruner``: Optuna's pruners deciding, on the run's study, which trainings stop early.

The runner consults one object, :class:`OptunaPruning`, each time a trial reports a step; the
decision is the pruner's own code (``pruner.prune(study, trial)``) on the run's study, which
holds every trial's intermediate values (:class:`hho_tune.ledger.StudyLedger`), never a copy of
the rule. Any optimizer can be pruned this way, HHO included.

The named pruners and why their settings:

* ``median``: Optuna's ``MedianPruner`` as Optuna sets it (5 trials complete before any is
  pruned; pruned below the median of the earlier trials at the same epoch).
* ``sha``: ``SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)``. Rungs at epochs 1,
  3, 9, ...: with ``--max-epochs 8`` a third of the trials go past epoch 1, a ninth past epoch
  3 to the end. The minimum resource is one epoch, not Optuna's "auto" (1% of the longest
  completed trial, which needs a completed trial first and then means one epoch anyway).
  Factor 3 rather than Optuna's 4, so that a 30-trial search still has a rung of 3 or more
  trials at epoch 3 (30 / 9) to choose its finalists from.
* ``hyperband``: ``HyperbandPruner(min_resource=1, max_resource=--max-epochs,
  reduction_factor=3)``; ``max_resource`` is given rather than "auto", which would wait for a
  completed trial and then guess it.
* ``optuna:ClassName``: any class of ``optuna.pruners`` that can be built without arguments.

The last epoch is never put to the pruner: the training is done by then, and pruning it would
only hide a score at the highest fidelity.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any

from hho_tune.errors import UsageError

PRUNERS = ("none", "median", "sha", "hyperband")
DEFAULT_PRUNER = "none"
DEFAULT_MAX_EPOCHS = 8
SHA_REDUCTION_FACTOR = 3


def check_pruner(name: str) -> None:
    """Refuse an unknown pruner name before anything is written (one line)."""
    make_pruner(name, max_steps=DEFAULT_MAX_EPOCHS)


def make_pruner(name: str, *, max_steps: int | None) -> Any:
    """The Optuna pruner called ``name`` (None for ``none``); an unknown name is a :class:`UsageError`."""
    if not isinstance(name, str) or not name:
        raise UsageError(f"--pruner must be one of {', '.join(PRUNERS)} or optuna:ClassName, got {name!r}")
    if name == "none":
        return None
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner()
    if name == "sha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=SHA_REDUCTION_FACTOR)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_steps or "auto",
                                              reduction_factor=SHA_REDUCTION_FACTOR)
    prefix, _, class_name = name.partition(":")
    if prefix != "optuna" or not class_name:
        raise UsageError(f"unknown pruner {name!r} (available: {', '.join(PRUNERS)}, optuna:ClassName)")
    pruner_class = getattr(optuna.pruners, class_name, None)
    if not (inspect.isclass(pruner_class) and issubclass(pruner_class, optuna.pruners.BasePruner)):
        known = sorted(n for n, obj in vars(optuna.pruners).items()
                       if inspect.isclass(obj) and issubclass(obj, optuna.pruners.BasePruner) and n != "BasePruner")
        raise UsageError(f"unknown Optuna pruner {class_name!r} (available: {', '.join(known)})")
    try:
        with warnings.catch_warnings():  # the user named it; Optuna's "experimental" notice would only add noise
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return pruner_class()
    except TypeError as exc:
        raise UsageError(f"optuna:{class_name} cannot be built without arguments ({exc}); "
                         "hho-tune has no way yet to pass a pruner's arguments") from None


class OptunaPruning:
    """What the runner asks when a trial reports a step: the pruner's answer on the run's study.

    ``ledger`` is the run's :class:`~hho_tune.ledger.StudyLedger`: it has put the step's value
    in the study before the runner asks (listeners hear a report first). ``max_steps`` is the
    last step a trial trains (``--max-epochs``); that one is never put to the pruner.
    """

    def __init__(self, pruner: Any, ledger: Any, *, max_steps: int | None) -> None:
        self.pruner = pruner
        self.max_steps = max_steps
        self._ledger = ledger
        self._study = ledger.study_for_pruner(pruner)
        self.decisions = 0

    def should_prune(self, number: int, step: int) -> bool:
        if self.max_steps is not None and step >= self.max_steps:
            return False
        self.decisions += 1
        return bool(self.pruner.prune(self._study, self._ledger.running_trial(number)))
