"""Where grid points run: in the driver's process, in spawned worker processes, or as Ray tasks.

* ``Inline`` (``jobs=1``): each point in this process when submitted.
* A ``ProcessPoolExecutor`` of spawned workers (``jobs > 1``), sharing the cores.
* ``RayExecutor``: each point a Ray task with CPU, GPU-fraction and memory requests
  (``grid.point_resources``), retried when its worker dies; the retry ends the dead attempt's
  run KILLED once its owner is provably gone and never repeats a FINISHED one
  (``SweepRecord.claim_point``).
* ``LocalRayHead``: ``ray start --head`` on 127.0.0.1, for benchmarks and tests.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

from genre_models.errors import ConfigError
from genre_models.sweep.grid import SweepConfig, point_resources
from genre_models.sweep.point import execute_point, one_line, worker_init
from genre_models.tracking.server import stop_process_group
from genre_models.util import point_console


class RayExecutor:
    """Each grid point as a Ray task on a cluster; a worker that dies mid-point is retried by Ray
    (``retries``), and the retry ends the dead attempt's run KILLED (``SweepRecord.claim_point``)."""

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
        # A server with basic auth: each task sends the driver's account, as local workers do.
        account = {k: os.environ[k] for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD") if k in os.environ}
        try:
            ray.init(address=cfg.ray_address or None, ignore_reinit_error=True, log_to_driver=False,
                     logging_level="WARNING", include_dashboard=False,
                     runtime_env={"env_vars": account} if account else None)
        except Exception as exc:  # nothing listens there, or another Ray version
            raise ConfigError(f"cannot connect to the Ray cluster at {cfg.ray_address or 'auto'}: {one_line(exc)}") from None
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


class Inline:
    """The executor for ``jobs=1``: runs each point in this process when submitted."""

    def submit(self, fn, arg) -> Future:
        f: Future = Future()
        with point_console():  # as quiet as a worker's
            f.set_result(fn(arg))
        return f

    def shutdown(self, **kw) -> None:
        pass


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




def make_executor(cfg: SweepConfig, worker_uri: str):
    """The executor for a sweep with points to run (see the module docstring)."""
    if cfg.executor == "ray":
        return RayExecutor(cfg)
    if cfg.jobs > 1:
        threads = max(1, (os.cpu_count() or 1) // cfg.jobs)
        return ProcessPoolExecutor(cfg.jobs, mp_context=mp.get_context("spawn"), initializer=worker_init,
                                   initargs=(worker_uri, threads, os.getpid()))
    return Inline()
