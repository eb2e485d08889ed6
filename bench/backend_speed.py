"""Keras on JAX against Keras on TensorFlow (issue 14): one training's throughput, and the default search.

**Training** (the default mode). Four sides, each run in a fresh process, for 1, 2 and 3 LSTM
layers, side by side and alternating (the order of the sides turns by one every repetition, so
that a slow spell of a shared machine hits each side alike):

* ``package-jax`` / ``package-tensorflow``: the package's own evaluation,
  ``hho_tune.objective.LstmObjective(epochs=E, train_size=N, seed=0)`` called with learning_rate
  1e-3, decay_steps 100, num_layers L, on that backend (``hho_tune.backend.use_backend``);
* ``plain-jax`` / ``plain-tensorflow``: the reference LSTM written here in plain Keras
  (Input((28, 28)), LSTM(100) x L, Dense(10), Adam 1e-3, cross-entropy on logits, batch 50),
  ``model.fit`` on the first N training images of the packaged MNIST file, read with numpy.

Each process first trains one warm-up epoch on the first ``--warmup`` images (the package: the
same architecture from its model pool, so the timed call reuses the compiled step as a search
does from its second trial of an architecture on; plain: the same model), then times ``model.fit``
of E epochs on N images (timing.timed_fit; the package's through timing.phase_clock). Images/s =
E x N / seconds of that fit; the package's whole call (validation included) is printed too.

**Search** (``--search``): the real CLI, ``hho-tune --budget B --seed S --backend X``, in fresh
processes, TensorFlow and JAX alternating (the first of each pair alternating too), ``--pairs``
pairs. The two backends' searches take different paths (their scores differ from the first
trial: another backend draws other initial weights and rounds differently), so beside the wall
time it reports the trainings' mean seconds, the mean by number of layers, and the best score
found, from run.json and trials.csv. Where both backends trained the same configurations
(``--search-args --optimizer random``: its proposals do not follow the scores), it also compares
them one for one: the scores by a paired Wilcoxon test, and the trainings' time on that identical
workload.

    python bench/backend_speed.py                     # 1-3 layers, 2 repetitions, 2 epochs on 10,000
    python bench/backend_speed.py --search --pairs 2  # the default search, TF and JAX alternating
    python bench/backend_speed.py --quick             # a smoke run of the training mode (a minute)
    python bench/backend_speed.py --search --quick    # a smoke run of the search mode
    python bench/backend_speed.py --search --pairs 1 --search-args --optimizer random   # same configurations

Needs JAX (``pip install -e ".[jax]"``). Nothing here asserts anything about time.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import REPO, describe_machine, load_average, median

SIDES = ("package-jax", "package-tensorflow", "plain-jax", "plain-tensorflow")
UNITS, STEPS, FEATURES, CLASSES, BATCH = 100, 28, 28, 10, 50
MNIST_FILE = REPO / "hho_tune" / "resources" / "mnist.npz"
RESULT_TAG = "RESULT "


# --- one side, in its own process -------------------------------------------------------------


def child(side: str, layers: int, epochs: int, train_size: int, warmup: int) -> dict[str, Any]:
    """Run one side once in this (fresh) process; what it measured, as JSON-able numbers."""
    kind, backend = side.split("-", 1)
    from hho_tune.backend import start_backend, use_backend

    use_backend(backend)  # sets KERAS_BACKEND before Keras is imported
    start_backend()  # the runtime's start-up is no training's cost, on either side
    return (package_side if kind == "package" else plain_side)(layers, epochs, train_size, warmup)


def package_side(layers: int, epochs: int, train_size: int, warmup: int) -> dict[str, Any]:
    from timing import phase_clock

    from hho_tune.objective import LstmObjective

    params = {"learning_rate": 1e-3, "decay_steps": 100, "num_layers": layers}
    objective = LstmObjective(epochs=epochs, train_size=train_size, seed=0)
    warm = LstmObjective(epochs=1, train_size=warmup, seed=0)
    warm.models = objective.models  # one pool: the timed call reuses the warmed-up model, as a search does
    warm(params)
    with phase_clock() as phases:
        started = time.perf_counter()
        score = objective(params)
        seconds = time.perf_counter() - started
    (fit,) = phases.fits
    return {"images_per_second": fit.images_per_second, "fit_seconds": fit.seconds, "cpu_seconds": fit.cpu_seconds,
            "call_seconds": seconds, "score": score, "metric": "validation accuracy"}


def plain_side(layers: int, epochs: int, train_size: int, warmup: int) -> dict[str, Any]:
    import keras
    import numpy as np
    from timing import timed_fit

    with np.load(MNIST_FILE) as archive:
        x = archive["x_train"][:train_size].astype(np.float32) / 255.0
        y = archive["y_train"][:train_size].astype(np.int32)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((STEPS, FEATURES))]
        + [keras.layers.LSTM(UNITS, return_sequences=index < layers - 1) for index in range(layers)]
        + [keras.layers.Dense(CLASSES)]
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x[:warmup], y[:warmup], batch_size=BATCH, epochs=1, verbose=0)
    history, fit = timed_fit(type(model).fit, model, x, y, batch_size=BATCH, epochs=epochs, verbose=0)
    return {"images_per_second": fit.images_per_second, "fit_seconds": fit.seconds, "cpu_seconds": fit.cpu_seconds,
            "call_seconds": fit.seconds, "score": float(history.history["accuracy"][-1]), "metric": "training accuracy"}


def run_child(side: str, layers: int, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", side, "--layers", str(layers),
               "--epochs", str(args.epochs), "--train-size", str(args.train_size), "--warmup", str(args.warmup)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("HHO_TUNE_BACKEND", None)
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    lines = [line for line in result.stdout.splitlines() if line.startswith(RESULT_TAG)]
    if result.returncode != 0 or not lines:
        raise SystemExit(f"{side}, {layers} layer(s) failed:\n{result.stderr[-3000:]}")
    return json.loads(lines[-1][len(RESULT_TAG):])


def training_mode(args: argparse.Namespace) -> None:
    print(f"machine: {describe_machine()}")
    print(f"command: python bench/{Path(__file__).name} {' '.join(sys.argv[1:])}".rstrip())
    print(f"{args.epochs} epochs on {args.train_size:,} images after 1 warm-up epoch on {args.warmup:,}, batch {BATCH}, "
          f"{args.repeats} repetition(s), fresh process per measurement\n", flush=True)
    results: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for repetition in range(args.repeats):
        for layers in args.layers:
            turn = (repetition + layers) % len(SIDES)
            for side in SIDES[turn:] + SIDES[:turn]:
                measured = run_child(side, layers, args)
                results[side, layers].append(measured)
                print(f"  repetition {repetition + 1}, {layers} layer(s), {side:>18}: "
                      f"{measured['images_per_second']:7,.0f} img/s, fit {measured['fit_seconds']:.2f} s "
                      f"(CPU {measured['cpu_seconds']:.1f} s), whole call {measured['call_seconds']:.2f} s, "
                      f"{measured['metric']} {measured['score']:.4f} (load {load_average()})", flush=True)
    print("\nMedian images/s (fit alone), and ratios of the medians:\n")
    print("| layers | package JAX | package TF | plain JAX | plain TF | package JAX/TF | plain JAX/TF "
          "| package/plain, JAX | package/plain, TF |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for layers in args.layers:
        speed = {side: median([r["images_per_second"] for r in results[side, layers]]) for side in SIDES}
        print(f"| {layers} | {speed['package-jax']:,.0f} | {speed['package-tensorflow']:,.0f} "
              f"| {speed['plain-jax']:,.0f} | {speed['plain-tensorflow']:,.0f} "
              f"| {speed['package-jax'] / speed['package-tensorflow']:.2f}x "
              f"| {speed['plain-jax'] / speed['plain-tensorflow']:.2f}x "
              f"| {speed['package-jax'] / speed['plain-jax']:.2f} "
              f"| {speed['package-tensorflow'] / speed['plain-tensorflow']:.2f} |")
    print(f"\nload average at the end: {load_average()}")


# --- the search, through the CLI ------------------------------------------------------------------


def run_search(backend: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """One ``hho-tune`` run in a fresh process; its wall time and what run.json and trials.csv say."""
    command = [sys.executable, "-m", "hho_tune.cli", "--budget", str(args.budget), "--seed", str(args.seed),
               "--backend", backend, "--out", str(out), *args.search_args]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("HHO_TUNE_BACKEND", None)
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
    wall = time.perf_counter() - started
    (run_json,) = out.glob("*/run.json")
    run = json.loads(run_json.read_text())
    with open(run_json.parent / "trials.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    durations = [float(row["duration"]) for row in rows if row["state"] == "COMPLETE"]
    by_layers: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        if row["state"] == "COMPLETE":
            by_layers[row.get("params_num_layers", "?")].append(float(row["duration"]))
    best = run.get("best") or {}
    trials = {int(row["number"]): (tuple(v for k, v in sorted(row.items()) if k.startswith("params_")),
                                   float(row["value"]), float(row["duration"]))
              for row in rows if row["state"] == "COMPLETE"}
    return {"trials": trials, "wall": wall, "run_seconds": run["timings"]["seconds"], "trainings": len(durations),
            "mean_training": sum(durations) / max(len(durations), 1), "trained": sum(durations),
            "by_layers": {layers: (len(v), sum(v) / len(v)) for layers, v in sorted(by_layers.items())},
            "best": best.get("value"), "best_params": best.get("params"), "run_dir": str(run_json.parent),
            "backend": run["machine"]["keras_backend"]}


def search_mode(args: argparse.Namespace) -> None:
    print(f"machine: {describe_machine()}")
    print(f"command: python bench/{Path(__file__).name} {' '.join(sys.argv[1:])}".rstrip())
    print(f"each run: hho-tune --budget {args.budget} --seed {args.seed} --backend X {' '.join(args.search_args)}\n",
          flush=True)
    runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as scratch:
        root = args.out or Path(scratch)
        for pair in range(args.pairs):
            order = ("tensorflow", "jax") if pair % 2 == 0 else ("jax", "tensorflow")
            for backend in order:
                measured = run_search(backend, args, root / f"pair{pair}-{backend}")
                assert measured["backend"] == backend, measured
                runs[backend].append(measured)
                layers = ", ".join(f"{k} layer(s) {n} x {s:.1f} s" for k, (n, s) in measured["by_layers"].items())
                print(f"  pair {pair + 1}, {backend:>10}: {measured['wall']:.1f} s wall ({measured['run_seconds']:.1f} s "
                      f"in the run), {measured['trainings']} trainings, {measured['mean_training']:.2f} s each "
                      f"({layers}); best {measured['best']} {measured['best_params']} (load {load_average()})",
                      flush=True)
    print("\n| pair | TF wall s | JAX wall s | TF/JAX wall | TF s/training | JAX s/training | TF/JAX per training "
          "| TF best | JAX best |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for pair, (tf, jx) in enumerate(zip(runs["tensorflow"], runs["jax"], strict=True)):
        print(f"| {pair + 1} | {tf['wall']:.1f} | {jx['wall']:.1f} | {tf['wall'] / jx['wall']:.2f}x "
              f"| {tf['mean_training']:.2f} | {jx['mean_training']:.2f} | {tf['mean_training'] / jx['mean_training']:.2f}x "
              f"| {tf['best']} | {jx['best']} |")
    for pair, (tf, jx) in enumerate(zip(runs["tensorflow"], runs["jax"], strict=True)):
        print_same_trials(pair, tf["trials"], jx["trials"])
    print(f"\nload average at the end: {load_average()}")


def print_same_trials(pair: int, tf: dict[int, tuple], jx: dict[int, tuple]) -> None:
    """Where both backends trained the same configurations (``--optimizer random``: proposals that
    do not depend on scores), compare them one for one: a paired test of the scores and the
    time ratio on an identical workload. HHO and TPE follow their scores, so their paths part."""
    same = [n for n in sorted(set(tf) & set(jx)) if tf[n][0] == jx[n][0]]
    if len(same) < 2:
        print(f"\npair {pair + 1}: {len(same)} configuration(s) trained on both backends; no paired comparison")
        return
    from hho_tune.stats import paired_test  # the test hho-tune compare uses, here paired by configuration

    test = paired_test("jax", "tensorflow", {n: jx[n][1] for n in same}, {n: tf[n][1] for n in same}, "maximize")
    mean = sum(jx[n][1] - tf[n][1] for n in same) / len(same)
    p_value = 1.0 if test.p_value is None else test.p_value
    tf_seconds, jx_seconds = sum(tf[n][2] for n in same), sum(jx[n][2] for n in same)
    print(f"\npair {pair + 1}: {len(same)} configurations trained on both backends: JAX minus TF score "
          f"median {test.median_improvement:+.4f}, mean {mean:+.4f}; JAX higher at {test.first_better}, "
          f"lower at {test.second_better}; Wilcoxon p = {p_value:.3g}; "
          f"trainings {tf_seconds:.1f} s on TF against {jx_seconds:.1f} s on JAX ({tf_seconds / jx_seconds:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[1, 2, 3], help="LSTM layer counts (default 1 2 3)")
    parser.add_argument("--repeats", type=int, default=2, help="repetitions of each layer count (default 2)")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs (default 2, as a search trial)")
    parser.add_argument("--train-size", type=int, default=10_000, help="timed training images (default 10,000)")
    parser.add_argument("--warmup", type=int, default=1_000, help="images of the warm-up epoch (default 1,000)")
    parser.add_argument("--search", action="store_true", help="time the CLI's search on both backends instead")
    parser.add_argument("--budget", type=int, default=30, help="--search: trainings per run (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="--search: the runs' seed (default 0)")
    parser.add_argument("--pairs", type=int, default=2, help="--search: TF/JAX pairs (default 2)")
    parser.add_argument("--search-args", nargs=argparse.REMAINDER, default=[],
                        help="--search: further hho-tune flags, last on the line (e.g. --search-args --epochs 1)")
    parser.add_argument("--out", type=Path, default=None, help="--search: keep the run directories here")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 1 layer, 1 epoch on 500 images, 1 repetition; --search: budget 2, 1 pair, "
                             "1 epoch on 200 images")
    parser.add_argument("--child", choices=SIDES, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        (layers,) = args.layers
        print(RESULT_TAG + json.dumps(child(args.child, layers, args.epochs, args.train_size, args.warmup)), flush=True)
        return
    if args.quick:
        args.layers, args.repeats, args.epochs, args.train_size, args.warmup = [1], 1, 1, 500, 100
        args.budget, args.pairs = 2, 1
        args.search_args = [*args.search_args, "--epochs", "1", "--train-size", "200"]
    (search_mode if args.search else training_mode)(args)


if __name__ == "__main__":
    main()
