"""Datasets by name. Each loader reads ``data/`` (DVC's) and keeps derived files in the cache."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from hpo_tune.data.images import load_cifar10, load_dogs_vs_cats
from hpo_tune.data.mnist import load_mnist
from hpo_tune.data.splits import Splits
from hpo_tune.data.timeseries import load_bdi, load_gold
from hpo_tune.errors import ConfigError

LOADERS: dict[str, Callable[..., Splits]] = {
    "mnist": load_mnist, "gold": load_gold, "bdi": load_bdi, "cifar10": load_cifar10, "dogs_vs_cats": load_dogs_vs_cats,
}


def load_dataset(name: str, root: Path, cache: Path, seed: int, **options: Any) -> Splits:
    """Load dataset ``name`` from ``root`` (a folder under ``data/``), derived files under ``cache``."""
    if name not in LOADERS:
        raise ConfigError("dataset.name", f"unknown dataset {name!r}; use one of {sorted(LOADERS)}")
    return LOADERS[name](root=Path(root), cache=Path(cache), seed=seed, **options)


__all__ = ["LOADERS", "Splits", "load_dataset"]
