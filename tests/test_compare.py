"""``hho-tune compare`` end to end on cheap objectives, and what a seed means in it."""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections.abc import Mapping
from itertools import groupby, pairwise
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from hho_tune import objective as objective_module
from hho_tune.benchmarks import sphere
from hho_tune.cli import main
from hho_tune.compare import (
    CURVES_FILE,
    EVALUATIONS_PLOT,
    PAIRWISE_FILE,
    SUMMARY_FILE,
    TIME_PLOT,
    compare,
    run_compare_command,
    summarise,
)
from hho_tune.results import read_trials
from tests.test_cli import hho_tune

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BUDGET = 12
SEEDS = 3


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def two_comparisons(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """The same comparison run twice through the CLI, as a user would."""
    root = tmp_path_factory.mktemp("compare")
    stdout = ""
    for name in ("first", "second"):
        result = hho_tune("compare", "--objective", "hho_tune.benchmarks:sphere", "--optimizers", "hho,tpe",
                          "--budget", str(BUDGET), "--seeds", str(SEEDS), "--out", "out", "--name", name, cwd=root)
        assert result.returncode == 0, result.stderr
        stdout = stdout or result.stdout
    return root / "out" / "first", root / "out" / "second", stdout


def test_a_comparison_writes_every_file(two_comparisons: tuple[Path, Path, str]) -> None:
    directory, _, stdout = two_comparisons
    runs = sorted(p.name for p in (directory / "runs").iterdir() if p.is_dir())
    assert runs == ["hho-s0", "hho-s1", "hho-s2", "tpe-s0", "tpe-s1", "tpe-s2"]
    for run in runs:
        run_json = json.loads((directory / "runs" / run / "run.json").read_text())
        assert run_json["status"] == "finished" and run_json["evaluations"] == BUDGET
        assert len(read_trials(directory / "runs" / run)) == BUDGET  # exactly the budget, every optimizer
    settings = json.loads((directory / "compare.json").read_text())
    assert settings["optimizers"] == ["hho", "tpe"] and settings["seeds"] == [0, 1, 2]
    assert settings["budget"] == BUDGET and settings["direction"] == "minimize" and settings["status"] == "finished"
    assert settings["objective"] == "hho_tune.benchmarks:sphere" and "numpy" in settings["versions"]
    assert settings["space"]["source"] == "hho_tune.benchmarks:sphere"
    assert settings["machine"]["cpu"] == run_json["machine"]["cpu"] and settings["machine"]["software"]["numpy"]
    for plot in (EVALUATIONS_PLOT, TIME_PLOT):
        assert (directory / plot).read_bytes().startswith(PNG_SIGNATURE)
    assert len(read_csv(directory / CURVES_FILE)) == 2 * SEEDS * BUDGET
    assert [r["optimizer"] for r in read_csv(directory / SUMMARY_FILE)] == ["hho", "tpe"]
    (pair,) = read_csv(directory / PAIRWISE_FILE)
    assert (pair["first"], pair["second"], pair["seeds"]) == ("hho", "tpe", "3")
    assert "run 1 of 6: hho, seed 0" in stdout and "run 6 of 6: tpe, seed 2" in stdout
    assert f"[tpe s1] [{BUDGET}/{BUDGET}]" in stdout
    assert "no significant difference at 3 seeds" in stdout and "at least 6 seeds" in stdout


def test_curves_never_get_worse_and_agree_with_the_runs(two_comparisons: tuple[Path, Path, str]) -> None:
    directory = two_comparisons[0]
    rows = read_csv(directory / CURVES_FILE)
    finals = {}
    for (optimizer, seed), group in groupby(rows, key=lambda r: (r["optimizer"], r["seed"])):
        group = list(group)
        assert [int(r["evaluation"]) for r in group] == list(range(1, BUDGET + 1))
        best = [float(r["best_so_far"]) for r in group]
        assert all(later <= earlier for earlier, later in pairwise(best))  # minimized
        assert best == [min(float(r["value"]) for r in group[: i + 1]) for i in range(BUDGET)]
        elapsed = [float(r["elapsed_seconds"]) for r in group]
        assert elapsed == sorted(elapsed)
        trials = read_trials(directory / "runs" / f"{optimizer}-s{seed}")
        assert [float(r["value"]) for r in group] == [float(t["value"]) for t in trials]
        finals[optimizer, seed] = best[-1]
    summary = {r["optimizer"]: r for r in read_csv(directory / SUMMARY_FILE)}
    for optimizer in ("hho", "tpe"):
        own = [finals[optimizer, str(s)] for s in range(SEEDS)]
        assert float(summary[optimizer]["best_mean"]) == pytest.approx(statistics.fmean(own))
        assert float(summary[optimizer]["best_median"]) == pytest.approx(statistics.median(own))
        assert float(summary[optimizer]["evaluations"]) == BUDGET


def test_the_same_seeds_give_the_same_numbers(two_comparisons: tuple[Path, Path, str]) -> None:
    first, second, _ = two_comparisons
    columns = ["optimizer", "seed", "evaluation", "value", "best_so_far"]  # all but elapsed seconds
    a, b = ([[row[c] for c in columns] for row in read_csv(d / CURVES_FILE)] for d in (first, second))
    assert a == b
    # ... and different seeds give different runs.
    by_seed = {row[1]: [] for row in a}
    for row in a:
        if row[0] == "tpe":
            by_seed[row[1]].append(row[3])
    assert by_seed["0"] != by_seed["1"]


def test_the_summary_is_rebuilt_from_the_run_directories(
    two_comparisons: tuple[Path, Path, str], tmp_path: Path,
) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(two_comparisons[0], copy)
    before = {name: (copy / name).read_text() for name in (CURVES_FILE, SUMMARY_FILE, PAIRWISE_FILE)}
    for name in (CURVES_FILE, SUMMARY_FILE, PAIRWISE_FILE, EVALUATIONS_PLOT, TIME_PLOT):
        (copy / name).unlink()
    result = summarise(copy)
    assert {name: (copy / name).read_text() for name in before} == before
    assert (copy / EVALUATIONS_PLOT).exists() and len(result.curves) == 2 * SEEDS


class SeedRecordingObjective:
    """Stands for a training objective: ``with_seed`` gives the copy that trains with that seed."""

    direction = "minimize"

    def __init__(self, calls: list[int], seed: int = -1) -> None:
        self.calls = calls
        self.seed = seed

    def with_seed(self, seed: int) -> SeedRecordingObjective:
        return SeedRecordingObjective(self.calls, seed)

    def __call__(self, params: Mapping[str, Any]) -> float:
        self.calls.append(self.seed)
        return sphere(params) + self.seed  # the training seed changes the score, as it does for the LSTM


def test_seed_k_trains_with_seed_k_for_every_optimizer(tmp_path: Path) -> None:
    calls: list[int] = []
    result = compare(SeedRecordingObjective(calls), sphere.default_space, optimizers=["random", "tpe"],
                     seeds=[4, 7], budget=5, out=tmp_path, name="seeds")
    # Seed by seed: random and tpe at seed 4 (5 evaluations each), then both at seed 7.
    assert calls[:20] == [4] * 10 + [7] * 10
    assert [(c.optimizer, c.seed) for c in result.curves] == [("random", 4), ("tpe", 4), ("random", 7), ("tpe", 7)]
    # Then each run's recommendation is trained again with 3 fresh seeds, none a run's: 4 runs x 3 (or fewer,
    # where two runs recommend one configuration and share the trainings).
    assert set(calls[20:]) == {10_000, 10_001, 10_002} and len(calls[20:]) <= 12


def test_the_lstm_objective_gets_each_seed_and_loads_the_data_once(
    tmp_path: Path, tiny_mnist: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[int, int]] = []

    def fake_training(self: objective_module.LstmObjective, params: Mapping[str, Any]) -> float:
        seen.append((self.seed, id(self.data)))
        return 0.5 + params["learning_rate"]

    monkeypatch.setattr(objective_module, "start_tensorflow", lambda threads=None: None)
    monkeypatch.setattr(objective_module.LstmObjective, "__call__", fake_training)
    loads = []
    real_load = objective_module.load_train_validation
    monkeypatch.setattr(objective_module, "load_train_validation",
                        lambda *a, **k: loads.append(1) or real_load(*a, **k))
    console = Console(file=io.StringIO())
    code = run_compare_command(["--optimizers", "hho,random", "--seed-list", "2,5", "--budget", "6",
                                "--data", str(tiny_mnist), "--train-size", "100", "--epochs", "1",
                                "--out", str(tmp_path), "--name", "lstm"], console)
    assert code == 0
    assert [seed for seed, _ in seen[:24]] == [2] * 12 + [5] * 12
    # Then each of the 4 recommendations trained again with the 3 fresh seeds, by the same loaded data.
    assert {seed for seed, _ in seen[24:]} == {10_000, 10_001, 10_002} and len(seen) <= 24 + 12
    assert len({data for _, data in seen}) == 1 and len(loads) == 1
    settings = json.loads((tmp_path / "lstm" / "compare.json").read_text())
    assert settings["fidelity"]["epochs"] == 1 and settings["fidelity"]["train_size"] == 100
    assert settings["objective"] == "lstm-mnist"
    run = json.loads((tmp_path / "lstm" / "runs" / "random-s5" / "run.json").read_text())
    assert run["seed"] == 5 and run["fidelity"]["train_size"] == 100


def test_a_space_the_objective_refuses_makes_nothing(tmp_path: Path) -> None:
    """compare() asks the objective's check_space before the comparison directory exists."""
    from hho_tune.errors import SearchSpaceError
    from hho_tune.objective import check_lstm_space
    from hho_tune.space import SearchSpace

    def objective(params: Mapping[str, Any]) -> float:
        raise AssertionError("never trained")

    objective.check_space = check_lstm_space
    space = SearchSpace.from_dict({"parameters": {"batch_size": {"type": "int", "low": 0, "high": 64}}},
                                  source="wide.yaml")
    with pytest.raises(SearchSpaceError, match=r"wide\.yaml: parameter 'batch_size': low 0 is outside"):
        compare(objective, space, optimizers=["random"], seeds=[0], budget=3, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_interrupted_comparison_keeps_its_finished_runs(tmp_path: Path) -> None:
    calls = []

    def objective(params: Mapping[str, Any]) -> float:
        calls.append(1)
        if len(calls) == 8:  # in the second run
            raise KeyboardInterrupt
        return sphere(params)

    objective.direction = "minimize"
    with pytest.raises(KeyboardInterrupt):
        compare(objective, sphere.default_space, optimizers=["random", "tpe"], seeds=[0], budget=5,
                out=tmp_path, name="stopped")
    directory = tmp_path / "stopped"
    assert json.loads((directory / "compare.json").read_text())["status"] == "interrupted"
    assert {r["optimizer"] for r in read_csv(directory / CURVES_FILE)} == {"random"}
    assert len(read_csv(directory / CURVES_FILE)) == 5
    assert json.loads((directory / "runs" / "tpe-s0" / "run.json").read_text())["status"] == "interrupted"
    result = summarise(directory)  # what there is can be summarised
    assert [s.runs for s in result.stats.optimizers] == [1, 0]


@pytest.mark.parametrize(("args", "expected"), [
    (["--optimizers", "hho,hawks"], "unknown optimizer 'hawks'"),
    (["--optimizers", "hho,tpe,hho"], "names 'hho' twice"),
    (["--optimizers", "hho,,tpe"], "names separated by commas"),
    (["--optimizers", "optuna:NoSampler"], "unknown Optuna sampler 'NoSampler'"),
    (["--optimizers", "mealpy:GWO.Nothing"], "unknown mealpy optimizer"),
    (["--optimizers", "optuna:BruteForceSampler"], "cannot search this space"),
    (["--seeds", "0"], "--seeds: must be at least 1"),
    (["--seed-list", "1,1"], "seed 1 is given twice"),
    (["--seed-list", "1,x"], "whole numbers separated by commas"),
    (["--seed-list", "-1"], "seeds must be whole numbers >= 0"),
    (["--seeds", "3", "--seed-list", "1,2"], "not allowed with argument"),
    (["--target-fraction", "0"], "must be in (0, 1]"),
    (["--target-fraction", "1.5"], "must be in (0, 1]"),
    (["--budget", "0"], "--budget: must be at least 1"),
    (["--pop-size", "2"], "--pop-size must be at least 5"),
    (["--name", "a/b"], "--name must be a plain directory name"),
    (["--name", "taken"], "taken: comparison directory already exists"),
    (["--epochs", "2"], "--epochs applies to the LSTM fitness"),
])
def test_bad_input_is_one_line_and_exit_2(
    args: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    (out / "taken").mkdir(parents=True)
    code = main(["compare", "--objective", "hho_tune.benchmarks:sphere", "--budget", "5", "--out", str(out), *args])
    error = capsys.readouterr().err
    assert code == 2
    assert error.startswith("hho-tune: error:") and expected in error and error.count("\n") == 1, error
    assert [p.name for p in out.iterdir()] == ["taken"], "nothing may be created for bad input"
