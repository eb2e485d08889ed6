"""``hho_tune.tune`` and ``hho_tune.resume``: the Python entry points; the CLI is a thin layer over them.

Any callable from a params dict to a float can be tuned, so the optimizers serve other
models too::

    from hho_tune import SearchSpace, tune
    space = SearchSpace.load("search_spaces/lstm_mnist.yaml")
    result = tune(my_objective, space, optimizer="hho", budget=30, seed=0)
    print(result.best.params, result.best.value)
"""

from __future__ import annotations

import json
import math
import platform
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from hho_tune.curves import CurveFile, epochs_trained, load_trials_with_curves, rung_correlations
from hho_tune.errors import UsageError
from hho_tune.executors import make_executor
from hho_tune.ledger import StudyLedger, default_storage_url
from hho_tune.optimizers.base import Optimizer, OptimizerSettings, check_name, make
from hho_tune.pruning import DEFAULT_PRUNER, OptunaPruning, check_pruner, make_pruner
from hho_tune.recommendation import AUTO, DEFAULT_POLICY, Candidate, recommend, resolve_policy
from hho_tune.reporting import wants_reporter
from hho_tune.results import (
    RUN_FILE,
    RunFiles,
    RunLock,
    make_named_run_dir,
    new_run_dir,
    params_json,
    record_in_global_leaderboard,
    utc_now,
    write_json,
)
from hho_tune.runner import DEFAULT_MAX_FAILURES, EPOCH_BUDGET_SPENT, RunOutcome, TrialListener, run_loop
from hho_tune.space import SearchSpace, check_space
from hho_tune.trial import Trial, TrialState

Objective = Callable[[Mapping[str, Any]], float]
DIRECTIONS = ("maximize", "minimize")
RESUMABLE = ("running", "interrupted", "stopped")
_VERSIONED_PACKAGES = ("hho-tune", "numpy", "mealpy", "optuna", "pandas", "tensorflow", "keras")


@dataclass(frozen=True)
class RunSettings:
    """What defines a run; stored in run.json so a resume continues with exactly these."""

    optimizer: str
    budget: int
    seed: int
    direction: str
    pop_size: int | None = None
    optimizer_options: Mapping[str, Any] = field(default_factory=dict)
    max_failures: int = DEFAULT_MAX_FAILURES
    pruner: str = DEFAULT_PRUNER
    max_steps: int | None = None  # the last step (epoch) a trial trains when a pruner is on
    epoch_budget: int | None = None  # stop asking once the trials have trained this many steps in all

    def validate(self) -> None:
        if isinstance(self.budget, bool) or not isinstance(self.budget, int) or self.budget < 1:
            raise UsageError(f"--budget must be a positive whole number, got {self.budget}")
        if self.direction not in DIRECTIONS:
            raise UsageError(f"direction must be one of {', '.join(DIRECTIONS)}, got {self.direction!r}")
        if self.pop_size is not None and self.pop_size < 5:
            raise UsageError(f"--pop-size must be at least 5 (mealpy's minimum), got {self.pop_size}")
        if self.max_failures < 1:
            raise UsageError(f"--max-failures must be at least 1, got {self.max_failures}")
        if self.max_steps is not None and (isinstance(self.max_steps, bool) or not isinstance(self.max_steps, int)
                                           or self.max_steps < 1):
            raise UsageError(f"--max-epochs must be a positive whole number, got {self.max_steps}")
        if self.epoch_budget is not None and (isinstance(self.epoch_budget, bool)
                                              or not isinstance(self.epoch_budget, int) or self.epoch_budget < 1):
            raise UsageError(f"--epoch-budget must be a positive whole number, got {self.epoch_budget}")
        check_pruner(self.pruner)
        check_name(self.optimizer)


