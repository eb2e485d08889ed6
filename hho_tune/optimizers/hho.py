"""Harris Hawks Optimization: the authors' algorithm (``hho``) and mealpy's as it is (``hho-mealpy``).

``hho`` is HHO as its authors wrote it, in ``HHO.m`` of the first author's public repository
(aliasgharheidaricom/Harris-Hawks-Optimization-Algorithm-and-Applications; Heidari et al.
2019, FGCS 97:849-872), built on mealpy's ``OriginalHHO``. Where mealpy departs from that code,
``hho`` follows the code, and says so here (each point has a test in tests/test_hho.py):

- **Which moves replace the hawk.** Exploration (Eq. 1), soft besiege (Eq. 4) and hard besiege
  (Eq. 6) replace the hawk's position unconditionally, better or worse; only the two rapid
  dives (Eq. 10-11) are greedy: Y replaces the hawk if it is strictly better, else Z if Z is
  strictly better, else the hawk stays. mealpy keeps every old position that the new one does
  not beat (greedy selection after every move), which turns exploration into a local search.
- **The rabbit** is the best position any hawk has held (mealpy's global best, as in the code:
  the rabbit is updated from every hawk's position at the start of each iteration).
- **X_m**, the hawks' mean position (Eq. 2 and Eq. 11), is the per-dimension mean (``mean(X)``);
  mealpy averages every coordinate of every hawk into one scalar.
- **The dive's Z = Y + S x LF(D)** (Eq. 8): S is a random vector in [0, 1]^D and the Levy step
  is drawn per dimension with sigma as its standard deviation (``Levy(dim)``); mealpy draws S in
  [lb, ub], one scalar Levy step for every dimension, and uses sigma squared as the deviation.
- **Z is evaluated only when Y fails** (Eq. 10), as the code does; mealpy evaluates both, and
  evaluates every hawk again each generation. Neither changes a position; both save budget.
- **The energy** E = 2 E0 (1 - t/T) counts t from 0 as the code does (the first generation
  explores with |E| up to 2); mealpy counts from 1, so its last generation has E = 0.

What remains different from the authors' code, and why:

- **One generation is one batch.** The MATLAB loop updates the hawks in place, so a later hawk's
  X_m and X_rand can include an earlier hawk's new position of the same iteration. Here every
  hawk of a generation moves from the generation's start (X_m and the random hawk are taken
  from it), so that a generation's trainings are independent and parallel workers can run them
  at once. The rabbit is fixed within an iteration in both.
- **The Levy step has the code's size, in the box's units.** The paper's Eq. 9 multiplies it by
  0.01; the code does not, and neither does ``hho``. The code's step is in the problem's own
  units, so how large it is against the box differs from function to function (0.35% of the
  [-100, 100] box of F1, 7% of Rastrigin's [-5.12, 5.12]); ``hho`` takes it in the units of
  its [-1, 1] box. Measured on the shifted suite (bench/RESULTS.md), the paper's 0.01 made the
  dives too short to matter: on a 5-D shifted sphere at 100 evaluations ``hho`` then did no
  better than random search (11 of 20 seeds), with the code's size it did (14 of 20).
- **Y and Z are clipped to the box before they are evaluated**: the search space decodes only
  inside it. The code evaluates them unclipped and clips at the next iteration.

The escaping energy decays over mealpy's ``epoch`` T, so T is sized from the budget: see
:func:`epochs_for_budget`.
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
# cache on the default space (bench/hho_epoch_calibration.py): a move costs 1, a rapid dive
# 1 or 2 (Z only when Y fails), and mealpy's re-evaluation of known positions is free.
AUTHORS_EVALUATIONS_PER_HAWK = 1.05
MEALPY_EVALUATIONS_PER_HAWK = 1.2
LEVY_BETA = 1.5
LEVY_MULTIPLIER = 1.0  # the code's; the paper's Eq. 9 has 0.01 (see the module docstring)


def epochs_for_budget(budget: int, pop_size: int, evaluations_per_hawk: float) -> int:
    """mealpy's ``epoch`` T so that the escaping energy E = 2 E0 (1 - t/T) decays over the real run.

    Rounded up: the budget tends to end just before t = T, never long after it; a run that
    finishes its T generations early is restarted by the bridge.
    """
    after_initial_population = max(budget - pop_size, 1)
    epochs = math.ceil(after_initial_population / (evaluations_per_hawk * pop_size))
    return min(max(1, epochs), MEALPY_MAX_EPOCH)


class AuthorsHHO(OriginalHHO):
    """HHO as ``HHO.m`` has it, one generation at a time (see the module docstring).

    A generation is one batch of independent points: every hawk's move (for a rapid dive,
    its Y), and each dive's Z, following its Y when Y did not improve on the hawk. Z's position
    is drawn together with Y's, as the code draws them, so it is fixed before any score is
    known. The bridge sets :attr:`batch_evaluator` so that parallel workers train the batch at
    once and start a Z as soon as its Y is scored; without it (plain ``model.solve``) the
    points are evaluated one by one, moves first, then the Zs. Either way the positions are
    the same: within a generation nothing depends on another hawk's new score.
    """

    batch_evaluator: Callable[..., tuple[list[float], dict[int, tuple[np.ndarray, float]]]] | None = None

    def mean_position(self) -> np.ndarray:
        """X_m(t) = (1/N) sum_i X_i(t), per dimension (Eq. 2)."""
        return np.mean([agent.solution for agent in self.pop], axis=0)

    def levy_step(self, dims: int) -> np.ndarray:
        """LF(D) of Eq. 9: u sigma / |v|^(1/beta) per dimension, u, v standard normal, times the multiplier."""
        beta = LEVY_BETA
        sigma = (math.gamma(1 + beta) * math.sin(math.pi * beta / 2)
                 / (math.gamma((1 + beta) / 2) * beta * 2 ** ((beta - 1) / 2))) ** (1 / beta)
        u = self.generator.normal(0.0, 1.0, dims) * sigma
        v = self.generator.normal(0.0, 1.0, dims)
        return LEVY_MULTIPLIER * u / np.abs(v) ** (1 / beta)

    def dive_step(self) -> np.ndarray:
        """S x LF(D): a random vector in [0, 1]^D times a D-dimensional Levy step (Eq. 8)."""
        dims = self.problem.n_dims
        return self.generator.uniform(0.0, 1.0, dims) * self.levy_step(dims)

    def escaping_energy(self, epoch: int) -> float:
        """E = E1 E0 with E1 = 2 (1 - t/T) and E0 in (-1, 1); t = epoch - 1, the code's counter from 0."""
        return 2 * (1 - (epoch - 1) / self.epoch) * (2 * self.generator.uniform() - 1)

    def improves(self, candidate: Target, hawk: Target) -> bool:
        """Strictly better, as the code's ``fobj(X1) < fobj(X(i,:))``; mealpy counts a tie as better in max mode."""
        if self.problem.minmax == "min":
            return candidate.fitness < hawk.fitness
        return candidate.fitness > hawk.fitness

    def _target(self, score: float) -> Target:
        return Target(objectives=[score], weights=self.problem.obj_weights)

    def evaluate_batch(
        self, positions: list[np.ndarray], dives: dict[int, np.ndarray] | None = None,
    ) -> tuple[list[Target], dict[int, tuple[np.ndarray, Target]]]:
        """Targets of independent positions, and of the Zs of the dives whose Y failed.

        ``dives`` maps a hawk's index in ``positions`` (its Y) to its Z. Z is evaluated only
        when Y does not improve on the hawk (Eq. 10).
        """
        dives = dives or {}

        def y_failed(idx: int) -> Callable[[float], bool]:
            hawk = self.pop[idx].target
            return lambda score: not self.improves(self._target(score), hawk)

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
        """One iteration of ``HHO.m``'s main loop, every hawk moving from the generation's start."""
        rabbit = self.g_best.solution
        x_m = self.mean_position()
        lb, ub = self.problem.lb, self.problem.ub
        moves: list[np.ndarray] = []  # each hawk's move, or its dive's Y
        dives: dict[int, np.ndarray] = {}  # hawk -> its dive's Z = Y + S x LF(D) (Eq. 8)
        for idx in range(self.pop_size):
            x = self.pop[idx].solution
            E = self.escaping_energy(epoch)
            if abs(E) >= 1:  # exploration, Eq. (1)
                q = self.generator.uniform()
                x_rand = self.pop[self.generator.integers(0, self.pop_size)].solution
                if q < 0.5:  # perch based on other family members
                    pos_new = x_rand - self.generator.uniform() * np.abs(x_rand - 2 * self.generator.uniform() * x)
                else:  # perch on a random tall tree inside the group's home range
                    pos_new = (rabbit - x_m) - self.generator.uniform() * ((ub - lb) * self.generator.uniform() + lb)
            elif self.generator.uniform() >= 0.5:  # besiege without dives
                if abs(E) < 0.5:  # hard besiege, Eq. (6)
                    pos_new = rabbit - E * np.abs(rabbit - x)
                else:  # soft besiege, Eq. (4)
                    jump = 2 * (1 - self.generator.uniform())
                    pos_new = (rabbit - x) - E * np.abs(jump * rabbit - x)
            else:  # besiege with progressive rapid dives, Eq. (10) (soft) and (11) (hard)
                jump = 2 * (1 - self.generator.uniform())
                anchor = x if abs(E) >= 0.5 else x_m
                y = rabbit - E * np.abs(jump * rabbit - anchor)
                dives[idx] = self.correct_solution(y + self.dive_step())
                pos_new = y
            moves.append(self.correct_solution(pos_new))
        targets, z_targets = self.evaluate_batch(moves, dives)
        pop_new = []
        for idx, (position, target) in enumerate(zip(moves, targets, strict=True)):
            agent = self.generate_empty_agent(position)
            agent.target = target
            if idx in dives and not self.improves(target, self.pop[idx].target):  # a dive: greedy
                z = z_targets.get(idx)
                agent = self.pop[idx].copy()
                if z is not None and self.improves(z[1], self.pop[idx].target):
                    agent = self.generate_empty_agent(z[0])
                    agent.target = z[1]
            pop_new.append(agent)  # exploration and besiege replace the hawk, better or worse
        self.pop = pop_new


def _hho_factory(model_class: type[OriginalHHO], evaluations_per_hawk: float) -> Any:
    def factory(name: str, settings: OptimizerSettings) -> MealpyAskTell:
        pop_size = settings.pop_size or DEFAULT_POP_SIZE
        epoch = epochs_for_budget(settings.budget, pop_size, evaluations_per_hawk)
        return MealpyAskTell(name, lambda: model_class(epoch=epoch, pop_size=pop_size), settings)

    return factory


register("hho", _hho_factory(AuthorsHHO, AUTHORS_EVALUATIONS_PER_HAWK))
register("hho-mealpy", _hho_factory(OriginalHHO, MEALPY_EVALUATIONS_PER_HAWK))
