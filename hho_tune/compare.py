"""``hho-tune compare``: several optimizers, each once per seed, on one objective with one budget.

The flow is "run every run that is not finished, score what each recommends, then summarise
from the files". Each run is an ordinary run directory made by :func:`hho_tune.tune` under
``runs/``; each run's recommendation is scored apart from its own draws (:mod:`hho_tune.scoring`:
noise-free value, or fresh-seed trainings kept in rescore.csv); curves.csv, summary.csv,
pairwise.csv and the plots are rebuilt from those files alone by :func:`summarise`. So a
comparison interrupted midway keeps its finished runs and trainings, and its summary can be
recomputed at any time.

Seed k means the same for every optimizer: it seeds the optimizer and, for an objective that
trains (the LSTM), the training, given through the objective's ``with_seed(k)``. The
optimizers then differ only in what they propose.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from hho_tune.curves import read_curves
from hho_tune.errors import UsageError
from hho_tune.pruning import DEFAULT_PRUNER, check_pruner
from hho_tune.recommendation import AUTO, POLICIES
from hho_tune.results import RUN_FILE, atomic_write, check_writable, create_unique_dir, read_trials, utc_now, write_json
from hho_tune.runner import DEFAULT_MAX_FAILURES
from hho_tune.scoring import (
    RECOMMENDATIONS_FILE,
    Scoring,
    choose_scoring,
    describe,
    read_recommendations,
    read_worth,
    score_runs,
)
from hho_tune.space import SearchSpace
from hho_tune.stats import ComparisonStats, RunCurve, compare_runs

COMPARE_FILE = "compare.json"
CURVES_FILE = "curves.csv"
SUMMARY_FILE = "summary.csv"
PAIRWISE_FILE = "pairwise.csv"
EVALUATIONS_PLOT = "best_vs_evaluations.png"
TIME_PLOT = "best_vs_time.png"
RANKS_FILE = "ranks_over_time.csv"
RANKS_PLOT = "ranks_over_time.png"
FRIEDMAN_FILE = "friedman.json"
CD_PLOT = "critical_difference.png"
RUNS_DIR = "runs"
DEFAULT_OPTIMIZERS = ("hho", "tpe", "random")
DEFAULT_SEEDS = 5
# 0.8 of the way from a typical configuration to the best anyone found. The best is often one
# lucky run: at 0.9 one of 40 Rastrigin runs reached the target, at 0.8 eight did (README).
DEFAULT_TARGET_FRACTION = 0.8
CURVE_COLUMNS = ["optimizer", "seed", "evaluation", "value", "best_so_far", "recommended_worth", "elapsed_seconds"]
SUMMARY_COLUMNS = [
    "optimizer", "runs", "evaluations", "failed", "worth_mean", "worth_std", "worth_median", "best_mean", "best_std",
    "best_median", "optimism", "mean_rank", "target", "expected_evaluations_to_target", "evaluations_to_target",
    "runs_reaching_target", "wall_seconds", "scored_by",
]
PAIRWISE_COLUMNS = [
    "first", "second", "seeds", "first_better", "second_better", "ties", "median_improvement",
    "rank_sum_first", "rank_sum_second", "p_value", "p_holm", "pairs", "significant", "verdict",
]

Objective = Callable[[Mapping[str, Any]], float]


# -- what is compared ------------------------------------------------------------------------

@dataclass(frozen=True)
class ComparisonPlan:
    """The settings of a comparison; written to compare.json so that it can be rebuilt from there."""

    optimizers: tuple[str, ...]
    seeds: tuple[int, ...]
    budget: int
    direction: str
    pop_size: int | None = None
    optimizer_options: Mapping[str, Any] = field(default_factory=dict)
    max_failures: int = DEFAULT_MAX_FAILURES
    target_fraction: float = DEFAULT_TARGET_FRACTION
    pruner: str = DEFAULT_PRUNER
    max_steps: int | None = None
    epoch_budget: int | None = None

    def runs(self) -> list[tuple[str, int]]:
        """Seed by seed, every optimizer at one seed before the next seed starts.

        An interrupted comparison then holds whole seeds, which the paired test needs.
        """
        return [(optimizer, seed) for seed in self.seeds for optimizer in self.optimizers]

    def check(self, space: SearchSpace) -> None:
        """Every check that must pass before the comparison directory is made."""
        from hho_tune.api import validate_run_settings
        from hho_tune.optimizers.base import OptimizerSettings, make

        check_optimizer_names(self.optimizers)
        check_seeds(self.seeds)
        if not 0 < self.target_fraction <= 1:
            raise UsageError(f"--target-fraction must be in (0, 1], got {self.target_fraction}")
        if self.max_failures < 1:
            raise UsageError(f"--max-failures must be at least 1, got {self.max_failures}")
        check_pruner(self.pruner)
        for name in self.optimizers:
            validate_run_settings(optimizer=name, budget=self.budget, direction=self.direction, pop_size=self.pop_size)
        for name in self.optimizers:
            # Building each once catches what a name check cannot: optuna:NoSuchSampler,
            # mealpy:GWO.NoSuchClass, a sampler that cannot search this space.
            settings = OptimizerSettings(space=space, seed=self.seeds[0], budget=self.budget,
                                         pop_size=self.pop_size, options=dict(self.optimizer_options))
            make(name, settings).close()

    def to_dict(self) -> dict[str, Any]:
        document = asdict(self)
        document.update(optimizers=list(self.optimizers), seeds=list(self.seeds),
                        optimizer_options=dict(self.optimizer_options))
        return document

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> ComparisonPlan:
        return cls(
            optimizers=tuple(document["optimizers"]),
            seeds=tuple(int(s) for s in document["seeds"]),
            budget=int(document["budget"]),
            direction=document["direction"],
            pop_size=document.get("pop_size"),
            optimizer_options=dict(document.get("optimizer_options") or {}),
            max_failures=int(document.get("max_failures", DEFAULT_MAX_FAILURES)),
            target_fraction=float(document.get("target_fraction", DEFAULT_TARGET_FRACTION)),
            pruner=document.get("pruner", DEFAULT_PRUNER), max_steps=document.get("max_steps"),
            epoch_budget=document.get("epoch_budget"),
        )


def parse_optimizer_list(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(","))
    if any(not name for name in names):
        raise UsageError(f"--optimizers must be names separated by commas, like hho,tpe,random; got {text!r}")
    check_optimizer_names(names)
    return names


def check_optimizer_names(names: Sequence[str]) -> None:
    from hho_tune.optimizers.base import check_name

    if not names:
        raise UsageError("--optimizers names no optimizer")
    for name in names:
        if names.count(name) > 1:
            raise UsageError(f"--optimizers names {name!r} twice; each optimizer runs once per seed")
        check_name(name)


def check_seeds(seeds: Sequence[int]) -> None:
    if not seeds:
        raise UsageError("a comparison needs at least one seed")
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise UsageError(f"seeds must be whole numbers >= 0, got {seed!r}")
        if seeds.count(seed) > 1:
            raise UsageError(f"seed {seed} is given twice")


def run_label(optimizer: str, seed: int) -> str:
    """``optuna:CmaEsSampler`` at seed 2 -> ``optuna-CmaEsSampler-s2``: a safe directory name."""
    return f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', optimizer)}-s{seed}"


def objective_for_seed(objective: Objective, seed: int) -> Objective:
    """An objective that trains with a seed offers ``with_seed``; a plain function has no seed of its own."""
    with_seed = getattr(objective, "with_seed", None)
    return with_seed(seed) if callable(with_seed) else objective


# -- running ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class ComparisonResult:
    directory: Path
    plan: ComparisonPlan
    curves: tuple[RunCurve, ...]  # finished runs, in plan order
    stats: ComparisonStats
    simulated_seconds: bool = False  # the objective reported simulated step costs (lstm_table): times are those
    scoring: Scoring = field(default_factory=Scoring)


def compare(
    objective: Objective,
    space: SearchSpace,
    *,
    optimizers: Iterable[str] = DEFAULT_OPTIMIZERS,
    seeds: Iterable[int] = range(DEFAULT_SEEDS),
    budget: int = 30,
    direction: str | None = None,
    out: str | Path = "results",
    name: str | None = None,
    pop_size: int | None = None,
    optimizer_options: Mapping[str, Any] | None = None,
    max_failures: int = DEFAULT_MAX_FAILURES,
    target_fraction: float = DEFAULT_TARGET_FRACTION,
    console: Console | None = None,
    arguments: Mapping[str, Any] | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    threads_per_worker: int | None = None,
    pruner: str = DEFAULT_PRUNER,
    max_steps: int | None = None,
    epoch_budget: int | None = None,
    recommend: str = AUTO,
    rescore: int | None = None,
) -> ComparisonResult:
    """Run each optimizer once per seed with ``budget`` evaluations, score what each run recommends, summarise.

    Everything goes to ``out/compare-<time>/`` (or ``out/name``). ``console``: where progress
    is printed (None: quiet). ``workers``, ``scheduler``, ``threads_per_worker``: as for
    :func:`hho_tune.tune`, for every run (the runs themselves go one after another).
    ``recommend``: the policy that picks each run's recommendation (:mod:`hho_tune.recommendation`;
    ``auto``: ``gp``, or ``best`` for a deterministic objective).
    ``rescore``: fresh training seeds per recommendation; None: the objective's noise-free value
    where it has one, else 3 where it trains with seeds; 0: rank by the observed score.
    """
    from hho_tune.api import objective_name, package_versions
    from hho_tune.machine import machine_description
    from hho_tune.space import check_space

    check_space(objective, space)  # the objective's own check (names, domains): before the comparison directory
    plan = ComparisonPlan(
        optimizers=tuple(optimizers), seeds=tuple(seeds), budget=budget,
        direction=direction or getattr(objective, "direction", "maximize"), pop_size=pop_size,
        optimizer_options=dict(optimizer_options or {}), max_failures=max_failures, target_fraction=target_fraction,
        pruner=pruner, max_steps=max_steps, epoch_budget=epoch_budget,
    )
    plan.check(space)
    scoring = choose_scoring(objective, policy=recommend, rescore=rescore, run_seeds=plan.seeds)
    directory = new_comparison_dir(Path(out), name)
    fidelity = getattr(objective, "fidelity", None)
    document: dict[str, Any] = {
        "comparison_id": directory.name,
        "status": "running",
        "objective": objective_name(objective),
        **plan.to_dict(),
        "fidelity": dict(fidelity()) if callable(fidelity) else {},
        "space": space.to_dict(),
        "scoring": scoring.to_dict(),
        "arguments": dict(arguments or {}),
        "versions": package_versions(),
        "machine": machine_description(threads=threads_per_worker, workers=workers, scheduler=scheduler),
        "parallel": {"workers": workers, "scheduler": scheduler, "threads_per_worker": threads_per_worker},
        "timings": {"started": utc_now()},
    }
    write_json(directory / COMPARE_FILE, document)
    if console is not None:
        console.print(describe(scoring, len(plan.runs())), highlight=False)
    return _run_and_summarise(directory, objective, space, plan, document, console=console, seconds_key="seconds",
                              parallel={"workers": workers, "scheduler": scheduler,
                                        "threads_per_worker": threads_per_worker})


def resume_comparison(
    directory: Path, objective: Objective, *, console: Console | None,
    workers: int | None = None, scheduler: str | None = None, threads_per_worker: int | None = None,
    scoring: Scoring | None = None,
) -> ComparisonResult:
    """Finish an interrupted comparison: its unfinished runs (cut-short ones resumed), the scoring, the summary.

    ``scoring``: score it anew that way (a finished comparison too: its runs are not run again,
    only the recommendations are scored); None: as compare.json says, or for a comparison made
    before scoring existed, as :func:`choose_scoring` would choose now.
    """
    document = read_comparison(directory)
    plan = ComparisonPlan.from_dict(document)
    space = SearchSpace.from_dict(document["space"], source=document["space"].get("source", str(directory)))
    if scoring is None:
        scoring = Scoring.from_dict(document["scoring"]) if document.get("scoring") else choose_scoring(
            objective, run_seeds=plan.seeds)
    if document.get("scoring") != scoring.to_dict():
        document.setdefault("rescorings", []).append({"at": utc_now(), "from": document.get("scoring")})
        document["scoring"] = scoring.to_dict()
        if console is not None:
            console.print(describe(scoring, len(plan.runs())), highlight=False)
    document["status"] = "running"
    document.setdefault("resumes", []).append(utc_now())
    write_json(directory / COMPARE_FILE, document)
    return _run_and_summarise(directory, objective, space, plan, document, console=console,
                              seconds_key="resumed_seconds",
                              parallel={"workers": workers, "scheduler": scheduler,
                                        "threads_per_worker": threads_per_worker})


def _run_and_summarise(
    directory: Path, objective: Objective, space: SearchSpace, plan: ComparisonPlan, document: dict[str, Any], *,
    console: Console | None, seconds_key: str, parallel: Mapping[str, Any],
) -> ComparisonResult:
    """The unfinished runs, then the summary; on Ctrl-C, what finished is kept and the resume command printed."""
    started = time.perf_counter()
    try:
        run_unfinished(directory, objective, space, plan, console=console, **parallel)
        scoring_started = time.perf_counter()
        score_comparison(directory, objective, console=console)
        document["timings"]["scoring_seconds"] = round(
            document["timings"].get("scoring_seconds", 0.0) + time.perf_counter() - scoring_started, 3)
    except KeyboardInterrupt:
        finished = write_curves(directory, load_curves(directory, plan))
        document["status"] = "interrupted"
        document["timings"].update(interrupted=utc_now(), **{seconds_key: round(time.perf_counter() - started, 3)})
        write_json(directory / COMPARE_FILE, document)
        if console is not None:
            console.print(f"comparison interrupted: {len(finished)} of {len(plan.runs())} runs finished, kept in "
                          f"{directory} (curves.csv has them; the run cut short is left out). "
                          f"Resume with: hho-tune compare --resume {directory}", highlight=False)
        # A plain interrupt: the hint to resume the one run cut short would not resume the comparison.
        raise KeyboardInterrupt from None
    document["status"] = "finished"
    document["timings"].update(finished=utc_now(), **{seconds_key: round(time.perf_counter() - started, 3)})
    write_json(directory / COMPARE_FILE, document)
    return summarise(directory)


def comparison_scoring(directory: Path) -> Scoring:
    """How compare.json says the comparison is scored (one made before scoring: by the observed best)."""
    return Scoring.from_dict(json.loads((directory / COMPARE_FILE).read_text(encoding="utf-8")).get("scoring"))


def is_scored(directory: Path) -> bool:
    """compare.json names a scoring and the runs' recommendations have been scored (recommendations.csv)."""
    document = json.loads((directory / COMPARE_FILE).read_text(encoding="utf-8"))
    return bool(document.get("scoring")) and (directory / RECOMMENDATIONS_FILE).exists()


