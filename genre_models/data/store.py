"""The feature store: a GTZAN folder -> a cached, split-independent store of both input kinds.

Cache layout (``<cache_dir>/<key>/``), written into a temporary folder and renamed into place
in one step, so a killed run never leaves a folder that looks complete:

* ``mfcc.npy``       float32 (n_segments, frames, n_mfcc)  -- net5/net6 input
* ``stats.npy``      float32 (n_segments, 74): each segment's summary statistics -- the baselines' input
* ``seg_track.npy``  int32 (n_segments,): each segment's row in the manifest
* ``images.npy``     uint8 (n_images, 3, S, S)             -- net1-net4 input (scaled to [0,1] at batch time)
* ``img_track.npy``  int32 (n_images,)
* ``manifest.csv``   one row per file found: track id, genre, status, reason, notes, counts
* ``meta.json``      the feature config, dataset digest and code version it was made with

The key hashes the feature config, the feature code version and the dataset digest. The split
is *not* part of the key: splits are applied on load (``splits.sample_split``).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from genre_models.config import FEATURE_CODE_VERSION, DataConfig, FeatureConfig, SplitConfig
from genre_models.data.discovery import Discovery, dataset_digest, discover
from genre_models.data.extract import TrackResult, run_extraction
from genre_models.data.features import STAT_NAMES
from genre_models.data.repeats import find_repeats
from genre_models.data.splits import PARTS, sample_split
from genre_models.genres import GENRE_TO_ID
from genre_models.errors import DamagedCache
from genre_models.util import atomic_dir, check_entry, check_writable, code_version, log, remove_entry, remove_orphans

MANIFEST_COLUMNS = [
    "track_id", "genre", "label", "path", "status", "reason", "notes",
    "duration_s", "kept_s", "segments", "image_source", "image_path", "audio_hash", "repeat_group", "repeat_score",
    "repeat_match",
]


def repeat_columns(track_ids: list[str], results: list[TrackResult]) -> pd.DataFrame:
    """The manifest's repeat columns for the usable tracks (``data.repeats``): ``repeat_group``,
    the group's first track id on every member ("" for a track alone); ``repeat_score``, the
    member's best similarity (0-1) to another member; ``repeat_match``, that member."""
    found = find_repeats([r.fingerprint for r in results], track_ids, [r.audio_hash for r in results])
    ids = np.asarray(track_ids, dtype=object)
    return pd.DataFrame({
        "repeat_group": [ids[h] if h >= 0 else "" for h in found.head],
        "repeat_score": np.round(found.score, 3),
        "repeat_match": [ids[m] if m >= 0 else "" for m in found.match],
    })


