"""Run queries, written once: "the runs with these tags (and this status), newest first"."""

from __future__ import annotations

from genre_models.errors import TrackingError
from genre_models.tracking.retry import store_client, store_retry


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
