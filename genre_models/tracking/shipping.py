"""Data for nodes that cannot see ``--data-dir``: the feature cache shipped as MLflow artifacts.

A *features run* (``stage=features``) holds one feature store under ``features/`` and, when a
GAN has to be trained elsewhere, every segment's audio under ``segment_audio/``. Anything that
takes a ``--data-dir`` also takes ``runs:/<run_id>/features``: the store is downloaded once into
the node's own cache (``<cache_dir>/<cache_key>``, the folder ``preprocess`` would have written)
and the audio is fetched only when a GAN asks for it.

Size trade-off, for the full GTZAN at the study's settings (measured figures in the README):
the features are about 165 MB (MFCCs 67 MB, 180x180 images 97 MB), the segment audio about
1.3 GB (some 29,500 one-second segments as int16). Every node downloads what it uses once
per cache. A filesystem that every node mounts (``--data-access shared``) costs nothing to
ship, but then every node must see the same ``--data-dir``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from genre_models.config import DataConfig, FeatureConfig, SplitConfig
from genre_models.data.segment_audio import RealAudio, build_segment_audio, segment_audio_dir, training_audio
from genre_models.data.store import DATA_FILES, FeatureStore, PreprocessResult, build_features, load_store, skips
from genre_models.errors import ConfigError, DataError, TrackingError
from genre_models.tracking.queries import runs_with
from genre_models.tracking.retry import store_client, store_retry
from genre_models.util import atomic_dir, log

FEATURES = "features"
AUDIO = "segment_audio"
STORE_FILES = (*DATA_FILES, "meta.json")
_URI = re.compile(r"^runs:/([0-9a-zA-Z]+)/features/?$")


def features_uri(run_id: str) -> str:
    return f"runs:/{run_id}/{FEATURES}"


def features_run_id(data_dir: str) -> str | None:
    """The run id in ``runs:/<id>/features``, or None for a plain folder."""
    m = _URI.match(str(data_dir))
    return m.group(1) if m else None


def data_label(data_dir: str) -> str:
    """``data_dir`` as logged: a features-run URI as is, a folder as an absolute path."""
    return str(data_dir) if features_run_id(data_dir) else os.path.abspath(data_dir)


def _size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.iterdir() if f.is_file())


def publish_features(store: FeatureStore, cache_key: str, with_audio: bool, exp_id: str, jobs: int = 0,
                     tags: dict | None = None) -> tuple[str, bool]:
    """Log ``store`` (and, with ``with_audio``, its segment audio) as a features run in experiment
    ``exp_id``; reuse a FINISHED one with the same key. Returns (run id, reused)."""
    client = store_client()
    want = {"stage": "features", "cache_key": cache_key, **({"with_audio": "true"} if with_audio else {})}
    found = runs_with(want, experiment_ids=[exp_id], client=client)
    if found:
        return found[0].info.run_id, True
    t0 = time.perf_counter()
    run = client.create_run(exp_id, run_name=f"features-{cache_key[:8]}",
                            tags={**(tags or {}), "stage": "features", "cache_key": cache_key,
                                  "with_audio": str(with_audio).lower()})
    run_id = run.info.run_id
    try:
        for f in STORE_FILES:
            client.log_artifact(run_id, str(Path(store.path) / f), FEATURES)
        sizes = {"features_bytes": _size(Path(store.path))}
        if with_audio:
            audio = build_segment_audio(store, jobs)
            client.log_artifacts(run_id, str(audio), AUDIO)
            sizes["segment_audio_bytes"] = _size(audio)
        for k, v in {**sizes, "publish_seconds": time.perf_counter() - t0, "segments": int(store.mfcc.shape[0]),
                     "images": int(store.images.shape[0])}.items():
            client.log_metric(run_id, k, float(v))
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    log.info("features run %s: %s", run_id, ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sizes.items()))
    return run_id, False


def _download_into(folder: Path, run_id: str, artifact: str, files) -> None:
    """``files`` of one artifact folder of a run, downloaded straight into ``folder``."""
    import mlflow

    try:
        got = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact,
                                                       dst_path=str(folder / ".download")))
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"runs:/{run_id}/{artifact}: cannot download from {mlflow.get_tracking_uri()}: {first}") from None
    for f in files:
        shutil.move(str(got / f), folder / f)
    shutil.rmtree(folder / ".download")


def fetch_features(run_id: str, cache_dir: str) -> FeatureStore:
    """The features run's store, downloaded into ``<cache_dir>/<cache_key>`` unless already there."""
    import mlflow

    try:
        run = store_retry(mlflow.get_run, run_id)
    except TrackingError:  # locked for longer than the wait: not the same as "no such run"
        raise
    except Exception:
        raise DataError(f"{features_uri(run_id)}: no such run in {mlflow.get_tracking_uri()}") from None
    key = run.data.tags.get("cache_key")
    if run.data.tags.get("stage") != "features" or not key:
        raise DataError(f"{features_uri(run_id)}: run {run_id} is not a features run (stage={run.data.tags.get('stage', '?')})")
    if run.info.status != "FINISHED":
        raise DataError(f"{features_uri(run_id)}: the features run is {run.info.status}, not FINISHED")
    target = Path(cache_dir).expanduser() / key
    if not (target / "meta.json").is_file():
        t0 = time.perf_counter()

        def write(tmp: Path) -> None:
            _download_into(tmp, run_id, FEATURES, STORE_FILES)
            meta = json.loads((tmp / "meta.json").read_text())
            meta["fetched_from"] = run_id
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2))

        atomic_dir(target, write)
        log.info("fetched the feature cache of run %s into %s in %.1f s", run_id, target, time.perf_counter() - t0)
    return load_store(target)


