"""Where the wall time of the default search goes (issue 6, item 3).

``hho-tune --budget 30`` at default settings is, in-process::

    tune(LstmObjective(), SearchSpace.load("search_spaces/lstm_mnist.yaml"), optimizer="hho", budget=30, seed=0)

Phases, each timed by wrapping the package's own function (see ``timing.phase_clock``):

* start-up: a fresh interpreter importing the CLI, TensorFlow (as the package starts it) and
  Keras: the median of ``--startup-repeats`` subprocesses, since this process has paid it already;
* data loading: constructing ``LstmObjective()`` (reads and converts the MNIST file once);
* model building: ``build_model`` (Keras layers and ``compile``);
* training: ``model.fit`` inside ``train_and_score``; of which the first step of each fit,
  which is mostly tracing the training step of the new model;
* validation: ``validation_accuracy`` (``model.predict`` on 5,000 images);
* clear_session: ``keras.backend.clear_session(free_memory=True)`` after each trial;
* the rest: the optimizer, the cache, result files, the Optuna journal ledger: ``tune()``'s
  wall time less all of the above.

    python bench/wall_time_split.py              # the real thing: budget 30 (minutes)
    python bench/wall_time_split.py --budget 5   # a quick check
    python bench/wall_time_split.py --variant reuse+keep-memory   # with a candidate of evaluation_variants.py
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import REPO, describe_machine, load_average, median, phase_clock

SPACE_FILE = REPO / "search_spaces" / "lstm_mnist.yaml"
STARTUP_SNIPPET = (
    "import hho_tune.cli, hho_tune.api\n"
    "from hho_tune.objective import start_tensorflow\n"
    "start_tensorflow()\n"
    "import keras\n"
)


def startup_seconds(repeats: int) -> float:
    """Median wall time of a fresh Python that imports what ``hho-tune`` imports before its first trial."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", STARTUP_SNIPPET], check=True, cwd=REPO,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=int, default=30, help="evaluations (default 30, as hho-tune)")
    parser.add_argument("--optimizer", default="hho", help="default hho, as hho-tune")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--startup-repeats", type=int, default=3, help="fresh interpreters to time (default 3)")
    parser.add_argument("--variant", default="as-is",
                        help="run the search with a candidate speed-up of bench/evaluation_variants.py patched in")
    args = parser.parse_args()
    from evaluation_variants import PATCHES, variant

    unknown = [part for part in args.variant.split("+") if part not in PATCHES and args.variant != "as-is"]
    if unknown:
        parser.error(f"unknown variant {unknown[0]!r}; choose from {', '.join(PATCHES)}")

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    print(f"machine: {describe_machine()}")
    print(f"command: python bench/{Path(__file__).name} {' '.join(sys.argv[1:])}".rstrip())
    startup = startup_seconds(args.startup_repeats)
    print(f"  start-up: {startup:.2f} s (median of {args.startup_repeats} fresh interpreters)", flush=True)

    from hho_tune import SearchSpace, tune
    from hho_tune.objective import LstmObjective, start_tensorflow

    start_tensorflow()  # paid above, in the subprocesses; kept out of data loading here
    started = time.perf_counter()
    objective = LstmObjective()
    data = time.perf_counter() - started
    space = SearchSpace.load(SPACE_FILE)
    with tempfile.TemporaryDirectory() as out, variant(args.variant), phase_clock() as phases:
        started = time.perf_counter()
        result = tune(objective, space, optimizer=args.optimizer, budget=args.budget, seed=args.seed, out=out)
        search = time.perf_counter() - started

    trials = result.outcome.trials
    rest = search - phases.build - phases.fit - phases.validation - phases.clear_session
    total = startup + data + search
    rows = [
        ("start-up (interpreter, imports, TensorFlow)", startup),
        ("data loading (LstmObjective())", data),
        ("model building (build_model)", phases.build),
        ("training (model.fit)", phases.fit),
        ("  of which the first step of each fit (tracing)", phases.first_steps),
        ("validation (validation_accuracy)", phases.validation),
        ("clear_session(free_memory=True)", phases.clear_session),
        ("the rest: optimizer, cache, files, ledger", rest),
    ]
    images = sum(record.images for record in phases.fits)
    layers = Counter(int(t.params["num_layers"]) for t in trials)
    print(f"\nvariant: {args.variant}")
    print(f"{len(trials)} evaluations ({sum(1 for t in trials if not t.ok)} failed), {result.outcome.cached} cached; "
          f"layers {dict(sorted(layers.items()))}; mean trial {median([t.duration for t in trials]):.2f} s (median), "
          f"{sum(t.duration for t in trials) / max(len(trials), 1):.2f} s (mean); "
          f"training {images / phases.fit:,.0f} images/s over {len(phases.fits)} fits; "
          f"best {result.best.value if result.best else None} (trial {result.best.number if result.best else None})")
    # Two runs with the same digest proposed and scored exactly the same trials.
    digest = hashlib.sha1(repr([(sorted(t.params.items()), t.value) for t in trials]).encode()).hexdigest()[:12]
    print(f"digest of all trials' parameters and scores: {digest}")
    print("\n| phase | seconds | % of total |")
    print("|---|---:|---:|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.1f} | {100 * seconds / total:.1f}% |")
    print(f"| total | {total:.1f} | 100% |")
    print(f"\nload average at the end: {load_average()}")


if __name__ == "__main__":
    main()
