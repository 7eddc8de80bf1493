"""`benchmark sweep` and `benchmark report`: the grid, report arithmetic, empty experiments, names
from the store. (The sweep as a running process, killed, resumed, in parallel:
tests/test_sweep_runs.py; the main job itself, end to end: tests/test_main_job.py.)"""

from __future__ import annotations


import mlflow
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from benchmark.cli import main
from genre_models.reporting.mcnemar import mcnemar
from genre_models.reporting.stats import paired_test, summarize
from genre_models.sweep.grid import SweepConfig, build_grid, dependencies
from genre_models.util import safe_name

from conftest import fake_run as _fake_run, private_store

EXP = "gtzan-genre-benchmark"


def test_study_grid_follows_the_study():
    grid = build_grid(SweepConfig(data_dir="x"))
    per = [p for p in grid if p.split == "random" and p.seed == 0]
    assert [p.label for p in per] == [
        "net5 e200 random s0", "gan random s0", "net6 e200 random s0", "net5-raw e200 random s0",
        "net1 e50 random s0", "net1 e100 random s0", "net2 e50 random s0", "net2 e100 random s0",
        "net3 e50 random s0", "net3 e100 random s0", "net4 e50 random s0", "net4 e100 random s0",
        "svm random s0", "logreg random s0"]  # the baselines, fitted once each
    assert len(grid) == 14 * 3 * 2  # 3 seeds, random and track
    deps = dependencies(grid)
    gan, net6, net5 = per[1], per[2], per[0]
    assert deps[gan] == [net5] and deps[net6] == [gan] and deps[per[3]] == [] and deps[per[4]] == []
    capped = build_grid(SweepConfig(data_dir="x", nets=("net2", "net6"), seeds=1, splits=("track",), max_epochs=60))
    assert [p.label for p in capped] == ["gan track s0", "net6 e60 track s0", "net2 e50 track s0", "net2 e60 track s0"]
    folded = build_grid(SweepConfig(data_dir="x", nets=("net6", "net1"), seeds=2, splits=("kfold", "kfold"), folds=4))
    assert len(folded) == 4 * 2 * 4  # folds x seeds x (gan, net6, net1 at 50 and 100): repeated split merged
    assert [p.label for p in folded[:4]] == ["gan kfold-0of4 s0", "net6 e200 kfold-0of4 s0", "net1 e50 kfold-0of4 s0",
                                             "net1 e100 kfold-0of4 s0"]
    deps = dependencies(folded)
    assert all(deps[p] == [q for q in folded if q.kind == "gan" and (q.seed, q.fold) == (p.seed, p.fold)]
               for p in folded if p.net == "net6")  # net6 waits for its own fold's GAN
    assert folded[5].coords == {"stage": "train", "split": "kfold", "seed": "0", "fold": "1", "folds": "4", "net": "net6"}


def test_intervals_stay_in_bounds_and_few_seeds_show_their_values():
    c = summarize([0.5, 0.6, 0.7])
    assert c.mean == pytest.approx(0.6) and c.n == 3 and not c.clipped
    half = 4.302652729911275 * 0.1 / np.sqrt(3)  # t(0.975, 2) * sd / sqrt(n)
    assert (c.lo, c.hi) == (pytest.approx(0.6 - half), pytest.approx(0.6 + half))
    assert str(c) == "0.600 [0.352, 0.848] (n=3)"
    wide = summarize([0.05, 0.9, 0.95])  # t half-width 1.27: the raw interval is wider than [0, 1]
    assert (wide.lo, wide.hi, wide.clipped) == (0.0, 1.0, True) and str(wide).endswith("‡ (n=3)")
    assert str(summarize([0.4, 0.5])) == "0.450 (values 0.400, 0.500)"  # n < 3: no interval claimed
    assert not summarize([0.4, 0.5]).has_interval
    assert str(summarize([0.42])) == "0.420 (n=1)" and str(summarize([])) == "–"
    rng = np.random.default_rng(0)
    for _ in range(300):  # any sample of accuracies: the interval stays in [0, 1]
        x = rng.uniform(0, 1, size=int(rng.integers(3, 8))) ** rng.uniform(0.2, 5)
        cell = summarize(x)
        assert 0.0 <= cell.lo <= cell.mean <= cell.hi <= 1.0
    corrected = summarize([0.5, 0.6, 0.7], ratio=0.15)  # a resampled split: variance term 1/3 + 0.15
    assert corrected.hi - corrected.mean == pytest.approx(half * np.sqrt((1 / 3 + 0.15) * 3))


