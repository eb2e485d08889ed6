"""The numbers of a comparison: final bests, ranks, evaluations to a target, paired tests.

Pure functions over :class:`RunCurve` records (no files, no printing), so that each one
can be checked by hand on a small case. What the numbers mean:

* **final best**: the best value a run observed within its budget;
* **worth**: what the configuration the run recommends is worth, measured apart from the
  run's own draws (:mod:`hho_tune.scoring`); on a noisy objective the final best overstates it
  (the difference is the **optimism**). A run's **score** is its worth where it was measured,
  else its final best; ranks, paired tests and Friedman's test are on the score;
* **mean rank**: at each seed the optimizers are ranked by score (1 = best, ties share
  the average rank), then the ranks are averaged over the seeds every optimizer ran;
* **evaluations to target**: the first evaluation at which a run's best so far reached the
  target, a ``fraction`` of the way from the median of all evaluations (a typical
  configuration) to the best value anyone found. Defined on the gap rather than as
  ``fraction * best`` so that it means the same for minimized objectives whose optimum is 0.
  Runs that never get there are counted by COCO's *expected running time*: all evaluations
  spent by all runs (a run that missed spends its whole budget) divided by the runs that
  reached the target. A mean over only the successful runs would flatter an optimizer that
  succeeded once, early;
* **paired test**: the Wilcoxon signed-rank test on scores paired by seed (seed k
  trains with the same seed for every optimizer), p-values Holm-adjusted across pairs;
* **Friedman test**: do the optimizers' ranks differ at all, over the seeds every one ran?
  (three or more optimizers; the omnibus test benchmarking papers report before any pair).
  With it, Nemenyi's **critical difference** (Demšar 2006): two mean ranks further apart than
  it differ at the 5% level, which the critical-difference diagram draws;
* **mean rank over time**: the mean rank after each evaluation of the worth of what the run
  recommended then (where that was measured at every evaluation), else of the best so far:
  the curve that shows who leads early and who late.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

SIGNIFICANCE_LEVEL = 0.05


@dataclass(frozen=True)
class RunCurve:
    """One run of one optimizer at one seed, in evaluation order."""

    optimizer: str
    seed: int
    direction: str
    values: tuple[float | None, ...]  # None: a failed evaluation
    elapsed: tuple[float, ...]  # seconds from the start of the first evaluation to the end of each
    wall_seconds: float  # the whole run, the optimizer's own time included
    worth: float | None = None  # what the run's recommendation is worth (scored runs only)
    scored: bool = False  # worth was measured (or tried: None then means it could not be)
    worth_so_far: tuple[float | None, ...] = ()  # the worth of the recommendation after each evaluation, if known

    @property
    def best_so_far(self) -> tuple[float | None, ...]:
        return best_so_far(self.values, self.direction)

    @property
    def score(self) -> float | None:
        """What the run is ranked by: the worth of its recommendation where scored, else its final best."""
        return self.worth if self.scored else self.final_best

    @property
    def trajectory(self) -> tuple[float | None, ...]:
        """The score after each evaluation: the recommendation's worth where known throughout, else the best so far."""
        return self.worth_so_far if self.worth_so_far else self.best_so_far

    @property
    def optimism(self) -> float | None:
        """How much the final best overstates the worth (positive: overstated), in the objective's units."""
        if not self.scored or self.worth is None or self.final_best is None:
            return None
        return (self.final_best - self.worth) if self.direction == "maximize" else (self.worth - self.final_best)

    @property
    def final_best(self) -> float | None:
        return self.best_so_far[-1] if self.values else None

    @property
    def failed(self) -> int:
        return sum(1 for v in self.values if v is None)


def is_better(a: float, b: float, direction: str) -> bool:
    return a > b if direction == "maximize" else a < b


def best_so_far(values: Sequence[float | None], direction: str) -> tuple[float | None, ...]:
    """The running best; None until the first evaluation that did not fail."""
    best: float | None = None
    running = []
    for value in values:
        if value is not None and (best is None or is_better(value, best, direction)):
            best = value
        running.append(best)
    return tuple(running)


