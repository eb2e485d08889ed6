"""``hho_tune.benchmarks:lstm_table``: the MNIST-rows LSTM, answered in microseconds from recorded trainings.

Why: one comparison of five optimizers over 30 seeds on the real LSTM costs days of this
machine; benchmarking practice (LCBench, HPOBench, YAHPO Gym, JAHS-Bench-201) measures
optimizers on recorded learning curves of real trainings or on a surrogate fitted to them.

**The table** (``resources/lstm_table.csv``, made as ``resources/README.md`` says): real
trainings of the default space (``learning_rate``, ``decay_epochs``, ``num_layers``) at the
search's scale (10,000 training images, 5,000 validation images, batch 50), each with its
validation accuracy and the seconds of each of :data:`TABLE_EPOCHS` epochs, a second training
seed for a third of them so that the noise between seeds is measured, not assumed.

**The surrogate** answers any configuration of the space, not only the recorded ones, in two
parts (:class:`Surrogate`): the chance that a training collapses to chance accuracy (large
learning rates with 2 or 3 layers do, at some seeds), a logistic regression on the learning
rate, the decay and the layer count; and the curve of a training that learns, a smoothed radial-basis interpolation
(scipy's :class:`~scipy.interpolate.RBFInterpolator`) of the logit of the accuracy after each
epoch, in the space's unit coordinates (log scales for the learning rate and the decay; the
layer axis weighted). Why this: with three parameters and about a hundred points a smooth
interpolant is the simplest model that follows the data without a model of our own to defend;
the logit keeps predictions inside (0, 1) and stretches the region near 100% where good
configurations differ; and the collapse is a cliff no smooth function fits. The kernel, its
smoothing, the layer weight and the collapse model were chosen by held-out error
(:func:`held_out_validation`, ``bench/lstm_table_validate.py --grid``).

**The noise**: each (configuration, seed) first draws whether it collapses (then its curve is
one of the recorded collapsed ones), else a curve drawn from the measured seed-to-seed
noise: a normal vector in logit space with the covariance of half the differences between the
two recorded seeds, epoch by epoch (so a lucky epoch 2 tends to stay lucky at epoch 3, as in
real training), seeded by the trial's seed and the configuration. Same seed, same configuration,
same curve: as on one machine with the real LSTM.

**The cost**: each epoch is reported with the median recorded seconds of that epoch at that
number of layers, so ``best_vs_time`` plots and ``learning_curves.csv`` show the training time
the search stands for (run.json says ``simulated_seconds``).
"""

from __future__ import annotations

import csv
import functools
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from hho_tune.errors import SearchSpaceError, TrialPruned, UsageError
from hho_tune.space import SearchSpace

TABLE_FILE = "lstm_table.csv"
TABLE_COLUMNS = ("config", "seed", "learning_rate", "decay_epochs", "num_layers", "epoch", "value", "seconds")
PARAMETERS = ("learning_rate", "decay_epochs", "num_layers")
TABLE_EPOCHS = 6
DEFAULT_EPOCHS = 2  # the LSTM fitness's own default fidelity
# Chosen by held-out error on the recorded table (bench/lstm_table_validate.py --grid):
KERNEL = "thin_plate_spline"
SMOOTHING = 0.03
LAYER_WEIGHT = 0.5
COLLAPSE_RIDGE = 0.01  # the collapse model's L2 penalty: enough to keep its weights finite when the classes separate
CHANCE_LEVEL = 0.2  # a training whose validation accuracy never passed this collapsed (10 classes: chance is 0.1)
ACCURACY_FLOOR = 1e-3  # the logit of 0 or 1 is infinite: accuracies are clipped to [floor, 1 - floor]


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, ACCURACY_FLOOR, 1.0 - ACCURACY_FLOOR)
    return np.log(p / (1.0 - p))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


@functools.lru_cache(maxsize=1)
def default_space() -> SearchSpace:
    """The packaged default space (search_spaces/lstm_mnist.yaml): the one the table was recorded on. Read once."""
    from hho_tune.cli import packaged_spaces_dir

    return SearchSpace.load(packaged_spaces_dir() / "lstm_mnist.yaml")


