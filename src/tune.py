"""CLI: ``python -m src.tune strategy=<name> dataset=<name> model=<name> [key=value ...]``.

Hydra composes the config from ``conf/``; this module checks it, builds the training objective
and hands both to ``optimize``. Config mistakes (an unknown option, a bad value) print one line
naming the key and exit with code 2 before anything is tracked; a missing dataset exits 1.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, OmegaConf

if TYPE_CHECKING:
    from src.study import StudyResult

import src.resolvers  # noqa: F401 - registers the resolvers the configs use
from src.errors import ConfigError, DataMissingError, StudyConflictError


def run(cfg: DictConfig) -> StudyResult:
    """Tune the configured model; shared by the CLI and by tests that compose configs directly."""
    # Imported here, not at the top, so that Hydra's own config errors come back without waiting for
    # MLflow and torch to load.
    from src.config import options, study_config, validate
    from src.study import optimize
    from src.training.objective import TrainingObjective

    space = validate(cfg)

    objective = TrainingObjective(cfg)
    result = optimize(
        objective, space, strategy=cfg.strategy.name, n_trials=cfg.n_trials, direction=cfg.objective.direction,
        metric=cfg.objective.metric, seed=cfg.seed, study=cfg.study, tracking_uri=cfg.tracking.uri,
        experiment=cfg.tracking.experiment, strategy_options=options(cfg.strategy),
        executor=cfg.executor.name, device=cfg.device, config=study_config(cfg),
        config_text=OmegaConf.to_yaml(cfg, resolve=True),
        tags={"dataset": cfg.dataset.name, "model": cfg.model.name}, progress=cfg.progress,
    )
    summary = {
        "study": cfg.study,
        "parent_run_id": result.parent_run_id,
        "metric": cfg.objective.metric,
        "best_objective": result.best.value if result.best else None,
        "best_params": result.best.params if result.best else None,
        "best_run_id": result.best.run_id if result.best else None,
        "n_trials": len(result.trials),
        "n_failed": sum(t.state.value == "failed" for t in result.trials),
    }
    print(json.dumps(summary, indent=2))
    if cfg.summary:
        Path(cfg.summary).parent.mkdir(parents=True, exist_ok=True)
        Path(cfg.summary).write_text(json.dumps(summary, indent=2) + "\n")
    return result


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def _hydra_main(cfg: DictConfig) -> None:
    try:
        run(cfg)
    except (ConfigError, DataMissingError, StudyConflictError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(error.exit_code)


def main() -> None:
    """Entry point: Hydra's own errors (unknown option, bad override) also become one line, exit 2."""
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")  # let Hydra raise, so its errors can be shortened here
    try:
        _hydra_main()
    except (MissingConfigException, ConfigCompositionException, OverrideParseException) as error:
        print(f"error: {_first_line(error)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: the running trial will run again when the same command is re-run", file=sys.stderr)
        sys.exit(130)


def _first_line(error: Exception) -> str:
    """Hydra's multi-line errors as one line that names the offending key or option."""
    if isinstance(error, MissingConfigException) and error.missing_cfg_file and error.options is not None:
        group, _, option = error.missing_cfg_file.rpartition("/")
        return f"{group}={option}: no such option (available: {', '.join(sorted(error.options))})"
    if isinstance(error, OverrideParseException):
        return f"{error.override}: cannot parse this override ({error.message.splitlines()[0]})"
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    head = lines[0] if lines else repr(error)
    if error.__cause__ is not None and str(error.__cause__).strip():
        head += f" {str(error.__cause__).strip().splitlines()[0]}"
    hint = next((line for line in lines if line.startswith("To append")), None)
    return f"{head} ({hint[0].lower()}{hint[1:]})" if hint else head


if __name__ == "__main__":
    main()
