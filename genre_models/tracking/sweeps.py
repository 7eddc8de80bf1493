"""The MLflow record of a sweep: its parent run, and the bookkeeping of its child runs.

A sweep is a parent run (``stage=sweep``, found again by ``sweep_key``) with a child run per
grid point (``grid_key``). What is written here: the parent's parameters, grid and final
counts; FAILED runs for points that failed before their own run began; KILLED for runs whose
process is gone; and, per net and split, the best FINISHED run chosen on validation.
"""

from __future__ import annotations

import json

from genre_models.tracking.queries import runs_with
from genre_models.tracking.records import end_killed


class SweepRecord:
    """One experiment's sweep bookkeeping, through one MLflow client."""

    def __init__(self, experiment: str) -> None:
        import mlflow

        self.uri = mlflow.get_tracking_uri()
        self.client = mlflow.MlflowClient()
        self.experiment = mlflow.get_experiment_by_name(experiment)
        self.exp_id = self.experiment.experiment_id

    def write_through(self, uri: str) -> None:
        """Send this record's writes to ``uri`` from now on (a local server in front of the store)."""
        import mlflow

        self.client = mlflow.MlflowClient(uri)

    def _runs(self, tags: dict, status: str | None = "FINISHED", max_results: int = 50000) -> list:
        return runs_with(tags, status=status, experiment_ids=[self.exp_id], max_results=max_results, client=self.client)

    def finished_grid_keys(self) -> set[str]:
        return {r.data.tags["grid_key"] for r in self._runs({}) if "grid_key" in r.data.tags}

    def open_parent(self, sweep_key: str, run_name: str, tags: dict, params: dict, grid: list[dict]) -> tuple[str, bool]:
        """The parent run with ``sweep_key``, resumed (children left RUNNING end KILLED), else a
        new one; and whether it was resumed."""
        parents = self._runs({"sweep_key": sweep_key, "stage": "sweep"}, status=None, max_results=1)
        if parents:
            parent_id = parents[0].info.run_id
            self.client.update_run(parent_id, status="RUNNING")
            self.kill_running_children(parent_id, "the sweep driver stopped before this run ended")
            return parent_id, True
        parent_id = self.client.create_run(self.exp_id, run_name=run_name,
                                           tags={**tags, "stage": "sweep", "sweep_key": sweep_key}).info.run_id
        for k, v in params.items():
            self.client.log_param(parent_id, k, v)
        self.client.log_text(parent_id, json.dumps(grid, indent=2), "grid.json")
        return parent_id, False

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        self.client.set_tag(run_id, key, value)

    def kill_running_children(self, parent_id: str, why: str) -> None:
        """End as KILLED every child still RUNNING whose process is gone; nothing else will end it.
        A child that ended FAILED with no ``error`` tag was stopped from outside (Ray ending a dead
        driver's tasks, a SIGTERM): MLflow ended it on the way out, and the tag says so."""
        for stale in self._runs({"mlflow.parentRunId": parent_id}, status="RUNNING"):
            end_killed(self.client, stale.info.run_id, why)
        for stopped in self._runs({"mlflow.parentRunId": parent_id}, status="FAILED"):
            if "error" not in stopped.data.tags:
                self.client.set_tag(stopped.info.run_id, "error", "stopped from outside before it ended (its worker "
                                                                  "was told to exit, e.g. when the sweep driver died)")

    def record_failed_point(self, parent_id: str, run_name: str, tags: dict, msg: str) -> str:
        """A FAILED run, nested under the sweep, for a point that failed without a run of its own."""
        run = self.client.create_run(self.exp_id, run_name=run_name,
                                     tags={**tags, "mlflow.parentRunId": parent_id, "error": msg[:4900]})
        self.client.set_terminated(run.info.run_id, "FAILED")
        return run.info.run_id

    def point_runs(self, parent_id: str, grid_key: str) -> list:
        """Every run of one grid point under this sweep's parent, newest first."""
        return self._runs({"grid_key": grid_key, "mlflow.parentRunId": parent_id}, status=None, max_results=1000)

    def settle_earlier_attempts(self, parent_id: str, grid_key: str):
        """Before a point runs: end as KILLED the RUNNING runs an earlier attempt at it left (a
        worker that died: Ray retries, or a killed driver), and return its FINISHED run if an
        attempt got that far, so a retry never makes a second one. Attempts at one point never
        overlap: Ray retries a task only after its worker is gone."""
        finished = None
        for run in self.point_runs(parent_id, grid_key):
            if run.info.status == "RUNNING":
                end_killed(self.client, run.info.run_id, "its process died; the point was run again")
            elif run.info.status == "FINISHED":
                finished = run
        return finished

    def end_point_failed(self, parent_id: str, grid_key: str, started_ms: int, run_name: str, tags: dict,
                         msg: str) -> str:
        """Tag the point's own run (begun after ``started_ms``) FAILED with ``msg``; record a
        FAILED run when it had none."""
        own = self.point_runs(parent_id, grid_key)[:1]
        if own and own[0].info.start_time >= started_ms and own[0].info.status != "FINISHED":
            run_id = own[0].info.run_id  # the point's own run, already ended FAILED by MLflow
            self.client.set_tag(run_id, "error", msg[:4900])
            self.client.set_terminated(run_id, "FAILED")
            return run_id
        return self.record_failed_point(parent_id, run_name, tags, msg)  # it failed before its run began

    def finish(self, parent_id: str, counts: dict, total: int, seconds: float, best: dict) -> None:
        """The parent's counts, best runs and final status (FAILED when any point failed)."""
        for key, value in (("runs_finished", counts["FINISHED"]), ("runs_skipped", counts["SKIPPED"]),
                           ("runs_failed", counts["FAILED"]), ("runs_total", total), ("sweep_seconds", seconds)):
            self.client.log_metric(parent_id, key, value)
        if best:
            self.client.set_tag(parent_id, "best_run", "; ".join(
                f"{k}: {v['run_id']} (val {v['val_accuracy']:.3f}, test {v['test_accuracy']:.3f})"
                for k, v in best.items())[:4900])
            self.client.log_text(parent_id, json.dumps(best, indent=2), "best_runs.json")
        self.client.set_terminated(parent_id, "FAILED" if counts["FAILED"] else "FINISHED")

    def best_runs(self, sweep_key: str) -> dict[str, dict]:
        """Per net and split, the FINISHED run with the best final ``val_accuracy`` (chosen on
        validation, never on test), with its test accuracy for the record."""
        best: dict[str, dict] = {}
        for r in self._runs({"sweep_key": sweep_key, "stage": "train"}):
            m = r.data.metrics
            if "val_accuracy" not in m:
                continue
            k = f"{r.data.tags.get('net')}/{r.data.tags.get('split')}"
            if k not in best or m["val_accuracy"] > best[k]["val_accuracy"]:
                best[k] = {"run_id": r.info.run_id, "val_accuracy": m["val_accuracy"],
                           "test_accuracy": m.get("test_accuracy", float("nan")), "run_name": r.info.run_name}
        return dict(sorted(best.items()))
