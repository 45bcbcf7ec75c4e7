"""The seed-000 presets end to end at a tiny scale: both strategies on both datasets, then the report."""

import re
import subprocess

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from hpo_tune.compare import compare
from hpo_tune.data import load_dataset
from hpo_tune.data.timeseries import persistence_rmse
from tests.conftest import DATA, ROOT, children, runs

TINY = [  # three of the five hyperparameters, two samples each, one epoch
    "samples=2", "trainer.epochs=1", "space.model.num_layers.values=[1,2]", "~space.model.cell_activation",
    "~space.model.fc_activation", "order=[model.hidden_size,model.num_layers,dataset.time_steps]", "progress=false",
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


@pytest.mark.parametrize("dataset", ["gold", "bdi"])
def test_t_sampling_against_brute_force_and_the_report(dataset, store, tmp_path):
    out = tmp_path / "report"
    compare([f"experiment=seed000_{dataset}", *TINY, f"tracking.uri={store}", f"comparison.out={out}",
             "~comparison.variants", "+comparison.variants={t_sampling:[],brute_force:['strategy=grid']}"])
    studies = {r.data.tags["study"]: r for r in runs(store, f"tags.study LIKE 'seed000_{dataset}-%'")}
    assert set(studies) == {f"seed000_{dataset}-t_sampling-s0-smoke", f"seed000_{dataset}-brute_force-s0-smoke"}
    table = pd.read_csv(out / f"seed000_{dataset}_studies.csv").set_index("variant")
    assert table.loc["brute_force", "trainings"] == 3 * 2 * 3 * 2  # nodes x layers x steps x samples
    parent = studies[f"seed000_{dataset}-t_sampling-s0-smoke"].info.run_id
    staged = children(store, parent)
    first = [r for r in staged if r.data.tags["strategy.stage"] == "1"]
    second = [r for r in staged if r.data.tags["strategy.stage"] == "2"]
    assert len(first) == 3 * 2 * 2 and len(first) + len(second) == table.loc["t_sampling", "trainings"]
    survivors = {r.data.tags["strategy.combination"].rsplit("|", 1)[0] for r in second}
    assert len(second) == len(survivors) * 3 * 2  # survivors x the three time steps x samples
    for variant in ("t_sampling", "brute_force"):
        assert table.loc[variant, "test_rmse_original"] > table.loc[variant, "test_rmse"] > 0
    markdown = (out / f"seed000_{dataset}.md").read_text()
    assert "t-sampling against brute force" in markdown and "| brute_force |" in markdown
    floor = persistence_rmse(dataset, load_dataset(dataset, root=DATA / dataset, cache=tmp_path / "cache", seed=0,
                                                   time_steps=5))
    assert re.search(rf"\| persistence \| {floor['val_rmse']:.6g} +\|", markdown)  # the naive forecast, same months
    assert "## Against the paper" in markdown
    rows = {cells[0]: cells[1:] for line in markdown.splitlines() if line.startswith("| ")
            for cells in [[c.strip() for c in line.strip("|").split("|")]]}
    assert rows["trainings, brute force"][:2] == ["4,860", str(table.loc["brute_force", "trainings"])]
    head = subprocess.run(["git", "rev-parse", "--short=7", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    assert head.stdout.strip() in markdown  # the commit that made ours
    assert (out / f"seed000_{dataset}_best_so_far.png").read_bytes()[:4] == b"\x89PNG"
    stages = out / "studies" / f"seed000_{dataset}-t_sampling-s0-smoke" / "t_sampling"
    assert (stages / "stage1.csv").read_text().startswith("model.hidden_size,model.num_layers,n,mean,sd")
