"""The multi-fidelity bench (issue 22): the committed digits table has the documented shape and spread, the
multi-fidelity Hartmann-6 is the paper's, epochs are counted once, and a tiny run tables Optuna's three pruners
and the project's."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from bench.multifidelity import run
from bench.multifidelity.digits import DigitsTable
from bench.multifidelity.digits_table import EPOCHS, GRID, NAMES, PATH, SEEDS, grid_configs, late_bloomers
from bench.multifidelity.hartmann import ARGMIN, NOISE_SD, MFHartmann, mf_hartmann6
from bench.multifidelity.runner import Ledger, run_optuna, run_project
from bench.search.functions import H6_A, H6_ALPHA, H6_MINIMUM, H6_P, hartmann6


@pytest.fixture(scope="module")
def digits():
    return DigitsTable()


def test_the_table_has_the_documented_shape_and_is_small(digits):
    table = digits.table
    n = math.prod(len(v) for v in GRID.values())
    assert n == 288 and PATH.stat().st_size < 500_000
    assert tuple(table["names"]) == NAMES
    np.testing.assert_array_equal(table["configs"], grid_configs())
    assert table["curves"].shape == table["epoch_seconds"].shape == (n, len(SEEDS), EPOCHS)
    assert int(table["n_train"]) + int(table["n_val"]) == 1_797
    for name, levels in GRID.items():
        np.testing.assert_allclose(table[f"levels_{name}"], levels)


def test_the_curves_are_accuracies_with_a_spread_worth_benchmarking(digits):
    curves, seconds = digits.table["curves"], digits.table["epoch_seconds"]
    assert np.isfinite(curves).all() and curves.min() >= 0 and curves.max() <= 1
    assert np.isfinite(seconds).all() and (seconds > 0).all()
    final = curves[:, :, -1].mean(1)
    assert final.max() > 0.97 and (final < 0.5).sum() >= 20  # good configurations, and bad ones
    assert np.ptp(curves, axis=2).max() > 0.5 and np.unique(final).size > 100  # curves not all alike
    assert late_bloomers(curves).size >= 1  # slow starters that end among the best...
    early = curves[:, :, 0].mean(1)
    fast_then_worse = (early > np.quantile(early, 0.9)) & (final < np.median(final))
    assert fast_then_worse.any()  # ... and fast starters that end below the median: curves cross
    assert np.any(curves[:, :, -1].std(1) > 0)  # the training seed matters


def test_every_grid_point_is_found_from_its_parameters_and_the_space_snaps_to_it(digits):
    space = digits.space()
    for row, config in enumerate(digits.table["configs"]):
        params = {name: space[name].values[list(space[name].values).index(v)] if hasattr(space[name], "values")
                  else float(v) for name, v in zip(NAMES, config)}
        assert digits.index(params) == row
    lr = GRID["lr"]
    assert space["lr"].low < lr[0] and space["lr"].high > lr[-1]
    base = dict(zip(NAMES, digits.table["configs"][0]))
    assert digits.index({**base, "lr": lr[1] * 1.7}) == digits.index({**base, "lr": lr[1]})  # below half a step
    assert digits.index({**base, "lr": lr[1] * 1.8}) == digits.index({**base, "lr": lr[2]})  # above it
    assert digits.reference == pytest.approx(digits.table["curves"][:, :, -1].mean(1).max())
    best = dict(zip(NAMES, digits.table["configs"][int(digits.means.argmax())]))
    assert digits.regret(best) == 0 and digits.value(best, 4, 40) == digits.table["curves"][digits.index(best), 1, 39]


def test_hartmann_at_full_fidelity_is_hartmann6_and_a_lower_fidelity_lifts_it():
    assert float(mf_hartmann6(list(ARGMIN.values()), 1.0)) == pytest.approx(-3.32237, abs=1e-5)
    assert float(mf_hartmann6(list(ARGMIN.values()), 1.0)) == pytest.approx(H6_MINIMUM, abs=1e-12)
    x = np.random.default_rng(0).uniform(0, 1, (500, 6))
    np.testing.assert_allclose(mf_hartmann6(x, 1.0), hartmann6(x), atol=1e-12)
    low, mid, full = mf_hartmann6(x, 0.0), mf_hartmann6(x, 0.5), mf_hartmann6(x, 1.0)
    assert (low > mid).all() and (mid > full).all() and (low - full).max() < 0.4  # 0.1 x four bumps of at most 1
    np.testing.assert_allclose(mid - full, (low - full) / 2)  # linear in the fidelity
    # alpha' = alpha - 0.1 (1 - z): the lift is 0.1 (1 - z) times the sum of the four bumps
    point = np.array(list(ARGMIN.values()))
    bumps = np.exp(-(H6_A * (point - H6_P) ** 2).sum(axis=1))
    assert float(mf_hartmann6(point, 0.25)) - H6_MINIMUM == pytest.approx(0.1 * 0.75 * bumps.sum(), rel=1e-9)
    assert float(mf_hartmann6(point, 1.0)) == pytest.approx(-(H6_ALPHA * bumps).sum(), rel=1e-12)
    problem = MFHartmann()
    assert problem.truth(ARGMIN) == pytest.approx(H6_MINIMUM) and problem.regret(ARGMIN) == pytest.approx(0)
    curve = [problem.value(ARGMIN, 7, e) for e in range(1, problem.epochs + 1)]
    assert curve == [problem.value(ARGMIN, 7, e) for e in range(1, problem.epochs + 1)]  # seeded per trial
    assert curve != [problem.value(ARGMIN, 8, e) for e in range(1, problem.epochs + 1)]
    noise = np.array(curve) - mf_hartmann6(list(ARGMIN.values()), np.arange(1, 28) / 27)
    assert 0 < noise.std() < 3 * NOISE_SD


def test_the_incumbent_is_the_best_observed_among_trials_that_reached_the_last_epoch():
    problem = MFHartmann()
    ledger = Ledger(problem, cap=10)
    bad = {f"x{j}": 0.9 for j in range(1, 7)}
    ledger.spend(ARGMIN, -5.0, last=False)  # the best value seen, but at epoch 1 of a trial that did not finish
    assert ledger.trace == [math.inf]
    ledger.spend(bad, 0.0, last=True)
    ledger.spend(ARGMIN, -3.3, last=True)
    ledger.spend(bad, -3.3, last=True)  # a tie: the earlier stays
    assert ledger.trace[1] == pytest.approx(problem.regret(bad)) and ledger.trace[2:] == [pytest.approx(0)] * 2
    assert ledger.epochs == 4 and ledger.finished == 3 and not ledger.spent


class Counting(MFHartmann):
    """Hartmann that remembers every (trial seed, epoch) it computed."""

    def __init__(self):
        super().__init__(epochs=9)
        object.__setattr__(self, "calls", Counter())

    def value(self, params, trial_seed, epoch):
        self.calls[trial_seed, epoch] += 1
        return super().value(params, trial_seed, epoch)


@pytest.mark.parametrize("pruner", ["none", "asha", "asha_promote", "hyperband"])
def test_the_project_pays_each_epoch_once_even_when_a_trial_is_promoted(pruner):
    problem = Counting()
    ledger, trials = run_project(problem, "random", pruner, seed=3, cap=60)
    assert max(problem.calls.values()) == 1  # a resumed trial starts after its checkpoint
    assert ledger.epochs == sum(problem.calls.values()) >= 60
    assert len(ledger.trace) == ledger.epochs
    if pruner == "asha_promote":
        assert any(t.paused for t in trials) or any(len(t.curve) < problem.epochs for t in trials)
    if pruner == "none":
        assert ledger.finished == len(trials) == math.ceil(60 / problem.epochs)


def test_optuna_studies_stop_at_the_cap_and_prune():
    ledger, trials = run_optuna(MFHartmann(), "TPESampler", "asha", seed=0, cap=200)
    assert 200 <= ledger.epochs < 200 + 27
    assert any(len(t.curve) < 27 for t in trials) and ledger.finished >= 1


def test_a_tiny_run_tables_optuna_s_three_pruners_and_the_project_s(tmp_path):
    text = run(["hartmann6_mf", "digits"], ["TPESampler", "random"], ["none", "asha", "asha_promote", "hyperband"],
               seeds=1, multiples=[1, 2], workers=1, out=tmp_path, walltime_trials=0)
    rows = pd.read_csv(tmp_path / "results.csv")
    methods = set(zip(rows.searcher, rows.pruner))
    assert {("TPESampler", p) for p in ("none", "asha", "hyperband")} | {("random", "none")} <= methods
    assert (rows.status == "ok").all() and (rows.epochs >= rows.cap).all()
    for problem in ("hartmann6_mf", "digits"):
        assert f"{problem}: median regret" in text and f"{problem}: epochs each pruner needs" in text
        assert "TPESampler + asha" in text and "random + none" in text
    assert {"regret_1x", "regret_2x"} <= set(rows.columns)
    assert (rows[rows.pruner == "none"].regret_2x >= 0).all()
    assert (tmp_path / "regret.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "summary.md").read_text() == text