def rank_at_one_seed(finals: Mapping[str, float | None], direction: str) -> dict[str, float]:
    """1 for the best, ties share the average of their ranks, a run with no result ranks last."""
    worst = -math.inf if direction == "maximize" else math.inf
    keyed = {name: worst if value is None else value for name, value in finals.items()}
    ranks: dict[str, float] = {}
    for name, value in keyed.items():
        better = sum(1 for other in keyed.values() if is_better(other, value, direction))
        equal = sum(1 for other in keyed.values() if other == value)
        ranks[name] = better + (equal + 1) / 2
    return ranks


def common_seeds(finals: Mapping[str, Mapping[int, float | None]]) -> list[int]:
    """The seeds every optimizer ran (with or without a result): the blocks that ranks are averaged over."""
    return sorted(set.intersection(*(set(by_seed) for by_seed in finals.values()))) if finals else []


def mean_ranks(finals: Mapping[str, Mapping[int, float | None]], direction: str) -> dict[str, float | None]:
    """Each optimizer's rank averaged over the seeds that every optimizer ran (None if there are none)."""
    common = common_seeds(finals)
    if not common:
        return {name: None for name in finals}
    totals = dict.fromkeys(finals, 0.0)
    for seed in common:
        for name, rank in rank_at_one_seed({n: finals[n][seed] for n in finals}, direction).items():
            totals[name] += rank
    return {name: total / len(common) for name, total in totals.items()}


@dataclass(frozen=True)
class Target:
    """The value a run must reach to count as having 'got there'."""

    fraction: float
    reference: float  # median of every completed evaluation of every run: a typical configuration
    best: float  # the best value any run found
    value: float


def target_for(curves: Sequence[RunCurve], fraction: float, direction: str) -> Target | None:
    """``fraction`` of the way from the median evaluation to the best anyone found (None: no result at all)."""
    values = [v for curve in curves for v in curve.values if v is not None]
    if not values:
        return None
    best = max(values) if direction == "maximize" else min(values)
    reference = float(np.median(values))
    value = best if fraction >= 1 else reference + fraction * (best - reference)
    return Target(fraction=fraction, reference=reference, best=best, value=value)


def evaluations_to_reach(curve: RunCurve, target: float) -> int | None:
    """The 1-based number of the first evaluation whose best so far reached ``target``; None if none did."""
    for number, best in enumerate(curve.best_so_far, start=1):
        if best is not None and (best == target or is_better(best, target, curve.direction)):
            return number
    return None


@dataclass(frozen=True)
class OptimizerSummary:
    """One row of summary.csv."""

    optimizer: str
    runs: int
    evaluations: float  # mean per run: the budget, unless a run stopped early
    failed: int  # failed evaluations, all runs together
    best_mean: float | None  # the observed final best
    best_std: float | None  # sample standard deviation over seeds (None with one run)
    best_median: float | None
    mean_rank: float | None  # on the score: the worth where measured
    evaluations_to_target: float | None  # mean over the runs that reached the target
    expected_evaluations_to_target: float | None  # COCO's expected running time; None when no run reached it
    runs_reaching_target: int
    wall_seconds: float  # mean per run
    worth_mean: float | None = None  # the recommendations' worth, over the runs where it was measured
    worth_std: float | None = None
    worth_median: float | None = None
    optimism: float | None = None  # mean of (final best - worth), signed so that positive means overstated


