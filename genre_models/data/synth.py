"""Built-in demo data: a synthetic, GTZAN-shaped dataset in the Kaggle layout.

Not noise: each genre has its own tempo, drum pattern, instrument timbre, pitch range, scale
and note density, and every track draws its own tempo jitter, key, level and background noise,
so the classes overlap enough that a classifier has something to learn. A ``SYNTHETIC.json``
marker at the top folder makes every run and report on it say "synthetic".

Like GTZAN, the demo data repeats itself: ``repeats`` extra tracks are altered copies of
earlier ones (a level change with dither, 8-bit requantisation, a shift, a cut, a lossy round
trip), under new track ids of the same genre, as Sturm (2013) found in GTZAN. The marker lists
each one and its original, so preprocessing's grouping can be checked against the truth.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from genre_models.data.discovery import AUDIO_EXTENSIONS, SYNTHETIC_MARKER
from genre_models.errors import DataError
from genre_models.genres import GENRES

SR = 22050

# 16-step patterns: k=kick, s=snare, h=hat, one char per sixteenth; "." is a rest.
_STYLE = {
    #            bpm  swing kick/snare/hat patterns                                      timbre  midi lo-hi  scale       notes/beat
    "blues":     (82, 0.33, ("k.....k.k.......", "....s.......s...", "h.hh.hh.h.hh.hh."), "warm", (40, 64), "blues", 1.0),
    "classical": (68, 0.0, ("................", "................", "................"), "string", (48, 86), "major", 2.0),
    "country":   (112, 0.0, ("k.......k.......", "....s.......s...", "h.h.h.h.h.h.h.h."), "pluck", (50, 76), "major", 2.0),
    "disco":     (122, 0.0, ("k...k...k...k...", "....s.......s...", "..h...h...h...h."), "bright", (48, 72), "minor", 2.0),
    "hiphop":    (90, 0.15, ("k......k..k.....", "....s.......s...", "h.h.h.h.h.h.h.hh"), "bass", (30, 52), "minor", 0.5),
    "jazz":      (138, 0.33, ("k.........k.....", "..........s.....", "h..h.hh..h.hh..h"), "sine", (45, 82), "dorian", 3.0),
    "metal":     (168, 0.0, ("kkkkkkkkkkkkkkkk", "....s.......s...", "h.h.h.h.h.h.h.h."), "dist", (35, 60), "phrygian", 4.0),
    "pop":       (116, 0.0, ("k.......k.k.....", "....s.......s...", "h.h.h.h.h.h.h.h."), "bright", (55, 79), "major", 1.0),
    "reggae":    (76, 0.1, ("........k.......", "........s.......", "..h...h...h...h."), "skank", (45, 70), "major", 1.0),
    "rock":      (132, 0.0, ("k.....k.k.......", "....s.......s...", "h.h.h.h.h.h.h.h."), "square", (40, 67), "minor", 2.0),
}
_SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "blues": (0, 3, 5, 6, 7, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
}
assert set(_STYLE) == set(GENRES)


@dataclass(frozen=True, kw_only=True)
class SynthConfig:
    out: str
    tracks_per_genre: int = 10
    seconds: float = 30.0
    seed: int = 0
    sample_rate: int = SR
    with_images: bool = False
    #: Extra tracks that are altered copies of earlier ones (``REPEAT_KINDS``, in turn).
    repeats: int = 5


def _note(kind: str, freq: float, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One note of ``n`` samples in the genre's timbre. (n,) float32."""
    t = np.arange(n, dtype=np.float32) / sr
    phase = 2 * np.pi * freq * t
    if kind == "sine":
        wave = np.sin(phase) + 0.2 * np.sin(2 * phase)
        env = np.exp(-t * 3.0)
    elif kind == "warm":
        wave = sum(np.sin(k * phase) / k**1.5 for k in range(1, 6))
        env = np.minimum(t * 40, 1) * np.exp(-t * 2.0)
    elif kind == "string":
        vib = 1 + 0.004 * np.sin(2 * np.pi * 5.5 * t)
        wave = sum(np.sin(k * phase * vib) / k for k in range(1, 9))
        env = np.minimum(t * 6, 1) * np.exp(-t * 0.6)
    elif kind == "pluck":
        wave = sum(np.sin(k * phase) * np.exp(-t * 4 * k) / k for k in range(1, 10))
        env = np.exp(-t * 5.0)
    elif kind == "bright":
        wave = 2 * ((freq * t) % 1.0) - 1  # saw
        env = np.minimum(t * 100, 1) * np.exp(-t * 4.0)
    elif kind == "bass":
        wave = np.sin(phase) + 0.3 * np.sin(3 * phase)
        env = np.exp(-t * 2.5)
    elif kind == "dist":
        wave = np.tanh(6 * (2 * ((freq * t) % 1.0) - 1 + 0.5 * np.sin(1.01 * phase)))
        env = np.minimum(t * 200, 1) * np.exp(-t * 1.5)
    elif kind == "skank":
        wave = sum(np.sin(r * phase) for r in (1.0, 1.26, 1.5))  # a major triad, staccato
        env = np.exp(-t * 18.0)
    else:  # square
        wave = np.sign(np.sin(phase)) * 0.7 + 0.3 * np.sin(2 * phase)
        env = np.minimum(t * 150, 1) * np.exp(-t * 2.5)
    return (wave * env * rng.uniform(0.6, 1.0)).astype(np.float32)


