"""Damaged data: one line naming the file and `dvc pull --force`, and nothing half-written left in the cache."""

from __future__ import annotations

import gzip
import io
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hpo_tune.data.files import shown
from hpo_tune.data.images import load_cifar10, load_dogs_vs_cats
from hpo_tune.data.mnist import FILES, load_mnist
from hpo_tune.data.timeseries import GOLD_CSV, load_gold
from hpo_tune.errors import DataDamagedError
from hpo_tune.resolvers import PROJECT_ROOT
from tests.conftest import DATA, TINY, cli

IMAGES = "train-images-idx3-ubyte.gz"  # first in FILES, so the three files after it are not decompressed


def mnist_copy(folder: Path, images: bytes | None = None) -> Path:
    """The four MNIST files copied into ``folder/mnist``, the training images replaced by ``images`` if given."""
    root = folder / "mnist"
    root.mkdir(parents=True)
    for name in FILES:
        shutil.copy(DATA / "mnist" / f"{name}.gz", root)
    if images is not None:
        (root / IMAGES).write_bytes(images)
    return root


def cut_gz() -> bytes:
    return (DATA / "mnist" / IMAGES).read_bytes()[:1 << 20]


def gz_of_cut_idx() -> bytes:
    """A whole gzip stream of a cut IDX file: gzip finds nothing wrong, torchvision would fail naming no file."""
    with gzip.open(DATA / "mnist" / IMAGES) as file:
        return gzip.compress(file.read(100_000))


def assert_damaged(error: pytest.ExceptionInfo[DataDamagedError], path: Path, cache: Path) -> None:
    """One line that names ``path`` (absolute: it is outside the project) and the fix; no partial or other file left."""
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{path} is damaged (")
    assert message.endswith("): run `dvc pull --force` to restore it")
    assert not list(cache.rglob("*.partial*")), "a partial file or folder was left in the cache"
    assert not [item for item in cache.rglob("*") if item.is_file()], "the failed decode left files in the cache"


@pytest.mark.usefixtures("mnist_available")
@pytest.mark.parametrize("images, problem", [(cut_gz, "EOFError: Compressed file ended"),
                                             (gz_of_cut_idx, "bytes long where its IDX header says 47,040,016")])
def test_damaged_mnist_archive_is_named(tmp_path: Path, images: Callable[[], bytes], problem: str) -> None:
    root = mnist_copy(tmp_path / "data", images())
    with pytest.raises(DataDamagedError, match=problem) as error:
        load_mnist(root, tmp_path / "cache", seed=0, subset=10, val_size=10)
    assert_damaged(error, root / IMAGES, tmp_path / "cache")


@pytest.mark.usefixtures("mnist_available")
def test_cut_idx_file_in_the_cache_is_decompressed_again(tmp_path: Path) -> None:
    first = load_mnist(DATA / "mnist", tmp_path, seed=0, subset=10, val_size=10)
    labels = tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:5000])  # torchvision alone: RuntimeError, shape invalid for input
    again = load_mnist(DATA / "mnist", tmp_path, seed=0, subset=10, val_size=10)
    assert again.y_train.tolist() == first.y_train.tolist() and labels.stat().st_size == 60_008


@pytest.mark.parametrize("load, archive", [(load_cifar10, DATA / "cifar10" / "cifar10_jpeg.tar.gz"),
                                           (load_dogs_vs_cats, DATA / "dogs_vs_cats" / "dogs_vs_cats_4000.tar.gz")])
def test_cut_image_archive_is_named(tmp_path: Path, load: Callable, archive: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    with open(archive, "rb") as file:
        (root / archive.name).write_bytes(file.read(1 << 20))
    with pytest.raises(DataDamagedError, match="EOFError") as error:
        load(root, tmp_path / "cache", seed=0)
    assert_damaged(error, root / archive.name, tmp_path / "cache")


def test_cut_jpeg_in_an_archive_is_named(tmp_path: Path) -> None:
    """An archive built with a cut JPEG: gzip is whole, so only the decoder notices."""
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    image = io.BytesIO()
    Image.fromarray(pixels).save(image, format="JPEG")
    archive = tmp_path / "data" / "cifar10_jpeg.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in {"train/cat/0.jpg": image.getvalue(), "train/cat/1.jpg": image.getvalue()[:300],
                           "test/cat/0.jpg": image.getvalue()}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(DataDamagedError, match="train/cat/1.jpg: ValueError: not enough image data") as error:
        load_cifar10(archive.parent, tmp_path / "cache", seed=0, val_size=1)
    assert_damaged(error, archive, tmp_path / "cache")


@pytest.mark.parametrize("damage", [lambda text: text[:text.rindex("\n", 0, 40_000) + 1],  # cut at a line end
                                    lambda text: text.replace("1313.2", "1313.3", 1)])  # one digit changed
def test_damaged_time_series_is_named(tmp_path: Path, damage: Callable[[str], str]) -> None:
    root = tmp_path / "gold"
    root.mkdir()
    (root / GOLD_CSV).write_text(damage((DATA / "gold" / GOLD_CSV).read_text()))
    with pytest.raises(DataDamagedError, match="sha256") as error:
        load_gold(root, tmp_path / "cache", seed=0, time_steps=5)
    assert_damaged(error, root / GOLD_CSV, tmp_path / "cache")


def test_file_in_the_project_is_named_by_its_relative_path() -> None:
    assert shown(PROJECT_ROOT / "data" / "mnist" / IMAGES) == f"data/mnist/{IMAGES}"
    assert shown(Path("/elsewhere/mnist") / IMAGES) == f"/elsewhere/mnist/{IMAGES}"


@pytest.mark.usefixtures("mnist_available")
def test_cli_reports_a_damaged_file_in_one_line(tmp_path: Path) -> None:
    mnist_copy(tmp_path / "data", cut_gz())
    done = cli(*TINY, f"paths.data={tmp_path / 'data'}", f"paths.cache={tmp_path / 'cache'}",
               f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}")
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines() == [f"error: {tmp_path / 'data' / 'mnist' / IMAGES} is damaged (EOFError: "
                                        "Compressed file ended before the end-of-stream marker was reached): run "
                                        "`dvc pull --force` to restore it"]
    assert not list((tmp_path / "cache").rglob("*.partial*"))
