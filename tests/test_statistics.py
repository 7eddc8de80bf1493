"""The tests behind the report's verdicts: calibrated under the hard null (no true difference,
tracks that side with one net in every seed), Holm within a split, power from scipy's
noncentral t, no verdict from a difference with no spread, net6's correction from its real
training part, one rule for repeated runs, and the claims table's verdicts on runs with known
effects."""

from __future__ import annotations

import math

import mlflow
import numpy as np
import pytest
from scipy import stats

from genre_models.reporting.claims import claim_rows, claims_table
from genre_models.reporting.runs import select_runs
from genre_models.reporting.stats import (
    clustered_mcnemar, detectable, draws_needed, holm, mcnemar, paired_test, power,
)

from conftest import fake_run

N_TRACKS, FOLDS, SEEDS = 1000, 10, 3


def null_draws(rng: np.random.Generator) -> tuple[dict, dict, np.ndarray, np.ndarray]:
    """Two nets that are equally good, on 1,000 tracks under 10-fold CV with 3 seeds. Each track
    leans one way for good: when the nets disagree on it, the same net is right in every seed
    (and some tracks disagree in almost every seed). Returns per-draw accuracies of a and b, and
    their (draws, tracks) right/wrong/unscored arrays."""
    side = rng.random(N_TRACKS) < 0.5  # True: a is the one right when they disagree
    disagree = rng.beta(0.4, 1.6, N_TRACKS)  # how often, per seed
    easy = rng.random(N_TRACKS)
    acc_a, acc_b = {}, {}
    a_votes = np.full((SEEDS * FOLDS, N_TRACKS), -1, np.int8)
    b_votes = a_votes.copy()
    for s in range(SEEDS):
        split = rng.random(N_TRACKS) < disagree
        both = rng.random(N_TRACKS) < easy
        a_right, b_right = np.where(split, side, both), np.where(split, ~side, both)
        for f, tracks in enumerate(np.array_split(rng.permutation(N_TRACKS), FOLDS)):
            acc_a[(s, f)], acc_b[(s, f)] = a_right[tracks].mean(), b_right[tracks].mean()
            a_votes[s * FOLDS + f, tracks], b_votes[s * FOLDS + f, tracks] = a_right[tracks], b_right[tracks]
    return acc_a, acc_b, a_votes, b_votes


def test_every_test_the_report_uses_holds_its_level_under_the_hard_null():
    """1,000 simulations of the case the statistical review found (pooled McNemar rejected
    11.6-12.9% there): the corrected resampled t-test and the clustered McNemar reject at most 6%."""
    rng = np.random.default_rng(2026)
    rejected = {"t-test": 0, "clustered McNemar": 0, "pooled McNemar (the old test)": 0}
    sims = 1000
    for _ in range(sims):
        acc_a, acc_b, va, vb = null_draws(rng)
        rejected["t-test"] += paired_test(acc_a, acc_b, ratio=100 / 800).p < 0.05
        rejected["clustered McNemar"] += clustered_mcnemar(va, vb).p < 0.05
        scored = va >= 0
        rejected["pooled McNemar (the old test)"] += mcnemar(va[scored] == 1, vb[scored] == 1).p < 0.05
    rate = {k: v / sims for k, v in rejected.items()}
    assert rate["t-test"] <= 0.06 and rate["clustered McNemar"] <= 0.06, rate
    assert rate["pooled McNemar (the old test)"] > 0.08, rate  # the simulation is the hard case: the old test fails it


def test_clustered_mcnemar_is_the_exact_test_when_each_track_is_scored_once():
    a = np.array([[1, 0, 1, 1, 0, -1]], np.int8)
    b = np.array([[0, 0, 1, 0, 1, 1]], np.int8)
    m = clustered_mcnemar(a, b)
    assert (m.tracks, m.only_a, m.only_b, m.clustered) == (5, 2, 1, False)
    assert m.p == pytest.approx(stats.binomtest(2, 3, 0.5).pvalue)
    twice = clustered_mcnemar(np.vstack([a, a]), np.vstack([b, b]))  # the same tracks in two seeds: clusters
    d = np.array([2, 0, 0, 2, -2, 0])  # b_k - c_k per track
    assert twice.clustered and (twice.tracks, twice.pairs) == (5, 10)
    assert twice.p == pytest.approx(stats.chi2.sf(d.sum() ** 2 / (d ** 2).sum(), 1))