def segment_audio_for(store: FeatureStore) -> Path | None:
    """The store's segment audio: in this cache, else fetched from the features run it came from;
    None when neither exists (the caller decodes the dataset folder instead)."""
    target = segment_audio_dir(store)
    if (target / "meta.json").is_file():
        return target
    run_id = store.meta.get("fetched_from")
    if not run_id:
        return None

    atomic_dir(target, lambda tmp: _download_into(tmp, run_id, AUDIO, ("audio.npy", "meta.json")))
    return target


def segment_audio_array(store: FeatureStore, jobs: int = 0) -> np.ndarray:
    """Every segment's audio, int16 (n_segments, samples), memory-mapped and row-aligned with the
    store's MFCCs: shipped with it, cached beside it, or decoded from the dataset folder now (once)."""
    folder = segment_audio_for(store) or build_segment_audio(store, jobs)
    return np.load(folder / "audio.npy", mmap_mode="r")


def check_features(store: FeatureStore, fcfg: FeatureConfig, uri: str) -> None:
    """A shipped store must have been made with the features this run asks for."""
    want = json.loads(json.dumps(asdict(fcfg)))
    have = store.meta["features"]
    diff = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
    if diff:
        shown = ", ".join(f"{k}={have.get(k)!r} (asked {want.get(k)!r})" for k in diff[:4])
        raise ConfigError(f"{uri} holds features made with {shown}; publish a features run made with these settings "
                          "(`benchmark preprocess --publish`)")


def open_features(cfg: DataConfig, force: bool = False) -> PreprocessResult:
    """The feature store for ``cfg.data_dir``: built (or reused) from a folder, or, for
    ``runs:/<run_id>/features``, a features run's store downloaded into this node's cache."""
    t0 = time.perf_counter()
    run_id = features_run_id(cfg.data_dir)
    if not run_id:
        return build_features(cfg, force=force)
    store = fetch_features(run_id, cfg.cache_dir)
    check_features(store, cfg.features, cfg.data_dir)
    return PreprocessResult(store, Path(store.path).name, True, time.perf_counter() - t0,
                            store.meta["dataset"]["layout"], skips(store.manifest))


def training_audio_for(store: FeatureStore, split: SplitConfig, fcfg: FeatureConfig, cache_dir: str,
                       jobs: int = 0) -> RealAudio:
    """The GAN's training audio, from shipped segment audio when the store has any (in this
    cache, or fetched from its features run), else decoded from the dataset folder."""
    return training_audio(store, split, fcfg, cache_dir, jobs, shipped=segment_audio_for(store))
