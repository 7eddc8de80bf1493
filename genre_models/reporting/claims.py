"""The study's observations put to the test on one split, pure: one row per claim, built from
the runs table (``reporting.runs``).

Each claim is one or more *tests*: a difference per draw (b - a, a difference of differences,
or a bound), the direction the study claims, and the study's own effect. Each test is the
corrected resampled t-test the report uses (the plain paired t on a fixed split), and the
tests of all claims on a split are Holm-adjusted as one family. A claim is

* **supported** when every one of its tests is significant in the claimed direction;
* **contradicted** when any is significant against it;
* **not shown at this n** otherwise, with, for each test not significant, the smallest effect
  these draws could have found at 80% power and the draws the study's own effect would need
  (``reporting.stats``), both from the spread observed.

A claim whose nets were not run on the split says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import pandas as pd

from genre_models.config import SPLIT_SPECS
from genre_models.models.registry import NETS
from genre_models.reporting.runs import budgets, metric, model_name
from genre_models.reporting.significance import by_draw, shared_ratio
from genre_models.reporting.stats import ALPHA, Paired, adjusted, detectable, draws_needed, fmt_p, paired_of
from genre_models.reporting.tables import Table, text

TRACKS = "test_track_accuracy"
ACC = "test_accuracy"


@dataclass(frozen=True)
class ClaimTest:
    """One difference a claim rests on, per draw."""

    what: str  # "net2 50 ep − net1 50 ep (accuracy)"
    diffs: dict  # draw -> difference
    ratio: float  # the correction's n_test / n_train (0: plain t)
    sign: int  # +1: the study claims it positive; -1: negative
    study: float  # the study's own difference
    bounds: tuple[float, float] = (-1.0, 1.0)
    paired: Paired | None = None

    def tested(self) -> "ClaimTest":
        keys = tuple(sorted(self.diffs))
        return replace(self, paired=paired_of(np.asarray([self.diffs[k] for k in keys], float), keys, self.ratio,
                                              self.bounds))

    @property
    def outcome(self) -> str:
        """for, against, or none: where the Holm-adjusted test lands."""
        p = self.paired.decisive_p
        if not math.isfinite(p) or p >= ALPHA:
            return "none"
        return "for" if np.sign(self.paired.diff.mean) == self.sign else "against"


@dataclass(frozen=True)
class ClaimRow:
    key: str
    claim: str
    study: str
    tests: list[ClaimTest]
    missing: str = ""  # why it could not be tested on this split

    @property
    def verdict(self) -> str:
        if self.missing:
            return "not run"
        outcomes = [t.outcome for t in self.tests]
        if "against" in outcomes:
            return "contradicted"
        return "supported" if outcomes and all(o == "for" for o in outcomes) else "not shown at this n"


# --------------------------------------------------------------------------- per-draw differences


def _runs_of(sub: pd.DataFrame, model: str) -> pd.DataFrame:
    return sub[sub.model == model]


def difference(sub: pd.DataFrame, a: str, b: str, column: str) -> tuple[dict, float]:
    """b - a per draw both ran, and the pair's correction ratio."""
    ra, rb = _runs_of(sub, a), _runs_of(sub, b)
    va, vb = by_draw(ra, column), by_draw(rb, column)
    return {k: vb[k] - va[k] for k in sorted(set(va) & set(vb))}, shared_ratio(ra, rb)


def _study(net: str, key: str) -> float:
    return float(NETS[net].study.get(key, math.nan)) if net in NETS else math.nan


def _budget_pairs(sub: pd.DataFrame) -> list[tuple[int, int]]:
    """(run budget, study budget) pairs, in order, as Table 1 pairs them."""
    study = sorted({e for n in NETS.values() for e in n.study_epochs})
    return list(zip(budgets(sub[sub.fixed_epochs.astype(bool)]), study))


def _ratio(sub: pd.DataFrame) -> float:
    """The runs' mean n_test / n_train for the correction; 0 (a plain t-test) where none is known."""
    r = pd.to_numeric(sub.ratio, errors="coerce").dropna()
    return float(r.mean()) if len(r) else 0.0


# --------------------------------------------------------------------------- the claims


def cnn_over_mlp(sub: pd.DataFrame) -> list[ClaimTest]:
    return [ClaimTest(f"{net} {e} ep − net1 {e} ep", *difference(sub, model_name("net1", e, True),
                                                                 model_name(net, e, True), ACC), +1,
                      _study(net, f"acc_{s}") - _study("net1", f"acc_{s}"))
            for e, s in _budget_pairs(sub) for net in ("net2", "net3", "net4")]


