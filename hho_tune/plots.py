"""The pictures of a comparison: best so far against evaluations and against time, ranks over time, the CD diagram.

Each optimizer is one line, the mean over seeds (what summary.csv reports), in a band of
plus and minus one standard error of that mean: how far apart two lines must be before
the seeds tell them apart. The band is clipped to the range of the seeds, so it stays
positive on the log axis used for minimized benchmarks. matplotlib is imported here, with the Agg backend, only when a
plot is drawn: the CLI stays quick and no display is needed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
        running = [np.nan if b is None else b for b in curve.trajectory]
        row[: len(running)] = running[:length]
        if running and len(running) < length:
            row[len(running):] = running[-1]
    return rows


def best_at_times(curve: RunCurve, times: np.ndarray) -> np.ndarray:
    """The best a run had at each time (a step function); after its end, its final best."""
    running = np.array([np.nan if b is None else b for b in curve.trajectory], dtype=float)
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
    values = [b for c in curves for b in c.trajectory if b is not None]
    return direction == "minimize" and bool(values) and min(values) > 0 and max(values) / min(values) > 100


def _figure(title: str, xlabel: str, direction: str, curves: Sequence[RunCurve]) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7.5, 4.8), layout="constrained")
    axes.set_title(title, fontsize=11)
    axes.set_xlabel(xlabel)
    what = "worth of the recommendation so far" if curves and all(c.worth_so_far for c in curves) else "best value so far"
    axes.set_ylabel(f"{what} ({'higher' if direction == 'maximize' else 'lower'} is better)")
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


def plot_best_vs_time(curves: Sequence[RunCurve], optimizers: Sequence[str], direction: str, path: Path, *,
                      simulated: bool = False) -> None:
    """``simulated``: the objective reported what its steps would have cost (lstm_table): say so on the axis."""
    clock = "simulated training time" if simulated else "wall-clock time"
    figure, axes = _figure(
        f"Best so far against {clock}: mean over {_seeds_text(curves)}, band ±1 standard error",
        "simulated training seconds (the recorded epoch times)" if simulated else "seconds since the run's first evaluation",
        direction, curves,
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


def plot_ranks_over_time(ranks: Mapping[str, Sequence[float]], seeds: int, path: Path) -> None:
    """Mean rank of the best so far after each evaluation (1 = best): who leads early, who late."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7.5, 4.8), layout="constrained")
    axes.set_title(f"Mean rank of the best so far over {seeds} seed{'s' if seeds != 1 else ''} (1 = best)", fontsize=11)
    axes.set_xlabel("evaluation")
    axes.set_ylabel("mean rank")
    for name, row in ranks.items():
        axes.plot(np.arange(1, len(row) + 1), row, label=name, linewidth=1.8, drawstyle="steps-post")
    axes.set_ylim(len(ranks) + 0.3, 0.7)  # rank 1 at the top
    axes.grid(True, alpha=0.3)
    _save(figure, axes, path)


def rank_groups(mean_ranks: Mapping[str, float], critical_difference: float) -> list[tuple[str, ...]]:
    """Maximal runs of optimizers (in rank order) whose mean ranks lie within the critical difference.

    Those are the bars of a critical-difference diagram: optimizers joined by one are not told
    apart at the 5% level by Nemenyi's test; a group of one is not drawn.
    """
    ordered = sorted(mean_ranks, key=lambda name: mean_ranks[name])
    groups: list[tuple[str, ...]] = []
    for start in range(len(ordered)):
        end = start
        while end + 1 < len(ordered) and mean_ranks[ordered[end + 1]] - mean_ranks[ordered[start]] < critical_difference:
            end += 1
        group = tuple(ordered[start:end + 1])
        if len(group) > 1 and not any(set(group) <= set(g) for g in groups):
            groups.append(group)
    return groups


def plot_critical_difference(mean_ranks: Mapping[str, float], critical_difference: float, seeds: int, p_value: float,
                             path: Path) -> None:
    """Demšar's diagram: mean ranks on one axis (1 = best, on the left), the CD bar, groups not told apart joined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(mean_ranks)
    ordered = sorted(mean_ranks, key=lambda name: mean_ranks[name])
    left, right = ordered[: (k + 1) // 2], ordered[(k + 1) // 2:]
    groups = rank_groups(mean_ranks, critical_difference)
    height = 1.4 + 0.3 * max(len(left), len(right)) + 0.15 * len(groups)
    figure, axes = plt.subplots(figsize=(7.5, height), layout="constrained")
    axes.set_xlim(-2.8, k + 3.8)  # room for the labels either side of the axis
    top = 1.0
    rows = max(len(left), len(right))
    axes.set_ylim(top - 0.55 - 0.18 * len(groups) - 0.32 * (rows - 1), top + 0.75)
    axes.axis("off")
    axes.plot([1, k], [top, top], color="black", linewidth=1.2)
    for r in range(1, k + 1):
        axes.plot([r, r], [top, top + 0.08], color="black", linewidth=1)
        axes.text(r, top + 0.14, str(r), ha="center", va="bottom", fontsize=9)
    axes.plot([1, 1 + critical_difference], [top + 0.55, top + 0.55], color="black", linewidth=1.6)
    axes.text(1 + critical_difference / 2, top + 0.6, f"CD = {critical_difference:.2f}", ha="center", va="bottom",
              fontsize=9)
    for row, group in enumerate(groups):
        y = top - 0.15 - 0.18 * row
        axes.plot([mean_ranks[group[0]] - 0.03, mean_ranks[group[-1]] + 0.03], [y, y], color="black", linewidth=3.5,
                  solid_capstyle="round")
    below = top - 0.35 - 0.18 * len(groups)
    for side, names in (("left", left), ("right", list(reversed(right)))):
        for row, name in enumerate(names):
            rank, y = mean_ranks[name], below - 0.32 * row
            end = 0.5 if side == "left" else k + 0.5
            axes.plot([rank, rank, end], [top, y, y], color="black", linewidth=0.9)
            label = f"{name} ({rank:.2f})" if side == "left" else f"({rank:.2f}) {name}"
            axes.text(end + (-0.05 if side == "left" else 0.05), y, label, ha="right" if side == "left" else "left",
                      va="center", fontsize=9)
    axes.set_title(f"Critical difference (Nemenyi, 5%) over {seeds} seeds; Friedman p = {p_value:.3g}", fontsize=11)
    figure.savefig(path, dpi=120, bbox_inches="tight")  # the labels may reach past the axes
    plt.close(figure)
