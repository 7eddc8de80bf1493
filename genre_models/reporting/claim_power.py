"""Power at the level that decides, for the claims (``reporting.claims``): the draws the study's
effect needs for each test and for all of a claim's tests at once, and the smallest effect the
draws could find. The sign test of "stops sooner" gets its exact binomial power at the sweep's
own shares (the study gave no effect in training samples)."""

from __future__ import annotations

import math

import numpy as np

from genre_models.reporting.claims import ClaimRow, ClaimTest, Sooner
from genre_models.reporting.joint_power import group_power
from genre_models.reporting.mcnemar import exact_mcnemar_p
from genre_models.reporting.power import detectable, draws_needed
from genre_models.reporting.stats import MIN_DRAWS, level

#: The power a claim's tests must reach together.
TARGET_POWER = 0.8


def sign_test_power(n: int, known: float, q: float, alpha: float) -> float:
    """The exact power of the two-sided sign test (``Sooner.p``) over ``n`` draws, each of whose order
    is known with probability ``known`` and then goes b's way with probability ``q``."""
    from scipy import stats

    if n < MIN_DRAWS:
        return 0.0
    ks = np.arange(n + 1)
    p_k = stats.binom.pmf(ks, n, known)
    total = 0.0
    for k, pk in zip(ks, p_k):
        if k == 0 or pk < 1e-12:
            continue
        w = np.arange(k + 1)
        p = exact_mcnemar_p(w, k - w)
        total += pk * float(stats.binom.pmf(w, k, q)[p < alpha].sum())
    return total


def sooner_shares(s: Sooner) -> tuple[float, float] | None:
    """(the share of draws whose order is known, the share of those going the way seen), each
    shrunk toward even by one draw a side, so that 3 of 3 is not taken for certainty; None where
    there are no draws or the known ones split evenly."""
    n = s.sooner + s.later + s.unknown
    if n == 0:
        return None
    known = (s.sooner + s.later + 1) / (n + 2)
    q = (max(s.sooner, s.later) + 1) / (s.sooner + s.later + 2)
    return (known, q) if q > 0.5 else None


#: The most draws the sign test's exact power is computed for (it grows as the square of them).
SIGN_MOST = 400


def sooner_needs(s: Sooner, alpha: float, target: float, most: int = SIGN_MOST) -> int | None:
    """The draws for the sign test to reach ``target`` at ``alpha``, at this sweep's own shares
    (``sooner_shares``). None: no number up to ``most``."""
    shares = sooner_shares(s)
    if shares is None or sign_test_power(most, *shares, alpha) < target:
        return None
    lo, hi = MIN_DRAWS, most
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if sign_test_power(mid, *shares, alpha) < target else (lo, mid)
    return lo


def groups_of(tests: list[ClaimTest]) -> list[list[ClaimTest]]:
    """A claim's tests in the groups that move together: tests of one kind that share a model
    (net5 against each CNN: net5's runs and the tracks are in all three) are one group."""
    groups: list[tuple[str, set, list]] = []
    for t in tests:
        joined = [g for g in groups if g[0] == t.kind and g[1] & set(t.models)]
        merged = (t.kind, set(t.models).union(*(g[1] for g in joined)), [x for g in joined for x in g[2]] + [t])
        groups = [g for g in groups if g not in joined] + [merged]
    return [g[2] for g in groups]


def moving_together(tests: list[ClaimTest]) -> int:
    """How many groups of a claim's tests move together (``groups_of``)."""
    return max(len(groups_of(tests)), 1)


def claim_target(row: ClaimRow) -> float:
    """Each test's power for the claim's tests to reach ``TARGET_POWER`` together: the groups that
    move together (``moving_together``) as if independent, each group's tests as one. Taking
    every test as independent (``0.8^(1/k)`` each) put "the MFCC LSTM beats the CNNs" at 19-24
    draws on `filtered` where simulated sweeps reach 80% at 11 (docs/protocol.md)."""
    return TARGET_POWER ** (1 / moving_together(row.tests))


def deciding_level(t: ClaimTest) -> float:
    """The level this test must reach under Holm when the family's tests that reject now still
    do: alpha over the tests left unrejected, this one counted (``ClaimTest.unrejected``). Those
    are real effects, and more draws only shrink their p. Alpha over the whole family (Holm's
    first step) is the level only where nothing else in the family rejects."""
    return level(t.alpha, t.unrejected or t.family)


