"""Keras on TensorFlow or JAX (``--backend``): the choice, its refusals, and the tiny LSTM paths on JAX.

Keras runs one backend per process and this one runs on TensorFlow (conftest.py), so every
JAX training here happens in a subprocess: a tiny ``hho-tune --backend jax`` search, one script
that checks the objective on JAX (same seed same score, here and across processes; the model
pool; divergence; XLA's thread pool; a final training), and two plain Keras clients, one per
backend, that know nothing of hho-tune and score each other's ``model.keras``.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hho_tune.backend import check_worker_backend, recorded_backend, requested_backend, use_backend
from hho_tune.cli import main
from hho_tune.errors import UsageError
from hho_tune.results import read_trials

REPO = Path(__file__).resolve().parents[1]
SPACE = ("parameters:\n  learning_rate: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}\n"
         "fixed:\n  num_layers: 1\n  lstm_units: 16\n")
SEED = 3


def one_line_error(code: int, err: str) -> str:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


# --- the choice and its refusals (no training) -------------------------------------------------


@pytest.mark.parametrize("command", [[], ["compare"], ["train", "--preset", "seed-baseline"]])
def test_an_unknown_backend_is_one_line_and_exit_2(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code = main([*command, "--backend", "torch"])
    line = one_line_error(code, capsys.readouterr().err)
    assert "--backend" in line and "torch" in line and "jax" in line


def test_jax_missing_is_one_line_naming_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "jax", None)  # import jax fails, as where it is not installed
    code = main(["--backend", "jax", "--objective", "hho_tune.benchmarks:sphere", "--budget", "2",
                 "--out", str(tmp_path / "out")])
    line = one_line_error(code, capsys.readouterr().err)
    assert "pip install 'hho-tune[jax]'" in line
    assert not (tmp_path / "out").exists()


def test_keras_already_on_another_backend_is_refused_not_switched() -> None:
    import keras

    assert keras.config.backend() == "tensorflow"
    with pytest.raises(UsageError, match="already runs on tensorflow"):
        use_backend("jax")
    assert use_backend("tensorflow") == "tensorflow"


def test_where_the_backend_comes_from(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HHO_TUNE_BACKEND", raising=False)
    monkeypatch.setenv("KERAS_BACKEND", "torch")  # not one hho-tune trains on: passed over
    assert requested_backend() == "tensorflow"
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert requested_backend() == "jax"
    monkeypatch.setenv("HHO_TUNE_BACKEND", "tensorflow")
    assert requested_backend() == "tensorflow"
    assert requested_backend("jax") == "jax"  # the flag wins
    monkeypatch.setenv("HHO_TUNE_BACKEND", "torch")
    with pytest.raises(UsageError, match="HHO_TUNE_BACKEND 'torch'"):
        requested_backend()


def test_a_run_recorded_before_backends_resumes_on_tensorflow() -> None:
    assert recorded_backend({"arguments": {"budget": 3}, "machine": {"keras_backend": "tensorflow"}}) == "tensorflow"
    assert recorded_backend({"arguments": {}}) == "tensorflow"
    assert recorded_backend({"arguments": {"backend": "jax"}}) == "jax"
    assert recorded_backend({"arguments": {}, "fidelity": {"backend": "jax"}}) == "jax"


def test_a_worker_pinned_to_another_backend_refuses_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HHO_TUNE_BACKEND", "jax")
    with pytest.raises(UsageError, match="pinned to jax"):
        check_worker_backend("tensorflow")


def test_the_run_s_backend_travels_to_dask_workers(monkeypatch: pytest.MonkeyPatch, tiny_mnist: Path) -> None:
    from hho_tune.dask_worker import RunContext
    from hho_tune.executors import _worker_env
    from hho_tune.objective import LstmObjective

    env = _worker_env(2, None, "jax")
    assert env["KERAS_BACKEND"] == env["HHO_TUNE_BACKEND"] == "jax" and env["PJRT_NPROC"] == env["HHO_TUNE_THREADS"]
    assert "PJRT_NPROC" not in _worker_env(2, None, "tensorflow")

    objective = LstmObjective(epochs=1, train_size=100, data_path=tiny_mnist)
    assert objective.backend == "tensorflow" and objective.fidelity()["backend"] == "tensorflow"
    assert pickle.loads(pickle.dumps(objective)).backend == "tensorflow"  # the recipe carries it

    # A worker (this process stands in for one) unpacks a JAX run: Keras runs on TensorFlow here, so
    # every trial it would get fails with the reason instead of training on the wrong backend.
    context = pickle.loads(pickle.dumps(RunContext("run", objective, None, backend="jax")))  # type: ignore[arg-type]
    monkeypatch.delenv("HHO_TUNE_BACKEND", raising=False)
    context.setup(type("Worker", (), {"address": "tcp://worker"})())
    assert "already runs on tensorflow" in context.error


# --- the tiny LSTM paths on JAX, in subprocesses -----------------------------------------------


def run_python(args: list[str], *, cwd: Path, backend: str | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("HHO_TUNE_BACKEND", None)
    if backend is not None:
        env["KERAS_BACKEND"] = backend
    result = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def jax_run(tmp_path_factory: pytest.TempPathFactory, tiny_mnist: Path) -> Path:
    """``hho-tune --backend jax``: two tiny trainings with one XLA thread; the run directory."""
    work = tmp_path_factory.mktemp("jax-run")
    (work / "space.yaml").write_text(SPACE)
    run_python(["-m", "hho_tune.cli", "--backend", "jax", "--optimizer", "random", "--budget", "2", "--seed", str(SEED),
                "--epochs", "1", "--train-size", "200", "--data", str(tiny_mnist), "--space", "space.yaml",
                "--threads", "1", "--out", "out"], cwd=work)
    (run_dir,) = [path for path in (work / "out").iterdir() if path.is_dir()]
    return run_dir


# Run on JAX, in a fresh process: what the objective promises on TensorFlow (tests/test_objective.py).
JAX_CHECKS = textwrap.dedent('''
    import json, os, sys
    from pathlib import Path
    import numpy as np
    from hho_tune.backend import use_backend
    use_backend("jax")
    from hho_tune.cli import main
    from hho_tune.data import Split, TrainValidation
    from hho_tune.errors import TrainingDiverged
    from hho_tune.objective import LstmConfig, LstmObjective, train_and_score

    data_path, trials_file, seed, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    report = {}
    objective = LstmObjective(epochs=1, train_size=200, seed=seed, data_path=data_path, threads=1)
    trials = json.loads(Path(trials_file).read_text())
    base = {"num_layers": 1, "lstm_units": 16}
    report["scores"] = [objective({**base, "learning_rate": lr}) for lr, _ in trials]
    report["again"] = objective({**base, "learning_rate": trials[0][0]})
    threads = [open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")]
    report["xla_threads"] = sum(1 for name in threads if "XLAEigen" in name)

    pool, same = objective.models, []  # holds the model that trained the scores above
    small = {"learning_rate": 3e-3, "decay_steps": 100, "num_layers": 1, "lstm_units": 16}
    for params, s in [({**small, "learning_rate": 2e-2, "decay_steps": 3, "decay_rate": 0.5}, 1)]:  # reused: another schedule
        config = LstmConfig.from_params(params)
        weights = []
        for p in (None, pool):
            model, _ = train_and_score(config, objective.data, epochs=1, seed=s, pool=p)
            weights.append([np.array(w) for w in model.get_weights()])
        same.append(all(np.array_equal(a, b) for a, b in zip(*weights, strict=True)))
    report["pool_same_as_fresh"] = same

    x = objective.data.train.x.copy()
    x[7, 3, 3] = np.nan
    poisoned = TrainValidation(train=Split(x, objective.data.train.y), validation=objective.data.validation, source="nan")
    try:
        train_and_score(LstmConfig.from_params(small), poisoned, epochs=2, seed=0, pool=pool)
        report["diverged"] = False
    except TrainingDiverged:
        report["diverged"] = True
    report["tensorflow_imported_by_the_search"] = "tensorflow" in sys.modules

    code = main(["train", str(out / "config.json"), "--epochs", "2", "--train-size", "200", "--data", data_path,
                 "--threads", "1", "--out", str(out / "final-jax")])
    report["train_exit"] = code
    print("REPORT " + json.dumps(report))
''')

# A user of the saved models: plain Keras on the backend KERAS_BACKEND names, no hho-tune.
PLAIN_CLIENT = textwrap.dedent('''
    import json, sys
    import keras, numpy as np
    with np.load(sys.argv[1]) as mnist:
        x, y = mnist["x_test"].astype("float32") / 255.0, mnist["y_test"]
    out = {"backend": keras.config.backend()}
    for path in sys.argv[2:]:
        logits = keras.models.load_model(path).predict(x, verbose=0)
        np.save(path + "." + keras.config.backend() + ".npy", logits)
        out[path] = float(np.mean(np.argmax(logits, axis=1) == y))
    print("SCORES " + json.dumps(out))
''')


def tagged(stdout: str, tag: str) -> dict[str, Any]:
    (line,) = [line for line in stdout.splitlines() if line.startswith(tag + " ")]
    return json.loads(line[len(tag) + 1:])


@pytest.mark.slow
def test_the_tiny_lstm_paths_on_jax(jax_run: Path, tiny_mnist: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    run = json.loads((jax_run / "run.json").read_text())
    assert run["arguments"]["backend"] == "jax" and run["fidelity"]["backend"] == "jax"
    assert run["machine"]["keras_backend"] == "jax" and run["machine"]["jax_devices"]
    assert run["machine"]["training_threads"]["intra_op"] == 1
    rows = read_trials(jax_run)
    assert [row["state"] for row in rows] == ["COMPLETE", "COMPLETE"]
    trials = [(float(row["params_learning_rate"]), float(row["value"])) for row in rows]

    config = {"params": {"learning_rate": 3e-3, "decay_steps": 100, "num_layers": 1, "lstm_units": 16}, "seed": 1}
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "trials.json").write_text(json.dumps(trials))
    checks = tagged(run_python(["-c", JAX_CHECKS, str(tiny_mnist), str(tmp_path / "trials.json"), str(SEED),
                                str(tmp_path)], cwd=tmp_path).stdout, "REPORT")
    assert checks["scores"] == [value for _, value in trials], "same seed, another process: another score"
    assert checks["again"] == checks["scores"][0]
    assert checks["xla_threads"] == 1, "--threads 1 did not size XLA's pool"
    assert checks["pool_same_as_fresh"] == [True]
    assert checks["diverged"] and checks["train_exit"] == 0
    assert not checks["tensorflow_imported_by_the_search"]
    jax_final = tmp_path / "final-jax"
    metrics = json.loads((jax_final / "metrics.json").read_text())
    assert metrics["backend"] == "jax" and metrics["machine"]["keras_backend"] == "jax"
    assert metrics["saved_epoch"] in (1, 2)

    # The same configuration trained here, on TensorFlow, for the other direction.
    code = main(["train", str(tmp_path / "config.json"), "--epochs", "1", "--train-size", "200",
                 "--data", str(tiny_mnist), "--out", str(tmp_path / "final-tf")])
    capsys.readouterr()
    assert code == 0
    tf_metrics = json.loads((tmp_path / "final-tf" / "metrics.json").read_text())
    assert tf_metrics["backend"] == "tensorflow"

    models = [str(jax_final / "model.keras"), str(tmp_path / "final-tf" / "model.keras")]
    scores = {backend: tagged(run_python(["-c", PLAIN_CLIENT, str(tiny_mnist), *models], cwd=tmp_path,
                                         backend=backend).stdout, "SCORES") for backend in ("tensorflow", "jax")}
    assert {name: s["backend"] for name, s in scores.items()} == {"tensorflow": "tensorflow", "jax": "jax"}
    for path, trained in zip(models, (metrics, tf_metrics), strict=True):
        assert scores["tensorflow"][path] == scores["jax"][path] == trained["test_accuracy"]
        np.testing.assert_allclose(np.load(path + ".tensorflow.npy"), np.load(path + ".jax.npy"), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_a_jax_run_resumes_on_jax(jax_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--resume", str(jax_run), "--backend", "tensorflow"])
    assert "contradicts the run's 'jax'" in one_line_error(code, capsys.readouterr().err)

    # Unfinished, it would continue on JAX; this process runs Keras on TensorFlow, so it says so and trains nothing.
    copy = tmp_path / jax_run.name
    shutil.copytree(jax_run, copy)
    document = json.loads((copy / "run.json").read_text())
    document.update(status="interrupted", budget=3)
    (copy / "run.json").write_text(json.dumps(document))
    code = main(["--resume", str(copy)])
    assert "cannot switch to jax" in one_line_error(code, capsys.readouterr().err)
    assert len(read_trials(copy)) == 2

