"""Run directories: trials.csv, leaderboard.csv, run.json, and results/leaderboard.csv.

Every trial is appended to trials.csv (flushed and fsynced) the moment it ends, and
leaderboard.csv is replaced atomically after it, so a killed run keeps all it finished.
The shared results/leaderboard.csv is updated under an exclusive file lock, so runs that
finish at the same time do not overwrite each other's rows.
"""

from __future__ import annotations

import csv
import fcntl
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hho_tune.errors import UsageError
from hho_tune.space import SearchSpace
from hho_tune.trial import Trial, TrialState, ranked

TRIALS_FILE = "trials.csv"
LEADERBOARD_FILE = "leaderboard.csv"
RUN_FILE = "run.json"
GLOBAL_LEADERBOARD_COLUMNS = [
    "run_id", "value", "direction", "objective", "optimizer", "seed", "budget", "evaluations",
    "epochs", "train_size", "space", "params", "finished", "run_dir",
]


def trial_columns(space: SearchSpace) -> list[str]:
    """Optuna's ``trials_dataframe()`` names where they fit, then our own."""
    return [
        "number", "value", "state", "duration", "datetime_start", "datetime_complete",
        *[f"params_{name}" for name in space.names],
        "optimizer", "seed", "epochs", "train_size", "error",
    ]


def check_writable(root: Path) -> None:
    """Refuse an output root that cannot be written, before anything is trained.

    Creates nothing that stays: a probe file is made in the nearest existing folder (the only
    test that root, network file systems and /proc all answer honestly) and removed at once.
    """
    existing = root.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{root}: output directory cannot be written ({existing} is not a directory)")
    try:
        with tempfile.TemporaryFile(dir=existing, prefix=".hho-tune-probe-"):
            pass
    except OSError as exc:
        raise UsageError(f"{root}: output directory cannot be written ({exc.strerror})") from None


def new_run_dir(root: Path, label: str) -> Path:
    """A fresh results/<run-id>/ directory; exclusive mkdir, so concurrent runs never share one."""
    base = f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', label)}"
    run_dir = create_unique_dir(root, base, attempts=1000, what="run directory")
    if run_dir is None:
        raise UsageError(f"{root}: too many runs named {base}")
    return run_dir


