"""Parallel evaluation on a 2-worker Dask LocalCluster (loopback only), with cheap objectives."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from hho_tune import SearchSpace, tune
from hho_tune.api import read_run
from hho_tune.ledger import recorded_trials
from hho_tune.results import read_trials
from tests.conftest import surrogate


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
    """Kills the Dask worker process running it the first time it sees ``num_layers == 2``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __call__(self, params: dict) -> float:
        if params["num_layers"] == 2 and not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return surrogate(params)


def test_a_worker_killed_mid_run_is_a_failed_trial_not_a_lost_run(mixed_space: SearchSpace, tmp_path: Path) -> None:
    marker = tmp_path / "killed.pid"
    result = tune(KillsItsWorkerOnce(marker), mixed_space, optimizer="random", budget=12, seed=0, out=tmp_path,
                  workers=2)
    assert marker.exists(), "the test objective never met a 2-layer configuration"
    trials = read_trials(result.run_dir)
    assert len(trials) == 12
    failed = [r for r in trials if r["state"] == "FAIL"]
    assert len(failed) == 1 and "worker lost" in failed[0]["error"]
    assert failed[0]["params_num_layers"] == "2"
    assert read_run(result.run_dir)["status"] == "finished"


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
