"""Broken versions of the report's statistics, for ``test_mutations.py``: a calibration that
passes one of these cannot see the fault it carries. Each is a list of (module, name, value) to
patch; the originals are looked up at import."""

from __future__ import annotations

import math

import numpy as np

from genre_models.reporting import claims, significance, stats, verdicts
from genre_models.reporting.stats import Spread

_CORRECTED, _TWO_WAY, _SIDES, _SOONER = (significance.corrected_spread, significance.two_way_spread,
                                        claims.ClaimTest._sides, claims.sooner)


def _seeds_only(d, per_track, clusters, ratio=0.0):
    """`filtered` without its test set's error: the seeds' spread alone."""
    sd = float(d.std(ddof=1)) if d.size > 1 else 0.0
    return Spread(sd, int(d.size), 0.0, d.size - 1, "two-way")


def _welch(d, per_track, clusters, ratio=0.0):
    """Welch-Satterthwaite's degrees of freedom for the two components, in place of the smaller's."""
    sp = _TWO_WAY(d, per_track, clusters, ratio)
    if not (sp.sd > 0 and sp.floor > 0):
        return sp
    a, b = sp.sd ** 2 / sp.n, sp.floor
    k = int(np.isfinite(per_track).sum())
    df = (a + b) ** 2 / (a ** 2 / (sp.n - 1) + b ** 2 / max(k - 1, 1))
    return Spread(sp.sd, sp.n, sp.floor, df, sp.kind)


def _tost_smaller(self):
    """TOST that takes the smaller one-sided p (either side shown, not both)."""
    if self.kind != "within" or self.paired is None or not math.isfinite(self.paired.p):
        return _SIDES(self)
    est, sp = self.paired.diff.mean, self.paired.spread
    inside = min(stats.t_p(est, sp, "greater", -self.margin), stats.t_p(est, sp, "less", self.margin))
    return inside, _SIDES(self)[1]


class _Uncapped:
    """A split's runs as if no run had reached its epoch cap."""

    def __init__(self, data):
        self.data = data

    def runs(self, model):
        return self.data.runs(model).assign(epochs=10 ** 6)


def _chi2_mcnemar(only_a, only_b):
    from scipy import stats as st

    n = only_a + only_b
    x = np.where(n > 0, (only_a - only_b) ** 2 / np.maximum(n, 1), 0.0)
    return np.where(n > 0, st.chi2.sf(x, 1), 1.0)


def _normal_sign_flip(cluster_sums):
    from scipy import stats as st

    s = cluster_sums[np.isfinite(cluster_sums)]
    v = float((s ** 2).sum())
    return 1.0 if v == 0 else float(2 * st.norm.sf(abs(s.sum()) / math.sqrt(v)))


MUTATIONS = {
    "no correction": [(significance, "corrected_spread", lambda d, ratio: _CORRECTED(d, 0.0))],
    "a correction 4x too small": [(significance, "corrected_spread", lambda d, ratio: _CORRECTED(d, ratio / 4))],
    "filtered without the test set's error": [(significance, "two_way_spread", _seeds_only)],
    "Welch's degrees of freedom": [(significance, "two_way_spread", _welch)],
    "TOST on the smaller one-sided p": [(claims.ClaimTest, "_sides", _tost_smaller)],
    "no censoring": [(claims, "sooner", lambda data, a, b: _SOONER(_Uncapped(data), a, b))],
    "no Holm": [(verdicts, "holm", lambda ps: [float(p) for p in ps])],
    "chi-square in place of the exact test": [(claims, "exact_mcnemar_p", _chi2_mcnemar),
                                              (stats, "sign_flip", _normal_sign_flip)],
}
