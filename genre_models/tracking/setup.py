"""Which MLflow store and experiment a command uses.

Store: ``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else MLflow 3's default
``sqlite:///mlflow.db`` in the working folder. Experiment: ``--experiment``, else
``MLFLOW_EXPERIMENT_NAME``, else ``gtzan-genre-benchmark``. Under ``mlflow run`` the run and
experiment are already chosen by MLflow (``MLFLOW_RUN_ID``) and are left alone.
"""

from __future__ import annotations

import os

from genre_models.config import DEFAULT_EXPERIMENT


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
