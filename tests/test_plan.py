"""A sweep states its cost before it starts: `--dry-run` (the plan, what the store holds, the
projected wall time from a probe here), the one line a real sweep prints and logs, what would
make a long sweep feasible, and `--max-hours`. And the perf figures of predict and the report."""

from __future__ import annotations

import json
import os

import mlflow
import pytest
from click.testing import CliRunner

from benchmark.cli import main
from genre_models.sweep.grid import SweepConfig, build_grid
from genre_models.sweep.cost.alternatives import alternatives
from genre_models.sweep.cost.model import Sizes, project
from genre_models.sweep.cost.words import duration

SMALL = ["--grid", "demo", "--nets", "net1,net5,svm", "--seeds", "1", "--splits", "track", "--max-epochs", "2"]


@pytest.mark.slow
def test_the_dry_run_shows_the_plan_and_its_cost_and_a_real_sweep_logs_the_projection(demo_dir, tmp_path):
    uri = f"sqlite:///{tmp_path}/m.db"
    args = ["sweep", "--data-dir", str(demo_dir), *SMALL, "--tracking-uri", uri, "--cache-dir", str(tmp_path / "c")]
    plan = CliRunner().invoke(main, [*args, "--dry-run"])
    assert plan.exit_code == 0, plan.output
    lines = plan.stdout.splitlines()
    assert lines[0].startswith("plan: grid demo, 3 points on ") and "0 already in the store" in lines[0]
    assert {ln.strip().split("  ")[0] for ln in lines[1:4]} == {"[todo] net5 e2 track s0", "[todo] net1 e2 track s0",
                                                              "[todo] svm track s0"}
    header = next(ln for ln in lines if ln.startswith("stage "))
    assert "seconds from" in header and "epochs from" in header and "minutes" in header
    assert any(ln.startswith("wall time, --jobs 1") for ln in lines)
    assert lines[-1].startswith("cost: 3 points projected to take ") and "on this CPU (--jobs 1" in lines[-1]
    assert not (tmp_path / "m.db").exists() and not (tmp_path / "c").exists()  # nothing created, nothing extracted
    as_json = json.loads(CliRunner().invoke(main, [*args, "--dry-run", "--json"]).stdout)
    assert [p["done"] for p in as_json["points"]] == [False] * 3 and as_json["cost"]["makespan_s"] > 0
    real = CliRunner().invoke(main, [*args, "--no-register", "--no-system-metrics"])
    assert real.exit_code == 0, real.output
    cost = next(ln for ln in real.stdout.splitlines() if ln.startswith("cost: "))
    assert cost.startswith("cost: 3 points projected to take ")
    client = mlflow.MlflowClient(uri)
    parent = client.search_runs([client.get_experiment_by_name("gtzan-genre-benchmark").experiment_id],
                                "tags.stage = 'sweep'")[0]
    m = parent.data.metrics
    assert m["projected_seconds"] > 0
    assert m["real_over_projected"] == pytest.approx(m["projected_span_seconds"] / m["projected_seconds"])
    again = CliRunner().invoke(main, [*args, "--dry-run"])
    assert "3 already in the store (a resume skips them), 0 to run" in again.stdout and "cost:" not in again.stdout
    assert all("[done]" in ln for ln in again.stdout.splitlines()[1:4])


def test_max_hours_stops_a_sweep_before_it_makes_any_run(demo_dir, tmp_path):
    uri = f"sqlite:///{tmp_path}/m.db"
    res = CliRunner().invoke(main, ["sweep", "--data-dir", str(demo_dir), *SMALL, "--max-hours", "0.00001",
                                    "--tracking-uri", uri, "--cache-dir", str(tmp_path / "c")])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert res.stderr.strip().splitlines()[-1].startswith("error: the sweep is projected to take ")
    assert "over --max-hours 1e-05; nothing was run" in res.stderr
    runs = mlflow.MlflowClient(uri).search_runs([mlflow.MlflowClient(uri).get_experiment_by_name(
        "gtzan-genre-benchmark").experiment_id])
    assert runs == []  # not even the parent


def _rates(per_s: float) -> dict:
    net = {"batch": 32, "probe_batch": 32, "train_samples_per_s": per_s, "eval_samples_per_s": 3 * per_s}
    return {"nets": {"net5": net, "net6": net}, "classical": {},
            "gan": {"d": 16, "batch": 32, "probe_batch": 4, "scaled_from_probe": True, "steps_per_s": 0.002,
                    "clips_per_s_generated": 50.0},
            "preprocess": {"seconds_per_clip": 0.1, "mfcc_seconds_per_segment": 0.001}}


