"""Sharing the machine: the thread budget across genre-bench processes, the contention benchmark
that measures it, and a CLI that starts without torch or MLflow. Speeds are measured by
`benchmark perf ...`, never asserted here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import pytest
import torch

from genre_models.training import runtime
from genre_models.util import process_started


@pytest.fixture
def share_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv("GENRE_BENCH_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(runtime, "usable_cores", lambda: 4)
    folder = tmp_path / f"genre-bench-{os.getuid()}" / "cpu-share"
    folder.mkdir(parents=True)
    return folder


def test_processes_computing_at_once_split_the_cores(share_dir, sleeper):
    done = subprocess.Popen(["true"])
    done.wait()
    (share_dir / str(sleeper.pid)).write_text(process_started(sleeper.pid))  # another process, training
    (share_dir / str(done.pid)).write_text("")  # one killed mid-training: its entry stayed behind
    before = torch.get_num_threads()
    with runtime.cpu_share():
        assert sorted(p.name for p in share_dir.iterdir()) == sorted([str(sleeper.pid), str(os.getpid())])
        assert runtime.live_sharers() == 2 and torch.get_num_threads() == 2  # 4 cores, 2 processes
        with runtime.cpu_share():  # nested (a GAN's scorer trained inside): still one entry
            assert runtime.live_sharers() == 2
        sleeper.kill()
        sleeper.wait()
        runtime.refresh_threads(force=True)
        assert torch.get_num_threads() == 4  # alone now: every core
    assert list(share_dir.iterdir()) == [] and torch.get_num_threads() == before


@pytest.mark.parametrize("var", ["GENRE_BENCH_THREADS", "OMP_NUM_THREADS"])
def test_a_fixed_thread_count_wins_over_the_share(var, share_dir, sleeper, monkeypatch):
    (share_dir / str(sleeper.pid)).write_text(process_started(sleeper.pid))
    monkeypatch.setenv(var, "3")
    with runtime.cpu_share():
        assert torch.get_num_threads() == 3 and runtime.live_sharers() == 2  # it still counts for the others


def test_the_cli_starts_without_torch_or_mlflow():
    code = ("import sys\nfrom click.testing import CliRunner\nfrom benchmark.cli import main\n"
            "for args in (['--help'], ['train', '--help'], ['train', '--net', 'nope'], ['sweep', '--seeds', '0']):\n"
            "    res = CliRunner().invoke(main, args)\n"
            "    print(res.exit_code)\n"
            "print(sorted(m for m in ('torch', 'mlflow', 'librosa', 'pandas') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.stdout.split() == ["0", "0", "2", "2", "[]"], res.stderr[-2000:]


@pytest.mark.slow
def test_perf_contention_runs_both_rounds_with_the_budget_and_without(tmp_path):
    env = {**os.environ, "CI": "true", "TMPDIR": str(tmp_path)}
    env.pop("GENRE_BENCH_THREADS", None)
    env.pop("OMP_NUM_THREADS", None)
    res = subprocess.run([sys.executable, "-m", "benchmark", "perf", "contention", "--net", "net1", "--image-size", "8",
                          "--batches", "3", "--repeats", "1"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout)
    cores = out["cores"]
    assert out["managed"]["threads_alone"] == [cores] and out["managed"]["threads_pair"] == [max(1, cores // 2)] * 2
    assert out["unmanaged"]["threads_pair"] == [cores, cores]  # before the budget: every process on every core
    for mode in ("managed", "unmanaged"):
        m = out[mode]
        assert m["pair_over_alone"] == round(m["pair_samples_per_s"] / m["alone_samples_per_s"], 3) > 0
    assert list((tmp_path / f"genre-bench-{os.getuid()}" / "cpu-share").iterdir()) == []  # every worker left
