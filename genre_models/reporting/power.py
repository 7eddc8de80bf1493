"""Power at the level that decides: the chance that a number of draws at the spread observed
reaches the level for an effect (``power``: noncentral t for a two-sided test, the bound for
non-superiority, TOST for "steady"), the smallest effect the draws could find (``detectable``),
and the draws an effect would need (``draws_needed``); a floor above zero (``stats.Spread``) can
put an effect out of reach of any number of draws."""

from __future__ import annotations

import math

from genre_models.reporting.stats import ALPHA, MIN_DRAWS, Spread


def power(effect: float, spread: Spread, n: int, alpha: float = ALPHA, test: str = "two-sided",
          margin: float = 0.0) -> float:
    """The chance that ``n`` draws at this spread reach ``alpha`` when the truth is ``effect``:
    ``two-sided`` (against 0; noncentral t), ``below`` (the upper 1 - alpha/2 bound under
    ``margin``: non-superiority) or ``within`` (TOST within ``±margin`` at ``alpha``). The test
    divides the mean by ``se_at(n)``, while the mean itself spreads by ``mean_se_at(n)``, without
    the correction's worst-case term; where there is none the two agree and this is the plain
    noncentral t. TOST keeps ``se_at``."""
    from scipy import stats

    if n < 2 or not spread.sd >= 0 or not math.isfinite(spread.floor):
        return float("nan")
    se, df = spread.se_at(n), n - 1
    if not se > 0:
        return float("nan")
    if test == "within":
        return tost_power(effect, se, df, alpha, margin)
    spread_mean = spread.mean_se_at(n)  # the test divides by se; the mean spreads by this
    crit = stats.t.ppf(1 - alpha / 2, df) * se / spread_mean
    below = test == "below"
    ncp = ((effect - margin) if below else effect) / spread_mean
    value = float(stats.nct.cdf(-crit, df, ncp) + (0.0 if below else stats.nct.sf(crit, df, ncp)))
    if math.isfinite(value):
        return value
    # scipy's nct gives nan far out in the tail, where the normal is close
    return float(stats.norm.cdf(-crit - ncp) + (0.0 if below else stats.norm.sf(crit - ncp)))


def tost_power(effect: float, se: float, df: int, alpha: float, margin: float) -> float:
    """TOST's exact power: both one-sided tests at ``alpha`` reject when the estimate lies within
    ``±(margin - c * se_hat)``, where ``se_hat = se * u`` and ``u^2 df`` is chi-square on ``df``
    degrees of freedom (the estimate and its standard error independent, as under normal draws):
    the normal probability of that band, integrated over ``u`` (Owen 1965). The shifted-t
    shortcut read 0.36 where this reads 0.56 at n = 3."""
    from scipy import integrate, stats

    c = float(stats.t.ppf(1 - alpha, df))
    top = margin / (c * se)  # beyond this u the band is empty

    def band(u: float) -> float:
        half = margin - c * se * u
        inside = stats.norm.cdf((half - effect) / se) - stats.norm.cdf((-half - effect) / se)
        return float(inside) * float(stats.chi.pdf(u * math.sqrt(df), df)) * math.sqrt(df)

    value, _ = integrate.quad(band, 0.0, top, limit=200)
    return float(min(max(value, 0.0), 1.0))


def detectable(spread: Spread, alpha: float = ALPHA, target: float = 0.8) -> float:
    """The smallest effect (in absolute value) found with ``target`` power by these draws at ``alpha``."""
    from scipy.optimize import brentq

    n = spread.n
    if n < 2 or not spread.se_at(n) > 0 or not math.isfinite(spread.floor):
        return float("nan")
    hi = spread.se_at(n) * 8
    while power(hi, spread, n, alpha) < target:  # with few draws it is far out
        hi *= 2
        if hi > spread.se_at(n) * 1e6:
            return float("inf")
    return float(brentq(lambda e: power(e, spread, n, alpha) - target, 0.0, hi))


def draws_needed(effect: float, spread: Spread, alpha: float = ALPHA, target: float = 0.8, test: str = "two-sided",
                 margin: float = 0.0, most: int = 10000) -> int | None:
    """The fewest draws whose test reaches ``target`` power for ``effect`` at ``alpha`` at this
    spread; None where no number up to ``most`` does (a floor can make it none at all)."""
    if not math.isfinite(effect) or (test == "two-sided" and effect == 0) or not spread.sd > 0:
        return None
    if not power(effect, spread, most, alpha, test, margin) >= target:
        return None
    lo, hi = MIN_DRAWS, most
    while lo < hi:  # power grows with n: the first n that reaches the target
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if power(effect, spread, mid, alpha, test, margin) < target else (lo, mid)
    return lo
