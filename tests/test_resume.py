"""Every strategy, interrupted and resumed from MLflow, proposes what an uninterrupted study does."""

import math

import pytest

from hpo_tune import optimize

NUMERIC = {"lr": {"type": "log_float", "low": 1e-3, "high": 0.5},
           "momentum": {"type": "float", "low": 0.5, "high": 0.99}}
CHOICES = {"a": {"type": "choice", "values": [1, 2, 3]}, "b": {"type": "choice", "values": ["x", "y"]},
           "c": {"type": "choice", "values": [0.1, 0.2]}}
CASES = {
    "random": (NUMERIC, {}),
    "grid": (NUMERIC, {"points": 3}),
    "gp_bo": (NUMERIC, {"n_initial": 2, "n_iterations": 5}),
    "gamma_bo": (NUMERIC, {"n_initial": 2, "n_iterations": 5}),
    "t_sampling": ({k: CHOICES[k] for k in ("b", "c")}, {"n_samples": 2}),
    "factorial_grid": (NUMERIC, {}),
    "optuna_tpe": ({**NUMERIC, **CHOICES}, {"n_startup_trials": 3}),
}


def objective(params, trial):
    value = sum(math.log(v) if isinstance(v, float) else float(len(str(v))) for v in params.values())
    return value + 0.01 * (trial.seed % 7)


@pytest.mark.parametrize("strategy", sorted(CASES))
def test_resumed_study_equals_an_uninterrupted_one(strategy, store, study_name):
    space, options = CASES[strategy]
    kwargs = dict(strategy=strategy, strategy_options=options, n_trials=9, tracking_uri=store, progress=False)
    calls = []

    def interrupted(params, trial):
        calls.append(trial.number)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return objective(params, trial)

    with pytest.raises(KeyboardInterrupt):
        optimize(interrupted, space, study=study_name, **kwargs)
    resumed = optimize(objective, space, study=study_name, **kwargs)
    reference = optimize(objective, space, study=f"{study_name}-reference", **kwargs)
    assert [(t.number, t.params, t.value) for t in resumed.trials] == [
        (t.number, t.params, t.value) for t in reference.trials]
    assert len(reference.trials) > 5  # the interruption fell inside the study
