"""Which configuration should a run recommend? Policies measured on ``lstm_table`` by what they pick.

    python bench/recommendation_policies.py --table /work/runs/table --out /work/runs/policies
    python bench/recommendation_policies.py --table DIR --out DIR --budgets 10 --plans 2x1,3x1
    python bench/recommendation_policies.py --exact          # gp against best on the exact shifted functions

For each comparison ``b{B}-e2`` under ``--table`` (made by bench/lstm_table_compare.py: 30
seeds, 2 epochs) and each run of the optimizers named, the worth of the configuration each
policy picks, by ``lstm_table``'s noise-free value (its expected accuracy: what a user who
exports it gets on average):

* ``best``: the best observed trial;
* ``gp``: the best posterior mean of a GP with a noise term fitted to the run's trials
  (:mod:`hho_tune.recommendation`);
* ``topK xS``: a run of ``B - K*S`` trials, then its K best observed trials each trained S
  more times with fresh seeds, the best mean of its 1 + S scores picked: the re-scoring is
  paid for out of the same budget. Samplers that do not know the budget (tpe, GPSampler,
  random) would propose exactly the first ``B - K*S`` trials of their budget-B run, which is
  what is used; ``hho`` plans over its budget, so it is run again at ``B - K*S`` (kept under
  ``--out``, resumed if cut short).

Printed: the mean worth per optimizer and policy, each policy against ``best`` paired by run
(wins:losses, Wilcoxon p), and the optimizers' pairwise verdicts under each policy.
``--gp-restarts N`` fits the GP with N extra starts (the package's default is 0).

``--exact``: on the shifted suite's exact functions (2-D with 30 points, 5-D with 100, 12
instances each) the points of a random search, and how much worse (minimized) the ``gp``
pick is than the best point: why a deterministic objective keeps ``best``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import hho_tune.recommendation as recommendation_module
from hho_tune.benchmarks import ShiftedFunction
from hho_tune.compare import COMPARE_FILE, RUNS_DIR, compare, resume_comparison, run_label
from hho_tune.lstm_table import LstmTable
from hho_tune.recommendation import Candidate, candidates_from_rows, recommend
from hho_tune.results import read_trials
from hho_tune.space import SearchSpace
from hho_tune.stats import paired_test

RESCORE_PLANS = ((3, 1), (5, 1), (3, 2))
BUDGET_AWARE = ("hho", "hho-mealpy")  # optimizers whose proposals depend on the budget they are given
FRESH_SEED_BASE = 20_000  # re-scoring seeds: never a seed a run trained with (compare's seeds are 0-29)


def run_candidates(directory: Path, optimizer: str, seed: int, space: SearchSpace) -> list[Candidate]:
    return candidates_from_rows(read_trials(directory / RUNS_DIR / run_label(optimizer, seed)), space)


def reduced_run(out: Path, optimizer: str, budget: int, seeds: Sequence[int], space: SearchSpace) -> Path:
    """``optimizer`` again at ``budget`` over ``seeds``, as ``hho-tune compare`` runs it (resumed if cut short)."""
    name = f"{run_label(optimizer, 0)[:-3]}-b{budget}"
    directory = out / name
    if (directory / COMPARE_FILE).exists():
        if json.loads((directory / COMPARE_FILE).read_text())["status"] != "finished":
            resume_comparison(directory, LstmTable(), console=None)
        return directory
    compare(LstmTable(), space, optimizers=[optimizer], seeds=seeds, budget=budget, out=out, name=name)
    return directory


def top_k_rescored(candidates: Sequence[Candidate], k: int, s: int, objective: LstmTable) -> Candidate:
    """Of the K best observed, the one with the best mean over its own score and S fresh-seed trainings."""
    top = sorted(candidates, key=lambda c: (-c.value, c.number))[:k]

    def mean_score(c: Candidate) -> float:
        fresh = [objective.with_seed(FRESH_SEED_BASE + j)(c.params) for j in range(s)]
        return statistics.fmean([c.value, *fresh])

    return max(top, key=mean_score)


def exact_functions() -> None:
    print("| function | dims | points | gp pick minus best point, mean of 12 | gp worse at |")
    print("|---|---|---|---|---|")
    for function in ("sphere", "rosenbrock", "ackley", "rastrigin"):
        for dims, points in ((2, 30), (5, 100)):
            losses = []
            for instance in range(12):
                f = ShiftedFunction(function, dims, instance=instance)
                space = f.default_space
                rng = np.random.default_rng(instance)
                candidates = []
                for number in range(points):
                    params = space.from_unit(rng.random(dims))
                    candidates.append(Candidate(number, params, f(params)))
                best = recommend(candidates, space, "minimize", "best")
                gp = recommend(candidates, space, "minimize", "gp")
                losses.append(f(gp.params) - f(best.params))
            print(f"| {function} | {dims} | {points} | {statistics.fmean(losses):.4g} | "
                  f"{sum(loss > 0 for loss in losses)} of 12 |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", type=Path, help="bench/lstm_table_compare.py's --out")
    parser.add_argument("--out", type=Path, help="where the reduced-budget hho runs go")
    parser.add_argument("--budgets", default="30,100")
    parser.add_argument("--optimizers", default="hho,tpe,optuna:GPSampler,random")
    parser.add_argument("--plans", default=",".join(f"{k}x{s}" for k, s in RESCORE_PLANS),
                        help="top-K re-scored S times each, as KxS, comma-separated")
    parser.add_argument("--gp-restarts", type=int, default=recommendation_module.GP_RESTARTS)
    parser.add_argument("--exact", action="store_true")
    args = parser.parse_args()
    recommendation_module.GP_RESTARTS = args.gp_restarts
    if args.exact:
        exact_functions()
        return
    if args.table is None or args.out is None:
        parser.error("--table and --out are needed (or --exact)")
    plans = tuple(tuple(int(n) for n in plan.split("x")) for plan in args.plans.split(","))
    names = args.optimizers.split(",")
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, dict] = {}
    for budget in (int(b) for b in args.budgets.split(",")):
        directory = args.table / f"b{budget}-e2"
        document = json.loads((directory / COMPARE_FILE).read_text())
        space = SearchSpace.from_dict(document["space"])
        seeds = document["seeds"]
        objective = LstmTable(epochs=int(document["fidelity"]["epochs"]))
        worth: dict[str, dict[str, dict[int, float]]] = {}  # policy -> optimizer -> seed -> worth
        observed: dict[str, dict[int, float]] = {}
        for name in names:
            reduced = {(k, s): reduced_run(args.out, name, budget - k * s, seeds, space)
                       for k, s in plans} if name in BUDGET_AWARE else {}
            for seed in seeds:
                trials = run_candidates(directory, name, seed, space)
                observed.setdefault(name, {})[seed] = max(c.value for c in trials)
                for policy in ("best", "gp"):
                    pick = recommend(trials, space, "maximize", policy)
                    worth.setdefault(policy, {}).setdefault(name, {})[seed] = objective.noise_free_value(pick.params)
                for k, s in plans:
                    if name in BUDGET_AWARE:
                        short = run_candidates(reduced[k, s], name, seed, space)
                    else:
                        by_number = sorted(trials, key=lambda c: c.number)
                        short = [c for c in by_number if c.number < budget - k * s]
                    pick_c = top_k_rescored(short, k, s, objective.with_seed(seed))
                    worth.setdefault(f"top{k}x{s}", {}).setdefault(name, {})[seed] = objective.noise_free_value(pick_c.params)
        print(f"\n## budget {budget}, {len(seeds)} seeds: mean worth of the recommendation (expected accuracy)\n")
        policies = list(worth)
        print("| optimizer | observed best | " + " | ".join(policies) + " |")
        print("|---" * (2 + len(policies)) + "|")
        for name in names:
            cells = [f"{statistics.fmean(worth[p][name].values()):.4f}" for p in policies]
            print(f"| {name} | {statistics.fmean(observed[name].values()):.4f} | " + " | ".join(cells) + " |")
        print("\npolicy against best, paired by run (all optimizers' runs together, then each):")
        for policy in policies[1:]:
            pooled_a = {(n, s): v for n in names for s, v in worth[policy][n].items()}
            pooled_b = {(n, s): v for n in names for s, v in worth["best"][n].items()}
            keys = sorted(pooled_a)
            test = paired_test(policy, "best", {i: pooled_a[k] for i, k in enumerate(keys)},
                               {i: pooled_b[k] for i, k in enumerate(keys)}, "maximize")
            gain = statistics.fmean(pooled_a[k] - pooled_b[k] for k in keys)
            per = "; ".join(
                f"{n} {paired_test(policy, 'best', worth[policy][n], worth['best'][n], 'maximize').first_better}:"
                f"{paired_test(policy, 'best', worth[policy][n], worth['best'][n], 'maximize').second_better}"
                for n in names)
            print(f"  {policy}: mean {gain * 100:+.3f} points, {test.first_better}:{test.second_better} runs, "
                  f"p = {test.p_value if test.p_value is None else round(test.p_value, 4)} ({per})")
        print("\noptimizers paired by seed under each policy (wins:losses, unadjusted Wilcoxon p):")
        for policy in policies:
            pairs = []
            for a, b in itertools.combinations(names, 2):
                t = paired_test(a, b, worth[policy][a], worth[policy][b], "maximize")
                pairs.append(f"{a} {t.first_better}:{t.second_better} {b} p={t.p_value:.2g}")
            print(f"  {policy}: " + "; ".join(pairs))
        report[str(budget)] = {"observed": observed, "worth": worth}
    (args.out / "policies.json").write_text(json.dumps(report, indent=1, default=str))
    print(f"\nwrote {args.out / 'policies.json'}")


if __name__ == "__main__":
    main()
