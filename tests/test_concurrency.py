"""Two commands against one store: runs are claimed by their owner (host, pid, heartbeat), only a
provably dead owner's run is ended KILLED, and two identical sweeps started together end with
exactly one FINISHED run per grid point, no FAILED run, one parent, and the report a single
sweep writes."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import mlflow
import pytest

from genre_models.tracking import claims, model_registry
from genre_models.tracking.sweeps import SweepRecord
from genre_models.util import process_started

from conftest import cores

SWEEP = ["--grid", "demo", "--nets", "net1,net5", "--seeds", "1", "--splits", "track", "--max-epochs", "2"]
N_POINTS = 2
HOST = socket.gethostname()


def _run(tags: dict, run_id: str = "r1", start_ms: int | None = None):
    start = int(time.time() * 1000) if start_ms is None else start_ms
    return SimpleNamespace(info=SimpleNamespace(run_id=run_id, start_time=start), data=SimpleNamespace(tags=tags))


def _owned_by(proc: subprocess.Popen | None = None, host: str = HOST, beat: float | None = None) -> dict:
    pid = proc.pid if proc else os.getpid()
    return {"owner_host": host, "owner_pid": str(pid), "owner_started": process_started(pid),
            "heartbeat": str(int(time.time() if beat is None else beat))}


def test_a_runs_owner_is_gone_only_when_provably_so(sleeper, monkeypatch):
    assert claims.owner_gone(_run({})) == "it has no owner record (made by an older genre-bench)"
    assert claims.owner_gone(_run(_owned_by(sleeper))) is None  # alive on this host, same start time
    reused = {**_owned_by(sleeper), "owner_started": "1"}  # the pid now names another process
    assert claims.owner_gone(_run(reused)) == (f"its owner on {HOST}: process {sleeper.pid} has exited "
                                               "(the pid now belongs to another process)")
    done = subprocess.Popen(["true"])
    done.wait()
    assert claims.owner_gone(_run(_owned_by(done))) == f"its owner on {HOST}: process {done.pid} has exited"
    # This very process: alive only while it holds the run.
    assert claims.owner_gone(_run(_owned_by(), run_id="mine")) == "this process no longer runs it"
    claims.hold("mine", "sqlite:///unused.db")
    try:
        assert claims.owner_gone(_run(_owned_by(), run_id="mine")) is None
    finally:
        claims.release("mine")
    # Another host: its pid cannot be checked from here, so only a stale heartbeat proves it gone.
    now = float(int(time.time()))  # heartbeats are whole seconds
    assert claims.owner_gone(_run(_owned_by(sleeper, host="elsewhere", beat=now - 599)), now=now) is None
    assert claims.owner_gone(_run(_owned_by(sleeper, host="elsewhere", beat=now - 601)), now=now) == (
        "no heartbeat from its owner on elsewhere for 601 s")
    monkeypatch.setenv("GENRE_BENCH_STALE_AFTER_S", "60")
    assert claims.owner_gone(_run(_owned_by(sleeper, host="elsewhere", beat=now - 61)), now=now) is not None


def test_a_held_run_beats(tmp_store, monkeypatch):
    monkeypatch.setenv("GENRE_BENCH_HEARTBEAT_S", "0.2")
    client = mlflow.MlflowClient()
    run_id = client.create_run(mlflow.get_experiment_by_name("gtzan-genre-benchmark").experiment_id,
                               tags={"heartbeat": "0"}).info.run_id
    claims.hold(run_id, tmp_store)
    try:
        deadline = time.time() + 10
        while client.get_run(run_id).data.tags["heartbeat"] == "0" and time.time() < deadline:
            time.sleep(0.1)
    finally:
        claims.release(run_id)
    assert abs(int(client.get_run(run_id).data.tags["heartbeat"]) - time.time()) < 5


class _RacingClient:
    """An MlflowClient whose first ``create_run`` is beaten by a rival's identical one, made just
    before it by ``rival_tags`` (the race two processes run)."""

    def __init__(self, client, rival_tags: dict) -> None:
        self.client, self.rival_tags, self.raced = client, rival_tags, False

    def create_run(self, exp_id, run_name=None, tags=None):
        if not self.raced:
            self.raced = True
            self.rival = self.client.create_run(exp_id, run_name="rival", tags={**tags, **self.rival_tags})
        return self.client.create_run(exp_id, run_name=run_name, tags=tags)

    def __getattr__(self, name):
        return getattr(self.client, name)


def _active(run_id: str) -> bool:
    return mlflow.get_run(run_id).info.lifecycle_stage == "active"


def test_claims_make_a_grid_point_run_once(tmp_store, sleeper):
    record = SweepRecord("gtzan-genre-benchmark")
    parent, resumed = record.open_parent("sk", "sweep-x", {}, {"grid": "demo"}, [])
    assert not resumed
    # A live rival (another process on this host) holds the point: busy, and nothing of ours is left.
    record.client = _RacingClient(record.client, _owned_by(sleeper))
    claim = record.claim_point(parent, "gk", "net5", {"stage": "train"})
    assert claim.busy.info.run_id == record.client.rival.info.run_id and claim.run_id is None
    ours = [r for r in record.client.search_runs([record.exp_id], "tags.grid_key = 'gk'", run_view_type=3)
            if r.info.run_id != claim.busy.info.run_id]
    assert len(ours) == 1 and ours[0].info.lifecycle_stage == "deleted"  # our claim was withdrawn
    # Its owner dies: the next claim ends the rival KILLED, saying why, and wins.
    sleeper.kill()
    sleeper.wait()
    claim = record.claim_point(parent, "gk", "net5", {"stage": "train"})
    rival = mlflow.get_run(record.client.rival.info.run_id)
    assert rival.info.status == "KILLED" and rival.data.tags["error"] == (
        f"KILLED: its process died; the point was run again (its owner on {HOST}: process {sleeper.pid} has exited)")
    mine = mlflow.get_run(claim.run_id)
    assert mine.info.status == "RUNNING" and mine.data.tags["mlflow.parentRunId"] == parent
    assert mine.data.tags["owner_pid"] == str(os.getpid()) and mine.data.tags["grid_key"] == "gk"
    assert record.claim_point(parent, "gk", "net5", {}).busy.info.run_id == claim.run_id  # held: never ours twice
    # It fails: a sweep that watched it adopts the failure; a later sweep runs the point again.
    claims.release(claim.run_id)
    record.end_point_failed(claim.run_id, "boom")
    assert record.claim_point(parent, "gk", "net5", {}, watched=(claim.run_id,)).failed.info.run_id == claim.run_id
    again = record.claim_point(parent, "gk", "net5", {})
    assert again.run_id not in (None, claim.run_id)
    record.client.set_terminated(again.run_id, "FINISHED")
    claims.release(again.run_id)
    assert record.claim_point(parent, "gk", "net5", {}).finished.info.run_id == again.run_id


def test_a_claim_whose_every_rival_withdrew_too_is_busy_not_a_crash(tmp_store, sleeper, monkeypatch):
    import genre_models.tracking.sweeps as sweeps

    class BothWithdraw(_RacingClient):  # the rival withdraws at the same moment as we do
        def delete_run(self, run_id):
            self.client.delete_run(run_id)
            self.client.delete_run(self.rival.info.run_id)

    monkeypatch.setattr(sweeps, "CLAIM_TRIES", 1)
    record = SweepRecord("gtzan-genre-benchmark")
    parent, _ = record.open_parent("sk", "sweep-x", {}, {}, [])
    record.client = BothWithdraw(record.client, _owned_by(sleeper))
    claim = record.claim_point(parent, "gk", "net5", {})
    assert (claim.run_id, claim.finished, claim.failed, claim.busy) == (None, None, None, None)
    assert record.point_runs("gk") == []  # nothing of either claimant is left active


def test_two_sweeps_opening_one_parent_share_it(tmp_store):
    record = SweepRecord("gtzan-genre-benchmark")
    record.client = _RacingClient(record.client, {})
    parent, resumed = record.open_parent("sk", "sweep-x", {"grid": "demo"}, {"seeds": 2}, [])
    assert resumed and parent == record.client.rival.info.run_id  # ours lost the race and was withdrawn
    runs = record.client.search_runs([record.exp_id], "tags.sweep_key = 'sk'", run_view_type=3)
    assert sorted(_active(r.info.run_id) for r in runs) == [False, True]


# --------------------------------------------------------------------------- end to end


def _sweep(demo_dir, uri: str, experiment: str, env: dict) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "benchmark", "sweep", "--data-dir", str(demo_dir), *SWEEP, "--tracking-uri", uri,
           "--experiment", experiment]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _counts(stdout: str) -> tuple[int, int]:
    m = re.search(rf"{N_POINTS} points, (\d+) run, (\d+) skipped \(already finished\), 0 failed", stdout)
    assert m, stdout
    return int(m.group(1)), int(m.group(2))


def _report(uri: str, experiment: str, out, env: dict) -> str:
    res = subprocess.run([sys.executable, "-m", "benchmark", "report", "--no-figures", "--tracking-uri", uri,
                          "--experiment", experiment, "--out", str(out)], env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    text = out.read_text().replace(uri, "STORE")
    text = re.sub(r"run `[0-9a-f]{12}`", "run `ID`", text)
    # the cost record is wall-clock time, never the same twice: the section is there, its figures left out
    text = re.sub(r"(## What the sweeps cost, against their projection\n).*?(?=\n## )", r"\1", text, flags=re.S)
    return re.sub(r"\*\*Date:\*\* .*", "**Date:**", text)


def _point_metrics(uri: str, experiment: str) -> dict[str, dict]:
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return {r.data.tags["grid_key"]: {k: v for k, v in r.data.metrics.items() if k.startswith(("test_", "val_"))}
            for r in client.search_runs([exp.experiment_id], "tags.stage = 'train'")}


@pytest.fixture(scope="module")
def single(demo_dir, tmp_path_factory) -> dict:
    """The same sweep run alone, on a store of its own: its report and its points' metrics."""
    root = tmp_path_factory.mktemp("single")
    env = _env(root)  # its feature cache serves the concurrent sweeps too (built once)
    uri = f"sqlite:///{root}/single.db"
    with cores(exclusive=False):  # a fixture's work is no test's: it takes the cores' shared lock itself
        proc = _sweep(demo_dir, uri, "together-sqlite", env)
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]
        assert _counts(out) == (N_POINTS, 0)
        return {"report": _report(uri, "together-sqlite", root / "report.md", env),
                "metrics": _point_metrics(uri, "together-sqlite"), "cache": env["GENRE_BENCH_CACHE"]}


