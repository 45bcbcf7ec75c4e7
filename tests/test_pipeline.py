"""The DVC pipeline: its parameters, its stages, and a preset's full comparison at a tiny scale."""

import json
import os
import subprocess

import pandas as pd
import pytest
import yaml
from omegaconf import OmegaConf

from src.compare import compare
from src.config import validate
from src.report import index
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
        assert f"python -m src.compare experiment={preset} scale=smoke fresh=true" in dry.stdout
    plotted = {next(iter(entry)) for entry in pipeline["plots"]}
    assert plotted == set(PRESETS)
    for entry in pipeline["plots"]:
        (name, spec), = entry.items()
        (curves, columns), = spec["y"].items()
        assert list(compose_preset(f"experiment={name}").comparison.variants) == columns


@pytest.mark.parametrize("scale", ["smoke", "paper"])
@pytest.mark.parametrize("preset", PRESETS)
def test_every_variant_of_every_comparison_is_a_valid_study(preset, scale):
    """What `dvc repro` would run, checked without training: a bad variant fails here, not an hour in."""
    base = compose_preset(f"experiment={preset}", f"scale={scale}")
    for variant, overrides in base.comparison.variants.items():
        assert validate(compose_preset(f"experiment={preset}", f"scale={scale}", *overrides)), variant


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
