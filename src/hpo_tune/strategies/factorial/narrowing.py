"""Phase 2's values: each factor's range rebuilt around its better level.

A factor's better level is the one its main effect points to as lower ``direction.loss`` (higher
objective when maximising; low level on a tie, and coefficients below 1e-12 of the objective's
scale are rounding noise, i.e. ties). A factor is significant when p < ``alpha``. Around a numeric
factor's better level b the new values are b plus ``count`` steps on ``side`` (``outward``: away
from the worse level, i.e. the way the effect improves; ``inward``: towards it; ``both``), one step
being ``step`` x the dimension's step for ints, ``step`` x (high - low) for floats and ``step``
decades for log_floats. Config (defaults): ``narrowing: {int: {step: 1, count: 1, side: outward},
float: {step: 0.25, count: 1, side: both}, log_float: {step: 1, count: 1, side: both},
non_significant: narrow, limits: {}}``; a partial mapping overrides only what it names.

**Bounds.** Every dimension's limits are the space's own ``[low, high]``: what the space declares
is what phase 2 may run, so every proposal satisfies ``space[name].contains(value)``. A value
beyond a limit is replaced by its mirror image on the other side of b (dropped if that is taken or
also beyond): int 0..3 with better 3 steps to 2, not 4. ``limits: {name: [low, high]}`` sets a
factor's limits on purpose, and ``null`` opens that side: ``[1, null]`` lets an int count of layers
grow past the space's ``high`` but never below 1, ``[null, null]`` leaves it unbounded (a log_float
stays positive). A significant choice keeps its better value. A non-significant factor follows
``non_significant``: ``narrow`` (as if significant; the paper's behaviour), ``fix`` (the better
level only), ``both`` (its two original levels) or ``best`` (its value in the best phase-1 run,
centre runs included).

**A budget.** When the trials left after phase 1 (``room``) cannot hold the grid, ``fit_grid`` gives
up values deliberately instead of letting the budget cut the grid's tail: the least significant
factor first (largest p, then smallest |effect|, then the later factor), one value at a time, the
farthest from its better level first (on a tie the one on its worse level's side), until the
product fits; the better level of every factor is always kept. The values given up are listed in
the table's ``dropped`` column.

**The paper's numbers** come out of the defaults with its factors' bounds opened as the paper does
(``conf/strategy/factorial_grid_seed002.yaml``: layers ``[1, null]``, learning rate ``[null, null]``): int
``{step: 1, count: 1, side: outward}``, log_float ``{step: 1, count: 1, side: both}``,
``non_significant: narrow``. Conv layers 3/6, better 6 -> [6, 7]; dense layers 1/3, better 1 -> 0
is below the floor 1, mirrored -> [1, 2]; learning rate 0.001/0.1, better 0.001 -> [0.0001, 0.001,
0.01]. ``narrow`` matters: in the paper's Table 2 no factor has p < 0.05 (learning rate 0.059), yet
all three were narrowed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from hpo_tune.errors import ConfigError
from hpo_tune.space import Choice, Dimension, Float, Int, LogFloat, SearchSpace
from hpo_tune.strategies.factorial.design import Factor, Run, clean
from hpo_tune.trial import Direction

SIDES = ("outward", "inward", "both")
NON_SIGNIFICANT = ("narrow", "fix", "both", "best")
DEFAULT_NARROWING: dict[str, Any] = {
    "int": {"step": 1, "count": 1, "side": "outward"},
    "float": {"step": 0.25, "count": 1, "side": "both"},
    "log_float": {"step": 1.0, "count": 1, "side": "both"},
    "non_significant": "narrow",
    "limits": {},
}


@dataclass(frozen=True)
class StepRule:
    """How a numeric factor's range is rebuilt around its better level."""

    step: float
    count: int
    side: str


