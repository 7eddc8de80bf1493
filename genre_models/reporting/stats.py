"""Statistics for the report, pure: means with intervals that never leave their bounds, and
the tests behind every verdict. What each test assumes, and what ``benchmark calibrate``
showed of its level, is in docs/protocol.md.

**The unit is a draw**: a seed's split and training run (under cross-validation one fold of
it). There are few, so intervals and tests are Student's t over draws, and nothing is claimed
under ``MIN_DRAWS`` (3) draws: two draws give one degree of freedom, and two nearly equal
differences would read "p < 0.001".

**One form for every variance.** The standard error of a mean difference over ``n`` draws is
``sqrt(sd^2 / n + floor)`` (``Spread``): ``floor`` is the part more draws of the same protocol do
not shrink.

* Where seeds draw new splits (``random``, ``track``, ``kfold``) the draws' training sets
  overlap: Nadeau & Bengio's correction (2003; Bouckaert & Frank 2004 for repeated k-fold),
  ``floor = sd^2 * n_test / n_train``.
* On a fixed split (``filtered``) every draw scores the same test tracks, so the test set's own
  sampling error never averages out: ``floor = s^2_track / K``, the cluster-robust variance of
  the mean over the K test tracks (repeated recordings one cluster) of each track's difference
  averaged over seeds, and ``sd^2 / n`` the spread between seeds; the smaller component's
  degrees of freedom. The sum counts the seed-by-track noise twice, so it errs wide.

**Few discordant tracks.** A t-test on differences made of a handful of tracks is far from
normal. Wherever per-track votes exist, the exact sign-flip test over track clusters
(``sign_flip``) runs beside it, and the larger p decides: each test is valid under its own model
of the noise (the t-test over draws; the sign-flip where tracks are exchangeable), so the larger
is valid when either is.

**McNemar's test** (``reporting.mcnemar``) conditions on the trained nets: it says whether *these* nets
differ on *these* tracks, and leaves the variance between training runs out. Under training
noise alone it rejects far above its level (``benchmark calibrate``), so it is given per draw,
describes, and decides nothing.

**Power** (``reporting.power``) at the level that decides (``level``: ``alpha / r`` over the r tests
of the split's family that Holm has not rejected, ``claim_power.deciding_level``): the smallest
effect the draws could find, and the draws the study's effect would need, from the observed
spread; a floor above zero can put an effect out of reach of any number of draws. The mean
spreads without the correction's worst-case term (``Spread.mean_se_at``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Fewer draws than this: no interval, no test; the values are shown.
MIN_DRAWS = 3
CLIP_MARK = "‡"
#: The level at which a difference is called significant.
ALPHA = 0.05


@dataclass(frozen=True)
class Cell:
    """Draw values of one quantity and their summary."""

    values: tuple[float, ...]
    mean: float
    lo: float  # the 95% interval, clipped to the bounds; nan under MIN_DRAWS
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


def _finite(values) -> np.ndarray:
    return np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)


def t_quantile(q: float, df: float) -> float:
    """Student's t quantile (scipy's special function: the distribution object costs 50x more)."""
    from scipy import special

    return float(special.stdtrit(df, q))


def t_sf(t: float, df: float) -> float:
    """Student's t upper tail."""
    from scipy import special

    return float(special.stdtr(df, -t))


def cell_of(x: np.ndarray, se: float, df: float, bounds: tuple[float, float] = (0.0, 1.0)) -> Cell:
    """Mean of ``x`` with the 95% t-interval ``mean ± t(df) * se``, clipped to ``bounds``; no
    interval under MIN_DRAWS values or without a finite standard error."""
    if x.size == 0:
        return Cell((), float("nan"), float("nan"), float("nan"))
    mean, values = float(x.mean()), tuple(float(v) for v in x)
    if x.size < MIN_DRAWS or not math.isfinite(se) or not df > 0:
        return Cell(values, mean, float("nan"), float("nan"))
    half = t_quantile(0.975, df) * se
    lo, hi = max(mean - half, bounds[0]), min(mean + half, bounds[1])
    return Cell(values, mean, lo, hi, clipped=(lo, hi) != (mean - half, mean + half))


