from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from hho_tune.errors import SearchSpaceError
from hho_tune.objective import PARAMETER_NAMES
from hho_tune.space import Param, SearchSpace

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


def test_default_space_matches_the_issue() -> None:
    """Learning rate, decay and layers; the decay counted in epochs (README, "Search spaces")."""
    space = SearchSpace.load(REPO / "search_spaces" / "lstm_mnist.yaml")
    assert space.names == ("learning_rate", "decay_epochs", "num_layers")
    lr, decay, layers = space.params
    assert (lr.kind, lr.low, lr.high, lr.log) == ("float", 1e-4, 1e-1, True)
    assert (decay.kind, decay.low, decay.high, decay.log) == ("float", 0.05, 2, True)
    assert (layers.kind, layers.low, layers.high, layers.log) == ("int", 1, 3, False)
    space.check_names(PARAMETER_NAMES, objective="the LSTM fitness")


def test_every_space_file_is_valid_for_the_lstm() -> None:
    files = sorted((REPO / "search_spaces").glob("*.yaml"))
    assert files
    for path in files:
        SearchSpace.load(path).check_names(PARAMETER_NAMES, objective="the LSTM fitness")


def test_log_float_decodes_on_its_log_scale() -> None:
    lr = Param("learning_rate", "float", 1e-4, 1e-1, log=True)
    assert lr.from_unit(0.0) == pytest.approx(1e-4)
    assert lr.from_unit(1.0) == pytest.approx(1e-1)
    assert lr.from_unit(0.5) == pytest.approx(math.sqrt(1e-4 * 1e-1))
    for u in np.linspace(0, 1, 11):
        assert lr.to_unit(lr.from_unit(u)) == pytest.approx(u)


def test_integers_get_bins_of_equal_width() -> None:
    layers = Param("num_layers", "int", 1, 3)
    values = [layers.from_unit(u) for u in np.linspace(0, 1, 30001)]
    counts = np.bincount(values)[1:]
    assert counts.tolist() == pytest.approx([10000, 10000, 10000], rel=0.01)
    assert all(isinstance(v, int) for v in values)
    assert [layers.from_unit(layers.to_unit(v)) for v in (1, 2, 3)] == [1, 2, 3]


def test_log_integers_cover_both_ends_and_stay_in_bounds() -> None:
    decay = Param("decay_steps", "int", 10, 10000, log=True)
    values = {decay.from_unit(u) for u in np.linspace(0, 1, 5001)}
    assert min(values) == 10 and max(values) == 10000
    assert decay.from_unit(-3.0) == 10 and decay.from_unit(7.0) == 10000
    assert decay.from_unit(decay.to_unit(250)) == 250


def test_key_identifies_configurations_after_a_round_trip(mixed_space: SearchSpace) -> None:
    params = mixed_space.from_unit([0.3, 0.6, 0.9])
    again = mixed_space.from_unit(mixed_space.to_unit(params))
    assert mixed_space.key(params) == mixed_space.key(again)


def test_fixed_values_reach_the_objective(tmp_path: Path) -> None:
    space = SearchSpace.load(write(tmp_path, """
parameters:
  learning_rate: {type: float, low: 0.001, high: 0.01, log: true}
fixed:
  lstm_units: 64
"""))
    assert space.full_params({"learning_rate": 0.002}) == {"lstm_units": 64, "learning_rate": 0.002}


@pytest.mark.parametrize(("text", "expected"), [
    ("parameters: {learning_rate: {type: float, low: 0.1, high: 0.01}}", "'learning_rate': low (0.1) must be below high"),
    ("parameters: {learning_rate: {type: float, low: 0, high: 1, log: true}}", "'learning_rate': a log scale needs low > 0"),
    ("parameters: {decay_steps: {type: int, low: 1.5, high: 10}}", "'decay_steps': low must be a whole number"),
    ("parameters: {x: {type: complex, low: 0, high: 1}}", "'x': type must be one of float, int"),
    ("parameters: {x: {type: float, low: 0}}", "'x': missing 'high'"),
    ("parameters: {x: {type: float, low: 0, high: 1, step: 2}}", "'x': unknown key 'step'"),
    ("parameters: {x: {type: float, low: a, high: 1}}", "'x': low must be a finite number"),
    ("parameters: {x: {type: float, low: 0, high: .inf}}", "'x': high must be a finite number"),
    ("parameters: {x: {type: float, low: 0, high: 1, log: maybe}}", "'x': 'log' must be true or false"),
    ("parameters: {x: 3}", "parameter 'x' needs a mapping"),
    ("parameters: {}", "'parameters' must be a non-empty mapping"),
    ("params: {x: {type: float, low: 0, high: 1}}", "unknown section 'params'"),
    ("- just\n- a list", "expected a mapping"),
    ("parameters: {x: {type: float, low: 0, high: 1}\n", "malformed YAML"),
    ("", "the file is empty"),
])
def test_bad_space_files_name_the_file_and_the_parameter(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SearchSpaceError) as error:
        SearchSpace.load(path)
    assert str(path) in str(error.value)
    assert expected in str(error.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SearchSpaceError, match="search-space file not found"):
        SearchSpace.load(tmp_path / "nope.yaml")


def test_unknown_name_for_the_lstm_names_file_and_parameter(tmp_path: Path) -> None:
    path = write(tmp_path, "parameters: {dropout: {type: float, low: 0, high: 0.5}}")
    with pytest.raises(SearchSpaceError) as error:
        SearchSpace.load(path).check_names(PARAMETER_NAMES, objective="the LSTM fitness")
    assert str(path) in str(error.value) and "'dropout'" in str(error.value)


def test_a_parameter_cannot_be_both_searched_and_fixed(tmp_path: Path) -> None:
    path = write(tmp_path, "parameters: {lstm_units: {type: int, low: 8, high: 64}}\nfixed: {lstm_units: 100}")
    with pytest.raises(SearchSpaceError, match="'lstm_units' is defined twice"):
        SearchSpace.load(path)
