from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from hho_tune.errors import SearchSpaceError
from hho_tune.objective import LSTM_DOMAINS, PARAMETER_NAMES, LstmConfig, LstmObjective, check_lstm_space
from hho_tune.space import Domain, Param, SearchSpace, check_space

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
        check_lstm_space(SearchSpace.load(path))  # names, domains and all


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


# --- the objective's domains ----------------------------------------------------------------


def test_domains_contain_and_describe_their_values() -> None:
    positive, count, rate = Domain(low=0, low_open=True), Domain(kind="int", low=1), Domain(low=0, low_open=True, high=1)
    assert (positive.describe(), count.describe(), rate.describe()) == ("> 0", ">= 1 (a whole number)", "in (0, 1]")
    assert positive.contains(1e-9) and not positive.contains(0) and not positive.contains(-1)
    assert count.contains(1) and count.contains(3.0) and count.contains(np.int64(7))
    assert not count.contains(0) and not count.contains(2.5)
    assert rate.contains(1) and rate.contains(0.5) and not rate.contains(0) and not rate.contains(1.01)
    for nonsense in (math.nan, math.inf, True, "3", None):
        assert not positive.contains(nonsense) and not count.contains(nonsense)


def test_every_lstm_parameter_has_a_domain_and_the_defaults_lie_in_it() -> None:
    assert set(LSTM_DOMAINS) == set(PARAMETER_NAMES)
    LstmConfig()  # the exercise's values pass the same check


# A file, the parameter its one line must name, and what it must say. Every one of these was
# accepted before, and every trial landing on the bad value failed at training time.
BAD_FOR_THE_LSTM = [
    ("parameters: {batch_size: {type: int, low: 0, high: 64}}", "batch_size", "low 0 is outside"),
    ("parameters: {lstm_units: {type: int, low: -5, high: 64}}", "lstm_units", "low -5 is outside"),
    ("parameters: {num_layers: {type: int, low: 0, high: 3}}", "num_layers", "low 0 is outside"),
    ("parameters: {decay_steps: {type: int, low: 0, high: 100}}", "decay_steps", "low 0 is outside"),
    ("parameters: {learning_rate: {type: float, low: 0, high: 0.1}}", "learning_rate", "low 0 is outside"),
    ("parameters: {learning_rate: {type: float, low: -0.1, high: 0.1}}", "learning_rate", "must be > 0"),
    ("parameters: {decay_epochs: {type: float, low: 0, high: 2}}", "decay_epochs", "low 0 is outside"),
    ("parameters: {decay_rate: {type: float, low: 0.5, high: 1.5}}", "decay_rate", "high 1.5 is outside"),
    ("parameters: {decay_rate: {type: float, low: 0, high: 1}}", "decay_rate", "must be in (0, 1]"),
    ("parameters: {num_layers: {type: float, low: 1, high: 3}}", "num_layers", "use type: int"),
    ("parameters: {learning_rate: {type: float, low: 0.001, high: 0.01}}\nfixed: {lstm_units: -5}",
     "lstm_units", "fixed value -5 is outside"),
    ("parameters: {learning_rate: {type: float, low: 0.001, high: 0.01}}\nfixed: {batch_size: 32.5}",
     "batch_size", "fixed value 32.5 is outside"),
    ("parameters: {learning_rate: {type: float, low: 0.001, high: 0.01}}\nfixed: {decay_rate: 0}",
     "decay_rate", "fixed value 0 is outside"),
    ("parameters: {learning_rate: {type: float, low: 0.001, high: 0.01}}\nfixed: {num_layers: two}",
     "num_layers", "fixed value 'two' is not a number"),
    ("parameters: {learning_rate: {type: float, low: 0.001, high: 0.01}}\nfixed: {num_layers: true}",
     "num_layers", "fixed value True"),
    ("parameters: {decay_steps: {type: int, low: 10, high: 100}}\nfixed: {decay_epochs: 0.5}",
     "decay_epochs", "not both"),
]


@pytest.mark.parametrize(("text", "parameter", "expected"), BAD_FOR_THE_LSTM,
                         ids=[f"{p}-{i}" for i, (_, p, _) in enumerate(BAD_FOR_THE_LSTM)])
def test_bounds_outside_the_lstm_domain_are_refused_naming_file_and_parameter(
    tmp_path: Path, text: str, parameter: str, expected: str,
) -> None:
    path = write(tmp_path, text)
    space = SearchSpace.load(path)  # a valid space in itself: only the objective knows its domain
    with pytest.raises(SearchSpaceError) as error:
        check_lstm_space(space)
    message = str(error.value)
    assert message.startswith(f"{path}: parameter {parameter!r}") and expected in message, message
    assert "\n" not in message
    with pytest.raises(SearchSpaceError):
        LstmObjective.check_space(space)  # the hook, on the class: no data are loaded for it
    with pytest.raises(SearchSpaceError):
        check_space(LstmObjective, space)


def test_values_on_the_edge_of_the_domain_are_accepted(tmp_path: Path) -> None:
    check_lstm_space(SearchSpace.load(write(tmp_path, """
parameters:
  decay_rate: {type: float, low: 0.5, high: 1}
  batch_size: {type: int, low: 1, high: 8}
  learning_rate: {type: int, low: 1, high: 2}
fixed: {lstm_units: 16.0, num_layers: 1, decay_steps: 1}
""")))


def test_check_space_is_a_hook_any_objective_may_offer(tmp_path: Path) -> None:
    """tune() asks the objective before anything is made; an objective without the hook is trusted."""
    from hho_tune import tune

    space = SearchSpace.from_dict({"parameters": {"x": {"type": "float", "low": -1, "high": 1}}}, source="mine.yaml")

    def objective(params: dict) -> float:
        return params["x"] ** 2

    def refuse(space: SearchSpace) -> None:
        SearchSpace.check_domains(space, {"x": Domain(low=0)}, objective="my function")

    objective.check_space = refuse  # type: ignore[attr-defined]
    with pytest.raises(SearchSpaceError, match=r"mine.yaml: parameter 'x': low -1 is outside what my function accepts"):
        tune(objective, space, optimizer="random", budget=3, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    del objective.check_space
    assert tune(objective, space, optimizer="random", budget=3, out=tmp_path / "out").outcome.evaluations == 3
