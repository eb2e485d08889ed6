"""The command line end to end, as a user runs it: in a subprocess, reading the files it writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hho_tune.results import read_trials

REPO = Path(__file__).resolve().parents[1]


def hho_tune(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "hho_tune.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def only_run_dir(root: Path) -> Path:
    (run_dir,) = [p for p in root.iterdir() if p.is_dir()]
    return run_dir


@pytest.mark.slow
def test_tune_the_lstm_at_a_tiny_fidelity(tmp_path: Path, tiny_mnist: Path) -> None:
    space = tmp_path / "small.yaml"
    space.write_text("parameters:\n  learning_rate: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}\n"
                     "  num_layers: {type: int, low: 1, high: 2}\nfixed:\n  lstm_units: 16\n")
    result = hho_tune("--budget", "3", "--epochs", "1", "--train-size", "200", "--data", str(tiny_mnist),
                      "--space", str(space), "--out", "out", "--seed", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "[3/3]" in result.stdout and "best:" in result.stdout
    run_dir = only_run_dir(tmp_path / "out")
    rows = read_trials(run_dir)
    assert len(rows) == 3 and all(r["state"] == "COMPLETE" for r in rows)
    assert {r["epochs"] for r in rows} == {"1"} and {r["train_size"] for r in rows} == {"200"}
    run = json.loads((run_dir / "run.json").read_text())
    assert run["fidelity"]["epochs"] == 1 and run["arguments"]["budget"] == 3
    assert "tensorflow" in run["versions"]
    assert run["machine"]["software"]["keras"] == run["versions"]["keras"]
    assert "oneDNN" not in result.stderr and "cuInit" not in result.stderr


def test_tune_any_function_with_objective(tmp_path: Path) -> None:
    result = hho_tune("--objective", "hho_tune.benchmarks:sphere", "--budget", "20", "--optimizer", "tpe",
                      "--out", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = json.loads((only_run_dir(tmp_path / "out") / "run.json").read_text())
    assert run["direction"] == "minimize" and run["evaluations"] == 20
    assert run["objective"] == "hho_tune.benchmarks:sphere"
    # What another machine must match to give the same scores (README, "Seeds").
    machine = run["machine"]
    assert {"cpu", "platform", "python", "software", "keras_backend", "onednn", "training_threads",
            "environment"} <= set(machine)
    assert {"model", "vendor", "architecture", "isa_flags", "logical_cores", "usable_cores"} <= set(machine["cpu"])
    assert machine["cpu"]["usable_cores"] >= 1 and isinstance(machine["cpu"]["isa_flags"], list)
    assert machine["software"]["tensorflow"] == run["versions"]["tensorflow"]
    assert machine["keras_backend"] == "tensorflow"
    assert {"intra_op", "inter_op", "where"} <= set(machine["training_threads"])
    assert "TF_ENABLE_ONEDNN_OPTS" in machine["environment"]


def test_same_seed_same_run(tmp_path: Path) -> None:
    for out in ("a", "b"):
        result = hho_tune("--objective", "hho_tune.benchmarks:rastrigin", "--budget", "25", "--seed", "4",
                          "--out", out, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    a, b = (read_trials(only_run_dir(tmp_path / o)) for o in ("a", "b"))
    columns = ["number", "value", "params_x0", "params_x1", "params_x2"]
    assert [[r[c] for c in columns] for r in a] == [[r[c] for c in columns] for r in b]


@pytest.mark.parametrize(("args", "expected"), [
    (["--budget", "0"], "--budget: must be at least 1"),
    (["--budget", "-3"], "--budget: must be at least 1"),
    (["--budget", "ten"], "expected a whole number"),
    (["--optimizer", "hawks"], "unknown optimizer 'hawks'"),
    (["--optimizer", "mealpy:GWO.Nope"], "unknown mealpy optimizer"),
    (["--space", "missing.yaml"], "missing.yaml: search-space file not found"),
    (["--space", "nospace"], "no such search-space file or packaged space"),
    (["--data", "missing.npz"], "missing.npz: data file not found"),
    (["--pop-size", "2"], "--pop-size must be at least 5"),
    (["--objective", "nomodule:f"], "cannot import module 'nomodule'"),
    (["--objective", "hho_tune.benchmarks:nothing"], "has no callable 'nothing'"),
    (["--objective", "justaname"], "must look like module:function"),
    (["--objective", "hho_tune.benchmarks:sphere", "--epochs", "2"], "--epochs applies to the LSTM"),
    (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    (["--out", "/proc/forbidden"], "cannot be written"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], expected: str) -> None:
    result = hho_tune(*args, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hho-tune: error:"), result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "results").exists()


def test_bad_space_and_data_files_exit_2_and_write_nothing(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("parameters: {learning_rate: {type: float, low: 1, high: 0.1}}")
    (tmp_path / "unknown.yaml").write_text("parameters: {dropout: {type: float, low: 0, high: 0.5}}")
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 truncated")
    (tmp_path / "empty.npz").write_bytes(b"")
    np.savez(tmp_path / "layout.npz", x_train=np.zeros((6000, 784), np.uint8), y_train=np.zeros(6000, np.uint8))
    for args, expected in [(["--space", "bad.yaml"], "'learning_rate': low (1) must be below high"),
                           (["--space", "unknown.yaml"], "unknown parameter 'dropout'"),
                           (["--data", "bad.npz"], "not a readable .npz"),
                           (["--data", "empty.npz"], "not a readable .npz"),
                           (["--data", "layout.npz"], "x_train has shape (6000, 784); expected (n, 28, 28)")]:
        result = hho_tune(*args, cwd=tmp_path)
        assert result.returncode == 2 and expected in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "results").exists()


# Spaces valid in themselves whose bounds leave the LSTM's domain: refused when loaded, before
# the data or TensorFlow are, by every command that searches.
OUTSIDE_THE_DOMAIN = [
    ("parameters: {batch_size: {type: int, low: 0, high: 64}}", "batch_size"),
    ("parameters: {lstm_units: {type: int, low: -5, high: 64}}", "lstm_units"),
    ("parameters: {learning_rate: {type: float, low: 0, high: 0.1}}", "learning_rate"),
    ("parameters: {decay_rate: {type: float, low: 0.5, high: 1.5}}", "decay_rate"),
    ("parameters: {decay_epochs: {type: float, low: 0, high: 2}}", "decay_epochs"),
    ("parameters: {decay_steps: {type: int, low: 0, high: 100}}", "decay_steps"),
    ("parameters: {num_layers: {type: float, low: 1, high: 3}}", "num_layers"),
    ("parameters: {learning_rate: {type: float, low: 0.001, high: 0.01}}\nfixed: {lstm_units: -5}", "lstm_units"),
    ("parameters: {learning_rate: {type: float, low: 0.001, high: 0.01}}\nfixed: {batch_size: 0.5}", "batch_size"),
]


COMPARE = ["compare", "--optimizers", "hho,random", "--seeds", "1"]


@pytest.mark.parametrize(("command", "text", "parameter"),
                         [([], text, parameter) for text, parameter in OUTSIDE_THE_DOMAIN]
                         + [(COMPARE, text, parameter) for text, parameter in OUTSIDE_THE_DOMAIN[:2]],
                         ids=[f"tune-{p}" for _, p in OUTSIDE_THE_DOMAIN] + [f"compare-{p}" for _, p in OUTSIDE_THE_DOMAIN[:2]])
def test_a_space_outside_the_lstm_domain_exits_2_naming_file_and_parameter(
    tmp_path: Path, command: list[str], text: str, parameter: str,
) -> None:
    (tmp_path / "outside.yaml").write_text(text)
    result = hho_tune(*command, "--space", "outside.yaml", "--budget", "3", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith(f"hho-tune: error: outside.yaml: parameter {parameter!r}: "), lines[0]
    assert "outside what the LSTM fitness accepts" in lines[0] or "use type: int" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outside.yaml"], "nothing may be written"


def test_help_is_fast_and_mentions_the_main_flags(tmp_path: Path) -> None:
    result = hho_tune("--help", cwd=tmp_path)
    assert result.returncode == 0
    for flag in ("--budget", "--optimizer", "--seed", "--space", "--out", "--epochs", "--train-size", "--data",
                 "--pop-size", "--objective"):
        assert flag in result.stdout


def test_an_output_path_below_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    result = hho_tune("--objective", "hho_tune.benchmarks:sphere", "--out", "afile/results", cwd=tmp_path)
    assert result.returncode == 2 and "cannot be written" in result.stderr and "not a directory" in result.stderr


def test_packaged_spaces_are_found_from_a_source_tree_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """`python -m hho_tune.cli` in the repository root imports the source package, which has no
    hho_tune.search_spaces subpackage: the default space is then read from search_spaces/."""
    from importlib import resources

    from hho_tune import cli

    def missing(name: str) -> None:
        raise ModuleNotFoundError(name)

    monkeypatch.setattr(resources, "files", missing)
    assert cli.resolve_space_path("lstm_mnist") == REPO / "search_spaces" / "lstm_mnist.yaml"