def needs_for(t: ClaimTest, target: float) -> int | None:
    """The draws the study's effect needs for this test to reach ``target`` at its deciding level."""
    alpha = deciding_level(t)
    if t.kind == "sooner":  # at the sweep's own shares: the study gave no effect in samples
        return sooner_needs(t.sooner, alpha, target)
    sp = t.paired.spread
    if not (sp.sd > 0 and math.isfinite(sp.floor)):
        return None
    test = {"below": "below", "within": "within"}.get(t.kind, "two-sided")
    return draws_needed(t.study, sp, alpha, target, test, t.margin)


def detectable_for(t: ClaimTest, target: float) -> float:
    """The smallest effect a directional test could find with these draws at its deciding level."""
    if t.kind not in ("more", "less") or not t.paired.spread.testable:
        return float("nan")
    return detectable(t.paired.spread, deciding_level(t), target)


def claim_power_at(row: ClaimRow, scale: float = 1.0):
    """The chance, as a function of draws, that every test of the claim reaches its deciding level
    at the study's effects: the groups that move together as independent, each group's tests
    jointly (``joint_power``), the sign test exactly (its power past ``SIGN_MOST`` draws taken as
    at ``SIGN_MOST``, a lower bound). ``scale``: each group's pooled sd times this. None where a
    test cannot be projected."""
    parts = []
    for group in groups_of(row.tests):
        if group[0].kind != "sooner":
            joint = group_power(group, [deciding_level(t) for t in group], scale)
            if joint is None:
                return None
            parts.append(joint.power)
            continue
        for t in group:
            shares = sooner_shares(t.sooner)
            if shares is None:
                return None
            parts.append(lambda n, sh=shares, a=deciding_level(t): sign_test_power(min(n, SIGN_MOST), *sh, a))
    return (lambda n: float(np.prod([f(n) for f in parts]))) if parts else None


def claim_needs(row: ClaimRow, most: int = 10000, scale: float = 1.0) -> int | None:
    """The draws the study's effects need for every test of the claim at once (None: no number up
    to ``most``): the fewest at which ``claim_power_at`` reaches ``TARGET_POWER``. Before, the
    largest of each test's own figure at its share of the target read high where the tests' spreads
    rest on few draws (docs/protocol.md, "Draws needed against simulated power")."""
    power_at = claim_power_at(row, scale) if row.tests else None
    if power_at is None or power_at(most) < TARGET_POWER:
        return None
    lo, hi = MIN_DRAWS, most
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if power_at(mid) < TARGET_POWER else (lo, mid)
    return lo


#: The interval of the spread behind ``needs_range``.
SPREAD_INTERVAL = 0.8


def needs_range(row: ClaimRow) -> tuple[int | None, int | None]:
    """``claim_needs`` with the spread at the two ends of its 80% interval (chi-square on the
    fewest draws' degrees of freedom among the claim's tests: the tests share draws, so their
    pooled spread has no more): how far the figure could move with the spread alone. Near the
    variance's floor it moves far (10 draws of 5-fold `kfold`: the figure's quartiles over
    simulated sweeps were 36 and 2,043 draws)."""
    from scipy import stats

    dfs = [t.paired.diff.n - 1 for t in row.tests if t.paired is not None and t.paired.diff.n > 1]
    if not dfs:
        return None, None
    df, tail = min(dfs), (1 - SPREAD_INTERVAL) / 2
    low = math.sqrt(df / stats.chi2.ppf(1 - tail, df))  # the sd's lower end, as a share of the estimate
    high = math.sqrt(df / stats.chi2.ppf(tail, df))
    return claim_needs(row, scale=low), claim_needs(row, scale=high)


def range_words(row: ClaimRow, need: int | None) -> str:
    """"36 to 2043 draws across the spread's 80% interval", or "" where both ends agree with ``need``."""
    low, high = needs_range(row)
    if low == need == high:
        return ""
    word = (lambda n: "no number of" if n is None else str(n))
    return f"{word(low)} to {word(high)} draws across the spread's {SPREAD_INTERVAL:.0%} interval"
