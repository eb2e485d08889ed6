"""How long a trial waits between its submission and its start on a 2-worker Dask LocalCluster.

The pattern that mattered in real runs: the workers idle a moment (the end of an HHO
generation), then two trials are submitted together. Compares the package's executor (the
objective reaches each worker once as a worker plugin; trials have no data dependency) with
the way it used to do it (the objective and the space scattered to every worker, each trial
depending on them), in one run. Trainings are replaced by a 1-second sleep: only placement
is measured, not speed.

    python bench/dispatch_lag.py              # about 1 minute
    python bench/dispatch_lag.py --pairs 10
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hho_tune.executors import DaskExecutor, Job
from hho_tune.runner import evaluate
from hho_tune.space import SearchSpace

SPACE = {"parameters": {"x": {"type": "float", "low": 0.0, "high": 1.0}}}
IDLE_SECONDS = 2.5  # longer than one round (2 s) of Dask's active memory manager


class OneSecondTrial:
    def __call__(self, params: dict) -> float:
        time.sleep(1.0)
        return float(params["x"])


def _evaluate_with_dependencies(objective: Any, space: SearchSpace, params: dict, number: int) -> Any:
    return evaluate(objective, space, params, number=number)


class ScatteredExecutor(DaskExecutor):
    """The executor before the worker plugin: objective and space scattered, trials depending on them.

    It inherits the cluster set-up, plugin included; its trials do not use the plugin, so the
    scheduler places them as it placed the trials before it.
    """

    def __init__(self, objective: Any, space: SearchSpace) -> None:
        super().__init__(objective, space, workers=2, scheduler=None)
        self._objective_future = self._client.scatter(objective, broadcast=True, hash=False)
        self._space_future = self._client.scatter(space, broadcast=True, hash=False)

    def submit(self, job: Job) -> None:
        future = self._client.submit(_evaluate_with_dependencies, self._objective_future, self._space_future,
                                     dict(job.params), job.number, pure=False, key=f"scattered-trial-{job.number}")
        self._pending[future] = job


def later_start_lags(executor: DaskExecutor, pairs: int) -> list[float]:
    """For each pair submitted after the workers idled: seconds from submission to the later start."""
    lags, number = [], 0
    for _ in range(pairs):
        executor.submit(Job(number, {"x": 0.5}))
        number += 1
        executor.wait_any()
        time.sleep(IDLE_SECONDS)
        submitted = time.time()
        for _ in range(2):
            executor.submit(Job(number, {"x": 0.5}))
            number += 1
        starts = []
        while len(starts) < 2:
            starts += [trial.datetime_start.timestamp() for _, trial in executor.wait_any()]
        lags.append(max(starts) - submitted)
    return lags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5, help="pairs per executor (default 5)")
    args = parser.parse_args()
    space = SearchSpace.from_dict(SPACE)
    print(f"command: python bench/dispatch_lag.py --pairs {args.pairs}")
    print("| executor | later start of a pair after submission: median (s) | range (s) |")
    print("|---|---:|---|")
    for name, make in (("objective as a worker plugin (the package)", lambda: DaskExecutor(
            OneSecondTrial(), space, workers=2, scheduler=None)),
                       ("objective scattered, trials depending on it (before)", lambda: ScatteredExecutor(
            OneSecondTrial(), space))):
        executor = make()
        try:
            lags = later_start_lags(executor, args.pairs)
        finally:
            executor.close()
        print(f"| {name} | {statistics.median(lags):.3f} | {min(lags):.3f}-{max(lags):.3f} |", flush=True)


if __name__ == "__main__":
    main()
