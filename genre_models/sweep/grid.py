"""Grids are data: the named grids, a sweep's config, its points, their order and identity.

* ``study`` is the paper's protocol, ``fast`` a shorter one for real data on a laptop, ``demo``
  the built-in synthetic data end to end in minutes.
* Each point is identified by ``grid_key``: a hash of its resolved config (data folder replaced
  by the dataset digest; device, cache and worker counts left out) and the code version.
* **Folds.** A cross-validation split (``kfold``) makes every point once per fold: folds x
  seeds points per net and epoch setting, each a run like any other (resume, ``--jobs``, Ray).
* **Order.** Per split, seed and fold: the registry's GAN scorer net (net5), then the GAN (whose
  quality figure reuses the scorer's run; the longest point, so it starts early), then the nets
  that use it (net6), then the other early-stopping nets (net5-raw, plugins), then the
  fixed-epoch nets, then the classical baselines (one point each: they are fitted once). A
  point waits for the points it needs (``dependencies``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields, is_dataclass, replace
from functools import lru_cache

from genre_models.config import (
    SPLIT_SPECS, SPLITS, FeatureConfig, GanConfig, SplitConfig, TrainConfig, WaveGanConfig, check_choice, check_fold, default_cache_dir,
)
from genre_models.errors import ConfigError
from genre_models.models.registry import NETS, InputShape, get_net
from genre_models.util import code_version, log, usable_cores


@dataclass(frozen=True)
class GridSpec:
    """A named grid. ``fixed_epochs``: the epoch settings of the fixed-epoch nets (no early
    stopping); ``max_epochs``: the cap for the early-stopping nets."""

    name: str
    description: str
    fixed_epochs: tuple[int, ...]
    max_epochs: int
    image_size: int
    gan: WaveGanConfig
    gan_quality_epochs: int
    fixed_batch_size: int | None = None  # the fixed-epoch nets'; None: the net's own (32)
    log_model: bool = True


GRIDS: dict[str, GridSpec] = {
    g.name: g
    for g in (
        GridSpec("study", "the study: net1-4 at 50 and 100 epochs, net5-6 with early stopping (patience 5, at most "
                 "200 epochs), the paper-size WaveGAN (d 64) and 2,798 clips per genre", (50, 100), 200, 180,
                 WaveGanConfig(), 200),
        GridSpec("fast", "a shorter protocol for real data on a laptop: net1-4 at 10 and 20 epochs on 90x90 images, "
                 "net5-6 at most 50 epochs, WaveGAN d 16 for 1,000 steps, 500 clips per genre", (10, 20), 50, 90,
                 WaveGanConfig(steps=1000, batch_size=32, d=16, per_genre=500), 50),
        GridSpec("demo", "the built-in synthetic data in minutes: net1-4 at 5 and 10 epochs on 24x24 images (batch 8), "
                 "net5-6 at most 6 epochs, WaveGAN d 4 for 20 steps, 30 clips per genre; runs keep their weights, and "
                 "the registered ones get a model", (5, 10), 6, 24,
                 WaveGanConfig(steps=20, batch_size=8, d=4, per_genre=30), 4, fixed_batch_size=8, log_model=False),
    )
}


def get_grid(name: str) -> GridSpec:
    try:
        return GRIDS[name]
    except KeyError:
        raise ConfigError(f"unknown grid {name!r}; valid grids: {', '.join(GRIDS)}") from None


EXECUTORS = ("local", "ray")
#: Seeds a sweep may ask for (each multiplies the grid): more is a typo, not a plan.
MAX_SEEDS = 1000
DATA_ACCESS = ("auto", "shared", "artifacts")


@dataclass(frozen=True, kw_only=True)
class SweepConfig:
    data_dir: str
    grid: str = "study"
    nets: tuple[str, ...] = tuple(NETS)
    seeds: int = 3  # seeds 0 .. seeds-1
    splits: tuple[str, ...] = ("random", "track")
    folds: int = 10  # kfold: each point runs once per fold
    max_epochs: int | None = None  # caps every net's epochs (and early-stopping maximum)
    jobs: int = 1
    device: str = "auto"
    precision: str = "fp32"
    cache_dir: str = field(default_factory=default_cache_dir)
    preprocess_jobs: int = 0
    executor: str = "local"  # local: this process or --jobs workers; ray: a Ray task per grid point
    ray_address: str = ""  # "": Ray's rule ($RAY_ADDRESS, else the cluster last started here, else a new local one)
    cpus_per_run: float = 1.0  # ray: CPUs each point reserves (and torch threads it uses)
    gpus_per_run: float = 0.0  # ray: GPU fraction each point reserves
    retries: int = 2  # ray: attempts after a worker dies mid-point
    data_access: str = "auto"  # shared | artifacts | auto (artifacts under ray, shared otherwise)
    system_metrics: bool = True  # each point's run records CPU, memory (and GPU) use
    register: bool = True  # the best run per net and split (on validation) joins the Model Registry
    max_hours: float | None = None  # stop before running anything when the projected wall time is longer
    wait_for_quiet: float = 0.0  # seconds the cost probe may wait for other work to leave the cores

    def __post_init__(self) -> None:
        get_grid(self.grid)
        # A plugin given as package.module:factory is loaded and checked here, and known by its name from now on.
        nets = [get_net(net).name for net in self.nets]
        repeated = [n for n in nets if nets.count(n) > 1] + [n for n in self.splits if self.splits.count(n) > 1]
        object.__setattr__(self, "nets", tuple(dict.fromkeys(nets)))
        object.__setattr__(self, "splits", tuple(dict.fromkeys(self.splits)))
        for s in self.splits:
            check_choice("split", s, SPLITS)
            check_fold(s, 0, self.folds)
        if repeated:
            log.warning("%s given more than once: each runs once", ", ".join(dict.fromkeys(repeated)))
        if self.seeds < 1 or self.jobs < 1:
            raise ConfigError("--seeds and --jobs must be at least 1")
        if self.seeds > MAX_SEEDS:
            raise ConfigError(f"--seeds must be at most {MAX_SEEDS}, got {self.seeds}")
        if self.max_epochs is not None and self.max_epochs < 1:
            raise ConfigError(f"--max-epochs must be at least 1, got {self.max_epochs}")
        check_choice("executor", self.executor, EXECUTORS)
        cores = usable_cores()
        if self.executor == "local" and self.jobs > cores:  # more workers than cores only thrash
            log.warning("--jobs %d is more than the %d usable cores: running %d points at once", self.jobs, cores, cores)
            object.__setattr__(self, "jobs", cores)
        check_choice("data access", self.data_access, DATA_ACCESS)
        if self.max_hours is not None and not self.max_hours > 0:
            raise ConfigError(f"--max-hours must be above 0, got {self.max_hours}")
        if not 0 <= self.wait_for_quiet <= 86_400:
            raise ConfigError(f"--wait-for-quiet must be 0 to 86400 seconds, got {self.wait_for_quiet}")
        if self.cpus_per_run <= 0 or self.gpus_per_run < 0 or self.retries < 0:
            raise ConfigError("--cpus-per-run must be positive, --gpus-per-run and --retries at least 0")

    @property
    def shipped(self) -> bool:
        """Whether workers get the data as a features run's artifacts rather than from --data-dir."""
        return self.data_access == "artifacts" or (self.data_access == "auto" and self.executor == "ray")


