"""A group-sequential design for a sweep that adds seeds until its claims are decided
(``sweep --until-decided``), pure: looks after each whole seed, and at each look the split's
verdicts at a level that keeps the family's error over *all* the looks at ``alpha``.

**Alpha spending** (Lan & DeMets 1983) with O'Brien & Fleming's shape: by the time the sweep holds
``s`` of its most ``horizon`` seeds it has spent ``alpha(t) = 2 - 2 Phi(z_{1-alpha/2} / sqrt(t))``,
``t = s / horizon``, so the first looks spend almost nothing and the last one nearly all of it.
Each look tests its split's Holm family at the alpha spent *since the previous look*; by the
union bound the chance of any wrong verdict at any look is at most the total spent, ``alpha``
at the horizon (conservative: consecutive looks share most of their draws, and an exact boundary
from their correlation would spend less). A sweep stopped early by its budget has spent less.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from genre_models.reporting.significance import Votes
from genre_models.reporting.stats import ALPHA
from genre_models.reporting.verdicts import split_verdicts

DESIGN = "group-sequential, O'Brien-Fleming-type alpha spending (Lan-DeMets), Holm within each look"
DECIDED = ("supported", "contradicted")


def spent(seeds: int, horizon: int, alpha: float = ALPHA) -> float:
    """The alpha spent by the look at ``seeds`` of ``horizon`` seeds."""
    from scipy import stats

    t = min(max(seeds / horizon, 0.0), 1.0)
    if t <= 0:
        return 0.0
    return float(2 - 2 * stats.norm.cdf(stats.norm.ppf(1 - alpha / 2) / math.sqrt(t)))


@dataclass(frozen=True)
class Design:
    """Looks at ``first``, ``first + 1``, ... up to ``horizon`` seeds, at family level ``alpha``."""

    first: int
    horizon: int
    alpha: float = ALPHA

    def level(self, seeds: int) -> float:
        """The level a look at ``seeds`` tests its family at: the alpha spent since the look before."""
        before = spent(seeds - 1, self.horizon, self.alpha) if seeds > self.first else 0.0
        return spent(seeds, self.horizon, self.alpha) - before

    def words(self) -> str:
        return (f"{DESIGN}: looks after each seed from {self.first} to at most {self.horizon}, alpha {self.alpha:g} "
                "over all of them")


@dataclass(frozen=True)
class Look:
    """One look: its seeds, level, every claim's verdict and deciding p on each split."""

    seeds: int
    level: float
    spent: float
    claims: dict  # (split, claim key) -> (verdict, deciding Holm p)

    @property
    def open(self) -> list[tuple[str, str]]:
        """The claims that could be tested and are not decided yet."""
        return [k for k, (v, _) in self.claims.items() if v not in DECIDED]

    def as_dict(self) -> dict:
        return {"seeds": self.seeds, "level": self.level, "spent_alpha": self.spent,
                "claims": [{"split": s, "claim": c, "verdict": v, "p_holm": p} for (s, c), (v, p) in self.claims.items()]}


def look(runs: pd.DataFrame, splits, votes: Votes, design: Design, seeds: int, margin: float) -> Look:
    """The look at ``seeds``: each split's verdicts on the runs of seeds 0..seeds-1, at the look's level."""
    level = design.level(seeds)
    upto = runs[runs.seed < seeds]
    claims = {}
    for split in splits:
        if split not in set(upto.split):
            continue
        v = split_verdicts(upto, split, votes, margin, level, pairs=False)
        for row in v.claims:
            if row.tested:
                t = row.deciding()
                claims[(split, row.key)] = (row.verdict, t.decisive_p if t else math.nan)
    return Look(seeds, level, spent(seeds, design.horizon, design.alpha), claims)