def summarize(values, bounds: tuple[float, float] = (0.0, 1.0), ratio: float = 0.0, tracks: int = 0) -> Cell:
    """Mean and 95% t-interval over draws, clipped to ``bounds``; values that are missing or
    not finite are left out. ``ratio``: n_test / n_train of a resampled split, whose variance
    term becomes ``1/n + ratio`` (0: the plain t-interval; nan: unknown, so no interval).
    ``tracks``: a fixed split's test tracks, whose own sampling error (binomial, ``mean (1 - mean)
    / tracks``, which errs wide: each track's right-rate over seeds varies less than one vote) never
    averages out over seeds; degrees of freedom the smaller component's, as ``two_way_spread``."""
    x = _finite(values)
    if x.size < 2:
        return cell_of(x, float("nan"), 0, bounds)
    sd = float(x.std(ddof=1))
    floor = float(x.mean() * (1 - x.mean())) / tracks if tracks > 0 else 0.0
    se = math.sqrt(sd ** 2 * (1.0 / x.size + ratio) + max(floor, 0.0))
    df = x.size - 1 if not floor > 0 else (min(x.size - 1, tracks - 1) if sd > 0 else tracks - 1)
    return cell_of(x, se, df, bounds)


# --------------------------------------------------------------------------- spread and tests


@dataclass(frozen=True)
class Spread:
    """The standard error of a mean over ``n`` draws: ``sqrt(sd^2 / n + floor)``."""

    sd: float  # between draws
    n: int
    floor: float  # the variance more draws of the same protocol do not shrink
    df: float
    kind: str  # "corrected", "two-way" or "plain"
    corrected: float = 0.0  # the part of floor that is Nadeau & Bengio's sd^2 * n_test/n_train

    @property
    def se(self) -> float:
        return self.se_at(self.n)

    def se_at(self, n: int) -> float:
        return math.sqrt(self.sd ** 2 / n + self.floor) if n > 0 else float("nan")

    def mean_se_at(self, n: int) -> float:
        """The mean's spread over ``n`` draws, for power: ``se_at`` less the correction's
        worst-case term (with it, 10-fold `kfold` read "none" where sweeps decide at 43)."""
        return math.sqrt(self.sd ** 2 / n + max(self.floor - self.corrected, 0.0)) if n > 0 else float("nan")

    @property
    def testable(self) -> bool:
        return self.n >= MIN_DRAWS and self.se > 0 and self.df > 0  # nan compares False

    @property
    def ratio(self) -> float:
        """The floor as a share of the between-draw variance (Nadeau & Bengio's n_test / n_train)."""
        return self.floor / self.sd ** 2 if self.sd > 0 else float("inf") if self.floor > 0 else 0.0


def corrected_spread(d: np.ndarray, ratio: float) -> Spread:
    """Over draws of a resampled split (``ratio`` n_test / n_train), or a plain t (``ratio`` 0)."""
    sd = float(d.std(ddof=1)) if d.size > 1 else 0.0
    return Spread(sd, int(d.size), sd ** 2 * ratio, d.size - 1, "corrected" if ratio > 0 else "plain", sd ** 2 * ratio)


def cluster_variance(per_track: np.ndarray, clusters: np.ndarray) -> tuple[float, int]:
    """The cluster-robust (CR1) variance of the mean of ``per_track`` (one value a track), and
    the number of clusters: tracks of one cluster (a repeated recording) are not independent."""
    ok = np.isfinite(per_track)
    x, g = per_track[ok], clusters[ok]
    if x.size < 2:
        return float("nan"), int(x.size)
    ids, inverse = np.unique(g, return_inverse=True)
    sums = np.bincount(inverse, weights=x - x.mean(), minlength=ids.size)
    k = ids.size
    return (float((sums ** 2).sum()) / x.size ** 2 * k / (k - 1) if k > 1 else float("nan")), int(k)


