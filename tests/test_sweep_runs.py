"""`benchmark sweep` as a running process: a failing point isolated, resume after kill -9, a
parallel k-fold sweep through a local server, a signal to a serial or parallel sweep, points
packed on one GPU, and a tracking server that never answers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import mlflow
import pandas as pd
import pytest
from click.testing import CliRunner

from benchmark.cli import main
from genre_models.models.registry import NETS
from genre_models.genres import GENRES
from genre_models.sweep.driver import run_sweep
from genre_models.sweep.grid import GridPoint, SweepConfig, build_grid

from conftest import children_of, is_alive, tagged_runs

EXP = "gtzan-genre-benchmark"
SMALL = ["--grid", "demo", "--nets", "net1,net5", "--seeds", "2", "--splits", "track", "--max-epochs", "2", "--no-register"]


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
    assert tagged_runs() == []


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
        by_net.setdefault(r.data.tags["net"], []).append(r)
    assert all(r.info.status == "FINISHED" for r in by_net["net3"]) and len(by_net["net3"]) == 2
    for net, msg in (("net1", "RuntimeError: boom in the MLP"), ("net5", "ValueError: cannot build")):
        assert len(by_net[net]) == 2 and all(r.info.status == "FAILED" and r.data.tags["error"] == msg for r in by_net[net])
    assert parent.info.status == "FAILED" and parent.data.tags["runs_failed"] == "4"
    assert parent.data.tags["runs_finished"] == "2"


def _kill_after_first_finished(cmd, env, timeout=240):
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            runs = tagged_runs(stage="train")
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
    before = {r.info.run_id: r.info.status for r in tagged_runs(stage="train")}
    assert "RUNNING" in before.values() and 0 < list(before.values()).count("FINISHED") < 6
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    n_before = list(before.values()).count("FINISHED")
    assert f"6 points, {6 - n_before} run, {n_before} skipped (already finished), 0 failed" in done.stdout
    runs = tagged_runs(stage="train")
    finished = [r for r in runs if r.info.status == "FINISHED"]
    assert len(finished) == 6 and len({r.data.tags["grid_key"] for r in finished}) == 6  # none lost, none twice
    killed = [r for r in runs if r.info.status != "FINISHED"]
    assert [r.info.status for r in killed] == ["KILLED"] and killed[0].info.run_id in before
    assert {r.info.run_id for r in finished} >= {k for k, s in before.items() if s == "FINISHED"}  # kept, not redone
    parents = tagged_runs(stage="sweep")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert all(r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for r in runs)


@pytest.mark.slow
def test_a_parallel_kfold_sweep_through_a_local_server_tests_every_track_once(demo_dir, tmp_store, tmp_path):
    """--jobs 2 through a local server, with 3-fold cross-validation: every fold a point like any
    other, nothing lost, each track tested exactly once, and the report's folds and tests."""
    cfg = SweepConfig(data_dir=str(demo_dir), grid="demo", nets=("net1", "net5"), seeds=1, splits=("kfold",), folds=3,
                      jobs=2, register=False)
    res = run_sweep(cfg)
    assert (res.points, res.finished, res.failed) == (9, 9, 0)  # 3 folds x (net5, net1 at 5 and 10 epochs)
    assert res.server_pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(res.server_pid, 0)  # stopped after the sweep
    client = mlflow.MlflowClient()
    runs = tagged_runs(stage="train")
    assert len(runs) == 9 and all(r.info.status == "FINISHED" for r in runs)
    tested = {}
    for r in runs:
        m, fold = r.data.metrics, r.data.tags["fold"]
        assert {"test_accuracy", "test_track_accuracy", "val_accuracy", "stopped_epoch"} <= set(m)
        assert int(r.data.params["n_train"]) > 0 and "n_train" not in m  # counts are parameters
        assert (r.data.params["fold"], r.data.params["folds"], r.data.tags["folds"]) == (fold, "3", "3")
        assert r.info.run_name == f"{r.data.tags['net']}-e{r.data.params['epochs']}-kfold-{fold}of3-s0"
        steps = [h.step for h in client.get_metric_history(r.info.run_id, "val_loss")]
        assert steps == list(range(1, int(m["stopped_epoch"]) + 1))
        assert {"confusion_matrix.csv", "history.csv", "test_predictions.csv"} <= {
            a.path for a in client.list_artifacts(r.info.run_id)}
        assert r.data.tags["mlflow.parentRunId"] == res.parent_run_id
        pred = pd.read_csv(client.download_artifacts(r.info.run_id, "test_predictions.csv", str(tmp_path)))
        tested.setdefault((r.data.tags["net"], r.data.params["epochs"]), []).extend(pred.track_id)
    for model, tracks in tested.items():
        assert sorted(tracks) == sorted(f"{g}.{i:05d}" for g in GENRES for i in range(5)), model  # each track once
    again = run_sweep(cfg)  # everything is there: nothing runs, no server starts
    assert (again.finished, again.skipped, again.server_pid) == (0, 9, None)
    from genre_models.stages.report import write_report

    rep = write_report(EXP, out=str(tmp_path / "r" / "report.md"), figures=False)
    files = tmp_path / "r" / "report_files"
    folds = pd.read_csv(files / "folds_kfold.csv")
    assert len(folds) == 9 and sorted(set(folds.fold)) == [0, 1, 2] and folds.test_tracks.sum() == 3 * 50
    assert "On `kfold`, net1 10 ep − net1 5 ep in accuracy over images = " in rep.text
    assert "(over 3 folds: corrected resampled t-test p = " in rep.text or "cannot be tested on 3 folds" in rep.text
    assert "over 50 tracks)" in rep.text  # McNemar per draw: the three test folds hold every track once
    pairs = pd.read_csv(files / "significance_kfold.csv")
    assert len(pairs) == 3 and (pairs.tracks == 50).all() and (pairs.draws == 3).all()
    assert "| net5 | 16-17 / " in rep.text and "(n=3)" in rep.text  # a mean over the 3 folds with its interval


