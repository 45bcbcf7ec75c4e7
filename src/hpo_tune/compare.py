"""Run an experiment preset's comparison, then write its report.

    python -m hpo_tune.compare experiment=seed001_mnist [scale=paper] [key=value ...] [--report-only]

The preset's ``comparison`` node names variants (each a list of overrides, e.g. ``[strategy=gp_bo,
strategy.n_iterations=20]``; a scale leaves one out by setting it to null) and seeds; every variant
runs under every seed as its own study (``<name>-<variant>-s<seed>-<scale>``), with the same
overrides otherwise, so the comparison is on equal terms. Studies already complete are not re-run
(they resume as finished), so re-running the command after an interruption continues where it
stopped. ``--report-only`` skips to the report.
Every study's config is validated before the first one trains, so a bad variant fails at once; a
study that crashes later is reported as failed without costing the others, and the command then
exits 1 once the report (which lists the failure) is written.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

import hpo_tune.resolvers  # noqa: F401 - registers the resolvers the configs use
from hpo_tune.cli import cli_errors
from hpo_tune.errors import ConfigError, DataMissingError, StudiesFailedError, StudyConflictError
from hpo_tune.resolvers import PROJECT_ROOT

if TYPE_CHECKING:
    from hpo_tune.report import Comparison

USAGE = """\
usage: python -m hpo_tune.compare experiment=<preset> [scale=smoke|paper] [key=value ...] [--report-only]

Runs an experiment preset's comparison: every variant under every seed as its own study
(<preset>-<variant>-s<seed>-<scale>; finished studies are not run again), then writes the report.
Arguments are Hydra overrides, as for python -m src.tune (key=value, group=option, +key=value).

  experiment=<preset>   the comparison to run (presets in conf/experiment/)
  scale=smoke|paper     minutes on a CPU (default) or the paper's settings
  --report-only         skip the studies and rewrite the report from what is tracked

presets: {presets}

The report goes to reports/<preset>/<preset>.md (comparison.out=<folder> moves it), with its tables,
plots and each study's artifacts beside it, and to an MLflow run named report-<preset>-<scale>.

example: python -m hpo_tune.compare experiment=seed001_mnist scale=smoke
"""


def compose_config(overrides: Sequence[str]) -> DictConfig:
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        return compose("config", list(overrides))


def comparison_of(cfg: DictConfig) -> Comparison:
    from hpo_tune.report import Comparison  # imported late, like the rest of the engine: it pulls in MLflow

    if "comparison" not in cfg:
        raise ConfigError("experiment", "choose a preset with a comparison, e.g. experiment=seed001_mnist")
    return Comparison.from_config(cfg.comparison, experiment=cfg.tracking.experiment, scale=cfg.scale)


def compare(overrides: Sequence[str], report_only: bool = False) -> Path:
    """Run every variant under every seed (unless ``report_only``), then write the report; returns its folder."""
    from hpo_tune.config import validate
    from hpo_tune.report import summary_part, write
    from hpo_tune.tracking import Tracker
    from hpo_tune.tune import run

    base = compose_config(overrides)
    comparison = comparison_of(base)
    failures: dict[str, str] = {}
    if not report_only:
        studies = [compose_config([*overrides, *base.comparison.variants[variant], f"seed={seed}",
                                   f"study={comparison.study(variant, seed)}"])
                   for variant in comparison.variants for seed in comparison.seeds]
        for cfg in studies:
            validate(cfg)
        for cfg in studies:
            try:
                run(cfg)
            except (ConfigError, DataMissingError, StudyConflictError):
                raise  # the user's to fix, and every other study would hit it too
            except Exception as error:  # noqa: BLE001 - one study's crash must not cost the others
                traceback.print_exc()
                failures[cfg.study] = f"{type(error).__name__}: {error}"
    out = Path(base.comparison.get("out") or Path("reports") / comparison.name)
    write(Tracker(base.tracking.uri), comparison, out, failures, naive_baseline(base))
    report = out / f"{comparison.name}.md"
    print(summary_part(report))
    print(f"\nreport: {report}")
    if failures:
        raise StudiesFailedError(failures)
    return out


def naive_baseline(cfg: DictConfig) -> dict[str, float] | None:
    """For a series, the persistence forecast's RMSEs on the preset's own splits; None for other tasks."""
    from omegaconf import OmegaConf

    from hpo_tune.data import load_dataset
    from hpo_tune.data.timeseries import FEATURES, persistence_rmse
    from hpo_tune.training.objective import DATASET_META_KEYS

    name = cfg.dataset.name
    if cfg.dataset.task != "regression" or name not in FEATURES:
        return None
    options = {k: v for k, v in OmegaConf.to_container(cfg.dataset, resolve=True).items() if k not in DATASET_META_KEYS}
    splits = load_dataset(name, root=Path(cfg.paths.data) / name, cache=Path(cfg.paths.cache) / name, seed=cfg.seed,
                          **options)
    return persistence_rmse(name, splits)


def usage() -> str:
    """The help text, with the presets there are."""
    presets = sorted(path.stem for path in (PROJECT_ROOT / "conf" / "experiment").glob("*.yaml"))
    return USAGE.format(presets=", ".join(presets))


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--help" in args or "-h" in args:
        print(usage(), end="")
        return
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    with cli_errors():
        compare([a for a in args if a != "--report-only"], report_only="--report-only" in args)


if __name__ == "__main__":
    main()
