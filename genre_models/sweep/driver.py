"""``benchmark sweep``: a grid as one MLflow parent run with a child run per grid point.

* **Resume.** A point with a FINISHED run of its ``grid_key`` is skipped; a re-run of the same
  sweep reuses its parent run and marks runs a killed driver left RUNNING as KILLED.
* **Concurrency.** Each point is claimed before it runs (``tracking.sweeps``): two identical
  sweeps on one store share the parent run and split the points; a point the other sweep holds
  is looked at again every ``RETRY_BUSY_S`` and, once finished there, counted as skipped.
* **Failure isolation.** A failing point's run ends FAILED with an ``error`` tag and the sweep
  goes on; a point whose prerequisite failed is recorded FAILED without running.
* **Parallelism.** ``jobs > 1`` runs points in spawned worker processes. With a SQLite store a
  local ``mlflow server`` on 127.0.0.1 fronts it for the sweep's duration, so concurrent writers
  never meet SQLite's "database is locked"; it is stopped (by PID) afterwards.
* **Ray** (``executor="ray"``): see ``executors.py``. Workers log to one HTTP tracking server
  with proxied artifacts and, by default, read the data from a features run's artifacts
  (``genre_models.tracking.shipping``), not from ``--data-dir``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from genre_models.config import DataConfig, FeatureConfig
from genre_models.data.store import FeatureStore
from genre_models.errors import ConfigError, interrupt_signal
from genre_models.models.plugins import loaded_refs
from genre_models.models.registry import get_net
from genre_models.sweep.executors import make_executor
from genre_models.sweep.grid import (
    GridPoint, SweepConfig, build_grid, check_folds, dependencies, get_grid, grid_keys, point_config, point_resources,
)
from genre_models.sweep.cost.estimate import Cost, estimate
from genre_models.sweep.point import execute_point, one_line
from genre_models.sweep.cost.model import Sizes
from genre_models.sweep.cost.words import duration
from genre_models.sweep.register import register_best
from genre_models.tracking.records import base_tags, dataset_tag, dataset_words
from genre_models.tracking.server import LocalServer, check_remote_tracking
from genre_models.tracking.setup import setup_tracking
from genre_models.tracking.sweeps import SweepRecord
from genre_models.tracking.shipping import features_uri, open_features, publish_features
from genre_models.training.runtime import gpu_free_bytes, resolve_device
from genre_models.util import log
from genre_models.workers import stop_workers


class OverBudget(ConfigError):
    """The points left are projected to take longer than ``--max-hours``: nothing was run."""


@dataclass
class SweepResult:
    parent_run_id: str
    points: int
    finished: int  # run by this invocation
    skipped: int  # already FINISHED
    failed: int
    seconds: float
    outcomes: dict[str, dict] = field(default_factory=dict)  # point label -> outcome
    best: dict = field(default_factory=dict)
    server_pid: int | None = None  # the local mlflow server this sweep started (and stopped), if any
    registered: list = field(default_factory=list)  # tracking.model_registry.Registered, per net and split
    dataset: str = ""  # the dataset tag its runs carry


def _progress_line(done: int, running: int, total: int, started: float, durations: list[float], jobs: int) -> str:
    remaining = total - done - running
    if durations:
        eta = (sum(durations) / len(durations)) * (remaining + running / 2) / max(jobs, 1)
        eta_s = f"{int(eta // 60)}m{int(eta % 60):02d}s"
    else:
        eta_s = "?"
    return f"sweep: {done}/{total} done, {running} running, {remaining} waiting, elapsed {time.time() - started:.0f} s, ETA {eta_s}"


@dataclass
class _Plan:
    """The sweep's points, their prerequisites, configs and identities."""

    points: list[GridPoint]
    deps: dict[GridPoint, list[GridPoint]]
    configs: dict
    keys: dict[GridPoint, str]
    sweep_key: str
    store: FeatureStore
    cache_key: str


def _plan(cfg: SweepConfig) -> _Plan:
    """Features first, in this process: every point then reuses the cache (and the digest keys them)."""
    pre = open_features(DataConfig(data_dir=cfg.data_dir, features=FeatureConfig(image_size=get_grid(cfg.grid).image_size),
                                   cache_dir=cfg.cache_dir, jobs=cfg.preprocess_jobs))
    check_folds(cfg, len(pre.store.tracks))
    points = build_grid(cfg)
    configs = {p: point_config(p, cfg) for p in points}
    keys = grid_keys(points, cfg, pre.store.digest)
    sweep_key = hashlib.sha256(json.dumps(sorted(keys.values())).encode()).hexdigest()[:20]
    return _Plan(points, dependencies(points), configs, keys, sweep_key, pre.store, pre.key)


