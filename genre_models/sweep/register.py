"""After a sweep: its chosen run per net and split goes to the Model Registry
(``tracking.model_registry``), with a model logged from the run's saved weights if it has none."""

from __future__ import annotations

from genre_models.tracking.model_registry import Registered, register_run
from genre_models.tracking.models import fetch_net, link_metrics, log_saved_model
from genre_models.tracking.queries import get_run
from genre_models.tracking.setup import mlflow_error_message
from genre_models.sweep.point import one_line
from genre_models.training.loop import EPOCH_METRICS


def model_from_weights(run_id: str) -> str:
    """Log the MLflow model of a run that kept only its net as data (``weights/``) into that run,
    with the run's final metrics linked to it (``test_*`` ones to the dataset too); its model id."""
    saved = fetch_net(f"runs:/{run_id}")
    model_id = log_saved_model(saved, run_id=run_id)
    run = get_run(run_id)
    final = {k: v for k, v in run.data.metrics.items() if k not in EPOCH_METRICS and not k.startswith("system/")}
    link_metrics(run_id, model_id, final, run.data.tags.get("dataset"))
    return model_id


def register_best(best: dict[str, dict]) -> tuple[list[Registered], dict[str, str]]:
    """``best``: ``SweepRecord.best_runs``' ``{"net/split": {run_id, val_accuracy, test_accuracy}}``.
    Returns what was registered, and ``{"net@split": why}`` for each model the store refused (a
    colleague owns ``genre-bench-<net>`` on an authenticated server, say): one model's refusal
    costs that model's registration, never the sweep's record."""
    out, refused = [], {}
    for key, b in best.items():
        net, split = key.split("/", 1)
        why = (f"The {net} run with the best validation accuracy on the `{split}` split in its sweep "
               f"(val {b['val_accuracy']:.3f}; test {b['test_accuracy']:.3f}, not used to choose); run {b['run_id']}.")
        try:
            out.append(register_run(b["run_id"], net, split, why, model_from_weights))
        except Exception as exc:
            refused[f"{net}@{split}"] = mlflow_error_message(exc) or one_line(exc)
    return out, refused
