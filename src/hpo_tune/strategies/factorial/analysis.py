"""What phase 1 says: OLS effects (statsmodels), their significance, and the phase-2 grid they lead to.

**Fit.** Once every phase-1 trial has finished, OLS in coded units of the objective value on the
intercept, the main effects and the interactions up to ``order`` (capped at k; default 2, the
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
fail, as a learning rate that diverges does, and the same rule the BOs use). If the model with
interactions up to ``order`` is then no longer estimable (rank-deficient), the highest interactions
are dropped until it is (reported as dropped terms); if not even the main effects are estimable,
``DesignError``: fix the failure's cause and start a new study.

**The grid** is the product of the narrowed values (see ``narrowing``), fitted to the ``room`` the
budget leaves after phase 1 by ``narrowing.fit_grid``; with no room there is no grid.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

from hpo_tune.space import Params
from hpo_tune.strategies.factorial.design import Design, Run, Term
from hpo_tune.strategies.factorial.narrowing import Narrowing, fit_grid
from hpo_tune.trial import Direction, Trial, TrialState


class DesignError(RuntimeError):
    """Phase 1 lost so many runs that not even the main effects can be estimated."""


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
    narrowed: pd.DataFrame  # one row per factor: its values, and those dropped to fit the budget
    grid: tuple[Params, ...]


def analyse(design: Design, phase1: Mapping[int, Trial], *, order: int, alpha: float, failed_rule: str,
            direction: Direction, narrowing: Narrowing, room: int | None) -> Analysis:
    """Fit the effects on the finished phase-1 trials (by number), then narrow and build the grid within ``room``."""
    ok = tuple(r for r in design.runs if measured(phase1[r.number]))
    failed = tuple(r.number for r in design.runs if r not in ok)
    if failed_rule == "worst" and ok:
        worst = max((float(phase1[r.number].value) for r in ok), key=direction.loss)
        used = design.runs
        values = tuple(float(phase1[r.number].value) if r in ok else worst for r in used)
    else:
        used, values = ok, tuple(float(phase1[r.number].value) for r in ok)
    y = np.array(values)
    coded = np.array([r.coded for r in used], dtype=float).reshape(len(used), len(design.factors))
    centre = np.array([r.phase == "center" for r in used], dtype=float)
    for highest in range(order, 0, -1):
        terms = design.terms(highest)
        x = design.model_matrix(coded, terms)
        if centre.any():
            x = np.column_stack([x, centre])
        if len(used) >= x.shape[1] and np.linalg.matrix_rank(x) == x.shape[1]:
            break
    else:
        raise DesignError(f"factorial_grid: {len(failed)} of {design.n_phase1} phase-1 runs failed (trials "
                          f"{list(failed)}); the main effects are no longer estimable. See their error tags, fix "
                          f"the cause and start a new study.")
    dropped = tuple(design.term_name(t.factors) for t in design.terms(order)[len(terms):])
    names = [design.term_name(t.factors) for t in terms] + (["curvature"] if centre.any() else [])
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
        "word": [design.word(term.factors) for term in terms] + (["curvature"] if centre.any() else []),
        "effect": [np.nan] + [2 * c for c in coef[1: len(terms)]] + ([np.nan] if centre.any() else []),
        "coefficient": coef, "std_err": se, "t": t, "p": p,
        "significant": [bool(v < alpha) for v in p],
        "aliases": [" = ".join(design.word(a) for a in term.aliases) for term in terms]
        + ([""] if centre.any() else []),
    })
    best = min(((r, v) for r, v in zip(used, values) if r.number not in failed),
               key=lambda rv: (direction.loss(rv[1]), rv[0].number))  # the lowest loss, the earliest on a tie
    narrowed = fit_grid(narrowing.narrow(design.factors, effects, best[0], direction, alpha), room)
    factors = [f.name for f in design.factors]
    grid = () if room == 0 else tuple(dict(zip(factors, combo)) for combo in itertools.product(*narrowed["values"]))
    return Analysis(effects, terms, r2, adj_r2, df, error, float(stats.t.ppf(1 - alpha / 2, df)), dropped,
                    used, failed, values, best, narrowed, grid)


def lenth_pse(coefficients: np.ndarray) -> float:
    """Lenth's (1989) pseudo standard error: 1.5 x the median of the |c| below 2.5 x 1.5 median |c|."""
    size = np.abs(np.asarray(coefficients, dtype=float))
    s0 = 1.5 * np.median(size)
    trimmed = size[size < 2.5 * s0]
    return float(1.5 * np.median(trimmed)) if trimmed.size else 0.0


def measured(trial: Trial) -> bool:
    """Whether a trial completed with a finite value (what the fit can use)."""
    return trial.state is TrialState.COMPLETE and trial.value is not None and math.isfinite(trial.value)
