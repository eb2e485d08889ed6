"""Cheap test functions with known optima, for tests and for comparisons in seconds.

Each function takes a params dict (any names, read in sorted order) and returns a value
to MINIMIZE; each carries ``direction = "minimize"``, a ``default_space`` (the function's
usual box in 3 dimensions) and its known ``optimum`` value, so::

    hho-tune --objective hho_tune.benchmarks:rastrigin --budget 100
    hho-tune compare --objective hho_tune.benchmarks:sphere --optimizers hho,tpe,random

works without a space file. The optimum of each is 0, at the point ``optimum_at``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
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
