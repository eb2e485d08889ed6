"""The same 1-layer trial 8 times on a 2-worker LocalCluster, with and without Dask's MALLOC_TRIM_THRESHOLD_.

Prints, per trial: its number, the worker's pid, wall seconds and the worker process's CPU
seconds. ``default`` starts the workers with Dask's own pre-spawn environment (which sets
MALLOC_TRIM_THRESHOLD_=65536); ``unset`` leaves that variable out, as hho-tune now does.
This is the measurement behind bench/RESULTS.md section 4 ("The malloc fix"); it was first
run as an ad-hoc script with the same code.

    python bench/worker_malloc.py default
    python bench/worker_malloc.py unset
"""

from __future__ import annotations

import os
import sys
import time

import dask
from distributed import Client, LocalCluster

from hho_tune.executors import _worker_env


def trial(number: int) -> tuple[int, int, float, float]:
    from hho_tune.objective import _lstm_objective_in_this_process

    objective = _lstm_objective_in_this_process(2, 10_000, 0, None)
    started, cpu_started = time.perf_counter(), time.process_time()
    objective({"learning_rate": 1e-3, "decay_epochs": 0.5, "num_layers": 1})
    return number, os.getpid(), round(time.perf_counter() - started, 2), round(time.process_time() - cpu_started, 2)


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "default"
    if mode not in ("default", "unset"):
        sys.exit("usage: python bench/worker_malloc.py default|unset")
    if mode == "unset":
        dask.config.set({"distributed.nanny.pre-spawn-environ":
                         {"OMP_NUM_THREADS": 1, "MKL_NUM_THREADS": 1, "OPENBLAS_NUM_THREADS": 1}})
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                           env=_worker_env(2, None))
    client = Client(cluster)
    print("MALLOC_TRIM_THRESHOLD_ on the workers:", client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_")))
    for future in [client.submit(trial, n, pure=False) for n in range(8)]:
        print("(trial, pid, wall s, CPU s):", future.result(), flush=True)
    client.close()
    cluster.close()


if __name__ == "__main__":
    main()
