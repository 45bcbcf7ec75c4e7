"""CIFAR-10 and Dogs vs Cats, read straight from the DVC-tracked tar.gz archives of JPEGs.

Both archives hold one JPEG per image as ``.../<split>/<class>/<file>.jpg`` (see each
``data/*/SOURCE.md``). The class index is the position of the class folder in sorted order: for
CIFAR-10 that is airplane, automobile, bird, cat, deer, dog, frog, horse, ship, truck, which is
CIFAR-10's own label order (its ``batches.meta``, hence torchvision's); for Dogs vs Cats it is
cats = 0, dogs = 1.

Decoding is done once: the images go to the ``cache`` folder as uint8 NCHW ``.npy`` files (one per
array, each split in member-name order, with the labels and class names beside them) that later
loads memory-map, so later trials and later processes never decode a JPEG again. A cache entry is
a folder named after the archive's name, size and modification time (and, for Dogs vs Cats, the
image size), so a changed archive (a new ``dvc pull``) is decoded again; it is written under a
temporary name and renamed into place, so a crashed, failed or concurrent decode never leaves half
an entry. Entries of older archives are left where they are.

A cut or corrupt archive (gzip's length and CRC-32 checks catch a change to what it holds), or a
JPEG in it that Pillow cannot decode, is reported in one line that names the archive.
"""

from __future__ import annotations

import gzip
import io
import struct
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.datasets import CIFAR10

from hpo_tune.data.files import damaged, partial, reading
from hpo_tune.data.splits import Splits, holdout
from hpo_tune.errors import ConfigError, DataMissingError

CIFAR10_ARCHIVE = "cifar10_jpeg.tar.gz"
DOGS_VS_CATS_ARCHIVE = "dogs_vs_cats_4000.tar.gz"
CACHE_VERSION = 1  # part of every cache key: bump it when decoding changes, so old entries are not reused

Arrays = dict[str, np.ndarray]

# What Pillow raises for a cut or corrupt JPEG: OSError ("image file is truncated"; UnidentifiedImageError is one)
# from Image.open, ValueError ("not enough image data") from Image.frombytes.
JPEG_ERRORS = (OSError, ValueError)


