"""The two-level design: factors, the runs of phase 1 and the model terms they can estimate.

**Factors.** Every dimension of the space is a factor with two levels: numeric dimensions (int,
float, log_float) their ``low`` and ``high``, a choice exactly its two values (more is a
``ConfigError`` naming ``space.<name>``). Levels are coded -1 (low, first value) and +1 (high,
second value); log_float dimensions (and ints with ``log: true``) are coded in log space, so their
centre is the geometric mean. An int's centre is rounded half up onto its step grid and coded by its
actual value (3/6 -> 5, coded +1/3). A choice has no centre: centre runs alternate its two values.
``use_inset`` moves the numeric levels inside the bounds (refinement's quarter points, see ``strategy``):
the coding follows the levels, an int rounds onto its step grid and keeps its bounds if too narrow.

**Runs.** The 2^k design in standard (Yates) order - the first factor alternates fastest - repeated
``replicates`` times as consecutive blocks, then ``center_points`` centre runs. The order is fixed,
not randomised: each training is seeded by its trial number, so there is no drift for randomisation
to guard against, and a fixed order keeps trial k -> run k readable. ``fraction = p`` (k >= 5 only)
runs the 2^(k-p) fraction: the first k-p factors form a full factorial and the last p are generated
from them by the generators of Montgomery's Table 8.14 (``GENERATORS``; p = 1 uses the word of all
factors, resolution k). Each is a minimum-aberration choice: no other generators over the same base
give a lexicographically smaller word-length pattern (A3, A4, ...), which a brute-force search over
every choice confirms (tests/test_factorial.py). Model terms aliased with an earlier term (lower
order first) are not estimated; each estimated term carries its alias chain. ``fraction = "auto"``
(the default) leaves the choice to the strategy's budget (``FactorialGrid.fit_budget``); until then,
and without a budget, it is the full design.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from hpo_tune.errors import ConfigError
from hpo_tune.space import Choice, Dimension, Int, LogFloat, Params, SearchSpace

LETTERS = "ABCDEFGHJKLMNOPQRSTUVWXYZ"  # factor letters as in Montgomery (no I, the identity)

# Minimum-aberration generators for 2^(k-p) designs with p >= 2 (Montgomery, Design and Analysis
# of Experiments, Table 8.14), written over the k-p base factors; p = 1 uses the word of all factors.
GENERATORS: dict[tuple[int, int], tuple[str, ...]] = {
    (5, 2): ("AB", "AC"),
    (6, 2): ("ABC", "BCD"),
    (6, 3): ("AB", "AC", "BC"),
    (7, 2): ("ABCD", "ABDE"),
    (7, 3): ("ABC", "BCD", "ACD"),
    (7, 4): ("AB", "AC", "BC", "ABC"),
    (8, 2): ("ABCD", "ABEF"),
    (8, 3): ("ABC", "ABD", "BCDE"),
    (8, 4): ("BCD", "ACD", "ABC", "ABD"),
    (9, 2): ("ACDFG", "BCEFG"),
    (9, 3): ("ABCD", "ACEF", "CDEF"),
    (9, 4): ("BCDE", "ACDE", "ABDE", "ABCE"),
    (9, 5): ("ABC", "BCD", "ACD", "ABD", "ABCD"),
}


def clean(value: float) -> float:
    """12 significant digits, so that 0.001 x 10 is 0.01 and grids print and compare cleanly."""
    return float(f"{value:.12g}")


def fractions(k: int) -> list[int]:
    """The p of every 2^(k-p) fraction there is a design for with ``k`` factors (none below five)."""
    return sorted({p for (kk, p) in GENERATORS if kk == k} | ({1} if k >= 5 else set()))


def generators(k: int, p: int) -> tuple[str, ...]:
    """Each generated factor's word over the k-p base factors (empty for the full design)."""
    if p == 0:
        return ()
    return (LETTERS[: k - 1],) if p == 1 else GENERATORS[(k, p)]


def defining_relation(k: int, p: int) -> tuple[int, ...]:
    """The words of the 2^(k-p) design's defining relation as factor bitmasks (0, the identity, first)."""
    words = [sum(1 << LETTERS.index(c) for c in word) | 1 << (k - p + j) for j, word in enumerate(generators(k, p))]
    group = {0}
    for word in words:
        group |= {g ^ word for g in group}
    return tuple(sorted(group, key=lambda m: (bin(m).count("1"), m)))


def word_length_pattern(k: int, p: int) -> tuple[int, ...]:
    """(A3, A4, ..., Ak): how many words of each length the defining relation has; aberration compares these."""
    lengths = [bin(w).count("1") for w in defining_relation(k, p)]
    return tuple(lengths.count(n) for n in range(3, k + 1))


