"""Runs that survive: the Optuna ledger, interruption, SIGKILL, resume, and the resume bad-input matrix."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hho_tune import SearchSpace, tune
from hho_tune.api import RunInterrupted, read_run, resume
from hho_tune.ledger import INTERRUPTED_ATTR, recorded_trials
from hho_tune.results import read_trials
from tests.conftest import surrogate

REPO = Path(__file__).resolve().parents[1]
SEEDED_OPTIMIZERS = ["hho", "hho-mealpy", "tpe", "random", "mealpy:GWO.OriginalGWO"]


def sequence(run_dir: Path) -> list[tuple[str, ...]]:
    """What a run trained, in order: the parameters and the value of each row of trials.csv."""
    return [(r["params_learning_rate"], r["params_decay_steps"], r["params_num_layers"], r["value"], r["state"])
            for r in read_trials(run_dir)]


def journal_trials(path: str, study_name: str) -> list:
    """Every trial of a run's study, interrupted attempts included."""
    import optuna

    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(path))
    return optuna.load_study(study_name=study_name, storage=storage).trials


class InterruptAt:
    """The surrogate objective, raising KeyboardInterrupt (as Ctrl-C would) on call number ``at``."""

    def __init__(self, at: int | None) -> None:
        self.at, self.calls = at, []

    def __call__(self, params: dict) -> float:
        self.calls.append(tuple(sorted(params.items())))
        if len(self.calls) == self.at:
            raise KeyboardInterrupt
        return surrogate(params)


@pytest.mark.parametrize("name", SEEDED_OPTIMIZERS)
def test_a_resumed_run_continues_as_if_never_interrupted(name: str, mixed_space: SearchSpace, tmp_path: Path) -> None:
    reference = tune(surrogate, mixed_space, optimizer=name, budget=25, seed=5, out=tmp_path / "ref")
    first = InterruptAt(at=11)
    with pytest.raises(RunInterrupted) as stop:
        tune(first, mixed_space, optimizer=name, budget=25, seed=5, out=tmp_path / "cut")
    run_dir = stop.value.run_dir
    assert stop.value.finished == 10 and len(read_trials(run_dir)) == 10
    assert read_run(run_dir)["status"] == "interrupted"
    # Quick trials reach the study in batches; an interruption writes them all, and the attempt cut short.
    run = read_run(run_dir)
    assert [t.user_attrs["number"] for t in recorded_trials(run["storage"], run["run_id"])] == list(range(10))
    (cut,) = [t for t in journal_trials(run["storage"], run["run_id"]) if t.user_attrs.get(INTERRUPTED_ATTR)]
    assert cut.state.name == "FAIL" and cut.user_attrs["number"] == 10

    second = InterruptAt(at=None)
    result = resume(run_dir, second)
    assert len(read_trials(run_dir)) == 25
    assert sequence(run_dir) == sequence(reference.run_dir)
    assert result.outcome.replayed == 10
    # Only the trial in flight was trained twice.
    assert second.calls[0] == first.calls[-1]
    assert len(set(first.calls[:-1]) & set(second.calls)) == 0
    assert len(first.calls) - 1 + len(second.calls) == 25
    assert read_run(run_dir)["status"] == "finished"


def test_the_study_holds_exactly_the_trials_of_trials_csv(mixed_space: SearchSpace, tmp_path: Path) -> None:
    def sometimes_failing(params: dict) -> float:
        if params["learning_rate"] > 0.01:
            raise RuntimeError("pretend out of memory")
        return surrogate(params)

    result = tune(sometimes_failing, mixed_space, optimizer="hho", budget=15, seed=1, out=tmp_path)
    run = read_run(result.run_dir)
    import optuna

    study = optuna.load_study(study_name=None, storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(run["storage"])))
    rows = read_trials(result.run_dir)
    assert len(study.trials) == len(rows) == 15
    assert any(r["state"] == "FAIL" for r in rows)
    for trial, row in zip(study.trials, rows, strict=True):
        assert trial.user_attrs["number"] == int(row["number"])
        assert trial.state.name == row["state"]
        assert trial.params == {
            "learning_rate": float(row["params_learning_rate"]),
            "decay_steps": int(row["params_decay_steps"]),
            "num_layers": int(row["params_num_layers"]),
        }
        assert trial.value == (float(row["value"]) if row["value"] else None)
        assert trial.user_attrs["optimizer"] == "hho" and trial.user_attrs["seed"] == 1
    assert study.user_attrs["optimizer"] == "hho"


