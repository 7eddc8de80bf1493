"""A sweep's plan before anything runs: ``benchmark sweep --dry-run``.

The dry run reads and creates nothing it need not: the dataset's digest from its files (the
features are extracted only if a ``runs:/`` features run must be fetched), its size from the
feature cache where that exists, else from the audio headers; which points the store already
holds (what a resume would skip) only from a store that exists. Then its cost
(``cost.estimate``: a short probe on this machine and the projection under ``--jobs``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from genre_models.config import FeatureConfig
from genre_models.sweep.cost.estimate import Cost, estimate
from genre_models.sweep.decide import Decisions, decisions
from genre_models.sweep.cost.model import Sizes
from genre_models.sweep.cost.words import duration, sources, table
from genre_models.sweep.grid import GridPoint, SweepConfig, build_grid, check_folds, dependencies, get_grid, grid_keys


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
    decisions: Decisions | None = None  # what the store's runs decide now, and what the rest needs

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
        if self.decisions:
            out += ["", *self.decisions.text()]
        return out

    def as_dict(self) -> dict:
        return {"grid": self.cfg.grid, "data": self.sizes.source, "points": [
            {"label": p.label, "done": p in self.done, "after": [d.label for d in self.deps[p]]} for p in self.points],
            "cost": self.cost.as_dict() if self.cost else None,
            "decisions": list(self.decisions.lines) if self.decisions else None}


def dry_run(cfg: SweepConfig, tracking_uri: str | None, experiment: str) -> DryRun:
    """The plan, what the store holds of it, and its projected cost; nothing is run or created."""
    from genre_models.tracking.queries import finished_grid_keys

    digest, sizes = data_sizes(cfg)
    check_folds(cfg, sizes.tracks)
    points = build_grid(cfg)
    finished = finished_grid_keys(experiment, tracking_uri)
    keys = grid_keys(points, cfg, digest) if finished else {}  # nothing to skip: nothing to key
    done = {p for p in points if keys.get(p) in finished}
    todo = [p for p in points if p not in done]
    data_dir = None if cfg.data_dir.startswith("runs:/") or not os.path.isdir(cfg.data_dir) else cfg.data_dir
    cost = estimate(cfg, todo, sizes, data_dir, digest, tracking_uri) if todo else None
    found = decisions(cfg, experiment, tracking_uri, digest)
    return DryRun(cfg, points, dependencies(points), done, cost, sizes, found)
