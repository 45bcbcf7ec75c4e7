"""Conditional spaces (``when``): the space, each strategy, the Python API on SQLite, and the command line."""

import math

import numpy as np
import pytest

from hpo_tune import optimize
from hpo_tune.errors import ConfigError
from hpo_tune.space import SearchSpace
from hpo_tune.strategies import make_strategy
from hpo_tune.strategies.bayes.encoding import INACTIVE, Encoding
from hpo_tune.trial import Direction
from tests.conftest import TINY, children, cli, interrupted_at, runs
from tests.driven import drive

CONFIG = {
    "trainer": {
        "optimizer": {"type": "choice", "values": ["sgd", "adam"]},
        "momentum": {"type": "float", "low": 0.5, "high": 0.99, "when": {"optimizer": "sgd"}},  # a sibling
        "lr": {"type": "log_float", "low": 1e-3, "high": 0.3},
    },
    "model": {
        "layers": {"type": "int", "low": 1, "high": 4},
        "units3": {"type": "int", "low": 8, "high": 64, "step": 8, "when": {"layers": [3, 4]}},
        "dropout3": {"type": "float", "low": 0.0, "high": 0.5, "when": {"model.units3": [8, 16]}},  # a full name
    },
}
SPACE = SearchSpace.from_config(CONFIG)


def loss(params, number=0):
    """Best: sgd, momentum 0.9, lr 0.01, three or four layers of 32 units; adam and shallow nets cost more."""
    value = math.log10(params["trainer.lr"] / 0.01) ** 2
    value += 10 * (params["trainer.momentum"] - 0.9) ** 2 if params["trainer.optimizer"] == "sgd" else 0.5
    if "model.units3" in params:
        value += (params["model.units3"] - 32) ** 2 / 1000 + params.get("model.dropout3", 0.0)
    else:
        value += 0.3
    return value


def valid(params):
    """Active dimensions present and nothing else, each at a value it holds, as the rules say by hand."""
    sgd, deep = params["trainer.optimizer"] == "sgd", params["model.layers"] >= 3
    units = params.get("model.units3")
    assert ("trainer.momentum" in params) == sgd and ("model.units3" in params) == deep
    assert ("model.dropout3" in params) == (units in (8, 16))
    return SPACE.contains(params)


# -- the space -----------------------------------------------------------------------------------


def test_when_names_a_sibling_or_a_full_name_with_one_value_or_a_list():
    assert {child: {p: list(c.values) for p, c in parents.items()} for child, parents in SPACE.conditions.items()} == {
        "trainer.momentum": {"trainer.optimizer": ["sgd"]}, "model.units3": {"model.layers": [3, 4]},
        "model.dropout3": {"model.units3": [8, 16]}}
    assert SPACE.describe()["trainer.momentum"]["when"] == {"trainer.optimizer": ["sgd"]}
    assert "when" not in SPACE.describe()["trainer.lr"]  # an unconditional dimension describes as it always did


@pytest.mark.parametrize(("when", "key", "words"), [
    ({"optimiser": "sgd"}, "space.trainer.momentum.when.optimiser", "'optimiser' is not a parameter"),
    ({"optimizer": "rmsprop"}, "space.trainer.momentum.when.optimizer", "'rmsprop' is not a value trainer.optimizer"),
    ({"lr": 0.01}, "space.trainer.momentum.when.lr", "only a choice or an int can condition"),
    ({"model.layers": [0, 3]}, "space.trainer.momentum.when.model.layers", "0 is not a value model.layers"),
    ({}, "space.trainer.momentum.when", "must map a parameter"),
    ({"model.layers": []}, "space.trainer.momentum.when.model.layers", "at least one value"),
])
def test_a_bad_when_is_one_line_naming_its_key(when, key, words):
    config = {**CONFIG, "trainer": {**CONFIG["trainer"], "momentum": {**CONFIG["trainer"]["momentum"], "when": when}}}
    with pytest.raises(ConfigError) as raised:
        SearchSpace.from_config(config)
    assert raised.value.key == key and words in str(raised.value) and "\n" not in str(raised.value)


