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

**Whether two nets differ** (``paired_test``): over the draws both nets ran, the corrected
resampled t-test on their paired accuracies (the same correction); it is the verdict. A
difference that was the same in every draw has no spread: it is not tested (a p of 0 would
claim certainty from nothing). Beside it, McNemar's test on the track votes (``mcnemar``,
``clustered_mcnemar``): it conditions on the trained nets, so it says whether *these* nets
differ on these tracks, not whether the nets would on new draws. A track tested in several
draws (k-fold with several seeds) is one cluster: the test is Durkalski et al.'s (2003)
clustered McNemar, not a pooled one that counts a track once per seed. P-values within a split
are Holm-adjusted over the family the report draws (``holm``).

**Power** (``power``, ``detectable``, ``draws_needed``): for a claim not shown, the smallest
effect the draws could have found at 80% power, and how many draws the study's own effect
would need, both from the observed spread under the same corrected variance, with scipy's
noncentral t. Under the correction the variance never falls below ``sd^2 * n_test/n_train``,
so an effect small against ``sd * sqrt(n_test/n_train)`` cannot be shown by more draws at all.
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
    interval, and the t-test's two-sided p-value (nan under 2 draws, or with no spread).
    ``p_adjusted``: Holm's over the family of tests it belongs to (nan until adjusted)."""

    diff: Cell
    keys: tuple  # the draws, e.g. (seed, fold)
    p: float
    corrected: bool  # Nadeau & Bengio's correction (a resampled split), else a plain paired t-test
    ratio: float = 0.0  # n_test / n_train of the correction
    p_adjusted: float = float("nan")
    family: int = 1  # how many tests Holm's adjustment was over

    @property
    def test(self) -> str:
        return "corrected resampled t-test" if self.corrected else "paired t-test"

    @property
    def no_spread(self) -> bool:
        return self.diff.n >= 2 and not math.isfinite(self.p) and self.diff.sd == 0

    @property
    def decisive_p(self) -> float:
        """The p-value a verdict rests on: Holm's where adjusted, else the test's own."""
        return self.p_adjusted if math.isfinite(self.p_adjusted) else self.p

    def p_text(self) -> str:
        own = p_words(self.p)
        if math.isfinite(self.p_adjusted) and self.family > 1:
            return f"{own}; Holm-adjusted over {self.family} tests, {p_words(self.p_adjusted)}"
        return own

    @property
    def verdict(self) -> str:
        """The difference in words: significant at ``ALPHA`` or not, on how many draws."""
        over = draws_words(self.keys)
        if self.no_spread:
            return (f"cannot be tested: the difference was {self.diff.mean:+.3f} in every one of {over}, so it has no "
                    "spread to test it against")
        if not math.isfinite(self.p):
            return f"cannot be tested on {over} (the t-test needs at least 2 paired draws)"
        if self.decisive_p >= ALPHA:
            return f"no significant difference at {ALPHA:g} ({self.test} over {over}, {self.p_text()})"
        way = "gain" if self.diff.mean > 0 else "loss"
        return f"a significant {way} at {ALPHA:g} ({self.test} over {over}, {self.p_text()})"


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
    keys = tuple(sorted(set(a) & set(b)))
    d = np.asarray([b[k] - a[k] for k in keys], dtype=float)
    return paired_of(d, keys, ratio)


def paired_of(d: np.ndarray, keys: tuple, ratio: float, bounds: tuple[float, float] = (-1.0, 1.0)) -> Paired:
    """The t-test of differences ``d`` (one per draw in ``keys``) against 0; see ``paired_test``.
    A difference with no spread (the same in every draw) is not tested: p is nan."""
    from scipy import stats

    diff = summarize(d, bounds=bounds, ratio=ratio)
    p = float("nan")
    sd = float(d.std(ddof=1)) if d.size >= 2 else 0.0
    if d.size >= 2 and sd > 0:
        t_stat = float(d.mean()) / (sd * math.sqrt(1.0 / d.size + ratio))
        p = float(2 * stats.t.sf(abs(t_stat), d.size - 1))
    return Paired(diff, keys, p, ratio > 0, ratio)


def holm(pvalues) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (nan ones are left out, and stay nan)."""
    p = np.asarray(list(pvalues), dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[i]))
        out[i] = running
    return out.tolist()


def adjusted(tests: list[Paired]) -> list[Paired]:
    """The same tests with Holm's p over them as one family."""
    from dataclasses import replace

    family = sum(math.isfinite(t.p) for t in tests)
    return [replace(t, p_adjusted=q, family=family) for t, q in zip(tests, holm(t.p for t in tests))]


# --------------------------------------------------------------------------- power


def _se_factor(n: int, ratio: float) -> float:
    return math.sqrt(1.0 / n + ratio)


