"""Staged Student-t sampling on synthetic objectives with a known best combination."""

import itertools
import math
from collections import Counter

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from scipy import stats

from hpo_tune import optimize
from hpo_tune.config import validate
from hpo_tune.errors import ConfigError
from hpo_tune.space import SearchSpace
from hpo_tune.strategies import make_strategy
from hpo_tune.strategies.t_sampling import SUITED, Combination, tables
from hpo_tune.trial import Direction, Trial, TrialState
from tests.conftest import ROOT
from tests.driven import drive, renders_beside_proposals

CONDITIONS = {"nodes": [2, 4, 6], "layers": [1, 2, 3], "steps": [5, 10, 15]}
SPACE = SearchSpace.from_config({k: {"type": "choice", "values": v} for k, v in CONDITIONS.items()})
# loss contributions: the best combination is nodes=6, layers=2, steps=10
EFFECT = {"nodes": {2: 0.6, 4: 0.3, 6: 0.0}, "layers": {1: 0.2, 2: 0.0, 3: 0.5}, "steps": {5: 0.1, 10: 0.0, 15: 0.2}}


def loss(params, number, noise=0.02):
    return sum(EFFECT[k][v] for k, v in params.items()) + np.random.default_rng(number).normal(0, noise)


def t_sampling(**options):
    return make_strategy("t_sampling", SPACE, 0, Direction.MINIMIZE, {"n_samples": 6, **options})


def test_keeps_the_best_combination_and_drops_clearly_worse_ones():
    strategy = t_sampling()
    history = drive(strategy, loss)
    assert strategy.winner(history).fixed == {"nodes": 6, "layers": 2, "steps": 10}
    first = strategy.stages(history)[0][0]
    kept = {tuple(c.fixed.values()) for c in strategy.survivors(first)}
    assert (6, 2) in kept
    assert (2, 3) not in kept and (2, 1) not in kept  # 0.6 + 0.5 and 0.6 + 0.2 worse: clearly out


def test_combination_counts_per_stage():
    strategy = t_sampling()
    history = drive(strategy, loss)
    stages, order = strategy.stages(history)
    assert order == ("nodes", "layers", "steps") and len(stages) == 2
    assert len(stages[0].combinations) == 9
    assert len(stages[1].combinations) == 3 * len(strategy.survivors(stages[0]))
    for stage in stages:
        assert all(c.scheduled == 6 and len(c.losses) == 6 for c in stage.combinations)
        assert sum(t.tags["stage"] == str(stage.number) for t in history) == 6 * len(stage.combinations)
    assert len(history) == 6 * (9 + len(stages[1].combinations))


def test_unfixed_hyperparameters_are_drawn_at_random_and_fixed_ones_held():
    strategy = t_sampling()
    history = drive(strategy, loss)
    stage1 = [t for t in history if t.tags["stage"] == "1"]
    for trial in stage1:
        assert trial.tags["combination"] == f"nodes={trial.params['nodes']}|layers={trial.params['layers']}"
    assert {t.params["steps"] for t in stage1} == {5, 10, 15}


@pytest.mark.parametrize("scale", ["standard_error", "predictive"])
def test_probability_matches_scipy_on_hand_made_samples(scale):
    samples = (0.41, 0.45, 0.39, 0.52, 0.47)
    criterion = 0.40
    n, mean, sd = len(samples), np.mean(samples), np.std(samples, ddof=1)
    spread = sd / math.sqrt(n) if scale == "standard_error" else sd * math.sqrt(1 + 1 / n)
    expected = stats.t.cdf((criterion - mean) / spread, df=n - 1)
    assert t_sampling(scale=scale).probability(Combination({}, samples), criterion) == pytest.approx(expected)
    assert t_sampling().probability(Combination({}, samples), mean) == pytest.approx(0.5)


def test_an_interrupted_trial_is_proposed_again_and_nothing_repeats():
    plain = drive(t_sampling(), loss)
    interrupted = drive(t_sampling(), loss, interrupt_at=17)
    assert [(t.number, t.params, t.tags) for t in interrupted] == [(t.number, t.params, t.tags) for t in plain]


def test_sequential_sampling_needs_fewer_trainings_for_the_same_winner():
    plain, early = t_sampling(), t_sampling(sequential=True, min_samples=3)
    plain_history, early_history = drive(plain, loss), drive(early, loss)
    assert early.winner(early_history).fixed == plain.winner(plain_history).fixed
    assert len(early_history) < len(plain_history)