def finished_runs(directory: Path, plan: ComparisonPlan) -> list[tuple[str, int, Path]]:
    return [(opt, seed, directory / RUNS_DIR / run_label(opt, seed)) for opt, seed in plan.runs()
            if run_finished(directory / RUNS_DIR / run_label(opt, seed))]


def score_comparison(directory: Path, objective: Objective, *, console: Console | None) -> None:
    """Score every finished run's recommendation as compare.json says (fresh-seed trainings go to rescore.csv)."""
    document = read_comparison(directory)
    if not document.get("scoring"):
        return
    plan = ComparisonPlan.from_dict(document)
    space = SearchSpace.from_dict(document["space"], source=document["space"].get("source", str(directory)))
    scoring = Scoring.from_dict(document["scoring"])
    progress = None if console is None else (lambda text: console.print(text, highlight=False))
    score_runs(directory, objective, space, plan.direction, finished_runs(directory, plan), scoring, progress=progress)


def read_comparison(directory: Path) -> dict[str, Any]:
    """compare.json, or a one-line UsageError saying why the directory is not a comparison."""
    path = directory / COMPARE_FILE
    if not directory.is_dir():
        raise UsageError(f"{directory}: no such comparison directory")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        ComparisonPlan.from_dict(document)
        document["space"]["parameters"]
    except FileNotFoundError:
        raise UsageError(f"{directory}: not a comparison directory (no {COMPARE_FILE})") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
    return document


