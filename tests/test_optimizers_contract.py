"""The contract every optimizer keeps, run against each of them on cheap objectives."""

from __future__ import annotations

from pathlib import Path

import pytest

from hho_tune import SearchSpace, tune
from hho_tune.errors import UsageError
from hho_tune.optimizers.base import OptimizerSettings, make
from tests.conftest import surrogate

OPTIMIZERS = ["hho", "hho-mealpy", "random", "tpe", "mealpy:GWO.OriginalGWO", "optuna:QMCSampler"]


def proposals(name: str, space: SearchSpace, *, seed: int, count: int) -> list[tuple]:
    """The first ``count`` configurations an optimizer proposes, telling it the surrogate's score."""
    optimizer = make(name, OptimizerSettings(space=space, seed=seed, budget=count))
    seen = []
    try:
        for _ in range(count):
            suggestion = optimizer.ask()
            seen.append(space.key(suggestion.params))
            optimizer.tell(suggestion, surrogate(suggestion.params))
    finally:
        optimizer.close()
    return seen


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_exact_budget(name: str, mixed_space: SearchSpace, tmp_path: Path) -> None:
    calls = []

    def objective(params: dict) -> float:
        calls.append(dict(params))
        return surrogate(params)

    result = tune(objective, mixed_space, optimizer=name, budget=23, seed=3, out=tmp_path)
    assert len(calls) == 23
    assert len(result.trials) == 23
    assert [t.number for t in result.trials] == list(range(23))
    keys = [mixed_space.key(c) for c in calls]
    assert len(set(keys)) == 23, "a configuration was trained twice"


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_bounds_and_types_respected(name: str, mixed_space: SearchSpace) -> None:
    for key in proposals(name, mixed_space, seed=1, count=40):
        params = dict(zip(mixed_space.names, key, strict=True))
        for param in mixed_space.params:
            assert param.contains(params[param.name]), (param, params[param.name])
        assert isinstance(params["num_layers"], int) and isinstance(params["decay_steps"], int)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_same_seed_same_sequence(name: str, mixed_space: SearchSpace) -> None:
    first = proposals(name, mixed_space, seed=11, count=30)
    assert first == proposals(name, mixed_space, seed=11, count=30)
    if name != "optuna:QMCSampler":  # a Sobol sequence is the same whatever the seed's scrambling starts with
        assert first != proposals(name, mixed_space, seed=12, count=30)


@pytest.mark.parametrize("name", ["hho", "hho-mealpy", "mealpy:GWO.OriginalGWO"])
def test_cached_answers_cost_no_budget(name: str, tmp_path: Path) -> None:
    # 5 x 5 = 25 configurations: population methods propose known ones again and again.
    space = SearchSpace.from_dict({"parameters": {
        "a": {"type": "int", "low": 1, "high": 5}, "b": {"type": "int", "low": 1, "high": 5},
    }})
    calls = []

    def objective(params: dict) -> float:
        calls.append((params["a"], params["b"]))
        return -((params["a"] - 4) ** 2) - (params["b"] - 2) ** 2

    result = tune(objective, space, optimizer=name, budget=15, seed=0, out=tmp_path)
    assert len(calls) == len(set(calls)) == 15
    assert result.outcome.cached > 0
    assert len(result.trials) == 15


@pytest.mark.parametrize("name", ["hho", "random", "tpe"])
def test_a_run_that_only_proposes_known_configurations_still_ends(name: str, tmp_path: Path) -> None:
    space = SearchSpace.from_dict({"parameters": {"n": {"type": "int", "low": 1, "high": 3}}})
    result = tune(lambda p: float(p["n"]), space, optimizer=name, budget=10, seed=0, out=tmp_path)
    assert sorted(t.params["n"] for t in result.trials) == [1, 2, 3]
    assert "known configurations" in result.outcome.stop_reason


def test_unknown_names_are_refused(mixed_space: SearchSpace) -> None:
    for name in ["hawks", "mealpy:NOPE.Nothing", "mealpy:GWO.Nothing", "optuna:NoSampler", "optuna:"]:
        with pytest.raises(UsageError, match="unknown"):
            make(name, OptimizerSettings(space=mixed_space, seed=0, budget=5))
