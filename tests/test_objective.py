"""The LSTM fitness on a few hundred images: seeded, scored on validation, divergence caught."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from hho_tune.data import Split, TrainValidation
from hho_tune.errors import TrainingDiverged, UsageError
from hho_tune.objective import LstmConfig, LstmObjective, ModelPool, build_model, build_network, train_and_score
from hho_tune.runner import evaluate
from hho_tune.space import SearchSpace
from hho_tune.trial import TrialState
from tests.reporters import RecordingReporter

pytestmark = pytest.mark.slow
SMALL = {"learning_rate": 3e-3, "decay_steps": 100, "num_layers": 1, "lstm_units": 16}


@pytest.fixture(scope="module")
def objective(tiny_mnist: Path) -> LstmObjective:
    return LstmObjective(epochs=1, train_size=300, seed=0, data_path=tiny_mnist)


def test_reference_architecture() -> None:
    model = build_model(LstmConfig(num_layers=2), seed=0)
    lstm = [layer for layer in model.layers if "lstm" in layer.name]
    assert [layer.units for layer in lstm] == [100, 100]
    assert model.layers[-1].units == 10 and model.layers[-1].activation.__name__ == "linear"
    assert model.input_shape == (None, 28, 28)
    schedule = model.optimizer.learning_rate if not callable(model.optimizer._learning_rate) else model.optimizer._learning_rate
    assert float(schedule(250)) == pytest.approx(1e-3 * 0.96**2)


@pytest.mark.parametrize(("layers", "seed"), [(1, 0), (2, 1), (3, 7)])
def test_initial_weights_are_keras_defaults_after_seeding(layers: int, seed: int) -> None:
    """The explicit seeds give the weights Keras's own draws gave, so earlier scores reproduce."""
    import keras

    keras.utils.set_random_seed(seed)
    stack = [keras.Input(shape=(28, 28))]
    stack += [keras.layers.LSTM(100, return_sequences=i < layers - 1) for i in range(layers)]
    stack.append(keras.layers.Dense(10))
    defaults = keras.Sequential(stack).get_weights()
    ours = build_network(LstmConfig(num_layers=layers), seed=seed).get_weights()
    assert len(ours) == len(defaults) == 3 * layers + 2
    for a, b in zip(ours, defaults, strict=True):
        np.testing.assert_array_equal(a, b)