def test_a_sweep_over_a_day_names_what_would_make_it_feasible_each_with_its_time():
    """Rates as slow as a CPU's for the WaveGAN: the k-fold sweep projects to days, and each
    alternative (a GPU at the H200's measured rates, no WaveGAN, fewer seeds or folds, fewer
    epochs) to less."""
    import torch

    cfg = SweepConfig(data_dir="x", grid="fast", nets=("net5", "net6"), seeds=3, splits=("kfold",), folds=10)
    sizes = Sizes()
    base = project(cfg, _rates(50.0), sizes, 1, True, 2, build_grid(cfg))
    assert base.hours > 24 and len(base.points) == 3 * 10 * 3
    found = dict(alternatives(cfg, _rates(50.0), sizes, torch.device("cpu"), "fp32", 2))
    assert set(found) == {"a GPU (one H200 at the rates measured on 2026-11-26, docs/performance.md)",
                          "--nets net5 (no net6, so no WaveGAN)", "--seeds 1", "--folds 5"}  # not --max-epochs 20:
    # the early-stopping nets are projected to stop at the prior's 18 epochs, under it
    assert all(s < base.makespan_s for s in found.values()), found
    assert found["--seeds 1"] == pytest.approx(base.makespan_s / 3, rel=0.01)  # three times fewer points of each kind
    assert duration(40) == "40 s" and duration(600) == "10 min" and duration(3 * 3600) == "3.0 h"
    assert duration(105 * 86400) == "105 days"


