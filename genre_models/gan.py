"""WaveGAN augmentation: train on the training split's audio, generate a labelled set, score it.

Stages, each cached under ``<cache_dir>`` and found again by what makes it unique:

1. ``training_audio``: exactly the 1 s segments that the classifier's *training* part holds
   (same data, split and seed), re-decoded at the features' rate. Validation and test
   segments are never decoded into it, under any split; ``tests/test_gan.py`` proves it.
2. ``train_wavegan``: WGAN-GP with ``n_critic`` critic updates per generator update.
   Checkpoints (G, D, both optimizers, RNG states, history) go to
   ``<cache_dir>/gan/<gan_key>/checkpoint.pt``; the same command after a kill resumes there.
3. ``generate_set``: ``per_genre`` clips per genre, written once to ``.../generated/``
   (``audio.npy`` int16 clips of 16384 samples, ``mfcc.npy``, ``labels.npy``, ``meta.json``).
4. ``generation_quality``: a net5 trained on real data only classifies every generated clip;
   the accuracy against the intended genre says whether the set carries genre information.

**From 16384 samples to a real segment's MFCC shape.** The paper's generator emits 16384
samples (1.024 s at its 16 kHz). genre-bench runs the GAN at the features' rate (22050 Hz), so
a clip is 0.743 s of full-band audio: the critic sees random 16384-sample windows of the real
1 s training segments, and ``gan_to_segment`` extends each generated clip to one segment
(22050 samples) by reflecting its last 5666 samples, before the same ``mfcc_batch`` as real
segments: (44, 13). Why not generate at 16 kHz and resample up: that loses everything above
8192 Hz, and on the demo data a net5 trained on real segments recognised only 0.19 of its own
training segments after that 16 kHz round trip (0.57 untouched), against 0.51 after cropping to
16384 samples and reflect-padding. Caveat: the last quarter of every generated segment mirrors
the clip's end, a time structure real segments lack.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from genre_models.config import GanConfig, PreprocessConfig, SplitConfig, TrainConfig, WaveGanConfig, flat_params
from genre_models.errors import ConfigError, DataError, GanDiverged
from genre_models.genres import GENRES, N_CLASSES
from genre_models.util import atomic_dir, log
from genre_models.wavegan import SLICE_LEN

GAN_CODE_VERSION = "wavegan-v2"  # bump when training or generation changes what a key produces
EXPLODED = 1e6  # |loss| above this counts as diverged


# --------------------------------------------------------------------------- pure conversions


def gan_to_segment(clips: np.ndarray, segment_samples: int) -> np.ndarray:
    """(N, 16384) generated clips -> (N, segment_samples): reflect-padded (or cropped) to one segment."""
    n = clips.shape[-1]
    if n >= segment_samples:
        return np.ascontiguousarray(clips[..., :segment_samples], dtype=np.float32)
    return np.pad(clips, ((0, 0), (0, segment_samples - n)), mode="reflect").astype(np.float32)


def to_pcm16(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)


def from_pcm16(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) / 32767.0


def gan_key(cfg: GanConfig, digest: str) -> str:
    """What a generated set depends on: the WaveGAN settings, the data, split, seed and features.
    Not the device or the logging cadence."""
    blob = json.dumps({"gan": asdict(cfg.gan), "split": cfg.split, "seed": cfg.seed, "features": asdict(cfg.features),
                       "dataset": digest, "code": GAN_CODE_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- stage 1: real audio


@dataclass
class RealAudio:
    """The GAN's training data: the classifier's training segments, whole (the critic takes windows)."""

    audio: np.ndarray  # (N, segment_samples) int16, memory-mapped
    labels: np.ndarray  # (N,) int64
    track: np.ndarray  # (N,) row in the feature store's usable tracks
    index: np.ndarray  # (N,) the segment's position within its track
    track_ids: list[str]  # the distinct tracks the segments come from

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def _decode_segments(task: tuple[str, str, list[int], int, object]) -> np.ndarray:
    """Worker: one track -> its selected 1 s segments, int16 (k, segment_samples)."""
    from genre_models.dataset import load_audio
    from genre_models.features import segment, trim_silence

    path, rel, wanted, expected, fcfg = task
    y, _ = load_audio(path, fcfg.sample_rate)
    segs = segment(trim_silence(y, fcfg.silence_top_db, fcfg.n_fft, fcfg.hop_length), fcfg.segment_samples)
    if segs.shape[0] != expected:
        raise DataError(f"{rel}: decoded {segs.shape[0]} segments but the feature cache holds {expected}; "
                        "the file changed since preprocessing (run `benchmark preprocess --force`)")
    return to_pcm16(segs[wanted])


def training_audio(store, split: SplitConfig, fcfg, cache_dir: str, jobs: int = 0) -> RealAudio:
    """The training part's segments under ``split`` as int16 audio (cached).

    Works per segment, so under ``random`` (which scatters a track's segments) only the
    segments in the training part are used, exactly as net5 sees them.
    """
    from genre_models.preprocess import parallel_map

    seg_track = np.asarray(store.seg_track)
    starts = np.searchsorted(seg_track, np.arange(len(store.tracks)))  # first segment of each track
    within = np.arange(len(seg_track)) - starts[seg_track]  # (n_segments,)
    train_idx = np.flatnonzero(store.parts("mfcc", split) == 0)
    tracks = store.tracks
    labels = tracks.label.to_numpy().astype(np.int64)
    key = hashlib.sha256(json.dumps({"store": Path(store.path).name, "digest": store.digest, "split": asdict(split),
                                     "segment": fcfg.segment_samples, "code": GAN_CODE_VERSION}, sort_keys=True).encode()).hexdigest()[:16]
    target = Path(cache_dir).expanduser() / "gan-real" / key
    track_rows = np.unique(seg_track[train_idx])
    if not (target / "meta.json").is_file():
        from genre_models.shipping import segment_audio_for

        root = store.meta["dataset"]["root"]
        shipped = segment_audio_for(store)  # every segment's audio, when the store came with it
        if shipped is not None:
            log.info("taking %d training segments for the GAN from %s", len(train_idx), shipped)
            chunks = [np.load(shipped / "audio.npy", mmap_mode="r")[train_idx]]  # rows align with mfcc.npy
        elif not os.path.isdir(root):
            raise DataError(f"{root}: the dataset folder is not visible here, and the feature store {store.path} "
                            "came without segment audio; the GAN needs one of the two")
        else:
            tasks = []
            for t in track_rows:
                wanted = within[train_idx[seg_track[train_idx] == t]].tolist()
                rel = tracks.path.iloc[t]
                tasks.append((os.path.join(root, rel), rel, wanted, int(tracks.segments.iloc[t]), fcfg))
            log.info("decoding %d training segments from %d tracks for the GAN into %s", len(train_idx),
                     len(tasks), target)
            chunks = parallel_map(_decode_segments, tasks, jobs, desc="gan audio")

        def write(tmp: Path) -> None:
            audio = np.lib.format.open_memmap(tmp / "audio.npy", mode="w+", dtype=np.int16,
                                              shape=(len(train_idx), fcfg.segment_samples))
            at = 0
            for c in chunks:
                audio[at:at + len(c)] = c
                at += len(c)
            audio.flush()
            del audio
            np.save(tmp / "segment.npy", train_idx)  # rows of the feature store's segment arrays
            (tmp / "meta.json").write_text(json.dumps({"segments": int(len(train_idx)), "tracks": int(len(track_rows)),
                                                       "split": asdict(split), "digest": store.digest}, indent=2))

        atomic_dir(target, write)
    seg = np.load(target / "segment.npy")
    return RealAudio(np.load(target / "audio.npy", mmap_mode="r"), labels[seg_track[seg]], seg_track[seg], within[seg],
                     [tracks.track_id.iloc[t] for t in np.unique(seg_track[seg])])


# --------------------------------------------------------------------------- stage 2: training


@dataclass
class GanUnit:
    """One generator/critic pair and the genres it learns: all ten (conditional) or one (per-genre)."""

    G: torch.nn.Module
    D: torch.nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    classes: list[int]

    @property
    def conditional(self) -> bool:
        return len(self.classes) > 1


def build_units(cfg: WaveGanConfig, device: torch.device) -> list[GanUnit]:
    from genre_models.wavegan import Discriminator, Generator

    groups = [list(range(N_CLASSES))] if cfg.mode == "conditional" else [[c] for c in range(N_CLASSES)]
    units = []
    for classes in groups:
        n_cls = N_CLASSES if len(classes) > 1 else 0
        G = Generator(cfg.d, cfg.latent_dim, n_cls).to(device)
        D = Discriminator(cfg.d, n_cls, cfg.phase_shuffle).to(device)
        betas = (cfg.beta1, cfg.beta2)
        units.append(GanUnit(G, D, torch.optim.Adam(G.parameters(), cfg.lr, betas=betas),
                             torch.optim.Adam(D.parameters(), cfg.lr, betas=betas), classes))
    return units


def sample_clips(units: list[GanUnit], z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B, latent), (B,) -> (B, 16384): each row from the generator that owns its genre."""
    if len(units) == 1:
        return units[0].G(z, labels if units[0].conditional else None)
    out = torch.empty(z.shape[0], SLICE_LEN, device=z.device)
    for unit in units:
        mask = labels == unit.classes[0]
        if mask.any():
            out[mask] = unit.G(z[mask])
    return out


def check_finite(step: int, metrics: dict, checkpoint: str, checkpoint_step: int) -> None:
    """Raise ``GanDiverged`` on a NaN, infinite or exploding loss."""
    for name in ("d_loss", "g_loss", "gp"):
        value = metrics[name]
        if not np.isfinite(value) or abs(value) > EXPLODED:
            where = f"{checkpoint} (step {checkpoint_step})" if checkpoint_step else "none yet (no checkpoint was written)"
            raise GanDiverged(f"WaveGAN diverged at step {step}: {name} = {value:.4g}; last good checkpoint: {where}. "
                              "Lower the learning rate or d, or use precision fp32")


def gan_step(unit: GanUnit, real_batch: Callable[[], tuple[torch.Tensor, torch.Tensor]], cfg: WaveGanConfig,
             device: torch.device) -> dict:
    """One generator update after ``n_critic`` critic updates (WGAN-GP). Returns float metrics."""
    from genre_models.wavegan import d_loss, g_loss, gradient_penalty

    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16")
    cond = unit.conditional
    for _ in range(cfg.n_critic):
        x, y = real_batch()  # (B, 16384), (B,)
        z = torch.randn(x.shape[0], cfg.latent_dim, device=device)
        with torch.no_grad(), autocast:
            fake = unit.G(z, y if cond else None)
        fake = fake.float()
        with autocast:
            wd_loss = d_loss(unit.D(x, y if cond else None).float(), unit.D(fake, y if cond else None).float())
        gp = gradient_penalty(unit.D, x, fake, y if cond else None)  # fp32: double backward
        loss_d = wd_loss + cfg.gp_weight * gp
        unit.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        unit.opt_d.step()
    z = torch.randn(x.shape[0], cfg.latent_dim, device=device)
    with autocast:
        loss_g = g_loss(unit.D(unit.G(z, y if cond else None), y if cond else None).float())
    unit.opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    unit.opt_g.step()
    return {"d_loss": loss_d.item(), "g_loss": loss_g.item(), "gp": gp.item(), "wasserstein": -wd_loss.item()}


def _batcher(real: RealAudio, classes: list[int], batch: int, rng: np.random.Generator, device: torch.device):
    pool = np.flatnonzero(np.isin(real.labels, classes))
    if len(pool) == 0:
        raise DataError(f"no training segments for genre(s) {[GENRES[c] for c in classes]}: the GAN has nothing to learn from")

    seg_len = real.audio.shape[1]
    if seg_len < SLICE_LEN:
        raise ConfigError(f"segments of {seg_len} samples are shorter than WaveGAN's {SLICE_LEN}")

    def draw() -> tuple[torch.Tensor, torch.Tensor]:
        idx = np.sort(pool[rng.integers(0, len(pool), batch)])  # with replacement; sorted for the memmap
        starts = rng.integers(0, seg_len - SLICE_LEN + 1, batch)  # a random window of each segment
        segs = real.audio[idx]  # (B, seg_len)
        x = np.stack([s[o:o + SLICE_LEN] for s, o in zip(segs, starts)])  # (B, 16384)
        return torch.from_numpy(from_pcm16(x)).to(device), torch.from_numpy(real.labels[idx]).to(device)

    return draw


@dataclass
class GanTraining:
    units: list[GanUnit]
    history: list[dict]  # one row per logged step
    step: int
    resumed_from: int  # 0: fresh
    checkpoint: str
    seconds: float


def _state(units, step, rng, history, key, run_id, cfg) -> dict:
    return {"step": step, "gan_key": key, "run_id": run_id, "config": asdict(cfg), "history": history,
            "units": [{"G": u.G.state_dict(), "D": u.D.state_dict(), "opt_g": u.opt_g.state_dict(),
                       "opt_d": u.opt_d.state_dict()} for u in units],
            "torch_rng": torch.get_rng_state(), "np_rng": rng.bit_generator.state,
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def save_checkpoint(path: Path, state: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a torn or foreign file: say so, and start fresh rather than guess
        log.warning("ignoring unreadable GAN checkpoint %s (%s); training from step 0", path, exc)
        return None


def train_wavegan(cfg: GanConfig, real: RealAudio, device: torch.device, workdir: Path, key: str, *,
                  run_id: str | None = None, fresh: bool = False,
                  on_log: Callable[[int, dict], None] | None = None,
                  on_preview: Callable[[int, list[GanUnit]], None] | None = None,
                  on_resume: Callable[[dict], None] | None = None) -> GanTraining:
    """Train (or resume) the units for ``cfg.gan.steps`` steps; checkpoint every ``checkpoint_every``."""
    from genre_models.train import seed_everything
    from genre_models.util import progress

    g = cfg.gan
    workdir.mkdir(parents=True, exist_ok=True)
    ckpt_path = workdir / "checkpoint.pt"
    if fresh and ckpt_path.exists():
        ckpt_path.unlink()
    seed_everything(cfg.seed)
    units = build_units(g, device)
    rng = np.random.default_rng(cfg.seed)
    history: list[dict] = []
    step = resumed_from = 0
    state = load_checkpoint(ckpt_path)
    if state is not None and state.get("gan_key") == key:
        for u, s in zip(units, state["units"]):
            u.G.load_state_dict(s["G"]), u.D.load_state_dict(s["D"])
            u.opt_g.load_state_dict(s["opt_g"]), u.opt_d.load_state_dict(s["opt_d"])
        torch.set_rng_state(state["torch_rng"])
        if state.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        rng.bit_generator.state = state["np_rng"]
        history, step = state["history"], state["step"]
        resumed_from = step
        log.info("resuming WaveGAN %s from step %d of %d (%s)", key, step, g.steps, ckpt_path)
        if on_resume is not None:
            on_resume(state)
    draws = [_batcher(real, u.classes, g.batch_size, rng, device) for u in units]
    last_good = step if resumed_from else 0
    bar = progress(total=g.steps, initial=step, desc="wavegan", unit="step")
    t0 = time.perf_counter()
    t_log, step_log = t0, step
    while step < g.steps:
        for u in units:
            u.G.train(), u.D.train()
        rows = [gan_step(u, draw, g, device) for u, draw in zip(units, draws)]
        step += 1
        metrics = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        check_finite(step, metrics, str(ckpt_path), last_good)
        bar.update()
        if step % cfg.log_every == 0 or step == g.steps:
            now = time.perf_counter()
            metrics["steps_per_sec"] = (step - step_log) / max(now - t_log, 1e-9)
            t_log, step_log = now, step
            history.append({"step": step, **metrics})
            if on_log is not None:
                on_log(step, metrics)
        if step % cfg.checkpoint_every == 0 or step == g.steps:
            save_checkpoint(ckpt_path, _state(units, step, rng, history, key, run_id, g))
            last_good = step
        if on_preview is not None and (step % cfg.preview_every == 0 or step == g.steps):
            on_preview(step, units)
    bar.close()
    if step == resumed_from and on_preview is not None:  # nothing left to train: still leave final previews
        on_preview(step, units)
    return GanTraining(units, history, step, resumed_from, str(ckpt_path), time.perf_counter() - t0)


def preview_clips(units: list[GanUnit], cfg: GanConfig, device: torch.device) -> np.ndarray:
    """The fixed-z preview: one clip per genre, (10, 16384), the same z at every step."""
    gen = torch.Generator().manual_seed(cfg.seed + 7919)
    z = torch.randn(N_CLASSES, cfg.gan.latent_dim, generator=gen).to(device)
    with torch.no_grad():
        return sample_clips(units, z, torch.arange(N_CLASSES, device=device)).float().cpu().numpy()


# --------------------------------------------------------------------------- stage 3: generated set


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


def load_generated(path: str | os.PathLike) -> GeneratedSet:
    path = Path(path)
    meta = json.loads((path / "meta.json").read_text())
    return GeneratedSet(np.load(path / "mfcc.npy", mmap_mode="r"), np.load(path / "labels.npy"), str(path), meta)


def generate_set(units: list[GanUnit], cfg: GanConfig, device: torch.device, target: Path, key: str,
                 chunk: int = 256) -> GeneratedSet:
    """``per_genre`` clips for every genre, with labels, MFCCs computed as for real segments. Written once."""
    from genre_models.features import mfcc_batch

    if (target / "meta.json").is_file():
        gen = load_generated(target)
        if gen.meta.get("gan_key") == key:
            log.info("reusing generated set %s (%d clips)", target, len(gen))
            return gen
        shutil.rmtree(target)
    f = cfg.features
    n = cfg.gan.per_genre * N_CLASSES
    labels = np.repeat(np.arange(N_CLASSES), cfg.gan.per_genre).astype(np.int64)  # (N,)
    torch_gen = torch.Generator().manual_seed(cfg.seed + 104729)

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
            mfcc[at:at + len(y)] = mfcc_batch(segs, f.sample_rate, f.n_mfcc, f.n_fft, f.hop_length, f.n_mels)
        audio.flush(), mfcc.flush()
        del audio, mfcc
        np.save(tmp / "labels.npy", labels)
        (tmp / "meta.json").write_text(json.dumps({
            "gan_key": key, "per_genre": cfg.gan.per_genre, "clips": n, "sample_rate": f.sample_rate,
            "features": asdict(f), "genres": list(GENRES), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, indent=2))

    atomic_dir(target, write)
    return load_generated(target)


# --------------------------------------------------------------------------- stage 4: quality


def quality_classifier(cfg: GanConfig, store, search: bool = True) -> tuple[Callable[[torch.Tensor], torch.Tensor], dict]:
    """A net5 trained on real data only, with the GAN's data, split and seed.

    Reuses a FINISHED net5 run of the current experiment when one matches (tags and feature
    config); otherwise trains one here, untracked, with early stopping (``quality_epochs`` cap).
    Returns the model and a description for the run's tags and metrics.
    """
    import mlflow

    flt = (f"tags.net = 'net5' and tags.split = '{cfg.split}' and tags.seed = '{cfg.seed}' and "
           f"tags.dataset_digest = '{store.digest}' and attributes.status = 'FINISHED'")
    try:
        if not search:
            raise LookupError("tracking is off")
        runs = mlflow.search_runs(filter_string=flt, order_by=["attributes.start_time DESC"], output_format="list",
                                  max_results=20)
    except Exception as exc:  # no experiment yet, or a store that cannot search: train our own
        log.info("no net5 run to reuse for the quality figure (%s)", exc)
        runs = []
    for run in runs:
        try:
            info = mlflow.models.get_model_info(f"runs:/{run.info.run_id}/model")
        except Exception:
            continue
        if _mfcc_features((info.metadata or {}).get("features") or {}) == _mfcc_features(asdict(cfg.features)):
            model = mlflow.pytorch.load_model(f"runs:/{run.info.run_id}/model")
            return model, {"source": f"run {run.info.run_id}", "run_id": run.info.run_id,
                           "test_accuracy": run.data.metrics.get("test_accuracy", float("nan"))}
    from genre_models.train import train

    log.info("training a real-data net5 (early stopping, at most %d epochs) to score the generated clips", cfg.quality_epochs)
    res = train(TrainConfig("net5", cfg.data_dir, epochs=cfg.quality_epochs, seed=cfg.seed, split=cfg.split,
                            device=cfg.device, features=cfg.features, cache_dir=cfg.cache_dir, jobs=cfg.jobs,
                            log_model=False), track=False)
    model = res.model.to("cpu").eval()
    return model, {"source": f"trained here (stopped at epoch {res.history.stopped_epoch})", "run_id": "",
                   "test_accuracy": res.metrics.get("test_accuracy", float("nan"))}


def _mfcc_features(features: dict) -> dict:
    """The feature settings an MFCC net depends on (image settings do not matter to net5)."""
    return {k: v for k, v in features.items() if not k.startswith("image_")}


def generation_quality(model: Callable[[torch.Tensor], torch.Tensor], gen: GeneratedSet, batch: int = 1024) -> dict:
    """Accuracy of ``model`` at recognising each generated clip's intended genre, overall and per genre."""
    preds = []
    with torch.no_grad():
        for at in range(0, len(gen), batch):
            x = torch.from_numpy(np.array(gen.mfcc[at:at + batch]))  # (b, frames, n_mfcc), a writable copy
            preds.append(model(x).argmax(1).cpu().numpy())
    pred = np.concatenate(preds) if preds else np.zeros(0, int)
    out = {"gen_quality_accuracy": float((pred == gen.labels).mean()) if len(pred) else 0.0}
    for i, g in enumerate(GENRES):
        mask = gen.labels == i
        out[f"gen_quality_accuracy_{g}"] = float((pred[mask] == i).mean()) if mask.any() else 0.0
    return out


# --------------------------------------------------------------------------- the run


@dataclass
class GanResult:
    run_id: str | None
    key: str
    generated: GeneratedSet
    quality: dict
    training: GanTraining
    n_real: int


def gan_run_name(cfg: GanConfig) -> str:
    return f"gan-{cfg.gan.mode}-d{cfg.gan.d}-{cfg.gan.steps}steps-{cfg.split}-s{cfg.seed}"


def _write_wav(path: Path, clip: np.ndarray, sample_rate: int) -> None:
    """A generated clip (or a real window of the same length) as the GAN made it: 16384 samples."""
    import soundfile as sf

    sf.write(path, clip, sample_rate, subtype="PCM_16")


def _loss_figure(history: list[dict], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    df = pd.DataFrame(history)
    df.to_csv(out / "gan_history.csv", index=False)
    if df.empty:
        return
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for col in ("d_loss", "g_loss"):
        a1.plot(df.step, df[col], label=col)
    a1.set_xlabel("step"), a1.legend(), a1.set_title("losses")
    a2.plot(df.step, df.wasserstein, label="wasserstein estimate")
    a2.plot(df.step, df.gp, label="gradient penalty")
    a2.set_xlabel("step"), a2.legend(), a2.set_title("critic")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out / "gan_losses.png", dpi=110)
    plt.close(fig)


def run_gan(cfg: GanConfig, track: bool = True, fresh: bool = False, standalone: bool = False,
            placement=None) -> GanResult:
    """Train (or resume) a WaveGAN on the training split, generate its set, score it, log it all.

    ``standalone``: start a run of its own even inside ``mlflow run`` (net6's prerequisite).
    """
    import mlflow

    from genre_models.preprocess import preprocess
    from genre_models.shipping import data_label
    from genre_models.tracking import base_tags, log_dataset_input, log_params_safely, start_run
    from genre_models.train import _null_run, resolve_device

    split = SplitConfig(cfg.split, cfg.seed)
    store = preprocess(PreprocessConfig(cfg.data_dir, cfg.features, split, cfg.cache_dir, cfg.jobs)).store
    key = gan_key(cfg, store.digest)
    real = training_audio(store, split, cfg.features, cfg.cache_dir, cfg.jobs)
    if len(real) == 0:
        raise DataError(f"{cfg.data_dir}: the training part of split {cfg.split!r} (seed {cfg.seed}) has no segments")
    device = resolve_device(cfg.device)
    workdir = Path(cfg.cache_dir).expanduser() / "gan" / key
    ctx = start_run(gan_run_name(cfg), placement, standalone) if track else _null_run()
    with ctx as run:
        run_id = run.info.run_id if run is not None else None
        on_log = on_preview = on_resume = None
        if track:
            mlflow.set_tags({**base_tags(store), "stage": "gan", "gan_key": key, "gan_mode": cfg.gan.mode, "split": cfg.split,
                             "seed": str(cfg.seed), "gan_cache": str(workdir)})
            log_params_safely({**{k: v for k, v in flat_params(cfg).items() if k != "data_dir"},
                               "data_dir": data_label(cfg.data_dir), "resolved_device": str(device),
                               "gan_sample_rate": cfg.features.sample_rate})
            mlflow.log_metrics({"n_real_segments": len(real), "n_real_tracks": len(real.track_ids)}, step=0)
            log_dataset_input(store, split, context="gan-train")
            on_log = lambda step, m: mlflow.log_metrics(m, step=step)  # noqa: E731

            def on_preview(step: int, units: list[GanUnit]) -> None:
                from genre_models.tracking import artifact_dir

                clips = preview_clips(units, cfg, device)
                with artifact_dir(f"previews/step_{step:07d}") as out:
                    for i, genre in enumerate(GENRES):
                        _write_wav(out / f"{genre}.wav", clips[i], cfg.features.sample_rate)

            def on_resume(state: dict) -> None:
                old = state.get("run_id")
                mlflow.set_tags({"resumed_from_step": str(state["step"]), "resumed_from_run": old or ""})
                if old and old != run_id:
                    try:
                        client = mlflow.MlflowClient()
                        if client.get_run(old).info.status == "RUNNING":  # its process died: say so
                            client.set_terminated(old, "KILLED")
                    except Exception as exc:  # another store, or deleted
                        log.info("could not mark the interrupted GAN run %s as KILLED: %s", old, exc)

            _log_real_examples(real, cfg)
        try:
            trained = train_wavegan(cfg, real, device, workdir, key, run_id=run_id, fresh=fresh, on_log=on_log,
                                    on_preview=on_preview, on_resume=on_resume)
        except GanDiverged:
            if track:
                mlflow.set_tag("last_good_checkpoint", str(workdir / "checkpoint.pt"))
            raise
        gen = generate_set(trained.units, cfg, device, workdir / "generated", key)
        model, qinfo = quality_classifier(cfg, store, search=track)
        quality = generation_quality(model, gen)
        if track:
            from genre_models.tracking import artifact_dir

            mlflow.log_params({"n_parameters_g": sum(p.numel() for u in trained.units for p in u.G.parameters()),
                               "n_parameters_d": sum(p.numel() for u in trained.units for p in u.D.parameters())})
            final = {**quality, "quality_net_test_accuracy": qinfo["test_accuracy"], "n_generated": len(gen),
                     **{f"n_generated_{k}": v for k, v in gen.counts().items()},
                     "gan_train_time_s": trained.seconds, "gan_steps_done": trained.step}
            mlflow.log_metrics(final)
            mlflow.set_tags({"quality_net": qinfo["source"], "generated_dir": gen.path,
                             "checkpoint": trained.checkpoint, "resumed": str(bool(trained.resumed_from)).lower()})
            with artifact_dir() as out:
                _loss_figure(trained.history, out, gan_run_name(cfg))
                (out / "gan_config.json").write_text(json.dumps(asdict(cfg), indent=2))
            mlflow.log_artifact(str(Path(gen.path) / "mfcc.npy"), "generated")
            mlflow.log_artifact(str(Path(gen.path) / "labels.npy"), "generated")
            mlflow.log_artifact(str(Path(gen.path) / "meta.json"), "generated")
            if cfg.log_model:
                log_generator(trained.units, cfg)
            from genre_models.tracking import verify_record

            verify_record(run_id, final, {}, ["gan_losses.png", "gan_config.json", "generated", "previews"])
    log.info("WaveGAN %s: %d steps (%s), %d clips, quality accuracy %.3f (chance 0.1)", key, trained.step,
             f"resumed from {trained.resumed_from}" if trained.resumed_from else "fresh", len(gen),
             quality["gen_quality_accuracy"])
    return GanResult(run_id, key, gen, quality, trained, len(real))


def _log_real_examples(real: RealAudio, cfg: GanConfig) -> None:
    """One real training segment per genre, for listening beside the previews."""
    from genre_models.tracking import artifact_dir

    with artifact_dir("previews/real") as out:
        for i, genre in enumerate(GENRES):
            rows = np.flatnonzero(real.labels == i)
            if len(rows):
                seg = from_pcm16(real.audio[rows[len(rows) // 2]])
                _write_wav(out / f"{genre}.wav", seg[:SLICE_LEN], cfg.features.sample_rate)


def log_generator(units: list[GanUnit], cfg: GanConfig) -> None:
    """The generator(s) as one MLflow model: (B, latent + 10) [z, one-hot genre] -> (B, 16384) at the features' rate."""
    import warnings

    import mlflow
    from mlflow.models import infer_signature

    from genre_models.wavegan import GenreGenerator

    model = GenreGenerator([u.G.to("cpu").eval() for u in units], cfg.gan.latent_dim, N_CLASSES).eval()
    z = torch.randn(2, cfg.gan.latent_dim)
    example = torch.cat([z, torch.nn.functional.one_hot(torch.tensor([0, 3]), N_CLASSES).float()], 1)  # (2, latent + 10)
    with torch.no_grad():
        out = model(example)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.pytorch.log_model(
            model, name="generator", signature=infer_signature(example.numpy(), out.numpy()),
            input_example=example.numpy(), pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
            metadata={"kind": "wavegan-generator", "mode": cfg.gan.mode, "d": cfg.gan.d, "genres": list(GENRES),
                      "latent_dim": cfg.gan.latent_dim, "sample_rate": cfg.features.sample_rate},
        )


# --------------------------------------------------------------------------- net6's side


@dataclass
class Augmentation:
    generated: GeneratedSet
    run_id: str | None
    reused: bool  # an existing finished GAN run (or cache) served it
    gan: WaveGanConfig


def find_gan_run(key: str):
    """The newest FINISHED ``gan`` run with this key in the current experiment, or None."""
    import mlflow

    runs = mlflow.search_runs(filter_string=f"tags.gan_key = '{key}' and attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time DESC"], output_format="list", max_results=1)
    return runs[0] if runs else None


def _generated_of(run) -> GeneratedSet:
    """A GAN run's generated set: its cache folder when present here, else its logged artifacts."""
    import mlflow

    local = run.data.tags.get("generated_dir", "")
    if local and (Path(local) / "meta.json").is_file():
        gen = load_generated(local)
        if gen.meta.get("gan_key") == run.data.tags.get("gan_key"):
            return gen
    path = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="generated")
    return load_generated(path)


def _wavegan_config_of(run) -> WaveGanConfig:
    from dataclasses import fields

    params = run.data.params
    values = {}
    for f in fields(WaveGanConfig):
        raw = params.get(f"resolved.gan.{f.name}", params.get(f"gan.{f.name}"))
        if raw is not None:
            default = getattr(WaveGanConfig(), f.name)
            values[f.name] = type(default)(raw)
    return WaveGanConfig(**values)


def augmentation_for(cfg: TrainConfig, store, track: bool = True) -> Augmentation:
    """net6's generated set: from ``cfg.gan_run_id``, else a matching finished ``gan`` run, else a
    new one (run first, as MLflow's multistep workflow does). Refuses a GAN trained on another
    split, seed or dataset: its training audio could hold this run's test tracks."""
    import mlflow

    gcfg = GanConfig(cfg.data_dir, cfg.gan, cfg.split, cfg.seed, cfg.device, cfg.features, cfg.cache_dir, cfg.jobs)
    if cfg.gan_run_id:
        try:
            run = mlflow.get_run(cfg.gan_run_id)
        except Exception:
            raise ConfigError(f"gan_run_id {cfg.gan_run_id}: no such run in {mlflow.get_tracking_uri()}") from None
        tags = run.data.tags
        if tags.get("stage") != "gan":
            raise ConfigError(f"gan_run_id {cfg.gan_run_id} is not a gan run (stage={tags.get('stage', '?')})")
        if run.info.status != "FINISHED":
            raise ConfigError(f"gan_run_id {cfg.gan_run_id} is {run.info.status}, not FINISHED")
        theirs = (tags.get("split"), tags.get("seed"), tags.get("dataset_digest"))
        ours = (cfg.split, str(cfg.seed), store.digest)
        if theirs != ours:
            raise ConfigError(f"gan_run_id {cfg.gan_run_id} was trained on split {theirs[0]} seed {theirs[1]} of dataset "
                              f"{theirs[2]}, but this run uses split {ours[0]} seed {ours[1]} of {ours[2]}: its training "
                              "audio may include this run's validation or test tracks")
        return Augmentation(_generated_of(run), run.info.run_id, True, _wavegan_config_of(run))
    key = gan_key(gcfg, store.digest)
    if track:
        found = find_gan_run(key)
        if found is not None:
            log.info("net6 uses finished GAN run %s (key %s)", found.info.run_id, key)
            return Augmentation(_generated_of(found), found.info.run_id, True, cfg.gan)
        log.info("no finished GAN run with key %s: training one first", key)
    res = run_gan(gcfg, track=track, standalone=True)
    return Augmentation(res.generated, res.run_id, False, cfg.gan)
