"""Shared fixtures: tiny data files and cheap objectives, so the suite runs in minutes on 2 cores."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# The tests' trainings take milliseconds, too little to start workers for: start them whatever is left
# (tests/test_parallel.py checks the bar itself).
os.environ.setdefault("HHO_TUNE_WORKERS_PAY_OFF_SECONDS", "0")

from hho_tune.data import VALIDATION_SIZE, packaged_mnist_path
from hho_tune.space import SearchSpace

TINY_TRAIN = 300


def write_mnist_like(path: Path, *, n_train: int, n_test: int) -> Path:
    """A real MNIST subset in Keras's layout: n_train images plus the 5,000 validation ones."""
    with np.load(packaged_mnist_path()) as mnist:
        x_train = np.concatenate([mnist["x_train"][:n_train], mnist["x_train"][-VALIDATION_SIZE:]])
        y_train = np.concatenate([mnist["y_train"][:n_train], mnist["y_train"][-VALIDATION_SIZE:]])
        np.savez(path, x_train=x_train, y_train=y_train, x_test=mnist["x_test"][:n_test], y_test=mnist["y_test"][:n_test])
    return path


@pytest.fixture(scope="session")
def tiny_mnist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mnist_like(tmp_path_factory.mktemp("data") / "tiny.npz", n_train=TINY_TRAIN, n_test=200)


@pytest.fixture
def mixed_space() -> SearchSpace:
    """Three dimensions like the default space: a log float, a log int and a small int."""
    return SearchSpace.from_dict({"parameters": {
        "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
        "decay_steps": {"type": "int", "low": 10, "high": 10000, "log": True},
        "num_layers": {"type": "int", "low": 1, "high": 3},
    }})


def surrogate(params: dict) -> float:
    """A smooth stand-in for validation accuracy on the default space (maximized)."""
    return float(
        1.0
        - 0.05 * (np.log10(params["learning_rate"]) + 2.5) ** 2
        - 0.01 * (np.log10(params["decay_steps"]) - 3.0) ** 2
        + 0.01 * params["num_layers"]
    )