@dataclass(frozen=True)
class Narrowing:
    """The rule per kind of dimension, the policy for non-significant factors and the limits."""

    rules: Mapping[str, StepRule]
    non_significant: str
    limits: Mapping[str, tuple[float | None, float | None]]

    @classmethod
    def from_config(cls, config: Mapping[str, Any], space: SearchSpace) -> Narrowing:
        """The ``strategy.narrowing`` mapping over the defaults; a bad entry is a ``ConfigError`` naming it."""
        for key in config:
            if key not in DEFAULT_NARROWING:
                raise ConfigError(f"strategy.narrowing.{key}",
                                  f"not a narrowing option (options: {sorted(DEFAULT_NARROWING)})")
        rules = {}
        for kind in ("int", "float", "log_float"):
            given = config.get(kind) or {}
            for key in given:
                if key not in DEFAULT_NARROWING[kind]:
                    raise ConfigError(f"strategy.narrowing.{kind}.{key}", "not an option (use step, count, side)")
            spec = {**DEFAULT_NARROWING[kind], **given}
            step, count, side = spec["step"], spec["count"], spec["side"]
            if isinstance(step, bool) or not isinstance(step, int if kind == "int" else (int, float)) or step <= 0:
                what = "integer" if kind == "int" else "number"
                raise ConfigError(f"strategy.narrowing.{kind}.step", f"must be a positive {what}, got {step!r}")
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ConfigError(f"strategy.narrowing.{kind}.count", f"must be an integer >= 0, got {count!r}")
            if side not in SIDES:
                raise ConfigError(f"strategy.narrowing.{kind}.side", f"must be one of {list(SIDES)}, got {side!r}")
            rules[kind] = StepRule(float(step), count, side)
        policy = config.get("non_significant", DEFAULT_NARROWING["non_significant"])
        if policy not in NON_SIGNIFICANT:
            raise ConfigError("strategy.narrowing.non_significant",
                              f"must be one of {list(NON_SIGNIFICANT)}, got {policy!r}")
        limits = {}
        for name, bounds in (config.get("limits") or {}).items():
            key = f"strategy.narrowing.limits.{name}"
            if name not in space or isinstance(space[name], Choice):
                raise ConfigError(key, f"not a numeric dimension of the space ({list(space)})")
            if (not isinstance(bounds, Sequence) or len(bounds) != 2
                    or any(b is not None and (isinstance(b, bool) or not isinstance(b, (int, float))) for b in bounds)):
                raise ConfigError(key, f"must be [low, high] (null for open), got {bounds!r}")
            limits[name] = (bounds[0], bounds[1])
        return cls(rules, policy, limits)

    def most_values(self, factor: Factor) -> int:
        """The most values the rule can give ``factor`` in phase 2 (bounds ``max_trials``)."""
        if isinstance(factor.dim, Choice):
            most = 1
        else:
            rule = self.rules[_kind(factor.dim)]
            most = rule.count * (2 if rule.side == "both" else 1) + 1
        return max(most, 2 if self.non_significant == "both" else 1)

    def narrow(self, factors: Sequence[Factor], effects: pd.DataFrame, best_run: Run, direction: Direction,
               alpha: float) -> pd.DataFrame:
        """Each factor's new values; ``best_run`` is the best measured phase-1 run (the ``best`` rule)."""
        by_term = effects.set_index("term")
        rows = []
        for factor in factors:
            effect, p = by_term.at[factor.name, "effect"], by_term.at[factor.name, "p"]
            improving = 1 if direction.loss(effect) < 0 else -1  # towards the better level
            better = factor.value(improving)
            significant = bool(p < alpha)
            policy = "narrow" if significant else self.non_significant
            if policy == "fix":
                chosen = [better]
            elif policy == "both":
                chosen = list(factor.levels)
            elif policy == "best":
                chosen = [best_run.params[factor.name]]
            elif isinstance(factor.dim, Choice):
                chosen = [better]
            else:
                chosen = self._around(factor, better, improving)
            rows.append({"factor": factor.name, "word": factor.letter, "low": factor.levels[0],
                         "high": factor.levels[1], "effect": effect, "p": p, "significant": significant,
                         "better": better, "rule": policy, "values": chosen})
        return pd.DataFrame(rows).astype({"low": object, "high": object, "better": object})

    def _around(self, factor: Factor, better: Any, improving: int) -> list[Any]:
        """The better level plus ``count`` steps on the rule's side, mirrored at the limits."""
        dim = factor.dim
        rule = self.rules[_kind(dim)]
        low, high = self.limits.get(factor.name, (dim.low, dim.high))

        def move(steps: int) -> Any:
            if isinstance(dim, Int):
                return better + steps * int(rule.step) * dim.step
            if isinstance(dim, LogFloat):
                return clean(better * 10 ** (steps * rule.step))
            return clean(better + steps * rule.step * (dim.high - dim.low))

        def inside(value: Any) -> bool:
            positive = value > 0 or not isinstance(dim, LogFloat)
            return positive and (low is None or value >= low) and (high is None or value <= high)

        signs = {"outward": (improving,), "inward": (-improving,), "both": (-1, 1)}[rule.side]
        chosen = {better}
        for j in range(1, rule.count + 1):
            for sign in signs:
                value = next((v for v in (move(sign * j), move(-sign * j)) if inside(v) and v not in chosen), None)
                if value is not None:
                    chosen.add(value)
        return sorted(chosen)


def fit_grid(table: pd.DataFrame, room: int | None) -> pd.DataFrame:
    """``table`` (from ``narrow``) with fewer values where the grid exceeds ``room`` trials (None: any size).

    The least significant factors give up values first, farthest from the better level first, the
    better level never; the values given up go to ``dropped``. With ``room`` 0 every factor keeps
    its better level only (the strategy then runs no grid).
    """
    values = [list(v) for v in table["values"]]
    dropped: list[list[Any]] = [[] for _ in values]
    if room is not None:
        p, size = table["p"].fillna(1.0).tolist(), table["effect"].abs().fillna(0.0).tolist()
        for i in sorted(range(len(values)), key=lambda i: (-p[i], size[i], -i)):
            while len(values[i]) > 1 and math.prod(map(len, values)) > room:
                kept, better = values[i], table["better"].iat[i]
                anchor = kept.index(better)
                below, above = anchor, len(kept) - 1 - anchor  # steps to either end
                worse_below = better == table["high"].iat[i]
                end = 0 if below > above or (below == above and worse_below) else -1
                dropped[i].append(kept.pop(end))
    return table.assign(values=values, dropped=dropped)


def _kind(dim: Dimension) -> str:
    return "log_float" if isinstance(dim, LogFloat) else "float" if isinstance(dim, Float) else "int"
