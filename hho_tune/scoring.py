"""How ``compare`` scores a run: by the worth of what it recommends, measured apart from its own draws.

A run's best observed score is the maximum of its noisy draws; ranking runs by it rewards the
optimizer that draws most often near one configuration. So each finished run's recommendation
(:mod:`hho_tune.recommendation`) is scored one of three ways, chosen once per comparison:

* ``noise-free``: the objective offers ``noise_free_value(params)`` (``lstm_table``'s expected
  accuracy; a test function's exact value), which is the worth;
* ``rescore``: the recommendation is trained again with K fresh training seeds, seeds no run
  of the comparison used and the same for every run (common random numbers), and the worth is
  the mean. These trainings are counted and timed apart from the budget and appended, one row
  each as it finishes, to rescore.csv, so a killed comparison keeps them;
* ``observed``: neither is possible (a plain function without seeds): the recommendation's own
  observed score stands in, and the table says so.

recommendations.csv holds, for every run, the recommendation, its observed score, the run's
best observed score, the worth and how it was found; for a noise-free objective also
worth.csv, the worth of the recommendation after each evaluation (the curves' and
ranks-over-time's axis). Everything is rebuilt from the run directories and rescore.csv.
"""

from __future__ import annotations

import csv
import math
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hho_tune.errors import UsageError
from hho_tune.recommendation import (
    AUTO,
    DEFAULT_POLICY,
    GP_MIN_TRIALS,
    Candidate,
    Recommendation,
    candidates_from_rows,
    recommend,
    resolve_policy,
)
from hho_tune.results import atomic_write, params_json, read_trials
from hho_tune.space import SearchSpace

RECOMMENDATIONS_FILE = "recommendations.csv"
RESCORE_FILE = "rescore.csv"
WORTH_FILE = "worth.csv"
GP_CHECKPOINTS = 10  # fits of the gp policy along a run, for the worth-over-evaluations curves
DEFAULT_RESCORE = 3  # fresh seeds per recommendation when the objective has no noise-free value
RESCORE_SEED_BASE = 10_000  # fresh seeds are the first K from here that no run of the comparison trains with
RECOMMENDATION_COLUMNS = ["optimizer", "seed", "policy", "trial", "observed", "best_observed", "worth", "scored_by",
                          "rescored", "predicted", "params"]
RESCORE_COLUMNS = ["params", "rescore_seed", "state", "value", "seconds", "error", "optimizer", "seed", "trial"]
WORTH_COLUMNS = ["optimizer", "seed", "evaluation", "trial", "worth"]

Objective = Callable[[Mapping[str, Any]], float]


@dataclass(frozen=True)
class Scoring:
    """How a comparison scores its runs; written to compare.json under ``scoring``."""

    policy: str = DEFAULT_POLICY
    method: str = "observed"  # noise-free | rescore | observed
    rescore_seeds: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rescore_seeds": list(self.rescore_seeds), "rescore": len(self.rescore_seeds)}

    @classmethod
    def from_dict(cls, document: Mapping[str, Any] | None) -> Scoring:
        """compare.json's ``scoring``; a comparison made before there was one ranked by the observed best."""
        if not document:
            return cls(policy="best", method="observed")
        return cls(policy=document.get("policy", DEFAULT_POLICY), method=document.get("method", "observed"),
                   rescore_seeds=tuple(int(s) for s in document.get("rescore_seeds") or ()))

    @property
    def label(self) -> str:
        """What the worth column means, for a table's caption."""
        if self.method == "noise-free":
            return "the objective's noise-free value of each run's recommendation"
        if self.method == "rescore":
            seeds = ", ".join(map(str, self.rescore_seeds))
            return f"the recommendation trained again with {len(self.rescore_seeds)} fresh seeds ({seeds}), mean"
        return "the recommendation's own observed score (the objective offers no noise-free value and no seeds)"


def has_noise_free_value(objective: Any) -> bool:
    return callable(getattr(objective, "noise_free_value", None))