def summarise_optimizer(
    name: str, curves: Sequence[RunCurve], *, mean_rank: float | None, target: Target | None,
) -> OptimizerSummary:
    finals = [c.final_best for c in curves if c.final_best is not None]
    to_target = [evaluations_to_reach(c, target.value) if target else None for c in curves]
    reached = [n for n in to_target if n is not None]
    spent = sum(len(c.values) if n is None else n for c, n in zip(curves, to_target, strict=True))
    worths = [c.worth for c in curves if c.scored and c.worth is not None]
    optimism = [c.optimism for c in curves if c.optimism is not None]
    return OptimizerSummary(
        optimizer=name,
        runs=len(curves),
        evaluations=statistics.fmean(len(c.values) for c in curves) if curves else 0.0,
        failed=sum(c.failed for c in curves),
        best_mean=statistics.fmean(finals) if finals else None,
        best_std=statistics.stdev(finals) if len(finals) > 1 else None,
        best_median=statistics.median(finals) if finals else None,
        mean_rank=mean_rank,
        evaluations_to_target=statistics.fmean(reached) if reached else None,
        expected_evaluations_to_target=spent / len(reached) if reached else None,
        runs_reaching_target=len(reached),
        wall_seconds=statistics.fmean(c.wall_seconds for c in curves) if curves else 0.0,
        worth_mean=statistics.fmean(worths) if worths else None,
        worth_std=statistics.stdev(worths) if len(worths) > 1 else None,
        worth_median=statistics.median(worths) if worths else None,
        optimism=statistics.fmean(optimism) if optimism else None,
    )


@dataclass(frozen=True)
class PairedTest:
    """Wilcoxon signed-rank test of two optimizers' scores, paired by seed."""

    first: str
    second: str
    seeds: int  # seeds at which both have a final best
    first_better: int
    second_better: int
    ties: int
    median_improvement: float | None  # median over seeds of how much better ``first`` did (negative: worse)
    rank_sum_first: float  # signed-rank sums over the seeds that differ; the test's statistic is the smaller
    rank_sum_second: float
    p_value: float | None  # None: no seed differs, there is nothing to test
    p_adjusted: float | None  # Holm-adjusted over all tested pairs of the comparison
    pairs: int  # how many pairs the adjustment covers

    @property
    def smallest_possible_p(self) -> float:
        """The exact two-sided test's floor with this many differing seeds: all of them on one side."""
        return smallest_possible_p(self.first_better + self.second_better)

    @property
    def significant(self) -> bool:
        return self.p_adjusted is not None and self.p_adjusted < SIGNIFICANCE_LEVEL

    @property
    def verdict(self) -> str:
        """One sentence a person can act on."""
        a, b = self.first, self.second
        if self.seeds == 0:
            return f"{a} vs {b}: no seed where both found a value; nothing to test."
        if self.p_value is None:
            return f"{a} vs {b}: the same final best at all {self.seeds} seeds; no difference."
        counts = f"{a} better at {self.first_better}, {b} at {self.second_better}"
        counts += f", equal at {self.ties}" if self.ties else ""
        counts += f" of {self.seeds} seeds"
        p_text = f"p = {self.p_value:.3g}"
        if self.pairs > 1:
            p_text += f", {self.p_adjusted:.3g} after Holm's correction for {self.pairs} pairs"
        if self.significant:
            winner, loser = (a, b) if self.rank_sum_first > self.rank_sum_second else (b, a)
            return f"{winner} beats {loser} ({counts}; Wilcoxon {p_text}): significant at the 5% level."
        return f"{a} vs {b}: no significant difference at {self.seeds} seeds ({counts}; Wilcoxon {p_text})."


def smallest_possible_p(differing_seeds: int) -> float:
    """2 / 2^n: the exact two-sided Wilcoxon p-value when all n differences have the same sign."""
    return min(1.0, 2.0 / 2**differing_seeds)


def seeds_needed(pairs: int, level: float = SIGNIFICANCE_LEVEL) -> int:
    """The fewest seeds at which a pair can be significant after Holm's correction for ``pairs`` pairs."""
    n = 1
    while max(pairs, 1) * smallest_possible_p(n) >= level:
        n += 1
    return n


