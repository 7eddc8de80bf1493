"""Train/val/test splits. Splits are data: a pure function of (track ids, genres, method, seed).

* ``random``: the study's protocol, 70/20/10 at random over *samples*. For MFCC segments it
  puts segments of one song on both sides of the split, which inflates test accuracy.
* ``track``: 70/20/10 per genre over *tracks*; a track's segments all go where the track goes.
* ``filtered``: the artist-filtered lists of Kereliuk, Sturm & Larsen (2015), shipped in
  ``genre_models/data/split_lists``. Tracks not on the lists are excluded (returned as ``None``).
* ``kfold``: k-fold cross-validation over tracks (Tzanetakis & Cook 2002 used 10 folds). Each
  genre's tracks, shuffled by the seed, are dealt to the folds in turn (stratified by genre);
  a run tests fold ``fold``, validates on the next one and trains on the rest, so the
  validation part never holds a test track, and over the folds every track is tested once.

Groups (repeated recordings, ``data.repeats``) are assigned as one track by every track-level
method, so a group never sits on two sides of a split or in two folds.

The names, descriptions and honesty of the methods are the registry ``config.SPLIT_SPECS``.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np

from genre_models.config import SPLITS, SplitConfig

PARTS = ("train", "val", "test")
_FILTERED_FILES = {"train": "train_filtered.txt", "val": "valid_filtered.txt", "test": "test_filtered.txt"}


@lru_cache(maxsize=1)
def filtered_split() -> dict[str, str]:
    """track id -> part, from the shipped artist-filtered lists (443/197/290 tracks)."""
    out: dict[str, str] = {}
    base = resources.files("genre_models") / "data" / "split_lists"
    for part, name in _FILTERED_FILES.items():
        for line in (base / name).read_text().splitlines():
            line = line.strip()
            if line:
                # "blues/blues.00029.wav" -> "blues.00029"
                out[line.rsplit("/", 1)[-1].rsplit(".", 1)[0]] = part
    return out


def _part_sizes(n: int, cfg: SplitConfig) -> tuple[int, int, int]:
    """Sizes for n items; with 3 or more items every part gets at least one."""
    n_test = int(round(n * (1 - cfg.train_fraction - cfg.val_fraction)))
    n_val = int(round(n * cfg.val_fraction))
    if n >= 3:
        n_test, n_val = max(1, n_test), max(1, n_val)
    n_train = n - n_val - n_test
    return n_train, n_val, n_test


def _filtered_assign(track_ids: list[str], genres: list[str], cfg: SplitConfig) -> dict[str, str | None]:
    lists = filtered_split()
    return {t: lists.get(t) for t in track_ids}


def _track_assign(track_ids: list[str], genres: list[str], cfg: SplitConfig) -> dict[str, str | None]:
    rng = np.random.default_rng(cfg.seed)
    out: dict[str, str | None] = {}
    for genre in sorted(set(genres)):
        members = sorted(t for t, g in zip(track_ids, genres) if g == genre)
        order = [members[i] for i in rng.permutation(len(members))]
        n_train, n_val, _ = _part_sizes(len(order), cfg)
        for i, t in enumerate(order):
            out[t] = "train" if i < n_train else "val" if i < n_train + n_val else "test"
    return out


def kfold_folds(track_ids: list[str], genres: list[str], folds: int, seed: int) -> dict[str, int]:
    """Each track's fold: per genre (in sorted order), the tracks shuffled by ``seed`` and dealt
    to the folds in turn, each genre starting where the last one stopped. So every fold holds
    the same share of each genre, within one track, and fold sizes differ by at most one."""
    rng = np.random.default_rng(seed)
    out: dict[str, int] = {}
    at = 0
    for genre in sorted(set(genres)):
        members = sorted(t for t, g in zip(track_ids, genres) if g == genre)
        for i in rng.permutation(len(members)):
            out[members[i]] = at % folds
            at += 1
    return out


def _kfold_assign(track_ids: list[str], genres: list[str], cfg: SplitConfig) -> dict[str, str | None]:
    fold_of = kfold_folds(track_ids, genres, cfg.folds, cfg.seed)
    val = (cfg.fold + 1) % cfg.folds
    return {t: "test" if f == cfg.fold else "val" if f == val else "train" for t, f in fold_of.items()}


#: Split methods that assign whole tracks; any other method in ``SPLITS`` assigns samples.
TRACK_ASSIGNERS = {"track": _track_assign, "filtered": _filtered_assign, "kfold": _kfold_assign}
#: Track-level methods that read a track's part from a list, so a group's head may be unlisted.
GROUP_PART_FROM_MEMBERS = {"filtered"}


def _random_parts(n: int, cfg: SplitConfig) -> np.ndarray:
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(n)
    n_train, n_val, _ = _part_sizes(n, cfg)
    parts = np.empty(n, dtype=np.int8)
    parts[order[:n_train]] = 0
    parts[order[n_train : n_train + n_val]] = 1
    parts[order[n_train + n_val :]] = 2
    return parts


#: Split methods that scatter samples regardless of their track (the leaky ones).
SAMPLE_ASSIGNERS = {"random": _random_parts}
assert set(TRACK_ASSIGNERS) | set(SAMPLE_ASSIGNERS) == set(SPLITS), "every registered split needs a rule here"


def track_split(track_ids: list[str], genres: list[str], cfg: SplitConfig,
                groups: list[str] | None = None) -> dict[str, str | None]:
    """Assign each track to a part under a track-level method. Deterministic for a seed.

    ``groups``: per track, the id of the group it belongs to (a group's first track's id, e.g.
    exact audio repeats); a group goes to one part. The group ids are assigned as tracks would
    be, so with no repeats the split is the same as without ``groups``.
    """
    if cfg.split not in TRACK_ASSIGNERS:
        raise ValueError(f"track_split handles {', '.join(TRACK_ASSIGNERS)}, not {cfg.split!r}")
    if groups is None:
        return TRACK_ASSIGNERS[cfg.split](track_ids, genres, cfg)
    heads = sorted(set(groups))
    genre_of = dict(zip(track_ids, genres))
    by_head = TRACK_ASSIGNERS[cfg.split](heads, [genre_of.get(h, "") for h in heads], cfg)
    if cfg.split in GROUP_PART_FROM_MEMBERS:  # a list-based split: a group takes its first listed member's part
        members = TRACK_ASSIGNERS[cfg.split](track_ids, genres, cfg)
        for t, g in sorted(zip(track_ids, groups)):
            if by_head.get(g) is None and members[t] is not None:
                by_head[g] = members[t]
    return {t: by_head[g] for t, g in zip(track_ids, groups)}


def sample_split(sample_tracks: np.ndarray, track_ids: list[str], genres: list[str], cfg: SplitConfig,
                 groups: list[str] | None = None) -> np.ndarray:
    """Part index (0 train, 1 val, 2 test, -1 excluded) for every sample.

    ``sample_tracks`` holds each sample's row in ``track_ids`` (a segment's or image's track);
    ``groups`` as in ``track_split`` (the sample-level methods scatter samples regardless).
    """
    n = len(sample_tracks)
    if cfg.split in SAMPLE_ASSIGNERS:
        return SAMPLE_ASSIGNERS[cfg.split](n, cfg)
    assign = track_split(track_ids, genres, cfg, groups)
    code = {"train": 0, "val": 1, "test": 2, None: -1}
    per_track = np.array([code[assign[t]] for t in track_ids], dtype=np.int8)
    return per_track[sample_tracks] if n else np.zeros(0, dtype=np.int8)


def effective_tracks(groups) -> float:
    """Kish's effective number of tracks in a part whose tracks fall in repeat ``groups`` (one
    label a track; a track alone is its own group): ``n^2 / sum(m_g^2)``, ``m_g`` the group's
    tracks. A repeated recording teaches a net no new excerpt, so Nadeau & Bengio's
    ``n_test / n_train`` counts the training part by it (``reporting.runs``): with a fifth of the
    tracks copies, the plain count made the training set's term too small, and `filtered` at 20
    seeds rejected up to 5.9% of true nulls (docs/protocol.md)."""
    _, m = np.unique(np.asarray(list(groups), dtype=object).astype(str), return_counts=True)
    return float(m.sum() ** 2 / (m.astype(float) ** 2).sum()) if m.size else 0.0
