"""A null sweep simulated for ``benchmark calibrate`` (``reporting.calibration``), pure: every
model of the study's grid (net1-net4 at two epoch budgets, net5, net6, net5-raw, svm, logreg)
over a protocol's draws, as MLflow's runs frame and per-track votes, so that it goes through
the report's own path.

Each run's segments are right with probability
``sigmoid(difficulty[track] + lean[model, track] + offset[run] + noise[run, track])`` (``Noise``
gives the scales; a repeated recording's copies share all four); a track's vote is right when
more than half its segments are (ties by a coin), an image net has one "segment" a track.
Stopping: samples seen to the best epoch are drawn from one distribution for net5 and net6
(net6's epochs hold 2.3x the samples), the stop ``PATIENCE`` epochs later, capped at 50 epochs. Expected accuracies are matched on the
metric each claim is tested on by a Monte-Carlo solve (to about 0.001).

Caveat: ``random`` is simulated as a fresh split of tracks per seed (its segments' leak is not
simulated: the leak biases the estimate, which no test can see).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from genre_models.config import SPLIT_SPECS, SplitConfig, check_at_least, check_choice, default_of
from genre_models.data.splits import track_split
from genre_models.genres import GENRES
from genre_models.reporting.claims import MARGIN, RAW_BOUND
from genre_models.reporting.significance import Votes


#: The simulated grid: (net, epoch budget or cap, segments scored per track: 1 for an image net).
GRID: tuple[tuple[str, int, bool], ...] = (
    *((n, e, True) for n in ("net1", "net2", "net3", "net4") for e in (50, 100)),
    ("net5", 50, False), ("net6", 50, False), ("net5-raw", 50, False), ("svm", 1, False), ("logreg", 1, False),
)


GAN_SHARE = 2.3  # net6's training samples per real one
PATIENCE = 5  # early stopping's epochs without improvement (``training.loop.fit``'s default)


#: The artist-filtered lists' parts: training, validation and test tracks.
FILTERED_PARTS = (443, 197, 290)


def part_fractions(split: str) -> dict:
    """The training and validation shares a split gives tracks: the filtered lists' own on a
    fixed split, the split's defaults otherwise."""
    if SPLIT_SPECS[split].resampled:
        return {}
    total = sum(FILTERED_PARTS)
    return {"train_fraction": FILTERED_PARTS[0] / total, "val_fraction": FILTERED_PARTS[1] / total}


def train_share(split: str, folds: int) -> float:
    """The share of a data set's tracks a run trains on under ``split``."""
    if SPLIT_SPECS[split].folded:
        return (folds - 2) / folds
    return part_fractions(split).get("train_fraction", default_of(SplitConfig, "train_fraction"))


@dataclass(frozen=True, kw_only=True)
class Shape:
    """The protocol: its split, tracks, folds (``kfold``), seeds, and segments per track."""

    split: str = "kfold"
    tracks: int = 150
    folds: int = 5
    seeds: int = 3
    segments: int = 10

    def __post_init__(self):
        check_choice("split", self.split, list(SPLIT_SPECS))
        check_at_least("tracks", self.tracks, 2 * len(GENRES))
        check_at_least("folds", self.folds, 3)
        check_at_least("seeds", self.seeds, 1)
        check_at_least("segments", self.segments, 1)

    @property
    def draws(self) -> int:
        return self.seeds * (self.folds if SPLIT_SPECS[self.split].folded else 1)


@dataclass(frozen=True, kw_only=True)
class Noise:
    """A scenario's noise, on the logit scale of a segment being right."""

    name: str
    run_sd: float = 0.15  # a trained net's quality offset (seed-to-seed sd of accuracy about 0.03)
    lean_sd: float = 0.0  # a model's lasting lean on a track, the same in every draw
    vote_sd: float = 0.8  # a run's own noise on a track
    discordant: int = 0  # > 0: models agree on every track but this many, where each is right or wrong for good
    repeat_share: float = 0.0  # share of tracks that are copies of another (groups of 2-3)
    base: float = 0.6  # the expected accuracy over segments of every model in the equal world
    difficulty_sd: float = 1.5


SCENARIOS: dict[str, Noise] = {n.name: n for n in (
    Noise(name="training-noise", run_sd=0.15, lean_sd=0.0),
    Noise(name="track-lean", run_sd=0.05, lean_sd=1.0, vote_sd=0.3),
    Noise(name="few-discordant", run_sd=0.0, vote_sd=0.0, discordant=6),
)}
SCENARIOS.update({f"{n}+repeats": replace(s, name=f"{n}+repeats", repeat_share=0.2) for n, s in list(SCENARIOS.items())})


