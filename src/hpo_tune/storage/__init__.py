"""Where a study's trials are kept, behind one interface (``base.TrialStore``): MLflow's store lives in
``hpo_tune.tracking``, its in-memory twin in ``memory``, and what both index of a study in ``index``."""
