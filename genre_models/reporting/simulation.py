"""A sweep simulated for ``benchmark calibrate`` (``reporting.calibration``), pure: every model
of the study's grid (net1-net4 at two epoch budgets, net5, net6, net5-raw, svm, logreg) over a
protocol's draws, as MLflow's runs frame and per-track votes, so that it goes through the
report's own path.

Each run's segments are right with probability ``sigmoid(difficulty[track] + lean[model, track]
+ artist[model, artist] + train[model, draw] + offset[run] + noise[run, track] + world[model])``
(``Noise`` gives the scales; a repeated recording's copies share all of them):

* ``offset``: a trained net's quality, per run (``run_sd``); ``fold_shared`` of its variance is
  shared by a seed's folds (what one torch seed for every fold did before runs were seeded by
  seed and fold).
* ``train``: the *training-set component*, a model's edge that depends on which tracks it trained
  on: ``train_sd * sum(c[model, t] for t in training) / sqrt(training tracks)``, so two draws'
  edges correlate as their training sets overlap.
* ``lean`` and ``artist``: a model's lasting lean on a track, and on an artist's tracks (artists
  of ``artist_size`` consecutive tracks of a genre) on ``filtered``, which puts whole artists in
  one part. Caveat: artists are not simulated on the resampled splits, which do not keep them
  whole (their leak is a bias no test sees) and whose tests cannot cluster by an artist that
  genre-bench does not know.
* ``world``: ``reporting.worlds`` (no difference, the boundaries, or an alternative).

A track's vote is right when more than half its segments are (ties by a coin); an image net has
one "segment" a track. Stopping: samples seen to the best epoch are drawn from one distribution
for net5 and net6 (net6's epochs hold 2.3x the samples; a share of net5's in the alternatives),
the stop ``PATIENCE`` epochs later, capped at 50 epochs (``stop_epochs`` sets how often a cap binds).

Caveat: ``random`` is simulated as a fresh split of tracks per seed (its segments' leak is not
simulated: the leak biases the estimate, which no test can see).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from genre_models.config import SPLIT_SPECS, SplitConfig, check_at_least, check_choice, default_of
from genre_models.data.splits import effective_tracks, track_split
from genre_models.genres import GENRES
from genre_models.reporting.significance import Votes
from genre_models.reporting.worlds import GRID, model_key, offsets, solve_offset_base, sooner_share


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
    train_sd: float = 0.0  # the training-set component (see the module)
    fold_shared: float = 0.0  # share of run_sd's variance a seed's folds share
    artist_sd: float = 0.0  # a model's lasting lean on an artist's tracks
    artist_size: int = 3  # tracks an artist, consecutive within a genre
    stop_epochs: float = 20.0  # net5's median best epoch (the cap is 50: 40 makes it bind in 4 runs of 10)


SCENARIOS: dict[str, Noise] = {n.name: n for n in (
    #: The world real sweeps live in (the statistics review's): training noise, lasting track and
    #: artist leans, a training-set component as large as the run noise, and caps that bind.
    Noise(name="realistic", run_sd=0.1, lean_sd=0.5, vote_sd=0.5, train_sd=0.1, artist_sd=0.3, stop_epochs=40),
    Noise(name="training-noise", run_sd=0.15, lean_sd=0.0),
    Noise(name="track-lean", run_sd=0.05, lean_sd=1.0, vote_sd=0.3),
    Noise(name="few-discordant", run_sd=0.0, vote_sd=0.0, discordant=6),
)}
SCENARIOS.update({f"{n}+repeats": replace(s, name=f"{n}+repeats", repeat_share=0.2) for n, s in list(SCENARIOS.items())})


@dataclass(frozen=True)
class Draw:
    seed: int
    fold: int  # -1 where the split has none
    test: np.ndarray  # test track indices
    train: np.ndarray  # training track indices
    train_effective: int = 0  # the training tracks' effective number (``data.splits.effective_tracks``)


@dataclass(frozen=True)
class Layout:
    """Tracks, their recording (cluster) and artist, and each draw's test and training tracks."""

    track_ids: list[str]
    cluster: np.ndarray  # (tracks,) index of the recording each track is a copy of
    artist: np.ndarray  # (tracks,) the artist's index
    draws: list[Draw]


