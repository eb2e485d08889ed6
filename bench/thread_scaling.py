"""Seconds per evaluation with 1 or 2 processes at once and their TensorFlow thread settings.

Each child process builds the default ``LstmObjective`` (2 epochs of 10,000 images, then the
5,000 validation images), evaluates once to trace, then times ``--trials`` more evaluations
of the same configuration (kept by the objective's model pool). The children of a setting
start together, as two Dask workers would. Tells which per-worker thread setting makes two
workers finish the most evaluations, against one process using both cores (``--workers 1``).

    python bench/thread_scaling.py                  # about 6 minutes on 2 quiet cores
    python bench/thread_scaling.py --layers 1 --settings 1x2x2 2x1x1
    python bench/thread_scaling.py --layers 1 2 --settings 2x1x1 2x1x1p   # pinned to a core each
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import load_average

PARAMS = {"learning_rate": 0.008144886973076106, "decay_epochs": 0.13526470965635223}  # trial 0 of the default search
DEFAULT_SETTINGS = ("1x2x2", "1x1x1", "2x1x1", "2x1x2", "2x2x2")


def child(intra: int, inter: int, layers: int, trials: int) -> None:
    from hho_tune.objective import LstmObjective, start_tensorflow

    start_tensorflow(intra, inter)  # before the objective, whose own call then leaves TensorFlow as it is
    objective = LstmObjective()
    params = {**PARAMS, "num_layers": layers}
    objective(params)  # traces the training step
    for _ in range(trials):
        started = time.perf_counter()
        objective(params)
        print(f"{time.perf_counter() - started:.3f}", flush=True)


def run_setting(setting: str, layers: int, trials: int) -> list[float]:
    """Seconds of every timed evaluation of every child of ``PxIxO`` (processes x intra x inter).

    A trailing ``p`` (``2x1x1p``) pins child i to core i with ``taskset``.
    """
    pinned = setting.endswith("p")
    processes, intra, inter = (int(part) for part in setting.removesuffix("p").split("x"))
    command = [sys.executable, __file__, "child", str(intra), str(inter), str(layers), str(trials)]
    children = [subprocess.Popen(["taskset", "-c", str(i), *command] if pinned else command,
                                 stdout=subprocess.PIPE, text=True) for i in range(processes)]
    seconds: list[float] = []
    for process in children:
        out, _ = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"child {setting} exited with {process.returncode}")
        seconds += [float(line) for line in out.split()]
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--settings", nargs="+", default=list(DEFAULT_SETTINGS),
                        help="PROCESSESxINTRAxINTER, e.g. 2x1x1: two processes at once, 1 intra-op and 1 inter-op "
                             "thread; a trailing p (2x1x1p) pins each process to its own core")
    parser.add_argument("--trials", type=int, default=3, help="timed evaluations per child after the first")
    args = parser.parse_args()
    print(f"load average at start: {load_average()}")
    print("| layers | processes x intra x inter | s per evaluation (median, range) | evaluations per minute, "
          "all processes | vs 1x2x2 |")
    print("|---:|---|---|---:|---:|")
    for layers in args.layers:
        reference = None
        for setting in args.settings:
            seconds = run_setting(setting, layers, args.trials)
            processes = int(setting.removesuffix("p").split("x")[0])
            rate = processes * 60 / statistics.median(seconds)
            reference = reference or (rate if setting == "1x2x2" else None)
            versus = f"{rate / reference:.2f}x" if reference else "-"
            print(f"| {layers} | {setting} | {statistics.median(seconds):.2f} ({min(seconds):.2f}-{max(seconds):.2f}) | "
                  f"{rate:.1f} | {versus} |", flush=True)
    print(f"load average at end: {load_average()}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child(*(int(value) for value in sys.argv[2:6]))
    else:
        main()