def test_a_cycle_is_refused():
    cyclic = {"a": {"type": "choice", "values": [1, 2], "when": {"c": 1}},
              "b": {"type": "choice", "values": [1, 2], "when": {"a": 1}},
              "c": {"type": "choice", "values": [1, 2], "when": {"b": 2}}}
    with pytest.raises(ConfigError, match=r"space\.a\.when: the conditions form a cycle.*a -> c -> b -> a"):
        SearchSpace.from_config(cyclic)


def test_active_sets_follow_parents_and_their_own_activity():
    assert SPACE.parents_first == ("trainer.optimizer", "trainer.momentum", "trainer.lr", "model.layers",
                                   "model.units3", "model.dropout3")
    assert SPACE.active({"trainer.optimizer": "adam", "model.layers": 3, "model.units3": 8}) == {
        "trainer.optimizer", "trainer.lr", "model.layers", "model.units3", "model.dropout3"}
    # units3 = 8 but inactive (two layers): its child is inactive too
    assert SPACE.active({"trainer.optimizer": "sgd", "model.layers": 2, "model.units3": 8}) == {
        "trainer.optimizer", "trainer.momentum", "trainer.lr", "model.layers"}
    assert "trainer.momentum" not in SPACE.active({})  # an undecided parent: its children wait
    assert SPACE.ordered(["model.dropout3", "trainer.lr", "model.units3", "trainer.momentum", "model.layers",
                          "trainer.optimizer"]) == ("trainer.lr", "model.layers", "model.units3", "model.dropout3",
                                                    "trainer.optimizer", "trainer.momentum")


def test_sampling_leaves_inactive_dimensions_out():
    rng = np.random.default_rng(0)
    draws = [SPACE.sample(rng) for _ in range(200)]
    assert all(valid(p) for p in draws)
    assert {p["trainer.optimizer"] for p in draws} == {"sgd", "adam"}
    assert any("model.dropout3" in p for p in draws) and any("model.units3" not in p for p in draws)
    given = SPACE.sample(rng, given={"trainer.optimizer": "adam", "model.layers": 4})
    assert given["trainer.optimizer"] == "adam" and "trainer.momentum" not in given and "model.units3" in given
    assert not SPACE.contains({**given, "trainer.momentum": 0.9})  # an inactive value is not a configuration
    assert SPACE.parse({k: str(v) for k, v in given.items()}) == given  # read back from MLflow's strings


def test_the_encoding_imputes_inactive_dimensions_and_projection_keeps_them_so():
    encoding = Encoding(SPACE)
    point = encoding.encode({"trainer.optimizer": "adam", "trainer.lr": 0.01, "model.layers": 1})
    for name in ("trainer.momentum", "model.units3", "model.dropout3"):
        assert (point[encoding.blocks[name]] == INACTIVE).all()
    assert encoding.decode(point) == {"trainer.optimizer": "adam", "trainer.lr": pytest.approx(0.01), "model.layers": 1}
    relaxed = np.random.default_rng(1).random((64, encoding.width))
    for row in encoding.project(relaxed):
        assert valid(encoding.decode(row))
        assert np.allclose(encoding.encode(encoding.decode(row)), row)  # a projected point is a configuration's


# -- the strategies ------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "options", "budget"), [
    ("random", {}, 30), ("optuna_tpe", {"n_startup_trials": 8}, 30),
    ("gp_bo", {"n_initial": 4}, 12), ("gamma_bo", {"n_initial": 4}, 12),
])
def test_strategies_of_the_history_propose_valid_conditional_params(name, options, budget):
    strategy = make_strategy(name, SPACE, 1, Direction.MINIMIZE, options)  # seed 0's random start is all adam
    history = drive(strategy, loss, budget=budget)
    assert len(history) == budget and all(valid(t.params) for t in history)
    assert {t.params["trainer.optimizer"] for t in history} == {"sgd", "adam"}
    assert any("model.units3" in t.params for t in history) and any("model.units3" not in t.params for t in history)