def _drum(kind: str, n: int, sr: int, rng: np.random.Generator, tune: float = 1.0) -> np.ndarray:
    """One drum hit; ``tune`` scales the kick's and the snare's pitch (a kit of the track's own)."""
    t = np.arange(n, dtype=np.float32) / sr
    if kind == "k":
        f = tune * (50 + 100 * np.exp(-t * 30))
        return (np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t * 12)).astype(np.float32)
    noise = rng.standard_normal(n).astype(np.float32)
    if kind == "s":
        return (0.6 * noise * np.exp(-t * 20) + 0.4 * np.sin(2 * np.pi * 190 * tune * t) * np.exp(-t * 25)).astype(np.float32)
    hat = np.diff(noise, prepend=0.0)  # crude high-pass
    return (0.25 * hat * np.exp(-t * 60)).astype(np.float32)


def _own_patterns(patterns: tuple[str, ...], rng: np.random.Generator) -> tuple[str, ...]:
    """The genre's kick/snare/hat patterns as one track plays them: a tenth of the kick steps and
    a fifth of the hat steps toggled (a genre without that drum stays without), so two tracks of
    a genre are two songs, not one beat."""
    flip = {"k": 0.1, "s": 0.0, "h": 0.2}
    return tuple(pat if set(pat) == {"."} else "".join(kind if (c == ".") == (rng.random() < flip[kind]) else "."
                                                      for c in pat)
                 for kind, pat in zip("ksh", patterns))


def synth_track(genre: str, seconds: float, seed: int, sr: int = SR) -> np.ndarray:
    """One synthetic clip of ``genre``, float32 in [-1, 1], (round(seconds * sr),)."""
    bpm, swing, patterns, timbre, (lo, hi), scale, density = _STYLE[genre]
    rng = np.random.default_rng(seed)
    patterns, tune = _own_patterns(patterns, rng), rng.uniform(0.8, 1.25)
    n = int(round(seconds * sr))
    out = np.zeros(n + sr, dtype=np.float32)  # one second of tail room
    bpm *= rng.uniform(0.92, 1.08)
    step = 60.0 / bpm / 4  # one sixteenth, seconds
    key = int(rng.integers(0, 12))
    degrees = _SCALES[scale]
    drum_gain = rng.uniform(0.5, 0.9)
    steps = int(seconds / step)
    for i in range(steps):
        offset = step * (i + (swing * 0.5 if i % 2 else 0.0))
        start = int(offset * sr)
        if start >= n:
            break
        for kind, pat in zip("ksh", patterns):
            if pat[i % 16] != "." and rng.random() > 0.05:
                d = _drum(kind, int(0.25 * sr), sr, rng, tune)
                out[start : start + d.size] += drum_gain * d[: out.size - start]
    notes_per_step = density / 4
    for i in range(steps):
        if rng.random() >= notes_per_step:
            continue
        start = int(step * i * sr)
        if start >= n:
            break
        octave_span = (hi - lo) // 12 + 1
        midi = lo + key + degrees[int(rng.integers(len(degrees)))] + 12 * int(rng.integers(octave_span))
        midi = int(np.clip(midi, lo, hi))
        freq = 440.0 * 2 ** ((midi - 69) / 12)
        length = int(step * sr * rng.choice([1, 2, 4]) * (3 if timbre == "string" else 1))
        note = _note(timbre, freq, length, sr, rng)
        out[start : start + note.size] += 0.5 * note[: out.size - start]
    out = out[:n]
    out += rng.uniform(0.002, 0.02) * rng.standard_normal(n).astype(np.float32)
    peak = float(np.max(np.abs(out))) or 1.0
    return (out / peak * rng.uniform(0.5, 0.95)).astype(np.float32)


def _ogg_round_trip(y: np.ndarray, sr: int) -> np.ndarray:
    """Vorbis at a low quality and back: a lossy re-encoding."""
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, y, sr, format="OGG", subtype="VORBIS", compression_level=0.9)
    buf.seek(0)
    out, _ = sf.read(buf, dtype="float32")
    return out[: y.size]


