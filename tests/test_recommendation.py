"""Verdicts on what a run recommends: policies, scoring by noise-free value or fresh seeds, resume.

The objective here has noise we control: a pocket of the space where a draw is very noisy.
An optimizer that draws again and again inside it gets the luckiest observed scores, and
recommends a configuration worth far less than one found where the scores are honest.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.console import Console

from hho_tune.compare import SUMMARY_FILE, compare, resume_comparison, run_compare_command
from hho_tune.errors import UsageError
from hho_tune.optimizers.base import Optimizer, OptimizerSettings, Suggestion, register
from hho_tune.recommendation import GP_MIN_TRIALS, Candidate, rank, recommend
from hho_tune.scoring import RECOMMENDATIONS_FILE, RESCORE_FILE, choose_scoring, fresh_seeds
from hho_tune.space import SearchSpace

SPACE = SearchSpace.from_dict({"parameters": {"x": {"type": "float", "low": 0.0, "high": 1.0}}})
POCKET = 0.4  # below it a draw has noise 0.5; above it 0.01
PEAK = 0.7


def worth(x: float) -> float:
    return 1.0 - abs(x - PEAK)


@dataclass(frozen=True)
class NoisyPocket:
    """``1 - |x - 0.7|`` plus noise drawn from (seed, x): sd 0.5 below x = 0.4, 0.01 above."""

    seed: int = 0
    direction: str = "maximize"

    def with_seed(self, seed: int) -> NoisyPocket:
        return replace(self, seed=seed)

    def noise_free_value(self, params: Mapping[str, Any]) -> float:
        return worth(float(params["x"]))

    def __call__(self, params: Mapping[str, Any]) -> float:
        x = float(params["x"])
        rng = np.random.default_rng([self.seed, zlib.crc32(repr(x).encode())])
        return worth(x) + rng.normal(0.0, 0.5 if x < POCKET else 0.01)


POCKET_OBJECTIVE = NoisyPocket()  # as --objective tests.test_recommendation:POCKET_OBJECTIVE


class SeedLog(NoisyPocket):
    """NoisyPocket without a noise-free value, recording the training seed of every call."""

    calls: list[int] = []  # noqa: RUF012  (one log shared by the with_seed copies)
    noise_free_value = None  # type: ignore[assignment]

    def with_seed(self, seed: int) -> SeedLog:
        return SeedLog(seed=seed)

    def __call__(self, params: Mapping[str, Any]) -> float:
        SeedLog.calls.append(self.seed)
        return super().__call__(params)


class Huddle(Optimizer):
    """Draws again and again near x = 0.3, inside the noisy pocket: re-drawing near one point."""

    name = "test-huddle"

    def __init__(self, settings: OptimizerSettings) -> None:
        self._rng = np.random.default_rng(settings.seed)
        self._tokens = itertools.count()

    def ask(self) -> Suggestion:
        return Suggestion(params={"x": float(0.3 + self._rng.uniform(-0.005, 0.005))}, token=next(self._tokens))

    def tell(self, suggestion: Suggestion, score: float | None) -> None:
        """It learns nothing: it stays where it is."""


class Spread(Huddle):
    """Spreads its draws over [0.5, 0.9], where scores are honest."""

    name = "test-spread"

    def ask(self) -> Suggestion:
        return Suggestion(params={"x": float(self._rng.uniform(0.5, 0.9))}, token=next(self._tokens))


register("test-huddle", lambda name, settings: Huddle(settings))
register("test-spread", lambda name, settings: Spread(settings))


def summary(directory: Path) -> dict[str, dict[str, str]]:
    with open(directory / SUMMARY_FILE, newline="") as handle:
        return {row["optimizer"]: row for row in csv.DictReader(handle)}


def test_re_drawing_near_one_point_wins_the_observed_best_and_loses_on_the_recommendation(tmp_path: Path) -> None:
    result = compare(NoisyPocket(), SPACE, optimizers=["test-huddle", "test-spread"], seeds=range(6), budget=30,
                     out=tmp_path, name="pocket")
    rows = {row.optimizer: row for row in result.stats.optimizers}
    huddle, spread = rows["test-huddle"], rows["test-spread"]
    assert huddle.best_mean > spread.best_mean  # the luckiest draws are the huddle's ...
    assert huddle.worth_mean < spread.worth_mean - 0.2  # ... and what it recommends is worth less
    assert huddle.optimism > 0.3 and abs(spread.optimism) < 0.05
    assert spread.mean_rank == 1.0 and huddle.mean_rank == 2.0  # compare orders by the worth
    (pair,) = result.stats.pairs
    assert pair.second_better == 6 and "test-spread beats test-huddle" in pair.verdict
    assert result.scoring.method == "noise-free"
    assert json.loads((tmp_path / "pocket" / "compare.json").read_text())["scoring"]["method"] == "noise-free"
    # The worth is the objective's noise-free value at the configuration recommendations.csv names.
    with open(tmp_path / "pocket" / RECOMMENDATIONS_FILE, newline="") as handle:
        for row in csv.DictReader(handle):
            assert float(row["worth"]) == worth(json.loads(row["params"])["x"])
    # Ranked by the best observed score (the old verdict: --recommend best --rescore 0), the huddle would have won.
    observed = compare(NoisyPocket(), SPACE, optimizers=["test-huddle", "test-spread"], seeds=range(6), budget=30,
                       out=tmp_path, name="observed", recommend="best", rescore=0)
    assert {r.optimizer: r.mean_rank for r in observed.stats.optimizers}["test-huddle"] == 1.0


def test_rescore_trains_with_fresh_seeds_no_run_used(tmp_path: Path) -> None:
    SeedLog.calls.clear()
    result = compare(SeedLog(), SPACE, optimizers=["test-huddle", "test-spread"], seeds=[0, 1, 10_000], budget=20,
                     out=tmp_path, name="rescore")
    assert result.scoring.method == "rescore" and result.scoring.rescore_seeds == (10_001, 10_002, 10_003)
    run_calls, fresh_calls = SeedLog.calls[:6 * 20], SeedLog.calls[6 * 20:]
    assert set(run_calls) == {0, 1, 10_000}
    assert set(fresh_calls) == {10_001, 10_002, 10_003} and len(fresh_calls) == 6 * 3  # counted apart from the budget
    with open(tmp_path / "rescore" / RESCORE_FILE, newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 18
    assert all(len(c.values) == 20 for c in result.curves)
    rows = summary(tmp_path / "rescore")
    assert rows["test-spread"]["scored_by"] == "rescore"
    # Three fresh seeds are themselves noisy draws in the pocket (sd 0.29 for their mean), so one seed may
    # still go the huddle's way; on average the re-scored worth sees through the luck.
    assert float(rows["test-huddle"]["worth_mean"]) < float(rows["test-spread"]["worth_mean"])
    assert float(rows["test-huddle"]["worth_mean"]) < float(rows["test-huddle"]["best_mean"]) - 0.3


def test_a_comparison_interrupted_while_rescoring_resumes_to_the_same_verdict(tmp_path: Path) -> None:
    whole = compare(SeedLog(), SPACE, optimizers=["test-huddle", "test-spread"], seeds=[0, 1, 2], budget=10,
                    out=tmp_path, name="whole")

    class Killed(SeedLog):
        def with_seed(self, seed: int) -> SeedLog:
            return Killed(seed=seed)

        def __call__(self, params: Mapping[str, Any]) -> float:
            if self.seed == 10_001 and len([c for c in SeedLog.calls if c == 10_001]) >= 3:
                raise KeyboardInterrupt  # a Ctrl-C in the middle of the fresh-seed trainings
            return super().__call__(params)

    with pytest.raises(KeyboardInterrupt):
        SeedLog.calls.clear()
        compare(Killed(), SPACE, optimizers=["test-huddle", "test-spread"], seeds=[0, 1, 2], budget=10,
                out=tmp_path, name="cut")
    cut = tmp_path / "cut"
    assert json.loads((cut / "compare.json").read_text())["status"] == "interrupted"
    kept = (cut / RESCORE_FILE).read_text().count("\n") - 1
    assert 0 < kept < 18
    SeedLog.calls.clear()
    resumed = resume_comparison(cut, SeedLog(), console=None)
    assert len(SeedLog.calls) == 18 - kept  # only the trainings that were missing
    assert (cut / RECOMMENDATIONS_FILE).read_text() == (tmp_path / "whole" / RECOMMENDATIONS_FILE).read_text()
    assert [r.worth_mean for r in resumed.stats.optimizers] == [r.worth_mean for r in whole.stats.optimizers]
    assert [p.p_value for p in resumed.stats.pairs] == [p.p_value for p in whole.stats.pairs]


def test_resume_with_rescore_scores_a_finished_comparison_again(tmp_path: Path) -> None:
    compare(NoisyPocket(), SPACE, optimizers=["test-huddle", "test-spread"], seeds=[0, 1], budget=8,
            out=tmp_path, name="done", rescore=0)
    directory = tmp_path / "done"
    assert summary(directory)["test-huddle"]["scored_by"] == "observed"
    # The objective is named by its module path, as a user would give it.
    document = json.loads((directory / "compare.json").read_text())
    document["arguments"] = {"objective": "tests.test_recommendation:POCKET_OBJECTIVE"}
    (directory / "compare.json").write_text(json.dumps(document))
    out = io.StringIO()
    assert run_compare_command(["--resume", str(directory), "--rescore", "2"], Console(file=out, width=200)) == 0
    assert summary(directory)["test-huddle"]["scored_by"] == "rescore"
    scoring = json.loads((directory / "compare.json").read_text())["scoring"]
    assert scoring["rescore_seeds"] == [10_000, 10_001] and "trained again with 2 fresh seeds" in out.getvalue()


def test_rescore_needs_an_objective_with_seeds() -> None:
    def plain(params: Mapping[str, Any]) -> float:
        return float(params["x"])

    with pytest.raises(UsageError, match="--rescore needs an objective that trains with a seed"):
        choose_scoring(plain, rescore=2)
    assert choose_scoring(plain).method == "observed"
    assert choose_scoring(NoisyPocket()).method == "noise-free"
    assert choose_scoring(NoisyPocket(), rescore=2).rescore_seeds == (10_000, 10_001)
    assert fresh_seeds(3, [10_000, 10_002]) == (10_001, 10_003, 10_004)


def test_the_gp_policy_passes_over_a_lone_lucky_draw() -> None:
    xs = np.linspace(0.0, 1.0, 21)
    values = [1.0 - (x - PEAK) ** 2 + 0.01 * np.sin(40 * x) for x in xs]
    values[2] = 1.05  # x = 0.1: one lucky draw among neighbours scoring about 0.7
    candidates = [Candidate(i, {"x": float(x)}, float(v)) for i, (x, v) in enumerate(zip(xs, values, strict=True))]
    assert recommend(candidates, SPACE, "maximize", "best").number == 2
    chosen = recommend(candidates, SPACE, "maximize", "gp")
    assert chosen.policy == "gp" and abs(chosen.params["x"] - PEAK) <= 0.1 and chosen.predicted is not None
    # Minimized, the same picture upside down gives the same choice.
    flipped = [replace(c, value=-c.value) for c in candidates]
    assert recommend(flipped, SPACE, "minimize", "gp").number == chosen.number
    assert next(r.number for r in rank(candidates, SPACE, "maximize", "gp")) == chosen.number


def test_the_gp_policy_with_too_few_trials_is_the_best_observed() -> None:
    few = [Candidate(i, {"x": x}, x) for i, x in enumerate(np.linspace(0.1, 0.5, GP_MIN_TRIALS - 1))]
    chosen = recommend(few, SPACE, "maximize", "gp")
    assert chosen.policy == "best" and chosen.number == GP_MIN_TRIALS - 2
    assert recommend([], SPACE, "maximize", "gp") is None
