"""Your own Keras model as an hho-tune objective: the KerasTuner habit of ``build_model(params)``.

::

    from hho_tune.keras import KerasObjective

    def build_model(params):                       # -> a compiled keras.Model
        model = keras.Sequential([...])
        model.compile(optimizer=keras.optimizers.Adam(params["learning_rate"]),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    objective = KerasObjective(build_model, x_train, y_train, validation_split=0.1, epochs=3)
    hho_tune.tune(objective, space, budget=20)     # or: hho-tune --objective mymodule:objective

Each trial seeds Keras (as ``keras.utils.set_random_seed`` does), builds the model, trains ``epochs``
epochs and scores ``metric`` on the validation data after each one: the value is reported
(learning curves, pruners) and the last epoch's is the trial's score. A loss that stops being
finite ends the trial as failed. The objective pickles as its build function (by reference:
define it at module level) and its arrays, so Dask workers get it like the LSTM objective.
``hho-tune train`` trains an exported winner with :meth:`train_final`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hho_tune.errors import TrainingDiverged, TrialPruned, UsageError

DIRECTIONS = {"val_accuracy": "maximize", "val_loss": "minimize"}


class KerasObjective:
    """Validation ``metric`` of ``build_model(params)`` trained ``epochs`` epochs on ``x``, ``y``.

    Give ``validation_data=(x_val, y_val)`` or ``validation_split`` (the last fraction of ``x``,
    as Keras takes it, so the split does not depend on the seed). ``direction`` defaults to
    maximize for ``val_accuracy``-like metrics and minimize for losses. ``test_data`` is read only
    by :meth:`train_final`, once.
    """

    def __init__(self, build_model: Callable[[Mapping[str, Any]], Any], x: Any, y: Any, *,
                 validation_data: tuple[Any, Any] | None = None, validation_split: float | None = None,
                 epochs: int = 3, batch_size: int = 32, metric: str = "val_accuracy", direction: str | None = None,
                 seed: int = 0, test_data: tuple[Any, Any] | None = None, name: str | None = None) -> None:
        if not callable(build_model):
            raise UsageError("KerasObjective: build_model must be a function params -> compiled keras.Model")
        if (validation_data is None) == (validation_split is None):
            raise UsageError("KerasObjective: give validation_data=(x, y) or validation_split, one of them")
        if validation_split is not None and not 0 < validation_split < 1:
            raise UsageError(f"KerasObjective: validation_split must be in (0, 1), got {validation_split}")
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise UsageError(f"KerasObjective: epochs must be a positive whole number, got {epochs!r}")
        if not metric.startswith("val_"):
            raise UsageError(f"KerasObjective: metric must be a validation metric such as val_accuracy, got {metric!r}")
        self.build_model = build_model
        self.x, self.y = x, y
        if validation_split is not None:
            cut = int(len(x) * (1 - validation_split))
            self.x, self.y, validation_data = x[:cut], y[:cut], (x[cut:], y[cut:])
        self.validation_data = validation_data
        self.epochs, self.batch_size, self.metric, self.seed = epochs, batch_size, metric, seed
        self.direction = direction or DIRECTIONS.get(metric, "minimize" if "loss" in metric else "maximize")
        if self.direction not in ("maximize", "minimize"):
            raise UsageError(f"KerasObjective: direction must be maximize or minimize, got {self.direction!r}")
        self.test_data = test_data
        self.name = name or f"keras:{getattr(build_model, '__module__', '')}.{getattr(build_model, '__qualname__', '')}"

    def __call__(self, params: Mapping[str, Any], reporter: Any = None) -> float:
        """Train the model of ``params`` and return the metric after the last epoch."""
        from hho_tune.backend import seed_training, start_backend

        start_backend()  # before Keras imports TensorFlow, so that its start-up chatter stays muted
        import keras

        seed_training(self.seed)
        model = self._build(params)
        history = model.fit(self.x, self.y, validation_data=self.validation_data, epochs=self.epochs,
                            batch_size=self.batch_size, verbose=0,
                            callbacks=[keras.callbacks.TerminateOnNaN(), _reports_callback(self.metric, reporter)])
        return self._metric_history(history, self.epochs)[-1]

    def with_seed(self, seed: int) -> KerasObjective:
        """The same objective training with ``seed`` (``hho-tune compare`` gives each seed its own)."""
        twin = object.__new__(type(self))
        twin.__dict__.update(self.__dict__, seed=seed)
        return twin

    def fidelity(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "train_size": len(self.x), "metric": self.metric}

    def train_final(self, params: Mapping[str, Any], *, epochs: int, seed: int, out_dir: Path) -> dict[str, Any]:
        """``hho-tune train`` for this objective: train ``epochs``, keep the best validation epoch, save, score test once.

        Returns what metrics.json records. The weights kept are those of the best epoch by
        ``metric`` (Keras's ``EarlyStopping(restore_best_weights=True)`` with patience = epochs).
        """
        from hho_tune.backend import before_saving, current_backend, seed_training, start_backend

        start_backend()  # before Keras imports TensorFlow, so that its start-up chatter stays muted
        import keras

        seed_training(seed)
        model = self._build(params)
        mode = "max" if self.direction == "maximize" else "min"
        keeper = keras.callbacks.EarlyStopping(monitor=self.metric, mode=mode, patience=epochs, restore_best_weights=True)
        started = time.perf_counter()
        history = model.fit(self.x, self.y, validation_data=self.validation_data, epochs=epochs,
                            batch_size=self.batch_size, verbose=0, callbacks=[keras.callbacks.TerminateOnNaN(), keeper])
        values = self._metric_history(history, epochs)
        best = (int(np.argmax(values)) if mode == "max" else int(np.argmin(values))) + 1
        metrics: dict[str, Any] = {
            "objective": self.name, "params": dict(params), "epochs": epochs, "seed": seed, "metric": self.metric,
            "backend": current_backend(),
            "history": {key: [float(v) for v in series] for key, series in history.history.items()},
            "saved_epoch": best, f"saved_{self.metric}": values[best - 1],
            "seconds_training": round(time.perf_counter() - started, 3),
        }
        if self.test_data is not None:
            scores = model.evaluate(*self.test_data, batch_size=self.batch_size, verbose=0, return_dict=True)
            metrics["test"] = {key: float(value) for key, value in scores.items()}
        out_dir.mkdir(parents=True, exist_ok=True)
        before_saving()
        model.save(out_dir / "model.keras")
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        return metrics

    def _build(self, params: Mapping[str, Any]) -> Any:
        model = self.build_model(dict(params))
        if not getattr(model, "compiled", False):
            raise UsageError("KerasObjective: build_model must return a compiled keras.Model (call model.compile)")
        return model

    def _metric_history(self, history: Any, epochs: int) -> list[float]:
        """The metric after each epoch; :class:`TrainingDiverged` when the loss or the metric stopped being finite."""
        if self.metric not in history.history:
            raise UsageError(f"KerasObjective: the model reports no {self.metric!r} "
                             f"(it has {', '.join(sorted(history.history)) or 'nothing'}); compile it with that metric")
        values = [float(v) for v in history.history[self.metric]]
        losses = [float(v) for v in history.history.get("loss", [])]
        if len(values) < epochs or not all(math.isfinite(v) for v in [*values, *losses]):
            raise TrainingDiverged(f"training became non-finite (epoch losses {losses}, {self.metric} {values})")
        return values


def _reports_callback(metric: str, reporter: Any) -> Any:
    """A Keras callback: ``metric`` to the reporter after each epoch; TrialPruned out of fit when it says to stop."""
    import keras

    class Reports(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
            value, loss = (logs or {}).get(metric), (logs or {}).get("loss")
            if reporter is None or value is None or loss is None or not math.isfinite(float(loss)):
                return
            reporter.report(float(value), epoch + 1)
            if reporter.should_prune():
                raise TrialPruned(f"pruned after epoch {epoch + 1}")

    return Reports()
