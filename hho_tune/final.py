"""``hho-tune train``: train one configuration at full fidelity and score it, once, on the test set.

The configuration comes from ``hho-tune export`` (or ``--preset NAME``, a recipe of the
original exercise). Training uses the 55,000 training images less the 5,000 validation ones;
validation accuracy is printed after every epoch; then the 10,000 test images are scored
once. The output directory gets ``model.keras`` (plain Keras loads it), ``metrics.json``
and ``training_curves.png``.

A search trains briefly (by default 2 epochs of 10,000 images: 200 Adam steps an epoch),
final training long (1,100 steps an epoch). The default search space counts the decay in
epochs (``decay_epochs``), which final training turns into its own steps. A configuration
whose decay counts steps (``decay_steps``, a custom space) would decay 5.5 times faster per
epoch in final training than in its search: ``--rescale-decay`` multiplies ``decay_steps``
by that ratio of steps per epoch, so the learning rate at the end of each epoch is the one
the search measured; metrics.json records it.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from hho_tune.data import Split, TrainValidation
from hho_tune.errors import TrainingDiverged, UsageError
from hho_tune.objective import LstmConfig

DEFAULT_FINAL_EPOCHS = 20
KEEP_CHOICES = ("best", "last")
DEFAULT_KEEP = "best"
DEFAULT_RESULTS = "results"
METRICS_FILE = "metrics.json"
MODEL_FILE = "model.keras"
CURVES_FILE = "training_curves.png"
TEST_BATCH = 1_000
EXIT_DIVERGED = 1


@dataclass(frozen=True)
class DecayRescaling:
    """``decay_steps`` scaled by the ratio of steps per epoch, final training over search."""

    searched_decay_steps: int
    trained_decay_steps: int
    search_steps_per_epoch: int
    final_steps_per_epoch: int


@dataclass(frozen=True)
class TrainingPlan:
    """Everything a final training needs, checked before TensorFlow is started."""

    name: str
    config: LstmConfig
    epochs: int
    seed: int
    data: str | None
    train_size: int | None
    origin: dict[str, Any]
    search_fidelity: dict[str, Any] = field(default_factory=dict)
    keep: str = DEFAULT_KEEP  # "best": the weights of the best validation epoch; "last": the last epoch's
    patience: int | None = None  # stop after this many epochs without a better validation accuracy


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    loss: float
    accuracy: float
    val_loss: float
    val_accuracy: float
    learning_rate: float
    seconds: float


# --- reading a configuration file -------------------------------------------------------------


def read_config_entry(path: Path, rank: int | None) -> dict[str, Any]:
    """The configuration object at ``rank`` (1 = best) of an exported file; one clear line if it is unusable."""
    if not path.exists():
        raise UsageError(f"{path}: config file not found")
    if path.is_dir():
        raise UsageError(f"{path}: is a directory; give a JSON file written by 'hho-tune export'")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read config file ({exc})") from None
    if not text.strip():
        raise UsageError(f"{path}: config file is empty")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{path}: corrupt config file (not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    shape = "an object with 'params' (as 'hho-tune export' writes), or with 'configs', a list of them"
    if not isinstance(document, dict):
        raise UsageError(f"{path}: expected {shape}; found a JSON {type(document).__name__}")
    if "configs" in document:
        entries = document["configs"]
        if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
            raise UsageError(f"{path}: 'configs' must be a non-empty list of configuration objects")
        chosen = rank or 1
        if chosen > len(entries):
            raise UsageError(f"{path}: --rank {chosen} asked for, but the file holds {len(entries)} configurations")
        return entries[chosen - 1]
    if "params" not in document:
        raise UsageError(f"{path}: expected {shape}; found keys {', '.join(sorted(document)) or 'none'}")
    if rank not in (None, 1):
        raise UsageError(f"{path}: holds one configuration; --rank {rank} needs a file from 'hho-tune export --top K'")
    return document


def plan_from_config(path: Path, entry: Mapping[str, Any], *, rank: int | None) -> TrainingPlan:
    params = entry.get("params")
    if not isinstance(params, dict) or not params:
        raise UsageError(f"{path}: 'params' must be a non-empty object of parameter name to number")
    for name, value in params.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UsageError(f"{path}: parameter {name!r} must be a number, got {value!r}")
    try:
        config = LstmConfig.from_params(params)
    except (ValueError, OverflowError) as exc:
        raise UsageError(f"{path}: invalid parameters ({exc})") from None
    except UsageError as exc:
        raise UsageError(f"{path}: {exc}") from None
    seed = entry.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UsageError(f"{path}: 'seed' must be a whole number, got {seed!r}")
    data = entry.get("data")
    if data is not None and not isinstance(data, str):
        raise UsageError(f"{path}: 'data' must be a file name or null, got {data!r}")
    fidelity = entry.get("fidelity") if isinstance(entry.get("fidelity"), dict) else {}
    # "hho-s0-t12": optimizer, seed and trial of an exported run; a hand-written file goes by its name.
    name = f"{entry.get('optimizer') or 'run'}-s{seed}-t{entry['trial']}" if "trial" in entry else path.stem
    return TrainingPlan(
        name=name, config=config, epochs=DEFAULT_FINAL_EPOCHS, seed=seed, data=data, train_size=None,
        origin={"config_file": str(path.absolute()), "rank": rank or entry.get("rank", 1), "exported": dict(entry)},
        search_fidelity=dict(fidelity),
    )


def plan_from_preset(name: str) -> TrainingPlan:
    from hho_tune.presets import get_preset

    preset = get_preset(name)
    return TrainingPlan(
        name=preset.name, config=preset.config, epochs=preset.epochs, seed=0, data=None, train_size=None,
        origin={"preset": preset.name, "description": preset.description},
    )


# --- the decay rescaling -------------------------------------------------------------------------


def rescale_decay(plan: TrainingPlan, final_train_size: int) -> tuple[TrainingPlan, DecayRescaling]:
    """Scale ``decay_steps`` so the learning rate after each epoch is the one the search measured.

    Needs the search's train size, which an exported configuration records.
    """
    if plan.config.decay_epochs is not None:
        raise UsageError("--rescale-decay applies to decay_steps; this configuration's decay_epochs already "
                         "keeps the schedule per epoch")
    search_size = plan.search_fidelity.get("train_size")
    if isinstance(search_size, bool) or not isinstance(search_size, int) or search_size < 1:
        raise UsageError("--rescale-decay needs the search's train_size, which this configuration does not record")
    batch = plan.config.batch_size
    search_steps, final_steps = math.ceil(search_size / batch), math.ceil(final_train_size / batch)
    trained = max(1, round(plan.config.decay_steps * final_steps / search_steps))
    rescaling = DecayRescaling(
        searched_decay_steps=plan.config.decay_steps, trained_decay_steps=trained,
        search_steps_per_epoch=search_steps, final_steps_per_epoch=final_steps,
    )
    return replace(plan, config=replace(plan.config, decay_steps=trained)), rescaling


# --- the command -----------------------------------------------------------------------------------


def build_train_parser() -> argparse.ArgumentParser:
    from hho_tune.cli import _int, _Parser, _positive_int, add_backend_argument
    from hho_tune.presets import PRESETS

    parser = _Parser(
        prog="hho-tune train",
        description="Train an exported configuration (or a preset) at full fidelity and score it once on the test set.",
    )
    parser.add_argument("config", metavar="CONFIG", nargs="?", help="a JSON file written by 'hho-tune export'")
    parser.add_argument("--preset", choices=list(PRESETS), default=None,
                        help="train a recipe of the original exercise instead of CONFIG")
    parser.add_argument("--rank", type=_positive_int, default=None,
                        help="which configuration of a --top K export to train (default 1, the best)")
    parser.add_argument("--epochs", type=_positive_int, default=None,
                        help=f"training epochs (default {DEFAULT_FINAL_EPOCHS}; a preset brings its own)")
    parser.add_argument("--seed", type=_int, default=None, help="training seed (default: the configuration's)")
    parser.add_argument("--out", default=None, help="output directory (default results/<time>-final-<name>/)")
    parser.add_argument("--data", default=None, help="an .npz in keras.datasets.mnist's layout (default: the config's)")
    parser.add_argument("--train-size", type=_positive_int, default=None,
                        help="train on the first N of the 55,000 training images (default: all; for quick checks)")
    parser.add_argument("--rescale-decay", action="store_true",
                        help="multiply decay_steps by (steps per epoch now) / (steps per epoch in the search)")
    parser.add_argument("--keep", choices=KEEP_CHOICES, default=DEFAULT_KEEP,
                        help="which weights model.keras gets: those of the best validation epoch, or the last "
                             f"(default {DEFAULT_KEEP})")
    parser.add_argument("--patience", type=_positive_int, default=None,
                        help="stop when validation accuracy has not improved for this many epochs (default: train all)")
    parser.add_argument("--threads", type=_positive_int, default=None,
                        help="training threads: TensorFlow's pools, or XLA's on JAX (default: all cores)")
    add_backend_argument(parser)
    return parser


def make_plan(args: argparse.Namespace) -> TrainingPlan:
    if (args.config is None) == (args.preset is None):
        raise UsageError("give either CONFIG (a file from 'hho-tune export') or --preset NAME")
    if args.preset is not None:
        if args.rank is not None or args.rescale_decay:
            flag = "--rank" if args.rank is not None else "--rescale-decay"
            raise UsageError(f"{flag} applies to an exported configuration, not to --preset")
        plan = plan_from_preset(args.preset)
    else:
        path = Path(args.config)
        plan = plan_from_config(path, read_config_entry(path, args.rank), rank=args.rank)
    return replace(
        plan,
        epochs=args.epochs or plan.epochs,
        seed=plan.seed if args.seed is None else args.seed,
        data=args.data if args.data is not None else plan.data,
        train_size=args.train_size,
        keep=args.keep,
        patience=args.patience,
    )


def run_train_command(argv: Sequence[str], console: Console) -> int:
    from hho_tune.backend import use_backend
    from hho_tune.data import load_test, load_train_validation

    args = build_train_parser().parse_args(argv)
    args.backend = use_backend(args.backend)  # before anything imports Keras: an --objective winner's module may
    if args.config is not None and args.preset is None:
        entry = read_config_entry(Path(args.config), args.rank)
        if entry.get("objective_spec"):
            return train_own_objective(entry, args, console)
    plan = make_plan(args)
    out = Path(args.out) if args.out else None
    check_output_dir(out)
    data = load_train_validation(plan.data, train_size=plan.train_size)
    test = load_test(plan.data)
    rescaling = None
    if args.rescale_decay:
        plan, rescaling = rescale_decay(plan, len(data.train))
    plan = replace(plan, config=plan.config.for_training_set(len(data.train)))
    out_dir = make_output_dir(out, plan.name)

    console.print(f"training {plan.name}: {_describe(plan.config)}", highlight=False)
    if rescaling is not None:
        console.print(
            f"decay_steps rescaled {rescaling.searched_decay_steps} -> {rescaling.trained_decay_steps} "
            f"({rescaling.final_steps_per_epoch} steps an epoch here, {rescaling.search_steps_per_epoch} in the search)",
            highlight=False,
        )
    console.print(
        f"{plan.epochs} epochs, seed {plan.seed}, {len(data.train):,} training images, {len(data.validation):,} validation; "
        f"output {out_dir}", highlight=False,
    )
    document: dict[str, Any] = {
        "name": plan.name,
        "status": "running",
        "backend": args.backend,
        "configuration": asdict(plan.config),
        "epochs": plan.epochs,
        "keep": plan.keep,
        "patience": plan.patience,
        "seed": plan.seed,
        "train_size": len(data.train),
        "validation_size": len(data.validation),
        "test_size": len(test),
        "data": data.source,
        "decay_rescaling": None if rescaling is None else asdict(rescaling),
        "origin": plan.origin,
        "command": ["hho-tune", "train", *argv],
        "started": datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    return _train(plan, data, test, out_dir, document, console, threads=args.threads)


def train_own_objective(entry: Mapping[str, Any], args: argparse.Namespace, console: Console) -> int:
    """A winner of ``--objective module:name``: that objective's own ``train_final`` (:class:`hho_tune.keras.KerasObjective`)."""
    from hho_tune.cli import load_objective_function

    spec = str(entry["objective_spec"])
    lstm_only = [flag for flag, value in (("--data", args.data), ("--train-size", args.train_size),
                                          ("--rescale-decay", args.rescale_decay or None),
                                          ("--patience", args.patience)) if value is not None]
    if lstm_only or args.keep != DEFAULT_KEEP:
        raise UsageError(f"{(lstm_only or ['--keep'])[0]} applies to the LSTM; {spec} trains as its train_final says")
    objective = load_objective_function(spec)
    train_final = getattr(objective, "train_final", None)
    if not callable(train_final):
        raise UsageError(f"{spec} has no train_final(params, epochs=, seed=, out_dir=): hho-tune train trains the "
                         "LSTM and hho_tune.keras.KerasObjective winners")
    params = entry.get("params")
    if not isinstance(params, dict) or not params:
        raise UsageError(f"{args.config}: 'params' must be a non-empty object")
    epochs = args.epochs or DEFAULT_FINAL_EPOCHS
    seed = entry.get("seed", 0) if args.seed is None else args.seed
    out = Path(args.out) if args.out else None
    check_output_dir(out)
    out_dir = make_output_dir(out, f"{entry.get('optimizer') or 'run'}-s{seed}-t{entry.get('trial', 0)}")
    console.print(f"training {spec} {params}: {epochs} epochs, seed {seed}; output {out_dir}", highlight=False)
    try:
        metrics = train_final(dict(params), epochs=epochs, seed=seed, out_dir=out_dir)
    except TrainingDiverged as exc:
        _error(f"training diverged ({exc}); no model saved")
        return EXIT_DIVERGED
    metric = metrics.get("metric", "metric")
    test = metrics.get("test")
    console.print(f"saved the model of epoch {metrics.get('saved_epoch')} (best {metric} "
                  f"{metrics.get(f'saved_{metric}')}); test: {test if test else 'no test data given'}", highlight=False)
    console.print(f"wrote {out_dir / MODEL_FILE}, {METRICS_FILE}", highlight=False)
    return 0


