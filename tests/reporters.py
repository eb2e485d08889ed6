"""A reporter for tests that call an objective directly, without the runner."""

from __future__ import annotations


class RecordingReporter:
    """Keeps what it hears and prunes after ``prune_after`` steps (never when None)."""

    def __init__(self, prune_after: int | None = None) -> None:
        self.reports: list[tuple[int, float]] = []
        self.prune_after = prune_after

    def report(self, value: float, step: int) -> None:
        self.reports.append((step, value))

    def should_prune(self) -> bool:
        return self.prune_after is not None and len(self.reports) >= self.prune_after
