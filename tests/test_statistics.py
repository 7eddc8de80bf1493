"""The arithmetic behind the report's verdicts: the exact sign-flip test, the two-way variance,
the claims' tests for what they say (TOST, non-superiority, stopping in samples with censoring),
Holm, power at the level that decides, and the review's faults, fixed. Their *level* and power,
by simulation, are in ``test_calibration.py``; the mutations the calibration must fail, in
``test_mutations.py``.
"""

from __future__ import annotations

import math
from dataclasses import replace

import mlflow
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from genre_models.reporting import significance
from genre_models.reporting.claim_power import deciding_level, needs_for
from genre_models.reporting.answers import answer_block
from genre_models.reporting.claims import ClaimRow, ClaimTest, sooner
from genre_models.reporting.claims_tables import claims_frame, claims_table
from genre_models.reporting.runs import select_runs
from genre_models.reporting.significance import Contrast, SplitData, Votes, estimate
from genre_models.reporting.power import detectable, draws_needed, power
from genre_models.reporting.stats import Spread, cluster_variance, holm, paired_of, sign_flip, two_way_spread
from genre_models.reporting.verdicts import split_verdicts

from conftest import fake_run

EXP = "gtzan-genre-benchmark"


# --------------------------------------------------------------------------- the tests' arithmetic


def test_the_sign_flip_test_is_exact_over_clusters():
    assert sign_flip(np.array([-1, -1, -1, -1])) == pytest.approx(0.125)  # McNemar's exact test, 4 to 0
    assert sign_flip(np.array([-1, -1, -1, -1, 0, 0])) == pytest.approx(0.125)  # agreeing tracks add nothing
    # 7 tracks where b alone is right and 1 where a alone is, the same in 3 seeds: 8 clusters, not 24 votes.
    assert sign_flip(np.array([3] * 7 + [-3])) == pytest.approx(18 / 256)
    assert sign_flip(np.array([3] * 7 + [-3])) == pytest.approx(stats.binomtest(7, 8).pvalue)
    assert sign_flip(np.array([2, -1, 1, 4])) == pytest.approx(
        np.mean([abs(np.dot(s, [2, -1, 1, 4])) >= 6 for s in np.array(np.meshgrid(*[[-1, 1]] * 4)).T.reshape(-1, 4)]))
    assert sign_flip(np.zeros(5)) == 1.0


def _runs(rows: list[dict]) -> pd.DataFrame:
    """A runs table from (net, seed, accuracy, votes) rows, through the report's select_runs."""
    frame = pd.DataFrame([{"run_id": f"{r['net']}-{r['seed']}", "status": "FINISHED", "start_time": i,
                           "artifact_uri": "", "tags.stage": "train", "tags.net": r["net"], "tags.split": r["split"],
                           "tags.seed": str(r["seed"]), "tags.dataset": "d", "params.epochs": "50",
                           "params.n_test": "10", "params.n_train": "70", "params.n_test_tracks": "10",
                           "params.n_train_tracks": "70", "metrics.test_accuracy": r["acc"],
                           "metrics.test_track_accuracy": r["acc"]} for i, r in enumerate(rows)])
    return select_runs(frame)[0]


def _votes_runs(split: str, right: dict, groups=None):
    rows = [{"net": net, "seed": s, "split": split, "acc": float(np.mean(list(v.values())))}
            for (net, s), v in right.items()]
    return _runs(rows), Votes.of({f"{n}-{s}": v for (n, s), v in right.items()}, groups)


def test_one_draw_where_the_nets_agree_does_not_make_four_tracks_significant():
    """The statistician's case: 4 tracks where only net5 is right in one draw (exact p 0.125), then
    two more draws where the nets agree. Pooled as Durkalski's chi-square it read p = 0.046."""
    tracks = [f"rock.{i:05d}" for i in range(10)]
    first = ({t: i >= 4 for i, t in enumerate(tracks)}, {t: True for t in tracks})
    same = {t: i % 2 == 0 for i, t in enumerate(tracks)}
    right = {("net6", 0): first[0], ("net5", 0): first[1], ("net6", 1): same, ("net5", 1): same,
             ("net6", 2): dict(same), ("net5", 2): dict(same)}
    runs, votes = _votes_runs("track", right)
    p = estimate(SplitData(runs, "track"), Contrast.pair("net5", "net6", "test_accuracy"), votes)
    assert p.p_clusters == pytest.approx(0.125) and p.p >= 0.125


