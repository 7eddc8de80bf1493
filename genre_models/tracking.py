"""MLflow conventions, written once: store and experiment resolution, tags, dataset inputs.

Store: ``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else MLflow 3's default
``sqlite:///mlflow.db`` in the working folder. Experiment: ``--experiment``, else
``MLFLOW_EXPERIMENT_NAME``, else ``gtzan-genre-benchmark``. Under ``mlflow run`` the run and
experiment are already chosen by MLflow (``MLFLOW_RUN_ID``) and are left alone.
"""

from __future__ import annotations

import os
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from genre_models.config import DEFAULT_EXPERIMENT, SplitConfig, flat_params
from genre_models.util import code_version, git_commit


# Bounded retries for every MLflow HTTP call (a user's own settings win): the waits are about
# 0, 2, 4, 8 and 16 s, so a server that is back within about half a minute loses nothing; a
# longer outage fails the call, and with it the run, loudly. MLflow's own default (7 retries,
# factor 2) waits about four minutes.
HTTP_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "5", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                "MLFLOW_HTTP_REQUEST_TIMEOUT": "60"}


def setup_tracking(tracking_uri: str | None = None, experiment: str | None = None) -> str:
    """Point MLflow at the store and experiment; returns the experiment name in use."""
    import mlflow

    for k, v in HTTP_RETRIES.items():
        os.environ.setdefault(k, v)
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # a sweep would print two lines per run
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    name = experiment_name(experiment)
    # Under `mlflow run`, MLFLOW_RUN_ID names a run MLflow already made in its experiment.
    # (MLFLOW_EXPERIMENT_ID is no such signal: mlflow.set_experiment itself exports it.)
    if not os.environ.get("MLFLOW_RUN_ID"):
        mlflow.set_experiment(name)
    return name


def experiment_name(experiment: str | None = None) -> str:
    """``--experiment``, else ``$MLFLOW_EXPERIMENT_NAME``, else the suite's default."""
    return experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT


def log_params_safely(params: dict) -> None:
    """log_params that tolerates `mlflow run`: MLflow has already logged the entry point's raw
    values (e.g. ``early_stopping=auto``); where the resolved value differs, it is logged as
    ``resolved.<key>`` instead of failing on MLflow's "changing param values" rule."""
    import mlflow

    run = mlflow.active_run()
    existing = mlflow.get_run(run.info.run_id).data.params if run else {}
    out = {}
    for key, value in params.items():
        if key in existing and existing[key] != str(value):
            out[f"resolved.{key}"] = value
        else:
            out[key] = value
    mlflow.log_params(out)


def base_tags(store) -> dict[str, str]:
    """Tags every run carries: dataset identity (synthetic data marked), code version, commit."""
    tags = {
        "dataset": f"{store.dataset_name}@{store.digest}",
        "dataset_name": store.dataset_name,
        "dataset_digest": store.digest,
        "dataset_synthetic": str(store.synthetic).lower(),
        "code_version": code_version(),
    }
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
        tags["git_commit"] = commit
    return tags


def log_dataset_input(store, split: SplitConfig, context: str) -> None:
    """``mlflow.log_input`` of the manifest, so the run's Datasets panel names the data and digest."""
    import mlflow

    import warnings

    manifest = store.manifest_with_split(split)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # source-type ambiguity and int-schema hints: not ours to fix
        ds = mlflow.data.from_pandas(manifest, source=store.meta["dataset"]["root"], name=store.dataset_name, targets="label")
        for attempt in range(3):
            try:
                mlflow.log_input(ds, context=context, tags={"digest": store.digest, "synthetic": str(store.synthetic).lower()})
                return
            except mlflow.exceptions.MlflowException as exc:
                # Two runs registering the same dataset at once (a parallel sweep) race on the
                # store's unique (experiment, name, digest) row; the loser finds it on a retry.
                if "UNIQUE constraint" not in str(exc) or attempt == 2:
                    raise
                time.sleep(0.2 * (attempt + 1))


@dataclass(frozen=True)
class RunPlacement:
    """Where a stage's run goes: nested under a sweep's parent run, with the sweep's tags."""

    parent_run_id: str | None = None
    tags: dict = field(default_factory=dict)


