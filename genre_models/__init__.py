"""genre-bench library: GTZAN ingestion, features, splits, the nets and their training loop.

The click runner in ``benchmark/`` is a thin layer over the functions here; every function
returns a result object so tests and notebooks can call it directly.
"""

from genre_models.genres import GENRES, GENRE_TO_ID

__version__ = "0.1.0"

__all__ = ["GENRES", "GENRE_TO_ID", "__version__"]
