"""``--workers N`` on this machine: this process trains one trial while N-1 Dask workers train the rest.

Why the coordinating process trains too: with few trainings, a cluster of N workers cost more
than it gave. Each worker imports TensorFlow and traces every architecture itself, and the
cluster's start and close add seconds, so ``hho-tune --budget 6 --epochs 1 --train-size 5000``
took 0.94-1.01x as long with ``--workers 2`` as with one process (bench/RESULTS.md section 4).
Here the first training starts at once in this process while the cluster starts in the
background, and the process that would otherwise only wait is one of the N trainers: one
process fewer to start, import and trace in.

The training runs in one long-lived thread of this process (:func:`_training_thread`), so the
objective's per-thread model pool keeps its compiled models from trial to trial and from run to
run (``compare``). Its reports reach the runner on the runner's own thread: the training
thread queues them and waits for the answer, and :meth:`CoordinatorAndWorkers.wait_any` serves
them, as it serves the workers' reports, so listeners and the pruner are never called from
two threads.
"""

from __future__ import annotations

import contextlib
import copy
import queue
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

from hho_tune.executors import REPORT_POLL_SECONDS, DaskExecutor, Job, core_share
from hho_tune.reporting import ReportChannel, wants_reporter
from hho_tune.space import SearchSpace
from hho_tune.trial import Trial

CLUSTER_CLOSE_WAIT_SECONDS = 60.0  # close() waits this long for a cluster still starting


@dataclass
class _Report:
    number: int
    step: int
    value: float
    seconds: float
    answer: queue.Queue[bool] = field(default_factory=lambda: queue.Queue(maxsize=1))


class _ThreadChannel:
    """A training thread's reports, queued for the runner's thread; with ``answers``, waits for the word back."""

    def __init__(self, events: queue.Queue[Any], answers: bool, cancelled: threading.Event) -> None:
        self._events, self._answers, self._cancelled = events, answers, cancelled

    def __call__(self, number: int, step: int, value: float, seconds: float) -> bool:
        if self._cancelled.is_set():
            return True  # a cancelled run: stop at this step (the result is dropped)
        report = _Report(number, step, value, seconds)
        self._events.put(report)
        if not self._answers:
            return False
        while not self._cancelled.is_set():
            with contextlib.suppress(queue.Empty):
                return report.answer.get(timeout=0.5)
        return True


_thread_jobs: queue.Queue[Any] = queue.Queue()
_thread_lock = threading.Lock()
_thread: threading.Thread | None = None


def _training_thread() -> queue.Queue[Any]:
    """The process's one training thread (started once): a daemon, so Ctrl-C during a training still exits."""
    global _thread
    with _thread_lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_serve_jobs, name="hho-tune-training", daemon=True)
            _thread.start()
    return _thread_jobs


def _serve_jobs() -> None:
    while True:
        work = _thread_jobs.get()
        work()


