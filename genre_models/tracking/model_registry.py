"""The MLflow Model Registry: the model a sweep chose per net and split, as
``genre-bench-<net>`` with the split as its alias (``models:/genre-bench-net5@track``).

The choice is made on validation accuracy, never on test (``SweepRecord.best_runs``). A run that
logged no model (the demo grid keeps only its weights) has one logged into it first, by the
caller's ``make_model``. Registering is idempotent: an alias that already names a version of the
chosen run is left as it is, so a resumed or repeated sweep adds no version, and two sweeps that
register one run at once keep one version (the lower). Registered names are store-wide: a sweep
in another experiment of the same store moves the alias to its own choice (each version's tags
name its dataset).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from genre_models.tracking.retry import store_client

REGISTERED_PREFIX = "genre-bench-"


def registered_name(net: str) -> str:
    return f"{REGISTERED_PREFIX}{net}"


@dataclass(frozen=True)
class Registered:
    net: str
    split: str
    name: str
    version: str
    run_id: str
    new: bool  # False: the run already had a version (none was added)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}@{self.split}"


def logged_model_id(run, name: str = "model") -> str | None:
    """The id of the model called ``name`` that ``run`` logged, or None."""
    client = store_client()
    for out in (run.outputs.model_outputs if run.outputs else []):
        if client.get_logged_model(out.model_id).name == name:
            return out.model_id
    return None


def register_run(run_id: str, net: str, split: str, why: str, make_model: Callable[[str], str]) -> Registered:
    """Register ``run_id``'s model as ``genre-bench-<net>`` and point alias ``split`` at it.
    ``why``: the version's description (how it was chosen). ``make_model(run_id)`` logs a model
    into a run that has none and returns its id."""
    client = store_client()
    name = registered_name(net)
    if _versions_of(client, name, run_id):  # registered before: the alias (back) on its version
        version = _one_version(client, name, run_id)
        client.set_registered_model_alias(name, split, version)
        return Registered(net, split, name, version, run_id, new=False)
    run = client.get_run(run_id)
    model_id = logged_model_id(run) or make_model(run_id)
    _ensure_registered(client, name, f"genre-bench's {net}: one version per split that a sweep chose on validation "
                                     "accuracy; the alias names the split.")
    mv = client.create_model_version(name, client.get_logged_model(model_id).artifact_location, run_id=run_id,
                                     tags={"net": net, "split": split, "dataset": run.data.tags.get("dataset", "")},
                                     description=why, model_id=model_id)
    version = _one_version(client, name, run_id)
    client.set_registered_model_alias(name, split, version)
    return Registered(net, split, name, version, run_id, new=version == str(mv.version))


def _ensure_registered(client, name: str, description: str) -> None:
    """Create registered model ``name`` unless it exists. A concurrent sweep may create it between
    the look and the create: the create then fails, in words that differ by store and MLflow
    version (RESOURCE_ALREADY_EXISTS; "already exists" with a UNIQUE constraint as its cause), and
    the model is there, which is all this needs. Any other failure stands."""
    if _exists(client, name):
        return
    try:
        client.create_registered_model(name, description=description)
    except Exception:
        if not _exists(client, name):
            raise


def _exists(client, name: str) -> bool:
    try:
        client.get_registered_model(name)
    except Exception:
        return False
    return True


def _one_version(client, name: str, run_id: str) -> str:
    """The lowest version of ``name`` made from ``run_id``; any later one is deleted. Two sweeps
    that register the same run at once both end here and agree, leaving one version."""
    mine = _versions_of(client, name, run_id)
    for extra in mine[1:]:
        try:
            client.delete_model_version(name, str(extra))
        except Exception:  # the other sweep deleted it first
            pass
    return str(mine[0])


def _versions_of(client, name: str, run_id: str) -> list[int]:
    try:
        return sorted(int(v.version) for v in client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'"))
    except Exception:  # no such registered model yet
        return []
