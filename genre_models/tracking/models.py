"""Logged models and artifacts, read back: what ``predict``, net6 and the GAN's scorer load."""

from __future__ import annotations


def model_metadata(model_uri: str) -> dict:
    """The metadata a genre-bench model was logged with (net, input kind, features, genres)."""
    import mlflow

    return mlflow.models.get_model_info(model_uri).metadata or {}


def load_model(model_uri: str):
    import mlflow

    return mlflow.pytorch.load_model(model_uri)


def download(run_id: str, artifact_path: str, dst_path: str | None = None) -> str:
    """A run's artifact folder or file, downloaded (into ``dst_path``, or a temp folder); the local path."""
    import mlflow

    return mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact_path, dst_path=dst_path)


def log_torch_model(model, *, name: str, example, metadata: dict, run_id: str | None = None, step: int = 0) -> str:
    """Log a torch model in MLflow's default pt2 (torch.export) format, with signature and input
    example, to the active run or to ``run_id`` (a finished run too); the metadata rides along so
    ``predict`` can rebuild the inputs. ``step``: the epoch its weights come from (MLflow links
    the run's metrics of that step to the model). Returns the logged model's id."""
    import warnings

    import mlflow
    import torch
    from mlflow.models import infer_signature

    with torch.no_grad():
        out = model(example)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = mlflow.pytorch.log_model(model, name=name, signature=infer_signature(example.numpy(), out.numpy()),
                                        input_example=example.numpy(), metadata=metadata, run_id=run_id, step=step,
                                        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"])
    return info.model_id


def link_metrics(run_id: str, model_id: str, metrics: dict, dataset: str | None = None) -> None:
    """Record a finished run's final metrics as the metrics of a model logged into it afterwards;
    ``test_*`` ones also name the dataset (``<name>@<digest>``, the ``dataset`` tag) they were
    computed on, as ``log_metrics(model_id=, dataset=)`` does at training time."""
    import time

    import mlflow
    from mlflow.entities import Metric

    name, _, digest = (dataset or "").partition("@")
    now = int(time.time() * 1000)
    batch = [Metric(k, float(v), now, 0, model_id=model_id,
                    dataset_name=name if k.startswith("test_") and name else None,
                    dataset_digest=digest if k.startswith("test_") and digest else None) for k, v in metrics.items()]
    mlflow.MlflowClient().log_batch(run_id, metrics=batch)
