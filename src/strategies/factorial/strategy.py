"""The ``factorial_grid`` strategy: phase 1 runs the design, phase 2 the grid its effects point to.

**Phase 1** (trials ``0 .. N1-1``): the design's runs in order (see ``design``), tagged ``phase``
(factorial / center), ``run`` (standard-order row or centre index) and ``replicate``.

**Phase 2** (trials N1 ..): once every phase-1 trial has finished, the effects are fitted (see
``analysis``) and each factor narrowed (see ``narrowing``); the phase-2 grid is the product of the
narrowed values in space order (last dimension fastest), each point once, including points already
run in phase 1 (the paper re-ran them). Trial N1 + j runs point j (tags ``phase: grid``, ``run:
j``); once the grid is used up the study is finished. ``max_trials`` is an upper bound (N1 + the
largest grid the rule can produce) because the grid is known only after the fit. Everything is
recomputed from the finished phase-1 trials on each call (cached on their values).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from src.errors import ConfigError
from src.space import SearchSpace
from src.strategies.base import Decision, Strategy
from src.strategies.factorial import plots, tables
from src.strategies.factorial.analysis import Analysis, analyse
from src.strategies.factorial.design import Design, fractions
from src.strategies.factorial.narrowing import Narrowing
from src.trial import Direction, Proposal, Trial


class FactorialGrid(Design, Strategy):
    """2^k (or 2^(k-p)) factorial screening, OLS effects, then a grid around the better levels."""

    name = "factorial_grid"

    def __init__(self, space: SearchSpace, seed: int, direction: Direction, replicates: int = 1,
                 center_points: int = 0, order: int = 2, alpha: float = 0.05, fraction: int = 0,
                 narrowing: Mapping[str, Any] | None = None, failed: str = "leave_out"):
        Strategy.__init__(self, space, seed, direction)
        if failed not in ("leave_out", "worst"):
            raise ConfigError("strategy.failed", f"must be leave_out or worst, got {failed!r}")
        if isinstance(order, bool) or not isinstance(order, int) or order < 1:
            raise ConfigError("strategy.order", f"must be an integer >= 1, got {order!r}")
        if not 0 < alpha < 1:
            raise ConfigError("strategy.alpha", f"must be in (0, 1), got {alpha}")
        Design.__init__(self, space, replicates, center_points, fraction)
        self.failed, self.alpha = failed, alpha
        self.order = min(order, len(self.factors))  # "interactions up to order": with fewer factors, all there are
        self.narrowing = Narrowing.from_config(narrowing or {}, space)
        self._cache: tuple[tuple, Analysis] | None = None
        self._explained: tuple[Analysis, dict[str, str | bytes]] | None = None  # phase 1's files, per analysis

    def max_trials(self) -> int:
        """An upper bound: phase 1 plus the largest grid the narrowing rule can produce."""
        return self.n_phase1 + math.prod(self.narrowing.most_values(f) for f in self.factors)

    def fit_budget(self, n_trials: int) -> str | None:
        """Nothing is estimated until every phase-1 run has finished, so a smaller budget only spends trainings."""
        if n_trials >= self.n_phase1:
            return None
        remedies = [f"raise n_trials to at least {self.n_phase1} (null runs the design, then its grid)"]
        k = len(self.factors)
        fitting = [p for p in fractions(k) if p > self.fraction
                   and 2 ** (k - p) * self.replicates + self.center_points <= n_trials]
        if fitting:
            p = fitting[0]
            remedies.append(f"run a fraction of the design with strategy.fraction={p} "
                            f"({2 ** (k - p) * self.replicates + self.center_points} runs)")
        raise ConfigError("n_trials", f"{n_trials} trials cannot finish the {self.describe()} factorial design's "
                                      f"{self.n_phase1} runs (phase 1), so no effects would be estimated; "
                          + ", or ".join(remedies))

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

    def analysis(self, history: Sequence[Trial]) -> Analysis | None:
        """The fit and the grid, or None while a phase-1 trial is missing or still running."""
        phase1 = {t.number: t for t in history if t.number < self.n_phase1}
        if len(phase1) < self.n_phase1 or any(not t.finished for t in phase1.values()):
            return None
        key = tuple((n, phase1[n].state, phase1[n].value) for n in range(self.n_phase1))
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, analyse(self, phase1, order=self.order, alpha=self.alpha, failed_rule=self.failed,
                                        direction=self.direction, narrowing=self.narrowing))
        return self._cache[1]

    def artifacts(self, history: Sequence[Trial]) -> dict[str, str | bytes]:
        """Phase 1: design, effects, aliases, narrowing, summary and plots; phase 2: the grid and its best."""
        analysis = self.analysis(history)
        if analysis is None:
            return {}
        by_number = {t.number: t for t in history}
        if self._explained is None or self._explained[0] is not analysis:  # phase 1's files change with it only
            self._explained = (analysis, self._phase1_files(analysis, by_number))
        files = dict(self._explained[1])
        grid_trials = [by_number[n] for n in range(self.n_phase1, self.n_phase1 + len(analysis.grid))
                       if n in by_number and by_number[n].finished]
        if grid_trials:
            results = tables.grid_table(analysis, self.n_phase1, by_number)
            files["grid/results.csv"] = results.to_csv(index=False)
            files["grid/results.md"] = tables.markdown(results) + "\n"
            files["grid/best.md"] = tables.best(analysis, grid_trials, self.n_phase1, self.direction)
        return files

    def _phase1_files(self, analysis: Analysis, by_number: dict[int, Trial]) -> dict[str, str | bytes]:
        design = tables.design_table(self, by_number)
        narrowed = analysis.narrowed.assign(values=[", ".join(map(str, v)) for v in analysis.narrowed["values"]])
        files: dict[str, str | bytes] = {
            "factorial/design.csv": design.to_csv(index=False),
            "factorial/design.md": tables.markdown(design) + "\n",
            "factorial/effects.csv": analysis.effects.to_csv(index=False),
            "factorial/effects.md": tables.effects_md(analysis, self.direction, self.alpha),
            "factorial/narrowed.csv": narrowed.to_csv(index=False),
            "factorial/narrowed.md": tables.markdown(narrowed) + f"\n\nPhase-2 grid: {len(analysis.grid)} points.\n",
            "factorial/summary.md": tables.summary(self, analysis),
            "factorial/pareto.png": plots.pareto(analysis, self.alpha),
            "factorial/half_normal.png": plots.half_normal(analysis),
            "factorial/main_effects.png": plots.main_effects(analysis, self.factors, self.direction),
        }
        if len(self.factors) > 1:
            files["factorial/interactions.png"] = plots.interactions(analysis, self.factors)
        if self.fraction:
            files["factorial/aliases.md"] = tables.aliases(self, analysis)
        return files