def cache_key(fcfg: FeatureConfig, digest: str) -> str:
    blob = json.dumps({"features": asdict(fcfg), "code": FEATURE_CODE_VERSION, "dataset": digest}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class FeatureStore:
    """A loaded cache. Arrays are memory-mapped: nothing is copied until a split asks for it."""

    path: str
    meta: dict
    manifest: pd.DataFrame
    mfcc: np.ndarray  # (n_segments, frames, n_mfcc) float32
    stats: np.ndarray  # (n_segments, 74) float32: ``features.STAT_NAMES`` per segment
    seg_track: np.ndarray  # (n_segments,) row in `tracks`
    images: np.ndarray  # (n_images, 3, S, S) uint8
    img_track: np.ndarray  # (n_images,)

    @property
    def tracks(self) -> pd.DataFrame:
        """Usable tracks, in the order the index arrays refer to."""
        return self.manifest[self.manifest.status == "ok"].reset_index(drop=True)

    @property
    def groups(self) -> list[str]:
        """Per usable track, the group it goes with in every split: its repeat group's first
        track, or itself."""
        tracks = self.tracks
        return [g or t for t, g in zip(tracks.track_id, tracks.repeat_group)]

    @property
    def dataset_name(self) -> str:
        return self.meta["dataset"]["name"]

    @property
    def digest(self) -> str:
        return self.meta["dataset"]["digest"]

    @property
    def synthetic(self) -> bool:
        return bool(self.meta["dataset"]["synthetic"])

    def clip_stats(self) -> np.ndarray:
        """Each usable track's summary statistics, pooled over its segments as ``features.pool_stats``
        pools one clip's: (n_tracks, 74) float32, rows in ``tracks`` order (every track has a segment)."""
        stats, seg_track = np.asarray(self.stats), np.asarray(self.seg_track)
        if not len(seg_track):
            return np.zeros((0, stats.shape[1]), np.float32)
        starts = np.flatnonzero(np.r_[True, seg_track[1:] != seg_track[:-1]])  # segments are stored track by track
        counts = np.diff(np.r_[starts, len(seg_track)])[:, None]
        means = np.add.reduceat(stats[:, 0::2], starts) / counts  # (n_tracks, 37)
        out = np.empty((len(starts), stats.shape[1]), np.float32)
        out[:, 0::2] = means
        out[:, 1::2] = np.add.reduceat(stats[:, 1::2] + stats[:, 0::2] ** 2, starts) / counts - means ** 2
        return out

    def sample_tracks(self, kind: str) -> np.ndarray:
        """Each sample's row in ``tracks`` for an input kind: images, or segments (mfcc, raw, stats)."""
        return np.asarray(self.img_track) if kind == "image" else np.asarray(self.seg_track)

    def parts(self, kind: str, split: SplitConfig) -> np.ndarray:
        """Part index per sample (0 train, 1 val, 2 test, -1 excluded) for an input kind."""
        tracks = self.tracks
        sample_tracks = self.sample_tracks(kind)
        return sample_split(np.asarray(sample_tracks), list(tracks.track_id), list(tracks.genre), split, self.groups)

    def manifest_with_split(self, split: SplitConfig) -> pd.DataFrame:
        """The manifest plus where each track's samples went under ``split``.

        ``split`` is the track's part; under ``random`` a track's segments scatter, so it reads
        ``mixed`` and the per-part segment counts say how.
        """
        tracks = self.tracks
        seg_parts = self.parts("mfcc", split)
        counts = np.zeros((len(tracks), 3), dtype=int)
        for p in range(3):
            counts[:, p] = np.bincount(self.seg_track[seg_parts == p], minlength=len(tracks))
        img_parts = np.full(len(tracks), -1)
        img_parts[self.img_track] = self.parts("image", split)
        names = np.array(PARTS + ("excluded",))
        per_track = []
        for i in range(len(tracks)):
            used = [p for p in range(3) if counts[i, p]]
            per_track.append(names[used[0]] if len(used) == 1 else ("mixed" if used else "excluded"))
        extra = pd.DataFrame({
            "track_id": tracks.track_id,
            "split": per_track,
            "image_split": [names[p] if p >= 0 else ("excluded" if has else "") for p, has in zip(img_parts, np.isin(np.arange(len(tracks)), self.img_track))],
            "segments_train": counts[:, 0], "segments_val": counts[:, 1], "segments_test": counts[:, 2],
        })
        out = self.manifest.merge(extra, on="track_id", how="left")
        # A skipped file (e.g. a second file with a kept track's id) went nowhere, whatever its id.
        skipped = (out.status != "ok").to_numpy()
        out.loc[skipped, ["split", "image_split"]] = ""
        out["split"] = out["split"].fillna("")
        out["image_split"] = out["image_split"].fillna("")
        for col in ("segments_train", "segments_val", "segments_test"):
            out.loc[skipped, col] = 0
            out[col] = out[col].fillna(0).astype(int)
        out["split_method"] = split.split
        out["split_seed"] = split.seed
        return out


#: The store's data files; ``meta.json``, written last, records each one's size.
DATA_FILES = ("mfcc.npy", "stats.npy", "seg_track.npy", "images.npy", "img_track.npy", "manifest.csv")


def load_store(path: str | os.PathLike) -> FeatureStore:
    """Open a store, after checking every file has the size ``meta.json`` recorded (a damaged
    entry raises ``DamagedCache`` rather than failing later inside an mmap)."""
    path = Path(path)
    try:
        meta = json.loads((path / "meta.json").read_text())
        for name, size in meta.get("file_sizes", {}).items():
            have = (path / name).stat().st_size if (path / name).is_file() else None
            if have != size:
                raise DamagedCache(f"{path}: damaged feature cache ({name} has {have if have is not None else 'no'} "
                                   f"bytes, {size} were written)")
        mfcc, stats = np.load(path / "mfcc.npy", mmap_mode="r"), np.load(path / "stats.npy", mmap_mode="r")
        for name, arr in (("mfcc.npy", mfcc), ("stats.npy", stats)):
            if not np.isfinite(arr).all():  # same size, other values: NaN never reaches a net
                raise DamagedCache(f"{path}: damaged feature cache ({name} holds NaN or infinite values)")
        return FeatureStore(
            path=str(path),
            meta=meta,
            manifest=pd.read_csv(path / "manifest.csv", keep_default_na=False),
            mfcc=mfcc,
            stats=stats,
            seg_track=np.load(path / "seg_track.npy"),
            images=np.load(path / "images.npy", mmap_mode="r"),
            img_track=np.load(path / "img_track.npy"),
        )
    except (OSError, ValueError) as exc:  # unreadable JSON, a torn .npy header, a missing file
        raise DamagedCache(f"{path}: damaged feature cache ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None


@dataclass
class PreprocessResult:
    store: FeatureStore
    key: str
    reused: bool
    seconds: float
    layout: str
    skipped: list[str] = field(default_factory=list)  # "path: reason"
    noted: list[str] = field(default_factory=list)  # "path: notes", for files kept with a note

    @property
    def path(self) -> str:
        return self.store.path


def write_store(target: Path, disc: Discovery, digest: str, fcfg: FeatureConfig, results: list[TrackResult]) -> None:
    def write(tmp: Path) -> None:
        rows, mfccs, stats, seg_track, images, img_track = [], [], [], [], [], []
        for s in disc.skipped:
            rows.append({"track_id": s.track_id or "", "genre": s.genre or "", "label": GENRE_TO_ID.get(s.genre or "", -1),
                         "path": s.path, "status": "skipped", "reason": s.reason})
        ok_index = 0
        for r in results:
            row = {"track_id": r.track_id, "genre": r.genre, "label": GENRE_TO_ID[r.genre], "path": r.path,
                   "status": r.status, "reason": r.reason, "notes": r.notes, "duration_s": round(r.duration_s, 3),
                   "kept_s": round(r.kept_s, 3), "segments": 0, "image_source": r.image_source,
                   "image_path": os.path.relpath(r.image_path, disc.root) if r.image_path else "",
                   "audio_hash": r.audio_hash if r.status == "ok" else ""}
            if r.status == "ok":
                assert r.mfcc is not None
                row["segments"] = r.mfcc.shape[0]
                mfccs.append(r.mfcc)
                stats.append(r.stats)
                seg_track.append(np.full(r.mfcc.shape[0], ok_index, dtype=np.int32))
                if r.image is not None:
                    images.append(r.image)
                    img_track.append(ok_index)
                ok_index += 1
            rows.append(row)
        manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
        ok = (manifest.status == "ok").to_numpy()
        repeats = repeat_columns(list(manifest.track_id[ok]), [r for r in results if r.status == "ok"])
        for col in repeats:
            manifest[col] = manifest[col].astype(object)
            manifest.loc[ok, col] = repeats[col].to_numpy()
        manifest[["duration_s", "kept_s", "repeat_score"]] = manifest[["duration_s", "kept_s", "repeat_score"]].fillna(0.0)
        manifest["segments"] = manifest["segments"].fillna(0).astype(int)
        manifest = manifest.fillna("")
        frames = fcfg.frames_per_segment
        s = fcfg.image_size
        np.save(tmp / "mfcc.npy", np.concatenate(mfccs) if mfccs else np.zeros((0, frames, fcfg.n_mfcc), np.float32))
        np.save(tmp / "stats.npy", np.concatenate(stats) if stats else np.zeros((0, len(STAT_NAMES)), np.float32))
        np.save(tmp / "seg_track.npy", np.concatenate(seg_track) if seg_track else np.zeros(0, np.int32))
        np.save(tmp / "images.npy", np.stack(images) if images else np.zeros((0, 3, s, s), np.uint8))
        np.save(tmp / "img_track.npy", np.asarray(img_track, dtype=np.int32))
        manifest.to_csv(tmp / "manifest.csv", index=False)
        meta = {
            "features": asdict(fcfg),
            "feature_code_version": FEATURE_CODE_VERSION,
            "code_version": code_version(),
            "dataset": {"name": disc.name, "digest": digest, "root": disc.root, "layout": disc.layout,
                        "synthetic": disc.synthetic is not None},
            "counts": {"files": len(manifest), "tracks_ok": ok_index, "skipped": int((manifest.status == "skipped").sum()),
                       "segments": int(sum(m.shape[0] for m in mfccs)), "images": len(images)},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "file_sizes": {name: (tmp / name).stat().st_size for name in DATA_FILES},
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))

    atomic_dir(target, write)


def build_features(cfg: DataConfig, force: bool = False) -> PreprocessResult:
    """Discover, extract (in parallel) and cache; or reuse the cache made with the same key.

    A plain folder only: ``runs:/<id>/features`` is resolved a layer up, by
    ``genre_models.tracking.shipping.open_features``.
    """
    t0 = time.perf_counter()
    disc = discover(cfg.data_dir)
    digest = dataset_digest(disc)
    key = cache_key(cfg.features, digest)
    cache = Path(cfg.cache_dir).expanduser()
    check_writable(cache)  # before the work, not after it
    remove_orphans(cache)
    target = cache / key
    check_entry(target)  # before the work, not after a whole extraction
    if (target / "meta.json").is_file() and not force:
        try:
            store = load_store(target)
            log.info("reusing feature cache %s (%d segments, %d images)", target, store.mfcc.shape[0], store.images.shape[0])
            return PreprocessResult(store, key, True, time.perf_counter() - t0, disc.layout, skips(store.manifest),
                                    notes_of(store))
        except DamagedCache as exc:
            log.warning("%s; rebuilding it", exc)
            force = True
    log.info("extracting features for %d files from %s (%s layout) into %s", len(disc.tracks), disc.audio_dir, disc.layout, target)
    results = run_extraction(disc.tracks, cfg.features, cfg.jobs)
    if force:
        remove_entry(target)
    write_store(target, disc, digest, cfg.features, results)
    store = load_store(target)
    skipped, noted = skips(store.manifest), notes_of(store)
    for line in skipped:
        log.warning("skipped %s", line)
    for line in noted:
        log.info("kept %s", line)
    return PreprocessResult(store, key, False, time.perf_counter() - t0, disc.layout, skipped, noted)


def skips(manifest: pd.DataFrame) -> list[str]:
    bad = manifest[manifest.status == "skipped"]
    return [f"{p}: {r}" for p, r in zip(bad.path, bad.reason)]


def notes_of(store: FeatureStore) -> list[str]:
    """"path: notes" for every file kept with a note: truncated, downmixed or resampled."""
    ok = store.manifest[(store.manifest.status == "ok") & (store.manifest.notes != "")]
    return [f"{path}: {notes}" for path, notes in zip(ok.path, ok.notes)]


