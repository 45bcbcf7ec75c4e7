"""Two-level factorial design, then a grid around the better levels (seed 002: "Hyperparameter
optimisation for image classification in convolutional neural networks").

**Factors.** Every dimension of the space is a factor with two levels: numeric dimensions (int,
float, log_float) their ``low`` and ``high``, a choice exactly its two values (more is a
``ConfigError`` naming ``space.<name>``). Levels are coded -1 (low, first value) and +1 (high,
second value); log_float dimensions (and ints with ``log: true``) are coded in log space, so their
centre is the geometric mean. An int's centre is rounded half up onto its step grid and coded by its
actual value (3/6 -> 5, coded +1/3). A choice has no centre: centre runs alternate its two values.

**Phase 1** (trials ``0 .. N1-1``): the 2^k design in standard (Yates) order - the first factor
alternates fastest - repeated ``replicates`` times as consecutive blocks, then ``center_points``
centre runs. The order is fixed, not randomised: each training is seeded by its trial number, so
there is no drift for randomisation to guard against, and a fixed order keeps trial k -> run k
readable. Tags: ``phase`` (factorial / center), ``run`` (standard-order row or centre index) and
``replicate``. ``fraction = p`` (k >= 5 only) runs the 2^(k-p) fraction: the first k-p factors form a
full factorial and the last p are generated from them by the minimum-aberration generators of
Montgomery's Table 8.14 (``GENERATORS``; p = 1 uses the word of all factors, resolution k). Model
terms aliased with an earlier term (lower order first) are not estimated; the effects table and
``factorial/aliases.md`` give each estimated term's alias chain.

**Fit.** Once every phase-1 trial has finished, OLS (statsmodels) in coded units of the objective
value on the intercept, the main effects and the interactions up to ``order`` (capped at k; default 2, the
paper's Table 2: eight runs, seven terms, one error degree of freedom), plus a centre-run indicator
whose coefficient is the curvature (mean of the centre runs minus the factorial mean) when centre
runs are present. Effect = 2 x coefficient. The error estimate is the residual mean square; when the
model is saturated (no residual degrees of freedom, e.g. ``order = k`` with one replicate and no
centre runs) it is Lenth's pseudo standard error of the coefficients instead, with m/3 degrees of
freedom for m effects. Lowering ``order`` is how to trade interactions for a residual error
estimate.

**Failed runs** (failed, pruned or non-finite trials of phase 1) are left out of the fit
(``failed: leave_out``, the default: right when failures are accidents), or enter it with the
worst value any phase-1 run reached (``failed: worst``: right when a level itself makes training
fail, as a learning rate that diverges does, and the same rule the BOs use). If the
model with interactions up to ``order`` is then no longer estimable (rank-deficient), the highest
interactions are dropped until it is (reported as dropped terms); if not even the main effects are
estimable, ``propose`` raises ``DesignError``: fix the failure's cause and start a new study.

**Narrowing.** A factor's better level is the one its main effect points to as lower
``direction.loss`` (higher objective when maximising; low level on a tie, and coefficients below
1e-12 of the objective's scale are rounding noise, i.e. ties). A factor is significant
when p < ``alpha``. Around a numeric factor's better level b the new values are b plus ``count``
steps on ``side`` (``outward``: away from the worse level, i.e. the way the effect improves;
``inward``: towards it; ``both``), one step being ``step`` x the dimension's step for ints, ``step``
x (high - low) for floats and ``step`` decades for log_floats. Config (defaults): ``narrowing:
{int: {step: 1, count: 1, side: outward}, float: {step: 0.25, count: 1, side: both}, log_float:
{step: 1, count: 1, side: both}, non_significant: narrow, limits: {}}``; a partial mapping
overrides only what it names. A value beyond the factor's limits is
replaced by its mirror image on the other side of b (dropped if that is taken or also beyond).
Limits: ints never below min(1, low) (they count layers, units, epochs), floats stay in [low,
high], log_floats are unbounded; ``limits: {name: [low, high]}`` overrides (null = open). A
significant choice keeps its better value. A non-significant factor follows ``non_significant``:
``narrow`` (as if significant; the paper's behaviour), ``fix`` (the better level only), ``both``
(its two original levels) or ``best`` (its value in the best phase-1 run, centre runs included).

**The paper's numbers** come out of the defaults: int ``{step: 1, count: 1, side: outward}``,
log_float ``{step: 1, count: 1, side: both}``, ``non_significant: narrow``. Conv layers 3/6, better
6 -> [6, 7]; dense layers 1/3, better 1 -> 0 is below the floor 1, mirrored -> [1, 2]; learning rate
0.001/0.1, better 0.001 -> [0.0001, 0.001, 0.01]. ``narrow`` matters: in the paper's Table 2 no
factor has p < 0.05 (learning rate 0.059), yet all three were narrowed.

**Phase 2** (trials N1 ..): the product of the narrowed values in space order (last dimension
fastest), each point once, including points already run in phase 1 (the paper re-ran them). Trial
N1 + j runs point j (tags ``phase: grid``, ``run: j``); once the grid is used up the study is
finished. ``max_trials`` is an upper
bound (N1 + the largest grid the rule can produce) because the grid is known only after the fit.
Everything is recomputed from the finished phase-1 trials on each call (cached on their values).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

from src.errors import ConfigError
from src.plots import png, pyplot
from src.space import Choice, Dimension, Float, Int, LogFloat, Params, SearchSpace
from src.strategies.base import Decision, Strategy
from src.trial import Direction, Proposal, Trial, TrialState

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

SIDES = ("outward", "inward", "both")
NON_SIGNIFICANT = ("narrow", "fix", "both", "best")
DEFAULT_NARROWING: dict[str, Any] = {
    "int": {"step": 1, "count": 1, "side": "outward"},
    "float": {"step": 0.25, "count": 1, "side": "both"},
    "log_float": {"step": 1.0, "count": 1, "side": "both"},
    "non_significant": "narrow",
    "limits": {},
}


class DesignError(RuntimeError):
    """Phase 1 lost so many runs that not even the main effects can be estimated."""


def _clean(value: float) -> float:
    """12 significant digits, so that 0.001 x 10 is 0.01 and grids print and compare cleanly."""
    return float(f"{value:.12g}")


@dataclass(frozen=True)
class Factor:
    """One dimension as a two-level factor: its levels, centre and coding."""

    name: str
    letter: str
    dim: Dimension

    @property
    def levels(self) -> tuple[Any, Any]:
        if isinstance(self.dim, Choice):
            return self.dim.values[0], self.dim.values[1]
        return self.dim.low, self.dim.high

    @property
    def logarithmic(self) -> bool:
        return isinstance(self.dim, LogFloat) or (isinstance(self.dim, Int) and self.dim.log)

    def _scale(self, value: float) -> float:
        return math.log(value) if self.logarithmic else float(value)

    def value(self, coded: int) -> Any:
        """The parameter value at coded level -1 or +1."""
        return self.levels[0] if coded < 0 else self.levels[1]

    def center(self, index: int) -> Any:
        """The value of centre run ``index``: the (geometric) midpoint, or alternating choice values."""
        if isinstance(self.dim, Choice):
            return self.levels[index % 2]
        mid = (self._scale(self.dim.low) + self._scale(self.dim.high)) / 2
        mid = math.exp(mid) if self.logarithmic else mid
        if isinstance(self.dim, Int):
            return self.dim.low + math.floor((mid - self.dim.low) / self.dim.step + 0.5) * self.dim.step
        return _clean(mid)

    def code(self, value: Any) -> float:
        """Coded units: -1 at the low level, +1 at the high level, linear (in log space for logs)."""
        if isinstance(self.dim, Choice):
            return -1.0 if value == self.levels[0] else 1.0
        low, high = self._scale(self.dim.low), self._scale(self.dim.high)
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


@dataclass(frozen=True)
class StepRule:
    """How a numeric factor's range is rebuilt around its better level."""

    step: float
    count: int
    side: str