def test_separate_runs_are_separate_studies_even_in_one_database(mixed_space: SearchSpace, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    first = tune(surrogate, mixed_space, optimizer="tpe", budget=6, seed=0, out=tmp_path, storage=url)
    second = tune(surrogate, mixed_space, optimizer="tpe", budget=6, seed=0, out=tmp_path, storage=url)
    import optuna

    names = sorted(s.study_name for s in optuna.get_all_study_summaries(storage=url))
    assert names == sorted([first.run_dir.name, second.run_dir.name])
    assert [len(recorded_trials(url, name)) for name in names] == [6, 6]
    # The same seed gave the same proposals: the second study did not warm-start from the first.
    assert sequence(first.run_dir) == sequence(second.run_dir)


# -- the real CLI, interrupted by signals ----------------------------------------------------------

SLOW_OBJECTIVE = textwrap.dedent('''
    """A cheap objective that takes a little time and logs every training it starts."""
    import math, os, time

    def objective(params):
        with open(os.environ["HHO_TEST_CALLS"], "a") as log:
            log.write(repr(sorted(params.items())) + "\\n")
        time.sleep(0.25)
        return -((math.log10(params["learning_rate"]) + 2.5) ** 2) - (math.log10(params["decay_steps"]) - 3) ** 2 \\
            + 0.1 * params["num_layers"]
''')


def cli(tmp_path: Path, *args: str, calls: str = "calls.log") -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{tmp_path}", "HHO_TEST_CALLS": str(tmp_path / calls)}
    # SIGINT at its default in the child even when pytest runs as a background job (which
    # ignores SIGINT, and Python then installs no KeyboardInterrupt handler).
    return subprocess.Popen([sys.executable, "-m", "hho_tune.cli", *args], cwd=tmp_path, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_args(out: str, optimizer: str) -> list[str]:
    return ["--objective", "slow_objective:objective", "--space", str(REPO / "tests" / "spaces" / "decay_steps.yaml"),
            "--optimizer", optimizer, "--budget", "14", "--seed", "2", "--out", out]


def wait_for_rows(root: Path, rows: int, process: subprocess.Popen) -> Path:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        run_dirs = [p for p in root.glob("*") if (p / "trials.csv").exists()]
        if run_dirs and len(read_trials(run_dirs[0])) >= rows:
            return run_dirs[0]
        time.sleep(0.05)
    raise AssertionError("the run made no progress")


@pytest.mark.parametrize(("sig", "optimizer"), [(signal.SIGINT, "hho"), (signal.SIGKILL, "tpe"), (signal.SIGTERM, "random")])
def test_signals_then_resume_match_an_uninterrupted_run(tmp_path: Path, sig: signal.Signals, optimizer: str) -> None:
    (tmp_path / "slow_objective.py").write_text(SLOW_OBJECTIVE)
    reference = cli(tmp_path, *run_args("ref", optimizer), calls="ref.log")
    assert reference.wait(timeout=300) == 0, reference.communicate()

    process = cli(tmp_path, *run_args("cut", optimizer))
    run_dir = wait_for_rows(tmp_path / "cut", 5, process)
    time.sleep(0.1)  # into the next training
    process.send_signal(sig)
    out, err = process.communicate(timeout=60)
    if sig == signal.SIGKILL:
        assert process.returncode == -signal.SIGKILL
    else:
        assert process.returncode == 130, err
        assert f"Resume with: hho-tune --resume {run_dir.relative_to(tmp_path)}" in err
        assert read_run(run_dir)["status"] == "interrupted"
    finished = len(read_trials(run_dir))
    started = len((tmp_path / "calls.log").read_text().splitlines())
    assert started - finished in (0, 1)  # the signal may land between two trainings

    resumed = cli(tmp_path, "--resume", str(run_dir))
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert f"replayed {finished} recorded trials" in out
    if sig == signal.SIGKILL and started > finished:
        assert "was left running by a process that died" in out
    ref_dir = next((tmp_path / "ref").glob("*-s2"))
    assert len(read_trials(run_dir)) == 14
    assert sequence(run_dir) == sequence(ref_dir)
    calls = (tmp_path / "calls.log").read_text().splitlines()
    assert len(calls) - len(set(calls)) <= 1, "only the trial in flight may be trained twice"
    assert len(set(calls)) == 14
    run = read_run(run_dir)
    assert run["status"] == "finished" and run["evaluations"] == 14
    study_trials = recorded_trials(run["storage"], run["run_id"])
    assert [t.user_attrs["number"] for t in study_trials] == list(range(14))
    import optuna

    everything = optuna.load_study(study_name=run["run_id"], storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(run["storage"]))).trials
    interrupted = [t for t in everything if t.user_attrs.get(INTERRUPTED_ATTR)]
    # The attempt in flight is in the study as interrupted. The signal may also land after the study opened a
    # trial and before the objective logged its call: then no call repeats, and one attempt may still be there.
    repeated = len(calls) > len(set(calls))
    assert len(interrupted) == 1 if repeated else len(interrupted) <= 1
    assert all(t.state.name == "FAIL" for t in interrupted)


def test_two_runs_at_once_keep_separate_directories_and_a_correct_leaderboard(tmp_path: Path) -> None:
    (tmp_path / "slow_objective.py").write_text(SLOW_OBJECTIVE)
    runs = [cli(tmp_path, *run_args("shared", optimizer), calls=f"{optimizer}.log") for optimizer in ("hho", "tpe")]
    for process in runs:
        assert process.wait(timeout=300) == 0, process.communicate()
    run_dirs = sorted(p for p in (tmp_path / "shared").iterdir() if p.is_dir())
    assert len(run_dirs) == 2
    board = read_trials_like(tmp_path / "shared" / "leaderboard.csv")
    assert sorted(r["run_dir"] for r in board) == sorted(str(Path("shared") / p.name) for p in run_dirs)
    assert float(board[0]["value"]) >= float(board[1]["value"])


def read_trials_like(path: Path) -> list[dict[str, str]]:
    import csv

    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# -- SIGKILL of a run of quick trials: files and study written in batches -------------------------

QUICK_OBJECTIVE = textwrap.dedent('''
    """5 ms a trial: the quick path (journal and leaderboard written in batches); logs every call."""
    import math, os, time

    def objective(params):
        with open(os.environ["HHO_TEST_CALLS"], "a") as log:
            log.write(repr(sorted(params.items())) + "\\n")
        time.sleep(0.005)
        return (math.log10(params["learning_rate"]) + 2.5) ** 2 + (math.log10(params["decay_steps"]) - 3) ** 2 \\
            - 0.1 * params["num_layers"]
''')

QUICK_RUN = textwrap.dedent('''
    import sys
    from hho_tune import SearchSpace, tune
    from quick_objective import objective

    space = SearchSpace.load(sys.argv[1])
    tune(objective, space, optimizer="random", budget=int(sys.argv[2]), seed=3, direction="minimize", out=sys.argv[3])
''')


def test_sigkill_of_quick_trials_loses_only_the_trial_in_flight(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "quick_objective.py").write_text(QUICK_OBJECTIVE)
    space_file = REPO / "tests" / "spaces" / "decay_steps.yaml"
    budget = 300
    monkeypatch.setenv("HHO_TEST_CALLS", str(tmp_path / "calls.log"))
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{tmp_path}"}
    process = subprocess.Popen([sys.executable, "-c", QUICK_RUN, str(space_file), str(budget), str(tmp_path / "cut")],
                               cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_dir = wait_for_rows(tmp_path / "cut", 100, process)
    process.kill()
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL

    # Every trial that finished is in trials.csv, in order; only the one in flight can be missing.
    rows = read_trials(run_dir)
    calls = (tmp_path / "calls.log").read_text().splitlines()
    assert 100 <= len(rows) < budget
    assert len(calls) - len(rows) in (0, 1)
    assert [int(r["number"]) for r in rows] == list(range(len(rows)))
    assert [repr(sorted({"learning_rate": float(r["params_learning_rate"]), "decay_steps": int(r["params_decay_steps"]),
                         "num_layers": int(r["params_num_layers"])}.items())) for r in rows] == calls[:len(rows)]
    # The study may lag trials.csv (it is written in batches) but is readable and holds nothing else.
    run = read_run(run_dir)
    assert {t.user_attrs["number"] for t in recorded_trials(run["storage"], run["run_id"])} <= set(range(len(rows)))
    with open(run["storage"], "ab") as journal:  # and a kill may cut a batch short, mid-line
        journal.write(b'{"op_code":4,"worker_id":"cut-')

    monkeypatch.syspath_prepend(str(tmp_path))
    from quick_objective import objective  # the same function, in this process

    result = resume(run_dir, objective)
    assert result.outcome.replayed == len(rows)
    reference = tune(objective, SearchSpace.load(space_file), optimizer="random", budget=budget, seed=3,
                     direction="minimize", out=tmp_path / "ref")
    assert sequence(run_dir) == sequence(reference.run_dir)
    assert read_run(run_dir)["status"] == "finished"
    study_trials = recorded_trials(run["storage"], run["run_id"])
    assert [t.user_attrs["number"] for t in study_trials] == list(range(budget))
    assert [t.value for t in study_trials] == [float(r["value"]) for r in read_trials(run_dir)]
    board = read_trials_like(run_dir / "leaderboard.csv")
    assert len(board) == budget and [float(r["value"]) for r in board] == sorted(float(r["value"]) for r in board)


# -- bad input for --resume ------------------------------------------------------------------------

def finished_run(tmp_path: Path) -> Path:
    (tmp_path / "slow_objective.py").write_text(SLOW_OBJECTIVE.replace("time.sleep(0.25)", "pass"))
    process = cli(tmp_path, *run_args("done", "hho"))
    assert process.wait(timeout=300) == 0, process.communicate()
    return next((tmp_path / "done").glob("*-s2"))


def test_resume_bad_inputs_exit_2_and_change_nothing(tmp_path: Path) -> None:
    run_dir = finished_run(tmp_path)
    run_json = (run_dir / "run.json").read_text()
    run = read_run(run_dir)
    # Make it resumable again, to check that contradicting flags are refused before anything runs.
    (run_dir / "run.json").write_text(run_json.replace('"status": "finished"', '"status": "interrupted"'))
    (tmp_path / "empty").mkdir()
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "run.json").write_text('{"run_id": "x", "stat')
    cases = [
        (["--resume", "nowhere"], "no such run directory"),
        (["--resume", "empty"], "not a hho-tune run directory"),
        (["--resume", "corrupt"], "unreadable run file"),
        (["--resume", str(run_dir), "--optimizer", "tpe"], "--optimizer tpe contradicts the run's 'hho'"),
        (["--resume", str(run_dir), "--budget", "50"], "--budget 50 contradicts the run's 14"),
        (["--resume", str(run_dir), "--seed", "3"], "--seed 3 contradicts"),
    ]
    before = {p: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    for args, expected in cases:
        process = cli(tmp_path, *args)
        _out, err = process.communicate(timeout=120)
        assert process.returncode == 2, (args, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], (args, err)
    assert {p: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before
    assert run["evaluations"] == 14

    # Flags equal to the run's own settings are fine.
    process = cli(tmp_path, "--resume", str(run_dir), "--optimizer", "hho", "--budget", "14")
    _out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err


def test_resume_of_a_finished_run_does_nothing(tmp_path: Path) -> None:
    run_dir = finished_run(tmp_path)
    before = (run_dir / "trials.csv").read_bytes()
    process = cli(tmp_path, "--resume", str(run_dir))
    out, _err = process.communicate(timeout=120)
    assert process.returncode == 0 and "already finished" in out
    assert (run_dir / "trials.csv").read_bytes() == before


def test_a_run_in_progress_cannot_be_resumed_twice(tmp_path: Path) -> None:
    # Trials of 2 s, so the run is still going when the second process, which takes seconds to
    # start on a loaded machine, reaches the lock (it is interrupted right after).
    (tmp_path / "slow_objective.py").write_text(SLOW_OBJECTIVE.replace("time.sleep(0.25)", "time.sleep(2)"))
    process = cli(tmp_path, *run_args("busy", "hho"))
    run_dir = wait_for_rows(tmp_path / "busy", 1, process)
    second = cli(tmp_path, "--resume", str(run_dir))
    _out, err = second.communicate(timeout=120)
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=60)
    assert second.returncode == 2 and "another hho-tune process is working in this run" in err


def test_consecutive_failures_stop_with_exit_1_and_keep_everything(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("def objective(params):\n    raise RuntimeError('no such device')\n")
    process = cli(tmp_path, "--objective", "broken:objective", "--space", str(REPO / "tests" / "spaces" / "decay_steps.yaml"),
                  "--budget", "10", "--max-failures", "3", "--out", "out")
    _out, err = process.communicate(timeout=120)
    assert process.returncode == 1
    assert "3 failed trials in a row" in err and "--resume" in err
    run_dir = next((tmp_path / "out").iterdir())
    assert [r["state"] for r in read_trials(run_dir)] == ["FAIL"] * 3
    assert "RuntimeError: no such device" in read_trials(run_dir)[0]["error"]
    assert read_run(run_dir)["status"] == "stopped"