def _train(plan: TrainingPlan, data: TrainValidation, test: Split, out_dir: Path, document: dict[str, Any],
           console: Console, *, threads: int | None) -> int:
    from hho_tune.api import package_versions
    from hho_tune.backend import before_saving
    from hho_tune.machine import machine_description
    from hho_tune.objective import start_backend, train_and_score

    start_backend(threads)
    document["versions"] = package_versions()
    document["machine"] = machine_description(threads=threads)  # what another machine must match to reproduce it
    records: list[EpochRecord] = []
    started = time.perf_counter()
    keeper = best_epoch_keeper(plan)
    try:
        model, _ = train_and_score(plan.config, data, epochs=plan.epochs, seed=plan.seed,
                                   callbacks=[_epoch_reporter(console, plan.epochs, records), *keeper],
                                   validation=data.validation)
    except TrainingDiverged as exc:
        _finish(out_dir, document, records, started, status="diverged", error=str(exc))
        _error(f"training diverged in epoch {len(records)} of {plan.epochs} (the loss is not finite); no model saved, "
               f"{out_dir / METRICS_FILE} records what happened (a lower learning_rate usually helps)")
        return EXIT_DIVERGED
    except KeyboardInterrupt:
        _finish(out_dir, document, records, started, status="interrupted", error="interrupted by the user (Ctrl-C)")
        raise
    training_seconds = time.perf_counter() - started

    test_started = time.perf_counter()
    test_accuracy, test_loss = score_test(model, test)
    if not math.isfinite(test_loss):
        _finish(out_dir, document, records, started, status="diverged", error="non-finite loss on the test images")
        _error(f"the trained model gives a non-finite loss on the test images; no model saved, see {out_dir / METRICS_FILE}")
        return EXIT_DIVERGED
    before_saving()
    model.save(out_dir / MODEL_FILE)
    saved = saved_record(plan, records)
    document.update(test_accuracy=test_accuracy, test_loss=test_loss, saved_epoch=saved.epoch,
                    saved_val_accuracy=saved.val_accuracy,
                    stopped_early=len(records) < plan.epochs)
    document["seconds_test"] = round(time.perf_counter() - test_started, 3)
    document["seconds_training"] = round(training_seconds, 3)
    _finish(out_dir, document, records, started, status="finished", error="")
    write_curves(out_dir / CURVES_FILE, records, title=f"{plan.name}: test accuracy {test_accuracy:.4f}")

    best = max(records, key=lambda r: r.val_accuracy)
    stopped = f", stopped after {len(records)} epochs (patience {plan.patience})" if len(records) < plan.epochs else ""
    console.print(
        f"test accuracy {test_accuracy:.4f} (loss {test_loss:.4f}) on {len(test):,} test images, of the model of "
        f"epoch {saved.epoch} ({plan.keep}); best validation accuracy {best.val_accuracy:.4f} at epoch {best.epoch}"
        f"{stopped}; {_clock(training_seconds)} training",
        highlight=False,
    )
    console.print(f"wrote {out_dir / MODEL_FILE}, {METRICS_FILE}, {CURVES_FILE}", highlight=False)
    return 0