#: How a repeat alters its original, in turn: (what the marker says, the change). Each is a
#: change the real GTZAN's repeats show (Sturm 2013), in the size the tests allow for.
REPEAT_KINDS = (
    ("3 dB quieter, with 1-LSB dither", lambda y, sr, rng: y * 10 ** (-3 / 20) + rng.uniform(-1, 1, y.size) / 32767),
    ("requantised to 8 bits", lambda y, sr, rng: np.round(y * 127) / 127),
    ("shifted 0.4 s later", lambda y, sr, rng: np.concatenate([np.zeros(int(0.4 * sr)), y])[: y.size]),
    ("cut 1.5 s shorter at its start", lambda y, sr, rng: y[int(1.5 * sr):]),
    ("a lossy (Ogg Vorbis) round trip", lambda y, sr, rng: _ogg_round_trip(y, sr)),
)


def _write_clip(path: Path, y: np.ndarray, sample_rate: int) -> None:
    """A 16-bit mono WAV, never over an existing file."""
    import soundfile as sf

    tmp = path.with_suffix(".tmp.wav")
    sf.write(tmp, np.clip(y, -1.0, 1.0).astype(np.float32), sample_rate, subtype="PCM_16")
    os.link(tmp, path)  # fails rather than overwrite a file that appeared meanwhile
    os.unlink(tmp)


def _write_repeats(cfg: SynthConfig, audio_root: Path) -> list[dict]:
    """``cfg.repeats`` altered copies of earlier tracks, spread over the genres; what each is."""
    import soundfile as sf

    out = []
    rng = np.random.default_rng(cfg.seed + 7)
    for k in range(cfg.repeats):
        genre = GENRES[(3 * k + 1) % len(GENRES)]
        original = f"{genre}.{k % cfg.tracks_per_genre:05d}"
        track = f"{genre}.{cfg.tracks_per_genre + k // len(GENRES):05d}"
        y, _ = sf.read(audio_root / genre / f"{original}.wav", dtype="float32")
        what, change = REPEAT_KINDS[k % len(REPEAT_KINDS)]
        _write_clip(audio_root / genre / f"{track}.wav", change(y, cfg.sample_rate, rng), cfg.sample_rate)
        out.append({"track": track, "of": original, "change": what})
    return out


def _check_empty(root: Path) -> None:
    """Refuse a folder that holds any audio or a synth marker: synthetic clips must never replace,
    or sit beside, real ones (a preprocess would then label the real ones synthetic)."""
    if not root.exists():
        return
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; synth writes a new dataset folder")
    audio = [p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and not p.is_dir()]
    if audio or (root / SYNTHETIC_MARKER).exists():
        what = f"{len(audio)} audio file(s), e.g. {audio[0].relative_to(root)}" if audio else f"a {SYNTHETIC_MARKER}"
        raise DataError(f"{root}: already holds {what}; synth writes only into an empty or new folder and never "
                        "overwrites a file")


def write_synthetic_gtzan(cfg: SynthConfig) -> dict:
    """Write ``<out>/Data/genres_original/<genre>/<genre>.NNNNN.wav`` (16-bit mono) and the marker.

    Returns a summary (folder, counts). Tracks are seeded by (seed, genre, index), so a larger
    ``tracks_per_genre`` keeps the first tracks identical; the repeats follow them.
    """
    root = Path(cfg.out)
    _check_empty(root)
    audio_root = root / "Data" / "genres_original"
    image_root = root / "Data" / "images_original"
    n_written = 0
    for g_idx, genre in enumerate(GENRES):
        (audio_root / genre).mkdir(parents=True, exist_ok=True)
        for i in range(cfg.tracks_per_genre):
            y = synth_track(genre, cfg.seconds, seed=cfg.seed * 1_000_003 + g_idx * 10_007 + i, sr=cfg.sample_rate)
            _write_clip(audio_root / genre / f"{genre}.{i:05d}.wav", y, cfg.sample_rate)
            if cfg.with_images:
                from PIL import Image

                from genre_models.data.features import spectrogram_image

                (image_root / genre).mkdir(parents=True, exist_ok=True)
                img = spectrogram_image(y, cfg.sample_rate, 2048, 512, 128, 288)  # (3, 288, 288)
                Image.fromarray(img.transpose(1, 2, 0)).resize((432, 288)).save(image_root / genre / f"{genre}{i:05d}.png")
            n_written += 1
    repeats = _write_repeats(cfg, audio_root)
    marker = {"generator": "genre-bench synth", "synthetic": True, **asdict(cfg), "repeated_tracks": repeats}
    marker["out"] = str(root)
    (root / SYNTHETIC_MARKER).write_text(json.dumps(marker, indent=2))
    return {"out": str(root), "tracks": n_written + len(repeats), "genres": len(GENRES), "seconds": cfg.seconds,
            "repeats": repeats}


def ensure_demo_data(data_dir: str) -> bool:
    """Write the demo's synthetic data (10 tracks per genre, 6 s, and 5 repeats) unless the folder holds data.
    True if written."""
    root = Path(data_dir)
    if (root / SYNTHETIC_MARKER).is_file() or (root.is_dir() and any(root.iterdir())):
        return False
    write_synthetic_gtzan(SynthConfig(out=str(root), tracks_per_genre=10, seconds=6.0, seed=0))
    return True
