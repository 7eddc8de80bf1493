"""A sweep's plan and its cost, before anything runs: ``benchmark sweep --dry-run``, and the one
line a real sweep prints before its first point.

The dry run reads and creates nothing it need not: the dataset's digest from its files (the
features are extracted only if a ``runs:/`` features run must be fetched), its size from the
feature cache where that exists, else from the audio headers; which points the store already
holds (what a resume would skip) only from a store that exists. Then a short probe on this
machine (``projection.probe``, seconds) and the projection under ``--jobs``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from genre_models.config import FeatureConfig
from genre_models.sweep.grid import (
    GridPoint, SweepConfig, build_grid, check_folds, dependencies, get_grid, grid_keys,
)
from genre_models.sweep.load import Load, LoadMeter, look, wait_for_quiet
from genre_models.sweep.projection import (
    FEASIBLE_HOURS, Projection, Sizes, alternatives, duration, grid_batch, probe, project, sources, table,
)
from genre_models.util import log, usable_cores


@dataclass
class Cost:
    """A projection and what would make it feasible (where it is over ``FEASIBLE_HOURS``)."""

    projection: Projection
    device: str
    probe_seconds: float
    alternatives: list[tuple[str, float]] = field(default_factory=list)
    load: Load | None = None  # others' load on the cores while the probe ran
    probes: int = 1  # 2 where the first probe met a busy machine and the load then dropped
    waited_s: float = 0.0  # --wait-for-quiet: how long the probe waited for quiet cores

    def line(self) -> str:
        p = self.projection
        busy = f"; {self.load.words()}" if self.load is not None and self.load.busy else ""
        return (f"cost: {len(p.points)} points projected to take {duration(p.makespan_s)} on this {self.device} "
                f"(--jobs {p.jobs}; probed here in {self.probe_seconds:.0f} s; figures from "
                f"{'; '.join(f'{k}: {v}' for k, v in sources(p).items())}{busy}; "
                "`--dry-run` shows the plan)")

    def advice(self) -> list[str]:
        if not self.alternatives:
            return []
        return [f"  over {FEASIBLE_HOURS:.0f} hours; each of these alone would take:"] + [
            f"    {what}: {duration(s)}" for what, s in self.alternatives]

    def as_dict(self) -> dict:
        return {"device": self.device, "probe_seconds": round(self.probe_seconds, 1), **self.projection.as_dict(),
                "probe_load": {**(self.load.as_dict() if self.load else {}), "probes": self.probes,
                               "waited_s": round(self.waited_s, 1)},
                "sources": sources(self.projection),
                "rates": self.projection.rates, "alternatives": {w: round(s, 1) for w, s in self.alternatives}}


def _probe_seen(cfg: SweepConfig, points: list[GridPoint], dev, precision: str, data_dir: str | None,
                preprocess: bool, stats: tuple | None) -> tuple[dict, Load, int, float]:
    """The probe's rates, with the load other work put on the cores meanwhile (``sweep.load``).
    ``--wait-for-quiet S`` first waits up to S seconds for quiet cores. A probe that met a busy
    machine is taken again if, a second later, the load has dropped; else it stands, and the
    cost line says how busy the cores were. Returns rates, load, probes taken, seconds waited."""
    waited = wait_for_quiet(cfg.wait_for_quiet)[1] if cfg.wait_for_quiet else 0.0
    with LoadMeter() as meter:
        rates = probe(cfg, points, dev, precision, data_dir=data_dir, preprocess=preprocess, stats=stats)
    if not meter.load.busy or look().busy:
        return rates, meter.load, 1, waited
    with LoadMeter() as again:
        rates = probe(cfg, points, dev, precision, data_dir=data_dir, preprocess=preprocess, stats=stats)
    return rates, again.load, 2, waited


def estimate(cfg: SweepConfig, points: list[GridPoint], sizes: Sizes, data_dir: str | None = None,
             digest: str | None = None, tracking_uri: str | None = None, stats: tuple | None = None) -> Cost:
    """Probe this machine, learn what the store's finished runs on the dataset ``digest`` say
    (``history.learn``), project ``points`` under ``cfg.jobs``, and over ``FEASIBLE_HOURS`` say
    what would make the sweep feasible."""
    from genre_models.sweep.history import learn
    from genre_models.training.runtime import resolve_device, resolve_precision

    dev = resolve_device(cfg.device)
    precision, _ = resolve_precision(cfg.precision, dev)
    t0 = time.perf_counter()
    rates, load, probes, waited = _probe_seen(cfg, points, dev, precision, data_dir, not sizes.extracted, stats)
    if digest:
        caps: dict[str, int] = {}  # each net's largest epoch budget, in one pass over the points
        for p in points:
            if p.kind == "train":
                caps[p.net] = max(caps.get(p.net, 0), p.epochs or 0)
        rates["learned"] = learn({n: grid_batch(cfg, n) for n in caps}, caps, digest, dev.type, rates, tracking_uri)
    cores = usable_cores()
    proj = project(cfg, rates, sizes, cfg.jobs, dev.type != "cuda", cores, points)
    cost = Cost(proj, "GPU" if dev.type == "cuda" else "CPU", time.perf_counter() - t0, load=load, probes=probes,
                waited_s=waited)
    if proj.hours > FEASIBLE_HOURS:
        cost.alternatives = alternatives(cfg, rates, sizes, dev, precision, cores, base=proj.makespan_s)
    return cost


def data_sizes(cfg: SweepConfig) -> tuple[str, Sizes]:
    """The dataset's digest and size, extracting nothing: the feature cache's counts where the
    features are there already, else the files' own headers (1 s segments by duration)."""
    from genre_models.config import DataConfig
    from genre_models.data.discovery import dataset_digest, discover
    from genre_models.data.store import cache_key, load_store
    from genre_models.tracking.shipping import features_run_id, open_features

    features = FeatureConfig(image_size=get_grid(cfg.grid).image_size)
    if features_run_id(cfg.data_dir):  # shipped data: the features run is the only way to see it
        store = open_features(DataConfig(data_dir=cfg.data_dir, features=features, cache_dir=cfg.cache_dir)).store
        return store.digest, Sizes(len(store.tracks), float(store.mfcc.shape[0]), cfg.data_dir, True)
    disc = discover(cfg.data_dir)
    digest = dataset_digest(disc)
    entry = Path(cfg.cache_dir).expanduser() / cache_key(features, digest)
    if (entry / "meta.json").is_file() and not entry.is_symlink():
        store = load_store(entry)
        return digest, Sizes(len(store.tracks), float(store.mfcc.shape[0]), f"{cfg.data_dir} (cached features)", True)
    return digest, Sizes(len(disc.tracks), float(sum(_seconds(t.path) for t in disc.tracks)),
                         f"{cfg.data_dir} ({len(disc.tracks)} audio files, sizes from their headers)")