def new_comparison_dir(root: Path, name: str | None) -> Path:
    """``root/name``, or a fresh ``root/compare-<time>``; never an existing directory."""
    if name is not None:
        check_comparison_name(root, name)
    base = name or f"compare-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    directory = create_unique_dir(root, base, attempts=1 if name else 1000, what="comparison directory")
    if directory is None:
        raise UsageError(f"{root / base}: comparison directory already exists")
    (directory / RUNS_DIR).mkdir()
    return directory


def check_comparison_name(root: Path, name: str) -> None:
    if not name or name in {".", ".."} or "/" in name or "\\" in name:
        raise UsageError(f"--name must be a plain directory name, got {name!r}")
    if (root / name).exists():
        raise UsageError(f"{root / name}: comparison directory already exists")


def run_unfinished(
    directory: Path, objective: Objective, space: SearchSpace, plan: ComparisonPlan, *, console: Console | None,
    workers: int | None = None, scheduler: str | None = None, threads_per_worker: int | None = None,
) -> None:
    """Every run of the plan whose run.json does not say "finished"; curves.csv after each.

    A run cut short (Ctrl-C, a kill) is resumed, not started again: its finished trials are
    replayed, so it ends as it would have without the interruption.
    """
    from hho_tune.api import resume, tune
    from hho_tune.display import ProgressPrinter, format_seconds

    runs = plan.runs()
    pending = [(opt, seed) for opt, seed in runs if not run_finished(directory / RUNS_DIR / run_label(opt, seed))]
    started = time.perf_counter()
    for done, (optimizer, seed) in enumerate(pending):
        index = runs.index((optimizer, seed)) + 1
        if console is not None:
            left = ""
            if done:
                per_run = (time.perf_counter() - started) / done
                left = f"; ~{format_seconds(per_run * (len(pending) - done))} left in the comparison"
            console.print(f"[bold]run {index} of {len(runs)}: {optimizer}, seed {seed}[/bold]{left}")
        label = f"[{optimizer} s{seed}]"
        listeners = [ProgressPrinter(console, label=label, epoch_budget=plan.epoch_budget)] if console is not None else []
        run_dir = directory / RUNS_DIR / run_label(optimizer, seed)
        if (run_dir / RUN_FILE).exists():
            result = resume(run_dir, objective_for_seed(objective, seed), listeners=listeners, workers=workers,
                            scheduler=scheduler, threads_per_worker=threads_per_worker)
            write_curves(directory, load_curves(directory, plan))
            continue
        result = tune(
            objective_for_seed(objective, seed), space, optimizer=optimizer, budget=plan.budget, seed=seed,
            direction=plan.direction, out=directory / RUNS_DIR, pop_size=plan.pop_size,
            optimizer_options=plan.optimizer_options, max_failures=plan.max_failures, listeners=listeners,
            arguments={"comparison": directory.name}, run_dir=run_dir,
            workers=workers, scheduler=scheduler, threads_per_worker=threads_per_worker,
            pruner=plan.pruner, max_steps=plan.max_steps, epoch_budget=plan.epoch_budget,
        )
        write_curves(directory, load_curves(directory, plan))
        if console is not None:
            best = "no result" if result.best is None else f"best {result.best.value:.6g}"
            console.print(f"{optimizer} s{seed}: {best} after {result.outcome.evaluations} evaluations, "
                          f"{format_seconds(result.outcome.seconds)}; stopped: {result.outcome.stop_reason}")


