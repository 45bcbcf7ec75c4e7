"""What the factorial's files are drawn from: frozen values, so that ``artifacts`` may run beside ``propose``.

The driver renders a strategy's files in a background thread while the main thread goes on proposing (see
``Strategy.artifacts``). ``tables`` and ``plots`` are therefore functions of a ``FactorialSnapshot`` (or of
plain values) alone, never of the strategy: the strategy builds the snapshot from the design and settings
its budget fixed before the study and from the analysis of one phase-1 outcome, and nothing in it changes
afterwards. The strategy imports this module, never the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass

from hpo_tune.strategies.factorial.analysis import Analysis
from hpo_tune.strategies.factorial.design import Factor, Run
from hpo_tune.trial import Direction


@dataclass(frozen=True)
class FactorialSnapshot:
    """The design and settings as ``fit_budget`` left them, and phase 1's analysis for one outcome (``key``)."""

    key: tuple  # phase 1's (number, state, value): what the analysis and phase 1's files depend on
    analysis: Analysis
    factors: tuple[Factor, ...]
    runs: tuple[Run, ...]
    design: str  # ``Design.describe()``
    replicates: int
    center_points: int
    order: int  # interactions up to this order
    alpha: float
    failed: str  # the rule for failed runs
    direction: Direction
    non_significant: str  # the narrowing's policy for them
    room: int | None  # trials the budget leaves after phase 1 (None: unlimited)
    grid_room: int | None  # of those, the grid's
    largest_grid: int  # the most points the narrowing rule can give the grid
    fraction: int  # p of the 2^(k-p) design (0: the full design)
    relation: tuple[str, ...]  # the defining relation's words, I first
    pattern: tuple[int, ...]  # the word-length pattern (A3, A4, ...)
    resolution: int | None
    generators: str  # ``Design.generator_list()``

    @property
    def n_phase1(self) -> int:
        return len(self.runs)