def test_a_difference_with_no_spread_is_not_tested():
    same = paired_test({0: 0.50, 1: 0.60}, {0: 0.52, 1: 0.62}, ratio=0.1)
    assert math.isnan(same.p) and same.no_spread
    assert same.verdict == ("cannot be tested: the difference was +0.020 in every one of 2 seeds, so it has no "
                            "spread to test it against")


def test_holm_and_the_power_figures_are_the_textbook_ones():
    assert holm([0.01, 0.04, math.nan, 0.03]) == pytest.approx([0.03, 0.06, math.nan, 0.06], nan_ok=True)
    assert holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    sd, n, ratio, effect = 0.04, 6, 0.125, 0.05
    df, se = n - 1, sd * math.sqrt(1 / n + ratio)
    crit = stats.t.ppf(0.975, df)
    by_hand = stats.nct.sf(crit, df, effect / se) + stats.nct.cdf(-crit, df, effect / se)
    assert power(effect, sd, n, ratio) == pytest.approx(by_hand)
    mde = detectable(sd, n, ratio)
    assert power(mde, sd, n, ratio) == pytest.approx(0.8, abs=1e-6) and mde > effect  # 6 draws miss a +0.05
    need = draws_needed(effect, sd, ratio)
    assert power(effect, sd, need, ratio) >= 0.8 > power(effect, sd, need - 1, ratio)
    # Under the correction the variance keeps sd^2 * ratio: an effect small against it needs no n at all.
    assert draws_needed(0.01, sd, ratio) is None and draws_needed(0.01, sd, 0.0) is not None


EXP = "gtzan-genre-benchmark"


def _effects(client, exp_id, seeds: int, net: str, accs, **kw) -> None:
    for s in range(seeds):
        fake_run(client, exp_id, net, s, accs[s], params={"n_train": 700, "n_train_tracks": 70, "n_test_tracks": 10,
                                                         **kw.pop("params", {})}, **kw)


def test_claims_on_runs_with_known_effects(tmp_store):
    """Six draws: CNNs far above the MLP (supported), RMSProp far above Adam (contradicted), a
    GAN gain of +0.01 with much noise (not shown, with its power figures), and no net6 stopping
    data in one claim's way."""
    client = mlflow.MlflowClient()
    exp_id = mlflow.get_experiment_by_name(EXP).experiment_id
    rng = np.random.default_rng(3)
    n = 6
    for e in (50, 100):
        _effects(client, exp_id, n, "net1", 0.30 + rng.normal(0, 0.01, n), epochs=e)
        for net, level in (("net2", 0.60), ("net3", 0.62), ("net4", 0.75)):
            _effects(client, exp_id, n, net, level + rng.normal(0, 0.01, n), epochs=e)
    noise = rng.normal(0, 0.08, n)
    _effects(client, exp_id, n, "net5", 0.50 + rng.normal(0, 0.01, n), stopped_epoch=20)
    _effects(client, exp_id, n, "net6", 0.51 + rng.normal(0, 0.01, n) + noise, stopped_epoch=20)
    runs, _ = select_runs(mlflow.search_runs(experiment_names=[EXP]))
    rows = {r.key: r for r in claim_rows(runs, "track")}
    assert rows["cnn_over_mlp"].verdict == "supported" and len(rows["cnn_over_mlp"].tests) == 6
    assert rows["rmsprop_no_gain"].verdict == "contradicted"
    assert rows["gan_helps"].verdict == "not shown at this n"  # stopping epochs equal: untestable, accuracy noisy
    assert rows["raw_below"].verdict == "not run" and rows["raw_below"].missing == "net5-raw not run on this split"
    table = claims_table(list(rows.values()), "track").markdown()
    assert "| raw audio without MFCCs stays under 0.15 | net5-raw < 0.15 | net5-raw not run on this split | not run |" in table
    gan = next(line for line in table.splitlines() if line.startswith("| GAN augmentation"))
    acc = rows["gan_helps"].tests[0].paired
    assert f"net6 − net5, accuracy over segments: ±{detectable(acc.diff.sd, n, acc.ratio):.3f} with these 6; the study" in gan
    assert acc.ratio == pytest.approx(10 / 70)  # by tracks, from the real training part


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
