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
EPOCHS = 10  # each fabricated run's validation curve
TRACKS = [f"{g}.{i:05d}" for g in GENRES for i in range(100)]


def _draws(n_runs: int) -> list[tuple[str, int, int]]:
    """(split, seed, fold) draws enough for ``n_runs`` runs: a fifth `track`, the rest `kfold`."""
    per_draw = len(MODELS)
    n_draws = max(2, -(-n_runs // per_draw))
    track = max(1, n_draws // 5)
    folds = [("kfold", s, f) for s in range(-(-(n_draws - track) // 10)) for f in range(10)]
    return ([("track", s, -1) for s in range(track)] + folds)[:n_draws]


def _artifacts(folder: Path, rng: np.random.Generator, skill: float, test: list[str]) -> None:
    """What a training run leaves that the report reads: votes, confusion counts, the history."""
    truth = np.array([t.split(".")[0] for t in test])
    right = rng.random(len(test)) < skill
    pred = np.where(right, truth, rng.choice(GENRES, len(test)))
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"track_id": test, "true": truth, "predicted": pred, "samples": 30}).to_csv(
        folder / "test_predictions.csv", index=False)
    conf = pd.crosstab(pd.Categorical(truth, GENRES), pd.Categorical(pred, GENRES), dropna=False).to_numpy() * 30
    pd.DataFrame(conf, index=GENRES, columns=GENRES).to_csv(folder / "confusion_matrix.csv")
    pd.DataFrame({"epoch": range(1, EPOCHS + 1), "val_accuracy": [skill * (1 - 0.5 ** e) for e in range(1, EPOCHS + 1)]}
                 ).to_csv(folder / "history.csv", index=False)


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
            history = [Metric("val_accuracy", skill * (1 - 0.5 ** e), now, e) for e in range(1, EPOCHS + 1)]
            client.log_batch(run.info.run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()] + history,
                             params=[Param(k, str(v)) for k, v in params.items()],
                             tags=[RunTag("mlflow.runName", run.info.run_name)])
            _artifacts(Path(run.info.artifact_uri.removeprefix("file://")), rng, skill, test)
            client.set_terminated(run.info.run_id, "FINISHED")
            made += 1
            if made >= n_runs:
                return made
    return made


def bench_report(runs: int = 2000, figures: bool = True, repeats: int = 2) -> dict:
    """Fabricate ``runs`` runs, then time ``write_report`` on them, taking turns with MLflow's own
    ``search_runs`` of the same experiment (the least any report of it costs); best of ``repeats``."""
    import mlflow

    from genre_models.stages.report import write_report
    from genre_models.tracking.queries import experiment_runs

    with tempfile.TemporaryDirectory(prefix="genre-bench-perf-report-") as tmp:
        uri, exp = f"sqlite:///{tmp}/mlflow.db", "perf-report"
        mlflow.set_tracking_uri(uri)
        t0 = time.perf_counter()
        made = fabricate(uri, exp, runs)
        fabricated = time.perf_counter() - t0
        seconds: dict[str, list[float]] = {"report": [], "search_runs": []}
        for turn in range(repeats):
            t0 = time.perf_counter()
            rep = write_report(exp, out=f"{tmp}/r{turn}/report.md", tracking_uri=uri, figures=figures)
            seconds["report"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            experiment_runs(exp)
            seconds["search_runs"].append(time.perf_counter() - t0)
        best = {k: min(v) for k, v in seconds.items()}
    return {"runs": made, "report_runs": rep.n_runs, "fabricate_s": round(fabricated, 1), "figures": figures,
            "report_s": round(best["report"], 2), "search_runs_s": round(best["search_runs"], 2),
            "report_over_search_runs": round(best["report"] / best["search_runs"], 2),
            "seconds_per_1000_runs": round(best["report"] / made * 1000, 2)}
