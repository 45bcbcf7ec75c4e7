"""The factorial's tables and write-ups: design matrix, effects, aliases, summary, the grid and its best."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from src.strategies.factorial.analysis import Analysis, measured
from src.strategies.factorial.design import Design, factors_of, roman
from src.trial import Direction, Trial

if TYPE_CHECKING:
    from src.strategies.factorial.refine import Search
    from src.strategies.factorial.strategy import FactorialGrid


def markdown(frame: pd.DataFrame) -> str:
    """A GitHub markdown table: 4 significant digits, blank for NaN, ``yes`` for true."""

    def cell(value: Any) -> str:
        if isinstance(value, (bool, np.bool_)):
            return "yes" if value else ""
        if isinstance(value, (float, np.floating)):
            return "" if math.isnan(value) else f"{value:.4g}"
        return str(value)

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + " --- |" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def design_table(design: Design, by_number: Mapping[int, Trial]) -> pd.DataFrame:
    """One row per phase-1 run: its place in the design, coded and actual levels, state and objective."""
    rows = []
    for run in design.runs:
        trial = by_number[run.number]
        rows.append({"trial": run.number, "phase": run.phase, "run": run.row, "replicate": run.replicate,
                     **{f.letter: c for f, c in zip(design.factors, run.coded)}, **run.params,
                     "state": trial.state.value, "objective": trial.value if measured(trial) else np.nan})
    return pd.DataFrame(rows)


def grid_table(analysis: Analysis, n_phase1: int, by_number: Mapping[int, Trial]) -> pd.DataFrame:
    """One row per phase-2 grid point, pending until its trial has run."""
    rows = []
    for point, params in enumerate(analysis.grid):
        trial = by_number.get(n_phase1 + point)
        rows.append({"trial": n_phase1 + point, "run": point, **params,
                     "state": trial.state.value if trial else "pending",
                     "objective": trial.value if trial is not None and measured(trial) else np.nan})
    return pd.DataFrame(rows)


def effects_md(analysis: Analysis, direction: Direction, alpha: float) -> str:
    lines = [f"# Effects ({direction.value} the objective; effect = 2 x coefficient, coded units)", "",
             markdown(analysis.effects), "",
             f"R^2 = {analysis.r_squared:.4f}, adjusted R^2 = {analysis.adj_r_squared:.4f}; error: "
             f"{analysis.error}, {analysis.df:.4g} df; significant: p < {alpha} "
             f"(|t| > {analysis.threshold:.3f})."]
    return "\n".join(lines) + "\n"


def summary(strategy: FactorialGrid, analysis: Analysis) -> str:
    """The design, the fit and each factor's narrowing, in a few lines."""
    failed = list(analysis.failed)
    lines = [f"# factorial_grid: {strategy.direction.value} the objective", "",
             f"- design: {strategy.describe()}; {strategy.replicates} replicate(s), {strategy.center_points} "
             f"centre run(s); {strategy.n_phase1} phase-1 trials, {len(failed)} failed"
             + (f" (trials {failed})" if failed else "")
             + (", counted as the worst value" if failed and strategy.failed == "worst" else ""),
             "- factors: " + ", ".join(f"{f.letter} = {f.name} ({f.levels[0]} / {f.levels[1]})"
                                       for f in strategy.factors),
             f"- model: interactions up to order {strategy.order}"
             + (f"; dropped (not estimable after failures): {', '.join(analysis.dropped)}"
                if analysis.dropped else ""),
             f"- error: {analysis.error}, {analysis.df:.4g} df; R^2 = {analysis.r_squared:.4f}",
             ]
    if "curvature" in set(analysis.effects["term"]):
        row = analysis.effects.set_index("term").loc["curvature"]
        lines.append(f"- curvature (centre mean - factorial mean): {row['coefficient']:.6g}, t = {row['t']:.3f}, "
                     f"p = {row['p']:.4g} ({'significant' if row['significant'] else 'not significant'})")
    lines.append(f"- narrowing: non-significant factors: {strategy.narrowing.non_significant}; "
                 + grid_line(strategy, analysis))
    for row in analysis.narrowed.itertuples():
        lines.append(f"  - {row.factor}: better level {row.better} (effect {row.effect:.4g}, p = {row.p:.4g}, "
                     f"{row.rule}) -> {list(row.values)}"
                     + (f"; dropped to fit the budget: {list(row.dropped)}" if row.dropped else ""))
    return "\n".join(lines) + "\n"