def test_repeated_recordings_are_one_cluster():
    tracks = [f"rock.{i:05d}" for i in range(6)]
    right = {("net5", s): {t: True for t in tracks} for s in range(3)}
    right |= {("net6", s): {t: t not in tracks[:2] for t in tracks} for s in range(3)}  # wrong on the first two
    runs, apart = _votes_runs("track", right)
    _, together = _votes_runs("track", right, {tracks[1]: tracks[0], tracks[0]: tracks[0]})
    contrast, data = Contrast.pair("net5", "net6", "test_accuracy"), SplitData(runs, "track")
    assert estimate(data, contrast, apart).clusters == 6 and estimate(data, contrast, together).clusters == 5
    assert estimate(data, contrast, apart).p_clusters == pytest.approx(0.5)  # two clusters, both one way: 2 / 4
    assert estimate(data, contrast, together).p_clusters == pytest.approx(1.0)  # one recording: no evidence at all


def test_a_fixed_splits_variance_counts_its_test_set():
    """On `filtered` the standard error is sqrt(s^2_seed / S + the cluster-robust variance of the
    per-track mean), on the smaller component's degrees of freedom (Welch-Satterthwaite's, estimated
    from 5 seeds, let the far tail through: 12% family-wise in the calibration)."""
    rng = np.random.default_rng(0)
    per_track = rng.normal(0.02, 0.5, 40)
    d = np.array([0.01, 0.03, 0.02, 0.04, 0.00])
    sp = two_way_spread(d, per_track, np.arange(40))
    a, b = d.var(ddof=1) / 5, per_track.var(ddof=1) / 40
    assert sp.floor == pytest.approx(b) and sp.se == pytest.approx(math.sqrt(a + b))
    assert sp.df == 4  # min(seeds - 1, tracks - 1)
    clusters = np.repeat(np.arange(20), 2)  # pairs of copies
    v, k = cluster_variance(per_track, clusters)
    sums = pd.Series(per_track - per_track.mean()).groupby(clusters).sum()
    assert k == 20 and v == pytest.approx((sums ** 2).sum() / 40 ** 2 * 20 / 19)
    seeds_only = paired_of(d, tuple(range(5)), Spread(d.std(ddof=1), 5, 0.0, 4, "plain"))
    with_tracks = paired_of(d, tuple(range(5)), sp)
    assert seeds_only.p < 0.05 < with_tracks.p  # the seeds agree; the 40 tracks do not


def _claim(kind: str, est: float, se: float, margin: float = 0.02, n: int = 10) -> ClaimTest:
    d = np.full(n, est) + np.linspace(-1, 1, n) * 1e-9
    sp = Spread(se * math.sqrt(n), n, 0.0, n - 1, "plain")
    return ClaimTest("t", kind, 0.0, paired_of(d, tuple(range(n)), sp), margin=margin if kind in ("below", "within") else 0.0)


def test_each_claim_is_tested_for_what_it_says():
    # "steady": equivalence within ±0.02 (TOST); an imprecise zero change is not "steady", only not shown.
    assert _claim("within", 0.001, 0.005).outcome == "for"
    assert _claim("within", 0.001, 0.05).outcome == "none"
    assert _claim("within", -0.06, 0.005).outcome == "against"  # net3 -0.06: shown outside the margin
    # "no better than": non-superiority; equal optimisers measured precisely support it, a clear gain contradicts it.
    assert _claim("below", 0.0, 0.005).outcome == "for"
    assert _claim("below", 0.0, 0.05).outcome == "none"
    assert _claim("below", 0.06, 0.005).outcome == "against"
    t = _claim("below", 0.0, 0.005)
    assert t.p_for == pytest.approx(2 * stats.t.cdf((0.0 - 0.02) / 0.005, 9), rel=1e-4)
    assert _claim("more", 0.05, 0.005).outcome == "for" and _claim("more", -0.05, 0.005).outcome == "against"


