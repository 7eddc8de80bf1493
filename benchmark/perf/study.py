"""``benchmark perf study``: the wall time of a whole grid, projected from rates measured now,
on the device given, before anyone pays for the sweep.

**Measured** (each for about ``seconds`` after a warm-up, in this process): preprocessing per
clip (on ``--data-dir``, else on generated 30 s clips); each net's training and evaluation
samples/s at its grid batch and image size; the WaveGAN's steps/s at the grid's ``d`` and batch
(on a CPU at a small probe batch, scaled linearly to the grid's: an estimate, said so) and its
clips/s generated; each rate's GFLOP/s against a matrix product timed in the same process.

**Projected**: every point of the grid (the sweep's own points, order and dependencies), from
the data's size (the ``--data-dir``'s tracks and segments, else GTZAN's 999 usable clips of about
29.5 segments), the grid's epochs (an early-stopping net for the study's stopping epoch plus its
patience, or ``DEFAULT_STOP`` where the study gives none, at most its cap), the split's part
sizes and ``POINT_OVERHEAD_S`` of bookkeeping per point; then the points are scheduled on
``jobs`` slots as the sweep does. Caveat, the packing model: on a CPU the points running at once
share its cores (each at 1/k of its rate), on a GPU each keeps its own rate (points that use a
fraction of the GPU pack without slowing each other: verify with ``benchmark sweep --jobs N``).
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from benchmark.perf.loops import device_name, flops_per_step, matmul_peak, train_data
from genre_models.config import SPLIT_SPECS, DataConfig, FeatureConfig, WaveGanConfig
from genre_models.models.registry import InputShape, get_net, make_optimizer
from genre_models.sweep.grid import GridPoint, SweepConfig, build_grid, dependencies, get_grid
from genre_models.training.loop import to_input
from genre_models.training.runtime import autocast, cpu_share, prepare_device, resolve_device, resolve_precision

#: Seconds of bookkeeping per point (run records, the model or weights, evaluation artifacts).
POINT_OVERHEAD_S = 5.0
#: Epochs assumed for an early-stopping net the study gives no stopping epoch for (before patience).
DEFAULT_STOP = 30
#: GTZAN's size where no --data-dir says otherwise: usable clips and 1 s segments per clip.
GTZAN_CLIPS, GTZAN_SEGMENTS_PER_CLIP = 999, 29.5


def significant(x: float) -> float:
    """``x`` to 3 significant figures: a small share stays visible (0.000041, not 0.0)."""
    return float(f"{x:.3g}")


def timed_rate(step, per_call: int, seconds: float, sync) -> float:
    """Items per second of ``step()`` (each doing ``per_call`` items): one warm-up call, then
    calls until ``seconds`` have passed (at least one)."""
    step()
    sync()
    calls, t0 = 0, time.perf_counter()
    while calls == 0 or time.perf_counter() - t0 < seconds:
        step()
        calls += 1
    sync()
    return calls * per_call / (time.perf_counter() - t0)


def _sync(dev: torch.device):
    return (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)


def measure_net(net: str, batch: int, image_size: int, dev: torch.device, precision: str, seconds: float,
                peak: float) -> dict:
    """A net's training and evaluation samples/s at ``batch`` (data on the device), and the
    training step's GFLOP/s as a share of ``peak``."""
    spec, shape = get_net(net), InputShape(image_size=image_size)
    x, y = train_data(spec, None, batch, image_size, shape)
    xb, yb = to_input(x).to(dev), y.to(dev)
    torch.manual_seed(0)
    model = spec.build(shape, "flatten").to(dev)
    opt = make_optimizer(spec, model.parameters(), spec.lr)
    with autocast(dev, precision):
        flops = flops_per_step(model, xb, yb)

    def train_step():
        with autocast(dev, precision):
            loss = torch.nn.functional.cross_entropy(model(xb).float(), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    @torch.no_grad()
    def eval_step():
        with autocast(dev, precision):
            model(xb)

    train = timed_rate(train_step, batch, seconds, _sync(dev))
    evaluate = timed_rate(eval_step, batch, seconds / 2, _sync(dev))
    achieved = flops * train / batch / 1e9
    return {"batch": batch, "train_samples_per_s": round(train, 2), "eval_samples_per_s": round(evaluate, 2),
            "gflop_s": significant(achieved), "share_of_peak": significant(achieved / peak) if peak else None}


def measure_gan(gan: WaveGanConfig, dev: torch.device, seconds: float, peak: float) -> dict:
    """The WaveGAN's steps/s (5 critic updates with gradient penalty + 1 generator update) at the
    grid's ``d`` and batch, and its clips/s generated. On a CPU the step is timed at a probe batch
    of 4 and scaled linearly to the grid's (a CPU is saturated, so cost grows with the batch)."""
    from genre_models.training.gan_loop import build_units, gan_step, sample_clips

    probe = gan.batch_size if dev.type == "cuda" else min(4, gan.batch_size)
    cfg = WaveGanConfig(**{**asdict(gan), "batch_size": probe})
    torch.manual_seed(0)
    (unit,) = build_units(cfg, dev)
    audio = torch.rand(probe, 16384, device=dev) * 2 - 1
    labels = torch.arange(probe, device=dev) % 10
    flops = _gan_step_flops(unit, audio, labels, cfg)
    steps = timed_rate(lambda: gan_step(unit, lambda: (audio, labels), cfg, dev), 1, seconds, _sync(dev))
    steps_at_grid = steps * probe / gan.batch_size
    z = torch.randn(64, gan.latent_dim, device=dev)
    gen_labels = torch.arange(64, device=dev) % 10
    with torch.no_grad():
        clips = timed_rate(lambda: sample_clips([unit], z, gen_labels), 64, seconds / 2, _sync(dev))
    achieved = flops * steps / 1e9
    return {"d": gan.d, "batch": gan.batch_size, "probe_batch": probe, "scaled_from_probe": probe != gan.batch_size,
            "steps_per_s": round(steps_at_grid, 4), "seconds_per_step": round(1 / steps_at_grid, 3),
            "clips_per_s_generated": round(clips, 1), "gflop_s": significant(achieved),
            "share_of_peak": significant(achieved / peak) if peak else None}


def _gan_step_flops(unit, audio: torch.Tensor, labels: torch.Tensor, cfg: WaveGanConfig) -> float:
    """FLOPs of one WaveGAN step, estimated from counted passes (PyTorch's counter cannot follow
    the gradient penalty's double backward): per critic update a generator forward and four
    critic forward-backward passes (real, fake, and the penalty counted as two), then one
    forward-backward of both for the generator update."""
    from torch.utils.flop_counter import FlopCounterMode

    z = torch.randn(audio.shape[0], cfg.latent_dim, device=audio.device)
    with FlopCounterMode(display=False) as g:
        unit.G(z, labels).sum().backward()
    with FlopCounterMode(display=False) as d:
        unit.D(audio, labels).sum().backward()
    unit.G.zero_grad(set_to_none=True), unit.D.zero_grad(set_to_none=True)
    g_fb, d_fb = g.get_total_flops(), d.get_total_flops()
    return cfg.n_critic * (g_fb / 3 + 4 * d_fb) + g_fb + d_fb


def measure_preprocess(data_dir: str | None, clips: int = 6) -> dict:
    """Seconds per clip of the feature pipeline in one process (decode, silence removal, MFCCs,
    image, fingerprint), and MFCC seconds per segment (the GAN's generated set needs them)."""
    from genre_models.data.discovery import discover
    from genre_models.data.extract import run_extraction
    from genre_models.data.features import mfcc_of

    with tempfile.TemporaryDirectory(prefix="gb-study-") as tmp:
        if data_dir is None:
            from genre_models.data.synth import SynthConfig, write_synthetic_gtzan

            data_dir = str(Path(tmp) / "clips")
            write_synthetic_gtzan(SynthConfig(out=data_dir, tracks_per_genre=1, seconds=30.0, repeats=0))
        tracks = discover(data_dir).tracks[:clips]
        fcfg = FeatureConfig()
        run_extraction(tracks[:1], fcfg, 1)  # warm-up: imports, filter banks
        t0 = time.perf_counter()
        results = run_extraction(tracks, fcfg, 1)
        per_clip = (time.perf_counter() - t0) / max(len(tracks), 1)
    segs = np.random.default_rng(0).uniform(-0.5, 0.5, (256, fcfg.segment_samples)).astype(np.float32)
    mfcc_of(segs[:8], fcfg)
    t0 = time.perf_counter()
    mfcc_of(segs, fcfg)
    return {"seconds_per_clip": round(per_clip, 3), "mfcc_seconds_per_segment": round((time.perf_counter() - t0) / 256, 6),
            "clips_timed": len(results)}


@dataclass
class Sizes:
    """The data a projection is for: usable tracks and 1 s segments."""

    tracks: int = GTZAN_CLIPS
    segments: float = GTZAN_CLIPS * GTZAN_SEGMENTS_PER_CLIP
    source: str = "GTZAN (999 usable clips, about 29.5 segments each)"

    def parts(self, split: str, folds: int) -> dict[str, float]:
        """Each part's share of the samples under ``split`` (of segments for an MFCC net, of
        tracks for an image net, whose samples are one per track)."""
        if SPLIT_SPECS[split].folded:
            share = {"train": (folds - 2) / folds, "val": 1 / folds, "test": 1 / folds}
        elif split == "filtered":
            share = {"train": 443 / 1000, "val": 197 / 1000, "test": 290 / 1000}
        else:
            share = {"train": 0.7, "val": 0.2, "test": 0.1}
        return share


def data_sizes(data_dir: str | None) -> Sizes:
    if data_dir is None:
        return Sizes()
    from genre_models.data.store import build_features

    store = build_features(DataConfig(data_dir=data_dir)).store
    return Sizes(len(store.tracks), float(store.mfcc.shape[0]), f"{data_dir} ({len(store.tracks)} usable tracks)")


@dataclass
class Projection:
    points: list[dict] = field(default_factory=list)  # each point's label, kind and seconds
    stages: dict = field(default_factory=dict)  # stage -> seconds (all its points)


def expected_epochs(net: str, cap: int, early: bool) -> int:
    """The epochs a point is projected to run: its budget, or for an early-stopping net the
    study's stopping epoch (else ``DEFAULT_STOP``) plus its patience, at most its cap."""
    spec = get_net(net)
    if not early:
        return cap
    return min(cap, int(spec.study.get("stopped_epoch", DEFAULT_STOP)) + spec.patience)


def point_seconds(p: GridPoint, cfg: SweepConfig, sizes: Sizes, rates: dict) -> float:
    """One point's projected seconds from the measured ``rates``."""
    share = sizes.parts(p.split, p.folds)
    if p.kind == "gan":
        gan, g = get_grid(cfg.grid).gan, rates["gan"]
        clips = gan.per_genre * 10
        score = clips / rates["nets"]["net5"]["eval_samples_per_s"] if "net5" in rates["nets"] else 0.0
        return (gan.steps / g["steps_per_s"] + clips / g["clips_per_s_generated"]
                + clips * rates["preprocess"]["mfcc_seconds_per_segment"] + score + POINT_OVERHEAD_S)
    spec, r = get_net(p.net), rates["nets"][p.net]
    per = sizes.tracks if spec.input_kind == "image" else sizes.segments
    train = share["train"] * per + (get_grid(cfg.grid).gan.per_genre * 10 if spec.uses_gan else 0)
    epochs = expected_epochs(p.net, p.epochs or spec.epochs, spec.early_stopping)
    return (epochs * (train / r["train_samples_per_s"] + share["val"] * per / r["eval_samples_per_s"])
            + (share["test"] + share["val"]) * per / r["eval_samples_per_s"] + POINT_OVERHEAD_S)


def schedule(points: list[GridPoint], deps: dict, seconds: dict, jobs: int, shared: bool) -> float:
    """The makespan of running ``points`` in order on ``jobs`` slots, each starting once its
    dependencies are done. ``shared``: running points share one device (each at 1/k of its rate,
    k running), as on a CPU; else each keeps its own rate."""
    left = {p: seconds[p] for p in points}
    done, running, now = set(), [], 0.0
    waiting = list(points)
    while waiting or running:
        for p in [q for q in waiting if all(d in done for d in deps[q])]:
            if len(running) < jobs:
                running.append(p)
                waiting.remove(p)
        if not running:
            raise RuntimeError("schedule stalled")
        speed = 1.0 / len(running) if shared else 1.0
        first = min(running, key=lambda q: left[q])
        dt = left[first] / speed
        now += dt
        for q in running:
            left[q] -= dt * speed
        for q in [q for q in running if left[q] <= 1e-9]:
            running.remove(q)
            done.add(q)
    return now


def measure_all(cfg: SweepConfig, dev: torch.device, precision: str, seconds: float, data_dir: str | None) -> dict:
    """Every rate the grid's projection needs, and the device's peak, in this process."""
    spec = get_grid(cfg.grid)
    peak = matmul_peak(dev, precision)
    nets = {}
    for net in cfg.nets:
        batch = spec.fixed_batch_size if (spec.fixed_batch_size and not get_net(net).early_stopping) else get_net(net).batch_size
        nets[net] = measure_net(net, batch, spec.image_size, dev, precision, seconds, peak)
    rates = {"peak_gflop_s": round(peak, 1), "nets": nets, "preprocess": measure_preprocess(data_dir)}
    if any(get_net(n).uses_gan for n in cfg.nets):
        rates["gan"] = measure_gan(spec.gan, dev, seconds, peak)
    return rates


def project(cfg: SweepConfig, rates: dict, sizes: Sizes, jobs: int, shared: bool, cores: int) -> dict:
    """The grid's projected seconds, stage by stage, in sequence and on ``jobs`` slots."""
    points = build_grid(cfg)
    seconds = {p: point_seconds(p, cfg, sizes, rates) for p in points}
    stages: dict[str, float] = {}
    for p, s in seconds.items():
        key = "gan" if p.kind == "gan" else p.net
        stages[key] = stages.get(key, 0.0) + s
    pre = sizes.tracks * rates["preprocess"]["seconds_per_clip"] / max(1, cores)
    makespan = schedule(points, dependencies(points), seconds, jobs, shared)
    return {"points": len(points), "preprocess_s": round(pre, 1), "stage_seconds": {k: round(v, 1) for k, v in stages.items()},
            "sequential_s": round(pre + sum(seconds.values()), 1), "jobs": jobs, "makespan_s": round(pre + makespan, 1),
            "projected_minutes": round((pre + makespan) / 60, 1)}


def bench_study(grid: str = "study", nets: tuple[str, ...] | None = None, seeds: int = 3,
                splits: tuple[str, ...] = ("random", "track"), folds: int = 10, jobs: int = 1, device: str = "auto",
                precision: str = "fp32", seconds: float = 3.0, data_dir: str | None = None, logger=None) -> dict:
    """Measure, project, and (with ``logger``, a run logger) record the projection as a run."""
    dev = resolve_device(device)
    prepare_device(dev)
    precision, why = resolve_precision(precision, dev)
    cfg = SweepConfig(data_dir=data_dir or "-", grid=grid, **({"nets": nets} if nets else {}), seeds=seeds, splits=splits,
                      folds=folds, device=device, precision=precision)
    sizes = data_sizes(data_dir)
    with cpu_share():  # beside other genre-bench work, this process takes only its share of the cores
        rates = measure_all(cfg, dev, precision, seconds, data_dir)
    shared = dev.type != "cuda"
    from genre_models.util import usable_cores

    out = {"device": device_name(dev), "precision": precision, "precision_choice": why, "threads": torch.get_num_threads(),
           "grid": grid, "nets": list(cfg.nets), "seeds": seeds, "splits": list(cfg.splits), "data": sizes.source,
           "rates": rates, "packing": "shared device (1/k each)" if shared else "each point at its own rate",
           "projection": {f"jobs{j}": project(cfg, rates, sizes, j, shared, usable_cores())
                          for j in sorted({1, jobs})}}
    if logger is not None:
        _record(out, logger)
    return out


def _record(out: dict, logger) -> None:
    """The projection as a run (``stage=perf``): settings as parameters, minutes as metrics."""
    with logger.start(f"perf-study-{out['grid']}-{out['device'].split(' ')[0]}"):
        logger.set_tags({"stage": "perf", "perf": "study", "device": out["device"]})
        logger.log_params({k: (",".join(v) if isinstance(v, list) else v) for k, v in out.items()
                           if k in ("grid", "nets", "seeds", "splits", "precision", "precision_choice", "threads", "data")})
        for name, proj in out["projection"].items():
            logger.log_metrics({f"{name}_projected_minutes": proj["projected_minutes"],
                                f"{name}_sequential_minutes": round(proj["sequential_s"] / 60, 1)})
        logger.log_artifacts(lambda folder: (folder / "projection.json").write_text(json.dumps(out, indent=2)))
    out["run_id"] = logger.run_id

