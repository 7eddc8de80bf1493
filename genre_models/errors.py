"""Errors that the CLI turns into one-line messages (no traceback)."""


class GenreBenchError(Exception):
    """Base class: the message is a complete, user-facing sentence naming the file or folder."""


class DataError(GenreBenchError):
    """The dataset folder as a whole cannot be used (missing, no genre folders, unknown genre)."""


class DamagedCache(DataError):
    """A cache entry whose files do not match what was written (truncated, missing, unreadable)."""


class BadAudio(GenreBenchError):
    """One file cannot be used. Ingestion records it as a skip; `predict` reports it and exits."""


class ConfigError(GenreBenchError):
    """An option or parameter has a value the suite cannot honour."""


class TrainingDiverged(GenreBenchError):
    """A net's training loss became NaN or infinite; the message says why and what to change."""


class GanDiverged(GenreBenchError):
    """WaveGAN training produced a NaN or exploding loss; the message names the last good checkpoint."""


class ModelError(GenreBenchError):
    """A saved net genre-bench will not load: not its format, damaged, tampered with, or naming a
    net that is not installed here. Nothing of it was run."""


class TrackingError(GenreBenchError):
    """The tracking store did not keep a run's complete record (metrics, history or artifacts)."""


class Interrupted(BaseException):
    """The process was told to stop (SIGTERM). A BaseException, like KeyboardInterrupt (SIGINT),
    so no ``except Exception`` swallows it; the run logger ends the run KILLED on its way out."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(f"stopped by {signal_name}")
        self.signal_name = signal_name


def interrupt_signal(exc: BaseException) -> str | None:
    """The signal behind an interruption (``SIGINT`` for Ctrl-C, ``SIGTERM``), or None."""
    if isinstance(exc, Interrupted):
        return exc.signal_name
    if isinstance(exc, KeyboardInterrupt):
        return "SIGINT"
    return None
