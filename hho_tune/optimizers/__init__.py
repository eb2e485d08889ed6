"""Optimizers behind one ask/tell interface; see :mod:`hho_tune.optimizers.base`."""

from hho_tune.optimizers.base import Optimizer, OptimizerSettings, Suggestion, available, make

__all__ = ["Optimizer", "OptimizerSettings", "Suggestion", "available", "make"]
