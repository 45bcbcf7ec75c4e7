"""Training throughput (samples/s) of the MNIST and CIFAR-10 CNNs on whatever device is present.

Random tensors of the datasets' shapes stand in for the data (throughput does not depend on the
pixel values), so the bench needs no ``dvc pull``. The first epoch warms up (cuDNN autotuning,
torch.compile); the second is timed.
"""

from __future__ import annotations

import time

import torch
from omegaconf import OmegaConf

from hpo_tune.data.splits import Splits
from hpo_tune.execution import resolve_device
from hpo_tune.models import build_model
from hpo_tune.resolvers import PROJECT_ROOT
from hpo_tune.training.accel import autocast, is_cuda, on_device, prepare
from hpo_tune.training.loop import make_optimizer, train_epoch

MODELS = {  # model config, input shape, batch size (the papers')
    "MNIST cnn_mnist (default)": ("cnn_mnist", (1, 28, 28), 64),
    "MNIST cnn_seed001 (Table 2)": ("cnn_seed001", (1, 28, 28), 50),
    "CIFAR-10 cnn_cifar10 (Keras)": ("cnn_cifar10", (3, 32, 32), 32),
}


def samples_per_second(model_name: str, shape: tuple[int, ...], batch: int, device: str, n: int,
                       precision: str, channels_last: bool, compile: bool) -> float:
    config = OmegaConf.to_container(OmegaConf.load(PROJECT_ROOT / "conf" / "model" / f"{model_name}.yaml"))
    model = build_model(config, shape, 10)
    forward, nhwc = prepare(model, device, channels_last, compile)
    data = on_device(Splits(torch.randn(n, *shape), torch.randint(0, 10, (n,)), torch.randn(8, *shape),
                            torch.randint(0, 10, (8,)), num_classes=10), device)
    opt = make_optimizer("sgd", model.parameters(), 0.01, 0.9, 0.0)
    shuffle = torch.Generator().manual_seed(0)
    with autocast(device, precision):
        train_epoch(model, opt, data, batch, shuffle, device, 1, forward, nhwc)
        if is_cuda(device):
            torch.cuda.synchronize()
        start = time.perf_counter()
        train_epoch(model, opt, data, batch, shuffle, device, 2, forward, nhwc)
        if is_cuda(device):
            torch.cuda.synchronize()
    return n / (time.perf_counter() - start)


def run(device: str, samples: int | None, compile: bool) -> None:
    device = resolve_device(device)
    n = samples or (50_000 if is_cuda(device) else 4_096)
    name = torch.cuda.get_device_name(device) if is_cuda(device) else f"{torch.get_num_threads()} CPU threads"
    print(f"\nTraining throughput on {device} ({name}), {n:,} samples per timed epoch")
    settings = [("fp32", False)] + ([("auto", True)] if is_cuda(device) else [])
    for label, (model_name, shape, batch) in MODELS.items():
        cells = []
        for precision, nhwc in settings:
            rate = samples_per_second(model_name, shape, batch, device, n, precision, nhwc, compile)
            cells.append(f"{rate:9,.0f}/s ({'bf16+NHWC' if nhwc else 'fp32'})")
        print(f"  {label:<30}: " + "   ".join(cells), flush=True)
