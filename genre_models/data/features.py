"""Pure feature functions: arrays in, arrays out. No file I/O here (decoding is ``audio.py``).

``mfcc_batch`` reproduces ``librosa.feature.mfcc(y=segment, sr, n_mfcc, n_fft, hop_length)``
for each 1 s segment independently (centred, zero-padded STFT, Slaney mel filters, power in dB
with the 80 dB floor taken per segment, orthonormal DCT-II), but for a whole stack of segments
in one call and in float32. Caveat, as torchaudio's docs note for its transforms: the MFCC of a
1 s snippet differs from the same frames sliced out of the whole clip's MFCC, because the
padding at the segment edges and the per-segment dB floor differ. The study computed it per
segment, and so do we.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.fft
import scipy.sparse

from genre_models.config import FeatureConfig


def trim_silence(y: np.ndarray, top_db: float, frame_length: int, hop_length: int) -> np.ndarray:
    """Cut out every stretch quieter than ``top_db`` below the clip's peak and join the rest.

    (samples,) -> (kept_samples,). Uses librosa.effects.split's RMS-in-frames rule.
    """
    import librosa

    if y.size < frame_length:
        return y
    intervals = librosa.effects.split(y, top_db=top_db, frame_length=frame_length, hop_length=hop_length)
    if len(intervals) == 0:
        return y[:0]
    return np.concatenate([y[s:e] for s, e in intervals])


def segment(y: np.ndarray, segment_samples: int) -> np.ndarray:
    """(samples,) -> (n_segments, segment_samples); the tail shorter than a segment is dropped."""
    n = y.size // segment_samples
    return y[: n * segment_samples].reshape(n, segment_samples)


def clip_segments(y: np.ndarray, fcfg: FeatureConfig) -> tuple[np.ndarray, int]:
    """A whole clip -> its 1 s segments after silence removal, and the samples kept.

    (samples,) -> (n_segments, segment_samples). The one rule the cache, the GAN's audio and
    ``predict`` share.
    """
    kept = trim_silence(y, fcfg.silence_top_db, fcfg.n_fft, fcfg.hop_length)
    return segment(kept, fcfg.segment_samples), int(kept.size)


def mfcc_of(segments: np.ndarray, fcfg: FeatureConfig) -> np.ndarray:
    """(n_segments, segment_samples) -> (n_segments, frames, n_mfcc) with ``fcfg``'s settings."""
    return mfcc_batch(segments, fcfg.sample_rate, fcfg.n_mfcc, fcfg.n_fft, fcfg.hop_length, fcfg.n_mels)


def image_of(y: np.ndarray, fcfg: FeatureConfig) -> np.ndarray:
    """A whole clip -> its rendered log-mel picture, uint8 (3, S, S), with ``fcfg``'s settings."""
    return spectrogram_image(y, fcfg.sample_rate, fcfg.n_fft, fcfg.hop_length, fcfg.n_mels, fcfg.image_size)


@lru_cache(maxsize=8)
def _hann(n_fft: int) -> np.ndarray:
    # Periodic Hann, as scipy.signal.get_window("hann", n, fftbins=True) which librosa uses.
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


@lru_cache(maxsize=8)
def _mel_basis(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0,
               fmax: float | None = None) -> scipy.sparse.csr_matrix:
    import librosa

    # (n_mels, 1 + n_fft // 2), Slaney-normalised; about 2 non-zeros per column, so sparse.
    fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, dtype=np.float32)
    return scipy.sparse.csr_matrix(fb)


@lru_cache(maxsize=8)
def _dct_matrix(n_mels: int, n_mfcc: int) -> np.ndarray:
    # Row k is DCT-II (orthonormal) basis k, so coefficients = basis @ log_mel.
    return scipy.fft.dct(np.eye(n_mels, dtype=np.float64), type=2, norm="ortho", axis=0)[:n_mfcc].astype(np.float32)