def test_ordering_by_sensitivity_puts_the_strongest_factor_first():
    space = SearchSpace.from_config({k: {"type": "choice", "values": v} for k, v in CONDITIONS.items()})
    strategy = make_strategy("t_sampling", space, 0, Direction.MINIMIZE,
                             {"n_samples": 4, "order": ["steps", "layers", "nodes"], "order_by": "sensitivity",
                              "pilot_trials": 27})
    history = drive(strategy, loss)
    _, order = strategy.stages(history)
    assert order[0] == "nodes"  # the largest spread of conditional means (0.6)
    assert sum(t.tags["stage"] == "0" for t in history) == 27
    assert strategy.winner(history).fixed == {"nodes": 6, "layers": 2, "steps": 10}


def test_stage_tables_and_heatmaps():
    strategy = t_sampling()
    history = drive(strategy, loss)
    files = strategy.artifacts(history)
    assert set(files) == {"t_sampling/stage1.csv", "t_sampling/stage1.png", "t_sampling/stage2.csv",
                          "t_sampling/stage2.png", "t_sampling/summary.md"}
    table = files["t_sampling/stage1.csv"].splitlines()
    assert table[0] == "nodes,layers,n,mean,sd,probability,decision" and len(table) == 10
    assert all(files[name][:8] == b"\x89PNG\r\n\x1a\n" and len(files[name]) > 5000 for name in files
               if name.endswith(".png"))
    assert "Winner: nodes=6|layers=2|steps=10" in files["t_sampling/summary.md"]


def test_renders_beside_proposals_give_what_a_render_afterwards_gives(monkeypatch):
    """The driver renders in a background thread while the main thread proposes. Here the render stops at each
    heatmap it saves until the main thread has proposed from the history without its last trials, which
    ``propose`` reads into the ledger and analysis it keeps: a render that read those would show that history."""
    strategy = t_sampling()
    history = drive(strategy, loss)
    shorter = itertools.cycle((history[:-1], history[:-2]))

    def propose() -> None:
        proposed = next(shorter)
        strategy.propose(proposed, [len(proposed)])

    renders, errors = renders_beside_proposals(monkeypatch, strategy, history, tables, "png", propose)
    assert errors == [] and len(renders) == 3
    expected = t_sampling().artifacts(history)
    assert "t_sampling/summary.md" in expected
    assert all(files == expected for files in renders)


def test_bad_options_name_the_key():
    with pytest.raises(ConfigError, match="strategy.alpha"):
        t_sampling(alpha=0.7)
    with pytest.raises(ConfigError, match="strategy.order"):
        t_sampling(order=["nodes", "layers"])
    with pytest.raises(ConfigError, match="space.x"):
        make_strategy("t_sampling", SearchSpace.from_config({"x": {"type": "float", "low": 0, "high": 1},
                                                             "y": {"type": "choice", "values": [1, 2]}}),
                      0, Direction.MINIMIZE)


def test_a_study_interrupted_mid_stage_resumes_from_mlflow(store, study_name):
    space = {k: {"type": "choice", "values": v} for k, v in CONDITIONS.items()}
    calls = []

    def objective(params, trial):
        calls.append(trial.number)
        if len(calls) == 20:
            raise KeyboardInterrupt  # Ctrl-C in the middle of stage 1
        return loss(params, trial.number)

    kwargs = dict(strategy_options={"n_samples": 4}, tracking_uri=store, progress=False)
    with pytest.raises(KeyboardInterrupt):
        optimize(objective, space, "t_sampling", study=study_name, **kwargs)
    resumed = optimize(objective, space, "t_sampling", study=study_name, **kwargs)
    reference = optimize(lambda p, t: loss(p, t.number), space, "t_sampling", study=f"{study_name}-ref", **kwargs)
    assert calls.count(19) == 2 and len(calls) == len(reference.trials) + 1
    assert [(t.params, t.tags) for t in resumed.trials] == [(t.params, t.tags) for t in reference.trials]


def test_a_numeric_space_is_refused_naming_the_configs_that_fit():
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        with pytest.raises(ConfigError, match="t_sampling needs choice dimensions") as error:
            validate(compose("config", ["strategy=t_sampling"]))  # the default MNIST space
        assert error.value.key == "space.trainer.lr"
        for overrides in SUITED:
            assert overrides in str(error.value)
            assert list(validate(compose("config", ["strategy=t_sampling", *overrides.split()]))), overrides


# -- budgets (issue 15) ------------------------------------------------------------------------------

SEED000 = SearchSpace.from_config({f"h{k}": {"type": "choice", "values": [1, 2, 3]} for k in range(5)})  # 3^5
UNEVEN = SearchSpace.from_config({"a": {"type": "choice", "values": list(range(6))},
                                  "b": {"type": "choice", "values": ["x", "y"]},
                                  "c": {"type": "choice", "values": [0.5, 1.5, 2.5, 3.5]},
                                  "d": {"type": "choice", "values": [True, False]}})


