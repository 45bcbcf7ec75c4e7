"""``hydra/sweeper=hpo``: the project's strategies, MLflow tracking and resume on any Hydra app (``hpo_sweeper``)."""
