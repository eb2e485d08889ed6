"""Record the LSTM table behind ``hho_tune.benchmarks:lstm_table``, and build the packaged CSV from the runs.

The table is two ordinary, resumable hho-tune runs of a space-filling design: Optuna's
QMCSampler (an unscrambled Sobol sequence; its trial 0 is a random point, its trials 1, 2, ...
the Sobol points, the same at every seed). Run A trains 96 Sobol points for 6 epochs at
training seed 0; run B trains the first 32 again at training seed 1, so the noise between
seeds is measured on a third of the table::

    hho-tune --optimizer optuna:QMCSampler --budget 97 --epochs 6 --seed 0 --out table
    hho-tune --optimizer optuna:QMCSampler --budget 33 --epochs 6 --seed 1 --out table
    python bench/lstm_table_record.py table/<run A> table/<run B>   # -> hho_tune/resources/lstm_table.csv

A cut-off run resumes with ``hho-tune --resume table/<run>``. Every trial reports the
validation accuracy after each epoch and the seconds the epoch took to learning_curves.csv;
this script joins those curves with trials.csv, gives the same configuration the same
``config`` number in both runs, and writes the long table (:data:`hho_tune.lstm_table.TABLE_COLUMNS`).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from hho_tune.curves import read_curves
from hho_tune.lstm_table import PARAMETERS, TABLE_COLUMNS, TABLE_FILE

PACKAGED = Path(__file__).resolve().parent.parent / "hho_tune" / "resources" / TABLE_FILE


def _key(row: dict[str, str]) -> tuple[str, ...]:
    return tuple(f"{float(row[f'params_{name}']):.10g}" for name in PARAMETERS)


def build(run_dirs: list[Path], out: Path) -> int:
    """Join each run's trials and curves into the long table; returns the number of (configuration, seed) rows."""
    configs: dict[tuple[str, ...], int] = {}
    written = 0
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(TABLE_COLUMNS)
        for run_dir in run_dirs:
            run = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
            if run["fidelity"].get("train_size") != 10_000:
                raise SystemExit(f"{run_dir}: trained on {run['fidelity'].get('train_size')} images, not the search's 10,000")
            seed = int(run["seed"])
            curves = read_curves(run_dir)
            with open(run_dir / "trials.csv", newline="", encoding="utf-8") as trials:
                for row in csv.DictReader(trials):
                    config = configs.setdefault(_key(row), len(configs))
                    params = [row[f"params_{name}"] for name in PARAMETERS]
                    curve = curves.get(int(row["number"]), ())
                    for epoch, value, seconds in curve:
                        writer.writerow([config, seed, *params, epoch, repr(value), f"{seconds:.3f}"])
                    if not curve:  # a trial that failed before its first epoch: recorded, without values
                        writer.writerow([config, seed, *params, "", "", ""])
                    written += 1
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="the run directories, seed 0 first")
    parser.add_argument("--out", type=Path, default=PACKAGED)
    args = parser.parse_args()
    rows = build(args.runs, args.out)
    print(f"{rows} trainings -> {args.out}")


if __name__ == "__main__":
    main()
