"""The study's observations put to the test on one split, pure: one row per claim, built from
the runs table (``reporting.runs``) and the runs' track votes.

Each claim is tested for what it says:

* "beats", "raises", "stays under": a **directional** test of a contrast against 0 (or the
  bound), two-sided, under the split's variance (``reporting.significance.estimate``);
* "does not improve on" (RMSProp): **non-superiority**, the upper bound of the two-sided 95%
  interval of net4 − net3 below ``+margin``;
* "keeps accuracy steady" (batch normalisation): **equivalence** (TOST, each side at ``alpha``)
  of net3's change between its epoch budgets within ``±margin``;
* "stops training sooner" (the GAN): in **training samples seen** to the stopping epoch (net6's
  epochs carry its generated clips too), a run stopped at its epoch cap censored, by a paired
  sign test that counts only the draws whose order is known (Gehan's rule).

Each test gives a p *for* the claim and a p *against* it (the contrary shown, or the margin
exceeded); the smaller enters the split's one Holm family (``reporting.verdicts``). A claim is
**supported** when every test is significant for it, **contradicted** when any is significant
against it, and otherwise **not shown at this n**, with the draws the study's effect would need
for all its tests at once, at the level that decides (``stats.level``). A claim whose nets did
not run on the split says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from genre_models.models.registry import NETS
from genre_models.reporting.bayes import Posterior, rope_posterior
from genre_models.reporting.mcnemar import exact_mcnemar_p
from genre_models.reporting.runs import budgets, metric, model_name, model_of
from genre_models.reporting.significance import TRACKS, Contrast, SplitData, Votes, draw_keys, estimate, split_metric
from genre_models.reporting.stats import ALPHA, MIN_DRAWS, Paired, t_p

ACC = "test_accuracy"
#: The default margin of "steady" and "no better than", in accuracy.
MARGIN = 0.02


@dataclass(frozen=True)
class Sooner:
    """Net b against net a in training samples seen to the stopping epoch, per draw."""

    sooner: int  # draws where b provably stopped sooner
    later: int
    unknown: int  # tied, or censored by an epoch cap the other way
    ratio: float  # median b / a samples over draws where neither was capped (nan: none)
    capped: int  # runs stopped at their epoch cap

    @property
    def p(self) -> float:
        if self.sooner + self.later + self.unknown < MIN_DRAWS:
            return float("nan")
        return float(exact_mcnemar_p(np.array([self.sooner]), np.array([self.later]))[0])

    def fmt(self) -> str:
        ratio = f"; median ratio of samples {self.ratio:.2f}" if math.isfinite(self.ratio) else ""
        return (f"sooner in {self.sooner}, later in {self.later}, undecided in {self.unknown} draws "
                f"({self.capped} runs capped){ratio}")


@dataclass(frozen=True)
class ClaimTest:
    """One test a claim rests on. ``kind``: ``more`` / ``less`` (directional), ``below``
    (non-superiority under ``margin``), ``within`` (TOST within ±``margin``), ``sooner``."""

    what: str
    kind: str
    study: float  # the study's own effect (for ``sooner``, in epochs)
    paired: Paired | None = None
    sooner: Sooner | None = None
    margin: float = 0.0
    p_adjusted: float = float("nan")
    family: int = 1
    alpha: float = ALPHA
    models: tuple[str, ...] = ()  # the models it compares (what another draw would train)
    #: The family's tests Holm did not reject at alpha, this one counted: under Holm's step-down
    #: this test is compared with alpha / that number at worst, while the others stay rejected.
    unrejected: int = 0

    @property
    def p_for(self) -> float:
        return self._sides()[0]

    @property
    def p_against(self) -> float:
        return self._sides()[1]

    def _sides(self) -> tuple[float, float]:
        """(p for the claim, p against it); nan where untested."""
        if self.kind == "sooner":
            s = self.sooner
            if not math.isfinite(s.p):
                return float("nan"), float("nan")
            return (s.p, 1.0) if s.sooner > s.later else (1.0, s.p)
        p = self.paired
        if not math.isfinite(p.p):
            return float("nan"), float("nan")
        est, sp = p.diff.mean, p.spread
        if self.kind == "below":
            return (min(1.0, 2 * t_p(est, sp, "less", self.margin)), min(1.0, 2 * t_p(est, sp, "greater", self.margin)))
        if self.kind == "within":
            inside = max(t_p(est, sp, "greater", -self.margin), t_p(est, sp, "less", self.margin))
            outside = min(1.0, 2 * min(t_p(est, sp, "greater", self.margin), t_p(est, sp, "less", -self.margin)))
            return inside, outside
        claimed = (est > 0) == (self.kind == "more")
        return (p.p, 1.0) if claimed else (1.0, p.p)

    @property
    def p(self) -> float:
        """The p that enters the family: the side the data point to."""
        return min(self._sides())

    @property
    def decisive_p(self) -> float:
        return self.p_adjusted if math.isfinite(self.p_adjusted) else self.p

    @property
    def outcome(self) -> str:
        """for, against, or none: where the Holm-adjusted test lands."""
        if not math.isfinite(self.decisive_p) or self.decisive_p >= self.alpha:
            return "none"
        p_for, p_against = self._sides()
        return "for" if p_for <= p_against else "against"

    @property
    def posterior(self) -> Posterior | None:
        """The Bayesian companion of a margin test (``reporting.bayes``): the mean difference's
        posterior masses below, in and above ``±margin``; None for the other kinds."""
        if self.kind not in ("below", "within") or self.paired is None:
            return None
        return rope_posterior(self.paired.diff.mean, self.paired.spread, self.margin)

    @property
    def draws(self) -> int:
        return self.paired.diff.n if self.paired else self.sooner.sooner + self.sooner.later + self.sooner.unknown

    def effect(self) -> str:
        """The effect in words: the difference with its unadjusted interval, or the sign counts."""
        if self.kind == "sooner":
            return self.sooner.fmt()
        return self.paired.diff.fmt(3) + ("" if self.paired.diff.has_interval else
                                         f" ({self.paired.why})" if self.paired.why else "")


@dataclass(frozen=True)
class ClaimRow:
    key: str
    claim: str
    study: str
    tests: list[ClaimTest]
    missing: str = ""  # why it could not be tested on this split
    partial: str = ""  # the claim's nets that did not run, where it was tested on the others

    @property
    def tested(self) -> bool:
        """Its nets ran and at least one of its tests could be run: a verdict of its own."""
        return not self.missing and any(math.isfinite(t.p) for t in self.tests)

    @property
    def verdict(self) -> str:
        if self.missing:
            return "not run"
        if not any(math.isfinite(t.p) for t in self.tests):
            return "not tested"
        outcomes = [t.outcome for t in self.tests]
        if "against" in outcomes:
            return "contradicted"
        return "supported" if outcomes and all(o == "for" for o in outcomes) else "not shown at this n"

    @property
    def verdict_words(self) -> str:
        """The verdict with what it was tested without: "supported, tested without net3, net4 (...)"."""
        return f"{self.verdict}, {self.partial}" if self.partial else self.verdict

    def deciding(self) -> ClaimTest | None:
        """The test that decides the verdict: the one against it, else the weakest."""
        if not self.tests:
            return None
        against = [t for t in self.tests if t.outcome == "against"]
        key = (lambda t: t.decisive_p if math.isfinite(t.decisive_p) else 2.0)
        return min(against, key=key) if against else max(self.tests, key=key)


# --------------------------------------------------------------------------- what each claim tests


@dataclass(frozen=True)
class Spec:
    """A test to run: a contrast of models, or (``sooner``) a pair of early-stopping models."""

    what: str
    kind: str
    study: float
    contrast: Contrast | None = None
    pair: tuple[str, str] | None = None


def _study(net: str, key: str) -> float:
    return float(NETS[net].study.get(key, math.nan)) if net in NETS else math.nan


def _budget_pairs(sub: pd.DataFrame) -> list[tuple[int, int]]:
    """(run budget, study budget) pairs, in order, as Table 1 pairs them."""
    study = sorted({e for n in NETS.values() for e in n.study_epochs})
    return list(zip(budgets(sub[sub.fixed_epochs.astype(bool)]), study))


def cnn_over_mlp(sub: pd.DataFrame, acc: str) -> list[Spec]:
    return [Spec(f"{net} {e} ep − net1 {e} ep", "more", _study(net, f"acc_{s}") - _study("net1", f"acc_{s}"),
                 Contrast.pair(model_name("net1", e, True), model_name(net, e, True), acc))
            for e, s in _budget_pairs(sub) for net in ("net2", "net3", "net4")]


def batchnorm_steady(sub: pd.DataFrame, acc: str) -> list[Spec]:
    pairs = _budget_pairs(sub)
    if len(pairs) < 2:
        return []
    (lo, s_lo), (hi, s_hi) = pairs[0], pairs[-1]
    return [Spec(f"net3 {hi} ep − net3 {lo} ep", "within", _study("net3", f"acc_{s_hi}") - _study("net3", f"acc_{s_lo}"),
                 Contrast.pair(model_name("net3", lo, True), model_name("net3", hi, True), acc))]


def rmsprop_no_gain(sub: pd.DataFrame, acc: str) -> list[Spec]:
    return [Spec(f"net4 {e} ep − net3 {e} ep", "below", _study("net4", f"acc_{s}") - _study("net3", f"acc_{s}"),
                 Contrast.pair(model_name("net3", e, True), model_name("net4", e, True), acc))
            for e, s in _budget_pairs(sub)]


def mfcc_over_cnn(sub: pd.DataFrame, acc: str) -> list[Spec]:
    """net5 against each CNN at its longest budget, on track accuracy: "beats the CNNs" is all of
    them (picking the best CNN on test accuracy, then testing against it, would favour the CNN).
    The study's effect is against the CNN at the study budget the tested one pairs with (as Table
    1 pairs them); a budget with no pair takes the CNN's best (the smaller effect). The best
    everywhere had the report ask 20-37% more draws than simulated sweeps in the study world needed
    (docs/protocol.md)."""
    if sub[sub.model == "net5"].empty:
        return []
    pairs = dict(_budget_pairs(sub))
    cnns = [(n, model_of(sub, n)) for n in ("net2", "net3", "net4") if model_of(sub, n)]
    return [Spec(f"net5 − {m}, track accuracy", "more", _study("net5", "acc") - _cnn_study(sub, n, pairs),
                 Contrast.pair(m, "net5", TRACKS)) for n, m in cnns]


def _cnn_study(sub: pd.DataFrame, net: str, pairs: dict[int, int]) -> float:
    """A CNN's study accuracy at the budget its longest run pairs with, else its best."""
    epochs = pd.to_numeric(sub.epochs[(sub.net == net).to_numpy(dtype=bool)], errors="coerce").dropna()
    paired = pairs.get(int(epochs.max())) if len(epochs) else None
    if paired is not None and math.isfinite(_study(net, f"acc_{paired}")):
        return _study(net, f"acc_{paired}")
    return max(_study(net, k) for k in NETS[net].study if k.startswith("acc_"))