def two_way_spread(d: np.ndarray, per_track: np.ndarray, clusters: np.ndarray, ratio: float = 0.0) -> Spread:
    """A fixed test set scored by ``d.size`` seeds: seeds' spread, plus the test set's sampling
    error (``cluster_variance`` of each track's difference averaged over seeds), plus the training
    set's: every seed trains on the one training part, so a model's edge from *which* tracks it
    trained on is the same in every seed and no spread between seeds shows it; Nadeau & Bengio's
    assumption sizes it, ``sd^2 * ratio`` (n_test / n_train), as on a resampled split. nan
    ``ratio``: the runs lack their counts, so the difference is not tested. Degrees of freedom:
    the smaller component's (seeds - 1, or clusters - 1), not Welch-Satterthwaite's, whose
    estimate from a handful of seeds ran anti-conservative in the far tail that Holm's first
    steps use."""
    sd = float(d.std(ddof=1)) if d.size > 1 else 0.0
    tracks, k = cluster_variance(per_track, clusters)
    floor = tracks + sd ** 2 * ratio
    if not math.isfinite(floor) or d.size < 2:
        return Spread(sd, int(d.size), float("nan"), 0, "two-way")
    df = min(d.size - 1, k - 1) if sd > 0 and tracks > 0 else (d.size - 1 if sd > 0 else k - 1)
    return Spread(sd, int(d.size), floor, float(df), "two-way", sd ** 2 * ratio)


def t_p(estimate: float, spread: Spread, side: str = "two-sided", shift: float = 0.0) -> float:
    """The t-test's p of ``estimate`` against ``shift``: ``two-sided``; ``greater`` (H1: above);
    ``less`` (H1: below). nan when the spread cannot test."""
    if not spread.testable:
        return float("nan")
    t = (estimate - shift) / spread.se
    if side == "greater":
        return t_sf(t, spread.df)
    if side == "less":
        return t_sf(-t, spread.df)
    return min(1.0, 2 * t_sf(abs(t), spread.df))


def sign_flip(cluster_sums: np.ndarray) -> float:
    """The exact two-sided sign-flip permutation p of integer cluster sums (a track's only-b-right
    minus only-a-right votes over draws): under no difference each sum's sign is a fair coin,
    every cluster independently. Exact by convolution, whatever the number of clusters; with
    each track once it is McNemar's exact test."""
    s = np.abs(np.rint(cluster_sums[np.isfinite(cluster_sums)]).astype(np.int64))
    s = s[s > 0]
    if s.size == 0:
        return 1.0
    dist = np.ones(1)  # P(sum of flipped values = index - offset)
    for v, c in zip(*np.unique(s, return_counts=True)):
        step = np.zeros(2 * v * c + 1)
        step[:: 2 * v] = _binomial_pmf(c)  # v * (2B - c), B ~ Bin(c, 1/2)
        dist = np.convolve(dist, step)
    offset = (dist.size - 1) // 2
    observed = abs(int(np.rint(cluster_sums[np.isfinite(cluster_sums)]).sum()))
    values = np.abs(np.arange(dist.size) - offset)
    return float(min(1.0, dist[values >= observed].sum()))


def _binomial_pmf(c: int) -> np.ndarray:
    """Bin(c, 1/2)'s probabilities, by log-gamma (no overflow for large c)."""
    from scipy.special import gammaln

    k = np.arange(c + 1)
    return np.exp(gammaln(c + 1) - gammaln(k + 1) - gammaln(c - k + 1) - c * math.log(2))


