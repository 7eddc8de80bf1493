"""The joint power of a claim's tests that move together (``claim_power.groups_of``: tests of one
kind that share a model, e.g. net5 against each CNN): the chance that every one of them reaches
its deciding level at once, over a number of draws.

Each test's own figure, read from a spread on few degrees of freedom, is noisy, and the largest of
several noisy figures reads high (docs/protocol.md: 65 against 42 draws at 10 draws of 10-fold
`kfold`); taking them as one test reads low, since their joint power is under each one's. Here the
group's between-draw variance is pooled (the tests compare one model with models of like run
noise; where their noise differs, the pooled figure sits between theirs) and the tests'
correlation is estimated from the draws they share. The chance is simulated: the group's means
multivariate normal, their standard errors chi-square (Wilson-Hilferty's) through a Gaussian copula
of a Wishart's diagonal, with fixed random numbers so that power rises smoothly with draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from genre_models.reporting.stats import Spread

#: Simulated sweeps of a group at each number of draws (Monte-Carlo sd of 0.8 power: 0.006).
JOINT_SIMS = 4000


@dataclass(frozen=True)
class Member:
    """One test of a group, as its power needs it: ``kind`` ``more`` / ``less`` / ``below`` /
    ``within``, the study's effect, its margin, its deciding level and its (pooled) spread."""

    kind: str
    effect: float
    margin: float
    alpha: float
    spread: Spread


def pooled(spreads: list[Spread], scale: float = 1.0) -> list[Spread]:
    """Each spread with the group's pooled between-draw variance (weighted by degrees of freedom),
    its correction's term rescaled with it; the test set's own term, fixed by the tracks, kept.
    ``scale``: the pooled sd times this (the ends of its interval, ``claim_power.needs_range``)."""
    w = np.array([max(s.n - 1, 0) for s in spreads], dtype=float)
    if not w.sum() > 0:
        return list(spreads)
    var = float(np.dot(w, [s.sd ** 2 for s in spreads]) / w.sum()) * scale ** 2
    out = []
    for s in spreads:
        share = s.corrected / s.sd ** 2 if s.sd > 0 else 0.0
        out.append(replace(s, sd=math.sqrt(var), floor=s.floor - s.corrected + var * share, corrected=var * share))
    return out


def draw_correlation(columns: list[dict]) -> np.ndarray:
    """The tests' correlation over the draws all of them share (``columns``: draw key -> difference),
    shrunk to a valid matrix; independence (conservative: the joint chance is then the least) where
    under 3 draws are shared or a test does not vary over them."""
    k = len(columns)
    keys = sorted(set.intersection(*(set(c) for c in columns))) if columns else []
    if k < 2 or len(keys) < 3:
        return np.eye(k)
    x = np.array([[c[key] for key in keys] for c in columns], dtype=float)
    if not np.all(x.std(axis=1) > 0):
        return np.eye(k)
    r = np.corrcoef(x)
    vals, vecs = np.linalg.eigh(r)
    r = vecs @ np.diag(np.clip(vals, 1e-6, None)) @ vecs.T  # nearest valid: a few draws can break it
    d = np.sqrt(np.diag(r))
    return r / np.outer(d, d)


def _chi2(df: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Chi-square on ``df`` degrees of freedom at standard-normal ``z`` (Wilson & Hilferty 1931):
    monotone in ``df`` at fixed ``z``, so the same random numbers serve every number of draws."""
    c = 2.0 / (9.0 * df)
    return df * np.clip(1 - c + z * np.sqrt(c), 0.0, None) ** 3


class JointPower:
    """``power(n)``: the simulated chance that every member reaches its level over ``n`` draws."""

    def __init__(self, members: list[Member], corr: np.ndarray, seed: int = 0):
        self.members, k = members, len(members)
        rng = np.random.default_rng(seed)
        self.z_mean = rng.standard_normal((JOINT_SIMS, k)) @ np.linalg.cholesky(corr).T  # (sims, k)
        # (sims, k): the normals behind each standard error's chi-square; squared normals that
        # correlate r correlate r^2, as a Wishart's diagonal does (a Gaussian copula of it)
        self.z_se = rng.standard_normal((JOINT_SIMS, k)) @ np.linalg.cholesky(corr ** 2).T

    def power(self, n: int) -> float:
        from scipy import stats

        if n < 2:
            return 0.0
        ok = np.ones(JOINT_SIMS, dtype=bool)
        for i, m in enumerate(self.members):
            sp, z = m.spread, self.z_mean[:, i]
            se, df = sp.se_at(n), _df_at(sp, n)
            u = np.sqrt(_chi2(df, self.z_se[:, i]) / df)  # (sims,): the estimated se over the true one
            if m.kind == "within":  # TOST: the estimate spreads by the test's own se
                half = m.margin - stats.t.ppf(1 - m.alpha, df) * se * u
                ok &= np.abs(m.effect + se * z) < half
                continue
            est = m.effect + sp.mean_se_at(n) * z
            crit = stats.t.ppf(1 - m.alpha / 2, df)
            with np.errstate(divide="ignore"):  # u is 0 only far in the chi-square's tail
                t = (est - (m.margin if m.kind == "below" else 0.0)) / (se * u)
            ok &= (t < -crit) if m.kind in ("below", "less") else (t > crit)
        return float(ok.mean())


def _df_at(sp: Spread, n: int) -> float:
    """The test's degrees of freedom at ``n`` draws: the draws' (n - 1), or where the spread's were
    capped by its clusters (``stats.two_way_spread``: the smaller component's) that cap."""
    return float(min(n - 1, sp.df)) if sp.df < sp.n - 1 else float(n - 1)


def group_power(tests: list, alphas: list[float], scale: float = 1.0, seed: int = 0) -> JointPower | None:
    """The joint power of a group of ``claims.ClaimTest`` (paired, not ``sooner``) at their deciding
    levels ``alphas``, their pooled sd times ``scale``; None where one cannot be tested or its
    effect is unknown."""
    if not tests or any(t.paired is None or not t.paired.spread.testable for t in tests):
        return None
    if any(not math.isfinite(t.study) or not math.isfinite(t.paired.spread.floor) for t in tests):
        return None
    spreads = pooled([t.paired.spread for t in tests], scale)
    corr = draw_correlation([dict(zip(t.paired.keys, t.paired.diff.values)) for t in tests])
    members = [Member(t.kind, t.study, t.margin, a, s) for t, a, s in zip(tests, alphas, spreads)]
    return JointPower(members, corr, seed)
