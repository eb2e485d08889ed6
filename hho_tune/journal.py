"""A journal file for Optuna's JournalStorage that writes many operations in one append.

Kept apart from ledger.py so that importing the package does not import Optuna.
"""

from __future__ import annotations

import os
from typing import Any

from optuna.storages.journal import BaseJournalBackend, JournalFileBackend


class BufferedJournal(BaseJournalBackend):
    """An Optuna journal file whose appends wait in memory until :meth:`flush`; reads see them at once.

    Optuna's ``JournalStorage`` appends one log per operation and reads back what is new after
    each; :class:`JournalFileBackend` takes a file lock, writes and fsyncs every append. Here
    the logs of many operations go to the file in one append (one lock, one write, one fsync).
    Correct only while no other process writes the file: JournalStorage numbers trials by their
    position in the journal, and another writer's logs would land between ours. Readers
    (optuna-dashboard, a resume after a kill) see the file as of the last flush.

    A kill can cut a large append short, mid-line. Optuna's reader skips such a last line, but
    the next append would glue onto it and make a line no reader can parse, so the cut line is
    removed when the journal is opened (no other process writes it, so nothing is mid-write).
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._file = JournalFileBackend(path)
        _drop_cut_line(path)
        self._written = -1  # logs in the file, all read by the storage; -1 before the first read
        self._pending: list[dict[str, Any]] = []

    def read_logs(self, log_number_from: int) -> list[dict[str, Any]]:
        if self._written < 0 or log_number_from < self._written:
            logs = list(self._file.read_logs(log_number_from))
            self._written = log_number_from + len(logs)
            return logs + self._pending
        return self._pending[log_number_from - self._written:]

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        self._pending.extend(logs)

    def flush(self) -> None:
        """Write what waits, in one append; exact even when Ctrl-C interrupts it."""
        if not self._pending:
            return
        size = os.path.getsize(self._path)
        try:
            self._file.append_logs(self._pending)
        finally:
            if os.path.getsize(self._path) != size:  # written, whether or not an interrupt followed
                self._written += len(self._pending)
                self._pending = []


def _drop_cut_line(path: str, *, block: int = 1 << 16) -> None:
    """Truncate the file after its last newline: what follows is an append a kill cut short."""
    with open(path, "rb+") as handle:
        end = handle.seek(0, os.SEEK_END)
        position = end
        while position > 0:
            start = max(0, position - block)
            handle.seek(start)
            newline = handle.read(position - start).rfind(b"\n")
            if newline >= 0:
                keep = start + newline + 1
                break
            position = start
        else:
            keep = 0
        if keep < end:
            handle.truncate(keep)
