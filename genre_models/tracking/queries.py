"""Run queries, written once: "the runs with these tags (and this status), newest first"."""

from __future__ import annotations

from dataclasses import dataclass

from genre_models.errors import TrackingError
from genre_models.tracking.retry import store_client, store_retry
from genre_models.tracking.server import check_reachable


def tag_filter(tags: dict[str, str], status: str | None = "FINISHED") -> str:
    """An MLflow search filter for runs carrying every tag in ``tags`` (and ``status``, if given)."""
    parts = [f"tags.`{k}` = '{v}'" for k, v in tags.items()]
    if status:
        parts.append(f"attributes.status = '{status}'")
    return " and ".join(parts)


def runs_with(tags: dict[str, str], *, status: str | None = "FINISHED", experiment_ids: list[str] | None = None,
              max_results: int = 1, client=None) -> list:
    """Runs carrying ``tags`` (and ``status``), newest first, in ``experiment_ids`` (default:
    the active experiment, as ``mlflow.start_run`` would pick it)."""
    import mlflow

    flt, order = tag_filter(tags, status), ["attributes.start_time DESC"]
    if experiment_ids is None:
        return store_retry(mlflow.search_runs, filter_string=flt, order_by=order, output_format="list",
                           max_results=max_results)
    return (client or store_client()).search_runs(experiment_ids, flt, order_by=order, max_results=max_results)


def get_run(run_id: str):
    """The run, or None when the store has no such run."""
    import mlflow

    try:
        return store_retry(mlflow.get_run, run_id)
    except TrackingError:  # locked for longer than the wait: not the same as "no such run"
        raise
    except Exception:  # MlflowException (no such run) or a malformed id: both mean "not here"
        return None


def experiment_runs(experiment: str):
    """Every run of ``experiment`` as MLflow's DataFrame (``tags.*``, ``metrics.*``, ``params.*``
    columns), or None when the store has no such experiment."""
    import mlflow

    exp = store_retry(mlflow.get_experiment_by_name, experiment)
    if exp is None:
        return None
    return store_retry(mlflow.search_runs, [exp.experiment_id], max_results=100000)


def metric_steps(run_id: str, key: str) -> list[tuple[int, float]]:
    """A metric's history as (step, value), in step order."""
    return [(m.step, m.value) for m in sorted(store_client().get_metric_history(run_id, key), key=lambda m: m.step)]


#: The largest artifact file the report reads (its CSVs are kilobytes): anything bigger, or not a
#: plain file (a planted link to a device), is left out rather than read.
MAX_ARTIFACT_BYTES = 64 << 20


def _local_root(artifact_uri: str) -> str | None:
    """The folder of a run's artifacts when it is on this machine's file system, else None."""
    if artifact_uri.startswith("file://"):
        return artifact_uri[len("file://"):]
    return artifact_uri if "://" not in artifact_uri and ":" not in artifact_uri.split("/", 1)[0] else None


def _parse_file(target: str, parse):
    import os
    import stat

    st = os.stat(target)
    if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_ARTIFACT_BYTES:
        raise ValueError(f"{target}: not a plain file of at most {MAX_ARTIFACT_BYTES} bytes")
    return parse(target)


def _read_one(artifact_uri: str, path: str, parse):
    import os
    import tempfile

    root = _local_root(artifact_uri)
    if root is not None:
        return _parse_file(os.path.join(root, path), parse)
    import mlflow

    with tempfile.TemporaryDirectory(prefix="genre-bench-read-") as tmp:  # a server's or a bucket's: downloaded
        local = mlflow.artifacts.download_artifacts(artifact_uri=f"{artifact_uri.rstrip('/')}/{path}", dst_path=tmp)
        return _parse_file(local, parse)


def read_artifacts(runs: list[tuple[str, str]], path: str, parse, jobs: int = 8) -> dict:
    """``parse(local file)`` of artifact ``path`` of each (run id, artifact URI): straight from
    the file where the artifacts are on this machine (parsing is the cost there, and threads
    would only contend for the interpreter), else downloaded in ``jobs`` threads (a server's or
    a bucket's: waiting is the cost). A run whose file is missing, not a plain file, or does not
    parse is left out."""
    from concurrent.futures import ThreadPoolExecutor

    def one(item):
        rid, uri = item
        try:
            return rid, _read_one(uri, path, parse)
        except Exception:  # lost by the artifact store, or damaged: the other runs still count
            return rid, None

    local = [r for r in runs if _local_root(r[1]) is not None]
    remote = [r for r in runs if _local_root(r[1]) is None]
    found = dict(map(one, local))
    if remote:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            found.update(pool.map(one, remote))
    return {rid: value for rid, value in found.items() if value is not None}


def rows_of(path: str) -> list[list[str]]:
    """A small CSV's rows (the csv module: pandas' start-up per file is what thousands cost)."""
    import csv

    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def _votes_file(path: str) -> tuple[dict[str, bool], dict[str, str]]:
    """A run's track votes (track id -> right) and, where the run logged them, the tracks'
    repeat groups (track id -> group id)."""
    head, *body = rows_of(path)
    i, t, p = head.index("track_id"), head.index("true"), head.index("predicted")
    g = head.index("group") if "group" in head else None
    return {r[i]: r[t] == r[p] for r in body}, ({r[i]: r[g] for r in body if r[g]} if g is not None else {})


