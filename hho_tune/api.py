"""``hho_tune.tune``: the Python entry point; the CLI is a thin layer over it.

Any callable from a params dict to a float can be tuned, so the optimizers serve other
models too::

    from hho_tune import SearchSpace, tune
    space = SearchSpace.load("search_spaces/lstm_mnist.yaml")
    result = tune(my_objective, space, optimizer="hho", budget=30, seed=0)
    print(result.best.params, result.best.value)
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from hho_tune.errors import UsageError
from hho_tune.optimizers.base import OptimizerSettings, check_name, make
from hho_tune.results import (
    RUN_FILE,
    RunFiles,
    new_run_dir,
    params_json,
    record_in_global_leaderboard,
    utc_now,
    write_json,
)
from hho_tune.runner import DEFAULT_MAX_FAILURES, RunOutcome, TrialListener, run_loop
from hho_tune.space import SearchSpace
from hho_tune.trial import Trial

DIRECTIONS = ("maximize", "minimize")
_VERSIONED_PACKAGES = ("hho-tune", "numpy", "mealpy", "optuna", "pandas", "tensorflow", "keras")


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


def tune(
    objective: Callable[[Mapping[str, Any]], float],
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
) -> TuneResult:
    """Search ``space`` with ``optimizer`` for exactly ``budget`` evaluations of ``objective``.

    ``direction`` defaults to the objective's own ``direction`` attribute, else "maximize".
    Results go to a new directory under ``out``; its best joins ``out/leaderboard.csv``.
    """
    direction = direction or getattr(objective, "direction", "maximize")
    validate_run_settings(optimizer=optimizer, budget=budget, direction=direction, pop_size=pop_size)
    settings = OptimizerSettings(
        space=space, seed=seed, budget=budget, pop_size=pop_size, options=dict(optimizer_options or {})
    )
    search = make(optimizer, settings)
    root = Path(out)
    run_dir = new_run_dir(root, f"{optimizer}-s{seed}")
    fidelity = _fidelity(objective)
    context = {"optimizer": optimizer, "seed": seed, **fidelity}
    files = RunFiles(run_dir, space, direction=direction, context=context)
    document: dict[str, Any] = {
        "run_id": run_dir.name,
        "status": "running",
        "objective": objective_name(objective),
        "direction": direction,
        "optimizer": optimizer,
        "seed": seed,
        "budget": budget,
        "pop_size": pop_size,
        "fidelity": fidelity,
        "space": space.to_dict(),
        "arguments": dict(arguments or {}),
        "versions": package_versions(),
        "timings": {"started": utc_now()},
    }
    write_json(run_dir / RUN_FILE, document)

    class _Record(TrialListener):
        def on_trial(self, trial: Trial, best: Trial | None) -> None:
            files.append(trial)

    started = time.perf_counter()
    try:
        outcome = run_loop(
            objective, space, search, budget=budget, direction=direction,
            listeners=[_Record(), *listeners], max_failures=max_failures,
        )
    except KeyboardInterrupt:
        document["status"] = "interrupted"
        document["timings"].update(finished=utc_now(), seconds=round(time.perf_counter() - started, 3))
        document["evaluations"] = len(files.trials)
        write_json(run_dir / RUN_FILE, document)
        raise
    document.update(_summary(outcome))
    document["timings"].update(
        finished=utc_now(),
        seconds=round(outcome.seconds, 3),
        mean_trial_seconds=round(sum(t.duration for t in outcome.trials) / max(len(outcome.trials), 1), 3),
    )
    write_json(run_dir / RUN_FILE, document)
    if outcome.best is not None:
        record_in_global_leaderboard(root, {
            "run_id": run_dir.name, "value": repr(outcome.best.value), "direction": direction,
            "objective": document["objective"], "optimizer": optimizer, "seed": seed, "budget": budget,
            "evaluations": outcome.evaluations, "epochs": fidelity.get("epochs", ""),
            "train_size": fidelity.get("train_size", ""), "space": space.source,
            "params": params_json(outcome.best.params), "finished": document["timings"]["finished"],
            "run_dir": str(run_dir),
        })
    return TuneResult(run_dir=run_dir, outcome=outcome)


def validate_run_settings(*, optimizer: str, budget: int, direction: str, pop_size: int | None) -> None:
    """The checks that must pass before a run directory is made."""
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise UsageError(f"--budget must be a positive whole number, got {budget}")
    if direction not in DIRECTIONS:
        raise UsageError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    if pop_size is not None and pop_size < 5:
        raise UsageError(f"--pop-size must be at least 5 (mealpy's minimum), got {pop_size}")
    check_name(optimizer)


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


def _fidelity(objective: Any) -> dict[str, Any]:
    fidelity = getattr(objective, "fidelity", None)
    return dict(fidelity()) if callable(fidelity) else {}


def _summary(outcome: RunOutcome) -> dict[str, Any]:
    best = outcome.best
    return {
        "status": "finished",
        "stop_reason": outcome.stop_reason,
        "evaluations": outcome.evaluations,
        "cached": outcome.cached,
        "failed": sum(1 for t in outcome.trials if not t.ok),
        "optimizer_details": outcome.optimizer,
        "best": None if best is None else {"number": best.number, "value": best.value, "params": best.params},
    }
