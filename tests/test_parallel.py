"""Parallel evaluation on a 2-worker Dask LocalCluster (loopback only), with cheap objectives."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from hho_tune import SearchSpace, tune
from hho_tune.api import read_run
from hho_tune.ledger import recorded_trials
from hho_tune.results import read_trials
from hho_tune.runner import TrialListener
from tests.conftest import surrogate
from tests.test_cli import hho_tune


def rows(run_dir: Path) -> list[tuple[str, ...]]:
    return sorted((r["number"], r["params_learning_rate"], r["params_decay_steps"], r["params_num_layers"], r["value"],
                   r["state"]) for r in read_trials(run_dir))


@pytest.mark.parametrize("name", ["hho", "tpe", "random"])
def test_two_workers_spend_exactly_the_budget_and_record_every_trial(name: str, mixed_space: SearchSpace,
                                                                     tmp_path: Path) -> None:
    result = tune(surrogate, mixed_space, optimizer=name, budget=16, seed=3, out=tmp_path, workers=2)
    trials = read_trials(result.run_dir)
    assert len(trials) == 16 == len(result.trials)
    assert sorted(int(r["number"]) for r in trials) == list(range(16))
    keys = {(r["params_learning_rate"], r["params_decay_steps"], r["params_num_layers"]) for r in trials}
    assert len(keys) == 16, "a configuration was trained twice"
    run = read_run(result.run_dir)
    assert run["parallel"]["workers"] == 2 and run["evaluations"] == 16
    assert len(recorded_trials(run["storage"], run["run_id"])) == 16


def test_hho_proposes_the_same_configurations_with_one_or_two_workers(mixed_space: SearchSpace, tmp_path: Path) -> None:
    """A generation's moves (then its dives' Zs) go to the workers together: the algorithm is unchanged."""
    serial = tune(surrogate, mixed_space, optimizer="hho", budget=20, seed=8, out=tmp_path / "one")
    parallel = tune(surrogate, mixed_space, optimizer="hho", budget=20, seed=8, out=tmp_path / "two", workers=2)
    assert rows(serial.run_dir) == rows(parallel.run_dir)


class KillsItsWorkerOnce:
    """Kills the Dask worker process running its first trial there; each trial takes 0.5 s, so the worker gets some.

    Not in the coordinating process, which trains one trial at a time too: a training that kills
    it ends the run, as without workers (hho_tune/coordinator_slot.py).
    """

    def __init__(self, marker: Path) -> None:
        self.marker = marker
        self.coordinator = os.getpid()

    def __call__(self, params: dict) -> float:
        time.sleep(0.5)
        if os.getpid() != self.coordinator and not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return surrogate(params)


def test_a_worker_killed_mid_run_is_a_failed_trial_not_a_lost_run(mixed_space: SearchSpace, tmp_path: Path) -> None:
    marker = tmp_path / "killed.pid"
    result = tune(KillsItsWorkerOnce(marker), mixed_space, optimizer="random", budget=12, seed=0, out=tmp_path,
                  workers=2)
    assert marker.exists(), "no trial ran on the Dask worker"
    trials = read_trials(result.run_dir)
    assert len(trials) == 12
    failed = [r for r in trials if r["state"] == "FAIL"]
    assert len(failed) == 1 and "worker lost" in failed[0]["error"]
    assert read_run(result.run_dir)["status"] == "finished"


class SlowSurrogate:
    """The surrogate, after a second's pause: long enough for the scheduler's placement to show."""

    def __call__(self, params: dict) -> float:
        time.sleep(1.0)
        return surrogate(params)


def test_two_trials_submitted_together_go_to_two_workers_at_once(mixed_space: SearchSpace) -> None:
    """No trial waits on a busy worker while another idles.

    When the trials depended on the objective scattered to the workers, Dask's active memory
    manager (every 2 s) dropped the copies no waiting task needed, and the scheduler then sent
    both trials of the next pair to the one worker still holding it: the second started only
    when the idle worker stole it, up to 2 s later. This test failed that way before the fix.
    """
    from hho_tune.executors import DaskExecutor, Job

    executor = DaskExecutor(SlowSurrogate(), mixed_space, workers=2, scheduler=None)
    params = [{"learning_rate": 10 ** -(1 + n / 4), "decay_steps": 100 + n, "num_layers": 1} for n in range(3)]
    try:
        executor.submit(Job(0, params[0]))
        assert [job.number for job, _ in executor.wait_any()] == [0]
        time.sleep(2.5)  # one round of the active memory manager with no trial in flight
        for number in (1, 2):
            executor.submit(Job(number, params[number]))
        placed = _workers_of_trials_in_flight(executor)
        assert len(placed) == 2 and len(set(placed.values())) == 2, placed
        while executor._pending:
            executor.wait_any()
    finally:
        executor.close()


def _workers_of_trials_in_flight(executor: Any) -> dict[str, str]:
    """Trial task -> the worker the scheduler sent it to, once the scheduler has placed all of them."""

    def placement(dask_scheduler: Any) -> dict[str, str | None]:
        return {str(task.key): task.processing_on.address if task.processing_on else None
                for task in dask_scheduler.tasks.values() if str(task.key).startswith("trial-")}

    deadline = time.monotonic() + 30
    while True:
        placed = executor._client.run_on_scheduler(placement)
        if (len(placed) == len(executor._pending) and all(placed.values())) or time.monotonic() > deadline:
            return placed
        time.sleep(0.02)


class RefusedOnWorkers:
    """Callable here; unpickling it fails, as an objective whose data a worker's machine lacks."""

    def __call__(self, params: dict) -> float:
        return surrogate(params)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return _refuse, ("no such data file on this machine",)


