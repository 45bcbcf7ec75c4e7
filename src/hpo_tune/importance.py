"""Which parameters mattered in a study: Optuna's importance evaluators on its completed trials.

The trials go to Optuna as the TPE strategy hands them over (``strategies.tpe.frozen_trial``), into an in-memory
study with the study's direction, so that "better" means what the study meant. PED-ANOVA (the default) asks which
parameters the best trials concentrate in, and fANOVA how much of the objective's variance each one explains.
Both need a history to read: fewer than ``MIN_TRIALS`` completed trials, or fewer than two parameters that varied
among them (a one-dimensional space, a fixed parameter), is ``Unavailable`` rather than a ranking of noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import optuna
import pandas as pd
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.importance import BaseImportanceEvaluator, FanovaImportanceEvaluator, PedAnovaImportanceEvaluator

from hpo_tune.space import SearchSpace
from hpo_tune.strategies.tpe import distribution, frozen_trial
from hpo_tune.trial import Direction, Trial, TrialState

MIN_TRIALS = 10  # completed trials below which no importance is computed
TOP_TRIALS = 5  # PED-ANOVA's top quantile holds at least this many trials (Optuna's advice), so q <= 0.5 here


def _ped_anova(n_trials: int, seed: int) -> BaseImportanceEvaluator:
    """PED-ANOVA on the top 10% of the trials, or on the top ``TOP_TRIALS`` while 10% are fewer."""
    return PedAnovaImportanceEvaluator(target_quantile=max(0.1, TOP_TRIALS / n_trials))


def _fanova(n_trials: int, seed: int) -> BaseImportanceEvaluator:
    return FanovaImportanceEvaluator(seed=seed)


EVALUATORS: dict[str, Callable[[int, int], BaseImportanceEvaluator]] = {"ped_anova": _ped_anova, "fanova": _fanova}


class Unavailable(ValueError):
    """The study's history cannot rank its parameters; the message says why, in one line."""


def importances(trials: Sequence[Trial], space: SearchSpace, direction: Direction, evaluator: str = "ped_anova",
                seed: int = 0) -> pd.DataFrame:
    """One row per parameter, most important first: ``param`` and ``importance`` (summing to 1)."""
    complete = [t for t in trials if t.state is TrialState.COMPLETE and t.value is not None and math.isfinite(t.value)]
    if len(complete) < MIN_TRIALS:
        raise Unavailable(f"{len(complete)} completed trials, fewer than the {MIN_TRIALS} it needs")
    if len(space) < 2:
        raise Unavailable("a space of one dimension: nothing to rank it against")
    varied = [name for name in space if len({repr(t.params.get(name)) for t in complete}) > 1]
    if len(varied) < 2:
        raise Unavailable(f"{len(varied)} of the {len(space)} parameters varied over the completed trials: "
                          "nothing to rank")
    distributions = covering(space, complete)
    study = optuna.create_study(direction=direction.value)
    study.add_trials([frozen_trial(t, distributions) for t in complete])
    scores = optuna.importance.get_param_importances(study, evaluator=EVALUATORS[evaluator](len(complete), seed))
    return pd.DataFrame({"param": list(scores), "importance": [float(v) for v in scores.values()]})


def covering(space: SearchSpace, trials: Sequence[Trial]) -> dict[str, BaseDistribution]:
    """Each dimension's Optuna distribution, widened to hold every value the trials ran: Optuna refuses a value
    outside its distribution, and a study may run some (a factorial grid opened past the bounds, a grid value off
    an int's step)."""
    widened = {}
    for name, dim in space.items():
        base, values = distribution(dim), [t.params[name] for t in trials if name in t.params]
        if isinstance(base, CategoricalDistribution):
            extra = []
            for value in values:
                if value not in base.choices and value not in extra:
                    extra.append(value)
            widened[name] = CategoricalDistribution([*base.choices, *extra]) if extra else base
        elif isinstance(base, IntDistribution):
            low, high = min([base.low, *values]), max([base.high, *values])
            stepped = all((v - low) % base.step == 0 for v in [*values, base.low])
            widened[name] = IntDistribution(low, high, log=base.log, step=base.step if stepped else 1)
        elif isinstance(base, FloatDistribution):
            widened[name] = FloatDistribution(min([base.low, *values]), max([base.high, *values]), log=base.log)
    return widened


def beside_effects(table: pd.DataFrame, effects: pd.DataFrame) -> pd.DataFrame:
    """``table`` with the factorial strategy's OLS main effects of the factors it estimated (its ``effects.csv``):
    ``ols_effect`` (high level minus low, in the objective's units), ``ols_p`` and ``ols_significant``."""
    main = effects.set_index("term")[["effect", "p", "significant"]]
    return table.join(main.rename(columns=lambda c: f"ols_{c}"), on="param")
