"""``MlflowLogger``: the ``RunLogger`` that writes an MLflow run (see ``training.logger``).

All of a stage's MLflow calls go through it: where the run goes (nested under a sweep's parent
run, with its tags; or a run of its own even inside ``mlflow run``), parameters that tolerate
``mlflow run``'s raw entry-point values, artifacts written into a temp folder, models, and the
read-back check before the run may end FINISHED.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from genre_models.config import SplitConfig
from genre_models.errors import TrackingError, interrupt_signal
from genre_models.data.store import FeatureStore
from genre_models.tracking.claims import end_if_owner_gone, hold, owner_tags, release
from genre_models.tracking.queries import runs_with
from genre_models.tracking.models import log_torch_model
from genre_models.tracking.records import artifact_dir, log_dataset_input, log_params_safely, mlflow_dataset, verify_record
from genre_models.util import log


@dataclass(frozen=True)
class RunPlacement:
    """Where a stage's run goes: nested under a sweep's parent run, with the sweep's tags."""

    parent_run_id: str | None = None
    tags: dict = field(default_factory=dict)
    run_id: str | None = None  # a run already created (a sweep's claim): the stage continues it


#: Seconds between system-metric samples (CPU, memory, disk, network; GPU with nvidia-ml-py).
#: MLflow's default, 10 s, leaves a demo run of a few seconds with no sample at all.
SYSTEM_METRICS_INTERVAL_S = 2.0


def system_metrics_on(enabled: bool) -> bool:
    """Set MLflow's sampling for runs that record system metrics; whether they will (psutil,
    which MLflow needs for them, is a dependency of genre-bench)."""
    if enabled:
        import mlflow

        mlflow.set_system_metrics_sampling_interval(SYSTEM_METRICS_INTERVAL_S)
        mlflow.set_system_metrics_samples_before_logging(1)
    return enabled


@contextmanager
def standalone_run(run_name: str, placement: RunPlacement | None = None, system_metrics: bool | None = None) -> Iterator:
    """``mlflow.start_run`` for a run of its own, also inside ``mlflow run``.

    Under ``mlflow run`` the environment's ``MLFLOW_RUN_ID`` makes every plain ``start_run``
    resume the entry point's run; a prerequisite run (net6's GAN) must not land in it. The
    variable is hidden for the block and restored after; the experiment stays the same.
    """
    import mlflow

    placement = placement or RunPlacement()
    saved = os.environ.pop("MLFLOW_RUN_ID", None)
    try:
        with mlflow.start_run(run_name=run_name, parent_run_id=placement.parent_run_id,
                              tags={**placement.tags, **owner_tags()}, log_system_metrics=system_metrics) as run:
            yield run
    finally:
        if saved is not None:
            os.environ["MLFLOW_RUN_ID"] = saved


class MlflowLogger:
    """One MLflow run per ``start`` block, in the active store and experiment. ``system_metrics``:
    the run also records CPU, memory (and GPU) use every ``SYSTEM_METRICS_INTERVAL_S``."""

    def __init__(self, placement: RunPlacement | None = None, standalone: bool = False,
                 system_metrics: bool = False) -> None:
        self.placement = placement or RunPlacement()
        self.standalone = standalone
        self.system_metrics = system_metrics_on(system_metrics)
        self.run_id: str | None = None

    @contextmanager
    def start(self, name: str) -> Iterator["MlflowLogger"]:
        import mlflow

        p, sm = self.placement, self.system_metrics or None  # None: MLflow's own setting decides
        if p.run_id:  # claimed by a sweep: its tags and owner are already there
            ctx = mlflow.start_run(run_id=p.run_id, run_name=name, log_system_metrics=sm)
        elif self.standalone:
            ctx = standalone_run(name, p, sm)
        else:
            ctx = mlflow.start_run(run_name=name, parent_run_id=p.parent_run_id, tags={**p.tags, **owner_tags()},
                                   log_system_metrics=sm)
        with ctx as run:
            self.run_id = run.info.run_id
            hold(self.run_id, mlflow.get_tracking_uri())
            try:
                yield self
            except BaseException as exc:
                self._end_interrupted(exc)
                raise
            finally:
                release(self.run_id)

    def _end_interrupted(self, exc: BaseException) -> None:
        """A run stopped by a signal ends KILLED with an ``error`` tag naming it (MLflow would say FAILED)."""
        import mlflow

        sig = interrupt_signal(exc)
        if sig is None:
            return
        try:
            mlflow.set_tag("error", f"KILLED: {sig} received")
            mlflow.end_run("KILLED")
        except Exception as err:  # the store went away too: say so, in one line
            text = str(getattr(err, "message", None) or err).strip()  # MlflowException's str() adds quotes
            raise TrackingError(f"{sig} received, and run {self.run_id} could not be ended KILLED on "
                                f"{mlflow.get_tracking_uri()}: {text.splitlines()[0] if text else repr(err)}") from None

    def prerequisite(self) -> "MlflowLogger":
        return MlflowLogger(standalone=True, system_metrics=self.system_metrics)

    def set_tags(self, tags: dict) -> None:
        import mlflow

        mlflow.set_tags(tags)

    def log_params(self, params: dict) -> None:
        log_params_safely(params)

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        import mlflow

        mlflow.log_metrics(metrics, step=step)

    def log_artifacts(self, write: Callable[[Path], None], path: str | None = None) -> list[str]:
        with artifact_dir(path) as out:
            write(out)
            return [f.name for f in out.iterdir()]

    def log_file(self, file: str | Path, path: str | None = None) -> None:
        import mlflow

        mlflow.log_artifact(str(file), path)

    def log_dataset(self, store: FeatureStore, split: SplitConfig, context: str) -> None:
        log_dataset_input(store, split, context)

    def log_model(self, model, *, name: str, example, metadata: dict, step: int = 0) -> str | None:
        return log_torch_model(model, name=name, example=example, metadata=metadata, step=step)

    def log_evaluation(self, metrics: dict, *, store: FeatureStore, split: SplitConfig,
                       model_id: str | None = None) -> None:
        import mlflow

        scored = {k: v for k, v in metrics.items() if k.startswith("test_")}
        mlflow.log_metrics(scored, model_id=model_id, dataset=mlflow_dataset(store))
        mlflow.log_metrics({k: v for k, v in metrics.items() if k not in scored}, model_id=model_id)

    def verify(self, metrics=(), histories: dict | None = None, artifacts=()) -> None:
        verify_record(self.run_id, metrics, histories, artifacts)

    def end_if_running(self, run_id: str | None, why: str) -> None:
        import mlflow

        try:
            client = mlflow.MlflowClient()
            run = client.get_run(run_id) if run_id else None
            if run is not None and run.info.status == "RUNNING" and not end_if_owner_gone(client, run, why):
                log.warning("run %s is still RUNNING and its owner may be alive: left as it is", run_id)
        except Exception as exc:  # another store, or deleted: nothing to end
            log.info("could not mark the interrupted run %s as KILLED: %s", run_id, exc)

    def finished_runs(self, tags: dict, max_results: int = 1) -> list:
        try:
            return runs_with(tags, max_results=max_results)
        except Exception as exc:  # no experiment yet, or a store that cannot search
            log.info("no finished run with %s to reuse (%s)", tags, exc)
            return []
