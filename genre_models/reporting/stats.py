"""Statistics for the report, pure: means with intervals that never leave their bounds, and
the tests that say whether two nets differ.

**Which interval, and why.** The unit of replication is a *draw*: a seed's split and training
run (and, under cross-validation, one fold of it). There are few of them, so the interval is
Student's t over draws. Where seeds draw new splits (``random``, ``track``, ``kfold``) the
draws' training sets overlap, and the plain t-interval is too narrow; its variance term is
corrected from ``1/n`` to ``1/n + n_test/n_train`` (Nadeau & Bengio 2003, "Inference for the
generalization error"; for repeated k-fold cross-validation, Bouckaert & Frank 2004). A fixed
split (``filtered``) gets the plain t-interval, which then describes training noise on one
test set. An accuracy lies in [0, 1]; where the interval reaches outside, it is clipped to the
bound and marked (``clipped``). With fewer than 3 draws no interval is claimed: the cell shows
the values. A bootstrap over 3 seeds would be narrower than the truth, and a Wilson interval
describes one run's test-set sampling, not the draw-to-draw spread the study's single runs hide.

**Whether two nets differ** (``paired_test``, ``mcnemar``): over the draws both nets ran, the
corrected resampled t-test on their paired accuracies (the same correction), and McNemar's
exact test on the test tracks both scored, pooled over those draws. The distributions are
scipy's. P-values are per comparison, not corrected for multiple comparisons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Fewer seeds than this: the values are shown, not an interval.
MIN_SEEDS_FOR_INTERVAL = 3
CLIP_MARK = "‡"


@dataclass(frozen=True)
class Cell:
    """Seed values of one quantity and their summary."""

    values: tuple[float, ...]
    mean: float
    lo: float  # the 95% interval, clipped to the bounds; nan with fewer than MIN_SEEDS_FOR_INTERVAL
    hi: float
    clipped: bool = False

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def has_interval(self) -> bool:
        return math.isfinite(self.lo) and math.isfinite(self.hi)

    @property
    def sd(self) -> float:
        return float(np.std(self.values, ddof=1)) if self.n > 1 else float("nan")

    def __str__(self) -> str:
        return self.fmt(3)

    def fmt(self, digits: int = 3) -> str:
        f = f"{{:.{digits}f}}".format
        if self.n == 0:
            return "–"
        if self.n == 1:
            return f"{f(self.mean)} (n=1)"
        if not self.has_interval:
            return f"{f(self.mean)} (values {', '.join(f(v) for v in self.values)})"
        return f"{f(self.mean)} [{f(self.lo)}, {f(self.hi)}]{CLIP_MARK if self.clipped else ''} (n={self.n})"

    def spread(self, digits: int = 2) -> str:
        """``mean ± sd`` (standard deviation over seeds), for dense tables such as per-genre F1."""
        f = f"{{:.{digits}f}}".format
        if self.n == 0:
            return "–"
        return f(self.mean) if self.n == 1 else f"{f(self.mean)} ± {f(self.sd)}"


def summarize(values, bounds: tuple[float, float] = (0.0, 1.0), ratio: float = 0.0) -> Cell:
    """Mean and 95% t-interval over draws, clipped to ``bounds``; values that are missing or
    not finite are left out. ``ratio``: n_test / n_train of a resampled split, whose variance
    term becomes ``1/n + ratio`` (0: the plain t-interval)."""
    from scipy import stats

    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if x.size == 0:
        return Cell((), float("nan"), float("nan"), float("nan"))
    mean = float(x.mean())
    if x.size < MIN_SEEDS_FOR_INTERVAL:
        return Cell(tuple(float(v) for v in x), mean, float("nan"), float("nan"))
    half = float(stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) * math.sqrt(1.0 / x.size + ratio))
    lo, hi = max(mean - half, bounds[0]), min(mean + half, bounds[1])
    return Cell(tuple(float(v) for v in x), mean, lo, hi, clipped=(lo, hi) != (mean - half, mean + half))


#: The level at which a difference is called significant.
ALPHA = 0.05


@dataclass(frozen=True)
class Paired:
    """Net b against net a over the draws both ran: the difference (b - a) with its corrected
    interval, and the corrected resampled t-test's two-sided p-value (nan under 2 draws)."""

    diff: Cell
    keys: tuple  # the draws, e.g. (seed, fold)
    p: float
    corrected: bool  # Nadeau & Bengio's correction (a resampled split), else a plain paired t-test

    @property
    def test(self) -> str:
        return "corrected resampled t-test" if self.corrected else "paired t-test"

    @property
    def verdict(self) -> str:
        """The difference in words: significant at ``ALPHA`` or not, and on how many draws."""
        over = draws_words(self.keys)
        if not math.isfinite(self.p):
            return f"cannot be tested on {over} (the t-test needs at least 2 paired draws)"
        if self.p >= ALPHA:
            return f"no significant difference at {ALPHA:g} ({self.test} over {over}, {p_words(self.p)})"
        way = "gain" if self.diff.mean > 0 else "loss"
        return f"a significant {way} at {ALPHA:g} ({self.test} over {over}, {p_words(self.p)})"


