"""Run queries, written once: "the runs with these tags (and this status), newest first"."""

from __future__ import annotations

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


def finished_grid_keys(experiment: str, tracking_uri: str | None = None) -> set[str]:
    """The grid keys of FINISHED runs in ``experiment`` (what a resumed sweep skips), read only:
    a SQLite store that does not exist, or a store without the experiment, holds none, and
    nothing is created to find that out."""
    import os

    import mlflow

    uri = tracking_uri or mlflow.get_tracking_uri()
    path = uri[len("sqlite:///"):] if uri.startswith("sqlite:///") else None
    if path is not None and not os.path.isfile(path):
        return set()
    check_reachable(uri)  # a server that does not answer: one line within the deadline, not MLflow's retries
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    exp = store_retry(mlflow.get_experiment_by_name, experiment)
    if exp is None:
        return set()
    runs = runs_with({}, experiment_ids=[exp.experiment_id], max_results=50000)
    return {r.data.tags["grid_key"] for r in runs if "grid_key" in r.data.tags}
