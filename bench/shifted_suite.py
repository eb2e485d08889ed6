"""`hho-tune compare` on the shifted suite: optima at seeded random interior points, 2-10 D.

Runs one comparison per function of ``hho_tune.benchmarks.SHIFTED_SUITE`` (sphere, Rastrigin,
Ackley, Rosenbrock in 2, 5 and 10 dimensions, at budgets 30, 100 and 300), each optimizer at
every seed, seed k on the function's instance k (its own optimum), and prints one table: the
median final best of each optimizer, then for ``hho`` against each other optimizer the seeds
won and lost and the Wilcoxon p-value, Holm-adjusted over all pairs of that comparison, as
``hho-tune compare`` reports them (its pairwise.csv). Comparisons are kept under ``--out`` and
resumed if cut short, so the script can be stopped and started again.

    python bench/shifted_suite.py --out results/shifted-suite            # 20 seeds, 5 optimizers
    python bench/shifted_suite.py --seeds 5 --functions shifted_sphere_2d --optimizers hho,random
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import load_average

from hho_tune.benchmarks import SHIFTED_SUITE
from hho_tune.compare import COMPARE_FILE, ComparisonResult, compare, resume_comparison, summarise

DEFAULT_OPTIMIZERS = "hho,hho-mealpy,tpe,random,optuna:CmaEsSampler"


def run_one(name: str, optimizers: list[str], seeds: int, out: Path) -> ComparisonResult:
    objective, budget = SHIFTED_SUITE[name]
    directory = out / name
    if (directory / COMPARE_FILE).exists():
        status = json.loads((directory / COMPARE_FILE).read_text())["status"]
        if status == "finished":
            return summarise(directory)
        return resume_comparison(directory, objective, console=None)
    return compare(objective, objective.default_space, optimizers=optimizers, seeds=range(seeds), budget=budget,
                   out=out, name=name)


def row(name: str, result: ComparisonResult, optimizers: list[str]) -> str:
    _, budget = SHIFTED_SUITE[name]
    finals = {o: [c.final_best for c in result.curves if c.optimizer == o] for o in optimizers}
    medians = " | ".join(f"{statistics.median(finals[o]):.3g}" for o in optimizers)
    versus = []
    for other in optimizers[1:]:
        pair = next(p for p in result.stats.pairs if {p.first, p.second} == {optimizers[0], other})
        won, lost = (pair.first_better, pair.second_better) if pair.first == optimizers[0] else (
            pair.second_better, pair.first_better)
        mark = "**" if pair.significant else ""
        versus.append(f"{won}-{lost}, {mark}p={pair.p_adjusted:.2g}{mark}")
    return f"| {name.removeprefix('shifted_')} | {budget} | {medians} | " + " | ".join(versus) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("results/shifted-suite"))
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--optimizers", default=DEFAULT_OPTIMIZERS)
    parser.add_argument("--functions", nargs="*", default=list(SHIFTED_SUITE))
    args = parser.parse_args()
    optimizers = args.optimizers.split(",")
    print(f"# {args.seeds} seeds; load average {load_average()}")
    print(f"\n| function | budget | median final best: {' | '.join(optimizers)} | "
          + " | ".join(f"{optimizers[0]} vs {o}: won-lost, Holm p" for o in optimizers[1:]) + " |")
    print("|---|---|" + "---|" * len(optimizers) + "---|" * (len(optimizers) - 1))
    started = time.perf_counter()
    for name in args.functions:
        print(row(name, run_one(name, optimizers, args.seeds, args.out), optimizers), flush=True)
    print(f"\n{time.perf_counter() - started:.0f} s; load average at the end {load_average()}")


if __name__ == "__main__":
    main()
