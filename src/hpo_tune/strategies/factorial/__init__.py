"""Two-level factorial design, then a grid around the better levels (seed 002: "Hyperparameter
optimisation for image classification in convolutional neural networks").

Every dimension is a factor with two levels. Phase 1 runs the 2^k design (or a 2^(k-p) fraction,
by default the largest that leaves the grid its share of ``n_trials``), OLS (statsmodels) estimates
the effects, each factor's range is narrowed around its better level within the space's bounds,
and phase 2 runs the grid of the narrowed values, shrunk to the trials left; trials still left go to
refinement rounds around the best trial (beyond the paper). One module per job:

- ``design``: factors, coding, the runs in standard order, fractions and their alias structure;
- ``analysis``: the OLS fit, Lenth's PSE for saturated models, failed runs, the phase-2 grid;
- ``narrowing``: the rule that turns an effect into phase-2 values, the bounds, fitting the grid to
  a budget (and the paper's numbers);
- ``refine``: the compass-search rounds that spend the budget the grid leaves (``refine: true``);
- ``tables`` and ``plots``: the artifacts on the study's parent run, functions of the frozen
  ``snapshot`` the strategy hands them, so that the driver can draw them beside ``propose``;
- ``strategy``: ``FactorialGrid``, the phases as trial numbers and the budget's choice of design.
"""

from hpo_tune.strategies.factorial.analysis import Analysis, DesignError, lenth_pse
from hpo_tune.strategies.factorial.strategy import FactorialGrid

__all__ = ["Analysis", "DesignError", "FactorialGrid", "lenth_pse"]
