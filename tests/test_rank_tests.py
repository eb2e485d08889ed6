"""The rank statistics benchmarking papers report: Friedman's test, Nemenyi's CD, ranks over time, the CD diagram."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from scipy.stats import friedmanchisquare

from hho_tune.compare import CD_PLOT, FRIEDMAN_FILE, RANKS_FILE, RANKS_PLOT, compare
from hho_tune.plots import rank_groups
from hho_tune.space import SearchSpace
from hho_tune.stats import RunCurve, friedman_test, nemenyi_critical_difference, ranks_over_time

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def curve(optimizer: str, seed: int, values: list[float | None], direction: str = "minimize") -> RunCurve:
    return RunCurve(optimizer=optimizer, seed=seed, direction=direction, values=tuple(values),
                    elapsed=tuple(float(i + 1) for i in range(len(values))), wall_seconds=float(len(values)))


@pytest.mark.parametrize(("k", "q_alpha"), [(2, 1.960), (3, 2.343), (4, 2.569), (5, 2.728), (6, 2.850), (10, 3.164)])
def test_the_critical_difference_is_demsar_s(k: int, q_alpha: float) -> None:
    """Demšar (2006), table 5(a): q_0.05 for k classifiers; CD = q sqrt(k(k+1)/(6N))."""
    assert nemenyi_critical_difference(k, 30) == pytest.approx(q_alpha * math.sqrt(k * (k + 1) / 180), abs=2e-3)


def test_friedman_agrees_with_scipy_and_ranks_a_missing_result_last() -> None:
    finals = {"a": {0: 1.0, 1: 2.0, 2: 0.5, 3: 0.1}, "b": {0: 2.0, 1: 3.0, 2: 0.7, 3: 0.3},
              "c": {0: 3.0, 1: 1.0, 2: 0.9, 3: None}}
    test = friedman_test(finals, "minimize")
    # By hand: ranks (1 = lowest) per seed, c's missing value last.
    expected = friedmanchisquare([1, 2, 1, 1], [2, 3, 2, 2], [3, 1, 3, 3])
    assert test.seeds == 4 and test.statistic == pytest.approx(expected.statistic)
    assert test.p_value == pytest.approx(expected.pvalue)
    assert test.critical_difference == pytest.approx(nemenyi_critical_difference(3, 4))
    maximized = friedman_test({n: {s: (None if v is None else -v) for s, v in by.items()} for n, by in finals.items()},
                              "maximize")
    assert maximized.statistic == pytest.approx(test.statistic)
    assert "Friedman test over 3 optimizers and 4 seeds" in test.verdict


def test_friedman_is_not_defined_for_two_optimizers_or_all_ties() -> None:
    assert friedman_test({"a": {0: 1.0, 1: 2.0}, "b": {0: 2.0, 1: 1.0}}, "minimize").p_value is None
    tied = friedman_test({name: {0: 1.0, 1: 1.0, 2: 1.0} for name in "abc"}, "minimize")
    assert tied.p_value is None and "not defined" in tied.verdict


def test_ranks_over_time_follow_the_best_so_far() -> None:
    curves = [curve("a", 0, [5.0, 1.0]), curve("b", 0, [3.0, 3.0]),
              curve("a", 1, [None, 2.0]), curve("b", 1, [4.0, 1.0])]
    ranks = ranks_over_time(curves, ["a", "b"], "minimize")
    # Evaluation 1: seed 0 b leads (a 2, b 1); seed 1 a has nothing yet (a 2, b 1). Evaluation 2: a 1, b 2; a 2, b 1.
    assert ranks == {"a": [2.0, 1.5], "b": [1.0, 1.5]}


def test_rank_groups_join_what_the_critical_difference_cannot_tell_apart() -> None:
    ranks = {"a": 1.2, "b": 1.9, "c": 2.5, "d": 4.4}
    assert rank_groups(ranks, 1.0) == [("a", "b"), ("b", "c")]
    assert rank_groups(ranks, 5.0) == [("a", "b", "c", "d")]
    assert rank_groups(ranks, 0.1) == []


def test_a_comparison_writes_the_friedman_test_the_ranks_and_the_diagram(tmp_path: Path) -> None:
    space = SearchSpace.from_dict({"parameters": {"x": {"type": "float", "low": 0.0, "high": 1.0}}})

    def objective(params: dict) -> float:
        return (params["x"] - 0.3) ** 2

    result = compare(objective, space, optimizers=["hho", "tpe", "random"], seeds=range(4), budget=8,
                     direction="minimize", out=tmp_path, name="c")
    directory = result.directory
    friedman = json.loads((directory / FRIEDMAN_FILE).read_text())
    assert friedman["seeds"] == 4 and friedman["optimizers"] == 3
    assert friedman["mean_ranks"] == {row.optimizer: row.mean_rank for row in result.stats.optimizers}
    rows = (directory / RANKS_FILE).read_text().splitlines()
    assert rows[0] == "evaluation,hho,tpe,random" and len(rows) == 1 + 8
    # At every evaluation the mean ranks of 3 optimizers sum to 1 + 2 + 3.
    assert all(sum(float(x) for x in row.split(",")[1:]) == pytest.approx(6.0) for row in rows[1:])
    assert (directory / RANKS_PLOT).read_bytes().startswith(PNG_SIGNATURE)
    if friedman["p_value"] is not None:
        assert (directory / CD_PLOT).read_bytes().startswith(PNG_SIGNATURE)
