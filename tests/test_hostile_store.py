"""A colleague's or a stranger's store, server and files: a store or artifact store that does not
answer, a planted pid file or link, a planted run of another dataset, an alias left on a deleted
run, a refused registration. Each costs one line or its own row, never a report, a run or a
process of someone else's."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import mlflow
import pytest
from click.testing import CliRunner

from benchmark.cli import main
from genre_models.data.synth import synth_track
from genre_models.errors import ModelError
from genre_models.stages.report import write_report

from conftest import fake_run, is_alive, one_line_error, saved_net5, write_wav

EXP = "gtzan-genre-benchmark"


def test_a_store_that_does_not_answer_is_one_line_within_its_deadline(tmp_path, demo_dir):
    with socket.socket() as silent:  # accepts connections and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        env = {"GENRE_BENCH_STORE_TIMEOUT_S": "2"}
        for args in (["report"], ["sweep", "--data-dir", str(demo_dir), "--grid", "demo", "--nets", "net5",
                                  "--seeds", "1", "--splits", "track", "--dry-run"],
                     ["predict", str(demo_dir), "--model-uri", "runs:/0123456789abcdef/model"]):
            t0 = time.monotonic()
            r = CliRunner(env=env).invoke(main, [*args, "--tracking-uri", uri])
            assert r.exit_code == 2 and time.monotonic() - t0 < 30, (args, r.output)
            assert r.stderr.strip().splitlines()[-1] == (
                f"error: tracking server {uri} did not answer within 2 s; check --tracking-uri, or set "
                "GENRE_BENCH_STORE_TIMEOUT_S to wait longer"), (args, r.stderr)


def test_a_download_leaves_nothing_in_the_temp_folder_even_when_refused(tmp_store, tmp_path):
    import tempfile

    from genre_models.tracking.models import fetch_net

    good, bad = saved_net5(tmp_path / "good"), saved_net5(tmp_path / "bad")
    (bad / "spec.json").write_text('{"format": "genre-bench-net/1", "net": "net5", "features": []}')
    ids = []
    for folder in (good, bad):
        with mlflow.start_run() as run:
            mlflow.set_tag("net", "net5")
            mlflow.log_artifacts(str(folder), "weights")
        ids.append(run.info.run_id)
    before = set(os.listdir(tempfile.gettempdir()))
    assert fetch_net(f"runs:/{ids[0]}").spec.name == "net5"
    with pytest.raises(ModelError, match="the card says net5 is a None net"):
        fetch_net(f"runs:/{ids[1]}")
    assert set(os.listdir(tempfile.gettempdir())) - before == set()


@pytest.mark.parametrize("content, why", [
    ("1", "from 2 to 4194304"), ("0", "from 2 to"), ("-5", "from 2 to"), ("abc", "whole number"), ("", "whole number"),
    ("99999999999999999999", "whole number"), ("{sleeper}", "not an MLflow server")])
def test_server_stop_signals_only_a_server_it_started_here(content, why, tmp_path, sleeper, monkeypatch):
    """A pid file is a stranger's text: ``1`` would have been ``killpg(1)`` (every process the user can reach)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlflow-server-5999.pid").write_text(content.format(sleeper=sleeper.pid))
    r = CliRunner().invoke(main, ["server", "--port", "5999", "--stop"])
    one_line_error(r, why, "nothing was signalled")
    assert is_alive(sleeper.pid) and (tmp_path / "mlflow-server-5999.pid").exists()


def test_server_stop_refuses_a_linked_pid_file_and_clears_a_stale_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "elsewhere").write_text("1\n")
    (tmp_path / "mlflow-server-5998.pid").symlink_to(tmp_path / "elsewhere")
    one_line_error(CliRunner().invoke(main, ["server", "--port", "5998", "--stop"]), "not a pid file this user wrote")
    done = __import__("subprocess").Popen(["true"])
    done.wait()
    (tmp_path / "mlflow-server-5997.pid").write_text(f"{done.pid}\n")
    r = CliRunner().invoke(main, ["server", "--port", "5997", "--stop"])
    assert r.exit_code == 0 and "was not running" in r.stdout and not (tmp_path / "mlflow-server-5997.pid").exists()


