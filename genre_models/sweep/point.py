"""Running one grid point, in the driver's process or a worker's, and the bookkeeping around
its runs: earlier attempts, points that failed before their run began, children left RUNNING.

A point never raises for its own failure: its run ends FAILED with an ``error`` tag (a FAILED
run is created when it failed before its run began) and the sweep goes on.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from dataclasses import replace

from genre_models.config import default_cache_dir
from genre_models.sweep.grid import GridPoint
from genre_models.tracking.logger import MlflowLogger, RunPlacement
from genre_models.tracking.queries import tag_filter
from genre_models.tracking.records import end_killed
from genre_models.tracking.setup import setup_tracking
from genre_models.util import log
from genre_models.workflow.get_or_run import run_gan, train_net

#: What a caller reads from a finished point's run, by kind.
SUMMARY_METRICS = ("test_accuracy", "test_track_accuracy", "stopped_epoch", "gen_quality_accuracy")


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()


def _run_point(p: GridPoint, cfg, logger: MlflowLogger) -> tuple[str | None, dict]:
    """The point's stage through the get-or-run layer; (run id, summary metrics)."""
    if p.kind == "gan":
        res = run_gan(cfg, logger)
        return res.run_id, {"gen_quality_accuracy": res.quality["gen_quality_accuracy"]}
    res = train_net(cfg, logger)
    return res.run_id, {k: res.metrics.get(k) for k in ("test_accuracy", "test_track_accuracy", "stopped_epoch")}


def execute_point(task: dict) -> dict:
    """Run one grid point (in this process or a worker). Never raises for the point's own failure."""
    setup_tracking(task["tracking_uri"], task["experiment"])
    p: GridPoint = task["point"]
    t0 = time.perf_counter()
    done = settle_earlier_attempts(task)
    if done is not None:  # an attempt that died after finishing its run: nothing to redo
        return {"status": "FINISHED", "run_id": done.info.run_id, "seconds": 0.0, "note": "finished by an earlier attempt",
                "metrics": {k: done.data.metrics[k] for k in SUMMARY_METRICS if k in done.data.metrics}}
    if task.get("threads"):
        import torch

        torch.set_num_threads(task["threads"])
    cfg = task["config"]
    if task.get("node_cache"):  # shipped data: this node's own cache, not the driver's path
        cfg = replace(cfg, cache_dir=default_cache_dir())
    placement = RunPlacement(task["parent_run_id"], {**task["tags"], "worker_host": socket.gethostname(),
                                                     "worker_pid": str(os.getpid())})
    started_ms = int(time.time() * 1000) - 1000  # MLflow start times are in ms; allow for clock rounding
    try:
        run_id, metrics = _run_point(p, cfg, MlflowLogger(placement))
        return {"status": "FINISHED", "run_id": run_id, "seconds": time.perf_counter() - t0, "metrics": metrics}
    except Exception as exc:
        msg = one_line(exc)
        log.warning("grid point %s failed: %s", p.label, msg)
        run_id = _end_failed(task, msg, started_ms)
        return {"status": "FAILED", "run_id": run_id, "error": msg, "seconds": time.perf_counter() - t0, "metrics": {}}


def _end_failed(task: dict, msg: str, started_ms: int) -> str:
    """Tag the point's own run FAILED with ``msg``, or record a FAILED run when it had none."""
    import mlflow

    client = mlflow.MlflowClient()
    exp_id = mlflow.get_experiment_by_name(task["experiment"]).experiment_id
    own = client.search_runs([exp_id], point_runs(task), order_by=["attributes.start_time DESC"], max_results=1)
    if own and own[0].info.start_time >= started_ms and own[0].info.status != "FINISHED":
        run_id = own[0].info.run_id  # the point's own run, already ended FAILED by MLflow
        client.set_tag(run_id, "error", msg[:4900])
        client.set_terminated(run_id, "FAILED")
        return run_id
    return record_failed_point(client, exp_id, task, msg)  # it failed before its run began


def settle_earlier_attempts(task: dict):
    """Before a point runs: end as KILLED the RUNNING runs an earlier attempt at it left (a
    worker that died: Ray retries, or a killed driver), and return its FINISHED run if an
    attempt got that far, so a retry never makes a second one. Attempts at one point never
    overlap: Ray retries a task only after its worker is gone."""
    import mlflow

    client = mlflow.MlflowClient()
    exp = mlflow.get_experiment_by_name(task["experiment"])
    finished = None
    for run in client.search_runs([exp.experiment_id], point_runs(task), max_results=1000):
        if run.info.status == "RUNNING":
            end_killed(client, run.info.run_id, "its process died; the point was run again")
        elif run.info.status == "FINISHED":
            finished = run
    return finished


def point_runs(task: dict) -> str:
    """Search filter: every run of this task's grid point under this sweep's parent."""
    return tag_filter({"grid_key": task["tags"]["grid_key"], "mlflow.parentRunId": task["parent_run_id"]}, status=None)


def record_failed_point(client, exp_id: str, task: dict, msg: str) -> str:
    """A FAILED run, nested under the sweep, for a point that failed without a run of its own."""
    p = task["point"]
    run = client.create_run(exp_id, run_name=f"{p.net}-{p.split}-s{p.seed}-failed",
                            tags={**task["tags"], "mlflow.parentRunId": task["parent_run_id"], "error": msg[:4900]})
    client.set_terminated(run.info.run_id, "FAILED")
    return run.info.run_id


def kill_running_children(client, exp_id: str, parent_id: str, why: str) -> None:
    """End as KILLED every child still RUNNING whose process is gone; nothing else will end it.
    A child that ended FAILED with no ``error`` tag was stopped from outside (Ray ending a dead
    driver's tasks, a SIGTERM): MLflow ended it on the way out, and the tag says so."""
    flt = tag_filter({"mlflow.parentRunId": parent_id}, status="RUNNING")
    for stale in client.search_runs([exp_id], flt, max_results=50000):
        end_killed(client, stale.info.run_id, why)
    flt = tag_filter({"mlflow.parentRunId": parent_id}, status="FAILED")
    for stopped in client.search_runs([exp_id], flt, max_results=50000):
        if "error" not in stopped.data.tags:
            client.set_tag(stopped.info.run_id, "error", "stopped from outside before it ended (its worker was told to "
                                                         "exit, e.g. when the sweep driver died)")


def worker_init(tracking_uri: str, threads: int) -> None:
    """Spawned worker: share the cores, log to the sweep's server, die with the driver."""
    import logging

    import torch

    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    torch.set_num_threads(threads)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s", force=True)
    _die_with_parent()


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when the driver dies (kill -9 included), so no orphan worker
    finishes a point after a resumed sweep has started it again."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass
