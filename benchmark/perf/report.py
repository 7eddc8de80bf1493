"""``benchmark perf report``: ``benchmark report`` on a large experiment of fabricated runs, its
artifacts fetched in parallel beside one at a time, in one process.

The runs are what a long k-fold sweep leaves: the study's nets (net1-net4 at two epoch budgets,
net5, net6, net5-raw, the baselines), a `kfold` block and a `track` block, each run with its
tags, counts, final metrics, a validation curve, its confusion matrix and its per-track test
predictions. They are written straight into a private SQLite store and its local artifact
folder; nothing is trained.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from genre_models.genres import GENRES
from genre_models.models.registry import NETS

#: The models a fabricated experiment holds: (net, epochs); a fixed-epoch net at both budgets.
MODELS = [(n, e) for n, s in NETS.items() for e in ((50, 100) if not s.early_stopping and s.family == "torch" else (s.epochs,))]
TRACKS = [f"{g}.{i:05d}" for g in GENRES for i in range(100)]


def _draws(n_runs: int) -> list[tuple[str, int, int]]:
    """(split, seed, fold) draws enough for ``n_runs`` runs: a fifth `track`, the rest `kfold`."""
    per_draw = len(MODELS)
    n_draws = max(2, -(-n_runs // per_draw))
    track = max(1, n_draws // 5)
    folds = [("kfold", s, f) for s in range(-(-(n_draws - track) // 10)) for f in range(10)]
    return ([("track", s, -1) for s in range(track)] + folds)[:n_draws]


def _artifacts(folder: Path, rng: np.random.Generator, skill: float, test: list[str]) -> None:
    truth = np.array([t.split(".")[0] for t in test])
    right = rng.random(len(test)) < skill
    pred = np.where(right, truth, rng.choice(GENRES, len(test)))
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"track_id": test, "true": truth, "predicted": pred, "samples": 30}).to_csv(
        folder / "test_predictions.csv", index=False)
    conf = pd.crosstab(pd.Categorical(truth, GENRES), pd.Categorical(pred, GENRES), dropna=False).to_numpy() * 30
    pd.DataFrame(conf, index=GENRES, columns=GENRES).to_csv(folder / "confusion_matrix.csv")


def fabricate(tracking_uri: str, experiment: str, n_runs: int, seed: int = 0) -> int:
    """Write about ``n_runs`` FINISHED training runs into ``experiment``; how many were written."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    client = MlflowClient(tracking_uri)
    exp_id = client.create_experiment(experiment)
    rng, made, now = np.random.default_rng(seed), 0, int(time.time() * 1000)
    for split, s, fold in _draws(n_runs):
        order = np.random.default_rng(1000 + s).permutation(len(TRACKS))
        test = [TRACKS[i] for i in order[(fold if fold >= 0 else 0) * 100:][:100]]
        for i, (net, epochs) in enumerate(MODELS):
            skill = 0.3 + 0.04 * i + rng.normal(0, 0.03)
            tags = {"stage": "train", "net": net, "split": split, "seed": str(s), "dataset": "gtzan@perf",
                    "dataset_synthetic": "false", "code_version": "perf", **({"fold": str(fold), "folds": "10"} if fold >= 0 else {})}
            run = client.create_run(exp_id, run_name=f"{net}-e{epochs}-{split}-s{s}", tags=tags)
            params = {"epochs": epochs, "resolved_device": "cpu", "n_test": 3000, "n_train": 24000, "n_test_tracks": 100,
                      "n_train_tracks": 800}
            metrics = {"test_accuracy": skill, "test_track_accuracy": skill + 0.02, "val_accuracy": skill,
                       "test_macro_f1": skill - 0.02, "stopped_epoch": 20, "best_epoch": 15}
            history = [Metric("val_accuracy", skill * (1 - 0.5 ** e), now, e) for e in range(1, 11)]
            client.log_batch(run.info.run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()] + history,
                             params=[Param(k, str(v)) for k, v in params.items()],
                             tags=[RunTag("mlflow.runName", run.info.run_name)])
            _artifacts(Path(run.info.artifact_uri.removeprefix("file://")), rng, skill, test)
            client.set_terminated(run.info.run_id, "FINISHED")
            made += 1
            if made >= n_runs:
                return made
    return made


def bench_report(runs: int = 2000, jobs: int = 8, figures: bool = True) -> dict:
    """Fabricate ``runs`` runs, then time ``write_report`` fetching with ``jobs`` threads and with 1."""
    import mlflow

    from genre_models.stages.report import write_report

    with tempfile.TemporaryDirectory(prefix="genre-bench-perf-report-") as tmp:
        uri, exp = f"sqlite:///{tmp}/mlflow.db", "perf-report"
        mlflow.set_tracking_uri(uri)
        t0 = time.perf_counter()
        made = fabricate(uri, exp, runs)
        fabricated = time.perf_counter() - t0
        seconds = {}
        for threads in (jobs, 1):
            t0 = time.perf_counter()
            rep = write_report(exp, out=f"{tmp}/r{threads}/report.md", tracking_uri=uri, figures=figures, jobs=threads)
            seconds[threads] = time.perf_counter() - t0
        same = Path(f"{tmp}/r{jobs}/report_files").glob("*.csv")
        identical = all((Path(f"{tmp}/r1/report_files") / f.name).read_bytes() == f.read_bytes() for f in same)
    return {"runs": made, "report_runs": rep.n_runs, "fabricate_s": round(fabricated, 1), "figures": figures,
            f"report_s_{jobs}_threads": round(seconds[jobs], 2), "report_s_1_thread": round(seconds[1], 2),
            "one_over_parallel": round(seconds[1] / seconds[jobs], 2), "same_tables": identical}
