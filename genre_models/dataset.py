"""GTZAN on disk: layout discovery and decoding. All of the suite's file I/O for audio lives here.

Layouts found:

* Kaggle: ``<top>/Data/genres_original/<genre>/<genre>.NNNNN.wav``, with PNGs in
  ``<top>/Data/images_original/<genre>/<genre>NNNNN.png``;
* MARSYAS: ``<top>/genres/<genre>/<genre>.NNNNN.au``.

The user may point at ``<top>``, at ``Data/`` or straight at the folder holding the genre
folders. An unknown sub-folder name in that folder is a fatal error (a typo such as ``hip-hop``
would otherwise silently drop a tenth of the data); hidden folders are ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genre_models.errors import BadAudio, DataError
from genre_models.genres import GENRE_TO_ID, GENRES

AUDIO_EXTENSIONS = (".wav", ".au", ".flac", ".ogg", ".aiff", ".aif", ".mp3")
SYNTHETIC_MARKER = "SYNTHETIC.json"
_TRACK_RE = re.compile(r"^(?P<genre>[a-z]+)\.(?P<num>\d+)$")


@dataclass(frozen=True)
class TrackFile:
    track_id: str  # "genre.NNNNN": the identity used everywhere
    genre: str
    path: str  # absolute
    rel_path: str  # relative to the dataset root, for manifests and digests
    image_path: str | None  # Kaggle PNG, when present

    @property
    def label(self) -> int:
        return GENRE_TO_ID[self.genre]


@dataclass(frozen=True)
class Skip:
    path: str
    reason: str
    track_id: str | None = None
    genre: str | None = None

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class Discovery:
    root: str  # the folder above the genre folders; manifest paths are relative to it
    audio_dir: str  # the folder holding the genre folders
    image_dir: str | None
    layout: str  # "kaggle" | "marsyas" | "flat"
    tracks: list[TrackFile]
    skipped: list[Skip] = field(default_factory=list)
    synthetic: dict | None = None  # contents of SYNTHETIC.json when the data came from `synth`

    @property
    def name(self) -> str:
        return "synthetic-gtzan" if self.synthetic is not None else "gtzan"


def _has_genre_dirs(path: Path) -> bool:
    return path.is_dir() and any((path / g).is_dir() for g in GENRES)


def _find_audio_dir(root: Path) -> tuple[Path, str]:
    candidates = [
        (root / "Data" / "genres_original", "kaggle"),
        (root / "genres_original", "kaggle"),
        (root / "genres", "marsyas"),
        (root, "flat"),
    ]
    for path, layout in candidates:
        if _has_genre_dirs(path):
            if layout == "flat" and root.name == "genres_original":
                layout = "kaggle"
            elif layout == "flat" and root.name == "genres":
                layout = "marsyas"
            return path, layout
    raise DataError(
        f"{root}: no genre folders found (looked for {', '.join(GENRES[:3])}, ... in "
        f"{root}, {root / 'genres'}, {root / 'Data' / 'genres_original'})"
    )


def _find_synthetic_marker(root: Path, audio_dir: Path) -> dict | None:
    """`synth` writes SYNTHETIC.json at its top folder; look from the genre folders up to it."""
    for folder in dict.fromkeys((audio_dir, audio_dir.parent, audio_dir.parent.parent, root)):
        marker = folder / SYNTHETIC_MARKER
        if marker.is_file():
            return json.loads(marker.read_text())
    return None


def discover(data_dir: str | os.PathLike) -> Discovery:
    """Walk a GTZAN folder. Fatal problems raise ``DataError``; per-file problems become skips."""
    root = Path(data_dir).expanduser()
    if not root.exists():
        raise DataError(f"{root}: folder does not exist")
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    audio_dir, layout = _find_audio_dir(root.resolve())
    # Paths in manifests and digests are relative to the folder above the genre folders, so
    # pointing at <top>, <top>/Data or the genre folders' parent gives the same dataset.
    root = audio_dir.parent
    image_dir = audio_dir.parent / "images_original"
    has_images = image_dir.is_dir()

    subdirs = sorted(p for p in audio_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    unknown = [p.name for p in subdirs if p.name not in GENRE_TO_ID]
    if unknown:
        raise DataError(
            f"{audio_dir}: unknown genre folder(s) {', '.join(unknown)}; expected only {', '.join(GENRES)}"
        )

    tracks: list[TrackFile] = []
    skipped: list[Skip] = []
    for genre_dir in subdirs:
        genre = genre_dir.name
        for path in sorted(genre_dir.iterdir()):
            if path.name.startswith(".") or path.is_dir():
                continue
            rel = str(path.relative_to(root))
            if path.suffix.lower() not in AUDIO_EXTENSIONS:
                skipped.append(Skip(rel, f"not an audio file (extension {path.suffix or 'none'!r})", genre=genre))
                continue
            stem = path.stem
            m = _TRACK_RE.match(stem)
            if m and m.group("genre") != genre:
                skipped.append(Skip(rel, f"file names genre {m.group('genre')!r} but lies in {genre}/", genre=genre))
                continue
            track_id = stem if m else f"{genre}.{stem}"
            image_path = None
            if has_images:
                png = image_dir / genre / (track_id.replace(".", "", 1) + ".png")
                image_path = str(png) if png.is_file() else None
            tracks.append(TrackFile(track_id, genre, str(path), rel, image_path))

    ids = [t.track_id for t in tracks]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        # Two files with one track id (e.g. blues.00001.wav and blues.00001.au): keep the first.
        seen: set[str] = set()
        kept = []
        for t in tracks:
            if t.track_id in seen:
                skipped.append(Skip(t.rel_path, f"duplicate track id {t.track_id}", t.track_id, t.genre))
            else:
                seen.add(t.track_id)
                kept.append(t)
        tracks = kept
    return Discovery(
        root=str(root),
        audio_dir=str(audio_dir),
        image_dir=str(image_dir) if has_images else None,
        layout=layout,
        tracks=tracks,
        skipped=skipped,
        synthetic=_find_synthetic_marker(Path(data_dir).expanduser().resolve(), audio_dir),
    )


def dataset_digest(disc: Discovery) -> str:
    """A cheap content fingerprint: relative path, size, and the first and last 64 KiB of each file.

    Caveat: an edit in the middle of a file that keeps its size is not noticed; hashing the
    whole of GTZAN (1.2 GB) on every run costs more than it protects against.
    """
    h = hashlib.blake2b(digest_size=8)
    for t in sorted(disc.tracks, key=lambda t: t.track_id):
        for path in (t.path, t.image_path):
            if path is None:
                continue
            size = os.path.getsize(path)
            h.update(f"{os.path.relpath(path, disc.root)}:{size}".encode())
            with open(path, "rb") as fh:
                h.update(fh.read(65536))
                if size > 65536:
                    fh.seek(max(65536, size - 65536))
                    h.update(fh.read(65536))
    for s in disc.skipped:
        h.update(f"skip:{s.path}".encode())
    return h.hexdigest()


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
    """Decode a user's clip for ``predict``: anything librosa reads (soundfile, then audioread).
    ``predict`` checks that the file exists before it fetches the model."""
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
        raise BadAudio(f"{path}: unreadable audio ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if y.size == 0:
        raise BadAudio(f"{path}: empty audio")
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