def paired_test(
    first: str,
    second: str,
    first_finals: Mapping[int, float | None],
    second_finals: Mapping[int, float | None],
    direction: str,
) -> PairedTest:
    """The test on seeds where both have a value; zero differences are dropped (Wilcoxon's own rule)."""
    from scipy.stats import rankdata, wilcoxon

    seeds = sorted(s for s in set(first_finals) & set(second_finals)
                   if first_finals[s] is not None and second_finals[s] is not None)
    sign = 1.0 if direction == "maximize" else -1.0
    improvements = np.array([sign * (first_finals[s] - second_finals[s]) for s in seeds], dtype=float)
    nonzero = improvements[improvements != 0]
    ranks = rankdata(np.abs(nonzero))  # ties share the average rank
    p_value = None
    if len(nonzero):
        # scipy uses the exact null distribution for small samples and exhaustive permutations
        # when differences tie, so the p-value is honest at 3 to 13 seeds.
        p_value = float(wilcoxon(nonzero, zero_method="wilcox", alternative="two-sided").pvalue)
    return PairedTest(
        first=first, second=second, seeds=len(seeds),
        first_better=int(np.sum(nonzero > 0)), second_better=int(np.sum(nonzero < 0)),
        ties=len(seeds) - len(nonzero),
        median_improvement=float(np.median(improvements)) if len(seeds) else None,
        rank_sum_first=float(ranks[nonzero > 0].sum()), rank_sum_second=float(ranks[nonzero < 0].sum()),
        p_value=p_value, p_adjusted=p_value, pairs=1,
    )


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment: holds the chance of any false 'significant' among the pairs at 5%."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [0.0] * len(p_values)
    running = 0.0
    for step, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - step) * p_values[index]))
        adjusted[index] = running
    return adjusted


def paired_tests(finals: Mapping[str, Mapping[int, float | None]], direction: str) -> list[PairedTest]:
    """Every pair, in the order the optimizers were given, Holm-adjusted together."""
    tests = [paired_test(a, b, finals[a], finals[b], direction) for a, b in itertools.combinations(finals, 2)]
    tested = [i for i, t in enumerate(tests) if t.p_value is not None]
    for i, p_adjusted in zip(tested, holm([tests[i].p_value for i in tested]), strict=True):
        tests[i] = replace(tests[i], p_adjusted=p_adjusted, pairs=len(tested))
    return tests


@dataclass(frozen=True)
class ComparisonStats:
    direction: str
    target: Target | None
    optimizers: tuple[OptimizerSummary, ...]
    pairs: tuple[PairedTest, ...]
    friedman: FriedmanTest | None = None
    ranks_over_time: Mapping[str, Sequence[float]] = field(default_factory=dict)

    @property
    def power_note(self) -> str | None:
        """Said once when no pair could have been significant, whatever the optimizers had done."""
        tested = [t for t in self.pairs if t.p_value is not None]
        if not tested:
            return None
        differing = max(t.first_better + t.second_better for t in tested)
        floor = smallest_possible_p(differing) * len(tested)
        if floor < SIGNIFICANCE_LEVEL:
            return None
        correction = f" and Holm's correction for {len(tested)} pairs" if len(tested) > 1 else ""
        return (
            f"With {differing} seeds{correction} the smallest p-value possible is {min(floor, 1.0):.3g}: "
            f"no pair could have been significant at 5%. Tell optimizers apart with at least "
            f"{seeds_needed(len(tested))} seeds."
        )


def compare_runs(
    curves: Sequence[RunCurve], optimizers: Sequence[str], *, direction: str, target_fraction: float,
) -> ComparisonStats:
    """Everything summary.csv, pairwise.csv and the printed table hold, from the runs alone."""
    by_optimizer = {name: [c for c in curves if c.optimizer == name] for name in optimizers}
    finals = {name: {c.seed: c.score for c in runs} for name, runs in by_optimizer.items()}
    ranks = mean_ranks(finals, direction)
    target = target_for(curves, target_fraction, direction)
    summaries = tuple(
        summarise_optimizer(name, runs, mean_rank=ranks[name], target=target) for name, runs in by_optimizer.items()
    )
    return ComparisonStats(direction=direction, target=target, optimizers=summaries,
                           pairs=tuple(paired_tests(finals, direction)), friedman=friedman_test(finals, direction),
                           ranks_over_time=ranks_over_time(curves, optimizers, direction))


