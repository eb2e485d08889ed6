"""HHO's second bias: it finds an optimum along a diagonal of the box and misses one off it.

Most of HHO's moves are the rabbit minus E times a vector of absolute values (the besieges
X_rabbit - E|X_rabbit - X|, the dives' Y = X_rabbit - E|J X_rabbit - X|): every coordinate moves
the same way, so around the rabbit a move reaches 2 of the 2^D orthants. Only the Levy part of
a dive's Z moves coordinates independently. This script places the optimum of a 5-D sphere in
[-5, 5]^5 at the same distance from the centre three ways: at the centre, on the diagonal
(2, 2, 2, 2, 2), and in a mixed direction (2, -2, 2, -2, 2), and runs each optimizer through
ask/tell (``hho_tune.optimizers.base.make``, no files) for 100 new configurations at 20 seeds.

    python bench/direction_bias.py
"""

from __future__ import annotations

import argparse

import numpy as np

from hho_tune.optimizers.base import OptimizerSettings, make
from hho_tune.space import Param, SearchSpace

DIMS = 5
PLACES = {
    "centre (0, 0, 0, 0, 0)": np.zeros(DIMS),
    "diagonal (2, 2, 2, 2, 2)": np.full(DIMS, 2.0),
    "mixed (2, -2, 2, -2, 2)": np.array([2.0, -2.0, 2.0, -2.0, 2.0]),
}


def final_best(name: str, optimum: np.ndarray, seed: int, budget: int) -> float:
    space = SearchSpace(params=tuple(Param(f"x{i}", "float", -5.0, 5.0) for i in range(DIMS)))
    optimizer = make(name, OptimizerSettings(space=space, seed=seed, budget=budget))
    seen, best = set(), float("inf")
    while len(seen) < budget:
        suggestion = optimizer.ask()
        x = np.array([suggestion.params[f"x{i}"] for i in range(DIMS)])
        value = float(np.sum((x - optimum) ** 2))
        if space.key(suggestion.params) not in seen:
            seen.add(space.key(suggestion.params))
            best = min(best, value)
        optimizer.tell(suggestion, -value)
    optimizer.close()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--optimizers", default="hho,hho-mealpy,tpe,random")
    args = parser.parse_args()
    names = args.optimizers.split(",")
    print(f"median final best over {args.seeds} seeds, 5-D sphere, {args.budget} evaluations\n")
    print("| optimum at | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for place, optimum in PLACES.items():
        medians = [np.median([final_best(n, optimum, s, args.budget) for s in range(args.seeds)]) for n in names]
        print(f"| {place} | " + " | ".join(f"{m:.3g}" for m in medians) + " |", flush=True)


if __name__ == "__main__":
    main()
