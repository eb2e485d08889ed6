"""Data: the packaged MNIST, the split, and one clear error for every bad file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hho_tune import data
from hho_tune.data import VALIDATION_SIZE, load_test, load_train_validation, packaged_mnist_path
from hho_tune.errors import DataError


def test_packaged_mnist_split() -> None:
    split = load_train_validation(train_size=1000)
    assert split.train.x.shape == (1000, 28, 28) and split.train.x.dtype == np.float32
    assert split.validation.x.shape == (VALIDATION_SIZE, 28, 28)
    assert split.train.x.min() >= 0.0 and split.train.x.max() <= 1.0
    with np.load(packaged_mnist_path()) as mnist:
        np.testing.assert_array_equal(split.validation.y, mnist["y_train"][-VALIDATION_SIZE:])
        np.testing.assert_array_equal(split.train.y, mnist["y_train"][:1000])
    full = load_train_validation()
    assert len(full.train) == 55_000
    assert load_test().x.shape == (10_000, 28, 28)


def test_a_search_never_reads_the_test_arrays(monkeypatch: pytest.MonkeyPatch) -> None:
    read: list[str] = []
    original_load = np.load

    class Spy:
        def __init__(self, archive: np.lib.npyio.NpzFile) -> None:
            self.archive, self.files = archive, archive.files

        def __getitem__(self, key: str) -> np.ndarray:
            read.append(key)
            return self.archive[key]

        def __enter__(self) -> Spy:
            return self

        def __exit__(self, *args: object) -> None:
            self.archive.close()

    monkeypatch.setattr(data.np, "load", lambda *a, **k: Spy(original_load(*a, **k)))
    load_train_validation(train_size=100)
    assert read == ["x_train", "y_train"]


def save(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def good_arrays(n: int = 5_010) -> dict[str, np.ndarray]:
    return {
        "x_train": np.zeros((n, 28, 28), np.uint8), "y_train": np.arange(n, dtype=np.uint8) % 10,
        "x_test": np.zeros((20, 28, 28), np.uint8), "y_test": np.arange(20, dtype=np.uint8) % 10,
    }


def test_a_file_in_the_right_layout_loads(tmp_path: Path) -> None:
    split = load_train_validation(save(tmp_path / "ok.npz", **good_arrays()))
    assert len(split.train) == 10 and len(split.validation) == VALIDATION_SIZE


@pytest.mark.parametrize(("change", "expected"), [
    ({"x_train": None}, "missing array 'x_train'"),
    ({"y_train": None}, "missing array 'y_train'"),
    ({"x_train": np.zeros((5_010, 32, 32), np.uint8)}, "x_train has shape (5010, 32, 32); expected (n, 28, 28)"),
    ({"x_train": np.zeros((5_010, 784), np.uint8)}, "expected (n, 28, 28)"),
    ({"y_train": np.zeros((5_009,), np.uint8)}, "y_train has shape (5009,)"),
    ({"x_train": np.zeros((5_010, 28, 28), np.float32)}, "x_train has dtype float32; expected uint8"),
    ({"y_train": np.zeros((5_010,), np.float64)}, "y_train has dtype float64; expected integer labels"),
    ({"y_train": np.full((5_010,), 10, np.uint8)}, "labels 10..10; expected 0..9"),
    ({"x_train": np.zeros((100, 28, 28), np.uint8), "y_train": np.zeros((100,), np.uint8)}, "need more than"),
])
def test_wrong_layouts_get_one_clear_error(tmp_path: Path, change: dict, expected: str) -> None:
    arrays = {**good_arrays(), **change}
    path = save(tmp_path / "bad.npz", **{k: v for k, v in arrays.items() if v is not None})
    with pytest.raises(DataError) as error:
        load_train_validation(path)
    assert str(path) in str(error.value) and expected in str(error.value)


def test_missing_empty_truncated_and_foreign_files(tmp_path: Path) -> None:
    good = save(tmp_path / "good.npz", **good_arrays())
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:2000])
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    for path, expected in [(tmp_path / "nope.npz", "data file not found"), (truncated, "not a readable .npz"),
                           (empty, "not a readable .npz"), (text, "not a readable .npz"),
                           (tmp_path, "data file not found")]:
        with pytest.raises(DataError, match=expected):
            load_train_validation(path)


def test_train_size_out_of_range(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="--train-size must be between 1 and 10"):
        load_train_validation(save(tmp_path / "ok.npz", **good_arrays()), train_size=11)
