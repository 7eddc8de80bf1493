"""The probe: each rate a sweep's points need, timed on this machine for a fraction of a second
on the code the points will run (the training loop's own step and batch source, the WaveGAN's
step, a baseline's whole fit, the preprocessing pipeline), on the device the sweep will use.

On a CPU the WaveGAN is timed at a small batch and scaled linearly to the grid's (a saturated
CPU's cost grows with the batch); ``benchmark perf study`` times each rate longer, at full size.
"""

from __future__ import annotations

import time
from dataclasses import asdict

import numpy as np

from genre_models.config import FeatureConfig, WaveGanConfig
from genre_models.models.registry import InputShape
from genre_models.models.spec import NetSpec
from genre_models.sweep.cost.model import NetCost
from genre_models.sweep.grid import GridPoint, SweepConfig, get_grid

#: Seconds each rate is timed for in the sweep's own probe (``benchmark perf study`` times longer).
PROBE_SECONDS = 0.2
#: A classical baseline's fit is timed on this many samples (``model.CLASSICAL_SCALING`` scales it).
CLASSICAL_PROBE = 400


def timed_rate(step, per_call: int, seconds: float, sync=lambda: None) -> float:
    """Items per second of ``step()`` (each doing ``per_call`` items): one warm-up call that never
    counts, then calls until ``seconds`` have passed (at least one). Taking a slow warm-up call as
    the rate once made net5's probe 25x slow (docs/performance.md)."""
    step()
    sync()
    calls, t0 = 0, time.perf_counter()
    while calls == 0 or time.perf_counter() - t0 < seconds:
        step()
        calls += 1
    sync()
    return calls * per_call / (time.perf_counter() - t0)


def device_sync(dev):
    import torch

    return (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)


def measure_net(spec: NetSpec, batch: int, image_size: int, dev, precision: str, seconds: float) -> dict:
    """A torch net's training and evaluation samples/s, timed on the training loop's own step
    (``loop.train_epoch`` and ``loop.predict_proba``) over the loop's own batch source
    (``make_batches``: stored dtypes, the same batch, shape and conversion, resident on a GPU
    where the split would be), inside the loop's thread budget (``cpu_share``). The first batch
    is a warm-up and never counts: a one-off cost (a oneDNN primitive built, pages faulted in)
    is not every step's."""
    import torch

    from genre_models.models.registry import make_optimizer
    from genre_models.training.loop import Part, make_batches, part_bytes, predict_proba, train_epoch
    from genre_models.training.runtime import cpu_share, resident_fits

    shape = InputShape(image_size=image_size)
    torch.manual_seed(0)
    part = Part(_inputs(spec, batch, shape), torch.arange(batch) % 10, np.zeros(batch, dtype=np.int64))  # one batch
    model = spec.build(shape, "flatten")
    if hasattr(model, "fit_input_stats"):
        model.fit_input_stats(part.x)
    model.to(dev)
    opt = make_optimizer(spec, model.parameters(), spec.lr)
    resident = resident_fits(part_bytes({"train": part}), dev)
    batches = make_batches({"train": part, "val": part}, batch, 0, 0, dev, resident)
    with cpu_share():
        train = timed_rate(lambda: train_epoch(model, opt, batches["train"], dev, precision, 1), batch, seconds,
                           device_sync(dev))
        evaluate = timed_rate(lambda: predict_proba(model, batches["val"], dev, precision), batch, seconds / 2,
                              device_sync(dev))
    return {"batch": batch, "train_samples_per_s": round(train, 2), "eval_samples_per_s": round(evaluate, 2)}


def _inputs(spec, n: int, shape: InputShape):
    """``n`` random inputs as the store keeps them (uint8 images, int16 audio, float features)."""
    import torch

    g = torch.Generator().manual_seed(0)
    if spec.input_kind == "image":
        return torch.randint(0, 256, (n, 3, shape.image_size, shape.image_size), dtype=torch.uint8, generator=g)
    if spec.input_kind == "raw":
        return torch.randint(-2**15, 2**15, (n, shape.segment_samples), dtype=torch.int16, generator=g)
    return spec.input_example(shape, batch=n)