def test_tpe_learns_the_better_branch_and_is_deterministic():
    tpe = make_strategy("optuna_tpe", SPACE, 0, Direction.MINIMIZE, {"n_startup_trials": 8})
    history = drive(tpe, loss, budget=40)
    assert [t.params for t in history] == [t.params for t in drive(tpe, loss, budget=40)]
    later = history[20:]
    assert sum(t.params["trainer.optimizer"] == "sgd" for t in later) > len(later) / 2
    assert min(t.value for t in history[8:]) < min(t.value for t in history[:8])


def test_bo_proposals_beat_its_random_start():
    bo = make_strategy("gp_bo", SPACE, 1, Direction.MINIMIZE, {"n_initial": 4})
    history = drive(bo, loss, budget=16)
    assert min(t.value for t in history[4:]) < min(t.value for t in history[:4])


T_SPACE = SearchSpace.from_config({
    "optimizer": {"type": "choice", "values": ["sgd", "adam"]},
    "momentum": {"type": "choice", "values": [0.5, 0.9], "when": {"optimizer": "sgd"}},
    "batch": {"type": "choice", "values": [32, 64]},
})


def t_loss(params, number):
    base = {"sgd": 1.0, "adam": 1.5}[params["optimizer"]] + (params["batch"] == 64) * 0.2
    return base - (params.get("momentum") == 0.9) * 0.5 + 0.01 * (number % 5)


def test_t_sampling_crosses_only_active_conditions():
    strategy = make_strategy("t_sampling", T_SPACE, 0, Direction.MINIMIZE, {"n_samples": 3, "alpha": 0.3})
    history = drive(strategy, t_loss)
    assert all(T_SPACE.contains(t.params) for t in history)
    stages, order = strategy.stages(history)
    assert order == ("optimizer", "momentum", "batch")
    assert [c.key for c in stages[0].combinations] == ["optimizer=sgd|momentum=0.5", "optimizer=sgd|momentum=0.9",
                                                       "optimizer=adam"]
    assert {t.tags["combination"] for t in history if t.tags["stage"] == "1"} == {c.key for c in stages[0].combinations}
    assert strategy.winner(history).fixed == {"optimizer": "sgd", "momentum": 0.9, "batch": 32}
    assert "t_sampling/stage1.png" in strategy.artifacts(history)


def test_t_sampling_refuses_an_order_with_a_child_before_its_parent():
    with pytest.raises(ConfigError, match="strategy.order: momentum is conditional on optimizer"):
        make_strategy("t_sampling", T_SPACE, 0, Direction.MINIMIZE, {"order": ["momentum", "optimizer", "batch"]})


@pytest.mark.parametrize("name", ["grid", "factorial_grid", "per_epoch"])
def test_plans_over_every_dimension_refuse_a_conditional_space_in_one_line(name):
    with pytest.raises(ConfigError) as raised:
        make_strategy(name, SPACE, 0, Direction.MINIMIZE, n_trials=20)
    assert raised.value.key == "space.trainer.momentum.when"
    assert str(raised.value).startswith(f"space.trainer.momentum.when: {name} ") and "\n" not in str(raised.value)


def test_the_hydra_sweeper_takes_conditions_beside_its_params():
    from hpo_tune.sweeper.space import sweep_space

    params = {"optimizer": "choice(sgd, adam)", "momentum": "interval(0.5, 0.99)"}
    swept = sweep_space(params, [], when={"momentum": {"optimizer": "sgd"}})
    assert swept.space.active({"optimizer": "adam"}) == {"optimizer"}
    assert swept.overrides(swept.space.sample(np.random.default_rng(0), given={"optimizer": "adam"})) == [
        "optimizer='adam'"]
    with pytest.raises(ConfigError) as raised:
        sweep_space(params, [], when={"momentum": {"optimizer": "rmsprop"}})
    assert raised.value.key == "when.momentum.optimizer"


