"""Built-in demo data: a synthetic, GTZAN-shaped dataset in the Kaggle layout.

Not noise: each genre has its own tempo, drum pattern, instrument timbre, pitch range, scale
and note density, and every track draws its own tempo jitter, key, level and background noise,
so the classes overlap enough that a classifier has something to learn. A ``SYNTHETIC.json``
marker at the top folder makes every run and report on it say "synthetic".
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


def _drum(kind: str, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n, dtype=np.float32) / sr
    if kind == "k":
        f = 50 + 100 * np.exp(-t * 30)
        return (np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t * 12)).astype(np.float32)
    noise = rng.standard_normal(n).astype(np.float32)
    if kind == "s":
        return (0.6 * noise * np.exp(-t * 20) + 0.4 * np.sin(2 * np.pi * 190 * t) * np.exp(-t * 25)).astype(np.float32)
    hat = np.diff(noise, prepend=0.0)  # crude high-pass
    return (0.25 * hat * np.exp(-t * 60)).astype(np.float32)


def synth_track(genre: str, seconds: float, seed: int, sr: int = SR) -> np.ndarray:
    """One synthetic clip of ``genre``, float32 in [-1, 1], (round(seconds * sr),)."""
    bpm, swing, patterns, timbre, (lo, hi), scale, density = _STYLE[genre]
    rng = np.random.default_rng(seed)
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
                d = _drum(kind, int(0.25 * sr), sr, rng)
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
    ``tracks_per_genre`` keeps the first tracks identical.
    """
    import soundfile as sf

    root = Path(cfg.out)
    _check_empty(root)
    audio_root = root / "Data" / "genres_original"
    image_root = root / "Data" / "images_original"
    n_written = 0
    for g_idx, genre in enumerate(GENRES):
        (audio_root / genre).mkdir(parents=True, exist_ok=True)
        for i in range(cfg.tracks_per_genre):
            y = synth_track(genre, cfg.seconds, seed=cfg.seed * 1_000_003 + g_idx * 10_007 + i, sr=cfg.sample_rate)
            path = audio_root / genre / f"{genre}.{i:05d}.wav"
            tmp = path.with_suffix(".tmp.wav")
            sf.write(tmp, y, cfg.sample_rate, subtype="PCM_16")
            os.link(tmp, path)  # fails rather than overwrite a file that appeared meanwhile
            os.unlink(tmp)
            if cfg.with_images:
                from PIL import Image

                from genre_models.data.features import spectrogram_image

                (image_root / genre).mkdir(parents=True, exist_ok=True)
                img = spectrogram_image(y, cfg.sample_rate, 2048, 512, 128, 288)  # (3, 288, 288)
                Image.fromarray(img.transpose(1, 2, 0)).resize((432, 288)).save(image_root / genre / f"{genre}{i:05d}.png")
            n_written += 1
    marker = {"generator": "genre-bench synth", "synthetic": True, **asdict(cfg)}
    marker["out"] = str(root)
    (root / SYNTHETIC_MARKER).write_text(json.dumps(marker, indent=2))
    return {"out": str(root), "tracks": n_written, "genres": len(GENRES), "seconds": cfg.seconds}


def ensure_demo_data(data_dir: str) -> bool:
    """Write the demo's synthetic data (10 tracks per genre, 6 s) unless the folder holds data. True if written."""
    root = Path(data_dir)
    if (root / SYNTHETIC_MARKER).is_file() or (root.is_dir() and any(root.iterdir())):
        return False
    write_synthetic_gtzan(SynthConfig(out=str(root), tracks_per_genre=10, seconds=6.0, seed=0))
    return True
