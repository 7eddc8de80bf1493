"""What the report opens with, per split, before any method text: each claim's verdict in one
line, the comparisons that came out significant, and for the claims left undecided the draws and
hours they need. Pure: it takes a split's verdicts (``reporting.verdicts``) and the runs.

How to read verdicts across splits is said once, at the end (``FAMILIES``)."""

from __future__ import annotations

import math

import pandas as pd

from genre_models.config import SPLIT_SPECS
from genre_models.reporting.claim_power import claim_needs, range_words
from genre_models.reporting.claims import ClaimRow
from genre_models.reporting.decisions import draw_cost, time_words
from genre_models.reporting.stats import draws_words, p_words
from genre_models.reporting.tables import md
from genre_models.reporting.verdicts import SplitVerdicts

FAMILIES = ("Each split's verdicts are one Holm family of their own: the level holds within a split, not across "
            "splits. A claim read on several splits is several verdicts, each answering its own question (`track` "
            "and `kfold`: new tracks; `filtered`: new artists; `random`: the study's leaky protocol). A claim "
            "supported on one split and not shown on another is not contradicted; choosing, after the fact, the "
            "split on which it came out best spends more than alpha. Decide which split answers your question "
            "before reading the verdicts.")


def _claim_line(row: ClaimRow) -> str:
    """One claim: its verdict and the test that decides it."""
    head = f"- **{md(row.claim)}**: {md(row.verdict_words)}"
    if row.missing:
        return f"{head} ({md(row.missing)})."
    t = row.deciding()
    if row.verdict == "not tested":
        why = next((x.paired.why for x in row.tests if x.paired is not None and x.paired.why), "too few draws")
        return f"{head}: {md(why)}."
    post = t.posterior
    companion = f" Bayesian companion (decides nothing): {md(post.words())}." if post and post.known else ""
    return f"{head}; deciding test {md(t.what)}: {md(t.effect())}, Holm {p_words(t.decisive_p)}.{companion}"


def _significant(v: SplitVerdicts) -> str:
    found = [c for c in v.comparisons if math.isfinite(c.paired.p_adjusted) and c.paired.p_adjusted < v.alpha]
    if not v.comparisons:
        return "- **Significant comparisons:** the report draws none on this split."
    if not found:
        return f"- **Significant comparisons:** none of the {len(v.comparisons)} the report draws."
    items = [f"{md(c.b)} − {md(c.a)} in {c.metric_words} {c.paired.diff.mean:+.3f} (Holm {p_words(c.paired.p_adjusted)})"
             for c in found]
    return f"- **Significant comparisons** ({len(found)} of {len(v.comparisons)}): " + "; ".join(items) + "."


def split_folds(runs: pd.DataFrame, split: str) -> int:
    """Draws a seed adds on ``split``: its folds under ``kfold``, else one."""
    sub = runs[runs.split == split]
    return max(1, sub.fold.nunique()) if SPLIT_SPECS[split].folded else 1


def needs_line(row: ClaimRow, v: SplitVerdicts, runs: pd.DataFrame, gans: pd.DataFrame | None) -> str:
    """A claim not decided: the draws the study's effect needs, in hours here and on a GPU."""
    have = max(t.draws for t in row.tests)
    models = [m for t in row.tests for m in t.models]
    need = claim_needs(row)
    spread = range_words(row, need)
    words = time_words(need, have, split_folds(runs, v.split), draw_cost(runs, v.split, models, gans))
    return words + (f"; {spread}" if spread else "")


def _needs(v: SplitVerdicts, runs: pd.DataFrame, gans: pd.DataFrame | None) -> list[str]:
    return [f"- **To decide \u201c{md(row.claim)}\u201d** at the study's effect: {needs_line(row, v, runs, gans)}."
            for row in v.claims if not row.missing and row.verdict == "not shown at this n"]


def answer_block(v: SplitVerdicts, runs: pd.DataFrame, gans: pd.DataFrame | None = None) -> list[str]:
    """The split's answers, as markdown lines."""
    sub = runs[runs.split == v.split]
    keys = sorted(set(zip(sub.seed.astype(int), sub.fold.astype(int))))
    lines = [f"### `{v.split}`: {draws_words(keys)}, one Holm family of {v.family} test{'' if v.family == 1 else 's'} at {v.alpha:g}", ""]
    lines += [_claim_line(r) for r in v.claims]
    lines.append(_significant(v))
    lines += _needs(v, runs, gans)
    return lines + [""]
