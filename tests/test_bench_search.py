"""The search bench: its functions' known minima are right, regret is on the noise-free function, and a tiny
run writes its files with a table row for every searcher."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize

from bench.search import problem, run, with_regret
from bench.search.functions import (
    AMPLITUDES,
    ARGMINS,
    BRANIN_MINIMUM,
    H6_MINIMUM,
    LATTICE,
    MINIMA,
    OFFSETS,
    Synthetic,
    evaluate,
    floor,
    hartmann6,
    observed_value,
    true_value,
)
from bench.search.report import medians, record
from bench.search.runner import OPTUNA_SAMPLERS, discretise, picked_curve
from bench.tables import BENCHMARKS, _table
from hpo_tune.space import Choice
from hpo_tune.trial import Trial, TrialState


@pytest.mark.parametrize("function", ["branin", "hartmann6", "mixed"])
def test_each_documented_minimiser_gives_the_documented_minimum(function):
    assert len(ARGMINS[function]) == (3 if function == "branin" else 1)
    for argmin in ARGMINS[function]:
        assert Synthetic(function).space().keys() == argmin.keys()
        assert true_value(function, argmin) == pytest.approx(MINIMA[function], abs=1e-9)
    assert BRANIN_MINIMUM == pytest.approx(0.397887, abs=1e-6)


def test_no_point_of_the_continuous_functions_goes_below_their_minimum():
    rng = np.random.default_rng(0)
    x1, x2 = rng.uniform(-5, 10, 200_000), rng.uniform(0, 15, 200_000)
    assert evaluate("branin", {"x1": x1, "x2": x2}).min() > BRANIN_MINIMUM
    assert hartmann6(rng.uniform(0, 1, (200_000, 6))).min() > H6_MINIMUM
    polished = minimize(hartmann6, list(ARGMINS["hartmann6"][0].values()), bounds=[(0, 1)] * 6, method="L-BFGS-B")
    assert polished.fun == pytest.approx(H6_MINIMUM, abs=1e-9)


def test_the_mixed_minimum_is_the_least_value_over_its_whole_space():
    """Brute force over every choice and integer level, with the four floats on a grid through the minimiser
    (and random floats); then a local search from the best point, which must not improve on it."""
    argmin = ARGMINS["mixed"][0]
    floats = [np.append(np.linspace(0, 1, 5), argmin[n]) for n in ("x1", "x2", "x5", "x6")]
    best = math.inf
    for amplitude, offset in itertools.product(AMPLITUDES, OFFSETS):
        k3, k4, x1, x2, x5, x6 = np.meshgrid(np.arange(LATTICE + 1), np.arange(LATTICE + 1), *floats, indexing="ij",
                                             sparse=True)
        values = evaluate("mixed", {"x1": x1, "x2": x2, "k3": k3, "k4": k4, "x5": x5, "x6": x6,
                                    "amplitude": amplitude, "offset": offset})
        best = min(best, values.min())
    rng = np.random.default_rng(1)
    n = 100_000
    sampled = evaluate("mixed", {**{k: rng.uniform(0, 1, n) for k in ("x1", "x2", "x5", "x6")},
                                 "k3": rng.integers(0, LATTICE + 1, n), "k4": rng.integers(0, LATTICE + 1, n),
                                 "amplitude": rng.choice(list(AMPLITUDES), n), "offset": rng.choice(list(OFFSETS), n)})
    assert best == pytest.approx(MINIMA["mixed"], abs=1e-9)
    assert sampled.min() > MINIMA["mixed"]

    def relaxed(x: np.ndarray) -> float:  # floats free, the rest at the minimiser's levels
        return true_value("mixed", {**argmin, "x1": x[0], "x2": x[1], "x5": x[2], "x6": x[3]})

    start = [argmin[n] for n in ("x1", "x2", "x5", "x6")]
    assert minimize(relaxed, start, bounds=[(0, 1)] * 4).fun >= MINIMA["mixed"] - 1e-9


def test_noise_is_seeded_and_regret_is_on_the_noise_free_value():
    argmin = ARGMINS["branin"][0]
    assert observed_value("branin", argmin, 0, 3) == true_value("branin", argmin)
    noisy = [observed_value("branin_noisy", argmin, 0, n) for n in range(200)]
    assert noisy[3] == observed_value("branin_noisy", argmin, 0, 3)  # same seed and number, same draw
    assert np.std(noisy) == pytest.approx(1.0, rel=0.2)
    # A lucky noisy draw at a poor point is picked (best observed), but scored by its true value.
    poor = {"x1": 0.0, "x2": 0.0}
    history = [Trial(0, argmin, TrialState.COMPLETE, 5.0), Trial(1, poor, TrialState.COMPLETE, -100.0)]
    curve = picked_curve(Synthetic("branin_noisy"), history)
    assert curve == [true_value("branin", argmin), true_value("branin", poor)]


def test_discretised_spaces_are_all_choices_of_cell_midpoints():
    lattice = discretise(Synthetic("mixed").space())
    assert all(isinstance(dim, Choice) for dim in lattice.values())
    assert lattice["x1"].values == (0.1, 0.3, 0.5, 0.7, 0.9)
    assert lattice["k3"].values == (2, 6, 10, 14, 18)
    assert lattice["offset"].values == tuple(OFFSETS)
    assert discretise(Synthetic("branin").space(), 3)["x2"].values == (2.5, 7.5, 12.5)
    assert 0 < floor("branin") < floor("branin", 3)


def test_a_tiny_run_writes_the_csv_and_the_plot_and_tables_every_searcher(tmp_path):
    searchers = ["random", "gp_bo", "t_sampling", "TPESampler"]
    text = run(["branin", "hartmann6_noisy"], searchers, seeds=1, budgets=[6, 10], workers=1, out=tmp_path, levels=2)
    rows = pd.read_csv(tmp_path / "results.csv")
    assert len(rows) == 2 * len(searchers) * 2
    assert (tmp_path / "regret.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(pd.read_csv(tmp_path / "curves.csv").searcher) <= set(searchers)
    ok = rows[rows.status == "ok"]
    assert (ok.regret >= -1e-9).all() and (ok.trials <= ok.budget).all()
    assert set(rows.status) <= {"ok", "not accepted"}
    for searcher in searchers:  # two budgets, ranks, and the project's against the Optuna samplers
        lines = 3 + (searcher not in OPTUNA_SAMPLERS)
        assert sum(line.startswith(f"| {searcher} |") for line in text.splitlines()) == lines
    assert (tmp_path / "summary.md").read_text() == text


@pytest.mark.skipif(not BENCHMARKS.is_dir(), reason="the tables come with ../shared/benchmarks")
def test_a_table_observes_its_seeds_and_scores_its_best_configuration_at_zero_regret():
    """The regret rule of the benchmarks' README: the best observed trial, scored by its configuration's mean."""
    task = problem("hpobench/australian")
    results, means, best = _table(task.path)
    key = max(means, key=means.get)
    top = {name: values[int(k)] for (name, values), k in zip(task.dimensions.items(), key)}
    worse = {**top, "depth": next(d for d in task.dimensions["depth"] if d != top["depth"])}
    assert set(task.space()) == set(top) and task.key(top) == key
    assert task.observe(top, 0, 3) in results[key] and task.observe(top, 0, 3) == task.observe(top, 0, 3)
    # A lucky seed of a worse configuration after the best one: it is picked, and scored by its mean.
    history = [Trial(0, top, TrialState.COMPLETE, best), Trial(1, worse, TrialState.COMPLETE, 2.0)]
    regrets = np.array(picked_curve(task, history)) - task.minimum  # as ``with_regret`` takes them
    assert regrets[0] == 0 == task.regret(top) and task.regret(worse) > 0
    assert regrets[1] == pytest.approx(task.regret(worse))


def test_picks_of_equal_value_but_for_float_noise_tie_in_the_records():
    """Two searchers that pick configurations of the same value (1e-14 apart in floating point) tie, not win."""
    rows = [{"function": "branin", "searcher": searcher, "seed": 0, "budget": 10, "status": "ok", "trials": 10,
             "failed": 0, "picked_loss": BRANIN_MINIMUM + 0.5 + noise, "best_observed_loss": 0.0, "run_seconds": 0.0,
             "picked": "", "note": "", "curve": []}
            for searcher, noise in (("random", 0.0), ("TPESampler", 1e-14), ("gp_bo", -0.1))]
    table = medians(with_regret(rows), 10)
    assert record(table, "TPESampler").to_dict() == {"TPESampler": "0 / 1 / 0", "gp_bo": "1 / 0 / 0",
                                                     "random": "0 / 1 / 0"}


def test_keep_re_runs_only_the_searchers_named_and_keeps_the_others_results(tmp_path):
    run(["branin"], ["random", "TPESampler"], seeds=2, budgets=[6], workers=1, out=tmp_path)
    before = pd.read_csv(tmp_path / "results.csv")
    text = run(["branin"], ["random"], seeds=1, budgets=[6], workers=1, out=tmp_path, keep=True)
    after = pd.read_csv(tmp_path / "results.csv")
    assert list(after.searcher) == ["TPESampler"] * 2 + ["random"]  # the searchers' order, the new run's seeds
    pd.testing.assert_frame_equal(after[after.searcher == "TPESampler"].reset_index(drop=True),
                                  before[before.searcher == "TPESampler"].reset_index(drop=True))
    assert set(pd.read_csv(tmp_path / "curves.csv").searcher) == {"random", "TPESampler"}
    assert "| random |" in text and "| TPESampler |" in text
