"""Security on a shared machine: no code from the cache, no writes through another user's folder
or a planted link, names that never become paths outside their folder, workers that die with
their command, and a tracking server that refuses strangers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from genre_models.util import private_dir, safe_name, write_private

from conftest import children_of, is_alive


class _Planted:
    """Unpickling this runs a shell command: what a hostile file in a shared cache would hold."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_planted_pickle_in_the_gan_cache_never_runs_and_training_starts_over(tmp_path, caplog):
    from genre_models.training.gan_loop import load_checkpoint

    marker = tmp_path / "pwned"
    planted = tmp_path / "checkpoint.pt"
    torch.save({"units": _Planted(marker), "step": 3}, planted)
    with caplog.at_level("WARNING"):
        assert load_checkpoint(planted) is None
    assert not marker.exists()  # weights_only: the file's code never ran
    assert f"damaged GAN checkpoint {planted} (it does not load as plain tensors and numbers: " in caplog.text
    torch.save({"step": 1}, planted)  # loads, but is no checkpoint of ours
    assert load_checkpoint(planted) is None
    planted.write_bytes(b"\x80\x04torn")
    assert load_checkpoint(planted) is None


def test_the_shared_cpu_folder_is_private_and_never_written_through_a_link(tmp_path, monkeypatch):
    import genre_models.training.runtime as runtime

    monkeypatch.setattr(runtime.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setitem(runtime._share, "warned", False)
    (tmp_path / "tmp").mkdir()
    mine = tmp_path / "tmp" / f"genre-bench-{os.getuid()}"
    assert runtime._share_dir() == mine / "cpu-share"
    assert oct(mine.stat().st_mode & 0o777) == oct((mine / "cpu-share").stat().st_mode & 0o777) == "0o700"
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    entry = mine / "cpu-share" / str(os.getpid())
    entry.symlink_to(victim)  # planted where this process's entry goes
    with runtime.cpu_share():
        assert entry.is_file() and not entry.is_symlink() and entry.stat().st_mode & 0o777 == 0o600
    assert victim.read_text() == "precious" and not entry.exists()
    for how in ("another user's", "open to others", "a symlink"):  # each refused: a private fallback instead
        import shutil

        shutil.rmtree(mine)
        if how == "a symlink":
            mine.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
            (tmp_path / "elsewhere").mkdir(exist_ok=True)
        else:
            mine.mkdir(mode=0o777)
            os.chmod(mine, 0o777)
            if how == "another user's":
                os.chmod(mine, 0o700)
                os.chown(mine, 65534, 65534)  # nobody (the tests run as root in CI)
        monkeypatch.setitem(runtime._share, "warned", False)
        folder = runtime._share_dir()
        assert folder is not None and folder.parent == tmp_path / "home" / ".cache" / "genre-bench", how
        assert folder.stat().st_mode & 0o777 == 0o700 and folder.stat().st_uid == os.getuid()
        with runtime.cpu_share():
            assert (folder / str(os.getpid())).is_file()
        assert not any((tmp_path / "elsewhere").iterdir()) if how == "a symlink" else True
        if mine.is_dir() and not mine.is_symlink():
            assert list(mine.iterdir()) == []  # nothing written into the refused folder
        if how == "another user's":
            os.chown(mine, os.getuid(), os.getgid())


def test_names_become_safe_file_names():
    assert safe_name("gtzan-genre-benchmark") == "gtzan-genre-benchmark"
    for hostile in ("../../../x", "/etc/passwd", "..", ".hidden", "a/b", "a b", "", "é"):
        s = safe_name(hostile)
        assert s and "/" not in s and not s.startswith(".") and s not in (".", ".."), hostile
    assert safe_name("a/b") != safe_name("a_b") and safe_name("../../x") != safe_name("x")


def test_private_files_are_made_without_following_links(tmp_path):
    assert private_dir(tmp_path / "p") and not private_dir(tmp_path / "p" / "missing" / "deeper")
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (tmp_path / "p" / "f").symlink_to(victim)
    write_private(tmp_path / "p" / "f", "new")
    assert victim.read_text() == "keep" and (tmp_path / "p" / "f").read_text() == "new"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_extraction_workers_die_with_their_command(tmp_path):
    """kill -9 of the command: its extraction workers (parallel_map) go too, and SIGTERM stops one."""
    code = ("import time\nfrom genre_models.data.parallel import parallel_map\n"
            "parallel_map(time.sleep, [30.0] * 4, 2, desc='x')\n")
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "CI": "true"})
    try:
        deadline = time.time() + 60
        while len(children_of(proc.pid)) < 2 and time.time() < deadline:
            time.sleep(0.1)
        workers = children_of(proc.pid)
        assert len(workers) >= 2, "the workers did not start"
        os.kill(workers[0], 15)  # SIGTERM: a worker no longer ignores it
        proc.kill()  # kill -9 of the command
        proc.wait()
        deadline = time.time() + 10
        while time.time() < deadline and any(is_alive(w) for w in workers):
            time.sleep(0.1)
        assert [w for w in workers if is_alive(w)] == []
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_worker_whose_parent_died_before_it_started_ends_itself():
    """The parent can die between the fork and the worker's start-up, before the death signal is
    set (CI saw such a worker outlive a kill -9): the worker, told its parent's pid, then ends
    itself at once; with its real parent it goes on."""
    code = "import os, sys\nfrom genre_models.util import die_with_parent\ndie_with_parent({})\nprint('alive')\n"
    gone = subprocess.run([sys.executable, "-c", code.format("os.getppid() + 1")], capture_output=True, text=True, timeout=60)
    assert gone.returncode == -9 and gone.stdout == ""
    kept = subprocess.run([sys.executable, "-c", code.format("os.getppid()")], capture_output=True, text=True, timeout=60)
    assert kept.returncode == 0 and kept.stdout == "alive\n"


