"""The MLflow tracking server: ``benchmark server``, the local one a parallel sweep puts in
front of a SQLite store, and the checks a sweep makes before it relies on one."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from genre_models.errors import ConfigError
from genre_models.util import log


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
