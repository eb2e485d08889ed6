"""Optuna samplers (TPE by default) through Optuna's own ask/tell interface.

The space's log scales and integers are passed to Optuna natively as distributions, so
TPE models ``learning_rate`` on its log scale without knowing about our unit cube.
"""

from __future__ import annotations

import importlib.util
import inspect
import math
import warnings
from collections.abc import Sequence
from typing import Any

from hho_tune.errors import UsageError
from hho_tune.optimizers.base import Optimizer, OptimizerSettings, Suggestion, register
from hho_tune.space import Param, SearchSpace


def default_startup_trials(budget: int) -> int:
    """Random trials before TPE models: a fifth of the budget, between 5 and 10.

    Optuna's 10 is a third of a 30-trial budget; 5 points are enough for TPE's two
    densities on a 3-parameter space, and the rest of the budget is then model-guided.
    """
    return max(5, min(10, budget // 5))


def optuna_distributions(space: SearchSpace) -> dict[str, Any]:
    import optuna

    def convert(param: Param) -> Any:
        if param.kind == "int":
            return optuna.distributions.IntDistribution(int(param.low), int(param.high), log=param.log)
        return optuna.distributions.FloatDistribution(float(param.low), float(param.high), log=param.log)

    return {param.name: convert(param) for param in space.params}


class OptunaSamplerOptimizer(Optimizer):
    """Any Optuna sampler driven by ``study.ask`` / ``study.tell`` on an in-memory study."""

    def __init__(self, name: str, sampler: Any, settings: OptimizerSettings) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.name = name
        self._sampler = sampler
        self._study = optuna.create_study(direction="maximize", sampler=sampler)
        self._distributions = optuna_distributions(settings.space)
        self._pending: dict[int, Any] = {}

    def ask(self) -> Suggestion:
        trial = self._study.ask(fixed_distributions=self._distributions)
        self._pending[trial.number] = trial
        return Suggestion(params=dict(trial.params), token=trial.number)

    def tell(self, suggestion: Suggestion, score: float | None) -> None:
        import optuna

        trial = self._pending.pop(suggestion.token)
        if score is None:
            self._study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            self._study.tell(trial, score)

    def tell_pruned(self, suggestion: Suggestion, curve: Sequence[tuple[int, float]]) -> None:
        """As Optuna gives a pruned trial to its sampler: the intermediate values, then state PRUNED.

        Optuna then takes the last intermediate value as the trial's value; TPE ranks pruned
        trials below completed ones, the deeper first, then by that value.
        """
        import optuna

        trial = self._pending.pop(suggestion.token)
        for step, score in curve:
            if math.isfinite(score):
                trial.report(score, step)
        self._study.tell(trial, state=optuna.trial.TrialState.PRUNED)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "sampler": type(self._sampler).__name__}


def _make_tpe(name: str, settings: OptimizerSettings) -> Optimizer:
    import optuna

    startup = settings.options.get("tpe_startup") or default_startup_trials(settings.budget)
    sampler = optuna.samplers.TPESampler(seed=settings.seed, n_startup_trials=int(startup))
    optimizer = OptunaSamplerOptimizer(name, sampler, settings)
    optimizer.startup_trials = int(startup)
    return optimizer


# Packages some samplers import only when they first build a model (GPSampler after its
# startup trials), so a missing one would end a run halfway: checked when the sampler is made.
_SAMPLER_PACKAGES = {"CmaEsSampler": ("cmaes",), "GPSampler": ("torch", "scipy")}


def _make_named_sampler(class_name: str, settings: OptimizerSettings) -> Optimizer:
    import optuna

    sampler_class = getattr(optuna.samplers, class_name, None)
    if not (inspect.isclass(sampler_class) and issubclass(sampler_class, optuna.samplers.BaseSampler)):
        known = sorted(
            n for n, obj in vars(optuna.samplers).items()
            if inspect.isclass(obj) and issubclass(obj, optuna.samplers.BaseSampler) and not n.startswith("Base")
        )
        raise UsageError(f"unknown Optuna sampler {class_name!r} (available: {', '.join(known)})")
    missing = [name for name in _SAMPLER_PACKAGES.get(class_name, ()) if importlib.util.find_spec(name) is None]
    if missing:
        raise UsageError(f"optuna:{class_name} needs the package {missing[0]!r}: pip install {missing[0]}")

    def build() -> Any:
        accepts_seed = "seed" in inspect.signature(sampler_class).parameters
        try:
            with warnings.catch_warnings():
                # The user named the sampler; Optuna's "experimental" notice would only add noise.
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return sampler_class(seed=settings.seed) if accepts_seed else sampler_class()
        except (ImportError, ModuleNotFoundError) as exc:
            raise UsageError(f"optuna:{class_name} needs a package that is not installed ({exc})") from None
        except TypeError as exc:
            raise UsageError(f"optuna:{class_name} cannot be built without arguments ({exc})") from None

    _check_first_proposal(class_name, build(), settings.space)
    return OptunaSamplerOptimizer(f"optuna:{class_name}", build(), settings)


def _check_first_proposal(class_name: str, sampler: Any, space: SearchSpace) -> None:
    """Ask a throwaway sampler once, so that one which cannot search this space says so now.

    BruteForceSampler, for one, refuses continuous parameters, but only when first asked.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    try:
        study.ask(fixed_distributions=optuna_distributions(space))
    except (ValueError, NotImplementedError) as exc:
        raise UsageError(f"optuna:{class_name} cannot search this space ({type(exc).__name__}: {exc})") from None


register("tpe", _make_tpe)
register("optuna", _make_named_sampler, prefix=True)