def start_run(run_name: str, placement: RunPlacement | None = None, standalone: bool = False):
    """The one way a stage starts its MLflow run (train, gan)."""
    import mlflow

    placement = placement or RunPlacement()
    if standalone:
        return standalone_run(run_name, placement)
    return mlflow.start_run(run_name=run_name, parent_run_id=placement.parent_run_id, tags=placement.tags or None)


@contextmanager
def standalone_run(run_name: str, placement: RunPlacement | None = None) -> Iterator:
    """``mlflow.start_run`` for a run of its own, also inside ``mlflow run``.

    Under ``mlflow run`` the environment's ``MLFLOW_RUN_ID`` makes every plain ``start_run``
    resume the entry point's run; a prerequisite run (net6's GAN) must not land in it. The
    variable is hidden for the block and restored after; the experiment stays the same.
    """
    import mlflow

    placement = placement or RunPlacement()
    saved = os.environ.pop("MLFLOW_RUN_ID", None)
    try:
        with mlflow.start_run(run_name=run_name, parent_run_id=placement.parent_run_id, tags=placement.tags or None) as run:
            yield run
    finally:
        if saved is not None:
            os.environ["MLFLOW_RUN_ID"] = saved


@contextmanager
def artifact_dir(artifact_path: str | None = None) -> Iterator[Path]:
    """A temp folder whose files are logged as artifacts (under ``artifact_path``) when the block ends."""
    import mlflow

    with tempfile.TemporaryDirectory(prefix="genre-bench-") as tmp:
        yield Path(tmp)
        mlflow.log_artifacts(tmp, artifact_path)


def log_preprocess_run(result, split: SplitConfig, extra_params: dict | None = None) -> str:
    """Log one preprocessing run: params, counts per split and genre, skips, manifest. Returns the run id."""
    import mlflow

    from genre_models.preprocess import split_counts

    store = result.store
    params = {**flat_params(split, "split."), **{f"features.{k}": v for k, v in store.meta["features"].items()},
              "cache_key": result.key, "layout": result.layout, **(extra_params or {})}
    name = f"preprocess-{split.split}-s{split.seed}"
    with mlflow.start_run(run_name=name) as run:
        mlflow.set_tags({**base_tags(store), "stage": "preprocess", "split": split.split, "seed": str(split.seed),
                         "cache_reused": str(result.reused).lower(), "cache_path": store.path})
        log_params_safely(params)
        mlflow.log_metrics({k: float(v) for k, v in split_counts(store, split).items()})
        mlflow.log_metric("preprocess_seconds", result.seconds)
        log_dataset_input(store, split, context="preprocess")
        with artifact_dir() as out:
            store.manifest_with_split(split).to_csv(out / "manifest.csv", index=False)
            (out / "skipped.txt").write_text("".join(f"{line}\n" for line in result.skipped) or "(none)\n")
        return run.info.run_id


def verify_record(run_id: str, metrics=(), histories: dict | None = None, artifacts=()) -> None:
    """Read a run back from the store before it is called FINISHED: every metric in ``metrics``,
    at least ``n`` steps of each ``histories[name]``, every top-level artifact in ``artifacts``.

    A logging call that gave up after its retries raises by itself; this catches what a
    retry cannot see (a store that answered but lost a write), and a run that another process
    already ended (a resumed sweep took it for dead), which must not then turn FINISHED.
    Raises ``TrackingError``.
    """
    import mlflow

    from genre_models.errors import TrackingError

    client = mlflow.MlflowClient()
    run = client.get_run(run_id)
    problems = []
    if run.info.status != "RUNNING":  # e.g. a resumed sweep or a retry took this attempt for dead
        problems.append(f"it was ended as {run.info.status} by another process ({run.data.tags.get('error', 'no reason')})")
    missing = sorted(set(metrics) - set(run.data.metrics))
    if missing:
        problems.append(f"metrics missing: {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}")
    for name, n in (histories or {}).items():
        got = len(client.get_metric_history(run_id, name))
        if got < n:
            problems.append(f"{name} has {got} of {n} steps")
    gone = sorted(set(artifacts) - {a.path for a in client.list_artifacts(run_id)})
    if gone:
        problems.append(f"artifacts missing: {', '.join(gone)}")
    if problems:
        raise TrackingError(f"run {run_id} on {mlflow.get_tracking_uri()}: the record is incomplete ({'; '.join(problems)})")
