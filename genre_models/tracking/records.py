"""What every run records, written once: identity tags, the dataset input, parameters, and
the read-back check before a run may end FINISHED."""

from __future__ import annotations

import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from genre_models.config import SplitConfig
from genre_models.data.store import FeatureStore
from genre_models.errors import TrackingError
from genre_models.tracking.retry import artifact_deadline, store_client
from genre_models.util import code_version, git_commit


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


def dataset_tag(store: FeatureStore) -> str:
    """The one name of a dataset everywhere: ``<name>@<digest>`` (the ``dataset`` tag, and the
    name and digest of its MLflow dataset)."""
    return f"{store.dataset_name}@{store.digest}"


def dataset_words(store: FeatureStore) -> str:
    """The dataset as run descriptions name it: its tag, and whether it is the synthetic demo data."""
    return f"`{dataset_tag(store)}`" + (" (synthetic demo data, not GTZAN)" if store.synthetic else "")


def base_tags(store: FeatureStore) -> dict[str, str]:
    """Tags every run carries, one per fact: the dataset (synthetic data marked), the code
    version and, in a git checkout, MLflow's own commit tag."""
    tags = {"dataset": dataset_tag(store), "dataset_synthetic": str(store.synthetic).lower(), "code_version": code_version()}
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    return tags


def mlflow_dataset(store: FeatureStore):
    """The store's manifest as an MLflow dataset whose digest is the store's own, so every run,
    part and context shows one digest per dataset, the one in the ``dataset`` tag. (MLflow would
    otherwise hash the table, and each split's table hashes differently.)"""
    import mlflow

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # source-type ambiguity and int-schema hints: not ours to fix
        ds = mlflow.data.from_pandas(store.manifest, source=store.meta["dataset"]["root"], name=store.dataset_name,
                                     targets="label", digest=store.digest)
        ds.schema  # inferred (and cached) here, under the filter: MLflow infers it lazily when a metric names the dataset
    return ds


def log_dataset_input(store: FeatureStore, split: SplitConfig, context: str) -> None:
    """``mlflow.log_input`` of the dataset, with the split and seed as the input's tags."""
    import mlflow

    ds = mlflow_dataset(store)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for attempt in range(3):
            try:
                mlflow.log_input(ds, context=context, tags={**split.tags, "synthetic": str(store.synthetic).lower()})
                return
            except mlflow.exceptions.MlflowException as exc:
                # Two runs registering the same dataset at once (a parallel sweep) race on the
                # store's unique (experiment, name, digest) row; the loser finds it on a retry.
                if "UNIQUE constraint" not in str(exc) or attempt == 2:
                    raise
                time.sleep(0.2 * (attempt + 1))


@contextmanager
def artifact_dir(artifact_path: str | None = None) -> Iterator[Path]:
    """A temp folder whose files are logged as artifacts (under ``artifact_path``) when the block ends."""
    import mlflow

    with tempfile.TemporaryDirectory(prefix="genre-bench-") as tmp:
        yield Path(tmp)
        with artifact_deadline():
            mlflow.log_artifacts(tmp, artifact_path)


def verify_record(run_id: str, metrics=(), histories: dict | None = None, artifacts=()) -> None:
    """Read a run back from the store before it is called FINISHED: every metric in ``metrics``,
    at least ``n`` steps of each ``histories[name]``, every top-level artifact in ``artifacts``.

    A logging call that gave up after its retries raises by itself; this catches what a
    retry cannot see (a store that answered but lost a write), and a run that another process
    already ended (a resumed sweep took it for dead), which must not then turn FINISHED.
    Raises ``TrackingError``.
    """
    import mlflow

    client = store_client()
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


def end_killed(client, run_id: str, why: str) -> None:
    """End a run KILLED, with an ``error`` tag saying why (its process is gone)."""
    client.set_tag(run_id, "error", f"KILLED: {why}")
    client.set_terminated(run_id, "KILLED")