@dataclass(frozen=True)
class GridPoint:
    """One child run: a net (or the GAN) at one split, seed and epoch setting."""

    kind: str  # "train" | "gan"
    net: str  # registry name, or "gan"
    split: str
    seed: int
    epochs: int | None = None  # train points: fixed epochs, or the early-stopping maximum
    fold: int = 0  # a folded split's (kfold) fold, of ``folds``
    folds: int = 10

    @property
    def split_config(self) -> SplitConfig:
        return SplitConfig(split=self.split, seed=self.seed, fold=self.fold, folds=self.folds)

    @property
    def label(self) -> str:
        e = f" e{self.epochs}" if self.epochs is not None else ""
        return f"{self.net}{e} {self.split_config.label} s{self.seed}"

    @property
    def coords(self) -> dict[str, str]:
        """The tags that say which point a run is, the same ones its stage sets (so a point that
        failed before its stage began is still found by net, split, seed and fold)."""
        return {"stage": self.kind, **self.split_config.tags, **({"net": self.net} if self.kind == "train" else {})}


#: A fold with fewer test tracks than this tests too little to compare nets on.
MIN_FOLD_TRACKS = 10


def check_folds(cfg: SweepConfig, tracks: int) -> None:
    """Under ``kfold``: more folds than tracks is an error (folds with no track test nothing);
    folds of fewer than ``MIN_FOLD_TRACKS`` tracks are warned of, in one line."""
    if "kfold" not in cfg.splits:
        return
    if cfg.folds > tracks:
        raise ConfigError(f"--folds {cfg.folds} is more than the {tracks} usable tracks: some folds would hold no track "
                          "and test nothing; use fewer folds")
    if tracks / cfg.folds < MIN_FOLD_TRACKS:
        log.warning("--folds %d on %d tracks leaves about %.1f test tracks a fold (under %d): each fold's accuracy moves "
                    "in steps of %.2f; fewer folds test more", cfg.folds, tracks, tracks / cfg.folds, MIN_FOLD_TRACKS,
                    cfg.folds / tracks)