def _seconds(path: str) -> int:
    """Whole seconds of audio in a file by its header (1 s segments before silence removal); a
    file whose header says nothing counts as a GTZAN clip's 29."""
    import soundfile as sf

    try:
        info = sf.info(path)
        return int(info.frames // max(info.samplerate, 1))
    except Exception:  # unreadable here: preprocessing will skip or read it; the estimate goes on
        return 29


@dataclass
class DryRun:
    cfg: SweepConfig
    points: list[GridPoint]
    deps: dict
    done: set  # points whose FINISHED run the store holds (a resume skips them)
    cost: Cost | None  # None: nothing left to run
    sizes: Sizes

    def lines(self) -> list[str]:
        out = [f"plan: grid {self.cfg.grid}, {len(self.points)} points on {self.sizes.source}; "
               f"{len(self.done)} already in the store (a resume skips them), {len(self.points) - len(self.done)} to run"]
        seconds = self.cost.projection.points if self.cost else {}
        basis = sources(self.cost.projection) if self.cost else {}
        for p in self.points:
            state = "done" if p in self.done else "todo"
            after = f"  (after {', '.join(d.label for d in self.deps[p])})" if self.deps[p] else ""
            est = f"  ~{duration(seconds[p])} ({basis['gan' if p.kind == 'gan' else p.net]})" if p in seconds else ""
            out.append(f"  [{state}] {p.label}{after}{est}")
        if self.cost:
            out += ["", *table(self.cost.projection), "", self.cost.line(), *self.cost.advice()]
        return out

    def as_dict(self) -> dict:
        return {"grid": self.cfg.grid, "data": self.sizes.source, "points": [
            {"label": p.label, "done": p in self.done, "after": [d.label for d in self.deps[p]]} for p in self.points],
            "cost": self.cost.as_dict() if self.cost else None}


def dry_run(cfg: SweepConfig, tracking_uri: str | None, experiment: str) -> DryRun:
    """The plan, what the store holds of it, and its projected cost; nothing is run or created."""
    from genre_models.tracking.queries import finished_grid_keys

    digest, sizes = data_sizes(cfg)
    warning = check_folds(cfg, sizes.tracks)
    if warning:
        log.warning("%s", warning)
    points = build_grid(cfg)
    finished = finished_grid_keys(experiment, tracking_uri)
    keys = grid_keys(points, cfg, digest) if finished else {}  # nothing to skip: nothing to key
    done = {p for p in points if keys.get(p) in finished}
    todo = [p for p in points if p not in done]
    data_dir = None if cfg.data_dir.startswith("runs:/") or not os.path.isdir(cfg.data_dir) else cfg.data_dir
    cost = estimate(cfg, todo, sizes, data_dir, digest, tracking_uri) if todo else None
    return DryRun(cfg, points, dependencies(points), done, cost, sizes)
