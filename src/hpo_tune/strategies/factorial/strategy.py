"""The ``factorial_grid`` strategy: phase 1 runs the design, phase 2 the grid its effects point to.

**Phase 1** (trials ``0 .. N1-1``): the design's runs in order (see ``design``), tagged ``phase``
(factorial / center), ``run`` (standard-order row or centre index) and ``replicate``.

**Phase 2** (trials N1 ..): once every phase-1 trial has finished, the effects are fitted (see
``analysis``) and each factor narrowed (see ``narrowing``); the phase-2 grid is the product of the
narrowed values in space order (last dimension fastest), each point once, including points already
run in phase 1 (the paper re-ran them), shrunk to the trials the budget leaves (``fit_grid``). Trial
N1 + j runs point j (tags ``phase: grid``, ``run: j``); once the grid is used up the study is
finished. ``max_trials`` is N1 plus the largest grid the rule can produce, or the trials the budget
leaves if fewer: the grid is known only after the fit. Everything is recomputed from the finished
phase-1 trials on each call (cached on their values).

**The budget** (``fit_budget``, before the study starts). The grid is owed a quarter of ``n_trials``
(rounded down) and at least ``MIN_GRID`` points. With ``fraction: auto`` (the default) phase 1 is the
full design when it leaves the grid that much, else the largest fraction that does (the smallest p;
minimum-aberration generators, see ``design``), and the note names it; when not even the smallest
design does, the budget is refused naming ``n_trials`` and that design's size. An explicit
``fraction`` (0: the full design) is kept as given, refused only when phase 1 itself does not fit,
and the grid gets what is left. Resuming a study with another ``n_trials`` can change an ``auto``
design: phase-1 trials that ran another design are a ``DesignError``, not a silent mix.

**Refinement** (``refine: true``, the default; only with a budget that leaves trials after the grid).
The paper's study ends with its grid, which stays near the better corner and leaves most of a larger
budget unused; refining, the rest of ``n_trials`` goes to rounds of a compass search around the best
trial so far (see ``refine``; tags ``phase: refine``, ``round``, ``run``) and the study runs all of
``n_trials`` unless the search converges first (``refine/rounds.md`` says why it stopped). Three
things change so that the rounds get trials and a good start: with ``fraction: auto`` phase 1 is the
largest design in half of ``n_trials`` (today's rule when none is), a grid larger than the trials
left gets only its quarter of ``n_trials`` instead of all of them, and the two levels sit at the
quarter points of each numeric range (``INSET``, in the dimension's scale) instead of at the
bounds: each level stands for its half of the range, so the better level is the centre of the
better half rather than a corner, and the rounds start inside. Without trials after the grid
(``n_trials`` null, or a grid that takes all of them, as seed 002's 8 + 12 of 20 does) nothing
changes: levels at the bounds, the paper's grid, the end. ``refine: false`` is the paper's
behaviour at every budget. Refining, ``max_trials`` is ``n_trials``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

from hpo_tune.errors import ConfigError
from hpo_tune.space import SearchSpace
from hpo_tune.strategies.base import Decision, Strategy
from hpo_tune.strategies.factorial import plots, tables
from hpo_tune.strategies.factorial.analysis import Analysis, DesignError, analyse
from hpo_tune.strategies.factorial.design import Design, factors_of, fractions, label
from hpo_tune.strategies.factorial.narrowing import Narrowing
from hpo_tune.strategies.factorial.refine import Search, search
from hpo_tune.strategies.factorial.snapshot import FactorialSnapshot
from hpo_tune.trial import Direction, Proposal, Trial

GRID_SHARE = 4  # the grid is owed n_trials // GRID_SHARE trials ...
MIN_GRID = 2  # ... and never fewer than this: a grid of one point is the predicted best, not a search
INSET = 0.25  # refining, the levels sit at the quarter points: each stands for its half of the range
PHASE1_SHARE = 2  # refining, phase 1 takes at most n_trials // PHASE1_SHARE when a design fits in it


def min_grid(n_trials: int) -> int:
    """The trials a budget of ``n_trials`` keeps for the grid when ``fraction: auto`` chooses the design."""
    return max(MIN_GRID, n_trials // GRID_SHARE)


class FactorialGrid(Design, Strategy):
    """2^k (or 2^(k-p)) factorial screening, OLS effects, then a grid around the better levels."""

    name = "factorial_grid"

    def __init__(self, space: SearchSpace, seed: int, direction: Direction, replicates: int = 1,
                 center_points: int = 0, order: int = 2, alpha: float = 0.05, fraction: int | str = "auto",
                 narrowing: Mapping[str, Any] | None = None, failed: str = "leave_out",
                 refine: bool = True):
        Strategy.__init__(self, space, seed, direction)
        space.refuse_conditions("factorial_grid", "sets every dimension at one of two levels in every run")
        if failed not in ("leave_out", "worst"):
            raise ConfigError("strategy.failed", f"must be leave_out or worst, got {failed!r}")
        if isinstance(order, bool) or not isinstance(order, int) or order < 1:
            raise ConfigError("strategy.order", f"must be an integer >= 1, got {order!r}")
        if not 0 < alpha < 1:
            raise ConfigError("strategy.alpha", f"must be in (0, 1), got {alpha}")
        if not isinstance(refine, bool):
            raise ConfigError("strategy.refine", f"must be true or false, got {refine!r}")
        Design.__init__(self, space, replicates, center_points, fraction)
        self.failed, self.alpha, self.refine = failed, alpha, refine
        self.order = min(order, len(self.factors))  # "interactions up to order": with fewer factors, all there are
        self.narrowing = Narrowing.from_config(narrowing or {}, space)
        self.room: int | None = None  # trials the budget leaves after phase 1; None until fit_budget, or unlimited
        self.grid_room: int | None = None  # of those, the grid's (the rest goes to refinement rounds)
        self._cache: tuple[tuple, Analysis] | None = None  # the analysis, keyed on phase 1's (number, state, value)
        self._explained: tuple[tuple, dict[str, str | bytes]] | None = None  # phase 1's files, on the same key

    def largest_grid(self) -> int:
        """The most points the narrowing rule can give phase 2, before any budget."""
        return math.prod(self.narrowing.most_values(f) for f in self.factors)

    @property
    def refining(self) -> bool:
        """Whether refinement rounds follow the grid: ``refine`` and a budget (without one the grid ends the study)."""
        return self.refine and self.room is not None

    def max_trials(self) -> int:
        """Phase 1 plus the largest grid, or plus the trials the budget leaves if fewer; refining, the whole budget."""
        largest = self.largest_grid()
        if self.room is None:
            return self.n_phase1 + largest
        return self.n_phase1 + (self.room if self.refining else min(largest, self.room))

    def fit_budget(self, n_trials: int) -> str | None:
        """Choose phase 1 for the budget (``fraction: auto``) and leave the rest to the grid (and, refining, the
        rounds). A budget that cannot finish phase 1 is refused: nothing is estimated until every phase-1 run has
        finished."""
        k, least = len(self.factors), min_grid(n_trials)
        fits = self.fitting_fraction(n_trials - least)
        refusal = self._refusal(n_trials, least, fits)
        if refusal is not None:
            raise refusal
        half = self.fitting_fraction(n_trials // PHASE1_SHARE) if self.refine and self.auto else None
        if self.auto:
            self.use_fraction(fits if half is None else half)
        self.room, self._cache, self._explained = n_trials - self.n_phase1, None, None
        whole = self.largest_grid() <= self.room
        self.grid_room = self.room if whole or not self.refine else min(self.room, least)
        left = self.room - min(self.grid_room, self.largest_grid())
        self.use_inset(INSET if self.refine and left > 0 else 0.0)
        notes = []
        if self.auto and self.fraction and half is not None:
            notes.append(f"{label(k, 0)} ({self.phase1_size(0)} runs) does not fit in half of n_trials={n_trials}: "
                         f"running {label(k, self.fraction)} ({self.n_phase1} runs), {self.room} left after it")
        elif self.auto and self.fraction:
            notes.append(f"{label(k, 0)} ({self.phase1_size(0)} runs) and a grid of at least {least} do not fit "
                         f"n_trials={n_trials}: running {label(k, self.fraction)} ({self.n_phase1} runs), "
                         f"{self.room} left for the grid")
        if self.room == 0:
            notes.append(f"n_trials={n_trials} leaves no trial for the grid after phase 1's {self.n_phase1} runs: the "
                         f"study ends with the design's effects")
        elif not whole:
            notes.append(f"the grid can reach {self.largest_grid()} points and gets {self.grid_room} trials: if it is "
                         f"larger, the least significant factors get fewer values")
        if self.refine and left > 0:
            notes.append(f"at least {left} trials after the grid go to refinement rounds around the best trial, and "
                         f"the levels sit at the quarter points of the ranges, not at the bounds")
        return "; ".join(notes) or None

    def _refusal(self, n_trials: int, least: int, fits: int | None) -> ConfigError | None:
        """Why ``n_trials`` cannot run this strategy's phase 1 and what would, in one line; None when it can."""
        k = len(self.factors)
        if self.auto and fits is None:
            smallest = [0, *fractions(k)][-1]
            size = self.phase1_size(smallest)
            needed = next(n for n in itertools.count(size + MIN_GRID) if size + min_grid(n) <= n)
            return ConfigError("n_trials", f"{n_trials} trials cannot run {label(k, smallest)} ({size} runs, the "
                                           f"smallest design for {k} factors) and a grid of at least {least}; raise "
                                           f"n_trials to at least {needed}"
                               + (f", or set strategy.fraction={smallest} to run it anyway ({n_trials - size} left "
                                  f"for the grid)" if size <= n_trials else ""))
        if not self.auto and self.n_phase1 > n_trials:
            return ConfigError("n_trials", f"{n_trials} trials cannot finish the {self.describe()} factorial design's "
                                           f"{self.n_phase1} runs (phase 1), so no effects would be estimated; raise "
                                           f"n_trials to at least {self.n_phase1}"
                               + (f", or set strategy.fraction=auto ({label(k, fits)}, {self.phase1_size(fits)} "
                                  f"runs)" if fits is not None else ""))
        return None

    def propose(self, history: Sequence[Trial], numbers: Sequence[int]) -> Decision:
        proposals: list[Proposal] = []
        rounds: Search | None = None  # replayed once per call, for every number of a batch that needs it
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
            if point < len(analysis.grid):
                proposals.append(Proposal(dict(analysis.grid[point]), {"phase": "grid", "run": str(point)}))
                continue
            if not self.refining:
                return Decision(proposals, finished=True)
            rounds = rounds or self.rounds(history, analysis)
            if rounds is None:  # a grid trial still running
                break
            found = next(((r, number - r.start) for r in rounds.rounds if 0 <= number - r.start < len(r.points)), None)
            if found is None:
                if rounds.stopped:  # budget spent or converged
                    return Decision(proposals, finished=True)
                break  # the round under way has to finish before the next one is known
            current, j = found
            proposals.append(Proposal(dict(current.points[j]),
                                      {"phase": "refine", "round": str(current.index), "run": str(j)}))
        return Decision(proposals)

    def rounds(self, history: Sequence[Trial], analysis: Analysis) -> Search | None:
        """The refinement rounds replayed from the history, or None while a grid trial is missing or running."""
        by_number = {t.number: t for t in history}
        start = self.n_phase1 + len(analysis.grid)
        if any(n not in by_number or not by_number[n].finished for n in range(start)):
            return None
        effects = analysis.effects.set_index("term")
        p, size = effects["p"].fillna(1.0), effects["effect"].abs().fillna(0.0)
        names = [f.name for f in self.factors]
        order = sorted(range(len(names)), key=lambda i: (p[names[i]], -size[names[i]], i))
        return search(self.factors, order, self.narrowing, by_number, start, self.n_phase1 + self.room,
                      self.direction)

    def analysis(self, history: Sequence[Trial]) -> Analysis | None:
        """The fit and the grid, or None while a phase-1 trial is missing or still running; kept for the next call."""
        fitted = self._fitted(history)
        if fitted is None:
            return None
        self._cache = fitted
        return fitted[1]

    def _fitted(self, history: Sequence[Trial]) -> tuple[tuple, Analysis] | None:
        """The analysis with its key, phase 1's (number, state, value): what it and phase 1's files depend on.

        The pair kept last when it has the same key (read once: it is replaced whole, never changed), else a new
        one, which only ``analysis`` keeps: ``artifacts`` runs beside ``propose`` and writes nothing it reads.
        """
        phase1 = {t.number: t for t in history if t.number < self.n_phase1}
        if len(phase1) < self.n_phase1 or any(not t.finished for t in phase1.values()):
            return None
        key = tuple((n, phase1[n].state, phase1[n].value) for n in range(self.n_phase1))
        cached = self._cache
        if cached is not None and cached[0] == key:
            return cached
        if any(phase1[r.number].params != r.params for r in self.runs):
            raise DesignError(f"factorial_grid: phase 1 ran another design than {self.describe()}; fraction: auto "
                              f"chose it for another n_trials: resume with the study's n_trials, or set "
                              f"strategy.fraction to the design it ran")
        return key, analyse(self, phase1, order=self.order, alpha=self.alpha, failed_rule=self.failed,
                            direction=self.direction, narrowing=self.narrowing, room=self.grid_room)

    def snapshot(self, history: Sequence[Trial]) -> FactorialSnapshot | None:
        """What the files are drawn from, or None while a phase-1 trial is missing or still running."""
        fitted = self._fitted(history)
        if fitted is None:
            return None
        key, analysis = fitted
        return FactorialSnapshot(
            key=key, analysis=analysis, factors=self.factors, runs=self.runs, design=self.describe(),
            replicates=self.replicates, center_points=self.center_points, order=self.order, alpha=self.alpha,
            failed=self.failed, direction=self.direction, non_significant=self.narrowing.non_significant,
            room=self.room, grid_room=self.grid_room, largest_grid=self.largest_grid(), fraction=self.fraction,
            relation=tuple(self.word(factors_of(w)) for w in self.defining_relation()),
            pattern=self.word_length_pattern(), resolution=self.resolution(), generators=self.generator_list())

    def artifacts(self, history: Sequence[Trial]) -> dict[str, str | bytes]:
        """Phase 1: design, effects, aliases, narrowing, summary and plots; phase 2: the grid and its best.

        Drawn from a ``FactorialSnapshot`` and ``history`` alone, beside ``propose`` (see ``Strategy.artifacts``).
        Phase 1's files (its plots are nearly all the time a render takes) are drawn once per phase-1 outcome
        and handed out again after that; the grid's and the rounds' tables, a few milliseconds, are made anew.
        """
        snapshot = self.snapshot(history)
        if snapshot is None:
            return {}
        analysis, by_number = snapshot.analysis, {t.number: t for t in history}
        explained = self._explained  # only renders, one at a time, read and write it
        if explained is None or explained[0] != snapshot.key:
            explained = self._explained = (snapshot.key, _phase1_files(snapshot, by_number))
        files = dict(explained[1])
        grid_trials = [by_number[n] for n in range(snapshot.n_phase1, snapshot.n_phase1 + len(analysis.grid))
                       if n in by_number and by_number[n].finished]
        if grid_trials:
            results = tables.grid_table(snapshot, by_number)
            files["grid/results.csv"] = results.to_csv(index=False)
            files["grid/results.md"] = tables.markdown(results) + "\n"
            files["grid/best.md"] = tables.best(snapshot, grid_trials)
        rounds = self.rounds(history, analysis) if self.refining else None
        if rounds is not None and (rounds.rounds or rounds.stopped):
            files["refine/rounds.md"] = tables.rounds(rounds, by_number, self.direction)
        return files