def build_grid(cfg: SweepConfig) -> list[GridPoint]:
    """The grid's points in run order; see the module docstring for why this order."""
    spec = get_grid(cfg.grid)
    cap = (lambda e: min(e, cfg.max_epochs)) if cfg.max_epochs else (lambda e: e)
    stopping = [n for n in cfg.nets if get_net(n).early_stopping]
    points: list[GridPoint] = []
    for draw in _split_draws(cfg):
        def add(kind: str, net: str, epochs: int | None) -> None:
            points.append(GridPoint(kind, net, draw.split, draw.seed, epochs, draw.fold, draw.folds))

        for net in (n for n in stopping if get_net(n).scores_gan):
            add("train", net, cap(spec.max_epochs))
        if any(get_net(n).uses_gan for n in cfg.nets):
            add("gan", "gan", None)
        for net in (n for n in stopping if get_net(n).uses_gan):
            add("train", net, cap(spec.max_epochs))
        for net in (n for n in stopping if not (get_net(n).uses_gan or get_net(n).scores_gan)):
            add("train", net, cap(spec.max_epochs))
        for net in (n for n in cfg.nets if not get_net(n).early_stopping and get_net(n).family == "torch"):
            for e in sorted({cap(e) for e in spec.fixed_epochs}):
                add("train", net, e)
        for net in (n for n in cfg.nets if get_net(n).family == "classical"):
            add("train", net, None)  # fitted once
    return points


def _split_draws(cfg: SweepConfig) -> list[SplitConfig]:
    """Every draw of the data the grid trains on: each split and seed, and for a folded split
    each fold of each seed (an unfolded split keeps the default fold settings, which it ignores)."""
    return [SplitConfig(split=split, seed=seed, fold=fold, folds=cfg.folds) if SPLIT_SPECS[split].folded
            else SplitConfig(split=split, seed=seed)
            for split in cfg.splits for seed in range(cfg.seeds)
            for fold in (range(cfg.folds) if SPLIT_SPECS[split].folded else (0,))]


def dependencies(points: list[GridPoint]) -> dict[GridPoint, list[GridPoint]]:
    """The GAN waits for the registry's scorer net (its quality figure reuses that run); a net
    that uses the GAN waits for the GAN."""
    deps: dict[GridPoint, list[GridPoint]] = {p: [] for p in points}
    draws: dict[tuple, list[GridPoint]] = {}  # one pass: grouping by draw keeps a plan linear in its points
    for p in points:
        draws.setdefault((p.split, p.seed, p.fold, p.folds), []).append(p)
    for p in points:
        same = [q for q in draws[(p.split, p.seed, p.fold, p.folds)] if q is not p]
        if p.kind == "gan":
            deps[p] = [q for q in same if q.kind == "train" and get_net(q.net).scores_gan]
        elif get_net(p.net).uses_gan:
            deps[p] = [q for q in same if q.kind == "gan"]
    return deps


