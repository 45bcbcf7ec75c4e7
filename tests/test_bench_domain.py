"""The t-sampling-domain bench: its sub-spaces of the real tables, its budgets (t_sampling's refusal line), and a tiny
run's files and wins / ties / losses grids."""

from __future__ import annotations

import itertools

import pandas as pd
import pytest

from bench.search.domain import (
    CAP,
    KINDS,
    OPPONENTS,
    SEARCHERS,
    SubTable,
    by_importance,
    medians,
    records,
    run,
    spaced,
    sub_table,
)
from bench.tables import HPOBENCH, _table
from hpo_tune.errors import ConfigError
from hpo_tune.strategies import make_strategy


def test_spaced_values_keep_the_grids_ends_and_all_of_a_short_grid():
    assert spaced(tuple(range(10)), 2) == (0, 9)
    assert spaced(tuple(range(10)), 4) == (0, 3, 6, 9)
    assert spaced(tuple(range(5)), 5) == tuple(range(5))
    assert spaced(HPOBENCH["depth"], 5) == (1, 2, 3)


@pytest.mark.parametrize("table, dims, conditions", [("hpobench/kc1", 3, 4), ("nasbench201/cifar100", 4, 3)])
def test_a_sub_table_holds_the_other_dimensions_at_the_best_configuration(table, dims, conditions):
    cell = sub_table(f"{table}@d{dims}m{conditions}")
    _, means, best = _table(cell.path)
    space = cell.space()
    assert list(space) == [name for name in cell.dimensions if name in by_importance(table)[:dims]]
    assert all(len(space[name].values) == min(conditions, len(cell.dimensions[name])) for name in space)
    assert cell.key(cell.held) == max(means, key=means.__getitem__) and means[cell.key(cell.held)] == best
    configs = [dict(zip(space, values)) for values in itertools.product(*(space[n].values for n in space))]
    assert cell.best == max(cell.truth(params, 0.0) for params in configs)
    assert cell.minimum == -cell.best  # maximised: regret = the sub-space's best mean minus the pick's mean
    with pytest.raises(ValueError, match="dimensions"):
        SubTable(table, 7, conditions)


@pytest.mark.parametrize("name", ["hpobench/phoneme@d2m2", "hpobench/phoneme@d5m5", "nasbench201/cifar10@d6m4"])
def test_the_budgets_are_t_samplings_least_and_twice_that(name):
    cell = sub_table(name)
    least, more = cell.budgets()
    assert more == min(2 * least, CAP) and more >= least

    def build(budget: int, **options: object) -> object:
        return make_strategy("t_sampling", cell.space(), 0, cell.direction, options, n_trials=budget)

    with pytest.raises(ConfigError, match=f"at least {least}"):
        build(least - 1)
    for budget in (least, more):  # accepted; the default n_samples (20, an upper bound) plans as auto does here
        assert build(budget).plan == build(budget, n_samples="auto").plan


def test_a_tiny_run_writes_its_files_and_a_record_for_every_cell(tmp_path):
    tables = ["hpobench/kc1", "nasbench201/cifar100"]
    text = run(tables, [2, 3], [2, 3], seeds=2, out=tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"results.csv", "summary.md", "domain.png"}
    data = pd.read_csv(tmp_path / "results.csv")
    assert set(data.status) == {"ok"} and set(data.searcher) == set(SEARCHERS)
    assert (data.regret >= 0).all() and (data.regret.groupby([data.table, data.dims, data.conditions]).min() == 0).any()
    assert (data.budget == data.least).sum() == (data.kind == KINDS[0]).sum() == len(data) // 2
    staged = data.searcher == "t_sampling"  # may finish before its budget; the others spend it all
    assert (data.trials[staged] <= data.budget[staged]).all() and (data.trials[~staged] == data.budget[~staged]).all()
    assert len(data) == len(tables) * 4 * len(SEARCHERS) * 2 * 2  # cells x searchers x seeds x budgets
    table = medians(data)
    for kind, opponent in itertools.product(KINDS, OPPONENTS):
        assert f"### t_sampling against {opponent}, {kind} budget" in text
        grid = records(table, kind, opponent)
        assert list(grid.d) == [2, 3] and list(grid.columns[1:]) == ["m = 2", "m = 3"]
        for cell in grid.drop(columns="d").to_numpy().ravel():
            assert sum(int(n) for n in cell.split(" / ")) == len(tables)
