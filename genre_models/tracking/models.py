"""Logged models and artifacts, read back: what ``predict``, the GAN's scorer and the Model
Registry load.

A model is read back as data: the run's ``weights/`` folder (``models.saved``: a JSON card and
safetensors or skops weights), never an MLflow flavour's loader, which would unpickle whatever
the store holds and import code shipped in the model's folder. A ``models:/`` URI only names
which run's weights to read; the run's own tags must agree with the card.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from genre_models.errors import ModelError
from genre_models.models.saved import SavedNet, load_net
from genre_models.tracking.queries import get_run
from genre_models.tracking.retry import store_client

#: Where a training run keeps its net as data (``models.saved``), beside its MLflow model.
WEIGHTS_DIR = "weights"

_RUNS = re.compile(r"^runs:/([0-9a-f]{32})(?:/.*)?$")
_MODELS = re.compile(r"^models:/([^/@]+)(?:@([^/]+)|/([0-9]+))?/?$")


def model_run(model_uri: str) -> str:
    """The id of the run whose weights ``model_uri`` names: ``runs:/<id>[/...]``,
    ``models:/<name>@<alias>``, ``models:/<name>/<version>`` or ``models:/<logged model id>``."""
    runs, models = _RUNS.match(model_uri), _MODELS.match(model_uri)
    if runs:
        return runs.group(1)
    if not models:
        raise ModelError(f"{model_uri}: not a model URI genre-bench reads (runs:/<run id>/model, "
                         "models:/<name>@<alias>, models:/<name>/<version>, or a folder holding spec.json)")
    name, alias, version = models.groups()
    client = store_client()
    try:
        if alias or version:
            mv = (client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, version))
            run_id = mv.run_id
        else:  # a logged model's id (m-...)
            run_id = client.get_logged_model(name).source_run_id
    except Exception as exc:
        text = str(getattr(exc, "message", None) or exc).strip().splitlines()
        raise ModelError(f"{model_uri}: no such model in this store ({text[0] if text else type(exc).__name__})") from None
    if not run_id:
        raise ModelError(f"{model_uri}: the model names no run whose weights genre-bench could read")
    return run_id


def fetch_net(model_uri: str) -> SavedNet:
    """The net ``model_uri`` names, read back as data (``models.saved.load_net``); a local folder
    holding a card is read directly. The run's ``net`` tag must name the card's net."""
    if os.path.isdir(model_uri):
        return load_net(model_uri, model_uri)
    run_id = model_run(model_uri)
    run = get_run(run_id)
    if run is None:
        raise ModelError(f"{model_uri}: run {run_id} is not in this store")
    if run.info.lifecycle_stage != "active":  # an alias or version left pointing at a deleted run
        raise ModelError(f"{model_uri}: run {run_id} was deleted; its net is not scored (restore the run, or point "
                         "the alias at another version)")
    if run.info.status != "FINISHED":
        raise ModelError(f"{model_uri}: run {run_id} is {run.info.status}, not FINISHED; only a finished run's net is scored")
    where = f"{model_uri} (run {run_id})"
    with tempfile.TemporaryDirectory(prefix="genre-bench-net-") as tmp:
        try:
            local = download(run_id, WEIGHTS_DIR, tmp)
        except Exception:  # no such artifact folder: ``load_net`` says so in one line
            local = tmp
        saved = load_net(Path(local), where)
    tagged = run.data.tags.get("net")
    if tagged != saved.spec.name:
        raise ModelError(f"{where}: the run is tagged net {tagged!r}, but its weights are a {saved.spec.name}")
    return saved


def download(run_id: str, artifact_path: str, dst_path: str | None = None) -> str:
    """A run's artifact folder or file, downloaded (into ``dst_path``, or a temp folder); the local path."""
    import mlflow

    return mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact_path, dst_path=dst_path)


def log_any_model(model, *, name: str, example, metadata: dict, run_id: str | None = None, step: int = 0) -> str:
    """Log a trained net as an MLflow model: a torch module in pt2, a classical baseline's
    scikit-learn pipeline in skops format (never pickle). Its model id."""
    import torch

    if isinstance(model, torch.nn.Module):
        return log_torch_model(model.to("cpu").eval(), name=name, example=example, metadata=metadata, run_id=run_id,
                               step=step)
    return log_sklearn_model(model, name=name, example=example, metadata=metadata, run_id=run_id, step=step)


def log_sklearn_model(model, *, name: str, example, metadata: dict, run_id: str | None = None, step: int = 0) -> str:
    """A classical baseline's pipeline as an MLflow model in skops format, with signature and
    input example (for the UI and ``mlflow models serve``); its model id."""
    import warnings

    import mlflow
    import sklearn
    from mlflow.models import infer_signature

    x = example.numpy() if hasattr(example, "numpy") else example
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = mlflow.sklearn.log_model(model, name=name, serialization_format="skops", input_example=x,
                                        signature=infer_signature(x, model.decision_function(x)), metadata=metadata,
                                        run_id=run_id, step=step, pip_requirements=[f"scikit-learn=={sklearn.__version__}",
                                                                                   "skops"])
    return info.model_id


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


def log_saved_model(saved: SavedNet, *, run_id: str | None = None) -> str:
    """Log the MLflow model of a net read back from its weights (for the UI, serving and the
    Model Registry) into ``run_id``; its model id."""
    return log_any_model(saved.model, name="model", example=saved.example(), metadata=saved.metadata,
                         run_id=run_id, step=saved.epoch)


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
