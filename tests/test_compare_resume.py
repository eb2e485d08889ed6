"""A comparison interrupted by a signal finishes with --resume, as if never interrupted."""

from __future__ import annotations

import csv
import json
import signal
import time
from pathlib import Path

from tests.test_resume import SLOW_OBJECTIVE, cli

REPO = Path(__file__).resolve().parents[1]


def curves(directory: Path) -> list[tuple[str, ...]]:
    with open(directory / "curves.csv", newline="") as handle:
        return [(r["optimizer"], r["seed"], r["evaluation"], r["value"], r["best_so_far"])
                for r in csv.DictReader(handle)]


def compare_args(name: str) -> list[str]:
    return ["compare", "--objective", "slow_objective:objective",
            "--space", str(REPO / "tests" / "spaces" / "decay_steps.yaml"), "--optimizers", "hho,random",
            "--seeds", "2", "--budget", "6", "--out", "out", "--name", name]


def test_sigint_then_resume_gives_the_uninterrupted_comparison(tmp_path: Path) -> None:
    (tmp_path / "slow_objective.py").write_text(SLOW_OBJECTIVE)
    reference = cli(tmp_path, *compare_args("whole"), calls="whole.log")
    assert reference.wait(timeout=300) == 0, reference.communicate()

    process = cli(tmp_path, *compare_args("cut"))
    directory = tmp_path / "out" / "cut"
    deadline = time.monotonic() + 120
    while not (directory / "runs" / "random-s0" / "trials.csv").exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # the second run (random, seed 0) has started
    time.sleep(0.6)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert f"hho-tune compare --resume {Path('out') / 'cut'}" in out
    assert json.loads((directory / "compare.json").read_text())["status"] == "interrupted"

    again = cli(tmp_path, "compare", "--resume", str(directory), "--budget", "6")  # an agreeing flag is fine
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert json.loads((directory / "compare.json").read_text())["status"] == "finished"
    assert curves(directory) == curves(tmp_path / "out" / "whole")
    calls = (tmp_path / "calls.log").read_text().splitlines()
    assert len(calls) - 2 * 2 * 6 <= 1, "only the trial in flight may be trained twice"

    refused = cli(tmp_path, "compare", "--resume", str(directory), "--budget", "7")
    _out, err = refused.communicate(timeout=120)
    assert refused.returncode == 2 and "--budget 7 contradicts" in err