def trains_with_seed(objective: Any) -> bool:
    return callable(getattr(objective, "with_seed", None))


def choose_scoring(objective: Any, *, policy: str = AUTO, rescore: int | None = None,
                   run_seeds: Sequence[int] = ()) -> Scoring:
    """``policy`` ``auto``: :func:`hho_tune.recommendation.resolve_policy`. ``rescore`` None:
    noise-free where offered, else :data:`DEFAULT_RESCORE` fresh seeds where the objective trains
    with seeds, else observed. ``rescore`` 0: rank by the observed score of the recommendation,
    whatever the objective offers."""
    policy = resolve_policy(policy, objective)
    if rescore is not None and (isinstance(rescore, bool) or not isinstance(rescore, int) or rescore < 0):
        raise UsageError(f"--rescore must be a whole number >= 0, got {rescore!r}")
    if rescore == 0:
        return Scoring(policy=policy, method="observed")
    if rescore is None and has_noise_free_value(objective):
        return Scoring(policy=policy, method="noise-free")
    if not trains_with_seed(objective):
        if rescore is not None:
            raise UsageError("--rescore needs an objective that trains with a seed (a with_seed method); "
                             "this one has none, so training it again would repeat the same number")
        return Scoring(policy=policy, method="observed")
    return Scoring(policy=policy, method="rescore",
                   rescore_seeds=fresh_seeds(DEFAULT_RESCORE if rescore is None else rescore, run_seeds))


def fresh_seeds(count: int, run_seeds: Iterable[int]) -> tuple[int, ...]:
    """The first ``count`` seeds from :data:`RESCORE_SEED_BASE` up that no run trains with."""
    taken = set(run_seeds)
    seeds: list[int] = []
    candidate = RESCORE_SEED_BASE
    while len(seeds) < count:
        if candidate not in taken:
            seeds.append(candidate)
        candidate += 1
    return tuple(seeds)


@dataclass(frozen=True)
class ScoredRun:
    """One row of recommendations.csv."""

    optimizer: str
    seed: int
    recommendation: Recommendation | None  # None: the run completed no trial
    best_observed: float | None
    worth: float | None
    scored_by: str
    rescored: int = 0  # completed fresh-seed trainings behind the worth

    @property
    def optimism(self) -> float | None:
        """How far the run's best observed score overstates what its recommendation is worth (signed by direction)."""
        if self.best_observed is None or self.worth is None:
            return None
        return self.best_observed - self.worth


def run_recommendation(run_dir: Path, space: SearchSpace, direction: str, policy: str,
                       ) -> tuple[Recommendation | None, list[Candidate]]:
    candidates = candidates_from_rows(read_trials(run_dir), space)
    return recommend(candidates, space, direction, policy), candidates


def best_observed(candidates: Sequence[Candidate], direction: str) -> float | None:
    if not candidates:
        return None
    values = [c.value for c in candidates]
    return max(values) if direction == "maximize" else min(values)


# -- rescore.csv: the fresh-seed trainings, append-only ----------------------------------------

def read_rescores(directory: Path) -> dict[tuple[str, int], dict[str, str]]:
    """(params as JSON, seed) -> its row; a half-written last row (a kill mid-write) is left out."""
    path = directory / RESCORE_FILE
    if not path.exists():
        return {}
    found = {}
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            try:
                found[row["params"], int(row["rescore_seed"])] = row
            except (KeyError, TypeError, ValueError):
                continue
    return found


