"""Search spaces: the ONLY place that knows a parameter's scale and type.

Optimizers that work on the unit cube (HHO, random search) call :meth:`SearchSpace.from_unit`
and never learn that the learning rate is log-scaled or that the layer count is an integer.
Optimizers with native distributions (Optuna) read :attr:`SearchSpace.params` directly.

File format (YAML)::

    parameters:
      learning_rate: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
      num_layers:    {type: int, low: 1, high: 3}
    fixed:            # optional: passed to the objective, never searched
      lstm_units: 100
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from hho_tune.errors import SearchSpaceError

ParamValue = float | int
Params = dict[str, ParamValue]

_KINDS = ("float", "int")
_PARAM_KEYS = {"type", "low", "high", "log"}


@dataclass(frozen=True)
class Param:
    """One searched dimension. Validated on construction so a bad bound never reaches an optimizer."""

    name: str
    kind: str
    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"type must be one of {', '.join(_KINDS)}, got {self.kind!r}")
        for bound_name, bound in (("low", self.low), ("high", self.high)):
            if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not math.isfinite(bound):
                raise ValueError(f"{bound_name} must be a finite number, got {bound!r}")
            if self.kind == "int" and float(bound) != int(bound):
                raise ValueError(f"{bound_name} must be a whole number for an int parameter, got {bound!r}")
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log scale needs low > 0, got low={self.low}")

    def from_unit(self, u: float) -> ParamValue:
        """Map u in [0, 1] to a value. Integers get bins of equal width on their own scale."""
        u = min(max(float(u), 0.0), 1.0)
        if self.kind == "float":
            if self.log:
                value = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
            else:
                value = self.low + u * (self.high - self.low)
            return min(max(value, self.low), self.high)
        lo, hi = self._int_edges()
        raw = self._scale_inverse(lo + u * (hi - lo))
        return int(min(max(round(raw), self.low), self.high))

    def to_unit(self, value: ParamValue) -> float:
        """Inverse of :meth:`from_unit` (the centre of an integer's bin)."""
        if self.kind == "float":
            if self.log:
                return (math.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
            return (value - self.low) / (self.high - self.low)
        lo, hi = self._int_edges()
        return (self._scale(value) - lo) / (hi - lo)

    def _scale(self, value: float) -> float:
        return math.log(value) if self.log else float(value)

    def _scale_inverse(self, scaled: float) -> float:
        return math.exp(scaled) if self.log else scaled

    def _int_edges(self) -> tuple[float, float]:
        # Each integer owns [v - 0.5, v + 0.5] on its scale, so the ends are not half as likely.
        low_edge = self.low - 0.5 if not self.log else max(self.low - 0.5, self.low / 2)
        return self._scale(low_edge), self._scale(self.high + 0.5)

    def contains(self, value: ParamValue) -> bool:
        return self.low <= value <= self.high and (self.kind == "float" or float(value) == int(value))


@dataclass(frozen=True)
class Domain:
    """The values an objective accepts for one parameter: an interval, of whole numbers or not.

    ``low``/``high`` are the ends (None: unbounded); ``low_open``/``high_open`` exclude the end
    itself. ``kind="int"``: whole numbers only, so a searched ``type: float`` is refused.
    ``Domain(low=0, low_open=True)`` is "> 0", ``Domain(kind="int", low=1)`` ">= 1",
    ``Domain(low=0, low_open=True, high=1)`` "in (0, 1]".
    """

    kind: str = "float"
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"kind must be one of {', '.join(_KINDS)}, got {self.kind!r}")

    def contains(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            return False
        value = float(value)
        if not math.isfinite(value) or (self.kind == "int" and not value.is_integer()):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def describe(self) -> str:
        """"> 0", ">= 1 (a whole number)", "in (0, 1]": what an error message says a value must be."""
        if self.low is not None and self.high is not None:
            text = f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        elif self.low is not None:
            text = f"{'>' if self.low_open else '>='} {self.low:g}"
        elif self.high is not None:
            text = f"{'<' if self.high_open else '<='} {self.high:g}"
        else:
            text = "finite"
        return f"{text} (a whole number)" if self.kind == "int" else text


@dataclass(frozen=True)
class SearchSpace:
    """An ordered set of :class:`Param` plus fixed values handed to the objective unchanged."""

    params: tuple[Param, ...]
    fixed: Mapping[str, Any] = field(default_factory=dict)
    source: str = "<inline>"

    def __post_init__(self) -> None:
        if not self.params:
            raise SearchSpaceError(f"{self.source}: no parameters to search")
        names = [p.name for p in self.params]
        duplicated = sorted({n for n in names if names.count(n) > 1} | (set(names) & set(self.fixed)))
        if duplicated:
            raise SearchSpaceError(f"{self.source}: parameter {duplicated[0]!r} is defined twice")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    @property
    def dims(self) -> int:
        return len(self.params)

    def from_unit(self, x: Iterable[float]) -> Params:
        """Decode a point of the unit cube into the parameters an objective receives."""
        values = list(x)
        if len(values) != self.dims:
            raise ValueError(f"expected {self.dims} coordinates, got {len(values)}")
        decoded: Params = {p.name: p.from_unit(u) for p, u in zip(self.params, values, strict=True)}
        return decoded

    def to_unit(self, params: Mapping[str, ParamValue]) -> np.ndarray:
        return np.array([p.to_unit(params[p.name]) for p in self.params])

    def full_params(self, params: Mapping[str, ParamValue]) -> dict[str, Any]:
        """The searched values together with the fixed ones: what the objective is called with."""
        return {**dict(self.fixed), **dict(params)}

    def key(self, params: Mapping[str, ParamValue]) -> tuple[ParamValue, ...]:
        """Identity of a configuration for the cache: two proposals with the same key are one training."""
        return tuple(_canonical(p, params[p.name]) for p in self.params)

    def check_names(self, allowed: Iterable[str], *, objective: str) -> None:
        """Refuse names the objective does not understand, naming the file and the parameter."""
        allowed = set(allowed)
        for name in [*self.names, *self.fixed]:
            if name not in allowed:
                raise SearchSpaceError(
                    f"{self.source}: unknown parameter {name!r} for {objective} "
                    f"(known: {', '.join(sorted(allowed))})"
                )

    def check_domains(self, domains: Mapping[str, Domain], *, objective: str) -> None:
        """Refuse searched bounds and fixed values outside the objective's domains, naming file and parameter.

        Every value a searched parameter can take lies between its bounds, and a domain is an
        interval, so checking the two bounds checks them all. Names without a domain pass.
        """
        for param in self.params:
            domain = domains.get(param.name)
            if domain is None:
                continue
            if domain.kind == "int" and param.kind != "int":
                raise SearchSpaceError(f"{self.source}: parameter {param.name!r}: {objective} takes whole numbers "
                                       f"here; use type: int")
            for bound_name, bound in (("low", param.low), ("high", param.high)):
                if not domain.contains(bound):
                    raise SearchSpaceError(
                        f"{self.source}: parameter {param.name!r}: {bound_name} {bound:g} is outside what {objective} "
                        f"accepts ({param.name} must be {domain.describe()})"
                    )
        for name, value in self.fixed.items():
            domain = domains.get(name)
            if domain is None or domain.contains(value):
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise SearchSpaceError(f"{self.source}: parameter {name!r}: fixed value {value!r} is not a number "
                                       f"({name} must be {domain.describe()})")
            raise SearchSpaceError(
                f"{self.source}: parameter {name!r}: fixed value {value!r} is outside what {objective} accepts "
                f"({name} must be {domain.describe()})"
            )

    def to_dict(self) -> dict[str, Any]:
        """The space as it would be written in a file (for run.json and exports)."""
        parameters = {
            p.name: {"type": p.kind, "low": p.low, "high": p.high, "log": p.log} for p in self.params
        }
        return {"parameters": parameters, "fixed": dict(self.fixed), "source": self.source}

    @classmethod
    def from_dict(cls, document: Any, *, source: str = "<inline>") -> SearchSpace:
        if not isinstance(document, Mapping):
            raise SearchSpaceError(f"{source}: expected a mapping with a 'parameters' section")
        unknown_sections = set(document) - {"parameters", "fixed", "source"}
        if unknown_sections:
            raise SearchSpaceError(f"{source}: unknown section {sorted(unknown_sections)[0]!r}")
        raw_params = document.get("parameters")
        if not isinstance(raw_params, Mapping) or not raw_params:
            raise SearchSpaceError(f"{source}: 'parameters' must be a non-empty mapping of name to bounds")
        params = tuple(_parse_param(str(name), spec, source) for name, spec in raw_params.items())
        fixed = document.get("fixed") or {}
        if not isinstance(fixed, Mapping):
            raise SearchSpaceError(f"{source}: 'fixed' must be a mapping of name to value")
        return cls(params=params, fixed=dict(fixed), source=source)

    @classmethod
    def load(cls, path: str | Path) -> SearchSpace:
        """Read a YAML space file; every problem becomes a :class:`SearchSpaceError`."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SearchSpaceError(f"{path}: search-space file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SearchSpaceError(f"{path}: cannot read search-space file ({exc})") from None
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            where = getattr(exc, "problem_mark", None)
            line = f" at line {where.line + 1}" if where is not None else ""
            raise SearchSpaceError(f"{path}: malformed YAML{line}") from None
        if document is None:
            raise SearchSpaceError(f"{path}: the file is empty")
        return cls.from_dict(document, source=str(path))


def check_space(objective: Any, space: SearchSpace) -> None:
    """Let ``objective`` refuse ``space`` before anything is trained or written.

    The hook any objective may offer: a ``check_space(space)`` attribute (a method, or an
    attribute set on a plain function) that raises :class:`SearchSpaceError`, naming
    ``space.source`` and the parameter, for a space it cannot evaluate everywhere: unknown
    names, bounds outside its domain (:meth:`SearchSpace.check_domains` does that from a
    mapping of :class:`Domain`), parameters that exclude each other. ``hho-tune``, ``hho-tune
    compare``, :func:`hho_tune.tune` and :func:`hho_tune.compare.compare` call it; an objective
    without one is trusted.
    """
    check = getattr(objective, "check_space", None)
    if callable(check):
        check(space)


def _parse_param(name: str, spec: Any, source: str) -> Param:
    if not isinstance(spec, Mapping):
        raise SearchSpaceError(f"{source}: parameter {name!r} needs a mapping like {{type: float, low: 0, high: 1}}")
    unknown = set(spec) - _PARAM_KEYS
    if unknown:
        raise SearchSpaceError(f"{source}: parameter {name!r}: unknown key {sorted(unknown)[0]!r}")
    missing = [key for key in ("type", "low", "high") if key not in spec]
    if missing:
        raise SearchSpaceError(f"{source}: parameter {name!r}: missing {missing[0]!r}")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise SearchSpaceError(f"{source}: parameter {name!r}: 'log' must be true or false")
    try:
        return Param(name=name, kind=spec["type"], low=spec["low"], high=spec["high"], log=log)
    except ValueError as exc:
        raise SearchSpaceError(f"{source}: parameter {name!r}: {exc}") from None


def _canonical(param: Param, value: ParamValue) -> ParamValue:
    # Floats are compared at 12 significant digits so that a round trip through
    # to_unit/from_unit or a CSV file does not make a known configuration look new.
    return int(value) if param.kind == "int" else float(f"{float(value):.12g}")
