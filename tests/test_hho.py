"""HHO as the paper has it versus mealpy's OriginalHHO, and the sizing of its generations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mealpy import FloatVar, Problem

from hho_tune import SearchSpace
from hho_tune.optimizers.base import OptimizerSettings, make
from hho_tune.optimizers.hho import PaperHHO, epochs_for_budget
from tests.conftest import surrogate

STEPS_SPACE = Path(__file__).parent / "spaces" / "decay_steps.yaml"  # what surrogate reads


def test_mean_position_is_per_dimension_in_the_paper_and_a_scalar_in_mealpy() -> None:
    model = PaperHHO(epoch=2, pop_size=5)
    target = np.array([0.2, 0.7])  # not on the diagonal: a scalar mean cannot stand for the per-dimension one
    model.solve(Problem(bounds=FloatVar(lb=(0.0,) * 2, ub=(1.0,) * 2), minmax="min",
                        obj_func=lambda x: float(np.sum((x - target) ** 2)), log_to=None), seed=1)
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
    space = SearchSpace.load(STEPS_SPACE)

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
    space = SearchSpace.load(STEPS_SPACE)
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


def _drive(optimizer, space: SearchSpace, evaluations: int, *, workers: int) -> tuple[list[tuple], int]:
    """Ask/tell like ``workers`` parallel workers whose latest training always ends first.

    Returns the configurations in the order asked, and how often a dive's Z was asked while a
    move of its generation was still out (a worker that would otherwise have waited).
    """
    asked, pending, early_zs = [], [], 0
    while len(asked) < evaluations or pending:
        if len(asked) < evaluations and len(pending) < workers and optimizer.ready():
            suggestion = optimizer.ask()
            batch, index = optimizer._batch, optimizer._untold[suggestion.token]
            if index >= batch.moves and any(i < batch.moves for i in optimizer._untold.values()):
                early_zs += 1
            asked.append(space.key(suggestion.params))
            pending.append(suggestion)
        else:
            suggestion = pending.pop()  # the newest first: scores arrive out of order
            optimizer.tell(suggestion, surrogate(suggestion.params))
    optimizer.close()
    return asked, early_zs


def test_a_dive_z_starts_as_soon_as_its_y_fails_and_the_sequence_stays_the_serial_one() -> None:
    space = SearchSpace.load(STEPS_SPACE)
    settings = OptimizerSettings(space=space, seed=2, budget=60)
    serial, _ = _drive(make("hho", settings), space, 60, workers=1)
    parallel, early_zs = _drive(make("hho", settings), space, 60, workers=2)
    assert parallel == serial
    assert early_zs > 0


def test_a_dive_s_y_names_its_z_before_any_score_and_the_z_asked_later_is_that_one() -> None:
    """The runner plans with ``follow_up`` (a Y that may lead to a Z starts early): it must be the real Z."""
    space = SearchSpace.load(STEPS_SPACE)
    optimizer = make("hho", OptimizerSettings(space=space, seed=2, budget=60))
    announced, zs = {}, 0
    for _ in range(60):
        suggestion = optimizer.ask()
        batch, index = optimizer._batch, optimizer._untold[suggestion.token]
        if index < batch.moves:
            assert (suggestion.follow_up is not None) == (index in batch.follow_ups)
            if suggestion.follow_up is not None:
                announced[(id(batch), index)] = space.key(suggestion.follow_up)
        else:
            assert suggestion.follow_up is None
            move = next(m for m, i in batch.followed_by.items() if i == index)
            assert space.key(suggestion.params) == announced[(id(batch), move)]
            zs += 1
        optimizer.tell(suggestion, surrogate(suggestion.params))
    optimizer.close()
    assert zs > 0 and len(announced) > zs  # some Ys announced a Z that was not needed: Y improved on its hawk
