"""The Bayesian companion of the margin claims, pure: Benavoli et al.'s correlated Bayesian
t-test (Corani & Benavoli 2015; Benavoli, Corani, Demšar & Zaffalon 2017, "Time for a change",
JMLR 18), with a region of practical equivalence (ROPE) of ``±margin``.

Under its flat prior on the mean difference, the posterior of the mean is Student's t with the
draws' mean as location, ``n - 1`` degrees of freedom, and scale ``sqrt(sd^2 (1/n + rho / (1 -
rho)))`` with ``rho = n_test / (n_test + n_train)``: that is, ``rho / (1 - rho)`` is Nadeau &
Bengio's ``n_test / n_train``, and the scale is the corrected t's standard error. Here it takes
the split's own spread (``stats.Spread``: its ``se`` and ``df``), so on a fixed split the test
set's error and the training set's term are in the scale as they are in the t-test. That
generalisation is ours, not the paper's.

What it adds: the posterior's three masses, *below* the ROPE, *in* it and *above* it, say how
probable "steady" or "no better than" is, where the TOST and non-superiority tests can only say
shown or not shown. It decides nothing: no verdict rests on it, it is in no Holm family, and
``benchmark calibrate`` does not count it. Caveats: the flat prior makes each one-sided mass the
one-sided t-test's p (``P(mean <= m)`` is the p of "mean > m"), so it carries the same variance
assumptions; and a probability from few draws is only as good as the spread's estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from genre_models.reporting.stats import Spread, t_sf


@dataclass(frozen=True)
class Posterior:
    """The posterior masses of the mean difference below, in and above the ROPE ``±margin``."""

    below: float
    inside: float
    above: float
    margin: float

    @property
    def known(self) -> bool:
        return math.isfinite(self.inside)

    def words(self) -> str:
        """``P(within ±0.02) = 0.83 (below 0.12, above 0.05)``, or "–" where not computed."""
        if not self.known:
            return "–"
        m = f"{self.margin:g}"
        return f"P(within ±{m}) = {self.inside:.2f} (below −{m} {self.below:.2f}, above +{m} {self.above:.2f})"


def rope_posterior(mean: float, spread: Spread, margin: float) -> Posterior:
    """The correlated Bayesian t-test's posterior masses of the mean difference against the ROPE
    ``±margin``, under ``spread``; nan masses where the spread cannot test."""
    if not spread.testable or not math.isfinite(mean) or not margin >= 0:
        nan = float("nan")
        return Posterior(nan, nan, nan, margin)
    se, df = spread.se, spread.df
    above = t_sf((margin - mean) / se, df)  # P(mu > +m): the upper tail beyond +m
    below = t_sf((mean + margin) / se, df)  # P(mu < -m)
    return Posterior(below, max(0.0, 1.0 - above - below), above, margin)
