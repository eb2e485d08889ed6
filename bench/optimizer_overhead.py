"""The optimizers' own cost per ask/tell against the cost of one evaluation (issue 6, item 2).

Two measurements per optimizer (hho, tpe, random) and budget (30, 300), with a cheap
deterministic surrogate in place of training:

* ask/tell: ``make(name, OptimizerSettings(space, seed=0, budget=B))``, then ``budget``
  rounds of ``ask()`` and ``tell()``; only the two calls are timed (not the surrogate);
* tune(): the whole ``hho_tune.tune`` loop for ``budget`` evaluations (cache, result files,
  the Optuna journal ledger, run.json, the global leaderboard) in a temporary directory;
  its time less the surrogate's, per evaluation.

Both are set against the mean wall time of one default evaluation (``LstmObjective()``:
2 epochs on 10,000 images; learning rate 1e-3, decay_steps 100, 1 and 2 layers), measured
here unless ``--evaluation-seconds`` gives one (e.g. the mean trial time of item 3).

    python bench/optimizer_overhead.py
    python bench/optimizer_overhead.py --budgets 30 --evaluation-seconds 8.5
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import REPO, describe_machine, load_average

from hho_tune import SearchSpace, tune
from hho_tune.optimizers.base import OptimizerSettings, make

SPACE_FILE = REPO / "search_spaces" / "lstm_mnist.yaml"


def surrogate(params: Mapping[str, Any]) -> float:
    """A smooth stand-in for validation accuracy, best near learning rate 10^-2.5 and a decay every 0.5 epochs."""
    return float(-(math.log10(params["learning_rate"]) + 2.5) ** 2
                 - 0.3 * (math.log10(params["decay_epochs"]) + 0.3) ** 2 + 0.1 * params["num_layers"])


@dataclass(frozen=True)
class AskTellCost:
    optimizer: str
    budget: int
    pairs: int
    setup_seconds: float
    call_seconds: tuple[float, ...]

    @property
    def total(self) -> float:
        return self.setup_seconds + sum(self.call_seconds)

    @property
    def mean_ms(self) -> float:
        return 1e3 * sum(self.call_seconds) / len(self.call_seconds)

    @property
    def last_tenth_ms(self) -> float:
        """Mean of the last tenth of the calls: how the cost grows as the history does (TPE)."""
        tail = self.call_seconds[-max(1, len(self.call_seconds) // 10):]
        return 1e3 * sum(tail) / len(tail)


def first_use_seconds(name: str, space: SearchSpace) -> float:
    """Make and close one optimizer before anything is measured: pays the imports (mealpy, Optuna) once."""
    started = time.perf_counter()
    make(name, OptimizerSettings(space=space, seed=0, budget=30)).close()
    return time.perf_counter() - started


def ask_tell_cost(name: str, budget: int, space: SearchSpace) -> AskTellCost:
    """Time ``budget`` ask/tell rounds of a fresh optimizer (making and closing it count as set-up)."""
    started = time.perf_counter()
    optimizer = make(name, OptimizerSettings(space=space, seed=0, budget=budget))
    setup = time.perf_counter() - started
    calls = []
    for _ in range(budget):
        started = time.perf_counter()
        suggestion = optimizer.ask()
        asked = time.perf_counter()
        if suggestion is None:
            break
        score = surrogate(space.full_params(suggestion.params))
        scored = time.perf_counter()
        optimizer.tell(suggestion, score)
        calls.append(asked - started + time.perf_counter() - scored)
    started = time.perf_counter()
    optimizer.close()
    setup += time.perf_counter() - started
    return AskTellCost(name, budget, len(calls), setup, tuple(calls))


@dataclass(frozen=True)
class TuneCost:
    optimizer: str
    budget: int
    evaluations: int
    seconds: float
    objective_seconds: float

    @property
    def per_evaluation_ms(self) -> float:
        return 1e3 * (self.seconds - self.objective_seconds) / self.evaluations


def tune_cost(name: str, budget: int, space: SearchSpace) -> TuneCost:
    """Run ``hho_tune.tune`` on the surrogate in a temporary results folder; time all but the surrogate."""
    objective_seconds = 0.0

    def timed_surrogate(params: Mapping[str, Any]) -> float:
        nonlocal objective_seconds
        started = time.perf_counter()
        try:
            return surrogate(params)
        finally:
            objective_seconds += time.perf_counter() - started

    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        result = tune(timed_surrogate, space, optimizer=name, budget=budget, seed=0, out=out)
        seconds = time.perf_counter() - started
    return TuneCost(name, budget, result.outcome.evaluations, seconds, objective_seconds)


def evaluation_seconds() -> float:
    """Mean wall time of one default LSTM evaluation, over 1 and 2 layers."""
    from hho_tune.objective import LstmObjective, start_tensorflow

    objective = LstmObjective()
    start_tensorflow(objective.threads)  # TensorFlow starts at the first training otherwise: not an evaluation's cost
    times = []
    for layers in (1, 2):
        started = time.perf_counter()
        objective({"learning_rate": 1e-3, "decay_steps": 100, "num_layers": layers})
        times.append(time.perf_counter() - started)
        print(f"  default evaluation, {layers} layer(s): {times[-1]:.2f} s (load {load_average()})", flush=True)
    return sum(times) / len(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--optimizers", nargs="+", default=["hho", "tpe", "random"], help="default: hho tpe random")
    parser.add_argument("--budgets", type=int, nargs="+", default=[30, 300], help="default: 30 300")
    parser.add_argument("--evaluation-seconds", type=float, default=None,
                        help="mean seconds of one evaluation measured elsewhere (default: measure 2 here)")
    args = parser.parse_args()

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    print(f"machine: {describe_machine()}")
    print(f"command: python bench/{Path(__file__).name} {' '.join(sys.argv[1:])}".rstrip())
    space = SearchSpace.load(SPACE_FILE)
    for name in args.optimizers:
        print(f"  first use of {name} (imports, not counted below): {first_use_seconds(name, space):.2f} s", flush=True)
    rows = []
    for budget in args.budgets:
        for name in args.optimizers:
            raw = ask_tell_cost(name, budget, space)
            loop = tune_cost(name, budget, space)
            rows.append((raw, loop))
            print(f"  {name}, budget {budget}: ask/tell {raw.mean_ms:.2f} ms, tune() {loop.per_evaluation_ms:.1f} ms "
                  f"per evaluation (load {load_average()})", flush=True)
    if args.evaluation_seconds is None:
        evaluation = evaluation_seconds()
        source = "measured here: mean of the 1- and 2-layer default evaluations"
    else:
        evaluation = args.evaluation_seconds
        source = "given with --evaluation-seconds"
    print(f"\none evaluation: {evaluation:.2f} s ({source})")
    print("\n| optimizer | budget | ask/tell pairs | set-up s | mean ask+tell ms | last tenth ms | total s "
          "| tune() evaluations | tune() s | tune() overhead ms/evaluation | overhead / evaluation |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for raw, loop in rows:
        print(f"| {raw.optimizer} | {raw.budget} | {raw.pairs} | {raw.setup_seconds:.3f} | {raw.mean_ms:.2f} "
              f"| {raw.last_tenth_ms:.2f} | {raw.total:.2f} | {loop.evaluations} | {loop.seconds:.2f} "
              f"| {loop.per_evaluation_ms:.1f} | {loop.per_evaluation_ms / 1e3 / evaluation:.2%} |")
    print(f"\nload average at the end: {load_average()}")


if __name__ == "__main__":
    main()