def test_paired_tests_are_scipys_with_nadeau_and_bengios_correction():
    from scipy import stats

    a, b = {0: 0.5, 1: 0.6, 2: 0.7, 3: 0.1}, {0: 0.6, 1: 0.7, 2: 0.9}
    plain = paired_test(a, b)
    assert plain.keys == (0, 1, 2) and plain.diff.mean == pytest.approx(0.4 / 3) and plain.spread.kind == "plain"
    assert plain.p == pytest.approx(stats.ttest_rel([0.6, 0.7, 0.9], [0.5, 0.6, 0.7]).pvalue)
    d = np.array([0.1, 0.1, 0.2])
    t = d.mean() / (d.std(ddof=1) * np.sqrt(1 / 3 + 0.25))  # Nadeau & Bengio: 1/n + n_test/n_train
    fixed = paired_test(a, b, ratio=0.25)
    assert fixed.spread.kind == "corrected" and fixed.p == pytest.approx(2 * stats.t.sf(t, 2)) and fixed.p > plain.p
    assert fixed.verdict == ("no significant difference at 0.05 (over 3 seeds: corrected resampled t-test "
                             f"p = {fixed.p:.3f})")
    sure = paired_test({s: 0.5 for s in range(5)}, {s: 0.6 + 0.001 * s for s in range(5)}, ratio=0.1)
    assert sure.p < 0.001 and sure.verdict == "a significant gain at 0.05 (over 5 seeds: corrected resampled t-test p < 0.001)"
    folds = paired_test({(0, f): 0.5 + 0.01 * f for f in range(10)}, {(0, f): 0.4 + 0.02 * f for f in range(10)}, 1 / 8)
    assert "over 10 folds" in folds.verdict and folds.diff.n == 10
    two = paired_test({(s, f): 0.5 for s in (0, 1) for f in (0, 1)}, {(0, 0): 0.6, (1, 1): 0.7001})
    assert two.verdict == "cannot be tested on 2 draws (2 folds x 2 seeds): a test needs at least 3 draws"
    assert "cannot be tested on 1 seed" in paired_test({0: 0.5}, {0: 0.7}).verdict
    m = mcnemar(np.array([1] * 9 + [0] * 11), np.array([0] * 8 + [1] * 12))  # a alone right on 8, b alone on 11
    assert (m.tracks, m.only_a, m.only_b, m.draws) == (20, 8, 11, 1)
    assert m.smallest_p == pytest.approx(stats.binomtest(8, 19, 0.5).pvalue) and m.differed == 0
    assert mcnemar(np.array([1, 0]), np.array([1, 0])).smallest_p == 1.0


def _cells(md_row: str) -> list[str]:
    return [c.strip() for c in md_row.strip().strip("|").split("|")]


@pytest.fixture(scope="module")
def known_report(tmp_path_factory):
    """A report over runs with known figures: net5, net6, net2 at two budgets, net5-raw and a plugin's
    net on `track` over 3 seeds (net2 without n_train), net1 and capped net5 runs on `random`, and a
    FAILED run; returns its text, its path and each net5 run's confusion matrix. Written once for
    the module's three tests, in a store of its own."""
    tmp_path = tmp_path_factory.mktemp("known_report")
    with pytest.MonkeyPatch.context() as monkeypatch:
        next(private_store(tmp_path, monkeypatch))  # the store is set up; nothing to end after the report
        return _write_known_report(tmp_path)


