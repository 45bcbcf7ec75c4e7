"""The study's tables and plots, rendered off the driver's critical path: the strategy's and a halving pruner's."""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor

from hpo_tune.pruning import Pruner
from hpo_tune.pruning.plots import halving_artifacts
from hpo_tune.strategies import Strategy
from hpo_tune.trial import Trial

ARTIFACT_INTERVAL_S = 30.0  # how often, at most, it refreshes the strategy's tables and plots there
ARTIFACT_SHARE = 0.05  # and no more often than keeps their rendering under this share of the study's time


class Explainer:
    """Renders the strategy's tables and plots (and a halving pruner's) off the critical path, in a background
    thread: only when
    trials have finished since the last render, at most every ``ARTIFACT_INTERVAL_S`` (or as rarely as
    keeps a slow render under ``ARTIFACT_SHARE`` of the time), and once more at the end. Until a render
    has had anything to show, the interval does not apply: a strategy that explains itself only from
    some point on (the factorial once phase 1 is in) gets drawn then, in the background, rather than
    only at the end, where the study would wait for it.

    Matplotlib is only ever used from that one thread. ``waited_s`` is what the study itself waited for
    them: the end's render (cheap when the strategy caches what has not changed) and an unfinished one.
    """

    def __init__(self, strategy: Strategy | None, pruner: Pruner | None = None, seed: int = 0, metric: str = ""):
        self.strategy = strategy  # None: nothing to render (a study that keeps no files)
        self.halving, self.seed, self.metric = pruner.halving if pruner is not None else None, seed, metric
        self.waited_s = 0.0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hpo-artifacts")
        self._pending: Future[dict[str, str | bytes]] | None = None
        self._last = time.monotonic()
        self._cost = 0.0
        self._shown: int | None = None  # how many trials had ended at the last render
        self._drawn = False  # whether a render has returned any file yet

    def poll(self, history: list[Trial], ended: int) -> dict[str, str | bytes]:
        """The files of a finished render (to upload; empty if none), starting the next when it is due."""
        files: dict[str, str | bytes] = {}
        if self.strategy is None:
            return files
        if self._pending is not None and self._pending.done():
            files, self._pending = self._pending.result(), None
        wait = max(ARTIFACT_INTERVAL_S if self._drawn else 0.0, self._cost / ARTIFACT_SHARE)
        if self._pending is None and time.monotonic() - self._last >= wait and ended != self._shown:
            self._last, self._shown = time.monotonic(), ended
            self._pending = self._pool.submit(self._render, list(history))
        return files

    def finish(self, history: list[Trial], ended: int) -> dict[str, str | bytes]:
        """Every file as of ``history``: the render in flight, then one more if trials finished since."""
        if self.strategy is None:
            return {}
        start = time.perf_counter()
        files = self._pending.result() if self._pending is not None else {}
        self._pending = None
        if ended != self._shown:
            files |= self._render(history)
        self._pool.shutdown(wait=True)
        self.waited_s += time.perf_counter() - start
        return files

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _render(self, history: list[Trial]) -> dict[str, str | bytes]:
        start = time.perf_counter()
        files = self.strategy.artifacts(history) if self.strategy is not None else {}
        if self.strategy is not None and self.halving is not None:
            files |= {f"pruner/{name}": content for name, content in
                      halving_artifacts(history, self.halving, self.seed, self.strategy.direction, self.metric).items()}
        self._cost, self._drawn = time.perf_counter() - start, self._drawn or bool(files)
        return files
