"""Per-track feature extraction: one file -> its MFCC segments and its image, or a recorded skip."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from genre_models.config import FeatureConfig
from genre_models.data.audio import decode_clip, load_png
from genre_models.data.discovery import TrackFile
from genre_models.data.features import image_of, mfcc_batch, power_spectrogram, repeat_fingerprint, summary_stats
from genre_models.data.parallel import parallel_map
from genre_models.errors import BadAudio


@dataclass
class TrackResult:
    track_id: str
    genre: str
    path: str
    status: str  # "ok" | "skipped"
    reason: str = ""
    notes: str = ""
    duration_s: float = 0.0
    kept_s: float = 0.0
    mfcc: np.ndarray | None = None  # (n, frames, n_mfcc) float32
    stats: np.ndarray | None = None  # (n, 74) float32: each segment's summary statistics (the baselines')
    image: np.ndarray | None = None  # (3, S, S) uint8
    image_source: str = ""
    image_path: str = ""
    audio_hash: str = ""  # of the decoded PCM: exact repeats under other names share it
    fingerprint: np.ndarray | None = None  # (frames, bands) float16: finds repeated recordings (data.repeats)


def _image(track: TrackFile, y: np.ndarray, fcfg: FeatureConfig, res: "TrackResult") -> None:
    """The track's image by ``fcfg.image_source``: the Kaggle PNG, or one rendered from the audio."""
    if fcfg.image_source in ("auto", "png") and track.image_path:
        try:
            res.image = load_png(track.image_path, fcfg.image_size)
            res.image_source, res.image_path = "png", track.image_path
        except BadAudio as exc:
            instead = "; rendered from the audio instead" if fcfg.image_source == "auto" else ""
            res.notes = "; ".join(filter(None, [res.notes, f"PNG {track.image_path} unusable: {exc}{instead}"]))
    if res.image is None and fcfg.image_source in ("auto", "audio"):
        res.image = image_of(y, fcfg)
        res.image_source = "audio"
    if res.image is None:
        res.notes = "; ".join(filter(None, [res.notes, "no PNG: no image (image_source=png)"]))


def extract_track(track: TrackFile, fcfg: FeatureConfig) -> TrackResult:
    """Decode one file and compute both input kinds. Never raises for a bad file: it returns a skip."""
    res = TrackResult(track.track_id, track.genre, track.rel_path, "ok")
    try:
        return _extract(track, fcfg, res)
    except BadAudio as exc:
        res.status, res.reason = "skipped", str(exc)
    except FileNotFoundError:
        res.status, res.reason = "skipped", "the file was removed while preprocessing ran"
    except MemoryError:
        res.status, res.reason = "skipped", "out of memory while decoding or computing its features"
    except Exception as exc:  # any other failure of one file costs that file, never the batch
        text = str(exc).splitlines()
        res.status, res.reason = "skipped", f"failed: {type(exc).__name__}: {text[0][:300] if text else ''}"
    res.mfcc = res.stats = res.image = res.fingerprint = None
    return res


def _extract(track: TrackFile, fcfg: FeatureConfig, res: "TrackResult") -> "TrackResult":
    clip = decode_clip(track.path, fcfg)
    res.notes = "; ".join(clip.notes)
    res.audio_hash = hashlib.blake2b(clip.y.tobytes(), digest_size=12).hexdigest()
    res.duration_s = clip.y.size / fcfg.sample_rate
    res.kept_s = clip.kept_samples / fcfg.sample_rate
    if clip.segments.shape[0] == 0:
        res.status = "skipped"
        res.reason = (
            f"clip too short: {res.kept_s:.2f} s of sound after silence removal "
            f"({res.duration_s:.2f} s in all); one segment needs {fcfg.segment_seconds:g} s"
        )
        return res
    power = power_spectrogram(clip.segments, fcfg.n_fft, fcfg.hop_length)  # (n, frames, bins): one STFT for both
    res.mfcc = mfcc_batch(clip.segments, fcfg.sample_rate, fcfg.n_mfcc, fcfg.n_fft, fcfg.hop_length, fcfg.n_mels,
                          power=power)  # (n, frames, n_mfcc)
    res.stats = summary_stats(clip.segments, fcfg, power, res.mfcc)  # (n, 74)
    res.fingerprint = repeat_fingerprint(clip.y, fcfg.sample_rate)  # (frames, 24)
    _image(track, clip.y, fcfg, res)
    return res


def _extract_star(args: tuple[TrackFile, FeatureConfig]) -> TrackResult:
    return extract_track(*args)


def run_extraction(tracks: list[TrackFile], fcfg: FeatureConfig, jobs: int) -> list[TrackResult]:
    """Extract every track, in ``jobs`` processes (0 = one per core). Order follows ``tracks``."""
    return parallel_map(_extract_star, [(t, fcfg) for t in tracks], jobs, desc="features")
