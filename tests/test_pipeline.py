"""The DVC pipeline: its parameters, its stages, and a preset's full comparison at a tiny scale."""

import json
import math
import os
import subprocess

import pandas as pd
import pytest
import yaml
from omegaconf import OmegaConf

from hpo_tune import optimize, tune
from hpo_tune.compare import compare, comparison_of
from hpo_tune.config import options, validate
from hpo_tune.errors import StudiesFailedError
from hpo_tune.report import index
from hpo_tune.strategies.bayes import GaussianProcessBO
from tests.conftest import ROOT
from tests.test_seed000 import compose_preset

PRESETS = ["seed000_gold", "seed000_bdi", "seed001_mnist", "seed001_cifar10", "seed002_dogs"]


def test_params_yaml_is_the_composed_default_config():
    assert (ROOT / "params.yaml").read_text() == OmegaConf.to_yaml(compose_preset()), (
        "params.yaml is stale: regenerate it with `python -m src.tune --cfg job > params.yaml`")


def test_dvc_sees_a_stage_per_paper_experiment_and_their_plots():
    pipeline = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    assert list(pipeline["stages"]["paper"]["foreach"]) == PRESETS
    dry = subprocess.run(["dvc", "repro", "--dry", "--force"], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    assert dry.returncode == 0, dry.stderr
    for preset in PRESETS:
        assert f"python -m hpo_tune.compare experiment={preset} scale=smoke fresh=true" in dry.stdout
    plotted = {next(iter(entry)) for entry in pipeline["plots"]}
    assert plotted == set(PRESETS)
    for entry in pipeline["plots"]:
        (name, spec), = entry.items()
        (curves, columns), = spec["y"].items()
        assert list(compose_preset(f"experiment={name}").comparison.variants) == columns


@pytest.mark.parametrize("scale", ["smoke", "medium", "paper"])
@pytest.mark.parametrize("preset", PRESETS)
def test_every_variant_of_every_comparison_is_a_valid_study(preset, scale):
    """What `dvc repro` would run, checked without training: a bad variant fails here, not an hour in."""
    base = compose_preset(f"experiment={preset}", f"scale={scale}")
    kept = [variant for variant, overrides in base.comparison.variants.items() if overrides is not None]
    assert list(comparison_of(base).variants) == kept  # a scale leaves a variant out by setting it to null
    for variant in kept:
        assert validate(compose_preset(f"experiment={preset}", f"scale={scale}",
                                       *base.comparison.variants[variant])), variant


def test_a_presets_comparison_reports_every_strategy(store, tmp_path):
    out = tmp_path / "seed002_dogs"
    compare(["experiment=seed002_dogs", "dataset.image_size=8", "dataset.subset=24", "model.conv_channels=2",
             "model.dense=2", "trainer.epochs=1", "progress=false", f"tracking.uri={store}",
             f"comparison.out={out}", "fresh=true"])
    summary = pd.read_csv(out / "seed002_dogs_summary.csv").set_index("variant")
    assert list(summary.index) == ["factorial_grid", "grid", "random", "gp_bo", "gamma_bo", "optuna_tpe"]
    assert (summary["trainings_mean"] == 20).all()  # the same budget for every strategy
    curves = pd.read_csv(out / "seed002_dogs_curves.csv")
    assert list(curves.columns) == ["trainings", *summary.index] and len(curves) == 20
    metrics = json.loads((out / "seed002_dogs_metrics.json").read_text())
    assert set(metrics) >= {f"{variant}.best_at_budget_mean" for variant in summary.index}
    readme = index(tmp_path).read_text()  # reports/README.md: one section per preset folder
    assert "](seed002_dogs/seed002_dogs_best_so_far.png)" in readme and "## Every study" not in readme
    assert all(f"| {variant} " in readme for variant in summary.index)


def cheap_run(cfg):
    """tune.run's study on a formula instead of a training, so a whole comparison takes seconds."""
    def formula(params):
        return -abs(math.log10(params["trainer.lr"]) + 3) - 0.01 * sum(params.values())

    return optimize(formula, validate(cfg), strategy=cfg.strategy.name, n_trials=cfg.n_trials,
                    direction=cfg.objective.direction, seed=cfg.seed, study=cfg.study, tracking_uri=cfg.tracking.uri,
                    experiment=cfg.tracking.experiment, strategy_options=options(cfg.strategy), fresh=cfg.fresh,
                    progress=False)


def test_a_study_that_crashes_is_reported_and_the_others_still_run(store, tmp_path, monkeypatch):
    def crashes_after_three(self, history, numbers):
        if len(history) >= 3:
            raise RuntimeError("the surrogate exploded")
        return propose(self, history, numbers)

    propose = GaussianProcessBO.propose
    monkeypatch.setattr(GaussianProcessBO, "propose", crashes_after_three)
    monkeypatch.setattr(tune, "run", cheap_run)
    out = tmp_path / "dogs"
    with pytest.raises(StudiesFailedError) as failed:
        compare(["experiment=seed002_dogs", f"tracking.uri={store}", f"comparison.out={out}", "fresh=true"])
    assert list(failed.value.failures) == ["seed002_dogs-gp_bo-s0-smoke"]
    studies = pd.read_csv(out / "seed002_dogs_studies.csv").set_index("variant")
    assert studies.loc["gp_bo", "status"] == "FAILED" and studies.loc["gp_bo", "trainings"] == 3
    assert "the surrogate exploded" in studies.loc["gp_bo", "error"]
    others = studies.drop(index="gp_bo")
    assert (others["status"] == "FINISHED").all() and (others["trainings"] == 20).all()
    assert (others["failed"] == 0).all() and others["best_objective"].notna().all()
    assert "1 of 6 studies did not finish** (seed002_dogs-gp_bo-s0-smoke)" in (out / "seed002_dogs.md").read_text()


def test_a_comparison_with_a_bad_variant_fails_before_anything_trains(store, tmp_path, monkeypatch):
    monkeypatch.setattr(tune, "run", lambda cfg: pytest.fail(f"{cfg.study} ran"))
    with pytest.raises(Exception, match="n_trials"):
        compare(["experiment=seed002_dogs", "+comparison.variants.broken=['strategy=random','n_trials=0']",
                 f"tracking.uri={store}", f"comparison.out={tmp_path}"])
