"""The statistics of a comparison, on hand-made cases whose answers are worked out in the comments."""

from __future__ import annotations

import pytest
from scipy.stats import wilcoxon

from hho_tune.stats import (
    RunCurve,
    Target,
    best_so_far,
    compare_runs,
    evaluations_to_reach,
    holm,
    mean_ranks,
    paired_test,
    rank_at_one_seed,
    seeds_needed,
    smallest_possible_p,
    summarise_optimizer,
    target_for,
)


def curve(values: list[float | None], *, optimizer: str = "a", seed: int = 0, direction: str = "maximize") -> RunCurve:
    return RunCurve(optimizer=optimizer, seed=seed, direction=direction, values=tuple(values),
                    elapsed=tuple(float(i) for i in range(1, len(values) + 1)), wall_seconds=float(len(values)))


def test_best_so_far_skips_failures_and_follows_the_direction() -> None:
    assert best_so_far([None, 0.5, 0.4, None, 0.7], "maximize") == (None, 0.5, 0.5, 0.5, 0.7)
    assert best_so_far([3.0, None, 5.0, 1.0], "minimize") == (3.0, 3.0, 3.0, 1.0)
    assert curve([None, None]).final_best is None and curve([None, None]).failed == 2


def test_ranks_share_ties_and_put_a_run_without_result_last() -> None:
    # 0.9 and 0.9 share ranks 1 and 2 -> 1.5 each; 0.8 is third; no result is fourth.
    assert rank_at_one_seed({"a": 0.9, "b": 0.9, "c": 0.8, "d": None}, "maximize") == {
        "a": 1.5, "b": 1.5, "c": 3.0, "d": 4.0}
    # Minimizing, the smallest wins; three equal values share ranks 2, 3, 4 -> 3.
    assert rank_at_one_seed({"a": 1.0, "b": 2.0, "c": 2.0, "d": 2.0}, "minimize") == {
        "a": 1.0, "b": 3.0, "c": 3.0, "d": 3.0}


def test_mean_rank_uses_only_the_seeds_every_optimizer_ran() -> None:
    finals = {
        "hho": {0: 0.90, 1: 0.95, 2: 0.97, 3: 0.99},  # seed 3: only hho ran it, so it does not count
        "tpe": {0: 0.92, 1: 0.95, 2: 0.96},
        "random": {0: 0.91, 1: 0.80, 2: 0.93},
    }
    # seed 0: tpe 1, random 2, hho 3; seed 1: hho and tpe tie (1.5 each), random 3; seed 2: hho 1, tpe 2, random 3.
    ranks = mean_ranks(finals, "maximize")
    assert ranks["hho"] == pytest.approx((3 + 1.5 + 1) / 3)
    assert ranks["tpe"] == pytest.approx((1 + 1.5 + 2) / 3)
    assert ranks["random"] == pytest.approx((2 + 3 + 3) / 3)
    assert mean_ranks({"a": {0: 1.0}, "b": {1: 1.0}}, "maximize") == {"a": None, "b": None}


def test_target_and_evaluations_to_reach_it() -> None:
    # All completed values: 2, 4, 6, 8 and 5, 10 -> median 5.5, best 10; 0.9 of the way: 5.5 + 0.9 * 4.5 = 9.55.
    a = curve([2.0, 4.0, 6.0, 8.0])
    b = curve([5.0, None, 10.0], optimizer="b")
    target = target_for([a, b], 0.9, "maximize")
    assert (target.reference, target.best) == (5.5, 10.0)
    assert target.value == pytest.approx(9.55)
    assert evaluations_to_reach(a, target.value) is None
    assert evaluations_to_reach(b, target.value) == 3
    assert evaluations_to_reach(a, 6.0) == 3  # reaching the target exactly counts
    assert target_for([a, b], 1.0, "maximize").value == 10.0
    # Minimizing: values 1, 3, 9, 4 -> median 3.5, best 1; half-way: 3.5 + 0.5 * (1 - 3.5) = 2.25.
    low = curve([9.0, 4.0, 3.0, 1.0], direction="minimize")
    minimized = target_for([low], 0.5, "minimize")
    assert minimized.value == pytest.approx(2.25)
    assert evaluations_to_reach(low, minimized.value) == 4
    assert target_for([curve([None])], 0.9, "maximize") is None


