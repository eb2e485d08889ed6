"""An Optuna study behind every run, whichever optimizer proposed the trials.

Each training becomes an Optuna trial: RUNNING when it starts (``enqueue_trial`` + ``ask``,
so Optuna stores exactly our parameters), then COMPLETE or FAIL when it ends, with the
fidelity, optimizer, seed and our trial number as user attributes. So optuna-dashboard and
``optuna.visualization`` work on HHO runs too, and a trial left RUNNING by a process that
died is visible as such until a resume marks it failed (what Optuna's own
``fail_stale_trials`` does for heartbeat-less workers).

The study lives in the run directory as an Optuna journal file (``study.journal``: append-only,
so a kill leaves it readable, and ten times faster per trial here than SQLite) unless
``--storage`` names the user's own: a database URL (``sqlite:///...``, ``postgresql://...``)
or a journal file path. The study's name is the run id, so separate runs are separate
studies and one run never warm-starts another's sampler.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hho_tune.errors import UsageError
from hho_tune.optimizers.tpe import optuna_distributions
from hho_tune.runner import TrialListener
from hho_tune.space import Params, SearchSpace
from hho_tune.trial import Trial

STUDY_FILE = "study.journal"
NUMBER_ATTR = "number"
INTERRUPTED_ATTR = "interrupted"


def default_storage_url(run_dir: Path) -> str:
    """The run's own journal file, as an absolute path (run.json keeps it for resume)."""
    return str((run_dir / STUDY_FILE).resolve())


def open_storage(spec: str) -> Any:
    """A database URL (anything with ``://``) through Optuna, else a journal file path."""
    optuna = _quiet_optuna()
    if "://" in spec:
        return optuna.storages.get_storage(spec)
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(spec))


def _quiet_optuna() -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return optuna


class StudyLedger(TrialListener):
    """Mirrors the run's trials into an Optuna study as they start and end."""

    def __init__(
        self,
        storage_url: str,
        study_name: str,
        space: SearchSpace,
        *,
        direction: str,
        attributes: Mapping[str, Any],
        create: bool,
    ) -> None:
        optuna = _quiet_optuna()
        self._optuna = optuna
        self.storage_url = storage_url
        self.study_name = study_name
        try:
            self._storage = open_storage(storage_url)
            if create:
                self.study = optuna.create_study(
                    storage=self._storage, study_name=study_name, direction=direction,
                    sampler=optuna.samplers.RandomSampler(seed=0),  # never samples: every trial is enqueued
                )
            else:
                self.study = optuna.load_study(
                    storage=self._storage, study_name=study_name, sampler=optuna.samplers.RandomSampler(seed=0),
                )
        except optuna.exceptions.DuplicatedStudyError:
            raise UsageError(f"{storage_url}: a study named {study_name!r} already exists") from None
        except KeyError:
            raise UsageError(f"{storage_url}: no study named {study_name!r}") from None
        except Exception as exc:
            raise UsageError(f"--storage {storage_url}: cannot open the Optuna storage ({type(exc).__name__}: {exc})") from None
        if create:
            for key, value in attributes.items():
                self.study.set_user_attr(key, value)
        self._attributes = dict(attributes)
        self._distributions = optuna_distributions(space)
        self._space = space
        self._running: dict[int, Any] = {}  # our trial number -> its RUNNING Optuna trial

    # -- listener hooks -----------------------------------------------------------------------
    def on_evaluation_start(self, number: int, params: Params) -> None:
        self.study.enqueue_trial(dict(params), user_attrs={NUMBER_ATTR: number, **self._attributes})
        self._running[number] = self.study.ask(fixed_distributions=self._distributions)

    def on_trial(self, trial: Trial, best: Trial | None) -> None:
        running = self._running.pop(trial.number, None)
        if running is None:  # a trial recorded without a start (reconciliation): add it whole
            self._add_finished(trial)
            return
        if trial.error:
            running.set_user_attr("error", trial.error)
        if trial.ok:
            self.study.tell(running, trial.value)
        else:
            self.study.tell(running, state=self._optuna.trial.TrialState.FAIL)

    def on_interrupted(self, number: int, params: Params, reason: str) -> None:
        """The trial in flight was stopped (Ctrl-C): FAIL, marked interrupted, trained again on resume."""
        running = self._running.pop(number, None)
        if running is None:
            return
        running.set_user_attr(INTERRUPTED_ATTR, True)
        running.set_user_attr("error", reason)
        self.study.tell(running, state=self._optuna.trial.TrialState.FAIL)

    # -- resume -------------------------------------------------------------------------------
    def fail_stale_trials(self) -> list[dict[str, Any]]:
        """Mark trials left RUNNING by a dead process as failed (interrupted); return their params."""
        stale = []
        for frozen in self.study.get_trials(deepcopy=False, states=(self._optuna.trial.TrialState.RUNNING,)):
            self._storage.set_trial_user_attr(frozen._trial_id, INTERRUPTED_ATTR, True)
            self._storage.set_trial_user_attr(frozen._trial_id, "error", "interrupted: the process running it died")
            self._storage.set_trial_state_values(frozen._trial_id, state=self._optuna.trial.TrialState.FAIL)
            stale.append({"number": frozen.user_attrs.get(NUMBER_ATTR), "params": dict(frozen.params)})
        return stale

    def add_missing(self, trials: list[Trial]) -> int:
        """Add trials that trials.csv has and the study lacks (a kill between the two writes)."""
        recorded = {
            t.user_attrs.get(NUMBER_ATTR)
            for t in self.study.get_trials(deepcopy=False)
            if not t.user_attrs.get(INTERRUPTED_ATTR)
        }
        missing = [t for t in trials if t.number not in recorded]
        for trial in missing:
            self._add_finished(trial)
        return len(missing)

    def _add_finished(self, trial: Trial) -> None:
        optuna = self._optuna
        user_attrs = {NUMBER_ATTR: trial.number, **self._attributes}
        if trial.error:
            user_attrs["error"] = trial.error
        self.study.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState.COMPLETE if trial.ok else optuna.trial.TrialState.FAIL,
            value=trial.value if trial.ok else None,
            params=dict(trial.params),
            distributions=self._distributions,
            user_attrs=user_attrs,
        ))


def recorded_trials(storage_url: str, study_name: str) -> list[Any]:
    """The study's trials that stand for evaluations (interrupted attempts left out), by our number."""
    optuna = _quiet_optuna()
    study = optuna.load_study(study_name=study_name, storage=open_storage(storage_url))
    kept = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get(INTERRUPTED_ATTR)]
    return sorted(kept, key=lambda t: t.user_attrs.get(NUMBER_ATTR, -1))