def draws_words(keys) -> str:
    """How many draws stood behind a figure: "3 seeds", "10 folds", "30 draws (10 folds x 3 seeds)".
    A key is a seed, or a (seed, fold) pair with fold -1 where the split has none."""
    pairs = [k if isinstance(k, tuple) else (k, -1) for k in keys]
    seeds, folds = {s for s, _ in pairs}, {f for _, f in pairs if f >= 0}
    n = len(pairs)
    if not folds:
        return f"{n} seed{'' if n == 1 else 's'}"
    if len(seeds) == 1:
        return f"{n} fold{'' if n == 1 else 's'}"
    return f"{n} draws ({len(folds)} folds x {len(seeds)} seeds)"


def fmt_p(p: float) -> str:
    """A p-value for a table cell: ``0.028``, ``< 0.001``, or ``–`` where none was computed."""
    if not math.isfinite(p):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def p_words(p: float) -> str:
    """A p-value for a sentence: ``p = 0.028`` or ``p < 0.001``."""
    text = fmt_p(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def paired_test(a: dict, b: dict, ratio: float = 0.0) -> Paired:
    """``b - a`` over the draws (keys) present in both, within [-1, 1], and the t-test of it.
    ``ratio`` > 0: the corrected resampled t-test (Nadeau & Bengio 2003), the variance term
    ``1/n + ratio``; 0: the plain paired t-test (a fixed split)."""
    from scipy import stats

    keys = tuple(sorted(set(a) & set(b)))
    d = np.asarray([b[k] - a[k] for k in keys], dtype=float)
    diff = summarize(d, bounds=(-1.0, 1.0), ratio=ratio)
    p = float("nan")
    if d.size >= 2:
        sd = float(d.std(ddof=1))
        if sd > 0:
            t_stat = float(d.mean()) / (sd * math.sqrt(1.0 / d.size + ratio))
            p = float(2 * stats.t.sf(abs(t_stat), d.size - 1))
        else:  # every draw gave the same difference: none (p 1) or an exact one (p 0)
            p = 1.0 if d.mean() == 0 else 0.0
    return Paired(diff, keys, p, ratio > 0)


@dataclass(frozen=True)
class McNemar:
    """McNemar's exact test on test tracks both nets scored: ``only_a`` tracks only net a got
    right, ``only_b`` only net b; the p-value is the exact binomial one (two-sided)."""

    tracks: int
    only_a: int
    only_b: int
    p: float

    def words(self, a: str, b: str) -> str:
        if not self.tracks:
            return "McNemar: no test track scored by both"
        return (f"McNemar's exact test on {self.tracks} pooled test tracks: {p_words(self.p)} ({a} alone right "
                f"on {self.only_a}, {b} alone right on {self.only_b})")


def mcnemar(a_right, b_right) -> McNemar:
    """McNemar's exact test from two nets' right/wrong on the same tracks (booleans, aligned)."""
    from scipy import stats

    a, b = np.asarray(a_right, dtype=bool), np.asarray(b_right, dtype=bool)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    p = float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue) if only_a + only_b else 1.0
    return McNemar(int(a.size), only_a, only_b, p)
