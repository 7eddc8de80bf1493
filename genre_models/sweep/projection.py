"""What a sweep will cost, before it starts: every point's seconds projected from rates measured
now, on the device the sweep will use, then scheduled on its ``--jobs`` slots.

**Measured** (``measure``): each net's training and evaluation samples/s at its grid batch and
image size, the WaveGAN's steps/s and clips/s, a classical baseline's fit, and preprocessing
per clip. A short probe (``probe``, what ``benchmark sweep`` runs before its first point and
``--dry-run`` runs alone) times each for a fraction of a second, and on a CPU at a small batch
scaled linearly to the grid's (a saturated CPU's cost grows with the batch); ``benchmark perf
study`` times each longer, at full size, and adds their GFLOP/s.

**Projected** (``project``): each point from the data's size (the sweep's own feature store, or
GTZAN's 999 usable clips of about 29.5 segments), the grid's epochs (an early-stopping net for
the study's stopping epoch plus its patience, or ``DEFAULT_STOP`` where the study gives none,
at most its cap), the split's part sizes, and ``POINT_OVERHEAD_S`` of bookkeeping; then the
points are scheduled as the sweep does. Caveat, the packing model: on a CPU the points running
at once share its cores (each at 1/k of its rate), on a GPU each keeps its own rate.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from genre_models.config import SPLIT_SPECS, FeatureConfig, WaveGanConfig
from genre_models.models.registry import InputShape, get_net
from genre_models.sweep.grid import GridPoint, SweepConfig, build_grid, dependencies, get_grid

#: Seconds of bookkeeping per point (run records, the weights, evaluation artifacts, a model where
#: logged, the sweep's own work between points): about 1 s measured on a 2-core EPYC (the demo's
#: main job: 0.6 s in a run, 0.4 s between runs), with room for a slower disk or a served store.
#: The store's runs replace it with their own (``sweep.history``).
POINT_OVERHEAD_S = 1.5
#: A baseline point's bookkeeping: no epochs, no net to log; measured 0.5-0.6 s a point beside its
#: fit on the real sample (5-fold svm and logreg, 2026-12-07).
CLASSICAL_OVERHEAD_S = 0.6
#: Epochs an early-stopping net is projected to run (patience included) where the store holds
#: none of its runs on this data: the median of the stops on record (docs/performance.md: the
#: study's 27 and 18; 11, 15 and 19 on the real sample's k-fold; 11-27 on 150 real tracks).
PRIOR_STOP = 18
#: GTZAN's size where the data is not at hand: usable clips and 1 s segments per clip.
GTZAN_CLIPS, GTZAN_SEGMENTS_PER_CLIP = 999, 29.5
#: Above this a sweep names what would make it feasible.
FEASIBLE_HOURS = 24.0


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


def measure_net(net: str, batch: int, image_size: int, dev, precision: str, seconds: float) -> dict:
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

    spec, shape = get_net(net), InputShape(image_size=image_size)
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


#: A classical baseline is timed on this many samples and scaled by ``CLASSICAL_SCALING``'s power
#: of the samples it will fit on. The SVM's power was fitted on real statistics (the GTZAN sample's
#: 1,498 segments, fits of 200 to 1,400: 1.38 to 1.51, 2026-12-07); the quadratic rule it replaced
#: projected svm 3x slow on 150 real tracks. The linear probe's fit is about linear where lbfgs
#: converges; on a part it separates exactly it runs to its iteration cap (30x), which no power
#: predicts (docs/performance.md).
CLASSICAL_PROBE, CLASSICAL_SCALING = 400, {"svm": 1.5, "logreg": 1.0}


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


@dataclass
class Sizes:
    """The data a projection is for: usable tracks and 1 s segments."""

    tracks: int = GTZAN_CLIPS
    segments: float = GTZAN_CLIPS * GTZAN_SEGMENTS_PER_CLIP
    source: str = "GTZAN (999 usable clips, about 29.5 segments each)"
    extracted: bool = False  # the features are in the cache already: no preprocessing to project

    @staticmethod
    def parts(split: str, folds: int) -> dict[str, float]:
        """Each part's share of the samples under ``split``."""
        if SPLIT_SPECS[split].folded:
            return {"train": (folds - 2) / folds, "val": 1 / folds, "test": 1 / folds}
        if split == "filtered":
            return {"train": 443 / 1000, "val": 197 / 1000, "test": 290 / 1000}
        return {"train": 0.7, "val": 0.2, "test": 0.1}


