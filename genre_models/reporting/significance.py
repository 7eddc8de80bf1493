"""Whether models differ on one split: every difference the report tests is a *contrast* (a
sum of models' metrics per draw, ``Contrast``), estimated under the split's own variance
(``reporting.stats``: the corrected resampled t on a resampled split, seeds plus test tracks on
a fixed one) with the exact sign-flip test over track clusters beside it. McNemar's test is
given per draw and decides nothing.

Pure: it takes the report's runs table (``reporting.runs.select_runs``: one row per model and
draw, with ``model``, ``seed``, ``fold``, ``run_id``, ``ratio``, ``unit`` and the metric
columns) and each run's per-track votes (``Votes``), and reads no store.

A *model* is a net at an epoch budget (``net2 50 ep``), an early-stopping net (``net5``) or a
baseline (``svm``); a *draw* is a (seed, fold) pair, fold -1 where the split has none. Models
pair on the draws all of them ran, which share one split.

**Which accuracy.** On a resampled split, two models that score the same unit (segments,
images) are compared on ``test_accuracy``, others on ``test_track_accuracy`` (the vote per
track, which every model has). On a fixed split always on the track vote: its test set's
sampling error is counted over tracks, so the metric must be the tracks' own. Each sentence
names it.

**The correction's ratio** is the contrast's: n_test / n_train of the draws its models ran,
from the *real* training part (tracks where the split assigns tracks; net6's generated clips
never count), so the models of a contrast share one ratio.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

from genre_models.config import SPLIT_SPECS
from genre_models.reporting.mcnemar import McNemar, mcnemar
from genre_models.reporting.stats import Paired, Spread, corrected_spread, fmt_p, paired_of, two_way_spread
from genre_models.reporting.tables import md

#: What the metric is called in a sentence, by the unit both models score.
UNIT_WORDS = {"segments": "accuracy over segments", "images": "accuracy over images", "tracks": "track accuracy (vote)"}
TRACKS = "test_track_accuracy"


@dataclass(frozen=True)
class Votes:
    """Which test tracks each run got right: one int8 row per run over every track any run scored
    (1 right, 0 wrong, -1 not scored), and each track's cluster (its repeat group, or itself)."""

    tracks: tuple[str, ...]
    rows: dict  # run id -> (n_tracks,) int8
    clusters: np.ndarray  # (n_tracks,) int: tracks of one repeated recording share one

    @classmethod
    def of(cls, right: dict[str, dict[str, bool]], groups: dict[str, str] | None = None) -> "Votes":
        """From each run's votes (track id -> whether its vote was right) and, where runs logged
        it, each track's repeat group (track id -> group id)."""
        tracks = sorted({t for votes in right.values() for t in votes})
        index = {t: i for i, t in enumerate(tracks)}
        rows = {}
        for rid, votes in right.items():
            row = np.full(len(tracks), -1, np.int8)
            row[[index[t] for t in votes]] = list(votes.values())
            rows[rid] = row
        names = [(groups or {}).get(t) or t for t in tracks]
        return cls(tuple(tracks), rows, np.unique(names, return_inverse=True)[1] if names else np.zeros(0, int))

    def matrix(self, run_ids: list[str]) -> np.ndarray:
        """(len(run_ids), tracks): a run with no votes is all -1."""
        empty = np.full(len(self.tracks), -1, np.int8)
        return np.stack([self.rows.get(r, empty) for r in run_ids]) if run_ids else np.zeros((0, len(self.tracks)), np.int8)

    def has(self, run_ids) -> bool:
        return all(r in self.rows for r in run_ids)

    def by_blocks(self) -> "Votes":
        """The same votes with each run of consecutive track numbers of a genre one cluster (merged
        with the repeat groups): on `filtered`, where no artist is in two parts and GTZAN numbers an
        artist's excerpts mostly in a row (Sturm 2013), such a block holds whole artists, so tracks
        of one artist are not taken as independent. Caveat: an artist whose excerpts are scattered
        can still span two blocks; a block may hold several artists (coarser is still valid)."""
        if not self.tracks:
            return self
        parent = list(range(len(self.tracks)))

        def root(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for members in _indices_by(self.clusters).values():  # repeat groups
            for j in members[1:]:
                parent[root(j)] = root(members[0])
        keys = [_genre_number(t) for t in self.tracks]
        order = sorted((k, i) for i, k in enumerate(keys) if k is not None)
        for (a, i), (b, j) in zip(order, order[1:]):
            if a[0] == b[0] and b[1] == a[1] + 1:
                parent[root(j)] = root(i)
        return Votes(self.tracks, self.rows, np.unique([root(i) for i in range(len(self.tracks))], return_inverse=True)[1])


NO_VOTES = Votes((), {}, np.zeros(0, int))


def _indices_by(labels: np.ndarray) -> dict:
    out: dict = {}
    for i, g in enumerate(labels.tolist()):
        out.setdefault(g, []).append(i)
    return out


def _genre_number(track: str) -> tuple[str, int] | None:
    """``blues.00012`` -> ("blues", 12); None for a name that is not a genre and a number."""
    head, _, tail = track.rpartition(".")
    return (head, int(tail)) if head and tail.isdigit() else None


@dataclass(frozen=True)
class Contrast:
    """A difference per draw: the sum of ``coefficient x metric`` over its models, plus ``offset``
    (``b - a`` is ``((a, -1), (b, 1))``)."""

    terms: tuple[tuple[str, float], ...]
    metric: str
    offset: float = 0.0

    @classmethod
    def pair(cls, a: str, b: str, column: str) -> "Contrast":
        return cls(((a, -1.0), (b, 1.0)), column)

    @property
    def models(self) -> list[str]:
        return [m for m, _ in self.terms]


def split_metric(split: str, column: str) -> str:
    """The metric a contrast is tested on: a fixed split's always the track vote (see the module)."""
    return column if SPLIT_SPECS[split].resampled or column not in ("test_accuracy", TRACKS) else TRACKS


def draw_keys(runs: pd.DataFrame) -> list[tuple[int, int]]:
    return list(zip(runs.seed.astype(int), runs.fold.astype(int)))


class SplitData:
    """One split's runs indexed once by model: each model's runs, and its values, run ids and
    correction ratios per draw, read from plain records (the tests look these up hundreds of
    times, and a pandas filter costs a millisecond each)."""

    def __init__(self, sub: pd.DataFrame, split: str):
        self.sub, self.split = sub, split
        self._records: dict[str, list[dict]] = {}
        for rec in sub.to_dict("records"):
            self._records.setdefault(rec["model"], []).append(rec)
        self._memo: dict = {}

    def runs(self, model: str) -> pd.DataFrame:
        return self._cached((model, None), lambda: self.sub[self.sub.model == model])

    def units(self, model: str) -> set:
        return {r["unit"] for r in self._records.get(model, [])}

    def _cached(self, key, make):
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    def _per_draw(self, model: str, column: str) -> dict:
        out = {}
        for r in self._records.get(model, []):
            v = _number(r.get(column))
            if math.isfinite(v):
                out[(int(r["seed"]), int(r["fold"]))] = v
        return out

    def values(self, model: str, name: str) -> dict:
        """A metric per draw (``metrics.<name>``), finite values only."""
        return self._cached((model, name), lambda: self._per_draw(model, f"metrics.{name}"))

    def run_ids(self, model: str) -> dict:
        return self._cached((model, "run_id"), lambda: {(int(r["seed"]), int(r["fold"])): r["run_id"]
                                                        for r in self._records.get(model, [])})

    def ratios(self, model: str) -> dict:
        return self._cached((model, "ratio"), lambda: self._per_draw(model, "ratio"))


def _number(v) -> float:
    """A value from the store as a float; anything that is not a number is nan (as pandas' coerce)."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def contrast_ratio(data: SplitData, models: list[str], keys: list) -> float:
    """The contrast's n_test / n_train: the mean run ratio of its models over its draws; nan where
    a run lacks its sample counts (the correction cannot be sized, so the contrast is not tested)."""
    r = [data.ratios(m).get(k, math.nan) for m in models for k in keys]
    return float(np.mean(r)) if r else math.nan


def _vote_contrast(runs: dict, contrast: Contrast, keys: list, votes: Votes) -> np.ndarray | None:
    """(draws, tracks): the contrast of the votes (nan where a term's run did not score the
    track); None unless every run of every draw has votes."""
    ids = {m: [runs[m][k] for k in keys] for m in contrast.models}
    if not keys or not all(votes.has(v) for v in ids.values()):
        return None
    out = np.full((len(keys), len(votes.tracks)), contrast.offset)
    for m, coef in contrast.terms:
        mat = votes.matrix(ids[m]).astype(float)
        out += coef * np.where(mat >= 0, mat, np.nan)
    return out


def _cluster_sums(votes_c: np.ndarray | None, contrast: Contrast, clusters: np.ndarray) -> np.ndarray | None:
    """The contrast's votes summed over draws per track cluster, for the sign-flip test: only for
    a contrast with no offset and integer coefficients (whose sums are counts of votes)."""
    if votes_c is None or contrast.offset or any(c != round(c) for _, c in contrast.terms):
        return None
    scored = np.isfinite(votes_c).any(0)
    per_track = np.nansum(votes_c[:, scored], 0)
    ids, inverse = np.unique(clusters[scored], return_inverse=True)
    return np.bincount(inverse, weights=per_track, minlength=ids.size)


def estimate(data: SplitData, contrast: Contrast, votes: Votes, bounds: tuple[float, float] = (-1.0, 1.0)) -> Paired:
    """The contrast over the draws all its models ran on the split, tested under the split's
    variance, unadjusted. One model against a bound on a resampled split takes the two-way
    spread too: the corrected t cancels what the dataset's tracks share only in a *difference*;
    one model's accuracy carries the tracks' difficulty, which no number of seeds averages out."""
    values = {m: data.values(m, contrast.metric) for m in contrast.models}
    keys = sorted(set.intersection(*(set(v) for v in values.values()))) if values else []
    d = np.asarray([sum(c * values[m][k] for m, c in contrast.terms) + contrast.offset for k in keys], float)
    votes_c = _vote_contrast({m: data.run_ids(m) for m in contrast.models}, contrast, keys, votes)
    if SPLIT_SPECS[data.split].resampled and not (len(contrast.models) == 1 and votes_c is not None):
        ratio = contrast_ratio(data, contrast.models, keys)
        spread = corrected_spread(d, ratio) if math.isfinite(ratio) else Spread(
            float(d.std(ddof=1)) if d.size > 1 else 0.0, int(d.size), math.nan, d.size - 1, "corrected")
    elif votes_c is None:
        spread = Spread(float(d.std(ddof=1)) if d.size > 1 else 0.0, int(d.size), float("nan"), 0, "two-way")
    else:
        ratio = contrast_ratio(data, contrast.models, keys)
        spread = two_way_spread(d, np.nanmean(votes_c, 0) if votes_c.size else np.zeros(0), votes.clusters,
                                ratio if math.isfinite(ratio) else math.nan)
    return paired_of(d, tuple(keys), spread, _cluster_sums(votes_c, contrast, votes.clusters), bounds)


@dataclass(frozen=True)
class Comparison:
    """Model b against model a on one split."""

    split: str
    a: str
    b: str
    metric: str  # the runs' metric the test compared
    metric_words: str  # what it is, in a sentence ("accuracy over segments")
    paired: Paired  # b - a over draws
    mcnemar: McNemar

    def sentence(self) -> str:
        d, a, b = self.paired.diff, md(self.a), md(self.b)  # names from run tags
        fixed = "" if SPLIT_SPECS[self.split].resampled else (
            f"; on this fixed split the test counts the seeds' spread and the sampling error of its "
            f"{self.mcnemar.tracks} test tracks, and the verdict is about these tracks' population, not new splits")
        return (f"On `{self.split}`, {b} − {a} in {self.metric_words} = {d.fmt(3)}: {self.paired.verdict}{fixed}. "
                f"{self.mcnemar.words(a, b)}.")

    def row(self) -> dict:
        d, m, t = self.paired.diff, self.mcnemar, self.paired
        return {"split": self.split, "a": self.a, "b": self.b, "metric": self.metric, "draws": d.n,
                "diff_b_minus_a": d.mean, "diff_lo": d.lo, "diff_hi": d.hi, "test": t.test, "ratio": t.spread.ratio,
                "se": t.spread.se, "df": t.spread.df, "t_p": t.p_t, "sign_flip_p": t.p_clusters,
                "track_clusters": t.clusters, "p": t.p, "p_holm": t.p_adjusted, "holm_family": t.family,
                "not_tested_because": t.why, "mcnemar_draws": m.draws, "mcnemar_draws_differing": m.differed,
                "only_a_right": m.only_a, "only_b_right": m.only_b, "tracks": m.tracks}


def pair_metric(units: set, split: str) -> tuple[str, str]:
    """(metric, its words) for models scoring ``units``: see the module's "Which accuracy"."""
    if len(units) == 1 and SPLIT_SPECS[split].resampled:
        return "test_accuracy", UNIT_WORDS.get(units.pop(), "test accuracy")
    return TRACKS, UNIT_WORDS["tracks"]


def per_draw_mcnemar(data: SplitData, a: str, b: str, votes: Votes) -> McNemar:
    a_runs, b_runs = data.run_ids(a), data.run_ids(b)
    shared = sorted(set(a_runs) & set(b_runs))
    return mcnemar(votes.matrix([a_runs[k] for k in shared]), votes.matrix([b_runs[k] for k in shared]))


def compare(data: SplitData, a: str, b: str, votes: Votes, metric: tuple[str, str] | None = None) -> Comparison:
    """Model b against model a on the split, unadjusted. ``metric``: (column, words) to compare
    on instead of ``pair_metric``'s choice."""
    column, words = metric or pair_metric(data.units(a) | data.units(b), data.split)
    return Comparison(data.split, a, b, column, words, estimate(data, Contrast.pair(a, b, column), votes),
                      per_draw_mcnemar(data, a, b, votes))


def all_pairs(data: SplitData, models: list[str], votes: Votes) -> list[Comparison]:
    """Every pair of ``models`` (b after a in the given order), unadjusted: exploratory."""
    return [compare(data, a, b, votes) for a, b in combinations(models, 2)]


MATRIX_AXIS = "unadjusted p of the split's test above; below, draws in which McNemar found the trained nets different"


def p_matrix(comparisons: list[Comparison], models: list[str]) -> pd.DataFrame:
    """A models x models table: the split's test's unadjusted p above the diagonal (row a, column
    b); below it (row b, column a), McNemar's per draw as ``differing / draws``. Exploratory: no
    verdict is drawn from it."""
    m = pd.DataFrame("", index=models, columns=models, dtype=object)
    for c in comparisons:
        m.loc[c.a, c.b] = fmt_p(c.paired.p)
        m.loc[c.b, c.a] = f"{c.mcnemar.differed}/{c.mcnemar.draws}" if c.mcnemar.draws else "–"
    for name in models:
        m.loc[name, name] = "·"
    return m.rename_axis(MATRIX_AXIS)
