"""The MLflow record of a sweep: its parent run, and the bookkeeping of its child runs.

A sweep is a parent run (``stage=sweep``, found again by ``sweep_key``) with a child run per
grid point (``grid_key``). What is written here: the parent's parameters, grid and final
counts; the claims that make each point run once; FAILED runs for points that failed before
their stage began; KILLED for runs whose owner is provably gone (``tracking.claims``); and, per
net and split, the best FINISHED run chosen on validation.

**Claims.** Two sweeps (or a sweep and its Ray retry) may reach one grid point at once. A
process claims a point by creating its RUNNING run (owner tags included), then reading the
point's runs back: if another FINISHED or live RUNNING run is there, it deletes its own and
backs off; otherwise the point is its own. With a store that reads its own writes (SQLite, or
``mlflow server`` in front of one) two claimants can both withdraw, never both win: whichever
reads second sees the other's run. The parent run is opened the same way, so two identical
sweeps share one parent.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass

from genre_models.errors import TrackingError
from genre_models.tracking.claims import end_if_owner_gone, hold, owner_gone, owner_tags, release
from genre_models.tracking.queries import runs_with
from genre_models.tracking.records import end_killed
from genre_models.tracking.retry import store_client, store_retry
from genre_models.tracking.views import save_nets_view, view_path

CLAIM_TRIES = 30


@dataclass
class Claim:
    """What claiming a grid point found: at most one field is set (none: every claimant
    withdrew on each try, so the point is simply busy for now)."""

    run_id: str | None = None  # won: this process owns this RUNNING run (held: it beats)
    finished: object = None  # the point's FINISHED run (an earlier or a concurrent sweep's)
    failed: object = None  # a run this sweep watched (``watched``) that ended FAILED
    busy: object = None  # a live run of another process: look again later


def _backoff(attempt: int) -> None:
    time.sleep(random.uniform(0.05, 0.25) * min(attempt + 1, 8))


class SweepRecord:
    """One experiment's sweep bookkeeping, through one MLflow client."""

    def __init__(self, experiment: str) -> None:
        import mlflow

        self.uri = self.write_uri = mlflow.get_tracking_uri()
        self.client = store_client()  # a locked store is waited out on every call, as a run's own writes are
        self.experiment = store_retry(mlflow.get_experiment_by_name, experiment)
        self.exp_id = self.experiment.experiment_id
        self.projected: float | None = None  # seconds the points to run were projected to take
        self.projected_at = 0.0  # when (time.time()) the projection was made

    def write_through(self, uri: str) -> None:
        """Send this record's writes to ``uri`` from now on (a local server in front of the store)."""
        self.client = store_client(uri)
        self.write_uri = uri

    def _runs(self, tags: dict, status: str | None = "FINISHED", max_results: int = 50000) -> list:
        return runs_with(tags, status=status, experiment_ids=[self.exp_id], max_results=max_results, client=self.client)

    def finished_grid_keys(self) -> set[str]:
        return {r.data.tags["grid_key"] for r in self._runs({}) if "grid_key" in r.data.tags}

    def open_parent(self, sweep_key: str, run_name: str, tags: dict, params: dict, grid: list[dict]) -> tuple[str, bool]:
        """The parent run with ``sweep_key``, resumed (children whose owner is gone end KILLED),
        else a new one (claimed, as points are); and whether it was resumed."""
        key = {"sweep_key": sweep_key, "stage": "sweep"}
        for attempt in range(CLAIM_TRIES):
            parents = self._runs(key, status=None, max_results=5)
            if parents:
                parent_id = parents[0].info.run_id
                self.client.update_run(parent_id, status="RUNNING")
                if "error" in parents[0].data.tags:  # it was interrupted, or failed: this run goes on
                    self.client.delete_tag(parent_id, "error")
                self.end_dead_children(parent_id, "the sweep driver stopped before this run ended")
                return parent_id, True
            mine = self.client.create_run(self.exp_id, run_name=run_name, tags={**tags, **key}).info.run_id
            if [r.info.run_id for r in self._runs(key, status=None, max_results=5)] == [mine]:
                for k, v in params.items():
                    self.client.log_param(mine, k, v)
                self.client.log_text(mine, json.dumps(grid, indent=2), "grid.json")
                return mine, False
            self.client.delete_run(mine)  # another sweep opened it at the same moment: use theirs
            _backoff(attempt)
        raise TrackingError(f"{self.uri}: could not open the parent run of sweep {sweep_key} "
                            f"({CLAIM_TRIES} tries, other sweeps kept racing for it)")

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        self.client.set_tag(run_id, key, value)

    def _live(self, running: list, why: str) -> list:
        """The RUNNING runs whose owner may be alive; the others end KILLED, saying why."""
        return [run for run in running if not end_if_owner_gone(self.client, run, why)]

    def end_dead_children(self, parent_id: str, why: str) -> None:
        """End as KILLED every child still RUNNING whose owner is provably gone; nothing else
        will end it (a live one, e.g. a concurrent sweep's, is left alone). A child that ended
        FAILED with no ``error`` tag was stopped from outside (Ray ending a dead driver's tasks,
        a SIGTERM): MLflow ended it on the way out, and the tag says so."""
        self._live(self._runs({"mlflow.parentRunId": parent_id}, status="RUNNING"), why)
        for stopped in self._runs({"mlflow.parentRunId": parent_id}, status="FAILED"):
            if "error" not in stopped.data.tags:
                self.client.set_tag(stopped.info.run_id, "error", "stopped from outside before it ended (its worker "
                                                                  "was told to exit, e.g. when the sweep driver died)")

    def point_runs(self, grid_key: str) -> list:
        """Every run of one grid point in this experiment (under any sweep), newest first."""
        return self._runs({"grid_key": grid_key}, status=None, max_results=1000)

    def _point_state(self, grid_key: str, watched) -> Claim | None:
        """The point's settled state (FINISHED, live elsewhere, or a watched run FAILED), or None
        when it is free to claim. RUNNING runs whose owner is gone end KILLED on the way."""
        runs = self.point_runs(grid_key)
        for run in runs:
            if run.info.status == "FINISHED":
                return Claim(finished=run)
        live = self._live([r for r in runs if r.info.status == "RUNNING"], "its process died; the point was run again")
        if live:
            return Claim(busy=live[0])
        failed = [r for r in runs if r.info.run_id in watched and r.info.status == "FAILED"]
        return Claim(failed=failed[0]) if failed else None

    def claim_point(self, parent_id: str, grid_key: str, run_name: str, tags: dict, watched=()) -> Claim:
        """Claim one grid point for this process (see the module's docstring). ``watched``: the
        runs of other processes this sweep waited on; one that FAILED is adopted, not re-run."""
        for attempt in range(CLAIM_TRIES):
            state = self._point_state(grid_key, watched)
            if state is not None:
                return state
            mine = self.client.create_run(self.exp_id, run_name=run_name, tags={
                **tags, "grid_key": grid_key, "mlflow.parentRunId": parent_id, **owner_tags()}).info.run_id
            hold(mine, self.write_uri)
            rivals = [r for r in self.point_runs(grid_key) if r.info.run_id != mine and (
                r.info.status == "FINISHED" or (r.info.status == "RUNNING" and owner_gone(r) is None))]
            if not rivals:
                return Claim(run_id=mine)
            release(mine)
            self.client.delete_run(mine)
            _backoff(attempt)
        runs = self.point_runs(grid_key)
        return Claim(busy=runs[0] if runs else None)

    def end_parent(self, parent_id: str, status: str, why: str) -> None:
        """End the sweep's parent run ``status`` (KILLED or FAILED) before its points are done."""
        self.client.set_tag(parent_id, "error", f"{status}: {why}"[:4900])
        self.client.set_terminated(parent_id, status)

    def end_killed_if_running(self, run_id: str, why: str) -> None:
        """End ``run_id`` KILLED saying ``why`` (e.g. ``SIGTERM received``), unless it ended already."""
        if self.client.get_run(run_id).info.status == "RUNNING":
            end_killed(self.client, run_id, why)

    def end_point_failed(self, run_id: str, msg: str) -> None:
        """End the point's claimed run FAILED with ``msg`` (MLflow may have ended it FAILED already)."""
        if self.client.get_run(run_id).info.status != "FINISHED":
            self.client.set_tag(run_id, "error", msg[:4900])
            self.client.set_terminated(run_id, "FAILED")

    def log_projection(self, parent_id: str, cost: dict) -> None:
        """The projected cost of the points this invocation runs: ``projected_seconds`` beside the
        ``sweep_seconds`` it will log, and the whole projection (rates, stages) as a file."""
        self.client.log_metric(parent_id, "projected_seconds", cost["makespan_s"])
        if "others_busy_share" in cost.get("probe_load", {}):
            self.client.log_metric(parent_id, "probe_others_busy", cost["probe_load"]["others_busy_share"])
        self.client.set_tag(parent_id, "projection_sources", "; ".join(f"{k}: {v}" for k, v in cost["sources"].items()))
        self.client.log_text(parent_id, json.dumps(cost, indent=2, default=str), "projection.json")
        self.projected, self.projected_at = cost["makespan_s"], time.time()

    def finish(self, parent_id: str, counts: dict, total: int, seconds: float, best: dict) -> None:
        """The parent's counts (tags: a resumed sweep updates them), its time (over the projection,
        where one was made), best runs and final status (FAILED when any point failed)."""
        if self.projected:  # over the span the projection covers: from its line to the sweep's end
            real = time.time() - self.projected_at
            self.client.log_metric(parent_id, "projected_span_seconds", real)
            self.client.log_metric(parent_id, "real_over_projected", real / self.projected)
        for key, value in (("runs_finished", counts["FINISHED"]), ("runs_skipped", counts["SKIPPED"]),
                           ("runs_failed", counts["FAILED"]), ("runs_total", total)):
            self.client.set_tag(parent_id, key, str(value))
        self.client.log_metric(parent_id, "sweep_seconds", seconds)
        if best:
            self.client.set_tag(parent_id, "best_run", "; ".join(
                f"{k}: {v['run_id']} (val {v['val_accuracy']:.3f}, test {v['test_accuracy']:.3f})"
                for k, v in best.items())[:4900])
            self.client.log_text(parent_id, json.dumps(best, indent=2), "best_runs.json")
        self.client.set_terminated(parent_id, "FAILED" if counts["FAILED"] else "FINISHED")

    def save_views(self, splits) -> dict[str, str]:
        """The UI view of each split's nets side by side (``tracking.views``): split -> its route."""
        for split in splits:
            save_nets_view(self.client, self.exp_id, split)
        return {split: view_path(self.exp_id, split) for split in splits}

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
