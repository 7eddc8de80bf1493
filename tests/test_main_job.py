"""The README's main job (`benchmark sweep --demo`), run once: every stage, the Model Registry,
predict through an alias, the report's files, and the runs view in a real browser."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.parse

import mlflow
import pytest
from click.testing import CliRunner

from benchmark.cli import main
from genre_models.models.registry import NETS
from genre_models.tracking.model_registry import logged_model_id

from conftest import command_env, cores, docs_screenshot, tagged_runs

EXP = "gtzan-genre-benchmark"


def _cells(md_row: str) -> list[str]:
    return [c.strip() for c in md_row.strip().strip("|").split("|")]


#: The README's main job runs here as written, at the smallest scale that still has every stage:
#: one seed, one split, two epochs (as written it is 84 points, about 10 minutes on a 2-core CPU).
SCALE = {"sweep": ["--seeds", "1", "--splits", "track", "--max-epochs", "2"]}


def readme_main_job() -> list[list[str]]:
    """The genre-bench commands the README's first set-up command chains (the install left out)."""
    from pathlib import Path

    from test_docs import ours, shell_blocks, shell_commands

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    setup = readme.split("## Set up a fresh machine", 1)[1]
    first = shell_blocks(setup)[0]
    return [w for w in (ours(c) for c in shell_commands(f"```bash\n{first}```\n")) if w]


def readme_predict() -> list[str]:
    """The README's ``benchmark predict`` command (its "What you get" table), which works as written after the main job."""
    from pathlib import Path

    from test_docs import ours, prose_commands

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    return next(w for w in (ours(c) for c in prose_commands(readme)) if w and w[:2] == ["benchmark", "predict"])


def test_the_main_job_test_runs_the_readmes_commands():
    assert readme_main_job() == [["benchmark", "sweep", "--demo"], ["benchmark", "report"]]
    assert readme_predict()[2:] == ["demo-data/Data/genres_original/rock", "--model-uri", "models:/genre-bench-net5@track"]


@pytest.fixture(scope="module")
def demo_sweep(tmp_path_factory):
    """The README's main job (its commands, read from the README, at ``SCALE``), run once for the
    tests below, in a folder and store of its own: (folder, tracking URI, the commands' stdout)."""
    root = tmp_path_factory.mktemp("main-job")
    uri = f"sqlite:///{root}/mlflow.db"
    env = command_env(uri, root / "cache")
    out = ""
    with cores(exclusive=False):  # a fixture's work is no test's: it takes the cores' shared lock itself
        for words in readme_main_job():
            done = subprocess.run([sys.executable, "-m", "benchmark", *words[1:], *SCALE.get(words[1], [])],
                                  cwd=root, env=env, capture_output=True, text=True, timeout=900)
            assert done.returncode == 0, done.stderr[-3000:]
            out += done.stdout
    return root, uri, out