def run_finished(run_dir: Path) -> bool:
    try:
        return json.loads((run_dir / RUN_FILE).read_text(encoding="utf-8")).get("status") == "finished"
    except (OSError, ValueError):
        return False


# -- summarising from the files --------------------------------------------------------------

def read_plan(directory: Path) -> ComparisonPlan:
    path = directory / COMPARE_FILE
    try:
        return ComparisonPlan.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise UsageError(f"{directory}: not a comparison directory (no {COMPARE_FILE})") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None


def load_curves(directory: Path, plan: ComparisonPlan) -> list[RunCurve]:
    """The finished runs under ``runs/``, in plan order; unfinished and foreign runs are left out."""
    order = {run: position for position, run in enumerate(plan.runs())}
    scored = is_scored(directory)
    recommendations = read_recommendations(directory) if scored else {}
    worth = read_worth(directory) if scored else {}
    curves = []
    for run_file in (directory / RUNS_DIR).glob(f"*/{RUN_FILE}"):
        run = json.loads(run_file.read_text(encoding="utf-8"))
        if run.get("status") == "finished" and (run.get("optimizer"), run.get("seed")) in order:
            simulated = bool((run.get("fidelity") or {}).get("simulated_seconds"))
            curve = curve_from_run(run, read_trials(run_file.parent), read_curves(run_file.parent) if simulated else None)
            if scored:
                curve = with_worth(curve, recommendations.get((curve.optimizer, curve.seed)),
                                   worth.get((curve.optimizer, curve.seed)))
            curves.append(curve)
    return sorted(curves, key=lambda c: order[(c.optimizer, c.seed)])