def expected_epochs(net: str, cap: int, early: bool, learned: dict | None = None) -> tuple[float, str]:
    """The epochs a point is projected to run, and where that figure came from: its budget; or
    for an early-stopping net the mean stopping epoch of its finished runs on this data
    (``learned``, from the store), else ``PRIOR_STOP``; the cap (``budget``) where that is below."""
    stop, source = ((learned["stop_epoch"], "store") if learned and learned.get("stop_runs")
                    else (float(PRIOR_STOP), "prior"))
    if not early or cap < stop:
        return float(cap), "budget"  # an early-stopping net held at a cap it would pass: the cap
    return stop, source


def _gan_seconds(cfg: SweepConfig, rates: dict) -> float:
    gan, g = get_grid(cfg.grid).gan, rates["gan"]
    clips = gan.per_genre * 10
    score = clips / rates["nets"]["net5"]["eval_samples_per_s"] if "net5" in rates["nets"] else 0.0
    return (gan.steps / g["steps_per_s"] + clips / g["clips_per_s_generated"]
            + clips * rates["preprocess"]["mfcc_seconds_per_segment"] + score + POINT_OVERHEAD_S)


def point_seconds(p: GridPoint, cfg: SweepConfig, sizes: Sizes, rates: dict) -> float:
    """One point's projected seconds from the measured ``rates`` and, where the store taught
    them, ``rates["learned"]`` (``sweep.history``): its seconds per sample-epoch, its fixed
    seconds and its stopping epoch."""
    share = sizes.parts(p.split, p.folds)
    if p.net in rates.get("unmeasured", {}):
        return POINT_OVERHEAD_S  # it could not even be built here: it will fail fast
    if p.kind == "gan":
        return _gan_seconds(cfg, rates)
    spec, learned = get_net(p.net), _learned(p.net, rates)
    per = sizes.tracks if spec.input_kind == "image" else sizes.segments
    if spec.family == "classical":
        return _classical_seconds(p.net, share["train"] * per, rates["classical"][p.net], learned)
    r = rates["nets"][p.net]
    train = share["train"] * per + (get_grid(cfg.grid).gan.per_genre * 10 if spec.uses_gan else 0)
    val, test = share["val"] * per, share["test"] * per
    epochs, _ = expected_epochs(p.net, p.epochs or spec.epochs, spec.early_stopping, learned)
    if learned.get("timed_runs"):  # the store's own seconds, scaled to this point's parts
        weight = r["train_samples_per_s"] / r["eval_samples_per_s"]  # an evaluated sample's cost in trained ones
        return epochs * learned["seconds_per_sample_epoch"] * (train + weight * val) + learned["fixed_s"]
    return (epochs * (train / r["train_samples_per_s"] + val / r["eval_samples_per_s"])
            + (test + val) / r["eval_samples_per_s"] + POINT_OVERHEAD_S)


def _classical_seconds(net: str, samples: float, probed: dict, learned: dict) -> float:
    """A baseline's fit on ``samples`` (at most its cap), scaled by ``CLASSICAL_SCALING``'s power
    from the store's fits where it has them, else from the probe's."""
    from genre_models.models.classical import MAX_SAMPLES

    n, power = min(samples, MAX_SAMPLES[net]["train"] or math.inf), CLASSICAL_SCALING[net]
    if learned.get("timed_runs"):
        return learned["fit_seconds_per_sample_power"] * n ** power + learned["fixed_s"]
    return probed["fit_seconds"] * (n / probed["probe_samples"]) ** power + CLASSICAL_OVERHEAD_S