def ranked_loss(params, number):
    """Lower values are better in every position, with noise comparable to one step."""
    ranks = [list(SEED000[k].values if k in SEED000 else UNEVEN[k].values).index(v) for k, v in params.items()]
    return 0.1 * sum(ranks) + np.random.default_rng(number).normal(0, 0.1)


def budgeted(space, n_trials, **options):
    strategy = make_strategy("t_sampling", space, 0, Direction.MINIMIZE, options, n_trials=n_trials)
    return strategy, strategy.budget_note


@pytest.mark.parametrize("space", [SEED000, UNEVEN], ids=["3^5", "6x2x4x2"])
@pytest.mark.parametrize("n_trials", [40, 100, 400])
@pytest.mark.parametrize("options", [{"n_samples": "auto"}, {"n_samples": 20},
                                     {"n_samples": None, "sequential": True, "min_samples": 5},
                                     {"n_samples": "auto", "order_by": "sensitivity", "pilot_trials": 4}],
                         ids=["auto", "explicit", "sequential", "sensitivity"])
def test_a_budgeted_study_reaches_its_winner_within_n_trials(space, n_trials, options):
    if options.get("order_by") and n_trials == 40 and space is UNEVEN:  # the widest order: 2 x (6 x 4 + 2 + 2) + 4
        with pytest.raises(ConfigError, match="at least 60"):
            budgeted(space, n_trials, **options)
        return
    strategy, _ = budgeted(space, n_trials, **options)
    history = drive(strategy, ranked_loss)
    assert len(history) <= n_trials and strategy.max_trials() <= n_trials
    assert strategy.propose(history, [len(history)]).finished
    winner = strategy.winner(history)
    assert winner is not None and set(winner.fixed) == set(space)
    stages, order = strategy.stages(history)
    assert len(stages) == len(space) - 1 and all(len(s.combinations) > 0 for s in stages)


def test_a_large_budget_changes_nothing():
    plain = drive(t_sampling(), loss)
    strategy, note = budgeted(SPACE, 10_000, n_samples=6)
    assert note is None
    assert [(t.params, t.tags) for t in drive(strategy, loss)] == [(t.params, t.tags) for t in plain]


def test_a_tight_budget_keeps_the_most_probable_survivors_and_marks_the_rest():
    strategy, note = budgeted(SEED000, 60, n_samples=3)
    assert note.startswith("n_samples=3 reduced to 2 samples per combination to fit n_trials=60")
    history = drive(strategy, ranked_loss)
    stages, _ = strategy.stages(history)
    first = stages[0]
    assert first.keep == (60 - 18 - 2 * 3 * 2) // (2 * 3)  # after stage 1, reserving one survivor per later stage
    kept = strategy.survivors(first)
    assert len(kept) <= first.keep and len(stages[1].combinations) == 3 * len(kept)
    table = strategy.artifacts(history)["t_sampling/stage1.csv"]
    assert table.count(",kept") == len(kept)


def test_a_budget_below_the_minimum_is_refused_naming_n_trials_and_the_minimum():
    with pytest.raises(ConfigError, match="at least 36") as error:  # 2 x 9 in stage 1, 2 x 3 in each of 3 later
        budgeted(SEED000, 35, n_samples="auto")
    assert error.value.key == "n_trials" and len(str(error.value).splitlines()) == 1
    with pytest.raises(ConfigError, match="at least 46 .*10 pilot trials"):
        budgeted(SEED000, 45, n_samples=20, order_by="sensitivity", pilot_trials=10)
    assert budgeted(SEED000, 36, n_samples="auto")[0].max_trials() == 36


def test_the_note_says_in_one_line_what_was_chosen():
    _, auto = budgeted(SEED000, 400, n_samples="auto")
    assert auto.startswith("n_samples=auto: 11 samples per combination (stage 1: 9 combinations, 99 trainings)")
    assert "most probable survivors" in auto and "3,960" in auto  # 11 x (9 + 27 + 81 + 243)
    _, reduced = budgeted(SEED000, 100, n_samples=20, sequential=True, min_samples=5)
    assert reduced.startswith("n_samples=20 reduced to 2 samples per combination to fit n_trials=100")
    assert reduced.endswith("min_samples 5 -> 2")
    _, kept = budgeted(SEED000, 1_100, n_samples=20)  # the paper's gold budget
    assert kept.startswith("n_samples=20 kept")
    _, widest = budgeted(UNEVEN, 400, n_samples="auto", order_by="sensitivity", pilot_trials=8)
    assert "stage 1: at most 24 combinations" in widest  # 6 x 4, the widest order the pilot could pick
    assert all("\n" not in note for note in (auto, reduced, kept, widest))


def test_auto_needs_a_budget():
    strategy = make_strategy("t_sampling", SPACE, 0, Direction.MINIMIZE, {"n_samples": "auto"})
    with pytest.raises(ConfigError, match="set n_trials") as error:
        strategy.max_trials()
    assert error.value.key == "n_trials"
    with pytest.raises(ConfigError, match="strategy.n_samples"):
        t_sampling(n_samples="many")