def layout(shape: Shape, noise: Noise, rng: np.random.Generator) -> Layout:
    """The tracks and the split's draws, made by the package's own split code (a fixed split: one
    seeded assignment of 290/930 of the tracks to test, as the filtered lists hold, whole artists
    to one part as theirs)."""
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
    artist = np.array([(i // per) * per + (i % per) // max(noise.artist_size, 1) for i in range(len(ids))])
    genres = [t.split(".")[0] for t in ids]
    fixed = not SPLIT_SPECS[shape.split].resampled
    groups = [ids[_root(c, artist, cluster)] if fixed else ids[c] for c in cluster]
    return Layout(ids, cluster, artist, _draws(shape, ids, genres, groups, cluster))


def _root(c: int, artist: np.ndarray, cluster: np.ndarray) -> int:
    """The first track of the artist of recording ``c`` (a copy joins its original's artist)."""
    return int(np.flatnonzero(artist == artist[c])[0])


def _draws(shape: Shape, ids: list[str], genres: list[str], groups: list[str], cluster: np.ndarray) -> list[Draw]:
    spec, out = SPLIT_SPECS[shape.split], []
    for seed in range(shape.seeds):
        for fold in range(shape.folds if spec.folded else 1):
            kind = "kfold" if spec.folded else "track"
            cfg = SplitConfig(split=kind, seed=seed if spec.resampled else 0, fold=fold, folds=max(shape.folds, 3),
                              **part_fractions(shape.split))
            part = list(track_split(ids, genres, cfg, groups).values())
            where = {p: np.array([i for i, q in enumerate(part) if q == p], dtype=int) for p in ("train", "test")}
            out.append(Draw(seed, fold if spec.folded else -1, where["test"], where["train"],
                            max(1, round(effective_tracks(cluster[where["train"]])))))
    return out


@dataclass(frozen=True)
class Dataset:
    """One simulated data set's lasting parts, shared by its models (a copy shares its original's)."""

    difficulty: np.ndarray  # (tracks,)
    fixed: np.ndarray | None  # few-discordant: each track's ease
    lasting: np.ndarray  # few-discordant: the recordings where models part for good


def simulate(shape: Shape, noise: Noise, lay: Layout, rng: np.random.Generator, world: str = "equal",
             effect: float = 0.0) -> tuple[pd.DataFrame, Votes]:
    """One sweep in ``world`` (``reporting.worlds``) as MLflow's runs frame (``tags.*``,
    ``params.*``, ``metrics.*``) and the votes."""
    n, c = len(lay.track_ids), lay.cluster
    base = solve_offset_base(noise)
    data = Dataset((rng.normal(0, noise.difficulty_sd, n) + base)[c], rng.random(n)[c] if noise.discordant else None,
                   rng.choice(np.unique(c), size=min(noise.discordant, len(np.unique(c))), replace=False)
                   if noise.discordant else np.zeros(0, int))
    shifts = offsets(noise, shape.segments, SPLIT_SPECS[shape.split].resampled, world, effect)
    rows, right = [], {}
    for net, epochs, image in GRID:
        model = _model_runs(shape, noise, lay, rng, data, net, epochs, image, shifts.get(model_key(net, epochs), 0.0),
                            sooner_share(world) if net == "net6" else 1.0, len(rows))
        for row, votes in model:
            right[row["run_id"]] = votes
            rows.append(row)
    groups = {t: lay.track_ids[g] for t, g in zip(lay.track_ids, c)}
    return pd.DataFrame(rows), Votes.of(right, groups)


def _model_runs(shape, noise, lay, rng, data, net, epochs, image, shift, stop_share, order) -> list:
    """One model's runs over the draws: (runs-frame row, votes) each."""
    n, c = len(lay.track_ids), lay.cluster
    lasting = data.difficulty + shift
    lasting = lasting + (rng.normal(0, noise.lean_sd, n)[c] if noise.lean_sd else 0.0)
    if noise.artist_sd and not SPLIT_SPECS[shape.split].resampled:  # artist clusters where the split keeps artists whole
        lasting = lasting + rng.normal(0, noise.artist_sd, lay.artist.max() + 1)[lay.artist[c]]
    contribution = rng.normal(0, 1, n)[c] if noise.train_sd else None
    own = (rng.random(n) < 0.5)[c] if noise.discordant else None
    shared = {s: rng.normal(0, noise.run_sd) for s in range(shape.seeds)}  # a seed's folds' shared part
    segs = 1 if image else shape.segments
    out = []
    for d in lay.draws:
        run = (math.sqrt(noise.fold_shared) * shared[d.seed] + math.sqrt(1 - noise.fold_shared) * rng.normal(0, noise.run_sd)
               if noise.run_sd else 0.0)
        if contribution is not None and d.train.size:
            run += noise.train_sd * contribution[d.train].sum() / math.sqrt(d.train.size)
        eta = lasting + run + (rng.normal(0, noise.vote_sd, n)[c] if noise.vote_sd else 0.0)
        seg_right = _segments(eta[d.test], segs, rng, c[d.test])
        if noise.discordant:
            seg_right = _few(seg_right, d.test, data.fixed, own, np.isin(c[d.test], data.lasting), segs)
        vote = (seg_right * 2 > segs) | ((seg_right * 2 == segs) & (rng.random(d.test.size) < 0.5))
        rid = f"{net}-{epochs}-{d.seed}-{d.fold}-{order + len(out)}"
        row = _run_row(rid, net, epochs, d, shape, segs, seg_right, vote, rng, order + len(out), noise, stop_share)
        out.append((row, dict(zip((lay.track_ids[i] for i in d.test), vote.tolist()))))
    return out


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


def _run_row(rid, net, epochs, d: Draw, shape, segs, seg_right, vote, rng, order, noise, stop_share) -> dict:
    n_test_tracks, n_train_tracks = d.test.size, d.train.size
    real = n_train_tracks * segs
    n_train = int(real * GAN_SHARE) if net == "net6" else real
    seen = stop_share * math.exp(rng.normal(math.log(noise.stop_epochs * n_train_tracks * shape.segments), 0.5))
    best = min(epochs, max(1, math.ceil(seen / n_train)))  # samples to the best epoch, in epochs
    stop = min(epochs, best + PATIENCE)
    row = {"run_id": rid, "status": "FINISHED", "start_time": order, "artifact_uri": "",
           "tags.stage": "train", "tags.net": net, "tags.split": shape.split, "tags.seed": str(d.seed),
           "tags.fold": str(d.fold) if d.fold >= 0 else None, "tags.dataset": "simulated", "tags.dataset_synthetic": "true",
           "params.epochs": str(epochs), "params.n_test": str(n_test_tracks * segs), "params.n_train": str(n_train),
           "params.n_test_tracks": str(n_test_tracks), "params.n_train_tracks": str(n_train_tracks),
           "params.n_train_effective": str(d.train_effective or n_train_tracks),
           "metrics.test_accuracy": float(seg_right.sum() / (n_test_tracks * segs)),
           "metrics.test_track_accuracy": float(vote.mean()), "metrics.val_track_accuracy": float(rng.random())}
    if net in ("net5", "net6", "net5-raw"):
        row["metrics.stopped_epoch"], row["metrics.best_epoch"] = float(stop), float(best)
    if net == "net6":
        row["params.n_train_real"] = str(real)
    return row
