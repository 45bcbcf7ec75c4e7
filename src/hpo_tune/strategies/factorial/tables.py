"""The factorial's tables and write-ups: design matrix, effects, aliases, summary, the grid and its best.

Functions of a ``FactorialSnapshot`` and the history alone, never of the strategy: the driver renders them
beside ``propose`` (see ``snapshot``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from hpo_tune.strategies.factorial.analysis import Analysis, measured
from hpo_tune.strategies.factorial.design import roman
from hpo_tune.strategies.factorial.refine import Search
from hpo_tune.strategies.factorial.snapshot import FactorialSnapshot
from hpo_tune.trial import Direction, Trial


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


def design_table(snapshot: FactorialSnapshot, by_number: Mapping[int, Trial]) -> pd.DataFrame:
    """One row per phase-1 run: its place in the design, coded and actual levels, state and objective."""
    rows = []
    for run in snapshot.runs:
        trial = by_number[run.number]
        rows.append({"trial": run.number, "phase": run.phase, "run": run.row, "replicate": run.replicate,
                     **{f.letter: c for f, c in zip(snapshot.factors, run.coded)}, **run.params,
                     "state": trial.state.value, "objective": trial.value if measured(trial) else np.nan})
    return pd.DataFrame(rows)


def grid_table(snapshot: FactorialSnapshot, by_number: Mapping[int, Trial]) -> pd.DataFrame:
    """One row per phase-2 grid point, pending until its trial has run."""
    rows, n_phase1 = [], snapshot.n_phase1
    for point, params in enumerate(snapshot.analysis.grid):
        trial = by_number.get(n_phase1 + point)
        rows.append({"trial": n_phase1 + point, "run": point, **params,
                     "state": trial.state.value if trial else "pending",
                     "objective": trial.value if trial is not None and measured(trial) else np.nan})
    return pd.DataFrame(rows)


def effects_md(snapshot: FactorialSnapshot) -> str:
    """The effects table with the fit's R^2, its error estimate and the significance threshold."""
    analysis = snapshot.analysis
    lines = [f"# Effects ({snapshot.direction.value} the objective; effect = 2 x coefficient, coded units)", "",
             markdown(analysis.effects), "",
             f"R^2 = {analysis.r_squared:.4f}, adjusted R^2 = {analysis.adj_r_squared:.4f}; error: "
             f"{analysis.error}, {analysis.df:.4g} df; significant: p < {snapshot.alpha} "
             f"(|t| > {analysis.threshold:.3f})."]
    return "\n".join(lines) + "\n"


def summary(snapshot: FactorialSnapshot) -> str:
    """The design, the fit and each factor's narrowing, in a few lines."""
    analysis = snapshot.analysis
    failed = list(analysis.failed)
    lines = [f"# factorial_grid: {snapshot.direction.value} the objective", "",
             f"- design: {snapshot.design}; {snapshot.replicates} replicate(s), {snapshot.center_points} "
             f"centre run(s); {snapshot.n_phase1} phase-1 trials, {len(failed)} failed"
             + (f" (trials {failed})" if failed else "")
             + (", counted as the worst value" if failed and snapshot.failed == "worst" else ""),
             "- factors: " + ", ".join(f"{f.letter} = {f.name} ({f.levels[0]} / {f.levels[1]})"
                                       for f in snapshot.factors),
             f"- model: interactions up to order {snapshot.order}"
             + (f"; dropped (not estimable after failures): {', '.join(analysis.dropped)}"
                if analysis.dropped else ""),
             f"- error: {analysis.error}, {analysis.df:.4g} df; R^2 = {analysis.r_squared:.4f}",
             ]
    if "curvature" in set(analysis.effects["term"]):
        row = analysis.effects.set_index("term").loc["curvature"]
        lines.append(f"- curvature (centre mean - factorial mean): {row['coefficient']:.6g}, t = {row['t']:.3f}, "
                     f"p = {row['p']:.4g} ({'significant' if row['significant'] else 'not significant'})")
    lines.append(f"- narrowing: non-significant factors: {snapshot.non_significant}; " + grid_line(snapshot))
    for row in analysis.narrowed.itertuples():
        lines.append(f"  - {row.factor}: better level {row.better} (effect {row.effect:.4g}, p = {row.p:.4g}, "
                     f"{row.rule}) -> {list(row.values)}"
                     + (f"; dropped to fit the budget: {list(row.dropped)}" if row.dropped else ""))
    return "\n".join(lines) + "\n"


def narrowed(analysis: Analysis) -> pd.DataFrame:
    """The narrowing table with each factor's values (and those dropped for the budget) as one cell."""
    return analysis.narrowed.assign(**{column: [", ".join(map(str, v)) for v in analysis.narrowed[column]]
                                       for column in ("values", "dropped")})


def grid_line(snapshot: FactorialSnapshot) -> str:
    """How big phase 2's grid is and, when the budget shrank it, from what and how."""
    analysis = snapshot.analysis
    line = f"phase-2 grid: {len(analysis.grid)} points"
    full = math.prod(len(v) + len(d) for v, d in zip(analysis.narrowed["values"], analysis.narrowed["dropped"]))
    if snapshot.room == 0:
        return line + f" (n_trials leaves no trial after phase 1; the narrowed values make {full})"
    if full > len(analysis.grid):
        shrunk = [row.factor for row in analysis.narrowed.itertuples() if row.dropped]
        return line + (f", shrunk from {full} to fit the {snapshot.grid_room} trials n_trials leaves it: the "
                       f"least significant factors gave up the values farthest from their better level "
                       f"({', '.join(shrunk)}; see dropped)")
    most = snapshot.largest_grid
    return line + f" (upper bound {most if snapshot.grid_room is None else min(most, snapshot.grid_room)})"


def aliases(snapshot: FactorialSnapshot) -> str:
    """A fraction's generators, defining relation and each estimated term's alias chain."""
    k, p = len(snapshot.factors), snapshot.fraction
    pattern = ", ".join(f"A{n} = {count}" for n, count in enumerate(snapshot.pattern, start=3))
    lines = [f"# Alias structure of the 2^({k}-{p}) design (resolution {roman(snapshot.resolution)})", "",
             "Generators: " + snapshot.generators + " (minimum aberration)", "",
             f"Word-length pattern: {pattern}",
             "", "Defining relation: " + " = ".join(snapshot.relation), "",
             "Factors: " + ", ".join(f"{f.letter} = {f.name}" for f in snapshot.factors), "",
             "| estimated term | aliases |", "| --- | --- |"]
    terms = snapshot.analysis.effects.iloc[1: len(snapshot.analysis.terms)]  # each term's word and alias chain
    lines += [f"| {word} | {chain} |" for word, chain in zip(terms["word"], terms["aliases"])]
    return "\n".join(lines) + "\n"


def best(snapshot: FactorialSnapshot, grid_trials: Sequence[Trial]) -> str:
    """The grid's best trial so far, beside the best phase-1 run."""
    analysis = snapshot.analysis
    done = [t for t in grid_trials if measured(t)]
    lines = ["# Best configuration of the grid", "",
             f"{len(grid_trials)} of {len(analysis.grid)} grid trials finished, {len(done)} with a value."]
    if done:
        winner = min(done, key=lambda t: (snapshot.direction.loss(t.value), t.number))
        lines += ["", f"Best: trial {winner.number} (grid point {winner.number - snapshot.n_phase1}), objective "
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
