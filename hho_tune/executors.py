"""Where trainings run: inline in this process, or on Dask workers.

The runner submits (number, params) and waits for whichever trial ends first; it does not
know which kind it talks to. Dask is the engine for parallel runs: a LocalCluster of
``--workers N`` processes on this machine, or an existing cluster at ``--scheduler ADDRESS``
(workers on other machines), with no other change.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from dataclasses import dataclass
from typing import Any

from hho_tune.errors import UsageError
from hho_tune.reporting import ReportChannel, wants_reporter
from hho_tune.space import Params, SearchSpace
from hho_tune.trial import Trial, failed_trial


@dataclass(frozen=True)
class Job:
    number: int
    params: Params


class InlineExecutor:
    """One training at a time, in this process: the default, and the reference behaviour."""

    capacity = 1

    def __init__(self, objective: Any, space: SearchSpace) -> None:
        from hho_tune.runner import evaluate

        self._evaluate = evaluate
        self._objective = objective
        self._space = space
        self._queued: list[Job] = []
        self._channel: ReportChannel | None = None
        self._takes_reporter = wants_reporter(objective)  # read once, not per trial

    def set_report_channel(self, channel: ReportChannel, *, answers: bool = True) -> None:
        """Where a training's reports go (the runner's ear); answered at once, in this process."""
        self._channel = channel

    def submit(self, job: Job) -> None:
        self._queued.append(job)

    def wait_any(self) -> list[tuple[Job, Trial]]:
        job = self._queued.pop(0)
        return [(job, self._evaluate(self._objective, self._space, job.params, number=job.number,
                                     channel=self._channel, takes_reporter=self._takes_reporter))]

    def cancel_all(self) -> None:
        self._queued.clear()

    def close(self) -> None:
        """Nothing to release."""


class DaskExecutor:
    """Up to ``capacity`` trainings at once on Dask workers.

    A worker that dies (killed, out of memory) fails its trial instead of having Dask retry it
    elsewhere (``allowed-failures`` 0): a crash is data, and a retry would train twice.
    """

    def __init__(self, objective: Any, space: SearchSpace, *, workers: int | None, scheduler: str | None,
                 threads_per_worker: int | None = None) -> None:
        import dask
        from distributed import Client, LocalCluster

        from hho_tune.backend import current_backend

        dask.config.set({"distributed.scheduler.allowed-failures": 0,
                         "distributed.worker.daemon": False,
                         "distributed.nanny.pre-spawn-environ": _pre_spawn_environ(),
                         "distributed.admin.log-level": "error"})
        self._cluster = None
        try:
            if scheduler is not None:
                self._client = Client(scheduler, timeout="20s")
            else:
                self._cluster = LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                    silence_logs=40, env=_worker_env(workers or 1, threads_per_worker, current_backend()),
                )
                self._client = Client(self._cluster)
        except OSError as exc:
            raise UsageError(f"--scheduler {scheduler}: cannot connect to the Dask scheduler ({exc})") from None
        if scheduler is not None:
            total = sum(w.get("nthreads", 1) for w in self._client.scheduler_info()["workers"].values())
            self.capacity = max(1, total)
        else:
            self.capacity = workers or 1
        from hho_tune.dask_worker import RunContext

        self._context = f"hho-tune-run-{uuid.uuid4().hex}"  # unique: several runs may share a cluster
        self._client.register_plugin(RunContext(self._context, objective, space), name=self._context)
        self._pending: dict[Any, Job] = {}
        self._channel: ReportChannel | None = None
        self._answers = False
        self._reports: Any = None

    def set_report_channel(self, channel: ReportChannel, *, answers: bool = True) -> None:
        """Reports come from the workers through a Dask queue; with ``answers``, each waits for the pruner's word.

        Why a queue through the scheduler: the workers may be on machines that share no file
        system with this process, and the study the pruner reads lives here. The answer goes
        back on a queue of the trial's own; :meth:`wait_any` serves reports every
        :data:`REPORT_POLL_SECONDS` while it waits, so an epoch waits that long at most, plus
        two messages through the scheduler.
        """
        from distributed import Queue

        self._channel, self._answers = channel, answers
        self._reports = Queue(report_queue_name(self._context), client=self._client)

    def submit(self, job: Job) -> None:
        from hho_tune.dask_worker import evaluate_on_worker

        future = self._client.submit(evaluate_on_worker, self._context, dict(job.params), job.number,
                                     reports=self._channel is not None, answers=self._answers, pure=False,
                                     key=f"trial-{job.number}-{self._context}")
        self._pending[future] = job

    @property
    def busy(self) -> int:
        """Trainings submitted and not yet handed back."""
        return len(self._pending)

    def wait_any(self) -> list[tuple[Job, Trial]]:
        while True:
            finished = self.poll(REPORT_POLL_SECONDS if self._reports is not None else None)
            if finished:
                return finished

    def poll(self, timeout: float | None) -> list[tuple[Job, Trial]]:
        """The trials that end within ``timeout`` seconds (None: wait for one), the reports served meanwhile."""
        from dask.distributed import TimeoutError as DaskTimeoutError
        from distributed import wait

        try:
            done, _ = wait(list(self._pending), timeout=timeout, return_when="FIRST_COMPLETED")
        except (DaskTimeoutError, TimeoutError):
            done = set()
        self._serve_reports()  # before recording a trial: its last reports were sent before it ended
        finished = []
        for future in done:
            job = self._pending.pop(future)
            finished.append((job, self._result(future, job)))
        return sorted(finished, key=lambda pair: pair[0].number)

    def _serve_reports(self) -> None:
        """Hand every waiting report to the channel and send each answer back to its trial."""
        if self._reports is None or self._channel is None:
            return
        from distributed import Queue

        for number, step, value, seconds in self._reports.get(batch=True):
            prune = self._channel(number, step, value, seconds)
            if self._answers:
                Queue(answer_queue_name(self._context, number), client=self._client).put(bool(prune))

    def _result(self, future: Any, job: Job) -> Trial:
        try:
            return future.result()
        except Exception as exc:
            message = str(exc).strip() or type(exc).__name__
            return failed_trial(job.number, job.params, f"worker lost: {type(exc).__name__}: {message}")

    def cancel_all(self) -> None:
        if self._pending:
            self._client.cancel(list(self._pending), force=True)
        self._pending.clear()

    def close(self) -> None:
        self.cancel_all()
        if self._cluster is None:  # a shared cluster outlives this run: take its context off the workers
            with contextlib.suppress(Exception):
                self._client.unregister_worker_plugin(self._context)
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()


REPORT_POLL_SECONDS = 0.05  # how often the coordinator serves the workers' reports while it waits


def report_queue_name(context: str) -> str:
    return f"{context}-reports"


def answer_queue_name(context: str, number: int) -> str:
    return f"{context}-answer-{number}"


def _pre_spawn_environ() -> dict[str, Any]:
    """What Dask's nanny puts in a worker's environment before starting it, less MALLOC_TRIM_THRESHOLD_.

    Setting that variable (Dask sets 65536, to hand freed memory back to the OS) also turns off
    glibc's adaptive mmap threshold, so every TensorFlow buffer of 128 KiB or more is mmap-ed and
    unmapped again: measured here, a 1-layer trial on a worker then took 6.2-10.9 s instead of
    5.4-6.0 s, with 1.25x the CPU time (bench/RESULTS.md section 4).
    """
    import dask

    environ = dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {}
    return {name: value for name, value in environ.items() if name != "MALLOC_TRIM_THRESHOLD_"}


def core_share(trainers: int, threads: int | None = None) -> int:
    """Threads of each of ``trainers`` trainings at once on this machine: ``threads`` if given, else an equal share."""
    return threads or max(1, (os.cpu_count() or 1) // trainers)


def _worker_env(workers: int, threads: int | None, backend: str = "tensorflow") -> dict[str, str]:
    """Each worker's share of the cores, for TensorFlow's pools or XLA's (read by the objective), and the run's backend.

    ``KERAS_BACKEND`` makes a worker's Keras start on the run's backend whatever imports it
    first, ``HHO_TUNE_BACKEND`` replaces a pin the workers would inherit from this process;
    ``PJRT_NPROC`` sizes XLA's pool even for an objective that does not read ``HHO_TUNE_THREADS``
    (a :class:`~hho_tune.keras.KerasObjective`).
    """
    share = core_share(workers, threads)
    env = {"HHO_TUNE_THREADS": str(share), "TF_CPP_MIN_LOG_LEVEL": "2", "OMP_NUM_THREADS": str(share),
           "KERAS_BACKEND": backend, "HHO_TUNE_BACKEND": backend}  # over an inherited pin: --backend won here
    if backend == "jax":
        env["PJRT_NPROC"] = str(share)
    return env


def make_executor(objective: Any, space: SearchSpace, *, workers: int | None, scheduler: str | None,
                  threads_per_worker: int | None = None) -> Any:
    """Inline for one training at a time; ``--workers N``: this process and N-1 local Dask workers; else the cluster's."""
    if scheduler is None and (workers is None or workers <= 1):
        return InlineExecutor(objective, space)
    if scheduler is None:
        from hho_tune.coordinator_slot import CoordinatorAndWorkers  # it builds on DaskExecutor, defined here

        return CoordinatorAndWorkers(objective, space, workers=workers, threads_per_worker=threads_per_worker)
    return DaskExecutor(objective, space, workers=workers, scheduler=scheduler, threads_per_worker=threads_per_worker)
