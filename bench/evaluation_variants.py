"""Candidate speed-ups of one fitness evaluation, each measured on the package's real code path.

Note: the package has since adopted the winner, ``reuse`` + ``no-clear`` (``ModelPool`` in
hho_tune/objective.py). The figures in bench/RESULTS.md section 5 were measured on the package
before that (commit 2538e55). On the current package every variant that patches
``build_model`` (``no-metric``, ``spe10``, ``spe50``, ``xla``, ``unroll``, ``reuse``) or
``clear_session`` (``no-clear``, ``keep-memory``) changes nothing, because the search now gets
its models from the pool and clears no session; ``no-grappler``, ``epoch-nan``, ``gc-freeze``
and the validation variants still act.

Every variant is the package's ``LstmObjective`` call with one change patched in (undone
afterwards), so a figure says what that change alone would buy. Variants and the unchanged
package ("as-is") alternate in rounds; the table gives medians and the median of per-round
ratios to "as-is", and the validation accuracy, so a change that breaks training shows.

Training variants (``--variants``; join names with ``+`` to combine them):

* ``no-metric``: compile without ``metrics=["accuracy"]`` (the search scores on validation itself);
* ``spe10``, ``spe50``: ``steps_per_execution=10`` or 50 (training steps per call of the compiled function);
* ``xla``: ``jit_compile=True`` (Keras turns XLA off on CPU-only machines by default);
* ``unroll``: ``LSTM(unroll=True)``: 28 copies of the step instead of a while loop;
* ``no-grappler``: TensorFlow's graph optimizer (grappler) off, which shortens the first step
  (tracing and optimizing a new model's training function) and may slow the later ones;
* ``epoch-nan``: a NaN check at the end of each epoch instead of ``TerminateOnNaN`` after every batch;
* ``reuse``: one compiled model per architecture, kept across trials: each trial builds the
  package's fresh seeded model as now (cheap), copies its initial weights into the kept one,
  zeroes the optimizer's state and sets the learning-rate schedule's numbers, which are
  variables there; the training and prediction functions are traced once per architecture
  (measure it in the sequences below: a single call always traces);
* ``no-clear``: no ``clear_session`` after a trial;
* ``keep-memory``: ``clear_session()`` without ``free_memory=True`` (which runs ``gc.collect()``);
  the session-clearing sequences below measure this better, over consecutive trials.

Validation variants, each on a freshly built model so that tracing is paid as in a trial:
``predict`` with batches of 1,000 (as-is) or 5,000, and a direct eager ``model(x)`` call.

Sequences: ``--sequence-trials`` consecutive evaluations (1 and 2 layers in turn) on
``--sequence-train-size`` images (small, so that the per-trial overhead is not lost in the
noise of training), each variant entered once around the whole sequence. This is where
``reuse``, ``keep-memory``, ``no-clear`` and ``gc-freeze`` (``gc.freeze()`` once before the
trials, so that ``clear_session``'s full collection skips TensorFlow's own objects) show
what they cost or save per trial, how the resident memory grows, and whether the scores
stay those of the unchanged package.

    python bench/evaluation_variants.py
    python bench/evaluation_variants.py --layers 1 --repeats 1 --variants xla unroll
    python bench/evaluation_variants.py --sections sequences   # in a fresh process
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import PhaseTimes, describe_machine, load_average, median, patched, phase_clock

SECTIONS = ("training", "validation", "sequences")
DEFAULT_SEQUENCE_VARIANTS = ["as-is", "keep-memory", "no-clear", "gc-freeze", "reuse", "reuse+keep-memory"]
DEFAULT_VARIANTS = ["no-metric", "spe10", "spe50", "xla", "unroll", "epoch-nan", "no-metric+spe10"]


@contextmanager
def _rebuilt(change: Callable[[Any], None]) -> Iterator[None]:
    """Let ``change(model)`` alter every model the package builds, before it is trained."""
    import hho_tune.objective as objective

    original = objective.build_model

    def build_model(config: Any, **seeding: Any) -> Any:
        model = original(config, **seeding)
        change(model)
        return model

    with patched(objective, "build_model", build_model):
        yield


def _recompile(**overrides: Any) -> Callable[[Any], None]:
    """Compile the package's model again with the same optimizer and loss and some settings changed."""

    def change(model: Any) -> None:
        settings = {"metrics": ["accuracy"], **overrides}
        model.compile(optimizer=model.optimizer, loss=model.loss, **settings)

    return change


def _unroll(model: Any) -> None:
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.LSTM):
            layer.unroll = True  # read by LSTM.call when fit traces the training step


