"""Enqueued and warm-started trials: given configurations run first and exactly, an earlier study's results are
seen by the strategy and never run again; through the API, the CLI and a resume."""

import math

import pytest
from mlflow.tracking import MlflowClient
from scipy.stats import norm

from hpo_tune import optimize
from hpo_tune.errors import ConfigError, StudyConflictError
from hpo_tune.space import SearchSpace
from hpo_tune.storage.memory import run_in_memory
from hpo_tune.strategies import make_strategy
from hpo_tune.strategies.prior import WarmStarted, prior_trials
from hpo_tune.trial import Direction, Trial, TrialState
from tests.conftest import TINY, children, cli, runs

SPACE = {"x": {"type": "float", "low": -4.0, "high": 4.0}, "k": {"type": "choice", "values": [1, 2, 3]}}
GIVEN = [{"x": 1.0, "k": 1}, {"x": -2.5, "k": 3}]


def quadratic(params):
    return (params["x"] - 1.0) ** 2 + params["k"]


@pytest.mark.parametrize("strategy", ["random", "gp_bo", "optuna_tpe", "grid"])
def test_enqueued_configurations_run_first_exactly_and_count_in_the_budget(store, study_name, strategy):
    options = {"points": 2} if strategy == "grid" else None
    result = optimize(quadratic, SPACE, strategy, n_trials=5, study=study_name, tracking_uri=store, seed=1,
                      enqueue=[*GIVEN, {"k": 2}], strategy_options=options, progress=False)
    trials = sorted(result.trials, key=lambda t: t.number)
    assert len(trials) == 5 and [t.params for t in trials[:2]] == GIVEN
    assert trials[2].params["k"] == 2 and -4 <= trials[2].params["x"] <= 4  # the rest drawn, seeded by its number
    kids = {int(r.data.tags["trial"]): r for r in children(store, result.parent_run_id)}
    assert [kids[k].data.params for k in (0, 1)] == [{"x": "1.0", "k": "1"}, {"x": "-2.5", "k": "3"}]
    assert [kids[k].data.tags.get("strategy.enqueued") for k in range(5)] == ["true"] * 3 + [None] * 2
    if strategy == "grid":  # a plan runs from its first point after them
        assert [t.params for t in trials[3:]] == [{"x": -4.0, "k": 1}, {"x": -4.0, "k": 2}]


def test_a_plan_runs_whole_after_its_enqueued_trials():
    space = SearchSpace.from_config(SPACE)
    plain = make_strategy("grid", space, 0, Direction.MINIMIZE, {"points": 2})
    queued = make_strategy("grid", space, 0, Direction.MINIMIZE, {"points": 2}, enqueue=GIVEN)
    assert queued.max_trials() == plain.max_trials() + 2
    done = run_in_memory(queued, quadratic, budget=queued.max_trials())
    assert [t.params for t in done[2:]] == plain.points


def test_a_bad_enqueued_value_is_one_line_naming_it(store, study_name):
    cases = [([{"x": 9.0}], "enqueue: item 0: x=9.0 is outside the space (type=float, low=-4.0, high=4.0)"),
             ([{"x": 0.0}, {"k": 4}], "enqueue: item 1: k=4 is outside the space"),
             ([{"y": 1}], "enqueue: item 0: 'y' is not a parameter of the space (x, k)"),
             ({"x": 1.0}, "enqueue: must be a list of parameter sets")]
    for enqueue, message in cases:
        with pytest.raises(ConfigError) as error:
            optimize(quadratic, SPACE, n_trials=3, study=study_name, tracking_uri=store, enqueue=enqueue)
        assert str(error.value).startswith(message) and "\n" not in str(error.value)
    with pytest.raises(ConfigError, match="n_trials: must be at least the 2 enqueued trials"):
        optimize(quadratic, SPACE, n_trials=1, study=study_name, tracking_uri=store, enqueue=GIVEN)
    assert not runs(store, f"tags.study = '{study_name}'")


def test_an_interrupted_study_with_enqueued_trials_resumes_without_running_them_again(store, study_name):
    calls = []

    def stops_at_third(params):
        calls.append(params)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return quadratic(params)

    arguments = dict(study=study_name, tracking_uri=store, seed=2, enqueue=GIVEN, progress=False, n_trials=4)
    with pytest.raises(KeyboardInterrupt):
        optimize(stops_at_third, SPACE, "optuna_tpe", **arguments)
    calls.clear()
    result = optimize(stops_at_third, SPACE, "optuna_tpe", **arguments)
    assert calls[0] not in GIVEN and len(calls) == 2  # the interrupted third and the fourth
    assert sorted(t.number for t in result.trials) == [0, 1, 2, 3]
    with pytest.raises(StudyConflictError, match="enqueue"):  # a resume with other enqueued trials: another study
        optimize(quadratic, SPACE, "optuna_tpe", **{**arguments, "enqueue": GIVEN[:1]})


