"""The loop: failures are data, never crashes; the budget counts trainings only."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from hho_tune import SearchSpace, tune
from hho_tune.optimizers.base import OptimizerSettings, make
from hho_tune.results import read_trials
from hho_tune.runner import TrialListener, run_loop
from hho_tune.trial import Trial, TrialState
from tests.conftest import surrogate


def test_exceptions_and_non_finite_values_are_failed_trials(mixed_space: SearchSpace, tmp_path: Path) -> None:
    calls = {"n": 0}

    def flaky(params: dict) -> float:
        calls["n"] += 1
        if calls["n"] % 4 == 1:
            raise RuntimeError("out of memory, pretend")
        if calls["n"] % 4 == 2:
            return math.nan
        return surrogate(params)

    result = tune(flaky, mixed_space, optimizer="random", budget=12, seed=0, out=tmp_path)
    states = [t.state for t in result.trials]
    assert len(states) == 12
    assert states.count(TrialState.FAIL) == 6
    assert result.best is not None and result.best.state is TrialState.COMPLETE
    errors = [t.error for t in result.trials if not t.ok]
    assert any("RuntimeError: out of memory, pretend" in e for e in errors)
    assert any("non-finite value nan" in e for e in errors)
    rows = read_trials(result.run_dir)
    assert [r["state"] for r in rows] == [s.value for s in states]
    assert all(r["value"] == "" for r in rows if r["state"] == "FAIL")


def test_a_failed_trial_never_wins_even_when_minimizing(mixed_space: SearchSpace, tmp_path: Path) -> None:
    def objective(params: dict) -> float:
        if params["num_layers"] == 1:
            raise ValueError("diverged")
        return surrogate(params)

    result = tune(objective, mixed_space, optimizer="random", budget=15, seed=2, out=tmp_path, direction="minimize")
    assert result.best is not None and result.best.ok
    assert result.best.value == min(t.value for t in result.trials if t.ok)


def test_consecutive_failures_stop_the_run_with_everything_kept(mixed_space: SearchSpace, tmp_path: Path) -> None:
    def broken(params: dict) -> float:
        raise RuntimeError("no GPU, pretend")

    result = tune(broken, mixed_space, optimizer="hho", budget=30, seed=0, out=tmp_path, max_failures=4)
    assert len(result.trials) == 4
    assert "4 failed trials in a row" in result.outcome.stop_reason
    assert result.best is None
    assert len(read_trials(result.run_dir)) == 4


def test_interrupt_propagates_and_keeps_finished_trials(mixed_space: SearchSpace, tmp_path: Path) -> None:
    calls = {"n": 0}

    def objective(params: dict) -> float:
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return surrogate(params)

    with pytest.raises(KeyboardInterrupt):
        tune(objective, mixed_space, optimizer="hho", budget=10, seed=0, out=tmp_path)
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert len(read_trials(run_dir)) == 3
    assert '"status": "interrupted"' in (run_dir / "run.json").read_text()


def test_listeners_hear_each_trial_once_in_order(mixed_space: SearchSpace) -> None:
    heard: list[int] = []

    class Listener(TrialListener):
        def on_trial(self, trial: Trial, best: Trial | None) -> None:
            heard.append(trial.number)
            assert best is not None and best.value >= trial.value

    optimizer = make("tpe", OptimizerSettings(space=mixed_space, seed=0, budget=9))
    outcome = run_loop(surrogate, mixed_space, optimizer, budget=9, listeners=[Listener()])
    assert heard == list(range(9))
    assert outcome.evaluations == 9
