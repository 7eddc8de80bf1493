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
    segments: np.ndarray, sample_rate: int, n_mfcc: int, n_fft: int, hop_length: int, n_mels: int,
    power: np.ndarray | None = None,
) -> np.ndarray:
    """(n_segments, segment_samples) -> (n_segments, frames, n_mfcc) float32, time-major for the
    LSTM. ``power``: the segments' ``power_spectrogram``, when the caller has it already."""
    if segments.shape[0] == 0:
        frames = 1 + segments.shape[1] // hop_length
        return np.zeros((0, frames, n_mfcc), dtype=np.float32)
    if power is None:
        power = power_spectrogram(segments, n_fft, hop_length)  # (B, F, bins)
    db = log_mel(power, sample_rate, n_fft, n_mels)  # (B, F, n_mels)
    return db @ _dct_matrix(n_mels, n_mfcc).T  # (B, F, n_mfcc)


# --------------------------------------------------------------------------- the baselines' statistics

#: The frame-level descriptors MIR baselines summarise (Tzanetakis & Cook 2002; the Kaggle
#: ``features_30_sec.csv``), in column order; each becomes a mean and a variance over frames.
DESCRIPTORS = (*(f"mfcc{i}" for i in range(1, 14)), *(f"chroma{i}" for i in range(1, 13)), "centroid", "bandwidth",
               "rolloff", *(f"contrast{i}" for i in range(1, 8)), "zcr", "rms")
STAT_NAMES = tuple(f"{d}_{s}" for d in DESCRIPTORS for s in ("mean", "var"))


@lru_cache(maxsize=8)
def _chroma_basis(sample_rate: int, n_fft: int) -> np.ndarray:
    import librosa

    # tuning 0: librosa would estimate it per call (piptrack), which is slow and crashed numba here.
    return librosa.filters.chroma(sr=sample_rate, n_fft=n_fft, tuning=0.0).astype(np.float32)  # (12, bins)


