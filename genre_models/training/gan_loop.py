"""The WaveGAN training loop (WGAN-GP), its checkpoints and its fixed-z previews.

``train_wavegan`` runs ``n_critic`` critic updates per generator update. Checkpoints (G, D,
both optimizers, RNG states, history) go to ``<workdir>/checkpoint.pt``; the same settings
after a kill resume there, and the logger is told which run was interrupted. Losses go to the
``RunLogger`` every ``log_every`` steps, previews (one WAV per genre) every ``preview_every``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from genre_models.config import GanConfig, WaveGanConfig
from genre_models.data.audio import from_pcm16, write_wav
from genre_models.data.segment_audio import RealAudio
from genre_models.errors import ConfigError, DataError, GanDiverged
from genre_models.genres import GENRES, N_CLASSES
from genre_models.models import wavegan
from genre_models.models.wavegan import SLICE_LEN, Discriminator, Generator
from genre_models.training.logger import NULL_LOGGER, RunLogger
from genre_models.training.runtime import cpu_share, refresh_threads, seed_everything
from genre_models.util import log, progress

GAN_CODE_VERSION = "wavegan-v2"  # bump when training or generation changes what a key produces
EXPLODED = 1e6  # |loss| above this counts as diverged


def gan_key(cfg: GanConfig, digest: str) -> str:
    """What a generated set depends on: the WaveGAN settings, the data, split, seed and features.
    Not the device or the logging cadence."""
    fold = {"fold": cfg.fold, "folds": cfg.folds} if cfg.split_config.folded else {}  # older keys stay as they were
    blob = json.dumps({"gan": asdict(cfg.gan), "split": cfg.split, "seed": cfg.seed, **fold, "features": asdict(cfg.features),
                       "dataset": digest, "code": GAN_CODE_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


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
    groups = [list(range(N_CLASSES))] if cfg.mode == "conditional" else [[c] for c in range(N_CLASSES)]
    units = []
    for classes in groups:
        n_cls = N_CLASSES if len(classes) > 1 else 0
        G = Generator(cfg.d, cfg.latent_dim, n_cls).to(device)
        D = Discriminator(cfg.d, n_cls, cfg.phase_shuffle).to(device)
        # CUDA: one fused kernel per optimizer step instead of a launch per parameter tensor.
        adam = dict(lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), **({"fused": True} if device.type == "cuda" else {}))
        units.append(GanUnit(G, D, torch.optim.Adam(G.parameters(), **adam), torch.optim.Adam(D.parameters(), **adam),
                             classes))
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
    """One generator update after ``n_critic`` critic updates (WGAN-GP). Returns the metrics as
    0-d tensors on the device: reading them (``as_floats``) waits for the GPU, so the loop does it
    only when it logs, checkpoints or checks them. The losses are looked up on
    ``models.wavegan`` at call time, so a test can swap one."""
    d_loss, g_loss, gradient_penalty = wavegan.d_loss, wavegan.g_loss, wavegan.gradient_penalty
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
    return {"d_loss": loss_d.detach(), "g_loss": loss_g.detach(), "gp": gp.detach(), "wasserstein": -wd_loss.detach()}


def as_floats(rows: list[dict]) -> list[dict]:
    """Metric rows of device tensors as floats, with one host transfer for all of them."""
    if not rows:
        return []
    keys = list(rows[0])
    values = torch.stack([torch.stack([r[k].float() for k in keys]) for r in rows]).cpu().tolist()  # (rows, keys)
    return [dict(zip(keys, v)) for v in values]


def real_batcher(real: RealAudio, classes: list[int], batch: int, rng: np.random.Generator, device: torch.device):
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


def checkpoint_state(units, step, rng, history, key, run_id, cfg) -> dict:
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
    """The checkpoint's state, read as tensors, numbers, strings and containers only
    (``weights_only``): a file in the cache never runs code. One that does not load that way
    (torn, foreign, or a planted pickle) is damaged: said in one line, and training starts over."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or "units" not in state:
            raise ValueError("not a genre-bench GAN checkpoint")
        return state
    except Exception as exc:  # a torn or foreign file: say so, and start fresh rather than guess
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        log.warning("damaged GAN checkpoint %s (it does not load as plain tensors and numbers: %s); training from "
                    "step 0", path, first[:300])
        return None


