"""HHO or TPE on this task? ``hho-tune compare`` on ``lstm_table`` at budgets 10, 30, 100, with and without a pruner.

    python bench/lstm_table_compare.py --out /tmp/table-compare      # 6 comparisons x 6 optimizers x 30 seeds
    python bench/lstm_table_compare.py --out /tmp/t --budgets 30 --seeds 5 --optimizers hho,tpe,random

Each comparison is the plain command (printed before it runs), so any one can be rerun by
hand; without a pruner every trial is scored after 2 epochs (the search's default fidelity),
with one trials train up to 6 epochs under successive halving (``--pruner sha``). Every run is
scored by what it recommends (the default ``gp`` policy), worth its noise-free expected
accuracy. The end is two tables from the comparisons' own summary files: the mean worth of the
recommendations beside the mean observed best (and their difference, the optimism); then mean
ranks on the worth, Friedman's p and the pairs that matter. ``optuna:GPSampler`` needs torch
(``pip install -e ".[bench]"``).
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

OPTIMIZERS = "hho,hho-mealpy,tpe,random,optuna:CmaEsSampler,optuna:GPSampler"
PAIRS = (("hho", "tpe"), ("hho", "random"), ("tpe", "random"), ("optuna:GPSampler", "hho"),
         ("optuna:GPSampler", "random"))


def command(budget: int, pruner: bool, seeds: int, optimizers: str, out: Path, name: str) -> list[str]:
    fidelity = ["--pruner", "sha", "--max-epochs", "6"] if pruner else ["--epochs", "2"]
    return ["hho-tune", "compare", "--objective", "hho_tune.benchmarks:lstm_table", "--optimizers", optimizers,
            "--budget", str(budget), "--seeds", str(seeds), *fidelity, "--out", str(out), "--name", name]


def read(directory: Path) -> tuple[dict[str, dict[str, str]], dict, dict[tuple[str, str], dict[str, str]]]:
    with open(directory / "summary.csv", newline="", encoding="utf-8") as handle:
        ranks = {row["optimizer"]: row for row in csv.DictReader(handle)}
    friedman = json.loads((directory / "friedman.json").read_text(encoding="utf-8"))
    with open(directory / "pairwise.csv", newline="", encoding="utf-8") as handle:
        pairs = {(row["first"], row["second"]): row for row in csv.DictReader(handle)}
    return ranks, friedman, pairs


def pair_text(pairs: dict[tuple[str, str], dict[str, str]], a: str, b: str) -> str:
    row = pairs.get((a, b)) or pairs.get((b, a))
    if row is None:
        return "-"
    first, second = row["first"], row["second"]
    wins = f"{row['first_better']}:{row['second_better']}"
    p = float(row["p_holm"]) if row["p_holm"] else float("nan")
    mark = " *" if row["significant"] == "True" else ""
    return f"{first} {wins} {second}, p_Holm {p:.2g}{mark}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--budgets", default="10,30,100")
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--optimizers", default=OPTIMIZERS)
    args = parser.parse_args()
    rows = []
    for budget in (int(b) for b in args.budgets.split(",")):
        for pruner in (False, True):
            name = f"b{budget}-{'sha' if pruner else 'e2'}"
            directory = args.out / name
            if not (directory / "friedman.json").exists():
                argv = command(budget, pruner, args.seeds, args.optimizers, args.out, name)
                print("$", shlex.join(argv), flush=True)
                started = time.perf_counter()
                subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
                print(f"  {time.perf_counter() - started:.0f} s", flush=True)
            rows.append((budget, pruner, *read(directory)))
    names = args.optimizers.split(",")
    print("\nmean worth of the recommendation / mean observed best (optimism, points)\n")
    print("| budget | pruner | " + " | ".join(names) + " |")
    print("|---" * (2 + len(names)) + "|")
    for budget, pruner, ranks, _, _ in rows:
        cells = []
        for n in names:
            row = ranks[n]
            worth, best = float(row["worth_mean"]), float(row["best_mean"])
            cells.append(f"{worth:.4f} / {best:.4f} ({(best - worth) * 100:+.2f})")
        print(f"| {budget} | {'sha, 6 epochs' if pruner else 'none, 2 epochs'} | " + " | ".join(cells) + " |")
    print("\nmean rank on the worth, Friedman p, pairs (wins:losses, Holm p)\n")
    print("| budget | pruner | " + " | ".join(names) + " | Friedman p | " + " | ".join(f"{a} vs {b}" for a, b in PAIRS
                                                                              if a in names and b in names) + " |")
    print("|---" * (3 + len(names) + sum(1 for a, b in PAIRS if a in names and b in names)) + "|")
    for budget, pruner, ranks, friedman, pairs in rows:
        cells = [f"{float(ranks[n]['mean_rank']):.2f}" for n in names]
        p = friedman.get("p_value")
        p_text = "-" if p is None else f"{p:.2g}"
        tests = [pair_text(pairs, a, b) for a, b in PAIRS if a in names and b in names]
        print(f"| {budget} | {'sha, 6 epochs' if pruner else 'none, 2 epochs'} | " + " | ".join(cells)
              + f" | {p_text} | " + " | ".join(tests) + " |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