def label(k: int, p: int) -> str:
    """``the full 2^k design`` or ``the 2^(k-p) resolution R fraction``, for notes and messages."""
    if not p:
        return f"the full 2^{k} design"
    return f"the 2^({k}-{p}) resolution {roman(resolution(k, p))} fraction"


def resolution(k: int, p: int) -> int | None:
    """The shortest word of the defining relation; None for the full design."""
    return min((bin(w).count("1") for w in defining_relation(k, p) if w), default=None)


def roman(number: int) -> str:
    """Resolutions are written in Roman numerals (III, IV, V) in the design literature."""
    text = ""
    for value, letters in ((10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I")):
        while number >= value:
            text, number = text + letters, number - value
    return text


@dataclass(frozen=True)
class Factor:
    """One dimension as a two-level factor: its levels, centre and coding."""

    name: str
    letter: str
    dim: Dimension
    inset: float = 0.0  # the levels' distance from the bounds, as a fraction of the range in its own scale

    @property
    def levels(self) -> tuple[Any, Any]:
        if isinstance(self.dim, Choice):
            return self.dim.values[0], self.dim.values[1]
        if not self.inset:
            return self.dim.low, self.dim.high
        low, high = self._scale(self.dim.low), self._scale(self.dim.high)
        inner = (self._unscale(low + self.inset * (high - low)), self._unscale(high - self.inset * (high - low)))
        return (self.dim.low, self.dim.high) if inner[0] == inner[1] else inner  # an int too narrow to inset

    @property
    def logarithmic(self) -> bool:
        return isinstance(self.dim, LogFloat) or (isinstance(self.dim, Int) and self.dim.log)

    def _scale(self, value: float) -> float:
        return math.log(value) if self.logarithmic else float(value)

    def _unscale(self, scaled: float) -> Any:
        """A value of the dimension from its scale: an int rounded half up onto its step grid."""
        value = math.exp(scaled) if self.logarithmic else scaled
        if isinstance(self.dim, Int):
            return self.dim.low + math.floor((value - self.dim.low) / self.dim.step + 0.5) * self.dim.step
        return clean(value)

    def value(self, coded: int) -> Any:
        """The parameter value at coded level -1 or +1."""
        return self.levels[0] if coded < 0 else self.levels[1]

    def center(self, index: int) -> Any:
        """The value of centre run ``index``: the (geometric) midpoint, or alternating choice values."""
        if isinstance(self.dim, Choice):
            return self.levels[index % 2]
        return self._unscale((self._scale(self.dim.low) + self._scale(self.dim.high)) / 2)

    def code(self, value: Any) -> float:
        """Coded units: -1 at the low level, +1 at the high level, linear (in log space for logs)."""
        if isinstance(self.dim, Choice):
            return -1.0 if value == self.levels[0] else 1.0
        low, high = map(self._scale, self.levels)
        return (self._scale(value) - (low + high) / 2) / ((high - low) / 2)


@dataclass(frozen=True)
class Run:
    """One phase-1 trial: which design row it is and where in the space."""

    number: int
    phase: str  # "factorial" or "center"
    row: int  # standard-order row, or the centre run's index
    replicate: int
    coded: tuple[float, ...]
    params: Params


@dataclass(frozen=True)
class Term:
    """A model term: the factors multiplied (() = intercept) and the words aliased with it."""

    factors: tuple[int, ...]
    aliases: tuple[tuple[int, ...], ...] = ()


class Design:
    """A 2^k or 2^(k-p) design over the space's dimensions, with replicates and centre runs."""

    def __init__(self, space: SearchSpace, replicates: int, center_points: int, fraction: int | str):
        if len(space) > len(LETTERS):
            raise ConfigError("space", f"a factorial design takes at most {len(LETTERS)} factors, got {len(space)}")
        self.factors = tuple(Factor(name, LETTERS[i], _two_levels(name, dim))
                             for i, (name, dim) in enumerate(space.items()))
        for key, value, minimum in (("replicates", replicates, 1), ("center_points", center_points, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigError(f"strategy.{key}", f"must be an integer >= {minimum}, got {value!r}")
        k = len(self.factors)
        self.auto = fraction == "auto"
        if not self.auto and (isinstance(fraction, bool) or not isinstance(fraction, int)
                              or fraction not in [0, *fractions(k)]):
            raise ConfigError("strategy.fraction", f"must be auto, 0 (the full design) or the p of a 2^({k}-p) "
                                                   f"design here, got {fraction!r}; fractions need k >= 5 factors "
                                                   f"and p in {fractions(k) or '[]'} for k = {k}")
        self.replicates, self.center_points = replicates, center_points
        self.use_fraction(0 if self.auto else fraction)

    def use_fraction(self, p: int) -> None:
        """Run the 2^(k-p) design in phase 1 (``p`` from ``fractions``, or 0)."""
        self.fraction = p
        self.generators = generators(len(self.factors), p)
        self.runs = self._runs()

    def use_inset(self, inset: float) -> None:
        """Put the numeric factors' levels ``inset`` of their range inside the bounds (0: at the bounds)."""
        self.factors = tuple(replace(f, inset=inset) for f in self.factors)
        self.runs = self._runs()

    def phase1_size(self, p: int) -> int:
        """Phase 1's trials with the 2^(k-p) design: its runs times the replicates, plus the centre runs."""
        return 2 ** (len(self.factors) - p) * self.replicates + self.center_points

    def fitting_fraction(self, most: int) -> int | None:
        """The smallest p (0: the full design) whose phase 1 takes at most ``most`` trials; None if none does."""
        return next((p for p in [0, *fractions(len(self.factors))] if self.phase1_size(p) <= most), None)

    @property
    def n_phase1(self) -> int:
        return len(self.runs)

    def design_rows(self) -> np.ndarray:
        """The coded 2^(k-p) design in standard order (one row per run, one column per factor)."""
        k, p = len(self.factors), self.fraction
        base = k - p
        rows = np.array([[1 if (i >> f) & 1 else -1 for f in range(base)] for i in range(2 ** base)], dtype=float)
        generated = [np.prod(rows[:, [LETTERS.index(c) for c in word]], axis=1) for word in self.generators]
        return np.column_stack([rows, *generated]) if generated else rows

    def _runs(self) -> tuple[Run, ...]:
        runs = []
        rows = self.design_rows()
        for replicate in range(self.replicates):
            for row, coded in enumerate(rows):
                params = {f.name: f.value(int(c)) for f, c in zip(self.factors, coded)}
                runs.append(Run(len(runs), "factorial", row, replicate, tuple(float(c) for c in coded), params))
        for index in range(self.center_points):
            params = {f.name: f.center(index) for f in self.factors}
            coded = tuple(f.code(params[f.name]) for f in self.factors)
            runs.append(Run(len(runs), "center", index, 0, coded, params))
        return tuple(runs)

    def defining_relation(self) -> tuple[int, ...]:
        """The words of the defining relation as factor bitmasks (0, the identity, first)."""
        return defining_relation(len(self.factors), self.fraction)

    def word_length_pattern(self) -> tuple[int, ...]:
        return word_length_pattern(len(self.factors), self.fraction)

    def resolution(self) -> int | None:
        return resolution(len(self.factors), self.fraction)

    def terms(self, order: int) -> tuple[Term, ...]:
        """Intercept, main effects, interactions up to ``order``; an alias of an earlier term is skipped."""
        group = self.defining_relation()
        taken: set[int] = set()
        terms = []
        for size in range(order + 1):
            for combo in itertools.combinations(range(len(self.factors)), size):
                mask = sum(1 << i for i in combo)
                chain = {mask ^ w for w in group}
                if chain & taken:
                    continue
                taken |= chain
                others = sorted(chain - {mask}, key=lambda m: (bin(m).count("1"), m))
                terms.append(Term(combo, tuple(factors_of(m) for m in others)))
        return tuple(terms)

    def model_matrix(self, coded: np.ndarray, terms: Sequence[Term]) -> np.ndarray:
        """One column per term: the product of its factors' coded values (ones for the intercept)."""
        return np.column_stack([np.prod(coded[:, list(t.factors)], axis=1) for t in terms])

    def term_name(self, factors: tuple[int, ...]) -> str:
        return ":".join(self.factors[i].name for i in factors) or "(intercept)"

    def word(self, factors: tuple[int, ...]) -> str:
        return "".join(self.factors[i].letter for i in factors) or "I"

    def describe(self) -> str:
        """``2^k``, or ``2^(k-p), resolution R, generators ...`` for a fraction."""
        k, p = len(self.factors), self.fraction
        if not p:
            return f"2^{k}"
        return f"2^({k}-{p}), resolution {roman(self.resolution())}, generators " + self.generator_list()

    def generator_list(self) -> str:
        k, p = len(self.factors), self.fraction
        return ", ".join(f"{LETTERS[k - p + j]} = {w}" for j, w in enumerate(self.generators))


def factors_of(mask: int) -> tuple[int, ...]:
    """The factor indices of a word's bitmask."""
    return tuple(i for i in range(mask.bit_length()) if mask >> i & 1)


def _two_levels(name: str, dim: Dimension) -> Dimension:
    if isinstance(dim, Choice) and len(dim.values) != 2:
        raise ConfigError(f"space.{name}",
                          f"a factorial factor needs exactly two choice values, got {list(dim.values)}")
    if not isinstance(dim, Choice) and dim.low == dim.high:
        raise ConfigError(f"space.{name}", f"a factorial factor needs low < high, got {dim.low} and {dim.high}")
    return dim
