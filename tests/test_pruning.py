"""Multi-fidelity search on cheap objectives with synthetic learning curves: reports, pruners, the winner.

The curves are a function of the parameters only, so the same configuration reports the same
values wherever and whenever it trains, and a plain Optuna study fed the same curves in the
same order must prune the same trials.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import optuna
import pytest

from hho_tune.api import resume, tune
from hho_tune.cli import main
from hho_tune.curves import rung_correlations
from hho_tune.errors import TrialPruned
from hho_tune.ledger import recorded_trials
from hho_tune.optimizers.base import OptimizerSettings, make
from hho_tune.results import read_trials
from hho_tune.runner import evaluate
from hho_tune.space import SearchSpace
from hho_tune.trial import Trial, TrialState, best_trial, ranked

MAX_STEPS = 8


@pytest.fixture
def space() -> SearchSpace:
    return SearchSpace.from_dict({"parameters": {
        "x": {"type": "float", "low": 0.0, "high": 1.0},
        "y": {"type": "float", "low": 0.0, "high": 1.0},
    }})


def final_value(params: dict) -> float:
    return 1.0 - (params["x"] - 0.37) ** 2 - (params["y"] - 0.61) ** 2


def curve_value(params: dict, step: int) -> float:
    """Rises to the final value; configurations with a large y start fast and finish no better (crossing curves)."""
    speed = 0.2 + 2.0 * params["y"]
    return final_value(params) * (1.0 - math.exp(-speed * step)) + 0.01 * math.sin(7 * params["x"] * step)


def curved(params: dict, reporter) -> float:
    value = 0.0
    for step in range(1, MAX_STEPS + 1):
        value = curve_value(params, step)
        reporter.report(value, step)
        if reporter.should_prune():
            raise TrialPruned()
    return value


curved.epochs = MAX_STEPS  # what tune() takes as the last step when a pruner is on


def optuna_pruned_steps(params_in_order: list[dict], pruner: optuna.pruners.BasePruner, study_name: str) -> list[int]:
    """The same curves, in the same order, through a plain Optuna study: the step at which each trial stops.

    The study is named as the pruner sees the run's (Hyperband picks a trial's bracket from the study's name and the
    trial's number; the pruner sees a run's study under its seed's name).
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", pruner=pruner, study_name=study_name)
    stopped = []
    for params in params_in_order:
        trial = study.ask()
        for step in range(1, MAX_STEPS + 1):
            trial.report(curve_value(params, step), step)
            if step < MAX_STEPS and trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                break
        else:
            study.tell(trial, curve_value(params, MAX_STEPS))
        stopped.append(step)
    return stopped


@pytest.mark.parametrize("name, pruner", [
    ("sha", lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)),
    ("median", lambda: optuna.pruners.MedianPruner()),
    ("hyperband", lambda: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=MAX_STEPS, reduction_factor=3)),
])
def test_a_run_prunes_exactly_what_optuna_s_pruner_says(name: str, pruner, space: SearchSpace, tmp_path: Path) -> None:
    result = tune(curved, space, optimizer="random", budget=30, seed=4, out=tmp_path, pruner=name)
    trials = sorted(result.trials, key=lambda t: t.number)
    ours = [t.steps for t in trials]
    assert ours == optuna_pruned_steps([t.params for t in trials], pruner(), "hho-tune-seed-4")
    assert any(steps < MAX_STEPS for steps in ours) and any(steps == MAX_STEPS for steps in ours)
    for trial in trials:
        assert trial.state is (TrialState.COMPLETE if trial.steps == MAX_STEPS else TrialState.PRUNED)