def with_worth(curve: RunCurve, recommendation: Mapping[str, str] | None,
               points: Sequence[tuple[int, float]] | None) -> RunCurve:
    """The curve with its recommendation's worth (recommendations.csv) and, where known, the worth after each evaluation."""
    from dataclasses import replace

    worth = float(recommendation["worth"]) if recommendation and recommendation.get("worth") else None
    so_far: list[float | None] = []
    if points:
        at = dict(points)
        current = None
        for evaluation in range(1, len(curve.values) + 1):
            current = at.get(evaluation, current)
            so_far.append(current)
    return replace(curve, worth=worth, scored=True, worth_so_far=tuple(so_far))


def curve_from_run(run: Mapping[str, Any], rows: Sequence[Mapping[str, str]],
                   simulated: Mapping[int, Sequence[tuple[int, float, float]]] | None = None) -> RunCurve:
    """A run.json and its trials.csv rows -> the record the statistics work on.

    ``simulated``: the learning curves of an objective that reports what each step would have
    cost (run.json's fidelity says ``simulated_seconds``, as ``lstm_table`` does); the time axis
    is then the sum of those seconds, trial after trial, and the wall time that sum.
    """
    values = tuple(float(r["value"]) if r["state"] == "COMPLETE" and r["value"] else None for r in rows)
    elapsed: tuple[float, ...] = ()
    if simulated is not None:
        spent = [sum(seconds for _, _, seconds in simulated.get(int(r["number"]), ())) for r in rows]
        elapsed = tuple(float(x) for x in itertools.accumulate(spent))
        return RunCurve(optimizer=run["optimizer"], seed=int(run["seed"]), direction=run["direction"], values=values,
                        elapsed=elapsed, wall_seconds=elapsed[-1] if elapsed else 0.0)
    if rows:
        origin = datetime.fromisoformat(rows[0]["datetime_start"])
        elapsed = tuple((datetime.fromisoformat(r["datetime_complete"]) - origin).total_seconds() for r in rows)
    wall = (run.get("timings") or {}).get("seconds")
    return RunCurve(
        optimizer=run["optimizer"], seed=int(run["seed"]), direction=run["direction"], values=values,
        elapsed=elapsed, wall_seconds=float(wall) if wall is not None else (elapsed[-1] if elapsed else 0.0),
    )


