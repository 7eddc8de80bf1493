"""Whether two models differ on one split: the corrected paired t-test over draws (the verdict)
and McNemar's test on the track votes both scored (beside it), for the comparisons the report
draws and as an all-pairs matrix, Holm-adjusted within the split.

Pure: it takes the report's runs table (``reporting.runs.select_runs``: one row per model and
draw, with ``model``, ``seed``, ``fold``, ``run_id``, ``ratio``, ``unit`` and the metric
columns) and each run's per-track votes (``Votes``), and reads no store.

A *model* is a net at an epoch budget (``net2 50 ep``), an early-stopping net (``net5``) or a
baseline (``svm``); a *draw* is a (seed, fold) pair, fold -1 where the split has none. Two
models pair on the draws both ran, which share one split.

**Which accuracy.** Two models that score the same unit (segments, images) are compared on
``test_accuracy``; two that do not (net5's segments against net2's images) on
``test_track_accuracy``, the vote per track, which every model has. Each sentence names it.

**The correction's ratio** is the pair's: n_test / n_train of the draws both ran, from the
*real* training part (tracks where the split assigns tracks; net6's generated clips never
count), so the two nets of a pair share one ratio.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from itertools import combinations

import numpy as np
import pandas as pd

from genre_models.config import SPLIT_SPECS
from genre_models.reporting.runs import metric
from genre_models.reporting.stats import McNemar, Paired, adjusted, clustered_mcnemar, fmt_p, holm, paired_test
from genre_models.reporting.tables import md

#: What the metric is called in a sentence, by the unit both models score.
UNIT_WORDS = {"segments": "accuracy over segments", "images": "accuracy over images", "tracks": "track accuracy (vote)"}


@dataclass(frozen=True)
class Votes:
    """Which test tracks each run got right: one int8 row per run over every track any run scored
    (1 right, 0 wrong, -1 not scored), so a pair's McNemar test is array arithmetic."""

    tracks: tuple[str, ...]
    rows: dict  # run id -> (n_tracks,) int8

    @classmethod
    def of(cls, right: dict[str, dict[str, bool]]) -> "Votes":
        """From each run's votes: track id -> whether its vote was right."""
        tracks = sorted({t for votes in right.values() for t in votes})
        index = {t: i for i, t in enumerate(tracks)}
        rows = {}
        for rid, votes in right.items():
            row = np.full(len(tracks), -1, np.int8)
            row[[index[t] for t in votes]] = list(votes.values())
            rows[rid] = row
        return cls(tuple(tracks), rows)

    def matrix(self, run_ids: list[str]) -> np.ndarray:
        """(len(run_ids), tracks): a run with no votes is all -1."""
        empty = np.full(len(self.tracks), -1, np.int8)
        return np.stack([self.rows.get(r, empty) for r in run_ids]) if run_ids else np.zeros((0, len(self.tracks)), np.int8)


@dataclass(frozen=True)
class Comparison:
    """Model b against model a on one split."""

    split: str
    a: str
    b: str
    metric: str  # the runs' metric the t-test compared
    metric_words: str  # what it is, in a sentence ("accuracy over segments")
    paired: Paired  # b - a over draws
    mcnemar: McNemar

    def sentence(self) -> str:
        d, a, b = self.paired.diff, md(self.a), md(self.b)  # names from run tags
        fixed = "" if SPLIT_SPECS[self.split].resampled else (
            f"; on a fixed split this describes training noise on these {self.mcnemar.tracks} test tracks, not the "
            "sampling error of the test set itself")
        return (f"On `{self.split}`, {b} − {a} in {self.metric_words} = {d.fmt(3)}: {self.paired.verdict}{fixed}. "
                f"{self.mcnemar.words(a, b)}.")

    def row(self) -> dict:
        d, m, t = self.paired.diff, self.mcnemar, self.paired
        return {"split": self.split, "a": self.a, "b": self.b, "metric": self.metric, "draws": d.n,
                "diff_b_minus_a": d.mean, "diff_lo": d.lo, "diff_hi": d.hi, "t_test": t.test, "ratio": t.ratio,
                "t_p": t.p, "t_p_holm": t.p_adjusted, "tracks": m.tracks, "track_votes": m.pairs,
                "only_a_right": m.only_a, "only_b_right": m.only_b, "mcnemar": "clustered" if m.clustered else "exact",
                "mcnemar_p": m.p, "mcnemar_p_holm": m.p_adjusted}


