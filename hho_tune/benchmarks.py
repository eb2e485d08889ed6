"""Cheap test functions with known optima, for tests and for comparisons in seconds.

Each function takes a params dict (any names, read in sorted order) and returns a value
to MINIMIZE; each carries ``direction = "minimize"``, a ``default_space`` (the function's
usual box in 3 dimensions) and its known ``optimum`` value, so::

    hho-tune --objective hho_tune.benchmarks:rastrigin --budget 100
    hho-tune compare --objective hho_tune.benchmarks:sphere --optimizers hho,tpe,random

works without a space file. The optimum of each is 0, at the point ``optimum_at``.

Those four have their optimum at the centre of their box (Rosenbrock near it), where HHO's
rules are drawn: they flatter it. The **shifted suite** moves the optimum to a seeded random
interior point, at hyperparameter-search scale (2, 5 and 10 dimensions)::

    hho-tune compare --objective hho_tune.benchmarks:shifted_rastrigin_5d --budget 100 --seeds 20

Each is a :class:`ShiftedFunction`; ``hho-tune compare`` gives seed k its own instance (the
optimum drawn with seed k, the same for every optimizer at that seed), so the paired test
runs over 20 different landscapes, not 20 repetitions of one. :data:`SHIFTED_SUITE` names them
with the budget the suite runs them at (``bench/shifted_suite.py``).

``lstm_table`` is the LSTM task itself, answered from recorded trainings
(:mod:`hho_tune.lstm_table`): the default space, ``--epochs`` and a learning curve per epoch::

    hho-tune compare --objective hho_tune.benchmarks:lstm_table --budget 30 --seeds 30
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from hho_tune.space import Param, SearchSpace

BenchmarkFunction = Callable[[Mapping[str, Any]], float]


def _vector(params: Mapping[str, Any]) -> np.ndarray:
    return np.array([float(params[name]) for name in sorted(params)])


def _benchmark(low: float, high: float, optimum_at: float, dims: int = 3) -> Callable[[Any], BenchmarkFunction]:
    def decorate(function: Callable[[np.ndarray], float]) -> BenchmarkFunction:
        def objective(params: Mapping[str, Any]) -> float:
            return float(function(_vector(params)))

        objective.__name__ = function.__name__
        objective.__qualname__ = function.__name__
        objective.__doc__ = function.__doc__
        objective.__module__ = __name__
        objective.direction = "minimize"  # type: ignore[attr-defined]
        objective.optimum = 0.0  # type: ignore[attr-defined]
        objective.optimum_at = optimum_at  # type: ignore[attr-defined]
        objective.noise_free_value = objective  # type: ignore[attr-defined]  # exact: a draw is its worth
        objective.deterministic = True  # type: ignore[attr-defined]  # so runs recommend their best observed
        objective.default_space = SearchSpace(  # type: ignore[attr-defined]
            params=tuple(Param(f"x{i}", "float", low, high) for i in range(dims)),
            source=f"hho_tune.benchmarks:{function.__name__}",
        )
        return objective

    return decorate


@_benchmark(-5.0, 5.0, optimum_at=0.0)
def sphere(x: np.ndarray) -> float:
    """sum x_i^2: one smooth bowl, the easiest case."""
    return float(np.sum(x**2))


@_benchmark(-2.048, 2.048, optimum_at=1.0)
def rosenbrock(x: np.ndarray) -> float:
    """A long curved valley: easy to find, slow to follow to (1, ..., 1)."""
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2))


@_benchmark(-5.12, 5.12, optimum_at=0.0)
def rastrigin(x: np.ndarray) -> float:
    """A bowl covered in a regular grid of local minima."""
    return float(10.0 * len(x) + np.sum(x**2 - 10.0 * np.cos(2.0 * math.pi * x)))


@_benchmark(-5.0, 5.0, optimum_at=0.0)
def ackley(x: np.ndarray) -> float:
    """A flat plateau with a narrow hole at the origin."""
    n = len(x)
    return float(
        -20.0 * math.exp(-0.2 * math.sqrt(np.sum(x**2) / n))
        - math.exp(np.sum(np.cos(2.0 * math.pi * x)) / n)
        + 20.0
        + math.e
    )


BENCHMARKS: dict[str, BenchmarkFunction] = {
    f.__name__: f for f in (sphere, rosenbrock, rastrigin, ackley)
}


# -- the shifted suite -------------------------------------------------------------------------

INTERIOR_MARGIN = 0.1  # optima are drawn in the middle 80% of each range: inside, never on a bound
SUITE_DIMENSIONS = {2: 30, 5: 100, 10: 300}  # dimensions -> the suite's budget


@dataclass(frozen=True)
class ShiftedFunction:
    """A benchmark function whose optimum sits at a seeded random interior point of its box.

    ``f_shifted(x) = f(x - x_star + x_f)``, with ``x_f`` the function's own optimum (0, or 1 for
    Rosenbrock) and ``x_star`` drawn uniformly in the middle 80% of each range from
    ``instance`` and the function's name. The value at the optimum is still 0.
    :meth:`with_seed` gives the instance for a comparison's seed.
    """

    function: str
    dims: int
    instance: int = 0
    direction: str = "minimize"
    optimum: float = 0.0
    deterministic: bool = True  # exact: a run recommends its best observed point (hho_tune.recommendation)

    @property
    def base(self) -> BenchmarkFunction:
        return BENCHMARKS[self.function]

    @property
    def name(self) -> str:
        return f"{__name__}:shifted_{self.function}_{self.dims}d"

    @property
    def default_space(self) -> SearchSpace:
        low, high = self._box
        return SearchSpace(params=tuple(Param(f"x{i}", "float", low, high) for i in range(self.dims)), source=self.name)

    @property
    def optimum_at(self) -> np.ndarray:
        low, high = self._box
        margin = INTERIOR_MARGIN * (high - low)
        rng = np.random.default_rng([zlib.crc32(self.name.encode()), self.instance])
        return rng.uniform(low + margin, high - margin, self.dims)

    @property
    def _box(self) -> tuple[float, float]:
        param = self.base.default_space.params[0]  # type: ignore[attr-defined]
        return param.low, param.high

    def with_seed(self, seed: int) -> ShiftedFunction:
        return replace(self, instance=seed)

    def noise_free_value(self, params: Mapping[str, Any]) -> float:
        """The function is exact: what a configuration scores is what it is worth."""
        return self(params)

    def __call__(self, params: Mapping[str, Any]) -> float:
        x = np.array([float(params[f"x{i}"]) for i in range(self.dims)])
        shift = self.base.optimum_at - self.optimum_at  # type: ignore[attr-defined]
        return self.base({f"x{i}": value for i, value in enumerate(x + shift)})


shifted_sphere_2d = ShiftedFunction("sphere", 2)
shifted_sphere_5d = ShiftedFunction("sphere", 5)
shifted_sphere_10d = ShiftedFunction("sphere", 10)
shifted_rastrigin_2d = ShiftedFunction("rastrigin", 2)
shifted_rastrigin_5d = ShiftedFunction("rastrigin", 5)
shifted_rastrigin_10d = ShiftedFunction("rastrigin", 10)
shifted_ackley_2d = ShiftedFunction("ackley", 2)
shifted_ackley_5d = ShiftedFunction("ackley", 5)
shifted_ackley_10d = ShiftedFunction("ackley", 10)
shifted_rosenbrock_2d = ShiftedFunction("rosenbrock", 2)
shifted_rosenbrock_5d = ShiftedFunction("rosenbrock", 5)
shifted_rosenbrock_10d = ShiftedFunction("rosenbrock", 10)

SHIFTED_SUITE: dict[str, tuple[ShiftedFunction, int]] = {
    f"shifted_{f.function}_{f.dims}d": (f, SUITE_DIMENSIONS[f.dims])
    for f in (value for value in list(globals().values()) if isinstance(value, ShiftedFunction))
}


# -- the LSTM task, from recorded trainings ----------------------------------------------------

from hho_tune.lstm_table import lstm_table as lstm_table  # noqa: E402  (re-exported: hho_tune.benchmarks:lstm_table)
