"""Errors that are the user's to fix.

Anything raised as a :class:`UsageError` is caught by the CLI, printed as one line and
turned into exit code 2. Everything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UsageError(Exception):
    """Bad input from the user: a flag, a file, a name. The message is the whole story."""


class SearchSpaceError(UsageError):
    """A search-space file that cannot be used; the message names the file and the parameter."""


class DataError(UsageError):
    """A data file that is missing or not in Keras's MNIST layout."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the trial is recorded as failed."""


class TrialPruned(Exception):
    """Raised by an objective when its reporter says to stop (``reporter.should_prune()``).

    The trial is recorded as PRUNED with the last value it reported. Optuna's own
    ``optuna.TrialPruned`` is accepted too, so objectives written for Optuna work unchanged.
    """
