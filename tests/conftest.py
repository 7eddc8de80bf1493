"""Shared fixtures: tiny generated datasets, a temp MLflow store and feature cache per test.

Tests that need the real GTZAN sample read its folder from GTZAN_SAMPLE_DIR and are skipped
without it; everything else runs on data generated here.
"""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from genre_models.config import FeatureConfig
from genre_models.genres import GENRES
from genre_models.data.synth import SynthConfig, synth_track, write_synthetic_gtzan
from genre_models.models.registry import get_net
from genre_models.models.saved import save_net, shape_of
from genre_models.reporting.runs import select_runs

SR = 22050


def one_line_error(r, *words: str) -> None:
    """Exit 2, one ``error:`` line holding ``words``, no traceback."""
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 2 and "Traceback" not in r.output and lines, r.output[-2000:]
    assert lines[-1].startswith(("error: ", "Error: ")) and all(w in lines[-1] for w in words), lines[-1]


def saved_net5(folder: Path) -> Path:
    """An untrained net5 saved as the package saves a model, in ``folder``."""
    spec, features = get_net("net5"), FeatureConfig()
    save_net(folder, spec, spec.build(shape_of(features), "flatten"), features, "flatten", 1, "test")
    return folder


def runs_table(rows: list[dict]) -> pd.DataFrame:
    """A runs table from (net, seed, accuracy; optionally epochs) rows, through the report's select_runs."""
    return select_runs(runs_frame(rows))[0]


def runs_frame(rows: list[dict], columns: dict | None = None) -> pd.DataFrame:
    """The store's frame behind ``runs_table``, with ``columns`` (name -> a value per row) added."""
    frame = pd.DataFrame([{"run_id": f"{r['net']}-{r['seed']}", "status": "FINISHED", "start_time": i,
                           "artifact_uri": "", "tags.stage": "train", "tags.net": r["net"], "tags.split": r["split"],
                           "tags.seed": str(r["seed"]), "tags.dataset": "d", "params.epochs": str(r.get("epochs", 50)),
                           "params.n_test": "10", "params.n_train": "70", "params.n_test_tracks": "10",
                           "params.n_train_tracks": "70", "metrics.test_accuracy": r["acc"],
                           "metrics.test_track_accuracy": r["acc"]} for i, r in enumerate(rows)])
    return frame.assign(**(columns or {}))


def tagged_runs(experiment: str = "gtzan-genre-benchmark", **tags: str) -> list:
    """The runs of ``experiment`` in the current store whose tags have these values."""
    import mlflow

    flt = " and ".join(f"tags.{k} = '{v}'" for k, v in tags.items())
    return mlflow.search_runs(experiment_names=[experiment], filter_string=flt, output_format="list")


def write_wav(path: Path, y: np.ndarray, sr: int = SR) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y, sr, subtype="PCM_16")
    return path


def kaggle_tree(root: Path, per_genre: int = 3, seconds: float = 3.0, genres=GENRES) -> Path:
    """A minimal Kaggle-layout tree of synthetic clips: root/Data/genres_original/<g>/<g>.NNNNN.wav."""
    for gi, g in enumerate(genres):
        for i in range(per_genre):
            write_wav(root / "Data" / "genres_original" / g / f"{g}.{i:05d}.wav", synth_track(g, seconds, seed=gi * 100 + i))
    return root


def bad_kaggle_tree(root: Path) -> Path:
    """Two good clips per genre, a stereo 44.1 kHz one, and the brief's bad files: a headerless
    WAV (as the Kaggle jazz.00054), an empty file, a clip under one segment, a text file."""
    kaggle_tree(root, per_genre=2, seconds=2.5)
    gdir = root / "Data" / "genres_original"
    (gdir / "jazz" / "jazz.00054.wav").write_bytes(np.random.default_rng(0).integers(-3000, 3000, 40000, dtype=np.int16).tobytes())
    (gdir / "rock" / "rock.00009.wav").write_bytes(b"")
    write_wav(gdir / "pop" / "pop.00008.wav", synth_track("pop", 0.6, 3))  # shorter than one segment
    stereo = np.stack([synth_track("metal", 3.0, 4, sr=44100), synth_track("metal", 3.0, 5, sr=44100)], axis=1)
    write_wav(gdir / "metal" / "metal.00007.wav", stereo, sr=44100)
    (gdir / "disco" / "notes.txt").write_text("not audio")
    return root


