"""An Optuna study behind every run, whichever optimizer proposed the trials.

Each training becomes an Optuna trial with our parameters, value and state, and the
fidelity, optimizer, seed and our trial number as user attributes. So optuna-dashboard and
``optuna.visualization`` work on HHO runs too.

How a trial reaches the study depends on how long trials take, so that the study costs
nothing on cheap objectives (each Optuna write is a locked, fsynced append to the journal):

* Trials of :data:`PROMPT_SECONDS` or more (the LSTM's take seconds; the first trial of a
  run counts as one): the trial is created RUNNING when it starts and finished when it ends,
  each written to the storage at once (two or three writes a trial, where ``enqueue_trial`` +
  ``ask`` + ``tell`` made one per parameter). A trial left RUNNING by a process that died is
  visible as such until a resume marks it failed (what Optuna's own ``fail_stale_trials``
  does for heartbeat-less workers).
* Quicker trials are added once, finished, when they end (one ``create_new_trial`` from a
  template, as ``add_trial`` does), and the run's own journal gets them in batches: at the end
  of the first trial that ends :data:`FLUSH_SECONDS` or more after the last write, at the end
  of the run and on interruption (Ctrl-C records the attempt in flight as failed and
  interrupted in both cases). After a ``kill -9`` the study may lack the last half second of
  trials; trials.csv has them, and a resume adds them (:meth:`StudyLedger.add_missing`).

The study lives in the run directory as an Optuna journal file (``study.journal``: append-only,
so a kill leaves it readable, and ten times faster per trial here than SQLite) unless
``--storage`` names the user's own: a database URL (``sqlite:///...``, ``postgresql://...``)
or a journal file path. Only the run's own journal is written in batches
(:class:`hho_tune.journal.BufferedJournal`): only the process holding the run's lock writes it, while a
storage of the user's may be shared with other runs, so each write goes to it at once. The
study's name is the run id, so separate runs are separate studies and one run never
warm-starts another's sampler.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Mapping
from datetime import datetime, timezone
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
PROMPT_SECONDS = 0.1  # a trial after one that took this long is written as it starts and as it ends
FLUSH_SECONDS = 0.5  # quicker trials wait in memory until a trial ends this long after the last write


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
    """Mirrors the run's trials into an Optuna study as they start and end; :meth:`close` at the end."""

    def __init__(
        self,
        storage_url: str,
        study_name: str,
        space: SearchSpace,
        *,
        direction: str,
        attributes: Mapping[str, Any],
        create: bool,
        sole_writer: bool = False,
    ) -> None:
        optuna = _quiet_optuna()
        self._optuna = optuna
        self.storage_url = storage_url
        self.study_name = study_name
        self._journal: Any = None  # the run's own journal, when its writes may wait for flush()
        try:
            if sole_writer and "://" not in storage_url:
                from hho_tune.journal import BufferedJournal

                self._journal = BufferedJournal(storage_url)
                self._storage = optuna.storages.JournalStorage(self._journal)
            else:
                self._storage = open_storage(storage_url)
            if create:
                self.study = optuna.create_study(
                    storage=self._storage, study_name=study_name, direction=direction,
                    sampler=optuna.samplers.RandomSampler(seed=0),  # never samples: trials are added whole
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
        self._study_id = self._storage.get_study_id_from_name(study_name)
        self._attributes = dict(attributes)
        self._distributions = optuna_distributions(space)
        self._space = space
        self._running: dict[int, int] = {}  # our trial number -> the storage id of its RUNNING trial
        self._started: dict[int, tuple[datetime, Params]] = {}  # our trial number -> when it started, what it trains
        self._prompt = True  # nothing is known about the trials' length yet: write as they go
        self._flushed = time.monotonic()
        self.flush()

    # -- listener hooks -----------------------------------------------------------------------
    def on_evaluation_start(self, number: int, params: Params) -> None:
        start = datetime.now(timezone.utc)
        self._started[number] = (start, dict(params))
        if self._prompt:
            self._create_running(number)
            self.flush()

    def on_report(self, number: int, step: int, value: float, seconds: float) -> None:
        """The step's value as the trial's intermediate value (Optuna's ``trial.report``): the pruner reads it here."""
        if number not in self._running:  # a trial reports: it is long enough to be in the study while it runs
            self._create_running(number)
        if math.isfinite(value):  # Optuna refuses a NaN value; the trial fails on it anyway
            self._storage.set_trial_intermediate_value(self._running[number], step, value)
        if time.monotonic() - self._flushed >= FLUSH_SECONDS:
            self.flush()

    def running_trial(self, number: int) -> Any:
        """Trial ``number`` as the study holds it while it trains, numbered as the run numbers it."""
        return _as_numbered_by_the_run(self._storage.get_trial(self._running[number]))

    def study_for_pruner(self, pruner: Any) -> Any:
        """The run's study as a pruner should see it: interrupted attempts left out, the run's trial numbers.

        Why: an attempt cut short by a kill stays in the study, failed, with the intermediate
        values and rung records it had reached, and takes a study trial number. Left in view,
        it would compete at its rungs a second time when the trial is trained again, and shift
        Hyperband's brackets (chosen from the trial number): a resumed run would prune
        differently from an uninterrupted one.

        The pruner also sees the study under a name made from the run's seed, not the run id:
        Hyperband draws a trial's bracket from crc32(study name, trial number), so under the run
        id two runs of the same seed would put their trials in different brackets. Under the
        seed's name the same seed prunes the same way in any run directory, and the optimizers
        of a comparison meet the same brackets at each seed.
        """
        alias = f"hho-tune-seed-{self._attributes.get('seed', 0)}"
        view = _EvaluationsOnly(self._storage, study_id=self._study_id, alias=alias)
        return self._optuna.load_study(study_name=alias, storage=view,
                                       sampler=self._optuna.samplers.RandomSampler(seed=0), pruner=pruner)

    def _create_running(self, number: int) -> None:
        start, params = self._started[number]
        running = self._template(number, params, self._optuna.trial.TrialState.RUNNING, start=start)
        self._running[number] = self._storage.create_new_trial(self._study_id, template_trial=running)

    def on_trial(self, trial: Trial, best: Trial | None) -> None:
        self._started.pop(trial.number, None)
        running = self._running.pop(trial.number, None)
        if running is None:  # a quick trial, or one recorded without a start (reconciliation): add it whole
            self._add_finished(trial)
        else:
            states = self._optuna.trial.TrialState
            if trial.error:
                self._storage.set_trial_user_attr(running, "error", trial.error)
            if trial.ok:
                self._storage.set_trial_state_values(running, states.COMPLETE, [trial.value])
            elif trial.pruned:  # Optuna's own record of a pruned trial: its last intermediate value
                self._storage.set_trial_state_values(running, states.PRUNED, [trial.value])
            else:
                self._storage.set_trial_state_values(running, states.FAIL)
        self._prompt = trial.duration >= PROMPT_SECONDS
        if running is not None or self._prompt or time.monotonic() - self._flushed >= FLUSH_SECONDS:
            self.flush()

    def on_interrupted(self, number: int, params: Params, reason: str) -> None:
        """The trial in flight was stopped (Ctrl-C): FAIL, marked interrupted, trained again on resume."""
        started = self._started.pop(number, None)
        running = self._running.pop(number, None)
        if running is None:
            if started is None:
                return
            start = started[0]
            self._storage.create_new_trial(self._study_id, template_trial=self._template(
                number, params, self._optuna.trial.TrialState.FAIL, start=start, complete=datetime.now(timezone.utc),
                extra={INTERRUPTED_ATTR: True, "error": reason}))
        else:
            self._storage.set_trial_user_attr(running, INTERRUPTED_ATTR, True)
            self._storage.set_trial_user_attr(running, "error", reason)
            self._storage.set_trial_state_values(running, self._optuna.trial.TrialState.FAIL)
        self.flush()

    def flush(self) -> None:
        """Write what the run's own journal holds in memory (other storages were written already)."""
        if self._journal is not None:
            self._journal.flush()
        self._flushed = time.monotonic()

    def close(self) -> None:
        """The end of the run (or its interruption): every trial recorded so far is in the storage."""
        self.flush()

    # -- resume -------------------------------------------------------------------------------
    def fail_stale_trials(self) -> list[dict[str, Any]]:
        """Mark trials left RUNNING by a dead process as failed (interrupted); return their params."""
        stale = []
        for frozen in self.study.get_trials(deepcopy=False, states=(self._optuna.trial.TrialState.RUNNING,)):
            self._storage.set_trial_user_attr(frozen._trial_id, INTERRUPTED_ATTR, True)
            self._storage.set_trial_user_attr(frozen._trial_id, "error", "interrupted: the process running it died")
            self._storage.set_trial_state_values(frozen._trial_id, state=self._optuna.trial.TrialState.FAIL)
            stale.append({"number": frozen.user_attrs.get(NUMBER_ATTR), "params": dict(frozen.params)})
        self.flush()
        return stale

    def add_missing(self, trials: list[Trial]) -> int:
        """Add trials that trials.csv has and the study lacks (a kill before the study got them)."""
        recorded = {
            t.user_attrs.get(NUMBER_ATTR)
            for t in self.study.get_trials(deepcopy=False)
            if not t.user_attrs.get(INTERRUPTED_ATTR)
        }
        missing = [t for t in trials if t.number not in recorded]
        for trial in missing:
            self._add_finished(trial)
        self.flush()
        return len(missing)

    def _add_finished(self, trial: Trial) -> None:
        """One write: the trial as it ended (what ``study.add_trial`` does, without re-validating our own params)."""
        states = self._optuna.trial.TrialState
        state = states.COMPLETE if trial.ok else states.PRUNED if trial.pruned else states.FAIL
        self._storage.create_new_trial(self._study_id, template_trial=self._template(
            trial.number, trial.params, state,
            start=trial.datetime_start, complete=trial.datetime_complete, value=None if trial.failed else trial.value,
            extra={"error": trial.error} if trial.error else None,
            intermediate={step: value for step, value, _ in trial.curve if math.isfinite(value)}))

    def _template(self, number: int, params: Params, state: Any, *, start: datetime, complete: datetime | None = None,
                  value: float | None = None, extra: Mapping[str, Any] | None = None,
                  intermediate: Mapping[int, float] | None = None) -> Any:
        """A FrozenTrial for ``create_new_trial``: our params, Optuna's distributions, our user attributes."""
        return self._optuna.trial.FrozenTrial(
            number=-1, trial_id=-1, state=state, value=value, datetime_start=start, datetime_complete=complete,
            params=dict(params), distributions=self._distributions,
            user_attrs={NUMBER_ATTR: number, **self._attributes, **(extra or {})}, system_attrs={},
            intermediate_values=dict(intermediate or {}),
        )


class _EvaluationsOnly:
    """An Optuna storage seen without interrupted attempts, its trials numbered by the run, the study by its alias.

    See :meth:`StudyLedger.study_for_pruner`.

    Everything but the two reads is the storage itself, so a pruner's own writes (the
    successive-halving rung records) land in the run's study.
    """

    def __init__(self, storage: Any, *, study_id: int, alias: str) -> None:
        self._storage, self._study_id, self._alias = storage, study_id, alias

    def __getattr__(self, name: str) -> Any:
        return getattr(self._storage, name)

    def get_study_id_from_name(self, study_name: str) -> int:
        return self._study_id if study_name == self._alias else self._storage.get_study_id_from_name(study_name)

    def get_study_name_from_id(self, study_id: int) -> str:
        return self._alias if study_id == self._study_id else self._storage.get_study_name_from_id(study_id)

    def get_all_trials(self, study_id: int, deepcopy: bool = True, states: Any = None) -> list[Any]:
        trials = self._storage.get_all_trials(study_id, deepcopy=deepcopy, states=states)
        return [_as_numbered_by_the_run(t) for t in trials if not t.user_attrs.get(INTERRUPTED_ATTR)]

    def get_trial(self, trial_id: int) -> Any:
        return _as_numbered_by_the_run(self._storage.get_trial(trial_id))


def _as_numbered_by_the_run(frozen: Any) -> Any:
    """A shallow copy of an Optuna trial carrying our trial number as its ``number``."""
    twin = copy.copy(frozen)
    twin.number = frozen.user_attrs.get(NUMBER_ATTR, frozen.number)
    return twin


def recorded_trials(storage_url: str, study_name: str) -> list[Any]:
    """The study's trials that stand for evaluations (interrupted attempts left out), by our number."""
    optuna = _quiet_optuna()
    study = optuna.load_study(study_name=study_name, storage=open_storage(storage_url))
    kept = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get(INTERRUPTED_ATTR)]
    return sorted(kept, key=lambda t: t.user_attrs.get(NUMBER_ATTR, -1))
