"""``hho-tune train``: an exported configuration (or a preset) trained, saved and scored once on test.

The slow tests search a tiny LSTM (16 units, 300 images, one epoch), export its winner and
train it through the command line; the saved model is then loaded by a separate Python
that imports only Keras, as a user of the model would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from hho_tune.cli import main
from hho_tune.errors import UsageError
from hho_tune.final import TrainingPlan, plan_from_config, rescale_decay
from hho_tune.objective import LstmConfig
from hho_tune.presets import PRESETS, SEED_BASELINE, SEED_IMPROVED, get_preset

REPO = Path(__file__).resolve().parents[1]
TINY = ["--epochs", "1", "--train-size", "300"]


def train(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["train", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- presets and plans (no training) ---------------------------------------------------------


def test_presets_are_the_recipes_of_the_exercise() -> None:
    assert set(PRESETS) == {"seed-baseline", "seed-improved"}
    assert SEED_BASELINE.config == LstmConfig(learning_rate=1e-4, decay_rate=1.0, num_layers=1)
    assert SEED_BASELINE.epochs == 6
    assert SEED_IMPROVED.config == LstmConfig(learning_rate=1e-3, decay_steps=100, decay_rate=0.96, num_layers=2)
    assert SEED_IMPROVED.epochs == 20
    for preset in PRESETS.values():
        assert LstmConfig.from_params(preset.params()) == preset.config  # what metrics.json records parses back
    with pytest.raises(UsageError, match="unknown preset 'best'"):
        get_preset("best")


def test_rescaling_keeps_the_learning_rate_per_epoch_of_the_search() -> None:
    plan = TrainingPlan(name="x", config=LstmConfig(decay_steps=62), epochs=20, seed=0, data=None, train_size=None,
                        origin={}, search_fidelity={"epochs": 2, "train_size": 10_000})
    rescaled, record = rescale_decay(plan, 55_000)
    assert (record.search_steps_per_epoch, record.final_steps_per_epoch) == (200, 1_100)
    assert rescaled.config.decay_steps == record.trained_decay_steps == 341  # 62 x 5.5
    assert rescaled.config.learning_rate == plan.config.learning_rate
    with pytest.raises(UsageError, match="needs the search's train_size"):
        rescale_decay(replace(plan, search_fidelity={}), 55_000)
    per_epoch = replace(plan, config=LstmConfig(decay_epochs=0.3))
    with pytest.raises(UsageError, match="decay_epochs already keeps the schedule per epoch"):
        rescale_decay(per_epoch, 55_000)


def test_a_hand_written_config_needs_only_params(tmp_path: Path) -> None:
    path = tmp_path / "mine.json"
    entry = {"params": {"learning_rate": 0.002, "num_layers": 2}}
    plan = plan_from_config(path, entry, rank=None)
    assert plan.config == LstmConfig(learning_rate=0.002, num_layers=2)
    assert plan.seed == 0 and plan.data is None and plan.epochs == 20 and plan.name == "mine"


@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        (None, [], "config file not found"),
        ("", [], "config file is empty"),
        ('{"params": {"learning_rate": 0.00', [], "corrupt config file (not valid JSON"),
        ("[1, 2]", [], "found a JSON list"),
        ('{"learning_rate": 0.001}', [], "expected an object with 'params'"),
        ('{"params": {"learning_rate": "fast"}}', [], "parameter 'learning_rate' must be a number"),
        ('{"params": {"dropout": 0.5}}', [], "unknown LSTM parameter 'dropout'"),
        ('{"params": {"learning_rate": -1}}', [], "learning_rate must be > 0"),
        ('{"params": {"batch_size": 0}}', [], "batch_size must be >= 1 (a whole number), got 0"),
        ('{"params": {"lstm_units": -5}}', [], "lstm_units must be >= 1 (a whole number), got -5"),
        ('{"params": {"num_layers": 2.5}}', [], "num_layers must be >= 1 (a whole number), got 2.5"),
        ('{"params": {"decay_rate": 1.5}}', [], "decay_rate must be in (0, 1], got 1.5"),
        ('{"params": {"learning_rate": 0.001}, "seed": "zero"}', [], "'seed' must be a whole number"),
        ('{"configs": []}', [], "'configs' must be a non-empty list"),
        ('{"configs": [{"params": {"learning_rate": 0.001}}]}', ["--rank", "2"], "the file holds 1 configurations"),
        ('{"params": {"learning_rate": 0.001}}', ["--rank", "2"], "holds one configuration"),
        ('{"params": {"learning_rate": 0.001}}', ["--preset", "seed-baseline"], "either CONFIG"),
    ],
    ids=["missing", "empty", "truncated", "list", "no-params", "string-value", "unknown-name", "bad-value",
         "batch-0", "units-negative", "layers-fraction", "decay-rate-above-1",
         "bad-seed", "empty-list", "rank-beyond", "rank-of-single", "config-and-preset"],
)
def test_an_unusable_config_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, extra: list[str], message: str
) -> None:
    path = tmp_path / "best.json"
    if content is not None:
        path.write_text(content)
    code, _, err = train(str(path), *extra, "--out", str(tmp_path / "out"), capsys=capsys)
    assert code == 2
    assert err.startswith("hho-tune: error: ") and message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists(), "nothing is written for a config that cannot be used"


def test_train_needs_a_config_or_a_preset(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = train(capsys=capsys)
    assert code == 2 and "give either CONFIG" in err
    code, _, err = train("--preset", "seed-best", capsys=capsys)
    assert code == 2 and "invalid choice: 'seed-best'" in err
    code, _, err = train("--preset", "seed-baseline", "--rescale-decay", capsys=capsys)
    assert code == 2 and "--rescale-decay applies to an exported configuration" in err


def test_an_output_directory_in_use_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "metrics.json").write_text("{}")
    code, _, err = train("--preset", "seed-baseline", "--out", str(tmp_path / "out"), capsys=capsys)
    assert code == 2 and "exists and is not empty" in err


# --- training (slow) ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tiny_mnist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real two-trial search of a 16-unit LSTM at 1 epoch of 300 images, and its exported winner."""
    from hho_tune import SearchSpace, tune
    from hho_tune.objective import LstmObjective

    root = tmp_path_factory.mktemp("search")
    space = SearchSpace.from_dict({
        "parameters": {"learning_rate": {"type": "float", "low": 3e-3, "high": 3e-2, "log": True}},
        "fixed": {"lstm_units": 16, "decay_steps": 3},
    })
    objective = LstmObjective(epochs=1, train_size=300, seed=7, data_path=tiny_mnist)
    result = tune(objective, space, optimizer="random", budget=2, seed=7, out=root,
                  arguments={"data": str(tiny_mnist)})
    assert main(["export", str(result.run_dir)]) == 0
    return result.run_dir / "best.json"