# -- the Python API on a SQLite store --------------------------------------------------------------


@pytest.fixture(scope="module")
def sqlite(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('conditional') / 'mlflow.db'}"


@pytest.mark.parametrize("strategy", ["optuna_tpe", "gamma_bo"])
def test_api_tracks_only_active_params_and_a_resumed_study_reruns_nothing(sqlite, strategy):
    kwargs = dict(strategy=strategy, n_trials=9, tracking_uri=sqlite, progress=False, poll_interval_s=0.1,
                  strategy_options={"n_startup_trials": 3} if strategy == "optuna_tpe" else {"n_initial": 3})
    calls = []
    stopped = interrupted_at(5, loss, calls)
    with pytest.raises(KeyboardInterrupt):
        optimize(stopped, CONFIG, study=f"{strategy}-stopped", **kwargs)
    before = list(calls)
    resumed = optimize(stopped, CONFIG, study=f"{strategy}-stopped", **kwargs)
    assert calls[len(before):] == [4, 5, 6, 7, 8]  # the interrupted trial again, then the rest: nothing finished reruns
    reference = optimize(loss, CONFIG, study=f"{strategy}-reference", **kwargs)
    assert [(t.number, t.params) for t in resumed.trials] == [(t.number, t.params) for t in reference.trials]
    assert all(valid(t.params) for t in resumed.trials)
    kids = [k for k in children(sqlite, resumed.parent_run_id) if k.info.status == "FINISHED"]
    assert sorted(int(k.data.tags["trial"]) for k in kids) == list(range(9))
    for kid in kids:  # MLflow holds exactly the active params
        assert set(kid.data.params) == SPACE.active(SPACE.parse(kid.data.params))
    assert any("trainer.momentum" not in k.data.params for k in kids)


# -- the command line ----------------------------------------------------------------------------

OPTIMIZER = "+space.trainer.optimizer={type: choice, values: [sgd, adam]}"


@pytest.mark.usefixtures("mnist_available")
def test_cli_runs_a_conditional_space_given_on_the_command_line(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = cli(*TINY, f"tracking.uri={uri}", "n_trials=4", "seed=1", "study=conditional", OPTIMIZER,
               "+space.trainer.momentum.when={optimizer: sgd}")
    assert done.returncode == 0, done.stderr
    (parent,) = runs(uri, "tags.study = 'conditional'")
    kids = children(uri, parent.info.run_id)
    assert len(kids) == 4 and all(k.info.status == "FINISHED" for k in kids)
    seen = {k.data.params["trainer.optimizer"] for k in kids}
    assert seen == {"sgd", "adam"}, seen
    for kid in kids:
        assert ("trainer.momentum" in kid.data.params) == (kid.data.params["trainer.optimizer"] == "sgd")


@pytest.mark.parametrize(("args", "line"), [
    (["+space.trainer.momentum.when={optimizer: rmsprop}"],
     "error: space.trainer.momentum.when.optimizer: 'rmsprop' is not a value trainer.optimizer can take (one of "
     "['sgd', 'adam'])"),
    (["+space.trainer.momentum.when={optimizer: sgd}", "strategy=grid"],
     "error: space.trainer.momentum.when: grid runs the product of every dimension's values, so it cannot take a "
     "conditional space; drop the condition or use random, optuna_tpe, gp_bo, gamma_bo or t_sampling"),
])
def test_cli_refuses_a_bad_conditional_space_in_one_line(tmp_path, args, line):
    store = tmp_path / "mlflow.db"
    done = cli(*TINY, f"tracking.uri=sqlite:///{store}", OPTIMIZER, *args)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [line]
    assert not store.exists()