def test_pruned_trials_are_recorded_with_their_epochs_everywhere(space: SearchSpace, tmp_path: Path) -> None:
    result = tune(curved, space, optimizer="tpe", budget=20, seed=1, out=tmp_path, pruner="sha")
    rows = read_trials(result.run_dir)
    study = recorded_trials(str(result.run_dir / "study.journal"), result.run_dir.name)
    curves = (result.run_dir / "learning_curves.csv").read_text().splitlines()[1:]
    for row, frozen in zip(rows, study, strict=True):
        epochs = int(row["epochs"])
        assert frozen.state.name == row["state"] and sorted(frozen.intermediate_values) == list(range(1, epochs + 1))
        mine = [line.split(",") for line in curves if line.split(",")[0] == row["number"]]
        assert [int(line[1]) for line in mine] == list(range(1, epochs + 1))
        assert float(mine[-1][2]) == float(row["value"]) == frozen.value
    run = json.loads((result.run_dir / "run.json").read_text())
    assert run["pruner"] == "sha" and run["max_steps"] == MAX_STEPS
    assert run["epochs_trained"] == sum(int(row["epochs"]) for row in rows) < 20 * MAX_STEPS
    assert run["pruned"] == sum(row["state"] == "PRUNED" for row in rows) > 0
    assert run["best"]["epochs"] == MAX_STEPS
    assert [pair["from_epoch"] for pair in run["rung_correlations"]] == [1, 3]


def test_a_pruned_trial_never_wins_over_one_trained_further() -> None:
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc)
    early = Trial(0, {}, 0.99, TrialState.PRUNED, now, now, curve=((1, 0.99, 1.0),))
    full = Trial(1, {}, 0.80, TrialState.COMPLETE, now, now, curve=tuple((s, 0.8, 1.0) for s in range(1, 9)))
    deeper = Trial(2, {}, 0.85, TrialState.PRUNED, now, now, curve=tuple((s, 0.85, 1.0) for s in range(1, 4)))
    assert best_trial([early, full, deeper], "maximize") is full
    assert [t.number for t in ranked([early, full, deeper], "maximize")] == [1, 2, 0]
    assert best_trial([early, deeper], "maximize") is deeper  # until one trains further, the deepest leads
    assert best_trial([early, full, deeper], "minimize") is full


def test_the_leaderboard_puts_every_complete_trial_above_every_pruned_one(space: SearchSpace, tmp_path: Path) -> None:
    result = tune(curved, space, optimizer="hho", budget=25, seed=2, out=tmp_path, pruner="sha")
    rows = (result.run_dir / "leaderboard.csv").read_text().splitlines()[1:]
    states = [row.split(",")[3] for row in rows]
    assert states == sorted(states, key=lambda s: s != "COMPLETE")
    assert result.best.state is TrialState.COMPLETE


def test_hho_s_rabbit_is_never_a_pruned_trial_once_one_completed(space: SearchSpace) -> None:
    """Pruned hawks rank under the worst completed score told before them, the deeper above the shallower."""
    hho = make("hho", OptimizerSettings(space=space, seed=0, budget=30))
    try:
        first = [hho.ask() for _ in range(5)]
        hho.tell(first[0], 0.5)
        hho.tell(first[1], 0.9)
        hho.tell_pruned(first[2], [(1, 0.99)])  # a lucky first epoch
        hho.tell_pruned(first[3], [(1, 0.2), (2, 0.3), (3, 0.4)])
        hho.tell(first[4], None)
        batch = hho._batch
        scores = batch.scores[:5]
        assert scores[2] < 0.5 and scores[3] < 0.5 and scores[3] > scores[2] > scores[4]
        hho.ask()  # mealpy takes the generation: its rabbit is the best completed one
        assert hho.model.g_best.target.fitness == pytest.approx(0.9)
    finally:
        hho.close()


def test_optuna_samplers_are_told_the_pruned_trial_with_its_curve(space: SearchSpace) -> None:
    tpe = make("tpe", OptimizerSettings(space=space, seed=0, budget=10))
    suggestion = tpe.ask()
    tpe.tell_pruned(suggestion, [(1, 0.3), (2, 0.4)])
    (frozen,) = tpe._study.get_trials()
    assert frozen.state is optuna.trial.TrialState.PRUNED
    assert frozen.intermediate_values == {1: 0.3, 2: 0.4} and frozen.value == 0.4


