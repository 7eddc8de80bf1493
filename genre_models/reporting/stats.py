"""Seed statistics for the report, pure: a mean and an interval that never leaves its bounds.

**Which interval, and why.** The unit of replication is the seed (a whole train/val/test split
and training run), and there are few of them, so the interval is Student's t over seeds,
``mean ± t(0.975, n-1) · sd / sqrt(n)``. An accuracy lies in [0, 1]; where the t-interval
reaches outside, it is clipped to the bound and marked (``clipped``), since with 3 seeds and a
large spread the t-interval can be wider than the whole scale. With fewer than 3 seeds no
interval is claimed: the cell shows the values themselves. A bootstrap over 3 seeds would be
narrower than the truth, and a Wilson interval describes one run's test-set sampling, not the
seed-to-seed spread the study's single runs hide.
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


def summarize(values, bounds: tuple[float, float] = (0.0, 1.0)) -> Cell:
    """Mean and 95% t-interval over seeds, clipped to ``bounds``; values that are missing or
    not finite are left out."""
    from scipy import stats

    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if x.size == 0:
        return Cell((), float("nan"), float("nan"), float("nan"))
    mean = float(x.mean())
    if x.size < MIN_SEEDS_FOR_INTERVAL:
        return Cell(tuple(float(v) for v in x), mean, float("nan"), float("nan"))
    half = float(stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    lo, hi = max(mean - half, bounds[0]), min(mean + half, bounds[1])
    return Cell(tuple(float(v) for v in x), mean, lo, hi, clipped=(lo, hi) != (mean - half, mean + half))


@dataclass(frozen=True)
class Paired:
    diff: Cell  # net - its baseline, over seeds run for both
    seeds: tuple[int, ...]

    @property
    def verdict(self) -> str:
        d = self.diff
        if not d.has_interval:
            return f"cannot be judged from {d.n} paired seed(s) (at least {MIN_SEEDS_FOR_INTERVAL} are needed)"
        if d.lo > 0:
            return "a gain distinguishable from seed noise (the 95% interval excludes 0)"
        if d.hi < 0:
            return "a loss distinguishable from seed noise (the 95% interval excludes 0)"
        return "not distinguishable from seed noise (the 95% interval includes 0)"


def paired_difference(a: dict[int, float], b: dict[int, float]) -> Paired:
    """``b - a`` over the seeds present in both (a paired comparison), within [-1, 1]."""
    seeds = tuple(sorted(set(a) & set(b)))
    return Paired(summarize([b[s] - a[s] for s in seeds], bounds=(-1.0, 1.0)), seeds)
