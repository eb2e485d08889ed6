"""The LSTM fitness on a few hundred images: seeded, scored on validation, divergence caught."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from hho_tune.data import Split, TrainValidation
from hho_tune.errors import TrainingDiverged, UsageError
from hho_tune.objective import LstmConfig, LstmObjective, build_model, train_and_score
from hho_tune.runner import evaluate
from hho_tune.space import SearchSpace
from hho_tune.trial import TrialState

pytestmark = pytest.mark.slow
SMALL = {"learning_rate": 3e-3, "decay_steps": 100, "num_layers": 1, "lstm_units": 16}


@pytest.fixture(scope="module")
def objective(tiny_mnist: Path) -> LstmObjective:
    return LstmObjective(epochs=1, train_size=300, seed=0, data_path=tiny_mnist)


def test_reference_architecture() -> None:
    model = build_model(LstmConfig(num_layers=2))
    lstm = [layer for layer in model.layers if "lstm" in layer.name]
    assert [layer.units for layer in lstm] == [100, 100]
    assert model.layers[-1].units == 10 and model.layers[-1].activation.__name__ == "linear"
    assert model.input_shape == (None, 28, 28)
    schedule = model.optimizer.learning_rate if not callable(model.optimizer._learning_rate) else model.optimizer._learning_rate
    assert float(schedule(250)) == pytest.approx(1e-3 * 0.96**2)


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