@pytest.mark.parametrize("pruner, seed", [("sha", 4), ("hyperband", 0)])
def test_a_killed_pruned_run_resumes_to_the_same_decisions(pruner: str, seed: int, space: SearchSpace,
                                                           tmp_path: Path) -> None:
    """Interrupted mid-curve (past its rung at epoch 3), resumed: the same trials, pruned at the same epochs.

    The seeds are ones where the interrupted attempt, were the pruner to see it, would change a
    later decision (its rung values would compete twice, its study trial number would shift
    the brackets): checked by running this test with the attempt left in view, which fails.
    """
    whole = tune(curved, space, optimizer="hho", budget=24, seed=seed, out=tmp_path / "whole", pruner=pruner)

    calls = {"n": 0}

    def interrupted(params: dict, reporter) -> float:
        calls["n"] += 1
        for step in range(1, MAX_STEPS + 1):
            reporter.report(curve_value(params, step), step)
            if calls["n"] >= 8 and step == 4:  # the first trial from the 8th on that passed its rung at epoch 3
                raise KeyboardInterrupt  # as Ctrl-C lands mid-training
            if reporter.should_prune():
                raise TrialPruned()
        return curve_value(params, MAX_STEPS)

    interrupted.epochs = MAX_STEPS
    with pytest.raises(KeyboardInterrupt) as caught:
        tune(interrupted, space, optimizer="hho", budget=24, seed=seed, out=tmp_path / "cut", pruner=pruner)
    resumed = resume(caught.value.run_dir, curved)

    def summary(trials):
        return [(t.number, t.state, t.value, t.steps, t.params) for t in sorted(trials, key=lambda t: t.number)]

    assert summary(resumed.trials) == summary(whole.trials)

    def curve_rows(run_dir: Path) -> list[list[str]]:  # the seconds differ, the rest must not
        return [line.split(",")[:3] for line in (run_dir / "learning_curves.csv").read_text().splitlines()]

    assert curve_rows(caught.value.run_dir) == curve_rows(whole.run_dir)


def test_two_dask_workers_prune_through_the_coordinator(space: SearchSpace, tmp_path: Path) -> None:
    result = tune(curved, space, optimizer="random", budget=16, seed=3, out=tmp_path, pruner="sha", workers=2)
    assert len(result.trials) == 16
    assert any(t.pruned for t in result.trials) and any(t.ok for t in result.trials)
    study = recorded_trials(str(result.run_dir / "study.journal"), result.run_dir.name)
    assert sorted(t.state.name for t in study) == sorted(t.state.value for t in result.trials)
    for trial in result.trials:
        assert [step for step, _, _ in trial.curve] == list(range(1, trial.steps + 1))


def test_plain_objectives_and_reporting_mistakes(space: SearchSpace) -> None:
    plain = evaluate(final_value, space, {"x": 0.1, "y": 0.2}, number=0)
    assert plain.ok and plain.curve == ()

    def backwards(params: dict, reporter) -> float:
        reporter.report(0.5, 2)
        reporter.report(0.6, 1)
        return 0.6

    failed = evaluate(backwards, space, {"x": 0.1, "y": 0.2}, number=1)
    assert failed.failed and "steps must grow" in failed.error and failed.curve[0][:2] == (2, 0.5)

    def optuna_style(params: dict, reporter) -> float:
        reporter.report(0.7, 1)
        raise optuna.TrialPruned()

    pruned = evaluate(optuna_style, space, {"x": 0.1, "y": 0.2}, number=2)
    assert pruned.pruned and pruned.value == 0.7 and pruned.steps == 1

    def diverged(params: dict, reporter) -> float:
        reporter.report(float("nan"), 1)
        assert reporter.should_prune()  # a NaN stops the curve whatever the pruner says
        raise TrialPruned()

    assert evaluate(diverged, space, {"x": 0.1, "y": 0.2}, number=3).failed


def test_rung_correlations_say_when_early_and_late_scores_disagree() -> None:
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc)

    def trial(number: int, values: list[float]) -> Trial:
        state = TrialState.COMPLETE if len(values) == 3 else TrialState.PRUNED
        return Trial(number, {}, values[-1], state, now, now, curve=tuple((s + 1, v, 1.0) for s, v in enumerate(values)))

    agree = [trial(i, [0.1 * i, 0.2 * i, 0.3 * i]) for i in range(1, 6)]
    assert [p["spearman"] for p in rung_correlations(agree)] == [1.0]
    crossing = [trial(i, [0.1 * i, 1.0 - 0.1 * i, 0.5]) for i in range(1, 5)] + [trial(9, [0.05])]
    (first_to_last,) = rung_correlations(crossing)
    assert first_to_last == {"from_epoch": 1, "to_epoch": 3, "trials": 4, "spearman": None}  # a constant end: undefined
    assert rung_correlations([trial(1, [0.3, 0.2])]) == [{"from_epoch": 1, "to_epoch": 2, "trials": 1, "spearman": None}]