def test_a_warm_started_study_shows_the_strategy_the_earlier_trials_and_runs_none_of_them(store, study_name):
    earlier = optimize(quadratic, SPACE, "random", n_trials=8, study=f"{study_name}-a", tracking_uri=store,
                       experiment="warm", seed=5, progress=False)
    cold = optimize(quadratic, SPACE, "gp_bo", n_trials=3, study=f"{study_name}-cold", tracking_uri=store,
                    experiment="warm", seed=5, progress=False)
    warm = optimize(quadratic, SPACE, "gp_bo", n_trials=3, study=f"{study_name}-b", tracking_uri=store,
                    experiment="warm", seed=5, warm_start=f"{study_name}-a", progress=False)
    assert len(warm.trials) == 3 and all(t.number >= 0 for t in warm.trials)
    # without the earlier trials the BO's first two are random draws; with them it models from the first
    assert warm.trials[0].params != cold.trials[0].params
    best_earlier = min(t.value for t in earlier.trials)
    assert min(t.value for t in warm.trials) <= best_earlier + 1.0
    parent = MlflowClient(store).get_run(warm.parent_run_id)
    assert parent.data.tags["warm_start_from"] == f"warm/{study_name}-a"
    assert parent.data.tags["warm_start_trials"] == "8"
    assert len(children(store, earlier.parent_run_id)) == 8  # nothing was added to the earlier study
    again = optimize(quadratic, SPACE, "gp_bo", n_trials=3, study=f"{study_name}-b", tracking_uri=store,
                     experiment="warm", seed=5, warm_start=f"warm/{study_name}-a", progress=False)
    assert again.parent_run_id == warm.parent_run_id and len(children(store, warm.parent_run_id)) == 3


def test_a_warm_start_is_refused_in_one_line_where_it_cannot_work(store, study_name):
    optimize(quadratic, SPACE, n_trials=2, study=f"{study_name}-a", tracking_uri=store, progress=False)
    with pytest.raises(ConfigError, match="^warm_start: no study 'missing' in experiment 'hpo'"):
        optimize(quadratic, SPACE, "gp_bo", n_trials=2, study=study_name, tracking_uri=store, warm_start="missing")
    with pytest.raises(ConfigError, match="^warm_start: study hpo/.* was to minimize its objective, this one is to "
                                          "maximize it"):
        optimize(quadratic, SPACE, "gp_bo", n_trials=2, study=study_name, tracking_uri=store,
                 warm_start=f"{study_name}-a", direction="maximize")
    with pytest.raises(ConfigError, match="^warm_start_values: must be one of"):
        optimize(quadratic, SPACE, "gp_bo", n_trials=2, study=study_name, tracking_uri=store,
                 warm_start=f"{study_name}-a", warm_start_values="scaled")
    with pytest.raises(ConfigError, match="^warm_start: strategy 'grid' follows a plan of its own"):
        optimize(quadratic, SPACE, "grid", n_trials=2, study=study_name, tracking_uri=store,
                 warm_start=f"{study_name}-a")


def test_prior_trials_keep_what_the_space_holds_renumbered_below_zero():
    space = SearchSpace.from_config(SPACE)
    trials = [Trial(0, {"x": 0.5, "k": 2, "extra": 1}, TrialState.COMPLETE, 1.0),
              Trial(1, {"x": 9.0, "k": 2}, TrialState.COMPLETE, 2.0),  # outside the space now
              Trial(2, {"x": 0.5}, TrialState.COMPLETE, 3.0),  # a dimension missing
              Trial(3, {"x": 0.1, "k": 1}, TrialState.RUNNING),
              Trial(4, {"x": 0.2, "k": 3}, TrialState.FAILED)]
    kept = prior_trials(trials, space)
    assert [(t.number, t.params) for t in kept] == [(0, {"x": 0.5, "k": 2}), (4, {"x": 0.2, "k": 3})]
    base = make_strategy("gamma_bo", space, 0, Direction.MINIMIZE)
    shown = WarmStarted(base, kept, "hpo/a").prior
    assert [t.number for t in shown] == [-1, -2] and shown[0].tags["warm_start_from"] == "hpo/a"
    assert not math.isnan(shown[0].value)


