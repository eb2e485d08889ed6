"""How long an epoch waits for the pruner's word on Dask workers, side by side with no wait.

A cheap objective "trains" STEPS steps of STEP_SECONDS each (a sleep) and reports after each.
Three runs of the same trials, alternated ROUNDS times: in process with ``--pruner median``
(the answer is a function call), on 2 Dask workers with ``--pruner none`` (reports go to the
coordinator, nobody waits) and on 2 workers with ``--pruner median`` (every report waits for
the answer through the scheduler). The wait per report is (trial seconds - STEPS x
STEP_SECONDS) / STEPS. MedianPruner with n_startup_trials above the budget never prunes, so
every trial reports every step in all three.

    python bench/pruning_latency.py
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import optuna

from hho_tune import SearchSpace, TrialPruned, tune

STEPS = 20
STEP_SECONDS = 0.05
BUDGET = 8
ROUNDS = 3


def stepping(params: dict, reporter) -> float:
    for step in range(1, STEPS + 1):
        time.sleep(STEP_SECONDS)
        reporter.report(params["x"] * step, step)
        if reporter.should_prune():
            raise TrialPruned()
    return params["x"]


stepping.epochs = STEPS


def wait_per_report(workers: int | None, pruner: str, out: Path) -> float:
    space = SearchSpace.from_dict({"parameters": {"x": {"type": "float", "low": 0.0, "high": 1.0}}})
    result = tune(stepping, space, optimizer="random", budget=BUDGET, seed=0, out=out, pruner=pruner, workers=workers)
    waits = [(t.duration - STEPS * STEP_SECONDS) / STEPS for t in result.trials]
    return statistics.median(waits)


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    import hho_tune.pruning as pruning

    original = pruning.make_pruner

    def never_pruning(name: str, *, max_steps: int | None):  # median that never prunes: every step waits
        return optuna.pruners.MedianPruner(n_startup_trials=10 * BUDGET) if name == "median" else original(
            name, max_steps=max_steps)

    pruning.make_pruner = never_pruning
    import hho_tune.api as api

    api.make_pruner = never_pruning
    rows: dict[str, list[float]] = {"in process, median": [], "2 workers, none": [], "2 workers, median": []}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(ROUNDS):
            for label, workers, pruner in (("in process, median", None, "median"), ("2 workers, none", 2, "none"),
                                           ("2 workers, median", 2, "median")):
                rows[label].append(wait_per_report(workers, pruner, Path(tmp) / f"{round_}-{workers}-{pruner}"))
    for label, waits in rows.items():
        print(f"{label:>20}: median extra seconds per report {statistics.median(waits) * 1000:7.1f} ms "
              f"(rounds: {', '.join(f'{w * 1000:.1f}' for w in waits)})")


if __name__ == "__main__":
    main()
