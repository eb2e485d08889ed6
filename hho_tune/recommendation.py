"""What a run recommends: the configuration ``export`` writes and ``compare`` scores.

On a noisy objective a run's best *observed* trial is the maximum of many noisy draws, partly
its luckiest one. A policy here turns a run's completed trials into one recommendation:

* ``best``: the best observed trial (what every HPO library reports as ``best_trial``);
* ``gp``: the trial with the best posterior mean of a Gaussian process fitted to the run's
  own completed trials, with a white-noise term, so that a lone lucky draw among worse
  neighbours is weighed against them. Fewer than :data:`GP_MIN_TRIALS` completed trials:
  the best observed trial.

A policy only chooses among configurations the run trained: it recommends something that was
measured, never a point the model extrapolated to.

The default, ``auto``, is ``gp`` unless the objective says it is ``deterministic`` (the test
functions do), where ``best``. Measured on ``lstm_table`` over 30 seeds (bench/RESULTS.md,
"Which configuration a run should recommend"): ``gp`` is level with ``best`` at 10 trainings and
ahead at 30 (+0.12 points of expected accuracy, p 0.027) and 100 (+0.31, p 0.0005); on exact
but rugged functions it can pass over the best point (Rastrigin), which is why exact objectives
keep ``best``. Spending part of the budget on re-training the top few with fresh seeds was
ahead at 30 and level or behind at 10 and 100.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hho_tune.errors import UsageError
from hho_tune.space import SearchSpace

POLICIES = ("best", "gp")
AUTO = "auto"  # gp, or best for an objective that declares itself deterministic
DEFAULT_POLICY = "gp"
GP_MIN_TRIALS = 5  # fewer points than this cannot tell a trend from noise in 3 or more dimensions
# Extra starts of the likelihood fit: 2 moved the mean worth of the pick by at most 0.0004 (bench/RESULTS.md),
# at 3-6x the time.
GP_RESTARTS = 0


@dataclass(frozen=True)
class Candidate:
    """A completed trial as a policy sees it."""

    number: int
    params: Mapping[str, Any]
    value: float


@dataclass(frozen=True)
class Recommendation:
    """The configuration a run recommends and why."""

    policy: str  # the policy that chose it (``best`` where ``gp`` had too few trials)
    number: int  # the trial it comes from
    params: Mapping[str, Any]
    observed: float  # that trial's own score
    predicted: float | None  # the model's posterior mean there (``gp`` only)

    def to_dict(self) -> dict[str, Any]:
        return {"policy": self.policy, "trial": self.number, "params": dict(self.params),
                "observed": self.observed, "predicted": self.predicted}


def check_policy(policy: str) -> str:
    if policy not in (*POLICIES, AUTO):
        raise UsageError(f"--recommend must be one of {', '.join((AUTO, *POLICIES))}, got {policy!r}")
    return policy


def resolve_policy(policy: str, objective: object) -> str:
    """``auto`` -> ``best`` for an objective whose ``deterministic`` attribute is true, else ``gp``."""
    check_policy(policy)
    if policy != AUTO:
        return policy
    return "best" if getattr(objective, "deterministic", False) is True else DEFAULT_POLICY


def candidates_from_rows(rows: Sequence[Mapping[str, str]], space: SearchSpace) -> list[Candidate]:
    """trials.csv rows -> the completed trials with a finite value; half-written rows are skipped."""
    found = []
    for row in rows:
        if row.get("state") != "COMPLETE":
            continue
        try:
            number, value = int(row["number"]), float(row["value"])
            params = {p.name: int(row[f"params_{p.name}"]) if p.kind == "int" else float(row[f"params_{p.name}"])
                      for p in space.params}
        except (KeyError, TypeError, ValueError):
            continue
        if math.isfinite(value):
            found.append(Candidate(number, params, value))
    return found


def rank(candidates: Sequence[Candidate], space: SearchSpace, direction: str, policy: str = DEFAULT_POLICY,
         ) -> list[Recommendation]:
    """Every candidate, the recommended one first; ties go to the earlier trial, as on the leaderboard."""
    if check_policy(policy) == AUTO:
        raise ValueError("resolve 'auto' against the objective first (resolve_policy)")
    if not candidates:
        return []
    sign = -1.0 if direction == "maximize" else 1.0
    if policy == "gp" and len(candidates) >= GP_MIN_TRIALS:
        means = posterior_means(candidates, space, direction)
        order = sorted(range(len(candidates)), key=lambda i: (sign * means[i], candidates[i].number))
        return [Recommendation("gp", candidates[i].number, candidates[i].params, candidates[i].value, float(means[i]))
                for i in order]
    order = sorted(range(len(candidates)), key=lambda i: (sign * candidates[i].value, candidates[i].number))
    return [Recommendation("best", candidates[i].number, candidates[i].params, candidates[i].value, None)
            for i in order]


def recommend(candidates: Sequence[Candidate], space: SearchSpace, direction: str, policy: str = DEFAULT_POLICY,
              ) -> Recommendation | None:
    """The one configuration the run recommends; None for a run without a completed trial."""
    ranked = rank(candidates, space, direction, policy)
    return ranked[0] if ranked else None


def posterior_means(candidates: Sequence[Candidate], space: SearchSpace, direction: str) -> np.ndarray:
    """A GP's posterior mean at each candidate, in the objective's own units.

    Matérn 5/2 with one length scale per parameter on the unit cube (where log scales and
    integers are already taken care of by :meth:`SearchSpace.to_unit`), a constant amplitude
    and a white-noise term, hyperparameters by maximum marginal likelihood (scikit-learn).
    Scores far below the typical one (a training that collapsed to chance) are lifted to the
    lower quartile before the fit: a stationary GP would otherwise bend its whole surface
    around them, and how bad a failure was says nothing about where the optimum is.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    x = np.array([space.to_unit(c.params) for c in candidates], dtype=float)
    y = np.array([c.value for c in candidates], dtype=float)
    if direction == "minimize":
        y = -y
    y = np.maximum(y, np.quantile(y, 0.25))
    if np.ptp(y) == 0:
        return np.array([c.value for c in candidates], dtype=float)
    kernel = (ConstantKernel(1.0, (1e-3, 1e3))
              * Matern(length_scale=np.full(x.shape[1], 0.3), length_scale_bounds=(1e-2, 1e2), nu=2.5)
              + WhiteKernel(0.1, (1e-6, 1e1)))
    model = GaussianProcessRegressor(kernel=kernel, normalize_y=True, n_restarts_optimizer=GP_RESTARTS, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
    means = model.predict(x)
    return -means if direction == "minimize" else means