def schedule(points: list[GridPoint], deps: dict, seconds: dict, jobs: int, shared: bool) -> float:
    """The makespan of running ``points`` in order on ``jobs`` slots, each starting once its
    dependencies are done. ``shared``: running points share one device (each at 1/k of its rate,
    k running), as on a CPU; else each keeps its own rate. Event by event with a queue of the
    points whose dependencies are done, so a plan of 28,000 points takes a moment, not hours."""
    import heapq

    if jobs == 1:  # one slot: never idle while a point is left (the grid's dependencies have no cycle)
        return float(sum(seconds[p] for p in points))
    order = {p: i for i, p in enumerate(points)}
    left = {p: seconds[p] for p in points}
    pending = {p: sum(d in order for d in deps[p]) for p in points}
    after: dict = {}
    for p in points:
        for d in deps[p]:
            if d in order:
                after.setdefault(d, []).append(p)
    ready = [(order[p], p) for p in points if not pending[p]]
    heapq.heapify(ready)
    running, now, done = [], 0.0, 0
    while done < len(points):
        while ready and len(running) < jobs:
            running.append(heapq.heappop(ready)[1])
        if not running:
            raise RuntimeError("schedule stalled")
        speed = 1.0 / len(running) if shared else 1.0
        dt = min(left[q] for q in running) / speed
        now += dt
        for q in running:
            left[q] -= dt * speed
        for q in [q for q in running if left[q] <= 1e-9]:
            running.remove(q)
            done += 1
            for r in after.get(q, []):
                pending[r] -= 1
                if not pending[r]:
                    heapq.heappush(ready, (order[r], r))
    return now


@dataclass
class Projection:
    """A sweep's projected cost: per point, per stage, and its wall time under ``jobs``."""

    points: dict  # GridPoint -> seconds
    stages: dict  # stage -> seconds (all its points)
    preprocess_s: float
    makespan_s: float  # preprocessing, then the points on ``jobs`` slots
    jobs: int
    rates: dict = field(default_factory=dict)

    @property
    def hours(self) -> float:
        return self.makespan_s / 3600

    def as_dict(self) -> dict:
        return {"points": len(self.points), "preprocess_s": round(self.preprocess_s, 1),
                "stage_seconds": {k: round(v, 1) for k, v in self.stages.items()}, "jobs": self.jobs,
                "sequential_s": round(self.preprocess_s + sum(self.points.values()), 1),
                "makespan_s": round(self.makespan_s, 1), "projected_minutes": round(self.makespan_s / 60, 1)}


def project(cfg: SweepConfig, rates: dict, sizes: Sizes, jobs: int, shared: bool, cores: int,
            points: list[GridPoint] | None = None) -> Projection:
    """The grid's (or ``points``') projected seconds, stage by stage, and on ``jobs`` slots."""
    points = build_grid(cfg) if points is None else points
    by_shape: dict[GridPoint, float] = {}  # a point's seconds depend on neither its seed nor its fold
    seconds = {}
    for p in points:
        shape = replace(p, seed=0, fold=0)
        if shape not in by_shape:
            by_shape[shape] = point_seconds(shape, cfg, sizes, rates)
        seconds[p] = by_shape[shape]
    stages: dict[str, float] = {}
    for p, s in seconds.items():
        key = "gan" if p.kind == "gan" else p.net
        stages[key] = stages.get(key, 0.0) + s
    pre = 0.0 if sizes.extracted else sizes.tracks * rates["preprocess"]["seconds_per_clip"] / max(1, cores)
    deps = dependencies(points) if jobs > 1 else {}  # one slot runs them back to back, whatever the order
    makespan = schedule(points, deps, seconds, jobs, shared) if points else 0.0
    return Projection(seconds, stages, pre, pre + makespan, jobs, rates)



# --------------------------------------------------------------------------- the probe and its words

#: Seconds each rate is timed for in the sweep's own probe (``benchmark perf study`` times longer).
PROBE_SECONDS = 0.2


