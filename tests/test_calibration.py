"""The level of the report's tests, and their power, by simulation: ``benchmark calibrate``
pushes simulated sweeps through the report's own verdicts (``split_verdicts``). It runs here at a
small scale through the CLI, in the realistic world, and must find every test that decides a
verdict at its level, with power beside it; the sequential procedure of ``sweep --until-decided``
is simulated whole. That it can fail is ``test_mutations.py``. Files of their own, so that the two
test processes share the slow simulations with the rest of the suite.
"""

from __future__ import annotations

import json
import math

import mlflow
import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats

from benchmark.cli import main
from genre_models.reporting import sequential_calibration

from conftest import fake_run

EXP = "gtzan-genre-benchmark"


# --------------------------------------------------------------------------- the level, through the shipped path


@pytest.mark.slow
@pytest.mark.parametrize("split, shape, strongest", [
    # the real lists' 930 tracks: at the study's effects on the metric tested, 100 tracks leave
    # every test under 10% power; at 10 seeds the LSTM's claim is found in 81% of sweeps
    ("filtered", ["--tracks", "930", "--seeds", "10"], "claim: the MFCC LSTM beats the CNNs"),
    ("kfold", ["--tracks", "60", "--folds", "5", "--seeds", "2"], "comparison: net5 − best baseline (track votes)")])
def test_calibrate_finds_every_verdict_test_at_its_level(tmp_store, tmp_path, split, shape, strongest):
    """`benchmark calibrate` as a user runs it: the realistic scenarios by default, through the
    report's verdicts; the JSON is a list of rates under the null and, beside them, power at the
    study's effects, with exact intervals; the run is logged; no test that decides a verdict has
    an interval wholly above 5%, and power where the study's effects hold is above the level."""
    out = tmp_path / "rates.json"
    res = CliRunner().invoke(main, ["calibrate", "--split", split, *shape, "--sims", "40", "--jobs", "2",
                                    "--json", str(out)])
    assert res.exit_code in (0, 1) and "Traceback" not in res.output, res.output
    rates = json.loads(out.read_text())
    assert {r["scenario"] for r in rates} == {"realistic", "realistic+repeats"}
    nulls = [r for r in rates if r["hypothesis"] == "null"]
    alts = {(r["scenario"], r["test"]): r for r in rates if r["hypothesis"] == "alternative"}
    for r in rates:
        assert set(r) >= {"scenario", "test", "hypothesis", "rejection_rate", "mc_sd", "interval", "sims"}
        k, n = r["rejected"], r["tested"]
        assert n > 0 and r["rejection_rate"] == pytest.approx(k / n) and r["sims"] == 40
        assert r["interval"][0] == pytest.approx(stats.beta.ppf(0.025, k, n - k + 1) if k else 0.0)  # Clopper-Pearson
        assert r["mc_sd"] == pytest.approx(math.sqrt(k / n * (1 - k / n) / n))
        if r["hypothesis"] == "null" and r["decides"]:
            assert r["interval"][0] <= 0.05, r  # not above the level
            assert r["holds"] == (k / n + 2 * r["mc_sd"] <= 0.05 + 1e-12)  # the strict rule the exit code uses
    assert sum(r["decides"] for r in nulls) >= 2 * 15
    # power beside the level: where the study's effects hold, its largest effect on this shape is found
    # (30 test tracks on this `filtered`, 12 on this `kfold`: most of the study's effects are out of reach)
    found = alts[("realistic", strongest)]
    assert found["rejection_rate"] > 0.1 and found["world"] == "study", found
    assert "power (at the study's effects)" in res.output
    held = all(r["holds"] for r in nulls if r["decides"])
    assert res.exit_code == (0 if held else 1)
    assert ("every test that decides a verdict kept its level" in res.output) == held
    run = mlflow.search_runs(experiment_names=["genre-bench-calibration"]).iloc[0]
    assert run["tags.stage"] == "calibrate" and run["params.shape.split"] == split
    assert run["metrics.tests_above_level"] == sum(not r["holds"] for r in nulls if r["decides"])


