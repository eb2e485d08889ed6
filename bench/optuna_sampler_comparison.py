"""HHOSampler against Optuna's TPESampler and RandomSampler, through plain Optuna, where the answer is not given away.

Each function of the shifted suite (``hho_tune.benchmarks``: the optimum at a seeded random
interior point, a different one per seed) is written as a define-by-run Optuna objective
(``trial.suggest_float`` per coordinate) and minimized by each sampler with the same seed and
the same number of trials. Reported: the median best value per sampler, and paired Wilcoxon
tests of HHO against each, over the seeds (wins/losses counted plainly).

    python bench/optuna_sampler_comparison.py [--seeds 20] [--functions shifted_sphere_5d ...]
"""

from __future__ import annotations

import argparse
import statistics
import time

import optuna

from hho_tune.benchmarks import SHIFTED_SUITE, ShiftedFunction
from hho_tune.integrations.optuna import HHOSampler
from hho_tune.stats import paired_test

DEFAULT_FUNCTIONS = ("shifted_sphere_5d", "shifted_rastrigin_5d", "shifted_ackley_5d", "shifted_rosenbrock_5d")


def as_optuna_objective(function: ShiftedFunction):
    space = function.default_space

    def objective(trial: optuna.Trial) -> float:
        return function({p.name: trial.suggest_float(p.name, p.low, p.high) for p in space.params})

    return objective


def samplers(seed: int, n_trials: int) -> dict[str, optuna.samplers.BaseSampler]:
    return {
        "HHOSampler": HHOSampler(seed=seed, n_trials=n_trials),
        "TPESampler": optuna.samplers.TPESampler(seed=seed),
        "RandomSampler": optuna.samplers.RandomSampler(seed=seed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--functions", nargs="*", default=list(DEFAULT_FUNCTIONS))
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print("| function | trials | HHOSampler | TPESampler | RandomSampler | HHO vs TPE | HHO vs random |")
    print("|---|---|---|---|---|---|---|")
    seconds: dict[str, float] = {}
    for name in args.functions:
        base, n_trials = SHIFTED_SUITE[name]
        finals: dict[str, dict[int, float]] = {}
        for seed in range(args.seeds):
            function = base.with_seed(seed)
            for label, sampler in samplers(seed, n_trials).items():
                started = time.perf_counter()
                study = optuna.create_study(direction="minimize", sampler=sampler)
                study.optimize(as_optuna_objective(function), n_trials=n_trials)
                seconds[label] = seconds.get(label, 0.0) + time.perf_counter() - started
                finals.setdefault(label, {})[seed] = study.best_value
        medians = {label: statistics.median(values.values()) for label, values in finals.items()}

        def versus(other: str, finals: dict = finals) -> str:
            test = paired_test("HHOSampler", other, finals["HHOSampler"], finals[other], "minimize")
            return f"{test.first_better}-{test.second_better}, p {test.p_value:.3g}"

        print(f"| {name} | {n_trials} | {medians['HHOSampler']:.3g} | {medians['TPESampler']:.3g} | "
              f"{medians['RandomSampler']:.3g} | {versus('TPESampler')} | {versus('RandomSampler')} |", flush=True)
    print("seconds in all per sampler (objective included): "
          + ", ".join(f"{label} {value:.1f}" for label, value in seconds.items()))


if __name__ == "__main__":
    main()
