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

from src.data.splits import Splits, holdout
from src.errors import DataMissingError

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
MEAN, STD = 0.1307, 0.3081


def load_mnist(root: Path, cache: Path, seed: int, subset: int | None = None, val_size: int = 1000,
               val_source: str = "train", test_size: int | None = 0, download: bool = False) -> Splits:
    """MNIST's 60,000 training and 10,000 test images, split as ``src.data.splits.holdout`` draws them.

    By default validation and training both come from the training images (validation first,
    then ``subset``, so a larger subset only adds examples); ``val_source=test`` validates on test
    images instead, the paper's "full 60,000/10,000" setting.
    """
    split = holdout(60_000, 10_000, seed, subset, val_size, val_source, test_size)  # options checked before I/O
    if not download:
        _decompress(root, cache / "MNIST" / "raw")

    def images(train: bool, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        part = MNIST(str(cache), train=train, download=download)
        x = part.data[rows].unsqueeze(1).float().div_(255).sub_(MEAN).div_(STD)
        return x, part.targets[rows]

    x_test, y_test = images(False, split.test) if len(split.test) else (None, None)
    return Splits(*images(True, split.train), *images(not split.val_from_test, split.val), num_classes=10,
                  x_test=x_test, y_test=y_test)


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