def test_jobs_above_the_cores_are_capped_with_a_note(caplog):
    from genre_models.data.parallel import worker_count
    from genre_models.util import usable_cores

    with caplog.at_level("WARNING"):
        assert worker_count(32) == usable_cores() and worker_count(0) == usable_cores() and worker_count(1) == 1
    assert f"--jobs 32 is more than the {usable_cores()} usable cores: using {usable_cores()}" in caplog.text
    from genre_models.sweep.grid import SweepConfig

    with caplog.at_level("WARNING"):
        assert SweepConfig(data_dir="x", jobs=64).jobs == usable_cores()
    assert f"--jobs 64 is more than the {usable_cores()} usable cores: running {usable_cores()} points at once" in caplog.text


def test_auth_settings_are_checked_and_never_taken_from_the_command_line(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from benchmark.cli import main
    from genre_models.tracking.server import exposure_warning

    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    monkeypatch.chdir(tmp_path)
    none = CliRunner().invoke(main, ["server", "--auth", "--port", "1"])
    assert none.exit_code == 2 and none.stderr.strip() == (
        "error: --auth needs the admin account: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or give "
        "--auth-file FILE (username:password, chmod 600)")
    loose = tmp_path / "creds"
    loose.write_text("alice:secret-pass\n")
    loose.chmod(0o644)
    res = CliRunner().invoke(main, ["server", "--auth", "--auth-file", str(loose), "--port", "1"])
    assert res.exit_code == 2 and res.stderr.strip() == (
        f"error: {loose}: the credentials file must be readable by its owner only (chmod 600 {loose}); its mode is -rw-r--r--")
    assert "--password" not in CliRunner().invoke(main, ["server", "--help"]).output
    assert exposure_warning("127.0.0.1", False) is None and exposure_warning("0.0.0.0", True) is None
    assert exposure_warning("0.0.0.0", False).startswith("the server listens on 0.0.0.0 without authentication")
    assert not (tmp_path / "mlflow-auth").exists()  # nothing was set up for a refused start


def test_the_server_closes_its_own_store_and_artifacts_to_other_users(tmp_path):
    """An existing store and artifact root that others could read (as an older genre-bench or
    `mlflow server` left them) are closed; new ones are created private; another user's folder
    or a link in its place is refused."""
    from genre_models.errors import ConfigError
    from genre_models.tracking.server import auth_environment, private_store, Credentials

    db, art = tmp_path / "mlflow.db", tmp_path / "mlartifacts"
    db.write_bytes(b"")
    db.chmod(0o644)
    art.mkdir(mode=0o755)
    private_store(f"sqlite:///{db}", str(art))
    assert oct(db.stat().st_mode & 0o777) == "0o600" and oct(art.stat().st_mode & 0o777) == "0o700"
    private_store(f"sqlite:///{tmp_path}/new/m.db", str(tmp_path / "new-art"))
    assert oct((tmp_path / "new" / "m.db").stat().st_mode & 0o777) == "0o600"
    assert oct((tmp_path / "new-art").stat().st_mode & 0o777) == "0o700"
    (tmp_path / "link").symlink_to(art, target_is_directory=True)
    with pytest.raises(ConfigError, match=r"link: cannot keep the server's artifacts there"):
        private_store(f"sqlite:///{db}", str(tmp_path / "link"))
    env = auth_environment(Credentials("alice", "pw"), tmp_path / "auth", "NO_PERMISSIONS")
    assert "default_permission = NO_PERMISSIONS" in Path(env["MLFLOW_AUTH_CONFIG_PATH"]).read_text()
    assert "default_permission = READ" in Path(auth_environment(Credentials("a", "b"), tmp_path / "a2")
                                               ["MLFLOW_AUTH_CONFIG_PATH"]).read_text()  # MLflow's own default


@pytest.mark.slow
def test_a_server_with_auth_refuses_strangers_and_serves_an_authenticated_sweep(demo_dir, tmp_path, monkeypatch):
    import json
    import urllib.error
    import urllib.request

    from conftest import free_port

    port, root = free_port(), tmp_path / "srv"
    root.mkdir()
    creds = tmp_path / "creds"
    creds.write_text("alice:correct-horse-battery\n")
    creds.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    start = subprocess.run([sys.executable, "-m", "benchmark", "server", "--port", str(port), "--workers", "1", "--auth",
                            "--auth-file", str(creds), "--background"], cwd=root, env=env, capture_output=True, text=True,
                           timeout=180)
    assert start.returncode == 0, start.stderr[-2000:]
    uri = f"http://127.0.0.1:{port}"
    try:
        assert "correct-horse" not in start.stdout + start.stderr and "basic auth on (admin alice;" in start.stdout
        assert oct((root / "mlflow-auth").stat().st_mode & 0o777) == "0o700"
        assert all((root / "mlflow-auth" / f).stat().st_mode & 0o777 == 0o600 for f in ("secret_key", "basic_auth.ini"))
        assert "correct-horse" not in (root / "mlflow-auth" / "basic_auth.ini").read_text()  # the password: environment only
        search = f"{uri}/api/2.0/mlflow/experiments/search?max_results=1"
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(search, timeout=10)
        assert denied.value.code == 401  # a stranger may not read
        from click.testing import CliRunner

        from benchmark.cli import main

        for k in [k for k in os.environ if k.startswith("MLFLOW_")]:
            monkeypatch.delenv(k)
        monkeypatch.setenv("GENRE_BENCH_CACHE", str(tmp_path / "cache"))
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong")
        stranger = CliRunner().invoke(main, ["train", "--net", "net5", "--data-dir", str(demo_dir), "--epochs", "1",
                                             "--tracking-uri", uri])
        assert stranger.exit_code == 2 and stranger.stderr.strip().splitlines()[-1] == (
            f"error: tracking server {uri} refused the request (401: not authenticated); set MLFLOW_TRACKING_USERNAME "
            "and MLFLOW_TRACKING_PASSWORD to an account on it")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "correct-horse-battery")
        sweep = CliRunner().invoke(main, ["sweep", "--data-dir", str(demo_dir), "--grid", "demo", "--nets", "net1,net5",
                                          "--seeds", "1", "--splits", "track", "--max-epochs", "1", "--no-register",
                                          "--no-system-metrics", "--tracking-uri", uri])
        assert sweep.exit_code == 0, sweep.output[-3000:]
        assert "2 points, 2 run, 0 skipped" in sweep.stdout
        req = urllib.request.Request(f"{uri}/api/2.0/mlflow/runs/search", method="POST",
                                     data=json.dumps({"experiment_ids": ["1"], "filter": "tags.stage = 'train'"}).encode(),
                                     headers={"Content-Type": "application/json",
                                              "Authorization": "Basic " + __import__("base64").b64encode(
                                                  b"alice:correct-horse-battery").decode()})
        runs = json.loads(urllib.request.urlopen(req, timeout=10).read())["runs"]
        assert sorted((r["info"]["status"], {t["key"]: t["value"] for t in r["data"]["tags"]}["net"]) for r in runs) == [
            ("FINISHED", "net1"), ("FINISHED", "net5")]  # one run per point
    finally:
        stop = subprocess.run([sys.executable, "-m", "benchmark", "server", "--port", str(port), "--stop"], cwd=root,
                              env=env, capture_output=True, text=True, timeout=120)
        assert stop.returncode == 0, stop.stderr