def _phase1_files(snapshot: FactorialSnapshot, by_number: dict[int, Trial]) -> dict[str, str | bytes]:
    """Phase 1's tables and plots: they change only with its outcome."""
    analysis = snapshot.analysis
    design = tables.design_table(snapshot, by_number)
    narrowed = tables.narrowed(analysis)
    files: dict[str, str | bytes] = {
        "factorial/design.csv": design.to_csv(index=False),
        "factorial/design.md": tables.markdown(design) + "\n",
        "factorial/effects.csv": analysis.effects.to_csv(index=False),
        "factorial/effects.md": tables.effects_md(snapshot),
        "factorial/narrowed.csv": narrowed.to_csv(index=False),
        "factorial/narrowed.md": tables.markdown(narrowed) + "\n\n" + tables.grid_line(snapshot) + "\n",
        "factorial/summary.md": tables.summary(snapshot),
        "factorial/pareto.png": plots.pareto(analysis, snapshot.alpha),
        "factorial/half_normal.png": plots.half_normal(analysis),
        "factorial/main_effects.png": plots.main_effects(analysis, snapshot.factors, snapshot.direction),
    }
    if len(snapshot.factors) > 1:
        files["factorial/interactions.png"] = plots.interactions(analysis, snapshot.factors)
    if snapshot.fraction:
        files["factorial/aliases.md"] = tables.aliases(snapshot)
    return files