def power_spectrogram(x: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
    """Centred, zero-padded STFT power. (batch, samples) -> (batch, frames, 1 + n_fft // 2)."""
    pad = n_fft // 2
    xp = np.pad(x.astype(np.float32, copy=False), ((0, 0), (pad, pad)))  # (B, S + n_fft)
    frames = np.lib.stride_tricks.sliding_window_view(xp, n_fft, axis=-1)[:, ::hop_length]  # (B, F, n_fft)
    spec = scipy.fft.rfft(frames * _hann(n_fft), axis=-1)  # (B, F, n_fft//2 + 1) complex64
    return (spec.real * spec.real + spec.imag * spec.imag).astype(np.float32, copy=False)


def log_mel(power: np.ndarray, sample_rate: int, n_fft: int, n_mels: int, top_db: float = 80.0) -> np.ndarray:
    """(B, F, bins) power -> (B, F, n_mels) dB, floored at ``top_db`` below each item's own peak."""
    b, f, bins = power.shape
    basis = _mel_basis(sample_rate, n_fft, n_mels)  # (n_mels, bins)
    mel = (basis @ power.reshape(b * f, bins).T).T  # (B*F, n_mels)
    db = 10.0 * np.log10(np.maximum(mel, 1e-10, dtype=np.float32)).reshape(b, f, n_mels)
    floor = db.max(axis=(1, 2), keepdims=True) - top_db  # (B, 1, 1): per item, as per-clip librosa
    return np.maximum(db, floor).astype(np.float32, copy=False)


def mfcc_batch(
    segments: np.ndarray, sample_rate: int, n_mfcc: int, n_fft: int, hop_length: int, n_mels: int
) -> np.ndarray:
    """(n_segments, segment_samples) -> (n_segments, frames, n_mfcc) float32, time-major for the LSTM."""
    if segments.shape[0] == 0:
        frames = 1 + segments.shape[1] // hop_length
        return np.zeros((0, frames, n_mfcc), dtype=np.float32)
    power = power_spectrogram(segments, n_fft, hop_length)  # (B, F, bins)
    db = log_mel(power, sample_rate, n_fft, n_mels)  # (B, F, n_mels)
    return db @ _dct_matrix(n_mels, n_mfcc).T  # (B, F, n_mfcc)


@lru_cache(maxsize=2)
def _magma_lut() -> np.ndarray:
    import matplotlib

    return (matplotlib.colormaps["magma"](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)  # (256, 3)


def spectrogram_image(y: np.ndarray, sample_rate: int, n_fft: int, hop_length: int, n_mels: int, size: int) -> np.ndarray:
    """A whole clip as a magma-coloured log-mel picture, uint8 (3, size, size).

    In the spirit of the Kaggle PNGs (librosa mel spectrogram, magma, low frequencies at the
    bottom) but without their white margins and axes: only the plot area is rendered.
    """
    from PIL import Image

    power = power_spectrogram(y[None, :], n_fft, hop_length)  # (1, F, bins)
    db = log_mel(power, sample_rate, n_fft, n_mels)[0]  # (F, n_mels)
    top = db.max()
    level = np.clip((db - (top - 80.0)) / 80.0, 0.0, 1.0)  # (F, n_mels) in [0, 1]
    idx = np.round(level.T[::-1] * 255).astype(np.uint8)  # (n_mels, F), low mels at the bottom
    rgb = _magma_lut()[idx]  # (n_mels, F, 3)
    img = Image.fromarray(rgb, mode="RGB").resize((size, size), Image.BILINEAR)
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8).transpose(2, 0, 1))  # (3, size, size)


#: The repeat fingerprint's frame: a hop of 1024 samples at 22050 Hz (46 ms), the window twice that.
FINGERPRINT_FRAME_S = 1024 / 22050
FINGERPRINT_BANDS = 24


def repeat_fingerprint(y: np.ndarray, sample_rate: int) -> np.ndarray:
    """A whole clip's spectral-envelope fingerprint for finding repeated recordings
    (``genre_models.data.repeats``): (samples,) -> (frames, 24) float16, 46 ms frames.

    24 log-mel bands from 60 Hz to 8 kHz, floored 50 dB under the loudest cell, then high-passed
    in time: minus a 2 s moving average per band, minus each frame's mean over the bands. Only
    the clip's fine spectro-temporal texture is left; level, equalisation, a codec's low-pass,
    dither and requantisation noise are not.
    """
    from scipy.ndimage import uniform_filter1d

    hop = int(round(FINGERPRINT_FRAME_S * sample_rate))
    power = power_spectrogram(y[None, :], 2 * hop, hop)[0]  # (F, bins)
    basis = _mel_basis(sample_rate, 2 * hop, FINGERPRINT_BANDS, 60.0, min(8000.0, sample_rate / 2))
    mel = (basis @ power.T).T  # (F, 24)
    db = 10.0 * np.log10(np.maximum(mel, 1e-10, dtype=np.float32))
    db = np.maximum(db, db.max() - 50.0)
    window = max(1, int(round(2.0 / FINGERPRINT_FRAME_S)))  # 2 s of frames
    z = db - uniform_filter1d(db, window, axis=0, mode="nearest")  # (F, 24)
    z -= z.mean(axis=1, keepdims=True)
    return z.astype(np.float16)