def test_expected_evaluations_to_target_count_the_runs_that_missed() -> None:
    # Budget 10; runs reach 0.8 at evaluations 3 and 5 and one never does:
    # mean over the successes is 4, COCO's expected running time (3 + 5 + 10) / 2 = 9.
    hit_at_3 = curve([0.1, 0.5, 0.8, *[0.1] * 7], seed=0)
    never = curve([0.1] * 10, seed=1)
    hit_at_5 = curve([0.1, 0.2, 0.3, 0.4, 0.9, *[0.1] * 5], seed=2)
    target = Target(fraction=0.5, reference=0.1, best=0.9, value=0.8)
    summary = summarise_optimizer("a", [hit_at_3, never, hit_at_5], mean_rank=None, target=target)
    assert summary.evaluations_to_target == 4.0
    assert summary.expected_evaluations_to_target == 9.0
    assert summary.runs_reaching_target == 2
    # Final bests 0.8, 0.1, 0.9: mean 0.6, median 0.8, sample standard deviation sqrt(0.19) = 0.4359.
    assert summary.best_mean == pytest.approx(0.6)
    assert summary.best_median == 0.8
    assert summary.best_std == pytest.approx(0.19**0.5)


def test_wilcoxon_on_a_hand_made_case() -> None:
    first = {0: 13.0, 1: 10.0, 2: 12.0, 3: 10.0, 4: 15.0}
    second = {0: 10.0, 1: 11.0, 2: 10.0, 3: 10.0, 4: 10.0}
    test = paired_test("x", "y", first, second, "maximize")
    # Improvements 3, -1, 2, 0, 5: the zero is dropped; |d| ranks 3->3, 1->1, 2->2, 5->4.
    assert (test.first_better, test.second_better, test.ties, test.seeds) == (3, 1, 1, 5)
    assert (test.rank_sum_first, test.rank_sum_second) == (9.0, 1.0)
    # Exact null over 2^4 sign patterns: rank sums <= 1 arise from {} and {1}: 2/16 one-sided, 0.25 two-sided.
    assert test.p_value == pytest.approx(0.25)
    reference = wilcoxon([13, 10, 12, 10, 15], [10, 11, 10, 10, 10], zero_method="wilcox").pvalue
    assert test.p_value == pytest.approx(reference)
    assert not test.significant and "no significant difference at 5 seeds" in test.verdict


def test_minimizing_turns_the_comparison_around() -> None:
    small = {s: float(s) for s in range(6)}
    large = {s: float(s) + 1 + s / 10 for s in range(6)}
    test = paired_test("small", "large", small, large, "minimize")
    # Six wins for "small": the exact two-sided p is 2/2^6 = 0.03125, below 5%.
    assert test.first_better == 6 and test.p_value == pytest.approx(0.03125)
    assert test.significant and test.verdict.startswith("small beats large")
    assert paired_test("large", "small", large, small, "minimize").verdict.startswith("small beats large")


def test_equal_results_are_not_a_test() -> None:
    test = paired_test("a", "b", {0: 1.0, 1: 2.0}, {0: 1.0, 1: 2.0}, "maximize")
    assert test.p_value is None and test.ties == 2 and "same final best at all 2 seeds" in test.verdict
    none = paired_test("a", "b", {0: None}, {0: 1.0}, "maximize")
    assert none.seeds == 0 and "nothing to test" in none.verdict


def test_holm_adjustment() -> None:
    # Sorted 0.01, 0.03, 0.04 times 3, 2, 1 -> 0.03, 0.06, 0.04, kept non-decreasing -> 0.03, 0.06, 0.06.
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_few_seeds_are_said_to_be_too_few() -> None:
    assert smallest_possible_p(5) == 0.0625
    assert seeds_needed(1) == 6 and seeds_needed(3) == 7
    five = [curve([1.0 + s], optimizer="a", seed=s) for s in range(5)] + \
           [curve([0.0 + s], optimizer="b", seed=s) for s in range(5)]
    stats = compare_runs(five, ["a", "b"], direction="maximize", target_fraction=0.9)
    (pair,) = stats.pairs
    assert pair.first_better == 5 and pair.p_value == pytest.approx(0.0625) and not pair.significant
    assert "no pair could have been significant" in stats.power_note and "at least 6 seeds" in stats.power_note
    six = [*five, curve([6.0], optimizer="a", seed=5), curve([5.0], optimizer="b", seed=5)]
    stats = compare_runs(six, ["a", "b"], direction="maximize", target_fraction=0.9)
    assert stats.power_note is None and stats.pairs[0].significant


def test_compare_runs_puts_it_together() -> None:
    curves = [
        curve([0.5, 0.9], optimizer="hho", seed=0), curve([0.6, 0.7], optimizer="tpe", seed=0),
        curve([0.8, 0.8], optimizer="hho", seed=1), curve([0.85, 0.9], optimizer="tpe", seed=1),
    ]
    stats = compare_runs(curves, ["hho", "tpe"], direction="maximize", target_fraction=0.9)
    hho, tpe = stats.optimizers
    assert (hho.optimizer, hho.runs, hho.best_mean, hho.mean_rank) == ("hho", 2, pytest.approx(0.85), 1.5)
    assert (tpe.best_mean, tpe.mean_rank) == (pytest.approx(0.8), 1.5)
    assert stats.pairs[0].first == "hho" and stats.pairs[0].pairs == 1
