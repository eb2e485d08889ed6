"""HHO as the paper has it versus mealpy's OriginalHHO, and the sizing of its generations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mealpy import FloatVar, Problem
from mealpy.swarm_based.HHO import OriginalHHO

from hho_tune import SearchSpace
from hho_tune.optimizers.base import OptimizerSettings, make
from hho_tune.optimizers.hho import AuthorsHHO, epochs_for_budget
from hho_tune.space import Param
from tests.conftest import surrogate

STEPS_SPACE = Path(__file__).parent / "spaces" / "decay_steps.yaml"  # what surrogate reads


def test_mean_position_is_per_dimension_in_the_paper_and_a_scalar_in_mealpy() -> None:
    model = AuthorsHHO(epoch=2, pop_size=5)
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
    model = AuthorsHHO(epoch=2, pop_size=5)
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


# -- the authors' algorithm: each difference from mealpy's OriginalHHO -------------------------

def _shifted_sphere_problem(dims: int, minmax: str = "min") -> Problem:
    optimum = np.linspace(-0.6, 0.7, dims)  # off the centre and off the diagonal
    sign = 1.0 if minmax == "min" else -1.0
    return Problem(bounds=FloatVar(lb=(-1.0,) * dims, ub=(1.0,) * dims), minmax=minmax,
                   obj_func=lambda x: sign * float(np.sum((x - optimum) ** 2)), log_to=None)


class _Recorded(AuthorsHHO):
    """Records each generation: the hawks before, the batch evaluated, the hawks after."""

    def evolve(self, epoch: int) -> None:
        self.before = [agent.copy() for agent in self.pop]
        super().evolve(epoch)
        self.generations.append((self.before, self.batch, [agent.copy() for agent in self.pop]))

    def evaluate_batch(self, positions, dives=None):
        targets, z_targets = super().evaluate_batch(positions, dives)
        self.batch = ([p.copy() for p in positions], dict(dives or {}), targets, z_targets)
        return targets, z_targets


def _run_recorded(minmax: str = "min") -> _Recorded:
    model = _Recorded(epoch=12, pop_size=10)
    model.generations = []
    model.solve(_shifted_sphere_problem(4, minmax), seed=3)
    return model


@pytest.mark.parametrize("minmax", ["min", "max"])
def test_moves_replace_the_hawk_unconditionally_and_only_dives_are_greedy(minmax: str) -> None:
    """HHO.m writes exploration and besiege moves over the hawk; a dive keeps the hawk unless Y or Z is better."""
    model = _run_recorded(minmax)
    sign = 1.0 if minmax == "min" else -1.0  # fitness is lower-better in min mode
    worse_moves_taken = 0
    for before, (moves, dives, targets, z_targets), after in model.generations:
        for idx, hawk in enumerate(before):
            old, new_fitness = hawk.target.fitness, targets[idx].fitness
            if idx not in dives:
                np.testing.assert_array_equal(after[idx].solution, moves[idx])
                worse_moves_taken += sign * (new_fitness - old) > 0
            elif sign * (new_fitness - old) < 0:  # Y strictly better: Y
                np.testing.assert_array_equal(after[idx].solution, moves[idx])
            elif idx in z_targets and sign * (z_targets[idx][1].fitness - old) < 0:  # else Z if strictly better
                np.testing.assert_array_equal(after[idx].solution, z_targets[idx][0])
            else:  # else the hawk stays
                np.testing.assert_array_equal(after[idx].solution, hawk.solution)
    assert worse_moves_taken > 0  # mealpy's greedy selection would have refused every one of these


def test_mealpy_keeps_every_hawk_that_a_move_does_not_beat() -> None:
    """The contrast: in OriginalHHO no hawk ever gets worse from one generation to the next."""
    class Watched(OriginalHHO):
        def evolve(self, epoch: int) -> None:
            before = [agent.target.fitness for agent in self.pop]
            super().evolve(epoch)
            self.worsened += sum(a.target.fitness > b for a, b in zip(self.pop, before, strict=True))

    model = Watched(epoch=12, pop_size=10)
    model.worsened = 0
    model.solve(_shifted_sphere_problem(4), seed=3)
    assert model.worsened == 0


def test_the_rabbit_is_the_best_position_any_hawk_has_held() -> None:
    model = _run_recorded()
    held = [agent.target.fitness for before, _, after in model.generations for agent in [*before, *after]]
    assert model.g_best.target.fitness == min(held)


def test_dives_are_evaluated_z_only_when_y_fails_and_improvement_is_strict() -> None:
    model = _run_recorded()
    for before, (_, dives, targets, z_targets), _ in model.generations:
        for idx in dives:
            y_failed = not targets[idx].fitness < before[idx].target.fitness  # a tie is a failure, as in HHO.m
            assert (idx in z_targets) == y_failed
    tie = model._target(model.pop[0].target.fitness)
    assert not model.improves(tie, model.pop[0].target)
    assert OriginalHHO.compare_target(tie, model.pop[0].target, "max")  # mealpy counts a tie as better in max mode


def test_levy_step_is_the_code_s_per_dimension_with_sigma_as_the_deviation() -> None:
    """HHO.m: u = randn(1, d) sigma, v = randn(1, d), step = u / |v|^(1/beta), no 0.01."""
    import math

    model = AuthorsHHO(epoch=2, pop_size=5)
    model.generator = np.random.default_rng(11)
    step = model.levy_step(6)
    beta = 1.5
    sigma = (math.gamma(1 + beta) * math.sin(math.pi * beta / 2)
             / (math.gamma((1 + beta) / 2) * beta * 2 ** ((beta - 1) / 2))) ** (1 / beta)
    reference = np.random.default_rng(11)
    u, v = reference.normal(size=6) * sigma, reference.normal(size=6)
    np.testing.assert_allclose(step, u / np.abs(v) ** (1 / beta))
    model.generator = np.random.default_rng(11)
    mealpy_step = model.get_levy_flight_step(beta=1.5, multiplier=0.01, size=6, case=-1)  # what OriginalHHO draws
    np.testing.assert_allclose(mealpy_step, 0.01 * sigma * step)  # sigma squared as the deviation, and 0.01


def test_the_energy_counts_generations_from_zero_as_the_code_does() -> None:
    """E1 = 2 (1 - t/T) with t from 0: with T = 1 the only generation may explore; mealpy's E is then 0."""
    model = AuthorsHHO(epoch=1, pop_size=5)
    model.generator = np.random.default_rng(0)
    energies = [abs(model.escaping_energy(1)) for _ in range(200)]
    assert max(energies) > 1.9
    model = AuthorsHHO(epoch=4, pop_size=5)
    model.generator = np.random.default_rng(0)
    assert max(abs(model.escaping_energy(4)) for _ in range(200)) <= 2 * (1 - 3 / 4)


