"""A search space from Hydra's override grammar, as hydra-optuna-sweeper reads it.

``hydra.sweeper.params`` (and any sweep override on the command line) maps a config key to ``choice(a, b)``,
``a,b``, ``range(1, 5)``, ``interval(0, 1)``, ``int(interval(1, 4))`` or ``tag(log, interval(1e-4, 1e-1))``; a
plain value is fixed for every trial. A trial's parameters go back to Hydra as overrides (``override``).

Hydra's grammar has no conditions, so a conditional space takes them beside ``params``: ``hydra.sweeper.when``
maps a parameter to its ``when`` (``{momentum: {optimizer: sgd}}``, as in ``hpo_tune.space``), and an inactive
parameter gets no override, so the app keeps its own value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from hydra.errors import HydraException

from hpo_tune.errors import ConfigError
from hpo_tune.space import Choice, Dimension, Float, Int, LogFloat, SearchSpace


@dataclass(frozen=True)
class SweepSpace:
    """What the sweep tunes (``space``), how each parameter is written back as an override key (``keys``: a
    ``+`` or an ``@package`` kept), and the overrides every trial gets unchanged (``fixed``)."""

    space: SearchSpace
    keys: Mapping[str, str]
    fixed: tuple[str, ...]

    def overrides(self, params: Mapping[str, Any]) -> list[str]:
        """The Hydra overrides that run one trial: the fixed ones, then its parameters."""
        return [*self.fixed, *(f"{self.keys[name]}={override_value(value)}" for name, value in params.items())]


def sweep_space(params: Mapping[str, Any] | None, arguments: Sequence[str],
                when: Mapping[str, Any] | None = None) -> SweepSpace:
    """The space of ``hydra.sweeper.params`` and of the sweep overrides among the command line's ``arguments``,
    conditional where ``when`` (``hydra.sweeper.when``) says; a key given twice takes the command line's value. A
    bad entry is a ``ConfigError`` naming ``params.<key>`` (or the argument, or ``when.<key>``)."""
    parser = OverridesParser.create()
    entries: dict[str, Override] = {}
    for key, value in (params or {}).items():
        entries[str(key)] = _parse(parser, f"{key}={value}", f"params.{key}")
    fixed: list[str] = []
    for argument in arguments:
        parsed = _parse(parser, argument, argument)
        if parsed.is_sweep_override():
            entries[parsed.get_key_element()] = parsed
        else:
            fixed.append(argument)
    dimensions, keys = {}, {}
    for key, parsed in entries.items():
        if not parsed.is_sweep_override():
            fixed.append(parsed.input_line)
            continue
        dimensions[parsed.key_or_group] = _dimension(parsed, f"params.{key}")
        keys[parsed.key_or_group] = parsed.get_key_element()
    if not dimensions:
        raise ConfigError("params", "nothing to tune: give hydra.sweeper.params (e.g. 'hydra.sweeper.params.lr="
                                    "tag(log, interval(1e-4, 1e-1))') or a sweep override such as 'lr=interval(0, 1)'")
    return SweepSpace(SearchSpace(dimensions, when, when_key="when.{name}"), keys, tuple(fixed))


def _parse(parser: OverridesParser, line: str, key: str) -> Override:
    try:
        return parser.parse_override(line)
    except HydraException as error:
        raise ConfigError(key, f"cannot parse {line!r}: {str(error).splitlines()[0]}") from None


def _dimension(parsed: Override, key: str) -> Dimension:
    """A dimension for one of Hydra's sweeps (a ``glob`` means nothing to a search)."""
    sweep = parsed.value()
    if isinstance(sweep, ChoiceSweep):
        if len({str(v) for v in sweep.list}) != len(sweep.list):
            raise ConfigError(key, f"choice values must be distinct, got {sweep.list}")
        return Choice(tuple(sweep.list))
    if isinstance(sweep, RangeSweep):
        values = list(parsed.sweep_iterator())
        if not values:
            raise ConfigError(key, f"range({sweep.start}, {sweep.stop}, {sweep.step}) is empty")
        if all(isinstance(v, int) for v in values):
            return Int(values[0], values[-1], int(sweep.step)) if sweep.step > 0 else Choice(tuple(values))
        return Choice(tuple(values))
    if isinstance(sweep, IntervalSweep):
        log, low, high = "log" in sweep.tags, sweep.start, sweep.end
        if not low < high:
            raise ConfigError(key, f"interval({low}, {high}): the start must be below the end")
        if log and low <= 0:
            raise ConfigError(key, f"tag(log, interval({low}, {high})) needs a positive start")
        if isinstance(low, int) and isinstance(high, int):
            return Int(low, high, log=log)
        return LogFloat(float(low), float(high)) if log else Float(float(low), float(high))
    raise ConfigError(key, f"{type(sweep).__name__} cannot be searched: use choice, range or interval")


def override_value(value: Any) -> str:
    """``value`` as Hydra's grammar reads it back: strings quoted, so ``'a b'`` or ``'1'`` stay strings."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return repr(value)
    if value is None:
        return "null"
    escaped = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"
