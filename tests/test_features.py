"""Pure feature functions: agreement with librosa, batching, shapes."""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from genre_models.config import FeatureConfig
from genre_models.data.features import mfcc_batch, segment, spectrogram_image, trim_silence
from genre_models.data.synth import synth_track

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