def point_config(p: GridPoint, cfg: SweepConfig) -> TrainConfig | GanConfig:
    spec = get_grid(cfg.grid)
    features = FeatureConfig(image_size=spec.image_size)
    if p.kind == "gan":
        return GanConfig(data_dir=cfg.data_dir, gan=spec.gan, split=p.split, seed=p.seed, fold=p.fold, folds=p.folds, device=cfg.device,
                         features=features, cache_dir=cfg.cache_dir, jobs=cfg.preprocess_jobs, quality_epochs=spec.gan_quality_epochs, log_model=spec.log_model,
                         log_every=max(1, min(50, spec.gan.steps // 10)), preview_every=max(1, min(500, spec.gan.steps // 2)),
                         checkpoint_every=max(1, min(250, spec.gan.steps // 4)))
    net = get_net(p.net)
    fixed_epochs = not net.early_stopping and net.family == "torch"
    return TrainConfig(net=p.net, data_dir=cfg.data_dir, epochs=p.epochs, early_stopping=net.early_stopping,
                       batch_size=spec.fixed_batch_size if fixed_epochs else None, seed=p.seed, split=p.split,
                       fold=p.fold, folds=p.folds, device=cfg.device,
                       precision=cfg.precision, features=features, cache_dir=cfg.cache_dir, jobs=cfg.preprocess_jobs,
                       log_model=spec.log_model, gan=spec.gan)


_NOT_IDENTITY = {"data_dir", "cache_dir", "jobs", "device", "num_workers", "log_every", "preview_every", "checkpoint_every"}


def _plain(obj):
    """``dataclasses.asdict`` without its deep copies (the same JSON, ten times faster: a plan of
    28,000 points keys every one). A frozen part shared by every point (the features, the GAN's
    settings) is converted once."""
    if is_dataclass(obj) and not isinstance(obj, type):
        if obj.__dataclass_params__.frozen and type(obj) in _SHARED_PARTS:
            return _plain_shared(obj)
        return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    return obj


_SHARED_PARTS = {FeatureConfig, WaveGanConfig}


@lru_cache(maxsize=64)
def _plain_shared(obj) -> dict:
    return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj)}  # read only: json.dumps never changes it


def grid_key(p: GridPoint, pc, digest: str) -> str:
    """What makes a point's result unique: its config (less device and bookkeeping), data and code."""
    conf = {k: v for k, v in _plain(pc).items() if k not in _NOT_IDENTITY}
    return _key_of(_plain(p), conf, digest)


def _key_of(point: dict, conf: dict, digest: str) -> str:
    blob = json.dumps({"point": point, "config": conf, "dataset": digest, "code": code_version()}, sort_keys=True,
                      default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def grid_keys(points: list[GridPoint], cfg: SweepConfig, digest: str) -> dict[GridPoint, str]:
    """``grid_key(p, point_config(p, cfg), digest)`` for every point, from one config per point
    shape (all but its seed and fold, which a point's config holds as they are): a plan of
    28,000 points is keyed in about a second, not three. ``test_plan`` checks the two agree."""
    shapes: dict[GridPoint, dict] = {}
    out = {}
    for p in points:
        shape = replace(p, seed=0, fold=0)
        if shape not in shapes:
            shapes[shape] = {k: v for k, v in _plain(point_config(shape, cfg)).items() if k not in _NOT_IDENTITY}
        out[p] = _key_of(_plain(p), {**shapes[shape], "seed": p.seed, "fold": p.fold}, digest)
    return out




def point_resources(p: GridPoint, cfg: SweepConfig) -> dict:
    """What one grid point asks of a Ray node: CPUs, a GPU fraction, and memory in bytes.

    Memory is an estimate from the exact parameter count (the model built on PyTorch's meta
    device, so nothing is allocated): 16 bytes per parameter for weights, gradients and two
    optimizer moments, plus 1.5 GiB for data, activations and the interpreter. So net2-4's
    133M-parameter flatten head at 180x180 asks for about 3.5 GiB, net5 for about 1.5 GiB, and
    Ray will not stack four CNNs on a node that cannot hold them. Not a measurement: a node
    short of memory can still be overcommitted by other work.
    """
    res = {"num_cpus": cfg.cpus_per_run, "memory": int(16 * _parameters(p.net, cfg.grid) + 1.5 * 2**30)}
    if cfg.gpus_per_run:
        res["num_gpus"] = cfg.gpus_per_run
    return res


@lru_cache(maxsize=None)
def _parameters(net: str, grid: str) -> int:
    """Parameters of a grid's net (or its GAN, G and D), counted on the meta device."""
    import torch

    from genre_models.training.gan_loop import build_units

    spec = get_grid(grid)
    if net != "gan" and get_net(net).family == "classical":
        return 0  # a few arrays: the 1.5 GiB allowance covers it
    with torch.device("meta"):
        if net == "gan":
            modules = [m for u in build_units(spec.gan, torch.device("meta")) for m in (u.G, u.D)]
        else:
            fc = FeatureConfig(image_size=spec.image_size)
            modules = [get_net(net).build(InputShape(fc.image_size, fc.frames_per_segment, fc.n_mfcc, fc.segment_samples), "flatten")]
    return sum(t.numel() for m in modules for t in m.parameters())
