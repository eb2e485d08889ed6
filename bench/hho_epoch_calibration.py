"""Measure how many NEW configurations HHO proposes per hawk per generation (mealpy epoch).

hho_tune.optimizers.hho sizes mealpy's ``epoch`` from the budget with these rates, so that the
escaping energy E = 2 E0 (1 - t/T) decays over the real run. Cache hits (known configurations
after integer rounding or clipping to the box) cost no budget, so they are not counted.

    python bench/hho_epoch_calibration.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from mealpy.swarm_based.HHO import OriginalHHO

from hho_tune import SearchSpace
from hho_tune.optimizers.base import OptimizerSettings
from hho_tune.optimizers.hho import AuthorsHHO
from hho_tune.optimizers.mealpy_bridge import MealpyAskTell

SPACE = SearchSpace.load(Path(__file__).resolve().parents[1] / "search_spaces" / "lstm_mnist.yaml")


def surrogate(params: dict) -> float:
    """Smooth, best near learning rate 10^-2.5 and a decay every 0.5 epochs (100 search steps)."""
    return float(-(np.log10(params["learning_rate"]) + 2.5) ** 2
                 - 0.3 * (np.log10(params["decay_epochs"]) + 0.3) ** 2 + 0.1 * params["num_layers"])


def new_points_in_one_run(model_class: type, pop_size: int, epochs: int, seed: int) -> int:
    """Distinct configurations proposed until mealpy finishes its ``epochs`` generations."""
    def factory() -> OriginalHHO:
        return model_class(epoch=epochs, pop_size=pop_size)

    optimizer = MealpyAskTell("calibration", factory, OptimizerSettings(space=SPACE, seed=seed, budget=1))
    seen: set = set()
    while True:
        suggestion = optimizer.ask()
        if optimizer.restarts:
            break
        seen.add(SPACE.key(suggestion.params))
        optimizer.tell(suggestion, surrogate(suggestion.params))
    optimizer.close()
    return len(seen)


def main() -> None:
    print("class        N   T  new points (mean of 20 seeds)  per hawk per generation")
    for model_class in (AuthorsHHO, OriginalHHO):
        for pop_size, epochs in ((5, 4), (5, 8), (5, 20), (10, 10)):
            new = np.mean([new_points_in_one_run(model_class, pop_size, epochs, seed) for seed in range(20)])
            rate = (new - pop_size) / (pop_size * epochs)
            print(f"{model_class.__name__:<12} {pop_size:>2} {epochs:>3}  {new:>8.2f}  {rate:>26.3f}")


if __name__ == "__main__":
    main()
