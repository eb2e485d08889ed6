"""The ``hho-tune`` command: a thin layer over :func:`hho_tune.tune` and friends.

Every user error ends as one line on stderr and exit code 2; Ctrl-C ends with 130.
Tuning is the default command, so ``hho-tune --budget 30`` is a whole invocation.
"""

from __future__ import annotations

import argparse
import importlib
import json
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console

from hho_tune.errors import UsageError

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
DEFAULT_SPACE = "lstm_mnist"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the usage text is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def add_search_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared by ``tune`` and ``compare``: what is searched and at which fidelity."""
    parser.add_argument("--budget", type=_positive_int, default=30, help="trainings per run (default 30)")
    parser.add_argument("--space", default=DEFAULT_SPACE,
                        help="search-space YAML file, or the name of a packaged one (default lstm_mnist)")
    parser.add_argument("--out", default="results", help="results root (default ./results)")
    parser.add_argument("--epochs", type=_positive_int, default=None,
                        help="training epochs per trial, without a pruner (default 2)")
    parser.add_argument("--pruner", default="none",
                        help="stop unpromising trainings early: none, median, sha, hyperband or optuna:CLASS (default none)")
    parser.add_argument("--max-epochs", type=_positive_int, default=None,
                        help="with a pruner: the most epochs a trial trains (default 8)")
    parser.add_argument("--epoch-budget", type=_positive_int, default=None,
                        help="stop once the trials have trained this many epochs in all (--budget still caps the "
                             "trainings): equal cost for pruned and fixed-length searches")
    parser.add_argument("--train-size", type=_positive_int, default=None,
                        help="training images per trial, from the 55,000 (default 10000)")
    parser.add_argument("--data", default=None, help="an .npz in keras.datasets.mnist's layout (default: packaged MNIST)")
    parser.add_argument("--objective", default=None,
                        help="module:function taking a params dict and returning a float, instead of the LSTM")
    parser.add_argument("--direction", choices=["maximize", "minimize"], default=None,
                        help="for --objective (default: the function's `direction` attribute, else maximize)")
    parser.add_argument("--pop-size", type=_int, default=None, help="hawks in HHO's population (default 5)")
    parser.add_argument("--tpe-startup", type=_positive_int, default=None,
                        help="random trials before TPE models (default: budget/5, between 5 and 10)")
    parser.add_argument("--max-failures", type=_positive_int, default=5,
                        help="stop after this many failed trials in a row (default 5)")
    parser.add_argument("--threads", type=_positive_int, default=None,
                        help="threads per training, TensorFlow's or XLA's on JAX (default: all cores, or each worker's share)")
    parser.add_argument("--workers", type=_positive_int, default=None,
                        help="train this many configurations at once: this process and N-1 local Dask workers, started "
                             "after the first training if enough is left to pay for them (default 1: in-process)")
    parser.add_argument("--scheduler", default=None,
                        help="address of an existing Dask scheduler (tcp://host:8786) whose workers train instead")
    add_backend_argument(parser)


def add_backend_argument(parser: argparse.ArgumentParser) -> None:
    """``--backend``, for ``tune``, ``compare`` and ``train``; None until :func:`hho_tune.backend.use_backend` settles it."""
    from hho_tune.backend import BACKENDS

    parser.add_argument("--backend", choices=BACKENDS, default=None,
                        help="Keras backend the trainings run on: tensorflow or jax (pip install 'hho-tune[jax]'); "
                             "default $HHO_TUNE_BACKEND, else $KERAS_BACKEND if one of these, else tensorflow")


def build_tune_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hho-tune",
        description="Tune the MNIST-rows LSTM (or any objective) with Harris Hawks Optimization.",
        epilog="Other commands: hho-tune compare | export | train  (each with --help).",
    )
    add_search_arguments(parser)
    parser.add_argument("--optimizer", default="hho",
                        help="hho, hho-mealpy, tpe, random, mealpy:MODULE.CLASS or optuna:SAMPLER (default hho)")
    parser.add_argument("--seed", type=_int, default=0, help="seed of the optimizer and of every training (default 0)")
    parser.add_argument("--storage", default=None,
                        help="Optuna storage URL for the run's study (default: sqlite study.db in the run directory)")
    parser.add_argument("--resume", metavar="RUN_DIR", default=None,
                        help="continue an interrupted run to its original budget with its original settings")
    return parser


def explicit_arguments(parser: argparse.ArgumentParser, argv: Sequence[str]) -> dict[str, Any]:
    """Only the flags the user typed (defaults left out), to check them against a resumed run."""
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return vars(parser.parse_args(argv))


def resolve_space_path(text: str) -> Path:
    """A path if it names a file (or looks like one), else a packaged space by name."""
    path = Path(text)
    if path.exists() or path.suffix in {".yaml", ".yml"} or len(path.parts) > 1:
        return path
    packaged = packaged_spaces_dir() / f"{text}.yaml"
    if packaged.is_file():
        return packaged
    raise UsageError(f"{text}: no such search-space file or packaged space")


def packaged_spaces_dir() -> Path:
    """search_spaces/ as installed (hho_tune.search_spaces), or beside the package in a source tree.

    The second case is ``python -m hho_tune.cli`` run from the repository root, where the
    source package shadows the installed one and has no search_spaces subpackage.
    """
    from importlib import resources

    try:
        return Path(str(resources.files("hho_tune.search_spaces")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "search_spaces"


def load_objective_function(spec: str) -> Callable[..., float]:
    """``module:function`` -> the function; the current directory is importable, like ``python -m``."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise UsageError(f"--objective must look like module:function, got {spec!r}")
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"--objective: cannot import module {module_name!r} ({exc})") from None
    function = getattr(module, attribute, None)
    if not callable(function):
        raise UsageError(f"--objective: {module_name!r} has no callable {attribute!r}")
    return function