def test_no_report_is_written_through_a_planted_link_and_a_second_leaves_nothing_stale(tmp_store, tmp_path, monkeypatch):
    client = mlflow.MlflowClient()
    exp_id = mlflow.get_experiment_by_name(EXP).experiment_id
    for seed in range(3):
        fake_run(client, exp_id, "net5", seed, 0.5 + 0.05 * seed, stopped_epoch=3)
    monkeypatch.chdir(tmp_path)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "context.csv").write_text("mine")
    folder = tmp_path / "reports" / EXP
    folder.mkdir(parents=True)
    (folder / "report_files").symlink_to(victim, target_is_directory=True)
    write_report(EXP, figures=False)
    assert [p.name for p in victim.iterdir()] == ["context.csv"] and (victim / "context.csv").read_text() == "mine"
    assert not (folder / "report_files").is_symlink() and (folder / "report_files" / "context.csv").is_file()
    (folder / "report_files" / "stale_from_before.csv").write_text("old")
    write_report(EXP, figures=False)
    assert not (folder / "report_files" / "stale_from_before.csv").exists()
    (tmp_path / "elsewhere").mkdir()
    os.rename(tmp_path / "reports", tmp_path / "real-reports")
    (tmp_path / "reports").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(Exception, match="is a symbolic link"):
        write_report(EXP, figures=False)
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_a_store_written_by_a_plain_command_is_its_owners_alone(tmp_path, monkeypatch):
    from genre_models.tracking.setup import setup_tracking

    monkeypatch.chdir(tmp_path)
    setup_tracking(f"sqlite:///{tmp_path / 'mlflow.db'}", "private")
    assert (tmp_path / "mlflow.db").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "mlruns").stat().st_mode & 0o777 == 0o700


def test_an_artifact_store_that_never_answers_costs_the_reports_run_not_minutes(tmp_store, tmp_path, monkeypatch):
    """The experiment's artifact location is a URL that accepts and never answers: the report's
    files stand, its run ends FAILED within the store's deadline (it used to hang over 240 s)."""
    monkeypatch.setenv("GENRE_BENCH_STORE_TIMEOUT_S", "2")
    client = mlflow.MlflowClient()
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        exp_id = client.create_experiment("planted", artifact_location=f"http://127.0.0.1:{silent.getsockname()[1]}/x")
        for seed in range(3):
            fake_run(client, exp_id, "net5", seed, 0.5)
        from genre_models.tracking.logger import MlflowLogger

        t0 = time.monotonic()
        rep = write_report("planted", out=str(tmp_path / "r.md"), figures=False, logger=MlflowLogger())
        assert time.monotonic() - t0 < 60 and Path(rep.path).is_file() and rep.run_id is None


