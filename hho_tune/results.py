"""Run directories: trials.csv, leaderboard.csv, run.json, and results/leaderboard.csv.

Every trial is appended to trials.csv the moment it ends and flushed from Python's buffer to
the operating system, so a killed process (even ``kill -9``) keeps every row it finished: the
file stays open for the run, and each row costs one ``write``. What only power loss or an OS
crash could take, data the kernel has not yet put on disk, is bounded by an ``fsync`` at most
every :data:`FSYNC_SECONDS` and one when the run ends.

leaderboard.csv is derived data (trials.csv sorted), so it is not rewritten after every trial,
which cost O(trials) each time: it is replaced atomically at most every
:data:`LEADERBOARD_SECONDS` (less often when rewriting it would take more than
:data:`LEADERBOARD_SHARE` of the run's time), when the run ends or is interrupted, and when a
run is resumed. A trial that takes a second or more still updates it as soon as it ends; after
a ``kill -9`` it may lack the last second of trials until the run is resumed.

The shared results/leaderboard.csv is updated under an exclusive file lock, so runs that
finish at the same time do not overwrite each other's rows.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import re
import tempfile
import time
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
FSYNC_SECONDS = 1.0  # trials.csv: at most one fsync a second while the run goes (and one at its end)
LEADERBOARD_SECONDS = 1.0  # leaderboard.csv: rewritten at most once a second while the run goes ...
LEADERBOARD_SHARE = 0.05  # ... and less often if rewriting it would take more than 5% of the time
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
    """Writes one run's files as the run goes; a listener of the runner (through api.py).

    Each trial is formatted as a CSV line once; trials.csv gets it at once, and the leaderboard
    is those lines reordered, so neither file costs more per trial as the run grows. Call
    :meth:`close` when the run ends or is interrupted: it syncs trials.csv and brings the
    leaderboard up to date.
    """

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

        The rewrite is atomic and drops a row that a kill left half-written; the leaderboard is
        rewritten too, since a kill may have left it behind trials.csv.
        """
        self.run_dir = run_dir
        self.space = space
        self.direction = direction
        self.context = dict(context)  # optimizer, seed, epochs, train_size: repeated on every row
        self.columns = trial_columns(space)
        self._names = space.names
        self._buffer = io.StringIO()
        self._csv = csv.writer(self._buffer)
        self.trials: list[Trial] = list(history)
        self._lines: dict[int, str] = {t.number: self._line(t) for t in self.trials}  # by trial number
        with atomic_write(self.trials_path) as handle:
            handle.write(self._format(self.columns))
            handle.writelines(self._lines.values())
        self._handle: Any = None  # trials.csv, opened for appending at the first trial
        self._sync_due = 0.0  # time.monotonic() from which the next fsync may happen
        self._leaderboard_due = 0.0  # ... and the next leaderboard rewrite
        self._leaderboard_stale = False  # trials recorded since the last rewrite
        if self.trials:
            self.write_leaderboard()

    @property
    def trials_path(self) -> Path:
        return self.run_dir / TRIALS_FILE

    def append(self, trial: Trial) -> None:
        """Add a row to trials.csv (in the OS when this returns); the leaderboard when it is due."""
        line = self._line(trial)
        self.trials.append(trial)
        self._lines[trial.number] = line
        if self._handle is None:
            self._handle = open(self.trials_path, "a", newline="", encoding="utf-8")  # noqa: SIM115 (closed by close())
        self._handle.write(line)
        self._handle.flush()
        self._leaderboard_stale = True
        now = time.monotonic()
        if now >= self._sync_due:
            os.fsync(self._handle.fileno())
            self._sync_due = now + FSYNC_SECONDS
        if now >= self._leaderboard_due:
            self.write_leaderboard()

    def write_leaderboard(self) -> None:
        """Replace leaderboard.csv atomically: every trial best first, failed ones last."""
        started = time.monotonic()
        order = ranked(self.trials, self.direction)
        with atomic_write(self.run_dir / LEADERBOARD_FILE) as handle:
            handle.write(self._format(["rank", *self.columns]))
            handle.writelines(f"{rank},{self._lines[t.number]}" for rank, t in enumerate(order, start=1))
        finished = time.monotonic()
        self._leaderboard_due = finished + max(LEADERBOARD_SECONDS, (finished - started) / LEADERBOARD_SHARE)
        self._leaderboard_stale = False

    def close(self) -> None:
        """The end of the run (or its interruption): trials.csv on disk, the leaderboard up to date."""
        if self._handle is not None:
            os.fsync(self._handle.fileno())
            self._handle.close()
            self._handle = None
        if self._leaderboard_stale:
            self.write_leaderboard()

    def _line(self, trial: Trial) -> str:
        """The trial's row of trials.csv, as the csv module writes it (the leaderboard prefixes a rank)."""
        return self._format([
            trial.number,
            "" if trial.value is None else repr(trial.value),
            trial.state.value,
            f"{trial.duration:.3f}",
            trial.datetime_start.isoformat(),
            trial.datetime_complete.isoformat(),
            *[trial.params.get(name, "") for name in self._names],
            self.context.get("optimizer", ""), self.context.get("seed", ""),
            self.context.get("epochs", "") if trial.steps is None else trial.steps,  # a pruned trial: the epochs it trained
            self.context.get("train_size", ""),
            trial.error,
        ])

    def _format(self, fields: Sequence[Any]) -> str:
        self._buffer.seek(0)
        self._buffer.truncate()
        self._csv.writerow(fields)
        return self._buffer.getvalue()


def load_trials(run_dir: Path, space: SearchSpace) -> list[Trial]:
    """trials.csv parsed back into trials (for resume); a half-written last row is dropped.

    Their learning curves are in learning_curves.csv: :func:`hho_tune.curves.load_trials_with_curves`.
    """
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
    if state in (TrialState.COMPLETE, TrialState.PRUNED) and value is None:
        raise ValueError("a completed or pruned trial without a value")
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