def test_initial_weights_ignore_pythons_global_random() -> None:
    """A Dask worker's event loop draws from ``random`` at any time; the weights must not care."""
    import random

    first = build_network(LstmConfig(), seed=3).get_weights()
    random.seed(12345)
    random.random()
    for a, b in zip(first, build_network(LstmConfig(), seed=3).get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    other = build_network(LstmConfig(), seed=4).get_weights()
    assert not np.array_equal(first[0], other[0])


def test_scores_are_validation_accuracies_and_seeded(objective: LstmObjective) -> None:
    first = objective(SMALL)
    assert 0.0 <= first <= 1.0
    assert objective(SMALL) == first
    assert objective.fidelity()["train_size"] == 300 and objective.fidelity()["epochs"] == 1


def test_a_different_configuration_trains_a_different_model(objective: LstmObjective) -> None:
    assert objective({**SMALL, "learning_rate": 1e-2, "num_layers": 2}) != objective(SMALL)


def poisoned(objective: LstmObjective) -> LstmObjective:
    """The same objective on training images with one NaN pixel: the loss goes NaN at once.

    (The LSTM's saturating gates keep the loss finite even at absurd learning rates, so a
    NaN input is the reliable way to make a training diverge.)
    """
    x = objective.data.train.x.copy()
    x[7, 3, 3] = np.nan
    data = TrainValidation(train=Split(x, objective.data.train.y), validation=objective.data.validation, source="nan")
    clone = LstmObjective.__new__(LstmObjective)
    clone.__dict__.update(objective.__dict__, data=data)
    return clone


def test_divergence_is_caught_from_the_loss_and_stops_at_once(objective: LstmObjective) -> None:
    seen_batches: list[int] = []

    class Count(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            seen_batches.append(batch)

    config = LstmConfig.from_params(SMALL)
    with pytest.raises(TrainingDiverged, match="non-finite"):
        train_and_score(config, poisoned(objective).data, epochs=3, seed=0, callbacks=[Count()])
    assert len(seen_batches) < 300 // 50, "training went on after the loss became NaN"


def test_a_diverging_trial_is_recorded_as_failed_and_the_run_goes_on(objective: LstmObjective, tmp_path: Path) -> None:
    space = SearchSpace.from_dict({"parameters": {"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-2}},
                                   "fixed": {"num_layers": 1, "lstm_units": 16}})
    trial = evaluate(poisoned(objective), space, {"learning_rate": 5e-3}, number=0)
    assert trial.state is TrialState.FAIL and "TrainingDiverged" in trial.error


def test_bad_configurations_are_refused() -> None:
    with pytest.raises(UsageError, match="unknown LSTM parameter 'dropout'"):
        LstmConfig.from_params({"dropout": 0.1})
    with pytest.raises(UsageError, match="decay_steps must be >= 1"):
        LstmConfig.from_params({"decay_steps": 0})


def test_pickles_as_its_recipe_and_scores_the_same_after(objective: LstmObjective) -> None:
    """Dask ships the objective to its workers: as a few bytes of settings, not 5,300 images."""
    import copy
    import pickle

    blob = pickle.dumps(objective)
    assert len(blob) < 2_000
    clone = pickle.loads(blob)
    assert clone(SMALL) == objective(SMALL)
    twin = copy.copy(objective)
    assert twin.data is objective.data and twin.seed == objective.seed


def _trained_weights(config: LstmConfig, data: TrainValidation, pool: ModelPool | None, seed: int = 0) -> list[np.ndarray]:
    model, _ = train_and_score(config, data, epochs=1, seed=seed, pool=pool)
    return [np.array(w) for w in model.get_weights()]


def test_a_reused_model_trains_bit_for_bit_like_a_fresh_one(objective: LstmObjective) -> None:
    """The pool's promise: whatever trained on a kept model before, the next training is the fresh one's."""
    pool = ModelPool()
    sequence = [
        ({**SMALL}, 0),
        ({**SMALL, "num_layers": 2}, 0),  # a second architecture
        ({**SMALL, "learning_rate": 2e-2, "decay_steps": 3, "decay_rate": 0.5}, 1),  # reused, other schedule
        ({**SMALL, "batch_size": 30}, 0),  # reused with another batch size (a new trace)
        ({**SMALL, "num_layers": 2, "learning_rate": 1e-4}, 2),
    ]
    for params, seed in sequence:
        config = LstmConfig.from_params(params)
        fresh = _trained_weights(config, objective.data, None, seed)
        reused = _trained_weights(config, objective.data, pool, seed)
        assert len(fresh) == len(reused)
        for a, b in zip(fresh, reused, strict=True):
            np.testing.assert_array_equal(a, b)
    assert len(pool) == 2


def test_a_divergence_leaves_nothing_behind_in_the_kept_model(objective: LstmObjective) -> None:
    pool = ModelPool()
    config = LstmConfig.from_params(SMALL)
    with pytest.raises(TrainingDiverged):
        train_and_score(config, poisoned(objective).data, epochs=1, seed=0, pool=pool)
    assert len(pool) == 1  # the kept model now holds NaN weights and a stopped flag
    fresh = _trained_weights(config, objective.data, None)
    for a, b in zip(fresh, _trained_weights(config, objective.data, pool), strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_objective_compiles_each_architecture_once(tiny_mnist: Path) -> None:
    objective = LstmObjective(epochs=1, train_size=300, seed=0, data_path=tiny_mnist)
    scores = [objective({**SMALL, "num_layers": layers}) for layers in (1, 2, 1, 2)]
    assert scores[0] == scores[2] and scores[1] == scores[3]
    assert len(objective.models) == 2
    assert objective.with_seed(5).models is objective.models


def test_a_decay_in_epochs_becomes_steps_of_the_training_set_it_runs_on() -> None:
    config = LstmConfig.from_params({"learning_rate": 1e-3, "decay_epochs": 0.5, "num_layers": 1})
    assert config.for_training_set(10_000).decay_steps == 100  # 200 steps an epoch at batch 50
    assert config.for_training_set(55_000).decay_steps == 550
    assert config.for_training_set(10).decay_steps == 1  # never below one step
    assert LstmConfig(decay_steps=62).for_training_set(55_000).decay_steps == 62  # steps stay steps
    with pytest.raises(UsageError, match="decay_steps or decay_epochs, not both"):
        LstmConfig.from_params({"decay_steps": 100, "decay_epochs": 1.0})
    with pytest.raises(UsageError, match="decay_epochs must be > 0"):
        LstmConfig.from_params({"decay_epochs": 0})


def test_the_search_and_final_training_see_the_same_learning_rate_per_epoch(tiny_mnist: Path) -> None:
    """decay_epochs=0.5 on 300 images (6 steps an epoch): 3 steps a decay, two decays an epoch."""
    from hho_tune.data import load_train_validation

    data = load_train_validation(tiny_mnist, train_size=300)
    config = LstmConfig.from_params({"learning_rate": 1e-3, "decay_epochs": 0.5, "lstm_units": 8})
    model, _ = train_and_score(config, data, epochs=1, seed=0)
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3 * 0.96**2)


def test_tensorflow_starts_at_the_first_training_with_the_objective_s_threads(tiny_mnist: Path) -> None:
    """A run on Dask workers never trains in the coordinating process, so it must not pay TensorFlow's start there."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from hho_tune.objective import LstmObjective\n"
        f"objective = LstmObjective(epochs=1, train_size=100, data_path={str(tiny_mnist)!r}, threads=1)\n"
        "print('tensorflow' in sys.modules)\n"
        f"objective({SMALL!r})\n"
        "import tensorflow as tf\n"
        "print(tf.config.threading.get_intra_op_parallelism_threads())\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["False", "1"]


def test_the_lstm_reports_each_epoch_and_scores_the_same_with_a_reporter(tiny_mnist: Path) -> None:
    """The learning curve costs nothing in reproducibility: same seed, same score, with or without a reporter."""
    objective = LstmObjective(epochs=3, train_size=300, seed=0, data_path=tiny_mnist)
    plain = objective(SMALL)
    recorder = RecordingReporter()
    reported = objective(SMALL, reporter=recorder)
    assert [step for step, _ in recorder.reports] == [1, 2, 3]
    assert all(0.0 <= value <= 1.0 for _, value in recorder.reports)
    assert reported == plain == recorder.reports[-1][1]


def test_a_pruned_lstm_stops_at_once_and_leaves_the_kept_model_as_fresh(tiny_mnist: Path) -> None:
    from hho_tune.errors import TrialPruned

    objective = LstmObjective(epochs=3, train_size=300, seed=0, data_path=tiny_mnist)
    recorder = RecordingReporter(prune_after=1)
    with pytest.raises(TrialPruned):
        objective(SMALL, reporter=recorder)
    assert [step for step, _ in recorder.reports] == [1]  # no second epoch was trained
    fresh = LstmObjective(epochs=3, train_size=300, seed=0, data_path=tiny_mnist)
    assert objective(SMALL) == fresh(SMALL)  # the pooled model, reused after the prune, trains as a new one


def test_an_lstm_run_writes_its_learning_curves_and_prunes(tiny_mnist: Path, tmp_path: Path) -> None:
    """Through tune(): every trial's curve in learning_curves.csv and in the study; sha prunes some trials."""
    from hho_tune.api import tune
    from hho_tune.ledger import recorded_trials
    from hho_tune.results import read_trials

    space = SearchSpace.from_dict({"parameters": {
        "learning_rate": {"type": "float", "low": 1e-4, "high": 3e-2, "log": True},
    }, "fixed": {"lstm_units": 8, "decay_steps": 100}})
    objective = LstmObjective(epochs=3, train_size=300, seed=0, data_path=tiny_mnist)
    result = tune(objective, space, optimizer="random", budget=6, seed=1, out=tmp_path, pruner="sha")
    rows = read_trials(result.run_dir)
    curves = (result.run_dir / "learning_curves.csv").read_text().splitlines()
    assert curves[0] == "number,epoch,value,seconds"
    states = {row["state"] for row in rows}
    assert "PRUNED" in states and "COMPLETE" in states
    for row, trial in zip(rows, recorded_trials(str(result.run_dir / "study.journal"), result.run_dir.name), strict=True):
        epochs = int(row["epochs"])
        assert len([line for line in curves[1:] if line.split(",")[0] == row["number"]]) == epochs
        assert sorted(trial.intermediate_values) == list(range(1, epochs + 1))
        assert trial.state.name == row["state"]
        assert (row["state"] == "PRUNED") == (epochs < 3)


def test_a_training_reads_its_batches_with_tf_data_s_autotuning_off_and_scores_as_with_it_on(
        tiny_mnist: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Autotuning made a fit wait up to 5 s to end after a slow epoch-end callback; turning it off changes no score."""
    import contextlib

    from keras.src.trainers.data_adapters.array_data_adapter import ArrayDataAdapter

    import hho_tune.objective as objective_module
    from hho_tune.backend import tf_data_autotune_off

    x, y = np.zeros((4, 28, 28), "float32"), np.zeros(4, "int64")
    with tf_data_autotune_off():
        inside = ArrayDataAdapter(x, y, batch_size=2, shuffle=True).get_tf_dataset().options().autotune.enabled
    outside = ArrayDataAdapter(x, y, batch_size=2, shuffle=True).get_tf_dataset().options().autotune.enabled
    assert inside is False and outside is not False  # the user's own fit calls keep tf.data's default

    objective = LstmObjective(epochs=2, train_size=300, seed=0, data_path=tiny_mnist)
    recorder = RecordingReporter()
    off = objective(SMALL, reporter=recorder)
    monkeypatch.setattr(objective_module, "tf_data_autotune_off", contextlib.nullcontext)
    on_recorder = RecordingReporter()
    assert objective(SMALL, reporter=on_recorder) == off and on_recorder.reports == recorder.reports
