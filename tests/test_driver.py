"""The driver's background rendering of a strategy's tables and plots."""

import time

from src.driver import ARTIFACT_INTERVAL_S, _Explainer
from src.trial import Trial, TrialState


class FromThirdTrial:
    """Explains itself once three trials are in, as the factorial does once its phase 1 is."""

    def __init__(self):
        self.rendered: list[int] = []

    def artifacts(self, history):
        self.rendered.append(len(history))
        return {"table.md": f"{len(history)} trials"} if len(history) >= 3 else {}


def finished(n: int) -> list[Trial]:
    return [Trial(k, {"x": 0.1 * k}, TrialState.COMPLETE, float(k)) for k in range(n)]


def settle(explainer: _Explainer, history: list[Trial]) -> dict:
    files = explainer.poll(history, len(history))  # every trial here ended: one ending each
    if explainer._pending is not None:
        explainer._pending.result()
        files |= explainer.poll(history, len(history))
    return files


def test_renders_in_the_background_as_soon_as_there_is_something_to_show_then_at_intervals():
    strategy = FromThirdTrial()
    explainer = _Explainer(strategy)
    try:
        assert settle(explainer, finished(1)) == {}  # nothing to show yet, and no interval holds it back
        assert settle(explainer, finished(2)) == {}
        assert settle(explainer, finished(3)) == {"table.md": "3 trials"}  # drawn now, not only at the end
        assert settle(explainer, finished(4)) == {}  # from now on, at most every ARTIFACT_INTERVAL_S
        assert strategy.rendered == [1, 2, 3]
        start = time.perf_counter()
        assert explainer.finish(finished(4), 4) == {"table.md": "4 trials"}  # the end has everything
        assert explainer.waited_s <= time.perf_counter() - start
        assert ARTIFACT_INTERVAL_S >= 10
    finally:
        explainer.close()
