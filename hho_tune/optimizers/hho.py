"""Harris Hawks Optimization: the paper's algorithm (``hho``) and mealpy's as it is (``hho-mealpy``).

``hho`` follows Heidari et al. 2019 (FGCS 97:849-872) where mealpy's ``OriginalHHO`` departs
from it, and changes nothing else:

- X_m, the hawks' mean position (Eq. 2 and the hard besiege with rapid dives, Eq. 11), is the
  per-dimension mean of the population; mealpy averages every coordinate of every hawk into
  one scalar.
- The rapid dive Z = Y + S x LF(D) (Eq. 8) uses a random vector S in [0, 1]^D and a Levy step
  drawn per dimension; mealpy draws S in [lb, ub] (the same thing on our unit cube) and one
  scalar Levy step shared by all dimensions.
- Z is evaluated only when Y did not improve on the hawk (Eq. 10 reads "Y if F(Y) better, else
  Z if F(Z) better"); mealpy evaluates both. Hawks whose dive already has a score are not
  evaluated a second time. Both save budget and change no position.

The escaping energy E = 2 E0 (1 - t/T) decays over mealpy's ``epoch`` T, so T is sized from the
budget: see :func:`epochs_for_budget`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from mealpy.swarm_based.HHO import OriginalHHO
from mealpy.utils.target import Target

from hho_tune.optimizers.base import OptimizerSettings, register
from hho_tune.optimizers.mealpy_bridge import FollowUp, MealpyAskTell

DEFAULT_POP_SIZE = 5  # mealpy's minimum; leaves 25 of 30 evaluations for about 5 generations
MEALPY_MAX_EPOCH = 100_000  # mealpy refuses more
# New configurations per hawk per generation, measured over whole runs with the runner's
# cache on the default space (bench/hho_epoch_calibration.py): rapid dives cost 1 or 2
# points, exploration 1, and mealpy's re-evaluation of known positions is free.
PAPER_EVALUATIONS_PER_HAWK = 0.85
MEALPY_EVALUATIONS_PER_HAWK = 1.15


def epochs_for_budget(budget: int, pop_size: int, evaluations_per_hawk: float) -> int:
    """mealpy's ``epoch`` T so that the escaping energy E = 2 E0 (1 - t/T) decays over the real run.

    Rounded up: the budget tends to end just before t = T, never long after it; a run that
    finishes its T generations early is restarted by the bridge.
    """
    after_initial_population = max(budget - pop_size, 1)
    epochs = math.ceil(after_initial_population / (evaluations_per_hawk * pop_size))
    return min(max(1, epochs), MEALPY_MAX_EPOCH)


class PaperHHO(OriginalHHO):
    """mealpy's OriginalHHO with the mean position and the rapid dive of the paper.

    A generation is one batch of independent points: every hawk's move (for a rapid dive,
    its Y), each dive's Z following its Y when Y did not improve on the hawk. Z's position is
    drawn together with Y's, as the paper writes them (Eq. 7-8), so it is fixed before any
    score is known. The bridge sets :attr:`batch_evaluator` so that parallel workers train
    the batch at once and start a Z as soon as its Y is scored; without it (plain
    ``model.solve``) the points are evaluated one by one, moves first, then the Zs. Either
    way the positions are the same: within a generation nothing depends on another hawk's
    new score.
    """

    batch_evaluator: Callable[..., tuple[list[float], dict[int, tuple[np.ndarray, float]]]] | None = None

    def mean_position(self) -> np.ndarray:
        """X_m(t) = (1/N) sum_i X_i(t), per dimension (Eq. 2)."""
        return np.mean([agent.solution for agent in self.pop], axis=0)

    def dive_step(self) -> np.ndarray:
        """S x LF(D): a random vector in [0, 1]^D times a D-dimensional Levy step (Eq. 8-9)."""
        dims = self.problem.n_dims
        levy = self.get_levy_flight_step(beta=1.5, multiplier=0.01, size=dims, case=-1)
        return self.generator.uniform(0.0, 1.0, dims) * levy

    def _target(self, score: float) -> Target:
        return Target(objectives=[score], weights=self.problem.obj_weights)

    def evaluate_batch(
        self, positions: list[np.ndarray], dives: dict[int, np.ndarray] | None = None,
    ) -> tuple[list[Target], dict[int, tuple[np.ndarray, Target]]]:
        """Targets of independent positions, and of the Zs of the dives whose Y failed.

        ``dives`` maps a hawk's index in ``positions`` (its Y) to its Z. Z is evaluated only
        when Y does not beat the hawk (Eq. 10).
        """
        dives = dives or {}

        def y_failed(idx: int) -> Callable[[float], bool]:
            hawk = self.pop[idx].target
            return lambda score: not self.compare_target(self._target(score), hawk, self.problem.minmax)

        follow_ups = {idx: FollowUp(z, y_failed(idx)) for idx, z in dives.items()}
        if not positions:
            return [], {}
        if self.batch_evaluator is None:
            targets = [self.problem.get_target(position) for position in positions]
            z_targets = {}
            for idx in sorted(follow_ups):
                if follow_ups[idx].wanted(targets[idx].fitness):
                    z_targets[idx] = (dives[idx], self.problem.get_target(dives[idx]))
        else:
            scores, z_scores = self.batch_evaluator(positions, follow_ups)
            targets = [self._target(score) for score in scores]
            z_targets = {idx: (z, self._target(score)) for idx, (z, score) in z_scores.items()}
        self.nfe_counter += len(positions) + len(z_targets)
        return targets, z_targets

    def initialization(self) -> None:
        """The initial hawks, drawn one by one as mealpy does, evaluated as one batch."""
        if self.pop is None:
            agents = [self.generate_empty_agent() for _ in range(self.pop_size)]
            targets, _ = self.evaluate_batch([a.solution for a in agents])
            for agent, target in zip(agents, targets, strict=True):
                agent.target = target
            self.pop = agents

    def evolve(self, epoch: int) -> None:
        """mealpy's evolve, but for :meth:`mean_position`, :meth:`dive_step` and the one batch."""
        moves: list[np.ndarray] = []  # each hawk's move, or its dive's Y
        dives: dict[int, np.ndarray] = {}  # hawk -> its dive's Z = Y + S x LF(D) (Eq. 8)
        for idx in range(0, self.pop_size):
            E0 = 2 * self.generator.uniform() - 1
            E = 2 * E0 * (1.0 - epoch * 1.0 / self.epoch)
            J = 2 * (1 - self.generator.uniform())
            if np.abs(E) >= 1:  # exploration, Eq. (1)
                if self.generator.random() >= 0.5:
                    X_rand = self.pop[self.generator.integers(0, self.pop_size)].solution.copy()
                    r1, r2 = self.generator.uniform(), self.generator.uniform()
                    pos_new = X_rand - r1 * np.abs(X_rand - 2 * r2 * self.pop[idx].solution)
                else:
                    pos_new = (self.g_best.solution - self.mean_position()) - self.generator.uniform() * \
                              (self.problem.lb + self.generator.uniform() * (self.problem.ub - self.problem.lb))
            elif self.generator.random() >= 0.5:  # besiege without dives, Eq. (4) and (6)
                delta_X = self.g_best.solution - self.pop[idx].solution
                if np.abs(E) >= 0.5:
                    pos_new = delta_X - E * np.abs(J * self.g_best.solution - self.pop[idx].solution)
                else:
                    pos_new = self.g_best.solution - E * np.abs(delta_X)
            else:  # besiege with progressive rapid dives: Y and Z, Eq. (7)-(8) and (10)-(11)
                anchor = self.pop[idx].solution if np.abs(E) >= 0.5 else self.mean_position()
                pos_new = self.g_best.solution - E * np.abs(J * self.g_best.solution - anchor)
                pos_new = self.correct_solution(pos_new)
                dives[idx] = self.correct_solution(pos_new + self.dive_step())
            moves.append(self.correct_solution(pos_new))
        targets, z_targets = self.evaluate_batch(moves, dives)
        pop_new = [self.generate_empty_agent(position) for position in moves]
        for agent, target in zip(pop_new, targets, strict=True):
            agent.target = target
        for idx, (z, z_target) in z_targets.items():  # Y failed: Z if Z beats the hawk, else the hawk stays
            if self.compare_target(z_target, self.pop[idx].target, self.problem.minmax):
                pop_new[idx] = self.generate_empty_agent(z)
                pop_new[idx].target = z_target
            else:
                pop_new[idx] = self.pop[idx].copy()
        self.pop = self.greedy_selection_population(self.pop, pop_new, self.problem.minmax)


def _hho_factory(model_class: type[OriginalHHO], evaluations_per_hawk: float) -> Any:
    def factory(name: str, settings: OptimizerSettings) -> MealpyAskTell:
        pop_size = settings.pop_size or DEFAULT_POP_SIZE
        epoch = epochs_for_budget(settings.budget, pop_size, evaluations_per_hawk)
        return MealpyAskTell(name, lambda: model_class(epoch=epoch, pop_size=pop_size), settings)

    return factory


register("hho", _hho_factory(PaperHHO, PAPER_EVALUATIONS_PER_HAWK))
register("hho-mealpy", _hho_factory(OriginalHHO, MEALPY_EVALUATIONS_PER_HAWK))
