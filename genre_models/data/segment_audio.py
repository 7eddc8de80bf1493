"""Segment audio: the 1 s segments of the feature store as int16 audio, row-aligned with it.

Two consumers, one decoding path (``audio.decode_clip``):

* ``training_audio``: exactly the segments that a classifier's *training* part holds under a
  split and seed: what the WaveGAN learns from. Validation and test segments are never decoded
  into it, under any split (``tests/test_gan.py`` proves it). Works per segment, so under
  ``random`` (which scatters a track's segments) only the training segments are used.
* ``build_segment_audio``: every segment, for shipping a store to nodes that cannot see the data.

Both check the segment count against the cache: a file edited since preprocessing is an error,
not a silent misalignment.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from genre_models.config import FeatureConfig, SplitConfig
from genre_models.data.audio import decode_clip, to_pcm16
from genre_models.data.parallel import parallel_map
from genre_models.data.store import FeatureStore
from genre_models.errors import DataError
from genre_models.util import atomic_dir, log

#: Bump when the training-audio selection changes what a key holds (it was the GAN's code version).
TRAINING_AUDIO_VERSION = "wavegan-v2"


def decode_segments(task: tuple[str, str, list[int], int, FeatureConfig]) -> np.ndarray:
    """Worker: one track -> its selected 1 s segments, int16 (k, segment_samples)."""
    path, rel, wanted, expected, fcfg = task
    segs = decode_clip(path, fcfg).segments  # (n, segment_samples)
    if segs.shape[0] != expected:
        raise DataError(f"{rel}: decoded {segs.shape[0]} segments but the feature cache holds {expected}; "
                        "the file changed since preprocessing (run `benchmark preprocess --force`)")
    return to_pcm16(segs[wanted])


def segment_audio_dir(store: FeatureStore) -> Path:
    """Where a store's segment audio lives in a cache: beside the store, under its key."""
    p = Path(store.path)
    return p.parent / "segment-audio" / p.name


def build_segment_audio(store: FeatureStore, jobs: int = 0) -> Path:
    """Every usable segment's audio, int16 (n_segments, segment_samples), row-aligned with
    ``mfcc.npy``. Decoded from the dataset folder once; cached."""
    target = segment_audio_dir(store)
    if (target / "meta.json").is_file():
        return target
    fcfg = FeatureConfig(**store.meta["features"])
    root = store.meta["dataset"]["root"]
    tracks = store.tracks
    tasks = [(str(Path(root) / rel), rel, list(range(int(n))), int(n), fcfg) for rel, n in zip(tracks.path, tracks.segments)]
    log.info("decoding %d segments of %d tracks for shipping into %s", int(store.mfcc.shape[0]), len(tasks), target)
    chunks = parallel_map(decode_segments, tasks, jobs, desc="segment audio")

    def write(tmp: Path) -> None:
        audio = np.concatenate(chunks) if chunks else np.zeros((0, fcfg.segment_samples), np.int16)
        if audio.shape[0] != store.mfcc.shape[0]:
            raise DataError(f"{root}: decoded {audio.shape[0]} segments but the feature cache holds {store.mfcc.shape[0]}")
        np.save(tmp / "audio.npy", audio)
        (tmp / "meta.json").write_text(json.dumps({"segments": int(audio.shape[0]), "digest": store.digest,
                                                   "sample_rate": fcfg.sample_rate}, indent=2))

    atomic_dir(target, write)
    return target