@pytest.mark.slow
def test_calibrate_until_decided_simulates_the_sequential_sweep(tmp_store, tmp_path):
    """--until-decided: the family's level over every look in both null worlds, and the power and
    seeds at the stop where the study's effects hold; the seeds lie between the first look's and the
    horizon; a horizon under the first look is a one-line error."""
    out = tmp_path / "seq.json"
    res = CliRunner().invoke(main, ["calibrate", "--split", "kfold", "--tracks", "60", "--folds", "5", "--seeds", "2",
                                    "--until-decided", "--max-seeds", "4", "--sims", "24", "--jobs", "2",
                                    "--scenarios", "realistic", "--json", str(out)])
    assert res.exit_code in (0, 1) and "Traceback" not in res.output, res.output
    rates = {r["test"]: r for r in json.loads(out.read_text())}
    assert set(rates) == {*sequential_calibration.LEVEL.values(), sequential_calibration.POWER,
                          sequential_calibration.CLAIMS}
    for r in rates.values():
        assert r["tested"] > 0 and 2 <= r["mean_seeds"] <= 4, r
        if r["hypothesis"] == "null":
            assert r["interval"][0] <= 0.05 and r["decides"], r
        else:
            assert r["world"] == "study"
    claims = rates[sequential_calibration.CLAIMS]
    assert claims["tested"] >= 24 * 3 and claims["rejected"] > 0  # several claims a sweep, some supported
    assert "then a seed at a time until decided, up to 4 seeds" in res.output
    assert "stops at " in res.output and "seeds on average" in res.output
    bad = CliRunner().invoke(main, ["calibrate", "--seeds", "5", "--until-decided", "--max-seeds", "3", "--sims", "10"])
    assert bad.exit_code == 2 and "error: --max-seeds (3) is under --seeds (5), the first look's seeds" in bad.output


def test_calibrate_takes_the_shape_and_spreads_of_a_finished_sweep(tmp_store, tmp_path):
    """--experiment: the split, tracks (from the training part's size), seeds, segments per track
    and accuracy come from the sweep; an option given still applies; the run is logged there."""
    client = mlflow.MlflowClient()
    exp_id = mlflow.get_experiment_by_name(EXP).experiment_id
    rng = np.random.default_rng(5)
    for s in range(4):
        for net, level in (("net5", 0.6), ("net6", 0.62)):
            fake_run(client, exp_id, net, s, level + rng.normal(0, 0.05), right=6, stopped_epoch=12,
                     test_track_accuracy=level + rng.normal(0, 0.2),
                     params={"n_train_tracks": 140, "n_test_tracks": 20, "n_test": 600, "n_train": 4200})
    out = tmp_path / "r.json"
    res = CliRunner().invoke(main, ["calibrate", "--experiment", EXP, "--sims", "20", "--seeds", "5", "--no-power",
                                    "--scenarios", "training-noise,few-discordant", "--json", str(out)])
    assert res.exit_code in (0, 1) and "Traceback" not in res.output, res.output  # 20 sims: one rejection reads 5% + 2 sd
    assert "(track, 200 tracks, 1 fold(s) x 5 seed(s); the shape of 8 runs on `track` (accuracy " in res.output
    run = mlflow.search_runs(experiment_names=[EXP], filter_string="tags.stage = 'calibrate'").iloc[0]
    assert (run["params.shape.tracks"], run["params.shape.seeds"], run["params.shape.segments"]) == ("200", "5", "30")
    assert {r["scenario"] for r in json.loads(out.read_text())} == {"training-noise", "few-discordant"}
    bad = CliRunner().invoke(main, ["calibrate", "--scenarios", "no-such", "--sims", "10"])
    assert bad.exit_code == 2 and "unknown scenario 'no-such'; the scenarios are realistic, training-noise, " in bad.output


def test_the_needs_against_power_script_runs_as_documented_at_a_small_scale(tmp_path):
    """docs/protocol.md's ``scripts/needs_vs_power.py``: power per claim at each shape, the
    report's median draws needed beside it, and the 80% crossing between shapes."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "scripts" / "needs_vs_power.py"
    out = tmp_path / "nvp.json"
    res = subprocess.run([sys.executable, str(script), "--split", "filtered", "--tracks", "930", "--seeds", "10,20",
                          "--sims", "6", "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "| mfcc_over_cnn |" in res.stdout and "simulated 80% at" in res.stdout
    got = json.loads(out.read_text())
    assert got["shape"]["seeds"] == [10, 20] and got["sims"] == 6
    mfcc = got["claims"]["mfcc_over_cnn"]
    assert mfcc["draws"] == [10, 20] and all(0.0 <= p <= 1.0 for p in mfcc["power"])
    assert mfcc["power"][1] >= 0.5  # 98% at 20 seeds in the 200-sim measurement
    assert all(n == "inf" or 1 <= float(n) < 1000 for n in map(str, mfcc["median_needs"]))
    sys.path.insert(0, str(script.parent))
    try:
        from needs_vs_power import crossing
    finally:
        sys.path.remove(str(script.parent))
    assert crossing([10, 20, 40], [0.5, 0.7, 0.9]) == pytest.approx(30.0)
    assert math.isnan(crossing([10, 20], [0.1, 0.5])) and math.isnan(crossing([10, 20], [0.9, 0.95]))