def write_curves(directory: Path, curves: Sequence[RunCurve]) -> list[RunCurve]:
    with atomic_write(directory / CURVES_FILE) as handle:
        writer = csv.writer(handle)
        writer.writerow(CURVE_COLUMNS)
        for curve in curves:
            worth = curve.worth_so_far or (None,) * len(curve.values)
            for number, (value, best, now, elapsed) in enumerate(
                zip(curve.values, curve.best_so_far, worth, curve.elapsed, strict=True), start=1
            ):
                writer.writerow([curve.optimizer, curve.seed, number, _cell(value), _cell(best), _cell(now),
                                 f"{elapsed:.3f}"])
    return list(curves)


def summarise(directory: Path) -> ComparisonResult:
    """Rebuild curves.csv, summary.csv, pairwise.csv and the plots from compare.json and runs/."""
    from hho_tune.plots import (
        plot_best_vs_evaluations,
        plot_best_vs_time,
        plot_critical_difference,
        plot_ranks_over_time,
    )

    plan = read_plan(directory)
    scoring = comparison_scoring(directory)
    scored = is_scored(directory)
    curves = load_curves(directory, plan)
    write_curves(directory, curves)
    stats = compare_runs(curves, plan.optimizers, direction=plan.direction, target_fraction=plan.target_fraction)
    _write_rows(directory / SUMMARY_FILE, SUMMARY_COLUMNS, [
        {**{column: _cell(getattr(row, column, None)) for column in SUMMARY_COLUMNS},
         "target": _cell(stats.target.value if stats.target else None),
         "scored_by": scoring.method if scored else "observed best (not scored)"}
        for row in stats.optimizers
    ])
    _write_rows(directory / PAIRWISE_FILE, PAIRWISE_COLUMNS, [
        {**{column: _cell(getattr(pair, column, None)) for column in PAIRWISE_COLUMNS},
         "p_holm": _cell(pair.p_adjusted), "significant": pair.significant, "verdict": pair.verdict}
        for pair in stats.pairs
    ])
    _write_rank_files(directory, stats)
    simulated = bool((json.loads((directory / COMPARE_FILE).read_text(encoding="utf-8")).get("fidelity") or {})
                     .get("simulated_seconds"))
    if curves:
        plot_best_vs_evaluations(curves, plan.optimizers, plan.direction, directory / EVALUATIONS_PLOT)
        plot_best_vs_time(curves, plan.optimizers, plan.direction, directory / TIME_PLOT, simulated=simulated)
        seeds = stats.friedman.seeds if stats.friedman else 0
        if stats.ranks_over_time and seeds:
            plot_ranks_over_time(stats.ranks_over_time, seeds, directory / RANKS_PLOT)
        friedman = stats.friedman
        if friedman is not None and friedman.p_value is not None:
            ranks = {row.optimizer: row.mean_rank for row in stats.optimizers if row.mean_rank is not None}
            plot_critical_difference(ranks, friedman.critical_difference, friedman.seeds, friedman.p_value,
                                     directory / CD_PLOT)
    return ComparisonResult(directory=directory, plan=plan, curves=tuple(curves), stats=stats,
                            simulated_seconds=simulated, scoring=scoring if scored else Scoring("best", "observed best"))


def _write_rank_files(directory: Path, stats: ComparisonStats) -> None:
    """ranks_over_time.csv (evaluation, then one column per optimizer) and friedman.json."""
    ranks = stats.ranks_over_time
    length = max((len(row) for row in ranks.values()), default=0)
    with atomic_write(directory / RANKS_FILE) as handle:
        writer = csv.writer(handle)
        writer.writerow(["evaluation", *ranks])
        for step in range(length):
            writer.writerow([step + 1, *(f"{row[step]:.4f}" for row in ranks.values())])
    friedman = stats.friedman
    write_json(directory / FRIEDMAN_FILE, {
        **(asdict(friedman) if friedman is not None else {}),
        "mean_ranks": {row.optimizer: row.mean_rank for row in stats.optimizers},
        "verdict": friedman.verdict if friedman is not None else None,
    })


def _write_rows(path: Path, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
    with atomic_write(path) as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)


def _cell(value: Any) -> str:
    """Floats in full (repr), so files reproduce the numbers exactly; None as an empty cell."""
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else str(value)


# -- what a person sees ----------------------------------------------------------------------

def _number(value: float | None, spec: str = ".4g") -> str:
    return "-" if value is None else format(value, spec)