def gan_helps(sub: pd.DataFrame, acc: str) -> list[Spec]:
    words = "accuracy over segments" if acc == ACC else "track accuracy"
    return [Spec(f"net6 − net5, {words}", "more", _study("net6", "acc") - _study("net5", "acc"),
                 Contrast.pair("net5", "net6", acc)),
            Spec("net6 against net5, training samples seen to the stop", "sooner",
                 _study("net6", "stopped_epoch") - _study("net5", "stopped_epoch"), pair=("net5", "net6"))]


#: The bound the study gives for net5-raw, and the effect taken as the study's: a net at chance
#: (0.10) against that bound.
RAW_BOUND, RAW_STUDY_EFFECT = 0.15, -0.05


def raw_below(sub: pd.DataFrame, acc: str) -> list[Spec]:
    if sub[sub.model == "net5-raw"].empty:
        return []
    return [Spec(f"net5-raw {'accuracy' if acc == ACC else 'track accuracy'} − {RAW_BOUND}", "less", RAW_STUDY_EFFECT,
                 Contrast((("net5-raw", 1.0),), acc, -RAW_BOUND))]


@dataclass(frozen=True)
class Claim:
    """A claim of the study. ``nets``: every one must have run on the split; ``some_of``: at least
    one must, and the claim is tested on those that did (the line names the others)."""

    key: str
    text: str
    study: str
    nets: tuple[str, ...]
    tests: Callable[[pd.DataFrame, str], list[Spec]]
    some_of: tuple[str, ...] = ()

    def absent(self, ran: set) -> tuple[str, list[str]]:
        """(why the claim cannot be tested, "" where it can; the ``some_of`` nets it is tested without)."""
        lacking = [n for n in self.nets if n not in ran]
        others = [n for n in self.some_of if n not in ran]
        why = [f"{', '.join(lacking)} not run on this split"] if lacking else []
        if self.some_of and len(others) == len(self.some_of):
            why.append(f"none of {', '.join(self.some_of)} ran on this split")
        return "; ".join(why), ([] if why else others)


