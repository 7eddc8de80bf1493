"""``benchmark perf preprocess``: the pipeline against a naive librosa loop on the same files,
and the repeat search's cost on 1000 clips."""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from genre_models.config import FeatureConfig
from genre_models.data.discovery import discover
from genre_models.data.extract import run_extraction
from genre_models.data.store import write_store


def naive_mfcc_loop(paths: list[str], fcfg: FeatureConfig) -> int:
    """The typical GTZAN script: librosa.load each file, split on silence, MFCC each segment."""
    import librosa

    n = 0
    for path in paths:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                y, _ = librosa.load(path, sr=fcfg.sample_rate)
        except Exception:  # the reference loop skips what it cannot read, as such scripts do
            continue
        kept = np.concatenate([y[s:e] for s, e in librosa.effects.split(y, top_db=fcfg.silence_top_db)] or [y[:0]])
        seg = fcfg.segment_samples
        for i in range(kept.size // seg):
            librosa.feature.mfcc(y=kept[i * seg:(i + 1) * seg], sr=fcfg.sample_rate, n_mfcc=fcfg.n_mfcc,
                                 n_fft=fcfg.n_fft, hop_length=fcfg.hop_length)
            n += 1
    return n


def collage_fingerprints(fingerprints: list[np.ndarray], n: int, seed: int = 0, blocks: int = 10) -> list[np.ndarray]:
    """``n`` distinct 30 s fingerprints from the ones at hand: each a collage of ``blocks`` 3 s
    stretches of random clips at random places, so a repeat search on them does a full
    dataset's work (GTZAN's 1000 clips) with the statistics of real ones."""
    rng = np.random.default_rng(seed)
    usable = [f for f in fingerprints if f is not None and len(f) > 1]
    block = min(65, min(len(f) for f in usable) - 1)  # 65 frames of 46 ms: 3 s
    out = []
    for _ in range(n):
        parts = []
        for _ in range(blocks):
            src = usable[int(rng.integers(len(usable)))]
            at = int(rng.integers(0, len(src) - block + 1))
            parts.append(src[at:at + block])
        out.append(np.concatenate(parts))
    return out


def bench_repeats(results: list, tracks: list, fcfg: FeatureConfig, n: int = 1000) -> dict:
    """The repeat search's cost: all pairs of ``n`` clips (collages of the real fingerprints), and
    the fingerprint's share of a clip's extraction, timed side by side on the same files."""
    from genre_models.data.audio import decode_clip
    from genre_models.data.extract import extract_track
    from genre_models.data.features import mfcc_of, power_spectrogram, repeat_fingerprint, summary_stats
    from genre_models.data.repeats import find_repeats

    fps = collage_fingerprints([r.fingerprint for r in results], n)
    t0 = time.perf_counter()
    found = find_repeats(fps, [str(i) for i in range(n)])
    t_pairs = time.perf_counter() - t0
    sample = [t for t, r in zip(tracks, results) if r.status == "ok"][:8]
    t_fp = t_stats = t_extract = 0.0
    for t in sample:
        clip = decode_clip(t.path, fcfg)
        t0 = time.perf_counter()
        repeat_fingerprint(clip.y, fcfg.sample_rate)
        t_fp += time.perf_counter() - t0
        power = power_spectrogram(clip.segments, fcfg.n_fft, fcfg.hop_length)  # extraction computes these anyway
        mfcc = mfcc_of(clip.segments, fcfg)
        t0 = time.perf_counter()
        summary_stats(clip.segments, fcfg, power, mfcc)
        t_stats += time.perf_counter() - t0
        t0 = time.perf_counter()
        extract_track(t, fcfg)
        t_extract += time.perf_counter() - t0
    return {"repeats_clips": n, "repeats_all_pairs_s": round(t_pairs, 2),
            "repeats_groups_in_collages": len(found.groups),
            "fingerprint_ms_per_clip": round(1000 * t_fp / max(len(sample), 1), 1),
            "fingerprint_share_of_extraction": round(t_fp / t_extract, 3) if t_extract else None,
            "stats_ms_per_clip": round(1000 * t_stats / max(len(sample), 1), 1),
            "stats_added_to_extraction": round(t_stats / (t_extract - t_stats), 3) if t_extract > t_stats else None}


def bench_preprocess(data_dir: str, limit: int = 0, jobs: int = 0, repeat_clips: int = 1000) -> dict:
    fcfg = FeatureConfig()
    disc = discover(data_dir)
    tracks = disc.tracks[:limit] if limit else disc.tracks
    # Warm both paths (imports, filter banks, numba) on one file so neither pays start-up alone.
    run_extraction(tracks[:1], fcfg, 1)
    naive_mfcc_loop([tracks[0].path], fcfg)

    t0 = time.perf_counter()
    results = run_extraction(tracks, fcfg, jobs)
    with tempfile.TemporaryDirectory() as tmp:
        write_store(Path(tmp) / "store", disc, "bench", fcfg, results)
    t_pipe = time.perf_counter() - t0

    t0 = time.perf_counter()
    n_naive = naive_mfcc_loop([t.path for t in tracks], fcfg)
    t_naive = time.perf_counter() - t0

    audio_s = sum(r.duration_s for r in results)
    n_segments = sum(r.mfcc.shape[0] for r in results if r.mfcc is not None)
    return {
        "files": len(tracks),
        "audio_seconds": round(audio_s, 1),
        "segments": n_segments,
        "naive_segments": n_naive,
        "jobs": jobs or os.cpu_count(),
        "pipeline_s": round(t_pipe, 3),
        "naive_s": round(t_naive, 3),
        "speedup_vs_naive": round(t_naive / t_pipe, 2),
        "x_realtime": round(audio_s / t_pipe, 1),
        "est_1000_clips_s": round(t_pipe * 1000 / max(len(tracks), 1), 1),
        **bench_repeats(results, tracks, fcfg, repeat_clips),
        "note": "pipeline = decode + silence trim + MFCC + statistics + image + repeat fingerprint + cache write (with the repeat "
                "search), all processes; naive = librosa.load + split + librosa.feature.mfcc per segment, one process, "
                "MFCC only; repeats_all_pairs_s = every pair of repeats_clips 30 s clips (collages of these files' "
                "fingerprints) compared, one process; stats_added_to_extraction = the baselines' statistics over the rest "
                "of a clip's extraction (one STFT shared with the MFCCs), timed side by side on the same clips",
    }