def _open_parent(record: SweepRecord, cfg: SweepConfig, plan: _Plan) -> str:
    """The sweep's parent run: the earlier one with this sweep key (resumed), else a new one."""
    params = {**{k: (",".join(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
              "n_points": len(plan.points), "data_dir": os.path.abspath(cfg.data_dir)}
    grid = [{**asdict(p), "grid_key": plan.keys[p]} for p in plan.points]
    note = (f"Sweep of the `{cfg.grid}` grid ({get_grid(cfg.grid).description}): {len(plan.points)} points, nets "
            f"{', '.join(cfg.nets)}, splits {', '.join(cfg.splits)}, seeds 0-{cfg.seeds - 1}, on "
            f"{dataset_words(plan.store)}. Its child runs are the points; `best_runs.json` names the run chosen per net and split on validation.")
    parent_id, resumed = record.open_parent(plan.sweep_key, f"sweep-{cfg.grid}-{plan.sweep_key[:8]}",
                                            {**base_tags(plan.store), "grid": cfg.grid, "mlflow.note.content": note},
                                            params, grid)
    if resumed:
        log.info("resuming sweep %s (parent run %s)", plan.sweep_key, parent_id)
    return parent_id


def _data_source(cfg: SweepConfig, plan: _Plan, todo: list[GridPoint], record: SweepRecord, parent_id: str) -> str:
    """``--data-dir`` itself, or (shipped data) the URI of a features run the workers download."""
    if not (cfg.shipped and todo):
        return cfg.data_dir
    fid, reused = publish_features(plan.store, plan.cache_key, any(p.kind == "gan" for p in todo), record.exp_id,
                                   cfg.preprocess_jobs, base_tags(plan.store))
    record.set_tag(parent_id, "features_run_id", fid)
    source = features_uri(fid)
    log.info("workers read the data from %s (%s)", source, "reused" if reused else "just published")
    return source


#: Seconds before a point that another process holds is looked at again.
RETRY_BUSY_S = 2.0


@dataclass
class _Queue:
    """The points not yet done: when each may be tried next, and the runs of other processes it
    waited on (``watched``: if one of them fails, the failure is adopted, not repeated)."""

    not_before: dict[GridPoint, float]
    watched: dict[GridPoint, tuple[str, ...]] = field(default_factory=dict)

    def ready(self, plan: _Plan, outcomes: dict) -> list[GridPoint]:
        """Points whose prerequisites are all done (in grid order), tried-again ones included."""
        return [p for p in self.not_before if all(d in outcomes for d in plan.deps[p])]

    def busy(self, p: GridPoint, outcome: dict) -> None:
        self.not_before[p] = time.monotonic() + RETRY_BUSY_S
        self.watched[p] = (*self.watched.get(p, ()), *([outcome["run_id"]] if outcome.get("run_id") else []))
        log.info("%s is being run by %s: looking again in %.0f s", p.label, outcome.get("owner"), RETRY_BUSY_S)


def _submit(executor, p: GridPoint, plan: _Plan, outcomes: dict, task, queue: _Queue) -> Future:
    """Hand one point to the executor; a net that needs a failed point is claimed and recorded FAILED."""
    t = {**task(p), "watched": queue.watched.get(p, ())}
    failed = [d for d in plan.deps[p] if outcomes[d]["status"] == "FAILED"]
    if failed and p.kind == "train" and get_net(p.net).uses_gan:
        t["not_run"] = f"not run: the {failed[0].label} point it needs failed"
    return executor.submit(execute_point, t)


@dataclass
class Slots:
    """How many points may run at once and, for points packed on one GPU, how much of its memory
    their estimates (``grid.point_resources``) may add up to. A point that would not fit waits
    for running ones to finish; one alone always runs (it may still fit: the estimate is rough)."""

    count: int
    memory: int = 0  # bytes; 0: no memory limit (CPU, Ray, one point at a time)
    need: dict = field(default_factory=dict)  # point -> estimated bytes
    held: dict = field(default_factory=dict)  # running point -> its estimate

    def admits(self, p: GridPoint, running: int) -> bool:
        if running >= self.count:
            return False
        return not (self.memory and self.held) or sum(self.held.values()) + self.need.get(p, 0) <= self.memory

    def take(self, p: GridPoint) -> None:
        self.held[p] = self.need.get(p, 0)

    def give(self, p: GridPoint) -> None:
        self.held.pop(p, None)


def slots_for(cfg: SweepConfig, todo: list[GridPoint]) -> Slots:
    """``--jobs`` slots (all at once under Ray, which places points itself); on a CUDA device with
    ``--jobs`` above 1, also 90% of the GPU's free memory, shared out by each point's estimate."""
    if cfg.executor != "local":
        return Slots(len(todo))
    if cfg.jobs == 1 or resolve_device(cfg.device).type != "cuda":
        return Slots(cfg.jobs)
    return Slots(cfg.jobs, int(0.9 * gpu_free_bytes()), {p: point_resources(p, cfg)["memory"] for p in todo})


def _schedule(executor, todo: list[GridPoint], plan: _Plan, outcomes: dict, task, slots: Slots, progress) -> None:
    """Submit every point whose prerequisites are done (as ``slots`` admit) until all are done; a
    point another process holds (``BUSY``) goes back in the queue and is tried again."""
    queue, running = _Queue({p: 0.0 for p in todo}), {}
    while queue.not_before or running:
        now = time.monotonic()
        for p in queue.ready(plan, outcomes):
            if not slots.admits(p, len(running)):
                continue
            if queue.not_before[p] <= now:
                del queue.not_before[p]
                slots.take(p)
                running[_submit(executor, p, plan, outcomes, task, queue)] = p
                progress(len(running))
        if not running:
            ready = queue.ready(plan, outcomes)
            if not ready:  # only points whose prerequisites can never finish: should not happen
                raise RuntimeError(f"sweep stalled with {len(queue.not_before)} points waiting")
            time.sleep(max(0.05, min(queue.not_before[p] for p in ready) - now))
            continue
        done, _ = wait(list(running), timeout=RETRY_BUSY_S if queue.not_before else None,
                       return_when=FIRST_COMPLETED)
        for f in done:
            p = running.pop(f)
            slots.give(p)
            try:
                outcome = f.result()
            except Exception as exc:  # the worker process itself died (OOM, signal)
                outcome = {"status": "FAILED", "error": f"worker died: {one_line(exc)}", "seconds": 0.0, "metrics": {}}
            if outcome["status"] == "BUSY":
                queue.busy(p, outcome)
                continue
            outcomes[p] = outcome
            progress(len(running), outcome.get("seconds", 0.0))


def _start(cfg: SweepConfig, tracking_uri: str | None, experiment: str | None) -> tuple[SweepRecord, str]:
    """Check the store answers (``setup_tracking`` does), point MLflow at it; the sweep's record and experiment name."""
    experiment = setup_tracking(tracking_uri, experiment)
    return SweepRecord(experiment), experiment


def run_sweep(cfg: SweepConfig, tracking_uri: str | None = None, experiment: str | None = None,
              echo=lambda line, final=False: None) -> SweepResult:
    """Run (or resume) the sweep. ``echo(line, final)`` receives the progress line."""
    started = time.time()
    resolve_device(cfg.device)  # before any store or data is touched
    record, experiment = _start(cfg, tracking_uri, experiment)
    plan = _plan(cfg)
    finished_keys = record.finished_grid_keys()
    todo = [p for p in plan.points if plan.keys[p] not in finished_keys]
    cost = _cost(cfg, plan, todo, record.uri, echo)  # before the parent run: over --max-hours nothing is left behind
    parent_id = _open_parent(record, cfg, plan)
    if cost is not None:
        record.log_projection(parent_id, cost.as_dict())  # its clock starts here: extraction and probe are behind
    projected = cost.projection.points if cost is not None else {}
    concurrent = str(min(cfg.jobs, len(todo))) if cost is not None and cost.device == "CPU" else "1"
    outcomes: dict[GridPoint, dict] = {p: {"status": "SKIPPED"} for p in plan.points if plan.keys[p] in finished_keys}
    if cfg.executor == "ray" and todo:
        check_remote_tracking(record.uri, record.experiment)
    data_source = _data_source(cfg, plan, todo, record, parent_id)
    server, worker_uri = None, record.uri
    if cfg.executor == "local" and cfg.jobs > 1 and todo and record.uri.startswith("sqlite:"):
        server = LocalServer(record.uri, Path(cfg.cache_dir).expanduser() / "sweep-server").__enter__()
        worker_uri = server.uri
        record.write_through(worker_uri)  # from here on the driver writes through the server too
    executor = make_executor(cfg, worker_uri) if todo else None

    def task(p: GridPoint) -> dict:
        tags = {**p.coords, "grid_key": plan.keys[p], "grid": cfg.grid, "sweep_key": plan.sweep_key,
                "concurrent_points": concurrent, **({"projected_seconds": f"{projected[p]:.1f}"} if p in projected else {})}
        return {"point": p, "config": replace(plan.configs[p], data_dir=data_source), "tracking_uri": worker_uri,
                "experiment": experiment, "parent_run_id": parent_id, "tags": tags, "node_cache": cfg.shipped,
                "system_metrics": cfg.system_metrics, "net_refs": loaded_refs()}

    durations: list[float] = []

    def progress(running: int, seconds: float | None = None) -> None:
        if seconds is not None:
            durations.append(seconds)
        echo(_progress_line(len(outcomes), running, len(plan.points), started, durations, cfg.jobs))

    try:
        if executor is not None:
            _schedule(executor, todo, plan, outcomes, task, slots_for(cfg, todo), progress)
    except BaseException as exc:  # Ctrl-C, SIGTERM, or the driver itself failing: no run stays RUNNING
        _end_stopped(exc, record, parent_id)
        raise
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        if server is not None:
            server.__exit__(None, None, None)
            record.write_through(record.uri)  # the workers are gone: the driver alone writes the store again
    try:
        return _finish(record, parent_id, plan, outcomes, started, server, echo, cfg.register)
    except BaseException as exc:  # any error after the points (the registry, the views): the parent ends too
        _end_stopped(exc, record, parent_id)
        raise


def store_statistics(store: FeatureStore) -> tuple:
    """The dataset's segment statistics, labels and tracks: what the baselines' probe fits on."""
    tracks = store.sample_tracks("stats")
    return np.asarray(store.stats, dtype=np.float32), store.tracks.label.to_numpy()[tracks], tracks


def _cost(cfg: SweepConfig, plan: _Plan, todo: list[GridPoint], uri: str, echo) -> Cost | None:
    """The projected cost of the points left, in one line (and what would make it feasible where
    it is over a day); over ``--max-hours`` the sweep stops here, before any run is made."""
    if not todo:
        return None
    store = plan.store
    cost = estimate(cfg, todo, Sizes(len(store.tracks), float(store.mfcc.shape[0]), store.path, extracted=True),
                    digest=store.digest, tracking_uri=uri, stats=store_statistics(store))
    echo(cost.line(), final=True)
    for line in cost.advice():
        echo(line, final=True)
    if cfg.max_hours is not None and cost.projection.hours > cfg.max_hours:
        raise OverBudget(f"the sweep is projected to take {duration(cost.projection.makespan_s)}, over --max-hours "
                         f"{cfg.max_hours:g}; nothing was run (see the lines above, or `--dry-run`)")
    return cost


def _end_stopped(exc: BaseException, record: SweepRecord, parent_id: str) -> None:
    """The sweep stops before its end: its workers go, the runs they held and the parent end
    KILLED with the signal as the reason (FAILED with the error, for a failure of the driver).
    Running the same command again resumes under the same parent."""
    sig = interrupt_signal(exc)
    why = f"{sig} received" if sig else f"the sweep driver failed: {one_line(exc)}"
    stop_workers()  # --jobs workers: they would finish points unrecorded
    try:
        record.end_dead_children(parent_id, why)
        record.end_parent(parent_id, "KILLED" if sig else "FAILED", why)
    except Exception as err:  # the store went away too: the next run of the command ends them
        log.warning("could not end the sweep's runs (%s): %s", why, one_line(err))


def _register(best: dict, record: SweepRecord, parent_id: str, echo) -> list:
    """The best run per net and split into the Model Registry; one line each."""
    registered, refused = register_best(best)
    for r in registered:
        echo(f"registered {r.uri} (version {r.version}{'' if r.new else ', unchanged'}): run {r.run_id}", final=True)
    for model, why in refused.items():
        echo(f"warning: not registered: genre-bench-{model}: {why}", final=True)
    if registered:
        record.set_tag(parent_id, "registered_models", ", ".join(f"{r.name}@{r.split} v{r.version}" for r in registered))
    if refused:
        record.set_tag(parent_id, "registration_refused", "; ".join(f"{m}: {w}" for m, w in refused.items())[:4900])
    return registered


def _finish(record: SweepRecord, parent_id: str, plan: _Plan, outcomes: dict, started: float, server,
            echo, register: bool) -> SweepResult:
    """End the parent run with the sweep's counts and best runs (registered, unless told not to)."""
    record.end_dead_children(parent_id, "its worker process died mid-run")
    counts = {s: sum(o["status"] == s for o in outcomes.values()) for s in ("FINISHED", "SKIPPED", "FAILED")}
    best = record.best_runs(plan.sweep_key)
    registered = _register(best, record, parent_id, echo) if register else []
    base = record.uri if record.uri.startswith("http") else "<the MLflow UI's address>"
    for split, route in record.save_views(dict.fromkeys(p.split for p in plan.points)).items():
        echo(f"view: nets side by side on `{split}`: {base}{route}", final=True)
    seconds, total = time.time() - started, len(plan.points)
    record.finish(parent_id, counts, total, seconds, best)
    echo(f"sweep {plan.sweep_key}: {total} points, {counts['FINISHED']} run, {counts['SKIPPED']} skipped (already "
         f"finished), {counts['FAILED']} failed, in {seconds:.0f} s; parent run {parent_id}", final=True)
    return SweepResult(parent_id, total, counts["FINISHED"], counts["SKIPPED"], counts["FAILED"], seconds,
                       {p.label: o for p, o in outcomes.items()}, best,
                       server.proc.pid if server is not None and server.proc is not None else None, registered,
                       dataset_tag(plan.store))
