"""The paper's Student-t model of a combination's losses: P(loss < criterion) for a stage at once, and which
combinations survive it."""

from __future__ import annotations

import numpy as np
from scipy import stats

from hpo_tune.strategies.t_sampling.plan import LEAST_SAMPLES
from hpo_tune.strategies.t_sampling.stages import Samples, criterion


def probabilities(n: np.ndarray, mean: np.ndarray, sd: np.ndarray, bar: float, scale: str) -> np.ndarray:
    """P(loss < bar) of each combination (n samples, their mean and sd): one vectorised Student-t cdf, its scale
    the predictive spread (``scale="predictive"``) or the mean's standard error; 0 below two samples."""
    valid = n >= 2
    safe_n = np.where(valid, n, 2)
    spread = np.where(valid, sd, 0.0) * (np.sqrt(1 + 1 / safe_n) if scale == "predictive" else 1 / np.sqrt(safe_n))
    spread_ok = spread > 0
    p = stats.t.cdf(bar, df=safe_n - 1, loc=np.where(valid, mean, 0.0), scale=np.where(spread_ok, spread, 1))
    p = np.where(spread_ok, p, (mean <= bar).astype(float))
    return np.where(valid, p, 0.0)


def surviving(samples: Samples, keep: int | None, alpha: float, scale: str) -> list[int]:
    """Indices (in stage order) of the combinations with P(loss < criterion) >= alpha; when the budget keeps only
    ``keep``, the most probable of them (then the lowest mean)."""
    p = probabilities(samples.n, samples.mean, samples.sd, criterion(samples, LEAST_SAMPLES), scale)
    passing = np.flatnonzero(p >= alpha)
    if keep is not None and len(passing) > keep:
        passing = np.sort(passing[np.lexsort((passing, samples.mean[passing], -p[passing]))][:keep])
    return passing.tolist()
