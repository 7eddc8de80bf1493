"""Pure feature functions: agreement with librosa, batching, shapes."""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from genre_models.config import FeatureConfig, PreprocessConfig
from genre_models.data.features import mfcc_batch, mfcc_of, segment, spectrogram_image, trim_silence
from genre_models.data.synth import synth_track

from conftest import kaggle_tree

F = FeatureConfig()


def _mfcc(segs):
    return mfcc_batch(segs, F.sample_rate, F.n_mfcc, F.n_fft, F.hop_length, F.n_mels)


@pytest.mark.parametrize("genre", ["classical", "metal", "hiphop"])
def test_mfcc_matches_librosa_per_segment(genre):
    segs = segment(synth_track(genre, 3.0, seed=7), F.segment_samples)  # (3, 22050)
    ours = _mfcc(segs)
    ref = np.stack([librosa.feature.mfcc(y=s, sr=F.sample_rate, n_mfcc=13, n_fft=2048, hop_length=512).T for s in segs])
    assert ours.shape == ref.shape == (3, 44, 13)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=2e-3)


def test_batched_equals_per_clip():
    clips = [segment(synth_track(g, 2.0, seed=i), F.segment_samples) for i, g in enumerate(["jazz", "pop", "rock"])]
    batched = _mfcc(np.concatenate(clips))  # one call over every segment of every clip
    per_clip = np.concatenate([_mfcc(c) for c in clips])
    per_segment = np.concatenate([_mfcc(s[None]) for c in clips for s in c])
    np.testing.assert_allclose(batched, per_clip, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(batched, per_segment, rtol=1e-5, atol=1e-4)


def test_frames_per_segment_default_is_44():
    assert F.segment_samples == 22050 and F.frames_per_segment == 44
    assert _mfcc(np.zeros((0, 22050), np.float32)).shape == (0, 44, 13)


def test_trim_silence_cuts_the_gap_and_segment_drops_tail():
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(22050 * 2) / 22050)).astype(np.float32)
    y = np.concatenate([tone, np.zeros(22050 * 3, np.float32), tone[: 22050 // 2]])  # 2 s, 3 s silence, 0.5 s
    kept = trim_silence(y, F.silence_top_db, F.n_fft, F.hop_length)
    assert 2.3 < kept.size / 22050 < 2.8
    assert segment(kept, 22050).shape == (2, 22050)


def test_spectrogram_image_shape_and_range():
    img = spectrogram_image(synth_track("disco", 5.0, 1), F.sample_rate, F.n_fft, F.hop_length, F.n_mels, 180)
    assert img.shape == (3, 180, 180) and img.dtype == np.uint8
    assert img.max() > 200 and img.min() < 30  # magma spans dark to bright


def test_each_summary_statistic_is_librosas_descriptor_over_the_segments_frames():
    """Every descriptor the baselines summarise agrees with librosa's own on the same frames
    (the roll-off to one bin: its sums run in another order), and the statistics are their mean
    and variance over each segment's frames."""
    import librosa

    from genre_models.data.features import DESCRIPTORS, STAT_NAMES, power_spectrogram, summary_stats

    fcfg = FeatureConfig()
    seg = segment(synth_track("jazz", 3.0, seed=5).astype(np.float32), fcfg.segment_samples)  # (3, 22050)
    stats = summary_stats(seg, fcfg)
    assert stats.shape == (3, 74) == (3, len(STAT_NAMES)) and len(DESCRIPTORS) == 37
    mag = np.sqrt(power_spectrogram(seg, fcfg.n_fft, fcfg.hop_length)).transpose(0, 2, 1)  # (B, bins, F)
    sr = fcfg.sample_rate
    ref = {"centroid": librosa.feature.spectral_centroid(S=mag, sr=sr)[:, 0],
           "bandwidth": librosa.feature.spectral_bandwidth(S=mag, sr=sr)[:, 0],
           "zcr": librosa.feature.zero_crossing_rate(seg, frame_length=2048, hop_length=512)[:, 0],
           "rms": librosa.feature.rms(y=seg, frame_length=2048, hop_length=512)[:, 0],
           "contrast1": librosa.feature.spectral_contrast(S=mag, sr=sr)[:, 0],
           "contrast7": librosa.feature.spectral_contrast(S=mag, sr=sr)[:, 6],
           "chroma3": librosa.feature.chroma_stft(S=mag ** 2, sr=sr, tuning=0.0)[:, 2],
           "mfcc1": mfcc_of(seg, fcfg)[:, :, 0]}
    for name, frames in ref.items():  # (B, F) per descriptor
        col = STAT_NAMES.index(f"{name}_mean")
        np.testing.assert_allclose(stats[:, col], frames.mean(1), rtol=2e-4, atol=1e-4, err_msg=name)
        np.testing.assert_allclose(stats[:, col + 1], frames.var(1), rtol=2e-3, atol=1e-4, err_msg=name)
    rolloff = librosa.feature.spectral_rolloff(S=mag, sr=sr)[:, 0]
    assert abs(stats[:, STAT_NAMES.index("rolloff_mean")] - rolloff.mean(1)).max() < sr / 2048  # within a bin


def test_a_tracks_pooled_statistics_are_those_of_all_its_frames(tmp_path):
    """The store pools each track's segment statistics exactly as ``pool_stats`` pools one clip's:
    the mean of the means, and the variance over all the frames."""
    from genre_models.data.features import pool_stats
    from genre_models.data.store import build_features

    root = kaggle_tree(tmp_path / "d", per_genre=1, seconds=3.5)
    store = build_features(PreprocessConfig(data_dir=str(root), cache_dir=str(tmp_path / "c"), jobs=1)).store
    pooled = store.clip_stats()
    stats, seg_track = np.asarray(store.stats), np.asarray(store.seg_track)
    assert pooled.shape == (len(store.tracks), 74) and stats.shape == (store.mfcc.shape[0], 74)
    for t in range(len(store.tracks)):
        np.testing.assert_allclose(pooled[t], pool_stats(stats[seg_track == t]), rtol=1e-4, atol=1e-6)
    frames = np.random.default_rng(0).normal(size=(3, 44, 2))  # three segments' frames, two descriptors
    seg_stats = np.stack([frames.mean(1), frames.var(1)], -1).reshape(3, 4)  # mean, var per descriptor
    np.testing.assert_allclose(pool_stats(seg_stats)[0::2], frames.reshape(-1, 2).mean(0), rtol=1e-6)
    np.testing.assert_allclose(pool_stats(seg_stats)[1::2], frames.reshape(-1, 2).var(0), rtol=1e-6)


@pytest.mark.sample
def test_the_statistics_correlate_with_kaggles_features_on_the_real_sample(sample_dir, tmp_path):
    """Every per-clip feature that Kaggle's features_30_sec.csv also has correlates with its
    column at r >= 0.95 over the sample's clips (our frames are the segments' own, after silence
    removal; Kaggle's run over the whole clip)."""
    import pandas as pd

    from genre_models.data.features import STAT_NAMES
    from genre_models.data.store import build_features

    store = build_features(PreprocessConfig(data_dir=str(sample_dir), cache_dir=str(tmp_path / "c"))).store
    ours = pd.DataFrame(store.clip_stats(), columns=STAT_NAMES)
    ours["filename"] = [f"{t}.wav" for t in store.tracks.track_id]
    both = pd.read_csv(sample_dir / "Data" / "features_30_sec.csv").merge(ours, on="filename", suffixes=("_k", ""))
    assert len(both) == 50  # every usable sample clip (the corrupt jazz.00054 is not among them)
    chroma_means = both[[f"chroma{i}_mean" for i in range(1, 13)]].to_numpy()
    chroma_vars = both[[f"chroma{i}_var" for i in range(1, 13)]].to_numpy()
    mine = {"chroma_stft_mean": chroma_means.mean(1),  # Kaggle's chroma is over all 12 bins at once
            "chroma_stft_var": (chroma_vars + chroma_means ** 2).mean(1) - chroma_means.mean(1) ** 2}
    for kaggle, name in (("rms", "rms"), ("spectral_centroid", "centroid"), ("spectral_bandwidth", "bandwidth"),
                         ("rolloff", "rolloff"), ("zero_crossing_rate", "zcr"),
                         *((f"mfcc{i}", f"mfcc{i}") for i in range(1, 14))):
        for stat in ("mean", "var"):
            column = f"{kaggle}_{stat}" + ("_k" if kaggle == name else "")
            mine[column] = both[f"{name}_{stat}"].to_numpy()
    r = {col: np.corrcoef(both[col], values)[0, 1] for col, values in mine.items()}
    assert len(r) == 2 + 2 * (5 + 13) and min(r.values()) >= 0.95, sorted(r.items(), key=lambda kv: kv[1])[:5]
