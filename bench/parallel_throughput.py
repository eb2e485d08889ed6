"""Item 4 of bench/RESULTS.md: `hho-tune --budget 30` with 1 and with 2 workers, side by side.

Each configuration runs the real CLI in a fresh process (start-up included), alternating
1, 2, 1, 2, ... so that a slow spell of a shared machine hits both alike. Reports wall time,
evaluations per minute, the speed-up of 2 workers over 1, and whether both found the same
trials (HHO proposes the same configurations whatever the number of workers).

    python bench/parallel_throughput.py                 # the default search, once each (~9 min)
    python bench/parallel_throughput.py --budget 10 --train-size 2000 --repeats 2   # a quick look
    python bench/parallel_throughput.py --optimizer random   # a fixed workload
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import load_average


def run_once(workers: int, args: argparse.Namespace, out: Path) -> tuple[float, list[tuple[str, ...]], str]:
    """Wall seconds of one CLI run, its trials (params and value, sorted by trial number), where its time went."""
    command = [sys.executable, "-m", "hho_tune.cli", "--budget", str(args.budget), "--seed", str(args.seed),
               "--out", str(out), "--workers", str(workers), "--optimizer", args.optimizer]
    if args.epochs:
        command += ["--epochs", str(args.epochs)]
    if args.train_size:
        command += ["--train-size", str(args.train_size)]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    (trials_csv,) = out.glob("*/trials.csv")
    with open(trials_csv, newline="") as handle:
        records = list(csv.DictReader(handle))
    rows = sorted((r["number"], *(v for k, v in sorted(r.items()) if k.startswith("params_")), r["value"])
                  for r in records)
    return seconds, rows, time_spent(records, workers, seconds)


def time_spent(records: list[dict[str, str]], workers: int, seconds: float) -> str:
    """Trainings summed, first start to last end, how busy the workers were then, and the rest of the wall time."""
    starts = [datetime.fromisoformat(r["datetime_start"]).timestamp() for r in records]
    ends = [datetime.fromisoformat(r["datetime_complete"]).timestamp() for r in records]
    trained = sum(float(r["duration"]) for r in records)
    span = max(ends) - min(starts)
    return (f"trainings {trained:.1f} s summed, first start to last end {span:.1f} s "
            f"(workers busy {trained / (workers * span):.0%}), outside it {seconds - span:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--train-size", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--optimizer", default="hho",
                        help="random proposes the same configurations whatever the scores: the same work for 1 and 2 "
                             "workers even where a training's score differs between them (see RESULTS.md section 4)")
    parser.add_argument("--out", type=Path, default=None, help="keep the run directories here (default: a temp dir)")
    args = parser.parse_args()
    print(f"load average at start: {load_average()}")
    times: dict[int, list[float]] = {1: [], 2: []}
    trials: dict[tuple[int, int], list] = {}  # (workers, repeat) -> rows
    with tempfile.TemporaryDirectory() as scratch:
        root = args.out or Path(scratch)
        for repeat in range(args.repeats):
            for workers in (1, 2):
                seconds, rows, spent = run_once(workers, args, root / f"w{workers}-r{repeat}")
                times[workers].append(seconds)
                trials[workers, repeat] = rows
                load = load_average()
                print(f"repeat {repeat}: {workers} worker(s): {seconds:.1f} s (load average after: {load}); {spent}",
                      flush=True)
    print(f"load average at end: {load_average()}")
    print()
    print("| workers | wall time (median s) | evaluations per minute | speed-up |")
    print("|---|---|---|---|")
    one = statistics.median(times[1])
    for workers in (1, 2):
        median = statistics.median(times[workers])
        print(f"| {workers} | {median:.1f} | {args.budget / median * 60:.2f} | {one / median:.2f}x |")
    print()
    for repeat in range(args.repeats):
        single, double = trials[1, repeat], trials[2, repeat]
        print(f"repeat {repeat}: same trials with 1 and 2 workers: {single == double}")
        differing = [(one, two) for one, two in zip(single, double, strict=False) if one != two]
        for one, two in differing[:3]:
            print(f"  first differences: 1 worker {one} / 2 workers {two}")
        if row_has_layers(single) and row_has_layers(double):
            print(f"  LSTM layers trained in all (a rough measure of the work): "
                  f"{sum(int(row[-2]) for row in single)} / {sum(int(row[-2]) for row in double)}")


def row_has_layers(rows: list[tuple[str, ...]]) -> bool:
    return all(len(row) >= 3 and row[-2].isdigit() for row in rows)


if __name__ == "__main__":
    main()