@dataclass(frozen=True)
class RecordedTable:
    """The recorded trainings: one row per (configuration, training seed), curves epoch by epoch."""

    config: np.ndarray  # (n,) index of the configuration; the same for its two seeds
    seed: np.ndarray  # (n,) training seed
    params: tuple[dict[str, float | int], ...]  # (n,) the configuration
    values: np.ndarray  # (n, epochs) validation accuracy after each epoch; nan where none was recorded
    seconds: np.ndarray  # (n, epochs) seconds each epoch took

    @classmethod
    def load(cls, path: str | Path | None = None) -> RecordedTable:
        """The packaged table, or a CSV in its layout (:data:`TABLE_COLUMNS`)."""
        path = Path(path) if path is not None else Path(str(resources.files("hho_tune.resources") / TABLE_FILE))
        rows: dict[tuple[int, int], dict[str, Any]] = {}
        with open(path, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                key = (int(row["config"]), int(row["seed"]))
                entry = rows.setdefault(key, {
                    "params": {"learning_rate": float(row["learning_rate"]), "decay_epochs": float(row["decay_epochs"]),
                               "num_layers": int(row["num_layers"])},
                    "values": {}, "seconds": {}})
                if row["epoch"]:
                    epoch = int(row["epoch"])
                    entry["values"][epoch] = float(row["value"]) if row["value"] else math.nan
                    entry["seconds"][epoch] = float(row["seconds"]) if row["seconds"] else math.nan
        keys = sorted(rows)
        epochs = max((max(r["values"], default=0) for r in rows.values()), default=0)
        values = np.full((len(keys), epochs), math.nan)
        seconds = np.full((len(keys), epochs), math.nan)
        for i, key in enumerate(keys):
            for epoch, value in rows[key]["values"].items():
                values[i, epoch - 1] = value
                seconds[i, epoch - 1] = rows[key]["seconds"][epoch]
        return cls(config=np.array([k[0] for k in keys]), seed=np.array([k[1] for k in keys]),
                   params=tuple(rows[k]["params"] for k in keys), values=values, seconds=seconds)

    @property
    def epochs(self) -> int:
        return self.values.shape[1]

    @property
    def complete(self) -> np.ndarray:
        """(n,) trainings with a value after every epoch."""
        return np.all(np.isfinite(self.values), axis=1)

    @property
    def collapsed(self) -> np.ndarray:
        """(n,) trainings that never rose above chance: a learning rate too large for the network, at that seed."""
        return self.complete & (np.max(np.where(np.isfinite(self.values), self.values, 0.0), axis=1) <= CHANCE_LEVEL)

    def subset(self, rows: np.ndarray) -> RecordedTable:
        return replace(self, config=self.config[rows], seed=self.seed[rows],
                       params=tuple(self.params[i] for i in rows), values=self.values[rows], seconds=self.seconds[rows])

    def seed_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Row indices (first seed, second seed) of the configurations trained with two seeds."""
        first, second = [], []
        for config in np.unique(self.config):
            rows = np.flatnonzero(self.config == config)
            if len(rows) >= 2:
                first.append(rows[0])
                second.append(rows[1])
        return np.array(first, dtype=int), np.array(second, dtype=int)


def unit_coordinates(params: Sequence[Mapping[str, Any]], space: SearchSpace, layer_weight: float = LAYER_WEIGHT) -> np.ndarray:
    """Each configuration in the space's unit cube (log scales as the space says), the layer axis weighted."""
    points = np.array([space.to_unit({name: p[name] for name in space.names}) for p in params], dtype=float)
    points[:, list(space.names).index("num_layers")] *= layer_weight
    return points


class Surrogate:
    """Two parts, as the trainings are: does it collapse to chance, and if not, where does its curve go.

    Why two: at large learning rates with 2 or 3 layers a training never leaves chance (about
    0.1), a cliff that a smooth interpolant across both regimes turns into errors of tens of
    points next to it. So the *collapse probability* is a logistic regression on the learning
    rate and decay (unit coordinates), the layer count and the learning rate's interaction with
    it (each training one observation: a configuration that collapsed at one seed only counts
    once each way). Why parametric: about a dozen collapses cannot draw a boundary by
    themselves; the regression's one assumption, that collapse grows with the learning rate and
    more so with more layers, is what the table shows, and held out it misclassified 3 of 119
    trainings where a kernel average missed 8 (bench/lstm_table_validate.py). The *curve* of a
    training that learns is a smoothed RBF of
    the logit accuracy after each epoch, fitted to the trainings that learned (two seeds of a
    configuration enter as their mean).
    """

    def __init__(self, table: RecordedTable, *, kernel: str = KERNEL, smoothing: float = SMOOTHING,
                 layer_weight: float = LAYER_WEIGHT, ridge: float = COLLAPSE_RIDGE,
                 space: SearchSpace | None = None) -> None:
        from scipy.interpolate import RBFInterpolator

        self.space = space or default_space()
        self.layer_weight = layer_weight
        learned = table.complete & ~table.collapsed
        targets, points = [], []
        for config in np.unique(table.config[learned]):
            rows = np.flatnonzero((table.config == config) & learned)
            targets.append(_logit(table.values[rows]).mean(axis=0))
            points.append(table.params[rows[0]])
        self._curve = RBFInterpolator(unit_coordinates(points, self.space, layer_weight), np.array(targets),
                                      kernel=kernel, smoothing=smoothing, degree=1)
        observed = np.flatnonzero(table.complete)
        self._collapse_weights = _fit_logistic(self._collapse_features([table.params[i] for i in observed]),
                                               table.collapsed[observed].astype(float), ridge)
        collapsed_rows = np.flatnonzero(table.collapsed)
        self.collapsed_curves = table.values[collapsed_rows] if len(collapsed_rows) else np.full((1, table.epochs), 0.1)

    def logits(self, params: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """(n, epochs) predicted logit accuracy of a training that learns, the noise-free curve."""
        return self._curve(unit_coordinates(params, self.space, self.layer_weight))

    def _collapse_features(self, params: Sequence[Mapping[str, Any]]) -> np.ndarray:
        unit = unit_coordinates(params, self.space, 1.0)
        names = list(self.space.names)
        rate = unit[:, names.index("learning_rate")]
        decay = unit[:, names.index("decay_epochs")]
        layers = np.array([float(p["num_layers"]) for p in params])
        deep = (layers >= 2).astype(float)
        return np.column_stack([np.ones(len(params)), rate, decay, deep, (layers >= 3).astype(float), rate * deep])

    def collapse_probability(self, params: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """(n,) the chance that a training of the configuration stays at chance (the logistic regression)."""
        return _sigmoid(self._collapse_features(params) @ self._collapse_weights)

    def predict(self, params: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """(n, epochs) expected validation accuracy after each epoch, before noise: collapse weighed in."""
        collapse = self.collapse_probability(params)[:, None]
        return (1.0 - collapse) * _sigmoid(self.logits(params)) + collapse * self.collapsed_curves.mean(axis=0)


def _fit_logistic(features: np.ndarray, outcomes: np.ndarray, ridge: float) -> np.ndarray:
    """Weights of an L2-penalised logistic regression (the intercept unpenalised), by L-BFGS."""
    from scipy.optimize import minimize

    def loss(weights: np.ndarray) -> tuple[float, np.ndarray]:
        z = features @ weights
        penalty = np.r_[0.0, weights[1:]]
        value = float(np.sum(np.logaddexp(0.0, z) - outcomes * z) + ridge * np.sum(penalty**2))
        gradient = features.T @ (_sigmoid(z) - outcomes) + 2.0 * ridge * penalty
        return value, gradient

    return minimize(loss, np.zeros(features.shape[1]), jac=True, method="L-BFGS-B").x


@dataclass(frozen=True)
class SeedNoise:
    """The measured noise between two training seeds, in logit space, epoch by epoch."""

    covariance: np.ndarray  # (epochs, epochs): of one seed's deviation from the two seeds' mean

    @classmethod
    def measure(cls, table: RecordedTable) -> SeedNoise:
        """Half the covariance of the differences between the two seeds (the variance of one seed about the mean of two)."""
        first, second = table.seed_pairs()
        learned = table.complete & ~table.collapsed  # a collapse is drawn on its own, not as noise
        ok = learned[first] & learned[second]
        differences = _logit(table.values[first[ok]]) - _logit(table.values[second[ok]])
        if len(differences) < 3:
            raise ValueError(f"the table has {len(differences)} configurations with two seeds; the noise needs 3 or more")
        # Var(a - b) = 2 sigma^2 for two independent draws about one mean: one seed's covariance is half of it.
        return cls(covariance=np.atleast_2d(np.cov(differences, rowvar=False)) / 2.0)

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        return rng.multivariate_normal(np.zeros(len(self.covariance)), self.covariance, method="cholesky")


def epoch_seconds(table: RecordedTable) -> dict[int, np.ndarray]:
    """Median recorded seconds of each epoch, by number of layers: what the simulation reports it cost."""
    layers = np.array([p["num_layers"] for p in table.params])
    return {int(n): np.nanmedian(table.seconds[layers == n], axis=0) for n in np.unique(layers)}


@functools.lru_cache(maxsize=1)
def _packaged() -> tuple[Surrogate, SeedNoise, dict[int, np.ndarray], int]:
    table = RecordedTable.load()
    return Surrogate(table), SeedNoise.measure(table), epoch_seconds(table), table.epochs


def _configuration_key(params: Mapping[str, Any]) -> int:
    text = ",".join(f"{name}={float(params[name]):.12g}" for name in PARAMETERS)
    return zlib.crc32(text.encode())


@dataclass(frozen=True)
class LstmTable:
    """The LSTM fitness at ``epochs`` epochs and training seed ``seed``, simulated from the recorded table.

    Call it as the LSTM: ``lstm_table(params)`` returns the validation accuracy after ``epochs``
    epochs, and with a ``reporter`` it reports every epoch, so pruners work on it.
    """

    epochs: int = DEFAULT_EPOCHS
    seed: int = 0
    direction: str = "maximize"
    simulated_seconds: bool = True

    @property
    def most_epochs(self) -> int:
        """The last epoch recorded: no fidelity beyond it can be answered."""
        return _packaged()[3]

    @property
    def default_space(self) -> SearchSpace:
        return replace(default_space(), source="hho_tune.benchmarks:lstm_table (the default space)")

    def check_space(self, space: SearchSpace) -> None:
        """The table knows the default space's three parameters within their recorded bounds, and nothing else."""
        recorded = {p.name: p for p in default_space().params}
        for name in (*space.names, *space.fixed):
            if name not in recorded:
                raise SearchSpaceError(f"{space.source}: parameter {name!r}: lstm_table knows only "
                                       f"{', '.join(PARAMETERS)} (the table was recorded on those)")
        missing = [name for name in PARAMETERS if name not in space.names and name not in space.fixed]
        if missing:
            raise SearchSpaceError(f"{space.source}: parameter {missing[0]!r} is needed by lstm_table "
                                   "(search it or give it under fixed:)")
        for param in space.params:
            table = recorded[param.name]
            if param.low < table.low or param.high > table.high:
                raise SearchSpaceError(f"{space.source}: parameter {param.name!r}: [{param.low:g}, {param.high:g}] leaves "
                                       f"the recorded range [{table.low:g}, {table.high:g}]; the table cannot extrapolate")
        for name, value in space.fixed.items():
            if not recorded[name].contains(value):
                raise SearchSpaceError(f"{space.source}: fixed {name!r} = {value!r} is outside the recorded range")

    def with_seed(self, seed: int) -> LstmTable:
        """The same fidelity at another training seed: ``hho-tune compare`` gives seed k to every optimizer."""
        return replace(self, seed=seed)

    def with_epochs(self, epochs: int) -> LstmTable:
        """The same table at another fidelity (``--epochs``, ``--max-epochs``); at most the recorded epochs."""
        if isinstance(epochs, bool) or not isinstance(epochs, int) or not 1 <= epochs <= self.most_epochs:
            raise UsageError(f"lstm_table recorded {self.most_epochs} epochs: --epochs/--max-epochs must be "
                             f"1 to {self.most_epochs}, got {epochs}")
        return replace(self, epochs=epochs)

    def fidelity(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "table": TABLE_FILE, "simulated_seconds": True}

    def curve(self, params: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """(accuracy after each recorded epoch, seconds each epoch stands for) at this seed."""
        surrogate, noise, seconds, _ = _packaged()
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, _configuration_key(params)])
        collapses = rng.random() < surrogate.collapse_probability([params])[0]
        deviation = noise.draw(rng)  # drawn either way, so a collapse does not shift the draws that follow
        if collapses:
            values = surrogate.collapsed_curves[rng.integers(len(surrogate.collapsed_curves))]
        else:
            values = _sigmoid(surrogate.logits([params])[0] + deviation)
        return values, seconds[int(params["num_layers"])]

    def noise_free_value(self, params: Mapping[str, Any]) -> float:
        """The expected accuracy at this fidelity before any seed's noise, collapse weighed in.

        What a user who exports the configuration gets on average; ``hho-tune compare`` scores
        each run's recommendation by it (the objective protocol's optional ``noise_free_value``).
        """
        return float(_packaged()[0].predict([params])[0][self.epochs - 1])

    def __call__(self, params: Mapping[str, Any], reporter: Any = None) -> float:
        values, seconds = self.curve(params)
        for epoch in range(1, self.epochs + 1):
            if reporter is not None:
                reporter.report(float(values[epoch - 1]), step=epoch, seconds=float(seconds[epoch - 1]))
                if epoch < self.epochs and reporter.should_prune():
                    raise TrialPruned()
        return float(values[self.epochs - 1])


# -- validation --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Validation:
    """The surrogate on configurations it was not fitted to, beside the difference between two training seeds."""

    epoch: int
    configurations: int  # held out, one fold at a time
    surrogate_rmse: float  # expected accuracy against one recorded seed, all configurations
    seed_rmse: float  # one seed against the other, the configurations with two seeds
    surrogate_median_error: float  # median absolute error of the learned curve, over configurations that learned
    seed_median_error: float  # the same between two seeds, over pairs that both learned
    spearman: float  # rank correlation of held-out predictions with the recorded values
    seed_spearman: float  # between the two seeds: what a second training would reach
    collapse_hits: float  # share of held-out trainings whose collapse (or not) the surrogate called (p > 0.5)


def held_out_validation(table: RecordedTable, *, folds: int = 8, epochs: Sequence[int] = (2, 6),
                        kernel: str = KERNEL, smoothing: float = SMOOTHING, layer_weight: float = LAYER_WEIGHT,
                        ridge: float = COLLAPSE_RIDGE, seed: int = 0) -> list[Validation]:
    """k-fold by configuration (both seeds of one held out together), against the first recorded seed.

    The surrogate predicts the expected accuracy, so against one seed it can err no less than
    that seed's own deviation; the second seed against the first is the yardstick: a surrogate
    as good as a second training errs and ranks like it.
    """
    from scipy.stats import spearmanr

    complete = table.complete
    configs = np.unique(table.config[complete])
    order = np.random.default_rng(seed).permutation(configs)
    predicted = np.full(table.values.shape, math.nan)
    learned_curve = np.full(table.values.shape, math.nan)
    collapse = np.full(len(table.config), math.nan)
    for fold in range(folds):
        held = np.isin(table.config, order[fold::folds])
        model = Surrogate(table.subset(np.flatnonzero(~held)), kernel=kernel, smoothing=smoothing,
                          layer_weight=layer_weight, ridge=ridge)
        rows = np.flatnonzero(held & complete)
        if len(rows):
            predicted[rows] = model.predict([table.params[i] for i in rows])
            learned_curve[rows] = _sigmoid(model.logits([table.params[i] for i in rows]))
            collapse[rows] = model.collapse_probability([table.params[i] for i in rows])
    rows = np.array([np.flatnonzero((table.config == c) & complete)[0] for c in configs])
    learned = rows[~table.collapsed[rows]]
    first, second = table.seed_pairs()
    pairs = complete[first] & complete[second]
    first, second = first[pairs], second[pairs]
    both_learned = ~table.collapsed[first] & ~table.collapsed[second]
    results = []
    for epoch in epochs:
        e = epoch - 1
        truth, guess = table.values[rows, e], predicted[rows, e]
        a, b = table.values[first, e], table.values[second, e]
        results.append(Validation(
            epoch=epoch, configurations=len(rows),
            surrogate_rmse=float(np.sqrt(np.mean((guess - truth) ** 2))),
            seed_rmse=float(np.sqrt(np.mean((a - b) ** 2))),
            surrogate_median_error=float(np.median(np.abs(learned_curve[learned, e] - table.values[learned, e]))),
            seed_median_error=float(np.median(np.abs(a[both_learned] - b[both_learned]))),
            spearman=float(spearmanr(guess, truth).statistic),
            seed_spearman=float(spearmanr(a, b).statistic),
            collapse_hits=float(np.mean((collapse[rows] > 0.5) == table.collapsed[rows])),
        ))
    return results


lstm_table = LstmTable()