def batchnorm_steady(sub: pd.DataFrame) -> list[ClaimTest]:
    pairs = _budget_pairs(sub)
    if len(pairs) < 2:
        return []
    (lo, s_lo), (hi, s_hi) = pairs[0], pairs[-1]
    d3, _ = difference(sub, model_name("net3", lo, True), model_name("net3", hi, True), ACC)
    d2, _ = difference(sub, model_name("net2", lo, True), model_name("net2", hi, True), ACC)
    study = (_study("net3", f"acc_{s_hi}") - _study("net3", f"acc_{s_lo}")) - (
        _study("net2", f"acc_{s_hi}") - _study("net2", f"acc_{s_lo}"))
    did = {k: d3[k] - d2[k] for k in sorted(set(d3) & set(d2))}
    return [ClaimTest(f"(net3 {hi} − {lo} ep) − (net2 {hi} − {lo} ep)", did, _ratio(sub), +1, study, (-2.0, 2.0))]


def rmsprop_no_gain(sub: pd.DataFrame) -> list[ClaimTest]:
    return [ClaimTest(f"net4 {e} ep − net3 {e} ep", *difference(sub, model_name("net3", e, True),
                                                               model_name("net4", e, True), ACC), -1,
                      _study("net4", f"acc_{s}") - _study("net3", f"acc_{s}"))
            for e, s in _budget_pairs(sub)]


def mfcc_over_cnn(sub: pd.DataFrame) -> list[ClaimTest]:
    cnns = [m for m in dict.fromkeys(sub[sub.net.isin(["net2", "net3", "net4"])].model)]
    if not cnns or sub[sub.model == "net5"].empty:
        return []
    best = max(cnns, key=lambda m: float(metric(_runs_of(sub, m), TRACKS).mean()))
    study_cnn = max(_study(n, k) for n in ("net2", "net3", "net4") for k in NETS[n].study if k.startswith("acc_"))
    return [ClaimTest(f"net5 − {best} (the best CNN here), track accuracy", *difference(sub, best, "net5", TRACKS), +1,
                      _study("net5", "acc") - study_cnn)]


def gan_helps(sub: pd.DataFrame) -> list[ClaimTest]:
    return [ClaimTest("net6 − net5, accuracy over segments", *difference(sub, "net5", "net6", ACC), +1,
                      _study("net6", "acc") - _study("net5", "acc")),
            ClaimTest("net6 − net5, early-stopping epoch", *difference(sub, "net5", "net6", "stopped_epoch"), -1,
                      _study("net6", "stopped_epoch") - _study("net5", "stopped_epoch"), bounds=(-1e9, 1e9))]


#: The bound the study gives for net5-raw, and the effect taken as the study's: a net at chance
#: (0.10) against that bound.
RAW_BOUND, RAW_STUDY_EFFECT = 0.15, -0.05


def raw_below(sub: pd.DataFrame) -> list[ClaimTest]:
    r = _runs_of(sub, "net5-raw")
    acc = by_draw(r, ACC)
    return [ClaimTest(f"net5-raw accuracy − {RAW_BOUND}", {k: v - RAW_BOUND for k, v in acc.items()}, _ratio(r), -1,
                      RAW_STUDY_EFFECT)] if acc else []


@dataclass(frozen=True)
class Claim:
    key: str
    text: str
    study: str
    nets: tuple[str, ...]  # every one must have run on the split
    tests: Callable[[pd.DataFrame], list[ClaimTest]]


CLAIMS: tuple[Claim, ...] = (
    Claim("cnn_over_mlp", "CNNs beat the fully connected net", "net2-4 0.54-0.61 against net1 0.43-0.50",
          ("net1", "net2", "net3", "net4"), cnn_over_mlp),
    Claim("batchnorm_steady", "batch normalisation keeps accuracy steady over more epochs",
          "net3 0.614 at 50 and 100 ep; net2 0.604 -> 0.535", ("net2", "net3"), batchnorm_steady),
    Claim("rmsprop_no_gain", "RMSProp does not improve on Adam", "net4 0.545 / 0.535 against net3 0.614 / 0.614",
          ("net3", "net4"), rmsprop_no_gain),
    Claim("mfcc_over_cnn", "the MFCC LSTM beats the spectrogram CNNs", "net5 0.795 against the best CNN 0.614",
          ("net5",), mfcc_over_cnn),
    Claim("gan_helps", "GAN augmentation raises accuracy and stops training sooner",
          "net6 0.829 (epoch 18) against net5 0.795 (epoch 27)", ("net5", "net6"), gan_helps),
    Claim("raw_below", "raw audio without MFCCs stays under 0.15", "net5-raw < 0.15", ("net5-raw",), raw_below),
)