def test_a_signal_to_the_sweep_ends_its_parent_and_its_claimed_point_killed_and_the_resume_goes_on(
        demo_dir, tmp_store, monkeypatch):
    """SIGTERM arriving just after a point was claimed, before its stage opened the run: the
    claimed run and the parent end KILLED, the reason named; the same command then resumes."""
    import genre_models.sweep.point as point
    from genre_models.errors import Interrupted

    real = point._run_point

    def signalled(p, cfg, logger):
        if p.net == "net1":
            raise Interrupted("SIGTERM")
        return real(p, cfg, logger)

    monkeypatch.setattr(point, "_run_point", signalled)
    args = ["sweep", "--data-dir", str(demo_dir), "--grid", "demo", "--nets", "net5,net1", "--seeds", "1", "--splits",
            "track", "--max-epochs", "1", "--no-register", "--no-system-metrics"]
    stopped = CliRunner().invoke(main, args)
    assert stopped.exit_code == 143 and "error: interrupted by SIGTERM; any run in progress was ended KILLED" in stopped.stderr
    runs = mlflow.search_runs(experiment_names=[EXP], output_format="list")
    assert not [r for r in runs if r.info.status == "RUNNING"]
    parent = next(r for r in runs if r.data.tags.get("stage") == "sweep")
    net1 = next(r for r in runs if r.data.tags.get("net") == "net1")
    assert (parent.info.status, parent.data.tags["error"]) == ("KILLED", "KILLED: SIGTERM received")
    assert (net1.info.status, net1.data.tags["error"]) == ("KILLED", "KILLED: SIGTERM received")
    monkeypatch.setattr(point, "_run_point", real)
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0, again.output
    assert "2 points, 1 run, 1 skipped (already finished), 0 failed" in again.stdout
    resumed = mlflow.get_run(parent.info.run_id)
    assert resumed.info.status == "FINISHED" and "error" not in resumed.data.tags


@pytest.mark.slow
def test_sigterm_to_a_parallel_sweep_leaves_no_run_running_and_no_worker(demo_dir, tmp_store):
    env = {**os.environ, "CI": "true"}
    cmd = [sys.executable, "-m", "benchmark", "sweep", "--data-dir", str(demo_dir), "--grid", "demo", "--nets",
           "net1,net3,net5", "--seeds", "2", "--splits", "track", "--max-epochs", "2", "--jobs", "2", "--no-register",
           "--no-system-metrics"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.time() + 300
        while not any(r.info.status == "RUNNING" for r in tagged_runs(stage="train")):
            assert time.time() < deadline and proc.poll() is None, "no point started"
            time.sleep(0.2)
        workers = children_of(proc.pid)
        proc.send_signal(signal.SIGTERM)  # the driver alone, as `kill PID` does
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143 and "error: interrupted by SIGTERM" in err and "Traceback" not in err
    runs = mlflow.search_runs(experiment_names=[EXP], output_format="list")
    assert not [r for r in runs if r.info.status == "RUNNING"]
    parent = next(r for r in runs if r.data.tags.get("stage") == "sweep")
    assert (parent.info.status, parent.data.tags["error"]) == ("KILLED", "KILLED: SIGTERM received")
    killed = [r for r in runs if r.info.status == "KILLED" and r.data.tags.get("stage") == "train"]
    assert killed and all(r.data.tags["error"].startswith("KILLED: SIGTERM received") for r in killed)
    time.sleep(1)
    assert workers and [w for w in workers if is_alive(w)] == []


def test_points_packed_on_one_gpu_wait_for_memory_instead_of_failing():
    from genre_models.sweep.driver import Slots

    a, b, c = (GridPoint("train", n, "track", 0) for n in ("net5", "net2", "net1"))
    slots = Slots(3, memory=10, need={a: 6, b: 6, c: 3})
    assert slots.admits(a, 0)
    slots.take(a)
    assert not slots.admits(b, 1) and slots.admits(c, 1)  # b would not fit beside a: it waits; c fits
    slots.take(c)
    assert not slots.admits(b, 2)
    slots.give(a)
    assert slots.admits(b, 1)
    alone = Slots(2, memory=4, need={a: 6})
    assert alone.admits(a, 0)  # bigger than the budget, but alone: it runs (the estimate is rough)
    assert not Slots(2).admits(a, 2) and Slots(2).admits(a, 1)  # no GPU: --jobs alone decides


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU (CI has none)")
def test_points_packed_on_one_cuda_gpu_all_finish(demo_dir, tmp_store):
    cfg = SweepConfig(data_dir=str(demo_dir), grid="demo", nets=("net1", "net5"), seeds=2, splits=("track",),
                      max_epochs=2, jobs=3, device="cuda", register=False)
    from genre_models.sweep.driver import slots_for

    slots = slots_for(cfg, build_grid(cfg))
    assert slots.memory > 0 and set(slots.need) == set(build_grid(cfg))
    res = run_sweep(cfg)
    assert (res.points, res.finished, res.failed) == (4, 4, 0)