def narrowed(analysis: Analysis) -> pd.DataFrame:
    """The narrowing table with each factor's values (and those dropped for the budget) as one cell."""
    return analysis.narrowed.assign(**{column: [", ".join(map(str, v)) for v in analysis.narrowed[column]]
                                       for column in ("values", "dropped")})


def grid_line(strategy: FactorialGrid, analysis: Analysis) -> str:
    """How big phase 2's grid is and, when the budget shrank it, from what and how."""
    line = f"phase-2 grid: {len(analysis.grid)} points"
    full = math.prod(len(v) + len(d) for v, d in zip(analysis.narrowed["values"], analysis.narrowed["dropped"]))
    if strategy.room == 0:
        return line + f" (n_trials leaves no trial after phase 1; the narrowed values make {full})"
    if full > len(analysis.grid):
        shrunk = [row.factor for row in analysis.narrowed.itertuples() if row.dropped]
        return line + (f", shrunk from {full} to fit the {strategy.grid_room} trials n_trials leaves it: the "
                       f"least significant factors gave up the values farthest from their better level "
                       f"({', '.join(shrunk)}; see dropped)")
    most = strategy.largest_grid()
    return line + f" (upper bound {most if strategy.grid_room is None else min(most, strategy.grid_room)})"


def aliases(design: Design, analysis: Analysis) -> str:
    """A fraction's generators, defining relation and each estimated term's alias chain."""
    k, p = len(design.factors), design.fraction
    words = [design.word(factors_of(w)) for w in design.defining_relation()]
    pattern = ", ".join(f"A{n} = {count}" for n, count in enumerate(design.word_length_pattern(), start=3))
    lines = [f"# Alias structure of the 2^({k}-{p}) design (resolution {roman(design.resolution())})", "",
             "Generators: " + design.generator_list() + " (minimum aberration)", "",
             f"Word-length pattern: {pattern}",
             "", "Defining relation: " + " = ".join(words), "",
             "Factors: " + ", ".join(f"{f.letter} = {f.name}" for f in design.factors), "",
             "| estimated term | aliases |", "| --- | --- |"]
    lines += [f"| {design.word(t.factors)} | {' = '.join(design.word(a) for a in t.aliases)} |"
              for t in analysis.terms[1:]]
    return "\n".join(lines) + "\n"


def best(analysis: Analysis, grid_trials: Sequence[Trial], n_phase1: int, direction: Direction) -> str:
    """The grid's best trial so far, beside the best phase-1 run."""
    done = [t for t in grid_trials if measured(t)]
    lines = ["# Best configuration of the grid", "",
             f"{len(grid_trials)} of {len(analysis.grid)} grid trials finished, {len(done)} with a value."]
    if done:
        winner = min(done, key=lambda t: (direction.loss(t.value), t.number))
        lines += ["", f"Best: trial {winner.number} (grid point {winner.number - n_phase1}), objective "
                  f"{winner.value:.6g}", "", "| parameter | value |", "| --- | --- |"]
        lines += [f"| {name} | {value} |" for name, value in winner.params.items()]
    run, value = analysis.best
    lines += ["", f"Best phase-1 run for comparison: trial {run.number}, objective {value:.6g}."]
    return "\n".join(lines) + "\n"


def rounds(search: Search, by_number: Mapping[int, Trial], direction: Direction) -> str:
    """One row per refinement round: its trials, centre, steps and the best value once it finished."""
    rows = []
    for r in search.rounds:
        done = [by_number[n] for n in range(r.start, r.start + len(r.points)) if n in by_number]
        values = [float(t.value) for t in done if measured(t)]
        best = min([r.value, *values], key=direction.loss)
        rows.append({"round": r.index, "trials": f"{r.start}-{r.start + len(r.points) - 1}",
                     "centre": ", ".join(f"{k}={v}" for k, v in r.centre.items()), "centre value": r.value,
                     "steps": ", ".join(f"{s:.3g}" for s in r.steps), "finished": len(done), "best": best,
                     "moved": best != r.value})
    lines = ["# Refinement rounds (compass search around the best trial; steps in each dimension's scale)", "",
             markdown(pd.DataFrame(rows)), ""]
    if search.stopped:
        lines.append(f"Stopped: {search.stopped}.")
    return "\n".join(lines) + "\n"
