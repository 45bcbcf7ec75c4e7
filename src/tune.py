"""``python -m src.tune ...``: the CLI (``hpo_tune.tune``) run from this checkout, with its ``conf/``."""

from hpo_tune.tune import main

if __name__ == "__main__":
    main()
