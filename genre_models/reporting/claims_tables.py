"""The claims' verdicts as tables (``reporting.claims`` tests them): report.md's one line per
claim, the HTML report's every test behind it, and the CSV that holds every number."""

from __future__ import annotations

import math

import pandas as pd

from genre_models.reporting.claim_power import (claim_needs, claim_target, detectable_for, needs_for, needs_range,
                                                range_words)
from genre_models.reporting.claims import ClaimRow, ClaimTest
from genre_models.reporting.stats import fmt_p, level
from genre_models.reporting.tables import Table, text


def _p_cell(t: ClaimTest | None) -> str:
    return fmt_p(t.decisive_p) if t else "–"


def needs_words(row: ClaimRow) -> str:
    if row.missing or not row.tests:
        return "–"
    need = claim_needs(row)
    spread = range_words(row, need)
    return (f"{need} draws" if need is not None else "no number of draws at this spread") + (f" ({spread})" if spread else "")


def claims_frame(rows: list[ClaimRow], split: str) -> pd.DataFrame:
    """One row per test, every number, for the CSV, the HTML and the report's MLflow run."""
    out = []
    for r in rows:
        claim_need = claim_needs(r) if r.tests else None
        low, high = needs_range(r) if r.tests else (None, None)
        for t in r.tests or [None]:
            sp = t.paired.spread if t and t.paired else None
            d = t.paired.diff if t and t.paired else None
            need = needs_for(t, claim_target(r)) if t else None
            out.append({"split": split, "claim": r.key, "verdict": r.verdict, "tested_without": r.partial, "test": t.what if t else r.missing,
                        "kind": t.kind if t else "", "margin": t.margin if t else math.nan,
                        "study_effect": t.study if t else math.nan, "draws": t.draws if t else 0,
                        "effect": d.mean if d else math.nan, "lo_95_unadjusted": d.lo if d else math.nan,
                        "hi_95_unadjusted": d.hi if d else math.nan, "se": sp.se if sp else math.nan,
                        "df": sp.df if sp else math.nan, "variance": sp.kind if sp else "",
                        "sign_counts": t.sooner.fmt() if t and t.sooner else "",
                        "p_for": t.p_for if t else math.nan, "p_against": t.p_against if t else math.nan,
                        "p": t.p if t else math.nan, "p_holm": t.decisive_p if t else math.nan,
                        "holm_family": t.family if t else 0, "outcome": t.outcome if t else "",
                        "deciding_level": level(t.alpha, t.family) if t else math.nan,
                        "detectable_at_level": detectable_for(t, claim_target(r)) if t else math.nan,
                        "draws_for_study_effect": need if need is not None else math.nan,
                        "claim_draws_for_study_effect": claim_need if claim_need is not None else math.nan,
                        "claim_draws_spread_low": low if low is not None else math.nan,
                        "claim_draws_spread_high": high if high is not None else math.nan,
                        **_bayes_columns(t)})
    return pd.DataFrame(out)


def _bayes_columns(t: ClaimTest | None) -> dict:
    """The Bayesian companion's masses (``reporting.bayes``), nan for tests without a margin."""
    post = t.posterior if t else None
    nan = math.nan
    return {"bayes_below_rope": post.below if post else nan, "bayes_in_rope": post.inside if post else nan,
            "bayes_above_rope": post.above if post else nan}


def _deciding_cell(r: ClaimRow, t: ClaimTest | None) -> str:
    """The deciding test and its effect; for a margin claim, the Bayesian companion beside it."""
    if t is None:
        return r.missing
    post = t.posterior
    companion = f"; Bayesian companion {post.words()}" if post and post.known else ""
    return f"{t.what}: {t.effect()}{companion}"


def claims_table(rows: list[ClaimRow], split: str) -> Table:
    """One line per claim, for report.md: the verdict, the test that decides it, its Holm p and
    the draws the study's effect needs; every test behind it is in ``claims_detail_table``."""
    body = []
    for r in rows:
        t = r.deciding()
        body.append([text(r.claim), text(r.study), text(r.verdict_words),
                     text(_deciding_cell(r, t)), text(_p_cell(t)), text(needs_words(r))])
    family = next((t.family for r in rows for t in r.tests), 0)
    return Table(f"claims_{split}", f"The study's claims, tested on split {split}",
                 ["Claim", "Study", "Verdict", "Deciding test: effect [95% interval, unadjusted] (n)", "Holm p",
                  "Draws the study's effect needs"], body,
                 [f"Holm p: adjusted over the split's family of {family} tests (the claims' tests and the "
                  "comparisons below). Each claim is tested for what it says: a directional test, non-superiority "
                  "(RMSProp), equivalence by TOST (batch normalisation) or a censored sign test in training samples "
                  "(stopping sooner); every test, with both sides' p, is in the HTML report and the claims CSV. The "
                  "last column: draws for all of a claim's tests to reach 80% power together (tests sharing a model "
                  "jointly, with their draws' correlation) at the level that decides each (alpha over the family's "
                  "tests not yet rejected). The Bayesian companion beside a margin claim (Benavoli et al.'s "
                  "correlated t-test, flat prior, the margin as the region of practical equivalence) gives the "
                  "probability that the change lies within the margin; it describes and decides nothing."])


def claims_detail_table(rows: list[ClaimRow], split: str) -> Table:
    """Every test behind the claims, one row each (the HTML report's and the CSV's)."""
    body = [[text(r.claim), text(r.verdict_words), text(t.what), text(t.kind + (f" ±{t.margin:g}" if t.kind == "within" else
                                                                        f" {t.margin:+g}" if t.kind == "below" else "")),
             text(t.effect()), text(fmt_p(t.p_for)), text(fmt_p(t.p_against)), text(_p_cell(t)), text(t.outcome),
             text(_need_text(needs_for(t, claim_target(r)))), text(_mde_text(detectable_for(t, claim_target(r)))),
             text(post.words() if (post := t.posterior) else "–")]
            for r in rows for t in r.tests]
    return Table(f"claims_detail_{split}", f"Every test behind the claims, split {split}",
                 ["Claim", "Verdict", "Test", "Kind", "Effect [95% interval, unadjusted] (n)", "p for", "p against",
                  "Holm p", "Outcome", "Draws the study's effect needs", "Smallest effect found (80%)",
                  "Bayesian companion (margin claims; decides nothing)"], body)


def _need_text(n: int | None) -> str:
    return "none at this spread" if n is None else str(n)


def _mde_text(x: float) -> str:
    return "–" if not math.isfinite(x) else f"±{x:.3f}"
