"""How good is ``lstm_table``'s surrogate? Held-out error against the noise between two seeds, and rank correlation.

    python bench/lstm_table_validate.py            # the packaged table, the packaged settings
    python bench/lstm_table_validate.py --grid     # and the choice of smoothing and layer weight

Each configuration (both its seeds) is held out in one of 8 folds and predicted by a surrogate
fitted to the other 7. Against one recorded seed, the surrogate's root-mean-square error is
set beside that of the second seed against the first (a surrogate as good as a second
training would err like it), and Spearman's rank correlation of the predictions with the
recorded values beside that of the two seeds.
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np

from hho_tune.lstm_table import (
    COLLAPSE_RIDGE,
    KERNEL,
    LAYER_WEIGHT,
    SMOOTHING,
    RecordedTable,
    SeedNoise,
    epoch_seconds,
    held_out_validation,
)

EPOCHS = (1, 2, 4, 6)


def report(table: RecordedTable, **settings: object) -> None:
    print(", ".join(f"{k} {v}" for k, v in settings.items()) + ":")
    print("  epoch | configs | RMSE surrogate / seeds | median error (learned) surrogate / seeds "
          "| Spearman surrogate / seeds | collapse called")
    for v in held_out_validation(table, epochs=EPOCHS, **settings):
        print(f"  {v.epoch:5d} | {v.configurations:7d} | {100 * v.surrogate_rmse:6.2f} / {100 * v.seed_rmse:5.2f} pt "
              f"| {100 * v.surrogate_median_error:6.2f} / {100 * v.seed_median_error:5.2f} pt "
              f"| {v.spearman:6.3f} / {v.seed_spearman:6.3f} | {v.collapse_hits:.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grid", action="store_true", help="also score a grid of smoothings and layer weights")
    args = parser.parse_args()
    table = RecordedTable.load()
    first, _ = table.seed_pairs()
    failed = int(np.sum(~np.all(np.isfinite(table.values), axis=1)))
    print(f"table: {len(table.config)} trainings of {len(np.unique(table.config))} configurations, "
          f"{len(first)} with two seeds, {table.epochs} epochs, {failed} without a full curve")
    noise = SeedNoise.measure(table)
    print("seed noise, sd of one seed in logit units by epoch:", np.round(np.sqrt(np.diag(noise.covariance)), 3))
    for layers, seconds in epoch_seconds(table).items():
        print(f"median seconds per epoch at {layers} layer(s):", np.round(seconds, 2))
    collapsed = table.collapsed
    print(f"collapsed to chance: {int(collapsed.sum())} trainings; configurations with two seeds that collapsed at "
          f"one only: {int(np.sum(collapsed[first] != collapsed[table.seed_pairs()[1]]))}")
    report(table, kernel=KERNEL, smoothing=SMOOTHING, layer_weight=LAYER_WEIGHT, ridge=COLLAPSE_RIDGE)
    if args.grid:
        print("grid (means over the epochs above: median error of learned trainings, accuracy points; Spearman):")
        grid = itertools.product(("thin_plate_spline", "cubic"), (0.0, 0.03, 0.1, 0.3, 1.0), (0.5, 1.0, 2.0), (0.01, 0.1, 1.0))
        for kernel, smoothing, weight, ridge in grid:
            results = held_out_validation(table, epochs=EPOCHS, kernel=kernel, smoothing=smoothing, layer_weight=weight,
                                          ridge=ridge)
            error = np.mean([v.surrogate_median_error for v in results])
            rmse = np.mean([v.surrogate_rmse for v in results])
            rho = np.mean([v.spearman for v in results])
            hits = np.mean([v.collapse_hits for v in results])
            print(f"  {kernel:17s} smoothing {smoothing:4g} layer weight {weight:3g} ridge {ridge:4g}: "
                  f"median error {100 * error:5.2f} pt, RMSE {100 * rmse:5.2f} pt, Spearman {rho:.3f}, collapse {hits:.0%}")


if __name__ == "__main__":
    main()
