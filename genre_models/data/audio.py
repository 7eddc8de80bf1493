"""Audio and image decoding: the suite's one path from a file to 1 s segments.

``decode_clip`` is used by preprocessing (the feature cache), by the GAN's training audio and
shipped segment audio, and by ``predict``: decode -> mono float32 at the features' rate ->
silence removal -> 1 s segments. Keeping one path is what makes a segment index in the cache
mean the same audio everywhere.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass

import numpy as np

from genre_models.config import FeatureConfig
from genre_models.data.features import clip_segments
from genre_models.errors import BadAudio


_AU_BYTES = {2: 1, 3: 2, 4: 3, 5: 4, 6: 4, 7: 8, 27: 1, 1: 1}  # AU encoding -> bytes per sample


def _wav_header_frames(fh) -> int | None:
    """Frames the RIFF ``data`` chunk's size promises (``fmt `` gives the frame size)."""
    fh.seek(12)
    align = None
    while True:
        head = fh.read(8)
        if len(head) < 8:
            return None
        cid, size = head[:4], struct.unpack("<I", head[4:])[0]
        if cid == b"fmt ":
            fmt = fh.read(min(size, 16))
            align = struct.unpack("<H", fmt[12:14])[0] if len(fmt) >= 14 else None
            fh.seek(size - len(fmt) + (size & 1), 1)
        elif cid == b"data":  # 0xFFFFFFFF (or 0): a streaming writer's "length unknown", as AU's
            return size // align if align and size not in (0, 0xFFFFFFFF) else None
        else:
            fh.seek(size + (size & 1), 1)


def header_frames(path: str) -> int | None:
    """How many frames a WAV or AU file's header promises (libsndfile reports only what the file
    holds, so this is how a truncated file is noticed); None for other formats or no size."""
    with open(path, "rb") as fh:
        magic = fh.read(12)
        if magic[:4] == b"RIFF" and magic[8:12] == b"WAVE":
            return _wav_header_frames(fh)
        if magic[:4] == b".snd":
            fh.seek(8)
            size, enc, _, channels = struct.unpack(">IIII", fh.read(16))
            if size == 0xFFFFFFFF or enc not in _AU_BYTES or channels == 0:
                return None
            return size // (_AU_BYTES[enc] * channels)
    return None


# MPEG audio frame headers: bitrate (kbit/s) by [MPEG-1?][layer 1..3][index], sample rate by version.
_MPEG_KBPS = {
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MPEG_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}  # version bits -> Hz


def _mpeg_frame_length(head: bytes) -> int | None:
    """The length of the MPEG audio frame whose 4-byte header is ``head``, or None if it is none."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return None
    version, layer_bits = (head[1] >> 3) & 3, (head[1] >> 1) & 3
    rate_i, kbps_i, padding = (head[2] >> 2) & 3, head[2] >> 4, (head[2] >> 1) & 1
    if version == 1 or layer_bits == 0 or rate_i == 3 or kbps_i in (0, 15):
        return None
    layer, mpeg1 = 4 - layer_bits, version == 3
    kbps, rate = _MPEG_KBPS[(mpeg1, min(layer, 2) if not mpeg1 else layer)][kbps_i], _MPEG_RATES[version][rate_i]
    if layer == 1:
        return (12 * kbps * 1000 // rate + padding) * 4
    return (144 if mpeg1 or layer == 2 else 72) * kbps * 1000 // rate + padding


def _mpeg_start(fh, data: bytes) -> bool:
    """Whether the file is MPEG audio: an ID3 tag then, or straight away, two frames in a row."""
    at = 0
    if data[:3] == b"ID3" and len(data) >= 10:
        at = 10 + ((data[6] & 0x7F) << 21 | (data[7] & 0x7F) << 14 | (data[8] & 0x7F) << 7 | (data[9] & 0x7F))
    fh.seek(at)
    head = fh.read(4)
    length = _mpeg_frame_length(head)
    if length is None:
        return False
    fh.seek(at + length)
    return _mpeg_frame_length(fh.read(4)) is not None


#: Formats known by their first bytes: (offset, magic, name). libsndfile reads the first group;
#: the second only ``predict``'s other decoders (audioread, through ffmpeg and the like).
_MAGIC = ((0, b"RIFF", "WAV"), (0, b"RF64", "WAV (RF64)"), (0, b"riff", "W64"), (0, b".snd", "AU"),
          (0, b"FORM", "AIFF"), (0, b"fLaC", "FLAC"), (0, b"OggS", "OGG"), (0, b"caff", "CAF"))
_OTHER_MAGIC = ((4, b"ftyp", "MP4/M4A"), (0, b"\x1aE\xdf\xa3", "Matroska/WebM"),
                (0, b"0&\xb2u\x8ef\xcf\x11", "ASF/WMA"), (0, b"#!AMR", "AMR"))


def sniff_audio(path: str, any_format: bool = False) -> str | None:
    """The audio format a file's first bytes say it is (a header, or MPEG audio frames), or None.
    The extension never counts: libsndfile reads a file without a header as raw u-law, so the
    Kaggle copy's header-less jazz.00054 named ``.au`` would be 150 s of noise, and a text file
    named ``.au`` a clip. ``any_format``: also the containers only ``predict``'s other decoders read."""
    with open(path, "rb") as fh:
        data = fh.read(16)
        for offset, magic, name in _MAGIC + (_OTHER_MAGIC if any_format else ()):
            if data[offset:offset + len(magic)] == magic:
                return name
        if any_format and len(data) >= 2 and data[0] == 0xFF and data[1] & 0xF6 == 0xF0:
            return "AAC (ADTS)"
        return "MP3" if _mpeg_start(fh, data) else None


