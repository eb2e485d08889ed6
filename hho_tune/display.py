"""What a person sees: one progress line per trial, and a summary table at the end.

A listener of the runner, so the core loop holds no display code. Lines (not a live
widget) so that logs of long runs read the same in a terminal, a file and CI.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hho_tune.runner import TrialListener
from hho_tune.space import Params
from hho_tune.trial import Trial, ranked


def format_params(params: Mapping[str, Any]) -> str:
    return " ".join(f"{name}={format_value(value)}" for name, value in params.items())


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_seconds(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ProgressPrinter(TrialListener):
    """``[ 3/30] 0.9512  best 0.9601 (#1)  learning_rate=...  7.1s | 0:37 elapsed, ~5:10 left``.

    With an ``epoch_budget`` the run ends when its epochs are spent, not its trainings: the line
    then counts epochs (``epochs 23/60``) and the time left is estimated from them.
    """

    def __init__(self, console: Console, *, label: str = "", epoch_budget: int | None = None,
                 epochs_done: int = 0) -> None:
        self.console = console
        self.label = f"{escape(label)} " if label else ""  # "[tpe s1]" is not rich markup
        self.budget = 0
        self.started = time.perf_counter()
        self.cached = 0
        self.done = 0
        self.trained_here = 0
        self.epoch_budget = epoch_budget
        self.epochs, self.epochs_here = epochs_done, 0  # epochs_done: a resumed run's recorded trials

    def on_start(self, budget: int, finished: int) -> None:
        self.budget = budget
        self.done = finished
        self.started = time.perf_counter()
        self.trained_here = 0

    def on_evaluation_start(self, number: int, params: Params) -> None:
        if self.console.is_terminal:
            self.console.print(f"[dim]{self.label}training {number + 1}/{self.budget}: {format_params(params)}[/dim]")

    def on_cached(self, params: Params, value: float | None) -> None:
        self.cached += 1

    def on_trial(self, trial: Trial, best: Trial | None) -> None:
        self.done += 1
        self.trained_here += 1
        done = self.done
        elapsed = time.perf_counter() - self.started
        left = elapsed / self.trained_here * (self.budget - done)
        self.epochs += trial.steps or 0
        self.epochs_here += trial.steps or 0
        epochs_text = ""
        if self.epoch_budget is not None:
            epochs_text = f" epochs {self.epochs}/{self.epoch_budget}"
            if self.epochs_here:
                left = min(left, elapsed / self.epochs_here * max(0, self.epoch_budget - self.epochs))
        if trial.ok:
            value = f"{trial.value:.4f}"
        elif trial.pruned:
            value = f"{trial.value:.4f} [yellow]pruned at epoch {trial.steps}[/yellow]"
        else:
            value = "[red]FAILED[/red]"
        best_text = f"best {best.value:.4f} (#{best.number})" if best is not None else "best -"
        width = len(str(self.budget))
        line = (
            f"{self.label}[{done:>{width}}/{self.budget}] {value}  {best_text}  {format_params(trial.params)}  "
            f"{trial.duration:.1f}s |{epochs_text} {format_seconds(elapsed)} elapsed, ~{format_seconds(left)} left"
        )
        if self.cached:
            line += f", {self.cached} cached"
        self.console.print(line, highlight=False)
        if trial.failed:
            self.console.print(f"    [red]{trial.error}[/red]", highlight=False)


def summary_table(trials: Sequence[Trial], direction: str, *, top: int = 5, title: str = "") -> Table:
    """The best ``top`` trials, best first: those that trained furthest first (the epoch column says where)."""
    best = [t for t in ranked(list(trials), direction) if not t.failed][:top]
    epochs = any(t.steps is not None for t in best)
    names = list(best[0].params) if best else []
    table = Table(title=title or None)
    table.add_column("rank", justify="right")
    table.add_column("trial", justify="right")
    table.add_column("value", justify="right")
    if epochs:
        table.add_column("epoch", justify="right")
    for name in names:
        table.add_column(name, justify="right")
    table.add_column("seconds", justify="right")
    for rank, trial in enumerate(best, start=1):
        table.add_row(
            str(rank), str(trial.number), f"{trial.value:.4f}",
            *([str(trial.steps if trial.steps is not None else "")] if epochs else []),
            *[format_value(trial.params[name]) for name in names], f"{trial.duration:.1f}",
        )
    return table