def comparison_table(result: ComparisonResult) -> Table:
    stats, plan = result.stats, result.plan
    better = "higher" if plan.direction == "maximize" else "lower"
    runs = len(result.curves)
    scored = any(c.scored for c in result.curves)
    what = "worth of each run's recommendation" if scored else "final best"
    table = Table(title=f"{what}, {runs} run{'s' if runs != 1 else ''} of {plan.budget} evaluations "
                        f"({better} is better)", box=box.SIMPLE_HEAD, padding=(0, 1))
    table.add_column("optimizer", no_wrap=True)
    headers = ("runs", "worth", "std", "median", "observed", "optimism") if scored else ("runs", "mean", "std", "median")
    for header in (*headers, "rank", "to target", "reached", "time/run"):
        table.add_column(header, justify="right")
    for row in stats.optimizers:
        cells = ([_number(row.worth_mean), _number(row.worth_std, ".2g"), _number(row.worth_median),
                  _number(row.best_mean), _number(row.optimism, ".2g")] if scored else
                 [_number(row.best_mean), _number(row.best_std, ".2g"), _number(row.best_median)])
        table.add_row(
            row.optimizer, str(row.runs), *cells, _number(row.mean_rank, ".2f"),
            _number(row.expected_evaluations_to_target, ".1f"), f"{row.runs_reaching_target}/{row.runs}",
            _duration(row.wall_seconds),
        )
    return table


def _duration(seconds: float) -> str:
    from hho_tune.display import format_seconds

    return f"{seconds:.2f}s" if seconds < 60 else format_seconds(seconds)


def _print_unsqueezed(console: Console, table: Table) -> None:
    """Piped to a file or a log, a console is 80 columns wide: print the table whole, not squeezed."""
    if console.is_terminal:
        console.print(table)
        return
    probe = Console(width=1000, file=io.StringIO(), color_system=None)
    probe.print(table)
    needed = max(len(line) for line in probe.file.getvalue().splitlines())
    saved = console.width
    console.width = max(saved, needed)
    try:
        console.print(table)
    finally:
        console.width = saved


def print_comparison(console: Console, result: ComparisonResult) -> None:
    stats = result.stats
    _print_unsqueezed(console, comparison_table(result))
    clock = "simulated training time of a run (the objective's recorded epoch seconds)" if result.simulated_seconds \
        else "mean wall time of a run"
    if any(c.scored for c in result.curves):
        console.print(f"worth: {result.scoring.label} ({result.scoring.policy} policy); observed: the runs' best "
                      "observed score, mean; optimism: observed minus worth, mean.", highlight=False)
    else:
        console.print("mean, std, median: the runs' best observed scores (not scored on their recommendations).",
                      highlight=False)
    console.print(f"rank: mean rank over seeds (1 = best); time/run: {clock}.", highlight=False)
    if stats.target is not None:
        target = stats.target
        console.print(
            f"to target: evaluations until the best observed so far reached {target.value:.6g}, "
            f"{target.fraction:.0%} of the way from the median "
            f"evaluation ({target.reference:.6g}) to the best found by anyone ({target.best:.6g}): all runs' "
            "evaluations until they got there (a run that did not: its whole budget) over the runs that did.",
            highlight=False,
        )
    if stats.friedman is not None and stats.friedman.optimizers >= 3:
        console.print(stats.friedman.verdict, highlight=False)
    if stats.pairs:
        on = "the recommendations' worth" if any(c.scored for c in result.curves) else "final bests"
        console.print(f"paired tests (Wilcoxon signed-rank on {on}, paired by seed):", highlight=False)
        for pair in stats.pairs:
            console.print(f"  {pair.verdict}", highlight=False)
        if stats.power_note:
            console.print(f"  {stats.power_note}", highlight=False)
    console.print(f"results: {result.directory}", highlight=False)


# -- the command -----------------------------------------------------------------------------

def _seed_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole numbers separated by commas, like 3,5,9; got {text!r}") from None


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def build_compare_parser() -> argparse.ArgumentParser:
    from hho_tune.cli import _non_negative_int, _Parser, _positive_int, add_search_arguments

    parser = _Parser(
        prog="hho-tune compare",
        description="Run several optimizers on one objective, each once per seed with the same budget, "
                    "and compare them: curves, a summary table, plots and paired tests.",
    )
    add_search_arguments(parser)
    parser.add_argument("--optimizers", default=",".join(DEFAULT_OPTIMIZERS),
                        help="comma-separated optimizer names (default hho,tpe,random)")
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", type=_positive_int, default=None,
                       help=f"run seeds 0..K-1 (default {DEFAULT_SEEDS})")
    seeds.add_argument("--seed-list", type=_seed_list, default=None, help="run these seeds, e.g. 3,5,9")
    parser.add_argument("--target-fraction", type=_fraction, default=DEFAULT_TARGET_FRACTION,
                        help="'evals to target' counts evaluations until a run is this fraction of the way from "
                             f"the median evaluation to the best anyone found (default {DEFAULT_TARGET_FRACTION})")
    parser.add_argument("--name", default=None, help="comparison directory under --out (default compare-<time>)")
    parser.add_argument("--resume", metavar="COMPARISON_DIR", default=None,
                        help="finish an interrupted comparison with its original settings; with --rescore or "
                             "--recommend, score a finished one again that way")
    parser.add_argument("--recommend", choices=(AUTO, *POLICIES), default=None,
                        help="how a run picks the configuration it recommends and is scored by: best (its best "
                             "observed trial) or gp (a noise-aware model's pick among its trials); default auto: "
                             "gp, or best for a deterministic objective (the test functions)")
    parser.add_argument("--rescore", type=_non_negative_int, default=None, metavar="K",
                        help="score each run's recommendation by training it again with K fresh seeds (apart from "
                             "the budget); default: the objective's noise-free value where it has one, else 3; "
                             "0: by its observed score")
    return parser