@pytest.fixture
def tmp_store(tmp_path, monkeypatch):
    """A private MLflow store and feature cache; returns the tracking URI."""
    yield from private_store(tmp_path, monkeypatch)


def private_store(tmp_path, monkeypatch):
    """``tmp_store``'s body, for a fixture of a wider scope (with ``pytest.MonkeyPatch.context()``)."""
    import mlflow

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("GENRE_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)  # mlflow.set_experiment exports it
    mlflow.set_tracking_uri(uri)
    from genre_models.tracking.setup import setup_tracking

    setup_tracking()  # also resets MLflow's process-wide active experiment to this store's
    yield uri
    mlflow.end_run()


def _shared_root() -> Path | None:
    """A folder the xdist workers of this session share (None: one process, nothing to share)."""
    worker, run = os.environ.get("PYTEST_XDIST_WORKER"), os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if not worker or not run:
        return None
    root = Path(os.environ.get("TMPDIR", "/tmp")) / f"genre-bench-cores-{os.getuid()}-{run}"
    root.mkdir(mode=0o700, exist_ok=True)
    return root


_held = {"depth": 0}  # this process's hold on the cores' lock: a nested ``cores`` adds nothing


@contextmanager
def cores(exclusive: bool):
    """The cores, shared with the other xdist worker's tests, or alone (``exclusive``: while the
    block runs, no other test or heavy fixture does, and it starts once the cores are quiet). A
    readers-writer lock on files the workers share, with a turnstile so a waiting writer is not
    starved by readers. Re-entrant in a process (a fixture a test asks for mid-test, under the
    test's own hold), which also keeps a held reader from queueing behind a waiting writer."""
    root = _shared_root()
    if root is None or _held["depth"]:
        _held["depth"] += 1
        try:
            yield
        finally:
            _held["depth"] -= 1
        return
    with open(root / "turnstile", "a+") as gate, open(root / "lock", "a+") as lock:
        fcntl.flock(gate, fcntl.LOCK_EX)
        fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        fcntl.flock(gate, fcntl.LOCK_UN)
        _held["depth"] += 1
        try:
            if exclusive:
                _quiet_cores()
            yield
        finally:
            _held["depth"] -= 1
            fcntl.flock(lock, fcntl.LOCK_UN)


def _busy_share(seconds: float = 1.0) -> float:
    """The share of all cores busy over ``seconds`` (from /proc/stat; 0 where there is none)."""
    import time

    def ticks() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]  # all, idle + iowait

    try:
        (t0, i0), _, (t1, i1) = ticks(), time.sleep(seconds), ticks()
    except (OSError, ValueError, IndexError):
        return 0.0
    return 1.0 - (i1 - i0) / max(1, t1 - t0)


def _quiet_cores(busy_below: float = 0.15, wait_s: float = 120.0) -> None:
    """Wait, up to ``wait_s``, until the cores are quiet: what the lock cannot hold (a server or a
    Ray head another worker's fixture left running, a process winding down) settles first."""
    import time

    deadline = time.monotonic() + wait_s
    while _busy_share() >= busy_below and time.monotonic() < deadline:
        pass


@pytest.fixture(autouse=True)
def _cores_for_the_test(request):
    """Every test shares the cores, except one marked ``exclusive``: a whole sweep timed against
    its projection, which other work on the cores would make say nothing."""
    with cores(request.node.get_closest_marker("exclusive") is not None):
        yield


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    """The built-in demo data, small: 5 tracks per genre of 4 s (3/1/1 per genre under `track`), no repeats."""
    out = tmp_path_factory.mktemp("demo")
    with cores(exclusive=False):
        write_synthetic_gtzan(SynthConfig(out=str(out), tracks_per_genre=5, seconds=4.0, seed=0, repeats=0))
    return out


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    path = os.environ.get("GTZAN_SAMPLE_DIR")
    if not path or not Path(path).is_dir():
        pytest.skip("GTZAN_SAMPLE_DIR is not set to the real GTZAN sample")
    return Path(path)


