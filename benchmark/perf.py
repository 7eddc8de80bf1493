"""``benchmark perf``: benchmarks. Every figure is a ratio of two things measured side by side in one process,
because these machines are noisy; absolute numbers are printed for context only."""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from genre_models.config import DataConfig, FeatureConfig, SplitConfig, WaveGanConfig
from genre_models.data.discovery import discover
from genre_models.data.extract import run_extraction
from genre_models.data.store import build_features, write_store
from genre_models.tracking.shipping import segment_audio_array
from genre_models.models.registry import InputShape, get_net, make_optimizer
from genre_models.training.loop import Part, fit, make_batches, part_bytes, split_parts, to_input
from genre_models.training.runtime import autocast, prepare_device, resident_fits, resolve_device


def naive_mfcc_loop(paths: list[str], fcfg: FeatureConfig) -> int:
    """The typical GTZAN script: librosa.load each file, split on silence, MFCC each segment."""
    import librosa

    n = 0
    for path in paths:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                y, _ = librosa.load(path, sr=fcfg.sample_rate)
        except Exception:  # the reference loop skips what it cannot read, as such scripts do
            continue
        kept = np.concatenate([y[s:e] for s, e in librosa.effects.split(y, top_db=fcfg.silence_top_db)] or [y[:0]])
        seg = fcfg.segment_samples
        for i in range(kept.size // seg):
            librosa.feature.mfcc(y=kept[i * seg:(i + 1) * seg], sr=fcfg.sample_rate, n_mfcc=fcfg.n_mfcc,
                                 n_fft=fcfg.n_fft, hop_length=fcfg.hop_length)
            n += 1
    return n


def collage_fingerprints(fingerprints: list[np.ndarray], n: int, seed: int = 0, blocks: int = 10) -> list[np.ndarray]:
    """``n`` distinct 30 s fingerprints from the ones at hand: each a collage of ``blocks`` 3 s
    stretches of random clips at random places, so a repeat search on them does a full
    dataset's work (GTZAN's 1000 clips) with the statistics of real ones."""
    rng = np.random.default_rng(seed)
    usable = [f for f in fingerprints if f is not None and len(f) > 1]
    block = min(65, min(len(f) for f in usable) - 1)  # 65 frames of 46 ms: 3 s
    out = []
    for _ in range(n):
        parts = []
        for _ in range(blocks):
            src = usable[int(rng.integers(len(usable)))]
            at = int(rng.integers(0, len(src) - block + 1))
            parts.append(src[at:at + block])
        out.append(np.concatenate(parts))
    return out


def bench_repeats(results: list, tracks: list, fcfg: FeatureConfig, n: int = 1000) -> dict:
    """The repeat search's cost: all pairs of ``n`` clips (collages of the real fingerprints), and
    the fingerprint's share of a clip's extraction, timed side by side on the same files."""
    from genre_models.data.audio import decode_clip
    from genre_models.data.extract import extract_track
    from genre_models.data.features import repeat_fingerprint
    from genre_models.data.repeats import find_repeats

    fps = collage_fingerprints([r.fingerprint for r in results], n)
    t0 = time.perf_counter()
    found = find_repeats(fps, [str(i) for i in range(n)])
    t_pairs = time.perf_counter() - t0
    sample = [t for t, r in zip(tracks, results) if r.status == "ok"][:5]
    t_fp = t_extract = 0.0
    for t in sample:
        y = decode_clip(t.path, fcfg).y
        t0 = time.perf_counter()
        repeat_fingerprint(y, fcfg.sample_rate)
        t_fp += time.perf_counter() - t0
        t0 = time.perf_counter()
        extract_track(t, fcfg)
        t_extract += time.perf_counter() - t0
    return {"repeats_clips": n, "repeats_all_pairs_s": round(t_pairs, 2),
            "repeats_groups_in_collages": len(found.groups),
            "fingerprint_ms_per_clip": round(1000 * t_fp / max(len(sample), 1), 1),
            "fingerprint_share_of_extraction": round(t_fp / t_extract, 3) if t_extract else None}


def bench_preprocess(data_dir: str, limit: int = 0, jobs: int = 0, repeat_clips: int = 1000) -> dict:
    fcfg = FeatureConfig()
    disc = discover(data_dir)
    tracks = disc.tracks[:limit] if limit else disc.tracks
    # Warm both paths (imports, filter banks, numba) on one file so neither pays start-up alone.
    run_extraction(tracks[:1], fcfg, 1)
    naive_mfcc_loop([tracks[0].path], fcfg)

    t0 = time.perf_counter()
    results = run_extraction(tracks, fcfg, jobs)
    with tempfile.TemporaryDirectory() as tmp:
        write_store(Path(tmp) / "store", disc, "bench", fcfg, results)
    t_pipe = time.perf_counter() - t0

    t0 = time.perf_counter()
    n_naive = naive_mfcc_loop([t.path for t in tracks], fcfg)
    t_naive = time.perf_counter() - t0

    audio_s = sum(r.duration_s for r in results)
    n_segments = sum(r.mfcc.shape[0] for r in results if r.mfcc is not None)
    return {
        "files": len(tracks),
        "audio_seconds": round(audio_s, 1),
        "segments": n_segments,
        "naive_segments": n_naive,
        "jobs": jobs or os.cpu_count(),
        "pipeline_s": round(t_pipe, 3),
        "naive_s": round(t_naive, 3),
        "speedup_vs_naive": round(t_naive / t_pipe, 2),
        "x_realtime": round(audio_s / t_pipe, 1),
        "est_1000_clips_s": round(t_pipe * 1000 / max(len(tracks), 1), 1),
        **bench_repeats(results, tracks, fcfg, repeat_clips),
        "note": "pipeline = decode + silence trim + MFCC + image + repeat fingerprint + cache write (with the repeat "
                "search), all processes; naive = librosa.load + split + librosa.feature.mfcc per segment, one process, "
                "MFCC only; repeats_all_pairs_s = every pair of repeats_clips 30 s clips (collages of these files' "
                "fingerprints) compared, one process",
    }


def _flops_per_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """FLOPs of one training step (forward and backward). PyTorch's FlopCounterMode does not
    count LSTM kernels, so each LSTM layer is added by hand: 2 * 4H(I + H) per sample and time
    step forward, and twice that backward (the gates' matrix products; the elementwise work is left out)."""
    from torch.utils.flop_counter import FlopCounterMode

    lstm = []

    def note(mod, inp, out):  # (B, T, I) batch-first input
        b, t = inp[0].shape[0], inp[0].shape[1]
        lstm.append(3 * 2 * 4 * mod.hidden_size * (mod.input_size + mod.hidden_size) * b * t * mod.num_layers)

    hooks = [m.register_forward_hook(note) for m in model.modules() if isinstance(m, torch.nn.LSTM)]
    try:
        with FlopCounterMode(display=False) as counter:
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
    finally:
        for h in hooks:
            h.remove()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() + sum(lstm)


def _train_data(spec, data_dir: str | None, n: int, image_size: int, shape) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` samples for a timing loop: the data's training part (repeated), or random tensors."""
    g = torch.Generator().manual_seed(0)
    if data_dir is not None:
        store = build_features(DataConfig(data_dir=data_dir, features=FeatureConfig(image_size=image_size))).store
        audio = segment_audio_array(store) if spec.input_kind == "raw" else None
        part = split_parts(store, spec.input_kind, SplitConfig(), audio)["train"]
        reps = -(-n // len(part))
        return part.x.repeat((reps,) + (1,) * (part.x.dim() - 1))[:n], part.y.repeat(reps)[:n]
    if spec.input_kind == "image":
        return (torch.randint(0, 256, (n, 3, image_size, image_size), dtype=torch.uint8, generator=g),
                torch.randint(0, 10, (n,), generator=g))
    if spec.input_kind == "raw":  # int16, as the store keeps segment audio
        return (torch.randint(-2**15, 2**15, (n, shape.segment_samples), dtype=torch.int16, generator=g),
                torch.randint(0, 10, (n,), generator=g))
    return torch.randn(n, shape.frames, shape.n_mfcc, generator=g), torch.randint(0, 10, (n,), generator=g)


def _bare_loop(model, opt, x, y, batches: int, batch_size: int, dev, precision: str, on_batch=None) -> float:
    """Slice, forward, backward, step: the floor any training loop can reach. Seconds.
    ``on_batch()``, if given, runs before each batch (the contention workers' thread refresh)."""
    model.train()
    t0 = time.perf_counter()
    for i in range(batches):
        if on_batch is not None:
            on_batch()
        xb = to_input(x[i * batch_size:(i + 1) * batch_size]).to(dev)
        yb = y[i * batch_size:(i + 1) * batch_size].to(dev)
        with autocast(dev, precision):
            out = model(xb)
        loss = torch.nn.functional.cross_entropy(out.float(), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    float(loss.detach())  # wait for the last step
    return time.perf_counter() - t0


def _suite_loop(model, opt, train_part, batch_size: int, dev, precision: str, tmp: str, resident: bool) -> float:
    """The suite's ``fit`` for one epoch, with its batch source (resident on the GPU when the
    part fits, as ``train`` does) and MLflow logging. Seconds."""
    from genre_models.tracking.logger import MlflowLogger
    from genre_models.tracking.setup import setup_tracking

    empty = Part(train_part.x[:0], train_part.y[:0], np.arange(0))
    src = make_batches({"train": train_part, "val": empty}, batch_size, 0, 0, dev, resident)
    setup_tracking(f"sqlite:///{tmp}/perf.db", "perf")
    logger = MlflowLogger()
    with logger.start("perf"):
        t0 = time.perf_counter()
        fit(model, opt, src["train"], src["val"], epochs=1, device=dev, precision=precision, logger=logger)
        return time.perf_counter() - t0


def matmul_peak(dev: torch.device, precision: str, size: int = 0, seconds: float = 1.0) -> float:
    """This device's matrix-product GFLOP/s at ``precision``, measured now (the best of a few
    seconds of square products): the ceiling a training step's GFLOP/s is read against."""
    size = size or (8192 if dev.type == "cuda" else 1024)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a = torch.randn(size, size, device=dev).to(dtype)
    b = torch.randn(size, size, device=dev).to(dtype)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    (a @ b).sum().item()  # warm-up
    best, t_end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        sync()
        t0 = time.perf_counter()
        for _ in range(3):
            c = a @ b
        sync()
        float(c[0, 0])
        best = max(best, 3 * 2 * size**3 / (time.perf_counter() - t0) / 1e9)
    return best


def bench_train(net: str, data_dir: str | None = None, batches: int = 20, batch_size: int = 32, precision: str = "fp32",
                head: str = "flatten", image_size: int = 180, device: str = "auto", repeats: int = 2) -> dict:
    """Samples/s of ``fit`` (batch source, metric accumulation, MLflow logging) against a bare
    loop (slice, forward, backward, step) on the same model, batch and data, and the bare loop's
    GFLOP/s as a share of this device's measured matrix-product peak. On CUDA both keep the data
    on the GPU when it fits, as ``train`` does. No validation samples: the figure compares
    training throughput. LSTM FLOPs are counted by hand (``_flops_per_step``)."""
    spec = get_net(net)
    dev = resolve_device(device)
    prepare_device(dev)
    shape = InputShape(image_size=image_size)
    n = batches * batch_size
    x, y = _train_data(spec, data_dir, n, image_size, shape)
    train_part = Part(x, y, np.arange(n))
    resident = resident_fits(part_bytes({"train": train_part}), dev)
    xd, yd = (x.to(dev), y.to(dev)) if resident else (x, y)

    def fresh():
        torch.manual_seed(0)
        model = spec.build(shape, head).to(dev)
        return model, make_optimizer(spec, model.parameters(), spec.lr)

    model, _ = fresh()
    with autocast(dev, precision):
        flops = _flops_per_step(model, to_input(x[:batch_size]).to(dev), y[:batch_size].to(dev))
    del model
    with tempfile.TemporaryDirectory() as tmp:
        _suite_loop(*fresh(), train_part, batch_size, dev, precision, tmp, resident)  # warm-up: store, kernels
        t_bare, t_suite = [], []
        for _ in range(repeats):  # interleaved, best of each
            t_bare.append(_bare_loop(*fresh(), xd, yd, batches, batch_size, dev, precision))
            t_suite.append(_suite_loop(*fresh(), train_part, batch_size, dev, precision, tmp, resident))
    tb, ts = min(t_bare), min(t_suite)
    peak = matmul_peak(dev, precision)
    achieved = flops * batches / tb / 1e9
    return {
        "net": net, "device": _device_name(dev), "precision": precision, "head": head, "image_size": image_size,
        "batch_size": batch_size, "batches": batches, "threads": torch.get_num_threads(), "resident_data": resident,
        "bare_samples_per_s": round(n / tb, 2),
        "suite_samples_per_s": round(n / ts, 2),
        "suite_over_bare": round(tb / ts, 3),
        "suite_overhead_pct": round(100 * (ts - tb) / tb, 2),
        "gflop_per_step": round(flops / 1e9, 2),
        "achieved_gflop_s_bare": round(achieved, 1),
        "matmul_peak_gflop_s": round(peak, 1),
        "share_of_peak": round(achieved / peak, 4) if peak else None,
        "est_epoch_s_700": round(700 / (n / ts), 2),
    }


def _device_name(dev: torch.device) -> str:
    return f"cuda ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else str(dev)


def _paper_probe(timed, dev, probe_batch: int, study_steps: int, study_clips: int) -> dict:
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
    from genre_models.training.gan_loop import build_units, gan_step

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
        rows = [gan_step(unit, draw, cfg, dev) for _ in range(n)]  # .item() in each step syncs
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
        out["paper_model"] = _paper_probe(timed, dev, probe_batch, study_steps, study_clips)
    return out


def bench_executors(data_dir: str, nets: tuple[str, ...] = ("net1", "net5"), seeds: int = 3, max_epochs: int | None = 2,
                    jobs: int = 2, ray_address: str = "", ray_cpus: int = 0, repeats: int = 2, grid: str = "demo",
                    splits: tuple[str, ...] = ("track",), ray: bool = True) -> dict:
    """One sweep (by default a tiny demo-grid one) run three ways, one after another in this process: local
    in-process, local with ``jobs`` worker processes, and a Ray task per point. All three log to
    one local ``mlflow server`` (so the store is not what differs), each into a fresh experiment,
    from a feature cache filled beforehand. Ray runs with shipped data (its default): a features
    run is published and every point downloads it into the Ray node's own cache, so that
    overhead is in its time. Without ``ray_address`` a head is started on 127.0.0.1 first; its
    start-up is reported apart, not in the sweep's time. The three ways take turns ``repeats``
    times; each reports its fastest sweep. ``ray=False`` leaves Ray out (local 1 and ``jobs``).
    """
    import uuid

    from genre_models.sweep.driver import run_sweep
    from genre_models.sweep.executors import LocalRayHead
    from genre_models.sweep.grid import SweepConfig, get_grid
    from genre_models.tracking.server import LocalServer

    cpus = ray_cpus or os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="gb-perf-") as tmp, \
            LocalServer(f"sqlite:///{tmp}/perf.db", Path(tmp) / "server") as server:
        cache = str(Path(tmp) / "driver-cache")
        build_features(DataConfig(data_dir=data_dir, features=FeatureConfig(image_size=get_grid(grid).image_size),
                                  cache_dir=cache))
        head = (LocalRayHead(cpus, {"GENRE_BENCH_CACHE": str(Path(tmp) / "node-cache")}).__enter__()
                if ray and not ray_address else None)
        try:
            base = dict(grid=grid, nets=tuple(nets), seeds=seeds, splits=tuple(splits), max_epochs=max_epochs,
                        cache_dir=cache, register=False)  # the executors' speed, not the registry's
            ways = {"local_jobs1": SweepConfig(data_dir=data_dir, jobs=1, **base),
                    f"local_jobs{jobs}": SweepConfig(data_dir=data_dir, jobs=jobs, **base)}
            if ray:
                ways["ray"] = SweepConfig(data_dir=data_dir, executor="ray", ray_address=ray_address or head.address,
                                          **base)
            seconds, points = {name: [] for name in ways}, 0
            for _ in range(repeats):
                for name, cfg in ways.items():
                    t0 = time.perf_counter()
                    res = run_sweep(cfg, server.uri, f"perf-{name}-{uuid.uuid4().hex[:8]}")
                    seconds[name].append(round(time.perf_counter() - t0, 2))
                    if res.failed or res.finished != res.points:
                        raise RuntimeError(f"{name}: {res.failed} of {res.points} points failed")
                    points = res.points
        finally:
            if head is not None:
                head.__exit__(None, None, None)
    best = {name: min(ts) for name, ts in seconds.items()}
    out = {"points": points, "grid": grid, "nets": list(nets), "seeds": seeds, "cpus": os.cpu_count(),
           "seconds": seconds, f"local_jobs{jobs}_speedup": round(best["local_jobs1"] / best[f"local_jobs{jobs}"], 3)}
    if ray:
        out.update({f"ray_over_local_jobs{jobs}": round(best["ray"] / best[f"local_jobs{jobs}"], 3),
                    "ray_over_local_jobs1": round(best["ray"] / best["local_jobs1"], 3),
                    "ray_head_start_s": round(head.seconds, 2) if head is not None else None})
    return out


# --------------------------------------------------------------------------- contention

_WORKER = """
from benchmark.perf import contention_worker
contention_worker({net!r}, {batches}, {batch_size}, {image_size})
"""


def contention_worker(net: str, batches: int, batch_size: int, image_size: int) -> None:
    """One training process of ``bench_contention``: build, warm up, print ``ready``, wait for a
    line on stdin, train ``batches`` bare-loop steps inside the thread budget, print its times,
    and stay listed among the processes sharing the cores until told to leave (a process that
    finished early must not let the others read a budget of their own)."""
    import json
    import sys

    from genre_models.training.runtime import cpu_share, refresh_threads

    spec, shape = get_net(net), InputShape(image_size=image_size)
    x, y = _train_data(spec, None, batches * batch_size, image_size, shape)
    torch.manual_seed(0)
    model = spec.build(shape, "flatten")
    opt = make_optimizer(spec, model.parameters(), spec.lr)
    dev = torch.device("cpu")
    with cpu_share():
        _bare_loop(model, opt, x, y, 2, batch_size, dev, "fp32")  # warm-up
        print("ready", flush=True)
        sys.stdin.readline()
        refresh_threads(force=True)  # every process of the round is listed by now
        threads = torch.get_num_threads()
        t0 = time.monotonic()  # system-wide: comparable across the round's processes
        _bare_loop(model, opt, x, y, batches, batch_size, dev, "fp32", on_batch=refresh_threads)
        t1 = time.monotonic()
        print(json.dumps({"start": t0, "end": t1, "samples": batches * batch_size, "threads": threads}), flush=True)
        sys.stdin.readline()


def _round(n: int, managed: bool, net: str, batches: int, batch_size: int, image_size: int) -> dict:
    """``n`` training processes started together: the samples/s of the whole round."""
    import json
    import subprocess
    import sys

    from genre_models.training.runtime import usable_cores

    env = dict(os.environ)
    if managed:  # as genre-bench runs now: each process takes its share of the cores
        env.pop("GENRE_BENCH_THREADS", None)
    else:  # as before the budget: every process on every core
        env["GENRE_BENCH_THREADS"] = str(usable_cores())
    code = _WORKER.format(net=net, batches=batches, batch_size=batch_size, image_size=image_size)
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True) for _ in range(n)]
    for p in procs:
        if p.stdout.readline().strip() != "ready":
            raise RuntimeError(f"a contention worker failed to start (exit {p.wait()})")
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    rows = [json.loads(p.stdout.readline()) for p in procs]
    for p in procs:  # every process has finished: now they may leave
        p.communicate("exit\n")
    seconds = max(r["end"] for r in rows) - min(r["start"] for r in rows)
    return {"samples_per_s": round(sum(r["samples"] for r in rows) / seconds, 1),
            "threads": [r["threads"] for r in rows]}


def bench_contention(net: str = "net5", batches: int = 40, batch_size: int = 32, image_size: int = 180,
                     repeats: int = 2) -> dict:
    """The same training work in one process alone, then in two processes at once (each doing
    the same work), with the thread budget and, side by side, without it (every process on every
    core: genre-bench before the budget). ``OMP_WAIT_POLICY`` and the like pass through to both. ``pair_over_alone``: the
    pair's samples/s over the lone process's; 1.0 means sharing costs nothing. Rounds take
    turns ``repeats`` times; each reports its best."""
    from genre_models.training.runtime import usable_cores

    out: dict = {"net": net, "batches": batches, "batch_size": batch_size, "cores": usable_cores()}
    best: dict = {}
    for _ in range(repeats):
        for managed in (True, False):
            for n in (1, 2):
                res = _round(n, managed, net, batches, batch_size, image_size)
                key = ("managed" if managed else "unmanaged", n)
                if key not in best or res["samples_per_s"] > best[key]["samples_per_s"]:
                    best[key] = res
    for mode in ("managed", "unmanaged"):
        alone, pair = best[(mode, 1)], best[(mode, 2)]
        out[mode] = {"alone_samples_per_s": alone["samples_per_s"], "pair_samples_per_s": pair["samples_per_s"],
                     "pair_over_alone": round(pair["samples_per_s"] / alone["samples_per_s"], 3),
                     "threads_alone": alone["threads"], "threads_pair": pair["threads"]}
    return out


def bench_startup(repeats: int = 5) -> dict:
    """Seconds for ``benchmark --help`` and for an argument error, in fresh processes, beside a
    bare ``python -c pass`` (the interpreter's own start) and ``import torch``; each the median
    of ``repeats``, taking turns."""
    import statistics
    import subprocess
    import sys

    cases = {"python_bare": [sys.executable, "-c", "pass"],
             "benchmark_help": [sys.executable, "-m", "benchmark", "--help"],
             "benchmark_bad_option": [sys.executable, "-m", "benchmark", "train", "--net", "no-such-net"],
             "import_torch": [sys.executable, "-c", "import torch"]}
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(repeats):
        for name, cmd in cases.items():
            t0 = time.perf_counter()
            subprocess.run(cmd, capture_output=True, check=False)
            times[name].append(time.perf_counter() - t0)
    med = {k: round(statistics.median(v), 3) for k, v in times.items()}
    return {"median_s": med, "help_over_import_torch": round(med["benchmark_help"] / med["import_torch"], 3)}
