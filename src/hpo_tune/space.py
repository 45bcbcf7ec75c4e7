"""Typed search-space dimensions built from config.

A space maps parameter names to dimensions. In config a space is a nested mapping that mirrors the
config it tunes (``trainer: {lr: {type: log_float, low: 1e-3, high: 0.5}}``); a leaf is any mapping
with a ``type`` key and its parameter name is the dotted path (``trainer.lr``), so the training
objective can apply a trial's parameters as config overrides and new hyperparameters need no code.

**Conditional spaces.** A leaf may carry ``when: {parent: value}`` or ``when: {parent: [values]}``: the dimension
is active only while ``parent`` (a choice or an int, whose values can be listed; a float range cannot condition:
equality on a real number is not a condition) has one of those values, and several entries must all hold. An
inactive dimension is absent from the trial's parameters, never filled with a default, so the training keeps
the config's own value. ``parent`` names a parameter relative to the leaf's own mapping first (``optimizer`` beside
``trainer.momentum`` is ``trainer.optimizer``), else by its full dotted name, as a relative path would. A parent
that is itself inactive leaves its children inactive. Naming an unknown parameter, a value the parent cannot
take, a float parent, or a cycle is a one-line ``ConfigError`` naming the ``when`` key.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
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
    """An ordered mapping of parameter names to dimensions; the order is the config's order.

    ``when`` maps a conditional dimension to its ``when`` entries as written (see the module docstring);
    ``conditions`` holds them resolved: child -> {parent: the values (a ``Choice``) under which the child is
    active}. ``when_key`` formats the config key a bad entry is reported under (``{name}``: the child).
    ``parents_first`` is the order to decide parameters in: each parent before the dimensions it conditions.
    """

    def __init__(self, dimensions: Mapping[str, Dimension], when: Mapping[str, Any] | None = None,
                 when_key: str = "space.{name}.when"):
        if not dimensions:
            raise ConfigError("space", "the search space is empty")
        self._dims = dict(dimensions)
        self.when_key = when_key
        self.conditions = {child: _condition(child, spec, self._dims, when_key.format(name=child))
                           for child, spec in (when or {}).items()}
        loop = _cycle(self.conditions)
        if loop:
            raise ConfigError(when_key.format(name=loop[0]), "the conditions form a cycle, so none of them can "
                                                             f"ever be active: {' -> '.join(loop)}")
        self.parents_first = self.ordered(self._dims)

    def __getitem__(self, name: str) -> Dimension:
        return self._dims[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dims)

    def __len__(self) -> int:
        return len(self._dims)

    def sample(self, rng: np.random.Generator, given: Mapping[str, Any] | None = None) -> Params:
        """A random configuration: every dimension drawn, in order (so a draw takes the same numbers from ``rng``
        whatever the conditions), ``given`` values in place of their draws, then the inactive ones left out."""
        drawn = {name: dim.sample(rng) for name, dim in self._dims.items()}
        return self.only_active({**drawn, **(given or {})})

    def active(self, params: Mapping[str, Any]) -> set[str]:
        """The dimensions active under ``params``, a complete or a partial configuration: a dimension is active
        when each of its parents is active, present in ``params`` and at an allowed value. A parent not decided
        yet counts as inactive, so a partial configuration is decided in ``parents_first`` order."""
        on: set[str] = set()
        for name in self.parents_first:
            if all(parent in on and parent in params and allowed.contains(params[parent])
                   for parent, allowed in self.conditions.get(name, {}).items()):
                on.add(name)
        return on

    def only_active(self, params: Mapping[str, Any]) -> Params:
        """``params`` without the values of inactive dimensions (a strategy that decides them all drops them)."""
        if not self.conditions:
            return dict(params)
        on = self.active(params)
        return {name: value for name, value in params.items() if name in on}

    def contains(self, params: Mapping[str, Any]) -> bool:
        """Whether ``params`` is a configuration of the space: every active dimension at a value it holds, and
        nothing else."""
        return set(params) == self.active(params) and all(self._dims[n].contains(v) for n, v in params.items())

    def ordered(self, names: Iterable[str]) -> tuple[str, ...]:
        """``names`` (every parameter) reordered so that each parent comes before the dimensions it conditions,
        otherwise in the order given: the order a strategy decides parameters in."""
        left, placed = list(names), {}
        while left:
            name = next(n for n in left if all(parent in placed for parent in self.conditions.get(n, {})))
            placed[name] = None
            left.remove(name)
        return tuple(placed)

    def refuse_conditions(self, strategy: str, why: str) -> None:
        """A one-line ``ConfigError`` naming the first conditional dimension, for a strategy that cannot leave
        dimensions out of a trial (``why`` says what it needs)."""
        if self.conditions:
            child = next(iter(self.conditions))
            raise ConfigError(self.when_key.format(name=child),
                              f"{strategy} {why}, so it cannot take a conditional space; drop the condition or use "
                              "random, optuna_tpe, gp_bo, gamma_bo or t_sampling")

    def parse(self, raw: Mapping[str, str]) -> Params:
        """Turn parameters read back as strings (MLflow stores strings) into typed values; an inactive dimension
        is absent from ``raw`` and stays absent."""
        return {name: dim.parse(raw[name]) for name, dim in self._dims.items() if name in raw}

    def describe(self) -> dict[str, dict[str, Any]]:
        """A plain-data form of the space, for logging and for hashing a study's identity (a ``when`` only where
        there is one, with its parents' full names, so an unconditional space describes as it always did)."""
        return {name: {"type": _TYPE_NAMES[type(dim)], **vars(dim),
                       **({"when": {parent: list(allowed.values) for parent, allowed in self.conditions[name].items()}}
                          if name in self.conditions else {})}
                for name, dim in self._dims.items()}

    @classmethod
    def from_config(cls, config: Mapping[str, Any], prefix: str = "space") -> SearchSpace:
        """Build a space from a nested mapping whose leaves carry a ``type`` key (and perhaps a ``when``)."""
        leaves = dict(_leaves(config, prefix, ()))
        return cls({name: dim for name, (dim, _) in leaves.items()},
                   {name: when for name, (_, when) in leaves.items() if when is not None},
                   when_key=f"{prefix}.{{name}}.when")