@pytest.mark.slow
def test_perf_predict_and_perf_report_measure_side_by_side(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pred = CliRunner().invoke(main, ["perf", "predict", "--clips", "4", "--seconds", "3", "--repeats", "1"])
    assert pred.exit_code == 0, pred.output
    p = json.loads(pred.stdout)
    assert p["clips"] == 4 and p["one_clip_s"] > 0 and p["many_over_one"] == pytest.approx(p["4_clips_s"] / p["one_clip_s"], rel=0.02)
    rep = CliRunner().invoke(main, ["perf", "report", "--runs", "30", "--repeats", "1", "--no-figures"])
    assert rep.exit_code == 0, rep.output
    r = json.loads(rep.stdout)
    assert r["runs"] == r["report_runs"] == 30 and r["report_s"] > 0 and r["search_runs_s"] > 0
    assert not os.path.exists("reports")  # its reports go to a temporary folder


def test_the_dry_run_turns_the_draws_a_claim_needs_into_hours(demo_dir, tmp_path):
    """Once the store holds runs of the sweep's nets on its dataset, the dry run says what they
    decide now and, for a claim not decided, the draws it needs with their time here and on a GPU."""
    import numpy as np

    from conftest import fake_run
    from genre_models.data.discovery import dataset_digest, discover

    uri = f"sqlite:///{tmp_path}/m.db"
    mlflow.set_tracking_uri(uri)
    exp_id = mlflow.create_experiment("gtzan-genre-benchmark")
    client = mlflow.MlflowClient(uri)
    digest = dataset_digest(discover(str(demo_dir)))
    rng = np.random.default_rng(0)
    for s in range(3):  # a small, noisy CNN gain: not decided at 3 seeds
        for net, acc in (("net1", 0.40), ("net2", 0.43)):
            fake_run(client, exp_id, net, s, acc + rng.normal(0, 0.12), epochs=2, params={"n_train": 350},
                     tags={"dataset": f"demo@{digest}"})
    args = ["sweep", "--data-dir", str(demo_dir), "--grid", "demo", "--nets", "net1,net2", "--seeds", "4",
            "--splits", "track", "--max-epochs", "2", "--tracking-uri", uri, "--cache-dir", str(tmp_path / "c"),
            "--dry-run"]
    plan = CliRunner().invoke(main, args)
    assert plan.exit_code == 0, plan.output
    block = plan.stdout.split("to a decision (from the store's 6 finished training runs on demo@")[1].splitlines()
    line = next(ln for ln in block if ln.startswith("  `track` CNNs beat the fully connected net: "))
    assert "tested without" not in line and " draws (" in line and " here and about " in line and "on one H200" in line
    as_json = json.loads(CliRunner().invoke(main, [*args, "--json"]).stdout)
    assert any(d.startswith("  `track` CNNs beat the fully connected net: ") for d in as_json["decisions"])


def _planted(kind: str, n_mfcc: int = 0):
    """A planted net: ``blind`` ignores its input (one learned bias per genre: one genre, at chance);
    ``sharp`` reads the mean of a segment's MFCCs, standardised, with one linear layer, which tells
    the synthetic genres' timbres apart within a few epochs."""
    import torch
    from torch import nn

    class Blind(nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = nn.Parameter(torch.zeros(10))

        def forward(self, x):  # (B, ...) -> (B, 10), whatever x holds
            return self.bias.expand(x.shape[0], 10)

    class Sharp(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm, self.out = nn.BatchNorm1d(n_mfcc), nn.Linear(n_mfcc, 10)

        def forward(self, x):  # (B, frames, n_mfcc) -> (B, 10)
            return self.out(self.norm(x.mean(1)))

    return Blind() if kind == "blind" else Sharp()


@pytest.mark.slow
def test_until_decided_stops_early_on_a_planted_effect_records_every_look_and_resumes(demo_dir, tmp_path, monkeypatch):
    """A planted effect: net2 made blind (chance), net5 made sharp (a linear read of mean MFCCs):
    "the MFCC LSTM beats the CNNs" is supported at an early look and the sweep stops there, far
    under --max-seeds; the record run holds every look (seeds, level, alpha spent, each claim's p); Ctrl-C
    in a look leaves the record KILLED and valid, and the same command resumes it to the end; the
    report names the design and its levels."""
    from dataclasses import replace

    import genre_models.sweep.until as until
    from genre_models.models.registry import NETS

    monkeypatch.setitem(NETS, "net2", replace(NETS["net2"], build=lambda s, head: _planted("blind")))
    monkeypatch.setitem(NETS, "net5", replace(NETS["net5"], build=lambda s, head: _planted("sharp", s.n_mfcc), lr=0.02))
    uri = f"sqlite:///{tmp_path}/m.db"
    args = ["sweep", "--data-dir", str(demo_dir), "--grid", "demo", "--nets", "net2,net5", "--splits", "kfold",
            "--folds", "5", "--seeds", "1", "--no-register", "--no-system-metrics", "--until-decided",
            "--max-seeds", "8", "--tracking-uri", uri, "--cache-dir", str(tmp_path / "c")]
    real_sweep, calls = until.run_sweep, []

    def interrupted(cfg, *a, **kw):
        calls.append(cfg.seeds)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_sweep(cfg, *a, **kw)

    monkeypatch.setattr(until, "run_sweep", interrupted)
    stopped = CliRunner().invoke(main, args)
    assert stopped.exit_code != 0 and "Traceback" not in stopped.output
    mlflow.set_tracking_uri(uri)
    seq = mlflow.search_runs(experiment_names=["gtzan-genre-benchmark"], filter_string="tags.stage = 'sequential'")
    assert len(seq) == 1 and seq.status[0] == "KILLED" and seq["tags.looks"][0].startswith("1 seed at ")
    monkeypatch.setattr(until, "run_sweep", real_sweep)
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    seq = mlflow.search_runs(experiment_names=["gtzan-genre-benchmark"], filter_string="tags.stage = 'sequential'")
    assert len(seq) == 1 and seq.status[0] == "FINISHED"  # the same record, resumed
    rid = seq.run_id[0]
    looks = json.loads(mlflow.artifacts.load_text(f"runs:/{rid}/looks.json"))
    last = looks[-1]
    assert last["seeds"] < 8 and seq["tags.stopped"][0] == f"every claim its nets can test is decided, at {last['seeds']} seeds"
    claim = {c["claim"]: c for c in last["claims"]}["mfcc_over_cnn"]
    assert claim["verdict"] == "supported" and claim["p_holm"] < 0.05  # on the family's scale (Boundaries.family_p)
    assert [lk["seeds"] for lk in looks] == list(range(1, last["seeds"] + 1)) and len(looks) >= 2
    assert all(0 < lk["level"] <= lk["spent_alpha"] * (1 + 1e-9) < 0.05 for lk in looks)  # exact at the first look
    hist = mlflow.MlflowClient().get_metric_history(rid, "spent_alpha")
    assert sorted(m.step for m in hist)[-1] == len(looks) - 1
    trained = mlflow.search_runs(experiment_names=["gtzan-genre-benchmark"], filter_string="tags.stage = 'train'")
    assert set(trained["tags.seed"].astype(int)) == set(range(last["seeds"]))  # no seed past the stop
    assert f"until decided: every claim its nets can test is decided, at {last['seeds']} seeds" in res.output
    rep = CliRunner().invoke(main, ["report", "--tracking-uri", uri, "--out", str(tmp_path / "r.md")])
    assert rep.exit_code == 0, rep.output
    text = (tmp_path / "r.md").read_text()
    assert "## Sequential sweeps" in text and "O'Brien-Fleming" in text and "Looks (seeds at level): 1 seed at " in text
