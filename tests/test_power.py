"""Power beside the level: the deciding level and power of each claim, a claim's tests that share
a model, the sooner test's draws needed, TOST's exact power, draws turned into hours, and the
group-sequential boundaries of `sweep --until-decided` (the level itself, simulated: test_calibration.py)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from genre_models.reporting.claim_power import deciding_level, needs_for
from genre_models.reporting.claims import ClaimRow, ClaimTest, sooner
from genre_models.reporting.runs import select_runs
from genre_models.reporting.significance import SplitData
from genre_models.reporting.power import detectable, draws_needed, power
from genre_models.reporting.stats import Spread, holm, paired_of


from conftest import runs_table


def test_holm_and_power_at_the_level_that_decides():
    assert holm([0.01, 0.04, math.nan, 0.03]) == pytest.approx([0.03, 0.06, math.nan, 0.06], nan_ok=True)
    sp = Spread(0.04, 6, 0.04 ** 2 * 0.125, 5, "corrected")
    df, se = 5, sp.se
    crit = stats.t.ppf(1 - 0.01 / 2, df)
    by_hand = stats.nct.sf(crit, df, 0.05 / se) + stats.nct.cdf(-crit, df, 0.05 / se)
    assert power(0.05, sp, 6, alpha=0.01) == pytest.approx(by_hand)
    assert power(detectable(sp, 0.01), sp, 6, 0.01) == pytest.approx(0.8, abs=1e-6)
    need = draws_needed(0.05, sp, 0.01)
    assert power(0.05, sp, need, 0.01) >= 0.8 > power(0.05, sp, need - 1, 0.01)
    assert draws_needed(0.01, sp, 0.01) is None  # the floor sd^2 * ratio puts it out of reach
    # The correction's term sizes the test for the worst case: the test divides by it, the mean
    # does not spread by it. By hand at 40 draws of a 10-fold split (n_test/n_train = 1/9):
    from genre_models.reporting.stats import corrected_spread

    cs = corrected_spread(np.array([0.05, 0.31, 0.12, 0.22, 0.02, 0.18, 0.27, 0.09, 0.16, 0.24]), 1 / 9)
    assert cs.corrected == pytest.approx(cs.floor) and cs.mean_se_at(40) == pytest.approx(cs.sd / math.sqrt(40))
    crit = stats.t.ppf(1 - 0.0025 / 2, 39) * cs.se_at(40) / cs.mean_se_at(40)
    ncp = 0.1 / cs.mean_se_at(40)
    assert power(0.1, cs, 40, 0.0025) == pytest.approx(stats.nct.sf(crit, 39, ncp) + stats.nct.cdf(-crit, 39, ncp))
    # 0.12 is over t * sqrt(floor) (0.097): reachable; as if the floor were the mean's spread, never
    assert draws_needed(0.12, cs, 0.0025) == 65 and draws_needed(0.12, replace(cs, corrected=0.0), 0.0025) is None
    # A claim's test in a family of 13 needs more draws than alone, and all its tests at once more still.
    t = ClaimTest("t", "more", 0.05, paired_of(np.array([0.01, 0.05, 0.09, 0.02]), (0, 1, 2, 3),
                                               Spread(0.04, 4, 0.0, 3, "plain")))
    alone, in_family = needs_for(t, 0.8), needs_for(ClaimTest(**{**t.__dict__, "family": 13}), 0.8)
    assert alone < in_family < needs_for(ClaimTest(**{**t.__dict__, "family": 13}), 0.8 ** (1 / 3))
    # Under Holm's step-down, with 10 of the 13 already rejected it faces alpha / 3, not alpha / 13.
    stepped = ClaimTest(**{**t.__dict__, "family": 13, "unrejected": 3})
    assert deciding_level(stepped) == pytest.approx(0.05 / 3) and alone < needs_for(stepped, 0.8) < in_family
    assert needs_for(stepped, 0.8) == needs_for(ClaimTest(**{**t.__dict__, "family": 3}), 0.8)


def test_a_claims_tests_that_share_a_model_count_as_one_for_its_power_target():
    """net5 against each CNN: one group (each test at 80%); CNNs over the MLP at two budgets: two
    groups; the GAN's accuracy and its samples to the stop: two kinds, two groups."""
    from genre_models.reporting.claim_power import claim_target, moving_together

    def t(kind: str, *models: str) -> ClaimTest:
        return ClaimTest("t", kind, 0.1, models=models)

    lstm = [t("more", "net2 100 ep", "net5"), t("more", "net3 100 ep", "net5"), t("more", "net4 100 ep", "net5")]
    cnn = [t("more", f"net1 {e} ep", f"net{n} {e} ep") for e in (50, 100) for n in (2, 3, 4)]
    gan = [t("more", "net5", "net6"), t("sooner", "net5", "net6")]
    chain = [t("more", "a", "b"), t("more", "c", "d"), t("more", "b", "c")]  # joined through b-c
    assert [moving_together(x) for x in (lstm, cnn, gan, chain)] == [1, 2, 2, 1]
    assert claim_target(ClaimRow("k", "c", "s", lstm)) == pytest.approx(0.8)
    assert claim_target(ClaimRow("k", "c", "s", cnn)) == pytest.approx(0.8 ** 0.5)


