"""The arithmetic behind the report's verdicts: the exact sign-flip test, the two-way variance,
the claims' tests for what they say (TOST, non-superiority, stopping in samples with censoring),
Holm, and the review's faults, fixed. Power, hours and the sequential boundaries are in
``test_power.py``; the tests' *level* and power, by simulation, in ``test_calibration.py``; the
mutations the calibration must fail, in ``test_mutations.py``.
"""

from __future__ import annotations

import math

import mlflow
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from genre_models.reporting import significance
from genre_models.reporting.answers import answer_block
from genre_models.reporting.claims import ClaimRow, ClaimTest, sooner
from genre_models.reporting.claims_tables import claims_frame, claims_table
from genre_models.reporting.runs import select_runs
from genre_models.reporting.significance import Contrast, SplitData, Votes, estimate
from genre_models.reporting.stats import Spread, cluster_variance, paired_of, sign_flip, two_way_spread
from genre_models.reporting.verdicts import split_verdicts

from conftest import fake_run, runs_table

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


def _votes_runs(split: str, right: dict, groups=None):
    rows = [{"net": net, "seed": s, "split": split, "acc": float(np.mean(list(v.values())))}
            for (net, s), v in right.items()]
    return runs_table(rows), Votes.of({f"{n}-{s}": v for (n, s), v in right.items()}, groups)


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
    runs = runs_table(rows)
    row = next(r for r in split_verdicts(runs, "track", significance.NO_VOTES).claims if r.key == "cnn_over_mlp")
    assert [t.what for t in row.tests] == ["net2 50 ep − net1 50 ep"] and row.verdict == "supported"
    assert row.partial == "tested without net3, net4 (not run on this split)"
    assert row.verdict_words == "supported, tested without net3, net4 (not run on this split)"
    only_mlp = runs_table([r for r in rows if r["net"] == "net1"])
    row = next(r for r in split_verdicts(only_mlp, "track", significance.NO_VOTES).claims if r.key == "cnn_over_mlp")
    assert row.verdict == "not run" and row.missing == "none of net2, net3, net4 ran on this split"


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
