"""A study's parent run as users see it: its summary, the strategy's files, the registered best model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mlflow.entities import LoggedModelOutput, Metric, RunTag
from mlflow.exceptions import MlflowException, RestException
from mlflow.tracking import MlflowClient

from hpo_tune.tracking.common import digest, global_tracking_uri, now_ms, quote, upload
from hpo_tune.tracking.lineage import DataVersion
from hpo_tune.trial import Direction, Trial, TrialState, best_trial

MODEL_ALIAS = "best"
PARETO_TAG = "pareto_run_ids"


class ParentRun:
    """Writes to one study's parent run; remembers what it uploaded and promoted, to skip repeats."""

    def __init__(self, client: MlflowClient, uri: str, run_id: str, direction: Direction):
        self.client, self.uri, self.run_id, self.direction = client, uri, run_id, direction
        self._uploaded: dict[str, str] = {}
        self._promoted: str | None = None  # the run whose model the alias points at, as far as this object knows
        self._summary: tuple[list, list] = ([], [])  # the summary's metrics (no timestamps) and tags written last

    def use_data(self, data: DataVersion) -> None:
        self.client.log_inputs(self.run_id, datasets=data.inputs())

    def write_summary(self, trials: list[Trial], extra: Mapping[str, float] | None = None) -> None:
        """Put the best trial and the counts (and ``extra`` metrics) on the parent run, so the UI shows them."""
        best = best_trial(trials, self.direction)
        counts = {state: sum(t.state is state for t in trials) for state in TrialState}
        now = now_ms()
        step = sum(t.finished for t in trials)
        metrics = [Metric(f"n_{state.value}", counts[state], now, step) for state in
                   (TrialState.COMPLETE, TrialState.FAILED, TrialState.PRUNED)]
        paused, epochs = sum(t.paused for t in trials), sum(len(t.curve) for t in trials)
        extra = {**({"n_paused": paused} if paused else {}), **({"epochs_spent": epochs} if epochs else {}),
                 **(extra or {})}  # a multi-fidelity study's cost is its epochs, not its trials
        metrics += [Metric(name, float(value), now, step) for name, value in extra.items()]
        tags = []
        if best is not None:
            metrics.append(Metric("best_objective", best.value, now, step))
            tags = [RunTag("best_run_id", best.run_id), RunTag("best_trial", str(best.number)),
                    *(RunTag(f"best.{k}", str(v)) for k, v in best.params.items())]
        written = ([(m.key, m.value, m.step) for m in metrics], [(tag.key, tag.value) for tag in tags])
        if written != self._summary:  # what this process wrote last: the same again is a write for nothing
            self.client.log_batch(self.run_id, metrics=metrics, tags=tags)
            self._summary = written

    def log_artifacts(self, files: Mapping[str, str | bytes]) -> None:
        """Upload files that are new or changed since this object last uploaded them."""
        changed = {name: content for name, content in files.items() if self._uploaded.get(name) != digest(content)}
        upload(self.client, self.run_id, changed)
        self._uploaded |= {name: digest(content) for name, content in changed.items()}

    def write_pareto(self, front: Sequence[Trial], files: Mapping[str, str | bytes]) -> None:
        """A study of several objectives' non-dominated trials: their runs as the tag ``pareto_run_ids``
        (comma-separated), and ``files`` (``hpo_tune.pareto.pareto_files``)."""
        self.log_artifacts(files)
        self.client.set_tag(self.run_id, PARETO_TAG, ",".join(trial.run_id for trial in front))

    def promote(self, best: Trial, model: str, name: str) -> None:
        """Point the registered model ``name``'s alias ``best`` at ``best``'s logged ``model`` (a models:/ URI).

        The model is registered (a new version) the first time it becomes the best, and linked to the
        parent run as an output; nothing is done while the alias already points at it.
        """
        if self._promoted == best.run_id:
            return
        try:
            current = self.client.get_model_version_by_alias(name, MODEL_ALIAS)
        except (MlflowException, RestException):
            current = None
        if current is None or current.run_id != best.run_id:
            try:
                self.client.create_registered_model(name, tags={"parent_run_id": self.run_id}, description=(
                    f"The best trial's model of study {name!r}; @{MODEL_ALIAS} moves as better trials finish."))
            except MlflowException:
                pass  # registered before (by this study's other processes, or a study of the same name)
            found = self.client.search_model_versions(f"name = '{quote(name)}' and run_id = '{best.run_id}'")
            model_id = model.removeprefix("models:/")
            with global_tracking_uri(self.uri):  # a server refuses a models:/ source without its model id
                version = found[0] if found else self.client.create_model_version(
                    name, model, run_id=best.run_id, model_id=model_id)
            self.client.set_registered_model_alias(name, MODEL_ALIAS, version.version)
            self.client.log_outputs(self.run_id, [LoggedModelOutput(model_id, step=best.number)])  # its Models column
        self._promoted = best.run_id

    def end(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status)