CNNS = ("net2", "net3", "net4")

CLAIMS: tuple[Claim, ...] = (
    Claim("cnn_over_mlp", "CNNs beat the fully connected net", "net2-4 0.54-0.61 against net1 0.43-0.50",
          ("net1",), cnn_over_mlp, CNNS),
    Claim("batchnorm_steady", "batch normalisation keeps accuracy steady over more epochs",
          "net3 0.614 at 50 and 100 ep", ("net3",), batchnorm_steady),
    Claim("rmsprop_no_gain", "RMSProp does not improve on Adam", "net4 0.545 / 0.535 against net3 0.614 / 0.614",
          ("net3", "net4"), rmsprop_no_gain),
    Claim("mfcc_over_cnn", "the MFCC LSTM beats the spectrogram CNNs", "net5 0.795 against net2-4 0.545-0.614",
          ("net5",), mfcc_over_cnn, CNNS),
    Claim("gan_helps", "GAN augmentation raises accuracy and stops training sooner",
          "net6 0.829 (epoch 18) against net5 0.795 (epoch 27)", ("net5", "net6"), gan_helps),
    Claim("raw_below", "raw audio without MFCCs stays under 0.15", "net5-raw < 0.15", ("net5-raw",), raw_below),
)


# --------------------------------------------------------------------------- running them


