"""Seed 002: the factorial preset on real Dogs vs Cats images at a tiny scale, resumed mid-way."""

import pytest
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from hpo_tune.config import options, validate
from hpo_tune.space import SearchSpace
from hpo_tune.strategies import make_strategy
from hpo_tune.trial import Direction, Trial, TrialState
from hpo_tune.tune import run
from tests.conftest import children
from tests.test_factorial import PAPER_TABLE2_DATA
from tests.test_seed000 import compose_preset

TINY = ["dataset.image_size=8", "dataset.subset=40", "model.conv_channels=2", "model.dense=4", "trainer.epochs=1",
        "progress=false"]


def test_preset_follows_tables_1_and_3():
    cfg = compose_preset("experiment=seed002_dogs")
    assert cfg.strategy.name == "factorial_grid"
    assert (cfg.space.model.conv_layers.low, cfg.space.model.conv_layers.high) == (3, 6)
    assert (cfg.space.model.dense_layers.low, cfg.space.model.dense_layers.high) == (1, 3)
    assert (cfg.space.trainer.lr.low, cfg.space.trainer.lr.high) == (0.001, 0.1)
    paper = compose_preset("experiment=seed002_dogs", "scale=paper")
    assert (paper.dataset.image_size, paper.model.conv_channels, paper.trainer.epochs) == (256, 64, 20)


def test_preset_opens_the_bounds_its_narrowed_grid_steps_past():
    """The paper's grid has 7 conv layers and a learning rate of 0.0001, outside Table 1's levels: the preset's
    strategy opens those bounds on purpose (plain factorial_grid keeps the space's), and the comparison's other
    strategies are untouched by it."""
    cfg = compose_preset("experiment=seed002_dogs")
    validate(cfg)
    space = SearchSpace.from_config(OmegaConf.to_container(cfg.space, resolve=True))
    strategy = make_strategy(cfg.strategy.name, space, cfg.seed, Direction.MAXIMIZE, options(cfg.strategy),
                             n_trials=20)  # the comparison's budget: the full 2^3 design and the whole grid
    history = [Trial(r.number, r.params, TrialState.COMPLETE, PAPER_TABLE2_DATA[tuple(r.params.values())])
               for r in strategy.runs]
    table = strategy.analysis(history).narrowed
    assert dict(zip(table["factor"], table["values"])) == {
        "model.conv_layers": [6, 7], "model.dense_layers": [1, 2], "trainer.lr": [0.0001, 0.001, 0.01]}
    assert strategy.max_trials() == 20 and len(strategy.analysis(history).grid) == 12
    for variant in ("grid", "random"):
        validate(compose_preset("experiment=seed002_dogs", f"strategy={variant}", "n_trials=20"))


def test_factorial_then_grid_resumes_inside_both_phases(make_config, store, monkeypatch):
    import hpo_tune.training.objective as objective_module

    cfg = make_config("experiment=seed002_dogs", *TINY, base=())
    original = objective_module.fit
    for interrupt_at in (5, 12):  # Ctrl-C inside the factorial (8 runs), then, resumed, inside the grid
        calls = iter(range(1, 100))

        def fit(*args, interrupt_at=interrupt_at, calls=calls, **kwargs):
            if next(calls) == interrupt_at:
                raise KeyboardInterrupt
            return original(*args, **kwargs)

        monkeypatch.setattr(objective_module, "fit", fit)
        with pytest.raises(KeyboardInterrupt):
            run(cfg)
    monkeypatch.setattr(objective_module, "fit", original)
    result = run(cfg)
    phases = [t.tags["phase"] for t in result.trials]
    assert phases[:8] == ["factorial"] * 8 and phases[8:] == ["grid"] * 12  # conv [6, 7] x dense [1, 2] x 3 lrs
    assert all(t.state is TrialState.COMPLETE for t in result.trials)
    kids = children(store, result.parent_run_id)
    interrupted = [r for r in kids if r.data.tags.get("interrupted") == "true"]
    assert sorted(r.data.tags["strategy.phase"] for r in interrupted) == ["factorial", "grid"]
    client = MlflowClient(store)
    files = {a.path for a in client.list_artifacts(result.parent_run_id, "factorial")}
    assert {"factorial/pareto.png", "factorial/half_normal.png", "factorial/main_effects.png",
            "factorial/effects.csv", "factorial/design.csv"} <= files