def _write_known_report(tmp_path):
    client = mlflow.MlflowClient()
    exp_id = mlflow.get_experiment_by_name(EXP).experiment_id
    rng = np.random.default_rng(1)
    conf = {}
    for seed, (a5, a6) in enumerate([(0.5, 0.6), (0.6, 0.7), (0.7, 0.9)]):
        conf[seed] = rng.integers(0, 5, size=(10, 10))
        # n_train 210 beside n_test 30-32: Nadeau & Bengio's correction widens these cells.
        _fake_run(client, exp_id, "net5", seed, a5, stopped_epoch=20 + seed, test_track_accuracy=a5 + 0.1,
                  test_macro_f1=0.4 + 0.1 * seed, confusion=conf[seed], params={"n_train": 210}, right=5)
        _fake_run(client, exp_id, "net6", seed, a6, stopped_epoch=10, test_track_accuracy=a6, params={"n_train": 210},
                  right=7)
        _fake_run(client, exp_id, "net2", seed, 0.30 + 0.1 * seed, epochs=50)
        _fake_run(client, exp_id, "net2", seed, 0.40, epochs=100)
        _fake_run(client, exp_id, "net5-raw", seed, 0.1 + 0.01 * seed, stopped_epoch=7)
        # A plugin's net: the report knows it only from its runs (its package need not be installed here).
        _fake_run(client, exp_id, "mynet", seed, a5 + 0.05, epochs=30, stopped_epoch=12,
                  tags={"input_kind": "mfcc", "net_origin": "module my_nets:tiny", "net_baseline": "net5"},
                  params={"early_stopping": "True", "n_train": 210})
    _fake_run(client, exp_id, "net2", 9, 0.99, epochs=50, status="FAILED")  # never counted
    _fake_run(client, exp_id, "net1", 0, 0.11, split="random", epochs=50)
    for seed, acc in ((0, 0.4), (1, 0.5)):  # two seeds, both stopped at their cap of 8 epochs
        _fake_run(client, exp_id, "net5", seed, acc, split="random", epochs=8, stopped_epoch=8)
    out = tmp_path / "r" / "report.md"
    result = CliRunner().invoke(main, ["report", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out.read_text(), out, conf


def test_report_cells_come_from_the_runs(known_report):
    text, out, _ = known_report
    assert "gtzan@abc" in text and "synthetic" not in text.split("\n")[2] and "**Code version:** 0.1.0+test" in text
    assert "unfinished training runs left out: 1 FAILED" in text
    # t(0.975, 2) * sd * sqrt(1/3 + 31/210): the corrected resampled interval (plain: [0.352, 0.848])
    assert "| net5 | 10 / 30-32 | 0.600 [0.302, 0.898] (n=3) | 0.7954 | 0.700 [0.402, 0.998] (n=3) | " \
           "21.0 [18.0, 24.0] (n=3) | 27 |" in text
    assert "| net6 | 10 / 30-32 | 0.733 [0.278, 1.000]‡ (n=3) | 0.8291 |" in text  # the interval reached 1.189
    # net2's runs logged no n_train: the corrected interval cannot be sized, so none is claimed (and no test).
    assert "| net2 | 10 / 30-32 | 0.400 (values 0.300, 0.400, 0.500) | 0.6039 | 0.400 (values 0.400, 0.400, 0.400) " \
           "| 0.5346 |" in text
    random_block = text.split("## Split `random`")[1].split("## Split `track`")[0]
    assert "| net1 | 10 / 30 | 0.110 (n=1) | 0.4257 |" in random_block  # net1 ran on `random` only
    assert "| net5 | 10 / 30-31 | 0.450 (values 0.400, 0.500) | 0.7954 |" in random_block
    assert "8.0 (values 8.0, 8.0)†" in random_block and "† net5: 2 of 2 runs stopped at their epoch cap (8)" in random_block
    assert "| net5 | 0.50 ± 0.10 |" in text  # macro F1: mean ± sd over seeds
    files = out.parent / "report_files"
    # The CSV holds the numbers the markdown rounds, column by column.
    csv = pd.read_csv(files / "table2_track.csv").set_index("Model")
    md = {_cells(l)[0]: _cells(l) for l in text.split("### Table 2")[2].split("Files:")[0].splitlines() if l.startswith(("| net", "| mynet"))}
    assert list(csv.index) == ["net5", "net6", "net5-raw", "mynet (plugin)"]
    assert "### Table 2: audio models (net5, net6, net5-raw, mynet), split track" in text
    assert "| net5-raw | 10 / 30-32 | 0.110 (values 0.100, 0.110, 0.120) | < 0.15 |" in text  # no n_train: no interval
    assert "| mynet (plugin) | 10 / 30-32 | 0.650 [0.352, 0.948] (n=3) | – |" in text
    assert "(plugin): not part of the study; the user's own net, trained under the same splits, seeds and " \
           "evaluation: mynet from module my_nets:tiny." in text
    assert "On `track`, net5-raw − net5 in accuracy over segments = -0.490" in text and "On `track`, mynet − net5" in text
    for net, row in csv.iterrows():
        acc = row[["Accuracy (segments) mean", "Accuracy (segments) lo", "Accuracy (segments) hi"]]
        shown = "{:.3f} [{:.3f}, {:.3f}]".format(*acc) if np.isfinite(acc.iloc[1]) else "{:.3f} (values".format(acc.iloc[0])
        assert md[net][2].startswith(shown) and row["Accuracy (segments) n"] == 3
        assert md[net][3] == (f"{row['study']:.4f}" if net in ("net5", "net6") else md[net][3])
        assert row["Test tracks / segments tracks"] == 10
    tex = (files / "table2_track.tex").read_text()
    assert "0.733 [0.278, 1.000]$^\\ddagger$ (n=3)" in tex and "net5 & 10 / 30-32 & 0.600 [0.302, 0.898] (n=3)" in tex


def test_report_opens_with_its_answers_and_its_verdicts_come_from_the_runs(known_report):
    text, out, _ = known_report
    # The report opens with its answers, split by split; the method comes last.
    assert text.startswith("# genre-bench report: gtzan-genre-benchmark\n\n## Answers\n")
    answers = text.split("## Answers")[1].split("- **Dataset:**")[0]
    assert "### `track`: 3 seeds, one Holm family of 3 tests at 0.05" in answers
    assert "- **CNNs beat the fully connected net**: not run (net1 not run on this split)." in answers
    assert ("- **raw audio without MFCCs stays under 0.15**: not tested: a run lacks its sample counts") in answers
    assert "- **Significant comparisons:** none of the 4 the report draws." in answers
    assert "To decide \u201cGAN augmentation raises accuracy and stops training sooner\u201d" in answers
    assert "Cells: mean over draws" not in text.split("## Context")[0]
    how = text.split("## How to read this report")[1]
    assert "Cells: mean over draws" in how and "one Holm family of their own" in how
    # The verdict: the corrected t-test and the exact sign-flip test over track clusters, the larger p, Holm-adjusted
    # over the split's one family. Only 2 tracks ever differ (net6 right on tracks 5 and 6 in all 3 seeds): the
    # sign-flip test's p is 2 / 4 = 0.5, whatever the t-test says. McNemar is per draw, and decides nothing.
    assert ("On `track`, net6 − net5 in accuracy over segments = 0.133 [-0.039, 0.306] (n=3): no significant "
            "difference at 0.05 (over 3 seeds: corrected resampled t-test p = 0.080, exact sign-flip test over 10 track "
            "clusters p = 0.500 (the larger decides); Holm-adjusted over the split's ") in text
    assert ("McNemar's exact test per draw, on these trained nets and these tracks (it decides nothing): they differed "
            "at 0.05 in 0 of 3 draws (net5 alone right 0 times, net6 alone 6, over 10 tracks).") in text
    assert "On `track`, net2 50 ep − net2 100 ep" not in text and "On `track`, net2 100 ep − net2 50 ep in accuracy " \
           "over images = 0.000 (values 0.100, 0.000, -0.100): cannot be tested on 3 seeds: a run lacks its sample " \
           "counts" in text  # 50 against 100 epochs; no n_train: not the plain t-test in silence
    families = next(line for line in text.splitlines() if line.startswith("- **Holm families** (one per split;"))
    assert "`random`: " in families and "; `track`: " in families and " tests at 0.05 (" in families
    pairs = pd.read_csv(out.parent / "report_files" / "significance_track.csv")
    assert len(pairs) == 15  # 6 models on `track`: net2 50 ep, net2 100 ep, net5, net6, net5-raw, mynet
    row = pairs[(pairs.a == "net5") & (pairs.b == "net6")].iloc[0]
    assert (row.draws, row.tracks, row.only_a_right, row.only_b_right, row.mcnemar_draws) == (3, 10, 0, 6, 3)
    assert row.t_p == pytest.approx(0.0796, abs=1e-4) and row.sign_flip_p == pytest.approx(0.5) and row.p == 0.5
    assert row.in_family and row.p_holm >= row.p and row.track_clusters == 10
    matrix = pd.read_csv(out.parent / "report_files" / "pvalues_track.csv", index_col=0)
    assert matrix.loc["net5", "net6"] == "0.500" and matrix.loc["net6", "net5"] == "0/3"  # unadjusted; McNemar below


def test_report_files_hold_its_tables_figures_and_html(known_report):
    text, out, conf = known_report
    files = out.parent / "report_files"
    for name in ("table1_track", "table2_track", "f1_track", "table1_random", "table2_random"):
        assert f"[{name}.csv](report_files/{name}.csv)" in text
        assert (files / f"{name}.tex").read_text().startswith("\\begin{table}")
    # Confusion: counts summed over the seeds' runs.
    summed = pd.read_csv(files / "confusion_track_net5.csv", index_col=0).to_numpy()
    assert (summed == conf[0] + conf[1] + conf[2]).all()
    assert (files / "confusion_track.png").is_file() and (files / "headline.png").is_file()
    html = out.with_suffix(".html").read_text()
    assert "<table>" in html and "data:image/png;base64," in html and "0.733 [0.278, 1.000]‡ (n=3)" in html
    assert "<h3>Every test behind the claims, split track</h3>" in html and "Every test behind" not in text
    assert "| 0.534 | MFCC features + SVM | the fault-filtered split" in text  # published figures, with protocols
    claims = pd.read_csv(files / "claims_tests_track.csv")  # the figure and how far its spread alone could move it
    assert {"claim_draws_for_study_effect", "claim_draws_spread_low", "claim_draws_spread_high"} <= set(claims.columns)


def test_report_refuses_empty_and_unfinished_experiments(tmp_store, tmp_path):
    out = tmp_path / "r.md"
    missing = CliRunner().invoke(main, ["report", "--experiment", "nope", "--out", str(out)])
    assert missing.exit_code == 2 and missing.stderr.startswith("error: experiment 'nope' does not exist")
    empty = CliRunner().invoke(main, ["report", "--out", str(out)])
    assert empty.exit_code == 2
    assert empty.stderr.strip() == f"error: experiment '{EXP}' has no runs; nothing to report (run `benchmark sweep` first)"
    client = mlflow.MlflowClient()
    exp_id = mlflow.get_experiment_by_name(EXP).experiment_id
    _fake_run(client, exp_id, "net5", 0, 0.5, status="RUNNING")
    _fake_run(client, exp_id, "net5", 1, 0.5, status="FAILED")
    unfinished = CliRunner().invoke(main, ["report", "--out", str(out)])
    assert unfinished.exit_code == 2 and "no FINISHED training runs" in unfinished.stderr
    assert "1 RUNNING" in unfinished.stderr and "1 FAILED" in unfinished.stderr
    assert not out.exists()  # never an empty table presented as a result


def test_names_from_the_store_never_become_paths_outside_the_report(tmp_store, tmp_path, monkeypatch):
    """An experiment named ``../../../x`` and a net tagged ``../evil``: the report stays in
    ``reports/`` under a safe name, the title keeps the real name (escaped in the HTML)."""
    hostile = "../../../x<b>"
    client = mlflow.MlflowClient()
    exp_id = client.create_experiment(hostile)
    rng = np.random.default_rng(0)
    for seed in range(3):
        _fake_run(client, exp_id, "net5", seed, 0.5, confusion=rng.integers(0, 3, size=(10, 10)))
        _fake_run(client, exp_id, "../evil", seed, 0.4, epochs=5, confusion=rng.integers(0, 3, size=(10, 10)),
                  tags={"input_kind": "mfcc", "net_origin": "module x:y"}, params={"early_stopping": "True"})
    cwd = tmp_path / "work" / "a" / "b"
    cwd.mkdir(parents=True)
    monkeypatch.chdir(cwd)
    before = {p for p in tmp_path.rglob("*")}
    res = CliRunner().invoke(main, ["report", "--experiment", hostile])
    assert res.exit_code == 0, res.output
    made = {p for p in tmp_path.rglob("*")} - before
    assert made and all(cwd / "reports" in p.parents or p == cwd / "reports" for p in made)  # nothing outside
    folder = next((cwd / "reports").iterdir())
    assert folder.name == safe_name(hostile) and ".." not in folder.name and "/" not in folder.name
    md = (folder / "report.md").read_text()
    assert md.startswith("# genre-bench report: ../../../x&lt;b>\n")  # no raw HTML from a name
    assert "genre-bench report: ../../../x&lt;b&gt;" in (folder / "report.html").read_text()
    assert sorted(p.name for p in (folder / "report_files").glob("confusion_track_*.csv")) == [
        f"confusion_track_{safe_name('../evil')}.csv", "confusion_track_net5.csv"]


def test_a_net_or_split_given_twice_is_merged_with_a_note(tmp_path, caplog):
    with caplog.at_level("WARNING"):
        cfg = SweepConfig(data_dir="x", grid="demo", nets=("net5", "net5", "net1"), splits=("track", "track"), seeds=1,
                          max_epochs=1)
    assert (cfg.nets, cfg.splits) == (("net5", "net1"), ("track",)) and len(build_grid(cfg)) == 2
    assert "net5, track given more than once: each runs once" in caplog.text
    res = CliRunner().invoke(main, ["sweep", "--data-dir", str(tmp_path / "none"), "--nets", "net5,net5", "--splits",
                                    "track,track", "--seeds", "1", "--tracking-uri", f"sqlite:///{tmp_path}/m.db"])
    assert res.exit_code == 2 and "net5, track given more than once: each runs once" in res.stderr
