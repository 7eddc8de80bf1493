"""GTZAN on disk: layout discovery and the dataset digest. Decoding lives in ``audio.py``.

Layouts found:

* Kaggle: ``<top>/Data/genres_original/<genre>/<genre>.NNNNN.wav``, with PNGs in
  ``<top>/Data/images_original/<genre>/<genre>NNNNN.png``;
* MARSYAS: ``<top>/genres/<genre>/<genre>.NNNNN.au``.

The user may point at ``<top>``, at ``Data/`` or straight at the folder holding the genre
folders. An unknown sub-folder name in that folder is a fatal error (a typo such as ``hip-hop``
would otherwise silently drop a tenth of the data). Every other file under the genre folders' parent
is either used or recorded as a skip with its reason: non-audio, hidden, unreadable, a dangling
link, in a nested or hidden folder, or beside the genre folders.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from genre_models.errors import DataError
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


def _unusable(path: Path) -> str | None:
    """Why a file cannot be read at all (a symlink loop, a dangling link, no permission), or None."""
    if path.is_symlink() and not path.exists():
        try:
            os.stat(path)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return f"symlink loop (points to {os.readlink(path)}, which leads back to itself)"
        return f"dangling symlink (points to {os.readlink(path)}, which does not exist)"
    if not os.access(path, os.R_OK):
        return "permission denied (not readable by this user)"
    if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would hang the reader, a device never end
        return "not a regular file (a FIFO, device or socket): not read"
    return None


def _nested_skips(folder: Path, root: Path, genre: str | None, why: str) -> list[Skip]:
    """Every file below ``folder``, recorded as not read (``why``)."""
    return [Skip(str(f.relative_to(root)), why, genre=genre) for f in sorted(folder.rglob("*")) if not f.is_dir()]


def _walk_genre(genre_dir: Path, root: Path, image_dir: Path | None) -> tuple[list[TrackFile], list[Skip]]:
    """One genre folder's files: tracks, and a skip for every other file (nothing is left out silently)."""
    genre = genre_dir.name
    tracks: list[TrackFile] = []
    skipped: list[Skip] = []
    for path in sorted(genre_dir.iterdir()):
        rel = str(path.relative_to(root))
        if path.is_dir():
            skipped += _nested_skips(path, root, genre, f"in a sub-folder of {genre}/: not read (a genre's clips "
                                                        "lie directly in its folder)")
            continue
        reason = ("hidden file" if path.name.startswith(".") else _unusable(path))
        if reason is None and path.suffix.lower() not in AUDIO_EXTENSIONS:
            reason = f"not an audio file (extension {path.suffix or 'none'!r})"
        m = _TRACK_RE.match(path.stem)
        if reason is None and m and m.group("genre") != genre:
            reason = f"file names genre {m.group('genre')!r} but lies in {genre}/"
        if reason is not None:
            skipped.append(Skip(rel, reason, genre=genre))
            continue
        track_id = path.stem if m else f"{genre}.{path.stem}"
        image_path = None
        if image_dir is not None:
            png = image_dir / genre / (track_id.replace(".", "", 1) + ".png")
            image_path = str(png) if png.is_file() else None
        tracks.append(TrackFile(track_id, genre, str(path), rel, image_path))
    return tracks, skipped


def _loose_skips(audio_dir: Path, root: Path) -> list[Skip]:
    """Files beside the genre folders (in no genre) and below hidden folders: recorded, not read."""
    out = [Skip(str(p.relative_to(root)), "outside any genre folder: not read") for p in sorted(audio_dir.iterdir())
           if not p.is_dir()]
    for hidden in sorted(p for p in audio_dir.iterdir() if p.is_dir() and p.name.startswith(".")):
        out += _nested_skips(hidden, root, None, "in a hidden folder: not read")
    return out


def _first_of_each_id(tracks: list[TrackFile]) -> tuple[list[TrackFile], list[Skip]]:
    """Two files with one track id (e.g. blues.00001.wav and blues.00001.au): keep the first."""
    seen: set[str] = set()
    kept, skipped = [], []
    for t in tracks:
        if t.track_id in seen:
            skipped.append(Skip(t.rel_path, f"duplicate track id {t.track_id}", t.track_id, t.genre))
        else:
            seen.add(t.track_id)
            kept.append(t)
    return kept, skipped


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
        t, s = _walk_genre(genre_dir, root, image_dir if has_images else None)
        tracks += t
        skipped += s
    skipped += _loose_skips(audio_dir, root)
    tracks, dupes = _first_of_each_id(tracks)
    return Discovery(
        root=str(root),
        audio_dir=str(audio_dir),
        image_dir=str(image_dir) if has_images else None,
        layout=layout,
        tracks=tracks,
        skipped=skipped + dupes,
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
