"""Harris Hawks (or any optimizer hho-tune builds) as an Optuna sampler, for plain Optuna code::

    import optuna
    from hho_tune.integrations.optuna import HHOSampler

    study = optuna.create_study(sampler=HHOSampler(seed=0), pruner=optuna.pruners.MedianPruner())
    study.optimize(objective, n_trials=30)

How it maps Optuna's define-by-run trials onto an ask/tell optimizer, as ``CmaEsSampler`` does:

* **The relative search space** is the intersection of the distributions of the finished
  trials (``optuna.search_space.IntersectionSearchSpace``), less what the optimizer cannot
  search (categorical parameters, floats with a ``step``, ints with a step other than 1, single
  values). The first trial, with nothing finished yet, and every parameter outside that space
  are sampled by the independent sampler (``RandomSampler`` by default), with Optuna's usual
  warning once the optimizer is running. The optimizer is built on the space the first time it
  is not empty, on hho-tune's own :class:`~hho_tune.space.SearchSpace` (log scales and
  integers as Optuna gives them); a space that changes later builds it anew (a warning).
* **Each relative trial is one ask**; its result is told in ``after_trial``: a completed
  trial its value (negated for a minimized study: hho-tune's optimizers maximize), a failed
  one ``None`` (worse than anything seen), a pruned one its intermediate values
  (:meth:`~hho_tune.optimizers.base.Optimizer.tell_pruned`: HHO ranks it under every
  completed trial). A configuration the optimizer proposes again after it was evaluated is
  answered from the study without a new trial, as ``hho-tune``'s own loop does.
* **Several trials at once** (``n_jobs > 1``): the optimizer is asked while it is ready (HHO: the
  rest of a generation's moves); when it is waiting for results, a trial is sampled
  independently instead of blocking the thread. Calls are serialized by a lock.
* **Storage and reload**: each relative trial records its ask index in the trial's system
  attributes, and the sampler's seed and settings in the study's. A sampler attached to a
  study that has them (``optuna.load_study(..., sampler=HHOSampler())``) rebuilds the optimizer
  with the recorded seed and replays the recorded trials in ask order: the seeded optimizer
  proposes them again, and their recorded results are told, so it continues where the last
  process stopped, as ``hho-tune --resume`` does. A trial left unfinished by a process that
  died is told as failed. One process per study: two processes sharing a study would each
  replay and ask on their own.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution, distribution_to_json
from optuna.samplers import BaseSampler, RandomSampler
from optuna.search_space import IntersectionSearchSpace
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from hho_tune.optimizers.base import Optimizer, OptimizerSettings, Suggestion, check_name, make
from hho_tune.space import Param, SearchSpace

ASK_ATTR = "hho_tune:ask"  # trial system attribute: the index of the ask that proposed the trial
SETTINGS_ATTR = "hho_tune:sampler"  # study system attribute: optimizer, seed, budget, pop_size
DEFAULT_N_TRIALS = 100
MAX_KNOWN_IN_A_ROW = 500  # as the runner: an optimizer that only re-proposes known points has converged
_LOGGER = optuna.logging.get_logger(__name__)


class OptimizerSampler(BaseSampler):
    """An hho-tune optimizer (``"hho"``, ``"hho-mealpy"``, ``"mealpy:GWO.OriginalGWO"``, ...) as an Optuna sampler.

    Args:
        optimizer: a name :func:`hho_tune.optimizers.base.make` knows.
        seed: seeds the optimizer and the independent sampler; None draws one (recorded in the
            study, so a reloaded study continues with it).
        n_trials: how many trials you will run: HHO's escaping energy decays over the
            generations this many trials allow (as ``--budget`` does), so give the real number.
        pop_size: hawks (default: the optimizer's own, 5 for HHO).
        independent_sampler: for the first trial and for parameters outside the relative space.
        warn_independent_sampling: Optuna's warning when a parameter falls back to it.
    """

    def __init__(self, optimizer: str = "hho", *, seed: int | None = None, n_trials: int = DEFAULT_N_TRIALS,
                 pop_size: int | None = None, independent_sampler: BaseSampler | None = None,
                 warn_independent_sampling: bool = True) -> None:
        check_name(optimizer)
        if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
            raise ValueError(f"n_trials must be a positive whole number, got {n_trials!r}")
        self._name = optimizer
        self._seed = seed
        self._n_trials = n_trials
        self._pop_size = pop_size
        self._independent = independent_sampler or RandomSampler(seed=seed)
        self._warn_independent = warn_independent_sampling
        self._intersection = IntersectionSearchSpace(include_pruned=True)
        self._lock = threading.RLock()
        self._optimizer: Optimizer | None = None
        self._distributions: dict[str, BaseDistribution] = {}
        self._space: SearchSpace | None = None
        self._asked: dict[int, Suggestion] = {}  # trial id -> the suggestion it trains
        self._known: dict[tuple, FrozenTrial] = {}  # configuration -> a finished trial that answered it
        self._asks = 0

    def __str__(self) -> str:
        return f"{type(self).__name__}({self._name!r})"

    # -- Optuna's sampler interface -------------------------------------------------------------
    def reseed_rng(self) -> None:
        """Optuna calls this in each thread of ``n_jobs > 1``; the optimizer keeps its seed (as CmaEsSampler's does)."""
        self._independent.reseed_rng()

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {name: distribution for name, distribution in self._intersection.calculate(study).items()
                if _searchable(distribution)}

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        self._raise_error_if_multi_objective(study)
        if not search_space:
            return {}
        with self._lock:
            if search_space != self._distributions:
                self._build(study, search_space)
            suggestion = self._ask_new(study)
            if suggestion is None:
                return {}
            self._asked[trial._trial_id] = suggestion
            study._storage.set_trial_system_attr(trial._trial_id, ASK_ATTR, self._asks)
            self._asks += 1
            return dict(suggestion.params)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        if self._warn_independent and self._optimizer is not None and param_name not in self._distributions:
            _LOGGER.warning(
                f"The parameter `{param_name}` in Trial#{trial.number} is sampled independently using "
                f"`{type(self._independent).__name__}` instead of `{self}`: it is not in the relative search space "
                "(a categorical, a stepped or a dynamic parameter). Set `warn_independent_sampling=False` if "
                "that is intended."
            )
        return self._independent.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._independent.before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._independent.after_trial(study, trial, state, values)
        with self._lock:
            finished = _with_result(trial, state, values)
            if self._space is not None and set(self._space.names) <= set(trial.params):
                self._known.setdefault(self._space.key(trial.params), finished)
            suggestion = self._asked.pop(trial._trial_id, None)
            if suggestion is not None and self._optimizer is not None:
                _tell(self._optimizer, suggestion, finished, study.direction)

    # -- the optimizer behind it ----------------------------------------------------------------
    def _build(self, study: optuna.Study, search_space: dict[str, BaseDistribution]) -> None:
        """A fresh optimizer on ``search_space``; the study's recorded relative trials replayed into it."""
        if self._optimizer is not None:
            warnings.warn(f"{self}: the relative search space changed; the optimizer starts again on "
                          f"{sorted(search_space)}", stacklevel=3)
            self._optimizer.close()
        recorded = study._storage.get_study_system_attrs(study._study_id).get(SETTINGS_ATTR)
        seed = self._seed
        if seed is None:
            seed = recorded["seed"] if isinstance(recorded, Mapping) else int(np.random.SeedSequence().entropy % 2**31)
        self._seed = seed
        self._space = _search_space(search_space)
        self._distributions = dict(search_space)
        self._optimizer = make(self._name, OptimizerSettings(space=self._space, seed=seed, budget=self._n_trials,
                                                               pop_size=self._pop_size))
        settings = {"optimizer": self._name, "seed": seed, "n_trials": self._n_trials, "pop_size": self._pop_size,
                    "space": {name: distribution_to_json(d) for name, d in sorted(search_space.items())}}
        self._asked, self._known, self._asks = {}, {}, 0
        if recorded == settings:
            self._replay(study)
        study._storage.set_study_system_attr(study._study_id, SETTINGS_ATTR, settings)

    def _replay(self, study: optuna.Study) -> None:
        """Ask again what the study records as asked, in ask order, and tell what became of each."""
        assert self._optimizer is not None and self._space is not None
        trials = study.get_trials(deepcopy=False)
        relative = sorted((t for t in trials if ASK_ATTR in t.system_attrs), key=lambda t: t.system_attrs[ASK_ATTR])
        by_number = sorted(trials, key=lambda t: t.number)
        known_up_to = 0
        for frozen in relative:
            while known_up_to < len(by_number) and by_number[known_up_to].number < frozen.number:
                earlier = by_number[known_up_to]
                if earlier.state.is_finished() and set(self._space.names) <= set(earlier.params):
                    self._known.setdefault(self._space.key(earlier.params), earlier)
                known_up_to += 1
            suggestion = self._ask_new(study)
            if suggestion is None or self._space.key(suggestion.params) != self._space.key(frozen.params):
                warnings.warn(f"{self}: the recorded trials are not what this optimizer proposes (another seed or "
                              f"version?); it goes on from trial {frozen.number} without them", stacklevel=4)
                return
            self._asks = frozen.system_attrs[ASK_ATTR] + 1
            if frozen.state.is_finished():
                _tell(self._optimizer, suggestion, frozen, study.direction)
            else:  # asked by a process that is gone: its result will never come
                _tell(self._optimizer, suggestion, _with_result(frozen, TrialState.FAIL, None), study.direction)

    def _ask_new(self, study: optuna.Study) -> Suggestion | None:
        """The next configuration to train: known ones are answered from the study (no trial); None when not ready."""
        assert self._optimizer is not None and self._space is not None
        for _ in range(MAX_KNOWN_IN_A_ROW):
            if not self._optimizer.ready():
                return None  # waiting for results of trials in flight: this trial is sampled independently
            suggestion = self._optimizer.ask()
            if suggestion is None:
                return None
            known = self._known.get(self._space.key(suggestion.params))
            if known is None:
                return suggestion
            _tell(self._optimizer, suggestion, known, study.direction)
        return None


class HHOSampler(OptimizerSampler):
    """Harris Hawks Optimization as its authors coded it (hho-tune's ``hho``), as an Optuna sampler.

    Keyword-only arguments as :class:`OptimizerSampler`'s.
    """

    def __init__(self, *, seed: int | None = None, n_trials: int = DEFAULT_N_TRIALS, pop_size: int | None = None,
                 independent_sampler: BaseSampler | None = None, warn_independent_sampling: bool = True) -> None:
        super().__init__("hho", seed=seed, n_trials=n_trials, pop_size=pop_size,
                         independent_sampler=independent_sampler, warn_independent_sampling=warn_independent_sampling)


def _searchable(distribution: BaseDistribution) -> bool:
    if distribution.single():
        return False
    if isinstance(distribution, FloatDistribution):
        return distribution.step is None
    if isinstance(distribution, IntDistribution):
        return distribution.step == 1
    return False


def _search_space(distributions: Mapping[str, BaseDistribution]) -> SearchSpace:
    params = []
    for name, distribution in sorted(distributions.items()):
        kind = "int" if isinstance(distribution, IntDistribution) else "float"
        params.append(Param(name, kind, distribution.low, distribution.high, log=distribution.log))
    return SearchSpace(params=tuple(params), source="the Optuna study's relative search space")


def _with_result(trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> FrozenTrial:
    """``after_trial`` gets the trial before its state and values are stored: a copy with them."""
    if state is TrialState.COMPLETE and not values:
        state = TrialState.FAIL
    return optuna.trial.create_trial(
        state=state, values=list(values) if state is TrialState.COMPLETE else None, params=dict(trial.params),
        distributions=dict(trial.distributions), intermediate_values=dict(trial.intermediate_values),
    )


def _tell(optimizer: Optimizer, suggestion: Suggestion, trial: FrozenTrial, direction: StudyDirection) -> None:
    """A finished trial as the optimizer hears it: its score (higher is better), its pruned curve, or a failure."""
    sign = 1.0 if direction == StudyDirection.MAXIMIZE else -1.0
    if trial.state is TrialState.COMPLETE and trial.value is not None and math.isfinite(trial.value):
        optimizer.tell(suggestion, sign * trial.value)
    elif trial.state is TrialState.PRUNED and trial.intermediate_values:
        curve = [(step, sign * value) for step, value in sorted(trial.intermediate_values.items()) if math.isfinite(value)]
        optimizer.tell_pruned(suggestion, curve) if curve else optimizer.tell(suggestion, None)
    else:
        optimizer.tell(suggestion, None)