def prepare_search(args: argparse.Namespace, *, seed: int) -> tuple[Callable[..., float], Any]:
    """The objective and its search space, with every input checked before anything is written."""
    from hho_tune.pruning import DEFAULT_MAX_EPOCHS, DEFAULT_PRUNER, check_pruner
    from hho_tune.space import SearchSpace, check_space

    check_pruner(args.pruner)
    pruning = args.pruner != DEFAULT_PRUNER
    if args.max_epochs is not None and not pruning:
        raise UsageError("--max-epochs applies with a pruner (--pruner sha, median, hyperband); "
                         "without one every trial trains --epochs")
    if pruning and args.epochs is not None:
        raise UsageError(f"with --pruner, trials train up to --max-epochs (default {DEFAULT_MAX_EPOCHS}); "
                         "--epochs is the fixed length without a pruner")
    space_given = args.space != DEFAULT_SPACE
    if args.objective:
        objective = load_objective_function(args.objective)
        has_fidelity = callable(getattr(objective, "with_epochs", None))  # lstm_table: epochs like the LSTM's
        lstm_flags = [flag for flag, value in (("--epochs", args.epochs), ("--max-epochs", args.max_epochs),
                                               ("--train-size", args.train_size), ("--data", args.data))
                      if value is not None and not (has_fidelity and flag in ("--epochs", "--max-epochs"))]
        if lstm_flags:
            raise UsageError(f"{lstm_flags[0]} applies to the LSTM fitness, not to --objective")
        if has_fidelity and pruning:
            most = getattr(objective, "most_epochs", DEFAULT_MAX_EPOCHS)
            objective = objective.with_epochs(args.max_epochs or min(DEFAULT_MAX_EPOCHS, most))
        elif has_fidelity and args.epochs is not None:
            objective = objective.with_epochs(args.epochs)
        from hho_tune.compare import objective_for_seed

        objective = objective_for_seed(objective, seed)  # seed k trains (or draws) as compare's run at seed k does
        own_space = getattr(objective, "default_space", None)
        space = own_space if own_space is not None and not space_given else SearchSpace.load(resolve_space_path(args.space))
        check_space(objective, space)
        return objective, space

    from hho_tune.data import validate_file
    from hho_tune.objective import DEFAULT_EPOCHS, DEFAULT_TRAIN_SIZE, LstmObjective

    space = SearchSpace.load(resolve_space_path(args.space))
    LstmObjective.check_space(space)  # names, domains: before the data and TensorFlow are loaded
    if args.data is not None:
        validate_file(args.data)
    objective = LstmObjective(
        epochs=(args.max_epochs or DEFAULT_MAX_EPOCHS) if pruning else (args.epochs or DEFAULT_EPOCHS),
        train_size=args.train_size or DEFAULT_TRAIN_SIZE,
        seed=seed,
        data_path=args.data,
        threads=args.threads,
    )
    return objective, space