def test_stopping_sooner_counts_samples_to_the_best_epoch_and_its_needs_are_a_power_figure():
    """net6 best at epoch 8 (2.3x the samples an epoch) against net5 best at 20: sooner in samples to
    the best epoch, though both waited the same 5 patience epochs after it."""
    from genre_models.reporting.claim_power import sign_test_power, sooner_needs
    from genre_models.reporting.claims import Sooner

    rows = []
    for seed in range(4):
        rows += [{"net": "net5", "seed": seed, "best": 20, "stop": 25, "n_train": 100},
                 {"net": "net6", "seed": seed, "best": 8, "stop": 13, "n_train": 230}]
    frame = pd.DataFrame([{"run_id": f"{r['net']}-{r['seed']}", "status": "FINISHED", "start_time": i,
                           "artifact_uri": "", "tags.stage": "train", "tags.net": r["net"], "tags.split": "track",
                           "tags.seed": str(r["seed"]), "tags.dataset": "d", "params.epochs": "50",
                           "params.n_train": str(r["n_train"]), "params.n_test": "10", "metrics.test_accuracy": 0.5,
                           "metrics.stopped_epoch": float(r["stop"]), "metrics.best_epoch": float(r["best"])}
                          for i, r in enumerate(rows)])
    s = sooner(SplitData(select_runs(frame)[0], "track"), "net5", "net6")
    assert (s.sooner, s.later, s.unknown) == (4, 0, 0)  # 1840 < 2000 samples; at the stop 2990 > 2500
    # The power figure: simulated sign tests at the shares it assumes reach 80% at the draws it names.
    seen = Sooner(7, 2, 1, float("nan"), 0)
    need = sooner_needs(seen, 0.05, 0.8)
    known, q = (7 + 2 + 1) / 12, (7 + 1) / 11
    assert sign_test_power(need, known, q, 0.05) >= 0.8 > sign_test_power(need - 1, known, q, 0.05)
    rng = np.random.default_rng(0)
    k = rng.binomial(need, known, 20000)
    wins = rng.binomial(k, q)
    p = np.where(k > 0, np.minimum(1, 2 * stats.binom.cdf(np.minimum(wins, k - wins), np.maximum(k, 1), 0.5)), 1)
    assert np.mean(p < 0.05) == pytest.approx(sign_test_power(need, known, q, 0.05), abs=0.015)
    assert sooner_needs(Sooner(3, 3, 0, float("nan"), 0), 0.05, 0.8) is None  # no direction to find


