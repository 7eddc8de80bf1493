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
