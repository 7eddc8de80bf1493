"""Errors that the CLI turns into one-line messages (no traceback)."""


class GenreBenchError(Exception):
    """Base class: the message is a complete, user-facing sentence naming the file or folder."""


class DataError(GenreBenchError):
    """The dataset folder as a whole cannot be used (missing, no genre folders, unknown genre)."""


class BadAudio(GenreBenchError):
    """One file cannot be used. Ingestion records it as a skip; `predict` reports it and exits."""


class ConfigError(GenreBenchError):
    """An option or parameter has a value the suite cannot honour."""


class GanDiverged(GenreBenchError):
    """WaveGAN training produced a NaN or exploding loss; the message names the last good checkpoint."""


class TrackingError(GenreBenchError):
    """The tracking store did not keep a run's complete record (metrics, history or artifacts)."""
