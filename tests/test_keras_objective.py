"""KerasObjective: a model of the user's own (a tiny dense network on a few hundred images), through the API and CLI."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hho_tune import SearchSpace, TrialPruned, tune
from hho_tune.cli import main
from hho_tune.data import VALIDATION_SIZE, packaged_mnist_path
from hho_tune.errors import UsageError
from hho_tune.keras import KerasObjective
from hho_tune.space import Param
from tests.reporters import RecordingReporter

pytestmark = pytest.mark.slow


def build_dense(params: dict[str, Any]) -> Any:
    import keras

    model = keras.Sequential([keras.Input(shape=(28, 28)), keras.layers.Flatten(),
                              keras.layers.Dense(int(params["units"]), activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(float(params["learning_rate"])),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def build_poisoned(params: dict[str, Any]) -> Any:
    """A network whose outputs are NaN: the loss is not finite from the first batch."""
    import keras

    model = keras.Sequential([keras.Input(shape=(28, 28)), keras.layers.Flatten(), keras.layers.Dense(10),
                              keras.layers.Lambda(lambda t: t * float("nan"))])
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def _tiny() -> KerasObjective:
    with np.load(packaged_mnist_path()) as mnist:
        x, y = mnist["x_train"].astype("float32") / 255.0, mnist["y_train"]
        test = (mnist["x_test"][:200].astype("float32") / 255.0, mnist["y_test"][:200])
    return KerasObjective(build_dense, x[:300], y[:300], validation_data=(x[-VALIDATION_SIZE:][:500],
                          y[-VALIDATION_SIZE:][:500]), epochs=3, batch_size=50, seed=0, test_data=test)


TINY = _tiny()  # for --objective tests.test_keras_objective:TINY
TINY.default_space = SearchSpace(params=(Param("learning_rate", "float", 1e-3, 3e-2, log=True),
                                         Param("units", "int", 8, 32)), source="tests/test_keras_objective.py")
PARAMS = {"learning_rate": 5e-3, "units": 16}


def test_seeded_scores_reported_each_epoch_and_pickled_for_workers() -> None:
    recorder = RecordingReporter()
    value = TINY(PARAMS, reporter=recorder)
    assert [step for step, _ in recorder.reports] == [1, 2, 3] and value == recorder.reports[-1][1]
    assert 0.3 < value <= 1.0
    assert TINY(PARAMS) == value  # same seed, same score
    assert pickle.loads(pickle.dumps(TINY))(PARAMS) == value  # as a Dask worker gets it
    assert TINY.with_seed(1)(PARAMS) != value and TINY.direction == "maximize"


def test_the_reporter_prunes_and_divergence_fails_the_trial(tmp_path: Path) -> None:
    with pytest.raises(TrialPruned):
        TINY(PARAMS, reporter=RecordingReporter(prune_after=1))
    result = tune(TINY, TINY.default_space, optimizer="random", budget=3, seed=0, out=tmp_path)
    assert all(t.ok and [s for s, _, _ in t.curve] == [1, 2, 3] for t in result.trials)
    poisoned = KerasObjective(build_poisoned, TINY.x, TINY.y, validation_data=TINY.validation_data, epochs=2)
    diverging = tune(poisoned, TINY.default_space, optimizer="random", budget=2, seed=0, out=tmp_path / "nan")
    assert all(t.failed and "non-finite" in t.error for t in diverging.trials)


def test_bad_settings_are_one_clear_error() -> None:
    x, y = np.zeros((10, 28, 28)), np.zeros(10)
    with pytest.raises(UsageError, match=r"validation_data=.* or validation_split"):
        KerasObjective(build_dense, x, y)
    with pytest.raises(UsageError, match="validation metric"):
        KerasObjective(build_dense, x, y, validation_split=0.2, metric="accuracy")
    split = KerasObjective(build_dense, x, y, validation_split=0.2)
    assert len(split.x) == 8 and len(split.validation_data[0]) == 2


def test_the_cli_tunes_it_exports_it_and_trains_the_winner(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results"
    assert main(["--objective", "tests.test_keras_objective:TINY", "--budget", "3", "--pruner", "median",
                 "--out", str(out)]) == 0
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    assert (run / "learning_curves.csv").read_text().count("\n") == 1 + 3 * 3
    assert main(["export", str(run)]) == 0
    exported = json.loads((run / "best.json").read_text())
    assert exported["objective_spec"] == "tests.test_keras_objective:TINY"
    assert main(["train", str(run / "best.json"), "--epochs", "4", "--out", str(tmp_path / "final")]) == 0
    metrics = json.loads((tmp_path / "final" / "metrics.json").read_text())
    history = metrics["history"]["val_accuracy"]
    assert metrics["saved_epoch"] == history.index(max(history)) + 1 and len(history) == 4
    assert 0 < metrics["test"]["accuracy"] <= 1 and (tmp_path / "final" / "model.keras").is_file()
    capsys.readouterr()
    assert main(["train", str(run / "best.json"), "--data", "x.npz", "--out", str(tmp_path / "f2")]) == 2
    assert "--data applies to the LSTM" in capsys.readouterr().err


def test_two_dask_workers_train_it(tmp_path: Path) -> None:
    """Pickled as its build function (by name) and its arrays, as the workers receive it."""
    result = tune(TINY, TINY.default_space, optimizer="random", budget=2, seed=0, out=tmp_path, workers=2)
    assert len(result.trials) == 2 and all(t.ok and len(t.curve) == 3 and 0 < t.value <= 1 for t in result.trials)
