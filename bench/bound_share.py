"""How many of a run's proposals sat at a bound of the search space, read from its trials.csv.

A search drawn to a corner shows it here first: the share of trainings with a parameter in
the lowest or highest 1% of its range (on the parameter's own scale, log where the space says
log), the counts of each value of an integer parameter, and which trial won. The first
``--skip`` trials (the hawks' random start: 5 by default) are reported apart, since no rule of
the optimizer placed them.

    python bench/bound_share.py results/<run-id> [results/<other-run> ...]
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

from hho_tune.results import load_trials
from hho_tune.space import SearchSpace

EDGE = 0.01  # a value in the lowest or highest 1% of its range is "at the bound"


def report(run_dir: Path, skip: int) -> None:
    document = json.loads((run_dir / "run.json").read_text())
    space = SearchSpace.from_dict(document["space"])
    trials = sorted(load_trials(run_dir, space), key=lambda t: t.number)
    later = trials[skip:]
    print(f"{run_dir.name}: {len(trials)} trials, {document['optimizer']} seed {document['seed']}; "
          f"after the first {skip}: {len(later)}")
    at_any = 0
    for trial in later:
        at_any += any(_at_edge(p, trial.params[p.name]) for p in space.params if p.kind == "float")
    for param in space.params:
        if param.kind == "float":
            low = sum(param.to_unit(t.params[param.name]) <= EDGE for t in later)
            high = sum(param.to_unit(t.params[param.name]) >= 1 - EDGE for t in later)
            print(f"  {param.name}: {low} at the lower 1%, {high} at the upper 1%")
        else:
            counts = collections.Counter(int(t.params[param.name]) for t in later)
            print(f"  {param.name}: " + ", ".join(f"{value}: {counts[value]}" for value in sorted(counts)))
    print(f"  trials with a float parameter at a bound: {at_any} of {len(later)}")
    scored = [t for t in trials if t.ok]
    direction = document["direction"]
    best = max(scored, key=lambda t: t.value) if direction == "maximize" else min(scored, key=lambda t: t.value)
    print(f"  best: trial {best.number}, {best.value:.4f}, " + ", ".join(f"{k}={v:.4g}" for k, v in best.params.items()))


def _at_edge(param, value: float) -> bool:
    u = param.to_unit(value)
    return u <= EDGE or u >= 1 - EDGE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--skip", type=int, default=5, help="initial random trials to report apart (default 5)")
    args = parser.parse_args()
    for run_dir in args.runs:
        report(run_dir, args.skip)


if __name__ == "__main__":
    main()