def test_tost_power_is_exact_at_small_n():
    """The review's case: n = 3, where the shifted-t shortcut read 0.36 and the truth is 0.56."""
    rng = np.random.default_rng(1)
    n, sd, margin = 3, 0.01, 0.02
    sp = Spread(sd, n, 0.0, n - 1, "plain")
    x = rng.normal(0.0, sd, (100_000, n))
    est, se = x.mean(1), x.std(1, ddof=1) / math.sqrt(n)
    c = stats.t.ppf(0.95, n - 1)
    simulated = np.mean(((est + margin) / se > c) & ((est - margin) / se < -c))
    assert power(0.0, sp, n, 0.05, "within", margin) == pytest.approx(simulated, abs=0.006)
    assert power(0.0, sp, n, 0.05, "within", margin) == pytest.approx(0.56, abs=0.01)


def test_draws_become_hours_here_and_on_a_gpu():
    from genre_models.reporting.decisions import DrawCost, draw_cost, more_draws, time_words

    rows = [{"net": n, "seed": s, "split": "kfold", "acc": 0.5} for n in ("net1", "net5") for s in range(3)]
    runs = runs_table(rows).assign(start_time=pd.Timestamp("2026-12-07"), fold=0)
    runs["end_time"] = runs.start_time + pd.to_timedelta(np.where(runs.net == "net5", 600, 60), unit="s")
    runs["metrics.train_time_s"], runs["metrics.samples_per_sec"] = 500.0, 500.0
    cost = draw_cost(runs, "kfold", ["net5"])
    assert cost.here_s == 600 and cost.gpu_s == pytest.approx(100 + 500 * 500 / 5007)  # net5 at the H200's MFCC rate
    assert draw_cost(runs, "kfold", ["net1 50 ep", "net5"]).here_s == 660  # models, as the claims name them
    assert not draw_cost(runs, "kfold", ["net1 50 ep", "net6"]).known  # net6 never ran: its time is unknown
    assert more_draws(53, 15, 5) == (40, 8)  # whole seeds of 5 folds
    words = time_words(53, 15, 5, DrawCost(600.0, 60.0, ("net5",)))
    assert words.startswith("53 draws (40 more: 8 more seeds), about 6.7 h here and about 40 min on one H200")
    assert time_words(None, 15, 5, cost).startswith("no number of draws decides it")


def test_group_sequential_boundaries_are_exact_and_keep_a_holm_family_at_alpha_over_every_look():
    """The recursive integration meets the published O'Brien-Fleming-type Lan-DeMets boundaries
    (two-sided 0.05, five equal looks); Brownian paths cross the design's boundaries as often as it
    spends; and Holm over five independent nulls, with each p taken to the family's scale at each
    look, errs at alpha over all ten looks: not under it by the union bound's margin."""
    from genre_models.reporting.group_sequential import Boundaries, boundaries, nominal_levels, obf_spent
    from genre_models.reporting.sequential import Design

    classic = lambda t: float(4 - 4 * stats.norm.cdf(stats.norm.ppf(1 - 0.05 / 4) / math.sqrt(t)))  # noqa: E731
    got = boundaries(tuple(i / 5 for i in range(1, 6)), classic)
    assert got == pytest.approx([4.8769, 3.3570, 2.6803, 2.2898, 2.0310], abs=6e-4)
    fractions = tuple(s / 10 for s in range(1, 11))
    levels = np.array(nominal_levels(fractions, 0.05))
    assert levels[-1] == pytest.approx(0.0339, abs=2e-4) and np.all(np.diff(levels) > 0)
    rng = np.random.default_rng(0)
    z = np.cumsum(rng.normal(0, math.sqrt(0.1), (200_000, 10)), 1) / np.sqrt(fractions)  # (paths, looks)
    crossed = np.maximum.accumulate(2 * stats.norm.sf(np.abs(z)) <= levels, axis=1).mean(0)
    assert np.allclose(crossed, [obf_spent(t, 0.05) for t in fractions], atol=0.0015)
    design = Design(1, 10)
    assert design.level(10) == pytest.approx(levels[-1]) and design.level(1) < 1e-8
    last = design.boundaries(10)
    assert last.family_p(last.level) == pytest.approx(0.05, rel=1e-3) and last.family_p(float("nan")) != 0
    assert last.family_p(0.5) == 1.0 and isinstance(last, Boundaries)
    z = np.cumsum(rng.normal(0, math.sqrt(0.1), (20_000, 5, 10)), 2) / np.sqrt(fractions)  # (sims, nulls, looks)
    p = 2 * stats.norm.sf(np.abs(z))
    scales = [design.boundaries(s) for s in range(1, 11)]
    wrong = np.zeros(len(p), bool)
    for k, b in enumerate(scales):
        q = np.vectorize(b.family_p)(p[:, :, k])  # (sims, nulls)
        wrong |= q.min(1) * 5 < 0.05  # every null true: any rejection is Holm's first step's
    rate = wrong.mean()
    assert 0.04 <= rate <= 0.055, rate