def sooner(data: SplitData, a: str, b: str) -> Sooner:
    """b against a in training samples seen to the best epoch (best epoch x samples per epoch: the
    patience epochs after it are the same rule's cost for both nets, and counting them charged
    net6 2.3x per epoch for waiting). A run that reached its epoch cap never stopped: its best is
    censored, known only to lie at or after the best within the cap, so it is sooner than nothing
    it has not beaten already. Runs that logged no best epoch count their stopping epoch."""

    def per_draw(m: str) -> dict:
        r = data.runs(m)
        stop, cap = metric(r, "stopped_epoch"), pd.to_numeric(r.epochs, errors="coerce")
        best = metric(r, "best_epoch").where(lambda x: x > 0) if "metrics.best_epoch" in r else stop * np.nan
        capped = stop >= cap  # never stopped: its true best lies at or after the best within the cap
        epochs = best.fillna(stop)
        seen = epochs * pd.to_numeric(r.n_train, errors="coerce")
        return {k: (s, c) for k, s, c in zip(draw_keys(r), seen, capped) if np.isfinite(s)}

    da, db = per_draw(a), per_draw(b)
    keys = sorted(set(da) & set(db))
    won = lost = 0
    ratios = []
    for k in keys:
        (sa, ca), (sb, cb) = da[k], db[k]
        won += bool(sb < sa and not cb)  # b's true best is known and before a's (known or later)
        lost += bool(sa < sb and not ca)
        if not (ca or cb):
            ratios.append(sb / sa)
    capped = sum(bool(da[k][1]) + bool(db[k][1]) for k in keys)
    return Sooner(won, lost, len(keys) - won - lost, float(np.median(ratios)) if ratios else float("nan"), capped)


def run_spec(data: SplitData, spec: Spec, votes: Votes, margin: float) -> ClaimTest:
    if spec.kind == "sooner":
        return ClaimTest(spec.what, spec.kind, spec.study, sooner=sooner(data, *spec.pair), models=spec.pair)
    m = margin if spec.kind in ("below", "within") else 0.0
    return ClaimTest(spec.what, spec.kind, spec.study, estimate(data, spec.contrast, votes), margin=m,
                     models=tuple(spec.contrast.models))


def _ran(t: ClaimTest) -> bool:
    return t.draws > 0


def claim_rows(data: SplitData, votes: Votes, margin: float = MARGIN) -> list[ClaimRow]:
    """Every claim on the split, its tests unadjusted (``reporting.verdicts`` forms the family)."""
    sub = data.sub
    acc = split_metric(data.split, ACC)
    nets = set(sub.net)
    rows = []
    for claim in CLAIMS:
        absent, without = claim.absent(nets)
        tests = [] if absent else [t for t in (run_spec(data, s, votes, margin) for s in claim.tests(sub, acc))
                                   if _ran(t)]
        missing = absent or ("" if tests else "no draw in which all its nets ran")
        partial = f"tested without {', '.join(without)} (not run on this split)" if without and tests else ""
        rows.append(ClaimRow(claim.key, claim.text, claim.study, tests, missing, partial))
    return rows
