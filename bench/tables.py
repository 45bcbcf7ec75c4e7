"""Real tabular HPO problems from ``../shared/benchmarks`` (HPOBench MLPs, NAS-Bench-201), read as the README there
says: a configuration's key is one digit per dimension (the index of its value), its entry the results of several
training seeds. A trial observes one seed's result, picked by (run seed, trial number); regret is the table's best
mean minus the mean of the configuration a searcher picks (every table here is maximised: accuracy).
"""

from __future__ import annotations

import functools
import pickle
from pathlib import Path

import numpy as np

from hpo_tune.space import Choice, Params, SearchSpace
from hpo_tune.trial import Direction

BENCHMARKS = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
HPOBENCH = {  # dimension -> its values, in key order (the benchmark's README)
    "alpha": (1e-8, 7.742637e-8, 5.994842e-7, 4.641589e-6, 3.5938137e-5, 2.7825593e-4, 2.1544348e-3, 1.6681006e-2,
              1.2915497e-1, 1.0),
    "batch_size": (4, 6, 10, 16, 25, 40, 64, 101, 161, 256),
    "depth": (1, 2, 3),
    "learning_rate_init": (1e-5, 3.5938137e-5, 1.2915497e-4, 4.641589e-4, 1.6681006e-3, 5.9948424e-3, 2.1544347e-2,
                           7.742637e-2, 2.7825594e-1, 1.0),
    "width": (16, 25, 40, 64, 101, 161, 256, 406, 645, 1024),
}
NASBENCH_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NASBENCH = {f"Op{i}": NASBENCH_OPS for i in range(6)}
HPOBENCH_TASKS = ("australian", "blood_transfusion", "car", "credit_g", "kc1", "phoneme", "segment", "vehicle")
NASBENCH_TASKS = ("cifar10", "cifar100", "imagenet")
TABLES = tuple(f"hpobench/{t}" for t in HPOBENCH_TASKS) + tuple(f"nasbench201/{t}" for t in NASBENCH_TASKS)


@functools.cache
def _table(path: Path) -> tuple[dict[str, list[float]], dict[str, float], float]:
    with path.open("rb") as file:
        table = pickle.load(file)  # the shared benchmark's own files, not user input
    means = {key: float(np.mean(values)) for key, values in table.items()}
    return table, means, max(means.values())


class TableTask:
    """One table as a bench problem: ``hpobench/<task>`` or ``nasbench201/<task>``."""

    direction = Direction.MAXIMIZE

    def __init__(self, name: str):
        if name not in TABLES:
            raise ValueError(f"unknown table {name!r}")
        family, _, task = name.partition("/")
        self.name, self.path = name, BENCHMARKS / family / f"{task}.pkl"
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path} is missing: the tables come with ../shared/benchmarks")
        self.dimensions = HPOBENCH if family == "hpobench" else NASBENCH

    def space(self) -> SearchSpace:
        return SearchSpace({name: Choice(values) for name, values in self.dimensions.items()})

    def key(self, params: Params) -> str:
        return "".join(str(values.index(params[name])) for name, values in self.dimensions.items())

    def observe(self, params: Params, seed: int, number: int) -> float:
        """One training seed's result, chosen by the run seed and the trial number."""
        results = _table(self.path)[0][self.key(params)]
        return float(results[np.random.default_rng([seed, number]).integers(len(results))])

    def truth(self, params: Params, observed: float) -> float:
        """The configuration's mean over its training seeds: what the benchmark's regret rule scores a pick by."""
        return _table(self.path)[1][self.key(params)]

    @property
    def minimum(self) -> float:
        """The table's best mean as a loss, the search bench's reference: its regret is then ``regret``'s."""
        return self.direction.loss(_table(self.path)[2])

    def regret(self, params: Params) -> float:
        _, means, best = _table(self.path)
        return best - means[self.key(params)]
