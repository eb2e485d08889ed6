"""Random search: the floor every optimizer must beat, and the worked example of the contract."""

from __future__ import annotations

import itertools

import numpy as np

from hho_tune.optimizers.base import Optimizer, OptimizerSettings, Suggestion, register


class RandomSearch(Optimizer):
    """Uniform points of the unit cube, decoded by the search space (so log scales stay log)."""

    name = "random"

    def __init__(self, settings: OptimizerSettings) -> None:
        self._space = settings.space
        self._rng = np.random.default_rng(settings.seed)
        self._tokens = itertools.count()

    def ask(self) -> Suggestion:
        point = self._rng.random(self._space.dims)
        return Suggestion(params=self._space.from_unit(point), token=next(self._tokens))

    def tell(self, suggestion: Suggestion, score: float | None) -> None:
        """Random search learns nothing."""


register("random", lambda name, settings: RandomSearch(settings))