def test_the_margin_claims_bayesian_companion_is_the_correlated_t_posterior():
    """Benavoli et al.'s correlated Bayesian t-test with the margin as ROPE: a Student posterior
    at the mean with the split's standard error and degrees of freedom; under its flat prior a
    one-sided mass is the one-sided t-test's p. It describes: no verdict moves with it."""
    t = _claim("within", 0.001, 0.005)
    post = t.posterior
    inside = stats.t.cdf(0.02, 9, loc=0.001, scale=0.005) - stats.t.cdf(-0.02, 9, loc=0.001, scale=0.005)
    assert post.inside == pytest.approx(inside, rel=1e-6) and post.inside > 0.99
    assert post.below + post.inside + post.above == pytest.approx(1.0)
    assert post.above == pytest.approx(stats.t.sf(0.02, 9, loc=0.001, scale=0.005), rel=1e-6)
    # an imprecise change of zero: TOST cannot call it steady, and the companion puts 0.31 within the margin
    vague = _claim("within", 0.0, 0.05).posterior
    assert vague.inside == pytest.approx(2 * stats.t.cdf(0.4, 9) - 1, rel=1e-6) and vague.inside < 0.35
    assert vague.below == pytest.approx(vague.above)
    below = _claim("below", 0.0, 0.005)
    assert below.posterior.above == pytest.approx(below.p_for / 2, rel=1e-6)  # the flat prior's one-sided p
    assert _claim("more", 0.05, 0.005).posterior is None
    assert "P(within ±0.02) = 1.00 (below −0.02 0.00, above +0.02 0.00)" == post.words()
    lonely = ClaimTest("t", "within", 0.0, paired_of(np.array([0.01, 0.02]), (0, 1), Spread(0.01, 2, 0.0, 1, "plain")),
                       margin=0.02)
    assert not lonely.posterior.known and lonely.posterior.words() == "–"


def test_stopping_sooner_counts_samples_seen_and_censors_capped_runs():
    rows = []
    for seed, (e5, e6) in enumerate([(20, 10), (20, 7), (50, 30), (10, 50), (30, 25)]):
        rows += [{"net": "net5", "seed": seed, "split": "track", "acc": 0.5, "stop": e5, "n_train": 100},
                 {"net": "net6", "seed": seed, "split": "track", "acc": 0.5, "stop": e6, "n_train": 230}]
    frame = pd.DataFrame([{"run_id": f"{r['net']}-{r['seed']}", "status": "FINISHED", "start_time": i,
                           "artifact_uri": "", "tags.stage": "train", "tags.net": r["net"], "tags.split": "track",
                           "tags.seed": str(r["seed"]), "tags.dataset": "d", "params.epochs": "50",
                           "params.n_train": str(r["n_train"]), "params.n_test": "10", "params.n_train_tracks": "70",
                           "params.n_test_tracks": "10", "metrics.test_accuracy": 0.5,
                           "metrics.stopped_epoch": float(r["stop"])} for i, r in enumerate(rows)])
    runs = select_runs(frame)[0]
    s = sooner(SplitData(runs, "track"), "net5", "net6")
    # Samples: 2000 v 2300 (later), 2000 v 1610 (sooner), 5000 capped v 6900 (unknown: net5 ran on),
    # 1000 v 11500 capped (later: net5 stopped first), 3000 v 5750 (later). Epochs alone would say "sooner" 4 times.
    assert (s.sooner, s.later, s.unknown, s.capped) == (1, 3, 1, 2)
    assert s.p == pytest.approx(stats.binomtest(1, 4).pvalue)


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


def test_holm_tells_each_claim_test_how_many_of_its_family_it_did_not_reject():
    """The count ``deciding_level`` rests on, from the family as Holm adjusted it."""
    from dataclasses import replace

    from genre_models.reporting.verdicts import holm_family

    paired = paired_of(np.array([0.1, 0.2, 0.3]), (0, 1, 2), Spread(0.1, 3, 0.0, 2, "plain"))

    def test_at(p: float) -> ClaimTest:
        return ClaimTest(f"p={p}", "more", 0.1, replace(paired, p_t=p))
    ps = [0.001, 0.002, 0.2, 0.6]  # Holm rejects the first two at 0.05 (0.004, 0.006), not the others
    row = ClaimRow("k", "claim", "study", [test_at(p) for p in ps], [], False)
    _, (adjusted,), family = holm_family([], [row], 0.05)
    assert family == 4
    assert [t.unrejected for t in adjusted.tests] == [3, 3, 2, 2]


