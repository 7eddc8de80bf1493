"""The MLflow tracking server: ``benchmark server``, the local one a parallel sweep puts in
front of a SQLite store, and the checks a sweep makes before it relies on one.

**Authentication** (``benchmark server --auth``): MLflow's own basic-auth app. The admin account
is taken from ``MLFLOW_TRACKING_USERNAME`` and ``MLFLOW_TRACKING_PASSWORD`` (the variables MLflow
clients send), or from a file only its owner can read; never from the command line, where any
local user could read it in the process list. The app's settings, its user database and the
CSRF secret live in a folder only this user can enter (``mlflow-auth/``, 0700); the password
reaches the server process through its environment, not a file. Caveat: the user database
keeps the first admin password it was created with; to change it, use MLflow's
update-password API, or delete ``mlflow-auth/`` (all users go with it).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from genre_models.errors import ConfigError
from genre_models.settings import parse_number, setting
from genre_models.tracking.schema import create_store, sqlite_path
from genre_models.util import log, private_dir, visible, write_private

#: Where ``benchmark server --auth`` keeps the auth app's settings, users and secret (0700).
AUTH_FOLDER = "mlflow-auth"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)


def credentials(auth_file: str | None = None) -> Credentials:
    """The admin account: from ``auth_file`` (``username:password`` on its first line, a file
    only its owner may read) when given, else from ``MLFLOW_TRACKING_USERNAME`` and
    ``MLFLOW_TRACKING_PASSWORD``. Anything else is a one-line error."""
    if auth_file:
        path = Path(auth_file)
        try:
            st = path.stat()
            line = next(iter(path.read_text().splitlines()), "")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the credentials file ({exc.strerror})") from None
        if st.st_uid != os.getuid() or st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(f"{path}: the credentials file must be readable by its owner only (chmod 600 {path}); "
                              f"its mode is {stat.filemode(st.st_mode)}")
        user, sep, password = line.strip().partition(":")
        if not (sep and user and password):
            raise ConfigError(f"{path}: the credentials file's first line must be username:password")
        return Credentials(user, password)
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME", ""), os.environ.get("MLFLOW_TRACKING_PASSWORD", "")
    if not (user and password):
        raise ConfigError("--auth needs the admin account: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, "
                          "or give --auth-file FILE (username:password, chmod 600)")
    return Credentials(user, password)


#: MLflow's permissions, for what a user the admin adds may do with experiments not granted to them.
PERMISSIONS = ("READ", "EDIT", "MANAGE", "NO_PERMISSIONS")


def auth_environment(creds: Credentials, folder: Path, default_permission: str = "READ") -> dict[str, str]:
    """What the server process needs for MLflow's basic-auth app, its settings in ``folder``.
    ``default_permission``: what every user may do with an experiment nobody granted them
    (MLflow's default, READ, lets every user read every experiment)."""
    if default_permission not in PERMISSIONS:
        raise ConfigError(f"default permission must be one of {', '.join(PERMISSIONS)}, got {default_permission!r}")
    if not private_dir(folder):
        raise ConfigError(f"{folder}: cannot keep the server's users and secret there: it must be a folder only this "
                          "user can enter (it is another user's, a symlink, or open to others)")
    secret = folder / "secret_key"
    if not secret.is_file():
        write_private(secret, secrets.token_hex(32))
    ini = (f"[mlflow]\ndefault_permission = {default_permission}\ndatabase_uri = sqlite:///{folder.resolve() / 'basic_auth.db'}\n"
           f"admin_username = {creds.username}\nauthorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    write_private(folder / "basic_auth.ini", ini)
    return {"MLFLOW_AUTH_CONFIG_PATH": str(folder / "basic_auth.ini"), "MLFLOW_AUTH_ADMIN_PASSWORD": creds.password,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": secret.read_text().strip()}


def private_file(path: Path) -> None:
    """Create ``path`` (0600) if it is missing; close one of ours that others could read."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600))
        return
    except FileExistsError:
        pass
    st = os.lstat(path)
    if stat.S_ISREG(st.st_mode) and st.st_uid == os.getuid() and st.st_mode & 0o077:
        os.chmod(path, 0o600)
        log.info("%s was readable by other users: now 0600", path)


def private_store(backend_uri: str, artifacts_destination: str) -> None:
    """The server's own files readable by their owner only: a SQLite store file (0600) and a
    local artifact root (0700), created so or closed if they are ours and open to others.
    Otherwise any local user could read every run, and basic auth would guard nothing. The
    server process runs with umask 077, so what it writes later (SQLite's journal, artifacts)
    is private too."""
    db = sqlite_path(backend_uri)
    if db and db != ":memory:":
        if not os.path.exists(db):
            create_store(Path(db))  # migrated whole before the server or anyone else opens it
        private_file(Path(db))
    if "://" not in artifacts_destination or artifacts_destination.startswith("file://"):
        root = Path(artifacts_destination.removeprefix("file://"))
        root.parent.mkdir(parents=True, exist_ok=True)
        if not private_dir(root):
            raise ConfigError(f"{root}: cannot keep the server's artifacts there: it must be a folder only this user can "
                              "enter (it is another user's, a symlink, or open to others)")


def exposure_warning(host: str, auth: bool) -> str | None:
    """What to say when a server listens beyond this machine without authentication."""
    if host in LOOPBACK or auth:
        return None
    return (f"the server listens on {host} without authentication: anyone who can reach it can read, change or "
            "delete every run; use --auth (see the README's Security section)")


def server_command(backend_uri: str, artifacts_destination: str, host: str, port: int, workers: int,
                   allowed_hosts: str = "", auth: bool = False) -> list[str]:
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
    return [sys.executable, "-m", "mlflow", "server", *(["--app-name", "basic-auth"] if auth else []),
            "--backend-store-uri", backend_uri, "--host", host, "--port", str(port),
            "--workers", str(workers), *extra, "--artifacts-destination", dest]


class LocalServer:
    """``mlflow server`` with artifact proxying, started in a process group of its own and
    returned once it answers: in front of a SQLite store for a parallel sweep's concurrent
    writers (a free port on 127.0.0.1), or as ``benchmark server --background``. Its log is
    ``<workdir>/mlflow-server.log``; leaving the block stops the whole group."""

    def __init__(self, backend_uri: str, workdir: Path, port: int = 0, host: str = "127.0.0.1", workers: int = 1,
                 artifacts: str | None = None, allowed_hosts: str = "", auth: Credentials | None = None,
                 default_permission: str = "READ") -> None:
        self.backend_uri, self.workdir, self.port, self.host, self.workers = backend_uri, Path(workdir), port, host, workers
        self.allowed_hosts, self.auth, self.default_permission = allowed_hosts, auth, default_permission
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
        private_store(self.backend_uri, self.artifacts)
        env = {**os.environ, **(auth_environment(self.auth, self.workdir / AUTH_FOLDER, self.default_permission)
                                if self.auth else {})}
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(server_command(self.backend_uri, self.artifacts, self.host, port, self.workers,
                                                        self.allowed_hosts, self.auth is not None),
                                         stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True, env=env, umask=0o077)
        local = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        self.uri = f"http://{local}:{port}"
        deadline = time.time() + 90
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise ConfigError(f"mlflow server for {self.backend_uri} exited at start; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as r:
                    if r.status == 200:
                        log.info("MLflow server listening on %s:%d (pid %d) fronts %s", self.host, port, self.proc.pid,
                                 self.backend_uri)
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


#: The largest pid Linux hands out (``/proc/sys/kernel/pid_max`` at most 2**22).
PID_MAX = 4_194_304


def recorded_pid(pid_file: Path) -> int:
    """The pid ``benchmark server --background`` wrote: a small regular file of this user's,
    holding one whole number above 1 (never 0, 1 or a negative: ``killpg`` of those signals this
    command's own group, every process the user can reach, or a group by another name)."""
    try:
        st = os.lstat(pid_file)
    except FileNotFoundError:
        raise ConfigError(f"{pid_file.resolve()}: no such file; no --background server on this port was started here") from None
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or st.st_size > 64:
        raise ConfigError(f"{pid_file.resolve()}: not a pid file this user wrote (a link, another user's, or too "
                          "large); nothing was signalled")
    text = pid_file.read_text(errors="replace").strip()
    try:
        return int(parse_number(text, f"{pid_file.name}'s pid", 2, PID_MAX, integer=True))
    except ConfigError as exc:
        raise ConfigError(f"{exc}; nothing was signalled") from None


def server_process_problem(pid: int, port: int) -> str | None:
    """Why process ``pid`` is not the MLflow server this user started on ``port`` (alive, this
    user's, the leader of its own group, running ``mlflow server ... --port PORT``), or None.
    "gone" when no such process lives."""
    try:
        st = os.stat(f"/proc/{pid}")
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        pgid = os.getpgid(pid)
    except (FileNotFoundError, ProcessLookupError):
        return "gone"
    except OSError as exc:
        return f"its details cannot be read ({exc.strerror})"
    words = [w.decode(errors="replace") for w in cmd if w]
    if st.st_uid != os.getuid():
        return "it is another user's process"
    is_server = any(w.endswith("mlflow") or w == "mlflow" for w in words) and "server" in words
    if not is_server or f"--port={port}" not in words and ["--port", str(port)] not in [words[i:i + 2] for i in range(len(words))]:
        return f"it is not an MLflow server on port {port} (it runs {visible(' '.join(words)[:80])!s})"
    if pgid != pid:
        return "it is not the leader of its own process group, as a server started here is"
    return None


def stop_recorded_server(pid_file: Path, port: int) -> tuple[int, bool]:
    """Stop the ``--background`` server ``pid_file`` names, after checking it is one (see
    ``server_process_problem``); the file goes. Returns the pid and whether it was running. A
    file naming anything else is a one-line error, and nothing is signalled."""
    pid = recorded_pid(pid_file)
    problem = server_process_problem(pid, port)
    if problem == "gone":
        pid_file.unlink()
        return pid, False
    if problem:
        raise ConfigError(f"{pid_file.resolve()} names pid {pid}, but {problem}; nothing was signalled (remove the file "
                          "if the server is gone)")
    found = stop_process_group(pid)
    pid_file.unlink()
    return pid, found


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


#: How long (seconds) a tracking server may take to answer before a command gives up on it.
STORE_TIMEOUT_ENV = "GENRE_BENCH_STORE_TIMEOUT_S"


def store_timeout() -> float:
    """``$GENRE_BENCH_STORE_TIMEOUT_S``, 10 s by default (1 to 600)."""
    return setting(STORE_TIMEOUT_ENV)


def check_reachable(uri: str, timeout: float | None = None) -> None:
    """Fail before anything is read or launched when an HTTP tracking server does not answer:
    a refused connection at once, silence (a firewall that drops packets, a stalled server)
    after ``timeout`` seconds (``store_timeout()``)."""
    import socket
    import urllib.request

    if not uri.startswith(("http://", "https://")):
        return
    timeout = store_timeout() if timeout is None else timeout
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as r:
            if r.status == 200:
                return
            reason = f"HTTP {r.status}"
    except (socket.timeout, TimeoutError):
        reason = None
    except OSError as exc:
        inner = getattr(exc, "reason", exc)
        reason = None if isinstance(inner, (socket.timeout, TimeoutError)) else str(inner)
    if reason is None:
        raise ConfigError(f"tracking server {uri} did not answer within {timeout:g} s; check --tracking-uri, or set "
                          f"{STORE_TIMEOUT_ENV} to wait longer")
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
