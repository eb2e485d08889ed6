"""``--workers N`` on this machine: this process trains one trial while N-1 Dask workers train the rest.

Why the coordinating process trains too: with few trainings, a cluster of N workers cost more
than it gave. Each worker imports TensorFlow and traces every architecture itself, and the
cluster's start and close add seconds, so ``hho-tune --budget 6 --epochs 1 --train-size 5000``
took 0.94-1.01x as long with ``--workers 2`` as with one process (bench/RESULTS.md section 4).
Here the first training starts at once in this process, and the process that would otherwise
only wait is one of the N trainers: one process fewer to start, import and trace in.

Why the cluster waits for the first training: even so, on a faster day the same small run
took 1.09x, 0.91x and 0.80x as long with ``--workers 2`` (bench/RESULTS.md section 4): a
worker's first training, which imports TensorFlow and traces its model beside this process's,
took 11-14 s for a training that takes 3-4 s warm, more than the few trainings left could
give back. So the cluster starts only once this process's first training has ended, and only
if the trainings left, at that training's duration each, come to at least
:data:`WORKERS_PAY_OFF_SECONDS` (the runner says how many are left:
:meth:`CoordinatorAndWorkers.expect_trainings`); otherwise this process trains them all, and
says so on stderr. The first training, which imports and traces, overstates the others, so the
bar errs toward starting workers only where they clearly pay.

The training runs in one long-lived thread of this process (:func:`_training_thread`), so the
objective's per-thread model pool keeps its compiled models from trial to trial and from run to
run (``compare``). Its reports reach the runner on the runner's own thread: the training
thread queues them and waits for the answer, and :meth:`CoordinatorAndWorkers.wait_any` serves
them, as it serves the workers' reports, so listeners and the pruner are never called from
two threads.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

from hho_tune.errors import UsageError
from hho_tune.executors import REPORT_POLL_SECONDS, DaskExecutor, Job, core_share
from hho_tune.reporting import ReportChannel, wants_reporter
from hho_tune.space import SearchSpace
from hho_tune.trial import Trial

CLUSTER_CLOSE_WAIT_SECONDS = 60.0  # close() waits this long for a cluster still starting
# Start workers only for this much training left, estimated from this process's first training
# (HHO_TUNE_WORKERS_PAY_OFF_SECONDS overrides: 0 starts them after the first training whatever is left).
WORKERS_PAY_OFF_SECONDS = 120.0
PAY_OFF_ENV = "HHO_TUNE_WORKERS_PAY_OFF_SECONDS"


def workers_pay_off_seconds() -> float:
    """The bar for starting workers: the environment's, else the default; a malformed one is a usage error."""
    raw = os.environ.get(PAY_OFF_ENV)
    if raw is None or not raw.strip():
        return WORKERS_PAY_OFF_SECONDS
    try:
        bar = float(raw)
    except ValueError:
        bar = -1.0
    if not 0.0 <= bar < float("inf"):
        raise UsageError(f"{PAY_OFF_ENV} must be a number of seconds, 0 or more, not {raw!r}")
    return bar


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

    The cluster starts in a background thread once this process's first training has ended and
    the trainings left are worth it (see the module's docstring); until it is up, what the runner
    submits beyond the local slot waits here and goes to whichever frees first: this process or
    the cluster. A cluster that is not worth starting, or fails to start, leaves the run to this
    process alone, with one line on stderr.
    """

    def __init__(self, objective: Any, space: SearchSpace, *, workers: int, threads_per_worker: int | None = None) -> None:
        if workers < 2:
            raise ValueError("CoordinatorAndWorkers needs at least 2 trainings at once")
        self.capacity = workers
        share = core_share(workers, threads_per_worker)  # what each worker gets
        # This process trains with its own threads (the usable cores unless --threads): it may well
        # train alone, and beside one worker on 2 cores the default run was no slower for it (bench/RESULTS.md section 4).
        self._objective, self._space = objective, space
        self._takes_reporter = wants_reporter(objective)
        self._events: queue.Queue[Any] = queue.Queue()  # the local slot's reports and results
        self._cancelled = threading.Event()
        self._local: Job | None = None
        self._queued: list[Job] = []
        self._channel: ReportChannel | None = None
        self._answers = False
        self._dask: DaskExecutor | None = None
        self._without_cluster = False  # the cluster failed to start, or was not worth starting
        self._pay_off_seconds = workers_pay_off_seconds()  # read once: the bar the run was checked against
        self._left: int | None = None  # trainings the runner has left, this process's included
        self._decided = False  # whether to start the cluster has been settled
        self._started: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._starter = threading.Thread(target=self._start_cluster, args=(objective, space, workers - 1, share),
                                         name="hho-tune-cluster-start", daemon=True)

    def expect_trainings(self, left: int) -> None:
        """The runner's word: ``left`` trainings remain to be run, those in flight included."""
        self._left = left

    def _decide_on_cluster(self, first: Trial) -> None:
        """After this process's first training: start the workers if the trainings left pay for them."""
        self._decided = True
        bar = self._pay_off_seconds
        left = None if self._left is None else max(self._left - 1, 0)  # the runner has not yet recorded ``first``
        estimate = None if left is None else left * first.duration
        if estimate is None or estimate >= bar:
            self._starter.start()
            return
        self._without_cluster = True
        print(f"hho-tune: --workers {self.capacity}: {left} training(s) left, about {estimate:.0f} s at the first's "
              f"{first.duration:.1f} s each, too few to pay for starting workers (they pay from about "
              f"{bar:.0f} s); this process trains them", file=sys.stderr)

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
        if self._dask is not None or self._without_cluster:
            return
        try:
            started = self._started.get_nowait()
        except queue.Empty:
            return
        if isinstance(started, BaseException):
            self._without_cluster = True
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
                finished += self._serve_local(wait_seconds=0.0)
            else:
                finished += self._serve_local(wait_seconds=REPORT_POLL_SECONDS)
        self._dispatch()  # a job waiting for a slot starts before the runner records these
        return sorted(finished, key=lambda pair: pair[0].number)

    def _serve_local(self, *, wait_seconds: float) -> list[tuple[Job, Trial]]:
        """Answer the local training's reports and take its result.

        Waits up to ``wait_seconds`` for the first event (0: only what is already there), so that
        the loop sleeps here when only this process trains and polls Dask instead when workers do.
        """
        finished: list[tuple[Job, Trial]] = []
        try:
            event = self._events.get(timeout=wait_seconds) if wait_seconds > 0 else self._events.get_nowait()
        except queue.Empty:
            return finished
        while True:
            if isinstance(event, _Report):
                prune = self._channel(event.number, event.step, event.value, event.seconds) if self._channel else False
                event.answer.put(bool(prune))
            else:
                finished.append(event)
                self._local = None
                if not self._decided and event[1].ok:  # a failed training says nothing of how long one takes
                    self._decide_on_cluster(event[1])
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
        if self._starter.is_alive():
            self._starter.join(CLUSTER_CLOSE_WAIT_SECONDS)
        self._adopt_cluster()
        if self._dask is not None:
            self._dask.close()