#: What one clip may decode to, checked from its header before anything is allocated: at most
#: 20 minutes of audio, from a source rate a recording can have, in at most 1 GiB as read. A
#: 20 KB file whose header says 1 Hz would otherwise be resampled 22050x (4 GB in predict).
MAX_CLIP_SECONDS = 1200.0
SOURCE_RATES = (1000, 768_000)
MAX_READ_BYTES = 1 << 30
#: Samples beyond this magnitude are no audio (full scale is 1.0); squared, they overflow.
MAX_SAMPLE = 1000.0


class OverBound(BadAudio):
    """A clip whose header asks for more than a clip may decode to: no other decoder is tried."""


def regular_file(path: str) -> int:
    """The size of ``path``, a regular file (a link to one is fine); anything else raises
    ``BadAudio``: opening a FIFO named like a track would wait forever, a device never ends."""
    import stat

    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise  # the callers say it went (a file removed while a batch ran)
    except OSError as exc:
        raise BadAudio(f"cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(
            st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a file"
        raise BadAudio(f"not a regular file ({kind})")
    return st.st_size


def check_decoded_size(frames: int, channels: int, source_rate: int, sample_rate: int) -> None:
    """Refuse, before decoding, a clip whose header asks for more than the bounds above."""
    low, high = SOURCE_RATES
    if not low <= source_rate <= high:
        raise OverBound(f"sample rate {source_rate} Hz in its header, outside {low}-{high} Hz: no recording")
    seconds = frames / source_rate
    if seconds > MAX_CLIP_SECONDS:
        raise OverBound(f"{seconds:.0f} s of audio in its header, over the {MAX_CLIP_SECONDS:g} s a clip may have")
    if frames * max(channels, 1) * 4 > MAX_READ_BYTES:
        raise OverBound(f"{channels} channels x {frames} frames: over {MAX_READ_BYTES >> 30} GiB to decode")


def _no_header(path: str) -> BadAudio:
    with open(path, "rb") as fh:
        start = fh.read(8)
    return BadAudio(f"unreadable audio, no valid header or codec (no audio header: it starts with {start.hex(' ')})")


def load_audio(path: str, sample_rate: int) -> tuple[np.ndarray, list[str]]:
    """Decode one file to mono float32 at ``sample_rate``.

    Returns the samples and notes on what was done to them (downmix, resample), which the
    manifest keeps. Raises ``BadAudio`` with a short reason for anything unusable. Only
    libsndfile formats are read here (WAV, AU, FLAC, OGG, AIFF, MP3): a file without a valid
    header, such as the Kaggle copy's ``jazz.00054.wav``, is rejected rather than guessed at.
    """
    import soundfile as sf

    if regular_file(path) == 0:
        raise BadAudio("empty file (0 bytes)")
    if sniff_audio(path) is None:
        raise _no_header(path)
    try:
        info = sf.info(path)
        check_decoded_size(info.frames, info.channels, info.samplerate, sample_rate)
        data, sr = sf.read(path, dtype="float32", always_2d=True)  # (samples, channels)
    except BadAudio:
        raise
    except Exception as exc:  # libsndfile raises several types; all mean "cannot decode"
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        msg = re.sub(r"^Error opening .*?: ", "", msg).strip()  # the path is named by the caller
        raise BadAudio(f"unreadable audio, no valid header or codec (libsndfile: {msg})") from None
    notes: list[str] = []
    if data.shape[0] == 0:
        raise BadAudio("empty audio (header present, 0 samples)")
    promised = header_frames(path)
    if promised is not None and data.shape[0] < promised:
        notes.append(f"truncated: the header promises {promised} frames ({promised / sr:.2f} s), "
                     f"the file holds {data.shape[0]} ({data.shape[0] / sr:.2f} s)")
    if data.shape[1] > 1:
        notes.append(f"downmixed {data.shape[1]} channels to mono")
    y = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if sr != sample_rate:
        import soxr

        y = soxr.resample(y, sr, sample_rate).astype(np.float32, copy=False)
        notes.append(f"resampled {sr} Hz -> {sample_rate} Hz")
    check_samples(y)
    return np.ascontiguousarray(y), notes


def check_samples(y: np.ndarray) -> None:
    """Raise ``BadAudio`` for NaN or infinite samples, or ones far beyond full scale."""
    if not np.all(np.isfinite(y)):
        raise BadAudio("audio contains NaN or infinite samples")
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if peak > MAX_SAMPLE:
        raise BadAudio(f"samples up to {peak:.3g}, far beyond full scale (1.0): not audio")


def load_any_audio(path: str, sample_rate: int) -> np.ndarray:
    """Decode a user's clip for ``predict``: anything librosa reads (soundfile, then audioread)."""
    if regular_file(path) == 0:
        raise BadAudio("empty file (0 bytes)")
    if sniff_audio(path, any_format=True) is None:
        raise _no_header(path)
    try:
        y, _ = load_audio(path, sample_rate)
        return y
    except OverBound:
        raise
    except BadAudio:
        pass
    import warnings

    import librosa

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y, _ = librosa.load(path, sr=sample_rate, mono=True, duration=MAX_CLIP_SECONDS)
    except Exception as exc:
        raise BadAudio(f"unreadable audio ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if y.size == 0:
        raise BadAudio("empty audio")
    check_samples(y)
    return y.astype(np.float32, copy=False)


#: The Kaggle pictures' size (width, height); a PNG more than 4x smaller or larger either way is
#: no spectrogram of theirs.
KAGGLE_PNG_SIZE = (432, 288)


def load_png(path: str, size: int) -> np.ndarray:
    """A Kaggle spectrogram PNG as uint8 (3, size, size), resized as Keras'
    ``image_dataset_from_directory`` does (bilinear, whole image, no crop): what the study fed.
    A picture far from the Kaggle size, or with no variation (one colour, or fully transparent),
    raises ``BadAudio`` saying so: it would train as an empty image."""
    from PIL import Image

    import warnings

    regular_file(path)
    kw, kh = KAGGLE_PNG_SIZE
    try:
        with warnings.catch_warnings():  # the size rule below is the bound; PIL's warning would only be noise
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
        with im:  # reads the header only: the size is known before any pixel is decoded
            w, h = im.size
            if not (kw / 4 <= w <= kw * 4 and kh / 4 <= h <= kh * 4):
                raise BadAudio(f"{w}x{h} pixels, far from the Kaggle pictures' {kw}x{kh}")
            rgb = im.convert("RGB")
            flat = rgb.getextrema()  # per channel (min, max)
            rgb = rgb.resize((size, size), Image.BILINEAR)
    except BadAudio:
        raise
    except Exception as exc:
        raise BadAudio(f"unreadable image ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if all(hi - lo < 2 for lo, hi in flat):
        raise BadAudio(f"no variation (every pixel {tuple(lo for lo, _ in flat)})")
    arr = np.asarray(rgb, dtype=np.uint8)  # (H, W, 3)
    return np.ascontiguousarray(arr.transpose(2, 0, 1))  # (3, H, W)


@dataclass
class DecodedClip:
    """A decoded clip and its 1 s segments (what every consumer of audio in the suite takes)."""

    y: np.ndarray  # (samples,) float32, mono, at the features' rate
    segments: np.ndarray  # (n_segments, segment_samples) float32, after silence removal
    kept_samples: int  # samples left after silence removal
    notes: list[str]  # what decoding did (downmix, resample), for the manifest


#: A clip whose peak is below this level has no sound. Silence removal cuts what is quieter than
#: ``silence_top_db`` below the clip's own peak, so on its own it would keep every sample of a
#: clip of zeros (or of dither): this absolute floor is what rejects such a clip.
SILENCE_FLOOR_DBFS = -60.0


def check_sound(y: np.ndarray) -> None:
    """Raise ``BadAudio`` for a clip whose peak is 0 or below ``SILENCE_FLOOR_DBFS``."""
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if peak == 0.0:
        raise BadAudio("no sound: every sample is 0 (digital silence)")
    level = 20.0 * np.log10(peak)
    if level < SILENCE_FLOOR_DBFS:
        raise BadAudio(f"no sound: peak level {level:.1f} dBFS, below the {SILENCE_FLOOR_DBFS:g} dBFS floor")


def decode_clip(path: str, fcfg: FeatureConfig, *, any_format: bool = False) -> DecodedClip:
    """Decode ``path`` and cut it into segments. ``any_format``: also try librosa's other
    decoders (``predict`` on a user's clip); the dataset itself is read by libsndfile only.
    Raises ``BadAudio`` for an unusable file, silence included (the message does not name the path)."""
    if any_format:
        y, notes = load_any_audio(path, fcfg.sample_rate), []
    else:
        y, notes = load_audio(path, fcfg.sample_rate)
    check_sound(y)
    segments, kept = clip_segments(y, fcfg)
    return DecodedClip(y, segments, kept, notes)


#: int16 full scale: audio in [-1, 1] is stored as round(x * PCM16_MAX), read back as int / PCM16_MAX.
PCM16_MAX = 32767.0


def to_pcm16(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, -1.0, 1.0) * PCM16_MAX).astype(np.int16)


def from_pcm16(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) / PCM16_MAX


def write_wav(path, clip: np.ndarray, sample_rate: int) -> None:
    """A clip as a 16-bit WAV (previews, and the real windows logged beside them)."""
    import soundfile as sf

    sf.write(path, clip, sample_rate, subtype="PCM_16")
