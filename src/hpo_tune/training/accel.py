"""The GPU fast path: data kept on the device, bf16 autocast, channels_last and torch.compile.

Each piece is a no-op where it does not help, so the same config trains on a laptop's CPU and on a
GPU: ``precision: auto`` autocasts to bf16 only on a CUDA device that supports it (bf16 needs no
loss scaling, unlike fp16), ``channels_last`` only touches CNNs on CUDA (where cuDNN's NHWC kernels
are faster; on the CPU it mostly costs conversions), and data moves to the GPU once per process
(``on_device``, which the training objective caches) when it fits in a fraction of the free
memory, instead of batch by batch.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable

import torch
from torch import nn

from hpo_tune.data.splits import Splits
from hpo_tune.errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16")
DATA_FRACTION = 0.5  # of the GPU's free memory a dataset may take to be kept there whole


def is_cuda(device: str) -> bool:
    return torch.device(device).type == "cuda"


def autocast(device: str, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast when asked for, or with ``auto`` on a CUDA device that has it; else nothing."""
    if precision not in PRECISIONS:
        raise ConfigError("trainer.precision", f"must be one of {PRECISIONS}, got {precision!r}")
    kind = torch.device(device).type
    wanted = precision == "bf16" or (precision == "auto" and kind == "cuda" and torch.cuda.is_bf16_supported())
    return torch.autocast(kind, dtype=torch.bfloat16) if wanted else contextlib.nullcontext()


def uses_channels_last(model: nn.Module, device: str, channels_last: bool) -> bool:
    return channels_last and is_cuda(device) and any(isinstance(m, nn.Conv2d) for m in model.modules())


def prepare(model: nn.Module, device: str, channels_last: bool,
            compile: bool) -> tuple[Callable[..., torch.Tensor], bool]:
    """Move ``model`` to ``device`` (NHWC where it helps); return what to call for a forward pass and
    whether batches must be NHWC too.

    The compiled module is returned separately so that ``model`` keeps its own state-dict keys
    (torch.compile's wrapper prefixes them), which per-epoch lineages save and reload.
    """
    model.to(device)
    if is_cuda(device):
        torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick its fastest kernels
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    nhwc = uses_channels_last(model, device, channels_last)
    if nhwc:
        model.to(memory_format=torch.channels_last)
    return (torch.compile(model) if compile else model), nhwc


def batch_format(x: torch.Tensor, nhwc: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if nhwc and x.dim() == 4 else x


def on_device(data: Splits, device: str, fraction: float = DATA_FRACTION) -> Splits:
    """``data`` with its tensors on a CUDA ``device`` when they fit in ``fraction`` of its free memory.

    Otherwise (or on the CPU) the data stays where it is and batches travel one at a time.
    """
    if not is_cuda(device):
        return data
    tensors = {f.name: getattr(data, f.name) for f in dataclasses.fields(data)
               if isinstance(getattr(data, f.name), torch.Tensor)}
    size = sum(t.numel() * t.element_size() for t in tensors.values())
    free, _ = torch.cuda.mem_get_info(torch.device(device))
    if size > fraction * free:
        return data
    return dataclasses.replace(data, **{name: t.to(device) for name, t in tensors.items()})
