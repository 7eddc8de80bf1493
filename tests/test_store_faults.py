"""A store or server that fails a command, and a command stopped mid-run: a corrupted, read-only,
missing or locked store, a server that never answers, a signal during training, a command that
died with its run open. Each gets a one-line error or a run ended with its reason; no run is lost."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from click.testing import CliRunner

from benchmark.cli import main
from genre_models.data.synth import synth_track
from genre_models.errors import Interrupted, TrackingError
from genre_models.tracking import retry
from genre_models.tracking.logger import MlflowLogger
from genre_models.tracking.setup import setup_tracking
from genre_models.util import process_started

from conftest import command_env, write_wav


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_signal_ends_the_training_run_killed_with_its_name(sig, code, demo_dir, tmp_store, tmp_path):
    env = {**os.environ, "CI": "true"}
    proc = subprocess.Popen([sys.executable, "-m", "benchmark", "train", "--net", "net5", "--data-dir", str(demo_dir),
                             "--epochs", "500", "--early-stopping", "off", "--no-log-model"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            # A suite started in the background inherits SIGINT ignored: give the child Ctrl-C back.
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 180
    while time.time() < deadline:  # wait until the run has logged an epoch: training is under way
        runs = mlflow.search_runs(experiment_names=["gtzan-genre-benchmark"], output_format="list")
        if runs and mlflow.MlflowClient().get_metric_history(runs[0].info.run_id, "val_loss"):
            break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.5)
    proc.send_signal(getattr(signal, sig))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == (
        f"error: interrupted by {sig}; any run in progress was ended KILLED")
    (run,) = mlflow.search_runs(experiment_names=["gtzan-genre-benchmark"], output_format="list")
    assert run.info.status == "KILLED" and run.data.tags["error"] == f"KILLED: {sig} received"


def test_a_corrupted_store_is_one_line_naming_it_and_the_cause(demo_dir, tmp_path):
    db = tmp_path / "mlflow.db"
    db.write_bytes(b"this is not a database" * 100)
    uri = f"sqlite:///{db}"
    for args in (["report"], ["train", "--net", "net5", "--data-dir", str(demo_dir), "--epochs", "1",
                              "--cache-dir", str(tmp_path / "c")]):
        res = CliRunner().invoke(main, [*args, "--tracking-uri", uri])
        assert res.exit_code == 2 and "Traceback" not in res.output, res.output
        assert res.stderr.strip().splitlines() == [f"error: tracking store {uri}: file is not a database"]


def test_a_read_only_store_is_one_line_naming_it_and_the_cause(demo_dir, tmp_path, monkeypatch):
    """SQLite's own read-only mode (which binds root too, unlike file permissions). MLflow 3.17
    takes the URI form for a path and makes its parent folders (``file:/tmp/...``) in the working
    folder; that happens in tmp_path here, not in the checkout."""
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{db}").create_experiment("gtzan-genre-benchmark")  # a store that exists
    uri = f"sqlite:///file:{db}?mode=ro&uri=true"
    size = db.stat().st_size
    res = CliRunner().invoke(main, ["train", "--net", "net5", "--data-dir", str(demo_dir), "--epochs", "1",
                                    "--cache-dir", str(tmp_path / "c"), "--tracking-uri", uri])
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert res.stderr.strip().splitlines()[-1] == f"error: tracking store {uri}: attempt to write a readonly database"
    assert db.stat().st_size == size


def test_reading_a_missing_store_creates_nothing(tmp_path):
    uri = f"sqlite:///{tmp_path}/missing/x.db"
    clip = write_wav(tmp_path / "clip.wav", synth_track("rock", 2.0, 0))
    for args in (["report", "--tracking-uri", uri],
                 ["predict", str(clip), "--model-uri", "runs:/0123/model", "--tracking-uri", uri]):
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 2, res.output
        assert res.stderr.strip() == (f"error: tracking store {uri}: {tmp_path}/missing/x.db does not exist; "
                                      "nothing to read (check --tracking-uri)")
    assert not (tmp_path / "missing").exists()


def test_a_run_that_cannot_be_ended_killed_is_reported_in_one_line(tmp_store, monkeypatch):
    def store_gone(*a, **k):
        raise mlflow.exceptions.MlflowException("unable to open database file")

    logger = MlflowLogger()
    with pytest.raises(TrackingError) as err, monkeypatch.context() as m:
        with logger.start("doomed"):
            m.setattr(mlflow, "set_tag", store_gone)  # the store goes away during the run
            raise Interrupted("SIGTERM")
    assert str(err.value) == (f"SIGTERM received, and run {logger.run_id} could not be ended KILLED on {tmp_store}: "
                              "unable to open database file")


def test_a_locked_store_is_waited_out_within_a_bound(monkeypatch):
    monkeypatch.setattr(retry.time, "sleep", lambda s: None)
    calls = {"n": 0}

    def locked_twice():
        calls["n"] += 1
        if calls["n"] <= 2:
            try:
                raise sqlite3.OperationalError("database is locked")
            except sqlite3.OperationalError as exc:
                raise RuntimeError("(sqlite3.OperationalError) database is locked") from exc
        return "written"

    assert retry.store_retry(locked_twice) == "written" and calls["n"] == 3
    with pytest.raises(ValueError):  # anything else is not the store's lock: never retried
        retry.store_retry(lambda: (_ for _ in ()).throw(ValueError("no")))
    monkeypatch.setenv("GENRE_BENCH_STORE_WAIT_S", "0")
    calls["n"] = 0
    t0 = time.monotonic()
    with pytest.raises(TrackingError, match=r"database is locked \(another process held it for over 0 s beyond SQLite's "
                                            r"20 s wait; ending run x FAILED\)"):
        retry.store_retry(locked_twice, what="ending run x FAILED")
    assert time.monotonic() - t0 < 5


def test_the_bookkeeping_client_waits_out_a_lock_and_never_waits_twice(tmp_store, monkeypatch):
    """Every MlflowClient method reached through ``store_client`` is retried while the store is
    locked (a sweep's claims, the registry, the report's queries); an inner wait that gave up is
    not waited out again by an outer one."""
    monkeypatch.setattr(retry.time, "sleep", lambda s: None)
    client = retry.store_client()
    exp_id = client.create_experiment("locked")
    real, calls = client.inner.search_runs, {"n": 0}

    def search_locked_twice(*a, **kw):
        calls["n"] += 1
        if calls["n"] <= 2:
            raise mlflow.exceptions.MlflowException("(sqlite3.OperationalError) database is locked") from \
                sqlite3.OperationalError("database is locked")
        return real(*a, **kw)

    monkeypatch.setattr(client.inner, "search_runs", search_locked_twice)
    assert client.search_runs([exp_id]) == [] and calls["n"] == 3
    assert client.tracking_uri == mlflow.get_tracking_uri()  # attributes pass through unwrapped

    monkeypatch.setenv("GENRE_BENCH_STORE_WAIT_S", "0")
    calls["n"] = -10**6  # locked for good
    with pytest.raises(TrackingError, match=r"database is locked .* in search_runs\)"):
        retry.store_retry(client.search_runs, [exp_id], what="outer")
    assert calls["n"] == -10**6 + 1  # the inner wait gave up (no time left to wait); the outer did not try again


def test_a_run_whose_command_died_is_ended_killed_by_the_next_command(tmp_store, sleeper):
    client = mlflow.MlflowClient()
    exp = mlflow.get_experiment_by_name("gtzan-genre-benchmark").experiment_id
    started = process_started(sleeper.pid)
    sleeper.kill()
    sleeper.wait()
    dead = client.create_run(exp, tags={"owner_host": socket.gethostname(), "owner_pid": str(sleeper.pid),
                                        "owner_started": started, "stage": "train"}).info.run_id
    foreign = client.create_run(exp, tags={"stage": "notebook"}).info.run_id  # no owner: another tool's, left alone
    setup_tracking(end_orphans=True)  # what train, gan and preprocess do first
    run = client.get_run(dead)
    assert run.info.status == "KILLED" and run.data.tags["error"].startswith(
        f"KILLED: its command stopped without ending it (its owner on {socket.gethostname()}: process {sleeper.pid} has exited")
    assert client.get_run(foreign).info.status == "RUNNING"


def test_a_server_that_never_answers_is_said_in_seconds_by_train_too(demo_dir, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    t0 = time.monotonic()
    res = CliRunner().invoke(main, ["train", "--net", "net5", "--data-dir", str(demo_dir), "--tracking-uri", uri,
                                    "--cache-dir", str(tmp_path / "cache")])
    assert res.exit_code == 2 and res.stderr.strip().splitlines()[-1].startswith(
        f"error: tracking server {uri} is unreachable (")
    assert time.monotonic() - t0 < 10 and not (tmp_path / "cache").exists()


@pytest.fixture
def warm_cache(demo_dir, tmp_path) -> Path:
    """The demo data's feature cache, built before the commands that train on it start."""
    cache = tmp_path / "cache"
    env = command_env(f"sqlite:///{tmp_path / 'preprocess.db'}", cache)
    res = subprocess.run([sys.executable, "-m", "benchmark", "preprocess", "--data-dir", str(demo_dir)], env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    return cache


def _store_free(db: Path) -> bool:
    """Whether no connection holds a lock on the SQLite file ``db`` (a frozen process might)."""
    probe = sqlite3.connect(db, timeout=0.2)
    try:
        probe.execute("BEGIN EXCLUSIVE")
        probe.rollback()
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        probe.close()


def _freeze_once_under_way(db: Path, commands: dict, under_way, deadline_s: float = 300) -> None:
    """Freeze (SIGSTOP) each of ``commands`` as soon as ``under_way()`` names it, and return once
    all are frozen: whatever the machine's load, none can finish before the caller's next step.
    One frozen inside a write to the store would block every other process, so it is let go at
    once and frozen again at a later look. The caller lets them go (SIGCONT)."""
    frozen: set[str] = set()
    deadline = time.time() + deadline_s
    while len(frozen) < len(commands):
        for name, (proc, log) in commands.items():
            assert proc.poll() is None, f"{name} ended before the lock: {log.read_text()[-2000:]}"
        new = under_way() - frozen
        for name in new:
            commands[name][0].send_signal(signal.SIGSTOP)
        if new and not _store_free(db):
            for name in new:
                commands[name][0].send_signal(signal.SIGCONT)
        else:
            frozen |= new
        assert time.time() < deadline, f"not all were under way (frozen: {sorted(frozen)})"
        time.sleep(0.05)


def _start(name: str, cmd: list, env: dict, tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    log = tmp_path / f"{name}.err"
    with open(log, "w") as err:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err), log


@pytest.mark.slow
def test_a_store_locked_for_longer_than_sqlite_waits_loses_no_run(demo_dir, warm_cache, tmp_path):
    """Another process holds the SQLite store for 23 s (SQLite itself waits 20 s) while three
    commands are at work on it: a train that may wait finishes; a sweep caught opening its parent
    run (its own bookkeeping, not a run's writes) waits too, and ends with every point FINISHED; a
    train told to wait only 1 s stops with one line, and its run ends FAILED with the reason once
    the store answers, never RUNNING. The trainers are frozen once their runs are RUNNING (a demo
    net5 trains in seconds, and CI once saw one finish before the other had started); then the
    sweep starts, and the lock is taken, with the trainers let go, the moment its parent run appears."""
    db = tmp_path / "mlflow.db"
    env = command_env(f"sqlite:///{db}", warm_cache)
    client = mlflow.MlflowClient(f"sqlite:///{db}")
    client.search_experiments()  # the store's tables exist before the commands open it
    train = [sys.executable, "-m", "benchmark", "train", "--net", "net5", "--data-dir", str(demo_dir), "--epochs", "30",
             "--early-stopping", "off", "--no-log-model"]
    sweep = [sys.executable, "-m", "benchmark", "sweep", "--data-dir", str(demo_dir), "--nets", "net5", "--grid", "fast",
             "--seeds", "2", "--splits", "track", "--max-epochs", "3", "--no-register", "--no-system-metrics"]
    commands = {"patient": _start("patient", train, env, tmp_path),
                "hasty": _start("hasty", train + ["--seed", "1"], {**env, "GENRE_BENCH_STORE_WAIT_S": "1"}, tmp_path)}

    def runs(flt: str = "") -> list:
        return client.search_runs([e.experiment_id for e in client.search_experiments()], flt)

    def trainers_under_way() -> set[str]:
        return {{"0": "patient", "1": "hasty"}.get(r.data.tags.get("seed"), "?") for r in
                runs("attributes.status = 'RUNNING' and tags.stage = 'train'")} - {"?"}

    try:
        _freeze_once_under_way(db, commands, trainers_under_way)
        commands["sweep"] = _start("sweep", sweep, env, tmp_path)
        deadline = time.time() + 180
        while not runs("tags.stage = 'sweep'"):
            assert commands["sweep"][0].poll() is None, commands["sweep"][1].read_text()[-2000:]
            assert time.time() < deadline, "the sweep never opened its parent run"
            time.sleep(0.01)
    finally:
        for proc, _ in commands.values():
            proc.send_signal(signal.SIGCONT)
    lock = sqlite3.connect(db, timeout=60)  # waits out the write the sweep is in
    lock.execute("BEGIN EXCLUSIVE")
    time.sleep(23)
    lock.rollback()
    lock.close()
    codes = {name: proc.wait(timeout=300) for name, (proc, _) in commands.items()}
    err = {name: log.read_text() for name, (_, log) in commands.items()}
    assert codes["patient"] == 0, err["patient"][-2000:]
    assert codes["sweep"] == 0 and "Traceback" not in err["sweep"], err["sweep"][-3000:]
    assert "tracking store locked by another process: trying again" in err["sweep"]
    assert codes["hasty"] == 2 and "Traceback" not in err["hasty"], err["hasty"][-2000:]
    assert err["hasty"].strip().splitlines()[-1].startswith(f"error: tracking store sqlite:///{db}: database is locked (")
    ended = runs()
    alone = {r.data.tags["seed"]: r for r in ended if r.data.tags["stage"] == "train" and
             "mlflow.parentRunId" not in r.data.tags}
    assert alone["0"].info.status == "FINISHED"
    assert alone["1"].info.status == "FAILED" and "database is locked" in alone["1"].data.tags["error"]
    (parent,) = [r for r in ended if r.data.tags["stage"] == "sweep"]
    points = [r for r in ended if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert parent.info.status == "FINISHED" and [p.info.status for p in points] == ["FINISHED", "FINISHED"]
