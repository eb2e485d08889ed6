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

While a run's context is on a worker, Dask's statistical profiler is paused there
(:func:`pause_profiler`): every 10 ms it takes the GIL from the event loop and walks the
stack of the training thread: in a probe here the same trainings took 9.0-12.0 s on workers
with it and mostly 5.9-8.2 s without (bench/RESULTS.md section 4). It resumes when the last
run leaves a worker that outlives it (a cluster you started yourself); the dashboard's
profile page is empty for the trials in between.

The Keras backend travels with the run: a worker starts Keras on the run's backend before it
unpacks the objective (which may import Keras). A worker you start yourself can be pinned to a
backend and warmed up before the first trial::

    HHO_TUNE_BACKEND=jax dask worker tcp://HOST:8786 --nthreads 1 --preload hho_tune.dask_worker

(:func:`dask_setup`): it then imports Keras on that backend and starts it with
``HHO_TUNE_THREADS`` threads at once, and refuses, trial by trial with the reason, a run on
another backend.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any

from distributed import WorkerPlugin, get_worker
from distributed.protocol import pickle

from hho_tune.backend import check_worker_backend, current_backend, requested_backend, start_backend, use_backend
from hho_tune.reporting import wants_reporter
from hho_tune.space import SearchSpace
from hho_tune.trial import Trial, failed_trial


class RunContext(WorkerPlugin):
    """The run's objective and search space, unpacked once per worker process.

    They travel pickled (the objective as its recipe: a worker loads the data itself) and are
    unpacked in :meth:`setup`. A failure there (data missing on that machine, a package not
    installed) is kept and reported by every trial the worker gets, as a failed trial with the
    reason, so that the run stops after its failures like any other, instead of crashing.
    """

    def __init__(self, name: str, objective: Any, space: SearchSpace, *, backend: str | None = None) -> None:
        self.name = name
        self.backend = backend or current_backend()  # the coordinator's: the one run.json records
        self.payload = pickle.dumps((objective, space))
        self.objective: Any = None
        self.space: SearchSpace | None = None
        self.takes_reporter = False
        self.error = ""

    def __getstate__(self) -> dict[str, Any]:
        return {"name": self.name, "payload": self.payload, "backend": self.backend}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.name, self.payload = state["name"], state["payload"]
        self.backend = state.get("backend", "tensorflow")
        self.objective, self.space, self.error = None, None, ""
        self.takes_reporter = False

    def setup(self, worker: Any) -> None:
        pause_profiler(worker)
        try:
            check_worker_backend(self.backend)  # before the objective, whose module may import Keras
            self.objective, self.space = pickle.loads(self.payload)
            self.takes_reporter = wants_reporter(self.objective)  # read once per worker, not per trial
        except Exception as exc:
            self.error = f"cannot set up the objective on worker {worker.address}: {type(exc).__name__}: {exc}"

    def teardown(self, worker: Any) -> None:
        resume_profiler(worker)


PROFILER_CALLBACKS = ("profile", "profile-cycle")  # the worker's periodic callbacks that sample and roll up stacks
_paused_profilers: weakref.WeakKeyDictionary[Any, tuple[int, tuple[str, ...]]] = weakref.WeakKeyDictionary()


def pause_profiler(worker: Any) -> None:
    """Stop the worker's stack sampling while a run trains there; counted, since several runs may share a worker."""
    holds, stopped = _paused_profilers.get(worker, (0, ()))
    if holds == 0:
        callbacks = getattr(worker, "periodic_callbacks", {})
        stopped = tuple(name for name in PROFILER_CALLBACKS if name in callbacks and callbacks[name].is_running())
        for name in stopped:
            callbacks[name].stop()
    _paused_profilers[worker] = (holds + 1, stopped)


def resume_profiler(worker: Any) -> None:
    """Restart what :func:`pause_profiler` stopped, once the last run that paused it has left."""
    holds, stopped = _paused_profilers.pop(worker, (0, ()))
    if holds > 1:
        _paused_profilers[worker] = (holds - 1, stopped)
        return
    callbacks = getattr(worker, "periodic_callbacks", {})
    for name in stopped:
        if name in callbacks:
            callbacks[name].start()


def dask_setup(worker: Any) -> None:
    """``dask worker --preload hho_tune.dask_worker``: Keras on ``HHO_TUNE_BACKEND`` (default TensorFlow), started now.

    The worker then pays the backend's import and start-up (seconds) before its first trial,
    not during it, with its pool sized to ``HHO_TUNE_THREADS`` (TensorFlow's, or XLA's on JAX).
    """
    import os

    use_backend(requested_backend())
    threads = os.environ.get("HHO_TUNE_THREADS")
    start_backend(int(threads) if threads else None)
    import keras  # noqa: F401  imported now, on the backend above


ANSWER_SECONDS = 120.0  # a report waits this long for the pruner's word, then the training goes on


class QueueChannel:
    """A trial's reports to the coordinator through a Dask queue, and (with ``answers``) its word back.

    When no word comes in :data:`ANSWER_SECONDS` (a coordinator gone or stuck) the training goes
    on: the trial is then recorded as complete instead of pruned, which costs epochs, never a result.
    """

    def __init__(self, context_name: str, number: int, *, answers: bool) -> None:
        self._context, self._number, self._wants_answers = context_name, number, answers
        self._reports: Any = None
        self._answers: Any = None

    def __call__(self, number: int, step: int, value: float, seconds: float) -> bool:
        if self._reports is None:  # made at the first report: an objective that reports nothing costs nothing
            from distributed import Queue

            from hho_tune.executors import answer_queue_name, report_queue_name

            if self._wants_answers:  # registered before the first report, so its answer cannot come too early
                self._answers = Queue(answer_queue_name(self._context, self._number))
            self._reports = Queue(report_queue_name(self._context))
        self._reports.put((number, step, value, seconds))
        if self._answers is None:
            return False
        try:
            return bool(self._answers.get(timeout=ANSWER_SECONDS))
        except Exception:  # a timeout (Dask's or asyncio's) or a lost scheduler: train on
            return False


def evaluate_on_worker(context_name: str, params: Mapping[str, Any], number: int, *, reports: bool = False,
                       answers: bool = False) -> Trial:
    """The Dask task of one trial: the runner's :func:`~hho_tune.runner.evaluate` with this worker's context."""
    from hho_tune.runner import evaluate

    context: RunContext = get_worker().plugins[context_name]
    if context.error:
        return failed_trial(number, params, context.error)
    channel = QueueChannel(context_name, number, answers=answers) if reports else None
    return evaluate(context.objective, context.space, dict(params), number=number, channel=channel,
                    takes_reporter=context.takes_reporter)
