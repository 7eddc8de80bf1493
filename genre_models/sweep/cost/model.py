"""The time model: every point's seconds from the rates the probe measured (``cost.probe``) and
what the store taught (``cost.history``), then the points scheduled on the sweep's ``--jobs``
slots as the sweep runs them.

Each point from the data's size (the sweep's own feature store, or GTZAN's 999 usable clips of
about 29.5 segments), the grid's epochs (an early-stopping net for its stopping epoch on record,
or ``PRIOR_STOP``, at most its cap), the split's part sizes, and ``POINT_OVERHEAD_S`` of
bookkeeping. Caveat, the packing model: on a CPU the points running at once share its cores
(each at 1/k of its rate), on a GPU each keeps its own rate.

A net's spec and its grid batch are looked up once per net of the sweep (``net_costs``) and
passed down in a ``NetCost``; nothing below fetches them again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from genre_models.config import SPLIT_SPECS
from genre_models.models.registry import get_net
from genre_models.models.spec import NetSpec
from genre_models.sweep.grid import GridPoint, SweepConfig, build_grid, dependencies, get_grid

#: Seconds of bookkeeping per point (run records, the weights, evaluation artifacts, a model where
#: logged, the sweep's own work between points): about 1 s measured on a 2-core EPYC (the demo's
#: main job: 0.6 s in a run, 0.4 s between runs), with room for a slower disk or a served store.
#: The store's runs replace it with their own (``cost.history``).
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
#: A classical baseline's fit scales by this power of its samples. The SVM's was fitted on real
#: statistics (the GTZAN sample's 1,498 segments, fits of 200 to 1,400: 1.38 to 1.51, 2026-12-07);
#: the quadratic rule it replaced projected svm 3x slow on 150 real tracks. The linear probe's fit
#: is about linear where lbfgs converges; on a part it separates exactly it runs to its iteration
#: cap (30x), which no power predicts (docs/performance.md).
CLASSICAL_SCALING = {"svm": 1.5, "logreg": 1.0}


@dataclass(frozen=True)
class NetCost:
    """A net as the projection needs it: its spec, and the batch its points train at in the grid."""

    spec: NetSpec
    batch: int


def grid_batch(cfg: SweepConfig, spec: NetSpec) -> int:
    """The batch ``spec``'s points train at: the grid's fixed batch for fixed-epoch torch nets, else the net's own."""
    fixed = get_grid(cfg.grid).fixed_batch_size
    return fixed if fixed and not spec.early_stopping and spec.family == "torch" else spec.batch_size


def net_costs(cfg: SweepConfig, points: list[GridPoint]) -> dict[str, NetCost]:
    """Each training net of ``points``, looked up once."""
    specs = {n: get_net(n) for n in dict.fromkeys(p.net for p in points if p.kind == "train")}
    return {n: NetCost(s, grid_batch(cfg, s)) for n, s in specs.items()}


def learned_of(stage: str, rates: dict) -> dict:
    """What the store taught of ``stage`` (``cost.history.learn``); empty where nothing."""
    return rates.get("learned", {}).get(stage, {})


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



def expected_epochs(cap: int, early: bool, learned: dict | None = None) -> tuple[float, str]:
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


def point_seconds(p: GridPoint, cfg: SweepConfig, sizes: Sizes, rates: dict, nets: dict[str, NetCost]) -> float:
    """One point's projected seconds from the measured ``rates`` and, where the store taught
    them, ``rates["learned"]`` (``cost.history``): its seconds per sample-epoch, its fixed
    seconds and its stopping epoch. ``nets``: ``net_costs`` of the sweep."""
    share = sizes.parts(p.split, p.folds)
    if p.net in rates.get("unmeasured", {}):
        return POINT_OVERHEAD_S  # it could not even be built here: it will fail fast
    if p.kind == "gan":
        return _gan_seconds(cfg, rates)
    spec, learned = nets[p.net].spec, learned_of(p.net, rates)
    per = sizes.tracks if spec.input_kind == "image" else sizes.segments
    if spec.family == "classical":
        return _classical_seconds(p.net, share["train"] * per, rates["classical"][p.net], learned)
    r = rates["nets"][p.net]
    train = share["train"] * per + (get_grid(cfg.grid).gan.per_genre * 10 if spec.uses_gan else 0)
    val, test = share["val"] * per, share["test"] * per
    epochs, _ = expected_epochs(p.epochs or spec.epochs, spec.early_stopping, learned)
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
    nets: dict = field(default_factory=dict)  # net -> NetCost, as looked up for the projection

    @property
    def hours(self) -> float:
        return self.makespan_s / 3600

    def as_dict(self) -> dict:
        return {"points": len(self.points), "preprocess_s": round(self.preprocess_s, 1),
                "stage_seconds": {k: round(v, 1) for k, v in self.stages.items()}, "jobs": self.jobs,
                "sequential_s": round(self.preprocess_s + sum(self.points.values()), 1),
                "makespan_s": round(self.makespan_s, 1), "projected_minutes": round(self.makespan_s / 60, 1)}


def project(cfg: SweepConfig, rates: dict, sizes: Sizes, jobs: int, shared: bool, cores: int,
            points: list[GridPoint] | None = None, nets: dict[str, NetCost] | None = None) -> Projection:
    """The grid's (or ``points``') projected seconds, stage by stage, and on ``jobs`` slots."""
    points = build_grid(cfg) if points is None else points
    nets = net_costs(cfg, points) if nets is None else nets
    by_shape: dict[GridPoint, float] = {}  # a point's seconds depend on neither its seed nor its fold
    seconds = {}
    for p in points:
        shape = replace(p, seed=0, fold=0)
        if shape not in by_shape:
            by_shape[shape] = point_seconds(shape, cfg, sizes, rates, nets)
        seconds[p] = by_shape[shape]
    stages: dict[str, float] = {}
    for p, s in seconds.items():
        key = "gan" if p.kind == "gan" else p.net
        stages[key] = stages.get(key, 0.0) + s
    pre = 0.0 if sizes.extracted else sizes.tracks * rates["preprocess"]["seconds_per_clip"] / max(1, cores)
    deps = dependencies(points) if jobs > 1 else {}  # one slot runs them back to back, whatever the order
    makespan = schedule(points, deps, seconds, jobs, shared) if points else 0.0
    return Projection(seconds, stages, pre, pre + makespan, jobs, rates, nets)

