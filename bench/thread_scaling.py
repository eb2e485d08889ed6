"""Images per second of one evaluation's training: 1 or 2 processes, 1 or 2 TensorFlow threads each.

Each child process builds ``LstmObjective(epochs=1, train_size=10_000)``, trains once to trace,
then times two more trainings of the same model (kept by the objective's model pool). Tells
whether two 1-thread workers can beat one 2-thread process on this machine.

    python bench/thread_scaling.py          # about 3 minutes on 2 quiet cores
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def child(threads: int, layers: int) -> None:
    from hho_tune.objective import LstmObjective

    objective = LstmObjective(epochs=1, train_size=10_000, seed=0, threads=threads)
    params = {"learning_rate": 1e-3, "decay_steps": 100, "num_layers": layers}
    objective(params)  # traces the training step
    started = time.perf_counter()
    objective(params)
    objective(params)
    print(f"{2 * 10_000 / (time.perf_counter() - started):.0f}", flush=True)


def main() -> None:
    for layers in (1, 2):
        for processes, threads in ((1, 2), (2, 1), (2, 2), (1, 1)):
            children = [subprocess.Popen([sys.executable, __file__, "child", str(threads), str(layers)],
                                         stdout=subprocess.PIPE, text=True) for _ in range(processes)]
            rates = [float(c.communicate()[0].strip().splitlines()[-1]) for c in children]
            load = Path("/proc/loadavg").read_text().split()[0]
            print(f"{layers} layer(s), {processes} process(es) x {threads} thread(s): {rates} img/s each, "
                  f"{sum(rates):.0f} in all (load {load})", flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child(int(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