@pytest.mark.parametrize("options", [{"n_samples": "auto"}, {"n_samples": 20, "sequential": True, "min_samples": 3}])
def test_a_resumed_study_proposes_what_the_first_would_have(options):
    strategy, _ = budgeted(SEED000, 100, **options)
    history = drive(strategy, ranked_loss)
    for cut in (0, 17, 18, 40, len(history) - 1):
        resumed, _ = budgeted(SEED000, 100, **options)
        (proposal,) = resumed.propose(history[:cut], [cut]).proposals
        assert (proposal.params, proposal.tags) == (history[cut].params, history[cut].tags)


def test_proposals_match_a_brute_force_reference_at_a_thousand_combinations():
    """The cached, array-based choice against the rule read off the public stages one combination at a time:
    the combination with the fewest samples scheduled among those that want more, first in stage order."""
    space = SearchSpace.from_config({"a": {"type": "choice", "values": list(range(40))},
                                     "b": {"type": "choice", "values": list(range(25))},
                                     "c": {"type": "choice", "values": [1, 2]}})
    strategy = make_strategy("t_sampling", space, 0, Direction.MINIMIZE,
                             {"n_samples": 4, "sequential": True, "min_samples": 2})
    rng = np.random.default_rng(1)
    history: list[Trial] = []
    checked = 0
    while True:
        for i, trial in enumerate(history):  # trials finish out of order, some fail
            if trial.state is TrialState.RUNNING and rng.random() < 0.3:
                value = None if rng.random() < 0.05 else trial.params["a"] / 40 + rng.normal(0, 0.3)
                history[i] = Trial(trial.number, trial.params, TrialState.FAILED if value is None
                                   else TrialState.COMPLETE, value, trial.run_id, trial.tags)
        numbers = list(range(len(history), len(history) + int(rng.integers(1, 40))))
        decision = strategy.propose(history, numbers)
        if decision.finished:
            break
        if len(history) >= 500 * checked:  # the slow reference now and then
            assert [p.tags["combination"] for p in decision.proposals] == reference(strategy, history, len(numbers))
            checked += 1
        history += [Trial(n, p.params, TrialState.RUNNING, None, f"r{n}", p.tags)
                    for n, p in zip(numbers, decision.proposals)]
    assert checked >= 5 and len(history) > 2_000 and strategy.winner(history) is not None
    first = strategy.stages(history)[0][0]
    best = min(c.mean for c in first.combinations if len(c.losses) >= 2)
    assert strategy.survivors(first) == [c for c in first.combinations if strategy.probability(c, best) >= 0.05]


def reference(strategy, history, count):
    stages, _ = strategy.stages(history)
    combinations = stages[-1].combinations
    least = strategy.plan.min_samples
    bar = min((c.mean for c in combinations if len(c.losses) >= least), default=math.inf)
    hopeless = {c.key for c in combinations if len(c.losses) >= least and strategy.probability(c, bar) < 0.05}
    extra, picks = Counter(), []
    for _ in range(count):
        waiting = [(c.scheduled + extra[c.key], i) for i, c in enumerate(combinations)
                   if c.key not in hopeless and c.scheduled + extra[c.key] < strategy.plan.n_samples]
        if not waiting:
            break
        key = combinations[min(waiting)[1]].key
        extra[key] += 1
        picks.append(key)
    return picks


def test_a_budgeted_study_through_the_api(store, study_name, caplog):
    space = {k: {"type": "choice", "values": v} for k, v in CONDITIONS.items()}
    result = optimize(lambda p, t: loss(p, t.number), space, "t_sampling", n_trials=30, study=study_name,
                      strategy_options={"n_samples": "auto"}, tracking_uri=store, progress=False)
    assert [r.getMessage() for r in caplog.records if "t_sampling" in r.getMessage()] == [
        "strategy 't_sampling', n_trials=30: n_samples=auto: 2 samples per combination (stage 1: 9 combinations, "
        "18 trainings); a later stage keeps only the most probable survivors that the rest of the 30 trainings "
        "pays for (every combination surviving would need 72)"]
    assert len(result.trials) <= 30 and all(t.state is TrialState.COMPLETE for t in result.trials)
    assert {t.tags["stage"] for t in result.trials} == {"1", "2"}
    assert result.best.params["nodes"] == 6
    with pytest.raises(ConfigError, match="n_trials.*at least 24"):  # 2 x 9 in stage 1, 2 x 3 in stage 2
        optimize(lambda p, t: 0.0, space, "t_sampling", n_trials=23, strategy_options={"n_samples": "auto"},
                 tracking_uri=store, study=f"{study_name}-small", progress=False)
