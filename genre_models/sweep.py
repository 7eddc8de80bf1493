"""``benchmark sweep``: the study's grid as one MLflow parent run with a child run per grid point.

* **Grids are data** (``GRIDS``): ``study`` is the paper's protocol, ``fast`` a shorter one for
  real data on a laptop, ``demo`` the built-in synthetic data end to end in minutes.
* **Resume.** Each point is identified by ``grid_key``: a hash of its resolved config (data
  folder replaced by the dataset digest; device, cache and worker counts left out) and the code
  version. A point with a FINISHED run of that key is skipped; a re-run of the same sweep reuses
  its parent run and marks runs a killed driver left RUNNING as KILLED.
* **Failure isolation.** A failing point's run ends FAILED with an ``error`` tag (a FAILED run is
  created when it failed before its run began) and the sweep goes on.
* **Parallelism.** ``jobs > 1`` runs points in spawned worker processes. With a SQLite store a
  local ``mlflow server`` on 127.0.0.1 fronts it for the sweep's duration, so concurrent writers
  never meet SQLite's "database is locked"; it is stopped (by PID) afterwards.
* **Ray** (``executor="ray"``). Each point is a Ray task with CPU, GPU-fraction and memory
  requests (``point_resources``), retried when its worker dies; the retry ends the dead
  attempt's run KILLED and never repeats a FINISHED one (``_settle_earlier_attempts``). Workers
  log to one HTTP tracking server with proxied artifacts and, by default, read the data from a
  features run's artifacts (``genre_models.shipping``), not from ``--data-dir``.
* **Order.** Per split and seed: net5, then the GAN (whose quality figure reuses that net5),
  then net6 (which uses that GAN), then the image nets. A point waits for the points it needs.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path

from genre_models.config import (
    SPLITS, FeatureConfig, check_choice, GanConfig, PreprocessConfig, SplitConfig, TrainConfig, WaveGanConfig,
    default_cache_dir,
)
from genre_models.errors import ConfigError
from genre_models.models import NETS, get_net
from genre_models.util import code_version, log


@dataclass(frozen=True)
class GridSpec:
    """A named grid. ``image_epochs``: the fixed-epoch settings of the image nets (no early
    stopping); ``lstm_max_epochs``: the cap for the early-stopping nets."""

    name: str
    description: str
    image_epochs: tuple[int, ...]
    lstm_max_epochs: int
    image_size: int
    gan: WaveGanConfig
    gan_quality_epochs: int
    image_batch_size: int | None = None  # net1-4; None: the net's own (32)
    log_model: bool = True


GRIDS: dict[str, GridSpec] = {
    g.name: g
    for g in (
        GridSpec("study", "the study: net1-4 at 50 and 100 epochs, net5-6 with early stopping (patience 5, at most "
                 "200 epochs), the paper-size WaveGAN (d 64) and 2,798 clips per genre", (50, 100), 200, 180,
                 WaveGanConfig(), 200),
        GridSpec("fast", "a shorter protocol for real data on a laptop: net1-4 at 10 and 20 epochs on 90x90 images, "
                 "net5-6 at most 50 epochs, WaveGAN d 16 for 1,000 steps, 500 clips per genre", (10, 20), 50, 90,
                 WaveGanConfig(steps=1000, batch_size=32, d=16, per_genre=500), 50),
        GridSpec("demo", "the built-in synthetic data in minutes: net1-4 at 5 and 10 epochs on 32x32 images (batch 8), "
                 "net5-6 at most 8 epochs, WaveGAN d 4 for 20 steps, 30 clips per genre; models are not logged",
                 (5, 10), 8, 32, WaveGanConfig(steps=20, batch_size=8, d=4, per_genre=30), 4, image_batch_size=8,
                 log_model=False),
    )
}


def get_grid(name: str) -> GridSpec:
    try:
        return GRIDS[name]
    except KeyError:
        raise ConfigError(f"unknown grid {name!r}; valid grids: {', '.join(GRIDS)}") from None


EXECUTORS = ("local", "ray")
DATA_ACCESS = ("auto", "shared", "artifacts")


@dataclass(frozen=True)
class SweepConfig:
    data_dir: str
    grid: str = "study"
    nets: tuple[str, ...] = tuple(NETS)
    seeds: int = 3  # seeds 0 .. seeds-1
    splits: tuple[str, ...] = ("random", "track")
    max_epochs: int | None = None  # caps every net's epochs (and early-stopping maximum)
    jobs: int = 1
    device: str = "auto"
    precision: str = "fp32"
    cache_dir: str = field(default_factory=default_cache_dir)
    preprocess_jobs: int = 0
    executor: str = "local"  # local: this process or --jobs workers; ray: a Ray task per grid point
    ray_address: str = ""  # "": Ray's rule ($RAY_ADDRESS, else the cluster last started here, else a new local one)
    cpus_per_run: float = 1.0  # ray: CPUs each point reserves (and torch threads it uses)
    gpus_per_run: float = 0.0  # ray: GPU fraction each point reserves
    retries: int = 2  # ray: attempts after a worker dies mid-point
    data_access: str = "auto"  # shared | artifacts | auto (artifacts under ray, shared otherwise)

    def __post_init__(self) -> None:
        get_grid(self.grid)
        for net in self.nets:
            get_net(net)
        for s in self.splits:
            check_choice("split", s, SPLITS)
        if self.seeds < 1 or self.jobs < 1:
            raise ConfigError("--seeds and --jobs must be at least 1")
        if self.max_epochs is not None and self.max_epochs < 1:
            raise ConfigError(f"--max-epochs must be at least 1, got {self.max_epochs}")
        check_choice("executor", self.executor, EXECUTORS)
        check_choice("data access", self.data_access, DATA_ACCESS)
        if self.cpus_per_run <= 0 or self.gpus_per_run < 0 or self.retries < 0:
            raise ConfigError("--cpus-per-run must be positive, --gpus-per-run and --retries at least 0")

    @property
    def shipped(self) -> bool:
        """Whether workers get the data as a features run's artifacts rather than from --data-dir."""
        return self.data_access == "artifacts" or (self.data_access == "auto" and self.executor == "ray")


