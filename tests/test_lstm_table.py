"""``hho_tune.benchmarks:lstm_table``: the recorded table, its surrogate, its noise and its cost, through the CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from hho_tune.benchmarks import lstm_table
from hho_tune.cli import main
from hho_tune.errors import SearchSpaceError
from hho_tune.lstm_table import (
    CHANCE_LEVEL,
    TABLE_EPOCHS,
    RecordedTable,
    SeedNoise,
    Surrogate,
    _logit,
    epoch_seconds,
    held_out_validation,
)
from hho_tune.space import SearchSpace


@pytest.fixture(scope="module")
def table() -> RecordedTable:
    return RecordedTable.load()


def run_dir(out: Path) -> Path:
    (directory,) = [p for p in out.iterdir() if p.is_dir()]
    return directory


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_the_packaged_table_is_what_the_issue_asks_for(table: RecordedTable) -> None:
    configurations = len(np.unique(table.config))
    first, _ = table.seed_pairs()
    assert configurations >= 96 and table.epochs == TABLE_EPOCHS >= 6
    assert len(first) >= configurations / 4, "a second training seed for at least a quarter of the configurations"
    assert np.all(table.seconds[np.isfinite(table.values)] > 0)
    assert {p["num_layers"] for p in table.params} == {1, 2, 3}


def test_same_seed_same_curve_another_seed_another(table: RecordedTable) -> None:
    params = {"learning_rate": 0.003, "decay_epochs": 0.4, "num_layers": 2}
    first, again = lstm_table.with_seed(3).curve(params)[0], lstm_table.with_seed(3).curve(params)[0]
    other = lstm_table.with_seed(4).curve(params)[0]
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert np.all((first > 0) & (first < 1))
    assert lstm_table.with_seed(3)(params) == first[1], "the default fidelity is 2 epochs"
    assert lstm_table.with_epochs(5).with_seed(3)(params) == first[4]


def test_the_simulated_noise_is_the_measured_noise(table: RecordedTable) -> None:
    """Over many configurations, two simulated seeds differ as much as the two recorded seeds did."""
    measured = SeedNoise.measure(table)
    rng = np.random.default_rng(0)
    params = [{"learning_rate": float(10 ** rng.uniform(-4, -1)), "decay_epochs": float(10 ** rng.uniform(-1.3, 0.3)),
               "num_layers": int(rng.integers(1, 4))} for _ in range(400)]
    a = np.array([lstm_table.with_seed(0).curve(p)[0] for p in params])
    b = np.array([lstm_table.with_seed(1).curve(p)[0] for p in params])
    learned = (a.max(axis=1) > CHANCE_LEVEL) & (b.max(axis=1) > CHANCE_LEVEL)  # a collapse is drawn apart from the noise
    assert 0.6 < learned.mean() < 1.0, "some random configurations collapse, most learn"
    simulated = np.var(_logit(a[learned]) - _logit(b[learned]), axis=0) / 2
    assert simulated == pytest.approx(np.diag(measured.covariance), rel=0.35)


def test_the_surrogate_on_held_out_configurations(table: RecordedTable) -> None:
    """Held out one fold at a time: a learned curve errs no more than a second seed does; collapses are called."""
    for result in held_out_validation(table):
        assert result.surrogate_median_error < 1.5 * result.seed_median_error, result
        assert result.spearman > 0.7 and result.collapse_hits > 0.9, result


def test_the_surrogate_passes_near_the_recorded_means(table: RecordedTable) -> None:
    """Fitted to everything, its prediction at a recorded configuration is close to what was measured there."""
    surrogate = Surrogate(table)
    complete = np.all(np.isfinite(table.values), axis=1)
    predicted = surrogate.predict([table.params[i] for i in np.flatnonzero(complete)])
    errors = np.abs(predicted - table.values[complete])
    assert np.median(errors[:, -1]) < 0.02


def test_a_run_reports_simulated_epoch_times_and_prunes(table: RecordedTable, tmp_path: Path) -> None:
    code = main(["--objective", "hho_tune.benchmarks:lstm_table", "--budget", "12", "--pruner", "sha",
                 "--optimizer", "random", "--seed", "1", "--out", str(tmp_path)])
    assert code == 0
    directory = run_dir(tmp_path)
    run = json.loads((directory / "run.json").read_text())
    assert run["fidelity"]["epochs"] == TABLE_EPOCHS and run["fidelity"]["simulated_seconds"] is True
    assert run["max_steps"] == TABLE_EPOCHS
    trials = read_csv(directory / "trials.csv")
    assert any(t["state"] == "PRUNED" for t in trials) and any(t["state"] == "COMPLETE" for t in trials)
    medians = epoch_seconds(table)
    by_number = {int(t["number"]): int(t["params_num_layers"]) for t in trials}
    for row in read_csv(directory / "learning_curves.csv"):
        expected = medians[by_number[int(row["number"])]][int(row["epoch"]) - 1]
        assert float(row["seconds"]) == pytest.approx(expected, abs=1e-3)


def test_a_comparison_on_the_table_runs_on_simulated_time(tmp_path: Path) -> None:
    code = main(["compare", "--objective", "hho_tune.benchmarks:lstm_table", "--optimizers", "hho,tpe,random",
                 "--budget", "6", "--seeds", "3", "--epochs", "3", "--out", str(tmp_path), "--name", "c"])
    assert code == 0
    directory = tmp_path / "c"
    curves = read_csv(directory / "curves.csv")
    run = directory / "runs" / "hho-s1"
    spent = np.cumsum([sum(float(r["seconds"]) for r in read_csv(run / "learning_curves.csv") if r["number"] == str(n))
                       for n in range(6)])
    hho_1 = [float(r["elapsed_seconds"]) for r in curves if r["optimizer"] == "hho" and r["seed"] == "1"]
    assert hho_1 == pytest.approx(list(spent), abs=2e-3)
    assert json.loads((directory / "friedman.json").read_text())["seeds"] == 3
    # Each run is scored by its recommendation's expected accuracy at the comparison's 3 epochs, computed
    # here again by a surrogate built afresh from the recorded table, and that is what the summary averages.
    surrogate = Surrogate(RecordedTable.load())
    rows = read_csv(directory / "recommendations.csv")
    assert len(rows) == 9 and {r["scored_by"] for r in rows} == {"noise-free"}
    for row in rows:
        expected = surrogate.predict([json.loads(row["params"])])[0][2]
        assert float(row["worth"]) == pytest.approx(expected, abs=1e-12)
    summary = {r["optimizer"]: r for r in read_csv(directory / "summary.csv")}
    hho_worth = [float(r["worth"]) for r in rows if r["optimizer"] == "hho"]
    assert float(summary["hho"]["worth_mean"]) == pytest.approx(np.mean(hho_worth))


@pytest.mark.parametrize(("args", "message"), [
    (["--epochs", "7"], "lstm_table recorded 6 epochs"),
    (["--pruner", "sha", "--max-epochs", "9"], "lstm_table recorded 6 epochs"),
    (["--train-size", "500"], "--train-size applies to the LSTM fitness"),
    (["--space", "lstm_wide"], "lstm_table knows only"),
])
def test_what_the_table_cannot_answer_is_one_line_and_exit_2(args: list[str], message: str, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--objective", "hho_tune.benchmarks:lstm_table", "--budget", "3", "--out", str(tmp_path / "out"), *args])
    error = capsys.readouterr().err
    assert code == 2 and message in error and error.count("\n") == 1, error
    assert not (tmp_path / "out").exists()


def test_a_space_beyond_the_recorded_bounds_is_refused() -> None:
    space = SearchSpace.from_dict({"parameters": {
        "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
        "decay_epochs": {"type": "float", "low": 0.05, "high": 2, "log": True},
        "num_layers": {"type": "int", "low": 1, "high": 3}}}, source="wide.yaml")
    with pytest.raises(SearchSpaceError, match=r"wide\.yaml: parameter 'learning_rate'.*cannot extrapolate"):
        lstm_table.check_space(space)
    narrower = SearchSpace.from_dict({"parameters": {
        "learning_rate": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True},
        "num_layers": {"type": "int", "low": 2, "high": 3}}, "fixed": {"decay_epochs": 0.5}}, source="narrow.yaml")
    lstm_table.check_space(narrower)
