"""``python -m src.importance --study NAME ...``: a study's parameter importance (``hpo_tune.importance_report``)."""

from hpo_tune.importance_report import main

if __name__ == "__main__":
    main()
