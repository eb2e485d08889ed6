"""MNIST (or any npz in Keras's MNIST layout) as sequences of rows.

The packaged file makes the tool work offline; ``--data PATH`` takes another copy or
Fashion-MNIST saved the same way. A search reads only ``x_train``/``y_train``: the test
arrays are opened by :func:`load_test`, which only final training calls.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from hho_tune.errors import DataError

VALIDATION_SIZE = 5_000
NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28)
PACKAGED_MNIST = "mnist.npz"


def packaged_mnist_path() -> Path:
    """Path of the MNIST copy shipped inside the package."""
    return Path(str(resources.files("hho_tune.resources").joinpath(PACKAGED_MNIST)))


@dataclass(frozen=True)
class Split:
    """Images as float32 in [0, 1] with shape (n, 28, 28): 28 time steps of 28 features."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def head(self, n: int) -> Split:
        return Split(self.x[:n], self.y[:n])


@dataclass(frozen=True)
class TrainValidation:
    train: Split
    validation: Split
    source: str


def load_train_validation(path: str | Path | None = None, *, train_size: int | None = None) -> TrainValidation:
    """Training images less the last 5,000, which are the validation set.

    ``train_size`` keeps the first n training images (a lower fidelity for fast searches).
    """
    path = Path(path) if path is not None else packaged_mnist_path()
    x, y = _read_pair(path, "x_train", "y_train")
    if len(y) <= VALIDATION_SIZE:
        raise DataError(f"{path}: x_train has {len(y)} images; need more than the {VALIDATION_SIZE} kept for validation")
    available = len(y) - VALIDATION_SIZE
    if train_size is not None and not 1 <= train_size <= available:
        raise DataError(f"{path}: --train-size must be between 1 and {available}, got {train_size}")
    n_train = available if train_size is None else train_size
    train = Split(_as_sequences(x[:n_train]), y[:n_train].astype(np.int32))
    validation = Split(_as_sequences(x[available:]), y[available:].astype(np.int32))
    return TrainValidation(train=train, validation=validation, source=str(path))


def load_test(path: str | Path | None = None) -> Split:
    """The 10,000 test images: for final training only, never during a search."""
    path = Path(path) if path is not None else packaged_mnist_path()
    x, y = _read_pair(path, "x_test", "y_test")
    return Split(_as_sequences(x), y.astype(np.int32))


def validate_file(path: str | Path) -> None:
    """Check the training arrays of a data file without keeping them (for early, clear errors)."""
    _read_pair(Path(path), "x_train", "y_train")


def _read_pair(path: Path, x_key: str, y_key: str) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in (x_key, y_key) if key not in archive.files]
            if missing:
                raise DataError(
                    f"{path}: missing array {missing[0]!r} (expected x_train, y_train, x_test, y_test "
                    f"as saved by keras.datasets.mnist; found {', '.join(archive.files) or 'none'})"
                )
            x, y = archive[x_key], archive[y_key]
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({type(exc).__name__}: {exc})") from None
    _check_arrays(path, x_key, x, y_key, y)
    return x, y


def _check_arrays(path: Path, x_key: str, x: np.ndarray, y_key: str, y: np.ndarray) -> None:
    if x.ndim != 3 or x.shape[1:] != IMAGE_SHAPE:
        raise DataError(f"{path}: {x_key} has shape {x.shape}; expected (n, 28, 28)")
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"{path}: {y_key} has shape {y.shape}; expected ({len(x)},) to match {x_key}")
    if x.dtype != np.uint8:
        raise DataError(f"{path}: {x_key} has dtype {x.dtype}; expected uint8 pixels 0..255")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{path}: {y_key} has dtype {y.dtype}; expected integer labels 0..9")
    if len(y) and (y.min() < 0 or y.max() >= NUM_CLASSES):
        raise DataError(f"{path}: {y_key} holds labels {int(y.min())}..{int(y.max())}; expected 0..9")


def _as_sequences(x: np.ndarray) -> np.ndarray:
    # Each image is 28 time steps of 28 pixels: the row-by-row reading of the exercise.
    return (x.astype(np.float32) / 255.0).reshape(-1, *IMAGE_SHAPE)
