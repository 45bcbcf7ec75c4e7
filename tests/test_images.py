"""The image loaders on small tar.gz archives built here in the real layout (a few JPEGs per class).

They exercise the real code path (tar reading, decoding, caching, splitting) in well under a
second; the expected pixels come from decoding the same JPEGs with Pillow.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hpo_tune.data.images import load_cifar10, load_dogs_vs_cats
from hpo_tune.errors import ConfigError, DataMissingError

# written in unsorted order, each in its own colour, so a label can be checked against the pixels
CIFAR_COLOURS = {"truck": (40, 40, 210), "airplane": (210, 40, 40), "cat": (40, 210, 40)}
PET_COLOURS = {"dogs": (40, 40, 210), "cats": (210, 40, 40)}


def jpeg(colour: tuple[int, int, int], size: tuple[int, int], rng: np.random.Generator, **options: object) -> bytes:
    """A JPEG of ``colour`` with noise, so no two images are alike; ``options`` go to Pillow's JPEG writer."""
    pixels = np.clip(np.array(colour) + rng.integers(-25, 26, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=95, **options)
    return out.getvalue()


def exif() -> bytes:
    tags = Image.Exif()
    tags[0x010E] = "an image description, so the frame header comes after an APP1 segment"
    return tags.tobytes()


# JPEG variants the CIFAR-10 decoder must read like Pillow's Image.open does
VARIANTS: list[dict[str, object]] = [{}, {"progressive": True}, {"exif": exif()}, {"subsampling": 0}]


def write_tar(path: Path, members: dict[str, bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def cifar_archive(root: Path, n_train: int = 8, n_test: int = 3, seed: int = 0) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    members = {f"{split}/{label}/{i:04d}.jpg": jpeg(colour, (32, 32), rng, **VARIANTS[i % len(VARIANTS)])
               for split, n in (("train", n_train), ("test", n_test))
               for label, colour in CIFAR_COLOURS.items() for i in range(n)}
    write_tar(root / "cifar10_jpeg.tar.gz", {"train/README.txt": b"not an image", **members})
    return members


def pets_archive(root: Path, counts: dict[str, int], n_test: int = 2) -> dict[str, bytes]:
    """Dogs vs Cats' layout, with ``counts`` training images per class, each of its own (non-square) size."""
    rng = np.random.default_rng(0)
    members = {f"dogs_vs_cats/{split}/{label}/{label[:-1]}.{i}.jpg": jpeg(PET_COLOURS[label], (40 + i, 30 + 2 * i), rng)
               for split, per_class in (("training_set", counts), ("test_set", dict.fromkeys(counts, n_test)))
               for label, n in per_class.items() for i in range(n)}
    write_tar(root / "dogs_vs_cats_4000.tar.gz", members)
    return members


def rows(x: torch.Tensor) -> list[bytes]:
    return [row.numpy().tobytes() for row in x.flatten(1)]


def pillow(members: dict[str, bytes], prefix: str) -> np.ndarray:
    """The images under ``prefix`` decoded by Pillow, in member-name order, as float NCHW."""
    return np.stack([np.asarray(Image.open(io.BytesIO(members[name])), dtype=np.float64).transpose(2, 0, 1)
                     for name in sorted(members) if name.startswith(prefix)])


def test_cifar10_pixels_labels_and_normalisation(tmp_path: Path) -> None:
    members = cifar_archive(tmp_path / "data")
    data = load_cifar10(tmp_path / "data", tmp_path / "cache", seed=0, val_size=3, test_size=None)
    train = pillow(members, "train/")
    mean, std = train.mean(axis=(0, 2, 3), keepdims=True), train.std(axis=(0, 2, 3), keepdims=True)
    expected = (pillow(members, "test/") - mean) / std
    assert data.x_test.dtype == torch.float32 and data.x_test.shape == expected.shape == (9, 3, 32, 32)
    np.testing.assert_allclose(data.x_test.numpy(), expected, atol=1e-4)
    classes = sorted(CIFAR_COLOURS)  # class index = sorted class-folder order
    expected_labels = [classes.index(name.split("/")[1]) for name in sorted(members) if name.startswith("test/")]
    assert data.y_test.dtype == torch.long and data.y_test.tolist() == expected_labels
    assert data.num_classes == 3 and data.x_train.shape == (21, 3, 32, 32) and data.x_val.shape == (3, 3, 32, 32)
    everything = torch.cat([data.x_train, data.x_val])
    assert torch.allclose(everything.mean((0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(everything.std((0, 2, 3), correction=0), torch.ones(3), atol=1e-4)
    for x, y in ((data.x_train, data.y_train), (data.x_val, data.y_val)):  # each label's colour is its class's
        for label in y.unique().tolist():
            assert x[y == label].mean((0, 2, 3)).argmax() == int(np.argmax(CIFAR_COLOURS[classes[label]]))


def test_cifar10_validation_held_out_of_training_and_larger_subset_adds(tmp_path: Path) -> None:
    cifar_archive(tmp_path / "data")
    load = partial(load_cifar10, tmp_path / "data", tmp_path / "cache")
    data = load(seed=0, subset=10, val_size=4)
    assert data.x_train.shape == (10, 3, 32, 32) and data.x_val.shape == (4, 3, 32, 32)
    assert not set(rows(data.x_val)) & set(rows(data.x_train))
    larger = load(seed=0, subset=14, val_size=4)
    assert torch.equal(larger.x_train[:10], data.x_train) and torch.equal(larger.x_val, data.x_val)
    everything = load(seed=0, val_size=4)
    assert len(everything.x_train) == 20 and set(rows(data.x_train)) <= set(rows(everything.x_train))
    assert set(rows(load(seed=1, val_size=4).x_val)) != set(rows(data.x_val))
    with pytest.raises(ConfigError, match="dataset.subset"):
        load(seed=0, subset=21, val_size=4)


def test_cifar10_validation_from_the_test_set(tmp_path: Path) -> None:
    cifar_archive(tmp_path / "data")
    with_test = load_cifar10(tmp_path / "data", tmp_path / "cache", seed=0, val_size=3, test_size=None)
    test_rows = set(rows(with_test.x_test))
    data = load_cifar10(tmp_path / "data", tmp_path / "cache", seed=0, val_size=5, val_source="test")
    assert data.x_test is None and data.y_test is None
    assert len(data.x_train) == 24 and len(data.x_val) == 5 and set(rows(data.x_val)) <= test_rows
    assert len(load_cifar10(tmp_path / "data", tmp_path / "cache", seed=0, val_size=9, val_source="test").x_val) == 9
    with pytest.raises(ConfigError, match="dataset.val_size"):
        load_cifar10(tmp_path / "data", tmp_path / "cache", seed=0, val_size=10, val_source="test")


def test_dogs_vs_cats_resized_scaled_and_labelled(tmp_path: Path) -> None:
    pets_archive(tmp_path / "data", {"cats": 6, "dogs": 4})
    data = load_dogs_vs_cats(tmp_path / "data", tmp_path / "cache", seed=0, image_size=16, val_fraction=0.2)
    assert data.x_train.shape == (8, 3, 16, 16) and data.x_val.shape == (2, 3, 16, 16)
    assert data.x_test.shape == (4, 3, 16, 16) and data.num_classes == 2
    for x, y in ((data.x_train, data.y_train), (data.x_val, data.y_val), (data.x_test, data.y_test)):
        assert x.dtype == torch.float32 and y.dtype == torch.long and 0 <= x.min() and x.max() <= 1
        for label, name in enumerate(("cats", "dogs")):  # cat = 0, dog = 1; a solid colour stays that colour
            colour = torch.tensor(PET_COLOURS[name]) / 255
            assert torch.allclose(x[y == label].mean((2, 3)), colour.expand(int((y == label).sum()), 3), atol=0.03)


def test_dogs_vs_cats_split_is_stratified_disjoint_and_nested(tmp_path: Path) -> None:
    counts = {"cats": 15, "dogs": 9}
    pets_archive(tmp_path / "data", counts)
    load = partial(load_dogs_vs_cats, tmp_path / "data", tmp_path / "cache", image_size=8, val_fraction=0.25)
    everything = load(seed=0)
    assert len(everything.x_val) == 6 and len(everything.x_train) == 18
    assert not set(rows(everything.x_val)) & set(rows(everything.x_train))
    share = {label: n / sum(counts.values()) for label, n in enumerate(counts.values())}
    for seed in range(5):
        data = load(seed=seed, subset=8)
        for y in (data.y_val, data.y_train):
            for label, fraction in share.items():
                assert abs(int((y == label).sum()) - fraction * len(y)) <= 1
        larger = load(seed=seed, subset=12)
        assert torch.equal(larger.x_train[:8], data.x_train) and torch.equal(larger.x_val, data.x_val)
    with pytest.raises(ConfigError, match="dataset.subset"):
        load(seed=0, subset=19)
    with pytest.raises(ConfigError, match="dataset.val_fraction"):  # no validation image at all
        load(seed=0, val_fraction=0.01)


def test_decoded_once_then_cache_reused_per_image_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cifar_archive(tmp_path / "data")
    pets_archive(tmp_path / "data", {"cats": 3, "dogs": 3})
    cifar = load_cifar10(tmp_path / "data", tmp_path / "cache", seed=0, val_size=3)
    pets = load_dogs_vs_cats(tmp_path / "data", tmp_path / "cache", seed=0, image_size=8, val_fraction=0.5)

    def no_tar(*args: object, **kwargs: object) -> None:
        raise AssertionError("the archive was read again")

    monkeypatch.setattr(tarfile, "open", no_tar)
    assert torch.equal(load_cifar10(tmp_path / "data", tmp_path / "cache", seed=0, val_size=3).x_train, cifar.x_train)
    again = load_dogs_vs_cats(tmp_path / "data", tmp_path / "cache", seed=0, image_size=8, val_fraction=0.5)
    assert torch.equal(again.x_train, pets.x_train)
    with pytest.raises(AssertionError, match="read again"):  # another size is decoded from the archive
        load_dogs_vs_cats(tmp_path / "data", tmp_path / "cache", seed=0, image_size=12, val_fraction=0.5)


def test_changed_archive_is_decoded_again(tmp_path: Path) -> None:
    cifar_archive(tmp_path / "data", n_train=4)
    assert len(load_cifar10(tmp_path / "data", tmp_path / "cache", seed=0, val_size=2).x_train) == 10
    cifar_archive(tmp_path / "data", n_train=6, seed=1)
    assert len(load_cifar10(tmp_path / "data", tmp_path / "cache", seed=0, val_size=2).x_train) == 16
    pets_archive(tmp_path / "data", {"cats": 3, "dogs": 3})
    assert len(load_dogs_vs_cats(tmp_path / "data", tmp_path / "cache", seed=0, image_size=8).x_train) == 5
    pets_archive(tmp_path / "data", {"cats": 4, "dogs": 6})
    assert len(load_dogs_vs_cats(tmp_path / "data", tmp_path / "cache", seed=0, image_size=8).x_train) == 8


def test_cifar10_image_of_another_size_is_named(tmp_path: Path) -> None:
    members = cifar_archive(tmp_path / "data")
    # 16 x 32: Pillow's jpeg decoder fills a 32 x 32 image from it without an error
    members["test/cat/0001.jpg"] = jpeg((0, 0, 0), (16, 32), np.random.default_rng(0))
    write_tar(tmp_path / "data" / "cifar10_jpeg.tar.gz", members)
    with pytest.raises(DataMissingError, match="test/cat/0001.jpg is not a 32x32 JPEG"):
        load_cifar10(tmp_path / "data", tmp_path / "cache", seed=0, val_size=3)
    assert not list((tmp_path / "cache").iterdir())  # nothing half-written is left behind


def test_archive_without_a_split_says_so(tmp_path: Path) -> None:
    members = cifar_archive(tmp_path / "data")
    write_tar(tmp_path / "data" / "cifar10_jpeg.tar.gz", {k: v for k, v in members.items() if k.startswith("train/")})
    with pytest.raises(DataMissingError, match="dvc pull"):
        load_cifar10(tmp_path / "data", tmp_path / "cache", seed=0, val_size=3)


@pytest.mark.parametrize("load, hint", [(load_cifar10, "dataset.download=true"), (load_dogs_vs_cats, "login")])
def test_missing_archive_says_how_to_get_it(tmp_path: Path, load: Callable, hint: str) -> None:
    with pytest.raises(DataMissingError, match="dvc pull") as error:
        load(tmp_path / "nothing", tmp_path / "cache", seed=0)
    assert hint in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("load, options, key", [
    (load_cifar10, {"subset": 0}, "dataset.subset"),
    (load_cifar10, {"val_size": 0}, "dataset.val_size"),
    (load_cifar10, {"val_source": "valid"}, "dataset.val_source"),
    (load_dogs_vs_cats, {"subset": 0}, "dataset.subset"),
    (load_dogs_vs_cats, {"val_fraction": 0.0}, "dataset.val_fraction"),
    (load_dogs_vs_cats, {"val_fraction": 1.0}, "dataset.val_fraction"),
    (load_dogs_vs_cats, {"image_size": 7}, "dataset.image_size"),
])
def test_bad_options_name_the_key(tmp_path: Path, load: Callable, options: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        load(tmp_path / "nothing", tmp_path / "cache", seed=0, **options)
