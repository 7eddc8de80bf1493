"""``benchmark perf gan``: WaveGAN steps/s in fp32 and bf16, and the paper-size model's cost."""

from __future__ import annotations

import time

import numpy as np
import torch

from genre_models.config import WaveGanConfig
from genre_models.training.runtime import resolve_device


def paper_probe(timed, dev, probe_batch: int, study_steps: int, study_clips: int) -> dict:
    """One step of the paper-size model (d=64) at ``probe_batch``, scaled linearly to batch 64,
    and the time to generate the study's set."""
    from genre_models.training.gan_loop import build_units, sample_clips

    cfg = WaveGanConfig(d=64, batch_size=probe_batch)
    sec, _ = timed(cfg, 1, probe_batch)
    sec64 = sec * 64 / probe_batch
    (unit,) = build_units(cfg, dev)
    z = torch.randn(16, 100, device=dev)
    with torch.no_grad():
        sample_clips([unit], z, torch.arange(16, device=dev) % 10)
        t0 = time.perf_counter()
        sample_clips([unit], z, torch.arange(16, device=dev) % 10).float().cpu()
        gen_sec = (time.perf_counter() - t0) / 16
    return {
        "d": 64, "probe_batch": probe_batch, "probe_seconds_per_step": round(sec, 3),
        "est_seconds_per_step_batch64": round(sec64, 2),
        "est_hours_for_steps": {str(study_steps): round(study_steps * sec64 / 3600, 1),
                                "100000": round(100000 * sec64 / 3600, 1)},
        "est_minutes_to_generate_study_set": round(study_clips * gen_sec / 60, 1),
        "study_clips": study_clips,
    }


def bench_gan(d: int = 8, batch_size: int = 16, steps: int = 3, device: str = "auto", repeats: int = 2,
              paper_probe: bool = True, probe_batch: int = 2, study_steps: int = 20000, study_clips: int = 27980) -> dict:
    """WaveGAN training speed: G+D steps/s (one step = n_critic critic updates + one G update) in
    fp32 and bf16, timed interleaved on the same random audio, best of ``repeats``.

    ``paper_probe`` also times one step of the paper-size model (d=64, conditional) at
    ``probe_batch`` and scales it linearly to the paper's batch of 64. That assumes cost grows
    linearly with the batch, which holds on a saturated CPU and overestimates a GPU, where small
    batches leave it idle: on a GPU, probe with ``probe_batch=64``.
    """
    from genre_models.training.gan_loop import as_floats, build_units, gan_step

    dev = resolve_device(device)
    g = torch.Generator().manual_seed(0)
    audio = (torch.rand(max(batch_size, probe_batch) * 4, 16384, generator=g) * 2 - 1).to(dev)  # (N, 16384)
    labels = torch.randint(0, 10, (audio.shape[0],), generator=g).to(dev)

    def batcher(b: int):
        def draw():
            idx = torch.randint(0, audio.shape[0], (b,), device=dev)
            return audio[idx], labels[idx]
        return draw

    def timed(cfg: WaveGanConfig, n: int, b: int) -> tuple[float, list[dict]]:
        torch.manual_seed(0)
        (unit,) = build_units(cfg, dev)
        draw = batcher(b)
        gan_step(unit, draw, cfg, dev)  # warm-up: allocator, kernels
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        rows = as_floats([gan_step(unit, draw, cfg, dev) for _ in range(n)])  # read once, at the end: as training does
        return (time.perf_counter() - t0) / n, rows

    out: dict = {"device": str(dev), "threads": torch.get_num_threads(), "d": d, "batch_size": batch_size, "steps": steps}
    per: dict[str, list[float]] = {"fp32": [], "bf16": []}
    finite = {"fp32": True, "bf16": True}
    for _ in range(repeats):
        for precision in per:
            cfg = WaveGanConfig(d=d, batch_size=batch_size, precision=precision)
            sec, rows = timed(cfg, steps, batch_size)
            per[precision].append(sec)
            finite[precision] &= all(np.isfinite(r[k]) for r in rows for k in ("d_loss", "g_loss", "gp"))
    for precision, secs in per.items():
        out[f"{precision}_steps_per_sec"] = round(1.0 / min(secs), 4)
        out[f"{precision}_losses_finite"] = finite[precision]
    out["bf16_speedup"] = round(min(per["fp32"]) / min(per["bf16"]), 3)
    if paper_probe:
        out["paper_model"] = paper_probe(timed, dev, probe_batch, study_steps, study_clips)
    return out
