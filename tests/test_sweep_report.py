"""`benchmark sweep` and `benchmark report`: grid, resume after kill -9, failure isolation,
parallel runs through a local server, report arithmetic and empty-experiment behaviour."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import mlflow
import numpy as np
import pytest
from click.testing import CliRunner

from benchmark.cli import main
from genre_models.models.registry import NETS
from genre_models.stages.report import paired_difference, summarize
from genre_models.sweep.driver import run_sweep
from genre_models.sweep.grid import SweepConfig, build_grid, dependencies

EXP = "gtzan-genre-benchmark"
SMALL = ["--grid", "demo", "--nets", "net1,net5", "--seeds", "2", "--splits", "track", "--max-epochs", "2"]


def _runs(**filters):
    flt = " and ".join(f"tags.{k} = '{v}'" for k, v in filters.items())
    return mlflow.search_runs(experiment_names=[EXP], filter_string=flt, output_format="list")


def test_study_grid_follows_the_study():
    grid = build_grid(SweepConfig(data_dir="x"))
    per = [p for p in grid if p.split == "random" and p.seed == 0]
    assert [p.label for p in per] == [
        "net5 e200 random s0", "gan random s0", "net6 e200 random s0",
        "net1 e50 random s0", "net1 e100 random s0", "net2 e50 random s0", "net2 e100 random s0",
        "net3 e50 random s0", "net3 e100 random s0", "net4 e50 random s0", "net4 e100 random s0"]
    assert len(grid) == 11 * 3 * 2  # 3 seeds, random and track
    deps = dependencies(grid)
    gan, net6, net5 = per[1], per[2], per[0]
    assert deps[gan] == [net5] and deps[net6] == [gan] and deps[per[3]] == []
    capped = build_grid(SweepConfig(data_dir="x", nets=("net2", "net6"), seeds=1, splits=("track",), max_epochs=60))
    assert [p.label for p in capped] == ["gan track s0", "net6 e60 track s0", "net2 e50 track s0", "net2 e60 track s0"]


def test_ci_arithmetic_and_paired_verdicts():
    c = summarize([0.5, 0.6, 0.7])
    assert c.mean == pytest.approx(0.6) and c.n == 3
    assert c.half_width == pytest.approx(4.302652729911275 * 0.1 / np.sqrt(3))  # t(0.975, 2) * sd / sqrt(n)
    assert str(c) == "0.600 ± 0.248 (n=3)"
    assert str(summarize([0.42])) == "0.420 (n=1)" and str(summarize([])) == "–"
    p = paired_difference({0: 0.5, 1: 0.6, 2: 0.7, 3: 0.1}, {0: 0.6, 1: 0.7, 2: 0.9})
    assert p.seeds == (0, 1, 2) and p.diff.mean == pytest.approx(0.4 / 3)
    assert "not distinguishable" in p.verdict  # diffs .1 .1 .2: the interval reaches below 0
    sure = paired_difference({s: 0.5 for s in range(5)}, {s: 0.6 + 0.001 * s for s in range(5)})
    assert sure.verdict.startswith("a gain distinguishable")
    assert "cannot be judged" in paired_difference({0: 0.5}, {0: 0.7}).verdict


def _fake_run(client, exp_id, net, seed, acc, split="track", epochs=None, status="FINISHED", **metrics):
    tags = {"stage": "train", "net": net, "split": split, "seed": str(seed), "dataset": "gtzan@abc",
            "dataset_synthetic": "false", "code_version": "0.1.0+test"}
    run = client.create_run(exp_id, run_name=f"{net}-s{seed}", tags=tags)
    client.log_param(run.info.run_id, "epochs", epochs or NETS[net].epochs)
    client.log_param(run.info.run_id, "resolved_device", "cpu")
    for k, v in {"test_accuracy": acc, "val_accuracy": acc, **metrics}.items():
        client.log_metric(run.info.run_id, k, v)
    client.set_terminated(run.info.run_id, status)
    return run.info.run_id


def test_report_cells_come_from_the_runs(tmp_store, tmp_path):
    client = mlflow.MlflowClient()
    exp_id = mlflow.get_experiment_by_name(EXP).experiment_id
    for seed, (a5, a6) in enumerate([(0.5, 0.6), (0.6, 0.7), (0.7, 0.9)]):
        _fake_run(client, exp_id, "net5", seed, a5, stopped_epoch=20 + seed, test_track_accuracy=a5 + 0.1)
        _fake_run(client, exp_id, "net6", seed, a6, stopped_epoch=10, test_track_accuracy=a6)
        _fake_run(client, exp_id, "net2", seed, 0.30 + 0.1 * seed, epochs=50)
        _fake_run(client, exp_id, "net2", seed, 0.40, epochs=100)
    _fake_run(client, exp_id, "net2", 9, 0.99, epochs=50, status="FAILED")  # never counted
    _fake_run(client, exp_id, "net1", 0, 0.11, split="random", epochs=50)
    out = tmp_path / "r.md"
    result = CliRunner().invoke(main, ["report", "--out", str(out), "--no-figures"])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "gtzan@abc" in text and "synthetic" not in text.split("\n")[2] and "`0.1.0+test`" in text
    assert "unfinished training runs left out: 1 FAILED" in text
    assert "| net5 | 0.600 ± 0.248 (n=3) | 0.7954 | 21.0 ± 2.5 (n=3) | 27 | 0.700 ± 0.248 (n=3) |" in text
    assert "| net6 | 0.733 ± 0.379 (n=3) | 0.8291 | 10.0 ± 0.0 (n=3) | 18 | 0.733 ± 0.379 (n=3) |" in text
    assert "| net2 | 0.400 ± 0.248 (n=3) | 0.6039 | 0.400 ± 0.000 (n=3) | 0.5346 |" in text
    random_block = text.split("## Split `random`")[1].split("## Split `track`")[0]
    assert "| net1 | 0.110 (n=1) | 0.4257 |" in random_block  # net1 ran on `random` only
    assert ("On `track`, net6 − net5 test accuracy = +0.133 ± 0.143 (paired over seeds 0, 1, 2): "
            "not distinguishable from seed noise") in text


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


def test_unreachable_tracking_server_fails_before_anything_runs(demo_dir, tmp_store):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    uri = f"http://127.0.0.1:{port}"
    result = CliRunner().invoke(main, ["sweep", "--data-dir", str(demo_dir), *SMALL, "--tracking-uri", uri])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: tracking server {uri} is unreachable (")
    from pathlib import Path

    assert not Path(os.environ["GENRE_BENCH_CACHE"]).exists()  # not even preprocessing started
    assert _runs() == []


@pytest.mark.slow
def test_failing_point_is_isolated_and_recorded(demo_dir, tmp_store, monkeypatch):
    import genre_models.stages.train as train_mod

    real_fit = train_mod.fit

    def fit_fails_for_the_mlp(model, *a, **kw):
        if type(model).__name__ == "MLP":
            raise RuntimeError("boom in the MLP")
        return real_fit(model, *a, **kw)

    monkeypatch.setattr(train_mod, "fit", fit_fails_for_the_mlp)
    bad = replace(NETS["net5"], build=lambda shape, head: (_ for _ in ()).throw(ValueError("cannot build")))
    monkeypatch.setitem(NETS, "net5", bad)  # fails before its run begins
    result = CliRunner().invoke(main, ["sweep", "--data-dir", str(demo_dir), *SMALL, "--nets", "net1,net3,net5"])
    assert result.exit_code == 1, result.output
    assert "4 failed" in result.stdout and "FAILED net1 e2 track s0: RuntimeError: boom in the MLP" in result.stdout
    assert "FAILED net5 e2 track s1: ValueError: cannot build" in result.stdout
    runs = mlflow.search_runs(experiment_names=[EXP], output_format="list")
    parent = next(r for r in runs if r.data.tags.get("stage") == "sweep")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    by_net = {}
    for r in children:
        by_net.setdefault(r.data.tags["grid.net"], []).append(r)
    assert all(r.info.status == "FINISHED" for r in by_net["net3"]) and len(by_net["net3"]) == 2
    for net, msg in (("net1", "RuntimeError: boom in the MLP"), ("net5", "ValueError: cannot build")):
        assert len(by_net[net]) == 2 and all(r.info.status == "FAILED" and r.data.tags["error"] == msg for r in by_net[net])
    assert parent.info.status == "FAILED" and parent.data.metrics["runs_failed"] == 4
    assert parent.data.metrics["runs_finished"] == 2


def _kill_after_first_finished(cmd, env, timeout=240):
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            runs = _runs(stage="train")
            if any(r.info.status == "FINISHED" for r in runs) and any(r.info.status == "RUNNING" for r in runs):
                os.killpg(proc.pid, signal.SIGKILL)  # kill -9, mid-point
                proc.wait()
                return
            if proc.poll() is not None:
                raise AssertionError("the sweep ended before it could be killed")
            time.sleep(0.1)
        raise AssertionError("no point finished in time")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.slow
def test_resume_after_kill_9_runs_only_what_is_missing(demo_dir, tmp_store, tmp_path):
    env = {**os.environ, "CI": "true"}
    cmd = [sys.executable, "-m", "benchmark", "sweep", "--data-dir", str(demo_dir), *SMALL, "--nets", "net1,net3,net5"]
    _kill_after_first_finished(cmd, env)
    before = {r.info.run_id: r.info.status for r in _runs(stage="train")}
    assert "RUNNING" in before.values() and 0 < list(before.values()).count("FINISHED") < 6
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    n_before = list(before.values()).count("FINISHED")
    assert f"6 points, {6 - n_before} run, {n_before} skipped (already finished), 0 failed" in done.stdout
    runs = _runs(stage="train")
    finished = [r for r in runs if r.info.status == "FINISHED"]
    assert len(finished) == 6 and len({r.data.tags["grid_key"] for r in finished}) == 6  # none lost, none twice
    killed = [r for r in runs if r.info.status != "FINISHED"]
    assert [r.info.status for r in killed] == ["KILLED"] and killed[0].info.run_id in before
    assert {r.info.run_id for r in finished} >= {k for k, s in before.items() if s == "FINISHED"}  # kept, not redone
    parents = _runs(stage="sweep")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert all(r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for r in runs)


@pytest.mark.slow
def test_parallel_sweep_through_a_local_server_loses_nothing(demo_dir, tmp_store):
    cfg = SweepConfig(data_dir=str(demo_dir), grid="demo", nets=("net1", "net3", "net5"), seeds=2, splits=("track",),
                      max_epochs=2, jobs=2)
    res = run_sweep(cfg)
    assert (res.points, res.finished, res.failed) == (6, 6, 0)
    assert res.server_pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(res.server_pid, 0)  # stopped after the sweep
    client = mlflow.MlflowClient()
    runs = _runs(stage="train")
    assert len(runs) == 6 and all(r.info.status == "FINISHED" for r in runs)
    for r in runs:
        m = r.data.metrics
        assert {"test_accuracy", "test_track_accuracy", "val_accuracy", "stopped_epoch", "n_train"} <= set(m)
        steps = [h.step for h in client.get_metric_history(r.info.run_id, "val_loss")]
        assert steps == list(range(1, int(m["stopped_epoch"]) + 1))
        assert {"confusion_matrix.csv", "history.csv"} <= {a.path for a in client.list_artifacts(r.info.run_id)}
        assert r.data.tags["mlflow.parentRunId"] == res.parent_run_id
    again = run_sweep(cfg)  # everything is there: nothing runs, no server starts
    assert (again.finished, again.skipped, again.server_pid) == (0, 6, None)


@pytest.mark.slow
def test_demo_sweep_runs_every_stage_and_writes_the_report(tmp_store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["sweep", "--demo", "--seeds", "1", "--splits", "track"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "demo-data" / "SYNTHETIC.json").is_file()
    assert "11 points, 11 run, 0 skipped" in result.stdout
    text = (tmp_path / "reports" / f"{EXP}.md").read_text()
    assert "synthetic demo data, not GTZAN" in text
    for net in NETS:
        row = next(line for line in text.splitlines() if line.startswith(f"| {net} | 0."))
        assert "(n=1)" in row
    assert (tmp_path / "reports" / f"{EXP}_files" / "confusion_net6.png").is_file()
    assert (tmp_path / "reports" / f"{EXP}_files" / "gan_losses.png").is_file()
    gan = _runs(stage="gan")
    assert len(gan) == 1 and gan[0].data.tags["mlflow.parentRunId"]