# Flags that may accompany --resume only with the comparison's own value.
_COMPARISON_DEFINING_FLAGS = ("budget", "space", "out", "epochs", "train_size", "data", "objective", "direction",
                              "pop_size", "tpe_startup", "max_failures", "optimizers", "seeds", "seed_list",
                              "target_fraction", "name", "pruner", "max_epochs", "backend",
                              "epoch_budget")


def run_compare_resume(args: argparse.Namespace, argv: Sequence[str], console: Console) -> int:
    from hho_tune.backend import recorded_backend, use_backend
    from hho_tune.cli import explicit_arguments, prepare_search

    directory = Path(args.resume)
    document = read_comparison(directory)
    stored = {**(document.get("arguments") or {}), "backend": recorded_backend(document)}  # resumed on its own backend
    typed = explicit_arguments(build_compare_parser(), argv)
    for flag in _COMPARISON_DEFINING_FLAGS:
        if flag in typed and json.loads(json.dumps(typed[flag])) != stored.get(flag):
            raise UsageError(f"--resume {directory}: --{flag.replace('_', '-')} {typed[flag]} contradicts the "
                             f"comparison's {stored.get(flag)!r}; leave it out to continue with its settings")
    rescoring = args.rescore is not None or args.recommend is not None
    if document.get("status") == "finished" and not rescoring and document.get("scoring"):
        console.print(f"{directory}: already finished; its summary:")
        print_comparison(console, summarise(directory))
        return 0
    plan = ComparisonPlan.from_dict(document)
    original = argparse.Namespace(**{**vars(build_compare_parser().parse_args([])), **stored, "threads": args.threads})
    use_backend(stored["backend"])
    objective, _ = prepare_search(original, seed=plan.seeds[0])
    scoring = None
    if rescoring or not document.get("scoring"):
        previous = Scoring.from_dict(document.get("scoring")) if document.get("scoring") else None
        policy = args.recommend or (previous.policy if previous else AUTO)
        scoring = choose_scoring(objective, policy=policy, rescore=args.rescore, run_seeds=plan.seeds)
    what = "scoring" if document.get("status") == "finished" else "resuming"
    console.print(f"hho-tune compare: {what} {directory}", highlight=False)
    result = resume_comparison(directory, objective, console=console, workers=args.workers, scheduler=args.scheduler,
                               threads_per_worker=args.threads, scoring=scoring)
    print_comparison(console, result)
    return 0


def run_compare_command(argv: Sequence[str], console: Console) -> int:
    from hho_tune.backend import use_backend
    from hho_tune.cli import optimizer_options, prepare_search

    args = build_compare_parser().parse_args(argv)
    if args.resume:
        return run_compare_resume(args, argv, console)
    args.backend = use_backend(args.backend)  # before anything imports Keras; compare.json keeps it
    optimizers = parse_optimizer_list(args.optimizers)
    seeds = args.seed_list if args.seed_list is not None else tuple(range(args.seeds or DEFAULT_SEEDS))
    check_seeds(seeds)
    out = Path(args.out)
    check_writable(out)
    if args.name is not None:
        check_comparison_name(out, args.name)
    # Checked before the objective is built: the LSTM's data and TensorFlow take seconds to load.
    objective, space = prepare_search(args, seed=seeds[0])
    console.print(f"hho-tune compare: {', '.join(optimizers)} x seeds {', '.join(map(str, seeds))}, "
                  f"budget {args.budget}, space {space.source}", highlight=False)
    result = compare(
        objective, space, optimizers=optimizers, seeds=seeds, budget=args.budget, direction=args.direction,
        out=out, name=args.name, pop_size=args.pop_size, optimizer_options=optimizer_options(args),
        max_failures=args.max_failures, target_fraction=args.target_fraction, console=console,
        arguments={k: v for k, v in vars(args).items() if k != "resume"}, workers=args.workers,
        scheduler=args.scheduler, threads_per_worker=args.threads, pruner=args.pruner,
        epoch_budget=args.epoch_budget, recommend=args.recommend or AUTO, rescore=args.rescore,
    )
    print_comparison(console, result)
    return 0
