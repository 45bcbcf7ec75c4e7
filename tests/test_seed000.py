"""The seed-000 presets end to end at a tiny scale: both strategies on both datasets, then the report."""

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from src.report import write
from src.tracking import Tracker
from src.tune import run
from tests.conftest import ROOT

SERIES = ("progress=false",)
TINY = [  # three of the five hyperparameters, two samples each, one epoch
    "samples=2", "trainer.epochs=1", "space.model.num_layers.values=[1,2]", "~space.model.cell_activation",
    "~space.model.fc_activation", "order=[model.hidden_size,model.num_layers,dataset.time_steps]",
]


def compose_preset(*overrides):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("config", list(overrides))


def test_presets_compose_the_papers_table_1():
    gold = compose_preset("experiment=seed000_gold")
    assert gold.study == "seed000-gold-t_sampling-smoke" and gold.strategy.n_samples == 3
    assert list(gold.space.model.hidden_size["values"]) == [2, 4, 6]  # 0.5a, a, 1.5a with a = 4
    assert list(gold.space.dataset.time_steps["values"]) == [1, 5, 10]  # b-5 kept >= 1, b, b+5
    assert list(compose_preset("experiment=seed000_bdi").space.model.hidden_size["values"]) == [1, 2, 3]
    paper = compose_preset("experiment=seed000_bdi", "strategy=grid", "scale=paper")
    assert paper.strategy.repeats == 20 and paper.study == "seed000-bdi-grid-paper"
    assert paper.trainer.epochs > gold.trainer.epochs


def test_t_sampling_and_brute_force_on_both_datasets_and_the_report(make_config, store, tmp_path):
    results = {}
    for dataset in ("gold", "bdi"):
        for strategy in ("t_sampling", "grid"):
            cfg = make_config(f"experiment=seed000_{dataset}", f"strategy={strategy}", *TINY,
                              f"study=seed000-{dataset}-{strategy}-smoke", base=SERIES)
            results[dataset, strategy] = run(cfg)
    assert len(results["gold", "grid"].trials) == 3 * 2 * 3 * 2  # nodes x layers x steps x samples
    staged = results["gold", "t_sampling"].trials
    first = [t for t in staged if t.tags["stage"] == "1"]
    second = [t for t in staged if t.tags["stage"] == "2"]
    assert len(first) == 3 * 2 * 2 and len(first) + len(second) == len(staged)
    survivors = {t.tags["combination"].rsplit("|", 1)[0] for t in second}
    assert len(second) == len(survivors) * 3 * 2  # survivors x the three time steps x samples

    table = write("seed000", "smoke", Tracker(store), tmp_path)
    assert sorted(zip(table["dataset"], table["strategy"])) == sorted(results)
    row = table.set_index(["dataset", "strategy"]).loc[("gold", "grid")]
    assert row["trainings"] == 36
    best = results["gold", "grid"].best
    assert row["best_objective"] == pytest.approx(best.value)
    assert row["test_rmse_original"] > row["test_rmse"] > 0
    markdown = (tmp_path / "seed000.md").read_text()
    assert "Table 4" in markdown and "Table 5" in markdown and "Brute force" in markdown
    assert len(pd.read_csv(tmp_path / "seed000.csv")) == 4