def test_a_groups_joint_power_is_each_tests_own_alone_and_what_correlated_t_tests_give_together():
    """One test alone: its own power (noncentral t, TOST, the bound). Two correlated tests: the
    rate at which plain t-tests on simulated correlated draws both reject, between the product of
    their powers and the smaller one."""
    from genre_models.reporting.joint_power import JointPower, Member
    from genre_models.reporting.stats import corrected_spread

    sp = corrected_spread(np.array([0.05, 0.31, 0.12, 0.22, 0.02, 0.18, 0.27, 0.09, 0.16, 0.24]), 1 / 9)
    for kind, effect, margin, test in [("more", 0.1, 0.0, "two-sided"), ("less", -0.1, 0.0, "two-sided"),
                                       ("below", -0.05, 0.02, "below"), ("within", 0.0, 0.1, "within")]:
        alone = JointPower([Member(kind, effect, margin, 0.01, sp)], np.eye(1))
        for n in (10, 40):
            assert alone.power(n) == pytest.approx(power(effect, sp, n, 0.01, test, margin), abs=0.025)
    rng, n, sd, alpha = np.random.default_rng(3), 12, 0.1, 0.01
    plain = Spread(sd, n, 0.0, n - 1, "plain")
    for rho, effects in [(0.0, (0.08, 0.08)), (0.6, (0.08, 0.1)), (0.95, (0.08, 0.08))]:
        corr = np.array([[1.0, rho], [rho, 1.0]])
        d = np.array(effects) + sd * rng.standard_normal((20000, n, 2)) @ np.linalg.cholesky(corr).T  # (sims, n, 2)
        t = d.mean(1) / (d.std(1, ddof=1) / math.sqrt(n))  # (sims, 2)
        both = np.mean(np.all(t > stats.t.ppf(1 - alpha / 2, n - 1), axis=1))
        joint = JointPower([Member("more", e, 0.0, alpha, plain) for e in effects], corr).power(n)
        assert joint == pytest.approx(both, abs=0.02)
        own = [power(e, plain, n, alpha) for e in effects]
        assert own[0] * own[1] - 0.02 <= joint <= min(own) + 0.01