def run_votes(runs: list[tuple[str, str]], jobs: int = 8) -> tuple[dict, dict]:
    """Each (run id, artifact URI)'s per-track votes from its test predictions (run id -> track
    id -> right; runs without the file left out), and every repeat group a run recorded (track
    id -> group id)."""
    from genre_models.training.evaluate import PREDICTIONS_FILE

    found = read_artifacts(runs, PREDICTIONS_FILE, _votes_file, jobs)
    groups = {t: g for _, grp in found.values() for t, g in grp.items()}
    return {rid: right for rid, (right, _) in found.items()}, groups


def existing_store(tracking_uri: str | None = None) -> str | None:
    """The store's URI where it may hold runs, checked to answer within the deadline; None for a
    SQLite file that does not exist (a read-only query creates nothing to find that out)."""
    import os
    import sys

    if tracking_uri:
        uri = tracking_uri
    elif "mlflow" in sys.modules:  # it may have been pointed at a store in this process
        uri = sys.modules["mlflow"].get_tracking_uri()
    else:  # MLflow's own rule, without importing it (a second of a dry run's ten) to find no store
        uri = os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"
    path = uri[len("sqlite:///"):] if uri.startswith("sqlite:///") else None
    if path is not None and not os.path.isfile(path):
        return None
    check_reachable(uri)  # a server that does not answer: one line within the deadline, not MLflow's retries
    return uri


def finished_grid_keys(experiment: str, tracking_uri: str | None = None) -> set[str]:
    """The grid keys of FINISHED runs in ``experiment`` (what a resumed sweep skips), read only:
    a SQLite store that does not exist, or a store without the experiment, holds none, and
    nothing is created to find that out."""
    if existing_store(tracking_uri) is None:
        return set()
    import mlflow

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    exp = store_retry(mlflow.get_experiment_by_name, experiment)
    if exp is None:
        return set()
    runs = runs_with({}, experiment_ids=[exp.experiment_id], max_results=50000)
    return {r.data.tags["grid_key"] for r in runs if "grid_key" in r.data.tags}


#: How many finished runs of one net the projection reads back (newest first).
TIMING_RUNS = 50


@dataclass(frozen=True)
class RunTiming:
    """What one FINISHED training run says of a net's cost: its parts' sizes, its epoch budget
    and stop, its seconds, and where it ran. Read back from tags, params and metrics, checked."""

    n_train: int
    n_val: int
    cap: int
    early: bool
    stopped: int
    train_seconds: float  # the training loop's (or a baseline's fit's) seconds
    run_seconds: float  # the whole run's, from its start and end
    device: str  # "cpu", "cuda", "mps"
    batch: int
    host: str
    concurrent: int  # points its sweep ran at once on a shared device (1 outside a sweep)


def run_timings(net: str, digest: str, tracking_uri: str | None = None) -> tuple[list[RunTiming], int]:
    """The newest ``TIMING_RUNS`` FINISHED training runs of ``net`` on the dataset whose digest is
    ``digest``, in any experiment of the store, and how many more were left out because a figure
    was missing or impossible (data read back from a shared store is checked, never trusted).
    Read only: a SQLite store that does not exist holds none and is not created."""
    import re

    uri = existing_store(tracking_uri)
    if uri is None or not re.fullmatch(r"[0-9a-f]{4,64}", digest) or not re.fullmatch(r"[\w.:-]{1,200}", net):
        return [], 0
    client = store_client(uri)
    ids = [e.experiment_id for e in client.search_experiments(max_results=1000)]
    if not ids:
        return [], 0
    flt = f"{tag_filter({'stage': 'train', 'net': net})} and tags.dataset LIKE '%@{digest}'"
    runs = client.search_runs(ids, flt, order_by=["attributes.start_time DESC"], max_results=TIMING_RUNS)
    timings = [t for t in (_timing(r) for r in runs) if t is not None]
    return timings, len(runs) - len(timings)


def _timing(run) -> RunTiming | None:
    """One run's timing, or None where a figure is missing, not a number or impossible."""
    import math

    p, m, t, info = run.data.params, run.data.metrics, run.data.tags, run.info
    try:
        n_train, n_val, cap, batch = (int(p[k]) for k in ("n_train", "n_val", "epochs", "batch_size"))
        stopped, concurrent = int(m["stopped_epoch"]), int(t.get("concurrent_points", "1"))
        train_s, run_s = float(m["train_time_s"]), (info.end_time - info.start_time) / 1000
        early = {"True": True, "False": False}[p["early_stopping"]]
    except (KeyError, TypeError, ValueError, OverflowError):
        return None
    if not (n_train >= 1 and n_val >= 0 and batch >= 1 and 1 <= stopped <= cap and 1 <= concurrent <= 1024
            and math.isfinite(train_s) and math.isfinite(run_s) and 0 < train_s <= run_s):
        return None
    return RunTiming(n_train, n_val, cap, early, stopped, train_s, run_s, str(p.get("resolved_device", "")),
                     batch, str(t.get("owner_host", "")), concurrent)