def grid_batch(cfg: SweepConfig, net: str) -> int:
    spec = get_net(net)
    fixed = get_grid(cfg.grid).fixed_batch_size
    return fixed if fixed and not spec.early_stopping and spec.family == "torch" else spec.batch_size


def probe(cfg: SweepConfig, points: list[GridPoint], dev, precision: str, seconds: float = PROBE_SECONDS,
          data_dir: str | None = None, preprocess: bool = False, stats: tuple | None = None) -> dict:
    """Every rate ``points`` need, timed briefly on ``dev``: what ``project`` takes. ``stats``:
    the dataset's own statistics (x, labels, tracks), for the baselines' fits."""
    grid = get_grid(cfg.grid)
    rates: dict = {"nets": {}, "classical": {}, "unmeasured": {},
                   "preprocess": measure_preprocess(data_dir) if preprocess else {"mfcc_seconds_per_segment": measure_mfcc()}}
    timed: dict = {}
    for net in dict.fromkeys(p.net for p in points if p.kind == "train"):
        try:
            if get_net(net).family == "classical":
                rates["classical"][net] = measure_classical(net, stats)
                continue
            same = _architecture(net, grid.image_size, grid_batch(cfg, net))  # net6 trains net5's net: timed once
            if same not in timed:
                timed[same] = measure_net(net, grid_batch(cfg, net), grid.image_size, dev, precision, seconds)
            rates["nets"][net] = timed[same]
        except Exception as exc:  # its points will fail and be recorded as such; the projection goes on
            rates["unmeasured"][net] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    if any(p.kind == "gan" for p in points):
        try:
            rates["gan"] = measure_gan(grid.gan, dev, seconds)
        except Exception as exc:  # as for a net: its points will say what is wrong
            rates["unmeasured"]["gan"] = f"{type(exc).__name__}: {str(exc).strip()[:200]}"
    return rates


def _architecture(net: str, image_size: int, batch: int) -> tuple:
    """What a net's step costs depend on: its module's class and size (built on the meta device),
    its input kind and batch. Two nets that agree (net5 and net6, net3 and net4) are timed once."""
    import torch

    spec = get_net(net)
    with torch.device("meta"):
        model = spec.build(InputShape(image_size=image_size), "flatten")
    return type(model).__name__, sum(p.numel() for p in model.parameters()), spec.input_kind, batch


def rate_words(stage: str, rates: dict) -> str:
    """A stage's seconds, in words: the rate the probe measured, or the store's runs it used."""
    if stage == "preprocess":
        return f"probe: {rates['preprocess'].get('seconds_per_clip', math.nan):.2f} s a clip"
    if stage == "gan":
        g = rates["gan"]
        scaled = f", timed at batch {g['probe_batch']}" if g["scaled_from_probe"] else ""
        return f"probe: {g['steps_per_s']:.3g} steps/s (d {g['d']}, batch {g['batch']}{scaled})"
    if stage in rates.get("unmeasured", {}):
        return f"not measured ({rates['unmeasured'][stage]})"
    learned = _learned(stage, rates)
    if learned.get("timed_runs"):
        return f"store: {learned['timed_runs']} finished run{'s' if learned['timed_runs'] > 1 else ''} here"
    if stage in rates["classical"]:
        c = rates["classical"][stage]
        return f"probe: {c['fit_seconds']:.2f} s a fit of {c['probe_samples']} samples"
    n = rates["nets"][stage]
    return f"probe: {n['train_samples_per_s']:.4g} samples/s training (batch {n['batch']})"