@dataclass
class RealAudio:
    """The GAN's training data: the classifier's training segments, whole (the critic takes windows)."""

    audio: np.ndarray  # (N, segment_samples) int16, memory-mapped
    labels: np.ndarray  # (N,) int64
    track: np.ndarray  # (N,) row in the feature store's usable tracks
    index: np.ndarray  # (N,) the segment's position within its track
    track_ids: list[str]  # the distinct tracks the segments come from

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def _decode_training_segments(store: FeatureStore, train_idx: np.ndarray, within: np.ndarray, fcfg: FeatureConfig,
                              jobs: int) -> list[np.ndarray]:
    """The training segments, decoded track by track from the dataset folder."""
    root = store.meta["dataset"]["root"]
    if not os.path.isdir(root):
        raise DataError(f"{root}: the dataset folder is not visible here, and the feature store {store.path} "
                        "came without segment audio; the GAN needs one of the two")
    seg_track, tracks = np.asarray(store.seg_track), store.tracks
    tasks = []
    for t in np.unique(seg_track[train_idx]):
        wanted = within[train_idx[seg_track[train_idx] == t]].tolist()
        rel = tracks.path.iloc[t]
        tasks.append((os.path.join(root, rel), rel, wanted, int(tracks.segments.iloc[t]), fcfg))
    log.info("decoding %d training segments from %d tracks for the GAN", len(train_idx), len(tasks))
    return parallel_map(decode_segments, tasks, jobs, desc="gan audio")


def _write_training_audio(target: Path, chunks: list[np.ndarray], train_idx: np.ndarray, n_tracks: int,
                          split: SplitConfig, store: FeatureStore, fcfg: FeatureConfig) -> None:
    def write(tmp: Path) -> None:
        audio = np.lib.format.open_memmap(tmp / "audio.npy", mode="w+", dtype=np.int16,
                                          shape=(len(train_idx), fcfg.segment_samples))
        at = 0
        for c in chunks:
            audio[at:at + len(c)] = c
            at += len(c)
        audio.flush()
        del audio
        np.save(tmp / "segment.npy", train_idx)  # rows of the feature store's segment arrays
        (tmp / "meta.json").write_text(json.dumps({"segments": int(len(train_idx)), "tracks": n_tracks,
                                                   "split": asdict(split), "digest": store.digest}, indent=2))

    atomic_dir(target, write)


def training_audio(store: FeatureStore, split: SplitConfig, fcfg: FeatureConfig, cache_dir: str, jobs: int = 0,
                   shipped: Path | None = None) -> RealAudio:
    """The training part's segments under ``split`` as int16 audio (cached).

    ``shipped``: a folder with every segment's audio (``build_segment_audio``'s layout), used
    instead of decoding the dataset folder (``tracking.shipping.segment_audio_for`` finds or
    fetches one).
    """
    seg_track = np.asarray(store.seg_track)
    starts = np.searchsorted(seg_track, np.arange(len(store.tracks)))  # first segment of each track
    within = np.arange(len(seg_track)) - starts[seg_track]  # (n_segments,)
    train_idx = np.flatnonzero(store.parts("mfcc", split) == 0)
    tracks = store.tracks
    labels = tracks.label.to_numpy().astype(np.int64)
    key = hashlib.sha256(json.dumps({"store": Path(store.path).name, "digest": store.digest, "split": asdict(split),
                                     "segment": fcfg.segment_samples, "code": TRAINING_AUDIO_VERSION},
                                    sort_keys=True).encode()).hexdigest()[:16]
    target = Path(cache_dir).expanduser() / "gan-real" / key
    if not (target / "meta.json").is_file():
        if shipped is not None:
            log.info("taking %d training segments for the GAN from %s", len(train_idx), shipped)
            chunks = [np.load(shipped / "audio.npy", mmap_mode="r")[train_idx]]  # rows align with mfcc.npy
        else:
            chunks = _decode_training_segments(store, train_idx, within, fcfg, jobs)
        _write_training_audio(target, chunks, train_idx, len(np.unique(seg_track[train_idx])), split, store, fcfg)
    seg = np.load(target / "segment.npy")
    return RealAudio(np.load(target / "audio.npy", mmap_mode="r"), labels[seg_track[seg]], seg_track[seg], within[seg],
                     [tracks.track_id.iloc[t] for t in np.unique(seg_track[seg])])
