"""Scoring a trained net: sample- and track-level metrics, and the run's evaluation artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from genre_models.genres import GENRES, N_CLASSES
from genre_models.training.loop import History


def track_vote(probs: np.ndarray, tracks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Majority vote of segment predictions per track; ties go to the higher mean probability.

    Returns (unique track rows, predicted label per track).
    """
    uniq, inv = np.unique(tracks, return_inverse=True)
    votes = np.zeros((len(uniq), probs.shape[1]))
    np.add.at(votes, (inv, probs.argmax(1)), 1.0)
    mean_p = np.zeros_like(votes)
    np.add.at(mean_p, inv, probs)
    mean_p /= np.bincount(inv, minlength=len(uniq))[:, None]
    # Votes decide; half the mean probability (< 1) only breaks ties between equal vote counts.
    return uniq, (votes + 0.5 * mean_p).argmax(1)


#: Each train run's test tracks and their vote, for the report's McNemar tests and pooled confusions.
PREDICTIONS_FILE = "test_predictions.csv"


def track_predictions(probs: np.ndarray, tracks: np.ndarray, track_ids: list[str], track_labels: np.ndarray,
                      groups: list[str] | None = None):
    """One row per test track: ``track_id``, ``true`` and ``predicted`` genre (the vote over its
    samples, as ``track_accuracy`` counts it), ``samples``, how many voted, and ``group``, the
    repeated recording it belongs to (its group's first track, or itself): the report's tests
    count a group as one cluster."""
    import pandas as pd

    uniq, pred = track_vote(probs, tracks)
    counts = np.bincount(np.unique(tracks, return_inverse=True)[1], minlength=len(uniq))
    return pd.DataFrame({"track_id": [track_ids[t] for t in uniq], "true": [GENRES[track_labels[t]] for t in uniq],
                         "predicted": [GENRES[p] for p in pred], "samples": counts,
                         "group": [(groups or track_ids)[t] for t in uniq]})


def floors(parts: dict) -> dict:
    """The floor every split and fold has: always answering the training part's majority genre
    (its real samples; ties to the first in ``GENRES``), scored on the test part's samples and
    tracks. Chance, the other floor, is 1 / 10 whatever the split."""
    train, test = parts["train"], parts["test"]
    real = np.asarray(train.track) >= 0  # net6's generated clips belong to no track
    majority = int(np.argmax(np.bincount(train.y.numpy()[real], minlength=N_CLASSES)))
    y, tracks = test.y.numpy(), np.asarray(test.track)
    _, first = np.unique(tracks, return_index=True)
    return {"test_majority_accuracy": float((y == majority).mean()),
            "test_majority_track_accuracy": float((y[first] == majority).mean())}


def absent_genres(y: np.ndarray) -> list[str]:
    """The genres with no sample in ``y`` (a part's labels)."""
    present = set(np.asarray(y).tolist())
    return [g for i, g in enumerate(GENRES) if i not in present]


def evaluate(probs: np.ndarray, y: np.ndarray, tracks: np.ndarray, track_labels: np.ndarray, loss: float) -> dict:
    """Sample- and track-level metrics for one part. Macro-F1 averages over the genres present
    in the part (a genre with no test sample would count as F1 0 and drag it down), and only
    they get an ``f1_<genre>``; ``absent_genres`` says which are missing."""
    from sklearn.metrics import f1_score

    pred = probs.argmax(1)
    uniq, track_pred = track_vote(probs, tracks)
    track_true = track_labels[uniq]
    labels = sorted(set(np.asarray(y).tolist())) or list(range(N_CLASSES))
    out = {
        "accuracy": float((pred == y).mean()) if len(y) else 0.0,
        "loss": loss,
        "macro_f1": float(f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
        "track_accuracy": float((track_pred == track_true).mean()) if len(uniq) else 0.0,
        "track_macro_f1": float(f1_score(track_true, track_pred, labels=labels, average="macro", zero_division=0)),
        "n_samples": int(len(y)),
        "n_tracks": int(len(uniq)),
    }
    per_genre = f1_score(y, pred, labels=labels, average=None, zero_division=0)
    out.update({f"f1_{GENRES[i]}": float(v) for i, v in zip(labels, per_genre)})
    return out


def write_eval_artifacts(out: Path, hist: History, confusion: np.ndarray, y_true, y_pred, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    from sklearn.metrics import classification_report

    pd.DataFrame(confusion, index=GENRES, columns=GENRES).rename_axis("true\\pred").to_csv(out / "confusion_matrix.csv")
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    ax.imshow(confusion, cmap="Blues")
    ax.set_xticks(range(N_CLASSES), GENRES, rotation=45, ha="right")
    ax.set_yticks(range(N_CLASSES), GENRES)
    for i in range(N_CLASSES):
        for j in range(N_CLASSES):
            if confusion[i, j]:
                ax.text(j, i, int(confusion[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if confusion[i, j] > confusion.max() / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}: test confusion")
    fig.tight_layout()
    fig.savefig(out / "confusion_matrix.png", dpi=110)
    plt.close(fig)

    labels = list(range(N_CLASSES))
    rep = classification_report(y_true, y_pred, labels=labels, target_names=list(GENRES), zero_division=0, digits=4)
    (out / "classification_report.txt").write_text(rep)
    rep_d = classification_report(y_true, y_pred, labels=labels, target_names=list(GENRES), zero_division=0, output_dict=True)
    (out / "classification_report.json").write_text(json.dumps(rep_d, indent=2))

    ep = np.arange(1, len(hist.epochs) + 1)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for key, ax in (("loss", a1), ("accuracy", a2)):
        ax.plot(ep, [m[f"train_{key}"] for m in hist.epochs], label=f"train_{key}")
        ax.plot(ep, [m[f"val_{key}"] for m in hist.epochs], label=f"val_{key}")
        if hist.best_epoch:
            ax.axvline(hist.best_epoch, color="grey", ls=":", label="best epoch")
        ax.set_xlabel("epoch")
        ax.legend()
    fig.suptitle(f"{title}: learning curves (validation, never test)")
    fig.tight_layout()
    fig.savefig(out / "learning_curves.png", dpi=110)
    plt.close(fig)
    pd.DataFrame(hist.epochs, index=pd.Index(ep, name="epoch")).to_csv(out / "history.csv")