def optimizer_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"tpe_startup": args.tpe_startup} if args.tpe_startup else {}


def run_tune(argv: Sequence[str], console: Console) -> int:
    from hho_tune.api import tune, validate_run_settings
    from hho_tune.backend import use_backend
    from hho_tune.display import ProgressPrinter
    from hho_tune.results import check_writable

    args = build_tune_parser().parse_args(argv)
    if args.resume:
        return run_resume(args, explicit_arguments(build_tune_parser(), argv), console)
    args.backend = use_backend(args.backend)  # before anything imports Keras (an --objective module may); run.json keeps it
    validate_run_settings(optimizer=args.optimizer, budget=args.budget,
                          direction=args.direction or "maximize", pop_size=args.pop_size)
    check_writable(Path(args.out))
    objective, space = prepare_search(args, seed=args.seed)
    epochs = f", epoch budget {args.epoch_budget}" if args.epoch_budget else ""
    console.print(f"hho-tune: {args.optimizer}, budget {args.budget}{epochs}, seed {args.seed}, space {space.source}",
                  highlight=False)
    arguments = {key: value for key, value in vars(args).items() if key != "resume"}
    result = tune(
        objective, space, optimizer=args.optimizer, budget=args.budget, seed=args.seed,
        direction=args.direction, out=args.out, pop_size=args.pop_size,
        optimizer_options=optimizer_options(args), max_failures=args.max_failures,
        listeners=[ProgressPrinter(console, epoch_budget=args.epoch_budget)], arguments=arguments, storage=args.storage,
        workers=args.workers, scheduler=args.scheduler, threads_per_worker=args.threads, pruner=args.pruner,
        epoch_budget=args.epoch_budget,
    )
    return report(result, console)


# Flags that may accompany --resume only with the value the run was started with.
_RUN_DEFINING_FLAGS = ("budget", "optimizer", "seed", "space", "out", "epochs", "train_size", "data", "objective",
                       "direction", "pop_size", "tpe_startup", "max_failures", "storage", "pruner", "max_epochs",
                       "backend", "epoch_budget")


def run_resume(args: argparse.Namespace, typed: Mapping[str, Any], console: Console) -> int:
    """``hho-tune --resume RUN_DIR``: the run's own settings; a typed flag must agree with them."""
    from hho_tune.api import read_run, resume
    from hho_tune.backend import recorded_backend, use_backend
    from hho_tune.display import ProgressPrinter, format_params

    run_dir = Path(args.resume)
    document = read_run(run_dir)
    stored = {**(document.get("arguments") or {}), "backend": recorded_backend(document)}  # a resume trains on the run's
    for flag in _RUN_DEFINING_FLAGS:
        if flag in typed and json.loads(json.dumps(typed[flag])) != stored.get(flag):
            raise UsageError(
                f"--resume {run_dir}: --{flag.replace('_', '-')} {typed[flag]} contradicts the run's "
                f"{stored.get(flag)!r}; leave it out to continue with the run's settings"
            )
    if document["status"] == "finished":
        console.print(f"{run_dir}: already finished ({document.get('evaluations')} trials); nothing to resume")
        return 0
    original = argparse.Namespace(**{**vars(build_tune_parser().parse_args([])), **stored,
                                     "threads": args.threads, "workers": args.workers, "scheduler": args.scheduler})
    use_backend(stored["backend"])
    objective, _ = prepare_search(original, seed=document["seed"])

    def tell_stale(stale: Sequence[Mapping[str, Any]]) -> None:
        for item in stale:
            console.print(f"trial {item['number']} ({format_params(item['params'])}) was left running by a process "
                          "that died: marked failed (interrupted) in the study, it will be trained again",
                          highlight=False)

    console.print(f"hho-tune: resuming {run_dir} ({document['optimizer']}, budget {document['budget']}, "
                  f"seed {document['seed']})", highlight=False)
    printer = ProgressPrinter(console, epoch_budget=document.get("epoch_budget"),
                              epochs_done=_recorded_epochs(run_dir, document))
    result = resume(run_dir, objective, listeners=[printer], on_stale=tell_stale,
                    workers=args.workers, scheduler=args.scheduler, threads_per_worker=args.threads)
    console.print(f"replayed {result.outcome.replayed} recorded trials without training", highlight=False)
    return report(result, console)