@dataclass(frozen=True)
class Layout:
    """Tracks, their recording (cluster), and each draw's test / training tracks."""

    track_ids: list[str]
    cluster: np.ndarray  # (tracks,) index of the recording each track is a copy of
    draws: list[tuple[int, int, np.ndarray, int]]  # (seed, fold, test track indices, training tracks)


def layout(shape: Shape, noise: Noise, rng: np.random.Generator) -> Layout:
    """The tracks and the split's draws, made by the package's own split code (a fixed split: one
    seeded assignment of 290/930 of the tracks to test, as the filtered lists hold)."""
    per = max(1, shape.tracks // len(GENRES))
    ids = [f"{g}.{i:05d}" for g in GENRES for i in range(per)]
    cluster = np.arange(len(ids))
    for start in range(0, len(ids), per):  # copies stay within a genre, as GTZAN's repeats do
        n_copies = int(round(noise.repeat_share * per))
        heads = rng.choice(np.arange(start, start + per), size=max(1, n_copies // 2), replace=False) if n_copies else []
        free = [i for i in range(start, start + per) if i not in set(heads)]
        copies = rng.choice(free, size=min(n_copies, len(free)), replace=False) if n_copies else []
        for j, c in enumerate(copies):
            cluster[c] = heads[j % len(heads)]
    groups = [ids[c] for c in cluster]
    genres = [t.split(".")[0] for t in ids]
    return Layout(ids, cluster, _draws(shape, ids, genres, groups))


def _draws(shape: Shape, ids: list[str], genres: list[str], groups: list[str]) -> list:
    spec, out = SPLIT_SPECS[shape.split], []
    index = {t: i for i, t in enumerate(ids)}
    for seed in range(shape.seeds):
        for fold in range(shape.folds if spec.folded else 1):
            kind = "kfold" if spec.folded else "track"
            cfg = SplitConfig(split=kind, seed=seed if spec.resampled else 0, fold=fold, folds=max(shape.folds, 3),
                              **part_fractions(shape.split))
            part = track_split(ids, genres, cfg, groups)
            test = np.array(sorted(index[t] for t, p in part.items() if p == "test"))
            out.append((seed, fold if spec.folded else -1, test, sum(p == "train" for p in part.values())))
    return out


@functools.lru_cache(maxsize=64)
def _offsets(noise: Noise, shape: Shape, boundary: bool) -> dict[str, float]:
    """Each model's logit offset: 0 in the equal world; on the boundary, the shifts that put
    the margin and bound claims exactly on their nulls."""
    if not boundary:
        return {}
    metric_seg = SPLIT_SPECS[shape.split].resampled
    base = expected_accuracy(0.0, noise, 1)
    up1, up2 = (solve_offset(base + k * MARGIN, noise, 1) for k in (1, 2))
    raw = solve_offset(RAW_BOUND, noise, shape.segments if metric_seg else -shape.segments)
    return {"net3@100": up1, "net4@50": up1, "net4@100": up2, "net5-raw@50": raw}


def simulate(shape: Shape, noise: Noise, lay: Layout, rng: np.random.Generator, boundary: bool = False
             ) -> tuple[pd.DataFrame, Votes]:
    """One null sweep as MLflow's runs frame (``tags.*``, ``params.*``, ``metrics.*``) and the votes."""
    n = len(lay.track_ids)
    c = lay.cluster
    difficulty = (rng.normal(0, noise.difficulty_sd, n) + solve_offset_base(noise))[c]
    fixed = rng.random(n)[c] if noise.discordant else None
    lasting = rng.choice(np.unique(c), size=min(noise.discordant, len(np.unique(c))), replace=False) if noise.discordant else []
    shifts = dict(_offsets(noise, shape, boundary))
    rows, right, groups = [], {}, {t: lay.track_ids[g] for t, g in zip(lay.track_ids, c)}
    for m, (net, epochs, image) in enumerate(GRID):
        lean = rng.normal(0, noise.lean_sd, n)[c] if noise.lean_sd else 0.0
        own = (rng.random(n) < 0.5)[c] if noise.discordant else None
        for seed, fold, test, n_train_tracks in lay.draws:
            segs = 1 if image else shape.segments
            eta = difficulty + lean + rng.normal(0, noise.run_sd) + shifts.get(f"{net}@{epochs}", 0.0)
            eta = eta + (rng.normal(0, noise.vote_sd, n)[c] if noise.vote_sd else 0.0)
            seg_right = _segments(eta[test], segs, rng, c[test])
            if noise.discordant:
                seg_right = _few(seg_right, test, fixed, own, np.isin(c[test], lasting), segs)
            vote = (seg_right * 2 > segs) | ((seg_right * 2 == segs) & (rng.random(test.size) < 0.5))
            rid = f"{net}-{epochs}-{seed}-{fold}-{len(rows)}"
            right[rid] = dict(zip((lay.track_ids[i] for i in test), vote.tolist()))
            rows.append(_run_row(rid, net, epochs, seed, fold, shape, test.size, n_train_tracks, segs, seg_right, vote,
                                 rng, len(rows)))
    return pd.DataFrame(rows), Votes.of(right, groups)


def _segments(eta: np.ndarray, segs: int, rng: np.random.Generator, clusters: np.ndarray) -> np.ndarray:
    """Right segments per test track; copies of one recording get the same count."""
    counts = rng.binomial(segs, 1 / (1 + np.exp(-eta)))
    _, first, inverse = np.unique(clusters, return_index=True, return_inverse=True)
    return counts[first][inverse]


def _few(seg_right, test, fixed, own, lasting, segs) -> np.ndarray:
    """Few-discordant: every model right on a track by its ease alone, except on the lasting few,
    where each model is right or wrong for good."""
    agreed = np.where(fixed[test] < 0.6, segs, 0)
    return np.where(lasting, np.where(own[test], segs, 0), agreed)


def _run_row(rid, net, epochs, seed, fold, shape, n_test_tracks, n_train_tracks, segs, seg_right, vote, rng, order):
    real = n_train_tracks * segs
    n_train = int(real * GAN_SHARE) if net == "net6" else real
    seen = math.exp(rng.normal(math.log(20 * n_train_tracks * shape.segments), 0.5))  # to the best epoch
    best = min(epochs, max(1, math.ceil(seen / n_train)))
    stop = min(epochs, best + PATIENCE)
    row = {"run_id": rid, "status": "FINISHED", "start_time": order, "artifact_uri": "",
           "tags.stage": "train", "tags.net": net, "tags.split": shape.split, "tags.seed": str(seed),
           "tags.fold": str(fold) if fold >= 0 else None, "tags.dataset": "simulated", "tags.dataset_synthetic": "true",
           "params.epochs": str(epochs), "params.n_test": str(n_test_tracks * segs), "params.n_train": str(n_train),
           "params.n_test_tracks": str(n_test_tracks), "params.n_train_tracks": str(n_train_tracks),
           "metrics.test_accuracy": float(seg_right.sum() / (n_test_tracks * segs)),
           "metrics.test_track_accuracy": float(vote.mean()), "metrics.val_track_accuracy": float(rng.random())}
    if net in ("net5", "net6", "net5-raw"):
        row["metrics.stopped_epoch"], row["metrics.best_epoch"] = float(stop), float(best)
    if net == "net6":
        row["params.n_train_real"] = str(real)
    return row


_MC = np.random.default_rng(20261206).standard_normal((3, 200_000))


def expected_accuracy(offset: float, noise: Noise, segments: int) -> float:
    """A model's expected accuracy at ``offset``: over segments (``segments`` > 0) or of the
    vote over ``-segments`` segments (< 0). Monte Carlo on a fixed sample, so solving is smooth."""
    eta = (_MC[0] * noise.difficulty_sd + _MC[1] * math.hypot(noise.run_sd, noise.lean_sd, noise.vote_sd)
           + offset + solve_offset_base(noise))
    p = 1 / (1 + np.exp(-eta))
    if segments > 0:
        return float(p.mean())
    from scipy import stats

    k = -segments
    return float((stats.binom.sf(k // 2, k, p) + (0.5 * stats.binom.pmf(k // 2, k, p) if k % 2 == 0 else 0)).mean())


def solve_offset(target: float, noise: Noise, segments: int) -> float:
    """The offset whose expected accuracy (see ``expected_accuracy``) is ``target``."""
    from scipy.optimize import brentq

    return float(brentq(lambda o: expected_accuracy(o, noise, segments) - target, -15, 15, xtol=1e-6))


_BASES: dict = {}


def solve_offset_base(noise: Noise) -> float:
    """The common offset that gives every model ``noise.base`` over segments in the equal world."""
    key = (noise.difficulty_sd, noise.run_sd, noise.lean_sd, noise.vote_sd, noise.base)
    if key not in _BASES:
        _BASES[key] = 0.0
        _BASES[key] = solve_offset(noise.base, noise, 1)
    return _BASES[key]