def command_env(tracking_uri: str, cache, **extra: str) -> dict:
    """The environment of a genre-bench command a test starts: this one's, less any inherited
    MLFLOW_* setting, with its own store and feature cache (and ``extra``)."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}, "CI": "true",
            "MLFLOW_TRACKING_URI": tracking_uri, "GENRE_BENCH_CACHE": str(cache), **extra}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _live_where(field: int, value: int) -> list[int]:
    """Live (not zombie) processes whose /proc stat field ``field`` (after the name) is ``value``."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[field]) == value and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


def alive_in_group(pgid: int) -> list[int]:
    """Live processes in a process group."""
    return _live_where(2, pgid)


def children_of(pid: int) -> list[int]:
    """Live child processes of ``pid``."""
    return _live_where(1, pid)


def is_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """`benchmark server --background` on 127.0.0.1 (SQLite store, proxied artifacts), stopped by
    the PID it records, through `benchmark server --stop`: the README's two commands."""
    root = tmp_path_factory.mktemp("server")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    with cores(exclusive=False):  # three processes importing MLflow: not while a sweep is timed
        start = subprocess.run([sys.executable, "-m", "benchmark", "server", "--port", str(port), "--workers", "2",
                                "--backend-store-uri", f"sqlite:///{root}/server.db", "--artifacts-destination",
                                str(root / "artifacts"), "--allowed-hosts", f"tracker:{port}", "--background"], cwd=root,
                               env=env, capture_output=True, text=True, timeout=180)
    assert start.returncode == 0, start.stderr[-2000:]
    pid = int((root / f"mlflow-server-{port}.pid").read_text())
    uri = f"http://127.0.0.1:{port}"
    assert start.stdout.startswith(f"MLflow server listening on {uri} (pid {pid}, log ")
    with urllib.request.urlopen(f"{uri}/health", timeout=5) as r:  # it answers when the command returns
        assert r.status == 200
    yield {"uri": uri, "pid": pid, "root": root, "port": port}
    with cores(exclusive=False):
        stop = subprocess.run([sys.executable, "-m", "benchmark", "server", "--port", str(port), "--stop"], cwd=root,
                              env=env, capture_output=True, text=True, timeout=120)
    assert stop.stdout.strip() == f"stopped the MLflow server on port {port} (pid {pid})", stop.stderr
    assert not alive_in_group(pid) and not (root / f"mlflow-server-{port}.pid").exists()


@pytest.fixture
def sleeper():
    """A live process of this host that does nothing (an owner that is still alive), killed after."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc
    proc.kill()
    proc.wait()


def fake_run(client, exp_id, net, seed, acc, split="track", epochs=None, status="FINISHED", confusion=None,
              tags=None, params=None, right=None, **metrics):
    """A run as a sweep would leave it (tags, the counts as parameters, metrics, and optionally
    its confusion matrix and ``right`` of its 10 test tracks right), made without training."""
    import pandas as pd

    from genre_models.models.registry import NETS

    tags = {"stage": "train", "net": net, "split": split, "seed": str(seed), "dataset": "gtzan@abc",
            "dataset_synthetic": "false", "code_version": "0.1.0+test", **(tags or {})}
    run = client.create_run(exp_id, run_name=f"{net}-s{seed}", tags=tags)
    rid = run.info.run_id
    for k, v in {"epochs": epochs or (NETS[net].epochs if net in NETS else 1), "resolved_device": "cpu", "n_test": 30 + seed,
                 "n_test_tracks": 10, **(params or {})}.items():
        client.log_param(rid, k, v)
    for k, v in {"test_accuracy": acc, "val_accuracy": acc, **metrics}.items():
        client.log_metric(rid, k, v)
    if confusion is not None:
        client.log_text(rid, pd.DataFrame(confusion, index=GENRES, columns=GENRES).to_csv(), "confusion_matrix.csv")
    if right is not None:  # the per-track predictions: ``right`` of its 10 test tracks are right
        rows = [{"track_id": f"rock.{i:05d}", "true": "rock", "predicted": "rock" if i < right else "pop", "samples": 3}
                for i in range(10)]
        client.log_text(rid, pd.DataFrame(rows).to_csv(index=False), "test_predictions.csv")
    client.set_terminated(rid, status)
    return rid


def docs_screenshot():
    """``docs/screenshot.py``, the docs' screenshot script, whose ``chromium()`` the browser tests share."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("screenshot", Path(__file__).parent.parent / "docs" / "screenshot.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

