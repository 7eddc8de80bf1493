"""MLproject: generated from the registry, accepted by the CLI, and runnable with `mlflow run`."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml

from benchmark.cli import main
from benchmark.cli.train import train_config
from benchmark.mlproject import render
from genre_models.models.registry import NETS
from genre_models.models.registry import resolve_config

ROOT = Path(__file__).resolve().parent.parent
PROJECT = yaml.safe_load((ROOT / "MLproject").read_text())


def test_mlproject_is_rendered_from_the_registry():
    assert (ROOT / "MLproject").read_text() == render()
    assert set(PROJECT["entry_points"]) == {"preprocess", "gan", "train", *NETS}


def _parse(entry: str, values: dict):
    """Format the entry point's command as MLflow would and parse it with the real click command."""
    ep = PROJECT["entry_points"][entry]
    params = {k: v["default"] for k, v in ep["parameters"].items()} | values
    argv = shlex.split(ep["command"].format(**params))
    assert argv[:3] == ["python", "-m", "benchmark"]
    sub = main.commands[argv[3]]
    return sub.make_context(argv[3], argv[4:])


@pytest.mark.parametrize("entry", ["preprocess", "gan", "train", *NETS])
def test_every_parameter_is_accepted_by_the_cli(entry):
    ctx = _parse(entry, {"data_dir": "somewhere"})
    ep = PROJECT["entry_points"][entry]
    for name in ep["parameters"]:
        assert name in ctx.params, f"{entry}: MLproject parameter {name} is not a CLI option"


@pytest.mark.parametrize("net", list(NETS))
def test_mlproject_defaults_equal_the_cli_defaults(net):
    ctx = main.commands["train"].make_context("train", ["--net", net, "--data-dir", "x"])
    params = {k: v for k, v in ctx.params.items() if k not in ("tracking_uri", "experiment", "system_metrics")}
    cfg = resolve_config(train_config(**params))
    resolved = {
        "image_source": cfg.features.image_source, "image_size": cfg.features.image_size, "jobs": cfg.jobs,
        "epochs": cfg.epochs, "early_stopping": ctx.params["early_stopping"], "patience": cfg.patience,
        "min_delta": cfg.min_delta, "batch_size": cfg.batch_size, "lr": cfg.lr, "seed": cfg.seed, "split": cfg.split,
        "fold": cfg.fold, "folds": cfg.folds, "device": cfg.device, "precision": cfg.precision, "num_workers": cfg.num_workers, "head": cfg.head,
    }
    if NETS[net].uses_gan:
        resolved.update({f"gan_{k}": getattr(cfg.gan, k) for k in ("steps", "batch_size", "d", "mode", "per_genre", "precision")})
        resolved["gan_run_id"] = "none"
        assert cfg.gan_run_id == ""  # "none" in MLproject means: find or train a matching GAN
    defaults = {k: v["default"] for k, v in PROJECT["entry_points"][net]["parameters"].items() if k != "data_dir"}
    if NETS[net].family == "classical":  # fitted once: its entry point gives the data and the split alone
        assert set(defaults) == {"image_source", "image_size", "jobs", "seed", "split", "fold", "folds"}
        resolved = {k: resolved[k] for k in defaults}
    assert defaults == resolved


def test_the_generic_train_entry_point_leaves_the_nets_own_settings_to_the_net():
    ctx = _parse("train", {"data_dir": "x", "net": "net2"})
    cfg = resolve_config(train_config(**{k: v for k, v in ctx.params.items()
                                          if k not in ("tracking_uri", "experiment", "system_metrics")}))
    assert (cfg.net, cfg.epochs, cfg.batch_size, cfg.lr, cfg.early_stopping) == ("net2", 50, 32, 1e-4, False)
    ctx = _parse("train", {"data_dir": "x", "net": "net5", "epochs": "3", "lr": "0.01"})
    assert (ctx.params["epochs"], ctx.params["lr"], ctx.params["patience"]) == (3, 0.01, None)


def test_gan_entry_point_defaults_equal_the_cli_defaults():
    ctx = main.commands["gan"].make_context("gan", ["--data-dir", "x"])
    defaults = {k: v["default"] for k, v in PROJECT["entry_points"]["gan"]["parameters"].items() if k != "data_dir"}
    assert defaults == {k: ctx.params[k] for k in defaults}
    assert defaults["d"] == 64 and defaults["per_genre"] == 2798 and defaults["mode"] == "conditional"