def _refuse(reason: str) -> None:
    raise FileNotFoundError(reason)


def test_an_objective_a_worker_cannot_set_up_fails_trials_with_the_reason(mixed_space: SearchSpace,
                                                                          tmp_path: Path) -> None:
    """On a cluster of your own (``--scheduler``), where only the workers train."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=40) as cluster:
        result = tune(RefusedOnWorkers(), mixed_space, optimizer="random", budget=8, seed=0, out=tmp_path,
                      scheduler=cluster.scheduler_address)
    trials = read_trials(result.run_dir)
    assert len(trials) in (5, 6) and all(r["state"] == "FAIL" for r in trials)  # 5, and one that was in flight
    assert all("cannot set up the objective on worker" in r["error"] for r in trials)
    assert "no such data file on this machine" in trials[0]["error"]
    assert read_run(result.run_dir)["stop_reason"].startswith("5 failed trials in a row")


def test_workers_and_scheduler_are_exclusive(mixed_space: SearchSpace, tmp_path: Path) -> None:
    from hho_tune.errors import UsageError

    with pytest.raises(UsageError, match="give one of them"):
        tune(surrogate, mixed_space, budget=3, out=tmp_path, workers=2, scheduler="tcp://127.0.0.1:1")
    assert not any(tmp_path.iterdir())


def test_an_unreachable_scheduler_is_a_usage_error_that_writes_nothing(mixed_space: SearchSpace, tmp_path: Path) -> None:
    from hho_tune.errors import UsageError

    with pytest.raises(UsageError, match="cannot connect to the Dask scheduler"):
        tune(surrogate, mixed_space, budget=3, out=tmp_path / "out", scheduler="tcp://127.0.0.1:9")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_the_lstm_on_two_workers(tmp_path: Path, tiny_mnist: Path) -> None:
    import subprocess
    import sys

    space = tmp_path / "small.yaml"
    space.write_text("parameters:\n  learning_rate: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}\n"
                     "fixed:\n  lstm_units: 8\n")
    result = subprocess.run([sys.executable, "-m", "hho_tune.cli", "--budget", "4", "--epochs", "1", "--train-size", "100",
                             "--data", str(tiny_mnist), "--space", str(space), "--workers", "2", "--optimizer", "random",
                             "--out", "out"], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert result.returncode == 0, result.stderr
    (run_dir,) = (tmp_path / "out").glob("*-s0")
    trials = read_trials(run_dir)
    assert len(trials) == 4 and all(r["state"] == "COMPLETE" for r in trials)
    assert all(0.0 <= float(r["value"]) <= 1.0 for r in trials)


def test_local_workers_get_their_share_of_cores_and_glibc_s_own_malloc_tuning(mixed_space: SearchSpace,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Dask's nanny sets MALLOC_TRIM_THRESHOLD_, which made trainings on workers up to 1.8x slower here."""
    from hho_tune.executors import DaskExecutor

    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    executor = DaskExecutor(surrogate, mixed_space, workers=2, scheduler=None)
    try:
        seen = executor._client.run(lambda: (os.environ.get("MALLOC_TRIM_THRESHOLD_"), os.environ.get("HHO_TUNE_THREADS")))
    finally:
        executor.close()
    assert list(seen.values()) == [(None, str(max(1, (os.cpu_count() or 1) // 2)))] * 2


def _profiler_running(dask_worker: Any) -> list[bool]:
    from hho_tune.dask_worker import PROFILER_CALLBACKS

    return [dask_worker.periodic_callbacks[name].is_running() for name in PROFILER_CALLBACKS]


def test_dask_s_profiler_is_paused_while_runs_train_on_a_worker_and_resumed_when_the_last_leaves(
        mixed_space: SearchSpace) -> None:
    """Dask samples the training thread's stack every 10 ms: trainings on workers took 9-12 s with it, mostly 6-8 s without."""
    from distributed import Client, LocalCluster

    from hho_tune.executors import DaskExecutor

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=40) as cluster, Client(cluster) as client:
        before = client.run(_profiler_running)
        first = DaskExecutor(surrogate, mixed_space, workers=None, scheduler=cluster.scheduler_address)
        second = DaskExecutor(surrogate, mixed_space, workers=None, scheduler=cluster.scheduler_address)
        both = client.run(_profiler_running)
        first.close()
        one_left = client.run(_profiler_running)
        second.close()
        after = client.run(_profiler_running)
    assert list(before.values()) == [[True, True]] * 2
    assert list(both.values()) == list(one_left.values()) == [[False, False]] * 2
    assert list(after.values()) == [[True, True]] * 2


class NotesWhereItTrained:
    """The surrogate over 3 reported steps of 0.1 s, leaving a file per trial: when it started, and in which process."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __call__(self, params: dict, reporter: Any) -> float:
        started = time.monotonic_ns()
        for step in (1, 2, 3):
            time.sleep(0.1)
            reporter.report(surrogate(params) * step / 3, step)
        (self.folder / f"{started}-{os.getpid()}.trial").write_text(str(os.getpid()))
        return surrogate(params)


class ThreadsOfReports(TrialListener):
    def __init__(self) -> None:
        self.threads: list[int] = []

    def on_report(self, number: int, step: int, value: float, seconds: float) -> None:
        self.threads.append(threading.get_ident())


def test_the_coordinating_process_trains_first_and_then_beside_the_worker(mixed_space: SearchSpace,
                                                                           tmp_path: Path) -> None:
    """``--workers 2``: this process starts training before the cluster is up, then trains one trial at a time beside it.

    Its training thread's reports reach the listeners on the runner's thread, as the worker's do.
    """
    folder = tmp_path / "where"
    folder.mkdir()
    listener = ThreadsOfReports()
    result = tune(NotesWhereItTrained(folder), mixed_space, optimizer="random", budget=24, seed=1,
                  out=tmp_path / "out", workers=2, listeners=[listener])
    trained_in = [int(path.read_text()) for path in sorted(folder.iterdir(), key=lambda p: int(p.stem.split("-")[0]))]
    assert len(trained_in) == 24 and all(t.ok for t in result.trials)
    assert trained_in[0] == os.getpid()  # before any worker could have started
    assert os.getpid() in trained_in[len(trained_in) // 2:], "this process stopped training once the worker was up"
    assert any(pid != os.getpid() for pid in trained_in), "no trial ran on the Dask worker"
    assert listener.threads and set(listener.threads) == {threading.get_ident()}
    assert len(listener.threads) == 3 * 24
    where = read_run(result.run_dir)["machine"]["training_threads"]["where"]
    assert where.startswith("this process (") and ") and 1 local Dask worker process (" in where


def test_a_cluster_that_does_not_start_leaves_the_run_to_this_process(mixed_space: SearchSpace, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from hho_tune import coordinator_slot

    def no_cluster(*args: Any, **kwargs: Any) -> None:
        raise OSError("no free port")

    monkeypatch.setattr(coordinator_slot, "DaskExecutor", no_cluster)
    result = tune(surrogate, mixed_space, optimizer="hho", budget=10, seed=2, out=tmp_path, workers=2)
    assert len(result.trials) == 10 and all(t.ok for t in result.trials)
    assert "the local Dask cluster did not start (OSError: no free port); this process trains alone" in capsys.readouterr().err


@pytest.mark.parametrize(("bar", "workers_used"), [(60.0, False), (5.0, True)])
def test_workers_start_only_when_the_trainings_left_pay_for_them(mixed_space: SearchSpace, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str],
                                                                 bar: float, workers_used: bool) -> None:
    """23 trainings left after the first, of 0.3 s each: about 7 s, under a bar of 60 s and over one of 5 s."""
    monkeypatch.setenv("HHO_TUNE_WORKERS_PAY_OFF_SECONDS", str(bar))
    folder = tmp_path / "where"
    folder.mkdir()
    result = tune(NotesWhereItTrained(folder), mixed_space, optimizer="random", budget=24, seed=1,
                  out=tmp_path / "out", workers=2)
    trained_in = {int(path.read_text()) for path in folder.iterdir()}
    assert len(result.trials) == 24 and all(t.ok for t in result.trials)
    assert (trained_in != {os.getpid()}) is workers_used
    said = capsys.readouterr().err
    assert ("--workers 2: 23 training(s) left, about" in said) is not workers_used
    if not workers_used:
        assert "too few to pay for starting workers (they pay from about 60 s); this process trains them" in said
    baseline = tune(NotesWhereItTrained(tmp_path), mixed_space, optimizer="random", budget=24, seed=1,
                    out=tmp_path / "alone")
    assert [(t.number, t.value) for t in result.trials] == [(t.number, t.value) for t in baseline.trials]


@pytest.mark.parametrize("bar", ["soon", "-5", "nan"])
def test_a_malformed_pay_off_bar_is_one_line_and_exit_2_before_anything_is_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bar: str) -> None:
    monkeypatch.setenv("HHO_TUNE_WORKERS_PAY_OFF_SECONDS", bar)
    result = hho_tune("--objective", "hho_tune.benchmarks:sphere", "--budget", "3", "--workers", "2", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"hho-tune: error: HHO_TUNE_WORKERS_PAY_OFF_SECONDS must be a number of seconds, "
                                     f"0 or more, not {bar!r}")
    assert not (tmp_path / "results").exists()
