"""``hho-tune export RUN_DIR``: a run's best configuration(s) as JSON that ``hho-tune train`` reads.

An exported configuration carries everything a final training needs (the full parameters,
fixed ones included, the seed and the data file) and everything needed to judge it later:
the validation score and the fidelity it was measured at, the optimizer, the search space,
the package versions, the run and the trial it came from.

File format: with ``--top 1`` (the default) the file is one configuration object; with
``--top K`` it is ``{"format": ..., "configs": [...]}``, best first, each with its ``rank``.
``hho-tune train`` reads either (``--rank N`` picks from a list).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from hho_tune.errors import SearchSpaceError, UsageError
from hho_tune.recommendation import AUTO, DEFAULT_POLICY, POLICIES, candidates_from_rows, check_policy, rank
from hho_tune.results import RUN_FILE, TRIALS_FILE, check_writable, read_trials, utc_now, write_json
from hho_tune.space import SearchSpace

EXPORT_FORMAT = "hho-tune-config/1"
DEFAULT_EXPORT_FILE = "best.json"


@dataclass(frozen=True)
class ExportedConfig:
    """One configuration taken out of a run: what to train, and where and how it was found."""

    rank: int
    params: dict[str, Any]
    validation_score: float
    direction: str
    objective: str
    fidelity: dict[str, Any]
    data: str | None
    optimizer: str
    seed: int
    space: dict[str, Any]
    versions: dict[str, str]
    run_dir: str
    run_id: str
    run_status: str
    trial: int
    objective_spec: str | None = None  # --objective module:name, for 'hho-tune train' to load it again
    policy: str = DEFAULT_POLICY  # how the run's trials were ranked (hho_tune.recommendation)
    predicted: float | None = None  # the gp policy's posterior mean at the configuration

    def to_dict(self) -> dict[str, Any]:
        return {"format": EXPORT_FORMAT, **asdict(self), "exported": utc_now()}


def export_best(run_dir: str | Path, top: int = 1, policy: str = AUTO) -> list[ExportedConfig]:
    """The ``top`` recommended configurations of a run, the recommendation first (fewer if the run has fewer).

    ``policy`` ranks the completed trials (:mod:`hho_tune.recommendation`): ``best`` by observed
    score, ties to the earlier trial as on the leaderboard; ``gp`` by a noise-aware model's
    posterior mean; ``auto`` as the run's run.json names (``recommendation_policy``; a run made
    before runs named one: ``gp``). Raises :class:`UsageError` for a directory that is not a readable run, and
    for a run without a completed trial.
    """
    if top < 1:
        raise UsageError(f"--top must be at least 1, got {top}")
    check_policy(policy)
    run_dir = Path(run_dir)
    run = _read_run_document(run_dir)
    space = _run_space(run_dir, run)
    if policy == AUTO:
        policy = run.get("recommendation_policy") if run.get("recommendation_policy") in POLICIES else DEFAULT_POLICY
    direction = run.get("direction", "maximize")
    if direction not in ("maximize", "minimize"):
        raise UsageError(f"{run_dir / RUN_FILE}: unknown direction {direction!r}")
    if not (run_dir / TRIALS_FILE).is_file():
        raise UsageError(f"{run_dir}: not a run directory (no {TRIALS_FILE})")
    try:
        rows = read_trials(run_dir)
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{run_dir / TRIALS_FILE}: cannot read ({exc})") from None
    ranked = rank(candidates_from_rows(rows, space), space, direction, policy)
    if not ranked:
        raise UsageError(f"{run_dir}: no completed trial to export ({len(rows)} trials recorded, none completed)")
    fidelity = run.get("fidelity") if isinstance(run.get("fidelity"), Mapping) else {}
    return [
        ExportedConfig(
            rank=position,
            params=space.full_params(rec.params),
            validation_score=rec.observed,
            direction=direction,
            objective=str(run.get("objective", "")),
            fidelity=dict(fidelity),
            data=_data_file(run),
            optimizer=str(run.get("optimizer", "")),
            seed=_seed(run_dir, run),
            space=space.to_dict(),
            versions=dict(run.get("versions") or {}),
            run_dir=str(run_dir.absolute()),
            run_id=str(run.get("run_id", run_dir.name)),
            run_status=str(run.get("status", "")),
            trial=rec.number,
            objective_spec=_objective_spec(run),
            policy=rec.policy,
            predicted=rec.predicted,
        )
        for position, rec in enumerate(ranked[:top], start=1)
    ]


def export_document(configs: Sequence[ExportedConfig], *, as_list: bool) -> dict[str, Any]:
    """One configuration object, or ``{"format", "configs": [...]}`` when a list was asked for."""
    if not as_list:
        return configs[0].to_dict()
    return {"format": EXPORT_FORMAT, "configs": [c.to_dict() for c in configs]}


def _read_run_document(run_dir: Path) -> dict[str, Any]:
    if not run_dir.exists():
        raise UsageError(f"{run_dir}: no such run directory")
    if not run_dir.is_dir() or not (run_dir / RUN_FILE).is_file():
        raise UsageError(f"{run_dir}: not a run directory (no {RUN_FILE}; give a folder under results/)")
    path = run_dir / RUN_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: corrupt run file (not valid JSON: {exc.msg} at line {exc.lineno})") from None
    if not isinstance(document, dict) or not isinstance(document.get("space"), Mapping):
        raise UsageError(f"{path}: not an hho-tune run file (no search space recorded)")
    return document


def _run_space(run_dir: Path, run: Mapping[str, Any]) -> SearchSpace:
    source = run["space"].get("source") or str(run_dir / RUN_FILE)
    try:
        return SearchSpace.from_dict(run["space"], source=str(source))
    except SearchSpaceError as exc:
        raise UsageError(f"corrupt run file: {exc}") from None


def _data_file(run: Mapping[str, Any]) -> str | None:
    """The ``--data`` file the run used; None for the packaged MNIST (wherever it was installed)."""
    arguments = run.get("arguments")
    if isinstance(arguments, Mapping) and "data" in arguments:
        return None if arguments["data"] is None else str(arguments["data"])
    fidelity = run.get("fidelity")
    data = fidelity.get("data") if isinstance(fidelity, Mapping) else None
    if not data:
        return None
    from hho_tune.data import packaged_mnist_path

    return None if Path(data).resolve() == packaged_mnist_path().resolve() else str(data)


def _objective_spec(run: Mapping[str, Any]) -> str | None:
    arguments = run.get("arguments")
    spec = arguments.get("objective") if isinstance(arguments, Mapping) else None
    return spec if isinstance(spec, str) and spec else None


def _seed(run_dir: Path, run: Mapping[str, Any]) -> int:
    seed = run.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UsageError(f"{run_dir / RUN_FILE}: seed must be a whole number, got {seed!r}")
    return seed


def build_export_parser() -> argparse.ArgumentParser:
    from hho_tune.cli import _Parser, _positive_int

    parser = _Parser(
        prog="hho-tune export",
        description="Write a run's best configuration as JSON, ready for 'hho-tune train'.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory, e.g. results/<run-id>")
    parser.add_argument("--out", default=None, help=f"JSON file to write (default RUN_DIR/{DEFAULT_EXPORT_FILE})")
    parser.add_argument("--top", type=_positive_int, default=1,
                        help="export the K best configurations as a list (default 1: the best, as one object)")
    parser.add_argument("--recommend", choices=(AUTO, *POLICIES), default=AUTO,
                        help="how the trials are ranked: best (observed score) or gp (a noise-aware model's "
                             "posterior mean, among the trials the run trained); default auto: the policy the run's "
                             "run.json names (gp, or best for a deterministic objective)")
    return parser


def run_export_command(argv: Sequence[str], console: Console) -> int:
    from hho_tune.display import format_params

    args = build_export_parser().parse_args(argv)
    run_dir = Path(args.run_dir)
    configs = export_best(run_dir, top=args.top, policy=args.recommend)
    out = Path(args.out) if args.out else run_dir / DEFAULT_EXPORT_FILE
    if out.is_dir():
        raise UsageError(f"{out}: is a directory; --out takes a file name")
    check_writable(out.parent)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, export_document(configs, as_list=args.top > 1))

    first = configs[0]
    by = "by a GP's posterior mean" if first.policy == "gp" else "by observed score"
    table = Table(title=f"{first.run_id}: top {len(configs)} {by} ({first.objective}, {first.optimizer}, seed {first.seed})")
    columns = ("rank", "trial", "validation score", *(("predicted",) if first.policy == "gp" else ()), "parameters")
    for column in columns:
        table.add_column(column)
    for config in configs:
        predicted = (f"{config.predicted:.4f}",) if first.policy == "gp" and config.predicted is not None else ()
        table.add_row(str(config.rank), str(config.trial), f"{config.validation_score:.4f}", *predicted,
                      format_params(config.params))
    console.print(table)
    if len(configs) < args.top:
        console.print(f"note: the run has only {len(configs)} completed trials", highlight=False)
    if first.run_status and first.run_status != "finished":
        console.print(f"note: the run's status is {first.run_status!r}: these are the best of the trials it finished",
                      highlight=False)
    fidelity = ", ".join(f"{key} {value}" for key, value in first.fidelity.items() if key != "data")
    console.print(f"scores are validation scores at the search's fidelity ({fidelity or 'unknown'})", highlight=False)
    console.print(f"wrote {out}", highlight=False)
    console.print(f"train it: hho-tune train {out}", highlight=False)
    return 0