def _leaves(node: Mapping[str, Any], prefix: str, path: tuple[str, ...]) -> Iterator[tuple[str, tuple[Dimension, Any]]]:
    """Each leaf's parameter name, its dimension and its ``when`` (None without one)."""
    if "type" in node:
        yield ".".join(path), (_dimension(node, f"{prefix}.{'.'.join(path)}"), node.get("when"))
        return
    for key, child in node.items():
        if not isinstance(child, Mapping):
            raise ConfigError(f"{prefix}.{'.'.join((*path, str(key)))}", "expected a dimension with a 'type' key")
        yield from _leaves(child, prefix, (*path, str(key)))


def _dimension(spec: Mapping[str, Any], key: str) -> Dimension:
    kind = spec["type"]
    if kind not in _BUILDERS:
        raise ConfigError(f"{key}.type", f"unknown dimension type {kind!r}; use one of {sorted(_BUILDERS)}")
    unknown = set(spec) - {"type", "when"} - _FIELDS[kind]
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


def _condition(child: str, spec: Any, dims: Mapping[str, Dimension], key: str) -> dict[str, Choice]:
    """One ``when``, resolved: parent's full name -> the values under which ``child`` is active."""
    if child not in dims:
        raise ConfigError(key, f"{child!r} is not a parameter of the space ({', '.join(dims)})")
    if not isinstance(spec, Mapping) or not spec:
        raise ConfigError(key, f"must map a parameter to the value(s) under which {child} is active, e.g. "
                               f"{{optimizer: sgd}} or {{layers: [3, 4]}}; got {spec!r}")
    resolved = {}
    for written, allowed in spec.items():
        sibling = f"{child.rpartition('.')[0]}.{written}" if "." in child else str(written)
        parent = sibling if sibling in dims else str(written)
        if parent not in dims:
            raise ConfigError(f"{key}.{written}", f"{written!r} is not a parameter of the space "
                                                  f"({', '.join(dims)})")
        dim = dims[parent]
        if isinstance(dim, Float):
            raise ConfigError(f"{key}.{written}", f"{parent} is a {_TYPE_NAMES[type(dim)]} range: only a choice or an "
                                                  "int can condition another dimension (a real value is never "
                                                  "equal to a listed one)")
        values = list(allowed) if isinstance(allowed, Sequence) and not isinstance(allowed, str) else [allowed]
        if not values:
            raise ConfigError(f"{key}.{written}", "needs at least one value")
        for value in values:
            if not dim.contains(value):
                can = f"one of {list(dim.values)}" if isinstance(dim, Choice) else (
                    f"an int in [{dim.low}, {dim.high}]" + (f" on steps of {dim.step}" if dim.step > 1 else ""))
                raise ConfigError(f"{key}.{written}", f"{value!r} is not a value {parent} can take ({can})")
        resolved[parent] = Choice(tuple(values))
    return resolved


def _cycle(conditions: Mapping[str, Mapping[str, Choice]]) -> list[str]:
    """A chain child -> parent -> ... -> child among the conditions, or [] when there is none."""
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> list[str]:
        if name in path:
            return [*path[path.index(name):], name]
        if name in done:
            return []
        for parent in conditions.get(name, {}):
            loop = visit(parent, [*path, name])
            if loop:
                return loop
        done.add(name)
        return []

    return next((loop for loop in map(lambda name: visit(name, []), conditions) if loop), [])


_BUILDERS = {"choice": _choice, "int": _int, "float": _float, "log_float": _log_float}
_FIELDS = {"choice": {"values"}, "int": {"low", "high", "step", "log"}, "float": {"low", "high"},
           "log_float": {"low", "high"}}
_TYPE_NAMES = {Choice: "choice", Int: "int", Float: "float", LogFloat: "log_float"}