def _effects(client, exp_id, seeds: int, net: str, accs, **kw) -> None:
    for s in range(seeds):
        fake_run(client, exp_id, net, s, accs[s], params={"n_train": 700, "n_train_tracks": 70, "n_test_tracks": 10,
                                                         **kw.pop("params", {})}, **kw)


def test_claims_on_runs_with_known_effects(tmp_store):
    """Six draws: CNNs far above the MLP (supported), RMSProp far above Adam (contradicted: better
    by more than the margin), a GAN gain of +0.01 with much noise (not shown), net3 steady within
    0.02 on both budgets; one Holm family over the claims and the comparisons."""
    client = mlflow.MlflowClient()
    exp_id = mlflow.get_experiment_by_name(EXP).experiment_id
    rng = np.random.default_rng(3)
    n = 6
    for e in (50, 100):
        _effects(client, exp_id, n, "net1", 0.30 + rng.normal(0, 0.01, n), epochs=e)
        for net, level in (("net2", 0.60), ("net3", 0.62), ("net4", 0.75)):
            _effects(client, exp_id, n, net, level + rng.normal(0, 0.002 if net == "net3" else 0.01, n), epochs=e)
    noise = rng.normal(0, 0.08, n)
    _effects(client, exp_id, n, "net5", 0.50 + rng.normal(0, 0.01, n), stopped_epoch=20)
    _effects(client, exp_id, n, "net6", 0.51 + rng.normal(0, 0.01, n) + noise, stopped_epoch=20)
    runs, _ = select_runs(mlflow.search_runs(experiment_names=[EXP]))
    v = split_verdicts(runs, "track", significance.NO_VOTES)
    rows = {r.key: r for r in v.claims}
    assert rows["cnn_over_mlp"].verdict == "supported" and len(rows["cnn_over_mlp"].tests) == 6
    assert rows["rmsprop_no_gain"].verdict == "contradicted"
    assert rows["batchnorm_steady"].verdict == "supported"
    assert rows["gan_helps"].verdict == "not shown at this n"
    assert rows["raw_below"].verdict == "not run" and rows["raw_below"].missing == "net5-raw not run on this split"
    acc = rows["gan_helps"].tests[0]
    assert acc.paired.spread.ratio == pytest.approx(10 / 70)  # by tracks, from the real training part
    tests = [t for r in v.claims for t in r.tests]
    assert v.family == sum(math.isfinite(t.p) for t in tests) + len(v.comparisons)
    assert all(t.family == v.family for t in tests) and all(c.paired.family == v.family for c in v.comparisons)
    from dataclasses import replace

    n_claims = sum(math.isfinite(t.p) for t in tests)
    assert replace(v, family=n_claims + 1).family_words().endswith("of the claims, 1 comparison)")
    assert replace(v, family=n_claims + 2).family_words().endswith("of the claims, 2 comparisons)")
    assert isinstance(rows["gan_helps"], ClaimRow) and rows["gan_helps"].deciding() is not None
    # the Bayesian companion beside each margin claim, in the CSV, the tables and the answers
    frame = claims_frame(v.claims, "track")
    margin = frame[frame.kind.isin(["within", "below"])]
    assert len(margin) == 3 and frame[~frame.kind.isin(["within", "below"])].bayes_in_rope.isna().all()
    sums = margin.bayes_below_rope + margin.bayes_in_rope + margin.bayes_above_rope
    assert np.allclose(sums, 1.0)
    assert (margin[margin.claim == "batchnorm_steady"].bayes_in_rope > 0.95).all()
    assert (margin[margin.claim == "rmsprop_no_gain"].bayes_above_rope > 0.95).all()
    lines = answer_block(v, runs)
    steady = next(x for x in lines if "batch normalisation" in x)
    assert "Bayesian companion (decides nothing): P(within ±0.02) = 1.00" in steady
    assert not any("Bayesian" in x for x in lines if "GAN" in x)
    assert "Bayesian companion P(within ±0.02)" in claims_table(v.claims, "track").rows[1][3].text


