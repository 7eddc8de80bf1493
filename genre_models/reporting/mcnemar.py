"""McNemar's exact test per draw: whether *these* trained nets differ on *these* tracks. It leaves
the variance between training runs out, so under training noise alone it rejects far above its
level (``benchmark calibrate``): the report gives it per draw, as a description, and no verdict
rests on it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genre_models.reporting.stats import ALPHA


@dataclass(frozen=True)
class McNemar:
    """McNemar's exact test per draw on the tracks both runs scored: ``differed`` of ``draws``
    draws had p < ALPHA (unadjusted); ``only_a`` / ``only_b``: votes only a / only b got right,
    over all draws. It conditions on the trained nets and decides nothing."""

    draws: int
    differed: int
    only_a: int
    only_b: int
    tracks: int  # unique tracks scored by both
    smallest_p: float = float("nan")

    def words(self, a: str, b: str) -> str:
        if not self.draws:
            return "McNemar's test: no test track scored by both"
        return (f"McNemar's exact test per draw, on these trained nets and these tracks (it decides nothing): "
                f"they differed at {ALPHA:g} in {self.differed} of {self.draws} draw{'s' * (self.draws != 1)} "
                f"({a} alone right {self.only_a} times, {b} alone {self.only_b}, over {self.tracks} tracks)")


def exact_mcnemar_p(only_a: np.ndarray, only_b: np.ndarray) -> np.ndarray:
    """McNemar's exact two-sided p for each (only_a, only_b) pair: a binomial test at 1/2."""
    from scipy import special

    n = only_a + only_b
    p = 2 * special.bdtr(np.minimum(only_a, only_b), np.maximum(n, 1), 0.5)
    return np.where(n > 0, np.minimum(p, 1.0), 1.0)


def mcnemar(a_right: np.ndarray, b_right: np.ndarray) -> McNemar:
    """Per draw: ``a_right``, ``b_right`` are (draws, tracks) arrays of 1 (right), 0 (wrong) or
    -1 (not scored in that draw); one 1-D row is one draw."""
    a, b = np.atleast_2d(a_right), np.atleast_2d(b_right)
    both = (a >= 0) & (b >= 0)
    only_a = ((a == 1) & (b == 0) & both).sum(1)  # (draws,)
    only_b = ((a == 0) & (b == 1) & both).sum(1)
    scored = both.any(1)
    p = exact_mcnemar_p(only_a[scored], only_b[scored])
    return McNemar(int(scored.sum()), int((p < ALPHA).sum()), int(only_a.sum()), int(only_b.sum()),
                   int(both.any(0).sum()), float(p.min()) if p.size else float("nan"))