@dataclass(frozen=True)
class Paired:
    """A difference over draws (b - a, or any contrast) and its test against 0: the t-test under
    the split's variance (``spread``), and where track votes exist the exact sign-flip test over
    track clusters beside it; the larger p decides (``p``). nan: not tested, and ``why`` says why.
    ``p_adjusted``: Holm's over the split's family (nan until adjusted)."""

    diff: Cell
    keys: tuple  # the draws, e.g. (seed, fold)
    spread: Spread
    p_t: float
    p_clusters: float = float("nan")
    clusters: int = 0
    why: str = ""
    p_adjusted: float = float("nan")
    family: int = 1

    @property
    def p(self) -> float:
        if not math.isfinite(self.p_t):
            return float("nan")
        return max(self.p_t, self.p_clusters) if math.isfinite(self.p_clusters) else self.p_t

    @property
    def test(self) -> str:
        return {"corrected": "corrected resampled t-test", "two-way": "t-test over seeds and test tracks",
                "plain": "paired t-test"}[self.spread.kind]

    @property
    def decisive_p(self) -> float:
        """The p-value a verdict rests on: Holm's where adjusted, else the test's own."""
        return self.p_adjusted if math.isfinite(self.p_adjusted) else self.p

    def p_text(self) -> str:
        own = f"{self.test} {p_words(self.p_t)}"
        if math.isfinite(self.p_clusters):
            own += f", exact sign-flip test over {self.clusters} track clusters {p_words(self.p_clusters)} (the larger decides)"
        if math.isfinite(self.p_adjusted) and self.family > 1:
            return f"{own}; Holm-adjusted over the split's {self.family} tests, {p_words(self.p_adjusted)}"
        return own

    @property
    def verdict(self) -> str:
        """The difference in words: significant at ``ALPHA`` or not, on how many draws."""
        over = draws_words(self.keys)
        if not math.isfinite(self.p):
            return f"cannot be tested on {over}: {self.why or 'no spread'}"
        if self.decisive_p >= ALPHA:
            return f"no significant difference at {ALPHA:g} (over {over}: {self.p_text()})"
        way = "gain" if self.diff.mean > 0 else "loss"
        return f"a significant {way} at {ALPHA:g} (over {over}: {self.p_text()})"


def untestable_reason(d: np.ndarray, spread: Spread) -> str:
    if d.size < MIN_DRAWS:
        return f"a test needs at least {MIN_DRAWS} draws"
    if spread.kind == "two-way" and not math.isfinite(spread.floor):
        return "a fixed split's test needs every run's per-track votes (test_predictions.csv), to count the test set's own error"
    if spread.kind == "corrected" and not math.isfinite(spread.floor):
        return ("a run lacks its sample counts (n_train and n_test_tracks, or n_test), which the corrected test "
                "needs to size the overlap of the draws' training sets")
    return f"the difference was {d.mean():+.3f} in every draw, so it has no spread to test it against"


def paired_of(d: np.ndarray, keys: tuple, spread: Spread, cluster_sums: np.ndarray | None = None,
              bounds: tuple[float, float] = (-1.0, 1.0)) -> Paired:
    """The test of differences ``d`` (one per draw in ``keys``) against 0 under ``spread``;
    ``cluster_sums``: the contrast's votes summed per track cluster, for the sign-flip test."""
    diff = cell_of(d, spread.se if spread.testable else float("nan"), spread.df, bounds)
    if not spread.testable:
        return Paired(diff, keys, spread, float("nan"), why=untestable_reason(d, spread))
    flip = sign_flip(cluster_sums) if cluster_sums is not None and cluster_sums.size else float("nan")
    n_clusters = int(cluster_sums.size) if cluster_sums is not None else 0
    return Paired(diff, keys, spread, t_p(float(d.mean()), spread), flip, n_clusters)


def paired_test(a: dict, b: dict, ratio: float = 0.0) -> Paired:
    """``b - a`` over the draws (keys) present in both, the corrected (``ratio`` > 0) or plain t."""
    keys = tuple(sorted(set(a) & set(b)))
    d = np.asarray([b[k] - a[k] for k in keys], dtype=float)
    return paired_of(d, keys, corrected_spread(d, ratio))


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


def level(alpha: float, family: int) -> float:
    """The level a test must reach in a Holm family of ``family`` tests to be sure of a verdict:
    the first step's ``alpha / m`` (power at it is a lower bound of the power under Holm)."""
    return alpha / max(family, 1)


def binomial_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Clopper-Pearson's exact interval of a rate of ``k`` in ``n``."""
    from scipy import stats

    if n == 0:
        return float("nan"), float("nan")
    a = (1 - confidence) / 2
    lo = float(stats.beta.ppf(a, k, n - k + 1)) if k > 0 else 0.0
    hi = float(stats.beta.ppf(1 - a, k + 1, n - k)) if k < n else 1.0
    return lo, hi