def power(effect: float, sd: float, n: int, ratio: float, alpha: float = ALPHA) -> float:
    """The two-sided t-test's power to find ``effect`` with ``n`` draws whose differences have
    standard deviation ``sd``, the variance corrected by ``ratio`` (0: plain): noncentral t."""
    from scipy import stats

    if n < 2 or not sd > 0 or not ratio >= 0:
        return float("nan")
    df, ncp = n - 1, effect / (sd * _se_factor(n, ratio))
    crit = stats.t.ppf(1 - alpha / 2, df)
    value = float(stats.nct.sf(crit, df, ncp) + stats.nct.cdf(-crit, df, ncp))
    return value if math.isfinite(value) else 1.0  # scipy's nct gives nan far out in the tail


def detectable(sd: float, n: int, ratio: float, target: float = 0.8) -> float:
    """The smallest effect (in absolute value) found with ``target`` power by ``n`` draws."""
    from scipy import stats
    from scipy.optimize import brentq

    if n < 2 or not sd > 0 or not ratio >= 0:
        return float("nan")
    se = sd * _se_factor(n, ratio)
    hi = se * (float(stats.t.ppf(1 - ALPHA / 2, n - 1)) + 3)
    while power(hi, sd, n, ratio) < target:  # with 2 draws (1 degree of freedom) it is far out
        hi *= 2
        if hi > se * 1e6:
            return float("inf")
    return float(brentq(lambda e: power(e, sd, n, ratio) - target, 0.0, hi))


def draws_needed(effect: float, sd: float, ratio: float, target: float = 0.8, most: int = 10000) -> int | None:
    """The fewest draws whose test finds ``effect`` with ``target`` power at this spread; None
    where no number up to ``most`` does (under the correction, possibly none at all)."""
    if sd <= 0 or not math.isfinite(effect) or effect == 0:
        return None
    if power(effect, sd, most, ratio) < target:
        return None
    lo, hi = 2, most
    while lo < hi:  # power grows with n: the first n that reaches the target
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if power(effect, sd, mid, ratio) < target else (lo, mid)
    return lo


@dataclass(frozen=True)
class McNemar:
    """McNemar's test on track votes, over the test tracks both nets scored: ``only_a`` counts
    (track, draw) pairs only net a got right, ``only_b`` only net b. With each track once, the
    exact binomial test; with a track in several draws, Durkalski et al.'s clustered test
    (``clustered``), whose unit is the track. ``p_adjusted``: Holm's over its family."""

    tracks: int  # unique tracks
    only_a: int
    only_b: int
    p: float
    clustered: bool = False
    pairs: int = 0  # (track, draw) pairs scored by both
    p_adjusted: float = float("nan")

    def words(self, a: str, b: str) -> str:
        if not self.tracks:
            return "McNemar's test: no test track scored by both"
        how = (f"clustered by track ({self.pairs} track votes over {self.tracks} tracks)" if self.clustered
               else f"on {self.tracks} test tracks")
        adj = f", Holm-adjusted {p_words(self.p_adjusted)}" if math.isfinite(self.p_adjusted) else ""
        return (f"McNemar's {'clustered' if self.clustered else 'exact'} test on the track votes, {how}: "
                f"{p_words(self.p)}{adj} ({a} alone right {self.only_a} times, {b} alone {self.only_b}); it holds for "
                "these trained nets on these tracks")


def mcnemar(a_right, b_right) -> McNemar:
    """McNemar's exact test from two nets' right/wrong on the same tracks, each once (booleans, aligned)."""
    from scipy import stats

    a, b = np.asarray(a_right, dtype=bool), np.asarray(b_right, dtype=bool)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    p = float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue) if only_a + only_b else 1.0
    return McNemar(int(a.size), only_a, only_b, p, pairs=int(a.size))


def clustered_mcnemar(a_right: np.ndarray, b_right: np.ndarray) -> McNemar:
    """McNemar's test with tracks as clusters. ``a_right``, ``b_right``: (draws, tracks) arrays of
    1 (right), 0 (wrong) or -1 (not scored in that draw). Where every track was scored by both in
    at most one draw this is the exact test; else Durkalski et al. (2003), Stat. Med. 22:
    X^2 = (sum_k (b_k - c_k))^2 / sum_k (b_k - c_k)^2 on 1 degree of freedom, b_k and c_k the
    draws in which only a, only b got track k right."""
    from scipy import stats

    both = (a_right >= 0) & (b_right >= 0)
    only_a = ((a_right == 1) & (b_right == 0) & both).sum(0)  # (tracks,)
    only_b = ((a_right == 0) & (b_right == 1) & both).sum(0)
    scored = both.any(0)
    if both.sum(0).max(initial=0) <= 1:
        hit = both.any(0)
        first = both.argmax(0)
        cols = np.flatnonzero(hit)
        return mcnemar(a_right[first[cols], cols] == 1, b_right[first[cols], cols] == 1)
    d = (only_a - only_b).astype(float)
    denom = float((d * d).sum())
    p = float(stats.chi2.sf(d.sum() ** 2 / denom, 1)) if denom > 0 else 1.0
    return McNemar(int(scored.sum()), int(only_a.sum()), int(only_b.sum()), p, True, int(both.sum()))
