"""A short training loop: SGD/Adam over in-memory tensors, evaluate and report every epoch.

Classification trains on cross-entropy and reports accuracy, loss, macro sensitivity,
specificity and MCC; regression (``Splits.num_classes is None``) trains on the mean squared error
of the scaled target and reports its RMSE, also in original units. The test split, when the data
has one, is evaluated once after the last epoch. ``precision``, ``channels_last`` and ``compile``
are the GPU fast path (``hpo_tune.training.accel``); on the CPU they change nothing by default.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from hpo_tune.data.splits import Splits
from hpo_tune.errors import ConfigError
from hpo_tune.training.accel import autocast, batch_format, prepare
from hpo_tune.training.metrics import classification_metrics
from hpo_tune.trial import Checkpoint

Report = Callable[..., None]  # (epoch, metrics, checkpoint=...), as ``TrialContext.report``
Forward = Callable[[torch.Tensor], torch.Tensor]


def make_optimizer(name: str, params: Iterable[nn.Parameter], lr: float, momentum: float,
                   weight_decay: float) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    raise ConfigError("trainer.optimizer", f"unknown optimizer {name!r}; use 'sgd' or 'adam'")


def loss_function(data: Splits) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return F.cross_entropy if data.num_classes is not None else F.mse_loss


def fit(model: nn.Module, data: Splits, *, epochs: int, batch_size: int, lr: float, optimizer: str = "sgd",
        momentum: float = 0.0, weight_decay: float = 0.0, device: str = "cpu", seed: int = 0,
        report: Report | None = None, first_epoch: int = 1, precision: str = "auto", channels_last: bool = True,
        compile: bool = False, resume: Checkpoint | None = None) -> dict[str, float]:
    """Train for ``epochs`` and return the last epoch's metrics (and the test split's); a non-finite loss raises.

    Epochs are numbered from ``first_epoch`` (a model that continues earlier training reports its
    place in the whole run). With ``epochs=0`` the untrained model is evaluated (reported as epoch 0).
    Every report offers a checkpoint (the model, the optimiser and both random generators, taken only
    if a promote-mode pruner pauses the trial there); ``resume`` goes on from one, after its epoch, so a
    paused and promoted training ends where an unpaused one would.
    """
    forward, nhwc = prepare(model, device, channels_last, compile)
    cast = autocast(device, precision)
    torch.manual_seed(seed)  # dropout draws from the global generator: seed it, so a replayed epoch repeats exactly
    opt = make_optimizer(optimizer, model.parameters(), lr, momentum, weight_decay)
    shuffle = torch.Generator().manual_seed(seed)
    last = first_epoch + epochs - 1
    if resume is not None:
        model.load_state_dict(resume.state["model"])
        opt.load_state_dict(resume.state["optimizer"])
        shuffle.set_state(resume.state["shuffle"])
        torch.set_rng_state(resume.state["rng"])
        first_epoch = resume.epoch + 1

    def checkpoint() -> dict[str, object]:
        return {"model": model.state_dict(), "optimizer": opt.state_dict(), "shuffle": shuffle.get_state(),
                "rng": torch.get_rng_state()}

    def scores(split: str) -> dict[str, float]:
        with cast:
            return evaluate(model, data, split, device, forward, nhwc)

    metrics = scores("val") if epochs == 0 else {}
    for epoch in range(first_epoch, last + 1):
        with cast:
            train_loss = train_epoch(model, opt, data, batch_size, shuffle, device, epoch, forward, nhwc)
        metrics = {"train_loss": train_loss, **scores("val")}
        if report is not None and epoch < last:
            report(epoch, metrics, checkpoint=checkpoint)
    if data.x_test is not None:
        metrics |= scores("test")
    if report is not None:
        report(last, metrics)
    return metrics


def train_epoch(model: nn.Module, opt: torch.optim.Optimizer, data: Splits, batch_size: int,
                shuffle: torch.Generator, device: str, epoch: int, forward: Forward | None = None,
                nhwc: bool = False) -> float:
    """One pass over the training split in a seeded random order; returns the mean training loss.

    ``forward`` is the module to call (``model`` itself, or its compiled version).
    """
    model.train()
    forward = forward or model
    criterion = loss_function(data)
    x, y = data.x_train, data.y_train
    losses = []
    for idx in torch.randperm(len(y), generator=shuffle).split(batch_size):
        idx = idx.to(x.device)
        loss = criterion(forward(batch_format(x[idx].to(device, non_blocking=True), nhwc)).float(),
                         y[idx].to(device, non_blocking=True))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.detach() * len(idx))
    total = torch.stack(losses).sum().item()  # one device sync per epoch, not one per batch
    if not math.isfinite(total):
        raise FloatingPointError(f"training loss became {total} in epoch {epoch}")
    return total / len(y)


@torch.inference_mode()
def predict(model: nn.Module, x: torch.Tensor, device: str, batch_size: int = 1024, forward: Forward | None = None,
            nhwc: bool = False) -> torch.Tensor:
    """The model's outputs for ``x`` (logits or regression values), in float32 on the CPU."""
    model.eval()
    forward = forward or model
    return torch.cat([forward(batch_format(xb.to(device), nhwc)).float().cpu() for xb in x.split(batch_size)])


def evaluate(model: nn.Module, data: Splits, split: str, device: str, forward: Forward | None = None,
             nhwc: bool = False) -> dict[str, float]:
    """Metrics on ``split`` ("val" or "test"), each named ``<split>_<metric>``."""
    y = getattr(data, f"y_{split}").cpu()
    outputs = predict(model, getattr(data, f"x_{split}"), device, forward=forward, nhwc=nhwc)
    loss = loss_function(data)(outputs, y).item()
    if data.num_classes is None:
        rmse = loss**0.5
        scores = {"loss": loss, "rmse": rmse, "rmse_original": rmse * data.target_scale}
    else:
        scores = {"loss": loss, **classification_metrics(y.numpy(), outputs.argmax(dim=1).numpy(), data.num_classes)}
    return {f"{split}_{name}": value for name, value in scores.items()}
