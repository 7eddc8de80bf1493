"""Running one grid point, in the driver's process or a worker's. Its run bookkeeping (earlier
attempts, points that failed before their run began) is ``tracking.sweeps.SweepRecord``.

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
from genre_models.tracking.setup import setup_tracking
from genre_models.tracking.sweeps import SweepRecord
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


def _failed_run_name(p: GridPoint) -> str:
    return f"{p.net}-{p.split}-s{p.seed}-failed"


def execute_point(task: dict) -> dict:
    """Run one grid point (in this process or a worker). Never raises for the point's own failure."""
    setup_tracking(task["tracking_uri"], task["experiment"])
    record = SweepRecord(task["experiment"])
    p: GridPoint = task["point"]
    parent_id, grid_key = task["parent_run_id"], task["tags"]["grid_key"]
    t0 = time.perf_counter()
    done = record.settle_earlier_attempts(parent_id, grid_key)
    if done is not None:  # an attempt that died after finishing its run: nothing to redo
        return {"status": "FINISHED", "run_id": done.info.run_id, "seconds": 0.0, "note": "finished by an earlier attempt",
                "metrics": {k: done.data.metrics[k] for k in SUMMARY_METRICS if k in done.data.metrics}}
    if task.get("threads"):
        import torch

        torch.set_num_threads(task["threads"])
    cfg = task["config"]
    if task.get("node_cache"):  # shipped data: this node's own cache, not the driver's path
        cfg = replace(cfg, cache_dir=default_cache_dir())
    placement = RunPlacement(parent_id, {**task["tags"], "worker_host": socket.gethostname(),
                                         "worker_pid": str(os.getpid())})
    started_ms = int(time.time() * 1000) - 1000  # MLflow start times are in ms; allow for clock rounding
    try:
        run_id, metrics = _run_point(p, cfg, MlflowLogger(placement))
        return {"status": "FINISHED", "run_id": run_id, "seconds": time.perf_counter() - t0, "metrics": metrics}
    except Exception as exc:
        msg = one_line(exc)
        log.warning("grid point %s failed: %s", p.label, msg)
        run_id = record.end_point_failed(parent_id, grid_key, started_ms, _failed_run_name(p), task["tags"], msg)
        return {"status": "FAILED", "run_id": run_id, "error": msg, "seconds": time.perf_counter() - t0, "metrics": {}}


def dependency_failure(record: SweepRecord, task: dict, dep: GridPoint) -> dict:
    """A point not run because a point it needs failed: recorded as a FAILED run saying so."""
    msg = f"not run: the {dep.label} point it needs failed"
    run_id = record.record_failed_point(task["parent_run_id"], _failed_run_name(task["point"]), task["tags"], msg)
    return {"status": "FAILED", "run_id": run_id, "error": msg, "seconds": 0.0, "metrics": {}}


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
