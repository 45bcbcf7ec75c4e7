"""OmegaConf resolvers the configs use for paths and data-dependent search spaces.

Registered on import (``hpo_tune.tune`` imports this module), e.g. the seed-000 conditions
``0.5a, a, 1.5a`` as ``${scaled:0.5,${dataset.n_features}}`` and ``b-5`` kept >= 1 as
``${at_least:1,${add:${b},-5}}``.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

PACKAGE = Path(__file__).resolve().parent  # the library, src/hpo_tune in a checkout
IMPORT_ROOT = PACKAGE.parent  # the folder to put on PYTHONPATH for a process that imports hpo_tune
PROJECT_ROOT = IMPORT_ROOT.parent  # the checkout: conf/, data/ and the default store

RESOLVERS = {
    "project_root": lambda: str(PROJECT_ROOT),  # store, data and cache independent of the cwd
    "scaled": lambda factor, value: max(1, int(round(float(factor) * float(value)))),  # a positive integer
    "add": lambda a, b: a + b,
    "at_least": lambda low, value: max(low, value),
    "len": lambda items: len(items),
}

for _name, _resolver in RESOLVERS.items():
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _resolver)