def _append_rescore(directory: Path, row: Mapping[str, Any]) -> None:
    path = directory / RESCORE_FILE
    new = not path.exists() or path.stat().st_size == 0
    with open(path, "a", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, RESCORE_COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow(dict(row))
        handle.flush()


def rescore(directory: Path, objective: Objective, space: SearchSpace, pending: Sequence[tuple[str, int, Recommendation]],
            seeds: Sequence[int], *, progress: Callable[[str], None] | None = None) -> None:
    """Train every pending recommendation at every fresh seed not yet in rescore.csv; one row each, as it ends."""
    from hho_tune.runner import evaluate

    done = read_rescores(directory)
    todo = [(opt, seed, rec, fresh) for opt, seed, rec in pending for fresh in seeds
            if (params_json(rec.params), fresh) not in done]
    unique: dict[tuple[str, int], tuple[str, int, Recommendation, int]] = {}
    for item in todo:
        unique.setdefault((params_json(item[2].params), item[3]), item)
    started = time.perf_counter()
    for index, (optimizer, seed, rec, fresh) in enumerate(unique.values(), start=1):
        if progress is not None:
            progress(f"rescore {index} of {len(unique)}: {optimizer} s{seed}'s recommendation (trial {rec.number}) "
                     f"with fresh seed {fresh}")
        trial = evaluate(objective.with_seed(fresh), space, dict(rec.params), number=rec.number,  # type: ignore[attr-defined]
                         takes_reporter=False)
        _append_rescore(directory, {
            "params": params_json(rec.params), "rescore_seed": fresh, "state": trial.state.value,
            "value": "" if trial.value is None else repr(trial.value), "seconds": f"{trial.duration:.3f}",
            "error": trial.error, "optimizer": optimizer, "seed": seed, "trial": rec.number,
        })
    if progress is not None and unique:
        progress(f"rescored {len(unique)} trainings in {time.perf_counter() - started:.0f} s (apart from the budget)")


def rescored_worth(rec: Recommendation, seeds: Sequence[int], rows: Mapping[tuple[str, int], Mapping[str, str]],
                   ) -> tuple[float | None, int]:
    """The mean over the fresh-seed trainings that completed, and how many did (a diverged one is left out, and counted)."""
    values = []
    for fresh in seeds:
        row = rows.get((params_json(rec.params), fresh))
        if row is not None and row.get("state") == "COMPLETE" and row.get("value"):
            value = float(row["value"])
            if math.isfinite(value):
                values.append(value)
    return (statistics.fmean(values) if values else None), len(values)


# -- the whole comparison ------------------------------------------------------------------------

def score_runs(directory: Path, objective: Objective, space: SearchSpace, direction: str,
               runs: Sequence[tuple[str, int, Path]], scoring: Scoring, *,
               progress: Callable[[str], None] | None = None) -> list[ScoredRun]:
    """Score every finished run, write recommendations.csv (and worth.csv), and return the rows."""
    recommendations = {}
    for optimizer, seed, run_dir in runs:
        recommendations[optimizer, seed] = run_recommendation(run_dir, space, direction, scoring.policy)
    if scoring.method == "rescore":
        pending = [(opt, seed, rec) for (opt, seed), (rec, _) in recommendations.items() if rec is not None]
        rescore(directory, objective, space, pending, scoring.rescore_seeds, progress=progress)
    rows = read_rescores(directory)
    scored = []
    trajectories: list[tuple[str, int, list[tuple[int, int, float]]]] = []
    for (optimizer, seed), (rec, candidates) in recommendations.items():
        worth: float | None = None
        rescored = 0
        if rec is not None:
            if scoring.method == "noise-free":
                worth = float(objective.noise_free_value(space.full_params(rec.params)))  # type: ignore[attr-defined]
                trajectories.append((optimizer, seed, worth_trajectory(objective, space, direction, candidates,
                                                                       scoring.policy)))
            elif scoring.method == "rescore":
                worth, rescored = rescored_worth(rec, scoring.rescore_seeds, rows)
            elif scoring.method == "observed":
                worth = rec.observed
        scored.append(ScoredRun(optimizer, seed, rec, best_observed(candidates, direction), worth,
                                scoring.method, rescored))
    write_recommendations(directory, scored)
    if trajectories:
        write_worth(directory, trajectories)
    return scored


def worth_trajectory(objective: Any, space: SearchSpace, direction: str, candidates: Sequence[Candidate],
                     policy: str) -> list[tuple[int, int, float]]:
    """(evaluation, recommended trial, its noise-free worth) after each completed trial, in trial order.

    Under ``best`` the recommendation changes only when a better score is observed, so this is
    cheap and exact at every trial; under ``gp`` the model is fitted at :data:`GP_CHECKPOINTS`
    evenly spaced trials and the last, and the recommendation holds in between (a fit per trial
    would cost minutes per comparison).
    """
    ordered = sorted(candidates, key=lambda c: c.number)
    counts = range(1, len(ordered) + 1)
    if policy == "gp" and len(ordered) > GP_CHECKPOINTS:
        counts = sorted({*range(1, GP_MIN_TRIALS), *(round(len(ordered) * (i + 1) / GP_CHECKPOINTS)
                                                     for i in range(GP_CHECKPOINTS))})
    values: dict[int, float] = {}
    points = []
    for count in counts:
        rec = recommend(ordered[:count], space, direction, policy)
        if rec is None:
            continue
        if rec.number not in values:
            values[rec.number] = float(objective.noise_free_value(space.full_params(rec.params)))
        points.append((ordered[count - 1].number + 1, rec.number, values[rec.number]))
    return points


def write_recommendations(directory: Path, scored: Sequence[ScoredRun]) -> None:
    with atomic_write(directory / RECOMMENDATIONS_FILE) as handle:
        writer = csv.DictWriter(handle, RECOMMENDATION_COLUMNS)
        writer.writeheader()
        for row in scored:
            rec = row.recommendation
            writer.writerow({
                "optimizer": row.optimizer, "seed": row.seed, "policy": "" if rec is None else rec.policy,
                "trial": "" if rec is None else rec.number, "observed": "" if rec is None else repr(rec.observed),
                "best_observed": _cell(row.best_observed), "worth": _cell(row.worth), "scored_by": row.scored_by,
                "rescored": row.rescored, "predicted": "" if rec is None else _cell(rec.predicted),
                "params": "" if rec is None else params_json(rec.params),
            })


def write_worth(directory: Path, trajectories: Sequence[tuple[str, int, Sequence[tuple[int, int, float]]]]) -> None:
    with atomic_write(directory / WORTH_FILE) as handle:
        writer = csv.writer(handle)
        writer.writerow(WORTH_COLUMNS)
        for optimizer, seed, points in trajectories:
            for evaluation, trial, worth in points:
                writer.writerow([optimizer, seed, evaluation, trial, repr(worth)])


def read_recommendations(directory: Path) -> dict[tuple[str, int], dict[str, str]]:
    path = directory / RECOMMENDATIONS_FILE
    if not path.exists():
        return {}
    with open(path, newline="", encoding="utf-8") as handle:
        return {(row["optimizer"], int(row["seed"])): row for row in csv.DictReader(handle)}


def read_worth(directory: Path) -> dict[tuple[str, int], list[tuple[int, float]]]:
    """(optimizer, seed) -> [(evaluation, worth of the recommendation then)], in order."""
    path = directory / WORTH_FILE
    if not path.exists():
        return {}
    found: dict[tuple[str, int], list[tuple[int, float]]] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            found.setdefault((row["optimizer"], int(row["seed"])), []).append((int(row["evaluation"]), float(row["worth"])))
    return found


def _cell(value: float | None) -> str:
    return "" if value is None else repr(value)


def describe(scoring: Scoring, runs: int) -> str:
    """One line printed before a comparison runs, so the extra cost is known up front."""
    if scoring.method == "rescore":
        k = len(scoring.rescore_seeds)
        return (f"scoring: each run's recommendation ({scoring.policy} policy) is trained again with {k} fresh seeds "
                f"({', '.join(map(str, scoring.rescore_seeds))}): up to {k * runs} trainings apart from the budget; "
                "--rescore 0 ranks by the observed score instead")
    if scoring.method == "noise-free":
        return f"scoring: each run's recommendation ({scoring.policy} policy) by the objective's noise-free value"
    return (f"scoring: each run's recommendation ({scoring.policy} policy) by its own observed score "
            "(no noise-free value, no fresh seeds)")
