"""In-memory train/validation(/test) tensors: small enough to index directly, no DataLoader needed."""

from __future__ import annotations

from dataclasses import dataclass

import torch


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