def create_unique_dir(root: Path, base: str, *, attempts: int, what: str) -> Path | None:
    """``root/base``, else ``root/base-2``, ... (exclusive mkdir); None when all ``attempts`` names exist."""
    check_writable(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{root}: cannot create output directory ({exc.strerror})") from None
    for attempt in range(attempts):
        candidate = root / (base if attempt == 0 else f"{base}-{attempt + 1}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise UsageError(f"{candidate}: cannot create the {what} ({exc.strerror})") from None
        return candidate
    return None


def make_named_run_dir(run_dir: Path) -> Path:
    """Create exactly ``run_dir`` (its parents too); refuse one that already exists."""
    check_writable(run_dir.parent)
    try:
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        run_dir.mkdir()
    except FileExistsError:
        raise UsageError(f"{run_dir}: run directory already exists") from None
    except OSError as exc:
        raise UsageError(f"{run_dir}: cannot create run directory ({exc.strerror})") from None
    return run_dir


class RunFiles:
    """Writes one run's files as the run goes; a listener of the runner."""

    def __init__(
        self,
        run_dir: Path,
        space: SearchSpace,
        *,
        direction: str,
        context: Mapping[str, Any],
        history: Sequence[Trial] = (),
    ) -> None:
        """Start trials.csv, or (resuming) rewrite it from ``history``, the trials parsed back from it.

        The rewrite is atomic and drops a row that a kill left half-written.
        """
        self.run_dir = run_dir
        self.space = space
        self.direction = direction
        self.context = dict(context)  # optimizer, seed, epochs, train_size: repeated on every row
        self.columns = trial_columns(space)
        self.trials: list[Trial] = list(history)
        with atomic_write(self.trials_path) as handle:
            writer = csv.DictWriter(handle, self.columns)
            writer.writeheader()
            writer.writerows(self._row(t) for t in self.trials)
        if self.trials:
            self.write_leaderboard()

    @property
    def trials_path(self) -> Path:
        return self.run_dir / TRIALS_FILE

    def append(self, trial: Trial) -> None:
        self.trials.append(trial)
        with open(self.trials_path, "a", newline="", encoding="utf-8") as handle:
            csv.DictWriter(handle, self.columns).writerow(self._row(trial))
            handle.flush()
            os.fsync(handle.fileno())
        self.write_leaderboard()

    def write_leaderboard(self) -> None:
        rows = [self._row(t) for t in ranked(self.trials, self.direction)]
        with atomic_write(self.run_dir / LEADERBOARD_FILE) as handle:
            writer = csv.DictWriter(handle, ["rank", *self.columns])
            writer.writeheader()
            for rank, row in enumerate(rows, start=1):
                writer.writerow({"rank": rank, **row})

    def _row(self, trial: Trial) -> dict[str, Any]:
        row: dict[str, Any] = {
            "number": trial.number,
            "value": "" if trial.value is None else repr(trial.value),
            "state": trial.state.value,
            "duration": f"{trial.duration:.3f}",
            "datetime_start": trial.datetime_start.isoformat(),
            "datetime_complete": trial.datetime_complete.isoformat(),
            "error": trial.error,
        }
        row.update({f"params_{name}": trial.params.get(name, "") for name in self.space.names})
        row.update({key: self.context.get(key, "") for key in ("optimizer", "seed", "epochs", "train_size")})
        return row


def load_trials(run_dir: Path, space: SearchSpace) -> list[Trial]:
    """trials.csv parsed back into trials (for resume); a half-written last row is dropped."""
    path = run_dir / TRIALS_FILE
    if not path.exists():
        return []
    trials: list[Trial] = []
    for row in _read_rows(path):
        try:
            trials.append(_trial_from_row(row, space))
        except (KeyError, ValueError, TypeError):
            break  # only the row being written when the process died can be incomplete
    return [t for i, t in enumerate(trials) if t.number == i]


def _trial_from_row(row: Mapping[str, str], space: SearchSpace) -> Trial:
    params = {
        p.name: int(row[f"params_{p.name}"]) if p.kind == "int" else float(row[f"params_{p.name}"])
        for p in space.params
    }
    state = TrialState(row["state"])
    value = float(row["value"]) if row["value"] else None
    if state is TrialState.COMPLETE and value is None:
        raise ValueError("a completed trial without a value")
    return Trial(
        number=int(row["number"]),
        params=params,
        value=value,
        state=state,
        datetime_start=datetime.fromisoformat(row["datetime_start"]),
        datetime_complete=datetime.fromisoformat(row["datetime_complete"]),
        error=row.get("error") or "",
    )


class RunLock:
    """An exclusive lock on a run directory, held while a process works in it.

    The kernel drops it when the process dies, however it dies, so a resume can tell a run
    that is still going from one whose process was killed.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / ".run.lock"
        self._handle: Any = None

    def __enter__(self) -> RunLock:
        self._handle = open(self.path, "a")
        try:
            fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._handle.close()
            raise UsageError(f"{self.path.parent}: another hho-tune process is working in this run") from None
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._handle, fcntl.LOCK_UN)
        self._handle.close()


def write_json(path: Path, document: Mapping[str, Any]) -> None:
    with atomic_write(path) as handle:
        json.dump(document, handle, indent=2, default=str)
        handle.write("\n")


@contextmanager
def atomic_write(path: Path) -> Iterator[Any]:
    """Write to a temporary file beside ``path`` and rename it over: readers never see half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def record_in_global_leaderboard(root: Path, entry: Mapping[str, Any]) -> None:
    """Add one run's best to ``root/leaderboard.csv``, best first, under an exclusive lock."""
    path = root / LEADERBOARD_FILE
    with open(root / ".leaderboard.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            rows = _read_rows(path) if path.exists() else []
            rows = [r for r in rows if r.get("run_id") != entry["run_id"]]
            rows.append({key: entry.get(key, "") for key in GLOBAL_LEADERBOARD_COLUMNS})
            rows.sort(key=_global_rank_key)
            with atomic_write(path) as handle:
                writer = csv.DictWriter(handle, GLOBAL_LEADERBOARD_COLUMNS, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(rows)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _global_rank_key(row: Mapping[str, Any]) -> tuple[str, float]:
    # Runs of different objectives are not comparable: group by objective, best first within.
    try:
        value = float(row.get("value") or "nan")
    except ValueError:
        value = float("nan")
    if value != value:
        return (str(row.get("objective", "")), float("inf"))
    signed = -value if row.get("direction", "maximize") == "maximize" else value
    return (str(row.get("objective", "")), signed)


def read_trials(run_dir: Path) -> list[dict[str, str]]:
    """trials.csv as rows of strings (for export, resume and tests)."""
    return _read_rows(run_dir / TRIALS_FILE)


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def params_json(params: Mapping[str, Any]) -> str:
    return json.dumps(dict(params), sort_keys=True)


def existing_runs(root: Path) -> Iterable[Path]:
    return sorted(p.parent for p in root.glob(f"*/{RUN_FILE}"))
