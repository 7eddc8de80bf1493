"""Audio and image decoding: the suite's one path from a file to 1 s segments.

``decode_clip`` is used by preprocessing (the feature cache), by the GAN's training audio and
shipped segment audio, and by ``predict``: decode -> mono float32 at the features' rate ->
silence removal -> 1 s segments. Keeping one path is what makes a segment index in the cache
mean the same audio everywhere.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np

from genre_models.config import FeatureConfig
from genre_models.data.features import clip_segments
from genre_models.errors import BadAudio


def load_audio(path: str, sample_rate: int) -> tuple[np.ndarray, list[str]]:
    """Decode one file to mono float32 at ``sample_rate``.

    Returns the samples and notes on what was done to them (downmix, resample), which the
    manifest keeps. Raises ``BadAudio`` with a short reason for anything unusable. Only
    libsndfile formats are read here (WAV, AU, FLAC, OGG, AIFF, MP3): a file without a valid
    header, such as the Kaggle copy's ``jazz.00054.wav``, is rejected rather than guessed at.
    """
    import soundfile as sf

    size = os.path.getsize(path)
    if size == 0:
        raise BadAudio("empty file (0 bytes)")
    try:
        data, sr = sf.read(path, dtype="float32", always_2d=True)  # (samples, channels)
    except Exception as exc:  # libsndfile raises several types; all mean "cannot decode"
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        msg = re.sub(r"^Error opening .*?: ", "", msg).strip()  # the path is named by the caller
        raise BadAudio(f"unreadable audio, no valid header or codec (libsndfile: {msg})") from None
    notes: list[str] = []
    if data.shape[0] == 0:
        raise BadAudio("empty audio (header present, 0 samples)")
    if data.shape[1] > 1:
        notes.append(f"downmixed {data.shape[1]} channels to mono")
    y = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if sr != sample_rate:
        import soxr

        y = soxr.resample(y, sr, sample_rate).astype(np.float32, copy=False)
        notes.append(f"resampled {sr} Hz -> {sample_rate} Hz")
    if not np.all(np.isfinite(y)):
        raise BadAudio("audio contains NaN or infinite samples")
    return np.ascontiguousarray(y), notes


def load_any_audio(path: str, sample_rate: int) -> np.ndarray:
    """Decode a user's clip for ``predict``: anything librosa reads (soundfile, then audioread)."""
    try:
        y, _ = load_audio(path, sample_rate)
        return y
    except BadAudio:
        pass
    import warnings

    import librosa

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y, _ = librosa.load(path, sr=sample_rate, mono=True)
    except Exception as exc:
        raise BadAudio(f"unreadable audio ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if y.size == 0:
        raise BadAudio("empty audio")
    return y.astype(np.float32, copy=False)


def load_png(path: str, size: int) -> np.ndarray:
    """A Kaggle spectrogram PNG as uint8 (3, size, size), resized as Keras'
    ``image_dataset_from_directory`` does (bilinear, whole image, no crop): what the study fed."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            rgb = im.convert("RGB").resize((size, size), Image.BILINEAR)
    except Exception as exc:
        raise BadAudio(f"unreadable image ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    arr = np.asarray(rgb, dtype=np.uint8)  # (H, W, 3)
    return np.ascontiguousarray(arr.transpose(2, 0, 1))  # (3, H, W)


@dataclass
class DecodedClip:
    """A decoded clip and its 1 s segments (what every consumer of audio in the suite takes)."""

    y: np.ndarray  # (samples,) float32, mono, at the features' rate
    segments: np.ndarray  # (n_segments, segment_samples) float32, after silence removal
    kept_samples: int  # samples left after silence removal
    notes: list[str]  # what decoding did (downmix, resample), for the manifest


def decode_clip(path: str, fcfg: FeatureConfig, *, any_format: bool = False) -> DecodedClip:
    """Decode ``path`` and cut it into segments. ``any_format``: also try librosa's other
    decoders (``predict`` on a user's clip); the dataset itself is read by libsndfile only.
    Raises ``BadAudio`` for an unusable file (the message does not name the path)."""
    if any_format:
        y, notes = load_any_audio(path, fcfg.sample_rate), []
    else:
        y, notes = load_audio(path, fcfg.sample_rate)
    segments, kept = clip_segments(y, fcfg)
    return DecodedClip(y, segments, kept, notes)


def to_pcm16(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)


def from_pcm16(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) / 32767.0


def write_wav(path, clip: np.ndarray, sample_rate: int) -> None:
    """A clip as a 16-bit WAV (previews, and the real windows logged beside them)."""
    import soundfile as sf

    sf.write(path, clip, sample_rate, subtype="PCM_16")