def epoch_words(stage: str, cfg_epochs: set, rates: dict) -> str:
    """A stage's epochs, in words: its budget, the store's stopping epochs, or the prior."""
    if stage in ("preprocess", "gan") or stage in rates.get("unmeasured", {}):
        return "-"
    spec = get_net(stage)
    if spec.family == "classical":
        return "one fit"
    learned = _learned(stage, rates)
    cap = max(cfg_epochs)
    epochs, source = expected_epochs(stage, cap, spec.early_stopping, learned)
    if source == "budget":
        return f"budget: {'/'.join(str(e) for e in sorted(cfg_epochs))}"
    if source == "store":
        return f"store: stops at {epochs:.3g} ({learned['stop_runs']} run{'s' if learned['stop_runs'] > 1 else ''})"
    return f"prior: stops at {epochs:.3g}"


def sources(proj: "Projection") -> dict[str, str]:
    """Where each stage's figures came from: its seconds' (``probe`` or ``store``; ``not
    measured`` where the probe could not build it), then for an early-stopping net its epochs'
    where the store or the prior set them (``store`` or ``prior``; a cap below both is its budget)."""
    out = {}
    for stage, epochs in _stage_epochs(proj).items():
        if stage in proj.rates.get("unmeasured", {}):
            out[stage] = "not measured"
            continue
        learned = _learned(stage, proj.rates)
        out[stage] = "store" if learned.get("timed_runs") else "probe"
        if stage != "gan" and get_net(stage).early_stopping:
            _, source = expected_epochs(stage, max(epochs), True, learned)
            out[stage] += f", epochs {source}" if source != "budget" else ""
    return out


def _learned(stage: str, rates: dict) -> dict:
    """What the store taught of ``stage`` (``sweep.history.learn``); empty where nothing."""
    return rates.get("learned", {}).get(stage, {})


def _stage_epochs(proj: "Projection") -> dict[str, set]:
    """Each stage's epoch budgets among the points (the GAN's: none)."""
    out: dict[str, set] = {}
    for p in proj.points:
        if p.kind == "gan":
            out.setdefault("gan", set()).add(0)
        else:
            out.setdefault(p.net, set()).add(p.epochs or get_net(p.net).epochs)
    return out


