"""MNIST through torchvision, read from the DVC-tracked ``data/mnist`` IDX files.

torchvision wants the decompressed IDX files under ``<root>/MNIST/raw``; ``data/`` belongs to DVC,
so they are decompressed once into the cache. ``download=True`` keeps torchvision's own download
path for users with a network and no DVC remote.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import torch
from torchvision.datasets import MNIST

from src.data.splits import Splits
from src.errors import ConfigError, DataMissingError

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
MEAN, STD = 0.1307, 0.3081


def load_mnist(root: Path, cache: Path, seed: int, subset: int | None = None, val_size: int = 1000,
               download: bool = False) -> Splits:
    """Training examples and a disjoint validation set, both drawn from MNIST's 60,000 training images.

    The draw is a fixed permutation (``seed``): validation first, then ``subset`` training examples
    (all the rest when None), so a larger subset only adds examples.
    """
    if subset is not None and subset < 1:
        raise ConfigError("dataset.subset", f"must be >= 1 or null, got {subset}")
    if val_size < 1:
        raise ConfigError("dataset.val_size", f"must be >= 1, got {val_size}")
    if not download:
        _decompress(root, cache / "MNIST" / "raw")
    images = MNIST(str(cache), train=True, download=download)
    x = images.data.unsqueeze(1).float().div_(255).sub_(MEAN).div_(STD)
    y = images.targets
    if val_size + (subset or 1) > len(y):
        raise ConfigError("dataset.subset", f"subset + val_size must not exceed {len(y)} training images")
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    val, train = order[:val_size], order[val_size:]
    if subset is not None:
        train = train[:subset]
    return Splits(x[train], y[train], x[val], y[val], num_classes=10)


def _decompress(root: Path, raw: Path) -> None:
    missing = [f"{name}.gz" for name in FILES if not (root / f"{name}.gz").is_file()]
    if missing:
        raise DataMissingError(
            f"MNIST is missing from {root} ({', '.join(missing)}): run `dvc pull` to fetch it from the project's "
            "DVC remote, or pass dataset.download=true to download it from the internet"
        )
    raw.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        target = raw / name
        if not target.is_file():
            partial = target.with_suffix(".partial")
            with gzip.open(root / f"{name}.gz", "rb") as src, open(partial, "wb") as dst:
                shutil.copyfileobj(src, dst)
            partial.replace(target)