def measure_classical(net: str, real: tuple | None = None) -> dict:
    """Seconds of a baseline's whole fit (every grid point, scored on validation) on
    ``CLASSICAL_PROBE`` statistics: ``real`` ones (x, labels, tracks: the sweep's own dataset,
    which a real sweep has extracted by then) where given, else random ones."""
    from genre_models.models.classical import fit_classical
    from genre_models.models.spec import N_STATS

    rng = np.random.default_rng(0)
    if real is not None and len(real[1]) >= CLASSICAL_PROBE and np.unique(real[1]).size > 1:
        pick = rng.permutation(len(real[1]))[:CLASSICAL_PROBE]
        x, y, tracks = (np.asarray(a)[pick] for a in real)
    else:
        y = np.arange(CLASSICAL_PROBE) % 10
        x = (rng.normal(size=(CLASSICAL_PROBE, N_STATS)) + rng.normal(size=(10, N_STATS))[y]).astype(np.float32)
        tracks = np.arange(CLASSICAL_PROBE) // 10
        real = None
    fit_classical(net, x[:40], y[:40], x[:20], y[:20], 0, tracks[:40], tracks[:20])  # warm-up: scikit-learn's imports
    t0 = time.perf_counter()
    fit_classical(net, x, y, x[: CLASSICAL_PROBE // 4], y[: CLASSICAL_PROBE // 4], 0, tracks, tracks[: CLASSICAL_PROBE // 4])
    return {"probe_samples": CLASSICAL_PROBE, "fit_seconds": round(time.perf_counter() - t0, 3),
            "statistics": "real" if real is not None else "random"}


def measure_gan(gan: WaveGanConfig, dev, seconds: float) -> dict:
    """The WaveGAN's steps/s (5 critic updates with gradient penalty + 1 generator update) at the
    grid's ``d`` and batch, and its clips/s generated. On a CPU the step is timed at a probe batch
    of at most 4 and scaled linearly to the grid's."""
    import torch

    from genre_models.training.gan_loop import build_units, gan_step, sample_clips

    probe = gan.batch_size if dev.type == "cuda" else min(4, gan.batch_size)
    cfg = WaveGanConfig(**{**asdict(gan), "batch_size": probe})
    torch.manual_seed(0)
    (unit,) = build_units(cfg, dev)
    audio = torch.rand(probe, 16384, device=dev) * 2 - 1
    labels = torch.arange(probe, device=dev) % 10
    steps = timed_rate(lambda: gan_step(unit, lambda: (audio, labels), cfg, dev), 1, seconds, device_sync(dev))
    z = torch.randn(64, gan.latent_dim, device=dev)
    gen_labels = torch.arange(64, device=dev) % 10
    with torch.no_grad():
        clips = timed_rate(lambda: sample_clips([unit], z, gen_labels), 64, seconds / 2, device_sync(dev))
    return {"d": gan.d, "batch": gan.batch_size, "probe_batch": probe, "scaled_from_probe": probe != gan.batch_size,
            "steps_per_s": round(steps * probe / gan.batch_size, 4), "clips_per_s_generated": round(clips, 1)}


def measure_mfcc() -> float:
    """MFCC seconds per segment (the GAN's generated set needs them)."""
    from genre_models.data.features import mfcc_of

    fcfg = FeatureConfig()
    segs = np.random.default_rng(0).uniform(-0.5, 0.5, (64, fcfg.segment_samples)).astype(np.float32)
    mfcc_of(segs[:8], fcfg)
    t0 = time.perf_counter()
    mfcc_of(segs, fcfg)
    return round((time.perf_counter() - t0) / 64, 6)


def measure_preprocess(data_dir: str | None, n: int = 3) -> dict:
    """Seconds per clip of the feature pipeline in one process, on ``data_dir``'s first clips
    (else generated 30 s ones), and MFCC seconds per segment."""
    import tempfile
    from pathlib import Path

    from genre_models.data.discovery import discover
    from genre_models.data.extract import run_extraction

    fcfg = FeatureConfig()
    with tempfile.TemporaryDirectory(prefix="gb-probe-") as tmp:
        if data_dir is None:
            from genre_models.data.synth import SynthConfig, write_synthetic_gtzan

            data_dir = str(Path(tmp) / "clips")
            write_synthetic_gtzan(SynthConfig(out=data_dir, tracks_per_genre=1, seconds=30.0, repeats=0))
        tracks = discover(data_dir).tracks[:n]
        run_extraction(tracks[:1], fcfg, 1)  # warm-up: imports, filter banks
        t0 = time.perf_counter()
        run_extraction(tracks, fcfg, 1)
        per_clip = (time.perf_counter() - t0) / max(len(tracks), 1)
    return {"seconds_per_clip": round(per_clip, 3), "mfcc_seconds_per_segment": measure_mfcc()}


def probe(cfg: SweepConfig, points: list[GridPoint], nets: dict[str, NetCost], dev, precision: str,
          seconds: float = PROBE_SECONDS, data_dir: str | None = None, preprocess: bool = False,
          stats: tuple | None = None) -> dict:
    """Every rate ``points`` need, timed briefly on ``dev``: what ``model.project`` takes.
    ``nets``: ``model.net_costs`` of the points; ``stats``: the dataset's own statistics (x,
    labels, tracks), for the baselines' fits."""
    grid = get_grid(cfg.grid)
    rates: dict = {"nets": {}, "classical": {}, "unmeasured": {},
                   "preprocess": measure_preprocess(data_dir) if preprocess else {"mfcc_seconds_per_segment": measure_mfcc()}}
    timed: dict = {}
    for net, cost in nets.items():
        try:
            if cost.spec.family == "classical":
                rates["classical"][net] = measure_classical(net, stats)
                continue
            same = _architecture(cost, grid.image_size)  # net6 trains net5's net: timed once
            if same not in timed:
                timed[same] = measure_net(cost.spec, cost.batch, grid.image_size, dev, precision, seconds)
            rates["nets"][net] = timed[same]
        except Exception as exc:  # its points will fail and be recorded as such; the projection goes on
            rates["unmeasured"][net] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    if any(p.kind == "gan" for p in points):
        try:
            rates["gan"] = measure_gan(grid.gan, dev, seconds)
        except Exception as exc:  # as for a net: its points will say what is wrong
            rates["unmeasured"]["gan"] = f"{type(exc).__name__}: {str(exc).strip()[:200]}"
    return rates


def _architecture(cost: NetCost, image_size: int) -> tuple:
    """What a net's step costs depend on: its module's class and size (built on the meta device),
    its input kind and batch. Two nets that agree (net5 and net6, net3 and net4) are timed once."""
    import torch

    with torch.device("meta"):
        model = cost.spec.build(InputShape(image_size=image_size), "flatten")
    return type(model).__name__, sum(p.numel() for p in model.parameters()), cost.spec.input_kind, cost.batch

