"""HHO as the paper has it versus mealpy's OriginalHHO, and the sizing of its generations."""

from __future__ import annotations

import numpy as np
import pytest
from mealpy import FloatVar, Problem

from hho_tune import SearchSpace
from hho_tune.optimizers.base import OptimizerSettings, make
from hho_tune.optimizers.hho import PaperHHO, epochs_for_budget
from tests.conftest import surrogate


def test_mean_position_is_per_dimension_in_the_paper_and_a_scalar_in_mealpy() -> None:
    model = PaperHHO(epoch=2, pop_size=5)
    model.solve(Problem(bounds=FloatVar(lb=(0.0,) * 2, ub=(1.0,) * 2), minmax="min",
                        obj_func=lambda x: float(np.sum(x)), log_to=None), seed=1)
    positions = np.array([agent.solution for agent in model.pop])
    x_m = model.mean_position()
    assert x_m.shape == (2,)
    np.testing.assert_allclose(x_m, positions.mean(axis=0))
    mealpy_x_m = np.mean([agent.solution for agent in model.pop])  # OriginalHHO's line, verbatim
    assert np.ndim(mealpy_x_m) == 0
    assert not np.allclose(x_m, mealpy_x_m)


def test_dive_step_is_a_vector_of_levy_steps_in_the_unit_box() -> None:
    model = PaperHHO(epoch=2, pop_size=5)
    model.solve(Problem(bounds=FloatVar(lb=(0.0,) * 4, ub=(1.0,) * 4), minmax="min",
                        obj_func=lambda x: float(np.sum(x)), log_to=None), seed=1)
    steps = np.array([model.dive_step() for _ in range(200)])
    assert steps.shape == (200, 4)
    # mealpy multiplies one scalar Levy step into every dimension; the paper draws one per dimension,
    # so the ratio between two coordinates is not the ratio of two uniforms in [0, 1].
    assert np.corrcoef(np.abs(steps[:, 0]), np.abs(steps[:, 1]))[0, 1] < 0.5


def test_paper_and_mealpy_hho_share_the_start_and_then_differ() -> None:
    space = SearchSpace.load("search_spaces/lstm_mnist.yaml")

    def sequence(name: str) -> list[tuple]:
        optimizer = make(name, OptimizerSettings(space=space, seed=4, budget=30))
        keys = []
        for _ in range(25):
            suggestion = optimizer.ask()
            keys.append(space.key(suggestion.params))
            optimizer.tell(suggestion, surrogate(suggestion.params))
        optimizer.close()
        return keys

    paper_keys, mealpy_keys = sequence("hho"), sequence("hho-mealpy")
    assert paper_keys[:5] == mealpy_keys[:5]  # the same seeded initial population
    assert paper_keys != mealpy_keys


@pytest.mark.parametrize(("budget", "pop_size"), [(30, 5), (100, 10), (1000, 20)])
def test_epochs_grow_with_the_budget(budget: int, pop_size: int) -> None:
    paper = epochs_for_budget(budget, pop_size, 0.85)
    assert paper * pop_size * 0.85 >= budget - pop_size > (paper - 1) * pop_size * 0.85
    assert epochs_for_budget(10**9, 5, 0.85) == 100_000  # mealpy's own upper limit


@pytest.mark.parametrize("name", ["hho", "hho-mealpy"])
def test_escaping_energy_decays_over_the_real_budget(name: str) -> None:
    """At the end of a 30-trial run the hawks are deep into T: exploitation, not exploration."""
    space = SearchSpace.load("search_spaces/lstm_mnist.yaml")
    for seed in range(8):
        optimizer = make(name, OptimizerSettings(space=space, seed=seed, budget=30))
        seen: set = set()
        while len(seen) < 30:
            suggestion = optimizer.ask()
            seen.add(space.key(suggestion.params))
            optimizer.tell(suggestion, surrogate(suggestion.params))
        details = optimizer.describe()
        optimizer.close()
        # t of the generation in progress when the budget ran out; past T/2, |E| = 2|E0|(1 - t/T) < 1:
        # every hawk exploits, none explores any more.
        t = details["generations_done"] + 1 + details["restarts"] * details["epoch"]
        assert t / details["epoch"] > 0.5, details
