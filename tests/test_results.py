"""Result files: written as trials end, best first, and a shared leaderboard that survives concurrency."""

from __future__ import annotations

import csv
import json
import multiprocessing
from pathlib import Path

from hho_tune import SearchSpace, tune
from hho_tune.results import record_in_global_leaderboard
from hho_tune.runner import TrialListener
from hho_tune.trial import Trial
from tests.conftest import surrogate


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_run_directory_files(mixed_space: SearchSpace, tmp_path: Path) -> None:
    result = tune(surrogate, mixed_space, optimizer="hho", budget=12, seed=7, out=tmp_path)
    run_dir = result.run_dir
    assert run_dir.parent == tmp_path
    trials = rows(run_dir / "trials.csv")
    assert list(trials[0]) == [
        "number", "value", "state", "duration", "datetime_start", "datetime_complete",
        "params_learning_rate", "params_decay_steps", "params_num_layers",
        "optimizer", "seed", "epochs", "train_size", "error",
    ]
    assert [int(r["number"]) for r in trials] == list(range(12))
    assert {r["optimizer"] for r in trials} == {"hho"} and {r["seed"] for r in trials} == {"7"}
    board = rows(run_dir / "leaderboard.csv")
    values = [float(r["value"]) for r in board]
    assert values == sorted(values, reverse=True)
    assert float(board[0]["value"]) == result.best.value
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "finished" and run["evaluations"] == 12 and run["seed"] == 7
    assert run["best"]["value"] == result.best.value
    assert run["space"]["parameters"]["learning_rate"]["log"] is True
    assert {"numpy", "mealpy", "optuna", "python"} <= set(run["versions"])
    assert run["timings"]["seconds"] >= 0
    (entry,) = rows(tmp_path / "leaderboard.csv")
    assert entry["run_id"] == run_dir.name and float(entry["value"]) == result.best.value


def test_each_row_is_on_disk_when_its_trial_ends(mixed_space: SearchSpace, tmp_path: Path) -> None:
    seen_on_disk: list[int] = []

    class Check(TrialListener):
        def on_trial(self, trial: Trial, best: Trial | None) -> None:
            (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
            seen_on_disk.append(len(rows(run_dir / "trials.csv")))

    tune(surrogate, mixed_space, optimizer="random", budget=5, seed=0, out=tmp_path, listeners=[Check()])
    assert seen_on_disk == [1, 2, 3, 4, 5]


def test_two_runs_with_the_same_settings_get_separate_directories(mixed_space: SearchSpace, tmp_path: Path) -> None:
    first = tune(surrogate, mixed_space, optimizer="random", budget=3, seed=0, out=tmp_path)
    second = tune(surrogate, mixed_space, optimizer="random", budget=3, seed=0, out=tmp_path)
    assert first.run_dir != second.run_dir
    assert [t.params for t in first.trials] == [t.params for t in second.trials]
    assert len(rows(tmp_path / "leaderboard.csv")) == 2


def _write_many(root: str, worker: int) -> None:
    for i in range(25):
        record_in_global_leaderboard(Path(root), {
            "run_id": f"w{worker}-{i}", "value": repr(worker + i / 100), "direction": "maximize", "objective": "x",
        })


def test_concurrent_writers_keep_every_row(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_write_many, args=(str(tmp_path), w)) for w in range(3)]
    for process in workers:
        process.start()
    for process in workers:
        process.join()
        assert process.exitcode == 0
    board = rows(tmp_path / "leaderboard.csv")
    assert len(board) == 75
    assert len({r["run_id"] for r in board}) == 75
    values = [float(r["value"]) for r in board]
    assert values == sorted(values, reverse=True)
