"""Training throughput of one fitness evaluation against a plain Keras ``model.fit`` (issue 6, item 1).

For 1, 2 and 3 LSTM layers, in one process, alternating the two sides (A B, then B A, ...):

* plain: a Keras model written here, independently of the package: Input((28, 28)),
  LSTM(100) x L, Dense(10), Adam, SparseCategoricalCrossentropy(from_logits=True),
  ``model.fit(batch_size=50)`` on the first N training images of the packaged MNIST file,
  loaded here with numpy;
* package: ``hho_tune.objective.LstmObjective(epochs=E, train_size=N, seed=0)`` called with
  learning_rate 1e-3, decay_steps 100, num_layers L.

Timed on both sides: the wall time of the ``model.fit`` call alone (the package's is wrapped
by :func:`timing.phase_clock`), so both include tracing the training step on first use.
"Steady" throughput leaves out the first epoch. Images/s = images trained / seconds. The
process's CPU time during the call is recorded too: on a shared machine the ratio of
images per CPU-second moves less than the wall-time one.

The training FLOPs per image are counted from the model's shapes and set against the
float32 matmul peak of this machine, measured here with ``tf.matmul`` before and after.

    python bench/throughput.py                       # 1, 2, 3 layers, 2 repetitions
    python bench/throughput.py --layers 1 --repeats 1  # a quick look
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import REPO, FitRecord, PhaseTimes, describe_machine, load_average, median, phase_clock, timed_fit

UNITS = 100
STEPS = 28
FEATURES = 28
CLASSES = 10
BATCH = 50
MNIST_FILE = REPO / "hho_tune" / "resources" / "mnist.npz"


def forward_flops_per_image(layers: int, units: int = UNITS) -> int:
    """FLOPs of one forward pass: 4 gates of (input + recurrent) matmuls per step, then the dense layer.

    A multiply-add counts as 2 FLOPs; biases and the element-wise gate arithmetic are left
    out (under 2% here).
    """
    flops = 0
    inputs = FEATURES
    for _ in range(layers):
        flops += STEPS * 2 * 4 * units * (inputs + units)
        inputs = units
    return flops + 2 * units * CLASSES


def training_flops_per_image(layers: int) -> int:
    """Forward plus backward: the usual estimate of 3 x forward (backward = 2 matmuls per forward one)."""
    return 3 * forward_flops_per_image(layers)


def matmul_gflops(size: int = 2048, repeats: int = 10, trials: int = 3) -> float:
    """Best-of-``trials`` float32 throughput of ``tf.matmul`` on two ``size`` x ``size`` matrices."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    a = tf.constant(rng.standard_normal((size, size), dtype=np.float32))
    b = tf.constant(rng.standard_normal((size, size), dtype=np.float32))
    tf.matmul(a, b).numpy()  # warm-up: thread pools, kernel selection
    best = float("inf")
    for _ in range(trials):
        started = time.perf_counter()
        for _ in range(repeats):
            product = tf.matmul(a, b)
        product.numpy()
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 * repeats / best / 1e9


def lstm_shaped_matmul_gflops(repeats: int = 200, trials: int = 3) -> float:
    """Throughput of the matmul the recurrent step does, (50 x 100) @ (100 x 400), inside one tf.function.

    Small matrices cannot reach the large-matmul peak; this says how much of the gap is the
    shape itself rather than Keras or the package.
    """
    import tensorflow as tf

    rng = np.random.default_rng(0)
    h = tf.constant(rng.standard_normal((BATCH, UNITS), dtype=np.float32))
    w = tf.constant(rng.standard_normal((UNITS, 4 * UNITS), dtype=np.float32) * 0.01)

    @tf.function
    def chain() -> tf.Tensor:
        # Each step depends on the previous one, as the time steps of an LSTM do.
        state = h
        for _ in range(repeats):
            state = tf.matmul(state, w)[:, :UNITS]
        return state

    chain().numpy()
    best = float("inf")
    for _ in range(trials):
        started = time.perf_counter()
        chain().numpy()
        best = min(best, time.perf_counter() - started)
    return 2 * BATCH * UNITS * 4 * UNITS * repeats / best / 1e9


