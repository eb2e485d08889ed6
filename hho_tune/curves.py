"""Learning curves: ``learning_curves.csv`` written as each epoch ends, read back, and what they say.

One row per reported step: ``number, epoch, value, seconds`` (the trial, the step, the value
after it, how long that step took where it trained). Each row is flushed to the operating
system as it is written, so a killed run keeps every epoch that ended; the rows of an attempt
that a kill cut short are dropped when the run resumes (the trial is trained again and
reports again), as its attempt is left out of the pruner's view of the study.
"""

from __future__ import annotations

import csv
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from hho_tune.results import atomic_write, load_trials
from hho_tune.runner import TrialListener
from hho_tune.space import SearchSpace
from hho_tune.trial import Trial

CURVES_FILE = "learning_curves.csv"
CURVE_COLUMNS = ("number", "epoch", "value", "seconds")
MIN_TRIALS_FOR_CORRELATION = 3


class CurveFile(TrialListener):
    """Appends each report to learning_curves.csv; started anew from the recorded trials on resume."""

    def __init__(self, run_dir: Path, history: Sequence[Trial] = ()) -> None:
        self.path = run_dir / CURVES_FILE
        self.rows = 0
        with atomic_write(self.path) as handle:
            writer = csv.writer(handle)
            writer.writerow(CURVE_COLUMNS)
            for trial in history:
                for step, value, seconds in trial.curve:
                    writer.writerow(_row(trial.number, step, value, seconds))
                    self.rows += 1
        self._handle: Any = None

    def on_report(self, number: int, step: int, value: float, seconds: float) -> None:
        if self._handle is None:
            self._handle = open(self.path, "a", newline="", encoding="utf-8")  # noqa: SIM115 (closed by close())
            self._writer = csv.writer(self._handle)
        self._writer.writerow(_row(number, step, value, seconds))
        self._handle.flush()
        self.rows += 1

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _row(number: int, step: int, value: float, seconds: float) -> list[Any]:
    return [number, step, repr(float(value)), f"{seconds:.3f}"]


def read_curves(run_dir: Path) -> dict[int, tuple[tuple[int, float, float], ...]]:
    """learning_curves.csv by trial number; a row a kill cut short is skipped. Empty when there is no file."""
    path = run_dir / CURVES_FILE
    if not path.exists():
        return {}
    curves: dict[int, list[tuple[int, float, float]]] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            try:
                entry = (int(row["epoch"]), float(row["value"]), float(row["seconds"]))
                number = int(row["number"])
            except (KeyError, TypeError, ValueError):
                continue
            curves.setdefault(number, []).append(entry)
    return {number: tuple(entries) for number, entries in curves.items()}


def load_trials_with_curves(run_dir: Path, space: SearchSpace) -> list[Trial]:
    """The recorded trials of a run (trials.csv), each with its learning curve: what a resume replays."""
    curves = read_curves(run_dir)
    return [replace(t, curve=curves[t.number]) if t.number in curves else t for t in load_trials(run_dir, space)]


def epochs_trained(trials: Sequence[Trial]) -> int | None:
    """Steps trained over all trials (each trial's last reported step); None when no trial reported any."""
    reported = [t.steps for t in trials if t.steps is not None]
    return sum(reported) if reported else None


def rung_correlations(trials: Sequence[Trial]) -> list[dict[str, Any]]:
    """Spearman's rank correlation of the values at successive rungs, over the trials that reached both.

    The rungs are the first step reported and every step at which some trial stopped (pruned
    or finished): with successive halving the rungs and the end, without a pruner the first
    and the last epoch. Low or negative values say that early scores do not rank the
    configurations as later ones do, so pruning on them discards good ones.
    """
    from scipy.stats import spearmanr

    curves = [{step: value for step, value, _ in t.curve} for t in trials if t.curve]
    if not curves:
        return []
    rungs = sorted({min(c) for c in curves} | {max(c) for c in curves})
    pairs = []
    for low, high in itertools.pairwise(rungs):
        both = [(c[low], c[high]) for c in curves if low in c and high in c
                and math.isfinite(c[low]) and math.isfinite(c[high])]
        rho = None
        lows, highs = [a for a, _ in both], [b for _, b in both]
        if len(both) >= MIN_TRIALS_FOR_CORRELATION and len(set(lows)) > 1 and len(set(highs)) > 1:  # else undefined
            rho = round(float(spearmanr(lows, highs).statistic), 4)
        pairs.append({"from_epoch": low, "to_epoch": high, "trials": len(both), "spearman": rho})
    return pairs


def describe_correlations(pairs: Sequence[Mapping[str, Any]]) -> str:
    """One line for the summary, e.g. ``epoch 1 -> 3: 0.62 (9 trials); 3 -> 8: 0.40 (3 trials)``."""
    parts = []
    for pair in pairs:
        rho = "n/a" if pair["spearman"] is None else f"{pair['spearman']:.2f}"
        parts.append(f"{pair['from_epoch']} -> {pair['to_epoch']}: {rho} ({pair['trials']} trials)")
    return "; ".join(parts)
