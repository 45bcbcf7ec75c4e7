"""MNIST through torchvision, read from the DVC-tracked ``data/mnist`` IDX files.

torchvision wants the decompressed IDX files under ``<root>/MNIST/raw``; ``data/`` belongs to DVC,
so they are decompressed once into the cache. ``download=True`` keeps torchvision's own download
path for users with a network and no DVC remote.

torchvision reads an IDX file without checking its length against its header, and fails on a cut
one with a RuntimeError that names no file; so each decompressed file is checked first: a damaged
``.gz`` is reported by name, a damaged file in the cache is decompressed again.
"""

from __future__ import annotations

import gzip
import math
import shutil
import struct
from pathlib import Path

import torch
from torchvision.datasets import MNIST

from hpo_tune.data.files import damaged, partial, reading
from hpo_tune.data.splits import Splits, holdout
from hpo_tune.errors import DataMissingError

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
MEAN, STD = 0.1307, 0.3081


def load_mnist(root: Path, cache: Path, seed: int, subset: int | None = None, val_size: int = 1000,
               val_source: str = "train", test_size: int | None = 0, download: bool = False) -> Splits:
    """MNIST's 60,000 training and 10,000 test images, split as ``hpo_tune.data.splits.holdout`` draws them.

    By default validation and training both come from the training images (validation first,
    then ``subset``, so a larger subset only adds examples); ``val_source=test`` validates on test
    images instead, the paper's "full 60,000/10,000" setting.
    """
    split = holdout(60_000, 10_000, seed, subset, val_size, val_source, test_size)  # options checked before I/O
    raw = cache / "MNIST" / "raw"
    _drop_damaged(raw)  # decompressed again below, or by torchvision from its checked download
    if not download:
        _decompress(root, raw)

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
        target, source = raw / name, root / f"{name}.gz"
        if not target.is_file():
            with reading(source), partial(target) as temporary:
                with gzip.open(source, "rb") as src, open(temporary, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                if problem := _idx_problem(temporary):
                    raise damaged(source, f"decompressed, {problem}")


def _drop_damaged(raw: Path) -> None:
    """Removes cached IDX files that are not whole, so that they are made again.

    Ours are renamed into place once complete, but torchvision's extraction (``download=True``)
    writes in place, and a crash there, or a hand edit, leaves a cut file.
    """
    for name in FILES:
        if (raw / name).is_file() and _idx_problem(raw / name):
            (raw / name).unlink(missing_ok=True)


def _idx_problem(path: Path) -> str | None:
    """What keeps ``path`` from being a whole IDX file of unsigned bytes (MNIST's), or None.

    The header is two zero bytes, the type (0x08: unsigned byte), the number of dimensions, then
    each dimension as a big-endian uint32; the data (one byte per item) follows it.
    """
    with open(path, "rb") as file:
        magic = file.read(4)
        n_dims = magic[3] if len(magic) == 4 and magic[:3] == b"\0\0\x08" else 0
        dims = file.read(4 * n_dims)
    if not 1 <= n_dims <= 3 or len(dims) < 4 * n_dims:
        return "not an IDX file of unsigned bytes"
    expected = 4 + len(dims) + math.prod(struct.unpack(f">{n_dims}I", dims))
    size = path.stat().st_size
    return None if size == expected else f"{size:,} bytes long where its IDX header says {expected:,}"
