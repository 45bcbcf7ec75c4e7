"""In-memory train/validation(/test) tensors: small enough to index directly, no DataLoader needed."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hpo_tune.errors import ConfigError


@dataclass(frozen=True)
class Splits:
    """What a loader hands to training.

    Classification: ``y`` holds class indices (long) and ``num_classes`` is set. Regression: ``y``
    holds scaled float targets of shape (n, 1), ``num_classes`` is None, and ``target_scale``
    turns an RMSE on the scaled target back into the original units.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    num_classes: int | None
    x_test: torch.Tensor | None = None
    y_test: torch.Tensor | None = None
    target_scale: float = 1.0

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def num_outputs(self) -> int:
        """Units of the model's last layer: one per class, or one per regression target."""
        return self.num_classes if self.num_classes is not None else int(self.y_train.shape[-1])


@dataclass(frozen=True)
class Holdout:
    """Which images go where: indices into a dataset's official training and test images."""

    train: torch.Tensor  # into the training images
    val: torch.Tensor  # into the training images, or into the test images when ``val_from_test``
    test: torch.Tensor  # into the test images (empty: no test split)
    val_from_test: bool


VAL_SOURCES = ("train", "test")


def holdout(n_train: int, n_test: int, seed: int, subset: int | None, val_size: int, val_source: str = "train",
            test_size: int | None = 0) -> Holdout:
    """Seeded, nested splits of an image dataset with official train and test parts.

    ``val_source="train"``: a fixed permutation of the training images gives ``val_size`` for
    validation, then ``subset`` for training (all the rest when None), so a larger subset only adds
    examples; the test split is ``test_size`` test images (None: all of them, 0: none).
    ``val_source="test"``: validation is ``val_size`` test images (the papers' "validate on the test
    set"), training is ``subset`` of all the training images, and there is no separate test split.
    """
    if subset is not None and subset < 1:
        raise ConfigError("dataset.subset", f"must be >= 1 or null, got {subset}")
    if val_size < 1:
        raise ConfigError("dataset.val_size", f"must be >= 1, got {val_size}")
    if val_source not in VAL_SOURCES:
        raise ConfigError("dataset.val_source", f"must be one of {list(VAL_SOURCES)}, got {val_source!r}")
    if test_size is not None and not 0 <= test_size <= n_test:
        raise ConfigError("dataset.test_size", f"must be in [0, {n_test}] or null, got {test_size}")
    generator = torch.Generator().manual_seed(seed)
    if val_source == "train":
        if val_size + (subset or 1) > n_train:
            raise ConfigError("dataset.subset", f"subset + val_size must not exceed {n_train} training images")
        order = torch.randperm(n_train, generator=generator)
        test = torch.arange(n_test) if test_size is None else torch.randperm(n_test, generator=generator)[:test_size]
        return Holdout(order[val_size:][:subset], order[:val_size], test, val_from_test=False)
    if val_size > n_test:
        raise ConfigError("dataset.val_size", f"must not exceed the {n_test} test images with val_source=test")
    if subset is not None and subset > n_train:
        raise ConfigError("dataset.subset", f"must not exceed the {n_train} training images")
    train = torch.randperm(n_train, generator=generator)[:subset]
    val = torch.randperm(n_test, generator=generator)[:val_size]
    return Holdout(train, val, torch.empty(0, dtype=torch.long), val_from_test=True)