def claim_rows(runs: pd.DataFrame, split: str) -> list[ClaimRow]:
    """Every claim on ``split``: its tests, Holm-adjusted over all of them as one family."""
    sub = runs[runs.split == split]
    rows = []
    for claim in CLAIMS:
        absent = [n for n in claim.nets if sub[sub.net == n].empty]
        tests = [] if absent else [t.tested() for t in claim.tests(sub) if t.diffs]
        missing = (f"{', '.join(absent)} not run on this split" if absent else
                   "" if tests else "no draw in which all its nets ran")
        rows.append(ClaimRow(claim.key, claim.text, claim.study, tests, missing))
    flat = [t for r in rows for t in r.tests]
    adjusted_tests = iter(adjusted([t.paired for t in flat]))
    return [replace(r, tests=[replace(t, paired=next(adjusted_tests)) for t in r.tests]) for r in rows]


# --------------------------------------------------------------------------- as a table


def power_words(t: ClaimTest) -> str:
    """For a test not significant: what these draws could find, and what the study's effect needs."""
    p = t.paired
    if p.diff.n < 2:
        return f"{t.what}: one draw, nothing to test"
    if not p.diff.sd > 0:
        return f"{t.what}: the same in all {p.diff.n} draws, no spread to test"
    need = draws_needed(t.study, p.diff.sd, p.ratio)
    needed = f"{need} draws" if need is not None else "no number of draws at this spread"
    return (f"{t.what}: ±{detectable(p.diff.sd, p.diff.n, p.ratio):.3f} with these {p.diff.n}; "
            f"the study's {t.study:+.3f} needs {needed}")


def _effect_words(t: ClaimTest) -> str:
    p = fmt_p(t.paired.decisive_p)
    return f"{t.what}: {t.paired.diff.fmt(3)}, p {p if p.startswith('<') else '= ' + p}"


def claims_table(rows: list[ClaimRow], split: str) -> Table:
    body = []
    for r in rows:
        effects = "; ".join(_effect_words(t) for t in r.tests) or r.missing
        power = "; ".join(power_words(t) for t in r.tests if t.outcome == "none") if r.verdict == "not shown at this n" else ""
        body.append([text(r.claim), text(r.study), text(effects), text(r.verdict), text(power or "–")])
    how = ("corrected resampled t-test" if SPLIT_SPECS[split].resampled else "paired t-test over seeds, on one test set")
    return Table(f"claims_{split}", f"The study's claims, tested on split {split}",
                 ["Claim", "Study", "This data: difference [95% interval] (n), Holm p", "Verdict",
                  "If not shown: the effect found with 80% power, and the draws the study's effect needs"], body,
                 [f"Each difference is tested with the {how}, Holm-adjusted over the {sum(len(r.tests) for r in rows)} "
                  "tests of this table. Supported: every test significant in the claimed direction; contradicted: "
                  "one significant against it; otherwise not shown at this n."])


def claims_frame(rows: list[ClaimRow], split: str) -> pd.DataFrame:
    """One row per test, every number, for the CSV and the report's MLflow run."""
    out = []
    for r in rows:
        for t in r.tests or [None]:
            p = t.paired if t else None
            need = draws_needed(t.study, p.diff.sd, p.ratio) if t and p.diff.n >= 2 and p.diff.sd > 0 else None
            out.append({"split": split, "claim": r.key, "verdict": r.verdict, "test": t.what if t else r.missing,
                        "study_effect": t.study if t else math.nan, "draws": p.diff.n if p else 0,
                        "effect": p.diff.mean if p else math.nan, "lo": p.diff.lo if p else math.nan,
                        "hi": p.diff.hi if p else math.nan, "p": p.p if p else math.nan,
                        "p_holm": p.decisive_p if p else math.nan,
                        "detectable_80": detectable(p.diff.sd, p.diff.n, p.ratio) if p and p.diff.n >= 2 and p.diff.sd > 0
                        else math.nan, "draws_for_study_effect": need if need is not None else math.nan})
    return pd.DataFrame(out)