def draw_keys(runs: pd.DataFrame) -> list[tuple[int, int]]:
    return list(zip(runs.seed.astype(int), runs.fold.astype(int)))


def pair_metric(ra: pd.DataFrame, rb: pd.DataFrame) -> tuple[str, str]:
    """(metric, its words): ``test_accuracy`` where both models score the same unit, else the
    track vote's ``test_track_accuracy``."""
    units = set(ra.unit) | set(rb.unit)
    if len(units) == 1:
        return "test_accuracy", UNIT_WORDS.get(units.pop(), "test accuracy")
    return "test_track_accuracy", UNIT_WORDS["tracks"]


def by_draw(runs: pd.DataFrame, name: str) -> dict[tuple[int, int], float]:
    """A metric of ``runs`` per draw (the runs table holds one run per model and draw)."""
    return {k: float(v) for k, v in zip(draw_keys(runs), metric(runs, name)) if np.isfinite(v)}


def shared_ratio(ra: pd.DataFrame, rb: pd.DataFrame) -> float:
    """The pair's n_test / n_train: the mean run ratio over the draws both ran (0 where unknown)."""
    shared = set(draw_keys(ra)) & set(draw_keys(rb))
    both = pd.concat([ra, rb])
    r = pd.to_numeric(both.ratio[[k in shared for k in draw_keys(both)]], errors="coerce").dropna()
    return float(r.mean()) if len(r) else 0.0


def _mcnemar(ra: pd.DataFrame, rb: pd.DataFrame, votes: Votes) -> McNemar:
    a_runs, b_runs = dict(zip(draw_keys(ra), ra.run_id)), dict(zip(draw_keys(rb), rb.run_id))
    shared = sorted(set(a_runs) & set(b_runs))
    return clustered_mcnemar(votes.matrix([a_runs[k] for k in shared]), votes.matrix([b_runs[k] for k in shared]))


def compare(runs: pd.DataFrame, split: str, a: str, b: str, votes: Votes,
            metric: tuple[str, str] | None = None) -> Comparison:
    """Model b against model a on ``split`` (``runs``: that split's runs), unadjusted.
    ``metric``: (column, words) to compare on instead of ``pair_metric``'s choice."""
    ra, rb = runs[runs.model == a], runs[runs.model == b]
    metric, words = metric or pair_metric(ra, rb)
    ratio = shared_ratio(ra, rb) if SPLIT_SPECS[split].resampled else 0.0
    return Comparison(split, a, b, metric, words, paired_test(by_draw(ra, metric), by_draw(rb, metric), ratio),
                      _mcnemar(ra, rb, votes))


def family(comparisons: list[Comparison]) -> list[Comparison]:
    """The comparisons with Holm's adjustment over them as one family, t-tests and McNemar's
    tests each (p-values not computed stay out of the count)."""
    tests = adjusted([c.paired for c in comparisons])
    mc = holm(c.mcnemar.p if c.mcnemar.tracks else math.nan for c in comparisons)
    return [replace(c, paired=t, mcnemar=replace(c.mcnemar, p_adjusted=q)) for c, t, q in zip(comparisons, tests, mc)]


def all_pairs(runs: pd.DataFrame, split: str, models: list[str], votes: Votes) -> list[Comparison]:
    """Every pair of ``models`` (b after a in the given order), Holm-adjusted as one family."""
    return family([compare(runs, split, a, b, votes) for a, b in combinations(models, 2)])


def p_matrix(comparisons: list[Comparison], models: list[str]) -> pd.DataFrame:
    """A models x models table of Holm-adjusted p-values: the t-test's above the diagonal (row
    a, column b), McNemar's below it (row b, column a)."""
    m = pd.DataFrame("", index=models, columns=models, dtype=object)
    for c in comparisons:
        m.loc[c.a, c.b] = fmt_p(c.paired.decisive_p)
        m.loc[c.b, c.a] = fmt_p(c.mcnemar.p_adjusted) if c.mcnemar.tracks else "–"
    for name in models:
        m.loc[name, name] = "·"
    return m.rename_axis("Holm-adjusted: t-test above, McNemar below")

