"""The loop: failures are data, never crashes; the budget counts trainings only."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from hho_tune import SearchSpace, tune
from hho_tune.optimizers.base import Optimizer, OptimizerSettings, Suggestion, make
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


class TwoAtOnce:
    """Room for two trainings, run in this process first in, first out; records what was submitted."""

    capacity = 2

    def __init__(self, objective, space: SearchSpace) -> None:
        from hho_tune.executors import InlineExecutor

        self.inner = InlineExecutor(objective, space)
        self.submitted: list[tuple[int, int]] = []  # (trial number, num_layers)

    def submit(self, job) -> None:
        self.submitted.append((job.number, job.params["num_layers"]))
        self.inner.submit(job)

    def wait_any(self):
        return self.inner.wait_any()

    def cancel_all(self) -> None:
        self.inner.cancel_all()

    def close(self) -> None:
        self.inner.close()


def _layers(params: dict) -> float:
    return float(params["num_layers"])


def _drive(space: SearchSpace, name: str, objective=surrogate, *, executor=None, cost=None, budget: int = 20,
           max_failures: int = 5):
    optimizer = make(name, OptimizerSettings(space=space, seed=8, budget=budget))
    return run_loop(objective, space, optimizer, budget=budget, executor=executor, cost=cost, max_failures=max_failures)


def test_a_settled_batch_starts_its_costliest_trainings_first_with_unchanged_trials(mixed_space: SearchSpace) -> None:
    """HHO's generation is settled before it is scored: the longest training starts first, numbers keep ask order."""
    serial = _drive(mixed_space, "hho")
    executor = TwoAtOnce(surrogate, mixed_space)
    parallel = _drive(mixed_space, "hho", executor=executor, cost=_layers)
    assert sorted((t.number, tuple(sorted(t.params.items())), t.value) for t in parallel.trials) == \
        sorted((t.number, tuple(sorted(t.params.items())), t.value) for t in serial.trials)
    first_batch = executor.submitted[:5]  # the initial population: 5 hawks, one batch
    assert sorted(number for number, _ in first_batch) == [0, 1, 2, 3, 4]
    assert [layers for _, layers in first_batch] == sorted((layers for _, layers in first_batch), reverse=True)
    assert [n for n, _ in executor.submitted] != sorted(n for n, _ in executor.submitted), "nothing was reordered"


@pytest.mark.parametrize(("name", "cost"), [("hho", None), ("tpe", _layers)])
def test_without_a_cost_or_a_settled_batch_trainings_start_in_asking_order(mixed_space: SearchSpace, name: str,
                                                                            cost) -> None:
    executor = TwoAtOnce(surrogate, mixed_space)
    _drive(mixed_space, name, executor=executor, cost=cost)
    numbers = [number for number, _ in executor.submitted]
    assert numbers == sorted(numbers) == list(range(20))


def test_a_failure_stop_trains_nothing_that_was_only_asked_ahead(mixed_space: SearchSpace) -> None:
    def broken(params: dict) -> float:
        raise RuntimeError("no GPU, pretend")

    executor = TwoAtOnce(broken, mixed_space)
    outcome = _drive(mixed_space, "hho", broken, executor=executor, cost=_layers, max_failures=2)
    assert "2 failed trials in a row" in outcome.stop_reason
    assert len(outcome.trials) == len(executor.submitted) <= 3  # the one in flight at the stop still ends
    assert {t.number for t in outcome.trials} < {0, 1, 2, 3, 4}  # a resume numbers the skipped ones as a serial run


class OneSettledBatch(Optimizer):
    """Proposes a fixed batch, all settled before any score; follow-ups as HHO's dives announce them."""

    name = "one-settled-batch"

    def __init__(self, batch: list[tuple[dict, dict | None]]) -> None:
        self.batch = batch
        self.asked = 0

    def ask(self) -> Suggestion | None:
        if self.asked == len(self.batch):
            return None
        params, follow_up = self.batch[self.asked]
        self.asked += 1
        return Suggestion(params=params, token=self.asked, follow_up=follow_up)

    def tell(self, suggestion: Suggestion, score: float | None) -> None:
        """Nothing to learn."""

    def settled(self) -> int:
        return len(self.batch) - self.asked


def test_a_training_that_may_lead_to_another_starts_before_an_equally_long_one(mixed_space: SearchSpace) -> None:
    """The chain counts: a 1-layer Y whose Z has 2 layers (3 in all) goes before a 2-layer move, then 1 layer."""
    def config(layers: int, n: int) -> dict:
        return {"learning_rate": 10 ** -(1 + n / 4), "decay_steps": 100 + n, "num_layers": layers}

    batch = [(config(1, 0), None), (config(2, 1), None), (config(1, 2), config(2, 3))]
    executor = TwoAtOnce(surrogate, mixed_space)
    outcome = run_loop(surrogate, mixed_space, OneSettledBatch(batch), budget=3, executor=executor, cost=_layers)
    assert [number for number, _ in executor.submitted] == [2, 1, 0]
    assert sorted(t.number for t in outcome.trials) == [0, 1, 2]


class ReleasesAFollowUp(OneSettledBatch):
    """Like HHO's dive: telling the first move's score settles its follow-up, asked after every move."""

    def tell(self, suggestion: Suggestion, score: float | None) -> None:
        if suggestion.token == 1:
            self.batch.append((suggestion.follow_up, None))


def test_a_released_follow_up_competes_with_the_moves_still_queued(mixed_space: SearchSpace) -> None:
    """A costly Z released while cheaper moves wait starts before them; it keeps the last number, as asked."""
    def config(layers: int, n: int) -> dict:
        return {"learning_rate": 10 ** -(1 + n / 4), "decay_steps": 100 + n, "num_layers": layers}

    batch = [(config(1, 0), config(3, 9)), (config(2, 1), None), (config(2, 2), None), (config(2, 3), None)]
    executor = TwoAtOnce(surrogate, mixed_space)
    outcome = run_loop(surrogate, mixed_space, ReleasesAFollowUp(batch), budget=5, executor=executor, cost=_layers)
    assert [number for number, _ in executor.submitted] == [0, 1, 4, 2, 3]
    assert {t.number: t.params["num_layers"] for t in outcome.trials} == {0: 1, 1: 2, 2: 2, 3: 2, 4: 3}