def _recorded_epochs(run_dir: Path, document: Mapping[str, Any]) -> int:
    """Epochs the recorded trials of a run trained (what a resumed run's epoch budget has spent already)."""
    from hho_tune.curves import epochs_trained, load_trials_with_curves
    from hho_tune.space import SearchSpace

    space = SearchSpace.from_dict(document["space"], source=document["space"].get("source", str(run_dir)))
    return epochs_trained(load_trials_with_curves(run_dir, space)) or 0


def report(result: Any, console: Console) -> int:
    """The summary after a run; exit 1 when the run stopped on failures before its budget."""
    from hho_tune.api import read_run
    from hho_tune.curves import describe_correlations
    from hho_tune.display import format_params, format_seconds, summary_table

    outcome = result.outcome
    document = read_run(result.run_dir)
    console.print(summary_table(outcome.trials, document["direction"], title=f"best of {outcome.evaluations} trials"))
    failed = sum(1 for t in outcome.trials if t.failed)
    pruned = sum(1 for t in outcome.trials if t.pruned)
    epochs = document.get("epochs_trained")
    console.print(
        f"{outcome.evaluations} trainings, {outcome.cached} cached, {failed} failed"
        + (f", {pruned} pruned" if pruned else "") + (f", {epochs} epochs trained in all" if epochs else "")
        + f", {format_seconds(outcome.seconds)} wall time; stopped: {outcome.stop_reason}", highlight=False,
    )
    correlations = document.get("rung_correlations") or []
    if correlations:
        console.print(f"rank agreement between epochs (Spearman): {describe_correlations(correlations)}",
                      highlight=False)
    if outcome.best is None:
        console.print("no trial completed", style="red")
    else:
        at = "" if outcome.best.steps is None else f" (after epoch {outcome.best.steps})"
        console.print(f"best: {outcome.best.value:.4f}{at}  {format_params(outcome.best.params)}", highlight=False)
        chosen = document.get("recommendation")
        if chosen:
            why = (f"a GP's pick, predicted {chosen['predicted']:.4f}" if chosen.get("predicted") is not None
                   else "the best observed")
            console.print(f"recommended (what hho-tune export writes; {why}): trial {chosen['trial']}, scored "
                          f"{chosen['observed']:.4f}  {format_params(chosen['params'])}", highlight=False)
    console.print(f"results: {result.run_dir}", highlight=False)
    if document["status"] == "stopped":
        Console(stderr=True).print(
            f"hho-tune: stopped before the budget: {outcome.stop_reason}. Everything is kept; "
            f"fix the cause and continue with: hho-tune --resume {result.run_dir}", markup=False, highlight=False,
        )
        return EXIT_FAILED
    return 0


# Each command lives in its own module and is imported only when it runs.
COMMANDS: dict[str, str] = {
    "tune": "hho_tune.cli:run_tune",
    "compare": "hho_tune.compare:run_compare_command",
    "export": "hho_tune.export:run_export_command",
    "train": "hho_tune.final:run_train_command",
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    console = Console(highlight=False, soft_wrap=True)
    errors = Console(stderr=True, highlight=False)
    command = argv[0] if argv and argv[0] in COMMANDS else "tune"
    if argv and argv[0] == command:
        argv = argv[1:]
    module_name, _, function_name = COMMANDS[command].partition(":")
    handler = getattr(importlib.import_module(module_name), function_name)
    previous_sigterm = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return handler(argv, console)
    except UsageError as exc:
        errors.print(f"hho-tune: error: {exc}", markup=False, highlight=False, soft_wrap=True)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        run_dir = getattr(exc, "run_dir", None)
        if run_dir is None:
            errors.print("hho-tune: interrupted", markup=False)
        else:
            errors.print(f"hho-tune: interrupted; {exc.finished} finished trials are kept in {run_dir} "
                         f"(the one in flight is recorded as failed). Resume with: hho-tune --resume {run_dir}",
                         markup=False, highlight=False, soft_wrap=True)
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)


def _interrupt(signum: int, frame: Any) -> None:
    """SIGTERM (a plain ``kill``) stops a run the way Ctrl-C does: cleanly, resumable."""
    raise KeyboardInterrupt


if __name__ == "__main__":
    raise SystemExit(main())