@dataclass(frozen=True)
class FriedmanTest:
    """Friedman's test on scores over the seeds every optimizer ran, and Nemenyi's critical difference.

    A run without any result ranks last at its seed, as in :func:`mean_ranks`, so the test and
    the mean ranks of the table and the diagram are computed on the same seeds.
    """

    optimizers: int
    seeds: int
    statistic: float | None
    p_value: float | None  # None: fewer than 3 optimizers or 2 seeds, or every rank tied
    critical_difference: float | None  # in mean ranks, at the 5% level

    @property
    def verdict(self) -> str:
        if self.p_value is None:
            return (f"Friedman test: not defined here ({self.optimizers} optimizers, {self.seeds} common seeds; "
                    "it needs 3 or more optimizers, 2 or more seeds and ranks that differ).")
        outcome = "the optimizers' ranks differ" if self.p_value < SIGNIFICANCE_LEVEL else "no significant difference in ranks"
        return (f"Friedman test over {self.optimizers} optimizers and {self.seeds} seeds: chi2 = {self.statistic:.3g}, "
                f"p = {self.p_value:.3g}: {outcome} at the 5% level; Nemenyi's critical difference "
                f"{self.critical_difference:.2f} mean ranks.")


def nemenyi_critical_difference(optimizers: int, seeds: int, level: float = SIGNIFICANCE_LEVEL) -> float:
    """q_alpha sqrt(k (k + 1) / (6 N)), q_alpha the studentized range quantile over sqrt 2 (Demšar 2006, table 5)."""
    from scipy.stats import studentized_range

    q = float(studentized_range.ppf(1.0 - level, optimizers, np.inf)) / math.sqrt(2.0)
    return q * math.sqrt(optimizers * (optimizers + 1) / (6.0 * seeds))


def friedman_test(finals: Mapping[str, Mapping[int, float | None]], direction: str) -> FriedmanTest:
    from scipy.stats import friedmanchisquare

    seeds = common_seeds(finals)  # a run without a result ranks last, as in mean_ranks
    k = len(finals)
    if k < 3 or len(seeds) < 2:
        return FriedmanTest(optimizers=k, seeds=len(seeds), statistic=None, p_value=None, critical_difference=None)
    by_seed = [rank_at_one_seed({n: finals[n][s] for n in finals}, direction) for s in seeds]
    columns = [[ranks[name] for ranks in by_seed] for name in finals]
    with np.errstate(invalid="ignore", divide="ignore"):
        result = friedmanchisquare(*columns)  # on the ranks (1 = best): the same statistic as on the values
    statistic, p_value = float(result.statistic), float(result.pvalue)
    if not (math.isfinite(statistic) and math.isfinite(p_value)):  # every seed a full tie
        return FriedmanTest(optimizers=k, seeds=len(seeds), statistic=None, p_value=None, critical_difference=None)
    return FriedmanTest(optimizers=k, seeds=len(seeds), statistic=statistic, p_value=p_value,
                        critical_difference=nemenyi_critical_difference(k, len(seeds)))


def ranks_over_time(curves: Sequence[RunCurve], optimizers: Sequence[str], direction: str) -> dict[str, list[float]]:
    """Mean rank of each optimizer's score after evaluation 1, 2, ..., over the seeds every one ran.

    The score after an evaluation is the worth of the recommendation then where every run knows
    it (a noise-free objective), else the best so far. A run that has no value yet (only
    failures so far) ranks last at that evaluation; runs shorter than the longest keep their last.
    """
    runs = {(c.optimizer, c.seed): c for c in curves}
    seeds = common_seeds({name: {c.seed: c.score for c in curves if c.optimizer == name} for name in optimizers})
    by_worth = bool(curves) and all(c.worth_so_far for c in curves)
    length = max((len(c.values) for c in curves), default=0)
    worst = -math.inf if direction == "maximize" else math.inf
    totals = {name: [0.0] * length for name in optimizers}
    for seed in seeds:
        bests = {name: runs[name, seed].trajectory if by_worth else runs[name, seed].best_so_far for name in optimizers}
        for step in range(length):
            at_step = {}
            for name, best in bests.items():
                value = best[min(step, len(best) - 1)] if best else None
                at_step[name] = worst if value is None else value
            for name, rank in rank_at_one_seed(at_step, direction).items():
                totals[name][step] += rank
    return {name: [t / len(seeds) for t in row] if seeds else [] for name, row in totals.items()}