@dataclass(frozen=True)
class GridPoint:
    """One child run: a net (or the GAN) at one split, seed and epoch setting."""

    kind: str  # "train" | "gan"
    net: str  # registry name, or "gan"
    split: str
    seed: int
    epochs: int | None = None  # train points: fixed epochs, or the early-stopping maximum

    @property
    def label(self) -> str:
        e = f" e{self.epochs}" if self.epochs is not None else ""
        return f"{self.net}{e} {self.split} s{self.seed}"

    @property
    def coords(self) -> dict[str, str]:
        return {"grid.kind": self.kind, "grid.net": self.net, "grid.split": self.split, "grid.seed": str(self.seed),
                "grid.epochs": "" if self.epochs is None else str(self.epochs)}


def build_grid(cfg: SweepConfig) -> list[GridPoint]:
    """The grid's points in run order; see the module docstring for why this order."""
    spec = get_grid(cfg.grid)
    cap = (lambda e: min(e, cfg.max_epochs)) if cfg.max_epochs else (lambda e: e)
    points: list[GridPoint] = []
    for split in cfg.splits:
        for seed in range(cfg.seeds):
            lstm = [n for n in cfg.nets if NETS[n].early_stopping]
            for net in (n for n in lstm if not NETS[n].uses_gan):
                points.append(GridPoint("train", net, split, seed, cap(spec.lstm_max_epochs)))
            if any(NETS[n].uses_gan for n in cfg.nets):
                points.append(GridPoint("gan", "gan", split, seed))
            for net in (n for n in lstm if NETS[n].uses_gan):
                points.append(GridPoint("train", net, split, seed, cap(spec.lstm_max_epochs)))
            for net in (n for n in cfg.nets if not NETS[n].early_stopping):
                for e in sorted({cap(e) for e in spec.image_epochs}):
                    points.append(GridPoint("train", net, split, seed, e))
    return points


def dependencies(points: list[GridPoint]) -> dict[GridPoint, list[GridPoint]]:
    """The GAN waits for net5 (its quality figure reuses that run); net6 waits for the GAN."""
    deps: dict[GridPoint, list[GridPoint]] = {p: [] for p in points}
    for p in points:
        same = [q for q in points if q.split == p.split and q.seed == p.seed and q is not p]
        if p.kind == "gan":
            deps[p] = [q for q in same if q.kind == "train" and NETS[q.net].early_stopping and not NETS[q.net].uses_gan]
        elif NETS[p.net].uses_gan:
            deps[p] = [q for q in same if q.kind == "gan"]
    return deps


