"""Every verdict a split's report draws, in one place: the comparisons its sentences draw and
the claims' tests, Holm-adjusted as **one family per split**, and the all-pairs matrix beside
them, unadjusted and exploratory (it decides nothing). ``benchmark calibrate`` runs simulated
sweeps through ``split_verdicts``, so what it measures is what the report says.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

import pandas as pd

from genre_models.config import SPLIT_SPECS

from genre_models.reporting.builders import drawn_comparisons
from genre_models.reporting.claims import MARGIN, ClaimRow, claim_rows
from genre_models.reporting.runs import models_of
from genre_models.reporting.significance import Comparison, SplitData, Votes, all_pairs, compare, p_matrix
from genre_models.reporting.stats import ALPHA, holm


@dataclass(frozen=True)
class SplitVerdicts:
    split: str
    comparisons: list[Comparison]  # the sentences', adjusted in the family
    claims: list[ClaimRow]  # their tests adjusted in the family
    pairs: list[Comparison]  # every pair of models, unadjusted
    models: list[str]
    family: int  # tests in the family (those that could be tested)
    alpha: float = ALPHA
    margin: float = MARGIN

    @property
    def matrix(self) -> pd.DataFrame:
        return p_matrix(self.pairs, self.models)

    def family_words(self) -> str:
        n_claims = sum(math.isfinite(t.p) for r in self.claims for t in r.tests)
        n_comp = self.family - n_claims
        return (f"`{self.split}`: {self.family} test{'' if self.family == 1 else 's'} at {self.alpha:g} ({n_claims} of the claims, "
                f"{n_comp} comparison{'' if n_comp == 1 else 's'})")


def holm_family(comparisons: list[Comparison], claims: list[ClaimRow], alpha: float = ALPHA,
                family_p: Callable[[float], float] | None = None) -> tuple[list[Comparison], list[ClaimRow], int]:
    """The comparisons and the claims' tests with Holm's p over all of them as one family; each
    claim test also learns how many of the family's tests Holm left unrejected (``unrejected``).
    ``family_p``: each p taken to the family's scale first (a sequential look's boundaries,
    ``reporting.group_sequential``)."""
    tests = [t for r in claims for t in r.tests]
    ps = [c.paired.p for c in comparisons] + [t.p for t in tests]
    ps = [family_p(p) for p in ps] if family_p else ps
    family = sum(math.isfinite(p) for p in ps)
    adj = holm(ps)
    rejected = sum(p < alpha for p in adj)
    q = iter(adj)
    comps = [replace(c, paired=replace(c.paired, p_adjusted=next(q), family=family)) for c in comparisons]
    adjusted = iter([replace(t, p_adjusted=(a := next(q)), family=family, alpha=alpha,
                             unrejected=family - rejected + (a < alpha)) for t in tests])
    rows = [replace(r, tests=[next(adjusted) for _ in r.tests]) for r in claims]
    return comps, rows, family


def split_verdicts(runs: pd.DataFrame, split: str, votes: Votes, margin: float = MARGIN, alpha: float = ALPHA,
                   pairs: bool = True, family_p: Callable[[float], float] | None = None) -> SplitVerdicts:
    """What the report says about ``split``: its family of verdicts, and (``pairs``) the matrix;
    ``family_p`` as ``holm_family``'s."""
    runs = runs[[c for c in runs.columns if not c.startswith(("tags.", "params."))]]  # the tests read neither
    runs = runs[runs.split == split]
    data = SplitData(runs, split)
    if not SPLIT_SPECS[split].resampled:  # one test set: its artists are clusters (``Votes.by_blocks``)
        votes = votes.by_blocks()
    drawn = [compare(data, a, b, votes) for a, b in drawn_comparisons(runs, split)]
    comps, rows, family = holm_family(drawn, claim_rows(data, votes, margin), alpha, family_p)
    models = models_of(runs, split)
    return SplitVerdicts(split, comps, rows, all_pairs(data, models, votes) if pairs else [], models, family,
                         alpha, margin)


def significance_frame(v: SplitVerdicts) -> pd.DataFrame:
    """Every pair of the split's models, one row each (unadjusted; the drawn ones with their Holm p)."""
    holm_p = {(c.a, c.b): c.paired.p_adjusted for c in v.comparisons}
    rows = [{**c.row(), "p_holm": holm_p.get((c.a, c.b), math.nan), "in_family": (c.a, c.b) in holm_p} for c in v.pairs]
    return pd.DataFrame(rows)
