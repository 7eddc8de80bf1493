"""Running one grid point, in the driver's process or a worker's. Its run bookkeeping (the
claim that makes it run once, earlier attempts) is ``tracking.sweeps.SweepRecord``.

A point never raises for its own failure: its claimed run ends FAILED with an ``error`` tag and
the sweep goes on.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace

from genre_models.config import default_cache_dir
from genre_models.errors import interrupt_signal
from genre_models.models.plugins import use_refs
from genre_models.sweep.grid import GridPoint
from genre_models.tracking.logger import MlflowLogger, RunPlacement
from genre_models.tracking.claims import release
from genre_models.tracking.setup import setup_tracking
from genre_models.tracking.sweeps import Claim, SweepRecord
from genre_models.util import console_logging, die_with_parent, log, verbose
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


def _settled(claim: Claim) -> dict:
    """The outcome of a point this process did not get to run (see ``SweepRecord.claim_point``)."""
    if claim.finished is not None:
        run = claim.finished
        return {"status": "SKIPPED", "run_id": run.info.run_id, "seconds": 0.0, "note": "already finished",
                "metrics": {k: run.data.metrics[k] for k in SUMMARY_METRICS if k in run.data.metrics}}
    if claim.failed is not None:
        run = claim.failed
        msg = f"failed in another process's run {run.info.run_id}: {run.data.tags.get('error', 'no reason given')}"
        return {"status": "FAILED", "run_id": run.info.run_id, "error": msg, "seconds": 0.0, "metrics": {}}
    run = claim.busy
    return {"status": "BUSY", "run_id": run.info.run_id if run is not None else None, "seconds": 0.0, "metrics": {},
            "owner": (f"{run.data.tags.get('owner_host')} pid {run.data.tags.get('owner_pid')}" if run is not None
                      else "another process")}


def execute_point(task: dict) -> dict:
    """Claim one grid point and run it (in this process or a worker); never raises for the
    point's own failure. A point another process holds comes back ``BUSY``, to be tried again.
    ``task["not_run"]`` (a prerequisite failed): claimed and recorded FAILED, not run."""
    setup_tracking(task["tracking_uri"], task["experiment"])
    record = SweepRecord(task["experiment"])
    p: GridPoint = task["point"]
    t0 = time.perf_counter()
    claim = record.claim_point(task["parent_run_id"], task["tags"]["grid_key"], p.label, task["tags"],
                               task.get("watched", ()))
    if claim.run_id is None:
        return _settled(claim)
    try:
        if task.get("not_run"):
            raise DependencyFailed(task["not_run"])
        use_refs(task.get("net_refs", {}))  # plugin nets the driver loaded by package.module:factory
        if task.get("threads"):  # a Ray point's CPUs: its torch threads, whatever the share says
            os.environ["GENRE_BENCH_THREADS"] = str(task["threads"])
        cfg = task["config"]
        if task.get("node_cache"):  # shipped data: this node's own cache, not the driver's path
            cfg = replace(cfg, cache_dir=default_cache_dir())
        placement = RunPlacement(task["parent_run_id"], task["tags"], run_id=claim.run_id)
        run_id, metrics = _run_point(p, cfg, MlflowLogger(placement, system_metrics=task.get("system_metrics", False)))
        return {"status": "FINISHED", "run_id": run_id, "seconds": time.perf_counter() - t0, "metrics": metrics}
    except Exception as exc:
        msg = str(exc) if isinstance(exc, DependencyFailed) else one_line(exc)
        if not isinstance(exc, DependencyFailed):
            log.warning("grid point %s failed: %s", p.label, msg)
        record.end_point_failed(claim.run_id, msg)
        return {"status": "FAILED", "run_id": claim.run_id, "error": msg, "seconds": time.perf_counter() - t0,
                "metrics": {}}
    except BaseException as exc:  # Ctrl-C or SIGTERM, also between the claim and the stage's own run
        sig = interrupt_signal(exc)
        if sig is not None:
            record.end_killed_if_running(claim.run_id, f"{sig} received")
        raise
    finally:
        release(claim.run_id)


class DependencyFailed(Exception):
    """A point not run because a point it needs failed."""


def worker_init(tracking_uri: str, threads: int, driver: int) -> None:
    """Spawned worker: share the cores, log to the sweep's server, die with the driver (pid ``driver``)."""
    import logging

    import torch

    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    torch.set_num_threads(threads)
    console_logging(logging.INFO if verbose() else logging.WARNING)
    die_with_parent(driver)  # no orphan worker finishes a point after a resumed sweep has started it again
