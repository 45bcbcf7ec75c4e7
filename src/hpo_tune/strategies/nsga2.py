"""Optuna's NSGA-II, the genetic search of several objectives, driven by the MLflow history as ``optuna_tpe`` is.

Each proposal builds an in-memory Optuna study of the study's directions from the trials read back from MLflow,
asks it for one trial with an ``NSGAIISampler`` seeded by (seed, trial number), and throws the study away. The
sampler files each trial under a generation in the trial's system attributes; they are kept on the trial's run
as the tag ``strategy.optuna_attrs`` and given back with the history, so a rebuilt study has the same
generations, parents and offspring as one Optuna had kept all along, and a resumed study proposes what an
uninterrupted one would.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import optuna

from hpo_tune.errors import ConfigError
from hpo_tune.space import SearchSpace
from hpo_tune.strategies.base import Decision
from hpo_tune.strategies.tpe import OptunaTPE, frozen_trial
from hpo_tune.trial import Direction, Proposal, Trial, TrialState, trial_seed

ATTRS_TAG = "optuna_attrs"  # the sampler's system attributes of a trial (its generation), JSON


class NSGAII(OptunaTPE):
    """NSGA-II with Optuna's defaults: generations of ``population_size`` trials, the first one random."""

    name = "nsga2"

    def __init__(self, space: SearchSpace, seed: int, direction: Direction, population_size: int = 50,
                 mutation_prob: float | None = None, crossover_prob: float = 0.9):
        super().__init__(space, seed, direction)  # the define-by-run asking; its TPE settings go unused
        self.options = {"population_size": population_size, "mutation_prob": mutation_prob,
                        "crossover_prob": crossover_prob}
        try:
            self._sampler(0)
        except ValueError as error:  # Optuna's own check of the options
            raise ConfigError("strategy", f"nsga2: {error}") from None

    def _sampler(self, number: int) -> optuna.samplers.NSGAIISampler:
        return optuna.samplers.NSGAIISampler(seed=trial_seed(self.seed, number) % 2**32, **self.options)

    def _frozen(self, trial: Trial) -> optuna.trial.FrozenTrial:
        frozen = frozen_trial(trial, self.distributions)
        frozen.system_attrs = json.loads(trial.tags.get(ATTRS_TAG, "{}"))
        return frozen

    def propose(self, history: Sequence[Trial], numbers: Sequence[int]) -> Decision:
        known = [self._frozen(t) for t in history]
        proposals = []
        for number in numbers:
            study = optuna.create_study(directions=[d.value for d in self.directions], sampler=self._sampler(number))
            study.add_trials(known)
            params = self._ask(study.ask())
            attrs = study.trials[-1].system_attrs
            proposal = Proposal(params, {ATTRS_TAG: json.dumps(attrs, sort_keys=True)} if attrs else {})
            proposals.append(proposal)
            known.append(self._frozen(Trial(number, params, TrialState.RUNNING, tags=proposal.tags)))
        return Decision(proposals)