@dataclass(frozen=True)
class Analysis:
    """Everything phase 1 says: the fit, the narrowed values and the phase-2 grid."""

    effects: pd.DataFrame  # one row per term (intercept first, curvature last when present)
    terms: tuple[Term, ...]
    r_squared: float
    adj_r_squared: float
    df: float  # residual degrees of freedom, or m/3 under Lenth
    error: str  # "residual mean square" or "Lenth's PSE"
    threshold: float  # |t| above which a term is significant
    dropped: tuple[str, ...]  # terms given up because failed runs made them inestimable
    used: tuple[Run, ...]  # runs in the fit
    failed: tuple[int, ...]  # trial numbers of phase-1 runs without a value (left out, or counted as the worst)
    values: tuple[float, ...]  # their objective values
    best: tuple[Run, float]  # the best phase-1 run that has a value of its own, and that value
    narrowed: pd.DataFrame  # one row per factor
    grid: tuple[Params, ...]


class FactorialGrid(Strategy):
    """2^k (or 2^(k-p)) factorial screening, OLS effects, then a grid around the better levels."""

    name = "factorial_grid"

    def __init__(self, space: SearchSpace, seed: int, direction: Direction, replicates: int = 1,
                 center_points: int = 0, order: int = 2, alpha: float = 0.05, fraction: int = 0,
                 narrowing: Mapping[str, Any] | None = None, failed: str = "leave_out"):
        super().__init__(space, seed, direction)
        if failed not in ("leave_out", "worst"):
            raise ConfigError("strategy.failed", f"must be leave_out or worst, got {failed!r}")
        self.failed = failed
        if len(space) > len(LETTERS):
            raise ConfigError("space", f"a factorial design takes at most {len(LETTERS)} factors, got {len(space)}")
        self.factors = tuple(Factor(name, LETTERS[i], _two_levels(name, dim))
                             for i, (name, dim) in enumerate(space.items()))
        k = len(self.factors)
        for key, value, minimum in (("replicates", replicates, 1), ("center_points", center_points, 0),
                                    ("order", order, 1), ("fraction", fraction, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigError(f"strategy.{key}", f"must be an integer >= {minimum}, got {value!r}")
        order = min(order, k)  # "interactions up to order": with fewer factors, all there are
        if not 0 < alpha < 1:
            raise ConfigError("strategy.alpha", f"must be in (0, 1), got {alpha}")
        if fraction and (k < 5 or (fraction > 1 and (k, fraction) not in GENERATORS)):
            known = sorted({p for (kk, p) in GENERATORS if kk == k} | ({1} if k >= 5 else set()))
            raise ConfigError("strategy.fraction", f"no 2^({k}-{fraction}) design here; fractions need k >= 5 "
                                                   f"factors and p in {known or '[]'} for k = {k}")
        self.replicates, self.center_points, self.order, self.alpha, self.fraction = (
            replicates, center_points, order, alpha, fraction)
        self.rules, self.non_significant, self.limits = self._narrowing(narrowing or {})
        self.generators = self._generators()
        self.runs = self._runs()
        self._cache: tuple[tuple, Analysis] | None = None

    # -- configuration -------------------------------------------------------------------------

    def _narrowing(self, config: Mapping[str, Any]) -> tuple[dict[str, StepRule], str, dict[str, tuple]]:
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
            if name not in self.space or isinstance(self.space[name], Choice):
                raise ConfigError(key, f"not a numeric dimension of the space ({list(self.space)})")
            if (not isinstance(bounds, Sequence) or len(bounds) != 2
                    or any(b is not None and (isinstance(b, bool) or not isinstance(b, (int, float))) for b in bounds)):
                raise ConfigError(key, f"must be [low, high] (null for open), got {bounds!r}")
            limits[name] = (bounds[0], bounds[1])
        return rules, policy, limits

    def _generators(self) -> tuple[str, ...]:
        """Each generated factor's word over the base factors (empty for a full factorial)."""
        k, p = len(self.factors), self.fraction
        if p == 0:
            return ()
        return (LETTERS[: k - 1],) if p == 1 else GENERATORS[(k, p)]

    # -- the design ----------------------------------------------------------------------------

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
        k = len(self.factors)
        words = [sum(1 << LETTERS.index(c) for c in word) | 1 << (k - self.fraction + j)
                 for j, word in enumerate(self.generators)]
        group = {0}
        for word in words:
            group |= {g ^ word for g in group}
        return tuple(sorted(group, key=lambda m: (bin(m).count("1"), m)))

    def resolution(self) -> int | None:
        """The shortest word of the defining relation; None for a full factorial."""
        return min((bin(w).count("1") for w in self.defining_relation() if w), default=None)

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
                terms.append(Term(combo, tuple(_factors_of(m) for m in others)))
        return tuple(terms)

    def model_matrix(self, coded: np.ndarray, terms: Sequence[Term]) -> np.ndarray:
        """One column per term: the product of its factors' coded values (ones for the intercept)."""
        return np.column_stack([np.prod(coded[:, list(t.factors)], axis=1) for t in terms])

    def term_name(self, factors: tuple[int, ...]) -> str:
        return ":".join(self.factors[i].name for i in factors) or "(intercept)"

    def word(self, factors: tuple[int, ...]) -> str:
        return "".join(self.factors[i].letter for i in factors) or "I"

    @property
    def n_phase1(self) -> int:
        return len(self.runs)

    def max_trials(self) -> int:
        """An upper bound: phase 1 plus the largest grid the narrowing rule can produce."""
        size = 1
        for factor in self.factors:
            if isinstance(factor.dim, Choice):
                most = 1
            else:
                rule = self.rules[_kind(factor.dim)]
                most = rule.count * (2 if rule.side == "both" else 1) + 1
            size *= max(most, 2 if self.non_significant == "both" else 1)
        return self.n_phase1 + size

    # -- proposing -----------------------------------------------------------------------------

    def propose(self, history: Sequence[Trial], numbers: Sequence[int]) -> Decision:
        proposals: list[Proposal] = []
        for number in numbers:
            if number < self.n_phase1:
                run = self.runs[number]
                tags = {"phase": run.phase, "run": str(run.row)}
                if run.phase == "factorial":
                    tags["replicate"] = str(run.replicate)
                proposals.append(Proposal(dict(run.params), tags))
                continue
            analysis = self.analysis(history)
            if analysis is None:  # phase 1 still running: the driver waits and asks again
                break
            point = number - self.n_phase1
            if point >= len(analysis.grid):
                return Decision(proposals, finished=True)
            proposals.append(Proposal(dict(analysis.grid[point]), {"phase": "grid", "run": str(point)}))
        return Decision(proposals)

    # -- analysing phase 1 ---------------------------------------------------------------------

    def analysis(self, history: Sequence[Trial]) -> Analysis | None:
        """The fit and the grid, or None while a phase-1 trial is missing or still running."""
        phase1 = {t.number: t for t in history if t.number < self.n_phase1}
        if len(phase1) < self.n_phase1 or any(not t.finished for t in phase1.values()):
            return None
        key = tuple((n, phase1[n].state, phase1[n].value) for n in range(self.n_phase1))
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, self._analyse(phase1))
        return self._cache[1]

    def _analyse(self, phase1: Mapping[int, Trial]) -> Analysis:
        ok = tuple(r for r in self.runs if _ok(phase1[r.number]))
        failed = tuple(r.number for r in self.runs if r not in ok)
        if self.failed == "worst" and ok:
            worst = max((float(phase1[r.number].value) for r in ok), key=self.direction.loss)
            used = self.runs
            values = tuple(float(phase1[r.number].value) if r in ok else worst for r in used)
        else:
            used, values = ok, tuple(float(phase1[r.number].value) for r in ok)
        y = np.array(values)
        coded = np.array([r.coded for r in used], dtype=float).reshape(len(used), len(self.factors))
        centre = np.array([r.phase == "center" for r in used], dtype=float)
        for order in range(self.order, 0, -1):
            terms = self.terms(order)
            x = self.model_matrix(coded, terms)
            if centre.any():
                x = np.column_stack([x, centre])
            if len(used) >= x.shape[1] and np.linalg.matrix_rank(x) == x.shape[1]:
                break
        else:
            raise DesignError(f"factorial_grid: {len(failed)} of {self.n_phase1} phase-1 runs failed (trials "
                              f"{list(failed)}); the main effects are no longer estimable. See their error tags, fix "
                              f"the cause and start a new study.")
        dropped = tuple(self.term_name(t.factors) for t in self.terms(self.order)[len(terms):])
        names = [self.term_name(t.factors) for t in terms] + (["curvature"] if centre.any() else [])
        fit = sm.OLS(y, pd.DataFrame(x, columns=names)).fit()
        coef = np.array(fit.params, dtype=float)
        coef[np.abs(coef) < 1e-12 * max(1.0, float(np.abs(y).max()))] = 0.0  # rounding noise is a tie, not an effect
        n_factorial = int(len(used) - centre.sum())
        if fit.df_resid > 0:
            se, df, error = np.asarray(fit.bse, dtype=float), float(fit.df_resid), "residual mean square"
        else:
            pse = lenth_pse(coef[1: len(terms)])
            se = np.full(len(coef), pse)
            if centre.any():  # Var(centre mean - factorial mean) = sigma^2 (1/c + 1/n_F), sigma = PSE sqrt(n_F)
                se[-1] = pse * math.sqrt(n_factorial) * math.sqrt(1 / centre.sum() + 1 / n_factorial)
            df, error = (len(terms) - 1) / 3, "Lenth's PSE"
        with np.errstate(divide="ignore", invalid="ignore"):  # a zero PSE gives no t; a constant objective no R^2
            t = coef / se
            r2 = float(fit.rsquared) if fit.centered_tss > 0 else np.nan
            adj_r2 = float(fit.rsquared_adj) if fit.centered_tss > 0 and fit.df_resid > 0 else np.nan
        p = 2 * stats.t.sf(np.abs(t), df)
        effects = pd.DataFrame({
            "term": names,
            "word": [self.word(term.factors) for term in terms] + (["curvature"] if centre.any() else []),
            "effect": [np.nan] + [2 * c for c in coef[1: len(terms)]] + ([np.nan] if centre.any() else []),
            "coefficient": coef, "std_err": se, "t": t, "p": p,
            "significant": [bool(v < self.alpha) for v in p],
            "aliases": [" = ".join(self.word(a) for a in term.aliases) for term in terms]
            + ([""] if centre.any() else []),
        })
        best = self._best_run([(r, v) for r, v in zip(used, values) if r.number not in failed])
        narrowed = self._narrow(effects, best[0])
        grid = tuple(dict(zip(self.space, combo)) for combo in itertools.product(*narrowed["values"]))
        return Analysis(effects, terms, r2, adj_r2, df, error, float(stats.t.ppf(1 - self.alpha / 2, df)), dropped,
                        used, failed, values, best, narrowed, grid)

    # -- narrowing -----------------------------------------------------------------------------

    def _narrow(self, effects: pd.DataFrame, best_run: Run) -> pd.DataFrame:
        """Each factor's new values; ``best_run`` is the best measured phase-1 run (the ``best`` rule)."""
        by_term = effects.set_index("term")
        rows = []
        for factor in self.factors:
            effect, p = by_term.at[factor.name, "effect"], by_term.at[factor.name, "p"]
            improving = 1 if self.direction.loss(effect) < 0 else -1  # towards the better level
            better = factor.value(improving)
            significant = bool(p < self.alpha)
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

    def _best_run(self, measured: Sequence[tuple[Run, float]]) -> tuple[Run, float]:
        """The phase-1 run with the lowest loss (the earliest on a tie)."""
        return min(measured, key=lambda rv: (self.direction.loss(rv[1]), rv[0].number))

    def _around(self, factor: Factor, better: Any, improving: int) -> list[Any]:
        """The better level plus ``count`` steps on the rule's side, mirrored at the limits."""
        dim = factor.dim
        rule = self.rules[_kind(dim)]
        low, high = self.limits.get(factor.name, _default_limits(dim))

        def move(steps: int) -> Any:
            if isinstance(dim, Int):
                return better + steps * int(rule.step) * dim.step
            if isinstance(dim, LogFloat):
                return _clean(better * 10 ** (steps * rule.step))
            return _clean(better + steps * rule.step * (dim.high - dim.low))

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

    # -- explaining ----------------------------------------------------------------------------

    def artifacts(self, history: Sequence[Trial]) -> dict[str, str | bytes]:
        """Phase 1: design, effects, aliases, narrowing, summary and plots; phase 2: the grid and its best."""
        analysis = self.analysis(history)
        if analysis is None:
            return {}
        by_number = {t.number: t for t in history}
        design = self._design_table(by_number)
        effects = analysis.effects
        narrowed = analysis.narrowed.assign(values=[", ".join(map(str, v)) for v in analysis.narrowed["values"]])
        files: dict[str, str | bytes] = {
            "factorial/design.csv": design.to_csv(index=False),
            "factorial/design.md": markdown(design) + "\n",
            "factorial/effects.csv": effects.to_csv(index=False),
            "factorial/effects.md": self._effects_md(analysis),
            "factorial/narrowed.csv": narrowed.to_csv(index=False),
            "factorial/narrowed.md": markdown(narrowed) + f"\n\nPhase-2 grid: {len(analysis.grid)} points.\n",
            "factorial/summary.md": self._summary(analysis),
            "factorial/pareto.png": self._pareto(analysis),
            "factorial/half_normal.png": self._half_normal(analysis),
            "factorial/main_effects.png": self._main_effects(analysis),
        }
        if len(self.factors) > 1:
            files["factorial/interactions.png"] = self._interactions(analysis)
        if self.fraction:
            files["factorial/aliases.md"] = self._aliases(analysis)
        grid_trials = [by_number[n] for n in range(self.n_phase1, self.n_phase1 + len(analysis.grid))
                       if n in by_number and by_number[n].finished]
        if grid_trials:
            results = self._grid_table(analysis, by_number)
            files["grid/results.csv"] = results.to_csv(index=False)
            files["grid/results.md"] = markdown(results) + "\n"
            files["grid/best.md"] = self._best(analysis, grid_trials, by_number)
        return files

    def _design_table(self, by_number: Mapping[int, Trial]) -> pd.DataFrame:
        rows = []
        for run in self.runs:
            trial = by_number[run.number]
            rows.append({"trial": run.number, "phase": run.phase, "run": run.row, "replicate": run.replicate,
                         **{f.letter: c for f, c in zip(self.factors, run.coded)}, **run.params,
                         "state": trial.state.value, "objective": trial.value if _ok(trial) else np.nan})
        return pd.DataFrame(rows)

    def _grid_table(self, analysis: Analysis, by_number: Mapping[int, Trial]) -> pd.DataFrame:
        rows = []
        for point, params in enumerate(analysis.grid):
            trial = by_number.get(self.n_phase1 + point)
            rows.append({"trial": self.n_phase1 + point, "run": point, **params,
                         "state": trial.state.value if trial else "pending",
                         "objective": trial.value if trial is not None and _ok(trial) else np.nan})
        return pd.DataFrame(rows)

    def _effects_md(self, analysis: Analysis) -> str:
        lines = [f"# Effects ({self.direction.value} the objective; effect = 2 x coefficient, coded units)", "",
                 markdown(analysis.effects), "",
                 f"R^2 = {analysis.r_squared:.4f}, adjusted R^2 = {analysis.adj_r_squared:.4f}; error: "
                 f"{analysis.error}, {analysis.df:.4g} df; significant: p < {self.alpha} "
                 f"(|t| > {analysis.threshold:.3f})."]
        return "\n".join(lines) + "\n"

    def _summary(self, analysis: Analysis) -> str:
        k, p = len(self.factors), self.fraction
        failed = list(analysis.failed)
        design = f"2^{k}" if not p else f"2^({k}-{p}), resolution {self.resolution()}, generators " + ", ".join(
            f"{LETTERS[k - p + j]} = {w}" for j, w in enumerate(self.generators))
        lines = [f"# factorial_grid: {self.direction.value} the objective", "",
                 f"- design: {design}; {self.replicates} replicate(s), {self.center_points} centre run(s); "
                 f"{self.n_phase1} phase-1 trials, {len(failed)} failed" + (f" (trials {failed})" if failed else "")
                 + (", counted as the worst value" if failed and self.failed == "worst" else ""),
                 "- factors: " + ", ".join(f"{f.letter} = {f.name} ({f.levels[0]} / {f.levels[1]})"
                                           for f in self.factors),
                 f"- model: interactions up to order {self.order}"
                 + (f"; dropped (not estimable after failures): {', '.join(analysis.dropped)}"
                    if analysis.dropped else ""),
                 f"- error: {analysis.error}, {analysis.df:.4g} df; R^2 = {analysis.r_squared:.4f}",
                 ]
        if "curvature" in set(analysis.effects["term"]):
            row = analysis.effects.set_index("term").loc["curvature"]
            lines.append(f"- curvature (centre mean - factorial mean): {row['coefficient']:.6g}, t = {row['t']:.3f}, "
                         f"p = {row['p']:.4g} ({'significant' if row['significant'] else 'not significant'})")
        lines.append(f"- narrowing: non-significant factors: {self.non_significant}; phase-2 grid: "
                     f"{len(analysis.grid)} points (upper bound {self.max_trials() - self.n_phase1})")
        for row in analysis.narrowed.itertuples():
            lines.append(f"  - {row.factor}: better level {row.better} (effect {row.effect:.4g}, p = {row.p:.4g}, "
                         f"{row.rule}) -> {list(row.values)}")
        return "\n".join(lines) + "\n"

    def _aliases(self, analysis: Analysis) -> str:
        k, p = len(self.factors), self.fraction
        words = [self.word(_factors_of(w)) for w in self.defining_relation()]
        lines = [f"# Alias structure of the 2^({k}-{p}) design (resolution {self.resolution()})", "",
                 "Generators: " + ", ".join(f"{LETTERS[k - p + j]} = {w}" for j, w in enumerate(self.generators)),
                 "", "Defining relation: " + " = ".join(words), "",
                 "Factors: " + ", ".join(f"{f.letter} = {f.name}" for f in self.factors), "",
                 "| estimated term | aliases |", "| --- | --- |"]
        lines += [f"| {self.word(t.factors)} | {' = '.join(self.word(a) for a in t.aliases)} |"
                  for t in analysis.terms[1:]]
        return "\n".join(lines) + "\n"

    def _best(self, analysis: Analysis, grid_trials: Sequence[Trial], by_number: Mapping[int, Trial]) -> str:
        done = [t for t in grid_trials if _ok(t)]
        total = len(analysis.grid)
        lines = ["# Best configuration of the grid", "",
                 f"{len(grid_trials)} of {total} grid trials finished, {len(done)} with a value."]
        if done:
            best = min(done, key=lambda t: (self.direction.loss(t.value), t.number))
            lines += ["", f"Best: trial {best.number} (grid point {best.number - self.n_phase1}), objective "
                      f"{best.value:.6g}", "", "| parameter | value |", "| --- | --- |"]
            lines += [f"| {name} | {value} |" for name, value in best.params.items()]
        run, value = analysis.best
        lines += ["", f"Best phase-1 run for comparison: trial {run.number}, objective {value:.6g}."]
        return "\n".join(lines) + "\n"

    # -- plots ---------------------------------------------------------------------------------

    def _pareto(self, analysis: Analysis) -> bytes:
        plt = pyplot()
        table = analysis.effects.iloc[1: len(analysis.terms)]
        size = np.abs(table["t"].to_numpy(dtype=float))
        size[~np.isfinite(size)] = np.nan  # Lenth's PSE is 0 when most effects are exactly 0: no bar
        order = np.argsort(size)
        fig, ax = plt.subplots(figsize=(6, 1.2 + 0.32 * len(table)))
        ax.barh(range(len(table)), size[order], color=["tab:red" if s > analysis.threshold else "tab:gray"
                                                       for s in size[order]])
        ax.set_yticks(range(len(table)), [table["term"].iat[i] for i in order], fontsize=8)
        ax.axvline(analysis.threshold, color="black", linestyle="--",
                   label=f"t(1-{self.alpha}/2, {analysis.df:.3g} df) = {analysis.threshold:.3f}")
        ax.set_xlabel(f"standardized effect |t| ({analysis.error})")
        ax.set_title("Pareto chart of standardized effects", fontsize=10)
        ax.legend(fontsize=7, loc="lower right")
        return png(fig)

    def _half_normal(self, analysis: Analysis) -> bytes:
        plt = pyplot()
        table = analysis.effects.iloc[1: len(analysis.terms)]
        size = np.abs(table["effect"].to_numpy(dtype=float))
        order = np.argsort(size)
        m = len(size)
        quantiles = stats.halfnorm.ppf((np.arange(1, m + 1) - 0.5) / m)
        fig, ax = plt.subplots(figsize=(6, 4.5))
        ax.scatter(size[order], quantiles,
                   color=["tab:red" if table["significant"].iat[i] else "tab:blue" for i in order])
        for x, q, i in zip(size[order], quantiles, order):
            ax.annotate(table["term"].iat[i], (x, q), textcoords="offset points", xytext=(4, -3), fontsize=7)
        effect_se = 2 * float(table["std_err"].iat[0])
        if math.isfinite(effect_se) and effect_se > 0:
            ax.plot(effect_se * quantiles, quantiles, color="gray", linestyle="--", label="noise (|effect| ~ 2 se)")
            ax.legend(fontsize=7, loc="lower right")
        ax.set_xlabel("|effect|")
        ax.set_ylabel("half-normal quantile")
        ax.set_title("Half-normal plot of effects (red: significant)", fontsize=10)
        return png(fig)

    def _level_means(self, analysis: Analysis) -> tuple[np.ndarray, np.ndarray]:
        factorial = [i for i, r in enumerate(analysis.used) if r.phase == "factorial"]
        coded = np.array([analysis.used[i].coded for i in factorial]).reshape(len(factorial), len(self.factors))
        return coded, np.array([analysis.values[i] for i in factorial])

    def _main_effects(self, analysis: Analysis) -> bytes:
        plt = pyplot()
        coded, y = self._level_means(analysis)
        k = len(self.factors)
        fig, axes = plt.subplots(1, k, figsize=(2.4 * k + 0.8, 3.2), sharey=True, squeeze=False)
        for ax, (i, factor) in zip(axes[0], enumerate(self.factors)):
            means = [y[coded[:, i] == level].mean() for level in (-1, 1)]
            ax.plot([0, 1], means, marker="o")
            ax.axhline(y.mean(), color="gray", linestyle=":", linewidth=0.8)
            ax.set_xticks([0, 1], [str(v) for v in factor.levels])
            ax.set_xlim(-0.3, 1.3)
            ax.set_title(factor.name, fontsize=9)
        axes[0][0].set_ylabel(f"mean objective ({self.direction.value})")
        fig.suptitle("Main effects", fontsize=10)
        return png(fig)

    def _interactions(self, analysis: Analysis) -> bytes:
        plt = pyplot()
        coded, y = self._level_means(analysis)
        pairs = list(itertools.combinations(range(len(self.factors)), 2))
        columns = min(3, len(pairs))
        rows = math.ceil(len(pairs) / columns)
        fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.8 * rows), squeeze=False)
        for ax, (i, j) in zip(axes.flat, pairs):
            for level, style in ((-1, "o--"), (1, "s-")):
                means = [y[(coded[:, i] == a) & (coded[:, j] == level)].mean() for a in (-1, 1)]
                ax.plot([0, 1], means, style, label=f"{self.factors[j].name} = {self.factors[j].value(level)}")
            ax.set_xticks([0, 1], [str(v) for v in self.factors[i].levels])
            ax.set_xlim(-0.3, 1.3)
            ax.set_xlabel(self.factors[i].name, fontsize=8)
            ax.legend(fontsize=6)
        for ax in list(axes.flat)[len(pairs):]:
            ax.set_visible(False)
        fig.suptitle("Two-factor interactions (mean objective)", fontsize=10)
        return png(fig)


