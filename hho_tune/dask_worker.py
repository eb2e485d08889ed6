"""What a Dask worker holds for a run, and the task that trains one trial there.

The objective and the search space reach each worker once, as a worker plugin, not as data
that tasks depend on. Why: the scheduler sends a task only to workers that hold one of its
dependencies, and Dask's active memory manager drops the copies of a scattered object that no
waiting task needs (every 2 s). With the objective as a dependency, once the workers had idled
a moment, two trials submitted together were both sent to the one worker still holding it,
and the second started only when the idle worker stole it, 0.3-2 s later (three times in a
default 2-worker run; bench/RESULTS.md section 4). A task with no dependency goes to the least
busy worker at once. A plugin also reaches workers that join later and workers that the
nanny restarts after a crash.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from distributed import WorkerPlugin, get_worker
from distributed.protocol import pickle

from hho_tune.space import SearchSpace
from hho_tune.trial import Trial, failed_trial


class RunContext(WorkerPlugin):
    """The run's objective and search space, unpacked once per worker process.

    They travel pickled (the objective as its recipe: a worker loads the data itself) and are
    unpacked in :meth:`setup`. A failure there (data missing on that machine, a package not
    installed) is kept and reported by every trial the worker gets, as a failed trial with the
    reason, so that the run stops after its failures like any other, instead of crashing.
    """

    def __init__(self, name: str, objective: Any, space: SearchSpace) -> None:
        self.name = name
        self.payload = pickle.dumps((objective, space))
        self.objective: Any = None
        self.space: SearchSpace | None = None
        self.error = ""

    def __getstate__(self) -> dict[str, Any]:
        return {"name": self.name, "payload": self.payload}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.name, self.payload = state["name"], state["payload"]
        self.objective, self.space, self.error = None, None, ""

    def setup(self, worker: Any) -> None:
        try:
            self.objective, self.space = pickle.loads(self.payload)
        except Exception as exc:
            self.error = f"cannot set up the objective on worker {worker.address}: {type(exc).__name__}: {exc}"


def evaluate_on_worker(context_name: str, params: Mapping[str, Any], number: int) -> Trial:
    """The Dask task of one trial: the runner's :func:`~hho_tune.runner.evaluate` with this worker's context."""
    from hho_tune.runner import evaluate

    context: RunContext = get_worker().plugins[context_name]
    if context.error:
        return failed_trial(number, params, context.error)
    return evaluate(context.objective, context.space, dict(params), number=number)
