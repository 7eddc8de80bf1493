"""Sweeps on a real Ray cluster against a real `benchmark server`, both on 127.0.0.1 and stopped by PID.

The Ray head runs with RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, which keeps it on 127.0.0.1 rather
than the machine's interface address, and with a feature cache of its own: workers get the data
only as a features run's artifacts, as on a node without a shared filesystem. Drivers run as real
processes (Ray's log plumbing needs real stdout and stderr, which CliRunner replaces).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from pathlib import Path

import mlflow
import pytest
from click.testing import CliRunner

from benchmark.cli import main
from conftest import alive_in_group, command_env, cores, free_port
from genre_models.sweep.executors import LocalRayHead
from genre_models.sweep.grid import GridPoint, SweepConfig, point_resources

if os.environ.get("CI"):
    import ray  # noqa: F401  (CI installs it with the test extra; these tests must not skip there)
else:
    pytest.importorskip("ray")

TINY = ["--grid", "demo", "--splits", "track", "--max-epochs", "2", "--no-register"]


def _listening(port: int) -> list[str]:
    """Local addresses listening on ``port`` (from /proc/net/tcp and tcp6)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, p = local.rsplit(":", 1)
            if state == "0A" and int(p, 16) == port:
                found.append(addr)
    return found


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A Ray head on 127.0.0.1 (2 CPUs) whose workers have a feature cache of their own."""
    node_cache = tmp_path_factory.mktemp("ray-node-cache")
    with ExitStack() as stack:
        with cores(exclusive=False):  # its daemons start: not while a sweep is timed
            head = stack.enter_context(LocalRayHead(2, {"GENRE_BENCH_CACHE": str(node_cache)}))
        yield {"address": head.address, "node_cache": node_cache}
    assert not alive_in_group(head.proc.pid)  # every daemon of the head is gone


@pytest.fixture
def experiment(server, request, monkeypatch):
    """A fresh experiment on the server for each test; MLflow in this process points at it."""
    name = f"scaleout-{request.node.name[:40]}-{os.getpid()}"
    for var in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server["uri"])
    mlflow.set_tracking_uri(server["uri"])
    mlflow.set_experiment(name)
    return name


def _runs(experiment: str, flt: str = "") -> list:
    return mlflow.search_runs(experiment_names=[experiment], filter_string=flt, output_format="list", max_results=1000)


def _sweep_cmd(data, cluster, server, experiment, *extra) -> list[str]:
    return [sys.executable, "-m", "benchmark", "sweep", "--data-dir", str(data), *TINY, "--executor", "ray",
            "--ray-address", cluster["address"], "--tracking-uri", server["uri"], "--experiment", experiment, *extra]


def _driver_env(tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return {**env, "CI": "true", "GENRE_BENCH_CACHE": str(tmp_path / "driver-cache"), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def _status_for_host(uri: str, host: str) -> int:
    try:
        url = f"{uri}/api/2.0/mlflow/experiments/search?max_results=1"  # /health skips the Host check
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Host": host}), timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_server_binds_loopback_and_proxies_artifacts(server, experiment, tmp_path):
    assert set(_listening(server["port"])) <= {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1 only
    # --allowed-hosts reaches MLflow: the listed name is served, an unlisted one refused.
    assert _status_for_host(server["uri"], f"tracker:{server['port']}") == 200
    assert _status_for_host(server["uri"], f"elsewhere.example:{server['port']}") >= 400
    assert mlflow.get_experiment_by_name(experiment).artifact_location.startswith("mlflow-artifacts:")
    with mlflow.start_run() as run:
        (tmp_path / "hello.txt").write_text("through the server")
        mlflow.log_artifact(str(tmp_path / "hello.txt"))
    stored = list((server["root"] / "artifacts").rglob("hello.txt"))
    assert [p.read_text() for p in stored] == ["through the server"] and run.info.run_id in str(stored[0])
    # Its own files are its owner's alone: the store, the artifact root, and what it writes there.
    mode = lambda p: oct(p.stat().st_mode & 0o777)  # noqa: E731
    assert mode(server["root"] / "server.db") == "0o600" and mode(server["root"] / "artifacts") == "0o700"
    assert mode(stored[0]) == "0o600" and mode(stored[0].parent) == "0o700"


@pytest.mark.slow
def test_ray_sweep_finishes_every_point_and_survives_a_killed_worker(demo_dir, cluster, server, experiment, tmp_path):
    killed: dict[str, str] = {}

    def kill_a_worker() -> None:
        """kill -9 the Ray worker of the first run seen mid-training (no final metric logged yet)."""
        deadline = time.time() + 300
        while time.time() < deadline and not killed:
            try:
                for r in _runs(experiment, "attributes.status = 'RUNNING'"):
                    m, t = r.data.metrics, r.data.tags
                    if t.get("stage") in ("train", "gan") and "owner_pid" in t and not {"test_accuracy", "gen_quality_accuracy"} & set(m):
                        os.kill(int(t["owner_pid"]), signal.SIGKILL)
                        killed.update(run_id=r.info.run_id, grid_key=t["grid_key"], pid=t["owner_pid"])
                        return
            except Exception:  # the experiment may not exist yet
                pass
            time.sleep(0.1)

    killer = threading.Thread(target=kill_a_worker, daemon=True)
    killer.start()
    cmd = _sweep_cmd(demo_dir, cluster, server, experiment, "--nets", "net1,net5,net6", "--seeds", "1")
    res = subprocess.run(cmd, env=_driver_env(tmp_path), capture_output=True, text=True, timeout=500)
    killer.join(timeout=5)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "4 points, 4 run, 0 skipped (already finished), 0 failed" in res.stdout
    assert killed, "no worker was caught mid-point"

    points = [r for r in _runs(experiment) if r.data.tags.get("stage") in ("train", "gan")]
    finished = [r for r in points if r.info.status == "FINISHED"]
    keys = [r.data.tags["grid_key"] for r in finished]
    assert len(finished) == 4 and len(set(keys)) == 4  # exactly one FINISHED run per grid point
    dead = mlflow.get_run(killed["run_id"])
    assert dead.info.status == "KILLED" and dead.data.tags["error"].startswith("KILLED: its process died")
    (again,) = [r for r in finished if r.data.tags["grid_key"] == killed["grid_key"]]  # Ray ran the point again
    assert again.data.tags["owner_pid"] != killed["pid"]
    assert {r.info.status for r in points} == {"FINISHED", "KILLED"}  # nothing left RUNNING

    client = mlflow.MlflowClient()
    (parent,) = _runs(experiment, "tags.stage = 'sweep'")
    (features,) = _runs(experiment, "tags.stage = 'features'")
    assert parent.info.status == "FINISHED" and parent.data.tags["features_run_id"] == features.info.run_id
    for r in finished:
        assert r.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert r.data.params["data_dir"] == f"runs:/{features.info.run_id}/features"  # shipped, not the driver's folder
        arts = {a.path for a in client.list_artifacts(r.info.run_id)}
        if r.data.tags["stage"] == "train":
            assert {"test_accuracy", "val_accuracy", "stopped_epoch"} <= set(r.data.metrics) and "n_train" in r.data.params
            assert len(client.get_metric_history(r.info.run_id, "val_accuracy")) == r.data.metrics["stopped_epoch"]
            assert {"confusion_matrix.csv", "config.json"} <= arts
        else:
            assert "gen_quality_accuracy" in r.data.metrics and {"generated", "gan_losses.png"} <= arts
    net6 = next(r for r in finished if r.data.tags.get("net") == "net6")
    gan = next(r for r in finished if r.data.tags["stage"] == "gan")
    assert net6.data.tags["gan_run_id"] == gan.info.run_id and net6.data.params["n_generated"] == "300"
    # The worker node fetched the store (and the GAN's segment audio) into its own cache.
    key = features.data.tags["cache_key"]
    assert (cluster["node_cache"] / key / "meta.json").is_file()
    assert (cluster["node_cache"] / "segment-audio" / key / "audio.npy").is_file()


@pytest.mark.slow
def test_a_killed_driver_is_resumed_without_duplicates(demo_dir, cluster, server, experiment, tmp_path):
    cmd = _sweep_cmd(demo_dir, cluster, server, experiment, "--nets", "net1,net5", "--seeds", "2")
    driver = subprocess.Popen(cmd, env=_driver_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    deadline, mid = time.time() + 300, []
    while time.time() < deadline:  # kill it once a point has finished and another has just begun
        try:
            runs = _runs(experiment, "tags.stage = 'train'")
        except Exception:  # no experiment yet
            runs = []
        mid = [r for r in runs if r.info.status == "RUNNING" and "val_accuracy" not in r.data.metrics]
        if mid and any(r.info.status == "FINISHED" for r in runs):
            break
        assert driver.poll() is None, "the sweep ended before it could be killed"
        time.sleep(0.1)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    pids = [int(r.data.tags["owner_pid"]) for r in mid]
    deadline = time.time() + 20
    while any(Path(f"/proc/{pid}").exists() for pid in pids) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)  # Ray stopped the dead driver's tasks
    # Ray ends the tasks of a dead driver: a run stopped mid-training ends FAILED (the worker was
    # told to exit) or stays RUNNING (it was killed outright), never FINISHED.
    interrupted = [r.info.run_id for r in mid]
    assert {mlflow.get_run(i).info.status for i in interrupted} <= {"FAILED", "RUNNING"}

    res = subprocess.run(cmd, env=_driver_env(tmp_path), capture_output=True, text=True, timeout=500)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = next(line for line in res.stdout.splitlines() if line.startswith("sweep "))
    n_run, n_skipped = int(summary.split(" run, ")[0].split()[-1]), int(summary.split(" skipped")[0].split()[-1])
    assert "4 points" in summary and n_skipped >= 1 and n_run + n_skipped == 4, summary

    train = _runs(experiment, "tags.stage = 'train'")
    finished = [r for r in train if r.info.status == "FINISHED"]
    assert len(finished) == 4 and len({r.data.tags["grid_key"] for r in finished}) == 4  # nothing duplicated
    for i in interrupted:  # RUNNING ones: KILLED on resume; every one says why
        run = mlflow.get_run(i)
        assert run.info.status in ("FAILED", "KILLED")
        assert run.data.tags["error"].startswith(("KILLED: the sweep driver stopped", "stopped from outside before it ended"))
    assert {r.info.status for r in train} <= {"FINISHED", "FAILED", "KILLED"}
    (parent,) = _runs(experiment, "tags.stage = 'sweep'")  # the same parent, resumed
    assert parent.info.status == "FINISHED" and parent.data.tags["runs_skipped"] == str(n_skipped)
    assert len(_runs(experiment, "tags.stage = 'features'")) == 1  # the features run was reused, not re-uploaded


def test_ray_needs_a_reachable_server_with_proxied_artifacts_and_ray_itself(demo_dir, tmp_store, server, monkeypatch):
    args = ["sweep", "--data-dir", str(demo_dir), *TINY, "--nets", "net5", "--seeds", "1", "--executor", "ray"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2
    assert res.stderr.strip().splitlines()[-1] == (
        f"error: --executor ray needs a tracking server every node can reach (--tracking-uri http://HOST:PORT; "
        f"`benchmark server` starts one), not {tmp_store}")

    # An experiment made on the server's store directly keeps a local artifact path: refused by name.
    mlflow.set_tracking_uri(server["uri"])
    mlflow.create_experiment("local-artifacts", artifact_location=str(server["root"] / "elsewhere"))
    res = CliRunner().invoke(main, args + ["--tracking-uri", server["uri"], "--experiment", "local-artifacts"])
    assert res.exit_code == 2
    assert res.stderr.strip().splitlines()[-1].startswith(
        f"error: experiment 'local-artifacts' keeps its artifacts at {server['root'] / 'elsewhere'}, a path on the server's")

    import builtins

    real_import = builtins.__import__

    def no_ray(name, *a, **kw):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    from genre_models.errors import ConfigError
    from genre_models.sweep.executors import RayExecutor

    with pytest.raises(ConfigError, match=r"^--executor ray needs Ray: pip install 'genre-bench\[ray\]'$"):
        RayExecutor(SweepConfig(data_dir="x", executor="ray"))


def test_point_resources_follow_the_nets_sizes():
    study = SweepConfig(data_dir="x", grid="study", cpus_per_run=2, gpus_per_run=0.25)
    gib = 2**30
    net2 = point_resources(GridPoint("train", "net2", "track", 0, 50), study)
    net5 = point_resources(GridPoint("train", "net5", "track", 0, 200), study)
    gan = point_resources(GridPoint("gan", "gan", "track", 0), study)
    assert net2["num_cpus"] == 2 and net2["num_gpus"] == 0.25
    # net2 at 180x180: 133,101,642 parameters (the flatten head), 16 bytes each, plus 1.5 GiB.
    assert net2["memory"] == int(16 * 133_101_642 + 1.5 * gib)
    assert net5["memory"] == int(16 * 1_909_578 + 1.5 * gib)
    assert gan["memory"] == int(16 * 38_296_554 + 1.5 * gib)  # conditional G (20.7M) + D (17.6M) at d 64
    demo = point_resources(GridPoint("train", "net2", "track", 0, 5), SweepConfig(data_dir="x", grid="demo"))
    assert "num_gpus" not in demo and demo["memory"] < 1.6 * gib  # 32x32 images: a small head


def _train_until_logging(uri: str, data, tmp_path, **env_extra) -> tuple[subprocess.Popen, str]:
    """Start `benchmark train` (net1, 60 epochs) against ``uri``; return once it has logged two epochs.
    (A logging call blocks while the server is away, so the run cannot outlast an outage by itself.)"""
    env = command_env(uri, tmp_path / "cache", **env_extra)
    proc = subprocess.Popen([sys.executable, "-m", "benchmark", "train", "--net", "net1", "--data-dir", str(data),
                             "--image-size", "32", "--epochs", "60", "--batch-size", "8", "--no-log-model"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    client = mlflow.MlflowClient(uri)
    deadline = time.time() + 240
    while time.time() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        try:
            (run,) = client.search_runs([client.get_experiment_by_name("gtzan-genre-benchmark").experiment_id],
                                        "attributes.status = 'RUNNING'")
            if len(client.get_metric_history(run.info.run_id, "val_accuracy")) >= 2:
                return proc, run.info.run_id
        except Exception:  # no experiment or run yet
            pass
        time.sleep(0.1)
    raise AssertionError("training never logged two epochs")


@pytest.mark.slow
def test_a_server_blip_is_ridden_out_and_an_outage_fails_loudly(demo_dir, tmp_path):
    from genre_models.tracking.server import LocalServer

    backend, port = f"sqlite:///{tmp_path}/blip.db", free_port()
    srv = LocalServer(backend, tmp_path / "srv", port=port).__enter__()
    # 7 retries (waits of about 2 to 64 s, two minutes in all): the restart below must fit in the
    # client's window, and a server restart took over the default half-minute on a loaded CI machine.
    proc, run_id = _train_until_logging(srv.uri, demo_dir, tmp_path, MLFLOW_HTTP_REQUEST_MAX_RETRIES="7")
    srv.__exit__(None, None, None)  # the server goes away mid-run ...
    time.sleep(3)
    srv = LocalServer(backend, tmp_path / "srv", port=port).__enter__()  # ... and comes back, same port and store
    try:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        assert "Retrying" in err  # the client did wait for it
        client = mlflow.MlflowClient(srv.uri)
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED" and "test_accuracy" in run.data.metrics
        steps = [m.step for m in client.get_metric_history(run_id, "val_accuracy")]
        assert sorted(set(steps)) == list(range(1, 61))  # no epoch lost to the outage

        # An outage longer than the retries: the command fails in one line, and the run is not FINISHED.
        proc, run_id = _train_until_logging(srv.uri, demo_dir, tmp_path, MLFLOW_HTTP_REQUEST_MAX_RETRIES="1")
    finally:
        srv.__exit__(None, None, None)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(f"error: tracking server {srv.uri} stopped answering (Connection refused")
    assert mlflow.MlflowClient(backend).get_run(run_id).info.status == "RUNNING"  # never claimed FINISHED


@pytest.mark.slow
def test_perf_sweep_times_the_same_sweep_three_ways(demo_dir, cluster, tmp_path):
    env = _driver_env(tmp_path)
    res = subprocess.run([sys.executable, "-m", "benchmark", "-q", "perf", "sweep", "--data-dir", str(demo_dir), "--nets",
                          "net5", "--seeds", "1", "--repeats", "1", "--max-epochs", "1", "--ray-address", cluster["address"]], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout)
    assert out["points"] == 1  # net5 on the track split, seed 0
    assert set(out["seconds"]) == {"local_jobs1", "local_jobs2", "ray"} and all(len(v) == 1 for v in out["seconds"].values())
    assert out["ray_over_local_jobs2"] == round(out["seconds"]["ray"][0] / out["seconds"]["local_jobs2"][0], 3)
    assert out["local_jobs2_speedup"] == round(out["seconds"]["local_jobs1"][0] / out["seconds"]["local_jobs2"][0], 3)
    assert out["ray_head_start_s"] is None  # the cluster was given, not started here