@contextmanager
def _epoch_nan_check() -> Iterator[None]:
    """Replace TerminateOnNaN (a host sync and a numpy check after every batch) by an end-of-epoch check."""
    import keras

    class EpochNaNCheck(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            loss = (logs or {}).get("loss")
            if loss is not None and not np.isfinite(loss):
                self.model.stop_training = True

    with patched(keras.callbacks, "TerminateOnNaN", EpochNaNCheck):
        yield


def _adjustable_decay(config: Any) -> Any:
    """Keras's ExponentialDecay with its three numbers held in variables, so that they can change
    between trials without tracing the training step again. ``__call__`` is Keras's own."""
    import keras

    schedule = keras.optimizers.schedules.ExponentialDecay(
        config.learning_rate, config.decay_steps, config.decay_rate, staircase=True)
    schedule.initial_learning_rate = keras.Variable(config.learning_rate, dtype="float32", trainable=False)
    schedule.decay_steps = keras.Variable(float(config.decay_steps), dtype="float32", trainable=False)
    schedule.decay_rate = keras.Variable(config.decay_rate, dtype="float32", trainable=False)
    return schedule


@contextmanager
def _reuse_models() -> Iterator[None]:
    """Keep one compiled model per architecture; reset it to what a freshly built model would be."""
    import keras

    import hho_tune.objective as objective

    original = objective.build_model
    kept: dict[tuple[int, int], Any] = {}

    def build_model(config: Any, **seeding: Any) -> Any:
        fresh = original(config, **seeding)  # draws the initial weights from the seeded generators exactly as now
        key = (config.num_layers, config.lstm_units)
        if key not in kept:
            schedule = _adjustable_decay(config)
            fresh.compile(optimizer=keras.optimizers.Adam(learning_rate=schedule), loss=fresh.loss, metrics=["accuracy"])
            kept[key] = fresh
            return fresh
        model = kept[key]
        model.set_weights(fresh.get_weights())
        for variable in model.optimizer.variables:
            variable.assign(keras.ops.zeros(variable.shape, variable.dtype))
        schedule = model.optimizer._learning_rate
        schedule.initial_learning_rate.assign(config.learning_rate)
        schedule.decay_steps.assign(float(config.decay_steps))
        schedule.decay_rate.assign(config.decay_rate)
        return model

    with patched(objective, "build_model", build_model):
        yield


@contextmanager
def _gc_freeze() -> Iterator[None]:
    """Move every object alive now (TensorFlow, Keras, the data) out of the garbage collector's reach,
    so the full collection in ``clear_session(free_memory=True)`` walks only what trials created."""
    import gc

    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextmanager
def _no_clear() -> Iterator[None]:
    import keras

    with patched(keras.backend, "clear_session", lambda free_memory=True: None):
        yield


@contextmanager
def _no_grappler() -> Iterator[None]:
    import tensorflow as tf

    original = tf.config.optimizer.get_experimental_options()
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": False, **original})


@contextmanager
def _keep_memory() -> Iterator[None]:
    import keras

    original = keras.backend.clear_session
    with patched(keras.backend, "clear_session", lambda free_memory=True: original()):
        yield


PATCHES: dict[str, Callable[[], AbstractContextManager[None]]] = {
    "no-metric": lambda: _rebuilt(_recompile(metrics=None)),
    "spe10": lambda: _rebuilt(_recompile(steps_per_execution=10)),
    "spe50": lambda: _rebuilt(_recompile(steps_per_execution=50)),
    "xla": lambda: _rebuilt(_recompile(jit_compile=True)),
    "unroll": lambda: _rebuilt(_unroll),
    "no-grappler": _no_grappler,
    "epoch-nan": _epoch_nan_check,
    "keep-memory": _keep_memory,
    "no-clear": _no_clear,
    "gc-freeze": _gc_freeze,
    "reuse": _reuse_models,
}


@contextmanager
def variant(name: str) -> Iterator[None]:
    """Apply the patches of ``name`` ("as-is", one patch, or patches joined with "+")."""
    with ExitStack() as stack:
        if name != "as-is":
            for part in name.split("+"):
                stack.enter_context(PATCHES[part]())
        yield


@dataclass(frozen=True)
class Measurement:
    variant: str
    layers: int
    round: int
    seconds: float
    cpu_seconds: float
    score: float
    phases: PhaseTimes

    @property
    def images_per_second(self) -> float:
        (fit,) = self.phases.fits
        return fit.images_per_second

    @property
    def images_per_cpu_second(self) -> float:
        (fit,) = self.phases.fits
        return fit.images_per_cpu_second


def measure_training(objective: Any, names: list[str], layer_counts: list[int], repeats: int) -> list[Measurement]:
    """Rounds of every variant in turn (rotating the order each round) for each layer count."""
    results = []
    for round_ in range(repeats):
        for layers in layer_counts:
            order = names[round_ % len(names):] + names[:round_ % len(names)]
            for name in order:
                params = {"learning_rate": 1e-3, "decay_steps": 100, "num_layers": layers}
                with variant(name), phase_clock() as phases:
                    started, cpu_started = time.perf_counter(), time.process_time()
                    score = objective(params)
                    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
                result = Measurement(name, layers, round_, seconds, cpu_seconds, score, phases)
                results.append(result)
                print(f"  round {round_ + 1}, {layers} layer(s), {name}: {seconds:.2f} s, "
                      f"{result.images_per_second:,.0f} img/s, accuracy {score:.4f} (load {load_average()})", flush=True)
    return results


def report_training(results: list[Measurement], names: list[str], layer_counts: list[int]) -> None:
    print("\n| layers | variant | whole call s | fit img/s | fit speed vs as-is | call time vs as-is "
          "| fit img/CPU-s vs as-is | call CPU time vs as-is | 1st step s | validation s | clear_session s "
          "| validation accuracy |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for layers in layer_counts:
        baseline = {m.round: m for m in results if m.layers == layers and m.variant == "as-is"}
        for name in names:
            mine = [m for m in results if m.layers == layers and m.variant == name]
            speed = median([m.images_per_second / baseline[m.round].images_per_second for m in mine])
            call = median([m.seconds / baseline[m.round].seconds for m in mine])
            cpu_speed = median([m.images_per_cpu_second / baseline[m.round].images_per_cpu_second for m in mine])
            cpu_call = median([m.cpu_seconds / baseline[m.round].cpu_seconds for m in mine])
            scores = ", ".join(f"{m.score:.4f}" for m in mine)
            print(f"| {layers} | {name} | {median([m.seconds for m in mine]):.2f} "
                  f"| {median([m.images_per_second for m in mine]):,.0f} | {speed:.3f} | {call:.3f} "
                  f"| {cpu_speed:.3f} | {cpu_call:.3f} | {median([m.phases.first_steps for m in mine]):.2f} "
                  f"| {median([m.phases.validation for m in mine]):.2f} "
                  f"| {median([m.phases.clear_session for m in mine]):.3f} | {scores} |")


def _predict(batch_size: int) -> Callable[[Any, np.ndarray], np.ndarray]:
    def run(model: Any, x: np.ndarray) -> np.ndarray:
        return model.predict(x, batch_size=batch_size, verbose=0)

    return run


def _direct_call(model: Any, x: np.ndarray) -> np.ndarray:
    return np.asarray(model(x, training=False))


VALIDATIONS: dict[str, Callable[[Any, np.ndarray], np.ndarray]] = {
    "predict(batch_size=1000) (as-is)": _predict(1000),
    "predict(batch_size=5000)": _predict(5000),
    "model(x) eager, one call": _direct_call,
}


def measure_validation(objective: Any, layer_counts: list[int], repeats: int) -> None:
    """Time each way of scoring the 5,000 validation images on a fresh (untrained) model."""
    import keras

    from hho_tune.objective import LstmConfig, build_model

    x = objective.data.validation.x
    times: dict[tuple[int, str], list[float]] = {}
    cpu_times: dict[tuple[int, str], list[float]] = {}
    for round_ in range(repeats):
        for layers in layer_counts:
            for name, score in VALIDATIONS.items():
                keras.utils.set_random_seed(round_)
                model = build_model(LstmConfig(num_layers=layers), seed=round_)
                started, cpu_started = time.perf_counter(), time.process_time()
                logits = score(model, x)
                times.setdefault((layers, name), []).append(time.perf_counter() - started)
                cpu_times.setdefault((layers, name), []).append(time.process_time() - cpu_started)
                assert logits.shape == (len(x), 10)
                keras.backend.clear_session()
    print("\n| layers | validation of 5,000 images | seconds (median, fresh model, tracing included) | CPU seconds |")
    print("|---:|---|---:|---:|")
    for (layers, name), seconds in times.items():
        print(f"| {layers} | {name} | {median(seconds):.3f} | {median(cpu_times[layers, name]):.3f} |")


def _resident_megabytes() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure_sequences(names: list[str], trials: int, train_size: int, repeats: int) -> None:
    """Runs of consecutive small evaluations under each variant, entered once around the whole run.

    What ``clear_session`` costs, what model reuse saves, and how memory grows only show over
    several trials, so each variant here spans ``trials`` evaluations alternating 1 and 2 layers.
    """
    import keras

    from hho_tune.objective import LstmObjective, start_tensorflow

    objective = LstmObjective(epochs=2, train_size=train_size, seed=0)
    start_tensorflow(objective.threads)  # else the first timed call would pay TensorFlow's start
    seconds: dict[str, list[float]] = {}
    cpu_seconds: dict[str, list[float]] = {}
    clearing: dict[str, list[float]] = {}
    first_steps: dict[str, list[float]] = {}
    growth: dict[str, list[float]] = {}
    scores: dict[str, list[tuple[float, ...]]] = {}
    for round_ in range(repeats):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            keras.backend.clear_session(free_memory=True)  # every run starts from the same clean state
            before = _resident_megabytes()
            with variant(name), phase_clock() as phases:
                started, cpu_started = time.perf_counter(), time.process_time()
                run_scores = tuple(objective({"learning_rate": 1e-3, "decay_steps": 100, "num_layers": 1 + trial % 2})
                                   for trial in range(trials))
                elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            seconds.setdefault(name, []).append(elapsed / trials)
            cpu_seconds.setdefault(name, []).append(cpu / trials)
            clearing.setdefault(name, []).append(phases.clear_session / trials)
            first_steps.setdefault(name, []).append(phases.first_steps / trials)
            growth.setdefault(name, []).append((_resident_megabytes() - before) / trials)
            scores.setdefault(name, []).append(run_scores)
            print(f"  round {round_ + 1}, {name}: {elapsed / trials:.2f} s per trial, "
                  f"{growth[name][-1]:+.1f} MiB per trial (load {load_average()})", flush=True)
    reference = scores[names[0]][0]
    print(f"\n| variant, over {trials} trials (1 and 2 layers, {train_size:,} images, 2 epochs) "
          "| s per trial | CPU s per trial | per trial vs as-is | 1st steps s per trial | clear_session s per trial "
          "| memory growth per trial | scores as as-is |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for name in names:
        ratio = median([mine / base for mine, base in zip(seconds[name], seconds[names[0]], strict=True)])
        same = all(run == reference for run in scores[name])
        print(f"| {name} | {median(seconds[name]):.2f} | {median(cpu_seconds[name]):.2f} | {ratio:.3f} "
              f"| {median(first_steps[name]):.2f} | {median(clearing[name]):.3f} | {median(growth[name]):+.1f} MiB "
              f"| {'identical' if same else 'different'} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[1, 2], help="LSTM layer counts (default 1 2)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per training (default 2, as a search trial)")
    parser.add_argument("--train-size", type=int, default=10_000, help="training images (default 10,000, as a trial)")
    parser.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS,
                        help=f"training variants, '+' combines (default {' '.join(DEFAULT_VARIANTS)})")
    parser.add_argument("--threads", type=int, default=None, help="TensorFlow threads (default: TensorFlow's, all cores)")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                        help="what to measure (default: all three)")
    parser.add_argument("--sequence-variants", nargs="+", default=DEFAULT_SEQUENCE_VARIANTS,
                        help=f"variants for the sequences (default {' '.join(DEFAULT_SEQUENCE_VARIANTS)})")
    parser.add_argument("--sequence-trials", type=int, default=8, help="trials per sequence (default 8)")
    parser.add_argument("--sequence-train-size", type=int, default=1_000, help="images per sequence trial (default 1,000)")
    args = parser.parse_args()
    for name in [*args.variants, *args.sequence_variants]:
        if name == "as-is":
            continue
        unknown = [part for part in name.split("+") if part not in PATCHES]
        if unknown:
            parser.error(f"unknown variant {unknown[0]!r}; choose from {', '.join(PATCHES)}")

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from hho_tune.objective import LstmObjective, start_tensorflow

    print(f"machine: {describe_machine()}")
    print(f"command: python bench/{Path(__file__).name} {' '.join(sys.argv[1:])}".rstrip())
    objective = LstmObjective(epochs=args.epochs, train_size=args.train_size, seed=0, threads=args.threads)
    start_tensorflow(objective.threads)  # else the first timed call would pay TensorFlow's start
    if "training" in args.sections:
        names = ["as-is", *args.variants]
        results = measure_training(objective, names, args.layers, args.repeats)
        report_training(results, names, args.layers)
    if "validation" in args.sections:
        measure_validation(objective, args.layers, args.repeats)
    if "sequences" in args.sections:
        names = ["as-is", *[name for name in args.sequence_variants if name != "as-is"]]
        measure_sequences(names, args.sequence_trials, args.sequence_train_size, args.repeats)
    print(f"\nload average at the end: {load_average()}")


if __name__ == "__main__":
    main()
