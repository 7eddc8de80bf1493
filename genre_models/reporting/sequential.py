"""A group-sequential design for a sweep that adds seeds until its claims are decided
(``sweep --until-decided``), pure: looks after each whole seed, and at each look the split's
verdicts at levels that keep the family's error over *all* the looks at ``alpha``.

**Alpha spending** (Lan & DeMets 1983) with O'Brien & Fleming's shape: by the time the sweep holds
``s`` of its most ``horizon`` seeds it has spent ``alpha(t) = 2 - 2 Phi(z_{1-alpha/2} / sqrt(t))``,
``t = s / horizon``, so the first looks spend almost nothing and the last one most of it. The
boundaries are exact for looks whose statistics correlate as a Brownian motion's
(``reporting.group_sequential``), and each look runs Holm's steps at the boundaries of a design at
``alpha / r`` (Maurer & Bretz 2013). Until 2026-12-07 each look tested at the alpha spent since
the look before, by the union bound over the looks: the last of 10 looks tested at 0.011 where
the exact boundary is 0.034. A sweep stopped early by its budget has spent less.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from genre_models.reporting.group_sequential import Boundaries, obf_spent
from genre_models.reporting.significance import Votes
from genre_models.reporting.stats import ALPHA
from genre_models.reporting.verdicts import split_verdicts

DESIGN = ("group-sequential, O'Brien-Fleming-type alpha spending (Lan-DeMets), exact boundaries, "
          "Holm within each look at the boundaries of alpha / r")
DECIDED = ("supported", "contradicted")


def spent(seeds: int, horizon: int, alpha: float = ALPHA) -> float:
    """The alpha spent by the look at ``seeds`` of ``horizon`` seeds."""
    return obf_spent(seeds / horizon, alpha)


@dataclass(frozen=True)
class Design:
    """Looks at ``first``, ``first + 1``, ... up to ``horizon`` seeds, at family level ``alpha``."""

    first: int
    horizon: int
    alpha: float = ALPHA

    def boundaries(self, seeds: int) -> Boundaries:
        """The look at ``seeds``: its boundaries among every look's, from ``first`` to ``horizon``."""
        fractions = tuple(s / self.horizon for s in range(self.first, self.horizon + 1))
        return Boundaries(fractions, min(max(seeds, self.first), self.horizon) - self.first, self.alpha)

    def level(self, seeds: int) -> float:
        """The nominal p one test at the family's alpha is held to at the look at ``seeds`` (Holm's
        step with ``r`` tests left holds it to the boundary of a design at ``alpha / r``)."""
        return self.boundaries(seeds).level

    def words(self) -> str:
        return (f"{DESIGN}: looks after each seed from {self.first} to at most {self.horizon}, alpha {self.alpha:g} "
                "over all of them")


@dataclass(frozen=True)
class Look:
    """One look: its seeds, level, every claim's verdict and deciding p on each split."""

    seeds: int
    level: float
    spent: float
    claims: dict  # (split, claim key) -> (verdict, deciding Holm p on the family's scale, against alpha)

    @property
    def open(self) -> list[tuple[str, str]]:
        """The claims that could be tested and are not decided yet."""
        return [k for k, (v, _) in self.claims.items() if v not in DECIDED]

    def as_dict(self) -> dict:
        return {"seeds": self.seeds, "level": self.level, "spent_alpha": self.spent,
                "claims": [{"split": s, "claim": c, "verdict": v, "p_holm": p} for (s, c), (v, p) in self.claims.items()]}


def look(runs: pd.DataFrame, splits, votes: Votes, design: Design, seeds: int, margin: float) -> Look:
    """The look at ``seeds``: each split's verdicts on the runs of seeds 0..seeds-1 at the look's
    boundaries; each claim's p is on the family's scale (``Boundaries.family_p``), against alpha."""
    bounds = design.boundaries(seeds)
    upto = runs[runs.seed < seeds]
    claims = {}
    for split in splits:
        if split not in set(upto.split):
            continue
        v = split_verdicts(upto, split, votes, margin, design.alpha, pairs=False, family_p=bounds.family_p)
        for row in v.claims:
            if row.tested:
                t = row.deciding()
                claims[(split, row.key)] = (row.verdict, t.decisive_p if t else math.nan)
    return Look(seeds, bounds.level, spent(seeds, design.horizon, design.alpha), claims)
