"""A real learning-curve table: a small torch MLP trained on scikit-learn's digits, every configuration of a grid.

``python -m bench.multifidelity.digits_table`` trains every configuration of ``GRID`` (9 x 2^5 = 288) for
``EPOCHS`` (40) epochs with each of ``SEEDS`` (3) training seeds, and writes ``digits_curves.npz`` beside this
file (about 0.2 MB, committed; about 10 minutes with 2 worker processes of one torch thread each on 2 CPU cores).

Data: ``sklearn.datasets.load_digits`` (1,797 8x8 images, 10 classes), split once by a permutation of
``SPLIT_SEED``: the first ``N_TRAIN`` (1,200) images train, the other 597 validate; the 64 pixels are
standardised with the training images' mean and standard deviation (constant pixels divided by 1).

Model: ``depth`` hidden layers of ``width`` units, each Linear -> ReLU -> Dropout(``dropout``), then a Linear
to the 10 classes; SGD with momentum 0.9, ``lr`` and ``weight_decay``, cross-entropy, mini-batches of
``batch_size`` drawn by a fresh permutation each epoch. The training seed fixes the initial weights, the
permutations and the dropout masks (``torch.manual_seed``); the split does not depend on it. After every
epoch the validation accuracy is recorded, and the wall seconds of that epoch (training and validation).

The grid is what the searchers search (see ``bench.multifidelity.digits``): its spread is the point. The
learning rate spans four decades (``1e-4`` barely moves in 40 epochs; ``1e-3`` with batches of 128 starts
slowly and is still climbing at 40; ``0.3``-``1`` rise at once and plateau lower or diverge to chance), and
dropout 0.5 slows the start of configurations that end among the best, so curves cross.

The file holds ``names`` (the dimensions, in ``configs``' column order), ``configs`` [288, 6] float64,
``levels_<name>`` (each dimension's grid values), ``curves`` [config, seed, epoch] float32 validation
accuracy after epochs 1..40, ``epoch_seconds`` [config, seed, epoch] float32, and ``seeds``, ``n_train``,
``n_val``, ``split_seed``, ``build_seconds``, ``workers``, ``torch_version``. Seconds are of this machine with
2 workers, whatever else ran beside them: the wall-time replay uses their proportions, not their scale.
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

import numpy as np

PATH = Path(__file__).resolve().parent / "digits_curves.npz"
EPOCHS = 40
SEEDS = (0, 1, 2)
N_TRAIN = 1_200
SPLIT_SEED = 0
GRID: dict[str, tuple[float, ...]] = {
    "lr": tuple(float(10 ** (-4 + k / 2)) for k in range(9)),  # 1e-4, 3.2e-4, ..., 0.32, 1
    "width": (32, 256),
    "depth": (1, 3),
    "batch_size": (16, 128),
    "weight_decay": (1e-5, 1e-2),
    "dropout": (0.0, 0.5),
}
NAMES = tuple(GRID)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def grid_configs() -> np.ndarray:
    """Every configuration of ``GRID``, [n, len(NAMES)], in ``itertools.product`` order."""
    return np.array(list(itertools.product(*GRID.values())), dtype=float)


def digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Standardised training and validation images and labels (the fixed split)."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(x))
    train, val = order[:N_TRAIN], order[N_TRAIN:]
    mean, sd = x[train].mean(0), x[train].std(0)
    sd[sd == 0] = 1.0
    x = (x - mean) / sd
    return x[train], y[train], x[val], y[val]


_DATA = None  # a worker's tensors, loaded once


def train(config: tuple[float, ...], seed: int, epochs: int = EPOCHS) -> tuple[np.ndarray, np.ndarray]:
    """One training: validation accuracy and wall seconds after each epoch."""
    global _DATA
    import torch

    torch.set_num_threads(1)
    if _DATA is None:
        xt, yt, xv, yv = digits_split()
        _DATA = (torch.tensor(xt, dtype=torch.float32), torch.tensor(yt), torch.tensor(xv, dtype=torch.float32),
                 torch.tensor(yv))
    xt, yt, xv, yv = _DATA
    p = dict(zip(NAMES, config))
    torch.manual_seed(seed)
    layers: list[torch.nn.Module] = []
    inputs = xt.shape[1]
    for _ in range(int(p["depth"])):
        layers += [torch.nn.Linear(inputs, int(p["width"])), torch.nn.ReLU(), torch.nn.Dropout(p["dropout"])]
        inputs = int(p["width"])
    model = torch.nn.Sequential(*layers, torch.nn.Linear(inputs, 10))
    optimiser = torch.optim.SGD(model.parameters(), lr=p["lr"], momentum=0.9, weight_decay=p["weight_decay"])
    batch = int(p["batch_size"])
    accuracy, seconds = np.zeros(epochs, np.float32), np.zeros(epochs, np.float32)
    for epoch in range(epochs):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(len(xt))
        for i in range(0, len(xt), batch):
            rows = order[i:i + batch]
            optimiser.zero_grad()
            torch.nn.functional.cross_entropy(model(xt[rows]), yt[rows]).backward()
            optimiser.step()
        model.eval()
        with torch.no_grad():
            accuracy[epoch] = (model(xv).argmax(1) == yv).float().mean().item()  # a diverged net: argmax of NaNs
        seconds[epoch] = time.perf_counter() - start
    return accuracy, seconds


def _job(index: int, config: tuple[float, ...], seed: int, epochs: int) -> tuple[int, int, np.ndarray, np.ndarray]:
    return (index, seed, *train(config, seed, epochs))


def build(workers: int = 2, epochs: int = EPOCHS, limit: int | None = None, path: Path = PATH) -> dict[str, np.ndarray]:
    """Train the grid (its first ``limit`` configurations, for a trial run) and write the table to ``path``."""
    from tqdm import tqdm

    configs = grid_configs()[:limit]
    jobs = [(i, tuple(c), s) for i, c in enumerate(configs) for s in SEEDS]
    jobs.sort(key=lambda job: job[1][NAMES.index("batch_size")])  # the small batches (slowest) first
    curves = np.full((len(configs), len(SEEDS), epochs), np.nan, np.float32)
    seconds = np.full_like(curves, np.nan)
    start = time.perf_counter()
    os.environ.update(dict.fromkeys(THREAD_VARIABLES, "1"))  # inherited by the workers
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(_job, i, c, s, epochs) for i, c, s in jobs]
        for future in tqdm(as_completed(futures), total=len(futures), desc="digits table", unit="training"):
            i, s, acc, sec = future.result()
            curves[i, SEEDS.index(s)], seconds[i, SEEDS.index(s)] = acc, sec
    build_seconds = time.perf_counter() - start
    import torch

    table = {"names": np.array(NAMES), "configs": configs, "curves": curves,
             "epoch_seconds": np.round(seconds, 5), "seeds": np.array(SEEDS), "n_train": np.array(N_TRAIN),
             "n_val": np.array(1_797 - N_TRAIN), "split_seed": np.array(SPLIT_SEED),
             "build_seconds": np.array(build_seconds), "workers": np.array(workers),
             "torch_version": np.array(torch.__version__),
             **{f"levels_{name}": np.array(values, dtype=float) for name, values in GRID.items()}}
    np.savez_compressed(path, **table)
    return table


def describe(table: dict[str, np.ndarray]) -> str:
    """A few lines on the table's spread."""
    curves = table["curves"]
    final = curves[:, :, -1].mean(1)
    at3 = curves[:, :, 2].mean(1)
    best = int(final.argmax())
    late = late_bloomers(curves)
    return (f"{curves.shape[0]} configurations x {curves.shape[1]} seeds x {curves.shape[2]} epochs; "
            f"mean final accuracy: best {final.max():.4f} ({config_text(table, best)}), "
            f"median {np.median(final):.4f}, worst {final.min():.4f}; below 0.5 at the end: {(final < 0.5).sum()}; "
            f"late bloomers (in the bottom half at epoch 3, the top quarter at 40): {len(late)}; "
            f"rank correlation of epoch 3 and 40: {_spearman(at3, final):.2f}; "
            f"mean epoch seconds {table['epoch_seconds'].mean():.4f}; built in {float(table['build_seconds']):.0f} s")


def config_text(table: dict[str, np.ndarray], index: int) -> str:
    """``lr=0.01 width=256 ...``: one configuration of the table."""
    return " ".join(f"{name}={value:g}" for name, value in zip(table["names"], table["configs"][index]))


def late_bloomers(curves: np.ndarray, early: int = 3) -> np.ndarray:
    """Configurations in the bottom half by mean accuracy at epoch ``early`` and in the top quarter at the end."""
    first, final = curves[:, :, early - 1].mean(1), curves[:, :, -1].mean(1)
    return np.flatnonzero((first <= np.median(first)) & (final >= np.quantile(final, 0.75)))


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--limit", type=int, help="only the first N configurations (a trial run)")
    parser.add_argument("--out", type=Path, default=PATH)
    args = parser.parse_args()
    table = build(args.workers, args.epochs, args.limit, args.out)
    print(describe(table))
    print(f"written: {args.out} ({args.out.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
