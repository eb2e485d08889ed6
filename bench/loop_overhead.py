"""What the loop costs per evaluation through ``hho_tune.tune``, run files and Optuna study included.

A near-free objective (the sum of the parameters, about a microsecond) on a space of
``--params`` floats (30 by default), for each optimizer and budget, three ways, each in this
process after a warm-up run (imports, first-call caches):

* ``ask/tell``: the optimizer alone, ``budget`` rounds of ``ask()``, the objective, ``tell()``;
  no runner, no files: what the optimizer itself costs;
* ``run_loop``: the runner with no listeners (budget, cache, failures), no files;
* ``tune``: ``hho_tune.tune`` into a temporary directory: trials.csv, leaderboard.csv, run.json,
  the Optuna journal (``study.journal``) and the global leaderboard.

Each figure is milliseconds per evaluation, the objective's own time taken out: wall time
(``time.perf_counter``) and, in brackets, CPU time of the process (``time.process_time``,
less sensitive to other jobs on a shared machine). ``files+study`` is tune less run_loop.
For tune, ``first 10%`` and ``last 10%`` are the wall time per evaluation over the first and
the last tenth of the run (from a listener's clock): equal when the cost does not grow with
the number of trials; for the largest budget every tenth is printed. ``start-up`` is a whole
tune() of budget 1 (directory, run.json, study, global leaderboard), paid once per run and
included in the tune figure.

TPE is slow by itself (its sampler refits on every trial, O(trials) per ask), so it has its
own, smaller budgets (``--tpe-budgets``); its figure is dominated by the sampler.

    python bench/loop_overhead.py
    python bench/loop_overhead.py --optimizers random,hho,tpe --budgets 100,1000,5000,20000 --tpe-budgets 100,1000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import describe_machine, load_average

from hho_tune import SearchSpace, tune
from hho_tune.optimizers.base import OptimizerSettings, make
from hho_tune.runner import TrialListener, run_loop
from hho_tune.trial import Trial


def float_space(dims: int) -> SearchSpace:
    return SearchSpace.from_dict({"parameters": {f"x{i:02d}": {"type": "float", "low": 0.0, "high": 1.0}
                                                 for i in range(dims)}})


class TimedObjective:
    """The sum of the parameters (minimized), keeping the time spent inside it."""

    direction = "minimize"

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0

    def __call__(self, params: Mapping[str, Any]) -> float:
        started = time.perf_counter()
        value = float(sum(params.values()))
        self.seconds += time.perf_counter() - started
        self.calls += 1
        return value


class Clock(TrialListener):
    """When the loop started, then when each trial was recorded."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_start(self, budget: int, finished: int) -> None:
        self.times.append(time.perf_counter())

    def on_trial(self, trial: Trial, best: Trial | None) -> None:
        self.times.append(time.perf_counter())


@dataclass(frozen=True)
class Measurement:
    wall_ms: float  # per evaluation, the objective's time taken out
    cpu_ms: float
    evaluations: int
    tenths_ms: tuple[float, ...] = ()  # wall time per evaluation over each tenth of the run (tune only)

    @property
    def first_tenth_ms(self) -> float:
        return self.tenths_ms[0] if self.tenths_ms else float("nan")

    @property
    def last_tenth_ms(self) -> float:
        return self.tenths_ms[-1] if self.tenths_ms else float("nan")


def measure(run: Callable[[TimedObjective, Clock], int]) -> Measurement:
    objective, clock = TimedObjective(), Clock()
    wall, cpu = time.perf_counter(), time.process_time()
    evaluations = run(objective, clock)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    tenths: tuple[float, ...] = ()
    if len(clock.times) > 10:
        tenth = (len(clock.times) - 1) // 10
        tenths = tuple((clock.times[(k + 1) * tenth] - clock.times[k * tenth]) / tenth * 1e3 for k in range(10))
    return Measurement(wall_ms=(wall - objective.seconds) / evaluations * 1e3,
                       cpu_ms=(cpu - objective.seconds) / evaluations * 1e3,
                       evaluations=evaluations, tenths_ms=tenths)


def ask_tell(name: str, space: SearchSpace, budget: int) -> Callable[[TimedObjective, Clock], int]:
    def run(objective: TimedObjective, _clock: Clock) -> int:
        optimizer = make(name, OptimizerSettings(space=space, seed=0, budget=budget))
        try:
            for done in range(budget):
                suggestion = optimizer.ask()
                if suggestion is None:
                    return done
                optimizer.tell(suggestion, -objective(space.full_params(suggestion.params)))
        finally:
            optimizer.close()
        return budget
    return run


def bare_loop(name: str, space: SearchSpace, budget: int) -> Callable[[TimedObjective, Clock], int]:
    def run(objective: TimedObjective, _clock: Clock) -> int:
        optimizer = make(name, OptimizerSettings(space=space, seed=0, budget=budget))
        return run_loop(objective, space, optimizer, budget=budget, direction="minimize").evaluations
    return run


def through_tune(name: str, space: SearchSpace, budget: int, out: Path) -> Callable[[TimedObjective, Clock], int]:
    def run(objective: TimedObjective, clock: Clock) -> int:
        return tune(objective, space, optimizer=name, budget=budget, seed=0, out=out, listeners=[clock]).outcome.evaluations
    return run


def cell(m: Measurement) -> str:
    return f"{m.wall_ms:7.3f} ({m.cpu_ms:6.3f})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--optimizers", default="random,hho")
    parser.add_argument("--budgets", default="100,1000,5000,20000")
    parser.add_argument("--tpe-budgets", default="100,1000", help="budgets for tpe, if --optimizers names it")
    parser.add_argument("--params", type=int, default=30)
    args = parser.parse_args(argv)
    space = float_space(args.params)
    print(f"# {describe_machine()}")
    print(f"# {args.params} float parameters; ms per evaluation, objective excluded: wall (CPU)")
    header = (f"{'optimizer':<9} {'budget':>6} | {'ask/tell':>16} | {'run_loop':>16} | {'tune':>16} | "
              f"{'files+study':>11} | {'first 10%':>9} {'last 10%':>9}")
    with tempfile.TemporaryDirectory(prefix="loop-overhead-") as tmp:
        out = Path(tmp)
        for name in args.optimizers.split(","):
            budgets = [int(b) for b in (args.tpe_budgets if name == "tpe" else args.budgets).split(",")]
            measure(through_tune(name, space, 20, out))  # warm-up: imports, first-call caches
            startup = min(measure(through_tune(name, space, 1, out)).wall_ms for _ in range(3))
            print(f"\n{header}")
            for budget in budgets:
                raw = measure(ask_tell(name, space, budget))
                loop = measure(bare_loop(name, space, budget))
                full = measure(through_tune(name, space, budget, out))
                print(f"{name:<9} {budget:>6} | {cell(raw)} | {cell(loop)} | {cell(full)} | "
                      f"{full.wall_ms - loop.wall_ms:11.3f} | {full.first_tenth_ms:9.3f} {full.last_tenth_ms:9.3f}",
                      flush=True)
            print(f"{name} tune, {budgets[-1]} evaluations, ms per evaluation in each tenth: "
                  + " ".join(f"{t:.3f}" for t in full.tenths_ms))
            print(f"{name}: start-up of a run (tune with budget 1): {startup:.1f} ms")
    print(f"\n# load average at the end: {load_average()}")


if __name__ == "__main__":
    main()