def best_epoch_keeper(plan: TrainingPlan) -> list[Any]:
    """Keras's ``EarlyStopping(restore_best_weights=True)`` on validation accuracy, when the plan asks for it.

    Why EarlyStopping rather than ModelCheckpoint(save_best_only=True): it keeps the best weights in
    memory and puts them back when training ends (stopped early or not), so the model that is
    saved and scored on the test set is that epoch's, with no file written per improvement.
    Without --patience it never stops early (patience = all epochs). Ties keep the earlier epoch.
    """
    import keras

    if plan.keep == "last" and plan.patience is None:
        return []
    return [keras.callbacks.EarlyStopping(
        monitor="val_accuracy", mode="max", patience=plan.patience or plan.epochs,
        restore_best_weights=plan.keep == "best",
    )]


def saved_record(plan: TrainingPlan, records: Sequence[EpochRecord]) -> EpochRecord:
    """The epoch whose weights model.keras holds: the first best validation epoch, or the last one trained."""
    if plan.keep == "last":
        return records[-1]
    return max(records, key=lambda r: (r.val_accuracy, -r.epoch))


def score_test(model: Any, test: Split) -> tuple[float, float]:
    """Accuracy and mean cross-entropy on the test images, from one pass of logits.

    Counted in float64 (correct / n), so 9,892 of 10,000 is 0.9892, not float32's 0.98919999.
    """
    import numpy as np

    logits = model.predict(test.x, batch_size=TEST_BATCH, verbose=0).astype(np.float64)
    accuracy = float(np.mean(np.argmax(logits, axis=1) == test.y))
    peak = logits.max(axis=1, keepdims=True)
    log_normalizer = peak[:, 0] + np.log(np.exp(logits - peak).sum(axis=1))
    loss = float(np.mean(log_normalizer - logits[np.arange(len(test.y)), test.y]))
    return accuracy, loss