def load_plain_data(train_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``train_size`` training images as float32 in [0, 1], read with numpy (no package code)."""
    with np.load(MNIST_FILE) as archive:
        x = archive["x_train"][:train_size].astype(np.float32) / 255.0
        y = archive["y_train"][:train_size].astype(np.int32)
    return x, y


def plain_fit(layers: int, x: np.ndarray, y: np.ndarray, epochs: int) -> FitRecord:
    """Build the reference LSTM in plain Keras and time its ``model.fit``."""
    import keras

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((STEPS, FEATURES))]
        + [keras.layers.LSTM(UNITS, return_sequences=index < layers - 1) for index in range(layers)]
        + [keras.layers.Dense(CLASSES)]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    _, record = timed_fit(type(model).fit, model, x, y, batch_size=BATCH, epochs=epochs, verbose=0)
    return record


@dataclass(frozen=True)
class PackageEvaluation:
    """One call of the package's fitness: its total wall time and the phases inside it."""

    seconds: float
    phases: PhaseTimes

    @property
    def fit(self) -> FitRecord:
        (record,) = self.phases.fits
        return record


def package_evaluation(objective: object, layers: int) -> PackageEvaluation:
    """Call ``LstmObjective`` once with the reference hyperparameters and ``num_layers=layers``."""
    params = {"learning_rate": 1e-3, "decay_steps": 100, "num_layers": layers}
    with phase_clock() as phases:
        started = time.perf_counter()
        objective(params)
        seconds = time.perf_counter() - started
    return PackageEvaluation(seconds, phases)


@dataclass(frozen=True)
class Pair:
    layers: int
    plain: FitRecord
    package: PackageEvaluation


def run_pairs(layer_counts: list[int], repeats: int, epochs: int, train_size: int) -> list[Pair]:
    """Alternate plain and package runs (A B for even repetitions, B A for odd ones) to cancel drift."""
    from hho_tune.objective import LstmObjective, start_tensorflow

    x, y = load_plain_data(train_size)
    objective = LstmObjective(epochs=epochs, train_size=train_size, seed=0)
    start_tensorflow(objective.threads)  # else the first timed call would pay TensorFlow's start
    pairs = []
    for repetition in range(repeats):
        for layers in layer_counts:
            if repetition % 2 == 0:
                plain = plain_fit(layers, x, y, epochs)
                package = package_evaluation(objective, layers)
            else:
                package = package_evaluation(objective, layers)
                plain = plain_fit(layers, x, y, epochs)
            pairs.append(Pair(layers, plain, package))
            print(f"  repetition {repetition + 1}, {layers} layer(s): plain {plain.images_per_second:,.0f} img/s, "
                  f"package {package.fit.images_per_second:,.0f} img/s (load {load_average()})", flush=True)
    return pairs


def report(pairs: list[Pair], layer_counts: list[int], peak: float) -> None:
    print("\n| layers | plain img/s | package img/s | package/plain | steady plain | steady package | steady ratio "
          "| package/plain per CPU-s | training MFLOP/img | package GFLOP/s | % of matmul peak |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for layers in layer_counts:
        mine = [pair for pair in pairs if pair.layers == layers]
        plain = median([pair.plain.images_per_second for pair in mine])
        package = median([pair.package.fit.images_per_second for pair in mine])
        ratio = median([pair.package.fit.images_per_second / pair.plain.images_per_second for pair in mine])
        steady_plain = median([pair.plain.steady_images_per_second for pair in mine])
        steady_package = median([pair.package.fit.steady_images_per_second for pair in mine])
        steady_ratio = median([pair.package.fit.steady_images_per_second / pair.plain.steady_images_per_second
                               for pair in mine])
        cpu_ratio = median([pair.package.fit.images_per_cpu_second / pair.plain.images_per_cpu_second for pair in mine])
        flops = training_flops_per_image(layers)
        gflops = package * flops / 1e9
        print(f"| {layers} | {plain:,.0f} | {package:,.0f} | {ratio:.3f} | {steady_plain:,.0f} | {steady_package:,.0f} "
              f"| {steady_ratio:.3f} | {cpu_ratio:.3f} | {flops / 1e6:.2f} | {gflops:.1f} | {100 * gflops / peak:.1f}% |")
    print("\nInside one package evaluation (medians, seconds):")
    print("\n| layers | whole call | build+compile | model.fit | of which 1st step (tracing) | validation "
          "| clear_session | other |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for layers in layer_counts:
        runs = [pair.package for pair in pairs if pair.layers == layers]
        whole = median([run.seconds for run in runs])
        build = median([run.phases.build for run in runs])
        fit = median([run.phases.fit for run in runs])
        first = median([run.phases.first_steps for run in runs])
        validation = median([run.phases.validation for run in runs])
        clear = median([run.phases.clear_session for run in runs])
        other = median([run.seconds - run.phases.build - run.phases.fit - run.phases.validation - run.phases.clear_session
                        for run in runs])
        print(f"| {layers} | {whole:.2f} | {build:.3f} | {fit:.2f} | {first:.2f} | {validation:.3f} | {clear:.3f} "
              f"| {other:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[1, 2, 3], help="LSTM layer counts (default 1 2 3)")
    parser.add_argument("--repeats", type=int, default=2, help="repetitions of each pair (default 2)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per training (default 2, as a search trial)")
    parser.add_argument("--train-size", type=int, default=10_000, help="training images (default 10,000, as a trial)")
    parser.add_argument("--threads", type=int, default=None,
                        help="TensorFlow intra- and inter-op threads for both sides (default: TensorFlow's, all cores)")
    args = parser.parse_args()

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf  # shared by both sides; the package then skips its own start-up

    if args.threads is not None:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    print(f"machine: {describe_machine()}")
    print(f"command: python bench/{Path(__file__).name} {' '.join(sys.argv[1:])}".rstrip())
    peak_before = matmul_gflops()
    small = lstm_shaped_matmul_gflops()
    print(f"float32 tf.matmul 2048x2048: {peak_before:.1f} GFLOP/s; (50x100)@(100x400) chained: {small:.1f} GFLOP/s")
    pairs = run_pairs(args.layers, args.repeats, args.epochs, args.train_size)
    peak_after = matmul_gflops()
    peak = max(peak_before, peak_after)
    print(f"float32 tf.matmul 2048x2048 after: {peak_after:.1f} GFLOP/s; the best of the two, {peak:.1f}, is the peak")
    report(pairs, args.layers, peak)
    print(f"\nload average at the end: {load_average()}")


if __name__ == "__main__":
    main()
