"""Seed 001: the presets, the comparison over seeds, kappa, and the per-epoch mode."""

import json

import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

import hpo_tune.training.objective as objective_module
from hpo_tune.compare import compare
from hpo_tune.training.objective import TrainingObjective
from hpo_tune.trial import TrialContext
from hpo_tune.tune import run
from tests.conftest import children, runs
from tests.test_seed000 import compose_preset

pytestmark = pytest.mark.usefixtures("mnist_available")

TINY = ["dataset.subset=60", "dataset.val_size=40", "trainer.epochs=1", "model.conv_channels=[4,4]",
        "model.dense=[8]", "progress=false"]


def test_presets_compose_both_scales():
    smoke = compose_preset("experiment=seed001_mnist")
    assert (smoke.dataset.subset, smoke.dataset.val_size, smoke.trainer.batch_size) == (400, 100, 50)
    assert smoke.model.conv_channels == [16, 16, 32, 32, 64, 64] and smoke.strategy.name == "gamma_bo"
    paper = compose_preset("experiment=seed001_mnist", "scale=paper")
    assert paper.dataset.val_source == "test" and paper.objective.metric == "val_kappa"
    assert paper.comparison.variants.grid == ["strategy=grid", "strategy.points=100"]
    cifar = compose_preset("experiment=seed001_cifar10")
    assert cifar.model.conv_channels == [32, 32, 64, 64] and cifar.model.dense == [512]


def test_grid_against_both_bos_over_seeds_gives_mean_and_spread(store, tmp_path):
    out = tmp_path / "report"
    compare(["experiment=seed001_mnist", *TINY, f"tracking.uri={store}", f"comparison.out={out}",
             "comparison.seeds=[0,1]", "~comparison.variants",
             "+comparison.variants={grid:['strategy=grid','strategy.points=3'],"
             "gp_bo:['strategy=gp_bo','strategy.n_iterations=2'],gamma_bo:['strategy=gamma_bo','strategy.n_iterations=2']}"])
    summary = pd.read_csv(out / "seed001_mnist_summary.csv").set_index("variant")
    assert list(summary.index) == ["grid", "gp_bo", "gamma_bo"] and (summary["studies"] == 2).all()
    assert summary.loc["grid", "trainings_mean"] == 3 and summary.loc["gp_bo", "trainings_mean"] == 4
    assert (summary["best_objective_sd"] >= 0).all() and summary["train_time_s_mean"].gt(0).all()
    studies = pd.read_csv(out / "seed001_mnist_studies.csv")
    assert sorted(studies["seed"].unique()) == [0, 1] and studies["val_kappa"].notna().all()
    parent = runs(store, "tags.study = 'seed001_mnist-gamma_bo-s1-smoke'")[0]
    artifacts = [a.path for a in MlflowClient(store).list_artifacts(parent.info.run_id)]
    assert {"confusion_matrix.png", "confusion_matrix.csv", "gamma_bo"} <= set(artifacts)
    report = runs(store, "tags.report = 'seed001_mnist-smoke'")
    assert len(report) == 1 and report[0].data.metrics["gamma_bo.best_objective_mean"] > 0


def test_per_epoch_mode_carries_the_best_candidates_weights(make_config, store):
    cfg = make_config("experiment=seed001_mnist", "strategy=per_epoch", "strategy.epochs=2",
                      "strategy.inner_options.n_iterations=1", *TINY)
    result = run(cfg)
    assert len(result.trials) == 2 * 3
    first = [t for t in result.trials if t.tags["epoch"] == "1"]
    second = [t for t in result.trials if t.tags["epoch"] == "2"]
    winner = max(first, key=lambda t: t.value)
    assert all(json.loads(t.tags["lineage"]) == [] for t in first)
    lineage = json.loads(second[0].tags["lineage"])
    assert len(lineage) == 1 and lineage[0][0] == winner.params
    assert all(t.tags["lineage"] == second[0].tags["lineage"] for t in second)
    steps = MlflowClient(store).get_metric_history(second[0].run_id, "val_accuracy")
    assert [m.step for m in steps] == [2]
    schedule = MlflowClient(store).download_artifacts(result.parent_run_id, "per_epoch/schedule.csv")
    assert pd.read_csv(schedule)["epoch"].tolist() == [1, 2]


def context(number, seed, tags, reports):
    return TrialContext(number, seed, "cpu", lambda e, m: reports.append((e, dict(m))), lambda files: None, tags)


def test_a_lineage_resumes_from_the_same_weights_in_a_fresh_process(make_config):
    cfg = make_config("experiment=seed001_mnist", *TINY)
    objective = TrainingObjective(cfg)
    reports = []
    first = objective({"trainer.lr": 0.05}, context(0, 11, {"epoch": "1", "lineage": "[]"}, reports))
    lineage = json.dumps([[{"trainer.lr": 0.05}, 11]])
    second = objective({"trainer.lr": 0.02}, context(3, 12, {"epoch": "2", "lineage": lineage}, reports))
    assert [epoch for epoch, _ in reports] == [1, 2]
    kept = objective_module._WEIGHTS[lineage]
    objective_module._WEIGHTS.clear()  # a resumed study, or another worker: nothing in memory
    again = TrainingObjective(cfg)({"trainer.lr": 0.02}, context(3, 12, {"epoch": "2", "lineage": lineage}, []))
    assert again == second and first != second
    replayed = objective_module._WEIGHTS[lineage]  # the lineage was re-trained to the same weights
    assert all(torch.equal(kept[k], replayed[k]) for k in kept)


def test_kappa_is_logged_beside_accuracy_and_can_be_the_objective(make_config, store):
    result = run(make_config("n_trials=2", "objective.metric=val_kappa", "objective.kappa.variant=original"))
    for kid in children(store, result.parent_run_id):
        metrics = kid.data.metrics
        assert metrics["objective"] == metrics["val_kappa"] >= 0
    with pytest.raises(Exception, match="objective.kappa.lam"):
        run(make_config("objective.kappa.lam=2"))