def test_net6s_correction_counts_real_training_tracks_and_repeats_follow_one_rule(tmp_store):
    """net6 logs n_train with its generated segments; the pair's ratio comes from real tracks.
    A model run twice for a draw (two grids) counts once, the newest, in cells and tests alike."""
    client = mlflow.MlflowClient()
    exp_id = mlflow.get_experiment_by_name(EXP).experiment_id
    for s in range(3):
        fake_run(client, exp_id, "net5", s, 0.5 + 0.1 * s, params={"n_train": 2000, "n_train_tracks": 70, "n_test": 300})
        fake_run(client, exp_id, "net6", s, 0.6 + 0.1 * s, params={"n_train": 30000, "n_train_real": 2000,
                                                                 "n_train_tracks": 70, "n_test": 300})
    fake_run(client, exp_id, "net5", 0, 0.99, epochs=6, params={"n_train": 2000, "n_train_tracks": 70})  # another grid
    runs, notes = select_runs(mlflow.search_runs(experiment_names=[EXP]))
    assert notes["duplicates"] == 1 and len(runs[runs.net == "net5"]) == 3
    assert runs[runs.net == "net5"].sort_values("seed")["metrics.test_accuracy"].iloc[0] == pytest.approx(0.99)
    assert np.allclose(runs.ratio.astype(float), 10 / 70)  # generated segments never count


# --------------------------------------------------------------------------- the review's faults, fixed


def test_a_claim_is_tested_on_the_nets_that_ran_and_names_the_missing():
    """net1 and net2 only: "CNNs beat the MLP" is tested on net2 (not "not run"), and says so."""
    rows = []
    for s in range(4):
        rows += [{"net": "net1", "seed": s, "split": "track", "acc": 0.30 + 0.01 * s},
                 {"net": "net2", "seed": s, "split": "track", "acc": 0.60 + 0.012 * s}]
    runs = _runs(rows)
    row = next(r for r in split_verdicts(runs, "track", significance.NO_VOTES).claims if r.key == "cnn_over_mlp")
    assert [t.what for t in row.tests] == ["net2 50 ep − net1 50 ep"] and row.verdict == "supported"
    assert row.partial == "tested without net3, net4 (not run on this split)"
    assert row.verdict_words == "supported, tested without net3, net4 (not run on this split)"
    only_mlp = _runs([r for r in rows if r["net"] == "net1"])
    row = next(r for r in split_verdicts(only_mlp, "track", significance.NO_VOTES).claims if r.key == "cnn_over_mlp")
    assert row.verdict == "not run" and row.missing == "none of net2, net3, net4 ran on this split"


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


def test_a_fixed_splits_cells_carry_the_test_sets_error():
    """Seeds that agree closely on 290 tracks: the interval is the tracks' binomial error, not the seeds' spread."""
    from genre_models.reporting.stats import summarize

    values = [0.600, 0.602, 0.598, 0.601, 0.599]
    seeds_only, with_tracks = summarize(values), summarize(values, tracks=290)
    half = stats.t.ppf(0.975, 4) * math.sqrt(np.var(values, ddof=1) / 5 + 0.6 * 0.4 / 290)
    assert with_tracks.hi - with_tracks.mean == pytest.approx(half, rel=1e-6)
    assert (with_tracks.hi - with_tracks.lo) > 10 * (seeds_only.hi - seeds_only.lo)


def test_each_fold_of_a_seed_trains_from_its_own_torch_seed():
    from genre_models.config import TrainConfig

    seeds = {TrainConfig(net="net5", data_dir=".", split="kfold", folds=5, fold=f, seed=0).training_seed for f in range(5)}
    assert len(seeds) == 5 and all(0 <= s < 2**32 for s in seeds)
    assert TrainConfig(net="net5", data_dir=".", split="track", seed=7).training_seed == 7  # unfolded: its seed


def test_draws_become_hours_here_and_on_a_gpu():
    from genre_models.reporting.decisions import DrawCost, draw_cost, more_draws, time_words

    rows = [{"net": n, "seed": s, "split": "kfold", "acc": 0.5} for n in ("net1", "net5") for s in range(3)]
    runs = _runs(rows).assign(start_time=pd.Timestamp("2026-12-07"), fold=0)
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
