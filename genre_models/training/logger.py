"""The run-logger contract: how the loops and stages report, without knowing about MLflow.

A stage or loop is handed a ``RunLogger`` and calls it unconditionally; ``NullLogger`` does
nothing (untracked runs, tests, a scorer trained for the occasion) and
``genre_models.tracking.logger.MlflowLogger`` writes an MLflow run. No code asks "is tracking
on?": the logger decides what a call means.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Callable, ContextManager, Iterator, Protocol

if TYPE_CHECKING:  # annotations only: the store is data-layer, below this one
    from genre_models.config import SplitConfig
    from genre_models.data.store import FeatureStore


class RunLogger(Protocol):
    run_id: str | None

    def start(self, name: str) -> ContextManager["RunLogger"]:
        """Open the run named ``name`` for the block; it ends FINISHED, FAILED on an exception,
        or KILLED on a signal (SIGINT, SIGTERM)."""

    def prerequisite(self) -> "RunLogger":
        """A logger for a run of its own that this run needs first (net6's GAN)."""

    def set_tags(self, tags: dict) -> None: ...

    def log_params(self, params: dict) -> None: ...

    def log_metrics(self, metrics: dict, step: int | None = None) -> None: ...

    def log_artifacts(self, write: Callable[[Path], None], path: str | None = None) -> list[str]:
        """Call ``write(folder)`` and log what it wrote under ``path``; returns the file names.
        A logger that keeps nothing does not call ``write`` at all."""

    def log_file(self, file: str | Path, path: str | None = None) -> None: ...

    def log_dataset(self, store: "FeatureStore", split: "SplitConfig", context: str) -> None: ...

    def log_model(self, model, *, name: str, example, metadata: dict, step: int = 0) -> str | None:
        """Log the model (``step``: the epoch its weights come from); its id in the store (None
        where nothing is kept)."""

    def log_evaluation(self, metrics: dict, *, store: "FeatureStore", split: "SplitConfig",
                       model_id: str | None = None) -> None:
        """A run's final scores, linked to the model they score (if logged) and to the dataset
        they were computed on (``test_*`` ones)."""

    def verify(self, metrics=(), histories: dict | None = None, artifacts=()) -> None:
        """Read the record back before the run may end FINISHED (raises ``TrackingError``)."""

    def end_if_running(self, run_id: str | None, why: str) -> None:
        """End another run as KILLED if it is still RUNNING and its owner is provably gone (an
        interrupted attempt at this one); a run whose owner may be alive is left alone."""

    def finished_runs(self, tags: dict, max_results: int = 1) -> list:
        """FINISHED runs carrying ``tags`` in this logger's experiment, newest first."""


class NullLogger:
    """A ``RunLogger`` that keeps nothing: the run is computed, not recorded."""

    run_id: str | None = None

    @contextmanager
    def start(self, name: str) -> Iterator["NullLogger"]:
        yield self

    def prerequisite(self) -> "NullLogger":
        return self

    def set_tags(self, tags: dict) -> None:
        pass

    def log_params(self, params: dict) -> None:
        pass

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        pass

    def log_artifacts(self, write: Callable[[Path], None], path: str | None = None) -> list[str]:
        return []

    def log_file(self, file: str | Path, path: str | None = None) -> None:
        pass

    def log_dataset(self, store: "FeatureStore", split: "SplitConfig", context: str) -> None:
        pass

    def log_model(self, model, *, name: str, example, metadata: dict, step: int = 0) -> str | None:
        return None

    def log_evaluation(self, metrics: dict, *, store: "FeatureStore", split: "SplitConfig",
                       model_id: str | None = None) -> None:
        pass

    def verify(self, metrics=(), histories: dict | None = None, artifacts=()) -> None:
        pass

    def end_if_running(self, run_id: str | None, why: str) -> None:
        pass

    def finished_runs(self, tags: dict, max_results: int = 1) -> list:
        return []


NULL_LOGGER = NullLogger()
