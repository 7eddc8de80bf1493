"""Whether two nets differ on one split: the paired test over draws and McNemar's test on the
test tracks both scored, for the comparisons the report draws and as an all-pairs matrix.

Pure: it takes the report's runs table (one row per run: ``model``, ``seed``, ``fold``,
``run_id``, ``n_test``, ``n_train`` and the ``metrics.test_accuracy`` column) and each run's
per-track predictions (``training.evaluate.PREDICTIONS_FILE``), and reads no store.

A *model* is a net at an epoch budget (``net2 50 ep``) or an early-stopping net (``net5``); a
*draw* is a (seed, fold) pair, fold -1 where the split has none. Two models pair on the draws
both ran, which share one split, so their test tracks are the same ones (under ``random`` an
image net's test tracks are a subset of an MFCC net's, and the tracks both scored are used).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

from genre_models.reporting.stats import ALPHA, McNemar, Paired, fmt_p, mcnemar, paired_test
from genre_models.reporting.tables import md


@dataclass(frozen=True)
class Comparison:
    """Model b against model a on one split."""

    split: str
    a: str
    b: str
    paired: Paired  # b - a over draws
    mcnemar: McNemar

    @property
    def verdict(self) -> str:
        """The paired test's verdict, and where McNemar's test disagrees with it, that too."""
        words = self.paired.verdict
        if np.isfinite(self.paired.p) and self.mcnemar.tracks:
            t_sig, m_sig = self.paired.p < ALPHA, self.mcnemar.p < ALPHA
            if t_sig != m_sig:
                words += f"; McNemar's test {'does' if m_sig else 'does not'} find a difference at {ALPHA:g}"
        return words

    def sentence(self) -> str:
        d = self.paired.diff
        a, b = md(self.a), md(self.b)  # names from run tags
        return f"On `{self.split}`, {b} − {a} test accuracy = {d.fmt(3)}: {self.verdict}; {self.mcnemar.words(a, b)}."

    def row(self) -> dict:
        d, m = self.paired.diff, self.mcnemar
        return {"split": self.split, "a": self.a, "b": self.b, "draws": d.n, "diff_b_minus_a": d.mean,
                "diff_lo": d.lo, "diff_hi": d.hi, "t_test": self.paired.test, "t_p": self.paired.p,
                "tracks": m.tracks, "only_a_right": m.only_a, "only_b_right": m.only_b, "mcnemar_p": m.p}


def draw_keys(runs: pd.DataFrame) -> list[tuple[int, int]]:
    return list(zip(runs.seed.astype(int), runs.fold.astype(int)))


def ratio_of(runs: pd.DataFrame) -> float:
    """n_test / n_train over the runs, for Nadeau & Bengio's correction (0 where unknown)."""
    r = (pd.to_numeric(runs.n_test, errors="coerce") / pd.to_numeric(runs.n_train, errors="coerce")).dropna()
    return float(r.mean()) if len(r) else 0.0


def _accuracy_by_draw(runs: pd.DataFrame) -> dict[tuple[int, int], float]:
    acc = pd.to_numeric(runs["metrics.test_accuracy"], errors="coerce")
    return {k: float(v) for k, v in zip(draw_keys(runs), acc) if np.isfinite(v)}


def _pooled_tracks(a: pd.DataFrame, b: pd.DataFrame, predictions: dict[str, pd.DataFrame]) -> McNemar:
    """McNemar over the test tracks both models scored in each draw both ran, pooled."""
    a_right, b_right = [], []
    a_runs, b_runs = dict(zip(draw_keys(a), a.run_id)), dict(zip(draw_keys(b), b.run_id))
    for key in sorted(set(a_runs) & set(b_runs)):
        pa, pb = predictions.get(a_runs[key]), predictions.get(b_runs[key])
        if pa is None or pb is None:
            continue
        both = pa.merge(pb, on="track_id", suffixes=("_a", "_b"))
        a_right += list(both.predicted_a == both.true_a)
        b_right += list(both.predicted_b == both.true_b)
    return mcnemar(a_right, b_right)


def compare(runs: pd.DataFrame, split: str, a: str, b: str, predictions: dict[str, pd.DataFrame],
            resampled: bool) -> Comparison:
    """Model b against model a on ``split`` (``runs``: that split's runs)."""
    ra, rb = runs[runs.model == a], runs[runs.model == b]
    ratio = ratio_of(pd.concat([ra, rb])) if resampled else 0.0
    return Comparison(split, a, b, paired_test(_accuracy_by_draw(ra), _accuracy_by_draw(rb), ratio),
                      _pooled_tracks(ra, rb, predictions))


def all_pairs(runs: pd.DataFrame, split: str, models: list[str], predictions: dict[str, pd.DataFrame],
              resampled: bool) -> list[Comparison]:
    """Every pair of ``models`` (b after a in the given order)."""
    return [compare(runs, split, a, b, predictions, resampled) for a, b in combinations(models, 2)]


def p_matrix(comparisons: list[Comparison], models: list[str]) -> pd.DataFrame:
    """A models x models table of p-values: the paired t-test's above the diagonal (row a,
    column b), McNemar's below it (row b, column a)."""
    m = pd.DataFrame("", index=models, columns=models, dtype=object)
    for c in comparisons:
        m.loc[c.a, c.b] = fmt_p(c.paired.p)
        m.loc[c.b, c.a] = fmt_p(c.mcnemar.p) if c.mcnemar.tracks else "–"
    for name in models:
        m.loc[name, name] = "·"
    return m.rename_axis("t-test above, McNemar below")
