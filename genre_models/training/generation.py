"""The generated set: ``per_genre`` WaveGAN clips per genre, their MFCCs, and how well a
real-data net recognises them.

**From 16384 samples to a real segment's MFCC shape.** The paper's generator emits 16384
samples (1.024 s at its 16 kHz). genre-bench runs the GAN at the features' rate (22050 Hz), so
a clip is 0.743 s of full-band audio: the critic sees random 16384-sample windows of the real
1 s training segments, and ``gan_to_segment`` extends each generated clip to one segment
(22050 samples) by reflecting its last 5666 samples, before the same MFCC code as real
segments: (44, 13). Why not generate at 16 kHz and resample up: that loses everything above
8192 Hz, and on the demo data a net5 trained on real segments recognised only 0.19 of its own
training segments after that 16 kHz round trip (0.57 untouched), against 0.51 after cropping to
16384 samples and reflect-padding. Caveat: the last quarter of every generated segment mirrors
the clip's end, a time structure real segments lack.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from genre_models.config import FeatureConfig, GanConfig, WaveGanConfig
from genre_models.data.audio import from_pcm16, to_pcm16
from genre_models.data.features import mfcc_of
from genre_models.genres import GENRES, N_CLASSES
from genre_models.models.wavegan import SLICE_LEN
from genre_models.training.gan_loop import GanUnit, sample_clips
from genre_models.errors import DamagedCache, ModelError
from genre_models.util import atomic_dir, log, remove_entry


def gan_to_segment(clips: np.ndarray, segment_samples: int) -> np.ndarray:
    """(N, 16384) generated clips -> (N, segment_samples): reflect-padded (or cropped) to one segment."""
    n = clips.shape[-1]
    if n >= segment_samples:
        return np.ascontiguousarray(clips[..., :segment_samples], dtype=np.float32)
    return np.pad(clips, ((0, 0), (0, segment_samples - n)), mode="reflect").astype(np.float32)


@dataclass
class GeneratedSet:
    mfcc: np.ndarray  # (N, frames, n_mfcc) float32
    labels: np.ndarray  # (N,) int64
    path: str  # folder holding audio.npy (int16 clips), mfcc.npy, labels.npy, meta.json
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def counts(self) -> dict[str, int]:
        return {g: int((self.labels == i).sum()) for i, g in enumerate(GENRES)}


def _check_generated(path: Path, meta, mfcc: np.ndarray, labels: np.ndarray, features: FeatureConfig,
                     key: str | None) -> str | None:
    """What is wrong with a generated set as read, or None: it is data from a cache or a store,
    checked before a net trains on it."""
    want = (features.frames_per_segment, features.n_mfcc)
    if not isinstance(meta, dict) or not isinstance(meta.get("gan_key"), str):
        return "meta.json is not a generated set's record"
    if key is not None and meta["gan_key"] != key:
        return f"it was made by GAN {meta['gan_key']!r:.40}, not {key}"
    if mfcc.dtype != np.float32 or mfcc.ndim != 3 or mfcc.shape[1:] != want:
        return f"mfcc.npy is {mfcc.dtype} {mfcc.shape}, not float32 (N, {want[0]}, {want[1]})"
    if labels.dtype != np.int64 or labels.shape != (mfcc.shape[0],):
        return f"labels.npy is {labels.dtype} {labels.shape}, not int64 ({mfcc.shape[0]},)"
    if labels.size and not (0 <= labels.min() and labels.max() < N_CLASSES):
        return f"labels.npy holds labels outside 0..{N_CLASSES - 1}"
    if not np.isfinite(mfcc).all():
        return "mfcc.npy holds NaN or infinite values"
    return None


def _plain_array(path: Path, mmap_mode: str | None) -> np.ndarray:
    """A ``.npy`` file of plain numbers; one of Python objects (a pickle inside) is refused unread."""
    try:
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except ValueError as exc:
        if "object" in str(exc).lower():
            raise ValueError(f"{path.name} holds Python objects (a pickle), not plain numbers") from None
        raise


def load_generated(path: str | os.PathLike, features: FeatureConfig, key: str | None = None) -> GeneratedSet:
    """A generated set read back as data and checked (``DamagedCache`` when it is not one made
    with these feature settings, and with GAN ``key`` where given): object arrays, a wrong
    shape or dtype, labels out of range and non-finite values are all refused."""
    path = Path(path)
    try:
        meta = json.loads((path / "meta.json").read_text())
        mfcc, labels = _plain_array(path / "mfcc.npy", "r"), _plain_array(path / "labels.npy", None)
    except (OSError, ValueError, UnicodeDecodeError) as exc:  # missing, torn, not JSON
        raise DamagedCache(f"{path}: damaged generated set ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    problem = _check_generated(path, meta, mfcc, labels, features, key)
    if problem:
        raise DamagedCache(f"{path}: damaged generated set ({problem})")
    return GeneratedSet(mfcc, labels, str(path), meta)


def generate_set(units: list[GanUnit], cfg: GanConfig, device: torch.device, target: Path, key: str,
                 chunk: int = 256) -> GeneratedSet:
    """``per_genre`` clips for every genre, with labels, MFCCs computed as for real segments.
    Written once; one found damaged, or made by another GAN, is made again."""
    if (target / "meta.json").is_file():
        try:
            gen = load_generated(target, cfg.features, key)
            log.info("reusing generated set %s (%d clips)", target, len(gen))
            return gen
        except DamagedCache as exc:
            log.warning("%s; generating it again", exc)
    remove_entry(target)
    f = cfg.features
    n = cfg.gan.per_genre * N_CLASSES
    labels = np.repeat(np.arange(N_CLASSES), cfg.gan.per_genre).astype(np.int64)  # (N,)
    torch_gen = torch.Generator().manual_seed(cfg.training_seed + 104729)

    def write(tmp: Path) -> None:
        audio = np.lib.format.open_memmap(tmp / "audio.npy", mode="w+", dtype=np.int16, shape=(n, SLICE_LEN))
        mfcc = np.lib.format.open_memmap(tmp / "mfcc.npy", mode="w+", dtype=np.float32,
                                         shape=(n, f.frames_per_segment, f.n_mfcc))
        for u in units:
            u.G.eval()
        for at in range(0, n, chunk):
            y = torch.from_numpy(labels[at:at + chunk]).to(device)
            z = torch.randn(len(y), cfg.gan.latent_dim, generator=torch_gen).to(device)
            with torch.no_grad():
                clips = sample_clips(units, z, y).float().cpu().numpy()  # (b, 16384)
            audio[at:at + len(y)] = to_pcm16(clips)
            segs = gan_to_segment(from_pcm16(audio[at:at + len(y)]), f.segment_samples)  # (b, segment_samples)
            mfcc[at:at + len(y)] = mfcc_of(segs, f)  # (b, frames, n_mfcc)
        audio.flush(), mfcc.flush()
        del audio, mfcc
        np.save(tmp / "labels.npy", labels)
        (tmp / "meta.json").write_text(json.dumps({
            "gan_key": key, "per_genre": cfg.gan.per_genre, "clips": n, "sample_rate": f.sample_rate,
            "features": asdict(f), "genres": list(GENRES), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, indent=2))

    atomic_dir(target, write)
    return load_generated(target, cfg.features, key)


def generation_quality(model: Callable[[torch.Tensor], torch.Tensor], gen: GeneratedSet, batch: int = 1024) -> dict:
    """Accuracy of ``model`` at recognising each generated clip's intended genre, overall and per
    genre. A scorer whose outputs are not finite numbers is a ``ModelError``: its figure (an
    argmax of NaN reads as the first genre) is never computed, so never logged."""
    preds = []
    with torch.no_grad():
        for at in range(0, len(gen), batch):
            x = torch.from_numpy(np.array(gen.mfcc[at:at + batch]))  # (b, frames, n_mfcc), a writable copy
            logits = model(x)  # (b, 10)
            if not bool(torch.isfinite(logits).all()):
                raise ModelError("the generated clips' scorer gave outputs that are not finite numbers; its quality "
                                 "figure is not computed")
            preds.append(logits.argmax(1).cpu().numpy())
    pred = np.concatenate(preds) if preds else np.zeros(0, int)
    out = {"gen_quality_accuracy": float((pred == gen.labels).mean()) if len(pred) else 0.0}
    for i, g in enumerate(GENRES):
        mask = gen.labels == i
        out[f"gen_quality_accuracy_{g}"] = float((pred[mask] == i).mean()) if mask.any() else 0.0
    return out


@dataclass
class Augmentation:
    """A generated set that joins a net's training part, and where it came from."""

    generated: GeneratedSet
    run_id: str | None  # the GAN run that made it (None: untracked)
    reused: bool  # an existing finished GAN run (or cache) served it
    gan: WaveGanConfig  # the settings of the GAN actually used