def test_a_group_pools_its_spread_and_reads_its_correlation_from_shared_draws():
    from genre_models.reporting.joint_power import draw_correlation, pooled

    a = Spread(0.1, 5, 0.1 ** 2 * 0.25, 4, "corrected", 0.1 ** 2 * 0.25)
    b = Spread(0.2, 9, 0.001 + 0.2 ** 2 * 0.1, 8, "two-way", 0.2 ** 2 * 0.1)
    pa, pb = pooled([a, b])
    var = (4 * 0.01 + 8 * 0.04) / 12  # weighted by degrees of freedom
    assert pa.sd ** 2 == pytest.approx(var) and pb.sd ** 2 == pytest.approx(var)
    assert pa.floor == pytest.approx(var * 0.25) and pa.corrected == pytest.approx(var * 0.25)
    assert pb.floor == pytest.approx(0.001 + var * 0.1)  # the test set's own term kept
    x = {k: v for k, v in enumerate([0.1, 0.3, 0.2, 0.5, 0.4])}
    y = {k: v for k, v in enumerate([0.2, 0.2, 0.4, 0.4, 0.9, 7.0])}  # key 5 not shared
    r = draw_correlation([x, y])
    assert r[0, 1] == pytest.approx(np.corrcoef([0.1, 0.3, 0.2, 0.5, 0.4], [0.2, 0.2, 0.4, 0.4, 0.9])[0, 1])
    assert np.array_equal(draw_correlation([{0: 1.0, 1: 2.0}, {0: 1.0, 1: 3.0}]), np.eye(2))  # 2 shared draws
    assert np.array_equal(draw_correlation([x, {k: 0.2 for k in x}]), np.eye(2))  # one does not vary
    three = draw_correlation([{0: 1.0, 1: 2.0, 2: 4.0}, {0: 2.0, 1: 1.0, 2: 3.0}, {0: 0.5, 1: 0.1, 2: 0.9}])
    assert np.allclose(np.diag(three), 1.0) and np.linalg.eigvalsh(three).min() > 0  # 3 tests on 3 draws: rank 2


def test_a_claims_draws_needed_is_where_its_tests_reach_80_percent_together():
    """net5 against each CNN at its longest budget, the study's effect at the study budget it pairs
    with: net2 at 100 epochs is 0.7954 - 0.5346, not the CNN's best (0.6039, at 50)."""
    from genre_models.reporting.claim_power import TARGET_POWER, claim_needs, claim_power_at, needs_range, range_words
    from genre_models.reporting.claims import mfcc_over_cnn
    from genre_models.reporting.joint_power import pooled
    from genre_models.reporting.significance import TRACKS

    rows = [{"net": n, "seed": s, "split": "track", "acc": 0.5, "epochs": e}
            for n in ("net2", "net3", "net4") for e in (50, 100) for s in range(3)]
    sub = runs_table(rows + [{"net": "net5", "seed": s, "split": "track", "acc": 0.7} for s in range(3)])
    specs = mfcc_over_cnn(sub, TRACKS)
    assert [round(s.study, 4) for s in specs] == [round(0.7954 - 0.5346, 4), round(0.7954 - 0.6138, 4),
                                                 round(0.7954 - 0.5346, 4)]
    rng = np.random.default_rng(5)
    shared = rng.normal(0, 0.08, 8)  # net5's own noise, in every test
    tests = [ClaimTest(f"net5 − {m}", "more", s.study, paired_of(d, tuple(range(8)), Spread(d.std(ddof=1), 8, 0.0, 7, "plain")),
                       family=10, models=("net5", m))
             for m, s in zip(("net2", "net3", "net4"), specs) for d in [0.15 + shared + rng.normal(0, 0.08, 8)]]
    row = ClaimRow("mfcc_over_cnn", "c", "s", tests)
    need, at = claim_needs(row), claim_power_at(row)
    assert at(need) >= TARGET_POWER > at(need - 1)
    alone = [draws_needed(t.study, sp, 0.005, TARGET_POWER) for t, sp in zip(tests, pooled([t.paired.spread for t in tests]))]
    assert max(alone) - 2 <= need  # together, never under the hardest alone (2: Monte-Carlo error)
    assert claim_needs(ClaimRow("k", "c", "s", tests[:1] + [replace(tests[1], study=math.nan)])) is None
    # How far the spread alone could move it: the sd at the ends of its 80% interval on 7 df.
    low, high = needs_range(row)
    assert low == claim_needs(row, scale=math.sqrt(7 / stats.chi2.ppf(0.9, 7))) and low < need < high
    assert high == claim_needs(row, scale=math.sqrt(7 / stats.chi2.ppf(0.1, 7)))
    assert range_words(row, need) == f"{low} to {high} draws across the spread's 80% interval"