def _env(root) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return {**env, "CI": "true", "GENRE_BENCH_CACHE": str(root / "cache"), "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
@pytest.mark.parametrize("store", ["sqlite", "server"])
def test_two_identical_sweeps_started_together_run_each_point_once(store, demo_dir, single, tmp_path, request):
    uri = f"sqlite:///{tmp_path}/mlflow.db" if store == "sqlite" else request.getfixturevalue("server")["uri"]
    experiment = f"together-{store}"
    env = {**_env(tmp_path), "GENRE_BENCH_CACHE": single["cache"]}
    procs = [_sweep(demo_dir, uri, experiment, env) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
    (run_a, skip_a), (run_b, skip_b) = (_counts(out) for out, _ in outs)
    assert run_a + run_b == N_POINTS and skip_a + skip_b == N_POINTS  # each point run by exactly one of them

    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=[experiment], output_format="list")  # active runs only
    parents = [r for r in runs if r.data.tags.get("stage") == "sweep"]
    points = [r for r in runs if r.data.tags.get("stage") == "train"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(points) == N_POINTS and {r.info.status for r in points} == {"FINISHED"}  # no FAILED, KILLED, RUNNING
    assert {r.data.tags["mlflow.parentRunId"] for r in points} == {parents[0].info.run_id}
    withdrawn = mlflow.search_runs(experiment_names=[experiment], output_format="list", run_view_type=2)
    assert all(r.info.status != "FINISHED" for r in withdrawn)  # a lost race leaves only a deleted claim
    assert _point_metrics(uri, experiment) == single["metrics"]  # the same numbers, point by point
    client = mlflow.MlflowClient(uri)
    for net in ("net1", "net5"):  # both sweeps registered the same chosen run: one version is left
        (version,) = client.search_model_versions(f"name = 'genre-bench-{net}'")
        assert client.get_model_version_by_alias(f"genre-bench-{net}", "track").version == version.version
    if store == "sqlite":  # the report is the same code on either store: written once, here
        assert _report(uri, experiment, tmp_path / "report.md", env) == single["report"]


def test_two_commands_describing_a_new_experiment_at_once_do_not_fail(tmp_store, monkeypatch):
    """Through a server the store lock does not serialise them: the other command inserts the
    experiment's tag between our look and our insert (seen in CI as a UNIQUE constraint error)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from genre_models.tracking.setup import EXPERIMENT_TAGS, describe_experiment

    client = mlflow.MlflowClient()
    exp = client.get_experiment(client.create_experiment("raced"))
    real, lost = mlflow.MlflowClient.set_experiment_tag, []

    def other_process_first(self, experiment_id, key, value):
        if not lost:  # the other command's insert lands first; ours then hits the unique key
            real(self, experiment_id, key, value)
            lost.append(key)
            raise MlflowException("(sqlite3.IntegrityError) UNIQUE constraint failed: experiment_tags.key, "
                                  "experiment_tags.experiment_id")
        return real(self, experiment_id, key, value)

    monkeypatch.setattr(mlflow.MlflowClient, "set_experiment_tag", other_process_first)
    describe_experiment(exp)
    assert lost and {k: client.get_experiment(exp.experiment_id).tags.get(k) for k in EXPERIMENT_TAGS} == EXPERIMENT_TAGS
    monkeypatch.setattr(mlflow.MlflowClient, "set_experiment_tag", lambda *a: (_ for _ in ()).throw(
        MlflowException("INTERNAL_ERROR: disk I/O error")))
    with pytest.raises(MlflowException, match="disk I/O error"):  # any other failure still surfaces
        describe_experiment(client.get_experiment(client.create_experiment("other")))


class _LooksFirst:
    """A store client on which another sweep creates the registered model just after this one
    looked and found none; or, with ``down``, a store whose look and create both fail."""

    def __init__(self, inner, down: bool = False) -> None:
        self.inner, self.down, self.looked = inner, down, False

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def get_registered_model(self, name: str):
        from mlflow.exceptions import MlflowException

        if self.down:
            raise MlflowException("the store went away")
        if not self.looked:
            self.looked = True
            mlflow.MlflowClient().create_registered_model(name)  # the other sweep, between look and create
            raise MlflowException(f"Registered Model with name={name} not found", error_code="RESOURCE_DOES_NOT_EXIST")
        return self.inner.get_registered_model(name)

    def create_registered_model(self, name: str, **kw):
        from mlflow.exceptions import MlflowException

        if self.down:
            raise MlflowException("the store went away")
        return self.inner.create_registered_model(name, **kw)


def test_a_registered_model_another_sweep_creates_between_look_and_create_is_used(tmp_store, monkeypatch):
    """The race CI met: the store's "already exists" error, whose words vary by store and MLflow
    version, means the model is there; a store that is down still fails."""
    client = mlflow.MlflowClient()
    exp_id = client.create_experiment("registry-race")
    run_id = client.create_run(exp_id).info.run_id
    model_id = client.create_logged_model(exp_id, name="model", source_run_id=run_id).model_id
    real = model_registry.store_client
    monkeypatch.setattr(model_registry, "store_client", lambda: _LooksFirst(real()))
    reg = model_registry.register_run(run_id, "net5", "track", "chosen on validation", lambda rid: model_id)
    assert (reg.name, reg.version, reg.new) == ("genre-bench-net5", "1", True)
    assert client.get_model_version_by_alias("genre-bench-net5", "track").run_id == run_id
    monkeypatch.setattr(model_registry, "store_client", lambda: _LooksFirst(real(), down=True))
    with pytest.raises(Exception, match="the store went away"):
        model_registry.register_run(run_id, "net1", "track", "chosen on validation", lambda rid: model_id)


_OPEN_AT = """
import sys, time
import mlflow
from genre_models.tracking.setup import setup_tracking
uri, at, who = sys.argv[1], float(sys.argv[2]), sys.argv[3]
time.sleep(max(0.0, at - time.time()))  # every process imported: they open the store together
try:
    if who == "mlflow":
        mlflow.MlflowClient(uri).search_experiments()
    else:
        setup_tracking(uri, "opened-together")
    print("ok")
except Exception as exc:
    print("failed:", str(exc).splitlines()[0])
"""


@pytest.mark.slow
def test_a_new_store_opened_by_mlflow_itself_at_the_same_moment_is_waited_for(tmp_path):
    """MLflow migrates a new store with no lock, in whichever process comes first; a second
    process at the same moment failed ("table ... already exists", "duplicate column name"),
    which is how CI met it (a sweep beside a test polling its store). Here MLflow itself and two
    genre-bench commands open one new store together, twice over: every genre-bench
    command goes on, and the store ends at the schema head with one experiment and no leftovers.
    (Without ``schema.open_store`` most of these rounds failed.)"""
    from genre_models.tracking.schema import schema_head, schema_revision

    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    for n in range(2):
        db = tmp_path / f"round{n}" / "mlflow.db"
        db.parent.mkdir()
        at = time.time() + 10.0  # after every process's imports, even on a busy machine
        procs = [(who, subprocess.Popen([sys.executable, "-c", _OPEN_AT, f"sqlite:///{db}", str(at), who],
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
                                        cwd=db.parent))
                 for who in ("mlflow", "genre-bench", "genre-bench")]
        said = {i: (who, p.communicate(timeout=120)[0].strip()) for i, (who, p) in enumerate(procs)}
        assert all(out == "ok" for who, out in said.values() if who == "genre-bench"), said
        assert schema_revision(db) == schema_head() is not None
        names = [e.name for e in mlflow.MlflowClient(f"sqlite:///{db}").search_experiments()]
        assert sorted(names) == ["Default", "opened-together"]
        assert sorted(os.listdir(db.parent)) == ["mlflow.db", "mlruns"], "a temporary store was left behind"