def test_a_sweep_whose_registration_is_refused_or_whose_end_fails_ends_its_parent(demo_dir, tmp_store, tmp_path,
                                                                                  monkeypatch):
    """A colleague squatted ``genre-bench-net5`` on an authenticated server (a 403): the sweep says so in one
    line and finishes; any other error after the points ends the parent FAILED, never RUNNING."""
    from mlflow.exceptions import MlflowException

    from genre_models.sweep.grid import SweepConfig
    from genre_models.sweep.driver import run_sweep

    def refused(*a, **k):
        raise MlflowException("API request to endpoint /api/2.0/mlflow/registered-models/create failed with error "
                              "code 403 != 200. Response body: 'Permission denied'")

    monkeypatch.setattr("genre_models.sweep.register.register_run", refused)
    cfg = SweepConfig(data_dir=str(demo_dir), nets=("net5",), grid="fast", seeds=1, splits=("track",), max_epochs=1,
                      cache_dir=str(tmp_path / "c"), system_metrics=False)
    lines = []
    res = run_sweep(cfg, echo=lambda line, final=False: lines.append(line))
    parent = mlflow.get_run(res.parent_run_id)
    assert parent.info.status == "FINISHED" and "403" in parent.data.tags["registration_refused"]
    assert any(line.startswith("warning: not registered: genre-bench-net5@track: ") and "another user" in line
               for line in lines)
    monkeypatch.setattr("genre_models.tracking.sweeps.SweepRecord.save_views", lambda *a: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        run_sweep(SweepConfig(**{**cfg.__dict__, "seeds": 2}), echo=lambda *a, **k: None)
    (second,) = [r for r in mlflow.search_runs(search_all_experiments=True, output_format="list")
                 if r.data.tags.get("stage") == "sweep" and r.info.run_id != res.parent_run_id]
    assert second.info.status == "FAILED" and "ZeroDivisionError" in second.data.tags["error"]


def test_an_alias_left_on_a_deleted_run_is_refused(tmp_store, tmp_path):
    client = mlflow.MlflowClient()
    with mlflow.start_run() as run:
        mlflow.set_tag("net", "net5")
        mlflow.log_artifacts(str(saved_net5(tmp_path / "w")), "weights")
    client.create_registered_model("genre-bench-net5")
    mv = client.create_model_version("genre-bench-net5", f"runs:/{run.info.run_id}/weights", run_id=run.info.run_id)
    client.set_registered_model_alias("genre-bench-net5", "track", mv.version)
    client.delete_run(run.info.run_id)
    clip = write_wav(tmp_path / "clip.wav", synth_track("rock", 3.0, 0))
    r = CliRunner().invoke(main, ["predict", str(clip), "--model-uri", "models:/genre-bench-net5@track"])
    one_line_error(r, f"run {run.info.run_id} was deleted; its net is not scored")


def test_one_planted_run_of_another_dataset_changes_nothing_but_its_count(tmp_store, tmp_path):
    """The report used to take its dataset from the newest run: one stranger's run then moved
    every real run into "other datasets". Now the most-trained dataset is reported."""
    client = mlflow.MlflowClient()
    exp_id = mlflow.get_experiment_by_name(EXP).experiment_id
    for seed in range(3):
        fake_run(client, exp_id, "net5", seed, 0.5 + 0.05 * seed, stopped_epoch=3, right=5)
        fake_run(client, exp_id, "svm", seed, 0.6, right=6)
    before = write_report(EXP, out=str(tmp_path / "a" / "report.md"), figures=False)
    fake_run(client, exp_id, "net5", 0, 0.99, tags={"dataset": "planted@666"})
    after = write_report(EXP, out=str(tmp_path / "b" / "report.md"), figures=False)
    assert after.n_runs == before.n_runs == 6 and after.notes["dataset"] == "gtzan@abc"
    assert after.notes["other_datasets"] == {"planted@666": 1} and before.notes["other_datasets"] == {}
    strip = lambda text: [line for line in text.splitlines() if not line.startswith(("- **Date", "- **Note:** the dataset"))]
    assert strip(after.text) == strip(before.text)
    assert ("the dataset is the one 6 of the 7 finished training runs were trained on; runs on other datasets left "
            "out: 1 on planted@666") in after.text
    chosen = write_report(EXP, out=str(tmp_path / "c" / "report.md"), figures=False, dataset="666")  # the digest alone
    assert chosen.n_runs == 1 and chosen.notes["other_datasets"] == {"gtzan@abc": 6}
    r = CliRunner().invoke(main, ["report", "--dataset", "nope@1", "--out", str(tmp_path / "d" / "r.md")])
    one_line_error(r, "no finished training run of dataset 'nope@1'", "gtzan@abc (6 runs)")