class CoordinatorAndWorkers:
    """``workers`` trainings at once: one in this process, ``workers - 1`` on a local Dask cluster.

    The cluster starts in a background thread; until it is up, what the runner submits beyond
    the local slot waits here and goes to whichever frees first: this process or the cluster.
    A cluster that fails to start leaves the run to this process alone, with one line on stderr.
    """

    def __init__(self, objective: Any, space: SearchSpace, *, workers: int, threads_per_worker: int | None = None) -> None:
        if workers < 2:
            raise ValueError("CoordinatorAndWorkers needs at least 2 trainings at once")
        self.capacity = workers
        share = core_share(workers, threads_per_worker)  # what each worker gets too
        self._objective, self._space = _with_threads(objective, share), space
        self._takes_reporter = wants_reporter(objective)
        self._events: queue.Queue[Any] = queue.Queue()  # the local slot's reports and results
        self._cancelled = threading.Event()
        self._local: Job | None = None
        self._queued: list[Job] = []
        self._channel: ReportChannel | None = None
        self._answers = False
        self._dask: DaskExecutor | None = None
        self._dask_failed = False
        self._started: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._starter = threading.Thread(target=self._start_cluster, args=(objective, space, workers - 1, share),
                                         name="hho-tune-cluster-start", daemon=True)
        self._starter.start()

    def _start_cluster(self, objective: Any, space: SearchSpace, workers: int, share: int) -> None:
        try:
            self._started.put(DaskExecutor(objective, space, workers=workers, scheduler=None,
                                           threads_per_worker=share))
        except Exception as exc:  # reported on the runner's thread, never lost
            self._started.put(exc)

    def set_report_channel(self, channel: ReportChannel, *, answers: bool = True) -> None:
        self._channel, self._answers = channel, answers
        if self._dask is not None:
            self._dask.set_report_channel(channel, answers=answers)

    def submit(self, job: Job) -> None:
        self._queued.append(job)
        self._dispatch()

    def _dispatch(self) -> None:
        while self._queued:
            if self._local is None:
                self._start_local(self._queued.pop(0))
            elif self._dask is not None and self._dask.busy < self._dask.capacity:
                self._dask.submit(self._queued.pop(0))
            else:
                return

    def _start_local(self, job: Job) -> None:
        from hho_tune.runner import evaluate

        self._local = job
        events, objective, space = self._events, self._objective, self._space
        channel = None if self._channel is None else _ThreadChannel(events, self._answers, self._cancelled)
        takes_reporter = self._takes_reporter

        def work() -> None:
            try:
                trial = evaluate(objective, space, job.params, number=job.number, channel=channel,
                                 takes_reporter=takes_reporter)
            except BaseException as exc:  # evaluate records exceptions; this is only a last guard
                from hho_tune.trial import failed_trial

                trial = failed_trial(job.number, job.params, f"{type(exc).__name__}: {exc}")
            events.put((job, trial))

        _training_thread().put(work)

    def _adopt_cluster(self) -> None:
        """Once the background start has ended: use the cluster, or go on without it."""
        if self._dask is not None or self._dask_failed:
            return
        try:
            started = self._started.get_nowait()
        except queue.Empty:
            return
        if isinstance(started, BaseException):
            self._dask_failed = True
            print(f"hho-tune: the local Dask cluster did not start ({type(started).__name__}: {started}); "
                  "this process trains alone", file=sys.stderr)
            return
        self._dask = started
        if self._channel is not None:
            started.set_report_channel(self._channel, answers=self._answers)

    def wait_any(self) -> list[tuple[Job, Trial]]:
        finished: list[tuple[Job, Trial]] = []
        while not finished:
            self._adopt_cluster()
            self._dispatch()
            if self._dask is not None and self._dask.busy:
                finished += self._dask.poll(0.0 if not self._events.empty() else REPORT_POLL_SECONDS)
                finished += self._serve_local(timeout=None)
            else:
                finished += self._serve_local(timeout=REPORT_POLL_SECONDS)
        self._dispatch()  # a job waiting for a slot starts before the runner records these
        return sorted(finished, key=lambda pair: pair[0].number)

    def _serve_local(self, *, timeout: float | None) -> list[tuple[Job, Trial]]:
        """Answer the local training's reports and take its result; wait up to ``timeout`` for the first event."""
        finished: list[tuple[Job, Trial]] = []
        try:
            event = self._events.get(timeout=timeout) if timeout else self._events.get_nowait()
        except queue.Empty:
            return finished
        while True:
            if isinstance(event, _Report):
                prune = self._channel(event.number, event.step, event.value, event.seconds) if self._channel else False
                event.answer.put(bool(prune))
            else:
                finished.append(event)
                self._local = None
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return finished

    def cancel_all(self) -> None:
        self._queued.clear()
        if self._local is not None:
            self._cancelled.set()  # the local training stops at its next report
            self._local = None
        if self._dask is not None:
            self._dask.cancel_all()

    def close(self) -> None:
        self.cancel_all()
        self._starter.join(CLUSTER_CLOSE_WAIT_SECONDS)
        self._adopt_cluster()
        if self._dask is not None:
            self._dask.close()


def _with_threads(objective: Any, share: int) -> Any:
    """The objective this process trains with: its own ``threads`` if set, else this process's share of the cores.

    Only an objective with a ``threads`` attribute (the LSTM fitness) is given the share; any
    other keeps its own settings.
    """
    if getattr(objective, "threads", share) is not None:
        return objective
    twin = copy.copy(objective)
    twin.threads = share
    return twin