def lenth_pse(coefficients: np.ndarray) -> float:
    """Lenth's (1989) pseudo standard error: 1.5 x the median of the |c| below 2.5 x 1.5 median |c|."""
    size = np.abs(np.asarray(coefficients, dtype=float))
    s0 = 1.5 * np.median(size)
    trimmed = size[size < 2.5 * s0]
    return float(1.5 * np.median(trimmed)) if trimmed.size else 0.0


def markdown(frame: pd.DataFrame) -> str:
    """A GitHub markdown table (pandas' to_markdown needs tabulate, which is not a dependency)."""

    def cell(value: Any) -> str:
        if isinstance(value, (bool, np.bool_)):
            return "yes" if value else ""
        if isinstance(value, (float, np.floating)):
            return "" if math.isnan(value) else f"{value:.4g}"
        return str(value)

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + " --- |" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def _two_levels(name: str, dim: Dimension) -> Dimension:
    if isinstance(dim, Choice) and len(dim.values) != 2:
        raise ConfigError(f"space.{name}",
                          f"a factorial factor needs exactly two choice values, got {list(dim.values)}")
    if not isinstance(dim, Choice) and dim.low == dim.high:
        raise ConfigError(f"space.{name}", f"a factorial factor needs low < high, got {dim.low} and {dim.high}")
    return dim


def _kind(dim: Dimension) -> str:
    return "log_float" if isinstance(dim, LogFloat) else "float" if isinstance(dim, Float) else "int"


def _default_limits(dim: Dimension) -> tuple[float | None, float | None]:
    if isinstance(dim, Int):
        return min(1, dim.low), None
    if isinstance(dim, LogFloat):
        return None, None
    return dim.low, dim.high


def _factors_of(mask: int) -> tuple[int, ...]:
    return tuple(i for i in range(mask.bit_length()) if mask >> i & 1)


def _ok(trial: Trial) -> bool:
    return trial.state is TrialState.COMPLETE and trial.value is not None and math.isfinite(trial.value)

