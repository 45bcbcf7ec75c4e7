"""One trial of a Hydra app: its job run as Hydra's launchers run one, inside the trial's MLflow run.

The objective ``HydraTask`` composes the app's config with the trial's overrides and calls Hydra's ``run_job``,
as the basic launcher does: the job gets its own output folder (``hydra.sweep.dir/hydra.sweep.subdir``, the
subdir numbered by the trial) with ``.hydra/config.yaml``, ``overrides.yaml`` and its log, all logged to the
trial's run under ``hydra/``. While it runs, the trial's run is MLflow's active run, so the task's own
``mlflow.log_metric`` or ``mlflow.pytorch.log_model`` land in it. It pickles (cloudpickle) with Hydra's global
state, so the project's process pool and Ray run it as they run any objective.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import configure_log, run_job, setup_globals
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from hpo_tune.sweeper.space import SweepSpace
from hpo_tune.trial import TrialContext, TrialPaused, TrialPruned

MAX_ARTIFACT_BYTES = 10 * 2**20  # a larger log stays in the job's folder only


@dataclass
class HydraTask:
    """The objective of a sweep: ``task_function`` on the app's ``config`` with a trial's overrides."""

    hydra_context: HydraContext
    task_function: TaskFunction
    config: DictConfig
    sweep: SweepSpace
    tracking_uri: str
    singletons: dict[Any, Any] = field(default_factory=Singleton.get_state)
    pid: int = field(default_factory=os.getpid)

    def __call__(self, params: Mapping[str, Any], trial: TrialContext) -> Any:
        import mlflow

        if os.getpid() != self.pid:  # a worker process: Hydra's resolvers and global state, as at the sweep
            setup_globals()
            Singleton.set_state(self.singletons)
        config = self.hydra_context.config_loader.load_sweep_config(self.config, self.sweep.overrides(params))
        with open_dict(config):
            config.hydra.job.id = f"{config.hydra.job.name}_{trial.number}"
            config.hydra.job.num = trial.number
        HydraConfig.instance().set_config(config)
        stopped: list[BaseException] = []

        def task(cfg: DictConfig) -> Any:
            try:
                return self.task_function(cfg)
            except (TrialPruned, TrialPaused) as verdict:  # the pruner's, not a failure of the job
                stopped.append(verdict)
                return None

        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.start_run(run_id=trial.run_id)
        try:
            done = run_job(hydra_context=self.hydra_context, task_function=task, config=config,
                           job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
        finally:
            mlflow.end_run(status="RUNNING")  # the study ends the run, with the trial's own status
            trial.log_artifacts(job_files(config))
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        if stopped:
            raise stopped[0]
        return done.return_value


def job_files(config: DictConfig) -> dict[str, bytes]:
    """A job's Hydra files (``.hydra/*.yaml``) and logs, as artifact paths under ``hydra/``."""
    folder = OmegaConf.select(config, "hydra.runtime.output_dir")
    if folder is None or not Path(folder).is_dir():
        return {}
    subdir = OmegaConf.select(config, "hydra.output_subdir")
    files = [*Path(folder).glob("*.log"), *(Path(folder, subdir).glob("*.yaml") if subdir else [])]
    return {f"hydra/{path.relative_to(folder).as_posix()}": path.read_bytes()
            for path in files if path.stat().st_size <= MAX_ARTIFACT_BYTES}