def _finish(out_dir: Path, document: dict[str, Any], records: list[EpochRecord], started: float,
            *, status: str, error: str) -> None:
    from hho_tune.results import write_json

    document.update(
        status=status,
        error=error,
        epochs_run=len(records),
        history=[asdict(r) for r in records],
        seconds=round(time.perf_counter() - started, 3),
        finished=datetime.now().astimezone().isoformat(timespec="seconds"),
    )
    document.setdefault("test_accuracy", None)
    document.setdefault("test_loss", None)
    write_json(out_dir / METRICS_FILE, document)


def _epoch_reporter(console: Console, epochs: int, records: list[EpochRecord]) -> Any:
    """A Keras callback that prints one line per epoch and keeps the epoch's numbers in ``records``."""
    import keras

    clock = {"start": 0.0}

    def on_epoch_begin(epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        clock["start"] = time.perf_counter()

    def on_epoch_end(epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        logs = logs or {}
        model = reporter.model
        learning_rate = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
        record = EpochRecord(
            epoch=epoch + 1,
            loss=float(logs.get("loss", math.nan)),
            accuracy=float(logs.get("accuracy", math.nan)),
            val_loss=float(logs.get("val_loss", math.nan)),
            val_accuracy=float(logs.get("val_accuracy", math.nan)),
            learning_rate=learning_rate,
            seconds=round(time.perf_counter() - clock["start"], 3),
        )
        records.append(record)
        console.print(
            f"epoch {record.epoch:>{len(str(epochs))}}/{epochs}  loss {record.loss:.4f}  accuracy {record.accuracy:.4f}  "
            f"val_accuracy {record.val_accuracy:.4f}  learning_rate {record.learning_rate:.3g}  {record.seconds:.1f}s",
            highlight=False,
        )

    reporter = keras.callbacks.LambdaCallback(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end)
    return reporter


def write_curves(path: Path, records: Sequence[EpochRecord], *, title: str) -> None:
    """Accuracy, loss and learning rate per epoch, training and validation, in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r.epoch for r in records]
    figure, (accuracy_axis, loss_axis, rate_axis) = plt.subplots(1, 3, figsize=(13, 3.8))
    accuracy_axis.plot(epochs, [r.accuracy for r in records], "o-", label="training")
    accuracy_axis.plot(epochs, [r.val_accuracy for r in records], "o-", label="validation")
    accuracy_axis.set(title="accuracy", xlabel="epoch")
    accuracy_axis.legend()
    loss_axis.plot(epochs, [r.loss for r in records], "o-", label="training")
    loss_axis.plot(epochs, [r.val_loss for r in records], "o-", label="validation")
    loss_axis.set(title="loss", xlabel="epoch", yscale="log")
    loss_axis.legend()
    rate_axis.plot(epochs, [r.learning_rate for r in records], "o-", color="tab:green")
    rate_axis.set(title="learning rate at epoch end", xlabel="epoch", yscale="log")
    for axis in (accuracy_axis, loss_axis, rate_axis):
        axis.grid(alpha=0.3)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def check_output_dir(out: Path | None) -> None:
    """Refuse an unusable output directory before the data are read and anything is trained."""
    from hho_tune.results import check_writable

    if out is None:
        check_writable(Path(DEFAULT_RESULTS))  # a fresh folder is made under it
        return
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out}: output directory exists and is not empty; give a new one")
    check_writable(out)


def make_output_dir(out: Path | None, name: str) -> Path:
    """``--out DIR`` exactly (new or empty), else a fresh results/<time>-final-<name>/."""
    from hho_tune.results import new_run_dir

    if out is None:
        return new_run_dir(Path(DEFAULT_RESULTS), f"final-{name}")
    check_output_dir(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{out}: cannot create output directory ({exc.strerror})") from None
    return out


def _error(message: str) -> None:
    """One line on stderr, as the CLI prints usage errors: a diverged training is not a bug."""
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"hho-tune: error: {message}", markup=False)


def _describe(config: LstmConfig) -> str:
    from hho_tune.display import format_params

    return format_params({name: value for name, value in asdict(config).items() if value is not None})


def _clock(seconds: float) -> str:
    from hho_tune.display import format_seconds

    return format_seconds(seconds)
