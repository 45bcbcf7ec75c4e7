"""OmegaConf resolvers the configs use for paths and data-dependent search spaces.

Registered on import (``src.tune`` imports this module), e.g. the seed-000 conditions
``0.5a, a, 1.5a`` as ``${scaled:0.5,${dataset.n_features}}`` and ``b-5`` kept >= 1 as
``${at_least:1,${add:${b},-5}}``.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

PROJECT_ROOT = Path(__file__).resolve().parent.parent

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
