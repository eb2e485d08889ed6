"""``hho-tune export``: the best configurations of a run as JSON, and a clear refusal of anything else.

The runs here are searches of the LSTM's space scored by a cheap surrogate, so no network is
trained; tests/test_final.py exports a real (tiny) LSTM run and trains it.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from hho_tune import SearchSpace, tune
from hho_tune.benchmarks import sphere
from hho_tune.cli import main
from hho_tune.errors import UsageError
from hho_tune.export import EXPORT_FORMAT, export_best
from tests.conftest import surrogate

LSTM_SPACE = {
    "parameters": {
        "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
        "decay_steps": {"type": "int", "low": 10, "high": 10000, "log": True},
        "num_layers": {"type": "int", "low": 1, "high": 3},
    },
    "fixed": {"lstm_units": 16},
}


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    space = SearchSpace.from_dict(LSTM_SPACE, source="lstm_test.yaml")
    return tune(surrogate, space, optimizer="random", budget=8, seed=5, out=tmp_path / "results").run_dir


def export(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["export", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def leaderboard_rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "leaderboard.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_export_writes_the_best_configuration_with_its_provenance(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = export(str(run_dir), capsys=capsys)
    assert code == 0, err
    exported = json.loads((run_dir / "best.json").read_text())
    run = json.loads((run_dir / "run.json").read_text())
    assert exported["format"] == EXPORT_FORMAT and exported["rank"] == 1
    assert exported["trial"] == run["best"]["number"]
    assert exported["validation_score"] == run["best"]["value"]
    # everything train needs: the searched values and the fixed ones
    assert exported["params"] == {"lstm_units": 16, **run["best"]["params"]}
    assert exported["seed"] == 5 and exported["optimizer"] == "random" and exported["data"] is None
    assert exported["space"] == run["space"] and exported["versions"] == run["versions"]
    assert exported["run_dir"] == str(run_dir.absolute()) and exported["run_id"] == run_dir.name
    assert exported["direction"] == "maximize" and exported["run_status"] == "finished"
    assert f"hho-tune train {run_dir / 'best.json'}" in out


def test_top_k_is_a_list_in_leaderboard_order(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "exports" / "top3.json"
    code, _, err = export(str(run_dir), "--top", "3", "--out", str(target), capsys=capsys)
    assert code == 0, err
    document = json.loads(target.read_text())
    configs = document["configs"]
    assert document["format"] == EXPORT_FORMAT
    assert [c["rank"] for c in configs] == [1, 2, 3]
    assert [c["trial"] for c in configs] == [int(row["number"]) for row in leaderboard_rows(run_dir)[:3]]
    scores = [c["validation_score"] for c in configs]
    assert scores == sorted(scores, reverse=True)


def test_top_k_beyond_the_completed_trials_exports_what_there_is(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = export(str(run_dir), "--top", "50", capsys=capsys)
    assert code == 0
    assert len(json.loads((run_dir / "best.json").read_text())["configs"]) == 8
    assert "only 8 completed trials" in out


def test_a_minimized_objective_exports_its_lowest_value(tmp_path: Path) -> None:
    run = tune(sphere, sphere.default_space, optimizer="random", budget=10, seed=2, out=tmp_path).run_dir
    values = [c.validation_score for c in export_best(run, top=10)]
    assert values == sorted(values) and len(values) == 10
    assert export_best(run)[0].direction == "minimize"


def test_failed_and_half_written_trials_are_never_exported(run_dir: Path) -> None:
    rows = leaderboard_rows(run_dir)
    best_number = rows[0]["number"]
    # Mark the best trial failed, and add a row that a killed process left half-written.
    trials = (run_dir / "trials.csv").read_text().splitlines()
    header = trials[0].split(",")
    state = header.index("state")
    for i, line in enumerate(trials[1:], start=1):
        cells = line.split(",")
        if cells[0] == best_number:
            cells[state] = "FAIL"
            trials[i] = ",".join(cells)
    (run_dir / "trials.csv").write_text("\n".join([*trials, "8,0.99,COMPL"]) + "\n")
    (best,) = export_best(run_dir)
    assert best.trial == int(rows[1]["number"])


def test_the_data_file_of_the_run_travels_with_the_configuration(run_dir: Path) -> None:
    run = json.loads((run_dir / "run.json").read_text())
    run["arguments"] = {"data": "fashion.npz"}
    (run_dir / "run.json").write_text(json.dumps(run))
    assert export_best(run_dir)[0].data == "fashion.npz"


def always_fails(params: dict) -> float:
    raise RuntimeError("boom")


def failing_run(root: Path) -> Path:
    space = SearchSpace.from_dict(LSTM_SPACE)
    return tune(always_fails, space, optimizer="random", budget=3, seed=0, out=root).run_dir


def truncate(path: Path) -> None:
    path.write_text(path.read_text()[:40])


@pytest.mark.parametrize(
    ("make_target", "message"),
    [
        (lambda run, tmp: tmp / "nowhere", "no such run directory"),
        (lambda run, tmp: tmp, "not a run directory (no run.json"),
        (lambda run, tmp: (truncate(run / "run.json"), run)[1], "corrupt run file (not valid JSON"),
        (lambda run, tmp: ((run / "trials.csv").unlink(), run)[1], "not a run directory (no trials.csv)"),
        (lambda run, tmp: failing_run(tmp / "failing"), "no completed trial to export (3 trials recorded, none completed)"),
    ],
    ids=["missing", "not-a-run", "corrupt-run-json", "no-trials-csv", "no-completed-trial"],
)
def test_what_cannot_be_exported_is_refused_in_one_line(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], make_target, message: str
) -> None:
    target = make_target(run_dir, tmp_path)
    code, _, err = export(str(target), capsys=capsys)
    assert code == 2
    assert err.startswith("hho-tune: error: ") and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (target / "best.json").exists()


def test_bad_flags_are_refused(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = export(str(run_dir), "--top", "0", capsys=capsys)
    assert code == 2 and "--top" in err
    code, _, err = export(str(run_dir), "--out", str(run_dir), capsys=capsys)
    assert code == 2 and "is a directory" in err
    with pytest.raises(UsageError, match="--top must be at least 1"):
        export_best(run_dir, top=0)