PLAIN_KERAS = """
import json, sys
import numpy as np
import keras
model = keras.models.load_model(sys.argv[1])
with np.load(sys.argv[2]) as data:
    x, y = data["x_test"].astype("float32") / 255.0, data["y_test"]
predicted = np.argmax(model.predict(x, verbose=0), axis=1)
print(json.dumps({"accuracy": float(np.mean(predicted == y)), "n": len(y),
                  "hho_tune_imported": any(m.startswith("hho_tune") for m in sys.modules)}))
"""


@pytest.mark.slow
def test_train_saves_a_model_plain_keras_loads_with_the_reported_test_accuracy(
    exported: Path, tiny_mnist: Path, tmp_path: Path
) -> None:
    out = tmp_path / "final"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "hho_tune.cli", "train", str(exported), *TINY, "--out", str(out)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "epoch 1/1" in result.stdout and "val_accuracy" in result.stdout and "test accuracy" in result.stdout
    assert {p.name for p in out.iterdir()} == {"model.keras", "metrics.json", "training_curves.png"}
    assert (out / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    metrics = json.loads((out / "metrics.json").read_text())
    config = json.loads(exported.read_text())
    assert metrics["status"] == "finished" and metrics["test_size"] == 200 and metrics["train_size"] == 300
    assert metrics["seed"] == config["seed"] == 7 and metrics["epochs"] == 1
    assert metrics["configuration"]["learning_rate"] == config["params"]["learning_rate"]
    machine = metrics["machine"]  # what another machine must match to reproduce this training
    assert machine["software"]["tensorflow"] == metrics["versions"]["tensorflow"] and machine["cpu"]["usable_cores"] >= 1
    assert machine["tensorflow_devices"] and "intra_op" in machine["tensorflow_threads"]
    (epoch,) = metrics["history"]
    assert set(epoch) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds"}
    # Trained exactly as in the search (same seed, data and epochs): the search's validation score comes back.
    assert epoch["val_accuracy"] == pytest.approx(config["validation_score"], abs=1e-6)
    # decay_steps=3 at 6 steps an epoch: two decays by epoch's end
    assert epoch["learning_rate"] == pytest.approx(config["params"]["learning_rate"] * 0.96**2, rel=1e-5)

    # A fresh Python that never imports hho_tune reads the model and gets the same test accuracy.
    plain = subprocess.run([sys.executable, "-c", PLAIN_KERAS, str(out / "model.keras"), str(tiny_mnist)],
                           cwd=tmp_path, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
                           capture_output=True, text=True, timeout=300)
    assert plain.returncode == 0, plain.stderr
    reloaded = json.loads(plain.stdout.strip().splitlines()[-1])
    assert reloaded["n"] == 200 and not reloaded["hho_tune_imported"]
    assert reloaded["accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-6)

    # The same configuration and seed in another process (this one) trains the same model.
    again = tmp_path / "again"
    assert main(["train", str(exported), *TINY, "--out", str(again)]) == 0
    repeated = json.loads((again / "metrics.json").read_text())
    assert repeated["test_accuracy"] == metrics["test_accuracy"]
    assert [e["loss"] for e in repeated["history"]] == [e["loss"] for e in metrics["history"]]


@pytest.mark.slow
def test_a_preset_trains_with_its_own_recipe(tiny_mnist: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = train("--preset", "seed-baseline", *TINY, "--data", str(tiny_mnist), "--out", str(tmp_path / "p"),
                           capsys=capsys)
    assert code == 0, err
    metrics = json.loads((tmp_path / "p" / "metrics.json").read_text())
    assert metrics["origin"]["preset"] == "seed-baseline"
    assert metrics["configuration"] == SEED_BASELINE.params()
    assert metrics["history"][0]["learning_rate"] == pytest.approx(1e-4)  # decay_rate 1: no decay
    assert 0.0 <= metrics["test_accuracy"] <= 1.0


@pytest.mark.slow
def test_a_diverging_training_is_one_error_line_and_a_metrics_file(
    tiny_mnist: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hho_tune.data import Split, TrainValidation, load_test, load_train_validation
    from hho_tune.final import _train

    data = load_train_validation(tiny_mnist, train_size=300)
    x = data.train.x.copy()
    x[7, 3, 3] = np.nan  # one NaN pixel: the loss goes NaN (a learning rate alone cannot break the LSTM's gates)
    poisoned = TrainValidation(train=Split(x, data.train.y), validation=data.validation, source="poisoned")
    plan = TrainingPlan(name="nan", config=LstmConfig(lstm_units=8), epochs=3, seed=0, data=None, train_size=300, origin={})
    code = _train(plan, poisoned, load_test(tiny_mnist), tmp_path, {}, Console(), threads=None)
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("hho-tune: error: training diverged in epoch 1 of 3") and len(err.strip().splitlines()) == 1
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "diverged" and metrics["test_accuracy"] is None and metrics["epochs_run"] == 1
    assert not (tmp_path / "model.keras").exists()


@pytest.mark.slow
def test_the_saved_model_is_the_best_validation_epoch_s_and_patience_stops(tiny_mnist: Path, tmp_path: Path) -> None:
    """At this learning rate validation peaks at epoch 3 of 300 images and dips at 4: the saved model is epoch 3's."""
    import keras

    from hho_tune.data import load_train_validation

    config = tmp_path / "fast.json"
    config.write_text(json.dumps({"params": {"learning_rate": 0.05, "lstm_units": 16, "decay_steps": 1000}}))
    validation = load_train_validation(tiny_mnist).validation

    def saved_validation_accuracy(out: Path) -> float:
        model = keras.models.load_model(out / "model.keras")
        return float(np.mean(np.argmax(model.predict(validation.x, verbose=0), axis=1) == validation.y))

    common = [str(config), "--train-size", "300", "--data", str(tiny_mnist)]
    assert main(["train", *common, "--epochs", "5", "--patience", "1", "--out", str(tmp_path / "best")]) == 0
    best = json.loads((tmp_path / "best" / "metrics.json").read_text())
    accuracies = [e["val_accuracy"] for e in best["history"]]
    assert len(accuracies) == 4 and best["stopped_early"] and best["patience"] == 1  # no gain at epoch 4: stop
    assert best["saved_epoch"] == 3 == accuracies.index(max(accuracies)) + 1 and best["keep"] == "best"
    assert saved_validation_accuracy(tmp_path / "best") == pytest.approx(accuracies[2], abs=1e-4)
    assert abs(accuracies[3] - accuracies[2]) > 1e-3  # so that the check above tells epoch 3 from epoch 4

    assert main(["train", *common, "--epochs", "4", "--keep", "last", "--out", str(tmp_path / "last")]) == 0
    last = json.loads((tmp_path / "last" / "metrics.json").read_text())
    assert last["saved_epoch"] == 4 and not last["stopped_early"]
    assert [e["loss"] for e in last["history"]] == [e["loss"] for e in best["history"]]  # the same training
    assert saved_validation_accuracy(tmp_path / "last") == pytest.approx(accuracies[3], abs=1e-4)