def test_hawks_search_a_box_centred_on_the_origin() -> None:
    """The bridge gives mealpy [-1, 1]^d and decodes its centre to the centre of every range."""
    from hho_tune.optimizers.mealpy_bridge import to_unit_cube

    space = SearchSpace.load(STEPS_SPACE)
    optimizer = make("hho", OptimizerSettings(space=space, seed=0, budget=10))
    suggestion = optimizer.ask()
    np.testing.assert_allclose(optimizer.model.problem.lb, -1.0)
    np.testing.assert_allclose(optimizer.model.problem.ub, 1.0)
    optimizer.tell(suggestion, 0.0)
    optimizer.close()
    np.testing.assert_allclose(to_unit_cube(np.array([-1.0, 0.0, 1.0, 3.0])), [0.0, 0.5, 1.0, 1.0])


@pytest.mark.parametrize("name", ["hho", "hho-mealpy"])
def test_no_pull_to_the_lower_corner(name: str) -> None:
    """With the optimum in the middle, few proposals sit at the lower corner, and no more than at the upper one.

    On the former [0, 1] box, 12-18% of ``hho``'s proposals had most coordinates in the lowest
    2.5% of their range here.
    """
    dims = 10
    space = SearchSpace(params=tuple(Param(f"x{i}", "float", -100.0, 100.0) for i in range(dims)))
    low_corner = high_corner = asked = 0
    for seed in range(3):
        optimizer = make(name, OptimizerSettings(space=space, seed=seed, budget=600, pop_size=10))
        for _ in range(600):
            suggestion = optimizer.ask()
            x = np.array([suggestion.params[f"x{i}"] for i in range(dims)])
            low_corner += np.mean(x < -95) > 0.5
            high_corner += np.mean(x > 95) > 0.5
            asked += 1
            optimizer.tell(suggestion, -float(np.sum((x - 7.0) ** 2)))
        optimizer.close()
    assert low_corner / asked < 0.02
    assert low_corner <= 3 * high_corner + 10


def test_hho_beats_random_search_on_a_shifted_sphere() -> None:
    """Optimum at seeded interior points, 2-D, 30 evaluations: the suite's smallest case, 10 instances."""
    from hho_tune.benchmarks import shifted_sphere_2d

    def final_best(name: str, seed: int) -> float:
        objective = shifted_sphere_2d.with_seed(seed)
        space = objective.default_space
        optimizer = make(name, OptimizerSettings(space=space, seed=seed, budget=30))
        seen, best = set(), float("inf")
        while len(seen) < 30:
            suggestion = optimizer.ask()
            value = objective(suggestion.params)
            if space.key(suggestion.params) not in seen:
                seen.add(space.key(suggestion.params))
                best = min(best, value)
            optimizer.tell(suggestion, -value)
        optimizer.close()
        return best

    wins = sum(final_best("hho", seed) < final_best("random", seed) for seed in range(10))
    assert wins >= 8
