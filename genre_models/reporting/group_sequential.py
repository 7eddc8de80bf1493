"""Exact group-sequential boundaries for alpha spending, pure: the nominal level each look may
test at so that the chance of a rejection at *any* look is what the spending function allows
(Lan & DeMets 1983), computed by the recursive numerical integration of Armitage, McPherson &
Rowe (1969) rather than bounded by the union of the looks.

**The model.** Under the null a look's statistic is ``Z_k = S_k / sqrt(t_k)``, where ``S`` is a
Brownian motion and ``t_k`` the look's information fraction: consecutive looks correlate as
``sqrt(t_j / t_k)``. Here the information is counted in seeds, ``t_k = seeds / horizon``.
Caveat: where a test's variance has a floor that more seeds do not shrink (the corrected t's
``n_test / n_train`` term), its information grows slower than its seeds, consecutive looks
correlate more than assumed, and the boundaries err conservative; t statistics and exact tests
are held to the normal boundaries' nominal p, as is common practice.

**With Holm.** A family is tested at a look by Holm's steps at the boundaries of a design at
``alpha / r`` for the step with ``r`` tests left (the group-sequential Holm procedure of Maurer
& Bretz 2013): the first true null rejected is met at a step with ``r`` at least the number of
true nulls, ``m0``, so the chance of any wrong verdict over all looks is at most ``m0`` designs
at ``alpha / m0`` each. ``Boundaries.family_p`` turns a p into the family level at which it
reaches the look's boundary, so the package's one Holm (``stats.holm``) applies unchanged.
Caveat: the argument counts the true nulls at the look where the first is rejected; a family
whose true nulls are fewer at an early look than later (a test not yet testable) is held to
looser steps there than the count over all looks would give. A claim's tests become testable
together in the designs the sweep runs (3 draws of every net), so the families stay whole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np

#: Grid points over the continuation region (odd, for Simpson's rule): at 301 the published
#: O'Brien-Fleming-type boundaries are met to 3 decimals.
POINTS = 301
#: Family levels the look's map from p to family level is tabulated at (log-spaced).
LEVELS = np.logspace(-9, math.log10(0.5), 64)


def obf_spent(t: float, alpha: float) -> float:
    """O'Brien-Fleming-shaped spending, ``2 - 2 Phi(z_{1-alpha/2} / sqrt(t))``: the alpha spent by
    information fraction ``t`` (by the upper tail, which keeps the early looks' tiny spending)."""
    from scipy import stats

    if t <= 0:
        return 0.0
    return float(2 * stats.norm.sf(stats.norm.isf(alpha / 2) / math.sqrt(min(t, 1.0))))


def _simpson(points: int, h: float) -> np.ndarray:
    w = np.ones(points)
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    return w * h / 3


def boundaries(fractions: tuple[float, ...], spent: Callable[[float], float], points: int = POINTS) -> list[float]:
    """Two-sided z boundaries ``c_k`` of looks at ``fractions`` (increasing, in (0, 1]): the first
    crossing falls at look k with probability ``spent(t_k) - spent(t_{k-1})``. ``inf`` where a look
    may spend nothing."""
    from scipy import optimize, stats

    out, grid, weight, t_prev, s_prev = [], None, None, 0.0, 0.0
    for t in fractions:
        step = math.sqrt(t - t_prev)
        budget = spent(t) - s_prev

        def crossing(b: float) -> float:  # P(no crossing before, |S_t| >= b), a look after the first
            return float(np.sum(weight * (stats.norm.cdf((-b - grid) / step) + stats.norm.sf((b - grid) / step))))

        top = 40 * math.sqrt(t)
        if grid is None and budget > 0:  # the first look: no look before it, so its boundary is the marginal one
            b = min(step * float(stats.norm.isf(budget / 2)), top)
        elif budget <= 0 or crossing(top) >= budget:
            b = math.inf if budget <= 0 else top
        else:
            b = optimize.brentq(lambda x: crossing(x) - budget, 0.0, top, xtol=1e-13, rtol=1e-12)
        out.append(b / math.sqrt(t))
        edge = b if math.isfinite(b) else top
        new = np.linspace(-edge, edge, points)  # (points,) the continuation region on S's scale
        density = (stats.norm.pdf(new / step) / step if grid is None else
                   (weight[None, :] * stats.norm.pdf((new[:, None] - grid[None, :]) / step)).sum(1) / step)
        grid, weight = new, density * _simpson(points, new[1] - new[0])
        t_prev, s_prev = t, spent(t)
    return out


@lru_cache(maxsize=256)
def nominal_levels(fractions: tuple[float, ...], alpha: float) -> tuple[float, ...]:
    """The two-sided nominal p each look tests at, O'Brien-Fleming-shaped spending of ``alpha``
    (cached: a calibration asks for one design's thousands of times)."""
    from scipy import stats

    return tuple(float(2 * stats.norm.sf(c)) for c in boundaries(fractions, lambda t: obf_spent(t, alpha)))


@lru_cache(maxsize=32)
def _table(fractions: tuple[float, ...]) -> np.ndarray:
    """(len(LEVELS), looks): each look's nominal level for a design at each family level."""
    return np.array([nominal_levels(fractions, float(a)) for a in LEVELS])


@dataclass(frozen=True)
class Boundaries:
    """One look of a design: ``fractions`` are every look's, ``look`` this one's index."""

    fractions: tuple[float, ...]
    look: int
    alpha: float

    @property
    def level(self) -> float:
        """The nominal p one test at the design's ``alpha`` is held to at this look."""
        return nominal_levels(self.fractions, self.alpha)[self.look]

    def family_p(self, p: float) -> float:
        """The smallest family level at which ``p`` reaches this look's boundary (1 where none up
        to 0.5 does; nan stays nan): Holm at ``alpha`` over these is Holm at the design's steps."""
        if not math.isfinite(p):
            return p
        nominal = _table(self.fractions)[:, self.look]
        ok = nominal > 0
        if not ok.any() or p > nominal[ok][-1]:
            return 1.0
        x, y = np.log(nominal[ok]), np.log(LEVELS[ok])
        if p <= 0:
            return 0.0
        if math.log(p) < x[0]:  # under the table: proportional below its first point
            return float(LEVELS[ok][0] * p / nominal[ok][0])
        return float(min(1.0, math.exp(np.interp(math.log(p), x, y))))