def _mlflow_run(entry: str, params: dict, tmp_path: Path, store: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "mlflow", "run", str(ROOT), "-e", entry, "--env-manager", "local",
           "--experiment-name", "gtzan-genre-benchmark"]
    for k, v in params.items():
        cmd += ["-P", f"{k}={v}"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": store, "GENRE_BENCH_CACHE": str(tmp_path / "cache"), "CI": "true"}
    env.pop("MLFLOW_RUN_ID", None)
    env.pop("MLFLOW_EXPERIMENT_ID", None)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_mlflow_run_preprocess_and_net2(demo_dir, tmp_store, tmp_path):
    pre = _mlflow_run("preprocess", {"data_dir": demo_dir, "image_size": 32}, tmp_path, tmp_store)
    assert pre.returncode == 0, pre.stderr[-3000:]
    net = _mlflow_run("net2", {"data_dir": demo_dir, "epochs": 2, "image_size": 32}, tmp_path, tmp_store)
    assert net.returncode == 0, net.stderr[-3000:]
    runs = mlflow.search_runs(experiment_names=["gtzan-genre-benchmark"], output_format="list")
    by_stage = {r.data.tags.get("stage"): r for r in runs}
    assert set(by_stage) == {"preprocess", "train"} and all(r.info.status == "FINISHED" for r in runs)
    assert by_stage["preprocess"].data.params["tracks_total"] == "50"
    train_run = by_stage["train"]
    assert train_run.info.run_name == "net2-e2-track-s0"
    assert train_run.data.params["early_stopping"] == "auto"  # MLflow's raw entry-point value...
    assert train_run.data.params["resolved.early_stopping"] == "False"  # ...and what actually ran
    assert {"test_accuracy", "test_track_accuracy", "val_accuracy", "best_epoch"} <= set(train_run.data.metrics)
    assert "reusing feature cache" in net.stderr  # the preprocess entry point's cache was reused
    # A classical baseline is an entry point like any net: fitted once, then it classifies a clip.
    svm = _mlflow_run("svm", {"data_dir": demo_dir, "split": "kfold", "folds": 5, "fold": 2}, tmp_path, tmp_store)
    assert svm.returncode == 0, svm.stderr[-3000:]
    (run,) = mlflow.search_runs(experiment_names=["gtzan-genre-benchmark"], filter_string="tags.net = 'svm'",
                                output_format="list")
    assert run.info.run_name == "svm-kfold-2of5-s0" and run.info.status == "FINISHED"
    assert run.data.tags["net_family"] == "classical" and {"chosen.C", "chosen.gamma"} <= set(run.data.params)
    from click.testing import CliRunner

    from benchmark.cli import main

    clip = next((demo_dir / "Data" / "genres_original" / "rock").glob("*.wav"))
    out = CliRunner().invoke(main, ["predict", str(clip), "--model-uri", f"runs:/{run.info.run_id}/model", "--json"])
    assert out.exit_code == 0, out.output
    scored = __import__("json").loads(out.stdout)
    assert scored["net"] == "svm" and scored["input_kind"] == "stats" and scored["clips"][0]["n_inputs"] == 4


@pytest.mark.slow
def test_mlflow_run_net6_trains_its_gan_first_then_the_gan_entry_point_resumes_it(demo_dir, tmp_store, tmp_path):
    gan = {"gan_steps": 2, "gan_d": 2, "gan_batch_size": 4, "gan_per_genre": 4}
    net6 = _mlflow_run("net6", {"data_dir": demo_dir, "epochs": 2, **gan}, tmp_path, tmp_store)
    assert net6.returncode == 0, net6.stderr[-3000:]
    runs = mlflow.search_runs(experiment_names=["gtzan-genre-benchmark"], output_format="list")
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
    by_stage = {r.data.tags["stage"]: r for r in runs}
    gan_run, net_run = by_stage["gan"], by_stage["train"]
    assert net_run.data.tags["gan_run_id"] == gan_run.info.run_id != net_run.info.run_id  # its own run, linked
    p = net_run.data.params
    assert p["n_generated"] == "40" and int(p["n_train"]) == int(p["n_train_real"]) + 40
    assert gan_run.data.params["n_generated"] == "40" and "gen_quality_accuracy" in gan_run.data.metrics

    again = _mlflow_run("gan", {"data_dir": demo_dir, "steps": 2, "d": 2, "batch_size": 4, "per_genre": 4,
                                "preview_every": 1, "quality_epochs": 2}, tmp_path, tmp_store)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resumed from step 2" in again.stdout
    runs = mlflow.search_runs(experiment_names=["gtzan-genre-benchmark"], filter_string="tags.stage = 'gan'",
                              output_format="list")
    assert len(runs) == 2 and {r.data.tags["gan_key"] for r in runs} == {gan_run.data.tags["gan_key"]}
    client = mlflow.MlflowClient()
    newest = max(runs, key=lambda r: r.info.start_time)
    assert {a.path for a in client.list_artifacts(newest.info.run_id, "previews")} >= {"previews/step_0000002"}
