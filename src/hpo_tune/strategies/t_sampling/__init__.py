"""Staged Student-t sampling (seed 000: "Hyper Parameter Tuning Method based on Sampling for Optimal
LSTM Model").

Hyperparameters are taken in a fixed order, each with a few conditions (a choice dimension).
Stage 1 forms every combination of the first two; each combination is evaluated by ``n_samples``
trainings in which every hyperparameter not yet fixed is drawn at random from its conditions. The
criterion is the lowest mean loss over the stage's combinations; a combination survives when
P(loss < criterion) >= ``alpha`` under a Student-t model of its samples. Survivors are crossed with
the next hyperparameter's conditions, and so on until all are fixed; the combination of the last
stage with the lowest mean wins.

The Student-t model (``scale``): location = the sample mean, ``n - 1`` degrees of freedom, and
scale either the standard error ``s / sqrt(n)`` (``standard_error``, default) or the predictive
scale ``s * sqrt(1 + 1/n)`` of one new training (``predictive``). The paper's Table 3 points to
the standard error: its probabilities for gold, e.g. 0.0238 for a combination whose mean is 0.0512
above the criterion (Table 2) with n = 20, imply a scale of about 0.024, i.e. a per-training
spread s of about 0.11 under the standard error but only 0.024 under the predictive reading, and
spreads of 0.024 are implausible when the means of the combinations themselves differ by up to 0.11.
The criterion's own combination gets exactly 0.5, as in Table 3.

Everything is computed from the history: each trial carries the tags ``stage`` and
``combination``; a stage is complete when each of its combinations has its samples finished.
Failed trials use up a sample but give no value; a combination with fewer than two values has no
spread to model and is dropped.

Budgets (``plan``): given ``n_trials``, the study never needs more than that many trainings to reach
its final decision. ``n_samples: auto`` takes as many samples per combination as fit when every
stage is about as wide as the first; an explicit ``n_samples`` is an upper bound, reduced to that
with a note; a stage passes on only the most probable survivors that the trainings left pay for,
keeping room for one survivor in each later stage; a budget below that minimum is refused. Without
``n_trials`` the paper's procedure runs unchanged (``n_samples`` must then be a number).
Measured at equal budgets (``python -m bench t-sampling-domain``, issue 26): level with or slightly ahead of random
search and TPE up to 3 hyperparameters of 3 conditions, behind TPE from 4 hyperparameters or 4 conditions on, and
ahead of random there only on unordered categorical spaces (NAS-Bench-201), not on ordered grids (HPOBench).

Beyond the paper (options, off by default):

- ``sequential``: stop sampling a combination as soon as, with at least ``min_samples`` values,
  its probability is below ``alpha`` against the current criterion; it keeps its samples and is
  judged again at the stage's end. Combinations are sampled round-robin, so they reach
  ``min_samples`` together.
- ``order_by: sensitivity``: first run ``pilot_trials`` trainings with every hyperparameter drawn at
  random, then order the hyperparameters by sensitivity (the range of their conditional mean
  losses, largest first), so the first stages prune on the factors that matter most.

Conditional spaces (``when``, ``hpo_tune.space``) use only active conditions. The order puts each parent before
the hyperparameters it switches on (the default order does; a given ``order`` that does not is refused; the
sensitivity order is moved just as far as that needs). A stage crosses a combination with the next
hyperparameter's conditions only where that hyperparameter is active under the combination's fixed values; where
it is inactive the combination goes on unchanged, as one combination of the stage, compared with the others on
fresh samples. Samples draw the hyperparameters not yet fixed and leave out those inactive under the draw. The
budget plan counts every condition of every hyperparameter, an upper bound of what the stages need.

Modules: ``stages`` (combinations, stages, the ledger of finished trials that keeps proposals fast),
``plan`` (the budget), ``tables`` (the artifacts, drawn from the frozen ``snapshot`` the strategy hands
them, so that the driver can draw them beside ``propose``) and ``strategy`` (``TSampling``).
"""

from hpo_tune.strategies.t_sampling.stages import Combination, Stage
from hpo_tune.strategies.t_sampling.strategy import SUITED, TSampling

__all__ = ["SUITED", "Combination", "Stage", "TSampling"]