@dataclass(frozen=True)
class TuneResult:
    run_dir: Path
    outcome: RunOutcome

    @property
    def best(self) -> Trial | None:
        return self.outcome.best

    @property
    def trials(self) -> tuple[Trial, ...]:
        return self.outcome.trials


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) during a run: everything finished is on disk; ``run_dir`` can be resumed."""

    def __init__(self, run_dir: Path, finished: int) -> None:
        super().__init__(f"{run_dir}: interrupted after {finished} finished trials")
        self.run_dir = run_dir
        self.finished = finished


def tune(
    objective: Objective,
    space: SearchSpace,
    *,
    optimizer: str = "hho",
    budget: int = 30,
    seed: int = 0,
    direction: str | None = None,
    out: str | Path = "results",
    pop_size: int | None = None,
    optimizer_options: Mapping[str, Any] | None = None,
    max_failures: int = DEFAULT_MAX_FAILURES,
    listeners: Iterable[TrialListener] = (),
    arguments: Mapping[str, Any] | None = None,
    run_dir: str | Path | None = None,
    storage: str | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    threads_per_worker: int | None = None,
    pruner: str = DEFAULT_PRUNER,
    max_steps: int | None = None,
    epoch_budget: int | None = None,
) -> TuneResult:
    """Search ``space`` with ``optimizer`` for exactly ``budget`` evaluations of ``objective``.

    ``direction`` defaults to the objective's own ``direction`` attribute, else "maximize".
    Results go to a new directory under ``out`` (or exactly ``run_dir``, which must not exist
    yet: comparisons name their runs); the best joins ``out/leaderboard.csv``. Every trial is
    also recorded in an Optuna study: ``study.journal`` in the run directory, or ``storage``.
    ``workers`` > 1 trains that many configurations at once on a Dask LocalCluster;
    ``scheduler`` uses an existing Dask cluster instead.

    ``pruner`` (:mod:`hho_tune.pruning`: ``median``, ``sha``, ``hyperband``, ``optuna:ClassName``)
    stops unpromising trainings early; the objective reports its steps through a ``reporter``
    argument (:mod:`hho_tune.reporting`). ``max_steps`` is the last step a trial trains (default:
    the objective's ``epochs``); the pruner is not asked there.

    ``epoch_budget`` ends the run once its trials have trained that many steps in all (the
    trainings in flight finish; ``budget`` is still the most configurations): equal cost in
    epochs for a pruned search and a fixed-length one, whose configurations cost differently.
    """
    if max_steps is None and pruner != DEFAULT_PRUNER:
        epochs = getattr(objective, "epochs", None)
        max_steps = epochs if isinstance(epochs, int) and not isinstance(epochs, bool) else None
    settings = RunSettings(
        optimizer=optimizer, budget=budget, seed=seed,
        direction=direction or getattr(objective, "direction", "maximize"),
        pop_size=pop_size, optimizer_options=dict(optimizer_options or {}), max_failures=max_failures,
        pruner=pruner, max_steps=max_steps, epoch_budget=epoch_budget,
    )
    settings.validate()
    if epoch_budget is not None and not wants_reporter(objective):
        raise UsageError("--epoch-budget needs an objective that reports its epochs (a `reporter` argument): "
                         "this one reports none, so its epochs cannot be counted")
    _check_parallel(workers, scheduler)
    check_space(objective, space)  # the objective's own check of the space (names, domains), if it has one
    search = _make_optimizer(settings, space)  # a bad mealpy:/optuna: name fails before any file
    root = Path(out)
    with _executor(objective, space, workers, scheduler, threads_per_worker) as executor:  # fails before any file
        run_dir = new_run_dir(root, f"{optimizer}-s{seed}") if run_dir is None else make_named_run_dir(Path(run_dir))
        return _start(objective, space, settings, search, run_dir, root, executor, listeners=listeners,
                      arguments=arguments, storage=storage, parallel={"workers": workers, "scheduler": scheduler},
                      machine=_machine(objective, workers, scheduler, threads_per_worker))


def _start(objective: Objective, space: SearchSpace, settings: RunSettings, search: Optimizer, run_dir: Path, root: Path,
           executor: Any, *,
           listeners: Iterable[TrialListener], arguments: Mapping[str, Any] | None, storage: str | None,
           parallel: Mapping[str, Any], machine: Mapping[str, Any]) -> TuneResult:
    document: dict[str, Any] = {
        "run_id": run_dir.name,
        "status": "running",
        "objective": objective_name(objective),
        **asdict(settings),
        "fidelity": _fidelity(objective),
        "space": space.to_dict(),
        "recommendation_policy": resolve_policy(AUTO, objective),  # what export picks by (hho_tune.recommendation)
        "storage": storage or default_storage_url(run_dir),
        "results_root": str(root),
        "arguments": dict(arguments or {}),
        "versions": package_versions(),
        "machine": dict(machine),
        "timings": {"started": utc_now()},
        "resumes": [],
    }
    write_json(run_dir / RUN_FILE, document)
    return _execute(objective, space, settings, search, run_dir, document, listeners=listeners, history=(),
                    parallel=parallel, executor=executor)


def read_run(run_dir: str | Path) -> dict[str, Any]:
    """run.json of a run directory, or a one-line :class:`UsageError` saying why it is not a run."""
    run_dir = Path(run_dir)
    path = run_dir / RUN_FILE
    if not run_dir.is_dir():
        raise UsageError(f"{run_dir}: no such run directory")
    if not path.is_file():
        raise UsageError(f"{run_dir}: not a hho-tune run directory (no {RUN_FILE})")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: unreadable run file ({exc})") from None
    required = ("run_id", "status", "optimizer", "budget", "seed", "direction", "space", "storage")
    if not isinstance(document, dict) or any(key not in document for key in required):
        raise UsageError(f"{path}: not a hho-tune run file (missing {', '.join(required)})")
    return document


def run_settings(document: Mapping[str, Any]) -> RunSettings:
    return RunSettings(
        optimizer=document["optimizer"], budget=document["budget"], seed=document["seed"],
        direction=document["direction"], pop_size=document.get("pop_size"),
        optimizer_options=document.get("optimizer_options") or {},
        max_failures=document.get("max_failures", DEFAULT_MAX_FAILURES),
        pruner=document.get("pruner", DEFAULT_PRUNER), max_steps=document.get("max_steps"),
        epoch_budget=document.get("epoch_budget"),
    )


def resume(
    run_dir: str | Path,
    objective: Objective,
    *,
    listeners: Iterable[TrialListener] = (),
    on_stale: Callable[[Sequence[dict[str, Any]]], None] | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    threads_per_worker: int | None = None,
) -> TuneResult:
    """Continue an interrupted or killed run to its original budget with its original settings.

    Recorded trials are not trained again: when the (seeded) optimizer proposes them, their
    results are replayed. A trial left running by a dead process is marked failed in the study
    and trained again. ``on_stale`` hears about such trials (the CLI prints them). The number
    of workers may differ from the first attempt's.
    """
    _check_parallel(workers, scheduler)
    run_dir = Path(run_dir)
    document = read_run(run_dir)
    if document["status"] not in RESUMABLE:
        raise UsageError(f"{run_dir}: the run is {document['status']}; only an unfinished run can be resumed")
    settings = run_settings(document)
    settings.validate()
    space = SearchSpace.from_dict(document["space"], source=document["space"].get("source", str(run_dir)))
    history = load_trials_with_curves(run_dir, space)
    document["resumes"] = [*document.get("resumes", []), {
        "at": utc_now(), "finished_trials": len(history),
        "machine": _machine(objective, workers, scheduler, threads_per_worker),  # may not be the first one's
    }]
    search = _make_optimizer(settings, space)
    with _executor(objective, space, workers, scheduler, threads_per_worker) as executor:
        return _execute(objective, space, settings, search, run_dir, document, listeners=listeners, history=history,
                        on_stale=on_stale, parallel={"workers": workers, "scheduler": scheduler}, executor=executor)


def _execute(
    objective: Objective,
    space: SearchSpace,
    settings: RunSettings,
    search: Optimizer,
    run_dir: Path,
    document: dict[str, Any],
    *,
    listeners: Iterable[TrialListener],
    history: Sequence[Trial],
    on_stale: Callable[[Sequence[dict[str, Any]]], None] | None = None,
    parallel: Mapping[str, Any],
    executor: Any,
) -> TuneResult:
    with RunLock(run_dir):
        fidelity = document.get("fidelity") or {}
        files = RunFiles(run_dir, space, direction=settings.direction,
                         context={"optimizer": settings.optimizer, "seed": settings.seed, **fidelity}, history=history)
        ledger = StudyLedger(
            document["storage"], document["run_id"], space, direction=settings.direction,
            attributes={"optimizer": settings.optimizer, "seed": settings.seed, **fidelity},
            create=not history and not document.get("resumes"),
            sole_writer=document["storage"] == default_storage_url(run_dir),  # the run's own journal: batched writes
        )
        stale = ledger.fail_stale_trials()
        ledger.add_missing(list(history))
        if stale and on_stale is not None:
            on_stale(stale)
        document["status"] = "running"
        document["parallel"] = dict(parallel)
        write_json(run_dir / RUN_FILE, document)

        curves = CurveFile(run_dir, history)

        class _Record(TrialListener):
            def on_trial(self, trial: Trial, best: Trial | None) -> None:
                files.append(trial)

        pruner = make_pruner(settings.pruner, max_steps=settings.max_steps)
        pruning = None if pruner is None else OptunaPruning(pruner, ledger, max_steps=settings.max_steps)
        interrupted = False
        try:
            outcome = run_loop(
                objective, space, search, budget=settings.budget, direction=settings.direction,
                listeners=[_Record(), curves, ledger, *listeners], max_failures=settings.max_failures, history=history,
                executor=executor, cost=getattr(objective, "relative_cost", None), pruning=pruning,
                epoch_budget=settings.epoch_budget,
            )
        except KeyboardInterrupt:
            interrupted = True
        finally:  # what waits to be written (rate-limited) goes now, before run.json says how the run ended
            files.close()
            curves.close()
            ledger.close()
        if interrupted:
            document["status"] = "interrupted"
            document["evaluations"] = len(files.trials)
            document["timings"]["interrupted"] = utc_now()
            write_json(run_dir / RUN_FILE, document)
            raise RunInterrupted(run_dir, len(files.trials)) from None
        _finish(document, outcome, run_dir, space)
    if outcome.best is not None:
        _record_best(document, outcome, run_dir, space)
    return TuneResult(run_dir=run_dir, outcome=outcome)


def _finish(document: dict[str, Any], outcome: RunOutcome, run_dir: Path, space: SearchSpace) -> None:
    complete = outcome.evaluations >= document["budget"] or outcome.stop_reason.startswith(EPOCH_BUDGET_SPENT)
    best = outcome.best
    document.update({
        "status": "finished" if complete or "known configurations" in outcome.stop_reason else "stopped",
        "stop_reason": outcome.stop_reason,
        "evaluations": outcome.evaluations,
        "cached": outcome.cached,
        "replayed": outcome.replayed,
        "failed": sum(1 for t in outcome.trials if t.failed),
        "pruned": sum(1 for t in outcome.trials if t.pruned),
        "epochs_trained": epochs_trained(outcome.trials),
        "rung_correlations": rung_correlations(outcome.trials),
        "optimizer_details": outcome.optimizer,
        "best": None if best is None else {"number": best.number, "value": best.value, "params": best.params,
                                           "epochs": best.steps},
        "recommendation": _recommendation(outcome, space, document["direction"],
                                          document.get("recommendation_policy", DEFAULT_POLICY)),
    })
    _add_tensorflow_report(document)
    document["timings"].update(
        finished=utc_now(),
        seconds=round(outcome.seconds, 3),
        mean_trial_seconds=round(sum(t.duration for t in outcome.trials) / max(len(outcome.trials), 1), 3),
    )
    write_json(run_dir / RUN_FILE, document)


def _recommendation(outcome: RunOutcome, space: SearchSpace, direction: str, policy: str) -> dict[str, Any] | None:
    """What ``hho-tune export`` writes by default, and by which policy: the run names its own recommendation."""
    candidates = [Candidate(t.number, t.params, t.value) for t in outcome.trials
                  if t.state is TrialState.COMPLETE and t.value is not None and math.isfinite(t.value)]
    chosen = recommend(candidates, space, direction, policy)
    return None if chosen is None else chosen.to_dict()


def _record_best(document: Mapping[str, Any], outcome: RunOutcome, run_dir: Path, space: SearchSpace) -> None:
    fidelity = document.get("fidelity") or {}
    root = Path(document.get("results_root") or run_dir.parent)
    record_in_global_leaderboard(root, {
        "run_id": run_dir.name, "value": repr(outcome.best.value), "direction": document["direction"],
        "objective": document["objective"], "optimizer": document["optimizer"], "seed": document["seed"],
        "budget": document["budget"], "evaluations": outcome.evaluations, "epochs": fidelity.get("epochs", ""),
        "train_size": fidelity.get("train_size", ""), "space": space.source,
        "params": params_json(outcome.best.params), "finished": document["timings"]["finished"],
        "run_dir": str(run_dir),
    })


def _make_optimizer(settings: RunSettings, space: SearchSpace) -> Optimizer:
    return make(settings.optimizer, OptimizerSettings(
        space=space, seed=settings.seed, budget=settings.budget, pop_size=settings.pop_size,
        options=dict(settings.optimizer_options),
    ))


@contextmanager
def _executor(objective: Objective, space: SearchSpace, workers: int | None, scheduler: str | None,
              threads_per_worker: int | None) -> Iterator[Any]:
    executor = make_executor(objective, space, workers=workers, scheduler=scheduler,
                             threads_per_worker=threads_per_worker)
    try:
        yield executor
    finally:
        executor.close()


def _check_parallel(workers: int | None, scheduler: str | None) -> None:
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise UsageError(f"--workers must be a positive whole number, got {workers}")
    if workers is not None and workers > 1 and scheduler is not None:
        raise UsageError("--workers starts a local cluster and --scheduler uses an existing one: give one of them")
    if workers is not None and workers > 1:
        from hho_tune.coordinator_slot import workers_pay_off_seconds

        workers_pay_off_seconds()  # a malformed bar stops the run before anything is written


def validate_run_settings(*, optimizer: str, budget: int, direction: str, pop_size: int | None) -> None:
    """The checks that must pass before a run directory is made (for the CLI's early exit)."""
    RunSettings(optimizer=optimizer, budget=budget, seed=0, direction=direction, pop_size=pop_size).validate()


def objective_name(objective: Any) -> str:
    name = getattr(objective, "name", None)
    if isinstance(name, str):
        return name
    module = getattr(objective, "__module__", "")
    qualname = getattr(objective, "__qualname__", type(objective).__qualname__)
    return f"{module}:{qualname}" if module else qualname


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in _VERSIONED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _machine(objective: Any, workers: int | None, scheduler: str | None,
             threads_per_worker: int | None) -> dict[str, Any]:
    """run.json's "machine": what must match for another machine to reproduce the scores (hho_tune.machine)."""
    from hho_tune.machine import machine_description

    on_workers = scheduler is not None or (workers is not None and workers > 1)
    threads = threads_per_worker if on_workers else getattr(objective, "threads", None)
    return machine_description(threads=threads if isinstance(threads, int) else None, workers=workers,
                               scheduler=scheduler)


def _add_tensorflow_report(document: dict[str, Any]) -> None:
    """Once TensorFlow has trained in this process, its threads and devices join this attempt's "machine"."""
    from hho_tune.machine import runtime_report

    resumes = document.get("resumes") or []
    machine = resumes[-1].get("machine") if resumes and isinstance(resumes[-1], dict) else document.get("machine")
    if isinstance(machine, dict):
        machine.update(runtime_report())  # TensorFlow's threads and devices, or JAX's devices


def _fidelity(objective: Any) -> dict[str, Any]:
    fidelity = getattr(objective, "fidelity", None)
    return dict(fidelity()) if callable(fidelity) else {}
