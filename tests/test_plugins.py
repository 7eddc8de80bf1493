"""Your own net under the suite's protocol: plugins by entry point and by package.module:factory,
the example plugin end to end, and each way a plugin can be broken (one line, no run, no data read)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from click.testing import CliRunner

from benchmark.cli import main
from conftest import cores
from genre_models.models import plugins
from genre_models.models.registry import get_net

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "custom_net"

BAD = '''
from genre_models.models.registry import NetSpec, get_net
import torch

def _spec(**kw):
    base = dict(name="mine", summary="test net", input_kind="mfcc", build=lambda s, h: torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(44 * 13, 10)), optimizer="adam", lr=1e-3, epochs=2, early_stopping=False)
    return NetSpec(**{**base, **kw})

def good():
    return _spec()

def raises():
    raise RuntimeError("weights file missing")

def wrong_shape():
    return _spec(build=lambda s, h: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(44 * 13, 7)))

def fails_forward():
    return _spec(build=lambda s, h: torch.nn.Linear(3, 10))

def not_a_spec():
    return {"name": "mine"}

def video():
    return _spec(input_kind="video")

def takes_net5():
    return _spec(name="net5")

def plays_gan():
    return _spec(uses_gan=True)
'''

CASES = {
    "raises": "the factory raised RuntimeError: weights file missing",
    "wrong_shape": "the model turns a mfcc input (2, 44, 13) into (2, 7), not (2, 10) logits",
    "fails_forward": "the model fails on a mfcc input (2, 44, 13): RuntimeError: mat1 and mat2 shapes cannot be multiplied",
    "not_a_spec": "the factory returned a dict, not a genre_models.models.spec.NetSpec",
    "video": "input kind 'video' is not one genre-bench has (image, mfcc, raw, stats)",
    "takes_net5": "name 'net5' is a built-in net's",
    "plays_gan": "uses_gan and scores_gan are the study's roles (net6, net5), not a plugin's",
    "missing": "badplugins has no attribute 'missing'",
}


@pytest.fixture
def bad_plugins(tmp_path, monkeypatch):
    (tmp_path / "plug").mkdir()
    (tmp_path / "plug" / "badplugins.py").write_text(BAD)
    (tmp_path / "plug" / "brokenimport.py").write_text("import a_package_nobody_installed\n")
    monkeypatch.syspath_prepend(str(tmp_path / "plug"))
    monkeypatch.delenv(plugins.REFS_ENV, raising=False)
    monkeypatch.setattr(plugins, "_loaded", {})
    return tmp_path


@pytest.mark.parametrize("case", [*CASES, "brokenimport"])
@pytest.mark.parametrize("command", ["train", "sweep"])
def test_a_bad_plugin_is_one_line_before_any_data_or_run(case, command, bad_plugins, demo_dir):
    ref = "brokenimport:factory" if case == "brokenimport" else f"badplugins:{case}"
    cache, store = bad_plugins / "cache", bad_plugins / "m.db"
    common = ["--data-dir", str(demo_dir), "--cache-dir", str(cache), "--tracking-uri", f"sqlite:///{store}"]
    args = ["train", "--net", ref, *common] if command == "train" else ["sweep", "--nets", f"net5,{ref}", *common]
    res = CliRunner().invoke(main, args)
    want = ("cannot import brokenimport: ModuleNotFoundError: No module named 'a_package_nobody_installed'"
            if case == "brokenimport" else CASES[case])
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: plugin {ref}: ") and want in lines[0], res.output
    assert not cache.exists() and not store.exists()  # no feature extracted, no store, no run


def test_a_plugin_by_reference_is_known_by_its_name_here_and_in_child_processes(bad_plugins):
    spec = get_net("badplugins:good")
    assert (spec.name, spec.origin, spec.ref, spec.in_study) == ("mine", "module badplugins:good", "badplugins:good", False)
    assert get_net("mine") is spec and plugins.loaded_refs() == {"mine": "badplugins:good"}
    env = {**os.environ, "PYTHONPATH": f"{bad_plugins / 'plug'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    child = subprocess.run([sys.executable, "-c", "from genre_models.models.registry import get_net; "
                            "print(get_net('mine').origin)"], env=env, capture_output=True, text=True, check=True)
    assert child.stdout.strip() == "module badplugins:good"


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory):
    """examples/custom_net, pip-installed (no deps, no build isolation: offline) into a folder of its own."""
    site = tmp_path_factory.mktemp("site")
    with cores(exclusive=False):
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                        "--target", str(site), str(EXAMPLE)], check=True, capture_output=True, text=True)
    assert (site / "genre_bench_crnn" / "__init__.py").is_file()
    return site


def _cli(*args: str):
    res = CliRunner().invoke(main, list(args))
    assert res.exit_code == 0, res.output
    return res


@pytest.mark.slow
def test_the_example_plugin_trains_sweeps_reports_registers_and_predicts(installed_example, demo_dir, tmp_path,
                                                                         monkeypatch):
    monkeypatch.syspath_prepend(str(installed_example))  # as if installed here: its entry point is visible
    monkeypatch.setattr(plugins, "_loaded", {})
    monkeypatch.delenv(plugins.REFS_ENV, raising=False)
    store = f"sqlite:///{tmp_path}/m.db"
    common = ["--data-dir", str(demo_dir), "--cache-dir", str(tmp_path / "c"), "--tracking-uri", store]
    (line,) = [ln for ln in _cli("nets").stdout.splitlines() if ln.startswith("crnn ")]
    assert "[entry point genre_bench_crnn:crnn (genre-bench-crnn 0.1.0)]" in line and "mfcc" in line

    assert _cli("train", "--net", "crnn", "--epochs", "2", "--experiment", "one", *common).stdout.startswith("crnn: test_accuracy ")
    swept = _cli("sweep", "--grid", "demo", "--nets", "net5,crnn", "--seeds", "1", "--splits", "track", "--max-epochs", "2",
                 "--no-system-metrics", "--experiment", "two", *common)
    assert "registered models:/genre-bench-crnn@track (version 1)" in swept.stdout

    mlflow.set_tracking_uri(store)
    runs = mlflow.search_runs(experiment_names=["two"], filter_string="tags.stage = 'train'", output_format="list")
    assert sorted(r.data.tags["net"] for r in runs) == ["crnn", "net5"]
    crnn = next(r for r in runs if r.data.tags["net"] == "crnn")
    assert crnn.data.tags["net_origin"] == "entry point genre_bench_crnn:crnn (genre-bench-crnn 0.1.0)"
    assert crnn.data.params["optimizer"] == "adam" and crnn.data.params["lr"] == "0.001"
    version = mlflow.MlflowClient().get_model_version_by_alias("genre-bench-crnn", "track")
    assert version.run_id == crnn.info.run_id

    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(installed_example)])  # the report needs no plugin
    _cli("report", "--tracking-uri", store, "--experiment", "two", "--no-figures", "--out", str(tmp_path / "r" / "report.md"))
    md = (tmp_path / "r" / "report.md").read_text()
    row = next(ln for ln in md.splitlines() if ln.startswith("| crnn (plugin) |"))
    assert f"{crnn.data.metrics['test_accuracy']:.3f}" in row  # its own row, its own number
    assert "(plugin): not part of the study" in md and "crnn − net5 in accuracy over segments" in md

    clip = next((demo_dir / "Data" / "genres_original" / "jazz").glob("*.wav"))
    out = json.loads(_cli("predict", str(clip), "--model-uri", "models:/genre-bench-crnn@track", "--json",
                          "--tracking-uri", store).stdout)
    (scored,) = out["clips"]
    assert out["net"] == "crnn" and scored["n_inputs"] == 4 and abs(sum(scored["probabilities"].values()) - 1) < 1e-4


@pytest.mark.slow
def test_the_example_by_reference_through_mlflow_run(demo_dir, tmp_path):
    """The generic entry point: ``mlflow run . -e train -P net=package.module:factory``."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
           "PYTHONPATH": f"{EXAMPLE}{os.pathsep}{ROOT}", "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/m.db",
           "GENRE_BENCH_CACHE": str(tmp_path / "c")}
    env.pop(plugins.REFS_ENV, None)
    res = subprocess.run(["mlflow", "run", str(ROOT), "-e", "train", "--env-manager", "local", "--experiment-name", "e",
                          "-P", "net=genre_bench_crnn:crnn", "-P", f"data_dir={demo_dir}", "-P", "epochs=1"],
                         env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-2000:]
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    (run,) = mlflow.search_runs(experiment_names=["e"], filter_string="tags.stage = 'train'", output_format="list")
    assert run.data.tags["net"] == "crnn" and run.data.tags["net_origin"] == "module genre_bench_crnn:crnn"
    params = run.data.params  # MLflow logs the entry point's values; where ours differ they are resolved.*
    assert params["net"] == "genre_bench_crnn:crnn" and params["resolved.net"] == "crnn"
    assert params["epochs"] == "1" and params["lr"] == "auto" and params["resolved.lr"] == "0.001"