def load_cifar10(root: Path, cache: Path, seed: int, subset: int | None = None, val_size: int = 1000,
                 val_source: str = "train", test_size: int | None = 0, download: bool = False) -> Splits:
    """CIFAR-10 images as float32 NCHW, normalised per channel with the training images' mean and std.

    Splits as ``hpo_tune.data.splits.holdout`` draws them from the 50,000 training and 10,000 test
    images (``val_source="test"`` validates on test images, as Keras' ``validation_data=(x_test,
    y_test)`` does; ``test_size`` test images form a test split, none by default since every
    trial evaluates it).

    The mean and std are those of all 50,000 training images (as the published CIFAR-10 constants
    and ``mnist.py``'s are), so they do not change with ``subset`` or ``seed``; they are computed on
    the decoded JPEGs, whose pixels differ slightly from the original batches (see SOURCE.md).

    ``download=True`` loads torchvision's ``CIFAR10`` (the original pickled batches, downloaded
    into ``cache``) instead of the archive.
    """
    holdout(50_000, 10_000, seed, subset, val_size, val_source, test_size)  # check the options before decoding
    if download:
        arrays = _torchvision_cifar10(cache)
    else:
        archive = _archive(root / CIFAR10_ARCHIVE, "CIFAR-10",
                           "or pass dataset.download=true to download it from the internet")
        arrays = _cached(cache, _cache_key(archive), lambda: _with_stats(_decode_cifar10(archive)))
    mean, std = (torch.from_numpy(np.array(arrays[name], dtype=np.float32)).view(-1, 1, 1) for name in ("mean", "std"))

    def images(split: str, rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        x = _rows(arrays[f"{split}_x"], rows)
        return x.float().sub_(mean).div_(std), _rows(arrays[f"{split}_y"], rows)

    split = holdout(len(arrays["train_y"]), len(arrays["test_y"]), seed, subset, val_size, val_source, test_size)
    x_test, y_test = images("test", split.test) if len(split.test) else (None, None)
    return Splits(*images("train", split.train), *images("test" if split.val_from_test else "train", split.val),
                  num_classes=len(arrays["classes"]), x_test=x_test, y_test=y_test)


def load_dogs_vs_cats(root: Path, cache: Path, seed: int, image_size: int = 64, val_fraction: float = 0.2,
                      subset: int | None = None) -> Splits:
    """Dogs vs Cats images as float32 NCHW in [0, 1]: cats = 0, dogs = 1.

    Each image is resized to ``image_size`` x ``image_size`` RGB without keeping its aspect ratio
    (a plain resize to a square, as Keras' ``flow_from_directory(target_size=...)`` does): the
    JPEG is first decoded at the largest DCT reduction (1/2, 1/4, 1/8) that stays at least
    ``image_size`` on both sides (Pillow's draft mode, three times faster at 64 px), then resized
    with Pillow's antialiased bilinear filter (Keras defaults to nearest, which aliases). The
    pixels are scaled by 1/255, Keras' usual ``rescale=1/255``: the paper says only that its input
    was 256 x 256 (its scale; the default 64 keeps the smoke scale fast) and names no rescaling.

    Validation is ``val_fraction`` of ``training_set`` and training is the rest, or ``subset`` of
    it; both are stratified by a seeded order (see ``_stratified_order``) in which a larger subset
    only adds examples. The test split is ``test_set``.
    """
    if image_size < 8:
        raise ConfigError("dataset.image_size", f"must be >= 8, got {image_size}")
    if not 0 < val_fraction < 1:
        raise ConfigError("dataset.val_fraction", f"must be strictly between 0 and 1, got {val_fraction}")
    if subset is not None and subset < 1:
        raise ConfigError("dataset.subset", f"must be >= 1 or null, got {subset}")
    archive = _archive(root / DOGS_VS_CATS_ARCHIVE, "Dogs vs Cats",
                       "(there is no download path: Kaggle's copy needs a login)")
    arrays = _cached(cache, f"{_cache_key(archive)}-{image_size}px", lambda: _decode_dogs_vs_cats(archive, image_size))
    y = np.array(arrays["train_y"])
    order = _stratified_order(y, seed)
    n_val = round(val_fraction * len(y))
    if not 1 <= n_val < len(y):
        raise ConfigError("dataset.val_fraction", f"{val_fraction} of {len(y)} images leaves an empty split")
    if subset is not None and subset > len(y) - n_val:
        raise ConfigError("dataset.subset", f"must not exceed the {len(y) - n_val} training images left after "
                                            "validation")
    val, train = order[:n_val], order[n_val:]
    if subset is not None:
        train = train[:subset]

    def images(split: str, rows: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return _rows(arrays[f"{split}_x"], rows).float().div_(255), _rows(arrays[f"{split}_y"], rows)

    x_test, y_test = images("test")
    return Splits(*images("train", train), *images("train", val), num_classes=len(arrays["classes"]), x_test=x_test,
                  y_test=y_test)


def _rows(array: np.ndarray, rows: torch.Tensor | np.ndarray | None) -> torch.Tensor:
    """A tensor copy of ``array`` (memory-mapped, read-only) or of its ``rows``, in their order."""
    return torch.from_numpy(np.array(array) if rows is None else array[np.asarray(rows)])


def _stratified_order(y: np.ndarray, seed: int) -> np.ndarray:
    """A seeded order of ``range(len(y))`` in which every prefix holds each class in proportion.

    Each example's key is its position in a shuffled list of its class, as a fraction of the class
    size; sorting by it interleaves the classes evenly, so validation (a prefix) and training
    (the next ``subset``) are both stratified to within about one example per class, and unlike two
    ``train_test_split`` calls a larger subset only adds examples.
    """
    rng = np.random.default_rng(seed)
    key = np.empty(len(y))
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        key[rng.permutation(members)] = (np.arange(len(members)) + 0.5) / len(members)
    return np.argsort(key, kind="stable")


def _archive(path: Path, name: str, alternative: str) -> Path:
    if not path.is_file():
        raise DataMissingError(f"{name} is missing from {path.parent} ({path.name}): run `dvc pull` to fetch it from "
                               f"the project's DVC remote, {alternative}")
    return path


def _cache_key(archive: Path) -> str:
    """Names the archive's contents cheaply (size and mtime, as make and DVC's own stat cache do)."""
    stat = archive.stat()
    return f"{archive.name.removesuffix('.tar.gz')}-{stat.st_size}-{stat.st_mtime_ns}-v{CACHE_VERSION}"


def _cached(cache: Path, key: str, build: Callable[[], Arrays]) -> Arrays:
    """The arrays ``build`` returns, saved once under ``cache/key`` and memory-mapped from there."""
    entry = cache / key
    if not entry.is_dir():
        with partial(entry) as folder:
            folder.mkdir(parents=True)
            for name, array in build().items():
                np.save(folder / f"{name}.npy", array)
    return {path.stem: np.load(path, mmap_mode="r") for path in entry.glob("*.npy")}


def _read_jpegs(archive: Path, folders: dict[str, str]) -> dict[str, list[tuple[str, str, bytes]]]:
    """``split -> [(member name, class folder, JPEG bytes)]``, by name, of each ``.../<folder>/<class>/<file>.jpg``.

    ``folders`` maps the archive's split folders to split names (``train``, ``test``). The archive
    is decompressed into memory first (90 MB for CIFAR-10, 180 MB for Dogs vs Cats) and each
    member's bytes are sliced out of it: 1.6 s for CIFAR-10's 60,000 members, against 2.5 s for
    ``extractfile`` on the gzip stream.
    """
    with open(archive, "rb") as file:
        compressed = file.read()
    found: dict[str, list[tuple[str, str, bytes]]] = {split: [] for split in folders.values()}
    with reading(archive):
        raw = gzip.decompress(compressed)
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:  # decompressed already
            for member in tar:
                parts = member.name.split("/")
                if (member.type in (tarfile.REGTYPE, tarfile.AREGTYPE) and len(parts) >= 3 and parts[-3] in folders
                        and parts[-1].lower().endswith((".jpg", ".jpeg"))):
                    # a plain (not sparse) member's bytes lie at offset_data in the uncompressed archive
                    data = raw[member.offset_data:member.offset_data + member.size]
                    found[folders[parts[-3]]].append((member.name, parts[-2], data))
    classes = [sorted({label for _, label, _ in items}) for items in found.values()]
    if not all(classes) or any(names != classes[0] for names in classes):
        raise damaged(archive, f"it does not hold {'|'.join(folders)}/<class>/*.jpg images of the same classes in "
                               "each split")
    return {split: sorted(items) for split, items in found.items()}


def _labelled(items: dict[str, list[tuple[str, str, bytes]]],
              decode: Callable[[list[tuple[str, bytes]]], np.ndarray]) -> Arrays:
    """Each split's images (``decode`` of its ``(name, bytes)``) and class indices (sorted class-folder order)."""
    classes = sorted({label for _, label, _ in items["train"]})
    index = {label: i for i, label in enumerate(classes)}
    arrays: Arrays = {"classes": np.array(classes)}
    for split, members in items.items():
        arrays[f"{split}_x"] = decode([(name, data) for name, _, data in members])
        arrays[f"{split}_y"] = np.array([index[label] for _, label, _ in members], dtype=np.int64)
    return arrays


def _decode_cifar10(archive: Path) -> Arrays:
    """Every image as uint8 NCHW; all must have the first one's size.

    Pillow decodes each JPEG straight from its bytes at that size (``Image.frombytes`` with its
    ``jpeg`` decoder) rather than through ``Image.open``, whose header parsing in Python makes it
    almost three times slower on 32 x 32 images; the pixels are the same (all 60,000 checked). The
    decoder does not notice every image of another size (a narrower one fills the rows silently), so
    each image's size is read from its frame header first.
    """
    def decode(members: list[tuple[str, bytes]]) -> np.ndarray:
        (first_name, first_data), pixels = members[0], []
        with reading(archive, JPEG_ERRORS, first_name), Image.open(io.BytesIO(first_data), formats=["JPEG"]) as first:
            size = first.size
        for name, data in members:
            if _jpeg_size(data) != size:
                raise damaged(archive, f"{name} is not a {size[0]}x{size[1]} JPEG like {first_name}")
            with reading(archive, JPEG_ERRORS, name):
                pixels.append(Image.frombytes("RGB", size, data, "jpeg", "RGB", "").tobytes())
        nhwc = np.frombuffer(b"".join(pixels), dtype=np.uint8).reshape(len(members), size[1], size[0], 3)
        return np.ascontiguousarray(nhwc.transpose(0, 3, 1, 2))

    return _labelled(_read_jpegs(archive, {"train": "train", "test": "test"}), decode)


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's frame header, found by walking its marker segments (ITU-T T.81, B.1)."""
    i = 2  # after the start-of-image marker
    while i + 9 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start-of-frame marker
            height, width = struct.unpack_from(">HH", data, i + 5)
            return width, height
        i += 1 if marker == 0xFF else 2 + struct.unpack_from(">H", data, i + 2)[0]  # a fill byte, or a segment
    return None


def _decode_dogs_vs_cats(archive: Path, size: int) -> Arrays:
    """Every image as ``size`` x ``size`` uint8 NCHW (see ``load_dogs_vs_cats`` for how it is resized)."""
    def decode(members: list[tuple[str, bytes]]) -> np.ndarray:
        out = np.empty((len(members), 3, size, size), dtype=np.uint8)
        for i, (name, data) in enumerate(members):
            with reading(archive, JPEG_ERRORS, name), Image.open(io.BytesIO(data), formats=["JPEG"]) as image:
                image.draft("RGB", (size, size))
                square = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
            out[i] = np.asarray(square).transpose(2, 0, 1)
        return out

    return _labelled(_read_jpegs(archive, {"training_set": "train", "test_set": "test"}), decode)


def _torchvision_cifar10(cache: Path) -> Arrays:
    """torchvision's CIFAR-10 (downloaded into ``cache``) in the archive's layout."""
    arrays: Arrays = {}
    for split in ("train", "test"):
        dataset = CIFAR10(str(cache), train=split == "train", download=True)
        arrays[f"{split}_x"] = np.ascontiguousarray(dataset.data.transpose(0, 3, 1, 2))
        arrays[f"{split}_y"] = np.array(dataset.targets, dtype=np.int64)
    arrays["classes"] = np.array(dataset.classes)
    return _with_stats(arrays)


def _with_stats(arrays: Arrays) -> Arrays:
    """Adds the per-channel mean and (population) std of the training images, in pixel values (0-255).

    Counted from a histogram of each channel's 256 values: exact, with no float copy of the 150 MB of pixels.
    """
    pixels = torch.from_numpy(arrays["train_x"])
    counts = torch.stack([torch.bincount(pixels[:, c].flatten(), minlength=256) for c in range(3)]).double().numpy()
    values = np.arange(256.0)
    mean = counts @ values / counts.sum(1)
    std = np.sqrt(counts @ values**2 / counts.sum(1) - mean**2)
    return {**arrays, "mean": mean, "std": std}