def point_config(p: GridPoint, cfg: SweepConfig) -> TrainConfig | GanConfig:
    spec = get_grid(cfg.grid)
    features = FeatureConfig(image_size=spec.image_size)
    if p.kind == "gan":
        return GanConfig(cfg.data_dir, spec.gan, p.split, p.seed, cfg.device, features, cfg.cache_dir, cfg.preprocess_jobs,
                         quality_epochs=spec.gan_quality_epochs, log_model=spec.log_model,
                         log_every=max(1, min(50, spec.gan.steps // 10)), preview_every=max(1, min(500, spec.gan.steps // 2)),
                         checkpoint_every=max(1, min(250, spec.gan.steps // 4)))
    net = NETS[p.net]
    return TrainConfig(net=p.net, data_dir=cfg.data_dir, epochs=p.epochs, early_stopping=net.early_stopping,
                       batch_size=spec.image_batch_size if net.input_kind == "image" else None, seed=p.seed, split=p.split, device=cfg.device,
                       precision=cfg.precision, features=features, cache_dir=cfg.cache_dir, jobs=cfg.preprocess_jobs,
                       log_model=spec.log_model, gan=spec.gan)


_NOT_IDENTITY = {"data_dir", "cache_dir", "jobs", "device", "num_workers", "log_every", "preview_every", "checkpoint_every"}


def grid_key(p: GridPoint, pc, digest: str) -> str:
    """What makes a point's result unique: its config (less device and bookkeeping), data and code."""
    conf = {k: v for k, v in asdict(pc).items() if k not in _NOT_IDENTITY}
    blob = json.dumps({"point": asdict(p), "config": conf, "dataset": digest, "code": code_version()}, sort_keys=True,
                      default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


# --------------------------------------------------------------------------- executing one point


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()


def execute_point(task: dict) -> dict:
    """Run one grid point (in this process or a worker). Never raises for the point's own failure."""
    import mlflow

    from genre_models.tracking import RunPlacement, setup_tracking

    setup_tracking(task["tracking_uri"], task["experiment"])
    p: GridPoint = task["point"]
    t0 = time.perf_counter()
    done = _settle_earlier_attempts(task)
    if done is not None:  # an attempt that died after finishing its run: nothing to redo
        return {"status": "FINISHED", "run_id": done.info.run_id, "seconds": 0.0, "note": "finished by an earlier attempt",
                "metrics": {k: done.data.metrics.get(k) for k in ("test_accuracy", "test_track_accuracy", "stopped_epoch",
                                                                   "gen_quality_accuracy") if k in done.data.metrics}}
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
        if p.kind == "gan":
            from genre_models.gan import run_gan

            res = run_gan(cfg, placement=placement)
            metrics = {"gen_quality_accuracy": res.quality["gen_quality_accuracy"]}
        else:
            from genre_models.train import train

            res = train(cfg, placement=placement)
            metrics = {k: res.metrics.get(k) for k in ("test_accuracy", "test_track_accuracy", "stopped_epoch")}
        return {"status": "FINISHED", "run_id": res.run_id, "seconds": time.perf_counter() - t0, "metrics": metrics}
    except Exception as exc:
        msg = _one_line(exc)
        log.warning("grid point %s failed: %s", p.label, msg)
        client = mlflow.MlflowClient()
        exp_id = mlflow.get_experiment_by_name(task["experiment"]).experiment_id
        own = client.search_runs([exp_id], _point_runs(task), order_by=["attributes.start_time DESC"], max_results=1)
        if own and own[0].info.start_time >= started_ms and own[0].info.status != "FINISHED":
            run_id = own[0].info.run_id  # the point's own run, already ended FAILED by MLflow
            client.set_tag(run_id, "error", msg[:4900])
            client.set_terminated(run_id, "FAILED")
        else:  # it failed before its run began
            run_id = _record_failed_point(client, exp_id, task, msg)
        return {"status": "FAILED", "run_id": run_id, "error": msg, "seconds": time.perf_counter() - t0, "metrics": {}}


def _settle_earlier_attempts(task: dict):
    """Before a point runs: end as KILLED the RUNNING runs an earlier attempt at it left (a
    worker that died: Ray retries, or a killed driver), and return its FINISHED run if an
    attempt got that far, so a retry never makes a second one. Attempts at one point never
    overlap: Ray retries a task only after its worker is gone."""
    import mlflow

    client = mlflow.MlflowClient()
    exp = mlflow.get_experiment_by_name(task["experiment"])
    finished = None
    for run in client.search_runs([exp.experiment_id], _point_runs(task), max_results=1000):
        if run.info.status == "RUNNING":
            _end_killed(client, run.info.run_id, "its process died; the point was run again")
        elif run.info.status == "FINISHED":
            finished = run
    return finished


def _point_runs(task: dict) -> str:
    """Search filter: every run of this task's grid point under this sweep's parent."""
    return f"tags.grid_key = '{task['tags']['grid_key']}' and tags.`mlflow.parentRunId` = '{task['parent_run_id']}'"


def _end_killed(client, run_id: str, why: str) -> None:
    client.set_tag(run_id, "error", f"KILLED: {why}")
    client.set_terminated(run_id, "KILLED")


def _record_failed_point(client, exp_id: str, task: dict, msg: str) -> str:
    """A FAILED run, nested under the sweep, for a point that failed without a run of its own."""
    p = task["point"]
    run = client.create_run(exp_id, run_name=f"{p.net}-{p.split}-s{p.seed}-failed",
                            tags={**task["tags"], "mlflow.parentRunId": task["parent_run_id"], "error": msg[:4900]})
    client.set_terminated(run.info.run_id, "FAILED")
    return run.info.run_id


def _kill_running_children(client, exp_id: str, parent_id: str, why: str) -> None:
    """End as KILLED every child still RUNNING whose process is gone; nothing else will end it.
    A child that ended FAILED with no ``error`` tag was stopped from outside (Ray ending a dead
    driver's tasks, a SIGTERM): MLflow ended it on the way out, and the tag says so."""
    flt = f"tags.`mlflow.parentRunId` = '{parent_id}' and attributes.status = 'RUNNING'"
    for stale in client.search_runs([exp_id], flt, max_results=50000):
        _end_killed(client, stale.info.run_id, why)
    flt = f"tags.`mlflow.parentRunId` = '{parent_id}' and attributes.status = 'FAILED'"
    for stopped in client.search_runs([exp_id], flt, max_results=50000):
        if "error" not in stopped.data.tags:
            client.set_tag(stopped.info.run_id, "error", "stopped from outside before it ended (its worker was told to "
                                                         "exit, e.g. when the sweep driver died)")


def _worker_init(tracking_uri: str, threads: int) -> None:
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


def point_resources(p: GridPoint, cfg: SweepConfig) -> dict:
    """What one grid point asks of a Ray node: CPUs, a GPU fraction, and memory in bytes.

    Memory is an estimate from the exact parameter count (the model built on PyTorch's meta
    device, so nothing is allocated): 16 bytes per parameter for weights, gradients and two
    optimizer moments, plus 1.5 GiB for data, activations and the interpreter. So net2-4's
    133M-parameter flatten head at 180x180 asks for about 3.5 GiB, net5 for about 1.5 GiB, and
    Ray will not stack four CNNs on a node that cannot hold them. Not a measurement: a node
    short of memory can still be overcommitted by other work.
    """
    res = {"num_cpus": cfg.cpus_per_run, "memory": int(16 * _parameters(p.net, cfg.grid) + 1.5 * 2**30)}
    if cfg.gpus_per_run:
        res["num_gpus"] = cfg.gpus_per_run
    return res


@lru_cache(maxsize=None)
def _parameters(net: str, grid: str) -> int:
    """Parameters of a grid's net (or its GAN, G and D), counted on the meta device."""
    import torch

    from genre_models.models import InputShape

    spec = get_grid(grid)
    with torch.device("meta"):
        if net == "gan":
            from genre_models.gan import build_units

            modules = [m for u in build_units(spec.gan, torch.device("meta")) for m in (u.G, u.D)]
        else:
            fc = FeatureConfig(image_size=spec.image_size)
            modules = [NETS[net].build(InputShape(fc.image_size, fc.frames_per_segment, fc.n_mfcc), "flatten")]
    return sum(t.numel() for m in modules for t in m.parameters())


class RayExecutor:
    """Each grid point as a Ray task on a cluster; a worker that dies mid-point is retried by Ray
    (``retries``), and the retry ends the dead attempt's run KILLED (``_settle_earlier_attempts``)."""

    def __init__(self, cfg: SweepConfig) -> None:
        if cfg.ray_address.split(":")[0] in ("127.0.0.1", "localhost"):
            # A head on loopback (started with this variable): without it the driver resolves the
            # address to the machine's interface address, where nothing listens. Ray reads it on import.
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        try:
            import ray
        except ImportError:
            raise ConfigError("--executor ray needs Ray: pip install 'genre-bench[ray]'") from None
        self.ray, self.cfg, self.refs = ray, cfg, []
        try:
            ray.init(address=cfg.ray_address or None, ignore_reinit_error=True, log_to_driver=False,
                     logging_level="WARNING", include_dashboard=False)
        except Exception as exc:  # nothing listens there, or another Ray version
            raise ConfigError(f"cannot connect to the Ray cluster at {cfg.ray_address or 'auto'}: {_one_line(exc)}") from None
        self._remote = ray.remote(execute_point)

    def submit(self, fn, task: dict) -> Future:
        res = point_resources(task["point"], self.cfg)
        ref = self._remote.options(max_retries=self.cfg.retries, retry_exceptions=False, **res).remote(
            {**task, "threads": max(1, int(self.cfg.cpus_per_run))})
        self.refs.append(ref)
        return ref.future()

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        for ref in self.refs:  # only unfinished ones are affected
            try:
                self.ray.cancel(ref, force=True)
            except Exception:
                pass
        self.ray.shutdown()


class _Inline:
    """The executor for ``jobs=1``: runs each point in this process when submitted."""

    def submit(self, fn, arg) -> Future:
        f: Future = Future()
        f.set_result(fn(arg))
        return f

    def shutdown(self, **kw) -> None:
        pass


# --------------------------------------------------------------------------- the local tracking server


def server_command(backend_uri: str, artifacts_destination: str, host: str, port: int, workers: int,
                   allowed_hosts: str = "") -> list[str]:
    """``mlflow server`` with artifact proxying: clients send artifacts through the server, which
    writes them under ``artifacts_destination`` (a folder, or s3://...), so no node needs a path
    the server's machine has. ``allowed_hosts``: the Host headers MLflow accepts besides its
    default (localhost and private IPs), e.g. the name workers use to reach it."""
    dest = artifacts_destination if "://" in artifacts_destination else os.path.abspath(artifacts_destination)
    extra = []
    if allowed_hosts:  # MLflow's option replaces its default list; keep the default and add these
        try:
            from mlflow.server.security_utils import get_default_allowed_hosts

            default = get_default_allowed_hosts()
        except ImportError:  # another MLflow layout: loopback only
            default = ["localhost", "127.0.0.1", "localhost:*", "127.0.0.1:*"]
        extra = ["--allowed-hosts", ",".join([*default, *(h.strip() for h in allowed_hosts.split(",") if h.strip())])]
    return [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_uri, "--host", host, "--port", str(port),
            "--workers", str(workers), *extra, "--artifacts-destination", dest]


class LocalServer:
    """``mlflow server`` with artifact proxying, started in a process group of its own and
    returned once it answers: in front of a SQLite store for a parallel sweep's concurrent
    writers (a free port on 127.0.0.1), or as ``benchmark server --background``. Its log is
    ``<workdir>/mlflow-server.log``; leaving the block stops the whole group."""

    def __init__(self, backend_uri: str, workdir: Path, port: int = 0, host: str = "127.0.0.1", workers: int = 1,
                 artifacts: str | None = None, allowed_hosts: str = "") -> None:
        self.backend_uri, self.workdir, self.port, self.host, self.workers = backend_uri, Path(workdir), port, host, workers
        self.allowed_hosts = allowed_hosts
        self.artifacts = artifacts or str(self.workdir / "mlartifacts")
        self.proc: subprocess.Popen | None = None
        self.uri = ""

    @property
    def log_path(self) -> Path:
        return self.workdir / "mlflow-server.log"

    def __enter__(self) -> "LocalServer":
        import urllib.request

        port = self.port
        if not port:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(server_command(self.backend_uri, self.artifacts, self.host, port, self.workers,
                                                        self.allowed_hosts),
                                         stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        local = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        self.uri = f"http://{local}:{port}"
        deadline = time.time() + 90
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise ConfigError(f"mlflow server for {self.backend_uri} exited at start; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as r:
                    if r.status == 200:
                        log.info("local MLflow server %s (pid %d) fronts %s", self.uri, self.proc.pid, self.backend_uri)
                        return self
            except OSError:
                time.sleep(0.5)
        self.__exit__(None, None, None)
        raise ConfigError(f"mlflow server for {self.backend_uri} did not answer on {self.uri} within 90 s")

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            stop_process_group(self.proc.pid, self.proc, grace=20.0)


def stop_process_group(pgid: int, proc: subprocess.Popen | None = None, grace: float = 5.0) -> bool:
    """SIGTERM process group ``pgid`` (a leader started with ``start_new_session``), then SIGKILL
    whatever is left after ``grace`` seconds. ``proc``, the leader if it is our child, is reaped
    so no zombie stays. False if there was no such group."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return sig != signal.SIGTERM
        if _group_gone(pgid, proc, grace):
            break
    return True


def _group_gone(pgid: int, proc: subprocess.Popen | None, timeout: float) -> bool:
    deadline = time.time() + timeout
    while True:
        if proc is not None:
            proc.poll()  # reap the leader, or its zombie keeps the group id alive
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        if time.time() >= deadline:
            return False
        time.sleep(0.1)


class LocalRayHead:
    """``ray start --head`` on 127.0.0.1 with ``num_cpus`` CPUs, for benchmarks and tests.

    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` keeps Ray on 127.0.0.1 rather than the machine's
    interface address. The head's daemons share one process group, stopped by its id on exit;
    ``env`` adds variables its workers see (e.g. their own ``GENRE_BENCH_CACHE``).
    """

    def __init__(self, num_cpus: int, env: dict | None = None) -> None:
        self.num_cpus, self.env = num_cpus, env or {}
        self.proc: subprocess.Popen | None = None
        self.address, self.temp, self.seconds = "", "", 0.0

    def __enter__(self) -> "LocalRayHead":
        import shutil
        import tempfile

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # Ray's socket paths must stay short
        beside = Path(sys.executable).parent / "ray"
        ray_bin = str(beside) if beside.exists() else (shutil.which("ray") or "ray")
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env.update({"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", **self.env})
        t0 = time.perf_counter()
        self.proc = subprocess.Popen([ray_bin, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
                                      "--num-cpus", str(self.num_cpus), "--include-dashboard=false",
                                      "--disable-usage-stats", "--temp-dir", self.temp],
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        out, _ = self.proc.communicate(timeout=180)  # returns once the head's daemons are up
        if self.proc.returncode != 0:
            self.__exit__(None, None, None)
            raise ConfigError(f"ray start --head failed: {(out.strip().splitlines() or ['no output'])[-1]}")
        self.seconds = time.perf_counter() - t0
        self.address = f"127.0.0.1:{port}"
        return self

    def __exit__(self, *exc) -> None:
        import shutil

        if self.proc is not None:
            stop_process_group(self.proc.pid, self.proc)
        shutil.rmtree(self.temp, ignore_errors=True)


# --------------------------------------------------------------------------- the sweep


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


def _progress_line(done: int, running: int, total: int, started: float, durations: list[float], jobs: int) -> str:
    remaining = total - done - running
    if durations:
        eta = (sum(durations) / len(durations)) * (remaining + running / 2) / max(jobs, 1)
        eta_s = f"{int(eta // 60)}m{int(eta % 60):02d}s"
    else:
        eta_s = "?"
    return f"sweep: {done}/{total} done, {running} running, {remaining} waiting, elapsed {time.time() - started:.0f} s, ETA {eta_s}"


def run_sweep(cfg: SweepConfig, tracking_uri: str | None = None, experiment: str | None = None,
              echo=lambda line, final=False: None) -> SweepResult:
    """Run (or resume) the sweep. ``echo(line, final)`` receives the progress line."""
    import mlflow

    from genre_models.preprocess import preprocess
    from genre_models.tracking import base_tags, setup_tracking

    started = time.time()
    check_reachable(tracking_uri or mlflow.get_tracking_uri())
    experiment = setup_tracking(tracking_uri, experiment)
    uri = mlflow.get_tracking_uri()
    client = mlflow.MlflowClient()
    exp_id = mlflow.get_experiment_by_name(experiment).experiment_id

    # Features first, in this process: every point then reuses the cache (and the digest keys them).
    spec = get_grid(cfg.grid)
    pre = preprocess(PreprocessConfig(cfg.data_dir, FeatureConfig(image_size=spec.image_size), SplitConfig(),
                                      cfg.cache_dir, cfg.preprocess_jobs))
    store = pre.store
    points = build_grid(cfg)
    deps = dependencies(points)
    configs = {p: point_config(p, cfg) for p in points}
    keys = {p: grid_key(p, configs[p], store.digest) for p in points}
    sweep_key = hashlib.sha256(json.dumps(sorted(keys.values())).encode()).hexdigest()[:20]

    finished_keys = set()
    for run in client.search_runs([exp_id], "attributes.status = 'FINISHED'", max_results=50000):
        if "grid_key" in run.data.tags:
            finished_keys.add(run.data.tags["grid_key"])
    parents = client.search_runs([exp_id], f"tags.sweep_key = '{sweep_key}' and tags.stage = 'sweep'",
                                 order_by=["attributes.start_time DESC"], max_results=1)
    if parents:
        parent_id = parents[0].info.run_id
        client.update_run(parent_id, status="RUNNING")
        _kill_running_children(client, exp_id, parent_id, "the sweep driver stopped before this run ended")
        log.info("resuming sweep %s (parent run %s)", sweep_key, parent_id)
    else:
        parent = client.create_run(exp_id, run_name=f"sweep-{cfg.grid}-{sweep_key[:8]}",
                                   tags={**base_tags(store), "stage": "sweep", "sweep_key": sweep_key, "grid": cfg.grid})
        parent_id = parent.info.run_id
        grid_params = {**{k: (",".join(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
                       "n_points": len(points), "data_dir": os.path.abspath(cfg.data_dir)}
        for k, v in grid_params.items():
            client.log_param(parent_id, k, v)
        client.log_text(parent_id, json.dumps([{**asdict(p), "grid_key": keys[p]} for p in points], indent=2), "grid.json")

    todo = [p for p in points if keys[p] not in finished_keys]
    outcomes: dict[GridPoint, dict] = {p: {"status": "SKIPPED"} for p in points if keys[p] in finished_keys}
    if cfg.executor == "ray" and todo:
        check_remote_tracking(uri, mlflow.get_experiment(exp_id))
    data_source = cfg.data_dir
    if cfg.shipped and todo:
        from genre_models.shipping import features_uri, publish_features

        fid, reused = publish_features(store, pre.key, any(p.kind == "gan" for p in todo), exp_id, cfg.preprocess_jobs,
                                       base_tags(store))
        client.set_tag(parent_id, "features_run_id", fid)
        data_source = features_uri(fid)
        log.info("workers read the data from %s (%s)", data_source, "reused" if reused else "just published")
    server = None
    worker_uri = uri
    if cfg.executor == "local" and cfg.jobs > 1 and todo and uri.startswith("sqlite:"):
        server = LocalServer(uri, Path(cfg.cache_dir).expanduser() / "sweep-server").__enter__()
        worker_uri = server.uri
        client = mlflow.MlflowClient(worker_uri)  # from here on the driver writes through the server too
    if cfg.executor == "ray" and todo:
        executor = RayExecutor(cfg)
    elif cfg.jobs > 1 and todo:
        import multiprocessing as mp

        threads = max(1, (os.cpu_count() or 1) // cfg.jobs)
        executor = ProcessPoolExecutor(cfg.jobs, mp_context=mp.get_context("spawn"), initializer=_worker_init,
                                       initargs=(worker_uri, threads))
    else:
        executor = _Inline()

    def task(p: GridPoint) -> dict:
        tags = {**p.coords, "grid_key": keys[p], "grid": cfg.grid, "sweep_key": sweep_key}
        return {"point": p, "config": replace(configs[p], data_dir=data_source), "tracking_uri": worker_uri,
                "experiment": experiment, "parent_run_id": parent_id, "tags": tags, "node_cache": cfg.shipped}

    pending = list(todo)
    running: dict[Future, GridPoint] = {}
    slots = cfg.jobs if cfg.executor == "local" else len(todo)  # Ray queues by resources itself
    durations: list[float] = []
    total = len(points)
    try:
        while pending or running:
            for p in list(pending):
                if len(running) >= slots:
                    break
                if all(d in outcomes for d in deps[p]):
                    pending.remove(p)
                    failed_dep = [d for d in deps[p] if outcomes[d]["status"] == "FAILED"]
                    if failed_dep and p.kind == "train" and NETS[p.net].uses_gan:
                        outcomes[p] = _dependency_failure(client, exp_id, task(p), failed_dep[0])
                        continue
                    running[executor.submit(execute_point, task(p))] = p
                    echo(_progress_line(len(outcomes), len(running), total, started, durations, cfg.jobs))
            if not running:
                if pending:  # only points whose dependencies can never finish: should not happen
                    raise RuntimeError(f"sweep stalled with {len(pending)} points waiting")
                break
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for f in done:
                p = running.pop(f)
                try:
                    out = f.result()
                except Exception as exc:  # the worker process itself died (OOM, signal)
                    out = {"status": "FAILED", "error": f"worker died: {_one_line(exc)}", "seconds": 0.0, "metrics": {}}
                outcomes[p] = out
                durations.append(out.get("seconds", 0.0))
                echo(_progress_line(len(outcomes), len(running), total, started, durations, cfg.jobs))
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        if server is not None:
            server.__exit__(None, None, None)
            client = mlflow.MlflowClient(uri)  # the workers are gone: the driver alone writes the store again

    _kill_running_children(client, exp_id, parent_id, "its worker process died mid-run")
    n_fin = sum(o["status"] == "FINISHED" for o in outcomes.values())
    n_skip = sum(o["status"] == "SKIPPED" for o in outcomes.values())
    n_fail = sum(o["status"] == "FAILED" for o in outcomes.values())
    best = best_runs(client, exp_id, sweep_key)
    seconds = time.time() - started
    client.log_metric(parent_id, "runs_finished", n_fin)
    client.log_metric(parent_id, "runs_skipped", n_skip)
    client.log_metric(parent_id, "runs_failed", n_fail)
    client.log_metric(parent_id, "runs_total", total)
    client.log_metric(parent_id, "sweep_seconds", seconds)
    if best:
        client.set_tag(parent_id, "best_run", "; ".join(f"{k}: {v['run_id']} (val {v['val_accuracy']:.3f}, test "
                                                       f"{v['test_accuracy']:.3f})" for k, v in best.items())[:4900])
        client.log_text(parent_id, json.dumps(best, indent=2), "best_runs.json")
    client.set_terminated(parent_id, "FAILED" if n_fail else "FINISHED")
    echo(f"sweep {sweep_key}: {total} points, {n_fin} run, {n_skip} skipped (already finished), {n_fail} failed, "
         f"in {seconds:.0f} s; parent run {parent_id}", final=True)
    return SweepResult(parent_id, total, n_fin, n_skip, n_fail, seconds, {p.label: o for p, o in outcomes.items()}, best,
                       server.proc.pid if server is not None and server.proc is not None else None)


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail before anything is launched when an HTTP tracking server does not answer."""
    import urllib.request

    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as r:
            if r.status == 200:
                return
            reason = f"HTTP {r.status}"
    except OSError as exc:
        reason = str(getattr(exc, "reason", exc))
    raise ConfigError(f"tracking server {uri} is unreachable ({reason}); start it or fix --tracking-uri")


def check_remote_tracking(uri: str, experiment) -> None:
    """Ray workers on other nodes must reach the store and the artifacts through one server."""
    if not uri.startswith(("http://", "https://")):
        raise ConfigError(f"--executor ray needs a tracking server every node can reach (--tracking-uri http://HOST:PORT; "
                          f"`benchmark server` starts one), not {uri}")
    loc = experiment.artifact_location or ""
    scheme = loc.split(":", 1)[0] if ":" in loc.split("/", 1)[0] else ""
    if scheme in ("", "file"):  # a local path: mlflow-artifacts:, s3:, gs: ... are reachable from any node
        raise ConfigError(f"experiment {experiment.name!r} keeps its artifacts at {loc}, a path on the server's machine "
                          "that other nodes cannot write; use a new --experiment on a server started with "
                          "--artifacts-destination (`benchmark server` does)")


def _dependency_failure(client, exp_id: str, task: dict, dep: GridPoint) -> dict:
    msg = f"not run: the {dep.label} point it needs failed"
    run_id = _record_failed_point(client, exp_id, task, msg)
    return {"status": "FAILED", "run_id": run_id, "error": msg, "seconds": 0.0, "metrics": {}}


def best_runs(client, exp_id: str, sweep_key: str) -> dict[str, dict]:
    """Per net and split, the FINISHED run with the best final ``val_accuracy`` (chosen on
    validation, never on test), with its test accuracy for the record."""
    best: dict[str, dict] = {}
    runs = client.search_runs([exp_id], f"tags.sweep_key = '{sweep_key}' and tags.stage = 'train' and "
                                        "attributes.status = 'FINISHED'", max_results=50000)
    for r in runs:
        m = r.data.metrics
        if "val_accuracy" not in m:
            continue
        k = f"{r.data.tags.get('net')}/{r.data.tags.get('split')}"
        if k not in best or m["val_accuracy"] > best[k]["val_accuracy"]:
            best[k] = {"run_id": r.info.run_id, "val_accuracy": m["val_accuracy"],
                       "test_accuracy": m.get("test_accuracy", float("nan")), "run_name": r.info.run_name}
    return dict(sorted(best.items()))


def ensure_demo_data(data_dir: str) -> bool:
    """Write the demo's synthetic data (10 tracks per genre, 10 s) unless the folder holds data. True if written."""
    from genre_models.dataset import SYNTHETIC_MARKER
    from genre_models.synth import SynthConfig, write_synthetic_gtzan

    root = Path(data_dir)
    if (root / SYNTHETIC_MARKER).is_file() or (root.is_dir() and any(root.iterdir())):
        return False
    write_synthetic_gtzan(SynthConfig(str(root), tracks_per_genre=10, seconds=10.0, seed=0))
    return True