@pytest.mark.parametrize("argv, message", [
    (["--pruner", "nosuch"], "unknown pruner 'nosuch'"),
    (["--pruner", "optuna:NoSuchPruner"], "unknown Optuna pruner 'NoSuchPruner'"),
    (["--pruner", "optuna:ThresholdPruner"], "cannot be built without arguments"),
    (["--max-epochs", "4"], "--max-epochs applies with a pruner"),
    (["--pruner", "sha", "--epochs", "4"], "--epochs is the fixed length without a pruner"),
    (["--pruner", "sha", "--max-epochs", "0"], "--max-epochs"),
])
def test_bad_pruning_flags_are_one_line_and_exit_2(argv: list[str], message: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_an_existing_dask_cluster_prunes_through_its_scheduler(space: SearchSpace, tmp_path: Path) -> None:
    """--scheduler: the reports and answers go through the scheduler's queues, not through files."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=40) as cluster:
        result = tune(curved, space, optimizer="tpe", budget=12, seed=6, out=tmp_path, pruner="median",
                      scheduler=cluster.scheduler_address)
    assert len(result.trials) == 12 and any(t.pruned for t in result.trials)
    assert all(t.curve and [s for s, _, _ in t.curve] == list(range(1, t.steps + 1)) for t in result.trials)


def test_compare_prunes_every_run_and_records_it(space: SearchSpace, tmp_path: Path) -> None:
    from hho_tune.compare import compare

    result = compare(curved, space, optimizers=("hho", "random"), seeds=(0, 1), budget=12, out=tmp_path,
                     name="pruned", pruner="sha")
    document = json.loads((result.directory / "compare.json").read_text())
    assert document["pruner"] == "sha"
    for run_file in (result.directory / "runs").glob("*/run.json"):
        run = json.loads(run_file.read_text())
        assert run["pruner"] == "sha" and run["max_steps"] == MAX_STEPS and run["pruned"] > 0


def test_an_epoch_budget_ends_a_pruned_run_at_equal_cost(space: SearchSpace, tmp_path: Path) -> None:
    """--epoch-budget: the run stops once its trials have trained that many epochs, passing it by less than a trial."""
    result = tune(curved, space, optimizer="hho", budget=200, seed=2, out=tmp_path / "a", pruner="sha",
                  epoch_budget=60)
    spent = sum(t.steps for t in result.trials)
    assert 60 <= spent < 60 + MAX_STEPS and spent - result.trials[-1].steps < 60
    assert len(result.trials) < 200 and result.outcome.stop_reason.startswith("epoch budget spent")
    run = json.loads((result.run_dir / "run.json").read_text())
    assert run["status"] == "finished" and run["epochs_trained"] == spent and run["epoch_budget"] == 60

    calls = {"n": 0}

    def interrupted(params: dict, reporter) -> float:
        calls["n"] += 1
        if calls["n"] == 12:
            raise KeyboardInterrupt
        return curved(params, reporter)

    interrupted.epochs = MAX_STEPS
    with pytest.raises(KeyboardInterrupt) as caught:
        tune(interrupted, space, optimizer="hho", budget=200, seed=2, out=tmp_path / "b", pruner="sha", epoch_budget=60)
    resumed = resume(caught.value.run_dir, curved)
    assert [(t.number, t.steps, t.value) for t in resumed.trials] == [(t.number, t.steps, t.value) for t in result.trials]


def test_an_epoch_budget_needs_an_objective_that_counts_epochs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--objective", "hho_tune.benchmarks:sphere", "--epoch-budget", "10", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "--epoch-budget needs an objective that reports its epochs" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()