@pytest.mark.slow
def test_demo_sweep_runs_every_stage_registers_and_writes_the_report(demo_sweep, monkeypatch):
    """Every stage, the registry, predict through the registry, and the report's files."""
    root, uri, stdout = demo_sweep
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("GENRE_BENCH_CACHE", str(root / "cache"))
    mlflow.set_tracking_uri(uri)
    assert (root / "demo-data" / "SYNTHETIC.json").is_file()
    assert "10 points, 10 run, 0 skipped" in stdout  # net1-4 at one budget (2 epochs), net5, the GAN, net6, net5-raw, svm, logreg
    *_, path_line, view_line = stdout.strip().splitlines()  # what `benchmark report` says last: what a newcomer copies
    assert path_line == f"report: reports/{EXP}/report.md (open reports/{EXP}/report.html in a browser)"
    assert view_line == (f"nets side by side on `track`: run `mlflow ui --backend-store-uri sqlite:///{root}/mlflow.db "
                         "--port 5000`, then open http://127.0.0.1:5000/#/experiments/1/runs?viewStateShareKey="
                         "genre-bench-nets-track&compareRunsMode=CHART")
    report = root / "reports" / EXP / "report.md"
    text = report.read_text()
    assert "synthetic demo data, not GTZAN" in text
    for net in NETS:
        row = next(line for line in text.splitlines() if line.startswith(f"| {net} | ") and "(n=1)" in line)
        assert " / " in _cells(row)[1]  # test tracks / samples
    files = report.parent / "report_files"
    for name in ("headline.png", "confusion_track.png", "val_curves_track.png", "gan_losses.png", "table2_track.tex"):
        assert (files / name).is_file(), name
    assert report.with_suffix(".html").read_text().count("data:image/png;base64,") == 4
    train = tagged_runs(stage="train")
    assert len(train) == 9 and all(r.info.status == "FINISHED" for r in train)
    r5 = next(r for r in train if r.data.tags["net"] == "net5")
    assert "system/cpu_utilization_percentage" in r5.data.metrics  # on by default in sweeps
    assert r5.data.tags["mlflow.note.content"].startswith("net5 (LSTM 512-256") and "synthetic" in r5.data.tags["mlflow.note.content"]
    # The registry: one version per net and split, the split as alias, chosen on validation.
    client = mlflow.MlflowClient()
    for net in NETS:
        mv = client.get_model_version_by_alias(f"genre-bench-{net}", "track")
        assert str(mv.version) == "1" and client.get_run(mv.run_id).data.tags["net"] == net
        assert f"registered models:/genre-bench-{net}@track (version 1)" in stdout
    # Test metrics are linked to the model and to the dataset, whose digest is the dataset tag's.
    mv5 = client.get_model_version_by_alias("genre-bench-net5", "track")
    linked = {m.key: m for m in client.get_logged_model(logged_model_id(client.get_run(mv5.run_id))).metrics}
    name, digest = client.get_run(mv5.run_id).data.tags["dataset"].split("@")
    assert (linked["test_accuracy"].dataset_name, linked["test_accuracy"].dataset_digest) == (name, digest)
    clip = str(next((root / "demo-data").rglob("rock.00003.wav")))
    via_alias = CliRunner().invoke(main, ["predict", clip, "--model-uri", "models:/genre-bench-net5@track", "--json"])
    via_run = CliRunner().invoke(main, ["predict", clip, "--model-uri", f"runs:/{mv5.run_id}/model", "--json"])
    assert via_alias.exit_code == 0 and via_run.exit_code == 0, via_alias.output + via_run.output
    assert json.loads(via_alias.stdout)["clips"][0]["top"][0] == json.loads(via_run.stdout)["clips"][0]["top"][0]
    svm = CliRunner().invoke(main, ["predict", clip, "--model-uri", "models:/genre-bench-svm@track", "--json"])
    assert svm.exit_code == 0 and json.loads(svm.stdout)["net"] == "svm", svm.output  # a baseline through its alias
    as_written = CliRunner().invoke(main, readme_predict()[1:])  # the README's own predict line, in the main job's folder
    n_rock = len(list((root / "demo-data" / "Data" / "genres_original" / "rock").glob("*.wav")))
    assert as_written.exit_code == 0 and n_rock >= 5, as_written.output
    assert f"{n_rock} clip(s) scored, 0 skipped" in as_written.stdout and as_written.stdout.count(".wav: ") == n_rock
    again = CliRunner().invoke(main, ["sweep", "--demo", "--seeds", "1", "--splits", "track", "--max-epochs", "2",
                                      "--no-system-metrics"])
    assert again.exit_code == 0 and "10 skipped" in again.stdout and "(version 1, unchanged)" in again.stdout
    assert len(client.search_model_versions("name = 'genre-bench-net5'")) == 1  # no version twice
    gan = tagged_runs(stage="gan")
    assert len(gan) == 1 and gan[0].data.tags["mlflow.parentRunId"]


SHOT = docs_screenshot()
CHROMIUM = SHOT.chromium_path()


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian: apt-get install chromium; .ci/run installs it)")
def test_the_readme_runs_view_url_shows_the_sweeps_runs_in_a_browser(demo_sweep, tmp_path):
    """The README's URLs, in a real (headless) browser, against `mlflow server` on the demo store:
    the experiment opens on its runs table (not the GenAI traces page) and the sweep's runs are
    there; the view the sweep saved shows the nets side by side, grouped by net, in charts."""
    from genre_models.tracking.server import LocalServer

    root, uri, stdout = demo_sweep
    exp = mlflow.MlflowClient(uri).get_experiment_by_name(EXP)
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    runs_view = f"/#/experiments/{exp.experiment_id}/runs?searchFilter=" + urllib.parse.quote("tags.stage = 'train'")
    nets_view = f"/#/experiments/{exp.experiment_id}/runs?viewStateShareKey=genre-bench-nets-track&compareRunsMode=CHART"
    assert f"view: nets side by side on `track`: <the MLflow UI's address>{nets_view}" in stdout
    with LocalServer(uri, tmp_path / "ui") as server:
        page = SHOT.chromium(server.uri + runs_view, tmp_path / "profile", "--dump-dom")
        charts = SHOT.chromium(server.uri + nets_view, tmp_path / "profile2", "--dump-dom", budget_ms=60000)
    assert charts.returncode == 0, charts.stderr[-2000:]
    assert "Test scores by net" in charts.stdout and "Group by: net" in charts.stdout
    assert all(f"net: {net}, epochs: " in charts.stdout for net in NETS)  # a group, a bar, per net and epoch budget
    assert page.returncode == 0, page.stderr[-2000:]
    dom = page.stdout
    parent = mlflow.MlflowClient(uri).search_runs([exp.experiment_id], "tags.stage = 'sweep'")[0]
    assert "Training runs" in dom and parent.info.run_name in dom  # the runs table, the sweep's parent row
    shown = re.search(r"(\d+)(?:<[^>]*>|\s)*matching runs", dom)
    assert shown and int(shown.group(1)) == 9 + 1  # the 9 train runs the filter matches, under their parent