def _resume(units: list[GanUnit], rng: np.random.Generator, ckpt_path: Path, key: str, g: WaveGanConfig,
            logger: RunLogger) -> tuple[list[dict], int]:
    """Load a checkpoint with this key into ``units`` and ``rng``; (history, step), or ([], 0)."""
    state = load_checkpoint(ckpt_path)
    if state is None or state.get("gan_key") != key:
        return [], 0
    for u, s in zip(units, state["units"]):
        u.G.load_state_dict(s["G"]), u.D.load_state_dict(s["D"])
        u.opt_g.load_state_dict(s["opt_g"]), u.opt_d.load_state_dict(s["opt_d"])
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    rng.bit_generator.state = state["np_rng"]
    log.info("resuming WaveGAN %s from step %d of %d (%s)", key, state["step"], g.steps, ckpt_path)
    old = state.get("run_id")
    logger.set_tags({"resumed_from_step": str(state["step"]), "resumed_from_run": old or ""})
    if old and old != logger.run_id:  # its process died: say so
        logger.end_if_running(old, "its process died; the GAN was resumed from its checkpoint")
    return state["history"], state["step"]


def _log_preview(units: list[GanUnit], cfg: GanConfig, device: torch.device, step: int, logger: RunLogger) -> None:
    def write(out: Path) -> None:
        clips = preview_clips(units, cfg, device)
        for i, genre in enumerate(GENRES):
            write_wav(out / f"{genre}.wav", clips[i], cfg.features.sample_rate)

    logger.log_artifacts(write, f"previews/step_{step:07d}")


def _settle(pending: list[tuple[int, dict]], checkpoint: str, last_good: int) -> dict:
    """Read the pending steps' metrics (one transfer), check each is finite in step order, and
    return the last step's; ``pending`` is emptied."""
    rows = as_floats([m for _, m in pending])
    for (step, _), metrics in zip(pending, rows):
        check_finite(step, metrics, checkpoint, last_good)
    pending.clear()
    return rows[-1]


def train_wavegan(cfg: GanConfig, real: RealAudio, device: torch.device, workdir: Path, key: str, *,
                  fresh: bool = False, logger: RunLogger = NULL_LOGGER) -> GanTraining:
    """Train (or resume) the units for ``cfg.gan.steps`` steps; checkpoint every ``checkpoint_every``."""
    g = cfg.gan
    workdir.mkdir(parents=True, exist_ok=True)
    ckpt_path = workdir / "checkpoint.pt"
    if fresh and ckpt_path.exists():
        ckpt_path.unlink()
    seed_everything(cfg.training_seed)
    units = build_units(g, device)
    rng = np.random.default_rng(cfg.training_seed)
    history, step = _resume(units, rng, ckpt_path, key, g, logger)
    resumed_from = last_good = step
    draws = [real_batcher(real, u.classes, g.batch_size, rng, device) for u in units]
    bar = progress(total=g.steps, initial=step, desc="wavegan", unit="step")
    t0 = time.perf_counter()
    t_log, step_log = t0, step
    pending: list[tuple[int, dict]] = []  # steps whose metrics the host has not read yet
    with cpu_share():
        while step < g.steps:
            refresh_threads()
            for u in units:
                u.G.train(), u.D.train()
            rows = [gan_step(u, draw, g, device) for u, draw in zip(units, draws)]
            step += 1
            pending.append((step, {k: torch.stack([r[k] for r in rows]).mean() for k in rows[0]}))
            bar.update()
            due = step % cfg.log_every == 0 or step % cfg.checkpoint_every == 0 or step == g.steps
            if device.type != "cuda" or due:  # a GPU is read only when due: no host sync per step
                metrics = _settle(pending, str(ckpt_path), last_good)
            if step % cfg.log_every == 0 or step == g.steps:
                now = time.perf_counter()
                metrics["steps_per_sec"] = (step - step_log) / max(now - t_log, 1e-9)
                t_log, step_log = now, step
                history.append({"step": step, **metrics})
                logger.log_metrics(metrics, step=step)
            if step % cfg.checkpoint_every == 0 or step == g.steps:
                save_checkpoint(ckpt_path, checkpoint_state(units, step, rng, history, key, logger.run_id, g))
                last_good = step
            if step % cfg.preview_every == 0 or step == g.steps:
                _log_preview(units, cfg, device, step, logger)
    bar.close()
    if step == resumed_from:  # nothing left to train: still leave final previews
        _log_preview(units, cfg, device, step, logger)
    return GanTraining(units, history, step, resumed_from, str(ckpt_path), time.perf_counter() - t0)


def preview_clips(units: list[GanUnit], cfg: GanConfig, device: torch.device) -> np.ndarray:
    """The fixed-z preview: one clip per genre, (10, 16384), the same z at every step."""
    gen = torch.Generator().manual_seed(cfg.seed + 7919)
    z = torch.randn(N_CLASSES, cfg.gan.latent_dim, generator=gen).to(device)
    with torch.no_grad():
        return sample_clips(units, z, torch.arange(N_CLASSES, device=device)).float().cpu().numpy()