def _zcr_rms(y: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
    """Zero-crossing rate and RMS per centred frame, as librosa's (its frames: edge-padded for
    the crossings, |x| <= 1e-10 counting as 0; zero-padded for RMS): (B, S) -> (B, F, 2).
    Crossings are counted from one cumulative sum over the clip, not frame by frame."""
    pad = ((0, 0), (n_fft // 2, n_fft // 2))
    edge = np.pad(y, pad, mode="edge")
    negative = np.signbit(edge) & (np.abs(edge) > 1e-10)
    crossed = np.cumsum(negative[:, 1:] != negative[:, :-1], axis=-1, dtype=np.int32)  # up to sample i+1
    crossed = np.pad(crossed, ((0, 0), (1, 0)))
    starts = np.arange(0, edge.shape[-1] - n_fft + 1, hop_length)  # (F,)
    zcr = (crossed[:, starts + n_fft - 1] - crossed[:, starts]) / n_fft
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(y, pad), n_fft, axis=-1)[:, ::hop_length]  # (B, F, n_fft)
    rms = np.sqrt(np.einsum("bfk,bfk->bf", frames, frames) / n_fft)
    return np.stack([zcr, rms], axis=-1).astype(np.float32)


def _rolloff(mag: np.ndarray, freq: np.ndarray, share: float = 0.85) -> np.ndarray:
    """The first bin at which the cumulative magnitude reaches ``share`` of the total, as
    librosa's roll-off (to a bin: the sums run in another order), found block by block, since a
    cumulative sum over every bin is the slow part: (B, F, bins) -> (B, F) in Hz."""
    b, f, bins = mag.shape
    block = next((n for n in range(32, 7, -1) if bins % n == 0), 16)  # 25 for n_fft 2048's 1025 bins
    n_blocks = -(-bins // block)
    padded = mag if bins % block == 0 else np.pad(mag, ((0, 0), (0, 0), (0, n_blocks * block - bins)))
    padded = padded.reshape(b, f, n_blocks, block)
    sums = padded.sum(-1)  # (B, F, blocks)
    before = np.cumsum(sums, axis=-1)  # magnitude up to each block's end
    target = share * before[..., -1:]
    k = np.argmax(before >= target, axis=-1)  # (B, F): the block that crosses
    base = np.take_along_axis(before - sums, k[..., None], -1)  # (B, F, 1): magnitude before that block
    inside = np.cumsum(np.take_along_axis(padded, k[..., None, None], 2)[..., 0, :], axis=-1) + base
    j = np.argmax(inside >= target, axis=-1)
    return freq[np.minimum(k * block + j, bins - 1)]


def _spectral_shape(mag: np.ndarray, sample_rate: int) -> np.ndarray:
    """Centroid, bandwidth (p = 2) and 85% roll-off of the magnitude spectrum, as librosa's:
    (B, F, bins) magnitude -> (B, F, 3) in Hz; 0 for a silent frame."""
    freq = np.linspace(0, sample_rate / 2, mag.shape[-1], dtype=np.float32)  # (bins,)
    total = mag.sum(-1)  # (B, F)
    safe = np.where(total > 0, total, 1.0)
    centroid = (mag @ freq) / safe  # (B, F)
    spread = (mag @ (freq * freq)) / safe - centroid * centroid  # E[f^2] - E[f]^2 under the magnitude
    shape = np.stack([centroid, np.sqrt(np.maximum(spread, 0.0)), _rolloff(mag, freq)], axis=-1)
    return np.where((total > 0)[..., None], shape, 0.0)


@lru_cache(maxsize=8)
def _contrast_bands(sample_rate: int, bins: int, n_bands: int, fmin: float, quantile: float) -> tuple:
    """librosa's octave bands as (first bin, end bin, how many bins the quantile takes) each: a
    band includes the bin below its edge, and the last one every bin up to Nyquist."""
    freq = np.linspace(0, sample_rate / 2, bins)
    octa = np.concatenate([[0.0], fmin * 2.0 ** np.arange(n_bands + 1)])
    out = []
    for k, (lo, hi) in enumerate(zip(octa[:-1], octa[1:])):
        idx = np.flatnonzero((freq >= lo) & (freq <= hi))
        first = idx[0] - 1 if k > 0 else idx[0]
        end = bins if k == n_bands else idx[-1] + 1
        q = max(int(np.rint(quantile * (end - first))), 1)
        out.append((int(first), int(end if k == n_bands else end - 1), q))  # librosa drops a band's top bin but the last's
    return tuple(out)


def _contrast(mag: np.ndarray, sample_rate: int, n_bands: int = 6, fmin: float = 200.0,
              quantile: float = 0.02) -> np.ndarray:
    """librosa's ``spectral_contrast``: octave bands from 200 Hz, peak and valley the mean of the
    top and bottom 2% of a band's bins, in dB, floored 80 dB under the loudest (over the whole
    batch, as librosa's own ``power_to_db``): (B, F, bins) magnitude -> (B, F, n_bands + 1)."""
    peak, valley = [], []
    for first, end, q in _contrast_bands(sample_rate, mag.shape[-1], n_bands, fmin, quantile):
        ordered = np.sort(mag[..., first:end], axis=-1)  # a band is a run of bins: a slice, not a mask
        valley.append(ordered[..., :q].mean(-1))
        peak.append(ordered[..., -q:].mean(-1))
    db = lambda v: 10.0 * np.log10(np.maximum(np.stack(v, -1), 1e-10))  # noqa: E731  (B, F, bands)
    peak_db, valley_db = db(peak), db(valley)
    return np.maximum(peak_db, peak_db.max() - 80.0) - np.maximum(valley_db, valley_db.max() - 80.0)


def summary_stats(segments: np.ndarray, fcfg: FeatureConfig, power: np.ndarray | None = None,
                  mfcc: np.ndarray | None = None) -> np.ndarray:
    """Each segment's ``STAT_NAMES``: the mean and the variance over its frames of 13 MFCCs, 12
    chroma bins, spectral centroid, bandwidth, roll-off and 7 contrast bands, zero-crossing rate
    and RMS (n_fft and hop as the MFCCs'). (n_segments, samples) -> (n_segments, 74) float32.

    ``power`` and ``mfcc``: the segments' power spectrogram and MFCCs when the caller has them
    (extraction computes the STFT once for both). Caveats: the frames are the segment's own
    (centred, padded at its edges), so a clip's pooled statistics differ slightly from the same
    descriptors over the untrimmed clip (what Kaggle's ``features_30_sec.csv`` holds); chroma is
    computed with tuning 0, and the contrast floor is 80 dB under the clip's loudest band.
    """
    n = segments.shape[0]
    if n == 0:
        return np.zeros((0, len(STAT_NAMES)), np.float32)
    if power is None:
        power = power_spectrogram(segments, fcfg.n_fft, fcfg.hop_length)  # (B, F, bins)
    if mfcc is None:
        mfcc = mfcc_of(segments, fcfg)  # (B, F, 13)
    chroma = power @ _chroma_basis(fcfg.sample_rate, fcfg.n_fft).T  # (B, F, 12)
    chroma /= np.maximum(chroma.max(-1, keepdims=True), 1e-10)  # librosa's norm=inf per frame
    mag = np.sqrt(power, dtype=np.float32)  # (B, F, bins)
    zcr_rms = _zcr_rms(segments.astype(np.float32, copy=False), fcfg.n_fft, fcfg.hop_length)  # (B, F, 2)
    frames = np.concatenate([mfcc, chroma, _spectral_shape(mag, fcfg.sample_rate), _contrast(mag, fcfg.sample_rate),
                             zcr_rms], axis=-1)  # (B, F, 37)
    out = np.stack([frames.mean(1), frames.var(1)], axis=-1)  # (B, 37, 2): mean, var per descriptor
    return out.reshape(n, -1).astype(np.float32)


def pool_stats(stats: np.ndarray) -> np.ndarray:
    """A clip's statistics from its segments' (every segment has as many frames): the mean of
    the means, and the variance over all the frames (mean of the variances plus the variance of
    the means). (n_segments, 74) -> (74,)."""
    means, variances = stats[:, 0::2], stats[:, 1::2]  # (n, 37) each
    out = np.empty(stats.shape[1], np.float32)
    out[0::2] = means.mean(0)
    out[1::2] = variances.mean(0) + means.var(0)
    return out


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