def test_enqueue_and_warm_start_from_the_cli(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = cli(*TINY, "strategy=random", "n_trials=3", f"tracking.uri={uri}", "study=first",
                "enqueue=[{trainer.lr: 0.01, model.dropout: 0.1}]")
    assert first.returncode == 0, first.stderr
    parent = runs(uri, "tags.study = 'first'")[0]
    kids = {int(r.data.tags["trial"]): r for r in children(uri, parent.info.run_id)}
    assert len(kids) == 3 and kids[0].data.params["trainer.lr"] == "0.01"
    assert kids[0].data.params["model.dropout"] == "0.1"
    second = cli(*TINY, "strategy=gp_bo", "n_trials=2", f"tracking.uri={uri}", "study=second", "warm_start=first")
    assert second.returncode == 0, second.stderr
    parent = runs(uri, "tags.study = 'second'")[0]
    assert parent.data.tags["warm_start_trials"] == "3" and len(children(uri, parent.info.run_id)) == 2
    bad = cli(*TINY, f"tracking.uri={uri}", "study=third", "enqueue=[{trainer.lr: 5.0}]")
    assert bad.returncode == 2
    assert bad.stderr.splitlines() == ["error: enqueue: item 0: trainer.lr=5.0 is outside the space (type=log_float, "
                                       "low=0.001, high=0.3)"]


def test_an_earlier_study_s_values_are_shown_as_quantiles_so_its_scale_does_not_dominate():
    space = SearchSpace.from_config(SPACE)
    earlier = [Trial(i, {"x": float(i), "k": 1}, TrialState.COMPLETE, 0.9 + i / 100) for i in range(4)]  # all high
    own = [Trial(0, {"x": 0.5, "k": 2}, TrialState.COMPLETE, 0.1),
           Trial(1, {"x": 1.5, "k": 2}, TrialState.COMPLETE, 0.3), Trial(2, {"x": 2.5, "k": 2}, TrialState.FAILED)]
    seen = []

    class Spy(type(make_strategy("random", space, 0, Direction.MAXIMIZE))):
        def propose(self, history, numbers):
            seen.append(history)
            return super().propose(history, numbers)

    WarmStarted(Spy(space, 0, Direction.MAXIMIZE), earlier, "hpo/a").propose(own, [3])
    values = [t.value for t in seen[-1]]  # each study's values as normal quantiles within it: the same range
    assert values[:6] == pytest.approx(list(norm.ppf([1 / 8, 3 / 8, 5 / 8, 7 / 8, 1 / 4, 3 / 4])))
    assert seen[-1][6].value is None and seen[-1][6].state is TrialState.FAILED
    WarmStarted(Spy(space, 0, Direction.MAXIMIZE), earlier, "hpo/a", values="raw").propose(own, [3])
    assert [t.value for t in seen[-1][:6]] == [0.9, 0.91, 0.92, 0.93, 0.1, 0.3]
    with pytest.raises(ConfigError, match="warm_start_values"):
        WarmStarted(Spy(space, 0, Direction.MAXIMIZE), earlier, "hpo/a", values="scaled")


def test_enqueue_and_warm_start_on_a_conditional_space(store, study_name):
    space = {"optimizer": {"type": "choice", "values": ["sgd", "adam"]},
             "momentum": {"type": "float", "low": 0.0, "high": 0.9, "when": {"optimizer": "sgd"}},
             "lr": {"type": "log_float", "low": 1e-4, "high": 1.0}}

    def loss(params):
        return abs(math.log10(params["lr"]) + 2) + params.get("momentum", 0.5)

    with pytest.raises(ConfigError, match="^enqueue: item 0: momentum is inactive when optimizer='adam'$"):
        optimize(loss, space, "optuna_tpe", n_trials=3, study=study_name, tracking_uri=store,
                 enqueue=[{"optimizer": "adam", "momentum": 0.5}])
    first = optimize(loss, space, "optuna_tpe", n_trials=6, study=study_name, tracking_uri=store, seed=1,
                     enqueue=[{"optimizer": "adam", "lr": 0.01}, {"optimizer": "sgd", "momentum": 0.1}],
                     progress=False)
    by_number = sorted(first.trials, key=lambda t: t.number)
    assert by_number[0].params == {"optimizer": "adam", "lr": 0.01}  # no momentum for adam
    assert by_number[1].params["momentum"] == 0.1 and "lr" in by_number[1].params
    warm = optimize(loss, space, "gp_bo", n_trials=2, study=f"{study_name}-warm", tracking_uri=store,
                    warm_start=study_name, progress=False)
    parent = MlflowClient(store).get_run(warm.parent_run_id)
    assert parent.data.tags["warm_start_trials"] == "6"  # trials with and without momentum are all kept
