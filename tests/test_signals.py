"""Every long command stops when told: SIGTERM to its main process alone (what `timeout`, systemd,
Slurm and Kubernetes send) or SIGINT to its whole group (Ctrl-C) ends it within 10 s, with one
line, its run ended KILLED, exit 143 or 130, and no worker left behind."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

from conftest import children_of, command_env, is_alive

STOP_WITHIN_S = 10.0


def _descendants(pid: int) -> set[int]:
    """Every live process below ``pid``."""
    found, todo = set(), [pid]
    while todo:
        for child in children_of(todo.pop()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _start(cmd: list[str], env: dict, tmp_path: Path, group: bool = False) -> tuple[subprocess.Popen, Path]:
    err = tmp_path / "stderr.txt"
    with open(err, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "benchmark", *cmd], env=env, stdout=subprocess.DEVNULL,
                                stderr=fh, start_new_session=group)
    return proc, err


def _wait_until(proc: subprocess.Popen, err: Path, ready, what: str, limit: float = 240.0) -> None:
    deadline = time.time() + limit
    while not ready():
        assert proc.poll() is None, f"ended before {what}: {err.read_text()[-2000:]}"
        assert time.time() < deadline, f"never {what}"
        time.sleep(0.1)


def _stop_and_check(proc: subprocess.Popen, err: Path, sig: int, group: bool) -> tuple[float, str]:
    """Send ``sig`` (to the group, or the main pid alone), then: exit 128+sig within 10 s, one
    closing line, no traceback, and none of the processes it had started alive."""
    below = _descendants(proc.pid)
    t0 = time.monotonic()
    (lambda: __import__("os").killpg(proc.pid, sig) if group else proc.send_signal(sig))()
    try:
        code = proc.wait(timeout=STOP_WITHIN_S + 20)
    finally:
        proc.kill()
    took = time.monotonic() - t0
    text = err.read_text()
    deadline = time.time() + 2
    while [p for p in below if is_alive(p)] and time.time() < deadline:
        time.sleep(0.1)
    assert code == 128 + sig, text[-2000:]
    assert took < STOP_WITHIN_S, f"took {took:.1f} s"
    assert "Traceback" not in text, text[-3000:]
    assert text.strip().splitlines()[-1] == (f"error: interrupted by {signal.Signals(sig).name}; any run in progress "
                                             "was ended KILLED")
    assert not [p for p in below if is_alive(p)], "processes outlived the command"
    return took, text


def _runs(uri: str):
    client = mlflow.MlflowClient(uri)
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


def test_calibrate_stops_mid_pool_on_sigterm_to_its_main_process(tmp_path):
    """The pool's workers used to inherit the command's handler: each turned the signal into a
    chunk's error and took the next, and leaving the pool waited for them all (13 minutes)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc, err = _start(["calibrate", "--split", "kfold", "--tracks", "150", "--folds", "5", "--seeds", "3",
                        "--sims", "500", "--jobs", "2"], command_env(uri, tmp_path / "cache"), tmp_path)
    _wait_until(proc, err, lambda: len(children_of(proc.pid)) >= 2 and _runs(uri), "started its pool and its run")
    time.sleep(1.0)
    _stop_and_check(proc, err, signal.SIGTERM, group=False)
    (run,) = _runs(uri)
    assert run.info.status == "KILLED" and run.data.tags["error"] == "KILLED: SIGTERM received"


def test_calibrate_stops_on_ctrl_c_to_its_group(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc, err = _start(["calibrate", "--split", "track", "--tracks", "150", "--seeds", "5", "--sims", "500",
                        "--jobs", "2"], command_env(uri, tmp_path / "cache"), tmp_path, group=True)
    _wait_until(proc, err, lambda: len(children_of(proc.pid)) >= 2 and _runs(uri), "started its pool and its run")
    _stop_and_check(proc, err, signal.SIGINT, group=True)
    assert [r.info.status for r in _runs(uri)] == ["KILLED"]


@pytest.mark.slow
def test_a_parallel_sweep_stops_mid_point_on_sigterm_to_its_main_process(demo_dir, tmp_path):
    """``--jobs 2``: its spawned workers, the local MLflow server it put in front of the SQLite
    store, and every run it had open: the workers go, the runs and the parent end KILLED."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc, err = _start(["sweep", "--data-dir", str(demo_dir), "--nets", "net5", "--grid", "fast", "--seeds", "4",
                        "--splits", "track", "--jobs", "2", "--max-epochs", "200", "--no-register",
                        "--no-system-metrics"], command_env(uri, tmp_path / "cache"), tmp_path)

    def points_under_way() -> bool:
        return any(r.info.status == "RUNNING" and r.data.tags.get("stage") == "train" for r in _runs(uri))

    _wait_until(proc, err, points_under_way, "started a point", limit=400)
    _stop_and_check(proc, err, signal.SIGTERM, group=False)
    runs = _runs(uri)
    assert runs and not [r for r in runs if r.info.status == "RUNNING"]
    (parent,) = [r for r in runs if r.data.tags.get("stage") == "sweep"]
    assert parent.info.status == "KILLED" and parent.data.tags["error"] == "KILLED: SIGTERM received"
