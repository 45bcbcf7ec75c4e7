"""Typed search-space dimensions built from config.

A space maps parameter names to dimensions. In config a space is a nested mapping that mirrors the
config it tunes (``trainer: {lr: {type: log_float, low: 1e-3, high: 0.5}}``); a leaf is any mapping
with a ``type`` key and its parameter name is the dotted path (``trainer.lr``), so the training
objective can apply a trial's parameters as config overrides and new hyperparameters need no code.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hpo_tune.errors import ConfigError


@dataclass(frozen=True)
class Choice:
    """One of a fixed list of values (numbers, strings or booleans); order is kept for grids."""

    values: tuple[Any, ...]

    def sample(self, rng: np.random.Generator) -> Any:
        return self.values[int(rng.integers(len(self.values)))]

    def grid(self, points: int) -> list[Any]:
        return list(self.values)

    def parse(self, text: str) -> Any:
        for value in self.values:
            if str(value) == text:
                return value
        raise ValueError(f"{text!r} is not one of {list(self.values)}")

    def contains(self, value: Any) -> bool:
        return any(value == v and type(value) is type(v) for v in self.values)


@dataclass(frozen=True)
class Int:
    """An integer in [low, high], stepped by ``step``; ``log`` samples it log-uniformly."""

    low: int
    high: int
    step: int = 1
    log: bool = False

    def sample(self, rng: np.random.Generator) -> int:
        if self.log:
            return self.snap(math.floor(_log_uniform(rng, self.low, self.high + 1)))
        return self.snap(int(rng.integers(self.low, self.high + 1)))

    def snap(self, value: int) -> int:
        """The value on the step grid at or below ``value`` (for a sampler that cannot step, e.g. Optuna's log ints)."""
        return min(self.high, self.low + (value - self.low) // self.step * self.step)

    def grid(self, points: int) -> list[int]:
        every = list(range(self.low, self.high + 1, self.step))
        if len(every) <= points:
            return every
        spaced = np.geomspace(self.low, self.high, points) if self.log else np.linspace(self.low, self.high, points)
        return sorted({self.snap(int(round(v))) for v in spaced})

    def parse(self, text: str) -> int:
        return int(text)

    def contains(self, value: Any) -> bool:
        return isinstance(value, int) and self.low <= value <= self.high and (value - self.low) % self.step == 0


@dataclass(frozen=True)
class Float:
    """A real number in [low, high], uniform; ``LogFloat`` is the log-uniform variant."""

    low: float
    high: float

    def sample(self, rng: np.random.Generator) -> float:
        return float(rng.uniform(self.low, self.high))

    def grid(self, points: int) -> list[float]:
        return [float(v) for v in np.linspace(self.low, self.high, points)]

    def parse(self, text: str) -> float:
        return float(text)

    def contains(self, value: Any) -> bool:
        return isinstance(value, float) and self.low <= value <= self.high


@dataclass(frozen=True)
class LogFloat(Float):
    """A positive real number whose logarithm is uniform: learning rates, weight decays."""

    def sample(self, rng: np.random.Generator) -> float:
        return _log_uniform(rng, self.low, self.high)

    def grid(self, points: int) -> list[float]:
        return [float(v) for v in np.geomspace(self.low, self.high, points)]


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """The draw ``scipy.stats.loguniform(low, high).rvs(random_state=rng)`` gives, to rounding, without a
    frozen distribution per draw (about 3 ms, most of a random or t-sampling proposal); ``randint``'s and
    ``uniform``'s draws are the generator's own methods, used above."""
    return math.exp(rng.uniform(math.log(low), math.log(high)))


Dimension = Choice | Int | Float | LogFloat
Params = dict[str, Any]


class SearchSpace(Mapping[str, Dimension]):
    """An ordered mapping of parameter names to dimensions; the order is the config's order."""

    def __init__(self, dimensions: Mapping[str, Dimension]):
        if not dimensions:
            raise ConfigError("space", "the search space is empty")
        self._dims = dict(dimensions)

    def __getitem__(self, name: str) -> Dimension:
        return self._dims[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dims)

    def __len__(self) -> int:
        return len(self._dims)

    def sample(self, rng: np.random.Generator) -> Params:
        return {name: dim.sample(rng) for name, dim in self._dims.items()}

    def parse(self, raw: Mapping[str, str]) -> Params:
        """Turn parameters read back as strings (MLflow stores strings) into typed values."""
        return {name: dim.parse(raw[name]) for name, dim in self._dims.items() if name in raw}

    def describe(self) -> dict[str, dict[str, Any]]:
        """A plain-data form of the space, for logging and for hashing a study's identity."""
        return {name: {"type": _TYPE_NAMES[type(dim)], **vars(dim)} for name, dim in self._dims.items()}

    @classmethod
    def from_config(cls, config: Mapping[str, Any], prefix: str = "space") -> SearchSpace:
        """Build a space from a nested mapping whose leaves carry a ``type`` key."""
        return cls(dict(_leaves(config, prefix, ())))


def _leaves(node: Mapping[str, Any], prefix: str, path: tuple[str, ...]) -> Iterator[tuple[str, Dimension]]:
    if "type" in node:
        yield ".".join(path), _dimension(node, f"{prefix}.{'.'.join(path)}")
        return
    for key, child in node.items():
        if not isinstance(child, Mapping):
            raise ConfigError(f"{prefix}.{'.'.join((*path, str(key)))}", "expected a dimension with a 'type' key")
        yield from _leaves(child, prefix, (*path, str(key)))


def _dimension(spec: Mapping[str, Any], key: str) -> Dimension:
    kind = spec["type"]
    if kind not in _BUILDERS:
        raise ConfigError(f"{key}.type", f"unknown dimension type {kind!r}; use one of {sorted(_BUILDERS)}")
    unknown = set(spec) - {"type"} - _FIELDS[kind]
    if unknown:
        raise ConfigError(f"{key}.{sorted(unknown)[0]}", f"not a field of a {kind} dimension")
    return _BUILDERS[kind](spec, key)


def _choice(spec: Mapping[str, Any], key: str) -> Choice:
    values = spec.get("values")
    if not isinstance(values, Sequence) or isinstance(values, str) or len(values) == 0:
        raise ConfigError(f"{key}.values", "a choice needs a non-empty list of values")
    if len(set(map(str, values))) != len(values):
        raise ConfigError(f"{key}.values", f"values must be distinct, got {list(values)}")
    return Choice(tuple(values))


def _bounds(spec: Mapping[str, Any], key: str, kind: type) -> tuple[Any, Any]:
    for bound in ("low", "high"):
        value = spec.get(bound)
        if isinstance(value, bool) or not isinstance(value, kind):
            raise ConfigError(f"{key}.{bound}", f"must be a number, got {value!r}")
    low, high = spec["low"], spec["high"]
    if low > high:
        raise ConfigError(f"{key}.low", f"low ({low}) must not exceed high ({high})")
    return low, high


def _int(spec: Mapping[str, Any], key: str) -> Int:
    low, high = _bounds(spec, key, int)
    step = spec.get("step", 1)
    if not isinstance(step, int) or step < 1:
        raise ConfigError(f"{key}.step", f"must be a positive integer, got {step!r}")
    log = bool(spec.get("log", False))
    if log and low < 1:
        raise ConfigError(f"{key}.low", f"a log-scaled int needs low >= 1, got {low}")
    return Int(low, high, step, log)


def _float(spec: Mapping[str, Any], key: str) -> Float:
    low, high = _bounds(spec, key, (int, float))
    return Float(float(low), float(high))


def _log_float(spec: Mapping[str, Any], key: str) -> LogFloat:
    low, high = _bounds(spec, key, (int, float))
    if low <= 0:
        raise ConfigError(f"{key}.low", f"a log_float needs low > 0, got {low}")
    return LogFloat(float(low), float(high))


_BUILDERS = {"choice": _choice, "int": _int, "float": _float, "log_float": _log_float}
_FIELDS = {"choice": {"values"}, "int": {"low", "high", "step", "log"}, "float": {"low", "high"},
           "log_float": {"low", "high"}}
_TYPE_NAMES = {Choice: "choice", Int: "int", Float: "float", LogFloat: "log_float"}
