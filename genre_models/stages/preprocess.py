"""The preprocess stage: a GTZAN folder (or a features run) -> the cached feature store, and
one MLflow run recording it: counts per split and genre, the skipped files, the manifest."""

from __future__ import annotations

from genre_models.config import DataConfig, SplitConfig, flat_params
from genre_models.data.store import PreprocessResult
from genre_models.data.summary import coverage_warnings, genre_counts, repeat_groups, split_counts
from genre_models.tracking.records import base_tags, dataset_words
from genre_models.tracking.shipping import open_features
from genre_models.genres import GENRES
from genre_models.training.logger import NULL_LOGGER, RunLogger
from genre_models.util import log, write_csv


def preprocess(cfg: DataConfig, *, split: SplitConfig | None = None, logger: RunLogger = NULL_LOGGER,
               force: bool = False, extra_params: dict | None = None) -> tuple[PreprocessResult, str | None]:
    """Build (or reuse) the feature store and log a ``preprocess-<split>-s<seed>`` run with
    ``logger``. The split only shapes what is logged: the store itself is split-independent.
    Returns the result and the run id (None with a logger that keeps nothing)."""
    split = split or SplitConfig()
    result = open_features(cfg, force=force)
    store = result.store
    params = {**flat_params(split, "split."), **{f"features.{k}": v for k, v in store.meta["features"].items()},
              "cache_key": result.key, "layout": result.layout, **(extra_params or {})}

    def write(out) -> None:
        write_csv(store.manifest_with_split(split), out / "manifest.csv")  # file names may look like formulas
        (out / "skipped.txt").write_text("".join(f"{line}\n" for line in result.skipped) or "(none)\n")
        (out / "repeat_groups.txt").write_text("".join(f"{line}\n" for line in repeat_groups(store)) or "(none)\n")
        (out / "warnings.txt").write_text("".join(f"{line}\n" for line in warnings) or "(none)\n")
        genre_counts(store, split).to_csv(out / "genre_counts.csv", index=False)

    warnings = coverage_warnings(store, split)
    for line in warnings:
        log.warning("%s", line)
    absent = [g for g in GENRES if g not in set(store.tracks.genre)]
    with logger.start(f"preprocess-{split.label}-s{split.seed}"):
        counts = split_counts(store, split)
        note = (f"Features of {dataset_words(store)}: {counts['tracks_total']} tracks used, {counts['skipped_files']} files skipped (skipped.txt), "
                f"{counts['repeat_tracks']} tracks in {counts['repeat_groups']} groups of repeated recordings (repeat_groups.txt); "
                f"{split.words} has {counts['tracks_test']} test tracks.")
        logger.set_tags({**base_tags(store), "stage": "preprocess", **split.tags,
                         "cache_reused": str(result.reused).lower(), "cache_path": store.path, "mlflow.note.content": note})
        logger.log_params({**params, **counts, "genres_absent": ",".join(absent) or "none", "warnings": len(warnings)})
        logger.log_metrics({"preprocess_seconds": result.seconds})
        logger.log_dataset(store, split, context="preprocess")
        logger.log_artifacts(write)
        return result, logger.run_id
