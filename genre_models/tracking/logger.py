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
from genre_models.tracking.models import log_any_model
from genre_models.tracking.records import artifact_dir, log_dataset_input, log_params_safely, mlflow_dataset, verify_record
from genre_models.tracking.retry import artifact_deadline, store_client, store_retry
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
        """One run for the block: FINISHED at its end, KILLED (Ctrl-C, SIGTERM) or FAILED (any
        error, named in the ``error`` tag) when it stops early. A locked SQLite store is waited
        out (``tracking.retry``), at the start, on every write and at the end.

        Under ``mlflow run`` the environment's ``MLFLOW_RUN_ID`` makes every plain ``start_run``
        resume the entry point's run; a prerequisite run (``standalone``, net6's GAN) must not
        land in it, so the variable is hidden for the block and restored after."""
        import mlflow

        p, sm = self.placement, self.system_metrics or None  # None: MLflow's own setting decides
        saved = os.environ.pop("MLFLOW_RUN_ID", None) if self.standalone and not p.run_id else None
        try:
            if p.run_id:  # claimed by a sweep: its tags and owner are already there
                run = store_retry(mlflow.start_run, run_id=p.run_id, run_name=name, log_system_metrics=sm)
            else:
                run = store_retry(mlflow.start_run, run_name=name, parent_run_id=p.parent_run_id,
                                  tags={**p.tags, **owner_tags()}, log_system_metrics=sm)
            self.run_id = run.info.run_id
            hold(self.run_id, mlflow.get_tracking_uri())
            try:
                yield self
            except BaseException as exc:
                self._end_stopped(exc)
                raise
            else:
                self._end("FINISHED")
            finally:
                release(self.run_id)
        finally:
            if saved is not None:
                os.environ["MLFLOW_RUN_ID"] = saved

    def _end(self, status: str) -> None:
        """The store records the end first (waiting out a lock); then MLflow's own bookkeeping
        (its active-run stack, the system-metrics thread) ends the run as well."""
        import mlflow

        store_retry(mlflow.MlflowClient().set_terminated, self.run_id, status, what=f"ending run {self.run_id} {status}")
        store_retry(mlflow.end_run, status)

    def _end_stopped(self, exc: BaseException) -> None:
        """A run stopped by a signal ends KILLED with an ``error`` tag naming it (MLflow would say
        FAILED); one stopped by an error ends FAILED with the error in one line."""
        import mlflow

        sig = interrupt_signal(exc)
        if sig is None and not isinstance(exc, Exception):  # SystemExit and the like: MLflow's own rule
            store_retry(mlflow.end_run, "FAILED")
            return
        text = str(exc).strip().splitlines()
        why = f"KILLED: {sig} received" if sig else f"{type(exc).__name__}: {text[0] if text else ''}"
        status = "KILLED" if sig else "FAILED"
        err: Exception | None = None
        if "Max retries exceeded" not in str(exc):  # a server that stopped answering is not asked again
            try:
                store_retry(mlflow.set_tag, "error", why[:4900])
                self._end(status)
                return
            except Exception as failed:  # the store went away too
                err = failed
        try:
            mlflow.end_run(status)  # MLflow's own bookkeeping ends here, whatever the store says
        except Exception as failed:
            err = err or failed
        detail = str(getattr(err, "message", None) or err or exc).strip()  # MlflowException's str() adds quotes
        detail = detail.splitlines()[0] if detail else repr(err)
        if sig is not None:  # say so, in one line
            raise TrackingError(f"{sig} received, and run {self.run_id} could not be ended KILLED on "
                                f"{mlflow.get_tracking_uri()}: {detail}") from None
        log.warning("run %s could not be ended FAILED (%s); the next genre-bench command ends it KILLED",
                    self.run_id, detail)

    def prerequisite(self) -> "MlflowLogger":
        return MlflowLogger(standalone=True, system_metrics=self.system_metrics)

    def set_tags(self, tags: dict) -> None:
        import mlflow

        store_retry(mlflow.set_tags, tags)

    def log_params(self, params: dict) -> None:
        store_retry(log_params_safely, params)

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        import mlflow

        store_retry(mlflow.log_metrics, metrics, step=step)

    def log_artifacts(self, write: Callable[[Path], None], path: str | None = None) -> list[str]:
        with artifact_dir(path) as out:
            write(out)
            return [f.name for f in out.iterdir()]

    def log_file(self, file: str | Path, path: str | None = None) -> None:
        import mlflow

        with artifact_deadline():
            mlflow.log_artifact(str(file), path)

    def log_dataset(self, store: FeatureStore, split: SplitConfig, context: str) -> None:
        store_retry(log_dataset_input, store, split, context)

    def log_model(self, model, *, name: str, example, metadata: dict, step: int = 0) -> str | None:
        return store_retry(log_any_model, model, name=name, example=example, metadata=metadata, step=step)

    def log_evaluation(self, metrics: dict, *, store: FeatureStore, split: SplitConfig,
                       model_id: str | None = None) -> None:
        import mlflow

        scored = {k: v for k, v in metrics.items() if k.startswith("test_")}
        store_retry(mlflow.log_metrics, scored, model_id=model_id, dataset=mlflow_dataset(store))
        store_retry(mlflow.log_metrics, {k: v for k, v in metrics.items() if k not in scored}, model_id=model_id)

    def verify(self, metrics=(), histories: dict | None = None, artifacts=()) -> None:
        store_retry(verify_record, self.run_id, metrics, histories, artifacts)

    def end_if_running(self, run_id: str | None, why: str) -> None:
        try:
            client = store_client()
            run = client.get_run(run_id) if run_id else None
            if run is not None and run.info.status == "RUNNING" and not end_if_owner_gone(client, run, why):
                log.warning("run %s is still RUNNING and its owner may be alive: left as it is", run_id)
        except Exception as exc:  # another store, or deleted: nothing to end
            log.info("could not mark the interrupted run %s as KILLED: %s", run_id, exc)

    def finished_runs(self, tags: dict, max_results: int = 1) -> list:
        try:
            return runs_with(tags, max_results=max_results)
        except TrackingError:  # locked for longer than the wait: saying "none" would re-run the work
            raise
        except Exception as exc:  # no experiment yet, or a store that cannot search
            log.info("no finished run with %s to reuse (%s)", tags, exc)
            return []
