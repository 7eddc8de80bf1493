"""Which MLflow store and experiment a command uses.

Store: ``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else MLflow 3's default
``sqlite:///mlflow.db`` in the working folder. Experiment: ``--experiment``, else
``MLFLOW_EXPERIMENT_NAME``, else ``gtzan-genre-benchmark``. Under ``mlflow run`` the run and
experiment are already chosen by MLflow (``MLFLOW_RUN_ID``) and are left alone.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from typing import Iterator

from genre_models.config import DEFAULT_EXPERIMENT
from genre_models.errors import TrackingError
from genre_models.tracking.claims import end_orphaned_runs
from genre_models.tracking.retry import store_cause, store_client, store_retry
from genre_models.tracking.schema import open_store, sqlite_path
from genre_models.tracking.server import check_reachable


# Bounded retries for every MLflow HTTP call (a user's own settings win): the waits are about
# 0, 2, 4, 8 and 16 s, so a server that is back within about half a minute loses nothing; a
# longer outage fails the call, and with it the run, loudly. MLflow's own default (7 retries,
# factor 2) waits about four minutes.
HTTP_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "5", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                "MLFLOW_HTTP_REQUEST_TIMEOUT": "60"}


def setup_tracking(tracking_uri: str | None = None, experiment: str | None = None, end_orphans: bool = False) -> str:
    """Point MLflow at the store and experiment; returns the experiment name in use.
    ``end_orphans``: also end KILLED the experiment's RUNNING runs whose genre-bench owner is
    provably gone (``claims.end_orphaned_runs``); a command of its own does, while a sweep's
    points leave that to the sweep, which says why its own runs ended."""
    import mlflow

    for k, v in HTTP_RETRIES.items():
        os.environ.setdefault(k, v)
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # a sweep would print two lines per run
    check_reachable(tracking_uri or mlflow.get_tracking_uri())  # a server that never answers: said now, in seconds
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    name = experiment_name(experiment)
    # Under `mlflow run`, MLFLOW_RUN_ID names a run MLflow already made in its experiment.
    # (MLFLOW_EXPERIMENT_ID is no such signal: mlflow.set_experiment itself exports it.)
    private_new_store(mlflow.get_tracking_uri())
    exp = None
    if not os.environ.get("MLFLOW_RUN_ID"):
        with _store_lock(mlflow.get_tracking_uri()):
            open_store(mlflow.get_tracking_uri())  # a new store made whole, another's migration waited for
            exp = store_retry(mlflow.set_experiment, name)
            describe_experiment(exp)
    elif os.environ.get("MLFLOW_EXPERIMENT_ID"):
        exp = store_retry(mlflow.get_experiment, os.environ["MLFLOW_EXPERIMENT_ID"])
        describe_experiment(exp)
    if exp is not None and end_orphans:
        end_orphaned_runs(exp.experiment_id)
    return name


EXPERIMENT_NOTE = (
    "genre-bench: music genre classification on GTZAN, the study's nets (and your own) under one protocol. "
    "Runs by `stage` tag: `train` (one net, split and seed; its description says which), `gan` (a WaveGAN for "
    "net6), `preprocess` (the features and skipped files), `sweep` (a grid's parent run; points are its children), "
    "`features` (data shipped to workers). Compare nets in the runs table with the filter "
    "`tags.stage = 'train'` and the columns `tags.net`, `tags.split`, `metrics.test_accuracy`, "
    "`metrics.test_track_accuracy`, `metrics.stopped_epoch`. Test metrics are linked to the logged model and "
    "the dataset (one digest per dataset, as in the `dataset` tag). `benchmark report` writes the tables "
    "with confidence intervals; the Model Registry holds `genre-bench-<net>@<split>`, chosen on validation.")

#: MLflow 3's UI opens an experiment of this kind on its runs table, not on the GenAI traces page.
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development", "mlflow.note.content": EXPERIMENT_NOTE}


def describe_experiment(exp) -> None:
    """Give the experiment its kind and description, where it has none (a user's own are kept)."""
    from mlflow.exceptions import MlflowException

    missing = {k: v for k, v in EXPERIMENT_TAGS.items() if k not in (exp.tags or {})}
    client = store_client()
    for key, value in missing.items():
        try:
            client.set_experiment_tag(exp.experiment_id, key, value)
        except MlflowException as exc:
            # Two commands opening a new experiment together (through a server, so the store
            # lock does not serialise them): the other one inserted the same tag first.
            if "UNIQUE constraint failed" not in str(exc) and "RESOURCE_ALREADY_EXISTS" not in str(exc):
                raise
            if (client.get_experiment(exp.experiment_id).tags or {}).get(key) is None:
                client.set_experiment_tag(exp.experiment_id, key, value)


@contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """For a SQLite store: hold an exclusive lock on its folder while this process first opens
    it. Two commands starting together on a new store would otherwise both run MLflow's schema
    migrations ("duplicate column name") or both create the experiment."""
    path = sqlite_path(uri)
    folder = os.path.dirname(os.path.abspath(path)) if path else None
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        fcntl = None
    fd = None
    if fcntl is not None and folder is not None and os.path.isdir(folder):
        try:
            fd = os.open(folder, os.O_RDONLY)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # an unreadable folder, or a file system without locks: go on without one
            pass
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the lock


def experiment_name(experiment: str | None = None) -> str:
    """``--experiment``, else ``$MLFLOW_EXPERIMENT_NAME``, else the suite's default."""
    return experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT


def current_tracking_uri() -> str:
    """The store MLflow writes to now (for messages and reachability checks)."""
    import mlflow

    return mlflow.get_tracking_uri()


def use_store(tracking_uri: str | None) -> None:
    """Point MLflow at ``tracking_uri`` (if given) without choosing an experiment (read-only
    commands), with the same bounded retries, and the same deadline on a server that does not answer."""
    import mlflow

    for k, v in HTTP_RETRIES.items():
        os.environ.setdefault(k, v)
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    check_reachable(mlflow.get_tracking_uri())


def use_experiment(name: str) -> str | None:
    """Make the existing experiment ``name`` the active one (a report's run goes there); its id,
    or None when the store has no such experiment (nothing is created)."""
    import mlflow

    exp = store_retry(mlflow.get_experiment_by_name, name)
    if exp is None:
        return None
    store_retry(mlflow.set_experiment, experiment_id=exp.experiment_id)
    return exp.experiment_id


def experiment_id(name: str) -> str:
    """The id of the experiment named ``name`` (which ``setup_tracking`` made exist)."""
    import mlflow

    return store_retry(mlflow.get_experiment_by_name, name).experiment_id


def mlflow_error_message(exc: BaseException) -> str | None:
    """A tracking-store or MLflow error as one line for the CLI, naming the store and the real
    cause (a server that stopped answering, said plainly); None for any other exception."""
    from mlflow.exceptions import MlflowException

    cause = store_cause(exc)
    if cause is not None:
        return f"tracking store {current_tracking_uri()}: {cause}"
    return _one_line(exc.message) if isinstance(exc, MlflowException) else None


def private_new_store(uri: str) -> None:
    """A SQLite store this command is the first to open is its owner's alone: the file 0600
    (``schema.create_store`` makes it so), and the ``mlruns/`` its runs' artifacts go to
    (MLflow's default root beside it) 0700. MLflow itself would make them 0644 and 0755,
    readable by every local user. A store that exists keeps the modes its owner gave it."""
    path = sqlite_path(uri)
    if path is None or path == ":memory:" or os.path.exists(path):
        return
    try:
        os.mkdir("mlruns", 0o700)
    except OSError:  # there already (its owner's choice), or not ours to make
        pass


def open_existing_store(tracking_uri: str | None) -> str:
    """Point MLflow at a store that must already exist (``report``, ``predict``): reading never
    creates a store, nor the folder it would be in. Returns the URI in use."""
    use_store(tracking_uri)
    uri = current_tracking_uri()
    path = sqlite_path(uri)
    if path is not None and not os.path.isfile(path):
        raise TrackingError(f"tracking store {uri}: {path} does not exist; nothing to read (check --tracking-uri)")
    open_store(uri)
    return uri


def _one_line(text: str) -> str:
    """MLflow's error in one line; a server that stopped answering, said plainly."""
    first = text.strip().splitlines()[0] if text.strip() else "unknown error"
    m = re.match(r"API request to (https?://[^/\s]+)(\S*) failed with exception .*Max retries exceeded", first)
    if m:
        cause = re.search(r"\[Errno \d+\] ([^\"')]+)|(Read timed out)", first)
        why = (cause.group(1) or cause.group(2)).strip() if cause else "no answer"
        tries = os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "7")
        return (f"tracking server {m.group(1)} stopped answering ({why}; gave up on {m.group(2) or '/'} after {tries} "
                "retries); what was still to be logged is missing, and no run was marked FINISHED")
    m = re.match(r"API request to (?:endpoint )?(\S+) failed with error code (401|403)\b", first)
    if m and m.group(2) == "401":
        return (f"tracking server {current_tracking_uri()} refused the request (401: not authenticated); set "
                "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD to an account on it")
    if m:
        return (f"tracking server {current_tracking_uri()} refused the request to {m.group(1)} (403: this account is signed in but may "
                "not do that: the experiment or registered model belongs to another user who has not granted it; ask "
                "them or the server's admin for permission, or use another name)")
    return f"MLflow: {first}"