def table(proj: Projection) -> list[str]:
    """The projection as a table a person reads: stage, points, where its seconds and its
    epochs came from (probe, store or prior), minutes."""
    counts: dict[str, int] = {}
    for p in proj.points:
        key = "gan" if p.kind == "gan" else p.net
        counts[key] = counts.get(key, 0) + 1
    rows = [("stage", "points", "seconds from", "epochs from", "minutes")]
    if proj.preprocess_s:
        rows.append(("preprocess", "-", rate_words("preprocess", proj.rates), "-", f"{proj.preprocess_s / 60:.1f}"))
    epochs = _stage_epochs(proj)
    rows += [(k, str(counts[k]), rate_words(k, proj.rates), epoch_words(k, epochs[k], proj.rates), f"{v / 60:.1f}")
             for k, v in proj.stages.items()]
    rows.append((f"wall time, --jobs {proj.jobs}", str(len(proj.points)), "", "", f"{proj.makespan_s / 60:.1f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return ["  ".join(c.ljust(w) if i < 4 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]


def duration(seconds: float) -> str:
    """``40 s``, ``4 min``, ``3.2 h``, ``105 days``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h" if seconds < 48 * 3600 else f"{seconds / 86400:.0f} days"


#: Rates measured on one NVIDIA H200 through this workplace's device tool (2026-11-26, fp32, the split
#: resident on the GPU; docs/performance.md): what a projection "on a GPU" uses on a machine without one.
#: Image nets at 180x180 batch 32 (net2's figure), MFCC and raw nets at batch 32 (net5's), the WaveGAN
#: by model size, generation of the study's 27,980 clips in about 6 s.
H200 = {"image": 2773.0, "mfcc": 5007.0, "raw": 5007.0, "gan_steps_per_s": {64: 1 / 0.17, 16: 14.2},
        "clips_per_s_generated": 4663.0, "measured": "2026-11-26"}


def gpu_rates(cfg: SweepConfig, rates: dict) -> dict:
    """``rates`` with the torch nets and the WaveGAN at the H200's measured rates (classical
    baselines and preprocessing stay on this CPU, as they would)."""
    grid = get_grid(cfg.grid)
    nets = {}
    for net, r in rates["nets"].items():
        per_s = H200[get_net(net).input_kind] * ((180 / grid.image_size) ** 2 if get_net(net).input_kind == "image" else 1)
        nets[net] = {**r, "train_samples_per_s": per_s, "eval_samples_per_s": 3 * per_s}
    learned = {n: v if get_net(n).family == "classical" else {k: v[k] for k in ("stop_runs", "stop_epoch") if k in v}
               for n, v in rates.get("learned", {}).items()}
    out = {**rates, "nets": nets, "learned": learned}  # the store's stops stay; its nets' seconds were this CPU's
    if "gan" in rates:
        steps = H200["gan_steps_per_s"][64 if grid.gan.d > 16 else 16]
        out["gan"] = {**rates["gan"], "steps_per_s": steps, "clips_per_s_generated": H200["clips_per_s_generated"],
                      "scaled_from_probe": False, "probe_batch": grid.gan.batch_size}
    return out


def _smaller_grid(small: str, than: str) -> bool:
    """Whether grid ``small`` asks less than grid ``than`` on every count (images, epochs, GAN steps)."""
    a, b = get_grid(small), get_grid(than)
    return (a.image_size <= b.image_size and a.max_epochs <= b.max_epochs and max(a.fixed_epochs) <= max(b.fixed_epochs)
            and a.gan.steps <= b.gan.steps and small != than)


def alternatives(cfg: SweepConfig, rates: dict, sizes: Sizes, dev, precision: str, cores: int,
                 points_of=build_grid, base: float | None = None) -> list[tuple[str, float]]:
    """What would make a long sweep feasible, each with its own projected wall time: a GPU (at the
    H200's measured rates), ``--grid fast`` where it is the smaller grid (probed now), no WaveGAN,
    fewer seeds or folds, and ``--max-epochs``. ``points_of(cfg)``: the points a config would run;
    ``base``: the sweep's own projected wall time, where the caller has it."""
    from dataclasses import replace

    shared = dev.type != "cuda"
    built: dict[SweepConfig, list] = {}  # each config's points, built once (28,000 of them take a moment)

    def wall(c: SweepConfig, r: dict = rates, on_shared: bool = shared) -> float:
        if c not in built:
            built[c] = points_of(c)
        return project(c, r, sizes, c.jobs, on_shared, cores, built[c]).makespan_s

    out = []
    if dev.type != "cuda":
        out.append((f"a GPU (one H200 at the rates measured on {H200['measured']}, docs/performance.md)",
                    wall(cfg, gpu_rates(cfg, rates), False)))
    if _smaller_grid("fast", cfg.grid):  # from the demo grid, "fast" is the longer protocol: not probed
        fast = replace(cfg, grid="fast")
        fast_rates = {**probe(fast, points_of(fast), dev, precision), "preprocess": rates["preprocess"]}
        out.append(("--grid fast", wall(fast, fast_rates)))
    gan_nets = [n for n in cfg.nets if get_net(n).uses_gan]
    others = tuple(n for n in cfg.nets if n not in gan_nets)
    if gan_nets and others:
        out.append((f"--nets {','.join(others)} (no {', '.join(gan_nets)}, so no WaveGAN)", wall(replace(cfg, nets=others))))
    if cfg.seeds > 1:
        out.append(("--seeds 1", wall(replace(cfg, seeds=1))))
    if any(SPLIT_SPECS[s].folded for s in cfg.splits) and cfg.folds > 5:
        out.append(("--folds 5", wall(replace(cfg, folds=5))))
    grid = get_grid(cfg.grid)
    if min(cfg.max_epochs or 10**9, max(grid.max_epochs, *grid.fixed_epochs)) > 20:  # a cap above every budget: no help
        out.append(("--max-epochs 20", wall(replace(cfg, max_epochs=20))))
    base = wall(cfg) if base is None else base
    return [(what, s) for what, s in out if s < 0.95 * base]  # only what would help (a cap above the stops would not)
