"""The two pictures of a comparison: best so far against evaluations, and against wall-clock time.

Each optimizer is one line, the mean over seeds (what summary.csv reports), in a band of
plus and minus one standard error of that mean: how far apart two lines must be before
the seeds tell them apart. The band is clipped to the range of the seeds, so it stays
positive on the log axis used for minimized benchmarks. matplotlib is imported here, with the Agg backend, only when a
plot is drawn: the CLI stays quick and no display is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hho_tune.stats import RunCurve

TIME_POINTS = 300


def best_matrix(curves: Sequence[RunCurve], length: int) -> np.ndarray:
    """Rows: runs; columns: evaluations 1..length; NaN before a run's first result.

    A run that stopped before ``length`` (too many failures) keeps its final best.
    """
    rows = np.full((len(curves), length), np.nan)
    for row, curve in zip(rows, curves, strict=True):
        running = [np.nan if b is None else b for b in curve.best_so_far]
        row[: len(running)] = running[:length]
        if running and len(running) < length:
            row[len(running):] = running[-1]
    return rows


def best_at_times(curve: RunCurve, times: np.ndarray) -> np.ndarray:
    """The best a run had at each time (a step function); after its end, its final best."""
    running = np.array([np.nan if b is None else b for b in curve.best_so_far], dtype=float)
    if not len(running):
        return np.full(len(times), np.nan)
    index = np.searchsorted(np.asarray(curve.elapsed), times, side="right") - 1
    return np.where(index >= 0, running[np.clip(index, 0, None)], np.nan)


def _mean_and_band(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and band per column; NaN (not drawn) until every run has a result.

    A mean over only the runs that have a result so far would jump up and down as runs join.
    """
    mean = np.mean(rows, axis=0)
    error = np.std(rows, axis=0, ddof=1) / np.sqrt(rows.shape[0]) if rows.shape[0] > 1 else np.zeros_like(mean)
    low = np.maximum(mean - error, np.min(rows, axis=0))
    high = np.minimum(mean + error, np.max(rows, axis=0))
    return mean, low, high


def _use_log_scale(curves: Sequence[RunCurve], direction: str) -> bool:
    """Minimized benchmarks fall over decades towards 0: a log axis shows the end of the search."""
    values = [b for c in curves for b in c.best_so_far if b is not None]
    return direction == "minimize" and bool(values) and min(values) > 0 and max(values) / min(values) > 100


def _figure(title: str, xlabel: str, direction: str, curves: Sequence[RunCurve]) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7.5, 4.8), layout="constrained")
    axes.set_title(title, fontsize=11)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(f"best value so far ({'higher' if direction == 'maximize' else 'lower'} is better)")
    if _use_log_scale(curves, direction):
        axes.set_yscale("log")
    axes.grid(True, alpha=0.3)
    return figure, axes


def _save(figure: Any, axes: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    axes.legend(loc="best", fontsize=9)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _seeds_text(curves: Sequence[RunCurve]) -> str:
    seeds = len({c.seed for c in curves})
    return f"{seeds} seed{'s' if seeds != 1 else ''}"


def plot_best_vs_evaluations(curves: Sequence[RunCurve], optimizers: Sequence[str], direction: str, path: Path) -> None:
    figure, axes = _figure(
        f"Best so far against evaluations: mean over {_seeds_text(curves)}, band ±1 standard error",
        "evaluation", direction, curves,
    )
    length = max((len(c.values) for c in curves), default=0)
    evaluations = np.arange(1, length + 1)
    for name in optimizers:
        runs = [c for c in curves if c.optimizer == name]
        if not runs or not length:
            continue
        mean, low, high = _mean_and_band(best_matrix(runs, length))
        (line,) = axes.plot(evaluations, mean, label=f"{name} ({len(runs)} runs)", linewidth=1.8, drawstyle="steps-post")
        axes.fill_between(evaluations, low, high, color=line.get_color(), alpha=0.18, linewidth=0, step="post")
    _save(figure, axes, path)


def plot_best_vs_time(curves: Sequence[RunCurve], optimizers: Sequence[str], direction: str, path: Path) -> None:
    figure, axes = _figure(
        f"Best so far against wall-clock time: mean over {_seeds_text(curves)}, band ±1 standard error",
        "seconds since the run's first evaluation", direction, curves,
    )
    end = max((c.elapsed[-1] for c in curves if c.elapsed), default=0.0)
    times = np.linspace(0.0, end, TIME_POINTS) if end > 0 else np.zeros(1)
    for name in optimizers:
        runs = [c for c in curves if c.optimizer == name]
        if not runs:
            continue
        own_end = max((c.elapsed[-1] for c in runs if c.elapsed), default=0.0)
        shown = times[times <= own_end] if own_end > 0 else times[:1]
        mean, low, high = _mean_and_band(np.array([best_at_times(c, shown) for c in runs]))
        (line,) = axes.plot(shown, mean, label=f"{name} ({len(runs)} runs)", linewidth=1.8, drawstyle="steps-post")
        axes.fill_between(shown, low, high, color=line.get_color(), alpha=0.18, linewidth=0, step="post")
    _save(figure, axes, path)
